//! The pool's rules without an engine: unit tests for each, and
//! properties over random sequences of what happens to a pool.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::blueprint::PlacementSpec;
use crate::placement::{decide, Rules};

/// Members are named by a number, so tests can tell who was told.
type Model = PoolModel<(), u32>;

const SEC: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        min_hosts: 1,
        max_hosts: 5,
        can_provision: true,
        max_per_host: 4,
        headroom: HeadroomSpec::default(),
        on_fire_after: 10 * SEC,
        silent_hold_percent: 55,
        cold_window: 20 * SEC,
    }
}

fn saved(name: &str, index: u32) -> SavedHost {
    SavedHost {
        name: name.into(),
        index,
        ..SavedHost::default()
    }
}

/// A static host (`None`) or the provisioner's `index`-th.
fn host(name: &str, index: Option<u32>) -> PoolHost<(), u32> {
    PoolHost::new(
        name,
        "127.0.0.1",
        Default::default(),
        (),
        index.map(|i| saved(name, i)),
        Duration::ZERO,
    )
}

fn cap() -> Option<Capacity> {
    Some(Capacity {
        cpus: 4.0,
        memory_bytes: 8 << 30,
    })
}

/// Every host answered its first ping and had its containers listed.
fn up(m: &mut Model, now: Duration) {
    let names: Vec<String> = m.hosts().iter().map(|h| h.name().to_string()).collect();
    for (i, n) in names.iter().enumerate() {
        m.begin_ping(i);
        m.pinged(n, cap(), now);
        m.listed(n);
    }
}

fn pool(hosts: Vec<PoolHost<(), u32>>) -> Model {
    let mut m = PoolModel::new("pool", limits(), hosts, 0, &[]);
    up(&mut m, Duration::ZERO);
    m
}

fn req(entity: &str) -> Request {
    Request::new("app", entity).resources(0.5, 100)
}

fn key(entity: &str) -> MemberKey {
    ("app".to_string(), entity.to_string())
}

#[test]
fn new_hosts_are_numbered_past_every_number_in_use_or_stored() {
    let m = PoolModel::<(), u32>::new(
        "pool",
        limits(),
        vec![host("pool-1", Some(1)), host("pool-7", Some(7))],
        3,
        &[],
    );
    assert_eq!(m.next_index(), 8);
    // The store remembers a number past every host, gone ones too.
    let m = PoolModel::<(), u32>::new("pool", limits(), vec![host("pool-1", Some(1))], 9, &[]);
    assert_eq!(m.next_index(), 9);
    // Static hosts only: past their count.
    let m = PoolModel::<(), u32>::new(
        "pool",
        limits(),
        vec![host("a", None), host("b", None)],
        0,
        &[],
    );
    assert_eq!(m.next_index(), 3);
}

#[test]
fn one_host_is_provisioned_at_a_time_under_a_fresh_number() {
    let mut m = pool(vec![host("pool-1", Some(1))]);
    assert_eq!(m.begin_provisioning(), Some((2, "pool-2".to_string())));
    assert!(m.is_provisioning());
    assert_eq!(m.begin_provisioning(), None);
    // Failed: the number is not reused.
    m.provisioning_failed();
    assert_eq!(m.begin_provisioning(), Some((3, "pool-3".to_string())));
    let at = m.provisioned(host("pool-3", Some(3)));
    assert_eq!(m.host(at).name(), "pool-3");
    assert!(m.host(at).listed, "a new host has nothing to adopt");
    assert!(
        !m.host(at).state.available,
        "placeable after its first ping"
    );
    assert_eq!(m.begin_provisioning(), Some((4, "pool-4".to_string())));
}

