//! The host pool: one actor per location.
//!
//! Its bookkeeping is the pure [`PoolModel`] (hosts, reservations,
//! cordons, failed hosts, demand, which host may go, the placement queue,
//! numbering): this actor moves messages, does the I/O through the host
//! actors and the provisioner, and emits metrics in one place
//! ([`HostPool::emit_metrics`]).
//!
//! It answers [`Place`] by asking the location's [`PlacementPolicy`] to
//! decide, one request at a time so two decisions never see the same free
//! slot. A container that fits nowhere makes the pool provision a host
//! (one at a time; placements behind it queue, in order); at `max_hosts` it
//! fails with "insufficient capacity", which the cluster autoscaler takes
//! as its high-water mark. Every second it pings its engines: one silent
//! for `on_fire_after` is on fire, and the containers placed there are told
//! to start again elsewhere ([`Relocate`]).
//!
//! The pool is also an entity to its own autoscaler (the same
//! [`Autoscaler`] policy clusters use): it publishes `group.size` (its
//! running hosts) and `pool.demand` (the hosts its containers and headroom
//! need, per host it has: 1.0 is exactly right) and answers `resize` by
//! provisioning hosts, or by decommissioning empty provisioned ones; a
//! host with containers is never removed.
//!
//! The hosts it provisioned are stored ([`LocationState`]), so a restarted
//! drover adopts them again, and the containers running on them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use super::config::LocationConfig;
use super::connect;
use super::model::{
    Capacity, GrowStep, Limits, Pinged, PlacementQueue, PoolHost, PoolModel, Resize,
};
pub use super::model::{HostOpError, HostOpKind};
use super::provision::{NewHost, Provisioner};
pub use super::view::{PoolHostView, PoolView};
use crate::blueprint::PlacementSpec;
use crate::entity::{
    EmitNotice, EntityError, EntityKind, EntityRef, Invoke, Lifecycle, SensorBoard, Subscribe,
};
use crate::host::engines::{self, GetClient};
use crate::host::network::EnsureNetwork;
use crate::host::usage::{HostSensors, SubscribeHostSensors};
use crate::host::{ContainerEvent, DockerHost, HostError, HostResync, ListManaged};
use crate::placement::{Headroom, HeadroomVerdict, Request};
use crate::policy::autoscaler::{Autoscaler, AutoscalerConfig};
pub use crate::policy::placement::Move;
use crate::policy::placement::{
    Decide, Decided, Forget, GetPlacement, HostDown, PlacementMemory, PlacementPolicy,
    PlacementView,
};
use crate::store::{LocationState, SavedHost, StoreWrite};

/// How often engines are pinged and headroom is judged.
const TICK: Duration = Duration::from_secs(1);
/// Containers on a drained host are told to move again every this many
/// ticks, until it is empty.
const DRAIN_NUDGE_TICKS: u64 = 3;
/// Recent decisions kept for `GET /v1/locations/{name}`.
const KEEP_DECISIONS: usize = 50;
/// The application part of a pool's entity reference (activities, the
/// autoscaler's stored memory): not a valid application id, so it never
/// meets one.
pub const POOL_APP: &str = "@location";
/// The pool's autoscaler, by name.
pub const POOL_AUTOSCALER: &str = "host-autoscaler";
/// The pool's demand sensor.
pub const POOL_DEMAND: &str = "pool.demand";

/// Tells a container entity that its host is gone: start again elsewhere.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Relocate {
    pub host: String,
    pub reason: String,
}

/// Asks for a host for one container.
#[derive(Message)]
#[rtype(result = "Result<PlacedOn, String>")]
pub struct Place {
    pub request: Request,
    /// The entity's `placement:` layers (cluster, then member).
    pub rules: Vec<PlacementSpec>,
    /// Copied to the chosen host from another host if missing there.
    pub image: Option<String>,
    /// Where to send [`Relocate`] if the host fails.
    pub relocate: Option<Recipient<Relocate>>,
    /// A host not to choose (the one a move leaves).
    pub avoid: Option<String>,
    /// Where the CPU placement policy sends [`Move`].
    pub mover: Option<Recipient<Move>>,
}

/// The chosen host.
#[derive(Clone)]
pub struct PlacedOn {
    pub host: Addr<DockerHost>,
    pub host_name: String,
    pub host_address: String,
    pub explanation: String,
}

/// The container is gone: free its slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Release {
    pub app: String,
    pub entity: String,
    /// Only on this host (a move's old host); `None`: wherever it is.
    pub host: Option<String>,
}

