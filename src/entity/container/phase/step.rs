//! The state machine's step: one observation in, the next actions out.

use std::time::Instant;

use super::{
    Action, EngineEvent, EngineOp, Info, Observation, Phase, Refs, Settings, StartError,
    STARTING_PROBE_EVERY,
};
use crate::entity::pool_messages::PlaceErrorKind;

pub mod health;
use crate::protocol::Lifecycle;

/// The container's state: the phase, what drover wants, and what it has
/// seen of the engine.
#[derive(Debug, Clone)]
pub struct Core {
    pub settings: Settings,
    pub phase: Phase,
    /// What the user asked for: running (start, restart) or not (stop).
    pub want_running: bool,
    /// The current container's id.
    pub container: Option<String>,
    /// What the engine last said of it (`running`, `exited`, `removed` ...).
    pub engine: Option<String>,
    /// The health check passes (or, without one, the engine runs it).
    pub up: Option<bool>,
    /// A health probe is in flight.
    pub probing: bool,
    /// The health check's port is published.
    pub probeable: bool,
    pub last_probe: Option<Instant>,
    /// Consecutive failing health probes.
    pub probe_failures: u32,
    /// The latest known trouble: the reason a failure will give.
    pub last_error: Option<String>,
    /// `health.failing` is published: checks fail since the last pass
    /// or (re)start (outside a `start_period`).
    pub health_failing: bool,
    /// A start waits for an answer since then.
    pub started_at: Option<Instant>,
    /// Waiting for references since then.
    pub waiting_since: Option<Instant>,
    /// The host pool gave this container a host.
    pub placed: bool,
    /// A move is in progress (the old container waits to be removed).
    pub moving: bool,
    /// Why the last placement failed, as published; cleared once placed.
    pub place_failure: Option<PlaceErrorKind>,
    /// The pool declared this container's host lost, and no new host has
    /// been given yet: whatever is addressed to the old host cannot succeed.
    pub host_lost: bool,
    /// When the container's state was last learned from something newer
    /// than a list could be: an engine event, a create or operation's
    /// answer. A list asked for before then is stale.
    pub learned_at: Option<Instant>,
    /// Engine events that arrived while an operation was in flight;
    /// replayed (from the last `start` on) once it completes.
    pub stashed: Vec<(String, EngineEvent)>,
}

fn busy_message() -> String {
    "is busy with another engine operation; call again once it is done".into()
}

impl Core {
    pub fn new(settings: Settings) -> Self {
        Core {
            settings,
            phase: Phase::Created,
            want_running: false,
            container: None,
            engine: None,
            up: None,
            probing: false,
            probeable: false,
            last_probe: None,
            probe_failures: 0,
            last_error: None,
            health_failing: false,
            started_at: None,
            waiting_since: None,
            placed: false,
            moving: false,
            place_failure: None,
            host_lost: false,
            learned_at: None,
            stashed: Vec::new(),
        }
    }

    pub fn lifecycle(&self) -> Lifecycle {
        self.phase.lifecycle()
    }

    /// Whether an [`Observation::Tick`] may do anything now. It is
    /// wider than what `on_tick` acts on (any state but running counts),
    /// so that a tick is never missing: a running container without a
    /// health check that waits for nothing has none.
    pub fn wants_ticks(&self) -> bool {
        self.settings.health
            || self.waiting_since.is_some()
            || self.lifecycle() != Lifecycle::Running
    }

