//! The container entity: one Docker container, its health and lifecycle.
//!
//! The actor keeps what it wants (`want_running`) apart from what it sees
//! (engine events, resync lists, health probes), and derives its lifecycle
//! state from both. Every engine call is a future spawned on the actor; its
//! result is applied only if the container it was about is still current,
//! so a late answer never overwrites newer knowledge.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;
use tokio::sync::oneshot;

mod pooled;

use super::failure::{FailureDetector, FailureDetectorConfig, Verdict};
use super::references::{ReferenceOptions, Rendered, Wait, WireReferences};
use super::{
    now_ms, sensors as s, ContainerInbox, EmitNotice, EntityError, EntityEvent, EntityHandle,
    EntityKind, EntityRef, Invoke, Lifecycle, Observed, Placement, SensorBoard, Subscribe,
    Teardown,
};
use crate::blueprint::ContainerSpec;
use crate::host::build::{BuildProgress, EnsureImage, ImageReady};
use crate::host::{
    self, health, ContainerEvent, ContainerInfo, ContainerOp, ContainerRequest, CreateAndStart,
    Operate,
};
use crate::metrics;

/// While starting, probe this often: a fast first "up" is most of a fast
/// deploy and a fast recovery.
const STARTING_PROBE_EVERY: Duration = Duration::from_millis(25);

/// A start that has not passed its health check by then has failed.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct ContainerEntity {
    me: EntityRef,
    spec: ContainerSpec,
    at: Placement,
    state: Lifecycle,
    board: SensorBoard,
    container_id: Option<String>,
    ports: BTreeMap<u16, u16>,
    /// What the user asked for: running (start, restart) or not (stop).
    want_running: bool,
    /// Torn down: ignore everything and stop.
    tearing_down: bool,
    /// An engine operation (create, restart) is in flight.
    busy: bool,
    start_waiters: Vec<oneshot::Sender<Result<(), EntityError>>>,
    started_at: Option<Instant>,
    start_timeout: Duration,
    probing: bool,
    last_probe: Option<Instant>,
    up: Option<bool>,
    last_error: Option<String>,
    detector: FailureDetector,
    /// Consecutive failing health probes.
    probe_failures: u32,
    /// The container the stats feed follows.
    stats_for: Option<String>,
    /// A stabilization delay runs out at this time (ms).
    recheck_at: Option<u64>,
    /// Engine events that arrived while an operation was in flight; replayed
    /// (from the last `start` on) once it completes.
    stashed: Vec<ContainerEvent>,
    /// The cluster this container is a member of: also its DNS alias.
    cluster: Option<String>,
    /// Sensor references and dependencies: what the start waits for.
    wait: Wait,
    /// Set once the application gave this container its sources.
    ref_opts: Option<ReferenceOptions>,
    /// Waiting for references since then.
    waiting_since: Option<Instant>,
    /// The env and command the current container was created with.
    applied: Option<Rendered>,
    /// Where image builds are recorded.
    activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// The location's host pool chose `at.host` for this container.
    pool_placed: bool,
    /// A move in progress: the old container (host, name, id) to remove
    /// once the new one runs.
    retiring: Option<pooled::Retiring>,
}

impl ContainerEntity {
    pub fn new(me: EntityRef, spec: ContainerSpec, at: Placement) -> Self {
        let detector = FailureDetector::new(spec.failure_detector.unwrap_or_default());
        ContainerEntity {
            me,
            spec,
            at,
            state: Lifecycle::Created,
            board: SensorBoard::default(),
            container_id: None,
            ports: BTreeMap::new(),
            want_running: false,
            tearing_down: false,
            busy: false,
            start_waiters: Vec::new(),
            started_at: None,
            start_timeout: DEFAULT_START_TIMEOUT,
            probing: false,
            last_probe: None,
            up: None,
            last_error: None,
            detector,
            probe_failures: 0,
            recheck_at: None,
            stats_for: None,
            stashed: Vec::new(),
            cluster: None,
            wait: Wait::default(),
            ref_opts: None,
            waiting_since: None,
            applied: None,
            activities: None,
            pool_placed: false,
            retiring: None,
        }
    }

