//! The container entity: one Docker container, its health and lifecycle.
//!
//! The decisions live in [`phase`], a pure state machine: the actor feeds
//! it what happens ([`Observation`]) and performs the actions it returns
//! (engine operations, probes, sensors, answers). Every engine call is a
//! future spawned on the actor; its outcome comes back as an observation,
//! and the phase makes sure at most one is in flight and that a late answer
//! never overwrites newer knowledge.
//!
//! - [`effectors`]: the effector calls and teardown, and the engine
//!   operations they start.
//! - [`engine`]: engine events, resyncs, stats and health probes.
//! - [`refs`]: references to other entities' sensors.
//! - [`image`]: the image build of a container with `build`.
//! - [`pooled`]: placement by a location's host pool, relocation, moves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;
use tokio::sync::oneshot;

mod effectors;
mod engine;
mod image;
pub mod phase;
mod pooled;
mod pull;
mod refs;
mod volumes;

pub use image::IMAGE_BUILD;
pub use phase::DEFAULT_START_TIMEOUT;
pub use pooled::{PLACEMENT_DECISION, PLACEMENT_FAILURE};

/// Sensor: the health check fails since the last pass or (re)start (its
/// latest reason); absent while it passes. A rollout judges a new member by
/// how long this has held.
pub const HEALTH_FAILING: &str = "health.failing";
pub use pull::{IMAGE_DIGEST, IMAGE_PULL};
pub use refs::{REFERENCES_RESOLVED, REFERENCES_WAITING};
pub use volumes::TeardownForGood;

use self::phase::{
    Action, Core, EngineOp, Observation, Settings, StartError, STARTING_PROBE_EVERY,
};
use super::failure::{FailureDetector, FailureDetectorConfig, Verdict};
use super::references::{ReferenceOptions, Rendered, Wait};
use super::{ContainerInbox, EntityHandle, Placement};
use crate::blueprint::ContainerSpec;
use crate::protocol::{
    entity_handlers, now_ms, sensors as s, EmitNotice, EntityError, EntityEvent, EntityKind,
    EntityRef, Lifecycle, Observable, SensorBoard,
};

type Reply = oneshot::Sender<Result<serde_json::Value, EntityError>>;

pub struct ContainerEntity {
    me: EntityRef,
    /// Shared with the cluster and its other members of the same revision:
    /// a copy per member was about 1 KiB of each container entity.
    spec: Arc<ContainerSpec>,
    at: Placement,
    /// The phase, what drover wants and what it saw: every decision's input.
    core: Core,
    board: SensorBoard,
    ports: BTreeMap<u16, u16>,
    start_waiters: Vec<oneshot::Sender<Result<(), EntityError>>>,
    /// The effector call waiting for the engine operation in flight.
    op_reply: Option<(EngineOp, Reply)>,
    detector: FailureDetector,
    /// The container the stats feed follows.
    stats_for: Option<String>,
    /// A stabilization delay runs out at this time (ms).
    recheck_at: Option<u64>,
    /// The cluster this container is a member of: also its DNS alias.
    cluster: Option<String>,
    /// Sensor references and dependencies: what the start waits for.
    wait: Wait,
    // Four parts are boxed (these two, `retiring` and `adopted`): most
    // containers never have them, and inline they were 264 of the 1,072
    // bytes of every container entity's struct.
    /// Set once the application gave this container its sources.
    ref_opts: Option<Box<ReferenceOptions>>,
    /// The env and command the current container was created with.
    applied: Option<Box<Rendered>>,
    /// Where image builds are recorded.
    activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// A move in progress: the old container (host, name, id) to remove
    /// once the new one runs.
    retiring: Option<Box<pooled::Retiring>>,
    /// The application's image pins.
    images: crate::entity::images::ImagePins,
    /// The container the pool found running for this entity at start, as
    /// its list showed it: the next create adopts it without asking the
    /// engine (see [`effectors`]).
    adopted: Option<Box<crate::host::ContainerInfo>>,
    /// The next tick, if one is due: when, and its timer (see
    /// [`ContainerEntity::arm_tick`]).
    next_tick: Option<(Instant, SpawnHandle)>,
}

/// How the effector call at hand is answered.
enum Answer {
    /// Not an effector call, or nothing to wait for.
    None,
    Start(oneshot::Receiver<Result<(), EntityError>>),
    Operation(
        EngineOp,
        oneshot::Receiver<Result<serde_json::Value, EntityError>>,
    ),
    Refused(String),
    /// Teardown: remove by id (if known) and by name.
    RemoveAll(Option<String>),
}