#[test]
fn no_host_is_provisioned_by_a_static_pool_or_past_max_hosts() {
    let mut l = limits();
    l.can_provision = false;
    let mut m: Model = PoolModel::new("pool", l, vec![host("a", None)], 0, &[]);
    assert!(!m.can_grow());
    assert_eq!(m.begin_provisioning(), None);

    let mut l = limits();
    l.max_hosts = 2;
    let mut m: Model = PoolModel::new("pool", l, vec![host("pool-1", Some(1))], 0, &[]);
    assert!(m.begin_provisioning().is_some());
    m.provisioned(host("pool-2", Some(2)));
    assert_eq!(m.begin_provisioning(), None);
    // A going host no longer counts against max_hosts.
    m.decommission("pool-2");
    assert!(m.can_grow());
}

#[test]
fn provisioned_hosts_join_in_name_order() {
    let mut m = pool(vec![host("pool-1", Some(1)), host("pool-3", Some(3))]);
    m.begin_provisioning();
    assert_eq!(m.provisioned(host("pool-2", Some(2))), 1);
    let names: Vec<&str> = m.hosts().iter().map(|h| h.name()).collect();
    assert_eq!(names, ["pool-1", "pool-2", "pool-3"]);
    assert!(!m.is_provisioning());
}

#[test]
fn placements_wait_until_every_host_is_pinged_and_listed() {
    let mut m: Model = PoolModel::new(
        "pool",
        limits(),
        vec![host("a", None), host("b", None)],
        0,
        &[],
    );
    assert!(!m.ready());
    m.begin_ping(0);
    m.pinged("a", cap(), Duration::ZERO);
    m.listed("a");
    assert!(!m.ready());
    // A silent ping counts as an answer: capacity is then known (none).
    m.begin_ping(1);
    m.pinged("b", None, Duration::ZERO);
    assert!(!m.ready());
    m.listed("b");
    assert!(m.ready());
    // A going host never holds placements up.
    let mut m: Model = PoolModel::new(
        "pool",
        limits(),
        vec![host("a", None), host("b", Some(1))],
        0,
        &[],
    );
    m.begin_ping(0);
    m.pinged("a", cap(), Duration::ZERO);
    m.listed("a");
    m.decommission("b");
    assert!(m.ready());
}

#[test]
fn a_reservation_is_counted_once_and_freed_where_asked() {
    let mut m = pool(vec![host("a", None), host("b", None)]);
    m.reserve(0, &req("web"), 1);
    m.reserve(0, &req("web"), 1);
    let a = &m.host(0).state;
    assert_eq!(
        a.placed.len(),
        1,
        "placed again on the same host: one reservation"
    );
    assert_eq!((a.reserved_cpus, a.reserved_memory_bytes), (0.5, 100));
    // A move: new host first, the old one released after.
    m.reserve(1, &req("web"), 1);
    m.release(&key("web"), Some("a"));
    assert_eq!(m.host(0).state.containers(), 0);
    assert_eq!(m.host(0).state.reserved_cpus, 0.0);
    assert_eq!(m.host(1).state.containers(), 1);
    // Releasing on the wrong host changes nothing.
    m.release(&key("web"), Some("a"));
    assert_eq!(m.host(1).state.containers(), 1);
    m.release(&key("web"), None);
    assert_eq!(m.host(1).state.containers(), 0);
    assert!(m.host(1).members.is_empty());
}

#[test]
fn a_release_naming_no_host_frees_every_reservation_of_the_container() {
    let mut m = pool(vec![host("a", None), host("b", None), host("c", None)]);
    m.reserve(0, &req("web"), 1);
    // A move under way: reserved on both.
    m.reserve(2, &req("web"), 1);
    m.reserve(1, &req("db"), 1);
    m.release(&key("web"), None);
    assert_eq!(m.host(0).state.containers(), 0);
    assert_eq!(m.host(2).state.containers(), 0);
    assert_eq!(m.host(1).state.containers(), 1, "another container's stays");
    assert!(!m.reserved_on.contains_key(&key("web")));
    // Placed again after: found again.
    m.reserve(0, &req("web"), 1);
    m.release(&key("web"), None);
    assert_eq!(m.host(0).state.containers(), 0);
}

