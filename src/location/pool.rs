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
pub use crate::entity::pool_messages::{Move, Relocate};
use crate::entity::pool_messages::{Place, PlaceError, PlacedOn, Release};
use crate::host::engines;
use crate::host::usage::{HostSensors, SubscribeHostSensors};
use crate::host::{ContainerEvent, DockerHost, HostResync, ListManaged};
use crate::placement::{Headroom, HeadroomVerdict};
use crate::policy::autoscaler::{Autoscaler, AutoscalerConfig};
use crate::policy::placement::{
    Forget, GetPlacement, HostDown, PlacementMemory, PlacementPolicy, PlacementView,
};
use crate::protocol::{
    entity_handlers, EmitNotice, EntityError, EntityKind, EntityRef, Invoke, Lifecycle, Observable,
    SensorBoard,
};
use crate::store::{LocationState, SavedHost, StoreWrite};
use crate::wire::HostOpAnswer;
pub use faults::{FindHost, StopEngine};
pub use placing::PlaceFailure;

mod faults;
mod handlers;
mod left_behind;
mod placing;
#[cfg(test)]
mod tests;
mod volumes;

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

/// The pool as the API shows it.
#[derive(Message)]
#[rtype(result = "PoolView")]
pub struct GetPool;

/// The engines of a pool, for the orphan sweep.
#[derive(Message)]
#[rtype(result = "Vec<Addr<DockerHost>>")]
pub struct GetHosts;

/// An operator's drain or uncordon of one host.
#[derive(Message)]
#[rtype(result = "Result<HostOpAnswer, HostOpError>")]
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

type Answer = tokio::sync::oneshot::Sender<Result<PlacedOn, PlaceError>>;
type Waiter = (Place, Answer);
type ResizeWaiter = tokio::sync::oneshot::Sender<Result<serde_json::Value, EntityError>>;
type Model = PoolModel<Addr<DockerHost>, Contact>;

