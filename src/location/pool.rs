//! The host pool: one actor per location.
//!
//! It keeps a [`HostState`] per host (capacity and CPU use from the host
//! actors' sensors, reservations from the placements it made) and answers
//! [`Place`] by asking the location's [`PlacementPolicy`] to decide, one
//! request at a time so two decisions never see the same free slot. A
//! container that fits nowhere makes the pool provision a host (one at a
//! time; placements behind it queue, in order); at `max_hosts` it fails with
//! "insufficient capacity", which the cluster autoscaler takes as its
//! high-water mark. Every second it pings its engines: one silent for
//! `on_fire_after` is on fire, and the containers placed there are told to
//! start again elsewhere ([`Relocate`]).
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::json;

use super::config::{LocationConfig, ProvisionerKind};
use super::provision::{NewHost, Provisioner};
use crate::blueprint::PlacementSpec;
use crate::entity::{
    EmitNotice, EntityError, EntityKind, EntityRef, Invoke, Lifecycle, SensorBoard, Subscribe,
};
use crate::host::engines::{self, GetClient};
use crate::host::network::EnsureNetwork;
use crate::host::usage::{HostSensors, SubscribeHostSensors};
use crate::host::{Capacity, ContainerEvent, DockerHost, HostResync, ListManaged};
use crate::placement::{self, headroom, HeadroomVerdict, HostState, Request};
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

/// The pool as the API shows it.
#[derive(Message)]
#[rtype(result = "PoolView")]
pub struct GetPool;

pub use crate::wire::{PoolHostView, PoolView};

/// The engines of a pool, for the orphan sweep.
#[derive(Message)]
#[rtype(result = "Vec<Addr<DockerHost>>")]
pub struct GetHosts;

struct Member {
    cpus: f64,
    memory_bytes: u64,
    relocate: Option<Recipient<Relocate>>,
    /// Told to move when its host is drained.
    mover: Option<Recipient<Move>>,
}

/// An operator's action on one host (`POST
/// /v1/locations/{location}/hosts/{host}/drain|uncordon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOpKind {
    /// Take no new containers and move the ones there elsewhere (new
    /// first, old removed after); a provisioned host left empty is then
    /// removed by the host autoscaler after the cold window.
    Drain,
    /// Take containers again.
    Uncordon,
}

#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, String>")]
pub struct HostOp {
    pub host: String,
    pub op: HostOpKind,
}

struct PoolHost {
    state: HostState,
    addr: Addr<DockerHost>,
    address: String,
    /// Made by the provisioner (and so may be decommissioned), with how
    /// to reach it again after a restart.
    provisioned: Option<SavedHost>,
    last_ok: Instant,
    on_fire: bool,
    decommissioning: bool,
    members: HashMap<(String, String), Member>,
    pinging: bool,
    /// Has had an answer (or a timeout) to a ping: its capacity is known.
    pinged_once: bool,
    /// Its containers have been listed (or the list failed): what runs
    /// there is adopted rather than placed again.
    listed: bool,
    /// Drained by an operator: takes no new containers (stored).
    cordoned: bool,
}

type Waiter = (
    Place,
    tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
);
type ResizeWaiter = tokio::sync::oneshot::Sender<Result<serde_json::Value, EntityError>>;