#[test]
fn a_container_found_at_start_is_adopted_on_its_host_once() {
    let mut m = pool(vec![host("a", None), host("b", None)]);
    m.found(key("web"), "b");
    m.found(key("db"), "b");
    // A move leaves its host on purpose, and keeps the finding.
    assert_eq!(m.adopt(&key("web"), true), None);
    assert_eq!(m.adopt(&key("web"), false), Some(1));
    assert_eq!(m.adopt(&key("web"), false), None);
    // Removed before its first placement: forgotten.
    m.release(&key("db"), None);
    assert_eq!(m.adopt(&key("db"), false), None);
}

#[test]
fn a_silent_host_is_on_fire_after_its_grace_and_gives_its_containers_back() {
    let mut m = pool(vec![host("a", None), host("b", None)]);
    m.reserve(0, &req("web"), 7);
    m.found(key("db"), "a");
    m.begin_ping(0);
    assert_eq!(m.pinged("a", None, 9 * SEC), Pinged::Silent);
    assert!(m.host(0).state.available, "still within on_fire_after");
    m.begin_ping(0);
    let Pinged::OnFire(members) = m.pinged("a", None, 10 * SEC) else {
        panic!("not on fire");
    };
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].1.contact, 7);
    let a = m.host(0);
    assert!(a.on_fire && !a.state.available);
    assert_eq!((a.state.containers(), a.state.reserved_cpus), (0, 0.0));
    assert_eq!(a.phase(), HostPhase::OnFire);
    assert_eq!(
        m.adopt(&key("db"), false),
        None,
        "found there: gone with it"
    );
    assert_eq!(m.running_hosts(), 1);
    // Told once: still silent is not on fire again.
    m.begin_ping(0);
    assert_eq!(m.pinged("a", None, 11 * SEC), Pinged::Silent);
    m.begin_ping(0);
    assert_eq!(m.pinged("a", cap(), 12 * SEC), Pinged::AnswersAgain);
    assert!(m.host(0).state.available);
    assert_eq!(m.pinged("gone", cap(), 12 * SEC), Pinged::Unknown);
}

#[test]
fn most_of_the_pool_silent_at_once_is_held_not_moved_until_fewer_are_silent() {
    let names = ["a", "b", "c", "d"];
    let mut m = pool(names.iter().map(|n| host(n, None)).collect());
    for (i, n) in names.iter().enumerate() {
        m.begin_ping(i);
        assert_eq!(m.pinged(n, cap(), SEC), Pinged::Answered);
    }
    m.reserve(0, &req("web"), 7);
    m.reserve(1, &req("db"), 8);
    // a, b and c go silent together: 3 of 4 (75%) at once.
    m.begin_ping(3);
    assert_eq!(m.pinged("d", cap(), 11 * SEC), Pinged::Answered);
    m.begin_ping(0);
    assert_eq!(
        m.pinged("a", None, 11 * SEC),
        Pinged::Held {
            silent: 3,
            of: 4,
            first: true
        }
    );
    m.begin_ping(1);
    assert_eq!(
        m.pinged("b", None, 11 * SEC),
        Pinged::Held {
            silent: 3,
            of: 4,
            first: false
        },
        "told once a hold"
    );
    let a = m.host(0);
    assert!(!a.on_fire && !a.state.available, "held: takes nothing new");
    assert_eq!(a.state.containers(), 1, "and keeps its container");
    // c answers again: 2 of 4 silent (50%) is below the hold; a still
    // silent is on fire now and gives its container back.
    m.begin_ping(2);
    assert_eq!(m.pinged("c", cap(), 12 * SEC), Pinged::Answered);
    m.begin_ping(0);
    let Pinged::OnFire(members) = m.pinged("a", None, 12 * SEC) else {
        panic!("not on fire once fewer are silent");
    };
    assert_eq!(members[0].1.contact, 7);
    // b answers: it never moved, so it is simply back.
    m.begin_ping(1);
    assert_eq!(m.pinged("b", cap(), 13 * SEC), Pinged::Answered);
    assert!(m.host(1).state.available && m.host(1).state.containers() == 1);
}

