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

impl Handler<PolicyRequest> for Management {
    type Result = ResponseFuture<Result<PolicyStatus, ManagementError>>;
    fn handle(&mut self, msg: PolicyRequest, _: &mut Context<Self>) -> Self::Result {
        use crate::policy::{PolicyControl, PolicyOp};
        if !self.apps.contains_key(&msg.app) {
            return Box::pin(async move { Err(ManagementError::NoApplication(msg.app)) });
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
            return Box::pin(async move { Err(ManagementError::NoPolicy(e.to_string())) });
        };
        let op = match msg.op {
            PolicyRequestOp::Get => PolicyOp::Get,
            PolicyRequestOp::Start => PolicyOp::Start,
            PolicyRequestOp::Stop => PolicyOp::Stop,
            PolicyRequestOp::Put(text) => match parse_policy_body(&entry.kind, &text) {
                Ok(c) => PolicyOp::Set(c),
                Err(e) => return Box::pin(async move { Err(ManagementError::Blueprint(e)) }),
            },
        };
        let control = entry.control.clone();
        let policy = msg.policy.clone();
        Box::pin(async move {
            match control.send(PolicyControl { policy, op }).await {
                Ok(Ok(st)) => Ok(st),
                Ok(Err(e)) => Err(ManagementError::NoPolicy(e.to_string())),
                Err(e) => Err(ManagementError::NoPolicy(format!(
                    "the policy is not running: {e}"
                ))),
            }
        })
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
