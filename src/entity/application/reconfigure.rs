//! An apply on a running application: the steps the management actor's
//! plan asks for, carried out in the order that keeps the application
//! serving: new services first, then replacements, rebuilt policies,
//! resizes and rollouts, and removals last (a removed service may be what
//! a new one replaces, as in a rename).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use super::{rebalance, ApplicationEntity, PolicyFactory};
use crate::blueprint::Blueprint;
use crate::protocol::{teardown_all, EntityError, Invoke, Subscribe};

/// Carry out an apply. The application takes `blueprint` and `policies` as
/// its own (what a later start, or added service, is made from).
#[derive(Message)]
#[rtype(result = "Vec<StepOutcome>")]
pub struct Reconfigure {
    pub blueprint: Blueprint,
    pub policies: Arc<dyn PolicyFactory>,
    /// Services to deploy.
    pub add: Vec<String>,
    /// Services to stop and make again (a single container whose spec
    /// changed; a load balancer whose settings did).
    pub replace: Vec<String>,
    /// Services whose policies are rebuilt from `policies` (the old ones
    /// were stopped by the caller).
    pub attach: Vec<String>,
    /// Cluster → its new size.
    pub resize: Vec<(String, u32)>,
    /// Load balancer → its new settings (`{mode, limits}`), changed in place.
    pub configure: Vec<(String, serde_json::Value)>,
    /// Cluster → its `update:` block as JSON (`null`: defaults), rolled to
    /// the blueprint's member spec.
    pub roll: Vec<(String, serde_json::Value)>,
    /// Services to destroy.
    pub remove: Vec<String>,
}

/// How one step went.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub service: String,
    /// `deploy`, `replace`, `policies`, `resize`, `configure`, `rollout` or `destroy`.
    pub step: &'static str,
    pub result: Result<serde_json::Value, EntityError>,
}

fn outcome(
    service: &str,
    step: &'static str,
    r: Result<Result<serde_json::Value, EntityError>, MailboxError>,
    me: &str,
) -> StepOutcome {
    StepOutcome {
        service: service.to_string(),
        step,
        result: r.unwrap_or_else(|e| Err(EntityError::unreachable(me.to_string(), e))),
    }
}

impl ApplicationEntity {
    /// The member spec a cluster service's members are made from (as
    /// `ensure_children` makes it).
    fn member_spec(&self, service: &str) -> Option<crate::blueprint::ContainerSpec> {
        let svc = self.blueprint.services.iter().find(|s| s.id == service)?;
        let mut member = svc.member.clone().unwrap_or_default();
        member.placement =
            crate::placement::rules::overlay(svc.placement.as_ref(), member.placement.as_ref());
        rebalance(&mut member.placement, self.policies.rebalance(&svc.id));
        Some(member)
    }
}

impl Handler<Reconfigure> for ApplicationEntity {
    type Result = ResponseActFuture<Self, Vec<StepOutcome>>;

    fn handle(&mut self, msg: Reconfigure, _: &mut Context<Self>) -> Self::Result {
        self.blueprint = msg.blueprint;
        self.policies = msg.policies;
        let me = self.me.to_string();
        // Replacements: the old entity goes before the new one is made
        // (a single container may hold a fixed host port or a volume).
        let old: Vec<_> = msg
            .replace
            .iter()
            .filter_map(|id| self.children.remove(id).map(|c| c.handle.teardown))
            .collect();
        let me2 = me.clone();
        let stop_old =
            async move { teardown_all(me2, "stopping the replaced services: ", old).await };
        Box::pin(stop_old.into_actor(self).then(move |stopped, act, ctx| {
            let mut out = Vec::new();
            if let Err(e) = &stopped {
                for id in &msg.replace {
                    out.push(StepOutcome {
                        service: id.clone(),
                        step: "replace",
                        result: Err(e.clone()),
                    });
                }
            }
            // New and replaced services: made like at deploy (their
            // policies attached, their references wired), then started.
            let before: Vec<String> = act.children.keys().cloned().collect();
            let mut at = act.at.clone();
            at.network = act.at.network.clone();
            act.ensure_children(ctx, &at);
            let made: Vec<(String, Recipient<Invoke>)> = act
                .children
                .iter()
                .filter(|(id, _)| !before.contains(id))
                .map(|(id, c)| (id.clone(), c.handle.invoke.clone()))
                .collect();
            let sources: BTreeMap<String, Recipient<Subscribe>> = act
                .children
                .iter()
                .map(|(id, c)| (id.clone(), c.handle.subscribe.clone()))
                .collect();
            for id in &msg.attach {
                if let Some(t) = act.children.get(id).and_then(|c| c.target.clone()) {
                    act.policies.attach(id, t, &sources);
                    out.push(StepOutcome {
                        service: id.clone(),
                        step: "policies",
                        result: Ok(json!({ "policies": "rebuilt" })),
                    });
                }
            }
            let invoke = |id: &str| act.children.get(id).map(|c| c.handle.invoke.clone());
            let resizes: Vec<_> = msg
                .resize
                .iter()
                .filter_map(|(id, n)| invoke(id).map(|r| (id.clone(), *n, r)))
                .collect();
            let configures: Vec<_> = msg
                .configure
                .iter()
                .filter_map(|(id, args)| invoke(id).map(|r| (id.clone(), args.clone(), r)))
                .collect();
            let rolls: Vec<_> = msg
                .roll
                .iter()
                .filter_map(|(id, update)| {
                    let member = act.member_spec(id)?;
                    let r = invoke(id)?;
                    Some((id.clone(), json!({ "member": member, "update": update }), r))
                })
                .collect();
            let removed: Vec<(String, Recipient<crate::protocol::Teardown>)> = msg
                .remove
                .iter()
                .filter_map(|id| {
                    act.children
                        .remove(id)
                        .map(|c| (id.clone(), c.handle.teardown))
                })
                .collect();
            let replaced = msg.replace.clone();
            async move {
                let starts = futures_util::future::join_all(
                    made.iter().map(|(_, r)| r.send(Invoke::new("start"))),
                )
                .await;
                for ((id, _), r) in made.iter().zip(starts) {
                    let step = if replaced.contains(id) {
                        "replace"
                    } else {
                        "deploy"
                    };
                    out.push(outcome(id, step, r, &me));
                }
                for (id, n, r) in resizes {
                    let res = r
                        .send(Invoke::with_args("resize", json!({ "size": n })))
                        .await;
                    out.push(outcome(&id, "resize", res, &me));
                }
                for (id, args, r) in configures {
                    let res = r.send(Invoke::with_args("configure", args)).await;
                    out.push(outcome(&id, "configure", res, &me));
                }
                for (id, args, r) in rolls {
                    let res = r.send(Invoke::with_args("rollout", args)).await;
                    out.push(outcome(&id, "rollout", res, &me));
                }
                for (id, t) in removed {
                    let res = t.send(crate::protocol::Teardown).await;
                    out.push(outcome(
                        &id,
                        "destroy",
                        res.map(|r| r.map(|_| json!({}))),
                        &me,
                    ));
                }
                out
            }
            .into_actor(act)
        }))
    }
}
