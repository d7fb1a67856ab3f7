//! A decision in words: every host's verdict as a line, for `drover`'s
//! answers, errors and activities. Text is made only when someone reads it.

use super::{Decision, HostState, HostVerdict, Rejection, Request};
use crate::blueprint::PlacementStrategy;
use crate::placement::rules::Rules;

/// A rejection as its rule (`max-containers(8)`) and what this host showed
/// against it (`runs 8`), if anything.
fn rejection_parts(r: &Rejection, rules: &Rules) -> (String, Option<String>) {
    match r {
        Rejection::Unavailable => (
            "unavailable (not answering, or being provisioned or removed)".into(),
            None,
        ),
        Rejection::Hostname => (
            format!(
                "hostname({})",
                rules.hostname.as_deref().unwrap_or_default()
            ),
            None,
        ),
        Rejection::Label(k) => match rules.labels.iter().nth(*k) {
            Some((key, value)) => (format!("label({key}={value})"), None),
            None => ("label".into(), None),
        },
        Rejection::MaxContainers { limit, has } => (
            format!("max-containers({limit})"),
            Some(format!("runs {has}")),
        ),
        Rejection::MaxCpuUsage { limit, usage } => (
            format!("max-cpu-usage({limit})"),
            Some(format!("at {:.0}%", usage * 100.0)),
        ),
        Rejection::Cpus { want, free } => (
            "reservation-fit".into(),
            Some(format!("wants {want} cpus, {free:.2} unreserved")),
        ),
        Rejection::Memory { want, free } => (
            "reservation-fit".into(),
            Some(format!(
                "wants {} MiB of memory, {} MiB unreserved",
                want >> 20,
                free >> 20
            )),
        ),
        Rejection::Affinity(k) => (
            rules
                .affinity
                .get(*k)
                .map(|a| a.to_string())
                .unwrap_or_else(|| "affinity".into()),
            None,
        ),
    }
}

fn rejection_text(r: &Rejection, rules: &Rules) -> String {
    match rejection_parts(r, rules) {
        (rule, Some(detail)) => format!("{rule}: {detail}"),
        (rule, None) => rule,
    }
}

