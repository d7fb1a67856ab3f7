//! Health verdicts beyond drover's own probes: the engine's healthcheck
//! (`health_status` events and resyncs), and `start_period`, the grace
//! after a (re)start before failing checks count.

use std::time::Instant;

use super::super::{Action, EngineHealth, Phase};
use super::Core;
use crate::protocol::Lifecycle;

/// What a container whose engine check fails gives as its reason.
pub const ENGINE_UNHEALTHY: &str =
    "health check: the engine reports the container unhealthy (its check failed `retries` times in a row)";

impl Core {
    /// The engine's verdict on the healthcheck it runs. Idempotent: a
    /// resync repeats what an event said.
    pub(super) fn on_engine_health(&mut self, health: EngineHealth, out: &mut Vec<Action>) {
        // An image's own HEALTHCHECK that the blueprint does not ask for
        // decides nothing (a running container is up).
        if !self.settings.engine_health {
            return;
        }
        match health {
            EngineHealth::Starting => {}
            EngineHealth::Healthy => {
                if self.up == Some(true) && self.phase == Phase::Running {
                    return;
                }
                self.probe_failures = 0;
                self.set_failing(None, out);
                self.set_up(true, out);
                self.derive(out);
            }
            EngineHealth::Unhealthy => {
                if self.up == Some(false) && matches!(self.phase, Phase::Failed { .. }) {
                    return;
                }
                self.last_error = Some(ENGINE_UNHEALTHY.to_string());
                // The engine counted `retries` failures after its own
                // start period: a verdict, even before a first pass.
                self.health_failed(out);
            }
        }
    }

    /// Enough failing checks: the container is down. A start that never
    /// passed fails too (drover's probes without a start period wait for
    /// the start timeout instead).
    pub(super) fn health_failed(&mut self, out: &mut Vec<Action>) {
        self.set_up(false, out);
        if self.phase == Phase::WaitingHealthy && self.want_running {
            let why = self
                .last_error
                .clone()
                .unwrap_or_else(|| "health check failing".into());
            self.fail(why, out);
        } else {
            self.derive(out);
        }
    }

    /// Within `start_period` of the last (re)start.
    pub(super) fn in_start_period(&self, now: Instant) -> bool {
        match (self.settings.start_period, self.started_at) {
            (Some(p), Some(t)) => now.saturating_duration_since(t) < p,
            _ => false,
        }
    }

    /// A failing probe of a check with a `start_period`: ignored within it
    /// (the count starts afresh after it); after it, counted as for a
    /// running container, even before the first pass.
    pub(super) fn on_failed_probe_with_start_period(
        &mut self,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Err(message) = result else {
            return;
        };
        self.last_error = Some(format!("health check: {message}"));
        if self.in_start_period(now) {
            self.probe_failures = 0;
            return;
        }
        self.set_failing(self.last_error.clone(), out);
        self.probe_failures += 1;
        if self.probe_failures >= self.settings.unhealthy_threshold.max(1)
            && (self.lifecycle() != Lifecycle::Starting || self.phase == Phase::WaitingHealthy)
        {
            self.health_failed(out);
        }
    }
}