    /// One step: what happened in, the next actions out.
    pub fn step(&mut self, obs: Observation, refs: &Refs, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Observation::Teardown = obs {
            self.teardown(&mut out);
            return out;
        }
        if self.phase.is_torn_down() {
            match (&obs, &self.phase) {
                (Observation::TornDown { ok: true }, Phase::TearingDown) => {
                    self.phase = Phase::Gone;
                    if std::mem::take(&mut self.placed) {
                        out.push(Action::Release);
                    }
                    out.extend([Action::Announce(Lifecycle::Stopped), Action::Gone]);
                }
                // The pool declared the host lost while its container was
                // being removed: a removal on a dead engine can only fail,
                // and would leave the member `stopping` for ever. The pool
                // has already forgotten the slot; if the engine comes back,
                // the orphan sweep removes the container (as Kubernetes
                // force-deletes the pods of a lost node).
                (Observation::Relocated { .. }, Phase::TearingDown) => {
                    self.phase = Phase::Gone;
                    self.placed = false;
                    out.extend([Action::Announce(Lifecycle::Stopped), Action::Gone]);
                }
                // Relocated before the teardown, with no new host yet: the
                // removal went to the lost host and failed for that reason.
                (Observation::TornDown { ok: false }, Phase::TearingDown) if self.host_lost => {
                    self.phase = Phase::Gone;
                    out.extend([Action::Announce(Lifecycle::Stopped), Action::Gone]);
                }
                _ => {}
            }
            return out;
        }
        if matches!(
            obs,
            Observation::Engine { .. } | Observation::Created(_) | Observation::Operated(_)
        ) {
            self.learned_at = Some(now);
        }
        match obs {
            Observation::Teardown | Observation::TornDown { .. } => {}
            Observation::Start => self.on_start(refs, now, &mut out),
            Observation::Stop => self.operate(EngineOp::Stop, now, &mut out),
            Observation::Restart => self.on_restart(refs, now, &mut out),
            Observation::Engine { container, event } => {
                if self.phase.is_busy() {
                    // The operation in flight reports its own outcome; what
                    // happens after it (a crash right after start) is
                    // replayed when it ends.
                    self.stashed.push((container, event));
                } else {
                    self.on_event(&container, event, &mut out);
                }
            }
            Observation::Resync { seen, listed_at } => {
                if !self.stale_list(listed_at) {
                    self.on_resync(seen, &mut out)
                }
            }
            Observation::Probed { container, result } => {
                self.on_probed(container, result, now, &mut out)
            }
            Observation::Tick => self.on_tick(refs, now, &mut out),
            Observation::Placed => {
                if self.phase == Phase::Placing {
                    self.placed = true;
                    self.host_lost = false;
                    if self.place_failure.take().is_some() {
                        out.push(Action::PlaceFailure(None));
                    }
                    self.restart_fresh(refs, now, &mut out);
                }
            }
            Observation::PlaceFailed { error, keep } => {
                if self.phase == Phase::Placing {
                    match keep {
                        Some(old) if self.moving => {
                            self.abandon_move(old, error.to_string(), &mut out)
                        }
                        _ => {
                            // Before the failure itself: the cluster reads
                            // the kind when this member turns on-fire.
                            let kind = error.kind();
                            if self.place_failure != Some(kind) {
                                self.place_failure = Some(kind);
                                out.push(Action::PlaceFailure(Some(kind)));
                            }
                            self.fail(error.to_string(), &mut out)
                        }
                    }
                }
            }
            Observation::Created(res) => {
                if self.phase == Phase::Creating {
                    self.on_created(res, now, &mut out);
                }
            }
            Observation::Operated(res) => {
                if matches!(self.phase, Phase::Restarting | Phase::Stopping) {
                    self.on_operated(res, now, &mut out);
                }
            }
            Observation::Removed => match self.phase {
                Phase::Recreating => {
                    self.stashed.clear();
                    self.restart_fresh(refs, now, &mut out);
                }
                Phase::Clearing => self.restart_fresh(refs, now, &mut out),
                _ => {}
            },
            Observation::ReferencesChanged { stale } => {
                self.on_references_changed(stale, refs, now, &mut out)
            }
            Observation::Relocated { reason } => {
                // The slot on the failed host is already forgotten by the pool.
                self.placed = false;
                self.host_lost = true;
                self.container = None;
                out.push(Action::ClearContainerId);
                self.last_error = Some(reason);
                self.see_engine("removed", &mut out);
                if self.want_running && !self.phase.is_busy() {
                    self.restart_fresh(refs, now, &mut out);
                }
            }
            Observation::Move => {
                if self.phase.is_busy()
                    || self.phase != Phase::Running
                    || self.moving
                    || !self.want_running
                {
                    return out;
                }
                let Some(id) = self.container.take() else {
                    return out;
                };
                self.moving = true;
                // Start afresh: the pool picks another host (avoiding this
                // one); the same container name is free there.
                self.placed = false;
                out.push(Action::BeginMove(id));
                self.restart_fresh(refs, now, &mut out);
            }
        }
        out
    }

