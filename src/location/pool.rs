//! The host pool: one actor per location.
//!
//! It keeps a [`HostState`] per host (capacity from `docker info`, CPU use
//! from the engine's stats, reservations from the placements it made) and
//! answers [`Place`] with the pure [`decide`]. A container that fits
//! nowhere makes the pool provision a host (one at a time; waiting
//! placements queue); at `max_hosts` it fails with "insufficient
//! capacity", which the cluster autoscaler takes as its high-water mark.
//! Every second it pings its engines: one silent for `on_fire_after` is
//! on fire, and the containers placed there are told to start again
//! elsewhere ([`Relocate`]). Headroom (hot / ok / cold, with their
//! windows) adds hosts before they are needed and decommissions provisioned
//! hosts that stayed empty for the cold window; a host with containers is
//! never removed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::config::LocationConfig;
use super::provision::{NewHost, Provisioner};
use crate::blueprint::PlacementSpec;
use crate::host::engines::{self, GetClient};
use crate::host::network::EnsureNetwork;
use crate::host::{Capacity, ContainerEvent, DockerHost, HostResync};
use crate::placement::{self, decide, headroom, HeadroomVerdict, HostState, Request, Rules};

/// How often engines are pinged and headroom is judged.
const TICK: Duration = Duration::from_secs(1);
/// How often the engines' CPU use is sampled (each sample is one stats
/// call per running container).
const CPU_EVERY: Duration = Duration::from_secs(2);
/// Recent decisions kept for `GET /v1/locations/{name}`.
const KEEP_DECISIONS: usize = 50;

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

/// The CPU placement policy tells a container to move to a cooler host.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Move {
    pub reason: String,
}

/// The pool as the API shows it.
#[derive(Message)]
#[rtype(result = "PoolView")]
pub struct GetPool;

#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub location: String,
    pub hosts: Vec<PoolHostView>,
    pub headroom: placement::Headroom,
    pub provisioning: bool,
    pub waiting: usize,
    pub decisions: Vec<String>,
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolHostView {
    pub name: String,
    pub address: String,
    /// `running`, `on-fire`, `decommissioning`.
    pub state: String,
    pub provisioned: bool,
    /// Sensors: `host.cpus`, `host.memory_bytes`, `host.containers`,
    /// `host.reserved.cpus`, `host.reserved.memory_bytes`, `host.cpu.usage`.
    pub sensors: BTreeMap<String, serde_json::Value>,
}

struct Member {
    cpus: f64,
    memory_bytes: u64,
    relocate: Option<Recipient<Relocate>>,
    group: Option<String>,
    rebalance: Option<crate::blueprint::RebalanceSpec>,
    mover: Option<Recipient<Move>>,
}

struct PoolHost {
    state: HostState,
    addr: Addr<DockerHost>,
    address: String,
    /// Made by the provisioner (and so may be decommissioned).
    provisioned: bool,
    last_ok: Instant,
    on_fire: bool,
    decommissioning: bool,
    /// Empty (and the pool cold or ok) since.
    empty_since: Option<Instant>,
    members: HashMap<(String, String), Member>,
    cpu_sampling: bool,
    pinging: bool,
    /// Has had an answer (or a timeout) to a ping: its capacity is known.
    pinged_once: bool,
}

type Waiter = (
    Place,
    tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
);

pub struct HostPool {
    name: String,
    cfg: LocationConfig,
    provisioner: Arc<dyn Provisioner>,
    hosts: Vec<PoolHost>,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    provisioning: bool,
    next_index: u32,
    waiting: VecDeque<Waiter>,
    hot_since: Option<Instant>,
    decisions: VecDeque<String>,
    events: VecDeque<String>,
    last_cpu: Instant,
    /// The last headroom verdict, to tell its changes (hot, ok, cold).
    last_verdict: Option<HeadroomVerdict>,
    /// Host → busy (above some member's threshold) since.
    busy_since: HashMap<String, Instant>,
    /// (app, cluster or entity) → when its last move was asked.
    last_move: HashMap<(String, String), Instant>,
}

/// An engine the pool starts with (connected by the caller).
pub struct InitialHost {
    pub name: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub addr: Addr<DockerHost>,
    /// Made by the provisioner (so it may be decommissioned).
    pub provisioned: bool,
}

