//! The sensor board every entity keeps: its sensors' current values and
//! its subscribers, each with the sensors it wants to hear.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::now_ms;
use super::{
    sensors, EntityEvent, EntityKind, EntityRef, Interest, Lifecycle, SensorName, SensorValue,
};

/// The sensors and subscribers every entity keeps; publishing only on change
/// keeps event volume proportional to real change.
#[derive(Default)]
pub struct SensorBoard {
    pub values: BTreeMap<SensorName, SensorValue>,
    subscribers: Vec<(Recipient<EntityEvent>, Interest)>,
}

impl SensorBoard {
    pub fn subscribe(
        &mut self,
        who: Recipient<EntityEvent>,
        interest: Interest,
        me: &EntityRef,
        kind: EntityKind,
        state: Lifecycle,
    ) {
        who.do_send(EntityEvent::State {
            source: me.clone(),
            kind,
            state,
        });
        for (name, value) in self.values.iter().filter(|(n, _)| interest.wants(n)) {
            who.do_send(EntityEvent::Sensor {
                source: me.clone(),
                name: name.clone(),
                value: value.clone(),
            });
        }
        self.subscribers.push((who, interest));
    }

    /// Sets a sensor; tells subscribers only if the value changed.
    pub fn set(&mut self, me: &EntityRef, name: &str, value: serde_json::Value) {
        // The name is allocated only the first time a sensor is set; the
        // events share it.
        let name = match self.values.get_key_value(name) {
            Some((_, old)) if *old.value == value => return,
            Some((key, _)) => key.clone(),
            None => SensorName::from(name),
        };
        let value = SensorValue::new(value, now_ms());
        self.values.insert(name.clone(), value.clone());
        self.emit(EntityEvent::Sensor {
            source: me.clone(),
            name,
            value,
        });
    }

    /// A lifecycle change, as every entity publishes it: the
    /// `entity.state` sensor, then the `State` event.
    pub fn publish_state(&mut self, me: &EntityRef, kind: EntityKind, state: Lifecycle) {
        self.set(me, sensors::ENTITY_STATE, serde_json::json!(state.as_str()));
        self.emit(EntityEvent::State {
            source: me.clone(),
            kind,
            state,
        });
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.values.get(name).map(|v| &*v.value)
    }

    /// Removes a sensor (published as `null`).
    pub fn clear(&mut self, me: &EntityRef, name: &str) {
        if let Some((name, _)) = self.values.remove_entry(name) {
            let value = SensorValue::new(serde_json::Value::Null, now_ms());
            self.emit(EntityEvent::Sensor {
                source: me.clone(),
                name,
                value,
            });
        }
    }

    pub fn emit(&mut self, event: EntityEvent) {
        // A subscriber whose mailbox is closed is gone for good: drop it.
        // Only those that hear this event are asked: asking every one
        // touched each subscriber's mailbox per event (a container's
        // restarter, which hears no sensor, twice per stats sample).
        self.subscribers
            .retain(|(s, i)| !i.hears(&event) || s.connected());
        let Some(last) = self.subscribers.iter().rposition(|(_, i)| i.hears(&event)) else {
            return;
        };
        for (s, _) in self.subscribers[..last]
            .iter()
            .filter(|(_, i)| i.hears(&event))
        {
            s.do_send(event.clone());
        }
        // The last one takes the event itself: one copy fewer per change.
        self.subscribers[last].0.do_send(event);
    }

    /// How many subscribers hear changes of this sensor (tests, metrics).
    pub fn listeners(&self, sensor: &str) -> usize {
        self.subscribers
            .iter()
            .filter(|(s, i)| s.connected() && i.wants(sensor))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what it hears: sensor names, `state`, `notice`, `gone`.
    struct Ear(Arc<Mutex<Vec<String>>>);
    impl Actor for Ear {
        type Context = Context<Self>;
    }
    impl Handler<EntityEvent> for Ear {
        type Result = ();
        fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
            let heard = match ev {
                EntityEvent::Sensor { name, .. } => name.into(),
                EntityEvent::State { .. } => "state".into(),
                EntityEvent::Notice { .. } => "notice".into(),
                EntityEvent::Gone { .. } => "gone".into(),
            };
            self.0.lock().unwrap().push(heard);
        }
    }

