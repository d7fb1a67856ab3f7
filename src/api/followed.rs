//! A standby's own answers to reads: what the store says, as the standby
//! last read it through etcd's watch (pure functions over a
//! [`Snapshot`]).
//!
//! The store holds each application's blueprint, each cluster's
//! membership, desired size and revisions, and each policy's memory; it
//! does not hold what only a running leader observes (lifecycle states,
//! health, container ids, addresses, CPU). So these answers have the
//! leader's shapes, with the tree rebuilt from blueprint and membership,
//! every state `created` ("declared, not observed here"), and only the
//! sensors the store knows (`group.desired_size`, `group.members`). The
//! standby sends them only with `X-Drover-Stale: true` (see
//! [`super::standby`]).

use std::collections::BTreeMap;

use crate::blueprint::{Blueprint, ServiceType};
use crate::protocol::{sensors as s, EntityKind, Lifecycle, SensorName, SensorValue};
use crate::store::{ClusterState, Snapshot, StoredApp};
use crate::wire::{AppDetail, AppSummary, EntityView, PolicyStatus, RevisionInfo, RolloutStatus};

/// Why a stored read has no answer: the `404`s of the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    #[error("no application `{0}`")]
    App(String),
    #[error("application `{app}` has no entity `{entity}`")]
    Entity { app: String, entity: String },
    #[error("entity `{entity}` of `{app}` has no policy `{policy}`")]
    Policy {
        app: String,
        entity: String,
        policy: String,
    },
    #[error("entity `{entity}` of `{app}` is not a cluster: it has no rollout")]
    NotCluster { app: String, entity: String },
    /// A stored blueprint this drover cannot parse (a newer drover's).
    #[error("the stored blueprint of `{app}` does not parse here: {message}")]
    Blueprint { app: String, message: String },
}

fn blueprint(app: &StoredApp) -> Result<Blueprint, NotStored> {
    crate::blueprint::parse_blueprint(&app.file, &app.text).map_err(|e| NotStored::Blueprint {
        app: app.id.clone(),
        message: e.to_string(),
    })
}

fn stored_app<'a>(snap: &'a Snapshot, app: &str) -> Result<&'a StoredApp, NotStored> {
    snap.apps
        .get(app)
        .filter(|a| !a.destroying)
        .ok_or_else(|| NotStored::App(app.to_string()))
}

fn view(id: &str, kind: EntityKind, parent: Option<&str>) -> EntityView {
    EntityView {
        id: id.to_string(),
        kind,
        state: Lifecycle::Created,
        parent: parent.map(str::to_string),
        children: Vec::new(),
        sensors: BTreeMap::new(),
    }
}

fn sensor(value: serde_json::Value, at_ms: u64) -> SensorValue {
    SensorValue::new(value, at_ms)
}

/// The tree as stored: the application, then each service followed by its
/// members by the numbers the store holds (as the leader lists them).
pub fn entities(snap: &Snapshot, app: &str) -> Result<Vec<EntityView>, NotStored> {
    let stored = stored_app(snap, app)?;
    let bp = blueprint(stored)?;
    let mut root = view(app, EntityKind::Application, None);
    let mut services = Vec::new();
    for svc in &bp.services {
        let mut members = Vec::new();
        root.children.push(svc.id.clone());
        let kind = match svc.kind {
            ServiceType::Container => EntityKind::Container,
            ServiceType::Cluster => EntityKind::Cluster,
            ServiceType::LoadBalancer => EntityKind::LoadBalancer,
        };
        let mut v = view(&svc.id, kind, Some(app));
        if svc.kind == ServiceType::Cluster {
            let st = snap
                .clusters
                .get(&(app.to_string(), svc.id.clone()))
                .cloned()
                .unwrap_or_else(|| ClusterState {
                    desired: svc.initial_size.unwrap_or(1),
                    ..Default::default()
                });
            let mut numbers = st.members.clone();
            numbers.sort_unstable();
            let ids: Vec<String> = numbers.iter().map(|n| format!("{}-{n}", svc.id)).collect();
            for id in &ids {
                members.push(view(id, EntityKind::Container, Some(&svc.id)));
            }
            v.sensors.insert(
                s::GROUP_DESIRED_SIZE.into(),
                sensor(st.desired.into(), stored.created_ms),
            );
            v.sensors.insert(
                s::GROUP_MEMBERS.into(),
                sensor(serde_json::json!(ids), stored.created_ms),
            );
            v.children = ids;
        }
        services.push(v);
        services.extend(members);
    }
    let mut out = vec![root];
    out.extend(services);
    Ok(out)
}

