//! The plan of an apply (pure): from the blueprint an application runs, the
//! one it should run, and the policy overrides in force, what happens to
//! each service. `drover diff` prints it; `drover apply` carries it out.
//!
//! Services are compared key by key through their serialized form, so a
//! key added to the model later is never silently ignored: a key this
//! module does not know changes the service the safe way (a roll for a
//! cluster's member, a replacement otherwise).
//!
//! What may change in place, by service type (everything else of a cluster
//! is its member spec, rolled; everything else of a container or a load
//! balancer replaces it, because Docker cannot change a running
//! container's labels, env, ports or mounts, and a load balancer's listener
//! is bound when it is made):
//! - every type: `policies` (added, removed, reconfigured), and the
//!   start-up ordering keys (`depends_on`, `on_reference_change`,
//!   `reference_timeout`, `abort_if_source_on_fire`), which take effect at
//!   the next start;
//! - clusters: `initial_size` (a resize) and `update` (the next rollout's
//!   settings);
//! - load balancers: `mode` and `limits`, sent to the running agent; its
//!   `port`, `bind` and `target` make it again (the listening socket and
//!   the pool it follows are set when it is made).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::blueprint::{Blueprint, PolicySpec, ServiceSpec, ServiceType};
use crate::wire::{Plan, PlanAction, PlanChange, PolicyOverrideRef, ServicePlan};

/// An apply that cannot be carried out on a running application.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "the application `{app}` runs in location `{from}`; moving it to `{to}` is not an apply: destroy it and deploy it again"
    )]
    LocationChanged {
        app: String,
        from: String,
        to: String,
    },
    #[error(
        "the application `{app}`'s `networks` changed ({from} → {to}); networks are made with the application: destroy it and deploy it again"
    )]
    NetworksChanged {
        app: String,
        from: String,
        to: String,
    },
}

/// Keys that change in place on every service type.
const IN_PLACE_ANY: &[&str] = &[
    "policies",
    "depends_on",
    "on_reference_change",
    "reference_timeout",
    "abort_if_source_on_fire",
];
/// Keys that change in place on a cluster, besides [`IN_PLACE_ANY`].
const IN_PLACE_CLUSTER: &[&str] = &["initial_size", "update"];
/// Keys that change in place on a load balancer, besides [`IN_PLACE_ANY`]:
/// its agent takes new settings over its control API (same socket, same
/// container, open connections kept).
pub const IN_PLACE_LB: &[&str] = &["mode", "limits"];
/// A cluster's keys that are its members' spec: rolled.
const ROLLED_CLUSTER: &[&str] = &["member", "placement"];
/// Policy kinds wired into the containers when a service is made (a
/// cluster's members' restarters; `cpu-placement`'s `placement.rebalance`):
/// adding or removing one replaces the service.
const WIRED_KINDS: &[&str] = &["cpu-placement"];
const WIRED_KINDS_CLUSTER: &[&str] = &["restarter", "cpu-placement"];

/// A policy's name on its entity: its preset, else its kind (as the policy
/// factory registers it).
pub fn policy_name(p: &PolicySpec) -> String {
    p.preset
        .clone()
        .or_else(|| p.kind.clone())
        .unwrap_or_default()
}

