//! Containers with named volumes go where their volumes are: a cluster
//! member's volume belongs to its identity (`web-2`), and a replacement or
//! a restart after a rebind must find its data, as a Kubernetes pod with a
//! local persistent volume is bound to that volume's node.
//!
//! The rule is a placement layer like a blueprint's own (`hostname:`), put
//! after the entity's layers so it wins: a host that holds the volumes is
//! required, not merely preferred. A container none of whose volumes exist
//! yet is placed as usual; its volumes are made where it lands.

use crate::blueprint::PlacementSpec;

/// The placement layer for a container whose named volumes are `wanted`
/// (engine names), given which volumes each answering host holds: the host
/// holding most of them (the first such host on a tie), or `None` when no
/// host holds any.
pub fn volume_rule(wanted: &[String], held: &[(String, Vec<String>)]) -> Option<PlacementSpec> {
    let mut best: Option<(&str, usize)> = None;
    for (host, volumes) in held {
        let n = wanted.iter().filter(|w| volumes.contains(w)).count();
        if n > 0 && best.is_none_or(|(_, m)| n > m) {
            best = Some((host, n));
        }
    }
    best.map(|(host, _)| PlacementSpec {
        hostname: Some(host.to_string()),
        ..PlacementSpec::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        v.iter()
            .map(|(h, vs)| (h.to_string(), vs.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_container_goes_to_the_host_holding_its_volumes() {
        let wanted = vec!["drover-shop-web-2-data".to_string()];
        let rule = volume_rule(
            &wanted,
            &held(&[
                ("a", &["drover-shop-web-1-data"]),
                ("b", &["drover-shop-web-2-data"]),
            ]),
        );
        assert_eq!(rule.and_then(|r| r.hostname), Some("b".into()));
        // Nowhere yet: placed as usual.
        assert_eq!(volume_rule(&wanted, &held(&[("a", &["x"])])), None);
        // Split across hosts: the host holding most of them.
        let two = vec!["v1".to_string(), "v2".to_string()];
        let rule = volume_rule(&two, &held(&[("a", &["v1"]), ("b", &["v1", "v2"])]));
        assert_eq!(rule.and_then(|r| r.hostname), Some("b".into()));
    }
}
