//! A decision in words: every host's verdict as a line, for `drover`'s
//! answers, errors and activities. Text is made only when someone reads it.

use super::{Decision, HostState, HostVerdict, Rejection, Request};
use crate::blueprint::PlacementStrategy;
use crate::placement::rules::Rules;

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
        ranked.sort_by(|a, b| ahead(*a, *b));
        let mut ranks = vec![None; self.verdicts.len()];
        for (r, (_, i)) in ranked.iter().enumerate() {
            ranks[*i] = Some(r + 1);
        }
        ranks
    }

    /// The rank of host `i` alone, without ranking every host: one pass.
    fn rank_of(&self, i: usize) -> Option<usize> {
        let HostVerdict::Ranked { score } = self.verdicts.get(i)? else {
            return None;
        };
        let me = (*score, i);
        let before = self
            .verdicts
            .iter()
            .enumerate()
            .filter(|(j, v)| match v {
                HostVerdict::Ranked { score } => ahead((*score, *j), me).is_lt(),
                HostVerdict::Rejected(_) => false,
            })
            .count();
        Some(before + 1)
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
        }
    }

    /// The reasons as one line, for errors and activities: the first
    /// [`SUMMARY_HOSTS`] hosts' lines, then how many more. Every host's
    /// line made each container's `placement.decision` sensor 55 KB on a
    /// 1,000-host pool (a 5,000-container application's GET was 277 MB);
    /// and only those lines are made (formatting a thousand lines to keep
    /// ten was a tenth of a 10,000-container deploy's CPU).
    pub fn summary<H: AsRef<HostState>>(
        &self,
        hosts: &[H],
        req: &Request,
        rules: &Rules,
    ) -> String {
        let who = format!("{}/{}", req.app, req.entity);
        let n = self.verdicts.len().min(hosts.len());
        let mut lines: Vec<String> = (0..n.min(SUMMARY_HOSTS))
            .map(|i| self.line(i, hosts[i].as_ref(), self.rank_of(i), req, rules))
            .collect();
        if n > SUMMARY_HOSTS {
            lines.push(format!("and {} more hosts", n - SUMMARY_HOSTS));
        }
        match self.chosen {
            Some(i) => format!("{who} → {}; {}", hosts[i].as_ref().name, lines.join("; ")),
            None if hosts.is_empty() => format!("no host fits {who}: the location has no hosts"),
            None => format!("no host fits {who}: {}", lines.join("; ")),
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

/// How many hosts' reasons a summary names.
pub const SUMMARY_HOSTS: usize = 10;
