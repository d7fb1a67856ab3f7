//! The host pool's message handlers: each moves a message into the model
//! or out to the host actors, the provisioner or the placement policy.

use actix::prelude::*;
use serde_json::json;

use super::*;

impl Actor for HostPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // See `crate::protocol::UNBOUNDED_MAILBOX`.
        ctx.set_mailbox_capacity(crate::protocol::UNBOUNDED_MAILBOX);
        if let Some(p) = self.policy_init.take() {
            self.policy = Some(p.saving_to(ctx.address().recipient()).start());
        }
        for i in 0..self.model.hosts().len() {
            self.watch(i, ctx);
            self.ping(i, ctx);
            self.list(i, ctx);
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        // The hosts are the pool's to size only if it can make hosts.
        if let (true, Some(activities)) =
            (self.model.limits().can_provision, self.activities.clone())
        {
            let me = ctx.address();
            Autoscaler::new(
                POOL_AUTOSCALER.into(),
                self.me.clone(),
                self.me.clone(),
                me.clone().recipient(),
                me.clone().recipient(),
                vec![me.recipient()],
                activities,
                Self::autoscaler_config(&self.cfg),
            )
            .persisted(self.store.clone(), self.autoscaler_saved.take())
            .start();
        }
        self.save();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Provisioned hosts are machines drover made: a stopping drover
        // leaves them (and their containers) running for the next start,
        // which adopts them from the store.
    }
}

impl Handler<Place> for HostPool {
    type Result = ResponseFuture<Result<PlacedOn, PlaceError>>;
    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if msg.volumes.is_empty() {
            // Found by a start list: adopted now. Else in order, one
            // decision at a time, behind a placement that waits for a new
            // host, and once every host's capacity is known.
            if let Some(w) = self.adopt_found(msg, tx, ctx) {
                self.queue.push(w);
                self.pump(ctx);
            }
        } else {
            // Queued once it is known which host holds its volumes.
            self.place_with_volumes(msg, tx, ctx);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(PlaceFailure::Stopped.into()))
        })
    }
}

impl Handler<Release> for HostPool {
    type Result = ();
    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        let key = (msg.app, msg.entity);
        self.model.release(&key, msg.host.as_deref());
        if let Some(p) = &self.policy {
            p.do_send(Forget {
                app: key.0,
                entity: key.1,
                host: msg.host,
            });
        }
        self.pump(ctx);
    }
}

impl Handler<HostSensors> for HostPool {
    type Result = ();
    fn handle(&mut self, s: HostSensors, _: &mut Context<Self>) {
        // Only this host's gauge: the whole pool's metrics are the tick's
        // (every host reports every second, and a full pass each time was
        // a thousand hosts times a thousand labels a second).
        if self
            .model
            .sensed(&s.host, s.cpu_usage, s.unmanaged_containers)
        {
            crate::metrics::HOST_CPU_USAGE
                .with_label_values(&[s.host.as_str()])
                .set(s.cpu_usage);
        }
    }
}

impl Handler<PlacementMemory> for HostPool {
    type Result = ();
    fn handle(&mut self, m: PlacementMemory, _: &mut Context<Self>) {
        self.placement_memory = serde_json::to_value(&m.0).unwrap_or_default();
        self.save();
    }
}

impl Observable for HostPool {
    fn me(&self) -> &EntityRef {
        &self.me
    }
    /// A pool of hosts is a cluster whose members are engines.
    fn kind(&self) -> EntityKind {
        EntityKind::Cluster
    }
    fn state(&self) -> Lifecycle {
        Lifecycle::Running
    }
    fn board(&mut self) -> &mut SensorBoard {
        &mut self.board
    }
}

entity_handlers!(subscribe: HostPool);

impl Handler<EmitNotice> for HostPool {
    type Result = ();
    fn handle(&mut self, n: EmitNotice, _: &mut Context<Self>) {
        let reason = n.detail["reason"].as_str().unwrap_or_default().to_string();
        self.event(format!("{}: {reason}", n.name));
    }
}

impl Handler<Invoke> for HostPool {
    type Result = ResponseFuture<Result<serde_json::Value, EntityError>>;
    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Resize {
            size: u32,
        }
        if msg.effector != "resize" {
            let err = EntityError::unknown_effector(&self.me, &msg.effector, &["resize"]);
            return Box::pin(async move { Err(err) });
        }
        let r = crate::protocol::parse_args::<Resize>("resize", &msg.args)
            .and_then(|a| self.resize(a.size, ctx));
        match r {
            Ok(Some(size)) => Box::pin(async move { Ok(json!({ "size": size })) }),
            Ok(None) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.resize_waiters.push(tx);
                self.grow(ctx);
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(EntityError::Unreachable {
                            entity: "host pool".into(),
                            message: "stopped".into(),
                        })
                    })
                })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<crate::policy::placement::Tune> for HostPool {
    type Result = ();
    fn handle(&mut self, t: crate::policy::placement::Tune, _: &mut Context<Self>) {
        if let Some(p) = &self.policy {
            p.do_send(t);
        }
    }
}

impl Handler<HostOp> for HostPool {
    type Result = Result<HostOpAnswer, HostOpError>;
    fn handle(&mut self, msg: HostOp, ctx: &mut Context<Self>) -> Self::Result {
        self.host_op(msg, ctx)
    }
}

impl Handler<GetHosts> for HostPool {
    type Result = MessageResult<GetHosts>;
    fn handle(&mut self, _: GetHosts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.model
                .hosts()
                .iter()
                .filter(|h| h.is_running())
                .map(|h| h.handle.clone())
                .collect(),
        )
    }
}

/// Where a load balancer's agent may run: the running hosts that answered
/// at least once, in the pool's order (its home engine first).
impl Handler<crate::lb::plane::ListAgentHosts> for HostPool {
    type Result = MessageResult<crate::lb::plane::ListAgentHosts>;
    fn handle(
        &mut self,
        _: crate::lb::plane::ListAgentHosts,
        _: &mut Context<Self>,
    ) -> Self::Result {
        MessageResult(
            self.model
                .hosts()
                .iter()
                .filter(|h| h.is_running() && h.pinged_once)
                .map(|h| crate::lb::plane::AgentHost {
                    host: h.handle.clone(),
                    name: h.name().to_string(),
                    address: h.address.clone(),
                })
                .collect(),
        )
    }
}

impl Handler<GetPool> for HostPool {
    type Result = ResponseFuture<PoolView>;
    fn handle(&mut self, _: GetPool, _: &mut Context<Self>) -> Self::Result {
        let headroom = self.emit_metrics();
        let mut view = PoolView {
            location: self.name().to_string(),
            hosts: self.model.hosts().iter().map(PoolHostView::of).collect(),
            headroom,
            provisioning: self.model.is_provisioning(),
            waiting: self.queue.len(),
            decisions: self.decisions.iter().cloned().collect(),
            events: self.events.iter().cloned().collect(),
            placement: PlacementView::default(),
        };
        let policy = self.policy.clone();
        Box::pin(async move {
            if let Some(p) = policy {
                if let Ok(v) = p.send(GetPlacement).await {
                    view.placement = v;
                }
            }
            view
        })
    }
}
