//! The effector calls and teardown, and the engine operations they start.
//! Each operation's outcome goes back to the state machine as an
//! observation.

use std::time::Instant;

use actix::prelude::*;
use serde_json::json;

use super::phase::{EngineOp, Info, Observation};
use super::{Answer, ContainerEntity, IMAGE_BUILD};
use crate::host::build::EnsureImage;
use crate::host::{
    self, health, ContainerInfo, ContainerOp, ContainerRequest, CreateAndStart, Operate,
};
use crate::metrics;
use crate::protocol::{EntityError, Invoke, Observable, Teardown};

impl Handler<Invoke> for ContainerEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        if self.core.phase.is_torn_down() {
            return Box::pin(fut::ready(Err(EntityError::Stopping {
                entity: self.me.to_string(),
            })));
        }
        let obs = match msg.effector.as_str() {
            "start" => Observation::Start,
            "stop" => Observation::Stop,
            "restart" => Observation::Restart,
            // Faults, for `drover chaos` and operators: drover does not change
            // what it wants, so the failure detector and policies react as
            // they would to a real fault.
            "kill" => return self.fault(ContainerOp::Kill),
            "pause" => return self.fault(ContainerOp::Pause),
            "unpause" => return self.fault(ContainerOp::Unpause),
            other => {
                return Box::pin(fut::ready(Err(EntityError::unknown_effector(
                    &self.me,
                    other,
                    &["start", "stop", "restart", "kill", "pause", "unpause"],
                ))))
            }
        };
        let me = self.me.to_string();
        match self.observe(obs, ctx) {
            Answer::Start(rx) => Box::pin(
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
            ),
            Answer::Operation(op, rx) => Box::pin(
                async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(EntityError::Unreachable {
                            entity: me,
                            message: format!("{} was abandoned", op.name()),
                        })
                    })
                }
                .into_actor(self),
            ),
            Answer::Refused(message) => Box::pin(fut::ready(Err(EntityError::Failed {
                entity: me,
                message,
            }))),
            Answer::None | Answer::RemoveAll(_) => Box::pin(fut::ready(Ok(json!({})))),
        }
    }
}

impl Handler<Teardown> for ContainerEntity {
    type Result = ResponseActFuture<Self, Result<(), EntityError>>;

    fn handle(&mut self, _: Teardown, ctx: &mut Context<Self>) -> Self::Result {
        let Answer::RemoveAll(id) = self.observe(Observation::Teardown, ctx) else {
            return Box::pin(fut::ready(Ok(())));
        };
        let host = self.at.host.clone();
        // Remove by name as well as by id: a create may be in flight, and its
        // container carries the deterministic name.
        let targets: Vec<String> = id
            .into_iter()
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
            act.observe(Observation::TornDown { ok: res.is_ok() }, ctx);
            res
        }))
    }
}

