//! Message routing: entity events into the read model (and notices into
//! the activity record), engine events and resyncs to the container
//! entities they concern.

use std::collections::HashMap;
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
        if self.host_index.stale() {
            let by_host = index_by_host(self.handles.iter().filter_map(|(key, h)| {
                h.container.as_ref()?;
                let host = model
                    .get(key)
                    .and_then(|v| v.sensors.get(s::HOST_NAME))
                    .and_then(|v| v.value.as_str())?;
                Some((host.to_string(), key.clone()))
            }));
            self.host_index.replace(by_host);
        }
        for key in self.host_index.on(&msg.host) {
            let Some(inbox) = self.handles.get(key).and_then(|h| h.container.as_ref()) else {
                continue;
            };
            // Placed elsewhere since the index was built: that host's
            // resync is the one to tell it.
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

/// Which container entities each host runs, rebuilt at most once per
/// [`HostIndex::EVERY`]. Routing every host's resync through every entity
/// cost hosts × entities (10^7 lookups a second with 1,000 hosts and
/// 100,000 containers); with the index a resync costs its own host's
/// containers. A container not placed yet has no container to resync (its
/// entity ignores resyncs then), and one placed since the last build hears
/// from its host's next resync after the next build: the resync is the
/// slow safety net, the event stream the fast path.
#[derive(Default)]
pub struct HostIndex {
    built: Option<std::time::Instant>,
    by_host: HashMap<String, Vec<EntityRef>>,
}

impl HostIndex {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    fn stale(&self) -> bool {
        self.built.is_none_or(|t| t.elapsed() >= Self::EVERY)
    }

    fn replace(&mut self, by_host: HashMap<String, Vec<EntityRef>>) {
        self.by_host = by_host;
        self.built = Some(std::time::Instant::now());
    }

    fn on(&self, host: &str) -> &[EntityRef] {
        self.by_host.get(host).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Groups (host, entity) pairs by host.
pub fn index_by_host(
    pairs: impl Iterator<Item = (String, EntityRef)>,
) -> HashMap<String, Vec<EntityRef>> {
    let mut by_host: HashMap<String, Vec<EntityRef>> = HashMap::new();
    for (host, key) in pairs {
        by_host.entry(host).or_default().push(key);
    }
    by_host
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
    fn a_hosts_resync_reaches_only_its_own_containers() {
        let e = |n: &str| EntityRef::new("app".to_string(), n.to_string());
        let pairs = [("h1", "a"), ("h2", "b"), ("h1", "c")].map(|(h, n)| (h.to_string(), e(n)));
        let mut index = HostIndex::default();
        assert!(index.stale(), "never built");
        index.replace(index_by_host(pairs.into_iter()));
        assert!(!index.stale());
        assert_eq!(index.on("h1"), [e("a"), e("c")]);
        assert_eq!(index.on("h2"), [e("b")]);
        assert!(index.on("h3").is_empty());
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
