//! Placement decisions per second at 1,000 hosts holding 10,000 containers,
//! on one core (this process's thread), with the real placement code.
//!
//! The goal (docs: DESIGN.md "Numbers we aim at") is 10,000 decisions per
//! second; kube-scheduler's published thresholds are 100 to 800 pods per
//! second. Prints the rate and its ratio to the goal; the ratio, not the
//! absolute rate, is what compares across machines.
//!
//! `cargo bench --bench placement`

use std::time::{Duration, Instant};

use drover::blueprint::{AffinityRule, AffinityScope, PlacementSpec, PlacementStrategy};
use drover::placement::{decide, HostState, Request, Rules};

const HOSTS: usize = 1_000;
const CONTAINERS: usize = 10_000;
const GOAL_PER_SEC: f64 = 10_000.0;

fn pool() -> Vec<HostState> {
    let mut hosts: Vec<HostState> = (0..HOSTS)
        .map(|i| {
            let mut h = HostState::new(format!("host-{i:04}"), 16.0, 64 << 30);
            h.labels.insert("zone".into(), format!("z{}", i % 3));
            h.cpu_usage = (i % 97) as f64 / 100.0;
            h
        })
        .collect();
    // 100 applications × 10 clusters × 10 members, spread round-robin.
    for c in 0..CONTAINERS {
        let (app, cluster) = (c / 100, (c / 10) % 10);
        let req = Request::new(format!("app-{app}"), format!("c{cluster}-{c}"))
            .member_of(format!("c{cluster}"))
            .resources(0.1, 64 << 20);
        hosts[c % HOSTS].place(&req);
    }
    hosts
}

fn run(name: &str, hosts: &[HostState], rules: &Rules, budget: Duration) -> f64 {
    let reqs: Vec<Request> = (0..64)
        .map(|i| {
            Request::new(format!("app-{}", i % 100), format!("c{}-new{i}", i % 10))
                .member_of(format!("c{}", i % 10))
                .resources(0.25, 128 << 20)
        })
        .collect();
    // Warm up.
    for r in &reqs {
        std::hint::black_box(decide(hosts, r, rules));
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    let mut placed = 0u64;
    while t0.elapsed() < budget {
        for r in &reqs {
            let d = decide(hosts, r, rules);
            placed += d.chosen.is_some() as u64;
            std::hint::black_box(d);
            n += 1;
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{name:<44} {rate:>10.0} decisions/s  ratio to goal {:.2}  ({placed}/{n} placed)",
        rate / GOAL_PER_SEC
    );
    rate
}

fn main() {
    let hosts = pool();
    let budget = Duration::from_secs(2);
    println!(
        "placement: {HOSTS} hosts, {} containers placed, goal {GOAL_PER_SEC} decisions/s on one core",
        hosts.iter().map(|h| h.containers() as usize).sum::<usize>()
    );
    let default_rules = Rules {
        max_containers: 16,
        ..Rules::default()
    };
    let r1 = run(
        "breadth-first, max 16, reservation fit",
        &hosts,
        &default_rules,
        budget,
    );
    let full = Rules::resolve(
        &PlacementSpec {
            strategy: Some(PlacementStrategy::LowestCpuUsage),
            max_containers: Some(16),
            max_cpu_usage: Some(0.9),
            labels: [("zone".to_string(), "z1".to_string())].into(),
            affinity: vec![
                AffinityRule {
                    same: Some(AffinityScope::Entity),
                    entity: None,
                    not: true,
                },
                AffinityRule {
                    same: None,
                    entity: Some("c3".into()),
                    not: true,
                },
            ],
            ..PlacementSpec::default()
        },
        &[],
    );
    let r2 = run(
        "lowest-cpu, labels, cpu cap, 2 anti-affinities",
        &hosts,
        &full,
        budget,
    );
    let depth = Rules {
        strategy: PlacementStrategy::DepthFirst,
        max_containers: 16,
        ..Rules::default()
    };
    let r3 = run("depth-first, max 16", &hosts, &depth, budget);
    let worst = r1.min(r2).min(r3);
    println!(
        "RESULT placement_decisions_per_sec={worst:.0} ratio_to_goal={:.2} (slowest chain)",
        worst / GOAL_PER_SEC
    );
}
