//! Filters, scores, explanations and their properties.

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
    let none: [HostState; 0] = [];
    let d = decide(&none, &req, &Rules::default());
    assert_eq!(
        d.summary(&none, &req, &Rules::default()),
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

#[test]
fn a_large_pool_summary_names_the_chosen_the_runners_up_and_counts_rejections_by_rule() {
    let mut hs = hosts(1_000);
    let r = rules("{ max_containers: 2 }");
    // host-1..host-990 are full, host-991..host-995 are not answering,
    // host-996..host-1000 are free, host-998 the freest.
    for (i, h) in hs.iter_mut().enumerate() {
        let n = match i {
            0..990 => 2,
            995 | 996 | 998 | 999 => 1,
            _ => 0,
        };
        for k in 0..n {
            h.place(&Request::new("other", format!("x-{i}-{k}")));
        }
        h.available = !(990..995).contains(&i);
    }
    let req = Request::new("shop", "web-0");
    let d = decide(&hs, &req, &r);
    assert_eq!(d.chosen, Some(997));
    let s = d.summary(&hs, &req, &r);
    assert_eq!(
        s,
        "shop/web-0 → host-998 (ranked 1 of 5 by breadth-first: 0 of this entity, 0 containers); \
         next host-996 (0 of this entity, 1 containers), host-997 (0 of this entity, 1 containers); \
         995 rejected: 990 by max-containers(2) (host-1: runs 2, host-2: runs 2, host-3: runs 2, \
         and 987 more), 5 by unavailable (not answering, or being provisioned or removed) \
         (host-991, host-992, host-993, and 2 more)"
    );
    // The usual deploy: nothing rejected, three hosts named, whatever the
    // pool's size.
    let free = hosts(1_000);
    let s = decide(&free, &req, &r).summary(&free, &req, &r);
    assert_eq!(
        s,
        "shop/web-0 → host-1 (ranked 1 of 1000 by breadth-first: 0 of this entity, 0 containers); \
         next host-2 (0 of this entity, 0 containers), host-3 (0 of this entity, 0 containers)"
    );
    // Nothing fits: the rules that said no, and on which hosts.
    let mut full = hosts(20);
    let anti = rules("{ affinity: [{ same: entity, not: true }], max_containers: 30 }");
    for h in &mut full {
        h.place(&Request::new("shop", "web-1").member_of("web"));
    }
    full[4].reserved_cpus = 2.0;
    let req = Request::new("shop", "web-2")
        .member_of("web")
        .resources(0.5, 0);
    let s = decide(&full, &req, &anti).summary(&full, &req, &anti);
    assert_eq!(
        s,
        "no host fits shop/web-2; 20 rejected: 19 by anti-affinity(same-entity) \
         (host-1, host-2, host-3, and 16 more), \
         1 by reservation-fit (host-5: wants 0.5 cpus, 0.00 unreserved)"
    );
}

#[test]
fn a_small_pool_summary_explains_every_host_in_host_order() {
    let hs = hosts(super::explain::SUMMARY_HOSTS);
    let req = Request::new("shop", "web-0");
    let r = Rules::default();
    let d = decide(&hs, &req, &r);
    let s = d.summary(&hs, &req, &r);
    assert!(
        s.starts_with("shop/web-0 → host-1; host-1: ranked 1"),
        "{s}"
    );
    assert!(
        s.ends_with("host-10: ranked 10 by breadth-first (0 of this entity, 0 containers)"),
        "{s}"
    );
}

proptest! {
    /// The runners-up are the hosts `ranks` puts second and third.
    #[test]
    fn best_agrees_with_the_full_ranking(counts in proptest::collection::vec(0u32..4, 1..40)) {
        let mut hs = hosts(counts.len());
        for (i, (h, n)) in hs.iter_mut().zip(&counts).enumerate() {
            for k in 0..*n {
                h.place(&Request::new("o", format!("x-{i}-{k}")));
            }
        }
        let req = Request::new("shop", "web-0");
        let d = decide(&hs, &req, &Rules::default());
        let ranks = d.ranks();
        let mut by_rank: Vec<(usize, usize)> =
            ranks.iter().enumerate().filter_map(|(i, r)| r.map(|r| (r, i))).collect();
        by_rank.sort();
        let want: Vec<usize> = by_rank.iter().take(3).map(|(_, i)| *i).collect();
        prop_assert_eq!(d.best(3), want);
        prop_assert_eq!(d.best(1).first().copied(), d.chosen);
    }
}
