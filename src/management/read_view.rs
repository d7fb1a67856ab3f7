//! The read view: the management actor's read model and activity record,
//! shared with the REST API so that a GET never waits in the management
//! actor's mailbox.
//!
//! Why not a message, as the rest of the API does: every entity's sensor
//! events go to the management actor, and every actor runs on one arbiter
//! thread. A GET sent as a message waited behind that traffic, then copied
//! and sorted the whole application on the arbiter thread, stalling every
//! actor while it did (issue 18: a 10,000-member tree took 80 ms of the
//! arbiter per GET, a page of 500 p99 190 ms). This is kube-runtime's
//! `reflector::Store`: one writer, the management actor, which alone
//! changes the view as it handles its messages; readers that take a read
//! lock, copy out pointers (`Arc`s of entity views, never the entities)
//! and serialise after the lock is released. Reads are still only reads:
//! every write goes through the actor, and nothing here reaches an entity
//! or the store.
//!
//! Two locks, not one: the activity record is scanned for an
//! application's latest activities (up to [`super::ACTIVITY_RETENTION`]
//! records), and that scan must not hold up the sensor path, which takes
//! only the model's lock. A writer waits at most for a reader's copy of
//! pointers (a page, or a tree), never for a serialisation.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Serialize, Serializer};

use crate::blueprint::Blueprint;
use crate::protocol::{EntityRef, SensorName, SensorValue};

use super::read_model::{latest_activities, PageToken, ReadModel};
use super::{Activity, AppSummary, EntityView, ManagementError, ACTIVITY_LIMIT_MAX};

/// What the API reads of one application besides its entities.
#[derive(Debug, Clone)]
pub struct AppMeta {
    pub location: String,
    pub blueprint: Arc<Blueprint>,
    /// When this incarnation was deployed: older activities of the same
    /// name belong to an application destroyed before.
    pub created_ms: u64,
    /// Service id → resource limits of one of its containers (cpus,
    /// memory bytes), for the host reservation gauges.
    pub reservations: Arc<Reservations>,
}

/// Service id → resource limits of one of its containers.
pub type Reservations = HashMap<String, (f64, i64)>;

/// What a scrape reports of one of the locations' hosts.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// This drover's containers on the host, at its last resync.
    pub containers: usize,
    /// Its CPUs and memory (`docker info`), once read.
    pub capacity: Option<crate::host::HostCapacity>,
}

/// The applications and the activity record, newest first.
#[derive(Debug, Default)]
pub struct Record {
    pub apps: BTreeMap<String, AppMeta>,
    pub activities: VecDeque<Activity>,
}

/// The shared view. Cloning it shares it.
#[derive(Debug, Clone, Default)]
pub struct ReadView {
    model: Arc<RwLock<ReadModel>>,
    record: Arc<RwLock<Record>>,
    /// The locations' hosts by name, for `/metrics`.
    hosts: Arc<RwLock<BTreeMap<String, HostFacts>>>,
}

/// `GET /v1/applications/{app}`: serialises as [`crate::wire::AppDetail`]
/// does (a test checks it), from shared views rather than copies.
#[derive(Debug, Serialize)]
pub struct AppAnswer {
    #[serde(flatten)]
    pub summary: AppSummary,
    #[serde(serialize_with = "each")]
    pub entities: Vec<Arc<EntityView>>,
    #[serde(serialize_with = "inner")]
    pub blueprint: Arc<Blueprint>,
    pub latest_activities: BTreeMap<String, Activity>,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// `GET /v1/applications/{app}/entities`: the tree, from shared views.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct EntitiesAnswer(#[serde(serialize_with = "each")] pub Vec<Arc<EntityView>>);

fn each<S: Serializer, T: Serialize>(v: &[Arc<T>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| &**x))
}

fn inner<S: Serializer, T: Serialize>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
    (**v).serialize(s)
}