/// The plan from `old` (`None`: the application does not exist) to `new`.
/// `overrides`: the policy changes operators made since the last apply;
/// `kind_of`: a policy entry's kind once its preset is resolved.
pub fn plan(
    old: Option<&Blueprint>,
    new: &Blueprint,
    overrides: &[PolicyOverrideRef],
    kind_of: &dyn Fn(&PolicySpec) -> String,
) -> Result<Plan, PlanError> {
    let Some(old) = old else {
        return Ok(Plan {
            app: new.name.clone(),
            create: true,
            services: new
                .services
                .iter()
                .map(|s| simple(&s.id, PlanAction::Added))
                .collect(),
            overrides_reset: Vec::new(),
            noop: false,
        });
    };
    if old.location != new.location {
        return Err(PlanError::LocationChanged {
            app: new.name.clone(),
            from: old.location.clone(),
            to: new.location.clone(),
        });
    }
    if old.networks != new.networks {
        let names = |b: &Blueprint| {
            format!(
                "[{}]",
                b.networks
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(PlanError::NetworksChanged {
            app: new.name.clone(),
            from: names(old),
            to: names(new),
        });
    }
    let olds: BTreeMap<&str, &ServiceSpec> =
        old.services.iter().map(|s| (s.id.as_str(), s)).collect();
    let news: BTreeSet<&str> = new.services.iter().map(|s| s.id.as_str()).collect();
    let mut services = Vec::new();
    for svc in &new.services {
        services.push(match olds.get(svc.id.as_str()) {
            None => simple(&svc.id, PlanAction::Added),
            Some(before) => service_plan(before, svc, kind_of),
        });
    }
    for svc in &old.services {
        if !news.contains(svc.id.as_str()) {
            services.push(simple(&svc.id, PlanAction::Removed));
        }
    }
    let mut overrides_reset = overrides.to_vec();
    overrides_reset.sort();
    overrides_reset.dedup();
    let noop = overrides_reset.is_empty() && services.iter().all(|s| s.action == PlanAction::Kept);
    Ok(Plan {
        app: new.name.clone(),
        create: false,
        services,
        overrides_reset,
        noop,
    })
}

fn simple(id: &str, action: PlanAction) -> ServicePlan {
    ServicePlan {
        id: id.to_string(),
        action,
        changes: Vec::new(),
        reason: None,
    }
}

/// A service as a map of its keys, with the defaults that are written
/// either way filled in (`initial_size: 1` is the same as no size).
fn keys(svc: &ServiceSpec) -> Map<String, Value> {
    let mut map = match serde_json::to_value(svc) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if svc.kind == ServiceType::Cluster {
        map.entry("initial_size")
            .or_insert(Value::from(crate::blueprint::default_initial_size()));
    }
    map.remove("id");
    map
}

/// Every differing key of two maps, under `prefix`.
fn differences(prefix: &str, a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<PlanChange> {
    let all: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    all.into_iter()
        .filter_map(|k| {
            let from = a.get(k).cloned().unwrap_or(Value::Null);
            let to = b.get(k).cloned().unwrap_or(Value::Null);
            (from != to).then(|| PlanChange {
                path: format!("{prefix}{k}"),
                from,
                to,
            })
        })
        .collect()
}

fn policies_by_name(svc: &ServiceSpec) -> Map<String, Value> {
    svc.policies
        .iter()
        .map(|p| {
            (
                policy_name(p),
                serde_json::to_value(p).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// How a cluster rolls, when it is not the usual surge: members with
/// per-member data are replaced in place (the cluster's rollout does it).
fn rolled_how(old: &ServiceSpec, new: &ServiceSpec) -> Option<String> {
    let named = |s: &ServiceSpec| {
        s.member.as_ref().is_some_and(|m| {
            crate::blueprint::volumes::named(&m.volumes)
                .next()
                .is_some()
        })
    };
    (named(old) || named(new)).then(|| {
        "members own named volumes: each is replaced in place, one at a time (drained, \
         stopped, started again on its volume); max_surge does not apply"
            .to_string()
    })
}

fn service_plan(
    old: &ServiceSpec,
    new: &ServiceSpec,
    kind_of: &dyn Fn(&PolicySpec) -> String,
) -> ServicePlan {
    if old.kind != new.kind {
        return ServicePlan {
            id: new.id.clone(),
            action: PlanAction::Replaced,
            changes: vec![PlanChange {
                path: "type".into(),
                from: Value::from(old.kind.as_str()),
                to: Value::from(new.kind.as_str()),
            }],
            reason: Some("its type changed".into()),
        };
    }
    let (a, b) = (keys(old), keys(new));
    let mut changes = Vec::new();
    let mut action = PlanAction::Kept;
    let mut reason = None;
    let mut raise = |to: PlanAction, why: Option<String>, action: &mut PlanAction| {
        let rank = |x: PlanAction| match x {
            PlanAction::Kept => 0,
            PlanAction::InPlace => 1,
            PlanAction::Rolled => 2,
            _ => 3,
        };
        if rank(to) > rank(*action) {
            *action = to;
            if why.is_some() {
                reason = why;
            }
        }
    };
    for change in differences("", &a, &b) {
        let key = change.path.clone();
        let cluster = new.kind == ServiceType::Cluster;
        if key == "policies" {
            let wired = if cluster {
                WIRED_KINDS_CLUSTER
            } else {
                WIRED_KINDS
            };
            let (pa, pb) = (policies_by_name(old), policies_by_name(new));
            for pc in differences("policies.", &pa, &pb) {
                let added_or_removed = pc.from.is_null() || pc.to.is_null();
                let kind = old
                    .policies
                    .iter()
                    .chain(&new.policies)
                    .find(|p| format!("policies.{}", policy_name(p)) == pc.path)
                    .map(kind_of)
                    .unwrap_or_default();
                if added_or_removed && wired.contains(&kind.as_str()) {
                    raise(
                        PlanAction::Replaced,
                        Some(format!(
                            "a `{kind}` policy is wired into the containers when the service is made"
                        )),
                        &mut action,
                    );
                } else {
                    raise(PlanAction::InPlace, None, &mut action);
                }
                changes.push(pc);
            }
            continue;
        }
        let lb = new.kind == ServiceType::LoadBalancer;
        if lb && IN_PLACE_LB.contains(&key.as_str()) {
            raise(
                PlanAction::InPlace,
                Some(
                    "changed in place: the running load balancer takes the new settings \
                     (same container, same listening socket, open connections kept)"
                        .into(),
                ),
                &mut action,
            );
            changes.push(change);
        } else if IN_PLACE_ANY.contains(&key.as_str())
            || (cluster && IN_PLACE_CLUSTER.contains(&key.as_str()))
        {
            raise(PlanAction::InPlace, None, &mut action);
            changes.push(change);
        } else if cluster && ROLLED_CLUSTER.contains(&key.as_str()) {
            raise(PlanAction::Rolled, rolled_how(old, new), &mut action);
            if key == "member" {
                let obj = |v: &Value| v.as_object().cloned().unwrap_or_default();
                changes.extend(differences("member.", &obj(&change.from), &obj(&change.to)));
            } else {
                changes.push(change);
            }
        } else {
            let why = match new.kind {
                ServiceType::Container => {
                    format!("a single container's `{key}` changed: it is stopped and made again")
                }
                ServiceType::LoadBalancer => format!(
                    "a load balancer's `{key}` is set when its listening socket is made: it is made again \
                     (a moment without a listener on that port); `mode` and `limits` change in place"
                ),
                ServiceType::Cluster => {
                    format!("a cluster's `{key}` is set when it is made: it is made again")
                }
            };
            raise(PlanAction::Replaced, Some(why), &mut action);
            changes.push(change);
        }
    }
    ServicePlan {
        id: new.id.clone(),
        action,
        changes,
        reason,
    }
}

#[cfg(test)]
mod tests;
