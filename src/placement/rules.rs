//! The placement chain: filters, then a scorer, built from the blueprint's
//! `placement:` keys.

use std::collections::BTreeMap;

use crate::blueprint::{AffinityRule, AffinityScope, PlacementSpec, PlacementStrategy};

/// Clocker's `DockerHost.maxContainers` default: more than this per host and
/// a small engine spends its time context-switching.
pub const DEFAULT_MAX_CONTAINERS: u32 = 8;

/// What a host must (or must not) already run, resolved for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Affinity {
    /// A host running a container of this application.
    Application { not: bool },
    /// A host running a container of the request's own entity (for a
    /// cluster member: of its cluster).
    SameEntity { not: bool },
    /// A host running this entity of the request's application (a
    /// container, or any member of that cluster).
    Entity { entity: String, not: bool },
}

impl Affinity {
    pub fn from_rule(rule: &AffinityRule) -> Option<Affinity> {
        let not = rule.not;
        match (&rule.same, &rule.entity) {
            (Some(AffinityScope::Application), None) => Some(Affinity::Application { not }),
            (Some(AffinityScope::Entity), None) => Some(Affinity::SameEntity { not }),
            (None, Some(e)) => Some(Affinity::Entity {
                entity: e.clone(),
                not,
            }),
            // Rejected by validation; ignored if one slips through.
            _ => None,
        }
    }

    pub fn negated(&self) -> bool {
        match self {
            Affinity::Application { not }
            | Affinity::SameEntity { not }
            | Affinity::Entity { not, .. } => *not,
        }
    }
}

impl std::fmt::Display for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, not) = match self {
            Affinity::Application { not } => ("same-application".to_string(), *not),
            Affinity::SameEntity { not } => ("same-entity".to_string(), *not),
            Affinity::Entity { entity, not } => (format!("entity {entity}"), *not),
        };
        if not {
            write!(f, "anti-affinity({what})")
        } else {
            write!(f, "affinity({what})")
        }
    }
}

/// The resolved chain for one request. Filters run in a fixed, cheap-first
/// order: availability, hostname, labels, max-containers, max-cpu-usage,
/// reservation fit, affinity rules; then `strategy` ranks the survivors and
/// the host order (names, sorted) breaks ties.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub strategy: PlacementStrategy,
    pub max_containers: u32,
    pub max_cpu_usage: Option<f64>,
    pub reservation_fit: bool,
    pub hostname: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub affinity: Vec<Affinity>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            // Spreading is what users of Swarm (spread) and Kubernetes
            // (least-allocated) expect; depth-first is an opt-in for
            // packing onto fewer hosts.
            strategy: PlacementStrategy::BreadthFirst,
            max_containers: DEFAULT_MAX_CONTAINERS,
            max_cpu_usage: None,
            reservation_fit: true,
            hostname: None,
            labels: BTreeMap::new(),
            affinity: Vec::new(),
        }
    }
}

impl Rules {
    /// Defaults, then the location's keys, then the entity's keys (each
    /// layer replaces only the keys it sets; affinity rules add up).
    pub fn resolve(location: &PlacementSpec, layers: &[&PlacementSpec]) -> Rules {
        let mut r = Rules::default();
        for spec in std::iter::once(location).chain(layers.iter().copied()) {
            r.apply(spec);
        }
        r
    }

    pub fn apply(&mut self, spec: &PlacementSpec) {
        if let Some(s) = spec.strategy {
            self.strategy = s;
        }
        if let Some(m) = spec.max_containers {
            self.max_containers = m;
        }
        if let Some(u) = spec.max_cpu_usage {
            self.max_cpu_usage = Some(u);
        }
        if let Some(f) = spec.reservation_fit {
            self.reservation_fit = f;
        }
        if let Some(h) = &spec.hostname {
            self.hostname = Some(h.clone());
        }
        for (k, v) in &spec.labels {
            self.labels.insert(k.clone(), v.clone());
        }
        for rule in &spec.affinity {
            if let Some(a) = Affinity::from_rule(rule) {
                if !self.affinity.contains(&a) {
                    self.affinity.push(a);
                }
            }
        }
    }