/// Why the pool could not place a container.
#[derive(Debug, thiserror::Error)]
pub enum PlaceFailure {
    #[error("insufficient capacity in location {location}: {entity} fits on no host, and provisioning a host failed: {cause}")]
    ProvisionFailed {
        location: String,
        entity: String,
        cause: String,
    },
    #[error("insufficient capacity in location {location} ({hosts} of at most {max_hosts} hosts): {summary}")]
    NoFit {
        location: String,
        hosts: u32,
        max_hosts: u32,
        summary: String,
    },
    #[error("network on {host}: {source}")]
    Network { host: String, source: HostError },
    #[error("host {host} unreachable: {source}")]
    Unreachable { host: String, source: MailboxError },
    #[error("copying image `{image}` to host {host} failed: {source}")]
    ImageCopy {
        host: String,
        image: String,
        source: HostError,
    },
    #[error("the host pool stopped; drover is shutting down, try again after it restarts")]
    Stopped,
}

/// The pool as the API shows it.
#[derive(Message)]
#[rtype(result = "PoolView")]
pub struct GetPool;

/// The engines of a pool, for the orphan sweep.
#[derive(Message)]
#[rtype(result = "Vec<Addr<DockerHost>>")]
pub struct GetHosts;

#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, HostOpError>")]
pub struct HostOp {
    pub host: String,
    pub op: HostOpKind,
}

/// How the pool reaches a container it placed.
#[derive(Clone)]
struct Contact {
    relocate: Option<Recipient<Relocate>>,
    /// Told to move when its host is drained.
    mover: Option<Recipient<Move>>,
}

type Answer = tokio::sync::oneshot::Sender<Result<PlacedOn, String>>;
type Waiter = (Place, Answer);
type ResizeWaiter = tokio::sync::oneshot::Sender<Result<serde_json::Value, EntityError>>;
type Model = PoolModel<Addr<DockerHost>, Contact>;

pub struct HostPool {
    me: EntityRef,
    cfg: LocationConfig,
    model: Model,
    queue: PlacementQueue<Waiter>,
    /// The model's clock: it gets time as time since this instant.
    epoch: Instant,
    provisioner: Arc<dyn Provisioner>,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    /// The location's placement policy (built in `new`, started in
    /// `started`, where the pool's address exists for its memory).
    policy: Option<Addr<PlacementPolicy>>,
    policy_init: Option<PlacementPolicy>,
    ticks: u64,
    decisions: VecDeque<String>,
    events: VecDeque<String>,
    /// The last headroom verdict, to tell its changes (hot, ok, cold).
    last_verdict: Option<HeadroomVerdict>,
    /// The pool as an entity: sensors for its autoscaler.
    board: SensorBoard,
    /// Who waits for the hosts the autoscaler asked for.
    resize_waiters: Vec<ResizeWaiter>,
    store: Option<Recipient<StoreWrite>>,
    activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// The autoscaler's memory saved before a restart.
    autoscaler_saved: Option<serde_json::Value>,
    placement_memory: serde_json::Value,
    /// Hosts with a `host_cpu_usage` series, to remove those gone.
    metric_hosts: BTreeSet<String>,
}

/// An engine the pool starts with (connected by the caller).
pub struct InitialHost {
    pub name: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub addr: Addr<DockerHost>,
    /// Made by the provisioner (so it may be decommissioned).
    pub provisioned: Option<SavedHost>,
}

/// What a pool needs from the rest of drover besides its hosts.
#[derive(Default)]
pub struct PoolServices {
    pub store: Option<Recipient<StoreWrite>>,
    pub activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// What the store held for this location.
    pub saved: Option<LocationState>,
    /// What the store held for the pool's autoscaler.
    pub autoscaler_saved: Option<serde_json::Value>,
}

impl HostPool {
    pub fn new(
        name: String,
        cfg: LocationConfig,
        provisioner: Box<dyn Provisioner>,
        initial: Vec<InitialHost>,
        events_to: Recipient<ContainerEvent>,
        resync_to: Recipient<HostResync>,
        services: PoolServices,
    ) -> Self {
        let saved = services.saved.unwrap_or_default();
        let policy = {
            let mut p = PlacementPolicy::new(&name, cfg.placement.clone());
            if let Some(m) = crate::policy::restore_memory(Some(saved.placement.clone())) {
                p = p.with_memory(m);
            }
            if let Some(a) = &services.activities {
                p = p.with_activities(a.clone());
            }
            p
        };
        let hosts = initial
            .into_iter()
            .map(|h| {
                PoolHost::new(
                    h.name,
                    h.address,
                    h.labels,
                    h.addr,
                    h.provisioned,
                    Duration::ZERO,
                )
            })
            .collect();
        let model = PoolModel::new(
            name.clone(),
            Limits::new(&cfg),
            hosts,
            saved.next_index,
            &saved.cordoned,
        );
        HostPool {
            me: EntityRef::new(POOL_APP, name),
            cfg,
            model,
            queue: PlacementQueue::default(),
            epoch: Instant::now(),
            provisioner: Arc::from(provisioner),
            events_to,
            resync_to,
            policy: None,
            policy_init: Some(policy),
            ticks: 0,
            decisions: VecDeque::new(),
            events: VecDeque::new(),
            last_verdict: None,
            board: SensorBoard::default(),
            resize_waiters: Vec::new(),
            store: services.store,
            activities: services.activities,
            autoscaler_saved: services.autoscaler_saved,
            placement_memory: saved.placement,
            metric_hosts: BTreeSet::new(),
        }
    }

