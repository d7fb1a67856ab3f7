//! The pool's autoscaler configuration against the pure headroom.

use super::*;
use crate::placement::headroom;
use crate::policy::autoscaler::{evaluate, AutoscalerHistory};

/// The pool's autoscaler over the pure headroom: the size it asks for
/// is exactly the hosts the containers and headroom need.
fn wants(cfg: &LocationConfig, hosts: u32, used: u32) -> Option<u32> {
    let a = HostPool::autoscaler_config(cfg);
    a.check().unwrap();
    let hr = headroom(hosts, 4, used, &cfg.headroom);
    let demand = hr.desired_hosts as f64 / hosts.max(1) as f64;
    let mut h = AutoscalerHistory::default();
    // Watched for longer than both windows with the same demand.
    let mut last = None;
    for t in (0..=60_000).step_by(1_000) {
        last = evaluate(&a, &mut h, Some((demand, t)), hosts, t).resize_to;
    }
    last
}

fn cfg(yaml: &str) -> LocationConfig {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn the_pool_autoscaler_asks_for_the_hosts_headroom_needs() {
    let c = cfg("provisioner: { type: local-dockerd }\nmax_hosts: 10\nplacement: { max_containers: 4 }\nheadroom: { count: 2 }\ncold_window: 20s\n");
    // 3 hosts, 11 used of 12: 1 free, 2 wanted: hot, one more host.
    assert_eq!(wants(&c, 3, 11), Some(4));
    // 3 hosts, 10 used: 2 free: exactly right.
    assert_eq!(wants(&c, 3, 10), None);
    // 3 hosts, 2 used: 1 host holds 2 + 2: shrink one at a time.
    assert_eq!(wants(&c, 3, 2), Some(2));
    // Never below min_hosts.
    assert_eq!(wants(&c, 1, 0), None);
    // 7 hosts wanting 3 (float noise must not ask for 4).
    assert_eq!(wants(&c, 7, 10), Some(6));
}

#[test]
fn a_short_spike_does_not_add_a_host() {
    let c = cfg(
        "provisioner: { type: local-dockerd }\nplacement: { max_containers: 4 }\nhot_window: 5s\n",
    );
    let a = HostPool::autoscaler_config(&c);
    let mut h = AutoscalerHistory::default();
    // 2 hosts full (8 of 8) wants 2 = ok; 9 wants 3 for 3 s only.
    for t in (0..20_000).step_by(1_000) {
        let demand = if (5_000..8_000).contains(&t) {
            1.5
        } else {
            1.0
        };
        let e = evaluate(&a, &mut h, Some((demand, t)), 2, t);
        assert_eq!(e.resize_to, None, "at {t} ms: {}", e.reason);
    }
    // Sustained for the hot window: grows.
    let mut grew = None;
    for t in (20_000..30_000).step_by(1_000) {
        grew = grew.or(evaluate(&a, &mut h, Some((1.5, t)), 2, t).resize_to);
    }
    assert_eq!(grew, Some(3));
}

#[test]
fn a_failed_start_list_is_asked_again_until_the_host_would_be_on_fire() {
    let on_fire_after = Duration::from_secs(30);
    assert!(list_again(Duration::from_secs(5), on_fire_after));
    assert!(list_again(Duration::from_millis(29_999), on_fire_after));
    assert!(!list_again(on_fire_after, on_fire_after));
    assert!(!list_again(Duration::from_secs(60), on_fire_after));
}
