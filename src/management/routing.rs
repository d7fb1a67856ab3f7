//! Message routing: entity events into the read model (and notices into
//! the activity record), engine events and resyncs to the container
//! entities they concern.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use actix::prelude::*;

use crate::entity::Observed;
use crate::host::{ContainerEvent, HostResync, ManagedContainer};
use crate::metrics;
use crate::protocol::{now_ms, sensors as s, EntityEvent, EntityRef};

use super::{Activity, Management};

impl Handler<EntityEvent> for Management {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => {
                if name.as_str() == s::HOST_NAME {
                    let was = self.host_of(&source);
                    self.host_index
                        .moved(&source, was.as_deref(), value.value.as_str());
                }
                self.view.model_mut().set_sensor(&source, &name, value)
            }
            EntityEvent::State { source, state, .. } => {
                self.view.model_mut().set_state(&source, state)
            }
            EntityEvent::Gone { source } => {
                self.recovery.gone(&source, now_ms());
                self.forget(&source);
            }
            // Failures and recoveries go into the activity record: the
            // operator's "what happened and why".
            EntityEvent::Notice {
                source,
                name,
                detail,
            } => {
                // A notice of an entity already forgotten is the late copy
                // of one recorded before it went away.
                if !self.view.model().contains(&source) {
                    return;
                }
                let new = self.notices.entry(source.clone()).or_default().is_new(
                    &name,
                    &detail,
                    Instant::now(),
                );
                if !new {
                    return;
                }
                self.observe_notice(&source, &name, &detail);
                let message = detail
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_string);
                self.record(Activity {
                    id: 0,
                    time_ms: now_ms(),
                    application: source.app.clone(),
                    entity: source.entity.clone(),
                    kind: "event".into(),
                    name,
                    args: detail,
                    outcome: "ok".into(),
                    message,
                    duration_seconds: 0.0,
                });
            }
        }
    }
}

impl Handler<ContainerEvent> for Management {
    type Result = ();
    fn handle(&mut self, ev: ContainerEvent, _: &mut Context<Self>) {
        metrics::ENGINE_EVENTS.inc();
        let key = EntityRef::new(ev.app.clone(), ev.entity.clone());
        if let Some(inbox) = self.handles.get(&key).and_then(|h| h.container.as_ref()) {
            // try_send: a full mailbox drops the event; the resync repairs it.
            let _ = inbox.events.try_send(ev);
        }
    }
}

impl Handler<HostResync> for Management {
    type Result = ();
    fn handle(&mut self, msg: HostResync, ctx: &mut Context<Self>) {
        // A resync comes every 10 s per host: a good clock for the (much
        // rarer) capacity reads.
        self.refresh_capacity(&msg.host, ctx);
        self.host_containers.insert(
            msg.host.clone(),
            owned_count(
                &msg.containers,
                crate::host::OWNER.get().map(String::as_str),
            ),
        );
        let mut seen: HashMap<EntityRef, ManagedContainer> = HashMap::new();
        for c in msg.containers {
            seen.insert(EntityRef::new(c.app.clone(), c.entity.clone()), c);
        }
        let model = self.view.model();
        for key in self.host_index.on(&msg.host) {
            let Some(inbox) = self.handles.get(key).and_then(|h| h.container.as_ref()) else {
                continue;
            };
            // The index follows `host.name`; checked again because a wrong
            // "not listed" would make the entity start its container anew.
            let host = model
                .get(key)
                .and_then(|v| v.sensors.get(s::HOST_NAME))
                .and_then(|v| v.value.as_str());
            if host != Some(msg.host.as_str()) {
                continue;
            }
            let _ = inbox
                .observed
                .try_send(Observed(seen.get(key).cloned(), msg.listed_at));
        }
    }
}

impl Management {
    /// The host an entity's `host.name` sensor names now.
    pub(super) fn host_of(&self, key: &EntityRef) -> Option<String> {
        self.view
            .model()
            .get(key)
            .and_then(|v| v.sensors.get(s::HOST_NAME))
            .and_then(|v| v.value.as_str())
            .map(str::to_string)
    }
}

