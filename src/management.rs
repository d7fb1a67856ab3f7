//! The management actor: owns the applications and the read model.
//!
//! It creates application entities on deploy and tears them down on
//! destroy, routes engine events to the container entity they concern, and
//! subscribes to every entity so that it holds an up-to-date view of the
//! whole tree. The REST API reads that view through messages; it never
//! reaches into an entity.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use crate::blueprint::{Blueprint, FieldPath, ValidationError};
use crate::entity::application::ApplicationEntity;
use crate::entity::{
    now_ms, sensors as s, ChildAdded, EntityError, EntityEvent, EntityHandle, EntityKind,
    EntityRef, Invoke, Lifecycle, Links, Observed, Placement, SensorValue, Subscribe, Teardown,
};
use crate::host::{ContainerEvent, HostResync};
use crate::metrics;

/// How many activities are kept (newest win).
pub const ACTIVITY_RETENTION: usize = 10_000;

#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum ManagementError {
    #[error("no application `{0}`; `drover ls` lists them")]
    NoApplication(String),
    #[error(
        "application `{app}` has no entity `{entity}`; `drover status {app}` shows its entities"
    )]
    NoEntity { app: String, entity: String },
    #[error(
        "an application named `{0}` already exists; destroy it first or choose another `name`"
    )]
    Exists(String),
    #[error("unknown location `{location}`; known locations: {known}")]
    UnknownLocation { location: String, known: String },
    #[error("application `{0}` is being destroyed")]
    Destroying(String),
    #[error("{0}")]
    Blueprint(crate::blueprint::BlueprintErrors),
    #[error(transparent)]
    Entity(#[from] EntityError),
}

/// The management actor's view of one entity.
#[derive(Debug, Clone, Serialize)]
pub struct EntityView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub state: Lifecycle,
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub sensors: BTreeMap<String, SensorValue>,
}

struct EntityRecord {
    view: EntityView,
    handle: EntityHandle,
}

struct AppRecord {
    blueprint: Blueprint,
    created_ms: u64,
    destroying: bool,
}

/// A summary row of `GET /v1/applications`.
#[derive(Debug, Clone, Serialize)]
pub struct AppSummary {
    pub id: String,
    pub location: String,
    pub state: Lifecycle,
    pub entities: usize,
    pub created_ms: u64,
}

/// `GET /v1/applications/{app}`: the summary, the tree and the blueprint.
#[derive(Debug, Clone, Serialize)]
pub struct AppDetail {
    #[serde(flatten)]
    pub summary: AppSummary,
    pub entities: Vec<EntityView>,
    pub blueprint: Blueprint,
}

pub use crate::activity::{Activity, RecordActivity};

#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    pub name: String,
    pub address: String,
    pub containers: usize,
}

pub struct Management {
    /// Location name → where entities of that location run.
    locations: BTreeMap<String, Placement>,
    apps: BTreeMap<String, AppRecord>,
    entities: HashMap<EntityRef, EntityRecord>,
    activities: VecDeque<Activity>,
    next_activity: u64,
    host_containers: HashMap<String, usize>,
    presets: crate::policy::Presets,
}

impl Management {
    pub fn new(locations: BTreeMap<String, Placement>) -> Self {
        Management {
            locations,
            apps: BTreeMap::new(),
            entities: HashMap::new(),
            activities: VecDeque::new(),
            next_activity: 1,
            host_containers: HashMap::new(),
            presets: crate::policy::Presets::empty(),
        }
    }

    pub fn with_presets(mut self, presets: crate::policy::Presets) -> Self {
        self.presets = presets;
        self
    }

    fn links(&self, ctx: &mut Context<Self>) -> Links {
        Links {
            children: ctx.address().recipient(),
            activities: ctx.address().recipient(),
        }
    }