#[test]
fn a_pool_of_two_moves_off_its_one_silent_host() {
    assert!(!held(1, 2, 55), "half of two is a fire, not a partition");
    assert!(!held(2, 2, 55), "too small to tell");
    assert!(held(3, 3, 100) && !held(2, 3, 100));
    assert!(held(550, 1000, 55) && !held(549, 1000, 55));
}

#[test]
fn one_ping_at_a_time_and_none_to_a_going_host() {
    let mut m = pool(vec![host("a", None), host("b", Some(1))]);
    assert!(m.begin_ping(0));
    assert!(!m.begin_ping(0));
    m.pinged("a", cap(), SEC);
    assert!(m.begin_ping(0));
    m.decommission("b");
    assert!(!m.begin_ping(1));
}

#[test]
fn only_provisioned_hosts_on_fire_past_the_cold_window_are_given_up() {
    let mut m = pool(vec![host("a", None), host("pool-1", Some(1))]);
    for (i, n) in ["a", "pool-1"].iter().enumerate() {
        m.begin_ping(i);
        m.pinged(n, None, 10 * SEC);
    }
    assert!(m.dead_hosts(29 * SEC).is_empty());
    assert_eq!(m.dead_hosts(30 * SEC), ["pool-1"]);
    m.decommission("pool-1");
    assert!(m.dead_hosts(60 * SEC).is_empty());
}

#[test]
fn a_drained_host_takes_nothing_and_its_slots_are_not_headroom() {
    let mut m = pool(vec![host("a", None), host("b", None)]);
    m.reserve(0, &req("web"), 1);
    assert_eq!(m.host_op("a", HostOpKind::Drain), Ok(0));
    let a = m.host(0);
    assert!(a.cordoned && !a.state.available);
    assert_eq!(a.phase(), HostPhase::Draining);
    let hr = m.headroom();
    assert_eq!((hr.hosts, hr.possible, hr.used), (1, 4, 1));
    // A drained host answering its ping stays closed.
    m.begin_ping(0);
    m.pinged("a", cap(), SEC);
    assert!(!m.host(0).state.available);
    m.release(&key("web"), None);
    assert_eq!(m.host(0).phase(), HostPhase::Cordoned);
    assert_eq!(m.host_op("a", HostOpKind::Uncordon), Ok(0));
    assert!(m.host(0).state.available);
    assert_eq!(m.host(0).phase(), HostPhase::Running);
}

#[test]
fn an_operator_names_a_host_of_the_pool() {
    let mut m = pool(vec![host("a", None), host("pool-1", Some(1))]);
    m.decommission("pool-1");
    let e = m.host_op("pool-1", HostOpKind::Drain).unwrap_err();
    assert_eq!(
        e.to_string(),
        "location pool has no host `pool-1`; its hosts: a, pool-1"
    );
}

#[test]
fn uncordoning_a_host_never_pinged_keeps_it_closed() {
    let mut m: Model = PoolModel::new("pool", limits(), vec![host("a", None)], 0, &["a".into()]);
    assert!(m.is_cordoned("a"));
    m.host_op("a", HostOpKind::Uncordon).unwrap();
    assert!(!m.host(0).state.available);
}

#[test]
fn the_hosts_needed_never_drop_below_those_that_cannot_go() {
    // A static host, a provisioned one with a container, two empty ones.
    let mut m = pool(vec![
        host("a", None),
        host("pool-1", Some(1)),
        host("pool-2", Some(2)),
        host("pool-3", Some(3)),
    ]);
    m.reserve(1, &req("web"), 1);
    let hr = m.headroom();
    assert_eq!(hr.desired_hosts, 1);
    assert_eq!(m.hosts_needed(&hr), 2);
    assert_eq!(m.demand(&hr), 0.5);
}