    fn teardown(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::TearingDown;
        self.want_running = false;
        out.push(Action::Announce(Lifecycle::Stopping));
        out.push(Action::ResolveStarts(Err(StartError::Stopping)));
        out.push(Action::RemoveAll(self.container.clone()));
    }

    /// Moves to `phase`; a lifecycle change is published at once, with its
    /// consequences for the waiting starts and a move in progress.
    fn set_phase(&mut self, phase: Phase, out: &mut Vec<Action>) {
        let before = self.lifecycle();
        self.phase = phase;
        let now = self.lifecycle();
        if before == now {
            return;
        }
        out.push(Action::Lifecycle(now));
        match now {
            Lifecycle::Running => {
                self.started_at = None;
                out.push(Action::ResolveStarts(Ok(())));
                if self.moving {
                    self.moving = false;
                    out.push(Action::RetireOld);
                }
            }
            Lifecycle::OnFire if self.started_at.is_some() => {
                let why = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "container is not up".into());
                out.push(Action::ResolveStarts(Err(StartError::Failed(why))));
            }
            _ => {}
        }
    }

    /// Begins anew from `created`, whatever the lifecycle says (after a
    /// removal, a placement, a relocation, a move).
    fn restart_fresh(&mut self, refs: &Refs, now: Instant, out: &mut Vec<Action>) {
        // Silently: `start` publishes `starting` again, as a new attempt.
        self.phase = Phase::Created;
        self.start(refs, now, out);
    }

    fn fail(&mut self, message: String, out: &mut Vec<Action>) {
        if self.lifecycle() == Lifecycle::OnFire && self.last_error.as_ref() == Some(&message) {
            return;
        }
        out.push(Action::ReportError(message.clone()));
        self.last_error = Some(message.clone());
        self.set_phase(Phase::Failed { reason: message }, out);
    }

    fn on_start(&mut self, refs: &Refs, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::AwaitStart);
        if self.lifecycle() == Lifecycle::Running {
            out.push(Action::ResolveStarts(Ok(())));
        }
        // A failed container is started afresh: remove what is left of it
        // first so its deterministic name is free.
        if matches!(self.phase, Phase::Failed { .. }) {
            if let Some(id) = self.container.take() {
                // A start is an order to run, whatever came before (a stop
                // that failed left it off): the create after the removal
                // must not read as healing a stop.
                self.want_running = true;
                self.phase = Phase::Clearing;
                out.push(Action::Remove(id));
                return;
            }
        }
        self.start(refs, now, out);
    }

    fn on_restart(&mut self, refs: &Refs, now: Instant, out: &mut Vec<Action>) {
        if self.phase.is_busy() {
            out.push(Action::Refuse(busy_message()));
            return;
        }
        // A container that is gone is made again; one that exists is
        // restarted in place (faster: no create, same name and ports' rules).
        if self.container.is_none() {
            self.phase = Phase::Created;
            self.on_start(refs, now, out);
            return;
        }
        // An exited container only needs a start (no stop, no unpause):
        // the fast path of every restart after a crash.
        let op = match self.engine.as_deref() {
            Some("exited" | "created" | "dead") => EngineOp::Start,
            _ => EngineOp::Restart,
        };
        self.operate(op, now, out);
    }

    /// Begins (or joins) a start. Idempotent: a running entity stays as is.
    fn start(&mut self, refs: &Refs, now: Instant, out: &mut Vec<Action>) {
        self.want_running = true;
        if self.lifecycle() == Lifecycle::Running || self.phase.is_busy() {
            return;
        }
        match refs {
            Refs::None => {}
            Refs::Ready => {
                self.waiting_since = None;
                out.push(Action::StopWaiting);
            }
            Refs::Missing { missing, abort } => {
                let first = self.waiting_since.is_none();
                self.waiting_since.get_or_insert(now);
                out.push(Action::WaitingFor {
                    missing: missing.clone(),
                    first,
                });
                self.set_phase(Phase::WaitingReferences, out);
                if let Some(message) = abort {
                    self.abort_wait(message.clone(), out);
                }
                return;
            }
        }
        self.started_at = Some(now);
        self.up = None;
        self.last_error = None;
        self.set_failing(None, out);
        if self.settings.pool && !self.placed {
            self.set_phase(Phase::Placing, out);
            out.push(Action::Place);
        } else {
            self.set_phase(Phase::Creating, out);
            out.push(Action::Create);
        }
    }

    fn abort_wait(&mut self, message: String, out: &mut Vec<Action>) {
        self.waiting_since = None;
        out.push(Action::StopWaiting);
        self.fail(message.clone(), out);
        out.push(Action::ResolveStarts(Err(StartError::Failed(message))));
    }

    fn operate(&mut self, op: EngineOp, now: Instant, out: &mut Vec<Action>) {
        if self.container.is_none() {
            out.push(Action::Refuse(format!(
                "has no container to {}; call `start` first",
                op.name()
            )));
            return;
        }
        // One engine operation at a time: the one in flight decides.
        if self.phase.is_busy() {
            out.push(Action::Refuse(busy_message()));
            return;
        }
        let then_running = op != EngineOp::Stop;
        self.want_running = then_running;
        out.push(Action::AwaitOperation(op));
        if then_running {
            self.set_phase(Phase::Restarting, out);
            self.started_at = Some(now);
            self.up = None;
            self.set_failing(None, out);
        } else {
            self.set_phase(Phase::Stopping, out);
        }
        out.push(Action::Operate(op));
    }

    fn see_engine(&mut self, state: &str, out: &mut Vec<Action>) {
        self.engine = Some(state.to_string());
        out.push(Action::ServiceState(state.to_string()));
    }

    /// `health.failing`, on changes only (probes run every 25 ms while
    /// starting: their every result is no news).
    pub(super) fn set_failing(&mut self, why: Option<String>, out: &mut Vec<Action>) {
        if self.health_failing != why.is_some() {
            self.health_failing = why.is_some();
            out.push(Action::HealthFailing(why));
        }
    }

    fn set_up(&mut self, up: bool, out: &mut Vec<Action>) {
        self.up = Some(up);
        out.push(Action::ServiceUp(up));
    }

    fn on_engine_state(&mut self, seen: &str, out: &mut Vec<Action>) {
        self.see_engine(seen, out);
        if seen != "running" {
            self.set_up(false, out);
        } else if !self.settings.health {
            self.set_up(true, out);
        }
        self.derive(out);
    }

    /// The lifecycle from wants and observations.
    fn derive(&mut self, out: &mut Vec<Action>) {
        if self.phase.is_torn_down() || !self.want_running || self.phase.is_busy() {
            return;
        }
        let engine_running = self.engine.as_deref() == Some("running");
        match (engine_running, self.up) {
            (true, Some(true)) => {
                out.push(Action::ErrorSensor(None));
                self.last_error = None;
                self.set_phase(Phase::Running, out);
            }
            // Not up yet while starting is expected; after that it is a failure.
            (true, _) if self.lifecycle() == Lifecycle::Starting => {}
            (true, _) => {
                let why = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "health check failing".into());
                self.fail(why, out)
            }
            (false, _) => {
                let seen = self.engine.as_deref().unwrap_or("unknown");
                self.fail(format!("container is {seen}"), out)
            }
        }
    }

    fn on_event(&mut self, container: &str, event: EngineEvent, out: &mut Vec<Action>) {
        // Events of an earlier container of this entity are history.
        if self.container.as_deref().is_some_and(|id| id != container) {
            return;
        }
        match event {
            EngineEvent::Start | EngineEvent::Unpause => self.on_engine_state("running", out),
            EngineEvent::Die => self.on_engine_state("exited", out),
            EngineEvent::Oom => {
                let why = "killed for lack of memory (OOM)".to_string();
                self.last_error = Some(why.clone());
                out.push(Action::ErrorSensor(Some(why)));
            }
            EngineEvent::Pause => self.on_engine_state("paused", out),
            EngineEvent::Health(h) => self.on_engine_health(h, out),
            EngineEvent::Destroy => {
                self.container = None;
                out.push(Action::ClearContainerId);
                self.on_engine_state("removed", out);
            }
            EngineEvent::Other(_) => {}
        }
    }

    /// Replays what happened after the last `start` seen during an operation.
    fn replay_stash(&mut self, out: &mut Vec<Action>) {
        let stash = std::mem::take(&mut self.stashed);
        let Some(id) = self.container.clone() else {
            return;
        };
        let ours: Vec<EngineEvent> = stash
            .into_iter()
            .filter(|(c, _)| *c == id)
            .map(|(_, e)| e)
            .collect();
        let from = ours
            .iter()
            .rposition(|e| *e == EngineEvent::Start)
            .map(|i| i + 1)
            .unwrap_or(0);
        for ev in ours.into_iter().skip(from) {
            self.on_event(&id, ev, out);
        }
    }

    /// A list asked for before the entity last learned its container's
    /// state says nothing new, and may say something old: taken just
    /// before a create, it shows no container, and just before a start,
    /// a `created` one; believed, either would make the entity replace or
    /// restart a healthy container.
    pub fn stale_list(&self, listed_at: Instant) -> bool {
        self.learned_at.is_some_and(|t| listed_at < t)
    }

    fn on_resync(&mut self, seen: Option<(String, String)>, out: &mut Vec<Action>) {
        if self.phase.is_busy() || self.container.is_none() {
            return;
        }
        match seen {
            Some((id, state)) if Some(&id) == self.container.as_ref() => {
                if self.engine.as_ref() != Some(&state) {
                    self.on_engine_state(&state, out);
                }
            }
            // The engine holds no container for us (or another one): ours is gone.
            _ => {
                self.container = None;
                out.push(Action::ClearContainerId);
                self.on_engine_state("removed", out);
            }
        }
    }

    fn apply(&mut self, info: &Info, out: &mut Vec<Action>) {
        self.container = Some(info.id.clone());
        self.probeable = info.probeable;
        self.see_engine(&info.state, out);
    }

    fn on_created(&mut self, res: Result<Info, String>, now: Instant, out: &mut Vec<Action>) {
        match res {
            Ok(info) => {
                self.phase = Phase::WaitingHealthy;
                self.apply(&info, out);
                if self.settings.health {
                    self.probe(now, out);
                } else {
                    self.set_up(info.state == "running", out);
                }
                self.derive(out);
                self.replay_stash(out);
            }
            Err(message) => {
                self.phase = Phase::WaitingHealthy;
                self.stashed.clear();
                self.fail(message, out);
            }
        }
    }

    fn on_operated(
        &mut self,
        res: Result<Option<Info>, String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let was = self.phase.clone();
        // Out of the busy phase, the lifecycle unchanged: derive decides.
        self.phase = if was == Phase::Stopping {
            Phase::Stopped
        } else {
            Phase::WaitingHealthy
        };
        match res {
            Ok(Some(info)) => {
                self.apply(&info, out);
                if self.settings.health {
                    self.probe(now, out);
                } else {
                    self.set_up(info.state == "running", out);
                    self.derive(out);
                }
                self.replay_stash(out);
                self.derive(out);
            }
            Ok(None) => {
                self.set_up(false, out);
                // Back to the busy phase's lifecycle so the change is published.
                self.phase = was;
                self.set_phase(Phase::Stopped, out);
                self.derive(out);
            }
            Err(message) => {
                self.phase = was;
                self.fail(message, out);
                // What the engine said meanwhile still happened: a removal
                // (`docker rm -f` refuses the start with 409, and its
                // `destroy` came while the start was in flight) must not
                // be lost with the failed operation.
                self.replay_stash(out);
            }
        }
    }

    fn probe(&mut self, now: Instant, out: &mut Vec<Action>) {
        // A check the engine runs is not probed: its events decide.
        if !self.settings.health || self.settings.engine_health || self.probing || !self.probeable {
            return;
        }
        self.probing = true;
        self.last_probe = Some(now);
        out.push(Action::Probe);
    }

    fn on_probed(
        &mut self,
        container: Option<String>,
        result: Result<(), String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.probing = false;
        if self.container != container || self.phase.is_busy() {
            return;
        }
        if result.is_err() && self.settings.start_period.is_some() {
            self.on_failed_probe_with_start_period(result, now, out);
            return;
        }
        match result {
            Ok(()) => {
                self.probe_failures = 0;
                self.set_failing(None, out);
                self.set_up(true, out);
                self.derive(out);
            }
            Err(message) => {
                // While starting, failing probes are expected: keep the
                // reason for the timeout message but do not flap `service.up`.
                self.last_error = Some(format!("health check: {message}"));
                self.set_failing(self.last_error.clone(), out);
                self.probe_failures += 1;
                let threshold = self.settings.unhealthy_threshold.max(1);
                if (self.lifecycle() != Lifecycle::Starting || self.up == Some(true))
                    && self.probe_failures >= threshold
                {
                    self.set_up(false, out);
                    self.derive(out);
                }
            }
        }
    }

    fn on_tick(&mut self, refs: &Refs, now: Instant, out: &mut Vec<Action>) {
        if !self.want_running || self.phase.is_busy() {
            return;
        }
        if let (Some(t), Some(timeout)) = (self.waiting_since, self.settings.reference_timeout) {
            if now.saturating_duration_since(t) > timeout {
                let message = format!(
                    "waited {} (reference_timeout) for {}",
                    humantime::format_duration(timeout),
                    refs.missing().join(", ")
                );
                self.abort_wait(message, out);
                return;
            }
        }
        if let (Some(t), Lifecycle::Starting) = (self.started_at, self.lifecycle()) {
            let grace = self.settings.start_period.unwrap_or_default();
            if now.saturating_duration_since(t) > grace + self.settings.start_timeout {
                let why = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no health check passed".into());
                let message = format!(
                    "not up after {}: {why}",
                    humantime::format_duration(self.settings.start_timeout)
                );
                self.fail(message, out);
                return;
            }
        }
        if !self.settings.health {
            return;
        }
        // Probing a container the engine says is not running tells nothing new.
        if self.engine.as_deref() != Some("running") {
            return;
        }
        let every = if self.lifecycle() == Lifecycle::Running {
            self.settings.probe_every
        } else {
            STARTING_PROBE_EVERY
        };
        if self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= every)
        {
            self.probe(now, out);
        }
    }

    /// A source changed: go on with a waiting start, or recreate the
    /// container if the values it was made with are out of date.
    fn on_references_changed(
        &mut self,
        stale: bool,
        refs: &Refs,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.waiting_since.is_some() {
            if self.want_running && !self.phase.is_busy() {
                self.start(refs, now, out);
            }
            return;
        }
        if !stale || self.phase.is_busy() || !self.want_running {
            return;
        }
        let Some(id) = self.container.take() else {
            return;
        };
        out.push(Action::CountReferenceRestart);
        self.set_phase(Phase::Recreating, out);
        out.push(Action::Remove(id));
    }

    /// No host to move to: keep the old container.
    fn abandon_move(&mut self, old: String, why: String, out: &mut Vec<Action>) {
        self.moving = false;
        out.push(Action::AbandonMove(why));
        self.container = Some(old);
        self.placed = true;
        // Out of `placing`, still starting: the old container runs on.
        self.phase = Phase::WaitingHealthy;
        self.set_up(true, out);
        self.derive(out);
        self.phase = Phase::WaitingHealthy;
        self.set_phase(Phase::Running, out);
    }
}