pub struct HostPool {
    me: EntityRef,
    /// Per host on fire, the containers moved off it: removed from it if
    /// it answers again (see `left_behind`).
    moved_off:
        std::collections::HashMap<String, std::collections::HashSet<super::model::MemberKey>>,
    /// Hosts whose start list was given up on (the engine did not answer
    /// within `on_fire_after`): what they run is unknown, so when one
    /// answers, this drover's containers there of entities the pool has
    /// placed on another host meanwhile are removed (see `left_behind`).
    unlisted: std::collections::HashSet<String>,
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
    /// Uploaded build contexts, for the hosts the pool starts.
    uploads: Option<crate::build_context::Uploads>,
    /// What the start's list showed of each container the model found
    /// (host name, container): an entity adopted there gets it, so that
    /// it adopts with no engine call of its own.
    listed:
        std::collections::HashMap<super::model::MemberKey, (String, crate::host::ContainerInfo)>,
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
    /// Where uploaded build contexts are kept, for every host's builds.
    pub uploads: Option<crate::build_context::Uploads>,
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
            moved_off: Default::default(),
            unlisted: Default::default(),
            board: SensorBoard::default(),
            resize_waiters: Vec::new(),
            store: services.store,
            activities: services.activities,
            autoscaler_saved: services.autoscaler_saved,
            placement_memory: saved.placement,
            metric_hosts: BTreeSet::new(),
            uploads: services.uploads,
            listed: Default::default(),
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
        b.set(&me, crate::protocol::sensors::GROUP_SIZE, json!(size));
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
    ) -> Result<HostOpAnswer, HostOpError> {
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
        Ok(HostOpAnswer {
            host: h.name().to_string(),
            state: h.phase().as_str().to_string(),
            containers: h.members.len(),
        })
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
                        .into()));
                    }
                    for w in std::mem::take(&mut act.resize_waiters) {
                        let _ = w.send(Err(EntityError::InsufficientCapacity {
                            entity: act.me.to_string(),
                            message: format!("provisioning a host failed: {e}"),
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
            self.uploads.clone(),
            self.cfg.stats_every,
            true,
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
        self.list_named(name, Instant::now(), ctx);
    }

    /// Lists host `name`, asked again after a failure until
    /// [`list_again`] gives up (`since`: the first attempt).
    fn list_named(&mut self, name: String, since: Instant, ctx: &mut Context<Self>) {
        let Some(i) = self.model.position(&name) else {
            return;
        };
        let addr = self.model.host(i).handle.clone();
        // A slow answer is still an answer: the attempt may take what is
        // left of the time a host has before it would be on fire.
        let wait = self
            .model
            .limits()
            .on_fire_after
            .saturating_sub(since.elapsed())
            .max(LIST_TIMEOUT);
        let fut = async move {
            tokio::time::timeout(wait, addr.send(ListManaged { app: None }))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|r| r.ok())
        };
        ctx.spawn(fut.into_actor(self).map(move |list, act, ctx| {
            let on_fire_after = act.model.limits().on_fire_after;
            if list.is_none() && list_again(since.elapsed(), on_fire_after) {
                tracing::info!(location = %act.model.name(), host = %name, "listing the host's containers failed; asking again");
                ctx.run_later(LIST_RETRY, move |act, ctx| act.list_named(name, since, ctx));
                return;
            }
            if list.is_none() {
                tracing::warn!(location = %act.model.name(), host = %name, "the host did not list its containers in time: its entities start elsewhere, and what it runs is removed if it answers again");
                act.unlisted.insert(name.clone());
            }
            let ours = crate::host::OWNER.get();
            for c in list.unwrap_or_default() {
                if ours.is_some() && c.owner.as_ref() != ours {
                    continue;
                }
                let key = (c.app.clone(), c.entity.clone());
                act.listed.insert(key.clone(), (name.clone(), c.info()));
                act.model.found(key, &name);
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
                    let _ = w.send(Err(EntityError::InsufficientCapacity {
                        entity: self.me.to_string(),
                        message: e.to_string(),
                    }));
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

    fn ping(&mut self, i: usize, ctx: &mut Context<Self>) {
        if !self.model.begin_ping(i) {
            return;
        }
        let name = self.model.host(i).name().to_string();
        let addr = self.model.host(i).handle.clone();
        // An engine that answers late still answers: waiting only a fixed
        // 2 s made a busy engine (or a busy drover) look silent, and a whole
        // pool of busy engines was declared on fire at once.
        let wait = self
            .model
            .limits()
            .on_fire_after
            .max(Duration::from_secs(1));
        let fut = async move {
            tokio::time::timeout(wait, addr.send(crate::host::Capacity))
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
                Pinged::AnswersAgain => {
                    act.event(format!("host {name} answers again"));
                    act.remove_left_behind(&name, ctx);
                }
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
                    let moved = act.moved_off.entry(name.clone()).or_default();
                    moved.extend(members.iter().map(|(k, _)| k.clone()));
                    for (_, m) in members {
                        if let Some(r) = m.contact.relocate {
                            r.do_send(Relocate {
                                host: name.clone(),
                                reason: format!("host {name} is on fire"),
                            });
                        }
                    }
                }
                Pinged::Held { silent, of, first } => {
                    if first {
                        act.event(format!(
                            "{silent} of {of} hosts are silent at once (at least {}%): drover takes this for trouble on its own side, not {silent} fires; their containers stay where they are, and none is placed on them, until fewer are silent",
                            act.model.limits().silent_hold_percent
                        ));
                    }
                }
                Pinged::Answered if act.unlisted.contains(&name) => {
                    act.remove_left_behind(&name, ctx);
                }
                Pinged::Unknown | Pinged::Answered | Pinged::Silent => {}
            }
            act.pump(ctx);
        }));
    }

    /// Removes the duplicates a host that was on fire still runs: the
    /// containers of entities moved off it and not placed on it again
    /// (placed on another host, if its start list never came).
    fn remove_left_behind(&mut self, name: &str, ctx: &mut Context<Self>) {
        if !self.moved_off.contains_key(name) && !self.unlisted.contains(name) {
            return;
        }
        let Some(i) = self.model.position(name) else {
            return;
        };
        let addr = self.model.host(i).handle.clone();
        let name = name.to_string();
        ctx.spawn(
            async move { addr.send(ListManaged { app: None }).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    // Kept for the next answer if this list failed.
                    let Ok(Ok(listed)) = res else { return };
                    let moved_off = act.moved_off.remove(&name);
                    let everything = act.unlisted.remove(&name);
                    // Another answer's list took them first.
                    if moved_off.is_none() && !everything {
                        return;
                    }
                    let Some(i) = act.model.position(&name) else {
                        return;
                    };
                    let host = act.model.host(i);
                    let model = &act.model;
                    let ids = left_behind::left_behind(
                        &listed,
                        |k| {
                            moved_off.as_ref().is_some_and(|m| m.contains(k))
                                || (everything && model.placed_on(k).iter().any(|h| *h != name))
                        },
                        |k| host.members.contains_key(k),
                        crate::host::OWNER.get().map(String::as_str),
                    );
                    let handle = host.handle.clone();
                    if !ids.is_empty() {
                        act.event(format!(
                            "host {name} answers again: removing {} containers that started elsewhere while it was on fire",
                            ids.len()
                        ));
                    }
                    for id in ids {
                        handle.do_send(crate::host::Operate {
                            container: id,
                            op: crate::host::ContainerOp::Remove,
                        });
                    }
                }),
        );
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

/// How long one list of a host's containers at start may take, at least.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before a failed list is asked again.
const LIST_RETRY: Duration = Duration::from_millis(500);

/// Whether a host's list at start that failed (or timed out) `elapsed`
/// after the first attempt is asked again. Taken as "nothing runs
/// there" after one 5 s attempt, it made every container there be
/// placed again elsewhere: a rebind of 20,000 containers on busy
/// simulated engines made 2,000 duplicates that stayed. An engine that
/// does not answer for `on_fire_after` is given up on as before (the
/// pool would declare it on fire anyway), so a dead engine holds the
/// start's placements no longer than that.
fn list_again(elapsed: Duration, on_fire_after: Duration) -> bool {
    elapsed < on_fire_after
}

fn push_bounded(log: &mut VecDeque<String>, text: String) {
    log.push_back(text);
    while log.len() > KEEP_DECISIONS {
        log.pop_front();
    }
}
