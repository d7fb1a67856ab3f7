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
    /// Containers drover placed here.
    pub placed: Vec<Placed>,
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
            placed: Vec::new(),
            other_containers: 0,
        }
    }

    pub fn containers(&self) -> u32 {
        self.placed.len() as u32 + self.other_containers
    }

    /// Records a placement (what the pool does when it answers a request).
    pub fn place(&mut self, req: &Request) {
        self.reserved_cpus += req.cpus;
        self.reserved_memory_bytes += req.memory_bytes;
        self.placed.push(Placed {
            app: req.app.clone(),
            entity: req.entity.clone(),
            group: req.group.clone(),
        });
    }

    /// Forgets a container (removed, or moved elsewhere).
    pub fn unplace(&mut self, app: &str, entity: &str, cpus: f64, memory_bytes: u64) -> bool {
        let Some(i) = self
            .placed
            .iter()
            .position(|p| p.app == app && p.entity == entity)
        else {
            return false;
        };
        self.placed.swap_remove(i);
        self.reserved_cpus = (self.reserved_cpus - cpus).max(0.0);
        self.reserved_memory_bytes = self.reserved_memory_bytes.saturating_sub(memory_bytes);
        true
    }

    fn runs(&self, app: &str, pred: impl Fn(&Placed) -> bool) -> bool {
        self.placed.iter().any(|p| p.app == app && pred(p))
    }

    /// Containers here of the request's own entity (its cluster, for a member).
    fn same_entity_count(&self, req: &Request) -> u32 {
        self.placed
            .iter()
            .filter(|p| p.app == req.app && req.same_entity(p))
            .count() as u32
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

    /// Is `p` (of the same application) "the same entity" as this request:
    /// a member of the same cluster, or the same container.
    fn same_entity(&self, p: &Placed) -> bool {
        match &self.group {
            Some(g) => p.group.as_deref() == Some(g.as_str()),
            None => p.entity == self.entity,
        }
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
pub fn decide(hosts: &[HostState], req: &Request, rules: &Rules) -> Decision {
    // A positive affinity to something that runs nowhere yet is satisfied
    // by every host (Kubernetes' rule for pod affinity to the first pod):
    // otherwise the first member of a cluster with `same: entity` could
    // never be placed.
    let present: Vec<bool> = rules
        .affinity
        .iter()
        .map(|a| !a.negated() && hosts.iter().any(|h| affinity_holds(h, req, a)))
        .collect();
    let mut verdicts = Vec::with_capacity(hosts.len());
    // The best host is a running minimum; the full ranking is only needed
    // when someone reads the explanation ([`Decision::ranks`]), so no sort
    // on the hot path.
    let mut best: Option<((f64, f64), usize)> = None;
    for (i, h) in hosts.iter().enumerate() {
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
        Affinity::Application { .. } => h.runs(&req.app, |_| true),
        Affinity::SameEntity { .. } => h.runs(&req.app, |p| req.same_entity(p)),
        Affinity::Entity { entity, .. } => h.runs(&req.app, |p| {
            &p.entity == entity || p.group.as_deref() == Some(entity.as_str())
        }),
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

fn rejection_text(r: &Rejection, rules: &Rules) -> String {
    match r {
        Rejection::Unavailable => {
            "unavailable (not answering, or being provisioned or removed)".into()
        }
        Rejection::Hostname => format!(
            "hostname({})",
            rules.hostname.as_deref().unwrap_or_default()
        ),
        Rejection::Label(k) => match rules.labels.iter().nth(*k) {
            Some((key, value)) => format!("label({key}={value})"),
            None => "label".into(),
        },
        Rejection::MaxContainers { limit, has } => {
            format!("max-containers({limit}): runs {has}")
        }
        Rejection::MaxCpuUsage { limit, usage } => {
            format!("max-cpu-usage({limit}): at {:.0}%", usage * 100.0)
        }
        Rejection::Cpus { want, free } => {
            format!("reservation-fit: wants {want} cpus, {free:.2} unreserved")
        }
        Rejection::Memory { want, free } => format!(
            "reservation-fit: wants {} MiB of memory, {} MiB unreserved",
            want >> 20,
            free >> 20
        ),
        Rejection::Affinity(k) => rules
            .affinity
            .get(*k)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "affinity".into()),
    }
}

impl Decision {
    /// The rank of every host that passed the filters (1 is the chosen
    /// host), `None` for rejected hosts.
    pub fn ranks(&self) -> Vec<Option<usize>> {
        let mut ranked: Vec<((f64, f64), usize)> = self
            .verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                HostVerdict::Ranked { score } => Some((*score, i)),
                HostVerdict::Rejected(_) => None,
            })
            .collect();
        ranked.sort_by(|a, b| {
            a.0 .0
                .total_cmp(&b.0 .0)
                .then(a.0 .1.total_cmp(&b.0 .1))
                .then(a.1.cmp(&b.1))
        });
        let mut ranks = vec![None; self.verdicts.len()];
        for (r, (_, i)) in ranked.iter().enumerate() {
            ranks[*i] = Some(r + 1);
        }
        ranks
    }

    /// One line per host: `host-2: rejected by max-containers(8): runs 8`,
    /// `host-1: ranked 1 by breadth-first (0 of this entity, 3 containers)`.
    pub fn explain(&self, hosts: &[HostState], req: &Request, rules: &Rules) -> Vec<String> {
        let ranks = self.ranks();
        self.verdicts
            .iter()
            .zip(hosts)
            .zip(ranks)
            .map(|((v, h), rank)| match v {
                HostVerdict::Rejected(r) => {
                    format!("{}: rejected by {}", h.name, rejection_text(r, rules))
                }
                HostVerdict::Ranked { .. } => {
                    let rank = rank.unwrap_or(0);
                    let why = match rules.strategy {
                        PlacementStrategy::DepthFirst => {
                            format!("{} containers", h.containers())
                        }
                        PlacementStrategy::BreadthFirst => format!(
                            "{} of this entity, {} containers",
                            h.same_entity_count(req),
                            h.containers()
                        ),
                        PlacementStrategy::LeastContainers => {
                            format!("{} containers", h.containers())
                        }
                        PlacementStrategy::LowestCpuUsage => format!(
                            "cpu {:.0}%, {} containers",
                            h.cpu_usage * 100.0,
                            h.containers()
                        ),
                    };
                    format!(
                        "{}: ranked {rank} by {} ({why})",
                        h.name,
                        rules.strategy.as_str()
                    )
                }
            })
            .collect()
    }

    /// The reasons as one line, for errors and activities.
    pub fn summary(&self, hosts: &[HostState], req: &Request, rules: &Rules) -> String {
        let who = format!("{}/{}", req.app, req.entity);
        let lines = self.explain(hosts, req, rules);
        match self.chosen {
            Some(i) => format!("{who} → {}; {}", hosts[i].name, lines.join("; ")),
            None if hosts.is_empty() => format!("no host fits {who}: the location has no hosts"),
            None => format!("no host fits {who}: {}", lines.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::PlacementSpec;
    use proptest::prelude::*;

    fn hosts(n: usize) -> Vec<HostState> {
        (1..=n)
            .map(|i| HostState::new(format!("host-{i}"), 2.0, 4 << 30))
            .collect()
    }

    fn rules(yaml: &str) -> Rules {
        let spec: PlacementSpec = serde_yaml::from_str(yaml).unwrap();
        Rules::resolve(&spec, &[])
    }

    /// Places `n` members of `web` one after the other; returns the hosts'
    /// container counts.
    fn place_members(hs: &mut [HostState], n: usize, r: &Rules) -> Vec<u32> {
        for i in 0..n {
            let req = Request::new("shop", format!("web-{i}")).member_of("web");
            let d = decide(hs, &req, r);
            let c = d.chosen.expect("fits");
            hs[c].place(&req);
        }
        hs.iter().map(|h| h.containers()).collect()
    }

    #[test]
    fn breadth_first_spreads() {
        let mut hs = hosts(3);
        assert_eq!(place_members(&mut hs, 6, &Rules::default()), [2, 2, 2]);
    }

    #[test]
    fn breadth_first_spreads_the_cluster_before_the_host_count() {
        let mut hs = hosts(2);
        // host-1 is busier with another application, but runs no `web`.
        for i in 0..3 {
            hs[0].place(&Request::new("other", format!("x-{i}")));
        }
        hs[1].place(&Request::new("shop", "web-9").member_of("web"));
        let req = Request::new("shop", "web-0").member_of("web");
        let d = decide(&hs, &req, &Rules::default());
        assert_eq!(d.chosen, Some(0));
        let least = rules("{ strategy: least-containers }");
        assert_eq!(decide(&hs, &req, &least).chosen, Some(1));
    }

    #[test]
    fn depth_first_fills_one_host_to_its_max_first() {
        let mut hs = hosts(3);
        let r = rules("{ strategy: depth-first, max_containers: 4 }");
        assert_eq!(place_members(&mut hs, 5, &r), [4, 1, 0]);
    }

    #[test]
    fn lowest_cpu_usage() {
        let mut hs = hosts(3);
        hs[0].cpu_usage = 0.9;
        hs[1].cpu_usage = 0.2;
        hs[2].cpu_usage = 0.5;
        let r = rules("{ strategy: lowest-cpu-usage }");
        let req = Request::new("a", "b");
        let d = decide(&hs, &req, &r);
        assert_eq!(d.chosen, Some(1));
        assert_eq!(
            d.explain(&hs, &req, &r),
            [
                "host-1: ranked 3 by lowest-cpu-usage (cpu 90%, 0 containers)",
                "host-2: ranked 1 by lowest-cpu-usage (cpu 20%, 0 containers)",
                "host-3: ranked 2 by lowest-cpu-usage (cpu 50%, 0 containers)",
            ]
        );
    }

    #[test]
    fn every_filter_explains_itself() {
        let mut hs = hosts(8);
        hs[0].available = false;
        hs[2].labels.insert("zone".into(), "b".into());
        for i in 0..3 {
            hs[3].place(&Request::new("other", format!("x{i}")));
        }
        hs[4].cpu_usage = 0.95;
        hs[5].reserved_cpus = 1.9;
        hs[6].reserved_memory_bytes = (4 << 30) - (10 << 20);
        hs[7].place(&Request::new("shop", "db"));
        for (i, h) in hs.iter_mut().enumerate() {
            if i != 1 {
                h.labels.entry("zone".into()).or_insert_with(|| "a".into());
            }
        }
        let r = rules(
            "{ max_containers: 3, max_cpu_usage: 0.8, labels: { zone: a }, \
             affinity: [{ entity: db, not: true }] }",
        );
        let req = Request::new("shop", "web").resources(0.5, 64 << 20);
        let d = decide(&hs, &req, &r);
        assert_eq!(d.chosen, None);
        assert_eq!(
            d.explain(&hs, &req, &r),
            [
                "host-1: rejected by unavailable (not answering, or being provisioned or removed)",
                "host-2: rejected by label(zone=a)",
                "host-3: rejected by label(zone=a)",
                "host-4: rejected by max-containers(3): runs 3",
                "host-5: rejected by max-cpu-usage(0.8): at 95%",
                "host-6: rejected by reservation-fit: wants 0.5 cpus, 0.10 unreserved",
                "host-7: rejected by reservation-fit: wants 64 MiB of memory, 10 MiB unreserved",
                "host-8: rejected by anti-affinity(entity db)",
            ]
        );
    }

    #[test]
    fn hostname_constraint_matches_name_or_engine_hostname() {
        let mut hs = hosts(3);
        hs[1].hostname = "engine-b".into();
        let req = Request::new("a", "b");
        let d = decide(&hs, &req, &rules("{ hostname: engine-b }"));
        assert_eq!(d.chosen, Some(1));
        assert_eq!(
            d.explain(&hs, &req, &rules("{ hostname: engine-b }"))[0],
            "host-1: rejected by hostname(engine-b)"
        );
        assert_eq!(
            decide(&hs, &req, &rules("{ hostname: host-3 }")).chosen,
            Some(2)
        );
    }

    #[test]
    fn anti_affinity_puts_members_on_different_hosts() {
        let mut hs = hosts(3);
        let r = rules("{ affinity: [{ same: entity, not: true }], strategy: depth-first }");
        assert_eq!(place_members(&mut hs, 3, &r), [1, 1, 1]);
        let req = Request::new("shop", "web-4").member_of("web");
        let d = decide(&hs, &req, &r);
        assert_eq!(d.chosen, None);
        assert_eq!(
            d.summary(&hs, &req, &r),
            "no host fits shop/web-4: host-1: rejected by anti-affinity(same-entity); \
             host-2: rejected by anti-affinity(same-entity); \
             host-3: rejected by anti-affinity(same-entity)"
        );
    }

    #[test]
    fn affinity_to_an_entity_and_to_the_application() {
        let mut hs = hosts(3);
        hs[2].place(&Request::new("shop", "db"));
        hs[0].place(&Request::new("other", "db"));
        let req = Request::new("shop", "web");
        assert_eq!(
            decide(&hs, &req, &rules("{ affinity: [{ entity: db }] }")).chosen,
            Some(2)
        );
        assert_eq!(
            decide(&hs, &req, &rules("{ affinity: [{ same: application }] }")).chosen,
            Some(2)
        );
        // Negated: anywhere but there (breadth-first → the emptiest).
        assert_eq!(
            decide(
                &hs,
                &req,
                &rules("{ affinity: [{ same: application, not: true }] }")
            )
            .chosen,
            Some(1)
        );
        // A named cluster matches its members.
        hs[1].place(&Request::new("shop", "cache-3").member_of("cache"));
        assert_eq!(
            decide(&hs, &req, &rules("{ affinity: [{ entity: cache }] }")).chosen,
            Some(1)
        );
    }

    #[test]
    fn positive_affinity_to_what_runs_nowhere_allows_every_host() {
        let mut hs = hosts(3);
        let r = rules("{ affinity: [{ same: entity }] }");
        // The first member goes anywhere; the rest follow it.
        assert_eq!(place_members(&mut hs, 4, &r), [4, 0, 0]);
    }

    #[test]
    fn reservation_fit_can_be_turned_off() {
        let mut hs = hosts(1);
        hs[0].reserved_cpus = 2.0;
        let req = Request::new("a", "b").resources(1.0, 0);
        assert_eq!(decide(&hs, &req, &Rules::default()).chosen, None);
        assert_eq!(
            decide(&hs, &req, &rules("{ reservation_fit: false }")).chosen,
            Some(0)
        );
    }

    #[test]
    fn no_hosts_is_explained() {
        let req = Request::new("a", "b");
        let d = decide(&[], &req, &Rules::default());
        assert_eq!(
            d.summary(&[], &req, &Rules::default()),
            "no host fits a/b: the location has no hosts"
        );
    }

    #[test]
    fn unplace_forgets_the_reservation() {
        let mut hs = hosts(1);
        let req = Request::new("a", "b").resources(0.5, 1 << 20);
        hs[0].place(&req);
        assert!(hs[0].unplace("a", "b", 0.5, 1 << 20));
        assert!(!hs[0].unplace("a", "b", 0.5, 1 << 20));
        assert_eq!(hs[0].containers(), 0);
        assert_eq!(hs[0].reserved_memory_bytes, 0);
    }

    fn arb_host(i: usize) -> impl Strategy<Value = HostState> {
        (
            any::<bool>(),
            0u32..10,
            0.0f64..1.0,
            0.0f64..4.0,
            prop::collection::vec((0u8..3, 0u8..4, any::<bool>()), 0..10),
        )
            .prop_map(move |(down, other, cpu, reserved, placed)| {
                let mut h = HostState::new(format!("h{i:03}"), 4.0, 8 << 30);
                h.available = !down || i % 3 != 0;
                h.other_containers = other % 3;
                h.cpu_usage = cpu;
                h.reserved_cpus = reserved;
                for (a, e, member) in placed {
                    let mut req = Request::new(format!("app{a}"), format!("e{e}-{i}"));
                    if member {
                        req = req.member_of(format!("e{e}"));
                    }
                    h.place(&req);
                }
                h
            })
    }

    fn arb_hosts() -> impl Strategy<Value = Vec<HostState>> {
        (0usize..12).prop_flat_map(|n| (0..n).map(arb_host).collect::<Vec<_>>())
    }

    fn arb_rules() -> impl Strategy<Value = Rules> {
        (
            prop::sample::select(vec![
                PlacementStrategy::DepthFirst,
                PlacementStrategy::BreadthFirst,
                PlacementStrategy::LeastContainers,
                PlacementStrategy::LowestCpuUsage,
            ]),
            1u32..12,
            prop::option::of(0.1f64..1.0),
            any::<bool>(),
            prop::collection::vec((0u8..3, any::<bool>()), 0..3),
        )
            .prop_map(|(strategy, max, cpu, fit, aff)| Rules {
                strategy,
                max_containers: max,
                max_cpu_usage: cpu,
                reservation_fit: fit,
                affinity: aff
                    .into_iter()
                    .map(|(k, not)| match k {
                        0 => Affinity::Application { not },
                        1 => Affinity::SameEntity { not },
                        _ => Affinity::Entity {
                            entity: "e1".into(),
                            not,
                        },
                    })
                    .collect(),
                ..Rules::default()
            })
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        (0u8..3, 0u8..4, any::<bool>(), 0.0f64..2.0).prop_map(|(a, e, member, cpus)| {
            let mut r = Request::new(format!("app{a}"), format!("e{e}-new")).resources(cpus, 0);
            if member {
                r = r.member_of(format!("e{e}"));
            }
            r
        })
    }

    proptest! {
        #[test]
        fn the_choice_passes_every_filter_and_ranks_first(
            hs in arb_hosts(), req in arb_request(), r in arb_rules()
        ) {
            let d = decide(&hs, &req, &r);
            prop_assert_eq!(d.verdicts.len(), hs.len());
            let ranked: Vec<(usize, usize)> = d.ranks().iter().enumerate().filter_map(|(i, r)| r.map(|r| (i, r))).collect();
            // Ranks are 1..=n, each once.
            let mut ranks: Vec<usize> = ranked.iter().map(|r| r.1).collect();
            ranks.sort();
            prop_assert_eq!(ranks, (1..=ranked.len()).collect::<Vec<_>>());
            match d.chosen {
                None => prop_assert!(ranked.is_empty()),
                Some(c) => {
                    prop_assert!(ranked.contains(&(c, 1)));
                    let h = &hs[c];
                    prop_assert!(h.available);
                    prop_assert!(h.containers() < r.max_containers);
                    if let Some(u) = r.max_cpu_usage { prop_assert!(h.cpu_usage <= u); }
                    if r.reservation_fit && req.cpus > 0.0 {
                        prop_assert!(req.cpus <= h.cpus - h.reserved_cpus + 1e-9);
                    }
                    for a in &r.affinity {
                        if a.negated() { prop_assert!(!affinity_holds(h, &req, a)); }
                    }
                    // No other ranked host scores strictly better.
                    let best = score(h, &req, r.strategy);
                    for (i, _) in &ranked {
                        let s = score(&hs[*i], &req, r.strategy);
                        prop_assert!((s.0, s.1) >= best || (s.0 == best.0 && s.1 == best.1));
                    }
                }
            }
            // Every host has an explanation line naming it.
            let lines = d.explain(&hs, &req, &r);
            for (l, h) in lines.iter().zip(&hs) {
                let prefix = format!("{}: ", h.name);
                prop_assert!(l.starts_with(&prefix));
            }
        }

        #[test]
        fn deterministic(hs in arb_hosts(), req in arb_request(), r in arb_rules()) {
            prop_assert_eq!(decide(&hs, &req, &r), decide(&hs, &req, &r));
        }

        #[test]
        fn breadth_first_keeps_a_cluster_within_one_of_even(n_hosts in 1usize..8, n in 0usize..40) {
            let mut hs = hosts(n_hosts);
            let r = Rules { max_containers: 100, ..Rules::default() };
            let counts = place_members(&mut hs, n, &r);
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "uneven: {:?}", counts);
        }

        #[test]
        fn depth_first_uses_the_fewest_hosts(n_hosts in 1usize..8, max in 1u32..6, n in 0usize..30) {
            let mut hs = hosts(n_hosts);
            let r = Rules { max_containers: max, strategy: PlacementStrategy::DepthFirst, ..Rules::default() };
            let n = n.min(n_hosts * max as usize);
            let counts = place_members(&mut hs, n, &r);
            // Full hosts, then at most one partly filled, then empty ones.
            let full = n / max as usize;
            for (i, c) in counts.iter().enumerate() {
                let want = if i < full { max } else if i == full { (n % max as usize) as u32 } else { 0 };
                prop_assert_eq!(*c, want, "{:?}", counts);
            }
        }
    }
}
