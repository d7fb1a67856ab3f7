//! The built-in load balancer entity: a proxy in an agent container on its
//! location's engine ([`agent`], [`plane`]), in `tcp` mode (a client
//! connection bound to a member) or `http` mode (each request of a
//! keep-alive connection balanced, counted and timed on its own). Its
//! `mode` and `limits` change in place (effector `configure`).
//!
//! The entity follows its target cluster's `group.endpoints` sensor, which
//! lists only members that are `running`, so a member leaves the pool the
//! moment it leaves `running` (a kill is seen from the engine's event stream
//! within milliseconds). The data plane ([`proxy`]) ejects a member on a
//! connection failure and retries the connection on another member, so
//! clients see as few errors as possible.

pub mod agent;
pub mod control_tls;
pub mod plane;
pub mod proxy;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use crate::blueprint::{LbLimits, LbMode};
use crate::protocol::{
    entity_handlers, sensors as s, EntityError, EntityEvent, EntityKind, EntityRef, Interest,
    Invoke, Lifecycle, Observable, SensorBoard, Subscribe, Teardown,
};
use agent::AgentSettings;
use plane::{AgentHosts, Plane, RunningAgent};
use proxy::{Backend, Proxy};

/// Sensors of a load balancer.
pub mod sensors {
    pub const ADDRESS: &str = "lb.address";
    pub const PORT: &str = "lb.port";
    pub const TARGET: &str = "lb.target";
    pub const BACKENDS: &str = "lb.backends";
    pub const CONNECTIONS_TOTAL: &str = "lb.connections_total";
    pub const ACTIVE: &str = "lb.active_connections";
    pub const ERRORS_TOTAL: &str = "lb.errors_total";
    pub const RETRIES_TOTAL: &str = "lb.retries_total";
    /// Requests per second over the last second in `http` mode; connections
    /// per second in `tcp` mode (a connection is a request for short-lived clients).
    pub const REQS_PER_SEC: &str = "lb.reqs_per_sec";
    /// `lb.reqs_per_sec` divided by the members in the pool: what the
    /// `web-autoscaler` preset targets.
    pub const REQS_PER_SEC_PER_MEMBER: &str = "lb.reqs_per_sec.per_member";
    /// Requests (http) or connections (tcp) per second of each member, by member name.
    pub const REQS_PER_SEC_BY_MEMBER: &str = "lb.reqs_per_sec.by_member";
    /// Requests (http) or connections (tcp) served, by member name.
    pub const PER_MEMBER: &str = "lb.connections.per_member";
    /// `http` or `tcp`.
    pub const MODE: &str = "lb.mode";
    /// HTTP mode: responses sent to clients.
    pub const REQUESTS_TOTAL: &str = "lb.requests_total";
    /// HTTP mode: responses by status class (`{"2xx": n, ...}`).
    pub const RESPONSES: &str = "lb.responses";
    /// HTTP mode: median request latency over the last 10 s, in seconds.
    pub const LATENCY_P50: &str = "lb.latency_p50";
    /// HTTP mode: 99th percentile request latency over the last 10 s, in seconds.
    pub const LATENCY_P99: &str = "lb.latency_p99";
    /// The id of the agent container serving (the same after a drover
    /// restart: it was adopted, not restarted).
    pub const CONTAINER_ID: &str = "lb.container_id";
    /// The host (engine name) it runs on.
    pub const HOST: &str = "lb.host";
    /// When that container started (`State.StartedAt`).
    pub const STARTED_AT: &str = "lb.started_at";
    /// The limits in force (connection cap, timeouts, buffered bytes),
    /// as the blueprint's `limits:` reads.
    pub const LIMITS: &str = "lb.limits";
    /// Times drover made its agent again because it was gone.
    pub const REPLACED_TOTAL: &str = "lb.replaced_total";
    pub const CONNECT_LATENCY: &str = "lb.connect_latency_seconds";
}

/// How often traffic sensors are published.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// The latency quantiles cover this much history: one second holds too few
/// slow requests for a p99 to mean anything at low rates.
const LATENCY_WINDOW: Duration = Duration::from_secs(10);
/// The agent's pool is set again every this many ticks.
const RESYNC_TICKS: u64 = 5;
/// A load balancer whose agent could not be made tries again every this many ticks.
const RETRY_TICKS: u64 = 2;
/// Failed control calls in a row after which the agent is presumed gone.
const AGENT_FAILURES: u32 = 3;