    /// The host pool's autoscaler: the shared autoscaler over `pool.demand`
    /// with lower = upper = 1 (a set point: exactly the hosts needed), the
    /// hot window as its up stabilization and the cold window as its down
    /// stabilization.
    pub fn autoscaler_config(cfg: &LocationConfig) -> AutoscalerConfig {
        AutoscalerConfig {
            metric: POOL_DEMAND.into(),
            entity: None,
            lower: 1.0,
            upper: 1.0,
            min_size: cfg.min_hosts,
            max_size: cfg.max_hosts,
            tolerance: 0.0,
            up_stabilization: cfg.hot_window,
            down_stabilization: cfg.cold_window,
            step_increment: 1,
            // One host at a time each way: provisioning is one at a time
            // anyway, and a shrink re-judges after each host goes.
            max_step_up: Some(1),
            max_step_down: Some(1),
            metric_max_age: Duration::from_secs(10),
            evaluation_interval: TICK,
            high_water_hold: Duration::from_secs(60),
        }
    }

    fn name(&self) -> &str {
        self.model.name()
    }

    /// The model's time.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn event(&mut self, text: String) {
        tracing::info!(location = %self.model.name(), "{text}");
        push_bounded(&mut self.events, text);
    }

    fn record_decision(&mut self, summary: String) {
        tracing::debug!(location = %self.model.name(), "{summary}");
        push_bounded(&mut self.decisions, summary);
    }

    /// Every metric the pool emits, from the model: the one place that
    /// sets (and removes) the pool's series.
    fn emit_metrics(&mut self) -> Headroom {
        let hr = self.model.headroom();
        let loc = [self.model.name()];
        crate::metrics::LOCATION_HOSTS
            .with_label_values(&loc)
            .set(hr.hosts as i64);
        crate::metrics::LOCATION_HEADROOM_FREE
            .with_label_values(&loc)
            .set(hr.free as i64);
        crate::metrics::LOCATION_HEADROOM_WANTED
            .with_label_values(&loc)
            .set(hr.wanted as i64);
        let mut now = BTreeSet::new();
        for h in self.model.hosts() {
            now.insert(h.name().to_string());
            // A going host keeps its last value until it is gone.
            if !h.decommissioning {
                crate::metrics::HOST_CPU_USAGE
                    .with_label_values(&[h.name()])
                    .set(h.state.cpu_usage);
            }
        }
        for gone in self.metric_hosts.difference(&now) {
            let _ = crate::metrics::HOST_CPU_USAGE.remove_label_values(&[gone.as_str()]);
        }
        self.metric_hosts = now;
        hr
    }

    /// The sensors the pool's autoscaler reads.
    fn publish(&mut self, hr: &Headroom) {
        let me = self.me.clone();
        let size = self.model.running_hosts();
        let demand = self.model.demand(hr);
        let b = &mut self.board;
        b.set(&me, crate::entity::sensors::GROUP_SIZE, json!(size));
        b.set(&me, POOL_DEMAND, json!(demand));
        b.set(&me, "pool.headroom.free", json!(hr.free));
        b.set(&me, "pool.headroom.wanted", json!(hr.wanted));
        b.set(&me, "pool.headroom.verdict", json!(hr.verdict.as_str()));
    }

    /// Saves the provisioned hosts and the placement policy's memory.
    fn save(&self) {
        let Some(store) = &self.store else { return };
        store.do_send(StoreWrite::PutLocation {
            name: self.name().to_string(),
            state: self.model.saved(self.placement_memory.clone()),
        });
    }

    /// Takes the next waiting placement to the placement policy, if none is
    /// out and nothing holds the queue.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some((msg, tx)) = self.queue.next(self.model.ready()) else {
            return;
        };
        let key = (msg.request.app.clone(), msg.request.entity.clone());
        if let Some(i) = self.model.adopt(&key, msg.avoid.is_some()) {
            let summary = format!(
                "{}/{}: adopted on {}, where its container already runs",
                key.0,
                key.1,
                self.model.host(i).name()
            );
            self.record_decision(summary.clone());
            self.place_on(i, msg, tx, summary, ctx);
            return self.pump(ctx);
        }
        let Some(policy) = self.policy.clone() else {
            self.queue.put_back((msg, tx));
            return;
        };
        let states = self.model.states();
        let names: Vec<String> = states.iter().map(|s| s.name.clone()).collect();
        let decide = Decide {
            states,
            request: msg.request.clone(),
            layers: msg.rules.clone(),
            avoid: msg.avoid.clone(),
            cpu_move: msg
                .avoid
                .as_ref()
                .is_some_and(|h| !self.model.is_cordoned(h)),
            mover: msg.mover.clone(),
        };
        self.queue.deciding();
        ctx.spawn(
            async move { policy.send(decide).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.queue.decided();
                    let d = res.unwrap_or_else(|e| Decided {
                        chosen: None,
                        summary: format!("the placement policy did not answer: {e}"),
                    });
                    act.record_decision(d.summary.clone());
                    // Hosts may have come or gone while it decided.
                    let at = d
                        .chosen
                        .and_then(|i| names.get(i))
                        .and_then(|n| act.model.position(n))
                        .filter(|i| act.model.host(*i).state.available);
                    match at {
                        Some(i) => act.place_on(i, msg, tx, d.summary, ctx),
                        None => act.no_fit(msg, tx, d.summary, ctx),
                    }
                    act.pump(ctx);
                }),
        );
    }

    /// Tells every container on a drained host to move (again, each tick
    /// until it is empty: a container busy starting ignores the first).
    fn nudge_drained(&self) {
        for (host, m) in self.model.drained_members() {
            if let Some(to) = &m.contact.mover {
                to.do_send(Move {
                    reason: format!("host {host} is drained"),
                });
            }
        }
    }

    fn host_op(
        &mut self,
        msg: HostOp,
        ctx: &mut Context<Self>,
    ) -> Result<serde_json::Value, HostOpError> {
        let i = self.model.host_op(&msg.host, msg.op)?;
        match msg.op {
            HostOpKind::Drain => {
                let n = self.model.host(i).members.len();
                self.event(format!(
                    "host {} drained by an operator: {n} containers move elsewhere",
                    msg.host
                ));
                self.nudge_drained();
            }
            HostOpKind::Uncordon => {
                self.event(format!("host {} takes containers again", msg.host));
                self.pump(ctx);
            }
        }
        self.save();
        let h = self.model.host(i);
        Ok(json!({
            "host": h.name(),
            "state": h.phase().as_str(),
            "containers": h.members.len(),
        }))
    }

    /// Reserves the container's slot on host `i` and answers once the
    /// host has the application's network and the image.
    fn place_on(
        &mut self,
        i: usize,
        msg: Place,
        tx: Answer,
        explanation: String,
        ctx: &mut Context<Self>,
    ) {
        let contact = Contact {
            relocate: msg.relocate.clone(),
            mover: msg.mover.clone(),
        };
        self.model.reserve(i, &msg.request, contact);
        let h = self.model.host(i);
        let placed = PlacedOn {
            host: h.handle.clone(),
            host_name: h.name().to_string(),
            host_address: h.address.clone(),
            explanation,
        };
        let sources: Vec<Addr<DockerHost>> =
            self.model.image_sources(i).into_iter().cloned().collect();
        let app = msg.request.app;
        let image = msg.image;
        let fut = async move {
            let target = placed.host.clone();
            let host = placed.host_name.clone();
            match target.send(EnsureNetwork { app, network: None }).await {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => return Err(PlaceFailure::Network { host, source }),
                Err(source) => return Err(PlaceFailure::Unreachable { host, source }),
            }
            if let Some(image) = image.filter(|i| !crate::host::workload::is_workload_image(i)) {
                ensure_image(&target, &host, &sources, &image).await?;
            }
            Ok(placed)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, _, _| {
            let _ = tx.send(res.map_err(|e| e.to_string()));
        }));
    }

    fn provision(&mut self, why: &str, ctx: &mut Context<Self>) {
        let Some((index, name)) = self.model.begin_provisioning() else {
            return;
        };
        self.event(format!("provisioning host {name}: {why}"));
        let p = self.provisioner.clone();
        let t0 = Instant::now();
        let n = name.clone();
        let fut = async move { connect::create_and_connect(&p, &n, index).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            // The held placement is tried again once the new host has
            // answered its first ping (or fails below).
            act.queue.unhold();
            match res {
                Ok((new, docker)) => {
                    act.event(format!(
                        "host {} is up at {} after {:.1}s",
                        new.name,
                        new.endpoint,
                        t0.elapsed().as_secs_f64()
                    ));
                    act.add_host(new, index, docker, ctx);
                }
                Err(e) => {
                    act.model.provisioning_failed();
                    act.event(format!("provisioning {name} failed: {e}"));
                    act.save();
                    // Whoever waits fails now rather than at a timeout.
                    for (msg, tx) in act.queue.take_all() {
                        let _ = tx.send(Err(PlaceFailure::ProvisionFailed {
                            location: act.name().to_string(),
                            entity: msg.request.entity,
                            cause: e.to_string(),
                        }
                        .to_string()));
                    }
                    for w in std::mem::take(&mut act.resize_waiters) {
                        let _ = w.send(Err(EntityError::Failed {
                            entity: act.me.to_string(),
                            message: format!(
                                "insufficient capacity: provisioning a host failed: {e}"
                            ),
                        }));
                    }
                }
            }
        }));
    }

    fn add_host(
        &mut self,
        new: NewHost,
        index: u32,
        docker: bollard::Docker,
        ctx: &mut Context<Self>,
    ) {
        let addr = connect::start_host(
            &new.name,
            &new.address,
            docker,
            self.events_to.clone(),
            self.resync_to.clone(),
        );
        let saved = new.saved(index);
        let host = PoolHost::new(
            new.name,
            new.address,
            new.labels,
            addr,
            Some(saved),
            self.now(),
        );
        let i = self.model.provisioned(host);
        // Stored before anything is placed there: a restart adopts it.
        self.save();
        self.watch(i, ctx);
        self.ping(i, ctx);
        self.grow(ctx);
    }

    /// Subscribes the pool and its placement policy to a host's sensors.
    fn watch(&self, i: usize, ctx: &mut Context<Self>) {
        let addr = &self.model.host(i).handle;
        addr.do_send(SubscribeHostSensors(ctx.address().recipient()));
        if let Some(p) = &self.policy {
            addr.do_send(SubscribeHostSensors(p.clone().recipient()));
        }
    }

    /// Lists what already runs on a host (drover's own containers), so
    /// their entities are adopted there.
    fn list(&mut self, i: usize, ctx: &mut Context<Self>) {
        let name = self.model.host(i).name().to_string();
        let addr = self.model.host(i).handle.clone();
        let fut = async move {
            tokio::time::timeout(Duration::from_secs(5), addr.send(ListManaged { app: None }))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|r| r.ok())
        };
        ctx.spawn(fut.into_actor(self).map(move |list, act, ctx| {
            let ours = crate::host::OWNER.get();
            for c in list.unwrap_or_default() {
                if ours.is_some() && c.owner.as_ref() != ours {
                    continue;
                }
                act.model.found((c.app, c.entity), &name);
            }
            act.model.listed(&name);
            act.pump(ctx);
        }));
    }

    /// Provisions towards the autoscaler's wanted host count, one host at
    /// a time; answers its resize once there.
    fn grow(&mut self, ctx: &mut Context<Self>) {
        match self.model.grow_step() {
            GrowStep::Wait => {}
            GrowStep::Reached(size) => {
                for w in std::mem::take(&mut self.resize_waiters) {
                    let _ = w.send(Ok(json!({ "size": size })));
                }
            }
            GrowStep::Provision { want } => {
                self.provision(&format!("the host autoscaler wants {want} hosts"), ctx);
            }
            GrowStep::Refused { want } => {
                let e = self.model.insufficient(want);
                for w in std::mem::take(&mut self.resize_waiters) {
                    let _ = w.send(Err(self.failed(&e)));
                }
            }
        }
    }

    /// A resize refused, as the entity error its autoscaler reads.
    fn failed(&self, e: &dyn std::fmt::Display) -> EntityError {
        EntityError::Failed {
            entity: self.me.to_string(),
            message: e.to_string(),
        }
    }

    fn no_fit(&mut self, msg: Place, tx: Answer, summary: String, ctx: &mut Context<Self>) {
        if self.model.may_grow_for(msg.avoid.as_deref()) {
            // First in line again once the new host is up.
            self.queue.hold((msg, tx));
            self.provision("a container fits on no host", ctx);
        } else {
            let e = PlaceFailure::NoFit {
                location: self.name().to_string(),
                hosts: self.model.live_hosts(),
                max_hosts: self.model.limits().max_hosts,
                summary,
            };
            let _ = tx.send(Err(e.to_string()));
        }
    }

    fn ping(&mut self, i: usize, ctx: &mut Context<Self>) {
        if !self.model.begin_ping(i) {
            return;
        }
        let name = self.model.host(i).name().to_string();
        let addr = self.model.host(i).handle.clone();
        let fut = async move {
            // A ping slower than this is a silent engine.
            tokio::time::timeout(Duration::from_secs(2), addr.send(crate::host::Capacity))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|r| r.ok())
                .map(|c| Capacity {
                    cpus: c.cpus as f64,
                    memory_bytes: c.memory_bytes.max(0) as u64,
                })
        };
        ctx.spawn(fut.into_actor(self).map(move |cap, act, ctx| {
            match act.model.pinged(&name, cap, act.now()) {
                Pinged::AnswersAgain => act.event(format!("host {name} answers again")),
                Pinged::OnFire(members) => {
                    if let Some(p) = &act.policy {
                        p.do_send(HostDown {
                            host: name.clone(),
                            removed: false,
                        });
                    }
                    act.event(format!(
                        "host {name} is on fire: its engine has not answered for {:?}; {} containers go elsewhere",
                        act.model.limits().on_fire_after,
                        members.len()
                    ));
                    for (_, m) in members {
                        if let Some(r) = m.contact.relocate {
                            r.do_send(Relocate {
                                host: name.clone(),
                                reason: format!("host {name} is on fire"),
                            });
                        }
                    }
                }
                Pinged::Unknown | Pinged::Answered | Pinged::Silent => {}
            }
            act.pump(ctx);
        }));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.model.hosts().len() {
            self.ping(i, ctx);
        }
        let hr = self.emit_metrics();
        if self.model.ready() {
            self.publish(&hr);
            if self.last_verdict != Some(hr.verdict) {
                self.last_verdict = Some(hr.verdict);
                self.event(format!(
                    "pool {}: {} hosts, {} of {} container slots used, {} free, headroom wants {}",
                    hr.verdict.as_str(),
                    hr.hosts,
                    hr.used,
                    hr.possible,
                    hr.free,
                    hr.wanted
                ));
            }
        }
        let limit = self.model.limits().on_fire_after + self.model.limits().cold_window;
        for name in self.model.dead_hosts(self.now()) {
            let why = format!("on fire for {limit:?}: given back to its provisioner");
            self.decommission(name, &why, ctx);
        }
        self.grow(ctx);
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % DRAIN_NUDGE_TICKS == 0 {
            self.nudge_drained();
        }
    }

    /// The autoscaler's `resize` (see [`PoolModel::resize`]): `None` while
    /// hosts are being provisioned towards it.
    fn resize(&mut self, size: u32, ctx: &mut Context<Self>) -> Result<Option<u32>, EntityError> {
        match self.model.resize(size, !self.queue.is_empty()) {
            Err(e) => Err(self.failed(&e)),
            Ok(Resize::Growing) => Ok(None),
            Ok(Resize::Done { size, going }) => {
                let why = format!("empty, and the pool cold for {:?}", self.cfg.cold_window);
                for name in going {
                    self.decommission(name, &why, ctx);
                }
                Ok(Some(size))
            }
        }
    }

    /// Decommissions a host: marked going in the model, then given back to
    /// its provisioner, then removed.
    fn decommission(&mut self, name: String, why: &str, ctx: &mut Context<Self>) {
        self.model.decommission(&name);
        self.event(format!("decommissioning host {name}: {why}"));
        if let Some(p) = &self.policy {
            p.do_send(HostDown {
                host: name.clone(),
                removed: false,
            });
        }
        let p = self.provisioner.clone();
        let n = name.clone();
        ctx.spawn(
            async move { connect::destroy(&p, &n).await }
                .into_actor(self)
                .map(move |r, act, _| {
                    match r {
                        Ok(()) => act.event(format!("host {name} decommissioned")),
                        Err(e) => act.event(format!("{e}")),
                    }
                    if let Some(h) = act.model.remove(&name) {
                        h.handle.do_send(engines::StopHost);
                    }
                    if let Some(p) = &act.policy {
                        p.do_send(HostDown {
                            host: name.clone(),
                            removed: true,
                        });
                    }
                    act.emit_metrics();
                    act.save();
                }),
        );
    }
}