    #[actix::test]
    async fn a_subscriber_hears_only_the_sensors_it_asked_for_and_every_state_and_notice() {
        let me = EntityRef::new("shop", "web-1");
        let mut board = SensorBoard::default();
        board.set(&me, sensors::HOST_ADDRESS, serde_json::json!("10.0.0.1"));
        let ears: Vec<Arc<Mutex<Vec<String>>>> = (0..4).map(|_| Default::default()).collect();
        let interests = [
            Interest::All,
            Interest::NoSensors,
            Interest::Named(sensors::CPU_USAGE.into()),
            Interest::Matching(|n| n == sensors::HOST_ADDRESS),
        ];
        for (ear, interest) in ears.iter().zip(interests) {
            let addr = Ear(ear.clone()).start();
            board.subscribe(
                addr.recipient(),
                interest,
                &me,
                EntityKind::Container,
                Lifecycle::Created,
            );
        }
        assert_eq!(board.listeners(sensors::CPU_USAGE), 2);
        assert_eq!(board.listeners(sensors::MEMORY_USAGE), 1);
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        // Unchanged: nobody hears it again.
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        board.set(&me, sensors::MEMORY_USAGE, serde_json::json!(1024));
        board.emit(EntityEvent::Notice {
            source: me.clone(),
            name: sensors::ENTITY_FAILED.into(),
            detail: serde_json::json!({}),
        });
        board.emit(EntityEvent::Gone { source: me.clone() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let heard: Vec<Vec<String>> = ears.iter().map(|e| e.lock().unwrap().clone()).collect();
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            heard,
            [
                v(&[
                    "state",
                    "host.address",
                    "cpu.usage",
                    "memory.usage_bytes",
                    "notice",
                    "gone"
                ]),
                v(&["state", "notice", "gone"]),
                v(&["state", "cpu.usage", "notice", "gone"]),
                v(&["state", "host.address", "notice", "gone"]),
            ]
        );
    }

    #[actix::test]
    async fn events_share_the_boards_sensor_name() {
        let me = EntityRef::new("shop", "web-1");
        let heard: Arc<Mutex<Vec<EntityEvent>>> = Default::default();
        struct Keep(Arc<Mutex<Vec<EntityEvent>>>);
        impl Actor for Keep {
            type Context = Context<Self>;
        }
        impl Handler<EntityEvent> for Keep {
            type Result = ();
            fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
                self.0.lock().unwrap().push(ev);
            }
        }
        let mut board = SensorBoard::default();
        board.subscribe(
            Keep(heard.clone()).start().recipient(),
            Interest::All,
            &me,
            EntityKind::Container,
            Lifecycle::Running,
        );
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.25));
        board.clear(&me, sensors::CPU_USAGE);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let heard = heard.lock().unwrap();
        let names: Vec<(&str, *const u8)> = heard
            .iter()
            .filter_map(|e| match e {
                EntityEvent::Sensor { name, .. } => Some((name.as_str(), name.as_ptr())),
                _ => None,
            })
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|(n, _)| *n == sensors::CPU_USAGE));
        assert!(
            names.iter().all(|(_, p)| *p == names[0].1),
            "one allocation of the name for every event"
        );
        assert!(board.get(sensors::CPU_USAGE).is_none());
    }

    #[actix::test]
    async fn a_gone_subscriber_is_dropped_at_the_first_event_it_would_hear() {
        let me = EntityRef::new("shop", "web-1");
        let mut board = SensorBoard::default();
        for interest in [Interest::NoSensors, Interest::All] {
            let ear = Ear(Default::default()).start();
            board.subscribe(
                ear.clone().recipient(),
                interest,
                &me,
                EntityKind::Container,
                Lifecycle::Running,
            );
            // Stopped: its mailbox closes.
            ear.do_send(StopEar);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(board.listeners(sensors::CPU_USAGE), 0);
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        // The one that hears sensors went; the other stays until a state
        // change or notice, which it would hear.
        assert_eq!(board.subscribers.len(), 1);
        board.emit(EntityEvent::Gone { source: me.clone() });
        assert!(board.subscribers.is_empty());
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct StopEar;
    impl Handler<StopEar> for Ear {
        type Result = ();
        fn handle(&mut self, _: StopEar, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }
}