/// One endpoint a cluster publishes in `group.endpoints`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub member: String,
    pub address: String,
    /// Container port → published host port.
    pub ports: std::collections::BTreeMap<u16, u16>,
}

/// Backends for a container port from a cluster's endpoints (pure).
pub fn backends_for(endpoints: &[Endpoint], target_port: u16) -> Vec<Backend> {
    endpoints
        .iter()
        .filter_map(|e| {
            let port = *e.ports.get(&target_port)?;
            let addr = (e.address.as_str(), port).to_socket_addrs().ok()?.next()?;
            Some(Backend {
                member: e.member.clone(),
                addr,
            })
        })
        .collect()
}

/// A load balancer's mode: as written, else `http` when its target's
/// members have an `http` health check (they speak HTTP), else `tcp` (pure).
pub fn mode_of(bp: &crate::blueprint::Blueprint, lb: &crate::blueprint::ServiceSpec) -> LbMode {
    if let Some(m) = lb.mode {
        return m;
    }
    let http_checked = bp
        .services
        .iter()
        .find(|s| Some(&s.id) == lb.target.as_ref())
        .and_then(|t| t.member.as_ref())
        .and_then(|m| m.health.as_ref())
        .is_some_and(|h| h.http.is_some());
    if http_checked {
        LbMode::Http
    } else {
        LbMode::Tcp
    }
}

pub struct LoadBalancerEntity {
    me: EntityRef,
    target: EntityRef,
    target_subscribe: Recipient<Subscribe>,
    /// What the agent binds; a port 0 becomes the port it got, so that a
    /// replacement serves the same port.
    listen: SocketAddr,
    target_port: u16,
    settings: AgentSettings,
    proxy: Option<Proxy>,
    /// Where the agent container may run; `None` runs the proxy in
    /// drover's process (unit tests).
    at: Option<AgentHosts>,
    agent: Option<RunningAgent>,
    /// A plane is being opened: ticks do not start another.
    opening: bool,
    /// A backends push to the agent is in flight. Pushes go one at a time:
    /// each control call is a connection of its own, and two in flight
    /// could land in the wrong order, leaving the agent an older pool
    /// (members already drained and stopped) until the next resync.
    pushing: bool,
    /// The endpoints changed while a push was in flight: the latest set is
    /// pushed once it is done.
    push_again: bool,
    /// Control calls failed in a row; at [`AGENT_FAILURES`] the agent is made again.
    agent_failures: u32,
    replaced_total: u64,
    ticks: u64,
    board: SensorBoard,
    state: Lifecycle,
    endpoints: Vec<Endpoint>,
    last_stats: Option<(Instant, u64, std::collections::BTreeMap<String, u64>)>,
    /// Latency histogram snapshots of the last [`LATENCY_WINDOW`], oldest first.
    latency_history: std::collections::VecDeque<(Instant, Vec<u64>)>,
    start_error: Option<String>,
}

impl LoadBalancerEntity {
    pub fn new(
        me: EntityRef,
        target: EntityRef,
        target_subscribe: Recipient<Subscribe>,
        listen: SocketAddr,
        target_port: u16,
        mode: LbMode,
        limits: LbLimits,
    ) -> Self {
        LoadBalancerEntity {
            me,
            target,
            target_subscribe,
            listen,
            target_port,
            settings: AgentSettings { mode, limits },
            proxy: None,
            at: None,
            agent: None,
            opening: false,
            pushing: false,
            push_again: false,
            agent_failures: 0,
            replaced_total: 0,
            ticks: 0,
            board: SensorBoard::default(),
            state: Lifecycle::Created,
            endpoints: Vec::new(),
            last_stats: None,
            latency_history: std::collections::VecDeque::new(),
            start_error: None,
        }
    }

    /// Runs the data plane as an agent container on this host.
    pub fn on_host(mut self, at: Option<AgentHosts>) -> Self {
        self.at = at;
        self
    }

    fn set_state(&mut self, state: Lifecycle) {
        if state != self.state {
            self.state = state;
            self.board
                .publish_state(&self.me, EntityKind::LoadBalancer, state);
        }
    }