pub struct HostPool {
    name: String,
    me: EntityRef,
    cfg: LocationConfig,
    provisioner: Arc<dyn Provisioner>,
    hosts: Vec<PoolHost>,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    /// The location's placement policy (built in `new`, started in
    /// `started`, where the pool's address exists for its memory).
    policy: Option<Addr<PlacementPolicy>>,
    policy_init: Option<PlacementPolicy>,
    provisioning: bool,
    next_index: u32,
    waiting: VecDeque<Waiter>,
    /// A decision is out at the placement policy.
    deciding: bool,
    ticks: u64,
    /// The queue's head fits nowhere and waits for the host being
    /// provisioned (a provisioning for headroom holds nothing).
    held: bool,
    decisions: VecDeque<String>,
    events: VecDeque<String>,
    /// The last headroom verdict, to tell its changes (hot, ok, cold).
    last_verdict: Option<HeadroomVerdict>,
    /// The pool as an entity: sensors for its autoscaler.
    board: SensorBoard,
    /// Hosts the autoscaler asked for, and who waits for them.
    want_hosts: Option<u32>,
    resize_waiters: Vec<ResizeWaiter>,
    /// Containers found running on the hosts at start: (app, entity) →
    /// host. Their entities' first placement adopts them there.
    found: HashMap<(String, String), String>,
    store: Option<Recipient<StoreWrite>>,
    activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// The autoscaler's memory saved before a restart.
    autoscaler_saved: Option<serde_json::Value>,
    placement_memory: serde_json::Value,
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
        // Past every host number in use: a name is never made twice.
        let next_index = initial
            .iter()
            .filter_map(|h| h.provisioned.as_ref().map(|p| p.index + 1))
            .chain([initial.len() as u32 + 1, saved.next_index])
            .max()
            .unwrap_or(1);
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
        let cordoned = saved.cordoned.clone();
        let hosts = initial
            .into_iter()
            .map(|h| {
                let mut state = HostState::new(h.name.clone(), 0.0, 0);
                state.labels = h.labels;
                // Placeable once its first ping tells its capacity.
                state.available = false;
                PoolHost {
                    state,
                    addr: h.addr,
                    address: h.address,
                    provisioned: h.provisioned,
                    last_ok: Instant::now(),
                    on_fire: false,
                    decommissioning: false,
                    members: HashMap::new(),
                    pinging: false,
                    pinged_once: false,
                    listed: false,
                    cordoned: cordoned.contains(&h.name),
                }
            })
            .collect();
        HostPool {
            me: EntityRef::new(POOL_APP, name.clone()),
            name,
            cfg,
            provisioner: Arc::from(provisioner),
            hosts,
            events_to,
            resync_to,
            policy: None,
            policy_init: Some(policy),
            provisioning: false,
            next_index,
            waiting: VecDeque::new(),
            deciding: false,
            ticks: 0,
            held: false,
            decisions: VecDeque::new(),
            events: VecDeque::new(),
            last_verdict: None,
            board: SensorBoard::default(),
            want_hosts: None,
            resize_waiters: Vec::new(),
            found: HashMap::new(),
            store: services.store,
            activities: services.activities,
            autoscaler_saved: services.autoscaler_saved,
            placement_memory: saved.placement,
        }
    }
}

impl HostPool {
    fn event(&mut self, text: String) {
        tracing::info!(location = %self.name, "{text}");
        self.events.push_back(text);
        while self.events.len() > KEEP_DECISIONS {
            self.events.pop_front();
        }
    }

    fn record_decision(&mut self, summary: String) {
        tracing::debug!(location = %self.name, "{summary}");
        self.decisions.push_back(summary);
        while self.decisions.len() > KEEP_DECISIONS {
            self.decisions.pop_front();
        }
    }

    fn max_per_host(&self) -> u32 {
        crate::policy::placement::rules_for(&self.cfg.placement, &[]).max_containers
    }

    fn states(&self) -> Vec<HostState> {
        self.hosts.iter().map(|h| h.state.clone()).collect()
    }

    /// Hosts not being decommissioned (on fire or not): what `max_hosts`
    /// bounds.
    fn live_hosts(&self) -> u32 {
        self.hosts.iter().filter(|h| !h.decommissioning).count() as u32
    }

    /// Hosts that can take containers: the pool's size to its autoscaler.
    fn running_hosts(&self) -> u32 {
        self.hosts
            .iter()
            .filter(|h| !h.decommissioning && !h.on_fire)
            .count() as u32
    }

    fn headroom(&self) -> placement::Headroom {
        // A drained host's slots are not capacity (its containers, while
        // they move, still count as used).
        let live: Vec<&PoolHost> = self
            .hosts
            .iter()
            .filter(|h| !h.decommissioning && !h.on_fire)
            .collect();
        let used: u32 = live.iter().map(|h| h.state.containers()).sum();
        let live: Vec<&PoolHost> = live.into_iter().filter(|h| !h.cordoned).collect();
        let h = headroom(
            live.len() as u32,
            self.max_per_host(),
            used,
            &self.cfg.headroom,
        );
        let loc = [self.name.as_str()];
        crate::metrics::LOCATION_HOSTS
            .with_label_values(&loc)
            .set(h.hosts as i64);
        crate::metrics::LOCATION_HEADROOM_FREE
            .with_label_values(&loc)
            .set(h.free as i64);
        crate::metrics::LOCATION_HEADROOM_WANTED
            .with_label_values(&loc)
            .set(h.wanted as i64);
        h
    }

