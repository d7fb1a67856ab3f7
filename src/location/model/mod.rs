//! The host pool's bookkeeping, as a pure model.
//!
//! The host pool actor (`location::pool`) moves messages and does the
//! I/O (pings, provisioning, decommissioning, networks, images); every
//! decision about what it knows lives here, over plain values: which
//! hosts there are and what is reserved on each, which are on fire,
//! cordoned or going, how many hosts the pool needs, which host may go,
//! and the number of the next host it makes. No actors, Docker or clock:
//! time comes in as an argument (time since the pool's epoch), so every
//! rule is tested without an engine.
//!
//! - [`host`]: one host ([`PoolHost`]) and its phase;
//! - [`queue`]: the placement queue's rules ([`PlacementQueue`]).

pub mod host;
pub mod queue;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::config::{LocationConfig, ProvisionerKind};
use crate::placement::{self, Headroom, HeadroomSpec, HostState, Request, Rules};
use crate::store::{LocationState, SavedHost};

pub use host::{HostPhase, Member, MemberKey, PoolHost};
pub use queue::PlacementQueue;

/// What bounds a pool, from its `drover.yaml` location.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub min_hosts: u32,
    pub max_hosts: u32,
    /// The provisioner makes hosts (it is not `static`).
    pub can_provision: bool,
    /// `max_containers` of the location's placement defaults.
    pub max_per_host: u32,
    pub headroom: HeadroomSpec,
    pub on_fire_after: Duration,
    /// `silent_hold_percent`: see [`PoolModel::pinged`].
    pub silent_hold_percent: u32,
    pub cold_window: Duration,
}

impl Limits {
    pub fn new(cfg: &LocationConfig) -> Self {
        Limits {
            min_hosts: cfg.min_hosts,
            max_hosts: cfg.max_hosts,
            can_provision: cfg.provisioner.kind != ProvisionerKind::Static,
            max_per_host: Rules::resolve(&cfg.placement, &[]).max_containers,
            headroom: cfg.headroom,
            on_fire_after: cfg.on_fire_after,
            silent_hold_percent: cfg.silent_hold_percent,
            cold_window: cfg.cold_window,
        }
    }
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostOpError {
    #[error("location {location} has no host `{host}`; its hosts: {}", known.join(", "))]
    NoSuchHost {
        location: String,
        host: String,
        known: Vec<String>,
    },
}

/// Why the pool cannot take the size its autoscaler asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("insufficient capacity: {want} hosts wanted, location {location} has at most {max_hosts} ({})",
        if *.can_provision { "max_hosts" } else { "its provisioner is `static`" })]
    Insufficient {
        want: u32,
        location: String,
        max_hosts: u32,
        can_provision: bool,
    },
    #[error("no empty host drover provisioned can be decommissioned now")]
    NothingToRemove,
}

/// What a resize asks of the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resize {
    /// Already there, or shrunk to `size` (the hosts in `going` are
    /// marked decommissioning: destroy them).
    Done { size: u32, going: Vec<String> },
    /// Growing: hosts are provisioned one at a time ([`PoolModel::grow_step`]).
    Growing,
}

/// The next step towards the autoscaler's wanted size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowStep {
    /// Nothing asked, or a host is being provisioned.
    Wait,
    /// There: answer the resize with this size.
    Reached(u32),
    /// Provision a host towards `want`.
    Provision { want: u32 },
    /// `want` cannot be reached (max_hosts, or a static provisioner):
    /// see [`PoolModel::insufficient`].
    Refused { want: u32 },
}

/// Are so many hosts silent at once that their containers are held
/// rather than moved? Only in pools of three hosts or more: with one or
/// two, one host down is already half the pool, and moving is the point.
pub fn held(silent: usize, of: usize, hold_percent: u32) -> bool {
    of >= 3 && silent * 100 >= of * hold_percent as usize
}

/// What a ping's answer changed.
#[derive(Debug, PartialEq)]
pub enum Pinged<M> {
    /// The host is gone (decommissioned meanwhile).
    Unknown,
    Answered,
    /// It answers after being on fire.
    AnswersAgain,
    /// Silent, but not for `on_fire_after` yet (or on fire already).
    Silent,
    /// Silent for `on_fire_after`, but so are `silent_hold_percent` of the
    /// pool's hosts: it takes nothing new, and its containers stay (the
    /// first such host of a hold says `first`).
    Held {
        silent: usize,
        of: usize,
        first: bool,
    },
    /// Silent for `on_fire_after`: now on fire; its containers (with
    /// their reservations freed) must start elsewhere.
    OnFire(Vec<(MemberKey, Member<M>)>),
}