fn summary(stored: &StoredApp, bp: &Blueprint, entity_count: usize) -> AppSummary {
    AppSummary {
        id: stored.id.clone(),
        location: bp.location.clone(),
        state: Lifecycle::Created,
        entity_count,
        created_ms: stored.created_ms,
    }
}

/// `GET /v1/applications`: every stored application (one being destroyed
/// is left out, as the leader leaves it out once gone).
pub fn apps(snap: &Snapshot) -> Vec<AppSummary> {
    snap.apps
        .values()
        .filter(|a| !a.destroying)
        .filter_map(|a| {
            let bp = blueprint(a).ok()?;
            let n = entities(snap, &a.id).map(|e| e.len()).unwrap_or(0);
            Some(summary(a, &bp, n))
        })
        .collect()
}

/// `GET /v1/applications/{app}`; no activities (the leader records them).
pub fn app(snap: &Snapshot, app: &str) -> Result<AppDetail, NotStored> {
    let stored = stored_app(snap, app)?;
    let bp = blueprint(stored)?;
    let entities = entities(snap, app)?;
    Ok(AppDetail {
        summary: summary(stored, &bp, entities.len()),
        entities,
        blueprint: bp,
        latest_activities: BTreeMap::new(),
        // A standby's stale answer is always the whole tree.
        next_page: None,
    })
}

/// `GET .../entities/{entity}/sensors`: the stored ones only.
pub fn sensors(
    snap: &Snapshot,
    app: &str,
    entity: &str,
) -> Result<BTreeMap<SensorName, SensorValue>, NotStored> {
    entities(snap, app)?
        .into_iter()
        .find(|e| e.id == entity)
        .map(|e| e.sensors)
        .ok_or_else(|| NotStored::Entity {
            app: app.into(),
            entity: entity.into(),
        })
}

/// `GET .../entities/{cluster}/rollout` from the stored revisions: the
/// progress counts members by their stored revision (the standby does not
/// see which serve).
pub fn rollout(snap: &Snapshot, app: &str, entity: &str) -> Result<RolloutStatus, NotStored> {
    let tree = entities(snap, app)?;
    let e = tree
        .iter()
        .find(|e| e.id == entity)
        .ok_or_else(|| NotStored::Entity {
            app: app.into(),
            entity: entity.into(),
        })?;
    if e.kind != EntityKind::Cluster {
        return Err(NotStored::NotCluster {
            app: app.into(),
            entity: entity.into(),
        });
    }
    let st = snap
        .clusters
        .get(&(app.to_string(), entity.to_string()))
        .cloned()
        .unwrap_or_default();
    Ok(rollout_of(&st))
}

/// A stored cluster's rollout (pure).
pub fn rollout_of(st: &ClusterState) -> RolloutStatus {
    let r = st.rollout.as_ref();
    let field = |k: &str| r.and_then(|r| r.get(k));
    // The target of a rollout under way, else the settled revision.
    let target = field("target")
        .or_else(|| field("revision"))
        .and_then(|v| v.as_u64())
        .unwrap_or(st.revision);
    let mut by_rev: BTreeMap<u64, u32> = BTreeMap::new();
    for m in &st.members {
        let rev = st.member_revisions.get(m).copied().unwrap_or(st.revision);
        *by_rev.entry(rev).or_default() += 1;
    }
    RolloutStatus {
        state: field("state")
            .and_then(|v| v.as_str())
            .unwrap_or("complete")
            .to_string(),
        revision: target,
        previous: field("previous").and_then(|v| v.as_u64()),
        rolling_back: field("rolling_back")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        reason: field("reason").and_then(|v| v.as_str()).map(str::to_string),
        size: st.desired,
        updated: by_rev.get(&target).copied().unwrap_or(0),
        draining: 0,
        members_by_revision: by_rev,
        history: st
            .specs
            .iter()
            .rev()
            .map(|(rev, spec)| RevisionInfo {
                revision: *rev,
                image: spec.image.clone(),
                current: *rev == st.revision,
            })
            .collect(),
    }
}