    /// Records image builds (and reuses) as activities there.
    pub fn with_activities(mut self, to: Recipient<crate::activity::RecordActivity>) -> Self {
        self.activities = Some(to);
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

    fn set_state(&mut self, state: Lifecycle) {
        if self.state == state {
            return;
        }
        tracing::debug!(entity = %self.me, from = %self.state, to = %state, "state");
        self.state = state;
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(state.as_str()));
        self.board.emit(EntityEvent::State {
            source: self.me.clone(),
            kind: EntityKind::Container,
            state,
        });
        let verdict = self.detector.observe(state, now_ms());
        self.on_verdict(verdict);
        match state {
            Lifecycle::Running => {
                self.resolve_waiters(Ok(()));
                // A move's old container goes once the new one runs.
                self.retire_old();
            }
            Lifecycle::OnFire if self.started_at.is_some() && !self.busy => {
                let message = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "container is not up".into());
                self.resolve_waiters(Err(EntityError::StartFailed {
                    entity: self.me.to_string(),
                    message,
                }));
            }
            _ => {}
        }
    }

    fn on_verdict(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Nothing => {}
            Verdict::Failed => {
                let reason = self.last_error.clone().unwrap_or_else(|| "failed".into());
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

    fn resolve_waiters(&mut self, r: Result<(), EntityError>) {
        for w in self.start_waiters.drain(..) {
            let _ = w.send(r.clone());
        }
        if r.is_ok() {
            self.started_at = None;
        }
    }

    fn fail(&mut self, message: String) {
        if self.state == Lifecycle::OnFire && self.last_error.as_ref() == Some(&message) {
            return;
        }
        tracing::warn!(entity = %self.me, %message, "container failed");
        self.board.set(&self.me, s::ENTITY_ERROR, json!(message));
        self.last_error = Some(message);
        self.set_state(Lifecycle::OnFire);
    }

    fn set_up(&mut self, up: bool) {
        self.up = Some(up);
        self.board.set(&self.me, s::SERVICE_UP, json!(up));
        self.derive_state();
    }

    /// The lifecycle from wants and observations.
    fn derive_state(&mut self) {
        if self.tearing_down || !self.want_running || self.busy {
            return;
        }
        let engine_running = self.board.get(s::SERVICE_STATE) == Some(&json!("running"));
        match (engine_running, self.up) {
            (true, Some(true)) => {
                self.board.clear(&self.me, s::ENTITY_ERROR);
                self.last_error = None;
                self.set_state(Lifecycle::Running)
            }
            // Not up yet while starting is expected; after that it is a failure.
            (true, _) if self.state == Lifecycle::Starting => {}
            (true, _) => self.fail(
                self.last_error
                    .clone()
                    .unwrap_or_else(|| "health check failing".into()),
            ),
            (false, _) => {
                let seen = self
                    .board
                    .get(s::SERVICE_STATE)
                    .and_then(|v| v.as_str())
                    .unwrap_or("unknown")
                    .to_string();
                self.fail(format!("container is {seen}"))
            }
        }
    }

    fn apply_info(&mut self, info: ContainerInfo, ctx: &mut Context<Self>) {
        if self.container_id.as_ref() != Some(&info.id) || self.stats_for.as_ref() != Some(&info.id)
        {
            // A new container: a new stats feed (the old one ended with it).
            self.stats_for = Some(info.id.clone());
            self.at.host.do_send(crate::host::FollowStats {
                container: info.id.clone(),
                to: ctx.address().recipient(),
            });
        }
        self.container_id = Some(info.id.clone());
        self.board.set(&self.me, s::CONTAINER_ID, json!(info.id));
        self.board
            .set(&self.me, s::CONTAINER_NAME, json!(info.name));
        self.board
            .set(&self.me, s::HOST_NAME, json!(self.at.host_name));
        self.board
            .set(&self.me, s::HOST_ADDRESS, json!(self.at.host_address));
        for (c, h) in &info.ports {
            self.board
                .set(&self.me, &format!("{}{c}", s::HOST_PORT_PREFIX), json!(h));
        }
        self.ports = info.ports;
        self.board
            .set(&self.me, s::SERVICE_STATE, json!(info.state));
    }

    /// Begins (or joins) a start. Idempotent: a running entity stays as is.
    fn start(&mut self, ctx: &mut Context<Self>) {
        self.want_running = true;
        if self.state == Lifecycle::Running || self.busy {
            return;
        }
        if !self.references_ready() {
            return;
        }
        if self.needs_place() {
            self.place_first(ctx);
            return;
        }
        self.busy = true;
        self.started_at = Some(Instant::now());
        self.up = None;
        self.last_error = None;
        self.set_state(Lifecycle::Starting);
        let mut spec = self.spec.clone();
        if self.ref_opts.is_some() {
            if let Some(r) = self.wait.render(&self.spec) {
                spec.env = r.env.clone();
                spec.command = r.command.clone();
                self.applied = Some(r);
            }
        }
        let req = ContainerRequest {
            app: self.me.app.clone(),
            entity: self.me.entity.clone(),
            spec,
            network: self.at.network.clone(),
            extra_networks: self
                .spec
                .networks
                .iter()
                .map(|n| host::network::docker_network_name(&self.me.app, Some(n)))
                .collect(),
            aliases: self.cluster.iter().cloned().collect(),
        };
        let host = self.at.host.clone();
        let t0 = Instant::now();
        // A built image first: found by its context's hash, or built now.
        let ensure = self.spec.build.is_some().then(|| EnsureImage {
            app: self.me.app.clone(),
            service: self
                .cluster
                .clone()
                .unwrap_or_else(|| self.me.entity.clone()),
            spec: self.spec.clone(),
            progress: Some(ctx.address().recipient()),
        });
        if ensure.is_some() {
            self.board
                .set(&self.me, IMAGE_BUILD, json!("checking the build context"));
        }
        let fut = async move {
            let mut req = req;
            let mut image = None;
            if let Some(e) = ensure {
                match host.send(e).await {
                    Ok(Ok(ready)) => {
                        req.spec.image = Some(ready.image.clone());
                        req.spec.build = None;
                        image = Some(Ok(ready));
                    }
                    Ok(Err(e)) => return (Ok(Err(e.clone())), Some(Err(e))),
                    Err(e) => return (Err(e), None),
                }
            }
            (host.send(CreateAndStart(req)).await, image)
        };
        ctx.spawn(fut.into_actor(self).map(move |(res, image), act, ctx| {
            act.busy = false;
            if let Some(outcome) = image {
                act.on_image(outcome);
            }
            if act.tearing_down {
                return;
            }
            match res {
                Ok(Ok(info)) => {
                    metrics::CONTAINERS_STARTED.inc();
                    metrics::CONTAINER_START_SECONDS.observe(t0.elapsed().as_secs_f64());
                    let engine_running = info.state == "running";
                    act.apply_info(info, ctx);
                    if act.spec.health.is_none() {
                        act.up = Some(engine_running);
                        act.board.set(&act.me, s::SERVICE_UP, json!(engine_running));
                    } else {
                        act.probe_now(ctx);
                    }
                    act.derive_state();
                    act.replay_stash();
                }
                Ok(Err(e)) => {
                    metrics::CONTAINERS_FAILED.inc();
                    act.stashed.clear();
                    act.fail(e.to_string());
                }
                Err(e) => act.fail(format!("host actor unreachable: {e}")),
            }
        }));
    }

    fn operate(
        &mut self,
        ctx: &mut Context<Self>,
        op: ContainerOp,
        then_running: bool,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        let Some(id) = self.container_id.clone() else {
            return Box::pin(fut::ready(Err(EntityError::Failed {
                entity: self.me.to_string(),
                message: format!("has no container to {op:?}; call `start` first").to_lowercase(),
            })));
        };
        let _ = ctx;
        self.want_running = then_running;
        self.busy = true;
        self.set_state(if then_running {
            Lifecycle::Starting
        } else {
            Lifecycle::Stopping
        });
        if then_running {
            self.started_at = Some(Instant::now());
            self.up = None;
        }
        let host = self.at.host.clone();
        let fut = async move {
            host.send(Operate {
                container: id.clone(),
                op,
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if then_running {
                // Published ports can change across a restart.
                host.send(crate::host::Inspect(id))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            } else {
                Ok(None)
            }
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            if act.tearing_down {
                return Ok(json!({}));
            }
            match res {
                Ok(info) => {
                    if let Some(info) = info {
                        let engine_running = info.state == "running";
                        act.apply_info(info, ctx);
                        if act.spec.health.is_none() {
                            act.set_up(engine_running);
                        } else {
                            act.probe_now(ctx);
                        }
                        act.replay_stash();
                    } else {
                        act.up = Some(false);
                        act.board.set(&act.me, s::SERVICE_UP, json!(false));
                        act.set_state(Lifecycle::Stopped);
                    }
                    act.derive_state();
                    Ok(json!({ "state": act.state.as_str() }))
                }
                Err(message) => {
                    act.fail(message.clone());
                    Err(EntityError::Engine {
                        entity: act.me.to_string(),
                        operation: format!("{op:?}").to_lowercase(),
                        message,
                    })
                }
            }
        }))
    }

    fn fault(
        &mut self,
        op: ContainerOp,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        let me = self.me.to_string();
        let Some(id) = self.container_id.clone() else {
            return Box::pin(fut::ready(Err(EntityError::Failed {
                entity: me,
                message: "has no container".into(),
            })));
        };
        let host = self.at.host.clone();
        Box::pin(
            async move {
                match host.send(Operate { container: id, op }).await {
                    Ok(Ok(())) => Ok(json!({ "done": format!("{op:?}").to_lowercase() })),
                    Ok(Err(e)) => Err(EntityError::Engine {
                        entity: me,
                        operation: format!("{op:?}").to_lowercase(),
                        message: e.to_string(),
                    }),
                    Err(e) => Err(EntityError::Unreachable {
                        entity: me,
                        message: e.to_string(),
                    }),
                }
            }
            .into_actor(self),
        )
    }

    fn probe_now(&mut self, ctx: &mut Context<Self>) {
        let Some(check) = self.spec.health.clone() else {
            return;
        };
        if self.probing || self.tearing_down {
            return;
        }
        let Some(port) = health::check_port(&check).and_then(|p| self.ports.get(&p).copied())
        else {
            return;
        };
        self.probing = true;
        self.last_probe = Some(Instant::now());
        let address = self.at.host_address.clone();
        let id = self.container_id.clone();
        ctx.spawn(
            async move { health::probe(&check, &address, port).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.probing = false;
                    if act.tearing_down || act.container_id != id || act.busy {
                        return;
                    }
                    match res {
                        Ok(()) => {
                            act.probe_failures = 0;
                            act.set_up(true)
                        }
                        Err(message) => {
                            // While starting, failing probes are expected: keep the
                            // reason for the timeout message but do not flap `service.up`.
                            act.last_error = Some(format!("health check: {message}"));
                            act.probe_failures += 1;
                            let threshold = act
                                .spec
                                .health
                                .as_ref()
                                .map(|h| h.unhealthy_threshold.max(1))
                                .unwrap_or(1);
                            if (act.state != Lifecycle::Starting || act.up == Some(true))
                                && act.probe_failures >= threshold
                            {
                                act.set_up(false);
                            }
                        }
                    }
                }),
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(at) = self.recheck_at {
            if now_ms() >= at {
                self.recheck_at = None;
                let v = self.detector.tick(now_ms());
                self.on_verdict(v);
            }
        }
        if self.tearing_down || !self.want_running || self.busy {
            return;
        }
        if let (Some(t), Some(o)) = (self.waiting_since, &self.ref_opts) {
            if t.elapsed() > o.timeout {
                let missing: Vec<String> =
                    self.wait.missing().iter().map(|m| m.to_string()).collect();
                let message = format!(
                    "waited {} (reference_timeout) for {}",
                    humantime::format_duration(o.timeout),
                    missing.join(", ")
                );
                self.abort_wait(message);
                return;
            }
        }
        if let (Some(t), Lifecycle::Starting) = (self.started_at, self.state) {
            if t.elapsed() > self.start_timeout {
                let why = self
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no health check passed".into());
                self.fail(format!(
                    "not up after {}: {why}",
                    humantime::format_duration(self.start_timeout)
                ));
                return;
            }
        }
        let Some(check) = &self.spec.health else {
            return;
        };
        // Probing a container the engine says is not running tells nothing new.
        if self.board.get(s::SERVICE_STATE) != Some(&json!("running")) {
            return;
        }
        let every = if self.state == Lifecycle::Running {
            check.interval
        } else {
            STARTING_PROBE_EVERY
        };
        if self.last_probe.is_none_or(|t| t.elapsed() >= every) {
            self.probe_now(ctx);
        }
    }

    fn on_engine_state(&mut self, seen: &str) {
        self.board.set(&self.me, s::SERVICE_STATE, json!(seen));
        if seen != "running" {
            self.up = Some(false);
            self.board.set(&self.me, s::SERVICE_UP, json!(false));
        } else if self.spec.health.is_none() {
            self.up = Some(true);
            self.board.set(&self.me, s::SERVICE_UP, json!(true));
        }
        self.derive_state();
    }
}

impl Actor for ContainerEntity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A mailbox bound keeps a storm of engine events from growing memory
        // without limit; the periodic resync corrects anything dropped.
        ctx.set_mailbox_capacity(256);
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(self.state.as_str()));
        let tick = self
            .spec
            .health
            .as_ref()
            .map(|h| h.interval.min(STARTING_PROBE_EVERY))
            .unwrap_or(Duration::from_secs(1));
        ctx.run_interval(tick, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Subscribe> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.board
            .subscribe(msg.0, &self.me, EntityKind::Container, self.state);
    }
}