/// A host's capacity, as its engine reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub cpus: f64,
    pub memory_bytes: u64,
}

#[derive(Debug)]
pub struct PoolModel<H, M> {
    name: String,
    limits: Limits,
    hosts: Vec<PoolHost<H, M>>,
    /// The next provisioned host's number: never one in use or used.
    next_index: u32,
    provisioning: bool,
    /// Containers found running on the hosts at start: (app, entity) →
    /// host. Their entities' first placement adopts them there.
    found: HashMap<MemberKey, String>,
    /// Where each container's reservation is: (app, entity) → the hosts
    /// holding one (two during a move). A release that does not name its
    /// host looks there instead of in every host's members: at 1,000
    /// hosts that was 1,000 hashed lookups per release, 18% of the actor
    /// thread while 100,000 containers were destroyed (issue 18).
    reserved_on: HashMap<MemberKey, Vec<String>>,
    /// Hosts the autoscaler asked for.
    want_hosts: Option<u32>,
    /// Silent hosts are held (see [`held`]): told once per hold.
    holding: bool,
}

/// `host` no longer holds a reservation of `key` (see
/// `PoolModel::reserved_on`).
fn unindex(reserved_on: &mut HashMap<MemberKey, Vec<String>>, key: &MemberKey, host: &str) {
    if let Some(on) = reserved_on.get_mut(key) {
        on.retain(|n| n != host);
        if on.is_empty() {
            reserved_on.remove(key);
        }
    }
}

impl<H, M> PoolModel<H, M> {
    /// The hosts holding a reservation of `key` (two during a move).
    pub fn placed_on(&self, key: &MemberKey) -> &[String] {
        self.reserved_on.get(key).map_or(&[], Vec::as_slice)
    }

    /// A pool of `hosts` (engines it starts with, connected), numbering new
    /// hosts past every number in use and `saved_next` (the stored next
    /// number), with the `cordoned` hosts an operator drained.
    pub fn new(
        name: impl Into<String>,
        limits: Limits,
        hosts: Vec<PoolHost<H, M>>,
        saved_next: u32,
        cordoned: &[String],
    ) -> Self {
        let next_index = hosts
            .iter()
            .filter_map(|h| h.provisioned.as_ref().map(|p| p.index + 1))
            .chain([hosts.len() as u32 + 1, saved_next])
            .max()
            .unwrap_or(1);
        let mut hosts = hosts;
        for h in &mut hosts {
            h.cordoned = cordoned.contains(&h.state.name);
        }
        PoolModel {
            name: name.into(),
            limits,
            hosts,
            next_index,
            provisioning: false,
            found: HashMap::new(),
            reserved_on: HashMap::new(),
            want_hosts: None,
            holding: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn hosts(&self) -> &[PoolHost<H, M>] {
        &self.hosts
    }

    pub fn host(&self, i: usize) -> &PoolHost<H, M> {
        &self.hosts[i]
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.state.name == name)
    }

    pub fn next_index(&self) -> u32 {
        self.next_index
    }

    pub fn is_provisioning(&self) -> bool {
        self.provisioning
    }

    /// What the placement policy decides over.
    pub fn states(&self) -> Vec<Arc<HostState>> {
        self.hosts.iter().map(|h| h.state.clone()).collect()
    }

    /// Every host has answered (or failed) its first ping and had its
    /// containers listed: placements wait until then.
    pub fn ready(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| (h.pinged_once && h.listed) || h.decommissioning)
    }

    /// Hosts not being decommissioned (on fire or not): what `max_hosts`
    /// bounds.
    pub fn live_hosts(&self) -> u32 {
        self.hosts.iter().filter(|h| !h.decommissioning).count() as u32
    }

    /// Hosts that can take containers: the pool's size to its autoscaler.
    pub fn running_hosts(&self) -> u32 {
        self.hosts.iter().filter(|h| h.is_running()).count() as u32
    }