/// Which entities each host runs, kept as their `host.name` sensors change
/// (the management actor hears every sensor). Routing every host's resync
/// through every entity cost hosts × entities (10^7 lookups a second with
/// 1,000 hosts and 100,000 containers), and rebuilding an index from all
/// entities each second still cost all entities a second (at 40,000
/// containers a tenth of the actor thread); kept this way a resync costs
/// its own host's entities and a move costs two set operations.
#[derive(Default)]
pub struct HostIndex {
    by_host: HashMap<String, HashSet<EntityRef>>,
}

impl HostIndex {
    /// An entity's host changed from `was` to `now` (`None`: no host, or gone).
    pub fn moved(&mut self, key: &EntityRef, was: Option<&str>, now: Option<&str>) {
        if was == now {
            return;
        }
        if let Some(was) = was {
            if let Some(set) = self.by_host.get_mut(was) {
                set.remove(key);
                if set.is_empty() {
                    self.by_host.remove(was);
                }
            }
        }
        if let Some(now) = now {
            match self.by_host.get_mut(now) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_host
                        .insert(now.to_string(), HashSet::from([key.clone()]));
                }
            }
        }
    }

    /// An application was destroyed: none of its entities is anywhere.
    pub fn forget_app(&mut self, app: &str) {
        self.by_host.retain(|_, set| {
            set.retain(|k| k.app != app);
            !set.is_empty()
        });
    }

    pub fn on(&self, host: &str) -> impl Iterator<Item = &EntityRef> {
        self.by_host.get(host).into_iter().flatten()
    }
}

/// How many of a host's managed containers are this drover's: several
/// drovers may share one engine, and each counts only its own. Without an
/// identity (no store) every managed container counts.
pub fn owned_count(containers: &[ManagedContainer], owner: Option<&str>) -> usize {
    containers
        .iter()
        .filter(|c| owner.is_none_or(|o| c.owner.as_deref() == Some(o)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_resync_reaches_only_the_entities_placed_there_now() {
        let e = |n: &str| EntityRef::new("app".to_string(), n.to_string());
        let on = |index: &HostIndex, h: &str| {
            let mut v: Vec<String> = index.on(h).map(|k| k.entity.clone()).collect();
            v.sort();
            v
        };
        let mut index = HostIndex::default();
        index.moved(&e("a"), None, Some("h1"));
        index.moved(&e("b"), None, Some("h2"));
        index.moved(&e("c"), None, Some("h1"));
        assert_eq!(on(&index, "h1"), ["a", "c"]);
        assert_eq!(on(&index, "h2"), ["b"]);
        assert!(on(&index, "h3").is_empty());
        // Replaced onto another host: it leaves the first one's list.
        index.moved(&e("a"), Some("h1"), Some("h2"));
        assert_eq!(on(&index, "h1"), ["c"]);
        assert_eq!(on(&index, "h2"), ["a", "b"]);
        // Gone: on no host's list.
        index.moved(&e("c"), Some("h1"), None);
        assert!(on(&index, "h1").is_empty());
        assert!(
            index.by_host.get("h1").is_none(),
            "an empty host is dropped"
        );
        // The same host again is no change.
        index.moved(&e("b"), Some("h2"), Some("h2"));
        assert_eq!(on(&index, "h2"), ["a", "b"]);
        // Its application destroyed: gone from every host.
        let other = EntityRef::new("other".to_string(), "x".to_string());
        index.moved(&other, None, Some("h2"));
        index.forget_app("app");
        assert_eq!(index.on("h2").cloned().collect::<Vec<_>>(), [other]);
    }

    fn c(owner: Option<&str>) -> ManagedContainer {
        ManagedContainer {
            owner: owner.map(str::to_string),
            id: "id".into(),
            name: "n".into(),
            app: "a".into(),
            entity: "e".into(),
            state: "running".into(),
            health: None,
            ports: Default::default(),
        }
    }

    #[test]
    fn only_this_drovers_containers_count() {
        let list = [c(Some("me")), c(Some("other")), c(None), c(Some("me"))];
        assert_eq!(owned_count(&list, Some("me")), 2);
    }

    #[test]
    fn without_an_identity_every_managed_container_counts() {
        let list = [c(Some("me")), c(Some("other")), c(None)];
        assert_eq!(owned_count(&list, None), 3);
    }
}
