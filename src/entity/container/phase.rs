//! The container's state machine, as a pure function.
//!
//! One explicit [`Phase`] replaces the flags the actor used to keep
//! (`busy`, `probing`, `tearing_down`, `want_running`, `pool_placed`), in
//! the spirit of a kube-runtime reconciler: [`Core::step`] takes what
//! happened (an [`Observation`]: an effector call, an engine event, a
//! resync, a probe result, an operation's completion, a tick) and returns
//! the next I/O to do as a list of [`Action`]s, in order. The actor performs
//! them and reports their outcomes back as observations.
//!
//! The lifecycle is a function of the phase ([`Phase::lifecycle`]); a
//! change of it is itself an action, emitted at the moment it happens so a
//! short `running` before a crash is still seen by subscribers.
//!
//! No actix, bollard or clock here: time comes in as an argument.

use std::time::{Duration, Instant};

use crate::entity::pool_messages::{PlaceError, PlaceErrorKind};
use crate::protocol::Lifecycle;

/// While starting, probe this often: a fast first "up" is most of a fast
/// deploy and a fast recovery.
pub const STARTING_PROBE_EVERY: Duration = Duration::from_millis(25);

/// A start that has not passed its health check by then has failed.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the container is in its life. The phases marked *busy* have one
/// engine operation (or a pool request) in flight; no second one starts
/// until it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Never asked to run.
    Created,
    /// Wants to run; waits for its references and dependencies.
    WaitingReferences,
    /// Busy: asking the host pool for a host.
    Placing,
    /// Busy: finding or building the image, then creating and starting.
    Creating,
    /// Busy: removing what is left of a failed container before a fresh
    /// create (it stays on-fire meanwhile).
    Clearing,
    /// Busy: removing a container whose referenced values changed, to
    /// create it again with the new ones.
    Recreating,
    /// Busy: an engine start or restart of the existing container.
    Restarting,
    /// Busy: an engine stop.
    Stopping,
    /// The engine runs it; its health check has not passed yet.
    WaitingHealthy,
    Running,
    /// Stopped on request.
    Stopped,
    Failed {
        reason: String,
    },
    /// Torn down: its container is being removed; nothing else counts.
    TearingDown,
    /// Removed for good.
    Gone,
}

impl Phase {
    pub fn lifecycle(&self) -> Lifecycle {
        match self {
            Phase::Created => Lifecycle::Created,
            Phase::WaitingReferences
            | Phase::Placing
            | Phase::Creating
            | Phase::Recreating
            | Phase::Restarting
            | Phase::WaitingHealthy => Lifecycle::Starting,
            Phase::Clearing | Phase::Failed { .. } => Lifecycle::OnFire,
            Phase::Stopping | Phase::TearingDown => Lifecycle::Stopping,
            Phase::Running => Lifecycle::Running,
            Phase::Stopped | Phase::Gone => Lifecycle::Stopped,
        }
    }

    /// An operation of drover's own is in flight.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Phase::Placing
                | Phase::Creating
                | Phase::Clearing
                | Phase::Recreating
                | Phase::Restarting
                | Phase::Stopping
        )
    }

    /// Teardown wins over everything.
    pub fn is_torn_down(&self) -> bool {
        matches!(self, Phase::TearingDown | Phase::Gone)
    }
}

/// An engine event about the current container (Docker's action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    Start,
    Unpause,
    Die,
    Oom,
    Pause,
    Destroy,
    /// `health_status: ...`: the engine's verdict on the healthcheck it
    /// runs (also what a resync lists).
    Health(EngineHealth),
    Other(String),
}

/// The state of a healthcheck the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineHealth {
    Starting,
    Healthy,
    Unhealthy,
}

impl EngineHealth {
    /// Docker's words: `healthy`, `unhealthy`, `starting`.
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim() {
            "healthy" => Some(EngineHealth::Healthy),
            "unhealthy" => Some(EngineHealth::Unhealthy),
            "starting" => Some(EngineHealth::Starting),
            _ => None,
        }
    }
}

impl EngineEvent {
    pub fn parse(action: &str) -> Self {
        match action {
            "start" => EngineEvent::Start,
            "unpause" => EngineEvent::Unpause,
            "die" => EngineEvent::Die,
            "oom" => EngineEvent::Oom,
            "pause" => EngineEvent::Pause,
            "destroy" => EngineEvent::Destroy,
            other => match other
                .strip_prefix("health_status:")
                .and_then(EngineHealth::parse)
            {
                Some(h) => EngineEvent::Health(h),
                None => EngineEvent::Other(other.to_string()),
            },
        }
    }
}

/// What a create or restart found: the container and the engine's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub id: String,
    /// `created`, `running`, `paused`, `exited`, ...
    pub state: String,
    /// The health check's port is published (a probe can reach it).
    pub probeable: bool,
}

/// An engine operation on the existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineOp {
    Start,
    Restart,
    Stop,
}

impl EngineOp {
    pub fn name(self) -> &'static str {
        match self {
            EngineOp::Start => "start",
            EngineOp::Restart => "restart",
            EngineOp::Stop => "stop",
        }
    }
}