    pub fn is_cordoned(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|h| h.state.name == host && h.cordoned)
    }

    pub fn headroom(&self) -> Headroom {
        let running = self.hosts.iter().filter(|h| h.is_running());
        // A drained host's slots are not capacity, but its containers,
        // while they move, still count as used.
        let used: u32 = running.clone().map(|h| h.state.containers()).sum();
        let open = running.filter(|h| !h.cordoned).count() as u32;
        placement::headroom(open, self.limits.max_per_host, used, &self.limits.headroom)
    }

    /// The hosts the pool needs: what its containers and headroom need,
    /// but never fewer than the hosts that cannot go (static ones, and
    /// those with containers). Spread containers keep every host busy:
    /// the pool is then not cold, rather than cold with nothing to remove
    /// (which would make its autoscaler ask for a shrink every second).
    pub fn hosts_needed(&self, hr: &Headroom) -> u32 {
        let staying = self.hosts.iter().filter(|h| h.must_stay()).count() as u32;
        placement::headroom::hosts_needed(hr, staying)
    }

    /// `pool.demand`: hosts needed per running host (1.0 is exactly right).
    pub fn demand(&self, hr: &Headroom) -> f64 {
        self.hosts_needed(hr) as f64 / self.running_hosts().max(1) as f64
    }

    pub fn can_grow(&self) -> bool {
        self.limits.can_provision && self.live_hosts() < self.limits.max_hosts
    }

    /// Starts provisioning a host if none is under way and the pool may
    /// grow: its number (never used before) and name.
    pub fn begin_provisioning(&mut self) -> Option<(u32, String)> {
        if self.provisioning || !self.can_grow() {
            return None;
        }
        self.provisioning = true;
        let index = self.next_index;
        self.next_index += 1;
        Some((index, format!("{}-{index}", self.name)))
    }

    /// The host being provisioned is up: it joins the pool (in name
    /// order). Returns its position.
    pub fn provisioned(&mut self, mut host: PoolHost<H, M>) -> usize {
        self.provisioning = false;
        // New: nothing runs there yet.
        host.listed = true;
        let name = host.state.name.clone();
        self.hosts.retain(|h| h.state.name != name);
        let at = self
            .hosts
            .partition_point(|h| h.state.name.as_str() < name.as_str());
        self.hosts.insert(at, host);
        at
    }

    /// Provisioning failed: the autoscaler's wish is dropped (it asks
    /// again if it still wants the hosts).
    pub fn provisioning_failed(&mut self) {
        self.provisioning = false;
        self.want_hosts = None;
    }

    /// A container of drover's found running on `host` at start.
    pub fn found(&mut self, key: MemberKey, host: &str) {
        self.found.insert(key, host.to_string());
    }

    pub fn listed(&mut self, host: &str) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.state.name == host) {
            h.listed = true;
        }
    }

    /// Where a container found at start is adopted (never on a move: that
    /// one leaves its host on purpose). Forgets the finding either way.
    pub fn adopt(&mut self, key: &MemberKey, moving: bool) -> Option<usize> {
        if moving {
            return None;
        }
        let host = self.found.remove(key)?;
        self.hosts
            .iter()
            .position(|h| h.state.name == host && h.is_running())
    }

    /// Reserves a container's resources on host `i`. Placed there again
    /// (a retry), it replaces its old reservation rather than adding one.
    pub fn reserve(&mut self, i: usize, req: &Request, contact: M) {
        let h = &mut self.hosts[i];
        let key = (req.app.clone(), req.entity.clone());
        if let Some(old) = h.members.remove(&key) {
            h.state_mut()
                .unplace(&req.app, &req.entity, old.cpus, old.memory_bytes);
        }
        h.state_mut().place(req);
        let on = self.reserved_on.entry(key.clone()).or_default();
        if !on.iter().any(|n| *n == h.state.name) {
            on.push(h.state.name.clone());
        }
        h.members.insert(
            key,
            Member {
                cpus: req.cpus,
                memory_bytes: req.memory_bytes,
                contact,
            },
        );
    }

    /// The container is gone: frees its reservation on `host` (a move's
    /// old host), or wherever it is.
    pub fn release(&mut self, key: &MemberKey, host: Option<&str>) {
        let hosts = match host {
            Some(n) => {
                unindex(&mut self.reserved_on, key, n);
                vec![n.to_string()]
            }
            None => {
                self.found.remove(key);
                self.reserved_on.remove(key).unwrap_or_default()
            }
        };
        for name in hosts {
            let Some(h) = self.hosts.iter_mut().find(|h| h.state.name == name) else {
                continue;
            };
            if let Some(m) = h.members.remove(key) {
                h.state_mut()
                    .unplace(&key.0, &key.1, m.cpus, m.memory_bytes);
            }
        }
    }

    /// A host's sensors: CPU use, and containers drover does not manage
    /// (they count against max-containers too). False if not a host of the
    /// pool's (or one going).
    pub fn sensed(&mut self, host: &str, cpu_usage: f64, unmanaged: u32) -> bool {
        match self
            .hosts
            .iter_mut()
            .find(|h| h.state.name == host && !h.decommissioning)
        {
            Some(h) => {
                h.state_mut().cpu_usage = cpu_usage;
                h.state_mut().other_containers = unmanaged;
                true
            }
            None => false,
        }
    }

    /// Starts a ping of host `i` unless one is out or it is going.
    pub fn begin_ping(&mut self, i: usize) -> bool {
        let h = &mut self.hosts[i];
        if h.pinging || h.decommissioning {
            return false;
        }
        h.pinging = true;
        true
    }

    /// A ping's answer (`None`: no answer in time) at `now`.
    pub fn pinged(&mut self, host: &str, answer: Option<Capacity>, now: Duration) -> Pinged<M> {
        let Some(i) = self.position(host) else {
            return Pinged::Unknown;
        };
        let h = &mut self.hosts[i];
        h.pinging = false;
        h.pinged_once = true;
        match answer {
            Some(c) => {
                h.last_ok = now;
                if self.holding {
                    let (silent, of) = self.silent_hosts(now);
                    self.holding = held(silent, of, self.limits.silent_hold_percent);
                }
                let h = &mut self.hosts[i];
                h.state_mut().cpus = c.cpus;
                h.state_mut().memory_bytes = c.memory_bytes;
                let again = std::mem::replace(&mut h.on_fire, false);
                h.state_mut().available = h.placeable();
                if again {
                    Pinged::AnswersAgain
                } else {
                    Pinged::Answered
                }
            }
            None if !h.on_fire && now.saturating_sub(h.last_ok) >= self.limits.on_fire_after => {
                let (silent, of) = self.silent_hosts(now);
                if held(silent, of, self.limits.silent_hold_percent) {
                    let h = &mut self.hosts[i];
                    h.state_mut().available = false;
                    let first = !std::mem::replace(&mut self.holding, true);
                    Pinged::Held { silent, of, first }
                } else {
                    self.holding = false;
                    Pinged::OnFire(self.host_failed(i))
                }
            }
            None => Pinged::Silent,
        }
    }

    /// (hosts silent for `on_fire_after` or on fire, hosts that count): a
    /// host not pinged yet or going counts in neither.
    fn silent_hosts(&self, now: Duration) -> (usize, usize) {
        let counted = self
            .hosts
            .iter()
            .filter(|h| h.pinged_once && !h.decommissioning);
        let silent = counted
            .clone()
            .filter(|h| h.on_fire || now.saturating_sub(h.last_ok) >= self.limits.on_fire_after)
            .count();
        (silent, counted.count())
    }

    /// A host stopped answering: it is on fire, takes nothing, and holds
    /// nothing; returns its containers (to start elsewhere).
    fn host_failed(&mut self, i: usize) -> Vec<(MemberKey, Member<M>)> {
        let h = &mut self.hosts[i];
        h.on_fire = true;
        h.state_mut().available = false;
        let members: Vec<_> = h.members.drain().collect();
        for (key, _) in &members {
            unindex(&mut self.reserved_on, key, &h.state.name);
        }
        h.state_mut().placed.clear();
        h.state_mut().reserved_cpus = 0.0;
        h.state_mut().reserved_memory_bytes = 0;
        let name = h.state.name.clone();
        self.found.retain(|_, host| host != &name);
        members
    }

    /// Provisioned hosts on fire for the cold window after their grace
    /// period: given back to their provisioner (their containers run
    /// elsewhere already, and they would count against `max_hosts`
    /// forever). A static host is the operator's: it stays, on fire, until
    /// it answers again.
    pub fn dead_hosts(&self, now: Duration) -> Vec<String> {
        let limit = self.limits.on_fire_after + self.limits.cold_window;
        self.hosts
            .iter()
            .filter(|h| {
                h.on_fire
                    && !h.decommissioning
                    && h.provisioned.is_some()
                    && now.saturating_sub(h.last_ok) >= limit
            })
            .map(|h| h.state.name.clone())
            .collect()
    }

    /// The host to decommission next when the pool shrinks: a drained one
    /// first, then the newest; only [`may_go`](PoolHost::may_go) hosts.
    pub fn choose_to_go(&self) -> Option<usize> {
        self.hosts
            .iter()
            .rposition(|h| h.may_go() && h.cordoned)
            .or_else(|| self.hosts.iter().rposition(PoolHost::may_go))
    }

    /// Marks a host as going: it takes nothing and no longer counts.
    /// Returns false if there is no such host.
    pub fn decommission(&mut self, host: &str) -> bool {
        let Some(h) = self.hosts.iter_mut().find(|h| h.state.name == host) else {
            return false;
        };
        h.decommissioning = true;
        h.state_mut().available = false;
        true
    }

    /// A decommissioned host is gone.
    pub fn remove(&mut self, host: &str) -> Option<PoolHost<H, M>> {
        let i = self.position(host)?;
        Some(self.hosts.remove(i))
    }

    /// The autoscaler's `resize`: grow by provisioning (see
    /// [`grow_step`](Self::grow_step)), shrink by marking empty provisioned
    /// hosts as going (never one with containers, never one drover did not
    /// make, never below `min_hosts`), and never while placements wait or
    /// a host is being provisioned.
    pub fn resize(&mut self, size: u32, placements_waiting: bool) -> Result<Resize, ResizeError> {
        let running = self.running_hosts();
        if size > running {
            if size > self.limits.max_hosts || !self.limits.can_provision {
                return Err(self.insufficient(size));
            }
            self.want_hosts = Some(size);
            return Ok(Resize::Growing);
        }
        let mut going = Vec::new();
        if size < running {
            let floor = size.max(self.limits.min_hosts);
            while self.running_hosts() > floor && !placements_waiting && !self.provisioning {
                let Some(i) = self.choose_to_go() else { break };
                let name = self.hosts[i].state.name.clone();
                self.decommission(&name);
                going.push(name);
            }
            if going.is_empty() {
                return Err(ResizeError::NothingToRemove);
            }
        }
        // The answer carries the size reached: the autoscaler takes it, so
        // a shrink by fewer than asked is never believed whole.
        Ok(Resize::Done {
            size: self.running_hosts(),
            going,
        })
    }

    /// The next step towards the autoscaler's wanted size, one host at a
    /// time. Reaching it, or finding it out of reach, drops the wish.
    pub fn grow_step(&mut self) -> GrowStep {
        let Some(want) = self.want_hosts else {
            return GrowStep::Wait;
        };
        if self.running_hosts() >= want {
            self.want_hosts = None;
            return GrowStep::Reached(self.running_hosts());
        }
        if self.provisioning {
            GrowStep::Wait
        } else if self.can_grow() {
            GrowStep::Provision { want }
        } else {
            self.want_hosts = None;
            GrowStep::Refused { want }
        }
    }

    pub fn insufficient(&self, want: u32) -> ResizeError {
        ResizeError::Insufficient {
            want,
            location: self.name.clone(),
            max_hosts: self.limits.max_hosts,
            can_provision: self.limits.can_provision,
        }
    }

    /// A placement fit nowhere: may a new host take it? A container
    /// leaving a drained host may need one; a CPU move that finds no
    /// cooler host stays where it is.
    pub fn may_grow_for(&self, avoid: Option<&str>) -> bool {
        let may = avoid.is_none_or(|h| self.is_cordoned(h));
        may && (self.can_grow() || self.provisioning)
    }

    /// An operator's drain or uncordon. Returns the host's position.
    pub fn host_op(&mut self, host: &str, op: HostOpKind) -> Result<usize, HostOpError> {
        let Some(i) = self
            .hosts
            .iter()
            .position(|h| h.state.name == host && !h.decommissioning)
        else {
            return Err(HostOpError::NoSuchHost {
                location: self.name.clone(),
                host: host.to_string(),
                known: self.hosts.iter().map(|h| h.state.name.clone()).collect(),
            });
        };
        let h = &mut self.hosts[i];
        h.cordoned = op == HostOpKind::Drain;
        h.state_mut().available = h.placeable();
        Ok(i)
    }

    /// The containers on drained hosts (answering ones), to tell them to
    /// move: (host, member).
    pub fn drained_members(&self) -> impl Iterator<Item = (&str, &Member<M>)> {
        self.hosts
            .iter()
            .filter(|h| h.cordoned && !h.on_fire)
            .flat_map(|h| h.members.values().map(move |m| (h.state.name.as_str(), m)))
    }

    /// Where an image missing on host `i` may be copied from: every other
    /// answering host.
    pub fn image_sources(&self, i: usize) -> Vec<&H> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && !o.on_fire)
            .map(|(_, o)| &o.handle)
            .collect()
    }

    /// What the store keeps: the provisioned hosts (decommissioning ones
    /// too, until they are gone: a crash mid-way makes the next start
    /// finish the job, never leaves an engine nobody claims), the next
    /// number and the cordoned hosts.
    pub fn saved(&self, placement: serde_json::Value) -> LocationState {
        LocationState {
            next_index: self.next_index,
            hosts: self
                .hosts
                .iter()
                .filter_map(|h| h.provisioned.clone())
                .collect::<Vec<SavedHost>>(),
            placement,
            cordoned: self
                .hosts
                .iter()
                .filter(|h| h.cordoned)
                .map(|h| h.state.name.clone())
                .collect(),
        }
    }
}
