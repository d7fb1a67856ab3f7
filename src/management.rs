//! The management actor: owns the applications and the read model.
//!
//! It creates application entities on deploy and tears them down on
//! destroy, routes engine events to the container entity they concern, and
//! subscribes to every entity so that it holds an up-to-date view of the
//! whole tree. The REST API reads that view through messages; it never
//! reaches into an entity.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use crate::blueprint::{Blueprint, FieldPath, ValidationError};
use crate::entity::application::ApplicationEntity;
use crate::entity::{
    now_ms, sensors as s, ChildAdded, EntityError, EntityEvent, EntityHandle, EntityKind,
    EntityRef, Invoke, Lifecycle, Links, Observed, Placement, SensorValue, Subscribe, Teardown,
};
use crate::host::{Capacity, ContainerEvent, HostCapacity, HostResync};
use crate::metrics;

/// How many activities are kept (newest win).
pub const ACTIVITY_RETENTION: usize = 10_000;

/// The most activities one `GET /v1/activities` answers (default 100): a
/// bounded answer keeps one request from serialising the whole record.
pub const ACTIVITY_LIMIT_MAX: usize = 1_000;

/// How often host capacity (`docker info`) is read again. CPUs and memory of
/// an engine change only when a machine is resized; a minute is plenty.
const CAPACITY_REFRESH: Duration = Duration::from_secs(60);

/// How long a failed entity that went away (removed by `replace_member`)
/// waits for the replacement's record before its open failure is dropped
/// unmeasured. The replacer records the replacement right after the old
/// member is removed; a minute covers a slow engine.
const GONE_FAILURE_GRACE_MS: u64 = 60_000;

/// Notices remembered per entity to drop duplicates: a cluster forwards its
/// members' notices to its own subscribers, and the management actor
/// subscribes to both, so each member notice arrives twice.
const RECENT_NOTICES: usize = 8;

/// The forwarded copy of a notice arrives one mailbox hop after the
/// original, within milliseconds; an identical notice later than this is a
/// new one (a second give-up with the same reason, say).
const NOTICE_ECHO_WINDOW: Duration = Duration::from_secs(2);

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
    #[error("{0}")]
    NoPolicy(String),
    #[error("the store refused the write: {0}")]
    Store(String),
    #[error("{0}")]
    NoHost(String),
    #[error(transparent)]
    Entity(#[from] EntityError),
}

struct EntityRecord {
    view: EntityView,
    handle: EntityHandle,
    /// The last few notices seen, to drop the duplicate a cluster forwards.
    recent_notices: VecDeque<(String, serde_json::Value, Instant)>,
}

struct AppRecord {
    blueprint: Blueprint,
    /// The blueprint as deployed, and where it came from (for the store).
    text: String,
    file: String,
    created_ms: u64,
    destroying: bool,
    /// Service id → resource limits of one of its containers (cpus, memory
    /// bytes), for the host reservation gauges.
    reservations: HashMap<String, (f64, i64)>,
}

/// A failure that has not ended yet: the start of a recovery-time
/// measurement (`drover_recovery_seconds`).
struct OpenFailure {
    /// The blueprint service the entity belongs to: the metric's `entity`.
    service: String,
    since_ms: u64,
    /// Set when the failed entity is removed: it may be a replacement in
    /// progress, which ends the failure when its record arrives.
    gone_ms: Option<u64>,
}

pub use crate::activity::{Activity, RecordActivity};
pub use crate::wire::{AppDetail, AppSummary, EntityView, HostView};