impl ContainerEntity {
    pub fn new(me: EntityRef, spec: impl Into<Arc<ContainerSpec>>, at: Placement) -> Self {
        let spec = spec.into();
        let detector = FailureDetector::new(spec.failure_detector.unwrap_or_default());
        let settings = Settings {
            health: spec.health.is_some(),
            unhealthy_threshold: spec
                .health
                .as_ref()
                .map(|h| h.unhealthy_threshold)
                .unwrap_or(1),
            probe_every: spec
                .health
                .as_ref()
                .map(|h| h.interval)
                .unwrap_or(Duration::from_secs(1)),
            pool: at.pool.is_some(),
            engine_health: spec.health.as_ref().is_some_and(|h| h.by_engine()),
            start_period: spec.health.as_ref().and_then(|h| h.start_period),
            ..Settings::default()
        };
        ContainerEntity {
            me,
            spec,
            at,
            core: Core::new(settings),
            board: SensorBoard::default(),
            ports: BTreeMap::new(),
            start_waiters: Vec::new(),
            op_reply: None,
            detector,
            recheck_at: None,
            stats_for: None,
            cluster: None,
            wait: Wait::default(),
            ref_opts: None,
            applied: None,
            activities: None,
            retiring: None,
            images: Default::default(),
            adopted: None,
            next_tick: None,
        }
    }

    /// Records image builds (and reuses) as activities there.
    pub fn with_activities(mut self, to: Recipient<crate::activity::RecordActivity>) -> Self {
        self.activities = Some(to);
        self
    }

    /// Pins pulled tags to digests in the application's table.
    pub fn with_images(mut self, images: crate::entity::images::ImagePins) -> Self {
        self.images = images;
        self
    }

    /// Marks the container as a member of `cluster` (an extra DNS alias, and
    /// the name of its built image).
    pub fn member_of(mut self, cluster: &str) -> Self {
        self.cluster = Some(cluster.to_string());
        self
    }

    pub fn with_failure_detector(mut self, cfg: FailureDetectorConfig) -> Self {
        self.detector = FailureDetector::new(cfg);
        self
    }

    pub fn handle(addr: &Addr<ContainerEntity>) -> EntityHandle {
        EntityHandle {
            kind: EntityKind::Container,
            invoke: addr.clone().recipient(),
            subscribe: addr.clone().recipient(),
            teardown: addr.clone().recipient(),
            container: Some(ContainerInbox {
                events: addr.clone().recipient(),
                observed: addr.clone().recipient(),
            }),
            publish: Some(addr.clone().recipient()),
        }
    }

    /// Feeds the state machine and performs what it decides.
    fn observe(&mut self, obs: Observation, ctx: &mut Context<Self>) -> Answer {
        // The engine said something since the start's list (a start
        // waiting for references adopts later): the list is history, and
        // the create asks the engine.
        if matches!(obs, Observation::Engine { .. } | Observation::Resync { .. }) {
            self.adopted = None;
        }
        let refs = match obs {
            // Only a waiting start needs them on a tick (its timeout message).
            Observation::Tick if self.core.waiting_since.is_none() => phase::Refs::None,
            _ => self.refs(),
        };
        let actions = self.core.step(obs, &refs, Instant::now());
        let answer = self.perform(actions, ctx);
        self.arm_tick(ctx);
        answer
    }