    fn publish_settings(&mut self) {
        self.board
            .set(&self.me, sensors::MODE, json!(self.settings.mode.as_str()));
        self.board.set(
            &self.me,
            sensors::LIMITS,
            serde_json::to_value(&self.settings.limits).unwrap_or_default(),
        );
    }

    /// Sends the members to the data plane. `lb.backends` says what the
    /// data plane routes to: for an agent it is set once the agent took the
    /// set, so a client that waits for it is not answered 503 by an agent
    /// that has not heard of the members yet.
    fn apply_endpoints(&mut self, ctx: &mut Context<Self>) {
        let backends = backends_for(&self.endpoints, self.target_port);
        let names: Vec<String> = backends.iter().map(|b| b.member.clone()).collect();
        if let Some(p) = &self.proxy {
            p.set_backends(backends);
            self.board.set(&self.me, sensors::BACKENDS, json!(names));
            return;
        }
        let Some(a) = self.agent.as_ref().map(|a| a.client.clone()) else {
            return;
        };
        // An empty pool is never pushed to an agent: a drover that has just
        // restarted sees no running member until its rebind has checked
        // them, and the agent's last members serve meanwhile (the dead ones
        // it ejects itself), so `lb.backends` keeps naming them.
        if backends.is_empty() {
            return;
        }
        if self.pushing {
            self.push_again = true;
            return;
        }
        self.pushing = true;
        ctx.spawn(
            async move { a.set_backends(&backends).await }
                .into_actor(self)
                .map(move |r, act, ctx| {
                    act.pushing = false;
                    match r {
                        Ok(()) => act.board.set(&act.me, sensors::BACKENDS, json!(names)),
                        Err(e) => {
                            tracing::warn!(lb = %act.me, error = %e, "could not set the load balancer's backends; retried within seconds");
                        }
                    }
                    if std::mem::take(&mut act.push_again) {
                        act.apply_endpoints(ctx);
                    }
                }),
        );
    }