    /// The chain as a person reads it.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("max-containers({})", self.max_containers)];
        if let Some(u) = self.max_cpu_usage {
            parts.push(format!("max-cpu-usage({u})"));
        }
        if self.reservation_fit {
            parts.push("reservation-fit".into());
        }
        if let Some(h) = &self.hostname {
            parts.push(format!("hostname({h})"));
        }
        for (k, v) in &self.labels {
            parts.push(format!("label({k}={v})"));
        }
        for a in &self.affinity {
            parts.push(a.to_string());
        }
        parts.push(self.strategy.as_str().to_string());
        parts.join(" → ")
    }
}

/// `top`'s keys over `base`'s (affinity rules add up): a cluster's
/// `placement:` under its member's.
pub fn overlay(base: Option<&PlacementSpec>, top: Option<&PlacementSpec>) -> Option<PlacementSpec> {
    match (base, top) {
        (None, None) => None,
        (Some(b), None) => Some(b.clone()),
        (None, Some(t)) => Some(t.clone()),
        (Some(b), Some(t)) => {
            let mut m = b.clone();
            m.strategy = t.strategy.or(b.strategy);
            m.max_containers = t.max_containers.or(b.max_containers);
            m.max_cpu_usage = t.max_cpu_usage.or(b.max_cpu_usage);
            m.reservation_fit = t.reservation_fit.or(b.reservation_fit);
            m.hostname = t.hostname.clone().or(b.hostname.clone());
            m.labels.extend(t.labels.clone());
            m.rebalance = t.rebalance.clone().or(b.rebalance.clone());
            for a in &t.affinity {
                if !m.affinity.contains(a) {
                    m.affinity.push(a.clone());
                }
            }
            Some(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PlacementSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_are_clockers() {
        let r = Rules::default();
        assert_eq!(r.max_containers, 8);
        assert_eq!(r.strategy, PlacementStrategy::BreadthFirst);
        assert!(r.reservation_fit);
        assert_eq!(
            r.describe(),
            "max-containers(8) → reservation-fit → breadth-first"
        );
    }

    #[test]
    fn entity_keys_override_location_keys_which_override_defaults() {
        let loc = spec("{ strategy: depth-first, max_containers: 4, labels: { zone: a } }");
        let svc = spec("{ max_containers: 2, affinity: [{ same: entity, not: true }] }");
        let member = spec("{ strategy: lowest-cpu-usage, labels: { disk: ssd } }");
        let r = Rules::resolve(&loc, &[&svc, &member]);
        assert_eq!(r.strategy, PlacementStrategy::LowestCpuUsage);
        assert_eq!(r.max_containers, 2);
        assert_eq!(r.labels.len(), 2);
        assert_eq!(r.affinity, vec![Affinity::SameEntity { not: true }]);
        assert_eq!(
            r.describe(),
            "max-containers(2) → reservation-fit → label(disk=ssd) → label(zone=a) → \
             anti-affinity(same-entity) → lowest-cpu-usage"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = serde_yaml::from_str::<PlacementSpec>("{ max_container: 3 }").unwrap_err();
        assert!(
            e.to_string().contains("unknown field `max_container`"),
            "{e}"
        );
        let e = serde_yaml::from_str::<PlacementSpec>("{ strategy: random }").unwrap_err();
        assert!(e.to_string().contains("unknown variant `random`"), "{e}");
        let e =
            serde_yaml::from_str::<PlacementSpec>("{ affinity: [{ sme: entity }] }").unwrap_err();
        assert!(e.to_string().contains("unknown field `sme`"), "{e}");
    }

    #[test]
    fn overlay_puts_the_member_over_the_cluster() {
        let cluster =
            spec("{ strategy: depth-first, max_containers: 4, affinity: [{ same: application }] }");
        let member = spec("{ max_containers: 2, affinity: [{ same: entity, not: true }] }");
        let m = overlay(Some(&cluster), Some(&member)).unwrap();
        let r = Rules::resolve(&m, &[]);
        assert_eq!(r.strategy, PlacementStrategy::DepthFirst);
        assert_eq!(r.max_containers, 2);
        assert_eq!(r.affinity.len(), 2);
        assert_eq!(overlay(None, None), None);
        assert_eq!(overlay(Some(&cluster), None), Some(cluster.clone()));
    }

    #[test]
    fn cluster_is_an_alias_of_entity() {
        let r = Rules::resolve(&spec("{ affinity: [{ same: cluster }] }"), &[]);
        assert_eq!(r.affinity, vec![Affinity::SameEntity { not: false }]);
    }
}
