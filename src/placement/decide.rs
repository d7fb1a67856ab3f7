//! The placement decision: a pure function over (hosts, request, rules).
//!
//! It runs for every container drover places, so it is written to be cheap
//! at a thousand hosts: one pass of filters (cheapest first, the first
//! rejection wins), one sort of the survivors, and verdicts kept as small
//! values that are only turned into text when someone reads them.

use std::collections::BTreeMap;

use super::rules::{Affinity, Rules};
use crate::blueprint::PlacementStrategy;

/// A container already on a host, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub app: String,
    pub entity: String,
    /// The cluster it is a member of, if any.
    pub group: Option<String>,
}

/// What placement knows of one host (kept by the host pool from the host
/// actors' sensors).
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// The host's name in its pool (`local`, `pool-2`): unique, and the
    /// order of names breaks ties between equal hosts.
    pub name: String,
    /// The engine's own hostname (`docker info`).
    pub hostname: String,
    /// Operator labels from `drover.yaml`.
    pub labels: BTreeMap<String, String>,
    /// False while the engine does not answer (on-fire), is being
    /// provisioned or is being decommissioned.
    pub available: bool,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Sums of the `resources` of the containers placed here.
    pub reserved_cpus: f64,
    pub reserved_memory_bytes: u64,
    /// Fraction of all the host's CPUs in use, 0 to 1.
    pub cpu_usage: f64,
    /// Containers drover placed here, indexed.
    pub placed: Placements,
    /// Other containers on the engine (not drover's): they count against
    /// max-containers.
    pub other_containers: u32,
}

impl HostState {
    pub fn new(name: impl Into<String>, cpus: f64, memory_bytes: u64) -> Self {
        let name = name.into();
        HostState {
            hostname: name.clone(),
            name,
            labels: BTreeMap::new(),
            available: true,
            cpus,
            memory_bytes,
            reserved_cpus: 0.0,
            reserved_memory_bytes: 0,
            cpu_usage: 0.0,
            placed: Placements::default(),
            other_containers: 0,
        }
    }

    pub fn containers(&self) -> u32 {
        self.placed.len() as u32 + self.other_containers
    }

    /// Records a placement (what the pool does when it answers a request).
    /// Placed here again, it is counted once (the pool releases its old
    /// reservation first).
    pub fn place(&mut self, req: &Request) {
        self.reserved_cpus += req.cpus;
        self.reserved_memory_bytes += req.memory_bytes;
        self.placed.insert(req);
    }

    /// Forgets a container (removed, or moved elsewhere).
    pub fn unplace(&mut self, app: &str, entity: &str, cpus: f64, memory_bytes: u64) -> bool {
        if !self.placed.remove(app, entity) {
            return false;
        }
        self.reserved_cpus = (self.reserved_cpus - cpus).max(0.0);
        self.reserved_memory_bytes = self.reserved_memory_bytes.saturating_sub(memory_bytes);
        true
    }

    /// Containers here of the request's own entity (its cluster, for a member).
    fn same_entity_count(&self, req: &Request) -> u32 {
        self.placed.same_entity(req)
    }
}

/// The placement policy decides over shared snapshots of the hosts
/// (`Arc<HostState>`, copied only where a decision changes one) as well as
/// over plain lists (tests, benches).
impl AsRef<HostState> for HostState {
    fn as_ref(&self) -> &HostState {
        self
    }
}

/// A container to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub app: String,
    pub entity: String,
    /// The cluster, for a member.
    pub group: Option<String>,
    pub cpus: f64,
    pub memory_bytes: u64,
}

impl Request {
    pub fn new(app: impl Into<String>, entity: impl Into<String>) -> Self {
        Request {
            app: app.into(),
            entity: entity.into(),
            group: None,
            cpus: 0.0,
            memory_bytes: 0,
        }
    }

    pub fn member_of(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    pub fn resources(mut self, cpus: f64, memory_bytes: u64) -> Self {
        self.cpus = cpus;
        self.memory_bytes = memory_bytes;
        self
    }
}

/// Why a host was not chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    Unavailable,
    Hostname,
    /// The first required label the host lacks (index into the rules' labels).
    Label(usize),
    MaxContainers {
        limit: u32,
        has: u32,
    },
    MaxCpuUsage {
        limit: f64,
        usage: f64,
    },
    Cpus {
        want: f64,
        free: f64,
    },
    Memory {
        want: u64,
        free: u64,
    },
    /// The rule (index into the rules' affinity list) the host breaks.
    Affinity(usize),
}

