//! What the engine says of the container: its events, the periodic
//! resync's view, its stats, and the health probes drover runs.

use actix::prelude::*;
use serde_json::json;

use super::phase::{EngineEvent, EngineHealth, Observation};
use super::ContainerEntity;
use crate::entity::Observed;
use crate::host::{health, ContainerEvent};
use crate::protocol::sensors as s;

impl Handler<ContainerEvent> for ContainerEntity {
    type Result = ();

    fn handle(&mut self, ev: ContainerEvent, ctx: &mut Context<Self>) {
        self.observe(
            Observation::Engine {
                container: ev.container_id,
                event: EngineEvent::parse(&ev.action),
            },
            ctx,
        );
    }
}

impl Handler<Observed> for ContainerEntity {
    type Result = ();

    fn handle(&mut self, Observed(seen, listed_at): Observed, ctx: &mut Context<Self>) {
        // The engine's health verdict, level-triggered: a lost
        // `health_status` event is repaired by the next resync.
        let health = seen.as_ref().and_then(|c| {
            let h = EngineHealth::parse(c.health.as_deref()?)?;
            Some((c.id.clone(), h))
        });
        let stale = self.core.stale_list(listed_at);
        self.observe(
            Observation::Resync {
                seen: seen.map(|c| (c.id, c.state)),
                listed_at,
            },
            ctx,
        );
        if let Some((container, h)) = health.filter(|_| !stale) {
            self.observe(
                Observation::Engine {
                    container,
                    event: EngineEvent::Health(h),
                },
                ctx,
            );
        }
    }
}

impl Handler<crate::host::stats::StatsSample> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, sample: crate::host::stats::StatsSample, _: &mut Context<Self>) {
        if self.core.phase.is_torn_down()
            || self.core.container.as_ref() != Some(&sample.container_id)
        {
            return;
        }
        if let Some(cpu) = sample.cpu {
            // Rounded: a change in the fourth decimal is not worth an event.
            self.board.set(
                &self.me,
                s::CPU_USAGE,
                json!((cpu * 10_000.0).round() / 10_000.0),
            );
        }
        if let Some(m) = sample.memory_bytes {
            self.board.set(&self.me, s::MEMORY_USAGE, json!(m));
        }
    }
}

impl ContainerEntity {
    /// Probes the health check once; the result goes back to the phase.
    pub(super) fn probe(&mut self, ctx: &mut Context<Self>) {
        let id = self.core.container.clone();
        let port = self
            .spec
            .health
            .as_ref()
            .and_then(|c| health::check_port(c).and_then(|p| self.ports.get(&p).copied()));
        let (Some(check), Some(port)) = (self.spec.health.clone(), port) else {
            // The phase asks only when the port is published; nothing to probe.
            self.core.probing = false;
            return;
        };
        let address = self.at.host_address.clone();
        ctx.spawn(
            async move { health::probe(&check, &address, port).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.observe(
                        Observation::Probed {
                            container: id,
                            result: res.map_err(|e| e.to_string()),
                        },
                        ctx,
                    );
                }),
        );
    }
}