/// The state of the references a start waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refs {
    /// Not wired, or nothing to wait for.
    None,
    Ready,
    Missing {
        missing: Vec<String>,
        /// A source is on fire and the blueprint asks to give up: why.
        abort: Option<String>,
    },
}

impl Refs {
    fn missing(&self) -> &[String] {
        match self {
            Refs::Missing { missing, .. } => missing,
            _ => &[],
        }
    }
}

/// A resync listed after anything a test's core could have learned.
#[cfg(test)]
fn fresh_list(seen: Option<(String, String)>) -> Observation {
    Observation::Resync {
        seen,
        listed_at: Instant::now() + Duration::from_secs(86_400),
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The `start` effector (idempotent).
    Start,
    /// The `stop` effector.
    Stop,
    /// The `restart` effector.
    Restart,
    Teardown,
    /// An engine event of one of this entity's containers.
    Engine {
        container: String,
        event: EngineEvent,
    },
    /// A resync's view: the container the engine holds under this
    /// entity's labels and its state, or `None`, as listed at `listed_at`.
    Resync {
        seen: Option<(String, String)>,
        listed_at: Instant,
    },
    /// A health probe of `container` ended.
    Probed {
        container: Option<String>,
        result: Result<(), String>,
    },
    /// Time passed.
    Tick,
    /// The pool chose a host.
    Placed,
    /// The pool found no host. `keep`: the container a move leaves
    /// behind, which then stays.
    PlaceFailed {
        error: PlaceError,
        keep: Option<String>,
    },
    /// The create (and start) ended.
    Created(Result<Info, String>),
    /// An engine start, restart (with what an inspect saw) or stop ended.
    Operated(Result<Option<Info>, String>),
    /// The removal of a failed or out-of-date container ended.
    Removed,
    /// Teardown's removal ended.
    TornDown {
        ok: bool,
    },
    /// A referenced source changed; `stale`: the container's values are out
    /// of date and the blueprint asks for a restart on change.
    ReferencesChanged {
        stale: bool,
    },
    /// The pool lost the host: start again elsewhere.
    Relocated {
        reason: String,
    },
    /// The placement policy asks to move to a cooler host.
    Move,
}

/// Why a start did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    Failed(String),
    Stopping,
}

/// The next thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    // Engine and pool I/O: at most one in flight.
    /// Ask the host pool for a host.
    Place,
    /// Find or build the image, then create and start the container.
    Create,
    Operate(EngineOp),
    /// Remove this container (a failed or out-of-date one).
    Remove(String),
    /// Teardown: remove by id (if known) and by name (a create may be in flight).
    RemoveAll(Option<String>),
    /// Probe the health check.
    Probe,

    // Answers to the effector call at hand.
    /// Answer this call when the start settles.
    AwaitStart,
    /// Answer this call when the operation completes.
    AwaitOperation(EngineOp),
    /// Refuse this call.
    Refuse(String),
    /// Answer every start waiting.
    ResolveStarts(Result<(), StartError>),

    // Publishing.
    /// The lifecycle changed: sensor, event, failure detector.
    Lifecycle(Lifecycle),
    /// Teardown's states: the event only.
    Announce(Lifecycle),
    ServiceState(String),
    ServiceUp(bool),
    ClearContainerId,
    /// A failure: log it and publish it as `entity.error`.
    ReportError(String),
    /// `entity.error` alone: set or cleared.
    ErrorSensor(Option<String>),
    /// Sensor `health.failing`: the health check began failing (why), or
    /// passes again / was restarted (None). Published on changes only.
    HealthFailing(Option<String>),
    /// The start waits for these references (`first`: since now).
    WaitingFor {
        missing: Vec<String>,
        first: bool,
    },
    /// The start no longer waits for references.
    StopWaiting,
    /// A referenced value changed: count the recreate.
    CountReferenceRestart,

    // Placement.
    /// A move begins: keep the current container aside.
    BeginMove(String),
    /// No host to move to (why): go back to the container kept aside.
    AbandonMove(String),
    /// The moved container runs: remove the old one.
    RetireOld,
    /// Publish why the last placement failed (sensor `placement.failure`),
    /// or clear it once placed.
    PlaceFailure(Option<PlaceErrorKind>),
    /// Free the pool slot.
    Release,
    /// Removed for good: say so and stop.
    Gone,
}

/// Tunables the actor sets from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The spec has a health check.
    pub health: bool,
    /// Consecutive failing probes that make a started container down.
    pub unhealthy_threshold: u32,
    /// The health check's interval once running.
    pub probe_every: Duration,
    pub start_timeout: Duration,
    /// The container asks a host pool for its host.
    pub pool: bool,
    /// How long a start waits for references (once wired).
    pub reference_timeout: Option<Duration>,
    /// The engine runs the health check (`exec`/`test`): no probes; its
    /// `health_status` decides.
    pub engine_health: bool,
    /// After each (re)start, failing probes do not count for this long;
    /// after it they count even before the first pass (Docker's
    /// `start_period`). The start timeout runs from its end.
    pub start_period: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            health: false,
            unhealthy_threshold: 1,
            probe_every: Duration::from_secs(1),
            start_timeout: DEFAULT_START_TIMEOUT,
            pool: false,
            reference_timeout: None,
            engine_health: false,
            start_period: None,
        }
    }
}

mod step;
pub use self::step::Core;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod health_tests;