/// One host's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum HostVerdict {
    Rejected(Rejection),
    /// Passed every filter, with its score (lower is better; see
    /// [`Decision::ranks`]).
    Ranked {
        score: (f64, f64),
    },
}

/// A placement decision with every host's verdict, in host order.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Index of the chosen host, if any fits.
    pub chosen: Option<usize>,
    pub verdicts: Vec<HostVerdict>,
}

/// Chooses a host for `req`. Hosts should be in name order: equal hosts
/// are told apart by their position.
pub fn decide<H: AsRef<HostState>>(hosts: &[H], req: &Request, rules: &Rules) -> Decision {
    // A positive affinity to something that runs nowhere yet is satisfied
    // by every host (Kubernetes' rule for pod affinity to the first pod):
    // otherwise the first member of a cluster with `same: entity` could
    // never be placed.
    let present: Vec<bool> = rules
        .affinity
        .iter()
        .map(|a| !a.negated() && hosts.iter().any(|h| affinity_holds(h.as_ref(), req, a)))
        .collect();
    let mut verdicts = Vec::with_capacity(hosts.len());
    // The best host is a running minimum; the full ranking is only needed
    // when someone reads the explanation ([`Decision::ranks`]), so no sort
    // on the hot path.
    let mut best: Option<((f64, f64), usize)> = None;
    for (i, h) in hosts.iter().enumerate() {
        let h = h.as_ref();
        match filter(h, req, rules, &present) {
            Some(r) => verdicts.push(HostVerdict::Rejected(r)),
            None => {
                let s = score(h, req, rules.strategy);
                if best.is_none_or(|(b, _)| better(s, b)) {
                    best = Some((s, i));
                }
                verdicts.push(HostVerdict::Ranked { score: s });
            }
        }
    }
    Decision {
        chosen: best.map(|b| b.1),
        verdicts,
    }
}

/// Strictly better (lower) score; equal scores keep the earlier host.
fn better(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)) == std::cmp::Ordering::Less
}

fn affinity_holds(h: &HostState, req: &Request, a: &Affinity) -> bool {
    match a {
        Affinity::Application { .. } => h.placed.runs_app(&req.app),
        Affinity::SameEntity { .. } => h.placed.same_entity(req) > 0,
        Affinity::Entity { entity, .. } => h.placed.runs_entity(&req.app, entity),
    }
}

fn filter(h: &HostState, req: &Request, rules: &Rules, present: &[bool]) -> Option<Rejection> {
    if !h.available {
        return Some(Rejection::Unavailable);
    }
    if let Some(want) = &rules.hostname {
        if &h.name != want && &h.hostname != want {
            return Some(Rejection::Hostname);
        }
    }
    for (k, (key, value)) in rules.labels.iter().enumerate() {
        if h.labels.get(key) != Some(value) {
            return Some(Rejection::Label(k));
        }
    }
    let has = h.containers();
    if has >= rules.max_containers {
        return Some(Rejection::MaxContainers {
            limit: rules.max_containers,
            has,
        });
    }
    if let Some(limit) = rules.max_cpu_usage {
        if h.cpu_usage > limit {
            return Some(Rejection::MaxCpuUsage {
                limit,
                usage: h.cpu_usage,
            });
        }
    }
    if rules.reservation_fit {
        let free = h.cpus - h.reserved_cpus;
        // A little slack so that 0.1 + 0.2 CPUs fit in 0.3.
        if req.cpus > 0.0 && req.cpus > free + 1e-9 {
            return Some(Rejection::Cpus {
                want: req.cpus,
                free: free.max(0.0),
            });
        }
        let free = h.memory_bytes.saturating_sub(h.reserved_memory_bytes);
        if req.memory_bytes > free {
            return Some(Rejection::Memory {
                want: req.memory_bytes,
                free,
            });
        }
    }
    for (k, a) in rules.affinity.iter().enumerate() {
        let holds = affinity_holds(h, req, a);
        let ok = if a.negated() {
            !holds
        } else {
            holds || !present[k]
        };
        if !ok {
            return Some(Rejection::Affinity(k));
        }
    }
    None
}

/// Lower is better.
fn score(h: &HostState, req: &Request, strategy: PlacementStrategy) -> (f64, f64) {
    let n = h.containers() as f64;
    match strategy {
        PlacementStrategy::DepthFirst => (-n, 0.0),
        PlacementStrategy::BreadthFirst => (h.same_entity_count(req) as f64, n),
        PlacementStrategy::LeastContainers => (n, 0.0),
        PlacementStrategy::LowestCpuUsage => (h.cpu_usage, n),
    }
}

mod explain;
mod placed;

pub use placed::Placements;

#[cfg(test)]
mod tests;