fn push_bounded(log: &mut VecDeque<String>, text: String) {
    log.push_back(text);
    while log.len() > KEEP_DECISIONS {
        log.pop_front();
    }
}

/// Copies `image` to `target` from the first source that has it.
async fn ensure_image(
    target: &Addr<DockerHost>,
    host: &str,
    sources: &[Addr<DockerHost>],
    image: &str,
) -> Result<(), PlaceFailure> {
    let to = target
        .send(GetClient)
        .await
        .map_err(|source| PlaceFailure::Unreachable {
            host: host.to_string(),
            source,
        })?;
    if engines::has_image(&to, image).await {
        return Ok(());
    }
    for s in sources {
        let Ok(from) = s.send(GetClient).await else {
            continue;
        };
        if engines::has_image(&from, image).await {
            return engines::copy_image(&from, &to, image)
                .await
                .map_err(|source| PlaceFailure::ImageCopy {
                    host: host.to_string(),
                    image: image.to_string(),
                    source,
                });
        }
    }
    // Nothing to copy from: the host's own create reports the missing image.
    Ok(())
}

impl Actor for HostPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(p) = self.policy_init.take() {
            self.policy = Some(p.saving_to(ctx.address().recipient()).start());
        }
        for i in 0..self.model.hosts().len() {
            self.watch(i, ctx);
            self.ping(i, ctx);
            self.list(i, ctx);
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        // The hosts are the pool's to size only if it can make hosts.
        if let (true, Some(activities)) =
            (self.model.limits().can_provision, self.activities.clone())
        {
            let me = ctx.address();
            Autoscaler::new(
                POOL_AUTOSCALER.into(),
                self.me.clone(),
                self.me.clone(),
                me.clone().recipient(),
                me.clone().recipient(),
                vec![me.recipient()],
                activities,
                Self::autoscaler_config(&self.cfg),
            )
            .persisted(self.store.clone(), self.autoscaler_saved.take())
            .start();
        }
        self.save();
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Provisioned hosts are machines drover made: a stopping drover
        // leaves them (and their containers) running for the next start,
        // which adopts them from the store.
    }
}

