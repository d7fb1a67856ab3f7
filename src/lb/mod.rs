//! The built-in load balancer entity: a TCP proxy inside drover.
//!
//! The entity follows its target cluster's `group.endpoints` sensor, which
//! lists only members that are `running`, so a member leaves the pool the
//! moment it leaves `running` (a kill is seen from the engine's event stream
//! within milliseconds). The data plane ([`proxy`]) ejects a member on a
//! connection failure and retries the connection on another member, so
//! clients see as few errors as possible.

pub mod proxy;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use crate::protocol::{
    entity_handlers, sensors as s, EntityError, EntityEvent, EntityKind, EntityRef, Invoke,
    Lifecycle, Observable, SensorBoard, Subscribe, Teardown,
};
use proxy::{Backend, Proxy, ProxyConfig};

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
    /// Connections per second over the last second (a connection is a request for short-lived clients).
    pub const REQS_PER_SEC: &str = "lb.reqs_per_sec";
    pub const REQS_PER_SEC_PER_MEMBER: &str = "lb.reqs_per_sec.per_member";
    pub const PER_MEMBER: &str = "lb.connections.per_member";
    pub const CONNECT_LATENCY: &str = "lb.connect_latency_seconds";
}

/// How often traffic sensors are published.
const STATS_EVERY: Duration = Duration::from_secs(1);

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

pub struct LoadBalancerEntity {
    me: EntityRef,
    target: EntityRef,
    target_subscribe: Recipient<Subscribe>,
    listen: SocketAddr,
    target_port: u16,
    proxy: Option<Proxy>,
    board: SensorBoard,
    state: Lifecycle,
    endpoints: Vec<Endpoint>,
    last_stats: Option<(Instant, u64, std::collections::BTreeMap<String, u64>)>,
    start_error: Option<String>,
}

impl LoadBalancerEntity {
    pub fn new(
        me: EntityRef,
        target: EntityRef,
        target_subscribe: Recipient<Subscribe>,
        listen: SocketAddr,
        target_port: u16,
    ) -> Self {
        LoadBalancerEntity {
            me,
            target,
            target_subscribe,
            listen,
            target_port,
            proxy: None,
            board: SensorBoard::default(),
            state: Lifecycle::Created,
            endpoints: Vec::new(),
            last_stats: None,
            start_error: None,
        }
    }

    fn set_state(&mut self, state: Lifecycle) {
        if state != self.state {
            self.state = state;
            self.board
                .set(&self.me, s::ENTITY_STATE, json!(state.as_str()));
            self.board.emit(EntityEvent::State {
                source: self.me.clone(),
                kind: EntityKind::LoadBalancer,
                state,
            });
        }
    }

    fn apply_endpoints(&mut self) {
        let backends = backends_for(&self.endpoints, self.target_port);
        let names: Vec<&str> = backends.iter().map(|b| b.member.as_str()).collect();
        self.board.set(&self.me, sensors::BACKENDS, json!(names));
        if let Some(p) = &self.proxy {
            p.set_backends(backends);
        }
    }

    fn publish_stats(&mut self) {
        let Some(p) = &self.proxy else { return };
        let st = p.stats();
        let now = Instant::now();
        // A rate needs two samples: publishing 0 from the first would tell
        // an autoscaler the load vanished (a restart is not a lull).
        let first = self.last_stats.is_none();
        let (rate, per_member_rate) = match &self.last_stats {
            Some((t, total, _)) => {
                let dt = now.duration_since(*t).as_secs_f64().max(1e-3);
                let rate = (st.connections_total.saturating_sub(*total)) as f64 / dt;
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
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
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
        self.last_stats = Some((now, st.connections_total, st.per_member));
    }

    /// Stats for the metrics module.
    pub fn stats(&self) -> Option<proxy::ProxyStats> {
        self.proxy.as_ref().map(|p| p.stats())
    }
}

impl Actor for LoadBalancerEntity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.board
            .set(&self.me, sensors::TARGET, json!(self.target.entity));
        self.target_subscribe
            .do_send(Subscribe(ctx.address().recipient()));
        ctx.run_interval(STATS_EVERY, |act, _| act.publish_stats());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
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
    fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
        if let EntityEvent::Sensor {
            source,
            name,
            value,
        } = ev
        {
            if source == self.target && name == s::GROUP_ENDPOINTS {
                self.endpoints = serde_json::from_value(value.value).unwrap_or_default();
                self.apply_endpoints();
            }
        }
    }
}

impl Handler<Invoke> for LoadBalancerEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, _: &mut Context<Self>) -> Self::Result {
        match msg.effector.as_str() {
            "start" => {
                if self.proxy.is_some() {
                    return Box::pin(fut::ready(Ok(json!({ "state": "running" }))));
                }
                self.set_state(Lifecycle::Starting);
                let listen = self.listen;
                Box::pin(async move { Proxy::start(listen, ProxyConfig::default()).await }.into_actor(self).map(move |res, act, _| {
                    match res {
                        Ok(p) => {
                            let local = p.local_addr();
                            let shown = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
                            act.board.set(&act.me, sensors::ADDRESS, json!(shown));
                            act.board.set(&act.me, sensors::PORT, json!(local.port()));
                            act.proxy = Some(p);
                            act.apply_endpoints();
                            act.set_state(Lifecycle::Running);
                            Ok(json!({ "state": "running", "port": local.port() }))
                        }
                        Err(e) => {
                            let message = format!("cannot listen on {listen}: {e}; choose another `port` (0 picks a free one)");
                            act.start_error = Some(message.clone());
                            act.board.set(&act.me, s::ENTITY_ERROR, json!(message));
                            act.set_state(Lifecycle::OnFire);
                            Err(EntityError::StartFailed { entity: act.me.to_string(), message })
                        }
                    }
                }))
            }
            other => Box::pin(fut::ready(Err(EntityError::unknown_effector(
                &self.me,
                other,
                &["start"],
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
