//! The CPU placement policy's decision: which container leaves a busy host.
//!
//! Pure over (hosts' CPU usage, where the watched containers are, what the
//! policy remembers, now). A host is busy once its CPU usage is above the
//! lowest threshold of the containers watched on it; a container moves when
//! its host has been above *its* threshold for its window, a cooler host
//! exists, its group (cluster) has no move under way and is out of its
//! cooldown. One order per host per evaluation: the move itself lowers the
//! host's usage, so the next one waits for a fresh sample.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::blueprint::RebalanceSpec;

/// A move that has not settled after this long no longer blocks its group
/// (its container failed or was removed on the way).
pub const MOVE_SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// One host as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCpu {
    pub name: String,
    /// 0 to 1 of the host's CPUs.
    pub usage: f64,
    /// Can take containers (answers, not decommissioning).
    pub available: bool,
}

/// A watched container and its host.
#[derive(Debug, Clone, PartialEq)]
pub struct Watched {
    pub app: String,
    pub entity: String,
    /// The cluster it belongs to (or the entity itself): one move at a time
    /// per group.
    pub group: String,
    pub host: String,
    pub rule: RebalanceSpec,
}

/// What the policy remembers between evaluations (and across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalanceMemory {
    /// Host → busy since (ms).
    pub busy_since: BTreeMap<String, u64>,
    /// `app/group` → when its last move was ordered (ms).
    pub last_move: BTreeMap<String, u64>,
    /// `app/group` → (entity moving, since ms), until it settles.
    pub moving: BTreeMap<String, (String, u64)>,
}

/// Move `entity` of `app` off `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveOrder {
    pub app: String,
    pub entity: String,
    pub from: String,
    pub reason: String,
}

fn group_key(app: &str, group: &str) -> String {
    format!("{app}/{group}")
}

impl RebalanceMemory {
    /// The moving container has been placed elsewhere (or gave up): its
    /// group may move again once its cooldown is over.
    pub fn settled(&mut self, app: &str, entity: &str) {
        self.moving
            .retain(|k, (e, _)| !(e == entity && k.starts_with(&format!("{app}/"))));
    }
}