    /// The sensors the pool's autoscaler reads.
    fn publish(&mut self, hr: &placement::Headroom) {
        let size = self.running_hosts();
        let me = self.me.clone();
        self.board
            .set(&me, crate::entity::sensors::GROUP_SIZE, json!(size));
        self.board.set(
            &me,
            POOL_DEMAND,
            json!(self.demand(hr) as f64 / size.max(1) as f64),
        );
        self.board.set(&me, "pool.headroom.free", json!(hr.free));
        self.board
            .set(&me, "pool.headroom.wanted", json!(hr.wanted));
        self.board
            .set(&me, "pool.headroom.verdict", json!(hr.verdict.as_str()));
    }

    /// The hosts the pool needs: what its containers and headroom need,
    /// but never fewer than the hosts that cannot go (static ones, and
    /// those with containers). Spread containers keep every host busy:
    /// the pool is then not cold, rather than cold with nothing to remove
    /// (which would make its autoscaler ask for a shrink every second).
    fn demand(&self, hr: &placement::Headroom) -> u32 {
        let staying = self
            .hosts
            .iter()
            .filter(|h| !h.decommissioning && !h.on_fire)
            .filter(|h| h.provisioned.is_none() || !h.state.placed.is_empty())
            .count() as u32;
        placement::headroom::hosts_needed(hr, staying)
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

    /// Saves the provisioned hosts and the placement policy's memory.
    fn save(&self) {
        let Some(store) = &self.store else { return };
        let state = LocationState {
            next_index: self.next_index,
            hosts: self
                .hosts
                .iter()
                // Decommissioning ones too, until they are gone: a crash
                // mid-way makes the next start finish the job, never
                // leaves an engine nobody claims.
                .filter_map(|h| h.provisioned.clone())
                .collect(),
            placement: self.placement_memory.clone(),
            cordoned: self
                .hosts
                .iter()
                .filter(|h| h.cordoned)
                .map(|h| h.state.name.clone())
                .collect(),
        };
        store.do_send(StoreWrite::PutLocation {
            name: self.name.clone(),
            state,
        });
    }

    /// Takes the next waiting placement to the placement policy, if none is
    /// out and nothing holds the queue.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.deciding || self.held || !self.ready() {
            return;
        }
        let Some((msg, tx)) = self.waiting.pop_front() else {
            return;
        };
        if let Some(i) = self.adoptable(&msg) {
            let summary = format!(
                "{}/{}: adopted on {}, where its container already runs",
                msg.request.app, msg.request.entity, self.hosts[i].state.name
            );
            self.record_decision(summary.clone());
            self.reserve(i, &msg);
            self.answer(i, msg, tx, summary, ctx);
            return self.pump(ctx);
        }
        let states = self.states();
        let names: Vec<String> = states.iter().map(|s| s.name.clone()).collect();
        let decide = Decide {
            states,
            request: msg.request.clone(),
            layers: msg.rules.clone(),
            avoid: msg.avoid.clone(),
            cpu_move: msg.avoid.as_ref().is_some_and(|h| !self.is_cordoned(h)),
            mover: msg.mover.clone(),
        };
        let Some(policy) = self.policy.clone() else {
            self.waiting.push_front((msg, tx));
            return;
        };
        self.deciding = true;
        ctx.spawn(
            async move { policy.send(decide).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.deciding = false;
                    let d = res.unwrap_or_else(|e| Decided {
                        chosen: None,
                        summary: format!("the placement policy did not answer: {e}"),
                    });
                    act.record_decision(d.summary.clone());
                    let at = d
                        .chosen
                        .and_then(|i| names.get(i))
                        .and_then(|n| act.hosts.iter().position(|h| &h.state.name == n))
                        .filter(|i| act.hosts[*i].state.available);
                    match at {
                        Some(i) => {
                            act.reserve(i, &msg);
                            act.answer(i, msg, tx, d.summary, ctx);
                        }
                        None => act.no_fit(msg, tx, d.summary, ctx),
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn is_cordoned(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|h| h.state.name == host && h.cordoned)
    }

    /// Tells every container on a drained host to move (again, each tick
    /// until it is empty: a container busy starting ignores the first).
    fn nudge_drained(&mut self) {
        for h in self.hosts.iter().filter(|h| h.cordoned && !h.on_fire) {
            for m in h.members.values() {
                if let Some(to) = &m.mover {
                    to.do_send(Move {
                        reason: format!("host {} is drained", h.state.name),
                    });
                }
            }
        }
    }

    fn host_op(
        &mut self,
        msg: HostOp,
        ctx: &mut Context<Self>,
    ) -> Result<serde_json::Value, String> {
        let Some(i) = self
            .hosts
            .iter()
            .position(|h| h.state.name == msg.host && !h.decommissioning)
        else {
            let known: Vec<&str> = self.hosts.iter().map(|h| h.state.name.as_str()).collect();
            return Err(format!(
                "location {} has no host `{}`; its hosts: {}",
                self.name,
                msg.host,
                known.join(", ")
            ));
        };
        let h = &mut self.hosts[i];
        match msg.op {
            HostOpKind::Drain => {
                h.cordoned = true;
                h.state.available = false;
                let n = h.members.len();
                self.event(format!(
                    "host {} drained by an operator: {n} containers move elsewhere",
                    msg.host
                ));
                self.nudge_drained();
            }
            HostOpKind::Uncordon => {
                h.cordoned = false;
                h.state.available = h.pinged_once && !h.on_fire;
                self.event(format!("host {} takes containers again", msg.host));
                self.pump(ctx);
            }
        }
        self.save();
        let h = &self.hosts[i];
        Ok(json!({
            "host": h.state.name,
            "state": host_state(h),
            "containers": h.members.len(),
        }))
    }

    /// A container found on a host at start is adopted there (not on a
    /// move: that one leaves its host on purpose).
    fn adoptable(&mut self, msg: &Place) -> Option<usize> {
        if msg.avoid.is_some() {
            return None;
        }
        let key = (msg.request.app.clone(), msg.request.entity.clone());
        let host = self.found.remove(&key)?;
        self.hosts
            .iter()
            .position(|h| h.state.name == host && !h.on_fire && !h.decommissioning)
    }

    fn reserve(&mut self, i: usize, msg: &Place) {
        let h = &mut self.hosts[i];
        h.state.place(&msg.request);
        h.members.insert(
            (msg.request.app.clone(), msg.request.entity.clone()),
            Member {
                cpus: msg.request.cpus,
                memory_bytes: msg.request.memory_bytes,
                relocate: msg.relocate.clone(),
                mover: msg.mover.clone(),
            },
        );
    }

    /// Answers a placement: ensures the network and the image on the host.
    fn answer(
        &mut self,
        i: usize,
        msg: Place,
        tx: tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
        explanation: String,
        ctx: &mut Context<Self>,
    ) {
        let h = &self.hosts[i];
        let placed = PlacedOn {
            host: h.addr.clone(),
            host_name: h.state.name.clone(),
            host_address: h.address.clone(),
            explanation,
        };
        // Sources of the image: every other answering host.
        let sources: Vec<Addr<DockerHost>> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && !o.on_fire)
            .map(|(_, o)| o.addr.clone())
            .collect();
        let app = msg.request.app.clone();
        let image = msg.image.clone();
        let target = placed.host.clone();
        let fut = async move {
            let net = target
                .send(EnsureNetwork {
                    app: app.clone(),
                    network: None,
                })
                .await;
            match net {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("network on {}: {e}", placed.host_name)),
                Err(e) => return Err(format!("host {} unreachable: {e}", placed.host_name)),
            }
            if let Some(image) = image.filter(|i| !crate::host::workload::is_workload_image(i)) {
                ensure_image(&target, &sources, &image).await?;
            }
            Ok(placed)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, _, _| {
            let _ = tx.send(res);
        }));
    }

    /// Every host has answered (or failed) its first ping and had its
    /// containers listed: until then a decision would see unknown
    /// capacities, or place again what already runs, so placements wait.
    fn ready(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| (h.pinged_once && h.listed) || h.decommissioning)
    }

    fn can_grow(&self) -> bool {
        self.live_hosts() < self.cfg.max_hosts
            && self.cfg.provisioner.kind != ProvisionerKind::Static
    }

    fn provision(&mut self, why: &str, ctx: &mut Context<Self>) {
        if self.provisioning || !self.can_grow() {
            return;
        }
        self.provisioning = true;
        let index = self.next_index;
        self.next_index += 1;
        let name = format!("{}-{index}", self.name);
        self.event(format!("provisioning host {name}: {why}"));
        let p = self.provisioner.clone();
        let n = name.clone();
        let t0 = Instant::now();
        let fut = async move {
            let new = tokio::task::spawn_blocking(move || p.create(&n, index))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let tls = new.tls.clone();
            let docker = engines::connect_endpoint(
                &new.endpoint,
                tls.as_ref()
                    .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path())),
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok::<_, String>((new, docker))
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.provisioning = false;
            // The held placement is tried again once the new host has
            // answered its first ping (or fails below).
            act.held = false;
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
                    act.event(format!("provisioning {name} failed: {e}"));
                    act.save();
                    // Whoever waits fails now rather than at a timeout.
                    for (msg, tx) in std::mem::take(&mut act.waiting) {
                        let _ = tx.send(Err(format!(
                            "insufficient capacity in location {}: {} fits on no host, and provisioning a host failed: {e}",
                            act.name, msg.request.entity
                        )));
                    }
                    act.want_hosts = None;
                    for w in std::mem::take(&mut act.resize_waiters) {
                        let _ = w.send(Err(EntityError::Failed {
                            entity: act.me.to_string(),
                            message: format!("insufficient capacity: provisioning a host failed: {e}"),
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
        let addr = DockerHost::new(
            new.name.clone(),
            new.address.clone(),
            docker,
            self.events_to.clone(),
            self.resync_to.clone(),
        )
        .with_subnet_pool(super::host_subnet_pool())
        .start();
        let mut state = HostState::new(new.name.clone(), 0.0, 0);
        state.labels = new.labels.clone();
        // Not placeable until its capacity is known (the first ping).
        state.available = false;
        let saved = super::start::saved_host(&new, index);
        self.hosts.push(PoolHost {
            state,
            addr,
            address: new.address,
            provisioned: Some(saved),
            last_ok: Instant::now(),
            on_fire: false,
            decommissioning: false,
            members: HashMap::new(),
            pinging: false,
            pinged_once: false,
            // New: nothing runs there yet.
            listed: true,
            cordoned: false,
        });
        self.hosts.sort_by(|a, b| a.state.name.cmp(&b.state.name));
        // Stored before anything is placed there: a restart adopts it.
        self.save();
        let i = self
            .hosts
            .iter()
            .position(|h| h.state.name == new.name)
            .unwrap_or(0);
        self.watch(i, ctx);
        self.ping(i, ctx);
        self.grow(ctx);
    }

    /// Subscribes the pool and its placement policy to a host's sensors.
    fn watch(&self, i: usize, ctx: &mut Context<Self>) {
        let h = &self.hosts[i];
        h.addr
            .do_send(SubscribeHostSensors(ctx.address().recipient()));
        if let Some(p) = &self.policy {
            h.addr.do_send(SubscribeHostSensors(p.clone().recipient()));
        }
    }

    /// Lists what already runs on a host (drover's own containers), so
    /// their entities are adopted there.
    fn list(&mut self, i: usize, ctx: &mut Context<Self>) {
        let name = self.hosts[i].state.name.clone();
        let addr = self.hosts[i].addr.clone();
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
                act.found.insert((c.app, c.entity), name.clone());
            }
            if let Some(h) = act.hosts.iter_mut().find(|h| h.state.name == name) {
                h.listed = true;
            }
            act.pump(ctx);
        }));
    }

    /// Provisions towards the autoscaler's wanted host count, one host at
    /// a time; answers its resize once there.
    fn grow(&mut self, ctx: &mut Context<Self>) {
        let Some(want) = self.want_hosts else { return };
        if self.running_hosts() >= want {
            self.want_hosts = None;
            let size = self.running_hosts();
            for w in std::mem::take(&mut self.resize_waiters) {
                let _ = w.send(Ok(json!({ "size": size })));
            }
            return;
        }
        if !self.provisioning {
            if self.can_grow() {
                self.provision(&format!("the host autoscaler wants {want} hosts"), ctx);
            } else {
                self.want_hosts = None;
                for w in std::mem::take(&mut self.resize_waiters) {
                    let _ = w.send(Err(self.insufficient(want)));
                }
            }
        }
    }

    fn insufficient(&self, want: u32) -> EntityError {
        EntityError::Failed {
            entity: self.me.to_string(),
            message: format!(
                "insufficient capacity: {want} hosts wanted, location {} has at most {} ({})",
                self.name,
                self.cfg.max_hosts,
                if self.cfg.provisioner.kind == ProvisionerKind::Static {
                    "its provisioner is `static`"
                } else {
                    "max_hosts"
                }
            ),
        }
    }

    fn no_fit(
        &mut self,
        msg: Place,
        tx: tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
        summary: String,
        ctx: &mut Context<Self>,
    ) {
        // A CPU move that finds no cooler host stays; a container leaving a
        // drained host may need a new one.
        let may_grow = match &msg.avoid {
            None => true,
            Some(h) => self.is_cordoned(h),
        };
        if may_grow && (self.can_grow() || self.provisioning) {
            // First in line again once the new host is up.
            self.waiting.push_front((msg, tx));
            self.held = true;
            self.provision("a container fits on no host", ctx);
        } else {
            let _ = tx.send(Err(format!(
                "insufficient capacity in location {} ({} of at most {} hosts): {summary}",
                self.name,
                self.live_hosts(),
                self.cfg.max_hosts
            )));
        }
    }

    fn ping(&mut self, i: usize, ctx: &mut Context<Self>) {
        let h = &mut self.hosts[i];
        if h.pinging || h.decommissioning {
            return;
        }
        h.pinging = true;
        let name = h.state.name.clone();
        let addr = h.addr.clone();
        let fut = async move {
            tokio::time::timeout(Duration::from_secs(2), addr.send(Capacity))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|r| r.ok())
        };
        ctx.spawn(fut.into_actor(self).map(move |cap, act, ctx| {
            let Some(i) = act.hosts.iter().position(|h| h.state.name == name) else {
                return;
            };
            act.hosts[i].pinging = false;
            act.hosts[i].pinged_once = true;
            match cap {
                Some(c) => {
                    let h = &mut act.hosts[i];
                    h.last_ok = Instant::now();
                    h.state.cpus = c.cpus as f64;
                    h.state.memory_bytes = c.memory_bytes.max(0) as u64;
                    if !h.decommissioning && !h.cordoned {
                        h.state.available = true;
                    }
                    if h.on_fire {
                        h.on_fire = false;
                        act.event(format!("host {name} answers again"));
                    }
                }
                None => {
                    let h = &mut act.hosts[i];
                    if !h.on_fire && h.last_ok.elapsed() >= act.cfg.on_fire_after {
                        act.host_failed(i);
                    }
                }
            }
            act.pump(ctx);
        }));
    }

    /// A host stopped answering: its containers start again elsewhere.
    fn host_failed(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        h.on_fire = true;
        h.state.available = false;
        let name = h.state.name.clone();
        let members: Vec<((String, String), Member)> = h.members.drain().collect();
        h.state.placed.clear();
        h.state.reserved_cpus = 0.0;
        h.state.reserved_memory_bytes = 0;
        self.found.retain(|_, host| host != &name);
        if let Some(p) = &self.policy {
            p.do_send(HostDown {
                host: name.clone(),
                removed: false,
            });
        }
        self.event(format!(
            "host {name} is on fire: its engine has not answered for {:?}; {} containers go elsewhere",
            self.cfg.on_fire_after,
            members.len()
        ));
        for ((_, _), m) in members {
            if let Some(r) = m.relocate {
                r.do_send(Relocate {
                    host: name.clone(),
                    reason: format!("host {name} is on fire"),
                });
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.hosts.len() {
            self.ping(i, ctx);
        }
        let hr = self.headroom();
        if self.ready() {
            self.publish(&hr);
        }
        if self.last_verdict != Some(hr.verdict) && self.ready() {
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
        self.give_up_dead_hosts(ctx);
        self.grow(ctx);
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % DRAIN_NUDGE_TICKS == 0 {
            self.nudge_drained();
        }
    }

    /// A host drover provisioned that stays on fire for the cold window
    /// after its grace period is given back to its provisioner: its
    /// containers run elsewhere already, and it would count against
    /// `max_hosts` forever. A static host is the operator's: it stays, on
    /// fire, until it answers again.
    fn give_up_dead_hosts(&mut self, ctx: &mut Context<Self>) {
        let limit = self.cfg.on_fire_after + self.cfg.cold_window;
        let dead: Vec<usize> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                h.on_fire
                    && !h.decommissioning
                    && h.provisioned.is_some()
                    && h.last_ok.elapsed() >= limit
            })
            .map(|(i, _)| i)
            .collect();
        for i in dead {
            let why = format!("on fire for {:?}: given back to its provisioner", limit);
            self.decommission(i, &why, ctx);
        }
    }

    /// The autoscaler's `resize`: grow by provisioning, shrink by
    /// decommissioning empty provisioned hosts (never one with containers,
    /// never one drover did not make, never below `min_hosts`).
    fn resize(&mut self, size: u32, ctx: &mut Context<Self>) -> Result<Option<u32>, EntityError> {
        let running = self.running_hosts();
        if size > running {
            if size > self.cfg.max_hosts || self.cfg.provisioner.kind == ProvisionerKind::Static {
                return Err(self.insufficient(size));
            }
            self.want_hosts = Some(size);
            return Ok(None);
        }
        if size < running {
            let floor = size.max(self.cfg.min_hosts);
            let mut removed = 0;
            while running - removed > floor && self.waiting.is_empty() && !self.provisioning {
                let removable = |h: &PoolHost| {
                    h.provisioned.is_some()
                        && !h.decommissioning
                        && !h.on_fire
                        && h.state.placed.is_empty()
                };
                // A drained host first, then the newest.
                let Some(i) = self
                    .hosts
                    .iter()
                    .rposition(|h| removable(h) && h.cordoned)
                    .or_else(|| self.hosts.iter().rposition(removable))
                else {
                    break;
                };
                let why = format!("empty, and the pool cold for {:?}", self.cfg.cold_window);
                self.decommission(i, &why, ctx);
                removed += 1;
            }
            // The answer carries the size reached: the autoscaler takes it,
            // so a shrink by fewer than asked is never believed whole.
            let now = self.running_hosts();
            if removed == 0 {
                return Err(EntityError::Failed {
                    entity: self.me.to_string(),
                    message: "no empty host drover provisioned can be decommissioned now".into(),
                });
            }
            return Ok(Some(now));
        }
        Ok(Some(running))
    }

    fn decommission(&mut self, i: usize, why: &str, ctx: &mut Context<Self>) {
        let h = &mut self.hosts[i];
        h.decommissioning = true;
        h.state.available = false;
        let name = h.state.name.clone();
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
            async move { tokio::task::spawn_blocking(move || p.destroy(&n)).await }
                .into_actor(self)
                .map(move |r, act, _| {
                    match r {
                        Ok(Ok(())) => act.event(format!("host {name} decommissioned")),
                        Ok(Err(e)) => act.event(format!("{e}")),
                        Err(e) => act.event(format!("decommissioning {name}: {e}")),
                    }
                    if let Some(h) = act.hosts.iter().find(|h| h.state.name == name) {
                        h.addr.do_send(engines::StopHost);
                    }
                    if let Some(p) = &act.policy {
                        p.do_send(HostDown {
                            host: name.clone(),
                            removed: true,
                        });
                    }
                    act.hosts.retain(|h| h.state.name != name);
                    let _ = crate::metrics::HOST_CPU_USAGE.remove_label_values(&[name.as_str()]);
                    act.save();
                }),
        );
    }
}