#[test]
fn the_host_to_go_is_a_drained_empty_one_then_the_newest_empty_one() {
    let mut m = pool(vec![
        host("a", None),
        host("pool-1", Some(1)),
        host("pool-2", Some(2)),
        host("pool-3", Some(3)),
    ]);
    m.reserve(3, &req("web"), 1);
    // pool-3 has a container, `a` is the operator's: pool-2.
    assert_eq!(m.choose_to_go(), Some(2));
    m.host_op("pool-1", HostOpKind::Drain).unwrap();
    assert_eq!(m.choose_to_go(), Some(1));
    m.reserve(1, &req("db"), 2);
    assert_eq!(m.choose_to_go(), Some(2));
    m.reserve(2, &req("db2"), 2);
    assert_eq!(m.choose_to_go(), None);
}

#[test]
fn a_shrink_removes_empty_provisioned_hosts_down_to_min_hosts() {
    let mut m = pool(vec![
        host("a", None),
        host("pool-1", Some(1)),
        host("pool-2", Some(2)),
        host("pool-3", Some(3)),
    ]);
    m.reserve(1, &req("web"), 1);
    assert_eq!(
        m.resize(1, false),
        Ok(Resize::Done {
            size: 2,
            going: vec!["pool-3".into(), "pool-2".into()]
        })
    );
    assert_eq!(m.resize(1, false), Err(ResizeError::NothingToRemove));
    assert_eq!(
        m.resize(2, false),
        Ok(Resize::Done {
            size: 2,
            going: vec![]
        })
    );

    let mut l = limits();
    l.min_hosts = 2;
    let mut m: Model = PoolModel::new(
        "pool",
        l,
        vec![
            host("pool-1", Some(1)),
            host("pool-2", Some(2)),
            host("pool-3", Some(3)),
        ],
        0,
        &[],
    );
    up(&mut m, Duration::ZERO);
    assert_eq!(
        m.resize(1, false),
        Ok(Resize::Done {
            size: 2,
            going: vec!["pool-3".into()]
        })
    );
}

#[test]
fn no_shrink_while_placements_wait_or_a_host_is_being_made() {
    let mut m = pool(vec![host("pool-1", Some(1)), host("pool-2", Some(2))]);
    assert_eq!(m.resize(1, true), Err(ResizeError::NothingToRemove));
    m.begin_provisioning();
    assert_eq!(m.resize(1, false), Err(ResizeError::NothingToRemove));
}

#[test]
fn a_grow_provisions_one_host_at_a_time_until_it_is_there() {
    let mut m = pool(vec![host("pool-1", Some(1))]);
    assert_eq!(m.grow_step(), GrowStep::Wait);
    assert_eq!(m.resize(3, false), Ok(Resize::Growing));
    assert_eq!(m.grow_step(), GrowStep::Provision { want: 3 });
    m.begin_provisioning();
    assert_eq!(m.grow_step(), GrowStep::Wait);
    m.provisioned(host("pool-2", Some(2)));
    assert_eq!(m.grow_step(), GrowStep::Provision { want: 3 });
    m.begin_provisioning();
    m.provisioned(host("pool-3", Some(3)));
    assert_eq!(m.grow_step(), GrowStep::Reached(3));
    assert_eq!(m.grow_step(), GrowStep::Wait, "answered once");
    // A failed provisioning drops the wish.
    m.resize(4, false).unwrap();
    m.begin_provisioning();
    m.provisioning_failed();
    assert_eq!(m.grow_step(), GrowStep::Wait);
}

#[test]
fn a_grow_past_max_hosts_or_by_a_static_pool_is_refused() {
    let mut m = pool(vec![host("pool-1", Some(1))]);
    let e = m.resize(6, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient capacity: 6 hosts wanted, location pool has at most 5 (max_hosts)"
    );
    let mut l = limits();
    l.can_provision = false;
    let mut m: Model = PoolModel::new("pool", l, vec![host("a", None)], 0, &[]);
    up(&mut m, Duration::ZERO);
    let e = m.resize(2, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "insufficient capacity: 2 hosts wanted, location pool has at most 5 (its provisioner is `static`)"
    );
    // On fire hosts count against max_hosts but not the size: refused
    // when the step comes.
    let mut l = limits();
    l.max_hosts = 2;
    let mut m: Model = PoolModel::new(
        "pool",
        l,
        vec![host("pool-1", Some(1)), host("pool-2", Some(2))],
        0,
        &[],
    );
    up(&mut m, Duration::ZERO);
    m.begin_ping(1);
    m.pinged("pool-2", None, 10 * SEC);
    assert_eq!(m.resize(2, false), Ok(Resize::Growing));
    assert_eq!(m.grow_step(), GrowStep::Refused { want: 2 });
}