    fn register(
        &mut self,
        ctx: &mut Context<Self>,
        me: EntityRef,
        parent: Option<&EntityRef>,
        handle: EntityHandle,
    ) {
        if let Some(p) = parent.and_then(|p| self.entities.get_mut(p)) {
            if !p.view.children.contains(&me.entity) {
                p.view.children.push(me.entity.clone());
            }
        }
        handle
            .subscribe
            .do_send(Subscribe(ctx.address().recipient()));
        let view = EntityView {
            id: me.entity.clone(),
            kind: handle.kind,
            state: Lifecycle::Created,
            parent: parent.map(|p| p.entity.clone()),
            children: Vec::new(),
            sensors: BTreeMap::new(),
        };
        self.entities.insert(me, EntityRecord { view, handle });
    }

    fn forget(&mut self, me: &EntityRef) {
        if let Some(rec) = self.entities.remove(me) {
            if let Some(parent) = rec.view.parent.as_ref() {
                if let Some(p) = self
                    .entities
                    .get_mut(&EntityRef::new(me.app.clone(), parent.clone()))
                {
                    p.view.children.retain(|c| c != &me.entity);
                }
            }
        }
    }

    fn app_entities(&self, app: &str) -> Vec<EntityView> {
        let mut v: Vec<EntityView> = self
            .entities
            .iter()
            .filter(|(r, _)| r.app == app)
            .map(|(_, rec)| rec.view.clone())
            .collect();
        // Parents before children, then by member number.
        v.sort_by(|a, b| depth_key(a).cmp(&depth_key(b)));
        v
    }

    fn summary(&self, id: &str, rec: &AppRecord) -> AppSummary {
        let root = self.entities.get(&EntityRef::new(id, id));
        AppSummary {
            id: id.to_string(),
            location: rec.blueprint.location.clone(),
            state: root.map(|r| r.view.state).unwrap_or(Lifecycle::Stopped),
            entities: self.entities.keys().filter(|r| r.app == id).count(),
            created_ms: rec.created_ms,
        }
    }

    fn record(&mut self, mut a: Activity) {
        a.id = self.next_activity;
        self.next_activity += 1;
        self.activities.push_front(a);
        self.activities.truncate(ACTIVITY_RETENTION);
    }
}

fn depth_key(v: &EntityView) -> (u8, String, u64, String) {
    let depth = match v.kind {
        EntityKind::Application => 0,
        _ if v.parent.is_some() && v.kind == EntityKind::Container && v.id.contains('-') => 2,
        _ => 1,
    };
    // Sort `web-10` after `web-9`.
    let (stem, n) = match v.id.rsplit_once('-') {
        Some((stem, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
            (stem.to_string(), n.parse().unwrap_or(0))
        }
        _ => (v.id.clone(), 0),
    };
    (
        depth,
        v.parent.clone().unwrap_or_default() + &stem,
        n,
        v.id.clone(),
    )
}

impl Actor for Management {
    type Context = Context<Self>;
}

impl Handler<EntityEvent> for Management {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => {
                if let Some(rec) = self.entities.get_mut(&source) {
                    if value.value.is_null() {
                        rec.view.sensors.remove(&name);
                    } else {
                        rec.view.sensors.insert(name, value);
                    }
                }
            }
            EntityEvent::State { source, state, .. } => {
                if let Some(rec) = self.entities.get_mut(&source) {
                    rec.view.state = state;
                }
            }
            EntityEvent::Gone { source } => self.forget(&source),
            // Failures and recoveries go into the activity record: the
            // operator's "what happened and why".
            EntityEvent::Notice {
                source,
                name,
                detail,
            } => {
                let message = detail
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .map(str::to_string);
                self.record(Activity {
                    id: 0,
                    time_ms: now_ms(),
                    application: source.app.clone(),
                    entity: source.entity.clone(),
                    kind: "event".into(),
                    name,
                    args: detail,
                    outcome: "ok".into(),
                    message,
                    duration_seconds: 0.0,
                });
            }
        }
    }
}

impl Handler<ChildAdded> for Management {
    type Result = ();
    fn handle(&mut self, msg: ChildAdded, ctx: &mut Context<Self>) {
        self.register(ctx, msg.child, Some(&msg.parent), msg.handle);
    }
}