/// A host's state as operators see it.
fn host_state(h: &PoolHost) -> &'static str {
    if h.decommissioning {
        "decommissioning"
    } else if h.on_fire {
        "on-fire"
    } else if h.cordoned && !h.members.is_empty() {
        "draining"
    } else if h.cordoned {
        "cordoned"
    } else {
        "running"
    }
}

/// Copies `image` to `target` from the first source that has it.
async fn ensure_image(
    target: &Addr<DockerHost>,
    sources: &[Addr<DockerHost>],
    image: &str,
) -> Result<(), String> {
    let to = target.send(GetClient).await.map_err(|e| e.to_string())?;
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
                .map_err(|e| e.to_string());
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
        for i in 0..self.hosts.len() {
            self.watch(i, ctx);
            self.ping(i, ctx);
            self.list(i, ctx);
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        // The hosts are the pool's to size only if it can make hosts.
        if let (true, Some(activities)) = (
            self.cfg.provisioner.kind != ProvisionerKind::Static,
            self.activities.clone(),
        ) {
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
        self.waiting.push_back((msg, tx));
        self.pump(ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the host pool stopped".to_string()))
        })
    }
}

impl Handler<Release> for HostPool {
    type Result = ();
    fn handle(&mut self, msg: Release, ctx: &mut Context<Self>) {
        for h in self.hosts.iter_mut() {
            if msg.host.as_ref().is_some_and(|n| n != &h.state.name) {
                continue;
            }
            if let Some(m) = h.members.remove(&(msg.app.clone(), msg.entity.clone())) {
                h.state
                    .unplace(&msg.app, &msg.entity, m.cpus, m.memory_bytes);
            }
        }
        if msg.host.is_none() {
            self.found.remove(&(msg.app.clone(), msg.entity.clone()));
        }
        if let Some(p) = &self.policy {
            p.do_send(Forget {
                app: msg.app,
                entity: msg.entity,
                host: msg.host,
            });
        }
        self.pump(ctx);
    }
}

