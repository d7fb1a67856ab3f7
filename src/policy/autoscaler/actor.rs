//! The autoscaler actor: it follows the metric's source and the cluster,
//! feeds [`evaluate`], resizes the cluster and records what it decided.

use super::{evaluate, on_insufficient_capacity, AutoscalerConfig, AutoscalerHistory, Pool};

/// The autoscaler actor: feeds [`evaluate`] and resizes the cluster.
pub struct Autoscaler {
    name: String,
    cluster: crate::protocol::EntityRef,
    source: crate::protocol::EntityRef,
    cluster_invoke: actix::Recipient<crate::protocol::Invoke>,
    cluster_notice: actix::Recipient<crate::protocol::EmitNotice>,
    subscribe_to: Vec<actix::Recipient<crate::protocol::Subscribe>>,
    activities: actix::Recipient<crate::activity::RecordActivity>,
    cfg: AutoscalerConfig,
    history: AutoscalerHistory,
    size: Option<u32>,
    metric: Option<(f64, u64)>,
    source_running: bool,
    pool: Pool,
    resizing: bool,
    running: bool,
    last_hold: Option<u32>,
    tick: Option<actix::SpawnHandle>,
    /// Where the policy's memory is saved (the durable store).
    store: Option<actix::Recipient<crate::store::StoreWrite>>,
    last_saved: Option<serde_json::Value>,
}

impl Autoscaler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        cluster: crate::protocol::EntityRef,
        source: crate::protocol::EntityRef,
        cluster_invoke: actix::Recipient<crate::protocol::Invoke>,
        cluster_notice: actix::Recipient<crate::protocol::EmitNotice>,
        subscribe_to: Vec<actix::Recipient<crate::protocol::Subscribe>>,
        activities: actix::Recipient<crate::activity::RecordActivity>,
        cfg: AutoscalerConfig,
    ) -> Self {
        Autoscaler {
            store: None,
            last_saved: None,
            name,
            cluster,
            source,
            cluster_invoke,
            cluster_notice,
            subscribe_to,
            activities,
            cfg,
            history: AutoscalerHistory::default(),
            size: None,
            metric: None,
            source_running: false,
            pool: Pool::Unknown,
            resizing: false,
            running: true,
            last_hold: None,
            tick: None,
        }
    }

    fn record(&self, name: &str, args: serde_json::Value, outcome: &str, message: String) {
        self.activities.do_send(crate::activity::RecordActivity(
            crate::activity::Activity::policy(
                &self.cluster.app,
                &self.cluster.entity,
                name,
                args,
                outcome,
                message,
            ),
        ));
    }

    fn schedule(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        if let Some(h) = self.tick.take() {
            ctx.cancel_future(h);
        }
        self.tick =
            Some(ctx.run_interval(self.cfg.evaluation_interval, |act, ctx| act.evaluate(ctx)));
    }

    fn evaluate(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::{ActorFutureExt, AsyncContext, WrapFuture};
        let now = crate::protocol::now_ms();
        // A running source with the sensor present keeps its value current:
        // sensors are published on change only.
        if self.source_running {
            if let Some((v, _)) = self.metric {
                self.metric = Some((v, now));
            }
        }
        let (Some(size), true, false) = (self.size, self.running, self.resizing) else {
            return;
        };
        let span = tracing::debug_span!("policy", app = %self.cluster.app, entity = %self.cluster.entity, policy = %self.name);
        let _g = span.enter();
        let e = evaluate(&self.cfg, &mut self.history, self.metric, size, now);
        if e.pool != self.pool {
            self.pool = e.pool;
            if let Some(ev) = e.pool.event() {
                self.cluster_notice.do_send(crate::protocol::EmitNotice {
                    name: ev.to_string(),
                    detail: serde_json::json!({ "reason": e.reason, "metric": self.metric.map(|m| m.0) }),
                });
            }
        }
        let inputs = serde_json::json!({
            "metric": self.cfg.metric, "value": self.metric.map(|m| m.0), "size": size,
            "recommended": e.recommended, "lower": self.cfg.lower, "upper": self.cfg.upper, "pool": e.pool,
        });
        if let Some(to) = e.resize_to {
            self.resizing = true;
            self.last_hold = None;
            tracing::info!(from = size, to, reason = %e.reason, "autoscaler resizes");
            self.record(
                "autoscaler.resize",
                inputs.clone(),
                "decided",
                e.reason.clone(),
            );
            let invoke = self.cluster_invoke.clone();
            ctx.spawn(
                async move {
                    invoke
                        .send(crate::protocol::Invoke::with_args(
                            "resize",
                            serde_json::json!({ "size": to }),
                        ))
                        .await
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.resizing = false;
                    let res = res.unwrap_or_else(|e| {
                        Err(crate::protocol::EntityError::unreachable(&act.cluster, e))
                    });
                    match res {
                        // The size reached, as the target reports it (a
                        // host pool may shrink by fewer than asked).
                        Ok(v) => {
                            act.size = Some(v["size"].as_u64().map(|n| n as u32).unwrap_or(to))
                        }
                        Err(err) => {
                            if matches!(
                                err,
                                crate::protocol::EntityError::InsufficientCapacity { .. }
                            ) {
                                on_insufficient_capacity(
                                    &act.cfg,
                                    &mut act.history,
                                    to,
                                    crate::protocol::now_ms(),
                                );
                            }
                            act.record(
                                "autoscaler.resize",
                                inputs,
                                "error",
                                format!("resize to {to} failed: {err}"),
                            );
                        }
                    }
                }),
            );
        } else if e.close && self.last_hold != Some(e.recommended) {
            // Close calls are recorded once per recommendation, not 4 times a second.
            self.last_hold = Some(e.recommended);
            self.record("autoscaler.hold", inputs, "held", e.reason);
        } else if !e.close {
            self.last_hold = None;
        }
    }
}

