//! Apply: bring an application to a blueprint. The plan is pure
//! ([`super::plan`]); this file checks the input, records the intent in the
//! store, and hands the steps to the policies and the application entity.
//!
//! Order (each step an activity with its reason): the new blueprint is
//! validated by the one validation, and the plan made, before anything is
//! touched (nothing is half-applied on bad input); the blueprint is stored
//! (intent before action: a crash after this point rebinds the new
//! blueprint); policies are reconfigured, rebuilt or reset; then the
//! application entity deploys added services, replaces what must be made
//! again, resizes, rolls clusters through their `rollout` effector, and
//! destroys removed services.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde_json::json;

use crate::entity::application::{Reconfigure, StepOutcome};
use crate::metrics;
use crate::policy::{PolicyControl, PolicyOp};
use crate::wire::{Plan, PlanAction, PolicyOverrideRef};

use super::{Activity, Deploy, Management, ManagementError};

/// `PUT /v1/applications/{app}`, `drover apply`, `drover diff`.
#[derive(Message)]
#[rtype(result = "Result<Plan, ManagementError>")]
pub struct Apply {
    /// Names the text in errors: a path, or `<request>`.
    pub file: String,
    pub text: String,
    /// The application named by the route; the blueprint's `name` must match.
    pub app: Option<String>,
    /// Only make the plan.
    pub dry_run: bool,
}

impl Management {
    fn refused(e: ManagementError) -> ResponseActFuture<Self, Result<Plan, ManagementError>> {
        metrics::APPLIES.with_label_values(&["refused"]).inc();
        Box::pin(fut::ready(Err(e)))
    }

    /// The overrides in force on `app`.
    pub(super) fn overrides_of(&self, app: &str) -> Vec<PolicyOverrideRef> {
        self.overrides
            .keys()
            .filter(|(a, _, _)| a == app)
            .map(|(_, e, p)| PolicyOverrideRef {
                entity: e.clone(),
                policy: p.clone(),
            })
            .collect()
    }
}

impl Handler<Apply> for Management {
    type Result = ResponseActFuture<Self, Result<Plan, ManagementError>>;

    fn handle(&mut self, msg: Apply, ctx: &mut Context<Self>) -> Self::Result {
        let bp = match self.validate(&msg.file, &msg.text) {
            Ok(bp) => bp,
            Err(e) => return Self::refused(ManagementError::Blueprint(e)),
        };
        let id = bp.name.clone();
        if let Some(route) = &msg.app {
            if *route != id {
                return Self::refused(ManagementError::NotApplicable(format!(
                    "the blueprint's `name` is `{id}` but the request is for application `{route}`; PUT it to /v1/applications/{id}"
                )));
            }
        }
        let presets = &self.presets;
        let kind_of = |p: &crate::blueprint::PolicySpec| {
            crate::policy::resolve(p, presets)
                .map(|r| r.config.kind().to_string())
                .unwrap_or_default()
        };
        let old = self.apps.get(&id);
        if old.is_some_and(|r| r.destroying) {
            return Self::refused(ManagementError::Destroying(id));
        }
        let plan = match super::plan::plan(
            old.map(|r| &r.blueprint),
            &bp,
            &self.overrides_of(&id),
            &kind_of,
        ) {
            Ok(p) => p,
            Err(e) => return Self::refused(ManagementError::NotApplicable(e.to_string())),
        };
        if msg.dry_run {
            return Box::pin(fut::ready(Ok(plan)));
        }
        if plan.create {
            let deploy = Handler::<Deploy>::handle(
                self,
                Deploy {
                    file: msg.file,
                    text: msg.text,
                },
                ctx,
            );
            return Box::pin(deploy.map(move |res, _, _| {
                let outcome = if res.is_ok() { "created" } else { "refused" };
                metrics::APPLIES.with_label_values(&[outcome]).inc();
                res.map(|_| plan)
            }));
        }
        if plan.noop {
            metrics::APPLIES.with_label_values(&["noop"]).inc();
            self.record(Activity {
                kind: "event".into(),
                ..Activity::policy(
                    &id,
                    &id,
                    "apply",
                    json!({ "file": msg.file, "noop": true }),
                    "ok",
                    format!("{} is what the application runs: nothing to do", msg.file),
                )
            });
            return Box::pin(fut::ready(Ok(plan)));
        }
        if !self.applying.insert(id.clone()) {
            return Self::refused(ManagementError::Applying(id));
        }
        // Intent before action: the steps a rebind must finish go to the
        // store before the blueprint (one store thread: in this order).
        self.store_pending(
            &id,
            Some(&super::pending::PendingApply::of(&plan, &msg.text)),
        );
        let created_ms = self.apps[&id].created_ms;
        let stored = crate::store::StoredApp {
            id: id.clone(),
            file: msg.file.clone(),
            text: msg.text.clone(),
            created_ms,
            destroying: false,
        };
        Box::pin(
            self.store_write(crate::store::StoreWrite::PutApp(stored))
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if let Err(e) = res {
                        act.applying.remove(&id);
                        act.store_pending(&id, None);
                        metrics::APPLIES.with_label_values(&["refused"]).inc();
                        return Err(ManagementError::Store(e));
                    }
                    act.carry_out(ctx, bp, msg.file, msg.text, &plan);
                    Ok(plan)
                }),
        )
    }
}