impl Handler<Invoke> for ContainerEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        if self.tearing_down {
            return Box::pin(fut::ready(Err(EntityError::Stopping {
                entity: self.me.to_string(),
            })));
        }
        match msg.effector.as_str() {
            "start" => {
                let (tx, rx) = oneshot::channel();
                if self.state == Lifecycle::Running {
                    let _ = tx.send(Ok(()));
                } else {
                    self.start_waiters.push(tx);
                }
                // A failed container is started afresh: remove what is left
                // of it first so its deterministic name is free.
                if self.state == Lifecycle::OnFire && !self.busy {
                    if let Some(id) = self.container_id.take() {
                        let host = self.at.host.clone();
                        self.busy = true;
                        ctx.spawn(
                            async move {
                                host.send(Operate {
                                    container: id,
                                    op: ContainerOp::Remove,
                                })
                                .await
                            }
                            .into_actor(self)
                            .map(|_, act, ctx| {
                                act.busy = false;
                                act.state = Lifecycle::Created;
                                act.start(ctx);
                            }),
                        );
                    } else {
                        self.start(ctx);
                    }
                } else {
                    self.start(ctx);
                }
                let me = self.me.to_string();
                Box::pin(
                    async move {
                        match rx.await {
                            Ok(Ok(())) => Ok(json!({ "state": "running" })),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(EntityError::Unreachable {
                                entity: me,
                                message: "start was abandoned".into(),
                            }),
                        }
                    }
                    .into_actor(self),
                )
            }
            "stop" => self.operate(ctx, ContainerOp::Stop, false),
            // A container that is gone is made again; one that exists is
            // restarted in place (faster: no create, same name and ports' rules).
            "restart" if self.container_id.is_none() && !self.busy => {
                self.state = Lifecycle::Created;
                self.handle(Invoke::new("start"), ctx)
            }
            // An exited container only needs a start (no stop, no unpause):
            // the fast path of every restart after a crash.
            "restart"
                if matches!(
                    self.board.get(s::SERVICE_STATE).and_then(|v| v.as_str()),
                    Some("exited" | "created" | "dead")
                ) =>
            {
                self.operate(ctx, ContainerOp::Start, true)
            }
            "restart" => self.operate(ctx, ContainerOp::Restart, true),
            // Faults, for `drover chaos` and operators: drover does not change
            // what it wants, so the failure detector and policies react as
            // they would to a real fault.
            "kill" => self.fault(ContainerOp::Kill),
            "pause" => self.fault(ContainerOp::Pause),
            "unpause" => self.fault(ContainerOp::Unpause),
            other => Box::pin(fut::ready(Err(EntityError::UnknownEffector {
                entity: self.me.to_string(),
                effector: other.to_string(),
                known: "start, stop, restart, kill, pause, unpause".into(),
            }))),
        }
    }
}

