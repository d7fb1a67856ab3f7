//! References to other entities' sensors and dependencies: what a start
//! waits for, and the recreate when a referenced value changes.

use actix::prelude::*;
use serde_json::json;

use super::phase::{Observation, Refs};
use super::ContainerEntity;
use crate::entity::references::WireReferences;
use crate::protocol::{EntityEvent, Interest, Subscribe};

/// Sensor names a dependant publishes about its references.
pub const REFERENCES_WAITING: &str = "references.waiting";
pub const REFERENCES_RESOLVED: &str = "references.resolved";

impl ContainerEntity {
    /// Whether a start may go on: every reference resolves and every
    /// dependency runs.
    pub(super) fn refs(&self) -> Refs {
        let Some(opts) = &self.ref_opts else {
            return Refs::None;
        };
        if self.wait.is_empty() {
            return Refs::None;
        }
        let missing: Vec<String> = self.wait.missing().iter().map(|m| m.to_string()).collect();
        if missing.is_empty() {
            return Refs::Ready;
        }
        // A source already on fire fails the wait at once.
        let abort = self
            .wait
            .source_on_fire()
            .filter(|_| opts.abort_if_source_on_fire)
            .map(|src| {
                format!(
                    "source `{src}` is on-fire (abort_if_source_on_fire); it was waited for: {}",
                    missing.join(", ")
                )
            });
        Refs::Missing { missing, abort }
    }

    pub(super) fn waiting_for(&mut self, missing: Vec<String>, first: bool) {
        if first {
            tracing::info!(entity = %self.me, missing = ?missing, "waiting for references");
        }
        self.board.set(&self.me, REFERENCES_WAITING, json!(missing));
    }

    pub(super) fn count_reference_restart(&mut self) {
        tracing::info!(entity = %self.me, "a referenced sensor changed: recreating the container with the new values");
        let count = self
            .board
            .get("references.restarts")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            + 1;
        self.board
            .set(&self.me, "references.restarts", json!(count));
    }

    /// A source changed: go on with a waiting start, or recreate the
    /// container if the values it was made with are out of date.
    fn on_references_changed(&mut self, ctx: &mut Context<Self>) {
        let Some(opts) = &self.ref_opts else {
            return;
        };
        let restart = opts.on_change == crate::blueprint::OnReferenceChange::Restart;
        // Unresolved now (a source's container is gone): keep running with
        // the old values until the new ones are published.
        let stale = restart
            && self
                .wait
                .render(&self.spec)
                .is_some_and(|now| self.applied.as_deref() != Some(&now));
        self.observe(Observation::ReferencesChanged { stale }, ctx);
    }
}

impl Handler<WireReferences> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: WireReferences, ctx: &mut Context<Self>) {
        self.wait = crate::entity::references::Wait::new(&self.spec, &msg.options.depends_on);
        for source in self.wait.sources() {
            if let Some(to) = msg.sources.get(&source) {
                to.do_send(Subscribe(ctx.address().recipient(), Interest::All));
            }
        }
        self.core.settings.reference_timeout = Some(msg.options.timeout);
        self.ref_opts = Some(Box::new(msg.options));
    }
}

/// Events of the sources this container references.
impl Handler<EntityEvent> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => {
                if self.wait.on_sensor(&source.entity, &name, &value.value) {
                    let resolved = self.wait.resolved();
                    self.board.set(&self.me, REFERENCES_RESOLVED, resolved);
                    self.on_references_changed(ctx);
                }
            }
            EntityEvent::State { source, state, .. } => {
                if self.wait.sources().contains(&source.entity) {
                    self.wait.on_state(&source.entity, state);
                    self.on_references_changed(ctx);
                }
            }
            _ => {}
        }
    }
}