    /// Every [`STATS_EVERY`]: the counters, from the in-process proxy or
    /// from the agent; the agent's pool is also set again every few ticks
    /// (level-triggered: an agent that lost its pool gets it back).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if let Some(p) = &self.proxy {
            let st = p.stats();
            self.publish_stats(st);
            return;
        }
        self.ticks += 1;
        let Some(a) = self.agent.as_ref().map(|a| a.client.clone()) else {
            // A replacement that found no host that would take it (its
            // home engine down, the pool's next host not up yet) is tried
            // again every few seconds, level-triggered.
            let failed = self.state == Lifecycle::OnFire && self.at.is_some();
            if failed && !self.opening && self.ticks % RETRY_TICKS == 0 {
                self.opening = true;
                ctx.spawn(self.open_plane().into_actor(self).map(|res, act, ctx| {
                    let _ = act.on_up(res, ctx);
                }));
            }
            return;
        };
        if self.ticks % RESYNC_TICKS == 0 {
            self.apply_endpoints(ctx);
        }
        ctx.spawn(async move { a.stats().await }.into_actor(self).map(|r, act, ctx| {
            match r {
                Ok(st) => {
                    act.agent_failures = 0;
                    act.publish_stats(st);
                }
                Err(e) => {
                    act.agent_failures += 1;
                    tracing::warn!(lb = %act.me, error = %e, failures = act.agent_failures, "load balancer agent not answering");
                    if act.agent_failures >= AGENT_FAILURES && act.agent.is_some() && !act.opening {
                        // Gone (killed, its container removed, its host
                        // rebooted): adopt it if it is back, else make it
                        // again on the same port.
                        act.agent = None;
                        act.agent_failures = 0;
                        act.replaced_total += 1;
                        act.board.set(&act.me, sensors::REPLACED_TOTAL, json!(act.replaced_total));
                        act.board.emit(EntityEvent::Notice {
                            source: act.me.clone(),
                            name: "lb.agent_lost".into(),
                            detail: json!({ "reason": format!("its agent stopped answering ({e}); making it again") }),
                        });
                        act.opening = true;
                        ctx.spawn(act.open_plane().into_actor(act).map(|res, act, ctx| {
                            let _ = act.on_up(res, ctx);
                        }));
                    }
                }
            }
        }));
    }

    fn open_plane(&self) -> impl std::future::Future<Output = Result<Plane, String>> + 'static {
        plane::open(
            self.me.clone(),
            self.at.clone(),
            self.listen,
            self.settings.clone(),
        )
    }

    fn on_up(
        &mut self,
        res: Result<Plane, String>,
        ctx: &mut Context<Self>,
    ) -> Result<serde_json::Value, EntityError> {
        self.opening = false;
        match res {
            Ok(plane) => {
                let local = match &plane {
                    Plane::Local(p) => p.local_addr(),
                    Plane::Agent(a) => a.client.listen,
                };
                let shown = match (&plane, local.ip().is_unspecified()) {
                    (_, false) => local.ip().to_string(),
                    (Plane::Agent(a), true) => a.at.address.clone(),
                    (Plane::Local(_), true) => "127.0.0.1".to_string(),
                };
                // A replacement serves the port the first one got.
                self.listen.set_port(local.port());
                self.board.set(&self.me, sensors::ADDRESS, json!(shown));
                self.board.set(&self.me, sensors::PORT, json!(local.port()));
                let mut adopted = false;
                match plane {
                    Plane::Local(p) => self.proxy = Some(p),
                    Plane::Agent(a) => {
                        adopted = a.adopted;
                        self.board.set(&self.me, sensors::HOST, json!(a.at.name));
                        self.board
                            .set(&self.me, sensors::CONTAINER_ID, json!(a.container));
                        self.board
                            .set(&self.me, sensors::STARTED_AT, json!(a.started_at));
                        self.agent = Some(*a);
                    }
                }
                self.publish_settings();
                self.start_error = None;
                self.apply_endpoints(ctx);
                self.set_state(Lifecycle::Running);
                Ok(json!({ "state": "running", "port": local.port(), "adopted": adopted }))
            }
            Err(message) => {
                self.start_error = Some(message.clone());
                self.board.set(&self.me, s::ENTITY_ERROR, json!(message));
                self.set_state(Lifecycle::OnFire);
                Err(EntityError::StartFailed {
                    entity: self.me.to_string(),
                    message,
                })
            }
        }
    }

    /// The `configure` effector: new settings, changed in place (the same
    /// listening socket, container and open connections).
    fn configure(
        &mut self,
        args: serde_json::Value,
    ) -> Result<
        impl std::future::Future<Output = Result<AgentSettings, String>> + 'static,
        EntityError,
    > {
        let new: AgentSettings =
            serde_json::from_value(args).map_err(|e| EntityError::BadArguments {
                effector: "configure".into(),
                message: format!(
                    "{e}; expected {{\"mode\": \"http\"|\"tcp\", \"limits\": {{...}}}}"
                ),
            })?;
        self.settings = new.clone();
        if let Some(p) = &self.proxy {
            p.set_config(proxy::ProxyConfig::from_blueprint(new.mode, &new.limits));
        }
        let client = self.agent.as_ref().map(|a| a.client.clone());
        Ok(async move {
            match client {
                Some(c) => c.set_settings(&new).await.map_err(|e| e.to_string()),
                // Not running yet: the agent starts with them.
                None => Ok(new),
            }
        })
    }

    fn publish_stats(&mut self, st: proxy::ProxyStats) {
        let now = Instant::now();
        // A rate needs two samples: publishing 0 from the first would tell
        // an autoscaler the load vanished (a restart is not a lull).
        let first = self.last_stats.is_none();
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let counted = match st.mode {
            LbMode::Http => st.requests_total,
            LbMode::Tcp => st.connections_total,
        };
        let by_member: std::collections::BTreeMap<String, f64> = match &self.last_stats {
            Some((t, _, before)) => {
                let dt = now.duration_since(*t).as_secs_f64().max(1e-3);
                st.per_member
                    .iter()
                    .map(|(m, n)| {
                        let was = before.get(m).copied().unwrap_or(0);
                        (m.clone(), round(n.saturating_sub(was) as f64 / dt))
                    })
                    .collect()
            }
            None => Default::default(),
        };
        let (rate, per_member_rate) = match &self.last_stats {
            Some((t, total, _)) => {
                let dt = now.duration_since(*t).as_secs_f64().max(1e-3);
                let rate = (counted.saturating_sub(*total)) as f64 / dt;
                let members = self
                    .board
                    .get(sensors::BACKENDS)
                    .and_then(|b| b.as_array().map(|a| a.len()))
                    .unwrap_or(0);
                (
                    rate,
                    if members > 0 {
                        rate / members as f64
                    } else {
                        0.0
                    },
                )
            }
            None => (0.0, 0.0),
        };
        self.board.set(
            &self.me,
            sensors::CONNECTIONS_TOTAL,
            json!(st.connections_total),
        );
        self.board.set(&self.me, sensors::ACTIVE, json!(st.active));
        self.board
            .set(&self.me, sensors::ERRORS_TOTAL, json!(st.errors_total));
        self.board
            .set(&self.me, sensors::RETRIES_TOTAL, json!(st.retries_total));
        if !first {
            self.board
                .set(&self.me, sensors::REQS_PER_SEC, json!(round(rate)));
            self.board.set(
                &self.me,
                sensors::REQS_PER_SEC_PER_MEMBER,
                json!(round(per_member_rate)),
            );
            self.board
                .set(&self.me, sensors::REQS_PER_SEC_BY_MEMBER, json!(by_member));
        }
        if st.mode == LbMode::Http {
            self.publish_http(now, &st);
        }
        self.board
            .set(&self.me, sensors::PER_MEMBER, json!(st.per_member));
        if st.connect_seconds_count > 0 {
            self.board.set(
                &self.me,
                sensors::CONNECT_LATENCY,
                json!(
                    round(st.connect_seconds_sum / st.connect_seconds_count as f64 * 1000.0)
                        / 1000.0
                ),
            );
        }
        self.last_stats = Some((now, counted, st.per_member));
    }

    /// Request counters and the latency quantiles of the last [`LATENCY_WINDOW`].
    fn publish_http(&mut self, now: Instant, st: &proxy::ProxyStats) {
        self.board
            .set(&self.me, sensors::REQUESTS_TOTAL, json!(st.requests_total));
        self.board.set(
            &self.me,
            sensors::RESPONSES,
            json!(status_classes(&st.responses)),
        );
        while self
            .latency_history
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > LATENCY_WINDOW)
        {
            self.latency_history.pop_front();
        }
        let before: &[u64] = self.latency_history.front().map_or(&[], |(_, h)| h);
        let q = |q| proxy::latency::quantile_between(before, &st.latency, q);
        // Quantiles only when requests were timed in the window: an idle
        // load balancer keeps its last figures rather than claiming 0 s.
        if let (Some(p50), Some(p99)) = (q(0.5), q(0.99)) {
            let round = |x: f64| (x * 1e6).round() / 1e6;
            self.board
                .set(&self.me, sensors::LATENCY_P50, json!(round(p50)));
            self.board
                .set(&self.me, sensors::LATENCY_P99, json!(round(p99)));
        }
        self.latency_history.push_back((now, st.latency.clone()));
    }
}

