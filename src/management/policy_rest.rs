//! REST operations on a running policy: list, get, put a new config,
//! start, stop. The request is routed to the policy actor registered for
//! (application, entity, policy).

use actix::prelude::*;

use crate::protocol::EntityError;
use crate::wire::PolicyStatus;

use super::{Management, ManagementError};

/// A REST operation on one of an entity's policies.
#[derive(Debug, Clone)]
pub enum PolicyRequestOp {
    Get,
    /// A new config: YAML or JSON text of the kind's keys (defaults apply
    /// for keys left out).
    Put(String),
    Start,
    Stop,
}

/// The policies of an entity, each as `GET .../policies/{policy}` shows it.
#[derive(Message)]
#[rtype(result = "Result<Vec<PolicyStatus>, ManagementError>")]
pub struct ListPolicies {
    pub app: String,
    pub entity: String,
}

impl Handler<ListPolicies> for Management {
    type Result = ResponseFuture<Result<Vec<PolicyStatus>, ManagementError>>;
    fn handle(&mut self, msg: ListPolicies, _: &mut Context<Self>) -> Self::Result {
        use crate::policy::{PolicyControl, PolicyOp};
        if !self.apps.contains_key(&msg.app) {
            return Box::pin(async move { Err(ManagementError::NoApplication(msg.app)) });
        }
        let names = self.policies.names(&msg.app, &msg.entity);
        let controls: Vec<(String, actix::Recipient<PolicyControl>)> = names
            .iter()
            .filter_map(|n| {
                self.policies
                    .get(&msg.app, &msg.entity, n)
                    .map(|e| (n.clone(), e.control.clone()))
            })
            .collect();
        Box::pin(async move {
            let mut out = Vec::new();
            for (n, c) in controls {
                if let Ok(Ok(st)) = c
                    .send(PolicyControl {
                        policy: n,
                        op: PolicyOp::Get,
                    })
                    .await
                {
                    out.push(st);
                }
            }
            Ok(out)
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<PolicyStatus, ManagementError>")]
pub struct PolicyRequest {
    pub app: String,
    pub entity: String,
    pub policy: String,
    pub op: PolicyRequestOp,
}

/// An operator's change to a policy (`drover policy set|start|stop`),
/// stored under the policy's key with [`OVERRIDE_PREFIX`] so it survives a
/// restart; an apply of the blueprint clears it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Override {
    /// The config set last (`None`: the blueprint's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::policy::PolicyConfig>,
    /// Started or stopped last (`None`: as built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
}

/// Where overrides live among the policies' stored state.
pub const OVERRIDE_PREFIX: &str = "override:";

impl Override {
    /// Puts the change back on a policy rebuilt from the blueprint.
    pub fn reapply(&self, policy: &str, control: &actix::Recipient<crate::policy::PolicyControl>) {
        use crate::policy::{PolicyControl, PolicyOp};
        if let Some(c) = &self.config {
            control.do_send(PolicyControl {
                policy: policy.to_string(),
                op: PolicyOp::Set(c.clone()),
            });
        }
        if let Some(r) = self.running {
            control.do_send(PolicyControl {
                policy: policy.to_string(),
                op: if r { PolicyOp::Start } else { PolicyOp::Stop },
            });
        }
    }
}

/// The overrides a store held (cleared ones are stored as `null`).
pub fn overrides_from(
    snapshot: &crate::store::Snapshot,
) -> std::collections::BTreeMap<(String, String, String), Override> {
    snapshot
        .policies
        .iter()
        .filter(|((app, _, _), _)| snapshot.apps.contains_key(app))
        .filter_map(|((app, entity, key), v)| {
            let policy = key.strip_prefix(OVERRIDE_PREFIX)?;
            let o: Override = serde_json::from_value(v.clone()).ok()?;
            (o != Override::default())
                .then(|| ((app.clone(), entity.clone(), policy.to_string()), o))
        })
        .collect()
}

impl Management {
    fn store_override(&self, app: &str, entity: &str, policy: &str, o: Option<&Override>) {
        if let Some(s) = &self.store {
            s.do_send(crate::store::StoreWrite::PutPolicy {
                app: app.to_string(),
                entity: entity.to_string(),
                policy: format!("{OVERRIDE_PREFIX}{policy}"),
                state: o
                    .map(|o| serde_json::to_value(o).unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null),
            });
        }
    }

    /// An apply put the blueprint's config back.
    pub(super) fn clear_override(&mut self, app: &str, entity: &str, policy: &str) {
        let key = (app.to_string(), entity.to_string(), policy.to_string());
        if self.overrides.remove(&key).is_some() {
            self.store_override(app, entity, policy, None);
        }
    }
}

impl Handler<PolicyRequest> for Management {
    type Result = ResponseActFuture<Self, Result<PolicyStatus, ManagementError>>;
    fn handle(&mut self, msg: PolicyRequest, _: &mut Context<Self>) -> Self::Result {
        use crate::policy::{PolicyControl, PolicyOp};
        if !self.apps.contains_key(&msg.app) {
            return Box::pin(fut::ready(Err(ManagementError::NoApplication(msg.app))));
        }
        let Some(entry) = self.policies.get(&msg.app, &msg.entity, &msg.policy) else {
            let known = self.policies.names(&msg.app, &msg.entity).join(", ");
            let e = EntityError::Failed {
                entity: format!("{}/{}", msg.app, msg.entity),
                message: format!(
                    "no policy `{}`; policies here: {}",
                    msg.policy,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known
                    }
                ),
            };
            return Box::pin(fut::ready(Err(ManagementError::NoPolicy(e.to_string()))));
        };
        let op = match msg.op {
            PolicyRequestOp::Get => PolicyOp::Get,
            PolicyRequestOp::Start => PolicyOp::Start,
            PolicyRequestOp::Stop => PolicyOp::Stop,
            PolicyRequestOp::Put(text) => match parse_policy_body(&entry.kind, &text) {
                Ok(c) => PolicyOp::Set(c),
                Err(e) => return Box::pin(fut::ready(Err(ManagementError::Blueprint(e)))),
            },
        };
        let control = entry.control.clone();
        let policy = msg.policy.clone();
        let change = match &op {
            PolicyOp::Get => None,
            PolicyOp::Set(c) => Some((Some(c.clone()), None, "set")),
            PolicyOp::Start => Some((None, Some(true), "start")),
            PolicyOp::Stop => Some((None, Some(false), "stop")),
        };
        let (app, entity) = (msg.app, msg.entity);
        Box::pin(
            async move {
                match control.send(PolicyControl { policy, op }).await {
                    Ok(Ok(st)) => Ok(st),
                    Ok(Err(e)) => Err(ManagementError::NoPolicy(e.to_string())),
                    Err(e) => Err(ManagementError::NoPolicy(format!(
                        "the policy is not running: {e}"
                    ))),
                }
            }
            .into_actor(self)
            .map(move |res, act, _| {
                // A change that took is stored and recorded: it holds across
                // restarts until an apply of the blueprint resets it.
                if let (Ok(st), Some((config, running, verb))) = (&res, change) {
                    let key = (app.clone(), entity.clone(), st.name.clone());
                    let o = act.overrides.entry(key).or_default();
                    if config.is_some() {
                        o.config = config;
                    }
                    if running.is_some() {
                        o.running = running;
                    }
                    let o = o.clone();
                    act.store_override(&app, &entity, &st.name, Some(&o));
                    act.record(super::Activity::policy(
                        &app,
                        &entity,
                        &format!("policy.{verb}"),
                        serde_json::json!({ "policy": st.name, "config": st.config, "running": st.running }),
                        "ok",
                        format!(
                            "policy `{}` {verb} by an operator; kept across restarts until the blueprint is applied again",
                            st.name
                        ),
                    ));
                }
                res
            }),
        )
    }
}

/// Parses a policy config body with positions for its errors.
fn parse_policy_body(
    kind: &str,
    text: &str,
) -> Result<crate::policy::PolicyConfig, crate::blueprint::BlueprintErrors> {
    use crate::blueprint::{BlueprintError, BlueprintErrors};
    let err = |line: Option<usize>, column: Option<usize>, path: String, error: String| {
        BlueprintErrors(vec![BlueprintError {
            file: "<request>".into(),
            line,
            column,
            path,
            error,
        }])
    };
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        err(
            loc.as_ref().map(|l| l.line()),
            loc.as_ref().map(|l| l.column()),
            String::new(),
            e.to_string(),
        )
    })?;
    crate::policy::parse_config(kind, value).map_err(|errs| {
        let e = &errs[0];
        // Point at the key's line when it is written in the body.
        let key = e.path.split('.').next().unwrap_or("");
        let pos = text
            .lines()
            .enumerate()
            .find(|(_, l)| {
                !key.is_empty()
                    && (l.trim_start().starts_with(&format!("{key}:"))
                        || l.contains(&format!("\"{key}\"")))
            })
            .map(|(i, l)| (i + 1, l.len() - l.trim_start().len() + 1));
        err(
            pos.map(|p| p.0).or(Some(1)),
            pos.map(|p| p.1).or(Some(1)),
            e.path.clone(),
            e.message.clone(),
        )
    })
}