pub struct Management {
    /// Location name → where entities of that location run.
    locations: BTreeMap<String, Placement>,
    apps: BTreeMap<String, AppRecord>,
    entities: HashMap<EntityRef, EntityRecord>,
    activities: VecDeque<Activity>,
    next_activity: u64,
    host_containers: HashMap<String, usize>,
    host_capacity: HashMap<String, HostCapacity>,
    capacity_read: HashMap<String, Instant>,
    open_failures: HashMap<EntityRef, OpenFailure>,
    presets: crate::policy::Presets,
    policies: crate::policy::registry::PolicyRegistry,
    /// Preset files as last seen (modification time, length), for reloads.
    preset_stamps: BTreeMap<std::path::PathBuf, (std::time::SystemTime, u64)>,
    /// Presets whose file is invalid now (the previous version stays in force).
    preset_errors: BTreeMap<String, String>,
    host_machine: HashMap<String, crate::host::machine::MachineStats>,
    /// The durable store, if any (`drover serve` always has one).
    store: Option<Addr<crate::store::StoreActor>>,
    /// What the store held at start: applications to rebind.
    rebind: Option<crate::store::Snapshot>,
    /// Saved cluster membership and policy memory, for entities being rebuilt.
    saved: std::sync::Arc<crate::entity::Saved>,
    /// Deploys whose store write is in flight (their names are taken).
    pending_deploys: std::collections::BTreeSet<String>,
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
            host_capacity: HashMap::new(),
            capacity_read: HashMap::new(),
            open_failures: HashMap::new(),
            presets: crate::policy::Presets::empty(),
            policies: Default::default(),
            preset_stamps: BTreeMap::new(),
            preset_errors: BTreeMap::new(),
            host_machine: HashMap::new(),
            store: None,
            rebind: None,
            saved: Default::default(),
            pending_deploys: Default::default(),
        }
    }

    pub fn with_presets(mut self, presets: crate::policy::Presets) -> Self {
        self.presets = presets;
        self
    }

    /// Uses a durable store; `snapshot` is what it held at start, rebound
    /// when the actor starts.
    pub fn with_store(
        mut self,
        store: Addr<crate::store::StoreActor>,
        snapshot: crate::store::Snapshot,
    ) -> Self {
        self.saved = std::sync::Arc::new(crate::entity::Saved {
            clusters: snapshot.clusters.clone(),
            policies: snapshot.policies.clone(),
        });
        self.store = Some(store);
        self.rebind = Some(snapshot);
        self
    }

    fn links(&self, ctx: &mut Context<Self>) -> Links {
        Links {
            store: self.store.clone().map(|s| s.recipient()),
            saved: self.saved.clone(),
            policies: ctx.address().recipient(),
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
        self.entities.insert(
            me,
            EntityRecord {
                view,
                handle,
                recent_notices: VecDeque::new(),
            },
        );
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
            entity_count: self.entities.keys().filter(|r| r.app == id).count(),
            created_ms: rec.created_ms,
        }
    }

    fn record(&mut self, mut a: Activity) {
        a.id = self.next_activity;
        self.next_activity += 1;
        self.observe_activity(&a);
        self.activities.push_front(a);
        self.activities.truncate(ACTIVITY_RETENTION);
    }

    /// The blueprint service an entity belongs to: a cluster member's
    /// cluster, or the entity itself. Metric labels use it, never a member
    /// id: members are numbered without bound as they are replaced.
    fn service_of(&self, r: &EntityRef) -> String {
        match self.entities.get(r).and_then(|e| e.view.parent.as_ref()) {
            Some(parent) if parent != &r.app => parent.clone(),
            _ => r.entity.clone(),
        }
    }

    /// The metrics of a notice: failures, and the end of a recovery.
    fn observe_notice(&mut self, source: &EntityRef, name: &str, detail: &serde_json::Value) {
        if !self.apps.contains_key(&source.app) {
            return;
        }
        let now = now_ms();
        let service = self.service_of(source);
        if name == s::ENTITY_FAILED {
            metrics::FAILURES
                .with_label_values(&[&source.app, &service])
                .inc();
            // A crash loop fails again before it ever recovers: the outage
            // runs from the first failure.
            let since_ms = detail
                .get("time_ms")
                .and_then(|t| t.as_u64())
                .unwrap_or(now);
            self.open_failures
                .entry(source.clone())
                .or_insert(OpenFailure {
                    service,
                    since_ms,
                    gone_ms: None,
                });
        } else if name == s::ENTITY_RECOVERED {
            self.close_failure(source, now);
        }
    }

    /// Ends an open failure of `who`, if there is one, and measures it.
    fn close_failure(&mut self, who: &EntityRef, now: u64) {
        if let Some(f) = self.open_failures.remove(who) {
            let seconds = now.saturating_sub(f.since_ms) as f64 / 1000.0;
            metrics::RECOVERY_SECONDS
                .with_label_values(&[&who.app, &f.service])
                .observe(seconds);
            tracing::info!(app = %who.app, entity = %who.entity, service = %f.service, seconds, "recovered");
        }
    }

    /// The metrics of an activity: policy actions, restarts, replacements
    /// (which also end the replaced member's failure).
    fn observe_activity(&mut self, a: &Activity) {
        if !self.apps.contains_key(&a.application) {
            return;
        }
        let app = a.application.as_str();
        if a.kind == "policy" {
            let (policy, action) = metrics::policy_and_action(&a.name);
            metrics::POLICY_ACTIONS
                .with_label_values(&[app, policy, action, &a.outcome])
                .inc();
            let reason = a.message.as_deref().unwrap_or("");
            tracing::info!(app, entity = %a.entity, policy, action, outcome = %a.outcome, reason, "policy action");
            if a.name == "restarter.restart" && a.outcome == "scheduled" {
                let service = self.service_of(&EntityRef::new(app, a.entity.clone()));
                metrics::RESTARTS.with_label_values(&[app, &service]).inc();
            }
        }
        let replacement = (a.kind == "policy" && a.name == "replacer.replace")
            || (a.kind == "effector" && a.name == "replace_member");
        if replacement {
            let ok = a.outcome == "ok";
            metrics::REPLACEMENTS
                .with_label_values(&[app, &a.entity, if ok { "ok" } else { "error" }])
                .inc();
            if let (true, Some(member)) = (ok, a.args.get("member").and_then(|m| m.as_str())) {
                self.close_failure(&EntityRef::new(app, member), now_ms());
            }
        }
    }

    /// Reads a host's capacity (`docker info`) in the background, at most
    /// once per [`CAPACITY_REFRESH`].
    fn refresh_capacity(&mut self, host_name: &str, ctx: &mut Context<Self>) {
        if self
            .capacity_read
            .get(host_name)
            .is_some_and(|t| t.elapsed() < CAPACITY_REFRESH)
        {
            return;
        }
        let Some(host) = self
            .locations
            .values()
            .find(|p| p.host_name == host_name)
            .map(|p| p.host.clone())
        else {
            return;
        };
        self.capacity_read
            .insert(host_name.to_string(), Instant::now());
        let name = host_name.to_string();
        ctx.spawn(
            async move { host.send(Capacity).await }
                .into_actor(self)
                .map(move |res, act, _| match res {
                    Ok(Ok(c)) => {
                        act.host_capacity.insert(name, c);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(host = %name, error = %e, "cannot read host capacity")
                    }
                    Err(_) => {}
                }),
        );
    }

    /// Sets every metric that describes the current state, from the read
    /// model: nothing on the sensor path touches a metric.
    fn collect_state_metrics(&self) {
        metrics::APPLICATIONS.set(self.apps.len() as i64);
        let mut counts: HashMap<(EntityKind, Lifecycle), i64> = HashMap::new();
        let mut per_app: HashMap<(&str, EntityKind), HashMap<Lifecycle, i64>> = HashMap::new();
        for (key, rec) in &self.entities {
            *counts.entry((rec.view.kind, rec.view.state)).or_default() += 1;
            *per_app
                .entry((key.app.as_str(), rec.view.kind))
                .or_default()
                .entry(rec.view.state)
                .or_default() += 1;
        }
        for kind in EntityKind::ALL {
            for state in Lifecycle::ALL {
                let n = counts.get(&(kind, state)).copied().unwrap_or(0);
                metrics::ENTITIES
                    .with_label_values(&[kind.as_str(), state.as_str()])
                    .set(n);
            }
        }
        // Reset, then set: series of destroyed entities disappear. The
        // scrape renders right after, in this same handler, so it never
        // sees the gap.
        metrics::reset_state_metrics();
        for ((app, kind), states) in &per_app {
            for state in Lifecycle::ALL {
                metrics::APPLICATION_ENTITIES
                    .with_label_values(&[app, kind.as_str(), state.as_str()])
                    .set(states.get(&state).copied().unwrap_or(0));
            }
        }
        let mut reserved: HashMap<&str, (f64, i64)> = HashMap::new();
        for (key, rec) in &self.entities {
            let sensor = |n: &str| rec.view.sensors.get(n).map(|v| &v.value);
            let int = |n: &str| sensor(n).and_then(|v| v.as_i64()).unwrap_or(0);
            let labels = [key.app.as_str(), key.entity.as_str()];
            match rec.view.kind {
                EntityKind::Cluster => {
                    metrics::CLUSTER_SIZE
                        .with_label_values(&labels)
                        .set(int(s::GROUP_SIZE));
                    metrics::CLUSTER_DESIRED_SIZE
                        .with_label_values(&labels)
                        .set(int(s::GROUP_DESIRED_SIZE));
                }
                EntityKind::LoadBalancer => {
                    use crate::lb::sensors as lb;
                    let backends = sensor(lb::BACKENDS)
                        .and_then(|b| b.as_array())
                        .map_or(0, |b| b.len());
                    metrics::LB_BACKENDS
                        .with_label_values(&labels)
                        .set(backends as i64);
                    metrics::LB_ACTIVE
                        .with_label_values(&labels)
                        .set(int(lb::ACTIVE));
                    // Counters that mirror a sensor: the series is rebuilt at
                    // its current value (a load balancer that starts afresh
                    // restarts at 0, which Prometheus reads as a reset).
                    let counter = |v: &prometheus::IntCounterVec, n: &str| {
                        v.with_label_values(&labels)
                            .inc_by(sensor(n).and_then(|x| x.as_u64()).unwrap_or(0))
                    };
                    counter(&metrics::LB_CONNECTIONS, lb::CONNECTIONS_TOTAL);
                    counter(&metrics::LB_ERRORS, lb::ERRORS_TOTAL);
                    counter(&metrics::LB_RETRIES, lb::RETRIES_TOTAL);
                    metrics::LB_REQUESTS_PER_SECOND
                        .with_label_values(&labels)
                        .set(
                            sensor(lb::REQS_PER_SEC)
                                .and_then(|x| x.as_f64())
                                .unwrap_or(0.0),
                        );
                }
                EntityKind::Container
                    if matches!(
                        rec.view.state,
                        Lifecycle::Starting | Lifecycle::Running | Lifecycle::OnFire
                    ) =>
                {
                    let Some(host) = sensor(s::HOST_NAME).and_then(|h| h.as_str()) else {
                        continue;
                    };
                    let service = match rec.view.parent.as_deref() {
                        Some(p) if p != key.app => p,
                        _ => key.entity.as_str(),
                    };
                    if let Some((cpus, mem)) = self
                        .apps
                        .get(&key.app)
                        .and_then(|a| a.reservations.get(service))
                    {
                        let r = reserved.entry(host).or_default();
                        r.0 += cpus;
                        r.1 += mem;
                    }
                }
                _ => {}
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in self.locations.values() {
            let host = p.host_name.as_str();
            if !seen.insert(host) {
                continue;
            }
            let labels = [host];
            metrics::HOST_CONTAINERS
                .with_label_values(&labels)
                .set(self.host_containers.get(host).copied().unwrap_or(0) as i64);
            if let Some(c) = self.host_capacity.get(host) {
                metrics::HOST_CPUS.with_label_values(&labels).set(c.cpus);
                metrics::HOST_MEMORY
                    .with_label_values(&labels)
                    .set(c.memory_bytes);
            }
            let (cpus, mem) = reserved.get(host).copied().unwrap_or_default();
            metrics::HOST_RESERVED_CPUS
                .with_label_values(&labels)
                .set(cpus);
            metrics::HOST_RESERVED_MEMORY
                .with_label_values(&labels)
                .set(mem);
        }
    }
}

/// Resource limits of one container of each service of a blueprint.
fn reservations(bp: &Blueprint) -> HashMap<String, (f64, i64)> {
    bp.services
        .iter()
        .filter_map(|svc| {
            let spec = match svc.kind {
                crate::blueprint::ServiceType::Container => svc.own_container(),
                crate::blueprint::ServiceType::Cluster => svc.member.clone()?,
                crate::blueprint::ServiceType::LoadBalancer => return None,
            };
            let r = &spec.resources;
            Some((
                svc.id.clone(),
                (r.cpus.unwrap_or(0.0), r.memory.map_or(0, |m| m.0 as i64)),
            ))
        })
        .collect()
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

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.rebind(ctx);
        // Preset files are polled: a change is in force within about a
        // second, with no watcher to lose events on editors' rename-and-replace.
        ctx.run_interval(PRESET_POLL, |act, ctx| act.check_presets(ctx));
    }
}