impl Handler<Teardown> for ContainerEntity {
    type Result = ResponseActFuture<Self, Result<(), EntityError>>;

    fn handle(&mut self, _: Teardown, _: &mut Context<Self>) -> Self::Result {
        self.tearing_down = true;
        self.want_running = false;
        self.state = Lifecycle::Stopping;
        self.board.emit(EntityEvent::State {
            source: self.me.clone(),
            kind: EntityKind::Container,
            state: Lifecycle::Stopping,
        });
        self.resolve_waiters(Err(EntityError::Stopping {
            entity: self.me.to_string(),
        }));
        let host = self.at.host.clone();
        // Remove by name as well as by id: a create may be in flight, and its
        // container carries the deterministic name.
        let targets: Vec<String> = self
            .container_id
            .iter()
            .cloned()
            .chain(std::iter::once(host::container_name(
                &self.me.app,
                &self.me.entity,
            )))
            .collect();
        let me = self.me.clone();
        let fut = async move {
            for t in targets {
                match host
                    .send(Operate {
                        container: t,
                        op: ContainerOp::Remove,
                    })
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        return Err(EntityError::Engine {
                            entity: me.to_string(),
                            operation: "remove".into(),
                            message: e.to_string(),
                        })
                    }
                    Err(e) => {
                        return Err(EntityError::Unreachable {
                            entity: me.to_string(),
                            message: e.to_string(),
                        })
                    }
                }
            }
            Ok(())
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            if res.is_ok() {
                act.release();
                act.state = Lifecycle::Stopped;
                act.board.emit(EntityEvent::State {
                    source: act.me.clone(),
                    kind: EntityKind::Container,
                    state: Lifecycle::Stopped,
                });
                act.board.emit(EntityEvent::Gone {
                    source: act.me.clone(),
                });
                ctx.stop();
            }
            res
        }))
    }
}

