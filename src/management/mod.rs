//! The management actor: owns the applications and the read model.
//!
//! It creates application entities on deploy and tears them down on
//! destroy, routes engine events to the container entity they concern, and
//! subscribes to every entity so that it holds an up-to-date view of the
//! whole tree. The REST API reads that view, shared with it behind a lock
//! ([`read_view`]: the actor is its only writer), or asks through messages;
//! it never reaches into an entity.
//!
//! # Layout
//!
//! One concern per file. The pure parts (no actor, no clock, no I/O) hold
//! the decisions and carry the unit tests; the actor's files only move
//! messages and do I/O around them.
//!
//! | file | concern |
//! | --- | --- |
//! | `mod.rs` | the actor, its state, its errors, registration of entities and the activity record |
//! | [`read_model`] | pure: the view of every entity, the tree in order, summaries, the counts a scrape needs, the latest activity of each entity; `host_index.rs` who runs where, `paging.rs` the tree's page token |
//! | [`read_view`] | the read model and activity record shared with the REST API's reads (one writer: this actor) |
//! | `routing.rs` | engine events and resyncs to container entities; entity events into the read model |
//! | [`notices`] | pure: dropping the duplicate of a notice a cluster forwards |
//! | [`recovery`] | pure: open failures to `drover_recovery_seconds` |
//! | `observe.rs` | the metrics of notices and activities (failures, restarts, replacements, policy actions) |
//! | `state_metrics.rs` | the gauges a scrape rebuilds from the read model; host capacity reads |
//! | `deploy.rs` | deploy, building an application |
//! | [`plan`] | pure: the plan of an apply, service by service |
//! | `apply.rs` | apply: checks, the stored intent, the plan's steps handed to policies and the application entity |
//! | [`pending`] | an apply's steps stored before they run, finished by a rebind after a crash |
//! | `destroy.rs` | destroy, and forgetting the application's saved state |
//! | `effectors.rs` | effector calls, recorded as activities |
//! | [`faults`] | faults injected from outside (chaos): routed to the container's engine or the pool's provisioner, recorded as activities |
//! | `queries.rs` | the read-only REST answers asked through messages: hosts, locations, metrics |
//! | `rebind.rs` | rebuilding the stored applications at start, and the orphan sweep |
//! | `presets.rs` | preset files polled and reloaded into running policies; change detection is pure |
//! | `policy_rest.rs` | REST operations on a running policy |

mod apply;
mod deploy;
mod destroy;
mod effectors;
pub mod faults;
pub mod notices;
mod observe;
mod pending;
pub mod plan;
mod policy_rest;
mod presets;
mod queries;
pub mod read_model;
pub mod read_view;
mod rebind;
pub mod recovery;
mod routing;
mod state_metrics;
mod volumes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use actix::prelude::*;
use serde::Serialize;

use crate::blueprint::Blueprint;
use crate::entity::{ChildAdded, EntityHandle, Links, Placement};
use crate::protocol::{EntityError, EntityRef, Interest, Subscribe};

pub use crate::activity::{Activity, RecordActivity};
pub use crate::wire::{AppDetail, AppSummary, EntityView, HostView};
pub use apply::{summary as apply_summary, Apply};
pub use deploy::Deploy;
pub use destroy::Destroy;
pub use effectors::{Detached, InvokeEffector};
pub use faults::{FaultError, InjectContainerFault, InjectEngineFault};
pub use policy_rest::{ListPolicies, PolicyRequest, PolicyRequestOp};
pub use presets::{ListPresets, PRESET_POLL};
pub use queries::{ActivityFilter, ListHosts, ListLocations, PoolHostOp};
pub use read_view::ReadView;
pub use state_metrics::scrape as scrape_metrics;
pub use volumes::{SweepVolumes, VolumeSweep};

/// How many activities are kept (newest win).
pub const ACTIVITY_RETENTION: usize = 10_000;