impl HostPool {
    pub fn new(
        name: String,
        cfg: LocationConfig,
        provisioner: Box<dyn Provisioner>,
        initial: Vec<InitialHost>,
        events_to: Recipient<ContainerEvent>,
        resync_to: Recipient<HostResync>,
    ) -> Self {
        let next_index = initial.len() as u32 + 1;
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
                    empty_since: None,
                    members: HashMap::new(),
                    cpu_sampling: false,
                    pinging: false,
                    pinged_once: false,
                }
            })
            .collect();
        HostPool {
            name,
            cfg,
            provisioner: Arc::from(provisioner),
            hosts,
            events_to,
            resync_to,
            provisioning: false,
            next_index,
            waiting: VecDeque::new(),
            hot_since: None,
            decisions: VecDeque::new(),
            events: VecDeque::new(),
            last_cpu: Instant::now(),
            busy_since: HashMap::new(),
            last_move: HashMap::new(),
            last_verdict: None,
        }
    }

    /// The CPU placement policy: a host above a member's `rebalance.above`
    /// for its window loses that member to a cooler host (one move per
    /// cluster at a time, then its cooldown).
    fn rebalance(&mut self) {
        let now = Instant::now();
        let mut orders: Vec<(Recipient<Move>, String, (String, String))> = Vec::new();
        for h in &self.hosts {
            if h.on_fire || h.decommissioning {
                continue;
            }
            let lowest = h
                .members
                .values()
                .filter_map(|m| m.rebalance.as_ref().map(|r| r.above))
                .fold(f64::INFINITY, f64::min);
            if h.state.cpu_usage <= lowest {
                self.busy_since.remove(&h.state.name);
                continue;
            }
            let since = *self.busy_since.entry(h.state.name.clone()).or_insert(now);
            for ((app, entity), m) in &h.members {
                let Some(r) = &m.rebalance else { continue };
                if h.state.cpu_usage <= r.above || since.elapsed() < r.window {
                    continue;
                }
                let key = (
                    app.clone(),
                    m.group.clone().unwrap_or_else(|| entity.clone()),
                );
                if self
                    .last_move
                    .get(&key)
                    .is_some_and(|t| t.elapsed() < r.cooldown)
                    || orders.iter().any(|o| o.2 == key)
                {
                    continue;
                }
                let Some(to) = &m.mover else { continue };
                orders.push((
                    to.clone(),
                    format!(
                        "host {} at {:.0}% CPU for {:?} (above {:.0}%)",
                        h.state.name,
                        h.state.cpu_usage * 100.0,
                        r.window,
                        r.above * 100.0
                    ),
                    key,
                ));
                break;
            }
        }
        for (to, reason, key) in orders {
            self.event(format!("moving a member of {}/{}: {reason}", key.0, key.1));
            self.last_move.insert(key, now);
            to.do_send(Move { reason });
        }
    }

    fn event(&mut self, text: String) {
        tracing::info!(location = %self.name, "{text}");
        self.events.push_back(text);
        while self.events.len() > KEEP_DECISIONS {
            self.events.pop_front();
        }
    }

    fn max_per_host(&self) -> u32 {
        Rules::resolve(&self.cfg.placement, &[]).max_containers
    }

    fn states(&self) -> Vec<HostState> {
        self.hosts.iter().map(|h| h.state.clone()).collect()
    }

    fn live_hosts(&self) -> u32 {
        self.hosts.iter().filter(|h| !h.decommissioning).count() as u32
    }

    fn headroom(&self) -> placement::Headroom {
        let live: Vec<&PoolHost> = self
            .hosts
            .iter()
            .filter(|h| !h.decommissioning && !h.on_fire)
            .collect();
        let used: u32 = live.iter().map(|h| h.state.containers()).sum();
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

    /// Decides for one request; on success reserves the slot and returns
    /// the host's index.
    fn try_place(&mut self, msg: &Place) -> Result<usize, String> {
        let layers: Vec<&PlacementSpec> = msg.rules.iter().collect();
        let rules = Rules::resolve(&self.cfg.placement, &layers);
        let mut states = self.states();
        if let Some(avoid) = &msg.avoid {
            for st in states.iter_mut().filter(|st| &st.name == avoid) {
                st.available = false;
            }
            // A move goes only to a host below its threshold.
            if let Some(r) = msg.rules.iter().rev().find_map(|r| r.rebalance.as_ref()) {
                for st in states.iter_mut().filter(|st| st.cpu_usage >= r.above) {
                    st.available = false;
                }
            }
        }
        let t0 = std::time::Instant::now();
        let d = decide(&states, &msg.request, &rules);
        crate::metrics::PLACEMENT_SECONDS
            .with_label_values(&[self.name.as_str()])
            .observe(t0.elapsed().as_secs_f64());
        let summary = d.summary(&states, &msg.request, &rules);
        tracing::debug!(location = %self.name, "{summary}");
        self.decisions.push_back(summary.clone());
        while self.decisions.len() > KEEP_DECISIONS {
            self.decisions.pop_front();
        }
        match d.chosen {
            Some(i) => {
                let h = &mut self.hosts[i];
                h.state.place(&msg.request);
                h.empty_since = None;
                h.members.insert(
                    (msg.request.app.clone(), msg.request.entity.clone()),
                    Member {
                        cpus: msg.request.cpus,
                        memory_bytes: msg.request.memory_bytes,
                        relocate: msg.relocate.clone(),
                        group: msg.request.group.clone(),
                        rebalance: msg.rules.iter().rev().find_map(|r| r.rebalance.clone()),
                        mover: msg.mover.clone(),
                    },
                );
                Ok(i)
            }
            None => Err(summary),
        }
    }

    /// Answers a placement: ensures the network and the image on the host.
    fn answer(
        &mut self,
        i: usize,
        msg: Place,
        tx: tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
        ctx: &mut Context<Self>,
    ) {
        let h = &self.hosts[i];
        let placed = PlacedOn {
            host: h.addr.clone(),
            host_name: h.state.name.clone(),
            host_address: h.address.clone(),
            explanation: self.decisions.back().cloned().unwrap_or_default(),
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

    /// Every host has answered (or failed) its first ping: until then a
    /// decision would see unknown capacities, so placements wait.
    fn ready(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.pinged_once || h.decommissioning)
    }

    fn can_grow(&self) -> bool {
        self.live_hosts() < self.cfg.max_hosts
            && self.cfg.provisioner.kind != super::config::ProvisionerKind::Static
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
            match res {
                Ok((new, docker)) => {
                    act.event(format!(
                        "host {} is up at {} after {:.1}s",
                        new.name,
                        new.endpoint,
                        t0.elapsed().as_secs_f64()
                    ));
                    act.add_host(new, docker, ctx);
                }
                Err(e) => {
                    act.event(format!("provisioning {name} failed: {e}"));
                    // Whoever waits fails now rather than at a timeout.
                    for (msg, tx) in std::mem::take(&mut act.waiting) {
                        let _ = tx.send(Err(format!(
                            "insufficient capacity in location {}: {} fits on no host, and provisioning a host failed: {e}",
                            act.name, msg.request.entity
                        )));
                    }
                }
            }
        }));
    }

    fn add_host(&mut self, new: NewHost, docker: bollard::Docker, ctx: &mut Context<Self>) {
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
        state.labels = new.labels;
        // Not placeable until its capacity is known (the first ping).
        state.available = false;
        self.hosts.push(PoolHost {
            state,
            addr,
            address: new.address,
            provisioned: true,
            last_ok: Instant::now(),
            on_fire: false,
            decommissioning: false,
            empty_since: Some(Instant::now()),
            members: HashMap::new(),
            cpu_sampling: false,
            pinging: false,
            pinged_once: false,
        });
        self.hosts.sort_by(|a, b| a.state.name.cmp(&b.state.name));
        let i = self
            .hosts
            .iter()
            .position(|h| h.state.name == new.name)
            .unwrap_or(0);
        self.ping(i, ctx);
    }

    /// Retries the queued placements (after a host came up or a slot freed).
    fn drain_waiting(&mut self, ctx: &mut Context<Self>) {
        if !self.ready() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for (msg, tx) in waiting {
            match self.try_place(&msg) {
                Ok(i) => self.answer(i, msg, tx, ctx),
                Err(summary) => self.no_fit(msg, tx, summary, ctx),
            }
        }
    }

    fn no_fit(
        &mut self,
        msg: Place,
        tx: tokio::sync::oneshot::Sender<Result<PlacedOn, String>>,
        summary: String,
        ctx: &mut Context<Self>,
    ) {
        if msg.avoid.is_none() && (self.can_grow() || self.provisioning) {
            self.waiting.push_back((msg, tx));
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
            let first = !act.hosts[i].pinged_once;
            act.hosts[i].pinged_once = true;
            match cap {
                Some(c) => {
                    let h = &mut act.hosts[i];
                    h.last_ok = Instant::now();
                    h.state.cpus = c.cpus as f64;
                    h.state.memory_bytes = c.memory_bytes.max(0) as u64;
                    let was_down = !h.state.available;
                    if !h.decommissioning {
                        h.state.available = true;
                    }
                    if h.on_fire {
                        h.on_fire = false;
                        act.event(format!("host {name} answers again"));
                    }
                    if was_down {
                        act.drain_waiting(ctx);
                    }
                }
                None => {
                    let h = &mut act.hosts[i];
                    if !h.on_fire && h.last_ok.elapsed() >= act.cfg.on_fire_after {
                        act.host_failed(i);
                    }
                    if first && act.ready() {
                        act.drain_waiting(ctx);
                    }
                }
            }
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

    fn sample_cpu(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.hosts.len() {
            let h = &mut self.hosts[i];
            if h.cpu_sampling || h.on_fire || h.decommissioning {
                continue;
            }
            h.cpu_sampling = true;
            let name = h.state.name.clone();
            let addr = h.addr.clone();
            let fut = async move {
                let docker = addr.send(GetClient).await.ok()?;
                tokio::time::timeout(Duration::from_secs(5), engines::cpu_cores_in_use(&docker))
                    .await
                    .ok()?
                    .ok()
            };
            ctx.spawn(fut.into_actor(self).map(move |r, act, _| {
                let Some(h) = act.hosts.iter_mut().find(|h| h.state.name == name) else {
                    return;
                };
                h.cpu_sampling = false;
                if let Some((cores, unmanaged)) = r {
                    if h.state.cpus > 0.0 {
                        h.state.cpu_usage = (cores / h.state.cpus).clamp(0.0, 1.0);
                    }
                    // Containers drover does not manage count against
                    // max-containers too.
                    h.state.other_containers = unmanaged;
                }
            }));
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.hosts.len() {
            self.ping(i, ctx);
        }
        if self.last_cpu.elapsed() >= CPU_EVERY {
            self.last_cpu = Instant::now();
            self.sample_cpu(ctx);
        }
        self.rebalance();
        let hr = self.headroom();
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
        match hr.verdict {
            HeadroomVerdict::Hot => {
                let since = *self.hot_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.cfg.hot_window && !self.provisioning && self.can_grow() {
                    self.hot_since = None;
                    self.provision(
                        &format!(
                            "pool hot: {} free slots, headroom wants {}",
                            hr.free, hr.wanted
                        ),
                        ctx,
                    );
                }
            }
            _ => self.hot_since = None,
        }
        // Empty provisioned hosts beyond what the pool needs go after the
        // cold window; never one with containers, never below min_hosts.
        let now = Instant::now();
        for h in self.hosts.iter_mut() {
            if h.state.placed.is_empty() {
                h.empty_since.get_or_insert(now);
            } else {
                h.empty_since = None;
            }
        }
        if hr.verdict == HeadroomVerdict::Cold
            && self.live_hosts() > self.cfg.min_hosts
            && self.waiting.is_empty()
            && !self.provisioning
        {
            let candidate = self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| {
                    h.provisioned
                        && !h.decommissioning
                        && h.state.placed.is_empty()
                        && h.empty_since
                            .is_some_and(|t| t.elapsed() >= self.cfg.cold_window)
                })
                .map(|(i, _)| i)
                .next_back();
            if let Some(i) = candidate {
                self.decommission(i, ctx);
            }
        }
    }

    fn decommission(&mut self, i: usize, ctx: &mut Context<Self>) {
        let h = &mut self.hosts[i];
        h.decommissioning = true;
        h.state.available = false;
        let name = h.state.name.clone();
        self.event(format!(
            "decommissioning host {name}: empty for the cold window"
        ));
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
                    act.hosts.retain(|h| h.state.name != name);
                }),
        );
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
        for i in 0..self.hosts.len() {
            self.ping(i, ctx);
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Provisioned hosts are machines drover made: a stopping drover
        // leaves them (and their containers) running for the next start.
    }
}