#[test]
fn a_container_that_fits_nowhere_may_wait_for_a_new_host_unless_it_is_a_cpu_move() {
    let mut m = pool(vec![host("a", None), host("b", None)]);
    m.host_op("b", HostOpKind::Drain).unwrap();
    assert!(m.may_grow_for(None));
    assert!(m.may_grow_for(Some("b")), "leaving a drained host");
    assert!(!m.may_grow_for(Some("a")), "a CPU move stays");
    let mut l = limits();
    l.max_hosts = 2;
    let mut m: Model = PoolModel::new("pool", l, vec![host("a", None), host("b", None)], 0, &[]);
    assert!(!m.may_grow_for(None));
    let mut l = limits();
    l.max_hosts = 3;
    m = PoolModel::new("pool", l, vec![host("a", None), host("b", None)], 0, &[]);
    m.begin_provisioning();
    assert!(m.may_grow_for(None), "the host being made may take it");
}

#[test]
fn drained_members_are_those_on_cordoned_answering_hosts() {
    let mut m = pool(vec![host("a", None), host("b", None), host("c", None)]);
    m.reserve(0, &req("x"), 1);
    m.reserve(1, &req("y"), 2);
    m.reserve(2, &req("z"), 3);
    m.host_op("a", HostOpKind::Drain).unwrap();
    m.host_op("b", HostOpKind::Drain).unwrap();
    // a and c answer; b alone is silent, so on fire (not held).
    for (i, n) in [(0, "a"), (2, "c")] {
        m.begin_ping(i);
        m.pinged(n, cap(), 10 * SEC);
    }
    m.begin_ping(1);
    assert!(matches!(m.pinged("b", None, 10 * SEC), Pinged::OnFire(_)));
    let told: Vec<(&str, u32)> = m.drained_members().map(|(h, m)| (h, m.contact)).collect();
    assert_eq!(told, [("a", 1)]);
}

#[test]
fn images_are_copied_from_other_answering_hosts() {
    let mut m: PoolModel<&str, ()> = PoolModel::new(
        "pool",
        limits(),
        vec![
            PoolHost::new("a", "", Default::default(), "A", None, Duration::ZERO),
            PoolHost::new("b", "", Default::default(), "B", None, Duration::ZERO),
            PoolHost::new("c", "", Default::default(), "C", None, Duration::ZERO),
        ],
        0,
        &[],
    );
    m.begin_ping(2);
    m.pinged("c", None, 10 * SEC);
    assert_eq!(m.image_sources(0), [&"B"]);
}

#[test]
fn the_store_keeps_provisioned_hosts_until_gone_and_the_cordons() {
    let mut m = pool(vec![
        host("a", None),
        host("pool-1", Some(1)),
        host("pool-2", Some(2)),
    ]);
    m.host_op("a", HostOpKind::Drain).unwrap();
    m.decommission("pool-2");
    let s = m.saved(serde_json::json!({"k": 1}));
    assert_eq!(s.next_index, 4);
    assert_eq!(s.hosts, [saved("pool-1", 1), saved("pool-2", 2)]);
    assert_eq!(s.cordoned, ["a"]);
    assert_eq!(s.placement, serde_json::json!({"k": 1}));
    assert!(m.remove("pool-2").is_some());
    assert_eq!(m.saved(serde_json::Value::Null).hosts, [saved("pool-1", 1)]);
    assert!(m.remove("pool-2").is_none());
}