/// How often preset files are checked for edits.
pub const PRESET_POLL: std::time::Duration = std::time::Duration::from_secs(1);

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
            EntityEvent::Gone { source } => {
                let now = now_ms();
                if let Some(f) = self.open_failures.get_mut(&source) {
                    f.gone_ms = Some(now);
                }
                self.open_failures.retain(|_, f| {
                    f.gone_ms
                        .is_none_or(|g| now.saturating_sub(g) < GONE_FAILURE_GRACE_MS)
                });
                self.forget(&source);
            }
            // Failures and recoveries go into the activity record: the
            // operator's "what happened and why".
            EntityEvent::Notice {
                source,
                name,
                detail,
            } => {
                // A notice of an entity already forgotten is the late copy
                // of one recorded before it went away.
                let Some(rec) = self.entities.get_mut(&source) else {
                    return;
                };
                let echo = rec.recent_notices.iter().any(|(n, d, at)| {
                    n == &name && d == &detail && at.elapsed() < NOTICE_ECHO_WINDOW
                });
                if echo {
                    return;
                }
                rec.recent_notices
                    .push_back((name.clone(), detail.clone(), Instant::now()));
                if rec.recent_notices.len() > RECENT_NOTICES {
                    rec.recent_notices.pop_front();
                }
                self.observe_notice(&source, &name, &detail);
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
    fn handle(&mut self, msg: HostResync, ctx: &mut Context<Self>) {
        // A resync comes every 10 s per host: a good clock for the (much
        // rarer) capacity reads.
        self.refresh_capacity(&msg.host, ctx);
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
        let mut errs = build_context_checks(bp);
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

/// Build contexts must be absolute paths to directories on this machine,
/// holding their Dockerfile (the service cannot know what a relative path
/// was relative to; `drover deploy` resolves them).
fn build_context_checks(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = crate::blueprint::wiring::validate_absolute_contexts(bp);
    for (path, b) in crate::blueprint::wiring::builds(bp) {
        let dir = std::path::Path::new(&b.context);
        if !dir.is_absolute() {
            continue;
        }
        if !dir.is_dir() {
            errs.push(ValidationError::at(
                path,
                format!(
                    "build context `{}` is not a directory on the drover host",
                    b.context
                ),
            ));
        } else if !dir.join(b.dockerfile()).is_file() {
            errs.push(ValidationError::at(
                path,
                format!("build context `{}` has no `{}`", b.context, b.dockerfile()),
            ));
        }
    }
    errs
}

impl Handler<Deploy> for Management {
    type Result = ResponseActFuture<Self, Result<String, ManagementError>>;
    fn handle(&mut self, msg: Deploy, _: &mut Context<Self>) -> Self::Result {
        let bp = match crate::blueprint::parse_blueprint_with(&msg.file, &msg.text, &|bp| {
            self.context_checks(bp)
        }) {
            Ok(bp) => bp,
            Err(e) => return Box::pin(fut::ready(Err(ManagementError::Blueprint(e)))),
        };
        let id = bp.name.clone();
        if self.apps.contains_key(&id) || !self.pending_deploys.insert(id.clone()) {
            return Box::pin(fut::ready(Err(ManagementError::Exists(id))));
        }
        let stored = crate::store::StoredApp {
            id: id.clone(),
            file: msg.file.clone(),
            text: msg.text.clone(),
            created_ms: now_ms(),
            destroying: false,
        };
        // Acknowledged only once stored: a crash after the answer cannot
        // lose the application.
        let store = self.store.clone();
        let write = stored.clone();
        Box::pin(
            async move {
                match store {
                    Some(s) => s
                        .send(crate::store::StoreWrite::PutApp(write))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.pending_deploys.remove(&id);
                res.map_err(ManagementError::Store)?;
                act.create_app(ctx, bp, stored.created_ms, stored.file, stored.text);
                Ok(id)
            }),
        )
    }
}

impl Management {
    /// Builds an application's actors and starts it (deploy and rebind).
    fn create_app(
        &mut self,
        ctx: &mut Context<Self>,
        bp: Blueprint,
        created_ms: u64,
        file: String,
        text: String,
    ) -> String {
        let id = bp.name.clone();
        let at = self
            .locations
            .get(&bp.location)
            .cloned()
            .or_else(|| self.locations.values().next().cloned())
            .expect("at least the local location");
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
                reservations: reservations(&bp),
                blueprint: bp,
                text,
                file,
                created_ms,
                destroying: false,
            },
        );
        tracing::info!(app = %id, "deploying");
        {
            use crate::blueprint::ServiceType;
            let bp = &self.apps[&id].blueprint;
            let of = |kinds: &[ServiceType]| -> Vec<&str> {
                bp.services
                    .iter()
                    .filter(|s| kinds.contains(&s.kind))
                    .map(|s| s.id.as_str())
                    .collect()
            };
            metrics::init_application(
                &id,
                &of(&[ServiceType::Container, ServiceType::Cluster]),
                &of(&[ServiceType::Cluster]),
            );
        }
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
        id
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
        // The intent first: a crash mid-destroy is finished on rebind.
        let store = self.store.clone();
        let intent = self.apps.get(&app).map(|r| crate::store::StoredApp {
            id: app.clone(),
            file: r.file.clone(),
            text: r.text.clone(),
            created_ms: r.created_ms,
            destroying: true,
        });
        let app_id = app.clone();
        Box::pin(
            async move {
                if let (Some(s), Some(intent)) = (&store, intent) {
                    if let Ok(Err(e)) = s.send(crate::store::StoreWrite::PutApp(intent)).await {
                        tracing::error!(app = %app_id, error = %e, "cannot record the destroy intent; destroying anyway");
                    }
                }
                let res = handle.teardown.send(Teardown).await;
                if matches!(res, Ok(Ok(()))) {
                    if let Some(s) = &store {
                        let _ = s.send(crate::store::StoreWrite::DeleteApp(app_id)).await;
                    }
                }
                res
            }
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
                            act.open_failures.retain(|k, _| k.app != app);
                            metrics::forget_application(&app);
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
        let entities = self.app_entities(&app);
        let mut latest_activities = BTreeMap::new();
        for a in self.activities.iter().filter(|a| a.application == app) {
            latest_activities
                .entry(a.entity.clone())
                .or_insert_with(|| a.clone());
            if latest_activities.len() == entities.len() {
                break;
            }
        }
        Ok(AppDetail {
            summary: self.summary(&app, rec),
            entities,
            blueprint: rec.blueprint.clone(),
            latest_activities,
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
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    pub application: Option<String>,
    pub entity: Option<String>,
    /// `effector`, `policy` or `event`.
    pub kind: Option<String>,
    /// Activities whose name starts with this: `restarter.`, `replace`.
    pub name: Option<String>,
    /// At most this many (default 100, capped at [`ACTIVITY_LIMIT_MAX`]).
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
                machine: self.host_machine.get(&p.host_name).cloned(),
            })
            .collect()
    }
}

/// The locations with host pools, each with its hosts (and their
/// sensors), headroom, recent placement decisions and pool events
/// (`GET /v1/locations`).
#[derive(Message)]
#[rtype(result = "Vec<crate::location::pool::PoolView>")]
pub struct ListLocations;

impl Handler<ListLocations> for Management {
    type Result = ResponseFuture<Vec<crate::location::pool::PoolView>>;
    fn handle(&mut self, _: ListLocations, _: &mut Context<Self>) -> Self::Result {
        let pools: Vec<_> = self
            .locations
            .values()
            .filter_map(|p| p.pool.clone())
            .collect();
        Box::pin(async move {
            let views = futures_util::future::join_all(
                pools.iter().map(|p| p.send(crate::location::pool::GetPool)),
            )
            .await;
            views.into_iter().filter_map(Result::ok).collect()
        })
    }
}

/// An operator's drain or uncordon of one pool host.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, ManagementError>")]
pub struct PoolHostOp {
    pub location: String,
    pub host: String,
    pub op: crate::location::pool::HostOpKind,
}

impl Handler<PoolHostOp> for Management {
    type Result = ResponseFuture<Result<serde_json::Value, ManagementError>>;
    fn handle(&mut self, msg: PoolHostOp, _: &mut Context<Self>) -> Self::Result {
        let Some(pool) = self
            .locations
            .get(&msg.location)
            .and_then(|p| p.pool.clone())
        else {
            let known: Vec<&str> = self
                .locations
                .iter()
                .filter(|(_, p)| p.pool.is_some())
                .map(|(n, _)| n.as_str())
                .collect();
            let e = ManagementError::NoHost(format!(
                "no host pool `{}`; pools (drover.yaml): {}",
                msg.location,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            return Box::pin(async move { Err(e) });
        };
        Box::pin(async move {
            pool.send(crate::location::pool::HostOp {
                host: msg.host,
                op: msg.op,
            })
            .await
            .map_err(|e| ManagementError::NoHost(format!("the host pool did not answer: {e}")))?
            .map_err(ManagementError::NoHost)
        })
    }
}

/// Rebuilds the state metrics from the read model and renders every metric:
/// one scrape. Rendering here, in the actor, makes a scrape consistent (two
/// concurrent scrapes never see each other's half-rebuilt gauges); it takes
/// well under a millisecond at 100 containers (README, "Observability").
#[derive(Message)]
#[rtype(result = "String")]
pub struct CollectMetrics;

impl Handler<CollectMetrics> for Management {
    type Result = String;
    fn handle(&mut self, _: CollectMetrics, _: &mut Context<Self>) -> String {
        self.collect_state_metrics();
        metrics::render()
    }
}

impl Handler<RecordActivity> for Management {
    type Result = ();
    fn handle(&mut self, RecordActivity(a): RecordActivity, _: &mut Context<Self>) {
        self.record(a);
    }
}

impl Handler<crate::policy::PolicyRegistered> for Management {
    type Result = ();
    fn handle(&mut self, msg: crate::policy::PolicyRegistered, _: &mut Context<Self>) {
        self.policies.register(msg);
    }
}

type PresetFile = (std::path::PathBuf, std::time::SystemTime, u64, String);

/// Reads every preset file (on a blocking thread: it is disk I/O).
fn scan_presets(dir: &std::path::Path) -> Vec<PresetFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        out.push((
            path,
            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            meta.len(),
            text,
        ));
    }
    out
}

impl Management {
    fn check_presets(&mut self, ctx: &mut Context<Self>) {
        let Some(dir) = self.presets.dir().map(|d| d.to_path_buf()) else {
            return;
        };
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || scan_presets(&dir))
                    .await
                    .unwrap_or_default()
            }
            .into_actor(self)
            .map(|files, act, _| act.apply_preset_files(files)),
        );
    }

    /// Applies edited preset files: a valid edit reconfigures every policy
    /// built from it; an invalid one is refused whole and the old version
    /// stays in force, with the error in the log, the API and a metric.
    fn apply_preset_files(&mut self, files: Vec<PresetFile>) {
        for (path, mtime, len, text) in files {
            if self.preset_stamps.get(&path) == Some(&(mtime, len)) {
                continue;
            }
            self.preset_stamps.insert(path.clone(), (mtime, len));
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            match crate::policy::Presets::parse(&path.display().to_string(), &text) {
                Ok(preset) => {
                    let was_invalid = self.preset_errors.remove(&name).is_some();
                    if self.presets.get(&name) == Some(&preset) {
                        continue;
                    }
                    self.presets.insert(name.clone(), preset);
                    tracing::info!(preset = %name, "preset reloaded");
                    let mut updates = Vec::new();
                    for (app, entity, policy, entry, config) in
                        self.policies.using_preset(&name, &self.presets)
                    {
                        match config {
                            Ok(c) => updates.push((app, entity, policy, entry.control.clone(), c)),
                            Err(e) => {
                                tracing::warn!(preset = %name, %app, %entity, error = ?e, "preset no longer fits a policy's overrides; old config kept")
                            }
                        }
                    }
                    for (app, entity, policy, control, config) in updates {
                        control.do_send(crate::policy::PolicyControl {
                            policy: policy.clone(),
                            op: crate::policy::PolicyOp::Set(config),
                        });
                        self.record(Activity::policy(
                            &app,
                            &entity,
                            "preset.reload",
                            serde_json::json!({ "preset": name, "policy": policy }),
                            "ok",
                            format!("preset `{name}` changed: policy `{policy}` reconfigured"),
                        ));
                    }
                    let _ = was_invalid;
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.preset_errors.get(&name) != Some(&message) {
                        tracing::warn!(preset = %name, error = %message, "invalid preset edit refused; the previous version stays in force");
                        self.record(Activity {
                            id: 0,
                            time_ms: now_ms(),
                            application: String::new(),
                            entity: String::new(),
                            kind: "event".into(),
                            name: "preset.invalid".into(),
                            args: serde_json::json!({ "preset": name, "line": e.line, "column": e.column, "path": e.path }),
                            outcome: "refused".into(),
                            message: Some(message.clone()),
                            duration_seconds: 0.0,
                        });
                        self.preset_errors.insert(name.clone(), message);
                    }
                }
            }
        }
        metrics::PRESET_ERRORS.set(self.preset_errors.len() as i64);
    }
}