impl ContainerEntity {
    /// Finds or builds the image, then creates and starts the container.
    pub(super) fn create(&mut self, ctx: &mut Context<Self>) {
        let mut req = ContainerRequest::new(&self.me.app, &self.me.entity, self.spec.clone());
        if self.ref_opts.is_some() {
            if let Some(r) = self.wait.render(&self.spec) {
                req.rendered = Some((r.env.clone(), r.command.clone()));
                self.applied = Some(Box::new(r));
            }
        }
        req.network = self.at.network.clone();
        req.extra_networks = self
            .spec
            .networks
            .iter()
            .map(|n| host::network::docker_network_name(&self.me.app, Some(n)))
            .collect();
        req.aliases = self.cluster.iter().cloned().collect();
        let host = self.at.host.clone();
        let t0 = Instant::now();
        // A built image first: found by its context's hash, or built now.
        let ensure = self.spec.build.is_some().then(|| EnsureImage {
            app: self.me.app.clone(),
            service: self
                .cluster
                .clone()
                .unwrap_or_else(|| self.me.entity.clone()),
            spec: (*self.spec).clone(),
            progress: Some(ctx.address().recipient()),
        });
        if ensure.is_some() {
            self.board
                .set(&self.me, IMAGE_BUILD, json!("checking the build context"));
        }
        // An image from a registry: pulled (or found) and pinned.
        let pull = self.pull_request(ctx);
        // Found running at start: the image steps above run as for any
        // create (their sensors and pins are the same), but the create,
        // start and inspects would only tell what the list already said.
        let adopted = self.adopted.take();
        let fut = async move {
            let mut req = req;
            let mut image = None;
            if let Some(e) = ensure {
                match host.send(e).await {
                    Ok(Ok(ready)) => {
                        req.image = Some(ready.image.clone());
                        image = Some(Ok(ready));
                    }
                    Ok(Err(e)) => return (Ok(Err(e.clone())), Some(Err(e)), None),
                    Err(e) => return (Err(e), None, None),
                }
            }
            let mut pulled = None;
            if let Some((msg, pins)) = pull {
                let asked = msg.image.clone();
                // Boxed: inline, its state would size this whole future, which
                // each container holds while its create waits its turn.
                match Box::pin(super::pull::pull_and_pin(host.clone(), msg, pins)).await {
                    Ok(answer) => {
                        let result = answer.result.clone();
                        pulled = Some((asked, answer));
                        match result {
                            Ok(ready) => req.image = Some(ready.reference),
                            Err(e) => {
                                return (Ok(Err(host::HostError::Pull(Box::new(e)))), None, pulled)
                            }
                        }
                    }
                    Err(e) => return (Err(e), None, None),
                }
            }
            if let Some(found) = adopted {
                return (Ok(Ok(*found)), image, pulled);
            }
            (host.send(CreateAndStart(req)).await, image, pulled)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(res, image, pulled), act, ctx| {
                    if let Some(outcome) = image {
                        act.on_image(outcome);
                    }
                    if let Some((asked, answer)) = &pulled {
                        act.on_pull(asked, answer);
                    }
                    if act.core.phase.is_torn_down() {
                        return;
                    }
                    let outcome = match res {
                        Ok(Ok(info)) => {
                            metrics::CONTAINERS_STARTED.inc();
                            metrics::CONTAINER_START_SECONDS.observe(t0.elapsed().as_secs_f64());
                            Ok(act.apply_info(info, ctx))
                        }
                        Ok(Err(e)) => {
                            metrics::CONTAINERS_FAILED.inc();
                            Err(e.to_string())
                        }
                        Err(e) => Err(format!("host actor unreachable: {e}")),
                    };
                    act.observe(Observation::Created(outcome), ctx);
                }),
        );
    }

    /// An engine start, restart or stop of the existing container.
    pub(super) fn run_operation(&mut self, op: EngineOp, ctx: &mut Context<Self>) {
        let Some(id) = self.core.container.clone() else {
            return;
        };
        let engine_op = match op {
            EngineOp::Start => ContainerOp::Start,
            EngineOp::Restart => ContainerOp::Restart,
            EngineOp::Stop => ContainerOp::Stop,
        };
        let then_running = op != EngineOp::Stop;
        let host = self.at.host.clone();
        let fut = async move {
            host.send(Operate {
                container: id.clone(),
                op: engine_op,
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
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let reply = act
                .op_reply
                .take()
                .filter(|(o, _)| *o == op)
                .map(|(_, tx)| tx);
            if act.core.phase.is_torn_down() {
                if let Some(tx) = reply {
                    let _ = tx.send(Ok(json!({})));
                }
                return;
            }
            let failed = res.as_ref().err().cloned();
            let res = res.map(|info| info.map(|info| act.apply_info(info, ctx)));
            act.observe(Observation::Operated(res), ctx);
            let answer = match failed {
                None => Ok(json!({ "state": act.state().as_str() })),
                Some(message) => Err(EntityError::Engine {
                    entity: act.me.to_string(),
                    operation: op.name().into(),
                    message,
                }),
            };
            if let Some(tx) = reply {
                let _ = tx.send(answer);
            }
        }));
    }

    /// Removes a failed or out-of-date container, to create it afresh.
    pub(super) fn remove(&mut self, id: String, ctx: &mut Context<Self>) {
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
                act.observe(Observation::Removed, ctx);
            }),
        );
    }

    /// The board's sensors of a container the engine reported, and its
    /// stats feed; what the state machine needs of it.
    fn apply_info(&mut self, info: ContainerInfo, ctx: &mut Context<Self>) -> Info {
        if self.core.container.as_ref() != Some(&info.id)
            || self.stats_for.as_ref() != Some(&info.id)
        {
            // A new container: a new stats feed, the old one's ends.
            let replaces = self.stats_for.replace(info.id.clone());
            self.at.host.do_send(crate::host::FollowStats {
                container: info.id.clone(),
                to: ctx.address().recipient(),
                replaces,
            });
        }
        use crate::protocol::sensors as s;
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
        let probeable = self
            .spec
            .health
            .as_ref()
            .and_then(health::check_port)
            .is_some_and(|p| self.ports.contains_key(&p));
        Info {
            id: info.id,
            state: info.state,
            probeable,
        }
    }

    fn fault(
        &mut self,
        op: ContainerOp,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        let me = self.me.to_string();
        let Some(id) = self.core.container.clone() else {
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
}
