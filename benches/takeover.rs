//! Takeover benchmark (issue 17): two drovers on one etcd, `kill -9` of the
//! leader, time until the standby leads (`/healthz`) and until it has
//! adopted the application (every entity running, the same containers),
//! over 20 kills (p50/p99, against the lease TTL); and the store's write
//! latency, redb against etcd, in the same run.
//!
//! `TAKEOVER_KILLS` (default 20), `TAKEOVER_TTL` (default 5s, drover's).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::*;
use drover::store::{ClusterState, Store, StoreTarget, StoreWrite};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn leads(url: &str) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .into();
    agent
        .get(&format!("{url}/healthz"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .is_some_and(|b| b.contains("\"role\":\"leader\""))
}

/// Milliseconds of each of `n` writes of a cluster's membership.
fn write_latencies(store: &Store, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let w = StoreWrite::PutCluster {
                app: "bench".into(),
                entity: "web".into(),
                state: ClusterState {
                    desired: i as u32,
                    next_index: i as u32 + 1,
                    members: (0..i as u32 % 10).collect(),
                    ..Default::default()
                },
            };
            let t = Instant::now();
            store.apply(&w).expect("store write");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn main() {
    require_docker();
    let kills: usize = std::env::var("TAKEOVER_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let ttl = std::env::var("TAKEOVER_TTL").unwrap_or_else(|_| "5s".into());
    // The guard first: dropped after the drovers.
    let app = unique("bench-takeover");
    let _g = AppGuard(app.clone());
    let etcd = Etcd::start();
    let cluster = unique("bench");
    let state = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let args = [
        "--store",
        url.as_str(),
        "--cluster-name",
        cluster.as_str(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--leader-ttl",
        ttl.as_str(),
    ];
    let mut leader = Drover::start_with(&args);
    wait_for(Duration::from_secs(60), "the first drover leads", || {
        leads(&leader.url).then_some(())
    });
    let mut standby = Drover::start_with(&args);
    leader.deploy(&cluster_blueprint(&app, 3));
    leader.wait_running(&app, Duration::from_secs(120));
    let containers = containers_of(&app, true);

    let (mut to_lead, mut to_adopt) = (Vec::new(), Vec::new());
    for k in 0..kills {
        // Kill at a random point of the lease's renewal cycle.
        std::thread::sleep(Duration::from_millis(300 + (k as u64 * 397) % 1500));
        let t0 = Instant::now();
        leader.kill9();
        while !leads(&standby.url) {
            assert!(t0.elapsed() < Duration::from_secs(60), "no takeover");
            std::thread::sleep(Duration::from_millis(10));
        }
        let led = t0.elapsed();
        standby.wait_running(&app, Duration::from_secs(60));
        let adopted = t0.elapsed();
        to_lead.push(led.as_secs_f64());
        to_adopt.push(adopted.as_secs_f64());
        assert_eq!(
            containers_of(&app, true),
            containers,
            "the same containers after takeover {k}"
        );
        println!(
            "kill {k}: leads after {:.2} s, adopted after {:.2} s",
            led.as_secs_f64(),
            adopted.as_secs_f64()
        );
        // The killed one comes back, as a supervisor would bring it: it
        // stands by.
        let next = Drover::start_with(&args);
        leader = std::mem::replace(&mut standby, next);
    }
    println!(
        "takeover after kill -9 of the leader ({kills} kills, lease TTL {ttl}): leads p50 {:.2} s p99 {:.2} s; adopted (every entity running, same containers) p50 {:.2} s p99 {:.2} s",
        pct(&mut to_lead, 0.5),
        pct(&mut to_lead, 0.99),
        pct(&mut to_adopt, 0.5),
        pct(&mut to_adopt, 0.99),
    );
    let (s, _) = leader.delete(&format!("/v1/applications/{app}"));
    assert_eq!(s, 204);
    drop(standby);
    drop(leader);

    // Store writes, same run: redb (fsync) against etcd (fenced txn).
    let n = 500;
    let dir = tempfile::tempdir().unwrap();
    let redb = Store::open(&dir.path().join("bench.redb")).unwrap();
    let mut r = write_latencies(&redb, n);
    let target = StoreTarget::parse(&url, &unique("bench-w")).unwrap();
    let StoreTarget::Etcd(opts) = &target else {
        unreachable!()
    };
    let fence = drover::store::Fence::default();
    let etcd_store = Store::open_target(&target, fence.clone()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = drover::store::election::Election::connect(
            opts,
            Duration::from_secs(60),
            "http://bench".into(),
            fence,
        )
        .await
        .unwrap();
        e.campaign(|_| {}).await
    });
    let mut e = write_latencies(&etcd_store, n);
    let (r50, r99, e50, e99) = (
        pct(&mut r, 0.5),
        pct(&mut r, 0.99),
        pct(&mut e, 0.5),
        pct(&mut e, 0.99),
    );
    println!(
        "store write latency ({n} writes each): redb p50 {r50:.2} ms p99 {r99:.2} ms; etcd p50 {e50:.2} ms p99 {e99:.2} ms; etcd/redb p50 ratio {:.2}",
        e50 / r50
    );
}