impl Handler<ContainerEvent> for Management {
    type Result = ();
    fn handle(&mut self, ev: ContainerEvent, _: &mut Context<Self>) {
        metrics::ENGINE_EVENTS.inc();
        let key = EntityRef::new(ev.app.clone(), ev.entity.clone());
        if let Some(inbox) = self
            .entities
            .get(&key)
            .and_then(|r| r.handle.container.as_ref())
        {
            // try_send: a full mailbox drops the event; the resync repairs it.
            let _ = inbox.events.try_send(ev);
        }
    }
}

impl Handler<HostResync> for Management {
    type Result = ();
    fn handle(&mut self, msg: HostResync, _: &mut Context<Self>) {
        self.host_containers
            .insert(msg.host.clone(), msg.containers.len());
        let mut seen: HashMap<EntityRef, crate::host::ManagedContainer> = HashMap::new();
        for c in msg.containers {
            seen.insert(EntityRef::new(c.app.clone(), c.entity.clone()), c);
        }
        for (key, rec) in &self.entities {
            if let Some(inbox) = &rec.handle.container {
                let host = rec
                    .view
                    .sensors
                    .get(s::HOST_NAME)
                    .and_then(|v| v.value.as_str().map(str::to_string));
                if host.as_deref().is_some_and(|h| h != msg.host) {
                    continue;
                }
                let _ = inbox.observed.try_send(Observed(seen.get(key).cloned()));
            }
        }
    }
}

/// Deploys blueprint text: parses and checks it against this service's
/// locations and presets, creates the application and starts it. Answers
/// once the application exists; the start goes on. Nothing is created if
/// any check fails.
#[derive(Message)]
#[rtype(result = "Result<String, ManagementError>")]
pub struct Deploy {
    /// Names the text in errors: a path, or `<request>`.
    pub file: String,
    pub text: String,
}