impl Management {
    /// Stores (or clears) the steps of the application's apply under way.
    pub(super) fn store_pending(&self, app: &str, p: Option<&super::pending::PendingApply>) {
        if let Some(s) = &self.store {
            s.do_send(crate::store::StoreWrite::PutPolicy {
                app: app.to_string(),
                entity: app.to_string(),
                policy: super::pending::PENDING.to_string(),
                state: p
                    .and_then(|p| serde_json::to_value(p).ok())
                    .unwrap_or(serde_json::Value::Null),
            });
        }
    }

    /// The plan's steps, once the new blueprint is stored.
    fn carry_out(
        &mut self,
        ctx: &mut Context<Self>,
        bp: crate::blueprint::Blueprint,
        file: String,
        text: String,
        plan: &Plan,
    ) {
        let id = bp.name.clone();
        let old_bp = {
            let rec = self.apps.get_mut(&id).expect("checked by the caller");
            let old = std::mem::replace(&mut rec.blueprint, bp.clone());
            rec.text = text;
            rec.file = file.clone();
            old
        };
        self.publish_app(&id);
        self.record(Activity {
            kind: "event".into(),
            ..Activity::policy(
                &id,
                &id,
                "apply",
                serde_json::to_value(plan).unwrap_or_default(),
                "ok",
                format!("applying {file}: {}", summary(plan)),
            )
        });
        let of = |a: PlanAction| -> Vec<String> {
            plan.services
                .iter()
                .filter(|s| s.action == a)
                .map(|s| s.id.clone())
                .collect()
        };
        let service = |b: &crate::blueprint::Blueprint, s: &str| {
            b.services.iter().find(|x| x.id == s).cloned()
        };
        // Policies of kept services: a changed entry is reconfigured in
        // place when it is the only kind of change to that service's
        // policies; an added or removed one rebuilds them all (the factory
        // attaches a service's policies together).
        let mut attach = Vec::new();
        let mut reset: Vec<(String, String)> = Vec::new();
        for sp in plan
            .services
            .iter()
            .filter(|s| matches!(s.action, PlanAction::InPlace | PlanAction::Rolled))
        {
            let policy_changes: Vec<_> = sp
                .changes
                .iter()
                .filter(|c| c.path.starts_with("policies."))
                .collect();
            if policy_changes.is_empty() {
                continue;
            }
            let rebuild = policy_changes
                .iter()
                .any(|c| c.from.is_null() || c.to.is_null());
            if rebuild {
                for name in self.policies.names(&id, &sp.id) {
                    if let Some(e) = self.policies.get(&id, &sp.id, &name) {
                        e.control.do_send(PolicyControl {
                            policy: name.clone(),
                            op: PolicyOp::Stop,
                        });
                    }
                    self.policies.forget(&id, &sp.id, &name);
                }
                attach.push(sp.id.clone());
            } else {
                for c in policy_changes {
                    let name = c.path.trim_start_matches("policies.").to_string();
                    reset.push((sp.id.clone(), name));
                }
            }
        }
        // Overrides in force go back to the blueprint's config (unless the
        // policy is rebuilt anyway, or its service goes).
        let gone: Vec<String> = of(PlanAction::Removed)
            .into_iter()
            .chain(of(PlanAction::Replaced))
            .chain(attach.iter().cloned())
            .collect();
        for o in &plan.overrides_reset {
            if !gone.contains(&o.entity) && !reset.contains(&(o.entity.clone(), o.policy.clone())) {
                reset.push((o.entity.clone(), o.policy.clone()));
            }
        }
        for o in &plan.overrides_reset {
            self.clear_override(&id, &o.entity, &o.policy);
        }
        // The policies of removed and replaced services go with their
        // entity (the entity's `Gone` stops them); the replacement
        // registers its own.
        for entity in of(PlanAction::Removed)
            .iter()
            .chain(&of(PlanAction::Replaced))
        {
            for name in self.policies.names(&id, entity) {
                self.policies.forget(&id, entity, &name);
            }
        }
        for (entity, policy) in reset {
            let Some(spec) = service(&bp, &entity).and_then(|s| {
                s.policies
                    .iter()
                    .find(|p| super::plan::policy_name(p) == policy)
                    .cloned()
            }) else {
                continue;
            };
            let (Ok(resolved), Some(e)) = (
                crate::policy::resolve(&spec, &self.presets),
                self.policies.get(&id, &entity, &policy),
            ) else {
                continue;
            };
            let control = e.control.clone();
            for op in [PolicyOp::Set(resolved.config.clone()), PolicyOp::Start] {
                control.do_send(PolicyControl {
                    policy: policy.clone(),
                    op,
                });
            }
            self.policies.update_spec(&id, &entity, &policy, spec);
            self.record(Activity::policy(
                &id,
                &entity,
                "apply.policy",
                json!({ "policy": policy }),
                "ok",
                format!("policy `{policy}` set to the blueprint's config"),
            ));
        }
        let resize: Vec<(String, u32)> = plan
            .services
            .iter()
            .filter(|s| matches!(s.action, PlanAction::InPlace | PlanAction::Rolled))
            .filter_map(|s| {
                let c = s.changes.iter().find(|c| c.path == "initial_size")?;
                Some((s.id.clone(), c.to.as_u64()? as u32))
            })
            .collect();
        let roll: Vec<(String, serde_json::Value)> = of(PlanAction::Rolled)
            .into_iter()
            .map(|s| {
                let update = service(&bp, &s)
                    .and_then(|svc| serde_json::to_value(svc).ok())
                    .and_then(|v| v.get("update").cloned())
                    .unwrap_or(serde_json::Value::Null);
                (s, update)
            })
            .collect();
        // Load balancers whose settings changed: their agents take the
        // new ones in place.
        let configure: Vec<(String, serde_json::Value)> = plan
            .services
            .iter()
            .filter(|s| s.action == PlanAction::InPlace)
            .filter(|s| {
                s.changes
                    .iter()
                    .any(|c| super::plan::IN_PLACE_LB.contains(&c.path.as_str()))
            })
            .filter_map(|s| {
                let svc = service(&bp, &s.id)?;
                let settings = crate::lb::agent::AgentSettings {
                    mode: crate::lb::mode_of(&bp, &svc),
                    limits: svc.limits.clone().unwrap_or_default(),
                };
                Some((s.id.clone(), serde_json::to_value(settings).ok()?))
            })
            .collect();
        drop(old_bp);
        let factory = self.factory(ctx, &bp);
        let Some(addr) = self.apps.get(&id).and_then(|r| r.entity.clone()) else {
            self.applying.remove(&id);
            return;
        };
        let started = std::time::Instant::now();
        let msg = Reconfigure {
            blueprint: bp,
            policies: factory,
            add: of(PlanAction::Added),
            replace: of(PlanAction::Replaced),
            attach,
            resize,
            configure,
            roll,
            remove: of(PlanAction::Removed),
        };
        ctx.spawn(addr.send(msg).into_actor(self).map(move |res, act, _| {
            act.applying.remove(&id);
            // Carried out (well or badly): nothing for a rebind to finish.
            act.store_pending(&id, None);
            let steps = res.unwrap_or_default();
            let failed = steps.iter().any(|s| s.result.is_err());
            for s in steps {
                act.record_step(&id, s);
            }
            metrics::APPLIES
                .with_label_values(&[if failed { "failed" } else { "changed" }])
                .inc();
            tracing::info!(app = %id, seconds = started.elapsed().as_secs_f64(), failed, "applied");
        }));
    }