/// Presets and their state, for `GET /v1/presets`.
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, ManagementError>")]
pub struct ListPresets;

impl Handler<ListPresets> for Management {
    type Result = Result<serde_json::Value, ManagementError>;
    fn handle(&mut self, _: ListPresets, _: &mut Context<Self>) -> Self::Result {
        let presets: Vec<serde_json::Value> = self
            .presets
            .names()
            .into_iter()
            .map(|n| {
                let p = self.presets.get(&n);
                serde_json::json!({
                    "name": n,
                    "kind": p.map(|p| p.kind.clone()),
                    "description": p.and_then(|p| p.description.clone()),
                    "config": p.map(|p| serde_json::to_value(&p.config).unwrap_or_default()),
                    "error": self.preset_errors.get(&n),
                })
            })
            .collect();
        Ok(
            serde_json::json!({ "dir": self.presets.dir_display(), "presets": presets, "errors": self.preset_errors }),
        )
    }
}

/// A REST operation on an entity's policy.
#[derive(Debug, Clone)]
pub enum PolicyRequestOp {
    List,
    Get,
    /// A new config: YAML or JSON text of the kind's keys (defaults apply
    /// for keys left out).
    Put(String),
    Start,
    Stop,
}

#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, ManagementError>")]
pub struct PolicyRequest {
    pub app: String,
    pub entity: String,
    pub policy: String,
    pub op: PolicyRequestOp,
}