impl Handler<Place> for HostPool {
    type Result = ResponseFuture<Result<PlacedOn, String>>;
    fn handle(&mut self, msg: Place, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Placements queue behind a provisioning in progress, in order,
        // and until every host's capacity is known.
        if !self.waiting.is_empty() || !self.ready() {
            self.waiting.push_back((msg, tx));
        } else {
            match self.try_place(&msg) {
                Ok(i) => self.answer(i, msg, tx, ctx),
                Err(summary) => self.no_fit(msg, tx, summary, ctx),
            }
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the host pool stopped".to_string()))
        })
    }
}

impl Handler<Release> for HostPool {
    type Result = ();
    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        for h in self.hosts.iter_mut() {
            if msg.host.as_ref().is_some_and(|n| n != &h.state.name) {
                continue;
            }
            if let Some(m) = h.members.remove(&(msg.app.clone(), msg.entity.clone())) {
                h.state
                    .unplace(&msg.app, &msg.entity, m.cpus, m.memory_bytes);
            }
        }
    }
}

impl Handler<GetPool> for HostPool {
    type Result = MessageResult<GetPool>;
    fn handle(&mut self, _: GetPool, _: &mut Context<Self>) -> Self::Result {
        let hosts = self
            .hosts
            .iter()
            .map(|h| PoolHostView {
                name: h.state.name.clone(),
                address: h.address.clone(),
                state: if h.decommissioning {
                    "decommissioning"
                } else if h.on_fire {
                    "on-fire"
                } else {
                    "running"
                }
                .into(),
                provisioned: h.provisioned,
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
        MessageResult(PoolView {
            location: self.name.clone(),
            hosts,
            headroom: self.headroom(),
            provisioning: self.provisioning,
            waiting: self.waiting.len(),
            decisions: self.decisions.iter().cloned().collect(),
            events: self.events.iter().cloned().collect(),
        })
    }
}