/// The most activities one `GET /v1/activities` answers (default 100): a
/// bounded answer keeps one request from serialising the whole record.
pub const ACTIVITY_LIMIT_MAX: usize = 1_000;

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
    /// Listing or removing an application's volumes failed (the engine's
    /// words, naming the volume).
    #[error(transparent)]
    Volume(#[from] crate::host::volumes::VolumeError),
    #[error(transparent)]
    Entity(#[from] EntityError),
    /// An apply that cannot be carried out (the plan's words).
    #[error("{0}")]
    NotApplicable(String),
    #[error("an apply of application `{0}` is in progress; wait for its `apply` activities and try again")]
    Applying(String),
}

struct AppRecord {
    blueprint: Blueprint,
    /// The blueprint as deployed, and where it came from (for the store).
    text: String,
    file: String,
    /// When this incarnation was deployed: older activities of the same
    /// name belong to an application destroyed before.
    created_ms: u64,
    destroying: bool,
    /// The application entity, which carries out applies.
    entity: Option<Addr<crate::entity::application::ApplicationEntity>>,
}

pub struct Management {
    /// Location name → where entities of that location run.
    locations: BTreeMap<String, Placement>,
    /// Load balancers run as agent containers (see [`crate::lb::agent`]).
    lb_containers: bool,
    /// Location name → its host pool (`drover.yaml` locations only).
    pools: BTreeMap<String, Addr<crate::location::HostPool>>,
    apps: BTreeMap<String, AppRecord>,
    /// The read model and the activity record, shared with the REST API.
    view: ReadView,
    /// The actors behind the read model's entities.
    handles: HashMap<EntityRef, EntityHandle>,
    notices: HashMap<EntityRef, notices::NoticeEchoes>,
    next_activity: u64,
    capacity_read: HashMap<String, Instant>,
    recovery: recovery::RecoveryClock,
    presets: crate::policy::Presets,
    policies: crate::policy::registry::PolicyRegistry,
    /// Preset files as last seen, for reloads.
    preset_stamps: presets::PresetStamps,
    /// Presets whose file is invalid now (the previous version stays in force).
    preset_errors: BTreeMap<String, String>,
    host_machine: HashMap<String, crate::host::machine::MachineStats>,
    /// The durable store, if any (`drover serve` always has one).
    store: Option<Addr<crate::store::StoreActor>>,
    /// What the store held at start: applications to rebind.
    rebind: Option<crate::store::Snapshot>,
    /// Saved cluster membership and policy memory, for entities being rebuilt.
    saved: std::sync::Arc<crate::entity::Saved>,
    /// The store as entities and policies reach it: through the tee that
    /// keeps the latest policy memory in `saved.live` (started with the actor).
    store_tee: Option<Recipient<crate::store::StoreWrite>>,
    /// Deploys whose store write is in flight (their names are taken).
    pending_deploys: BTreeSet<String>,
    /// `drover.yaml`'s `allowed_host_paths`: roots host-path volumes may use.
    allowed_host_paths: Vec<std::path::PathBuf>,
    /// `drover.yaml`'s `build_roots`: where build contexts may lie.
    build_roots: Option<Vec<std::path::PathBuf>>,
    /// Uploaded build contexts (`upload:sha256:...` in blueprints).
    uploads: Option<crate::build_context::Uploads>,
    /// Applications with an apply under way (one at a time each).
    applying: BTreeSet<String>,
    /// Policy changes operators made since the last apply: (app, entity,
    /// policy) → the override (stored; an apply resets them).
    overrides: BTreeMap<(String, String, String), policy_rest::Override>,
    /// Entities that went away since start, until the orphan sweep is
    /// done: a stored member removed right after the rebind (a resumed
    /// replacement that failed) is no longer expected, even if a create the
    /// killed drover had in flight lands its container late.
    gone_before_sweep: Option<BTreeSet<EntityRef>>,
}

impl Management {
    pub fn new(locations: BTreeMap<String, Placement>) -> Self {
        let m = Management {
            locations,
            lb_containers: false,
            pools: BTreeMap::new(),
            apps: BTreeMap::new(),
            view: Default::default(),
            handles: HashMap::new(),
            notices: HashMap::new(),
            next_activity: 1,
            capacity_read: HashMap::new(),
            recovery: Default::default(),
            presets: crate::policy::Presets::empty(),
            policies: Default::default(),
            preset_stamps: Default::default(),
            preset_errors: BTreeMap::new(),
            host_machine: HashMap::new(),
            store: None,
            rebind: None,
            saved: Default::default(),
            store_tee: None,
            pending_deploys: Default::default(),
            allowed_host_paths: Vec::new(),
            build_roots: None,
            uploads: None,
            applying: Default::default(),
            overrides: Default::default(),
            gone_before_sweep: Some(BTreeSet::new()),
        };
        m.seed_hosts();
        m
    }

    /// Shares the read model and activity record with `view`'s holders
    /// (the REST API).
    pub fn with_view(mut self, view: ReadView) -> Self {
        self.view = view;
        self.seed_hosts();
        self
    }

    /// Every location's host has its gauges from the start, before its
    /// first resync says what runs there.
    fn seed_hosts(&self) {
        let mut hosts = self.view.hosts_mut();
        for p in self.locations.values() {
            hosts.entry(p.host_name.clone()).or_default();
        }
    }

    /// Build contexts that are paths must lie under these (`drover.yaml`'s
    /// `build_roots`; none: no path is read).
    pub fn with_build_roots(mut self, roots: Option<Vec<std::path::PathBuf>>) -> Self {
        self.build_roots = roots;
        self
    }

    /// Where uploaded build contexts are kept.
    pub fn with_uploads(mut self, uploads: crate::build_context::Uploads) -> Self {
        self.uploads = Some(uploads);
        self
    }

    /// The roots host-path volumes may lie under (`drover.yaml`).
    pub fn with_allowed_host_paths(mut self, roots: Vec<std::path::PathBuf>) -> Self {
        self.allowed_host_paths = roots;
        self
    }

    /// A store write whose outcome decides the answer (deploy, apply):
    /// done once committed; without a store (unit tests), done at once.
    fn store_write(
        &self,
        w: crate::store::StoreWrite,
    ) -> impl std::future::Future<Output = Result<(), String>> + 'static {
        let store = self.store.clone();
        async move {
            match store {
                Some(s) => s
                    .send(w)
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
    }

    /// The host pools of the `drover.yaml` locations, by location name.
    pub fn with_pools(mut self, pools: BTreeMap<String, Addr<crate::location::HostPool>>) -> Self {
        self.pools = pools;
        self
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
        // Only stored applications' state is kept: state of an application
        // destroyed before (a late write) must not seed a new one.
        self.saved = std::sync::Arc::new(crate::entity::Saved {
            clusters: snapshot
                .clusters
                .iter()
                .filter(|((app, _), _)| snapshot.apps.contains_key(app))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            policies: snapshot
                .policies
                .iter()
                .filter(|((app, _, _), _)| snapshot.apps.contains_key(app))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            live: Default::default(),
            applying: Default::default(),
        });
        self.overrides = policy_rest::overrides_from(&snapshot);
        self.store = Some(store);
        self.rebind = Some(snapshot);
        self
    }

    /// Drops an application's saved cluster membership and policy memory
    /// (a destroy, or a deploy of a new application under that name).
    fn forget_saved(&mut self, app: &str) {
        self.overrides.retain(|(a, _, _), _| a != app);
        self.saved.live.forget(app);
        let saved = &self.saved;
        let holds = saved.clusters.keys().any(|(a, _)| a == app)
            || saved.policies.keys().any(|(a, _, _)| a == app);
        if holds {
            self.saved = std::sync::Arc::new(crate::entity::Saved {
                clusters: saved
                    .clusters
                    .iter()
                    .filter(|((a, _), _)| a != app)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                policies: saved
                    .policies
                    .iter()
                    .filter(|((a, _, _), _)| a != app)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                live: saved.live.clone(),
                applying: saved
                    .applying
                    .iter()
                    .filter(|(a, _)| a != app)
                    .cloned()
                    .collect(),
            });
        }
    }

    fn links(&self, ctx: &mut Context<Self>) -> Links {
        Links {
            store: self
                .store_tee
                .clone()
                .or_else(|| self.store.clone().map(|s| s.recipient())),
            saved: self.saved.clone(),
            children: ctx.address().recipient(),
            activities: ctx.address().recipient(),
            images: Default::default(),
            lb_containers: self.lb_containers,
        }
    }

    /// Load balancers run as agent containers on their location's engine,
    /// and outlive a drover restart (without this, inside drover).
    pub fn with_lb_containers(mut self) -> Self {
        self.lb_containers = true;
        self
    }

    /// A new entity: into the read model, and subscribed to.
    fn register(
        &mut self,
        ctx: &mut Context<Self>,
        me: EntityRef,
        parent: Option<&EntityRef>,
        handle: EntityHandle,
    ) {
        handle
            .subscribe
            .do_send(Subscribe(ctx.address().recipient(), Interest::All));
        self.view.model_mut().register(&me, handle.kind, parent);
        if let Some(gone) = &mut self.gone_before_sweep {
            gone.remove(&me);
        }
        self.notices.remove(&me);
        self.handles.insert(me, handle);
    }

    fn forget(&mut self, me: &EntityRef) {
        if let Some(gone) = &mut self.gone_before_sweep {
            gone.insert(me.clone());
        }
        self.view.model_mut().forget(me);
        self.handles.remove(me);
        self.notices.remove(me);
    }

    /// What the REST API reads of an application: set on deploy and apply.
    fn publish_app(&self, id: &str) {
        let Some(rec) = self.apps.get(id) else {
            return;
        };
        self.view.record_mut().apps.insert(
            id.to_string(),
            read_view::AppMeta {
                location: rec.blueprint.location.clone(),
                blueprint: std::sync::Arc::new(rec.blueprint.clone()),
                created_ms: rec.created_ms,
                // Derived from the blueprint here, where the API's view of
                // the application is made (deploy, apply).
                reservations: std::sync::Arc::new(state_metrics::reservations(&rec.blueprint)),
            },
        );
    }

    /// An application is gone: from the records and the API's view.
    fn unpublish_app(&mut self, id: &str) {
        self.apps.remove(id);
        self.view.record_mut().apps.remove(id);
    }

    fn record(&mut self, mut a: Activity) {
        a.id = self.next_activity;
        self.next_activity += 1;
        self.observe_activity(&a);
        let mut record = self.view.record_mut();
        record.activities.push_front(a);
        record.activities.truncate(ACTIVITY_RETENTION);
    }
}

impl Actor for Management {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // See `crate::protocol::UNBOUNDED_MAILBOX`.
        ctx.set_mailbox_capacity(crate::protocol::UNBOUNDED_MAILBOX);
        self.store_tee = self.store.clone().map(|s| {
            crate::entity::memory::MemoryTee::new(s.recipient(), self.saved.live.clone())
                .start()
                .recipient()
        });
        self.rebind(ctx);
        // Preset files are polled: a change is in force within about a
        // second, with no watcher to lose events on editors' rename-and-replace.
        ctx.run_interval(PRESET_POLL, |act, ctx| act.check_presets(ctx));
    }
}

/// Answered once the actor has started, that is once the stored
/// applications are rebuilt (in `started`): `drover serve` waits for it
/// before it serves, since the API reads the shared view directly and
/// would otherwise answer 404 for an application the actor has not
/// rebuilt yet (a message would have queued behind the start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Started;

impl Handler<Started> for Management {
    type Result = ();
    fn handle(&mut self, _: Started, _: &mut Context<Self>) {}
}

impl Handler<ChildAdded> for Management {
    type Result = ();
    fn handle(&mut self, msg: ChildAdded, ctx: &mut Context<Self>) {
        self.register(ctx, msg.child, Some(&msg.parent), msg.handle);
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
        // An operator's change survives a restart: put it back on the
        // policy rebuilt from the blueprint.
        let key = (msg.app.clone(), msg.entity.clone(), msg.policy.name.clone());
        if let Some(o) = self.overrides.get(&key) {
            o.reapply(&msg.policy.name, &msg.control);
        }
        self.policies.register(msg);
    }
}

impl Handler<crate::host::HostMachine> for Management {
    type Result = ();
    fn handle(&mut self, msg: crate::host::HostMachine, _: &mut Context<Self>) {
        self.host_machine.insert(msg.host, msg.stats);
    }
}