impl Handler<Place> for HostPool {
    type Result = ResponseFuture<Result<PlacedOn, String>>;
    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // In order, one decision at a time, behind a placement that waits
        // for a new host, and once every host's capacity is known.
        self.queue.push((msg, tx));
        self.pump(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(PlaceFailure::Stopped.to_string()))
        })
    }
}

impl Handler<Release> for HostPool {
    type Result = ();
    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        let key = (msg.app, msg.entity);
        self.model.release(&key, msg.host.as_deref());
        if let Some(p) = &self.policy {
            p.do_send(Forget {
                app: key.0,
                entity: key.1,
                host: msg.host,
            });
        }
        self.pump(ctx);
    }
}

impl Handler<HostSensors> for HostPool {
    type Result = ();
    fn handle(&mut self, s: HostSensors, _: &mut Context<Self>) {
        if self
            .model
            .sensed(&s.host, s.cpu_usage, s.unmanaged_containers)
        {
            self.emit_metrics();
        }
    }
}

impl Handler<PlacementMemory> for HostPool {
    type Result = ();
    fn handle(&mut self, m: PlacementMemory, _: &mut Context<Self>) {
        self.placement_memory = serde_json::to_value(&m.0).unwrap_or_default();
        self.save();
    }
}

impl Handler<Subscribe> for HostPool {
    type Result = ();
    fn handle(&mut self, Subscribe(who): Subscribe, _: &mut Context<Self>) {
        let me = self.me.clone();
        // A pool of hosts is a cluster whose members are engines.
        self.board
            .subscribe(who, &me, EntityKind::Cluster, Lifecycle::Running);
    }
}