/// One evaluation. Orders are remembered as under way.
pub fn plan(
    hosts: &[HostCpu],
    watched: &[Watched],
    memory: &mut RebalanceMemory,
    now_ms: u64,
) -> Vec<MoveOrder> {
    let since = |t: u64| Duration::from_millis(now_ms.saturating_sub(t));
    memory
        .moving
        .retain(|_, (_, t)| since(*t) < MOVE_SETTLE_LIMIT);
    let mut orders = Vec::new();
    for h in hosts {
        let on_host: Vec<&Watched> = watched.iter().filter(|w| w.host == h.name).collect();
        let lowest = on_host
            .iter()
            .map(|w| w.rule.above)
            .fold(f64::INFINITY, f64::min);
        if !h.available || h.usage <= lowest {
            memory.busy_since.remove(&h.name);
            continue;
        }
        let busy_for = since(*memory.busy_since.entry(h.name.clone()).or_insert(now_ms));
        for w in on_host {
            let key = group_key(&w.app, &w.group);
            if h.usage <= w.rule.above || busy_for < w.rule.window {
                continue;
            }
            if memory.moving.contains_key(&key)
                || memory
                    .last_move
                    .get(&key)
                    .is_some_and(|t| since(*t) < w.rule.cooldown)
            {
                continue;
            }
            // Nowhere cooler to go: a move would only churn.
            if !hosts
                .iter()
                .any(|o| o.name != h.name && o.available && o.usage < w.rule.above)
            {
                continue;
            }
            memory.last_move.insert(key.clone(), now_ms);
            memory.moving.insert(key, (w.entity.clone(), now_ms));
            orders.push(MoveOrder {
                app: w.app.clone(),
                entity: w.entity.clone(),
                from: h.name.clone(),
                reason: format!(
                    "host {} at {:.0}% CPU for {} (above {:.0}%)",
                    h.name,
                    h.usage * 100.0,
                    humantime::format_duration(Duration::from_secs(busy_for.as_secs())),
                    w.rule.above * 100.0
                ),
            });
            break;
        }
    }
    orders
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(above: f64, window_s: u64, cooldown_s: u64) -> RebalanceSpec {
        RebalanceSpec {
            above,
            window: Duration::from_secs(window_s),
            cooldown: Duration::from_secs(cooldown_s),
        }
    }

    fn host(name: &str, usage: f64) -> HostCpu {
        HostCpu {
            name: name.into(),
            usage,
            available: true,
        }
    }

    fn member(entity: &str, host: &str) -> Watched {
        Watched {
            app: "a".into(),
            entity: entity.into(),
            group: "web".into(),
            host: host.into(),
            rule: rule(0.5, 10, 60),
        }
    }

    #[test]
    fn a_busy_host_loses_one_member_after_its_window() {
        let hosts = [host("h1", 0.9), host("h2", 0.1)];
        let w = [member("web-1", "h1"), member("web-2", "h1")];
        let mut m = RebalanceMemory::default();
        assert!(plan(&hosts, &w, &mut m, 0).is_empty());
        assert!(plan(&hosts, &w, &mut m, 9_999).is_empty());
        let o = plan(&hosts, &w, &mut m, 10_000);
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!((o[0].entity.as_str(), o[0].from.as_str()), ("web-1", "h1"));
        assert!(o[0].reason.contains("90% CPU"), "{}", o[0].reason);
        // Under way: no second move of the cluster, even after the window.
        assert!(plan(&hosts, &w, &mut m, 20_000).is_empty());
    }

    #[test]
    fn a_dip_restarts_the_window() {
        let w = [member("web-1", "h1")];
        let mut m = RebalanceMemory::default();
        plan(&[host("h1", 0.9), host("h2", 0.0)], &w, &mut m, 0);
        plan(&[host("h1", 0.2), host("h2", 0.0)], &w, &mut m, 5_000);
        assert!(plan(&[host("h1", 0.9), host("h2", 0.0)], &w, &mut m, 12_000).is_empty());
        assert_eq!(
            plan(&[host("h1", 0.9), host("h2", 0.0)], &w, &mut m, 22_000).len(),
            1
        );
    }

    #[test]
    fn the_cooldown_holds_after_a_settled_move() {
        let w = [member("web-1", "h1")];
        let hosts = [host("h1", 0.9), host("h2", 0.0)];
        let mut m = RebalanceMemory::default();
        plan(&hosts, &w, &mut m, 0);
        assert_eq!(plan(&hosts, &w, &mut m, 10_000).len(), 1);
        m.settled("a", "web-1");
        assert!(m.moving.is_empty());
        // Its load followed it to h2, now busy: the cooldown keeps it there.
        let hosts = [host("h1", 0.0), host("h2", 0.9)];
        let w = [member("web-1", "h2")];
        assert!(plan(&hosts, &w, &mut m, 30_000).is_empty());
        assert!(plan(&hosts, &w, &mut m, 69_999).is_empty());
        assert_eq!(plan(&hosts, &w, &mut m, 70_000).len(), 1);
    }

    #[test]
    fn nothing_moves_without_a_cooler_host() {
        let w = [member("web-1", "h1")];
        let hosts = [host("h1", 0.9), host("h2", 0.7)];
        let mut m = RebalanceMemory::default();
        plan(&hosts, &w, &mut m, 0);
        assert!(plan(&hosts, &w, &mut m, 60_000).is_empty());
        let down = HostCpu {
            available: false,
            ..host("h2", 0.0)
        };
        assert!(plan(&[host("h1", 0.9), down], &w, &mut m, 70_000).is_empty());
    }

    #[test]
    fn an_unsettled_move_stops_blocking_after_its_limit() {
        let w = [member("web-1", "h1")];
        let hosts = [host("h1", 0.9), host("h2", 0.0)];
        let mut m = RebalanceMemory::default();
        plan(&hosts, &w, &mut m, 0);
        assert_eq!(plan(&hosts, &w, &mut m, 10_000).len(), 1);
        // Out of its cooldown (60 s) but never settled: still blocked.
        assert!(plan(&hosts, &w, &mut m, 80_000).is_empty());
        assert!(m.moving.contains_key("a/web"));
        let later = 10_000 + MOVE_SETTLE_LIMIT.as_millis() as u64;
        assert_eq!(plan(&hosts, &w, &mut m, later).len(), 1);
    }

    #[test]
    fn each_member_uses_its_own_threshold() {
        let mut lax = member("db-1", "h1");
        lax.group = "db".into();
        lax.rule = rule(0.95, 10, 60);
        let w = [member("web-1", "h1"), lax];
        let hosts = [host("h1", 0.8), host("h2", 0.0)];
        let mut m = RebalanceMemory::default();
        plan(&hosts, &w, &mut m, 0);
        let o = plan(&hosts, &w, &mut m, 10_000);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].entity, "web-1");
    }
}
