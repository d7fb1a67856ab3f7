//! Message routing: entity events into the read model (and notices into
//! the activity record), engine events and resyncs to the container
//! entities they concern.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;

use crate::entity::Observed;
use crate::host::{ContainerEvent, HostResync, ManagedContainer};
use crate::metrics;
use crate::protocol::{now_ms, EntityEvent, EntityRef};

use super::{Activity, Management};

impl Handler<EntityEvent> for Management {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => self.view.model_mut().set_sensor(&source, &name, value),
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
        // Only the locations' hosts have these gauges (seeded at start); a
        // pool reports its own hosts.
        if let Some(facts) = self.view.hosts_mut().get_mut(&msg.host) {
            facts.containers = owned_count(
                &msg.containers,
                crate::host::OWNER.get().map(String::as_str),
            );
        }
        let mut seen: HashMap<EntityRef, ManagedContainer> = HashMap::new();
        for c in msg.containers {
            seen.insert(EntityRef::new(c.app.clone(), c.entity.clone()), c);
        }
        // Only the host's own entities: the read model keeps who runs
        // where as `host.name` changes.
        let model = self.view.model();
        for key in model.on_host(&msg.host) {
            let Some(inbox) = self.handles.get(key).and_then(|h| h.container.as_ref()) else {
                continue;
            };
            let _ = inbox
                .observed
                .try_send(Observed(seen.get(key).cloned(), msg.listed_at));
        }
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