impl Handler<PolicyRequest> for Management {
    type Result = ResponseFuture<Result<serde_json::Value, ManagementError>>;
    fn handle(&mut self, msg: PolicyRequest, _: &mut Context<Self>) -> Self::Result {
        use crate::policy::{PolicyControl, PolicyOp};
        if !self.apps.contains_key(&msg.app) {
            return Box::pin(async move { Err(ManagementError::NoApplication(msg.app)) });
        }
        if let PolicyRequestOp::List = msg.op {
            let names = self.policies.names(&msg.app, &msg.entity);
            let controls: Vec<(String, actix::Recipient<PolicyControl>)> = names
                .iter()
                .filter_map(|n| {
                    self.policies
                        .get(&msg.app, &msg.entity, n)
                        .map(|e| (n.clone(), e.control.clone()))
                })
                .collect();
            return Box::pin(async move {
                let mut out = Vec::new();
                for (n, c) in controls {
                    if let Ok(Ok(st)) = c
                        .send(PolicyControl {
                            policy: n,
                            op: PolicyOp::Get,
                        })
                        .await
                    {
                        out.push(serde_json::to_value(st).unwrap_or_default());
                    }
                }
                Ok(serde_json::Value::Array(out))
            });
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
            PolicyRequestOp::Get | PolicyRequestOp::List => PolicyOp::Get,
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
                Ok(Ok(st)) => Ok(serde_json::to_value(st).unwrap_or_default()),
                Ok(Err(e)) => Err(ManagementError::NoPolicy(e)),
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

impl Handler<crate::host::HostMachine> for Management {
    type Result = ();
    fn handle(&mut self, msg: crate::host::HostMachine, _: &mut Context<Self>) {
        self.host_machine.insert(msg.host, msg.stats);
    }
}

impl Management {
    /// Rebuilds every stored application and reconciles with the engines:
    /// containers are adopted by name (deterministic), missing ones are
    /// created, interrupted operations resume from the saved intents, and
    /// containers labelled as drover's that nothing expects are removed.
    fn rebind(&mut self, ctx: &mut Context<Self>) {
        let Some(snap) = self.rebind.take() else {
            return;
        };
        let mut expected: std::collections::BTreeSet<(String, String)> = Default::default();
        for (id, app) in snap.apps {
            let bp = match crate::blueprint::parse_blueprint_with(&app.file, &app.text, &|bp| {
                self.context_checks(bp)
            }) {
                Ok(bp) => bp,
                Err(e) => {
                    // Kept as it is (its containers too): an operator decides.
                    tracing::error!(app = %id, error = %e, "a stored application no longer validates; not rebound");
                    expected.insert((id.clone(), "*".into()));
                    continue;
                }
            };
            for svc in &bp.services {
                match svc.kind {
                    crate::blueprint::ServiceType::Cluster => {
                        let members: Vec<u32> =
                            match snap.clusters.get(&(id.clone(), svc.id.clone())) {
                                Some(st) => st
                                    .members
                                    .iter()
                                    .copied()
                                    .chain(st.replacing.iter().flat_map(|(a, b)| [*a, *b]))
                                    .collect(),
                                None => (1..=svc.initial_size.unwrap_or(1)).collect(),
                            };
                        for m in members {
                            expected.insert((id.clone(), format!("{}-{m}", svc.id)));
                        }
                    }
                    _ => {
                        expected.insert((id.clone(), svc.id.clone()));
                    }
                }
            }
            tracing::info!(app = %id, destroying = app.destroying, "rebinding");
            self.create_app(ctx, bp, app.created_ms, app.file.clone(), app.text.clone());
            self.record(Activity::policy(
                &id,
                &id,
                "rebind",
                serde_json::json!({}),
                "ok",
                "rebuilt from the store".to_string(),
            ));
            if app.destroying {
                // A destroy was under way: finish it.
                ctx.address().do_send(Destroy(id));
            }
        }
        // After the rebuilt entities had time to register their members.
        ctx.run_later(ORPHAN_SWEEP_AFTER, move |act, ctx| {
            act.sweep_orphans(ctx, expected)
        });
    }

    /// Removes containers labelled as drover's that no entity expects (left
    /// by an interrupted deploy, or an interrupted shrink).
    fn sweep_orphans(
        &mut self,
        ctx: &mut Context<Self>,
        expected: std::collections::BTreeSet<(String, String)>,
    ) {
        let mut hosts: Vec<Addr<crate::host::DockerHost>> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let expected = std::sync::Arc::new(expected);
        for p in self.locations.values() {
            match &p.pool {
                // Every engine of a pool, not only its home engine.
                Some(pool) => {
                    let (pool, expected) = (pool.clone(), expected.clone());
                    ctx.spawn(
                        async move { pool.send(crate::location::pool::GetHosts).await }
                            .into_actor(self)
                            .map(move |res, act, ctx| {
                                for host in res.unwrap_or_default() {
                                    act.sweep_host(ctx, host, expected.clone());
                                }
                            }),
                    );
                }
                None => {
                    if seen.insert(p.host_name.clone()) {
                        hosts.push(p.host.clone());
                    }
                }
            }
        }
        for host in hosts {
            self.sweep_host(ctx, host, expected.clone());
        }
    }

    fn sweep_host(
        &mut self,
        ctx: &mut Context<Self>,
        host: Addr<crate::host::DockerHost>,
        expected: std::sync::Arc<std::collections::BTreeSet<(String, String)>>,
    ) {
        {
            let h = host.clone();
            ctx.spawn(async move { h.send(crate::host::ListManaged { app: None }).await }.into_actor(self).map(move |res, act, _| {
                let Ok(Ok(list)) = res else { return };
                let ours = crate::host::OWNER.get();
                for c in list {
                    // Another drover's container (one engine, several drovers): not ours to judge.
                    if ours.is_some() && c.owner.as_ref() != ours {
                        continue;
                    }
                    let known_app = act.apps.contains_key(&c.app) || act.pending_deploys.contains(&c.app);
                    let keep = expected.contains(&(c.app.clone(), "*".into()))
                        || expected.contains(&(c.app.clone(), c.entity.clone()))
                        || (known_app && act.entities.contains_key(&EntityRef::new(c.app.clone(), c.entity.clone())));
                    if keep {
                        continue;
                    }
                    tracing::warn!(app = %c.app, entity = %c.entity, container = %c.name, "removing an orphaned container");
                    act.record(Activity::policy(&c.app, &c.entity, "rebind.remove_orphan", serde_json::json!({ "container": c.name }), "ok",
                        "a container labelled as drover's that no entity expects".to_string()));
                    host.do_send(crate::host::Operate { container: c.id, op: crate::host::ContainerOp::Remove });
                }
            }));
        }
    }
}

/// How long after start the orphan sweep runs: rebuilt clusters register
/// their members first.
const ORPHAN_SWEEP_AFTER: std::time::Duration = std::time::Duration::from_secs(3);