/// Which rule a rejection is by, cheaply, to count hosts per rule without
/// formatting a line for each (the two reservation-fit kinds are one rule).
fn rule_key(r: &Rejection) -> (u8, usize) {
    match r {
        Rejection::Unavailable => (0, 0),
        Rejection::Hostname => (1, 0),
        Rejection::Label(k) => (2, *k),
        Rejection::MaxContainers { .. } => (3, 0),
        Rejection::MaxCpuUsage { .. } => (4, 0),
        Rejection::Cpus { .. } | Rejection::Memory { .. } => (5, 0),
        Rejection::Affinity(k) => (6, *k),
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
        ranked.sort_by(|a, b| ahead(*a, *b));
        let mut ranks = vec![None; self.verdicts.len()];
        for (r, (_, i)) in ranked.iter().enumerate() {
            ranks[*i] = Some(r + 1);
        }
        ranks
    }

    /// The `k` best ranked hosts, best first, in one pass (no sort of
    /// every host).
    pub(super) fn best(&self, k: usize) -> Vec<usize> {
        let mut top: Vec<((f64, f64), usize)> = Vec::with_capacity(k + 1);
        for (i, v) in self.verdicts.iter().enumerate() {
            let HostVerdict::Ranked { score } = v else {
                continue;
            };
            let me = (*score, i);
            if top.len() == k && top.last().is_none_or(|last| ahead(me, *last).is_ge()) {
                continue;
            }
            let at = top.partition_point(|t| ahead(*t, me).is_lt());
            top.insert(at, me);
            top.truncate(k);
        }
        top.into_iter().map(|(_, i)| i).collect()
    }

    /// One line per host: `host-2: rejected by max-containers(8): runs 8`,
    /// `host-1: ranked 1 by breadth-first (0 of this entity, 3 containers)`.
    pub fn explain<H: AsRef<HostState>>(
        &self,
        hosts: &[H],
        req: &Request,
        rules: &Rules,
    ) -> Vec<String> {
        let ranks = self.ranks();
        (0..self.verdicts.len().min(hosts.len()))
            .map(|i| self.line(i, hosts[i].as_ref(), ranks[i], req, rules))
            .collect()
    }

    fn line(
        &self,
        i: usize,
        h: &HostState,
        rank: Option<usize>,
        req: &Request,
        rules: &Rules,
    ) -> String {
        match &self.verdicts[i] {
            HostVerdict::Rejected(r) => {
                format!("{}: rejected by {}", h.name, rejection_text(r, rules))
            }
            HostVerdict::Ranked { .. } => format!(
                "{}: ranked {} by {} ({})",
                h.name,
                rank.unwrap_or(0),
                rules.strategy.as_str(),
                why(h, req, rules)
            ),
        }
    }

    /// The reasons as one line, for errors, activities and the container's
    /// `placement.decision` sensor. A pool of at most [`SUMMARY_HOSTS`]
    /// hosts is explained host by host, in host order. A larger one gets
    /// what an operator asks of a decision: the chosen host and why, the
    /// [`RUNNERS_UP`] next best, and the rejected hosts counted by rule with
    /// a few named (`990 by max-containers(8) (host-1: runs 8, ...)`).
    /// Every host's line made the sensor 55 KB at 1,000 hosts; the first
    /// ten hosts' lines, kept before this, were 600 bytes that said nothing
    /// of the hosts that mattered. Only the named hosts' text is formatted.
    pub fn summary<H: AsRef<HostState>>(
        &self,
        hosts: &[H],
        req: &Request,
        rules: &Rules,
    ) -> String {
        let who = format!("{}/{}", req.app, req.entity);
        let n = self.verdicts.len().min(hosts.len());
        if n == 0 {
            return format!("no host fits {who}: the location has no hosts");
        }
        if n <= SUMMARY_HOSTS {
            let ranks = self.ranks();
            let lines: Vec<String> = (0..n)
                .map(|i| self.line(i, hosts[i].as_ref(), ranks[i], req, rules))
                .collect();
            return match self.chosen {
                Some(i) => format!("{who} → {}; {}", hosts[i].as_ref().name, lines.join("; ")),
                None => format!("no host fits {who}: {}", lines.join("; ")),
            };
        }
        let mut parts = Vec::new();
        let ranked = self
            .verdicts
            .iter()
            .filter(|v| matches!(v, HostVerdict::Ranked { .. }))
            .count();
        let head = match self.chosen {
            Some(c) => {
                let h = hosts[c].as_ref();
                let next: Vec<String> = self
                    .best(RUNNERS_UP + 1)
                    .into_iter()
                    .filter(|&i| i != c && i < n)
                    .take(RUNNERS_UP)
                    .map(|i| {
                        let h = hosts[i].as_ref();
                        format!("{} ({})", h.name, why(h, req, rules))
                    })
                    .collect();
                if !next.is_empty() {
                    parts.push(format!("next {}", next.join(", ")));
                }
                format!(
                    "{who} → {} (ranked 1 of {ranked} by {}: {})",
                    h.name,
                    rules.strategy.as_str(),
                    why(h, req, rules)
                )
            }
            None => format!("no host fits {who}"),
        };
        if let Some(r) = self.rejections(hosts, rules) {
            parts.push(r);
        }
        if parts.is_empty() {
            head
        } else {
            format!("{head}; {}", parts.join("; "))
        }
    }

    /// `998 rejected: 990 by max-containers(8) (host-1: runs 8, host-2:
    /// runs 8, host-3: runs 8, and 987 more), 8 by label(zone=a) (...)`,
    /// the rule that rejected most first; `None` if no host was rejected.
    fn rejections<H: AsRef<HostState>>(&self, hosts: &[H], rules: &Rules) -> Option<String> {
        // In the order rules are first met.
        let mut by_rule: Vec<RuleGroup<'_>> = Vec::new();
        let mut total = 0;
        for (i, v) in self.verdicts.iter().enumerate().take(hosts.len()) {
            let HostVerdict::Rejected(r) = v else {
                continue;
            };
            total += 1;
            let key = rule_key(r);
            let g = match by_rule.iter().position(|g| g.key == key) {
                Some(g) => g,
                None => {
                    by_rule.push(RuleGroup {
                        key,
                        count: 0,
                        named: Vec::new(),
                    });
                    by_rule.len() - 1
                }
            };
            let group = &mut by_rule[g];
            group.count += 1;
            if group.named.len() < NAMED_PER_RULE {
                group.named.push((i, r));
            }
        }
        if total == 0 {
            return None;
        }
        // Stable: equal counts keep the order the rules were met in.
        by_rule.sort_by_key(|g| std::cmp::Reverse(g.count));
        let groups: Vec<String> = by_rule
            .iter()
            .filter_map(|RuleGroup { count, named, .. }| {
                let (rule, _) = rejection_parts(named.first()?.1, rules);
                let mut names: Vec<String> = named
                    .iter()
                    .map(|&(i, r)| {
                        let name = &hosts[i].as_ref().name;
                        match rejection_parts(r, rules).1 {
                            Some(detail) => format!("{name}: {detail}"),
                            None => name.clone(),
                        }
                    })
                    .collect();
                if *count > named.len() {
                    names.push(format!("and {} more", count - named.len()));
                }
                Some(format!("{count} by {rule} ({})", names.join(", ")))
            })
            .collect();
        Some(format!("{total} rejected: {}", groups.join(", ")))
    }
}

/// The hosts one rule rejected: how many, and the first few with why.
struct RuleGroup<'a> {
    key: (u8, usize),
    count: usize,
    named: Vec<(usize, &'a Rejection)>,
}

/// Why a host that passed the filters ranks where it does, by the
/// strategy's measure.
fn why(h: &HostState, req: &Request, rules: &Rules) -> String {
    match rules.strategy {
        PlacementStrategy::DepthFirst | PlacementStrategy::LeastContainers => {
            format!("{} containers", h.containers())
        }
        PlacementStrategy::BreadthFirst => format!(
            "{} of this entity, {} containers",
            h.same_entity_count(req),
            h.containers()
        ),
        PlacementStrategy::LowestCpuUsage => {
            format!(
                "cpu {:.0}%, {} containers",
                h.cpu_usage * 100.0,
                h.containers()
            )
        }
    }
}

/// Ranking order: lower score first, then the earlier host.
fn ahead(a: ((f64, f64), usize), b: ((f64, f64), usize)) -> std::cmp::Ordering {
    a.0 .0
        .total_cmp(&b.0 .0)
        .then(a.0 .1.total_cmp(&b.0 .1))
        .then(a.1.cmp(&b.1))
}

/// A pool of at most this many hosts is explained host by host.
pub const SUMMARY_HOSTS: usize = 10;

/// How many hosts after the chosen one a summary names.
pub const RUNNERS_UP: usize = 2;

/// How many hosts a summary names for each rule that rejected some.
pub const NAMED_PER_RULE: usize = 3;