impl Management {
    /// The checks that need this service's context, with blueprint paths.
    fn context_checks(&self, bp: &Blueprint) -> Vec<ValidationError> {
        let mut errs = Vec::new();
        if !self.locations.contains_key(&bp.location) {
            errs.push(ValidationError::at(
                FieldPath::root().key("location"),
                format!(
                    "unknown location `{}`; known locations: {}",
                    bp.location,
                    self.locations
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for (i, svc) in bp.services.iter().enumerate() {
            for (j, spec) in svc.policies.iter().enumerate() {
                let base = FieldPath::root()
                    .key("services")
                    .index(i)
                    .key("policies")
                    .index(j);
                match crate::policy::resolve(spec, &self.presets) {
                    Ok(p) if !p.config.allowed_on(svc.kind.as_str()) => {
                        errs.push(ValidationError::at(
                            base,
                            format!(
                                "a {} policy cannot be attached to a {}",
                                p.config.kind(),
                                svc.kind.as_str()
                            ),
                        ))
                    }
                    Ok(_) => {}
                    Err(pe) => {
                        for e in pe {
                            let path = e
                                .path
                                .split('.')
                                .filter(|k| !k.is_empty())
                                .fold(base.clone(), |p, k| p.key(k));
                            errs.push(ValidationError::at(path, e.message));
                        }
                    }
                }
            }
        }
        errs
    }
}

impl Handler<Deploy> for Management {
    type Result = Result<String, ManagementError>;
    fn handle(&mut self, msg: Deploy, ctx: &mut Context<Self>) -> Self::Result {
        let bp = crate::blueprint::parse_blueprint_with(&msg.file, &msg.text, &|bp| {
            self.context_checks(bp)
        })
        .map_err(ManagementError::Blueprint)?;
        let id = bp.name.clone();
        if self.apps.contains_key(&id) {
            return Err(ManagementError::Exists(id));
        }
        let Some(at) = self.locations.get(&bp.location).cloned() else {
            return Err(ManagementError::UnknownLocation {
                location: bp.location.clone(),
                known: String::new(),
            });
        };
        // Checked above: every policy resolves.
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
        let addr = ApplicationEntity::new(bp.clone(), at, links, policies).start();
        let handle = ApplicationEntity::handle(&addr);
        let me = EntityRef::new(id.clone(), id.clone());
        self.register(ctx, me.clone(), None, handle);
        self.apps.insert(
            id.clone(),
            AppRecord {
                blueprint: bp,
                created_ms: now_ms(),
                destroying: false,
            },
        );
        tracing::info!(app = %id, "deploying");
        // The start is an effector call like any other, recorded as such.
        ctx.notify(
            InvokeEffector {
                app: id.clone(),
                entity: id.clone(),
                effector: "start".into(),
                args: serde_json::json!({}),
            }
            .detached(),
        );
        Ok(id)
    }
}

/// Destroys an application: removes its containers and network, then
/// forgets it.
#[derive(Message)]
#[rtype(result = "Result<(), ManagementError>")]
pub struct Destroy(pub String);

impl Handler<Destroy> for Management {
    type Result = ResponseActFuture<Self, Result<(), ManagementError>>;
    fn handle(&mut self, Destroy(app): Destroy, _: &mut Context<Self>) -> Self::Result {
        let Some(rec) = self.apps.get_mut(&app) else {
            return Box::pin(fut::ready(Err(ManagementError::NoApplication(app))));
        };
        if rec.destroying {
            return Box::pin(fut::ready(Err(ManagementError::Destroying(app))));
        }
        rec.destroying = true;
        let root = EntityRef::new(app.clone(), app.clone());
        let Some(handle) = self.entities.get(&root).map(|r| r.handle.clone()) else {
            self.apps.remove(&app);
            return Box::pin(fut::ready(Ok(())));
        };
        let t0 = Instant::now();
        Box::pin(
            async move { handle.teardown.send(Teardown).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    let res: Result<(), EntityError> = res.unwrap_or_else(|e| {
                        Err(EntityError::Unreachable {
                            entity: app.clone(),
                            message: e.to_string(),
                        })
                    });
                    let outcome = if res.is_ok() { "ok" } else { "error" };
                    metrics::EFFECTOR_DURATION
                        .with_label_values(&["destroy", outcome])
                        .observe(t0.elapsed().as_secs_f64());
                    act.record(Activity {
                        id: 0,
                        time_ms: now_ms(),
                        application: app.clone(),
                        entity: app.clone(),
                        kind: "effector".into(),
                        name: "destroy".into(),
                        args: serde_json::json!({}),
                        outcome: outcome.into(),
                        message: res.as_ref().err().map(|e| e.to_string()),
                        duration_seconds: t0.elapsed().as_secs_f64(),
                    });
                    match res {
                        Ok(()) => {
                            act.apps.remove(&app);
                            act.entities.retain(|k, _| k.app != app);
                            tracing::info!(app = %app, "destroyed");
                            Ok(())
                        }
                        Err(e) => {
                            if let Some(r) = act.apps.get_mut(&app) {
                                r.destroying = false;
                            }
                            Err(e.into())
                        }
                    }
                }),
        )
    }
}

/// Calls an effector on an entity, recording it as an activity.
#[derive(Message, Clone)]
#[rtype(result = "Result<serde_json::Value, ManagementError>")]
pub struct InvokeEffector {
    pub app: String,
    pub entity: String,
    pub effector: String,
    pub args: serde_json::Value,
}

/// Fire-and-forget wrapper (the result is only recorded).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detached(InvokeEffector);

impl InvokeEffector {
    pub fn detached(self) -> Detached {
        Detached(self)
    }
}

impl Handler<Detached> for Management {
    type Result = ();
    fn handle(&mut self, Detached(msg): Detached, ctx: &mut Context<Self>) {
        let fut = <Self as Handler<InvokeEffector>>::handle(self, msg, ctx);
        ctx.spawn(fut.map(|_, _, _| ()));
    }
}

impl Handler<InvokeEffector> for Management {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, ManagementError>>;
    fn handle(&mut self, msg: InvokeEffector, _: &mut Context<Self>) -> Self::Result {
        let Some(app) = self.apps.get(&msg.app) else {
            return Box::pin(fut::ready(Err(ManagementError::NoApplication(msg.app))));
        };
        if app.destroying {
            return Box::pin(fut::ready(Err(ManagementError::Destroying(msg.app))));
        }
        let key = EntityRef::new(msg.app.clone(), msg.entity.clone());
        let Some(handle) = self.entities.get(&key).map(|r| r.handle.clone()) else {
            return Box::pin(fut::ready(Err(ManagementError::NoEntity {
                app: msg.app,
                entity: msg.entity,
            })));
        };
        let t0 = Instant::now();
        let span = tracing::info_span!("effector", app = %msg.app, entity = %msg.entity, effector = %msg.effector);
        let invoke = Invoke::with_args(&msg.effector, msg.args.clone());
        let fut =
            tracing::Instrument::instrument(async move { handle.invoke.send(invoke).await }, span);
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let res = res.unwrap_or_else(|e| Err(EntityError::Unreachable { entity: key.to_string(), message: e.to_string() }));
            let outcome = if res.is_ok() { "ok" } else { "error" };
            let elapsed = t0.elapsed().as_secs_f64();
            // Unknown effector names would make labels unbounded: fold them.
            let label = if matches!(res, Err(EntityError::UnknownEffector { .. })) { "unknown" } else { msg.effector.as_str() };
            metrics::EFFECTOR_DURATION.with_label_values(&[label, outcome]).observe(elapsed);
            match &res {
                Ok(_) => tracing::info!(app = %msg.app, entity = %msg.entity, effector = %msg.effector, seconds = elapsed, "effector done"),
                Err(e) => tracing::warn!(app = %msg.app, entity = %msg.entity, effector = %msg.effector, error = %e, "effector failed"),
            }
            act.record(Activity {
                id: 0,
                time_ms: now_ms(),
                application: msg.app.clone(),
                entity: msg.entity.clone(),
                kind: "effector".into(),
                name: msg.effector.clone(),
                args: msg.args.clone(),
                outcome: outcome.into(),
                message: res.as_ref().err().map(|e| e.to_string()),
                duration_seconds: elapsed,
            });
            res.map_err(ManagementError::from)
        }))
    }
}