impl Handler<ContainerEvent> for ContainerEntity {
    type Result = ();

    fn handle(&mut self, ev: ContainerEvent, _: &mut Context<Self>) {
        if self.tearing_down {
            return;
        }
        if self.busy {
            // The operation in flight reports its own outcome; what happens
            // after it (a crash right after start) is replayed when it ends.
            self.stashed.push(ev);
            return;
        }
        self.on_event(ev);
    }
}

impl ContainerEntity {
    fn on_event(&mut self, ev: ContainerEvent) {
        // Events of an earlier container of this entity are history.
        if self
            .container_id
            .as_deref()
            .is_some_and(|id| id != ev.container_id)
        {
            return;
        }
        match ev.action.as_str() {
            "start" | "unpause" => self.on_engine_state("running"),
            "die" => self.on_engine_state("exited"),
            "oom" => {
                self.last_error = Some("killed for lack of memory (OOM)".into());
                self.board.set(
                    &self.me,
                    s::ENTITY_ERROR,
                    json!("killed for lack of memory (OOM)"),
                );
            }
            "pause" => self.on_engine_state("paused"),
            "destroy" => {
                self.container_id = None;
                self.board.clear(&self.me, s::CONTAINER_ID);
                self.on_engine_state("removed");
            }
            _ => {}
        }
    }