impl ReadView {
    /// The model, for the management actor's own reads.
    pub fn model(&self) -> RwLockReadGuard<'_, ReadModel> {
        // A panic elsewhere while the lock was held leaves data that is
        // still whole (every change is one assignment or one insert):
        // serve it rather than fail every read after.
        self.model.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The model, to change: the management actor only.
    pub(super) fn model_mut(&self) -> RwLockWriteGuard<'_, ReadModel> {
        self.model.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn record(&self) -> RwLockReadGuard<'_, Record> {
        self.record.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record, to change: the management actor only.
    pub(super) fn record_mut(&self) -> RwLockWriteGuard<'_, Record> {
        self.record.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn hosts(&self) -> RwLockReadGuard<'_, BTreeMap<String, HostFacts>> {
        self.hosts.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hosts, to change: the management actor only.
    pub(super) fn hosts_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, HostFacts>> {
        self.hosts.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /v1/applications`.
    pub fn list_apps(&self) -> Vec<AppSummary> {
        let apps: Vec<(String, AppMeta)> = self
            .record()
            .apps
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect();
        let model = self.model();
        apps.iter()
            .map(|(id, m)| model.summary(id, &m.location, m.created_ms))
            .collect()
    }

    fn meta(&self, app: &str) -> Result<AppMeta, ManagementError> {
        self.record()
            .apps
            .get(app)
            .cloned()
            .ok_or_else(|| ManagementError::NoApplication(app.to_string()))
    }

    /// `GET /v1/applications/{app}`: the whole tree, or with
    /// `Some((limit, after))` a page of at most `limit` entities.
    pub fn app(
        &self,
        app: &str,
        page: Option<(usize, Option<PageToken>)>,
    ) -> Result<AppAnswer, ManagementError> {
        let meta = self.meta(app)?;
        let (summary, entities, next) = {
            let model = self.model();
            let (entities, next) = match page {
                None => (model.app_entities(app), None),
                Some((limit, after)) => model.app_page(app, limit, after.as_ref()),
            };
            (
                model.summary(app, &meta.location, meta.created_ms),
                entities,
                next,
            )
        };
        let ids: HashSet<&str> = entities.iter().map(|e| e.id.as_str()).collect();
        let latest = latest_activities(&self.record().activities, app, &ids, meta.created_ms);
        Ok(AppAnswer {
            summary,
            blueprint: meta.blueprint,
            latest_activities: latest,
            next_page: next.map(|t| t.to_string()),
            entities,
        })
    }

    /// `GET /v1/applications/{app}/entities`.
    pub fn entities(&self, app: &str) -> Result<EntitiesAnswer, ManagementError> {
        self.meta(app)?;
        Ok(EntitiesAnswer(self.model().app_entities(app)))
    }

    /// `GET /v1/applications/{app}/entities/{entity}/sensors`.
    pub fn sensors(
        &self,
        app: &str,
        entity: &str,
    ) -> Result<BTreeMap<SensorName, SensorValue>, ManagementError> {
        self.meta(app)?;
        let view = self
            .model()
            .shared(&EntityRef::new(app, entity))
            .cloned()
            .ok_or_else(|| ManagementError::NoEntity {
                app: app.to_string(),
                entity: entity.to_string(),
            })?;
        Ok(view.sensors.clone())
    }

    /// `GET /v1/activities`.
    pub fn activities(&self, f: &super::ActivityFilter) -> Vec<Activity> {
        self.record()
            .activities
            .iter()
            .filter(|a| f.application.as_ref().is_none_or(|x| &a.application == x))
            .filter(|a| f.entity.as_ref().is_none_or(|x| &a.entity == x))
            .filter(|a| f.kind.as_ref().is_none_or(|x| &a.kind == x))
            .filter(|a| {
                f.name
                    .as_ref()
                    .is_none_or(|x| a.name.starts_with(x.as_str()))
            })
            .take(f.limit.unwrap_or(100).min(ACTIVITY_LIMIT_MAX))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EntityKind, Lifecycle};

    fn view() -> ReadView {
        let v = ReadView::default();
        let bp = crate::blueprint::parse_blueprint(
            "shop.yml",
            "name: shop\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      image: x\n",
        )
        .expect("a blueprint");
        v.record_mut().apps.insert(
            "shop".into(),
            AppMeta {
                location: "local".into(),
                blueprint: Arc::new(bp),
                created_ms: 5,
                reservations: Default::default(),
            },
        );
        {
            let mut m = v.model_mut();
            let root = EntityRef::new("shop", "shop");
            m.register(&root, EntityKind::Application, None);
            let web = EntityRef::new("shop", "web");
            m.register(&web, EntityKind::Cluster, Some(&root));
            for i in 1..=3 {
                m.register(
                    &EntityRef::new("shop", format!("web-{i}")),
                    EntityKind::Container,
                    Some(&web),
                );
            }
            m.set_state(&root, Lifecycle::Running);
        }
        v.record_mut().activities.push_front(Activity {
            id: 1,
            time_ms: 6,
            application: "shop".into(),
            entity: "web-2".into(),
            kind: "event".into(),
            name: "entity.failed".into(),
            args: serde_json::json!({}),
            outcome: "ok".into(),
            message: None,
            duration_seconds: 0.0,
        });
        v
    }

    #[test]
    fn the_answer_reads_back_as_the_wire_type() {
        let v = view();
        let answer = v.app("shop", Some((3, None))).expect("the application");
        let text = serde_json::to_string(&answer).unwrap();
        let detail: crate::wire::AppDetail = serde_json::from_str(&text).expect("wire shape");
        assert_eq!(detail.summary.entity_count, 5);
        assert_eq!(detail.summary.state, Lifecycle::Running);
        let ids: Vec<&str> = detail.entities.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["shop", "web", "web-1"]);
        assert!(detail.next_page.is_some());
        assert!(
            detail.latest_activities.is_empty(),
            "web-2 is not on this page"
        );
        // And the same bytes as the wire type gives.
        assert_eq!(serde_json::to_string(&detail).unwrap(), text);

        let whole = v.app("shop", None).unwrap();
        let text = serde_json::to_string(&whole).unwrap();
        assert!(!text.contains("\"continue\""));
        let detail: crate::wire::AppDetail = serde_json::from_str(&text).unwrap();
        assert_eq!(detail.entities.len(), 5);
        assert_eq!(detail.latest_activities["web-2"].id, 1);
    }

    #[test]
    fn unknown_applications_and_entities_are_named() {
        let v = view();
        assert!(matches!(
            v.app("gone", None),
            Err(ManagementError::NoApplication(a)) if a == "gone"
        ));
        assert!(matches!(
            v.sensors("shop", "web-9"),
            Err(ManagementError::NoEntity { .. })
        ));
        assert!(v.sensors("shop", "web-1").unwrap().is_empty());
        let list = serde_json::to_value(v.entities("shop").unwrap()).unwrap();
        assert_eq!(list.as_array().map(Vec::len), Some(5));
        assert_eq!(v.list_apps()[0].entity_count, 5);
    }
}