    /// Sets the timer of the next tick, if a tick has anything to do.
    ///
    /// Ticks come only while something is due on them (a health check, a
    /// start's timeouts, a wait for references, the failure detector's
    /// stabilization), not every second for every container: at 100,000
    /// containers that was 100,000 timer wakeups a second on the actor
    /// thread for nothing, and a health-checked container ticked every
    /// 25 ms even once running (issue 18). Every change of state goes
    /// through [`observe`](Self::observe), which calls this; a shorter
    /// period than the pending timer's (a running container restarting)
    /// replaces it.
    fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        if self.recheck_at.is_none() && !self.core.wants_ticks() {
            return;
        }
        let at = Instant::now() + self.tick_every();
        match self.next_tick {
            Some((pending, _)) if pending <= at => return,
            Some((_, handle)) => {
                ctx.cancel_future(handle);
            }
            None => {}
        }
        // The tick's observation sets the next one, if any is due.
        let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
            act.next_tick = None;
            act.tick(ctx);
        });
        self.next_tick = Some((at, handle));
    }

    /// How often ticks come: often while a health-checked container
    /// starts (its first passing check makes it running), a quarter of
    /// its check interval (at most a second) once running, else once a
    /// second (a start's timeouts, the failure detector).
    fn tick_every(&self) -> Duration {
        match &self.spec.health {
            Some(h) if self.core.lifecycle() != Lifecycle::Running => {
                h.interval.min(STARTING_PROBE_EVERY)
            }
            Some(h) => (h.interval.min(Duration::from_secs(1)) / 4).max(STARTING_PROBE_EVERY),
            None => Duration::from_secs(1),
        }
    }

    fn perform(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) -> Answer {
        let mut answer = Answer::None;
        for action in actions {
            match action {
                Action::Place => self.place(ctx),
                Action::Create => self.create(ctx),
                Action::Operate(op) => self.run_operation(op, ctx),
                Action::Remove(id) => self.remove(id, ctx),
                Action::RemoveAll(id) => answer = Answer::RemoveAll(id),
                Action::Probe => self.probe(ctx),
                Action::AwaitStart => {
                    let (tx, rx) = oneshot::channel();
                    self.start_waiters.push(tx);
                    answer = Answer::Start(rx);
                }
                Action::AwaitOperation(op) => {
                    let (tx, rx) = oneshot::channel();
                    self.op_reply = Some((op, tx));
                    answer = Answer::Operation(op, rx);
                }
                Action::Refuse(message) => answer = Answer::Refused(message),
                Action::ResolveStarts(r) => self.resolve_waiters(r),
                Action::Lifecycle(state) => self.publish_state(state),
                Action::Announce(state) => self.board.emit(EntityEvent::State {
                    source: self.me.clone(),
                    kind: EntityKind::Container,
                    state,
                }),
                Action::ServiceState(seen) => {
                    self.board.set(&self.me, s::SERVICE_STATE, json!(seen))
                }
                Action::ServiceUp(up) => self.board.set(&self.me, s::SERVICE_UP, json!(up)),
                Action::ClearContainerId => self.board.clear(&self.me, s::CONTAINER_ID),
                Action::ReportError(message) => {
                    tracing::warn!(entity = %self.me, %message, "container failed");
                    self.board.set(&self.me, s::ENTITY_ERROR, json!(message));
                }
                Action::ErrorSensor(Some(message)) => {
                    self.board.set(&self.me, s::ENTITY_ERROR, json!(message))
                }
                Action::ErrorSensor(None) => self.board.clear(&self.me, s::ENTITY_ERROR),
                Action::HealthFailing(Some(why)) => {
                    self.board.set(&self.me, HEALTH_FAILING, json!(why))
                }
                Action::HealthFailing(None) => self.board.clear(&self.me, HEALTH_FAILING),
                Action::WaitingFor { missing, first } => self.waiting_for(missing, first),
                Action::StopWaiting => self.board.clear(&self.me, REFERENCES_WAITING),
                Action::CountReferenceRestart => self.count_reference_restart(),
                Action::BeginMove(id) => self.begin_move(id),
                Action::AbandonMove(why) => self.abandon_move(why),
                Action::RetireOld => self.retire_old(),
                Action::PlaceFailure(kind) => self.place_failure(kind),
                Action::Release => self.release(),
                Action::Gone => {
                    self.board.emit(EntityEvent::Gone {
                        source: self.me.clone(),
                    });
                    ctx.stop();
                }
            }
        }
        answer
    }

    /// Publishes a lifecycle change: sensor, event, failure detector.
    fn publish_state(&mut self, state: Lifecycle) {
        tracing::debug!(entity = %self.me, to = %state, "state");
        self.board
            .publish_state(&self.me, EntityKind::Container, state);
        let verdict = self.detector.observe(state, now_ms());
        self.on_verdict(verdict);
    }

    fn on_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Nothing => {}
            Verdict::Failed => {
                let reason = self
                    .core
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "failed".into());
                tracing::info!(entity = %self.me, %reason, "entity.failed");
                self.board.emit(EntityEvent::Notice {
                    source: self.me.clone(),
                    name: s::ENTITY_FAILED.into(),
                    detail: json!({ "reason": reason, "time_ms": now_ms() }),
                });
            }
            Verdict::Recovered => {
                tracing::info!(entity = %self.me, "entity.recovered");
                self.board.emit(EntityEvent::Notice {
                    source: self.me.clone(),
                    name: s::ENTITY_RECOVERED.into(),
                    detail: json!({ "time_ms": now_ms() }),
                });
            }
            Verdict::CheckAt(at) => self.recheck_at = Some(at),
        }
    }

    fn resolve_waiters(&mut self, r: Result<(), StartError>) {
        let r = r.map_err(|e| match e {
            StartError::Failed(message) => EntityError::StartFailed {
                entity: self.me.to_string(),
                message,
            },
            StartError::Stopping => EntityError::Stopping {
                entity: self.me.to_string(),
            },
        });
        for w in self.start_waiters.drain(..) {
            let _ = w.send(r.clone());
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.recheck_at {
            if now_ms() >= at {
                self.recheck_at = None;
                let v = self.detector.tick(now_ms());
                self.on_verdict(v);
            }
        }
        self.observe(Observation::Tick, ctx);
    }
}

impl Actor for ContainerEntity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A mailbox bound keeps a storm of engine events from growing memory
        // without limit; the periodic resync corrects anything dropped.
        ctx.set_mailbox_capacity(256);
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(self.state().as_str()));
        self.arm_tick(ctx);
    }
}

impl Observable for ContainerEntity {
    fn me(&self) -> &EntityRef {
        &self.me
    }
    fn kind(&self) -> EntityKind {
        EntityKind::Container
    }
    fn state(&self) -> Lifecycle {
        self.core.lifecycle()
    }
    fn board(&mut self) -> &mut SensorBoard {
        &mut self.board
    }
}

entity_handlers!(ContainerEntity);

impl Handler<EmitNotice> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: EmitNotice, _: &mut Context<Self>) {
        self.board.emit(EntityEvent::Notice {
            source: self.me.clone(),
            name: msg.name,
            detail: msg.detail,
        });
    }
}