impl Handler<EmitNotice> for HostPool {
    type Result = ();
    fn handle(&mut self, n: EmitNotice, _: &mut Context<Self>) {
        let reason = n.detail["reason"].as_str().unwrap_or_default().to_string();
        self.event(format!("{}: {reason}", n.name));
    }
}

impl Handler<Invoke> for HostPool {
    type Result = ResponseFuture<Result<serde_json::Value, EntityError>>;
    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Resize {
            size: u32,
        }
        if msg.effector != "resize" {
            let err = EntityError::UnknownEffector {
                entity: self.me.to_string(),
                effector: msg.effector,
                known: "resize".into(),
            };
            return Box::pin(async move { Err(err) });
        }
        let r = crate::entity::parse_args::<Resize>("resize", &msg.args)
            .and_then(|a| self.resize(a.size, ctx));
        match r {
            Ok(Some(size)) => Box::pin(async move { Ok(json!({ "size": size })) }),
            Ok(None) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                self.resize_waiters.push(tx);
                self.grow(ctx);
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(EntityError::Unreachable {
                            entity: "host pool".into(),
                            message: "stopped".into(),
                        })
                    })
                })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<crate::policy::placement::Tune> for HostPool {
    type Result = ();
    fn handle(&mut self, t: crate::policy::placement::Tune, _: &mut Context<Self>) {
        if let Some(p) = &self.policy {
            p.do_send(t);
        }
    }
}