/// `GET .../entities/{entity}/policies`: the blueprint's policies with
/// their config as written (presets unresolved) and their stored memory.
pub fn policies(snap: &Snapshot, app: &str, entity: &str) -> Result<Vec<PolicyStatus>, NotStored> {
    let stored = stored_app(snap, app)?;
    let bp = blueprint(stored)?;
    let svc = bp
        .services
        .iter()
        .find(|s| s.id == entity)
        .ok_or_else(|| NotStored::Entity {
            app: app.into(),
            entity: entity.into(),
        })?;
    Ok(svc
        .policies
        .iter()
        .map(|p| {
            let name = crate::management::plan::policy_name(p);
            PolicyStatus {
                kind: p.kind.clone().unwrap_or_else(|| name.clone()),
                running: true,
                config: serde_json::to_value(&p.config).unwrap_or_default(),
                state: snap
                    .policies
                    .get(&(app.to_string(), entity.to_string(), name.clone()))
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
                name,
            }
        })
        .collect())
}

/// `GET .../policies/{policy}`.
pub fn policy(
    snap: &Snapshot,
    app: &str,
    entity: &str,
    policy: &str,
) -> Result<PolicyStatus, NotStored> {
    policies(snap, app, entity)?
        .into_iter()
        .find(|p| p.name == policy)
        .ok_or_else(|| NotStored::Policy {
            app: app.into(),
            entity: entity.into(),
            policy: policy.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let text = "name: shop\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      image: drover/workload:latest\n      ports: [8080]\n    policies:\n      - type: replacer\n  - id: lb\n    type: load-balancer\n    target: web\n    port: 8000\n";
        let mut s = Snapshot::default();
        s.apps.insert(
            "shop".into(),
            StoredApp {
                id: "shop".into(),
                file: "shop.yml".into(),
                text: text.into(),
                created_ms: 7,
                destroying: false,
            },
        );
        s.clusters.insert(
            ("shop".into(), "web".into()),
            ClusterState {
                desired: 3,
                next_index: 12,
                members: vec![11, 2, 9],
                member_revisions: BTreeMap::from([(11, 2)]),
                revision: 1,
                ..Default::default()
            },
        );
        s.policies.insert(
            ("shop".into(), "web".into(), "replacer".into()),
            serde_json::json!({ "failures": [5] }),
        );
        s
    }

    #[test]
    fn the_tree_is_rebuilt_from_blueprint_and_membership() {
        let s = snap();
        let ids: Vec<String> = entities(&s, "shop")
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, ["shop", "web", "web-2", "web-9", "web-11", "lb"]);
        let d = app(&s, "shop").unwrap();
        assert_eq!(d.summary.entity_count, 6);
        assert_eq!(
            d.entity("web").unwrap().sensor_u64("group.desired_size"),
            Some(3)
        );
        assert_eq!(d.entity("web-9").unwrap().parent.as_deref(), Some("web"));
        assert!(d.entities.iter().all(|e| e.state == Lifecycle::Created));
        assert_eq!(apps(&s).len(), 1);
        assert_eq!(app(&s, "nope").unwrap_err(), NotStored::App("nope".into()));
        assert!(sensors(&s, "shop", "lb").unwrap().is_empty());
        assert!(matches!(
            sensors(&s, "shop", "db"),
            Err(NotStored::Entity { .. })
        ));
    }

    #[test]
    fn an_application_being_destroyed_is_not_listed() {
        let mut s = snap();
        s.apps.get_mut("shop").unwrap().destroying = true;
        assert!(apps(&s).is_empty());
        assert!(app(&s, "shop").is_err());
    }

    #[test]
    fn rollout_and_policies_come_from_the_stored_state() {
        let s = snap();
        let r = rollout(&s, "shop", "web").unwrap();
        assert_eq!((r.state.as_str(), r.revision, r.size), ("complete", 1, 3));
        assert_eq!(r.members_by_revision, BTreeMap::from([(1, 2), (2, 1)]));
        assert_eq!(r.updated, 2);
        assert!(matches!(
            rollout(&s, "shop", "lb"),
            Err(NotStored::NotCluster { .. })
        ));
        let p = policy(&s, "shop", "web", "replacer").unwrap();
        assert_eq!(p.kind, "replacer");
        assert_eq!(p.state["failures"][0], 5);
        assert!(policy(&s, "shop", "web", "autoscaler").is_err());
    }
}
