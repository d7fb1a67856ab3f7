//! Rebind benchmark (issue 6): time from a restart after `kill -9` to fully
//! rebound (every entity running, policies active) with 100 containers
//! under management, and the store's write latency per effector.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

fn histogram(metrics: &str, name: &str) -> (f64, f64) {
    let get = |suffix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}{{backend=\"redb\"}} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get("sum"), get("count"))
}

fn main() {
    let n: u32 = std::env::var("REBIND_CONTAINERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let app = unique("bench-rebind");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let bp = format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: {n}\n    member:\n      image: drover/workload:latest\n      ports: [8080]\n      resources: {{ memory: 16Mi }}\n      health: {{ http: {{ port: 8080, path: /health }} }}\n    policies:\n      - use: resilient\n      - use: replace-failed\n"
    );
    let t = Instant::now();
    d.deploy(&bp);
    d.wait_running(&app, Duration::from_secs(600));
    println!("deployed {n} members in {:.1} s", t.elapsed().as_secs_f64());
    // A few effectors, to measure store writes per effector.
    for size in [n + 2, n] {
        let (s, b) = d.invoke(&app, "web", "resize", serde_json::json!({ "size": size }));
        assert_eq!(s, 200, "{b}");
    }
    let (sum, count) = histogram(&d.get_text("/metrics"), "drover_store_write_seconds");
    d.kill9();
    let t = Instant::now();
    let d = Drover::start_on(&store);
    let started = t.elapsed();
    wait_for(Duration::from_secs(600), "fully rebound", || {
        let detail = d.app(&app);
        let ents = detail["entities"].as_array().unwrap();
        let members = ents
            .iter()
            .filter(|e| e["parent"] == "web" && e["state"] == "running")
            .count();
        (members == n as usize && ents.iter().all(|e| e["state"] == "running")).then_some(())
    });
    let rebound = t.elapsed();
    let (_, policies) = d.get(&format!("/v1/applications/{app}/entities/web/policies"));
    let active = policies
        .as_array()
        .map(|p| p.iter().filter(|x| x["running"] == true).count())
        .unwrap_or(0);
    println!("restart → serving HTTP: {:.2} s; → fully rebound ({n} containers, {active} policies active): {:.2} s", started.as_secs_f64(), rebound.as_secs_f64());
    println!(
        "store writes before the crash: {count} commits, mean {:.2} ms per write",
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        }
    );
    let after = containers_of(&app, true).len();
    println!("containers after rebind: {after} (expected {n}; none recreated or doubled)");
    let (s, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(s, 204);
}
