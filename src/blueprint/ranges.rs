//! The ranges of a blueprint's durations and counts, and the characters
//! a health check path may hold.
//!
//! serde checks types; this checks sizes. A duration of a year or a count
//! of billions is a typo or an attack, never a setting (times derived from
//! them are added to clocks, and sizes become loops), so each is refused
//! with its path. Policy tunables have their own ranges
//! (`policy::ranges`), checked where a policy config is parsed.

use std::time::Duration;

use super::lb::{self, LbLimits};
use super::{Blueprint, ContainerSpec, FieldPath, ValidationError};

/// The longest duration any blueprint setting takes (a week, as for
/// policies: no control loop here needs longer).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest count (cluster size, health threshold, per-host cap).
pub const MAX_COUNT: u32 = 1_000_000;

/// Every range error of a blueprint, each with its path.
pub fn range_checks(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        let path = FieldPath::root().key("services").index(i);
        duration(
            &mut errs,
            path.key("reference_timeout"),
            svc.reference_timeout,
        );
        count(&mut errs, path.key("initial_size"), svc.initial_size);
        for (j, e) in svc.enrichers.iter().enumerate() {
            duration(
                &mut errs,
                path.key("enrichers").index(j).key("window"),
                e.window,
            );
        }
        if let Some(l) = &svc.limits {
            errs.extend(lb_limit_errors(&path.key("limits"), l));
        }
        container(&mut errs, &path, &svc.own_container());
        if let Some(m) = &svc.member {
            container(&mut errs, &path.key("member"), m);
        }
    }
    errs
}

fn container(errs: &mut Vec<ValidationError>, path: &FieldPath, c: &ContainerSpec) {
    duration(errs, path.key("stop_grace_period"), c.stop_grace_period);
    if let Some(h) = &c.health {
        let hp = path.key("health");
        duration(errs, hp.key("interval"), Some(h.interval));
        duration(errs, hp.key("timeout"), Some(h.timeout));
        duration(errs, hp.key("start_period"), h.start_period);
        count(
            errs,
            hp.key("unhealthy_threshold"),
            Some(h.unhealthy_threshold),
        );
    }
    if let Some(f) = &c.failure_detector {
        let fp = path.key("failure_detector");
        duration(
            errs,
            fp.key("failed_stabilization"),
            Some(f.failed_stabilization),
        );
        duration(
            errs,
            fp.key("recovered_stabilization"),
            Some(f.recovered_stabilization),
        );
    }
    if let Some(p) = &c.placement {
        let pp = path.key("placement");
        count(errs, pp.key("max_containers"), p.max_containers);
        if let Some(r) = &p.rebalance {
            duration(errs, pp.key("rebalance").key("for"), Some(r.window));
            duration(errs, pp.key("rebalance").key("cooldown"), Some(r.cooldown));
        }
    }
}

/// Range errors of a load balancer's limits, each with its path (pure).
pub fn lb_limit_errors(path: &FieldPath, l: &LbLimits) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    if !(1..=MAX_COUNT).contains(&l.max_connections) {
        errs.push(ValidationError::at(
            path.key("max_connections"),
            format!(
                "must be between 1 and {}, got {}",
                MAX_COUNT, l.max_connections
            ),
        ));
    }
    for (key, d) in [
        ("header_timeout", l.header_timeout),
        ("idle_timeout", l.idle_timeout),
    ] {
        if d < lb::MIN_TIMEOUT || d > MAX_DURATION {
            errs.push(ValidationError::at(
                path.key(key),
                format!(
                    "must be between 100ms and a week, got {}",
                    humantime::format_duration(d)
                ),
            ));
        }
    }
    if !(lb::MIN_BUFFERED_BYTES..=lb::MAX_BUFFERED_BYTES).contains(&l.max_buffered_bytes) {
        errs.push(ValidationError::at(
            path.key("max_buffered_bytes"),
            format!(
                "must be between {} and {}, got {}",
                lb::MIN_BUFFERED_BYTES,
                lb::MAX_BUFFERED_BYTES,
                l.max_buffered_bytes
            ),
        ));
    }
    errs
}

fn duration(errs: &mut Vec<ValidationError>, path: FieldPath, d: Option<Duration>) {
    if let Some(d) = d.filter(|d| *d > MAX_DURATION) {
        errs.push(ValidationError::at(
            path,
            format!(
                "must be at most {} (a week), got {}",
                humantime::format_duration(MAX_DURATION),
                humantime::format_duration(d)
            ),
        ));
    }
}

fn count(errs: &mut Vec<ValidationError>, path: FieldPath, n: Option<u32>) {
    if let Some(n) = n.filter(|n| *n > MAX_COUNT) {
        errs.push(ValidationError::at(
            path,
            format!("must be at most {MAX_COUNT}, got {n}"),
        ));
    }
}