#[test]
fn sensors_of_a_going_or_unknown_host_are_ignored() {
    let mut m = pool(vec![host("a", None), host("pool-1", Some(1))]);
    assert!(m.sensed("a", 0.5, 2));
    assert_eq!(m.host(0).state.containers(), 2);
    m.decommission("pool-1");
    assert!(!m.sensed("pool-1", 0.5, 2));
    assert!(!m.sensed("x", 0.5, 2));
}

#[test]
fn the_queue_decides_in_order_one_at_a_time_behind_a_held_head() {
    let mut q = PlacementQueue::default();
    for w in 1..=3 {
        q.push(w);
    }
    assert_eq!(q.next(false), None, "not ready");
    assert_eq!(q.next(true), Some(1));
    q.deciding();
    assert_eq!(q.next(true), None, "one decision at a time");
    q.decided();
    assert_eq!(q.next(true), Some(2));
    q.hold(2);
    assert!(q.is_held());
    assert_eq!(q.next(true), None, "held for the new host");
    q.unhold();
    assert_eq!(q.next(true), Some(2), "first in line again");
    q.put_back(2);
    assert_eq!(q.len(), 2);
    q.hold(9);
    assert_eq!(q.take_all(), [9, 2, 3]);
    assert!(!q.is_held() && q.is_empty());
}

/// What can happen to a pool, for the properties below.
#[derive(Debug, Clone)]
enum Op {
    Place(u8),
    Release(u8, Option<u8>),
    Ping(u8, bool),
    Drain(u8),
    Uncordon(u8),
    Provision(bool),
    Resize(u8),
    Gone,
    Tick(u8),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12).prop_map(Op::Place),
        2 => (0u8..12, proptest::option::of(0u8..8)).prop_map(|(e, h)| Op::Release(e, h)),
        3 => (0u8..8, any::<bool>()).prop_map(|(h, ok)| Op::Ping(h, ok)),
        1 => (0u8..8).prop_map(Op::Drain),
        1 => (0u8..8).prop_map(Op::Uncordon),
        2 => any::<bool>().prop_map(Op::Provision),
        2 => (0u8..8).prop_map(Op::Resize),
        1 => Just(Op::Gone),
        2 => (0u8..15).prop_map(Op::Tick),
    ]
}

fn check(m: &Model) -> Result<(), TestCaseError> {
    for h in m.hosts() {
        let s = &h.state;
        // Placed and members agree one to one: nothing counted twice.
        let placed: BTreeSet<(String, String)> = s
            .placed
            .iter()
            .map(|p| (p.app.clone(), p.entity.clone()))
            .collect();
        prop_assert_eq!(placed.len(), s.placed.len(), "{} placed twice", h.name());
        let members: BTreeSet<MemberKey> = h.members.keys().cloned().collect();
        prop_assert_eq!(&placed, &members);
        // Every reservation is where a release without a host looks.
        for key in &members {
            prop_assert!(
                m.reserved_on
                    .get(key)
                    .is_some_and(|on| on.iter().any(|n| n == h.name())),
                "{:?} on {} is not indexed",
                key,
                h.name()
            );
        }
        let cpus: f64 = h.members.values().map(|m| m.cpus).sum();
        prop_assert!((s.reserved_cpus - cpus).abs() < 1e-9);
        let mem: u64 = h.members.values().map(|m| m.memory_bytes).sum();
        prop_assert_eq!(s.reserved_memory_bytes, mem);
        if h.cordoned || h.on_fire || h.decommissioning || !h.pinged_once {
            prop_assert!(!s.available, "{} open while it must not take", h.name());
        }
        if h.decommissioning || h.on_fire {
            prop_assert!(h.members.is_empty(), "{} going with containers", h.name());
        }
    }
    let names: BTreeSet<&str> = m.hosts().iter().map(|h| h.name()).collect();
    prop_assert_eq!(names.len(), m.hosts().len());
    prop_assert!(
        m.hosts_needed(&m.headroom()) >= m.hosts().iter().filter(|h| h.must_stay()).count() as u32
    );
    Ok(())
}