/// Counts by status class as a sensor value: `{"1xx": n, ..., "5xx": n}` (pure).
pub fn status_classes(counts: &[u64; 5]) -> std::collections::BTreeMap<String, u64> {
    counts
        .iter()
        .enumerate()
        .map(|(k, n)| (format!("{}xx", k + 1), *n))
        .collect()
}

impl Actor for LoadBalancerEntity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.board
            .set(&self.me, sensors::TARGET, json!(self.target.entity));
        self.publish_settings();
        self.target_subscribe
            .do_send(Subscribe(ctx.address().recipient(), Interest::All));
        ctx.run_interval(STATS_EVERY, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // An agent keeps serving: drover stopping (SIGTERM, an upgrade) is
        // not the application going away.
        if let Some(p) = self.proxy.take() {
            p.shutdown();
        }
    }
}

impl Observable for LoadBalancerEntity {
    fn me(&self) -> &EntityRef {
        &self.me
    }
    fn kind(&self) -> EntityKind {
        EntityKind::LoadBalancer
    }
    fn state(&self) -> Lifecycle {
        self.state
    }
    fn board(&mut self) -> &mut SensorBoard {
        &mut self.board
    }
}

entity_handlers!(LoadBalancerEntity);

impl Handler<EntityEvent> for LoadBalancerEntity {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        if let EntityEvent::Sensor {
            source,
            name,
            value,
        } = ev
        {
            if source == self.target && name == s::GROUP_ENDPOINTS {
                self.endpoints = serde::Deserialize::deserialize(&*value.value).unwrap_or_default();
                self.apply_endpoints(ctx);
            }
        }
    }
}