/// Why an HTTP health check path cannot be sent as a request target:
/// control characters (CR and LF would inject headers into every probe),
/// spaces, or more than 1 KiB.
pub fn http_path_error(path: &str) -> Option<String> {
    if let Some(c) = path.chars().find(|c| c.is_control() || *c == ' ') {
        return Some(format!(
            "http check path {path:?} holds {c:?}; a path has no spaces or control \
             characters (percent-encode them, e.g. %20)"
        ));
    }
    (path.len() > 1024).then(|| format!("http check path is {} bytes; at most 1024", path.len()))
}

#[cfg(test)]
mod tests {
    use crate::blueprint::parse_blueprint;

    fn errors(svc: &str) -> String {
        let text = format!("name: s\nservices:\n  - id: a\n{svc}");
        parse_blueprint("b.yaml", &text).unwrap_err().to_string()
    }

    #[test]
    fn a_path_with_cr_lf_is_refused_with_its_position() {
        let e = errors(
            "    type: container\n    image: x\n    ports: [80]\n    health:\n      \
             http: { port: 80, path: \"/h\\r\\nX-Injected: 1\" }\n",
        );
        assert!(e.starts_with("b.yaml:8:"), "{e}");
        assert!(e.contains("services[0].health.http.path"), "{e}");
        assert!(e.contains("control characters"), "{e}");
    }

    #[test]
    fn an_overlong_duration_and_count_are_refused_with_their_paths() {
        let e = errors(
            "    type: cluster\n    initial_size: 4000000000\n    member:\n      image: x\n      \
             stop_grace_period: 18446744073709551615s\n",
        );
        assert!(
            e.contains("b.yaml:5:19: services[0].initial_size: must be at most 1000000"),
            "{e}"
        );
        assert!(
            e.contains("services[0].member.stop_grace_period: must be at most 7days"),
            "{e}"
        );
    }

    #[test]
    fn a_load_balancer_listens_where_address_says() {
        let text = "name: s\nservices:\n  - id: web\n    type: cluster\n    member:\n      image: x\n      ports: [80]\n  - id: lb\n    type: load-balancer\n    target: web\n    port: 0\n    address: 127.0.0.1\n";
        let bp = parse_blueprint("b.yaml", text).unwrap();
        assert_eq!(bp.services[1].bind.as_deref(), Some("127.0.0.1"));
        let bad = text.replace("127.0.0.1", "localhost");
        let e = parse_blueprint("b.yaml", &bad).unwrap_err().to_string();
        assert!(e.contains("must be an IP address"), "{e}");
    }

    #[test]
    fn load_balancer_limits_out_of_range_are_refused_with_their_positions() {
        let text = "name: s\nservices:\n  - id: web\n    type: cluster\n    member:\n      image: x\n      ports: [80]\n  - id: lb\n    type: load-balancer\n    target: web\n    port: 0\n    mode: http\n    limits:\n      max_connections: 0\n      idle_timeout: 10ms\n      max_buffered_bytes: 100\n";
        let e = parse_blueprint("b.yaml", text).unwrap_err().to_string();
        assert!(
            e.contains("b.yaml:14:24: services[1].limits.max_connections: must be between 1 and 1000000, got 0"),
            "{e}"
        );
        assert!(
            e.contains("services[1].limits.idle_timeout: must be between 100ms and a week"),
            "{e}"
        );
        assert!(
            e.contains("services[1].limits.max_buffered_bytes: must be between 8192"),
            "{e}"
        );
        let unknown = text.replace("      idle_timeout: 10ms\n", "      idle: 10s\n");
        let e = parse_blueprint("b.yaml", &unknown).unwrap_err().to_string();
        assert!(e.contains("services[1].limits"), "{e}");
        assert!(e.contains("idle"), "{e}");
        let on_a_cluster = "name: s\nservices:\n  - id: web\n    type: cluster\n    mode: http\n    member:\n      image: x\n";
        let e = parse_blueprint("b.yaml", on_a_cluster)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`mode` is only for a load balancer"), "{e}");
    }

    #[test]
    fn defaults_are_in_range() {
        assert!(super::lb_limit_errors(
            &crate::blueprint::FieldPath::root(),
            &crate::blueprint::LbLimits::default()
        )
        .is_empty());
    }

    #[test]
    fn every_limit_out_of_range_is_named() {
        let l = crate::blueprint::LbLimits {
            max_connections: 0,
            header_timeout: std::time::Duration::ZERO,
            idle_timeout: std::time::Duration::from_secs(30 * 24 * 3600),
            max_buffered_bytes: 100,
        };
        let errs: Vec<String> =
            super::lb_limit_errors(&crate::blueprint::FieldPath::root().key("limits"), &l)
                .iter()
                .map(|e| e.to_string())
                .collect();
        assert_eq!(errs.len(), 4, "{errs:?}");
        for key in [
            "max_connections",
            "header_timeout",
            "idle_timeout",
            "max_buffered_bytes",
        ] {
            assert!(errs.iter().any(|e| e.contains(key)), "{key}: {errs:?}");
        }
    }
}