    /// Replays what happened after the last `start` seen during an operation.
    fn replay_stash(&mut self) {
        let stash = std::mem::take(&mut self.stashed);
        let Some(id) = self.container_id.clone() else {
            return;
        };
        let ours: Vec<ContainerEvent> =
            stash.into_iter().filter(|e| e.container_id == id).collect();
        let from = ours
            .iter()
            .rposition(|e| e.action == "start")
            .map(|i| i + 1)
            .unwrap_or(0);
        for ev in ours.into_iter().skip(from) {
            self.on_event(ev);
        }
    }
}

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

impl Handler<Observed> for ContainerEntity {
    type Result = ();

    fn handle(&mut self, Observed(seen): Observed, _: &mut Context<Self>) {
        if self.tearing_down || self.busy || self.container_id.is_none() {
            return;
        }
        match seen {
            Some(c) if Some(&c.id) == self.container_id.as_ref() => {
                if self.board.get(s::SERVICE_STATE) != Some(&json!(c.state)) {
                    self.on_engine_state(&c.state.clone());
                }
            }
            // The engine holds no container for us (or another one): ours is gone.
            _ => {
                self.container_id = None;
                self.board.clear(&self.me, s::CONTAINER_ID);
                self.on_engine_state("removed");
            }
        }
    }
}