proptest! {
    #[test]
    fn a_pool_keeps_its_books_whatever_happens(ops in prop::collection::vec(arb_op(), 1..60)) {
        let mut m: Model = PoolModel::new(
            "pool",
            limits(),
            vec![host("a", None), host("pool-1", Some(1))],
            0,
            &[],
        );
        up(&mut m, Duration::ZERO);
        let rules = Rules::resolve(&PlacementSpec::default(), &[]);
        let mut now = Duration::ZERO;
        let mut numbers: BTreeSet<u32> = BTreeSet::from([1]);
        let mut making: Option<(u32, String)> = None;
        let mut going: Vec<String> = Vec::new();
        for op in ops {
            match op {
                Op::Place(e) => {
                    let r = req(&format!("e{e}"));
                    // Placement decides over the model's states, as the pool asks it.
                    if let Some(i) = decide(&m.states(), &r, &rules).chosen {
                        let h = m.host(i);
                        prop_assert!(h.state.available && !h.cordoned && h.is_running());
                        m.reserve(i, &r, e as u32);
                    }
                }
                Op::Release(e, h) => {
                    let host = h.and_then(|h| m.hosts().get(h as usize)).map(|h| h.name().to_string());
                    m.release(&key(&format!("e{e}")), host.as_deref());
                }
                Op::Ping(h, ok) => {
                    if let Some(name) = m.hosts().get(h as usize).map(|h| h.name().to_string()) {
                        if m.begin_ping(h as usize) {
                            m.pinged(&name, if ok { cap() } else { None }, now);
                        }
                    }
                }
                Op::Drain(h) | Op::Uncordon(h) => {
                    if let Some(name) = m.hosts().get(h as usize).map(|h| h.name().to_string()) {
                        let kind = if matches!(op, Op::Drain(_)) { HostOpKind::Drain } else { HostOpKind::Uncordon };
                        let _ = m.host_op(&name, kind);
                    }
                }
                Op::Provision(ok) => match making.take() {
                    None => {
                        if let Some((index, name)) = m.begin_provisioning() {
                            prop_assert!(numbers.insert(index), "number {} again", index);
                            prop_assert_eq!(&name, &format!("pool-{index}"));
                            making = Some((index, name));
                        }
                    }
                    Some((index, name)) if ok => {
                        let i = m.provisioned(host(&name, Some(index)));
                        m.begin_ping(i);
                        m.pinged(&name, cap(), now);
                    }
                    Some(_) => m.provisioning_failed(),
                },
                Op::Resize(size) => {
                    let before: Vec<(String, bool)> = m
                        .hosts()
                        .iter()
                        .map(|h| (h.name().to_string(), h.may_go()))
                        .collect();
                    let running = m.running_hosts();
                    if let Ok(Resize::Done { size: reached, going: g }) = m.resize(size as u32, false) {
                        for name in &g {
                            prop_assert!(
                                before.iter().any(|(n, ok)| n == name && *ok),
                                "{} was not free to go", name
                            );
                        }
                        prop_assert!(reached >= (size as u32).max(limits().min_hosts).min(running));
                        going.extend(g);
                    }
                    if let GrowStep::Provision { .. } = m.grow_step() {
                        prop_assert!(m.can_grow());
                    }
                }
                Op::Gone => {
                    if let Some(name) = going.pop() {
                        prop_assert!(m.remove(&name).is_some());
                    }
                }
                Op::Tick(s) => {
                    now += SEC * s as u32;
                    for name in m.dead_hosts(now) {
                        let h = &m.hosts()[m.position(&name).unwrap()];
                        prop_assert!(h.provisioned.is_some() && h.members.is_empty());
                        m.decommission(&name);
                        going.push(name);
                    }
                }
            }
            check(&m)?;
            prop_assert!(m.next_index() > *numbers.iter().max().unwrap());
            prop_assert!(m.live_hosts() <= limits().max_hosts);
        }
    }
}