impl Handler<HostSensors> for HostPool {
    type Result = ();
    fn handle(&mut self, s: HostSensors, _: &mut Context<Self>) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.state.name == s.host) {
            if h.decommissioning {
                return;
            }
            crate::metrics::HOST_CPU_USAGE
                .with_label_values(&[s.host.as_str()])
                .set(s.cpu_usage);
            h.state.cpu_usage = s.cpu_usage;
            // Containers drover does not manage count against
            // max-containers too.
            h.state.other_containers = s.unmanaged_containers;
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
    type Result = Result<serde_json::Value, String>;
    fn handle(&mut self, msg: HostOp, ctx: &mut Context<Self>) -> Self::Result {
        self.host_op(msg, ctx)
    }
}

impl Handler<GetHosts> for HostPool {
    type Result = MessageResult<GetHosts>;
    fn handle(&mut self, _: GetHosts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.hosts
                .iter()
                .filter(|h| !h.on_fire && !h.decommissioning)
                .map(|h| h.addr.clone())
                .collect(),
        )
    }
}

impl Handler<GetPool> for HostPool {
    type Result = ResponseFuture<PoolView>;
    fn handle(&mut self, _: GetPool, _: &mut Context<Self>) -> Self::Result {
        let hosts = self
            .hosts
            .iter()
            .map(|h| PoolHostView {
                name: h.state.name.clone(),
                address: h.address.clone(),
                state: host_state(h).into(),
                provisioned: h.provisioned.is_some(),
                sensors: BTreeMap::from([
                    ("host.cpus".to_string(), serde_json::json!(h.state.cpus)),
                    (
                        "host.memory_bytes".to_string(),
                        serde_json::json!(h.state.memory_bytes),
                    ),
                    (
                        "host.containers".to_string(),
                        serde_json::json!(h.state.containers()),
                    ),
                    (
                        "host.reserved.cpus".to_string(),
                        serde_json::json!(h.state.reserved_cpus),
                    ),
                    (
                        "host.reserved.memory_bytes".to_string(),
                        serde_json::json!(h.state.reserved_memory_bytes),
                    ),
                    (
                        "host.cpu.usage".to_string(),
                        serde_json::json!(h.state.cpu_usage),
                    ),
                ]),
            })
            .collect();
        let mut view = PoolView {
            location: self.name.clone(),
            hosts,
            headroom: self.headroom(),
            provisioning: self.provisioning,
            waiting: self.waiting.len(),
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