impl Handler<Invoke> for LoadBalancerEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, _: &mut Context<Self>) -> Self::Result {
        match msg.effector.as_str() {
            "start" => {
                if self.proxy.is_some() || self.agent.is_some() || self.opening {
                    return Box::pin(fut::ready(Ok(json!({ "state": "running" }))));
                }
                self.set_state(Lifecycle::Starting);
                self.opening = true;
                Box::pin(
                    self.open_plane()
                        .into_actor(self)
                        .map(|res, act, ctx| act.on_up(res, ctx)),
                )
            }
            "configure" => match self.configure(msg.args) {
                Ok(f) => Box::pin(f.into_actor(self).map(|res, act, _| match res {
                    Ok(took) => {
                        tracing::info!(lb = %act.me, mode = took.mode.as_str(), "load balancer settings changed in place");
                        act.publish_settings();
                        Ok(json!({ "changed": "in place", "settings": took }))
                    }
                    Err(message) => Err(EntityError::Failed {
                        entity: act.me.to_string(),
                        message: format!("changing the settings in place: {message}"),
                    }),
                })),
                Err(e) => Box::pin(fut::ready(Err(e))),
            },
            other => Box::pin(fut::ready(Err(EntityError::unknown_effector(
                &self.me,
                other,
                &["start", "configure"],
            )))),
        }
    }
}

impl Handler<Teardown> for LoadBalancerEntity {
    type Result = Result<(), EntityError>;
    fn handle(&mut self, _: Teardown, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(p) = self.proxy.take() {
            p.shutdown();
        }
        // The load balancer is going (its application destroyed, or an
        // apply replaces it): its container goes too. By id when it is
        // known, so a replacement made right after under the same name is
        // never the one removed.
        match (self.agent.take(), &self.at) {
            (Some(a), _) => a.at.host.do_send(crate::host::Operate {
                container: a.container,
                op: crate::host::ContainerOp::Remove,
            }),
            (None, Some(at)) => at.home.host.do_send(crate::host::Operate {
                container: crate::host::container_name(&self.me.app, &self.me.entity),
                op: crate::host::ContainerOp::Remove,
            }),
            (None, None) => {}
        }
        self.set_state(Lifecycle::Stopped);
        self.board.emit(EntityEvent::Gone {
            source: self.me.clone(),
        });
        ctx.stop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_follows_the_targets_health_check_unless_written() {
        let bp = |check: &str, mode: &str| {
            crate::blueprint::parse_blueprint(
                "b.yaml",
                &format!(
                    "name: s\nservices:\n  - id: web\n    type: cluster\n    member:\n      image: x\n      ports: [80]\n      health: {{ {check}: {{ port: 80 }} }}\n  - id: lb\n    type: load-balancer\n    target: web\n    port: 0\n{mode}"
                ),
            )
            .unwrap()
        };
        let b = bp("http", "");
        assert_eq!(mode_of(&b, &b.services[1]), LbMode::Http);
        let b = bp("tcp", "");
        assert_eq!(mode_of(&b, &b.services[1]), LbMode::Tcp);
        let b = bp("http", "    mode: tcp\n");
        assert_eq!(mode_of(&b, &b.services[1]), LbMode::Tcp);
    }

    #[test]
    fn status_classes_are_named() {
        let c = status_classes(&[0, 7, 1, 2, 3]);
        assert_eq!(c["2xx"], 7);
        assert_eq!(c["5xx"], 3);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn backends_come_from_endpoints_with_the_target_port() {
        let eps = vec![
            Endpoint {
                member: "web-1".into(),
                address: "127.0.0.1".into(),
                ports: [(8080, 32001)].into(),
            },
            Endpoint {
                member: "web-2".into(),
                address: "127.0.0.1".into(),
                ports: [(9090, 32002)].into(),
            },
        ];
        let b = backends_for(&eps, 8080);
        assert_eq!(
            b,
            vec![Backend {
                member: "web-1".into(),
                addr: "127.0.0.1:32001".parse().unwrap()
            }]
        );
    }
}