impl Handler<crate::host::stats::StatsSample> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, sample: crate::host::stats::StatsSample, _: &mut Context<Self>) {
        if self.tearing_down || self.container_id.as_ref() != Some(&sample.container_id) {
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

impl Handler<crate::entity::PublishSensor> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: crate::entity::PublishSensor, _: &mut Context<Self>) {
        if msg.value.is_null() {
            self.board.clear(&self.me, &msg.name);
        } else {
            self.board.set(&self.me, &msg.name, msg.value);
        }
    }
}

/// Sensor names a dependant publishes about its references.
pub const REFERENCES_WAITING: &str = "references.waiting";
pub const REFERENCES_RESOLVED: &str = "references.resolved";

impl ContainerEntity {
    /// Whether the start may go on: every reference resolves and every
    /// dependency runs. If not, the entity is `starting` and waits (the
    /// events of its sources call `start` again).
    fn references_ready(&mut self) -> bool {
        if self.ref_opts.is_none() || self.wait.is_empty() {
            return true;
        }
        let missing = self.wait.missing();
        if missing.is_empty() {
            self.waiting_since = None;
            self.board.clear(&self.me, REFERENCES_WAITING);
            return true;
        }
        if self.waiting_since.is_none() {
            self.waiting_since = Some(Instant::now());
            tracing::info!(entity = %self.me, missing = ?missing.iter().map(|m| m.to_string()).collect::<Vec<_>>(), "waiting for references");
        }
        self.board.set(
            &self.me,
            REFERENCES_WAITING,
            json!(missing.iter().map(|m| m.to_string()).collect::<Vec<_>>()),
        );
        self.set_state(Lifecycle::Starting);
        // A source already on fire fails the wait at once.
        if let Some(src) = self.wait.source_on_fire().filter(|_| {
            self.ref_opts
                .as_ref()
                .is_some_and(|o| o.abort_if_source_on_fire)
        }) {
            self.abort_wait(format!(
                "source `{src}` is on-fire (abort_if_source_on_fire); it was waited for: {}",
                missing
                    .iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        false
    }

    fn abort_wait(&mut self, message: String) {
        self.waiting_since = None;
        self.board.clear(&self.me, REFERENCES_WAITING);
        self.fail(message.clone());
        self.resolve_waiters(Err(EntityError::StartFailed {
            entity: self.me.to_string(),
            message,
        }));
    }

    /// A source changed: go on with a waiting start, or recreate the
    /// container if the values it was made with are out of date.
    fn on_references_changed(&mut self, ctx: &mut Context<Self>) {
        if self.tearing_down || self.ref_opts.is_none() {
            return;
        }
        if self.waiting_since.is_some() {
            if self.want_running && !self.busy {
                self.start(ctx);
            }
            return;
        }
        let restart = self
            .ref_opts
            .as_ref()
            .is_some_and(|o| o.on_change == crate::blueprint::OnReferenceChange::Restart);
        if !restart || self.busy || !self.want_running || self.container_id.is_none() {
            return;
        }
        // Unresolved now (a source's container is gone): keep running with
        // the old values until the new ones are published.
        let Some(now) = self.wait.render(&self.spec) else {
            return;
        };
        if self.applied.as_ref() == Some(&now) {
            return;
        }
        self.recreate(ctx);
    }

    /// Removes the container and creates it again with the current values.
    fn recreate(&mut self, ctx: &mut Context<Self>) {
        let Some(id) = self.container_id.take() else {
            return;
        };
        tracing::info!(entity = %self.me, "a referenced sensor changed: recreating the container with the new values");
        self.board.set(
            &self.me,
            "references.restarts",
            json!(
                self.board
                    .get("references.restarts")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
                    + 1
            ),
        );
        self.set_state(Lifecycle::Starting);
        self.busy = true;
        let host = self.at.host.clone();
        ctx.spawn(
            async move {
                host.send(Operate {
                    container: id,
                    op: ContainerOp::Remove,
                })
                .await
            }
            .into_actor(self)
            .map(|_, act, ctx| {
                act.busy = false;
                act.stashed.clear();
                if act.tearing_down {
                    return;
                }
                act.state = Lifecycle::Created;
                act.start(ctx);
            }),
        );
    }
}

impl Handler<WireReferences> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: WireReferences, ctx: &mut Context<Self>) {
        self.wait = Wait::new(&self.spec, &msg.options.depends_on);
        for source in self.wait.sources() {
            if let Some(to) = msg.sources.get(&source) {
                to.do_send(Subscribe(ctx.address().recipient()));
            }
        }
        self.ref_opts = Some(msg.options);
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

/// The image build of a container with `build`: `building`, the current
/// build step, then `built <tag>`, `reused <tag>` or `failed: ...`.
pub const IMAGE_BUILD: &str = "image.build";

impl ContainerEntity {
    fn on_image(&mut self, outcome: Result<ImageReady, crate::host::HostError>) {
        let (text, name, result, message, seconds) = match &outcome {
            Ok(r) if r.built => (
                format!("built {} in {:.1}s", r.image, r.seconds),
                "image.build",
                "ok",
                format!("built {} ({})", r.image, r.id),
                r.seconds,
            ),
            Ok(r) => (
                format!("reused {}", r.image),
                "image.reused",
                "ok",
                format!(
                    "reused {} ({}): the build context is unchanged",
                    r.image, r.id
                ),
                r.seconds,
            ),
            Err(e) => (
                format!("failed: {e}"),
                "image.build",
                "error",
                e.to_string(),
                0.0,
            ),
        };
        self.board.set(&self.me, IMAGE_BUILD, json!(text));
        if let Ok(r) = &outcome {
            self.board.set(&self.me, "image.id", json!(r.id));
        }
        if let Some(to) = &self.activities {
            to.do_send(crate::activity::RecordActivity(crate::activity::Activity {
                id: 0,
                time_ms: now_ms(),
                application: self.me.app.clone(),
                entity: self.me.entity.clone(),
                kind: "event".into(),
                name: name.into(),
                args: json!({ "context": self.spec.build.as_ref().map(|b| b.context.clone()) }),
                outcome: result.into(),
                message: Some(message),
                duration_seconds: seconds,
            }));
        }
    }
}

impl Handler<BuildProgress> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, BuildProgress(line): BuildProgress, _: &mut Context<Self>) {
        if line.starts_with("Step ") {
            self.board
                .set(&self.me, IMAGE_BUILD, json!(format!("building: {line}")));
        }
    }
}