    fn record_step(&mut self, app: &str, s: StepOutcome) {
        let (outcome, message) = match &s.result {
            Ok(v) => ("ok", format!("{} of `{}` done: {v}", s.step, s.service)),
            Err(e) => (
                "error",
                format!("{} of `{}` failed: {e}", s.step, s.service),
            ),
        };
        self.record(Activity::policy(
            app,
            &s.service,
            &format!("apply.{}", s.step),
            json!({}),
            outcome,
            message,
        ));
    }

    /// The policy factory of a blueprint (deploy and apply).
    pub(super) fn factory(
        &self,
        ctx: &mut Context<Self>,
        bp: &crate::blueprint::Blueprint,
    ) -> std::sync::Arc<dyn crate::entity::policies::PolicyFactory> {
        let policies: BTreeMap<String, Vec<crate::policy::ResolvedPolicy>> = bp
            .services
            .iter()
            .map(|svc| {
                (
                    svc.id.clone(),
                    svc.policies
                        .iter()
                        .filter_map(|p| crate::policy::resolve(p, &self.presets).ok())
                        .collect(),
                )
            })
            .collect();
        let links = self.links(ctx);
        let tune = self.pools.get(&bp.location).map(|p| p.clone().recipient());
        std::sync::Arc::new(crate::policy_factory::BlueprintPolicies::new(
            bp,
            policies,
            links,
            ctx.address().recipient(),
            tune,
        ))
    }
}

/// One line for the activity: counts by action.
pub fn summary(plan: &Plan) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &plan.services {
        *counts.entry(s.action.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    if !plan.overrides_reset.is_empty() {
        parts.push(format!(
            "{} policy overrides reset",
            plan.overrides_reset.len()
        ));
    }
    parts.join(", ")
}