#[derive(Message)]
#[rtype(result = "Vec<AppSummary>")]
pub struct ListApps;

impl Handler<ListApps> for Management {
    type Result = Vec<AppSummary>;
    fn handle(&mut self, _: ListApps, _: &mut Context<Self>) -> Vec<AppSummary> {
        self.apps
            .iter()
            .map(|(id, rec)| self.summary(id, rec))
            .collect()
    }
}

#[derive(Message)]
#[rtype(result = "Result<AppDetail, ManagementError>")]
pub struct GetApp(pub String);

impl Handler<GetApp> for Management {
    type Result = Result<AppDetail, ManagementError>;
    fn handle(&mut self, GetApp(app): GetApp, _: &mut Context<Self>) -> Self::Result {
        let rec = self
            .apps
            .get(&app)
            .ok_or_else(|| ManagementError::NoApplication(app.clone()))?;
        Ok(AppDetail {
            summary: self.summary(&app, rec),
            entities: self.app_entities(&app),
            blueprint: rec.blueprint.clone(),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<Vec<EntityView>, ManagementError>")]
pub struct GetEntities(pub String);

impl Handler<GetEntities> for Management {
    type Result = Result<Vec<EntityView>, ManagementError>;
    fn handle(&mut self, GetEntities(app): GetEntities, _: &mut Context<Self>) -> Self::Result {
        if !self.apps.contains_key(&app) {
            return Err(ManagementError::NoApplication(app));
        }
        Ok(self.app_entities(&app))
    }
}

#[derive(Message)]
#[rtype(result = "Result<BTreeMap<String, SensorValue>, ManagementError>")]
pub struct GetSensors {
    pub app: String,
    pub entity: String,
}

impl Handler<GetSensors> for Management {
    type Result = Result<BTreeMap<String, SensorValue>, ManagementError>;
    fn handle(&mut self, msg: GetSensors, _: &mut Context<Self>) -> Self::Result {
        if !self.apps.contains_key(&msg.app) {
            return Err(ManagementError::NoApplication(msg.app));
        }
        self.entities
            .get(&EntityRef::new(msg.app.clone(), msg.entity.clone()))
            .map(|r| r.view.sensors.clone())
            .ok_or(ManagementError::NoEntity {
                app: msg.app,
                entity: msg.entity,
            })
    }
}

/// Filters of `GET /v1/activities`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ActivityFilter {
    pub application: Option<String>,
    pub entity: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Message)]
#[rtype(result = "Vec<Activity>")]
pub struct ListActivities(pub ActivityFilter);

impl Handler<ListActivities> for Management {
    type Result = Vec<Activity>;
    fn handle(
        &mut self,
        ListActivities(f): ListActivities,
        _: &mut Context<Self>,
    ) -> Vec<Activity> {
        self.activities
            .iter()
            .filter(|a| f.application.as_ref().is_none_or(|x| &a.application == x))
            .filter(|a| f.entity.as_ref().is_none_or(|x| &a.entity == x))
            .filter(|a| f.kind.as_ref().is_none_or(|x| &a.kind == x))
            .take(f.limit.unwrap_or(100))
            .cloned()
            .collect()
    }
}

#[derive(Message)]
#[rtype(result = "Vec<HostView>")]
pub struct ListHosts;

impl Handler<ListHosts> for Management {
    type Result = Vec<HostView>;
    fn handle(&mut self, _: ListHosts, _: &mut Context<Self>) -> Vec<HostView> {
        let mut seen = std::collections::BTreeSet::new();
        self.locations
            .values()
            .filter(|p| seen.insert(p.host_name.clone()))
            .map(|p| HostView {
                name: p.host_name.clone(),
                address: p.host_address.clone(),
                containers: self.host_containers.get(&p.host_name).copied().unwrap_or(0),
            })
            .collect()
    }
}

/// Rebuilds the entity gauges from the read model (called before a scrape).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CollectMetrics;

impl Handler<CollectMetrics> for Management {
    type Result = ();
    fn handle(&mut self, _: CollectMetrics, _: &mut Context<Self>) {
        metrics::APPLICATIONS.set(self.apps.len() as i64);
        let mut counts: HashMap<(EntityKind, Lifecycle), i64> = HashMap::new();
        for rec in self.entities.values() {
            *counts.entry((rec.view.kind, rec.view.state)).or_default() += 1;
        }
        for kind in EntityKind::ALL {
            for state in Lifecycle::ALL {
                let n = counts.get(&(kind, state)).copied().unwrap_or(0);
                metrics::ENTITIES
                    .with_label_values(&[kind.as_str(), state.as_str()])
                    .set(n);
            }
        }
        // Reset, then set: series of destroyed clusters disappear.
        metrics::CLUSTER_SIZE.reset();
        metrics::CLUSTER_DESIRED_SIZE.reset();
        for (key, rec) in &self.entities {
            if rec.view.kind != EntityKind::Cluster {
                continue;
            }
            let get = |n: &str| {
                rec.view
                    .sensors
                    .get(n)
                    .and_then(|v| v.value.as_i64())
                    .unwrap_or(0)
            };
            metrics::CLUSTER_SIZE
                .with_label_values(&[&key.app, &key.entity])
                .set(get(s::GROUP_SIZE));
            metrics::CLUSTER_DESIRED_SIZE
                .with_label_values(&[&key.app, &key.entity])
                .set(get(s::GROUP_DESIRED_SIZE));
        }
    }
}

impl Handler<RecordActivity> for Management {
    type Result = ();
    fn handle(&mut self, RecordActivity(a): RecordActivity, _: &mut Context<Self>) {
        self.record(a);
    }
}