impl actix::Actor for Autoscaler {
    type Context = actix::Context<Self>;
    fn started(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        for s in &self.subscribe_to {
            s.do_send(crate::protocol::Subscribe(
                ctx.address().recipient(),
                crate::protocol::Interest::All,
            ));
        }
        self.schedule(ctx);
        // The history changes at every evaluation: saved once a second, so a
        // decision after a restart uses (almost) all of it.
        ctx.run_interval(std::time::Duration::from_secs(1), |act, _| {
            let now = serde_json::to_value(&act.history).unwrap_or_default();
            if act.last_saved.as_ref() != Some(&now) {
                act.save();
                act.last_saved = Some(now);
            }
        });
    }
}

impl actix::Handler<crate::protocol::EntityEvent> for Autoscaler {
    type Result = ();
    fn handle(&mut self, ev: crate::protocol::EntityEvent, ctx: &mut actix::Context<Self>) {
        use crate::protocol::{sensors as s, EntityEvent, Lifecycle};
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => {
                if source == self.cluster && name == s::GROUP_SIZE {
                    self.size = value.value.as_u64().map(|v| v as u32);
                }
                if source == self.source && name == self.cfg.metric {
                    self.metric = value.value.as_f64().map(|v| (v, crate::protocol::now_ms()));
                }
            }
            EntityEvent::State { source, state, .. } if source == self.source => {
                self.source_running = state == Lifecycle::Running;
            }
            EntityEvent::Gone { source } if source == self.cluster => {
                actix::ActorContext::stop(ctx)
            }
            _ => {}
        }
    }
}

impl actix::Handler<crate::policy::PolicyControl> for Autoscaler {
    type Result = Result<crate::policy::PolicyStatus, crate::policy::PolicyError>;
    fn handle(
        &mut self,
        msg: crate::policy::PolicyControl,
        ctx: &mut actix::Context<Self>,
    ) -> Self::Result {
        match msg.op {
            crate::policy::PolicyOp::Get => {}
            crate::policy::PolicyOp::Set(crate::policy::PolicyConfig::Autoscaler(c)) => {
                c.check()
                    .map_err(|(key, message)| crate::policy::PolicyError::BadConfig {
                        key,
                        message,
                    })?;
                let old = std::mem::replace(&mut self.cfg, c);
                if old.evaluation_interval != self.cfg.evaluation_interval {
                    self.schedule(ctx);
                }
                self.record(
                    "autoscaler.reconfigure",
                    serde_json::to_value(&self.cfg).unwrap_or_default(),
                    "ok",
                    "new config in force".into(),
                );
            }
            crate::policy::PolicyOp::Set(other) => {
                return Err(crate::policy::PolicyError::wrong_kind("autoscaler", &other))
            }
            crate::policy::PolicyOp::Start => self.running = true,
            crate::policy::PolicyOp::Stop => self.running = false,
        }
        Ok(crate::policy::PolicyStatus::of(
            &self.name,
            &crate::policy::PolicyConfig::Autoscaler(self.cfg.clone()),
            self.running,
            serde_json::json!({ "pool": self.pool, "size": self.size, "metric": self.metric.map(|m| m.0), "history": self.history }),
        ))
    }
}

impl Autoscaler {
    /// Saves the policy's memory to the store on every change, starting
    /// from `saved` (what the store held for it at start, on a rebind).
    pub fn persisted(
        mut self,
        store: Option<actix::Recipient<crate::store::StoreWrite>>,
        saved: Option<serde_json::Value>,
    ) -> Self {
        if let Some(h) = crate::policy::restore_memory::<AutoscalerHistory>(saved) {
            self.history = h;
        }
        self.store = store;
        self
    }

    fn save(&self) {
        crate::policy::save_memory(&self.store, &self.cluster, &self.name, &self.history);
    }
}