impl Handler<HostOp> for HostPool {
    type Result = Result<serde_json::Value, HostOpError>;
    fn handle(&mut self, msg: HostOp, ctx: &mut Context<Self>) -> Self::Result {
        self.host_op(msg, ctx)
    }
}

impl Handler<GetHosts> for HostPool {
    type Result = MessageResult<GetHosts>;
    fn handle(&mut self, _: GetHosts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.model
                .hosts()
                .iter()
                .filter(|h| h.is_running())
                .map(|h| h.handle.clone())
                .collect(),
        )
    }
}

impl Handler<GetPool> for HostPool {
    type Result = ResponseFuture<PoolView>;
    fn handle(&mut self, _: GetPool, _: &mut Context<Self>) -> Self::Result {
        let headroom = self.emit_metrics();
        let mut view = PoolView {
            location: self.name().to_string(),
            hosts: self.model.hosts().iter().map(PoolHostView::of).collect(),
            headroom,
            provisioning: self.model.is_provisioning(),
            waiting: self.queue.len(),
            decisions: self.decisions.iter().cloned().collect(),
            events: self.events.iter().cloned().collect(),
            placement: PlacementView::default(),
        };
        let policy = self.policy.clone();
        Box::pin(async move {
            if let Some(p) = policy {
                if let Ok(v) = p.send(GetPlacement).await {
                    view.placement = v;
                }
            }
            view
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::headroom;
    use crate::policy::autoscaler::{evaluate, AutoscalerHistory};

    /// The pool's autoscaler over the pure headroom: the size it asks for
    /// is exactly the hosts the containers and headroom need.
    fn wants(cfg: &LocationConfig, hosts: u32, used: u32) -> Option<u32> {
        let a = HostPool::autoscaler_config(cfg);
        a.check().unwrap();
        let hr = headroom(hosts, 4, used, &cfg.headroom);
        let demand = hr.desired_hosts as f64 / hosts.max(1) as f64;
        let mut h = AutoscalerHistory::default();
        // Watched for longer than both windows with the same demand.
        let mut last = None;
        for t in (0..=60_000).step_by(1_000) {
            last = evaluate(&a, &mut h, Some((demand, t)), hosts, t).resize_to;
        }
        last
    }

    fn cfg(yaml: &str) -> LocationConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_pool_autoscaler_asks_for_the_hosts_headroom_needs() {
        let c = cfg("provisioner: { type: local-dockerd }\nmax_hosts: 10\nplacement: { max_containers: 4 }\nheadroom: { count: 2 }\ncold_window: 20s\n");
        // 3 hosts, 11 used of 12: 1 free, 2 wanted: hot, one more host.
        assert_eq!(wants(&c, 3, 11), Some(4));
        // 3 hosts, 10 used: 2 free: exactly right.
        assert_eq!(wants(&c, 3, 10), None);
        // 3 hosts, 2 used: 1 host holds 2 + 2: shrink one at a time.
        assert_eq!(wants(&c, 3, 2), Some(2));
        // Never below min_hosts.
        assert_eq!(wants(&c, 1, 0), None);
        // 7 hosts wanting 3 (float noise must not ask for 4).
        assert_eq!(wants(&c, 7, 10), Some(6));
    }

    #[test]
    fn a_short_spike_does_not_add_a_host() {
        let c = cfg("provisioner: { type: local-dockerd }\nplacement: { max_containers: 4 }\nhot_window: 5s\n");
        let a = HostPool::autoscaler_config(&c);
        let mut h = AutoscalerHistory::default();
        // 2 hosts full (8 of 8) wants 2 = ok; 9 wants 3 for 3 s only.
        for t in (0..20_000).step_by(1_000) {
            let demand = if (5_000..8_000).contains(&t) {
                1.5
            } else {
                1.0
            };
            let e = evaluate(&a, &mut h, Some((demand, t)), 2, t);
            assert_eq!(e.resize_to, None, "at {t} ms: {}", e.reason);
        }
        // Sustained for the hot window: grows.
        let mut grew = None;
        for t in (20_000..30_000).step_by(1_000) {
            grew = grew.or(evaluate(&a, &mut h, Some((1.5, t)), 2, t).resize_to);
        }
        assert_eq!(grew, Some(3));
    }
}
