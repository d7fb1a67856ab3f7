//! Autoscaling benchmark (issue 4):
//! 1. time from the start of a sustained breach to the new member serving,
//!    with the up window set to 5 s (goal: within the window + 1 s);
//! 2. resizes during 2 minutes of load with noise inside the band (goal: 0).
//! Kubernetes' HPA defaults (15 s sync period, 300 s down window) are the
//! comparison in the README.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn blueprint(app: &str, initial: u32, min: u32, up: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {initial}
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - use: web-autoscaler
        lower: 5
        upper: 20
        min_size: {min}
        max_size: 6
        up_stabilization: {up}
        down_stabilization: 30s
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

/// Requests at a rate read from `rate` (per second), until stopped.
fn load(port: u16, rate: Arc<AtomicU32>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let r = rate.load(Ordering::SeqCst).max(1);
            let _ = http_get(port, "/");
            next += Duration::from_secs_f64(1.0 / r as f64);
            if let Some(w) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            } else {
                next = Instant::now();
            }
        }
    })
}

fn resizes(d: &Drover, app: &str) -> usize {
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    acts.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == "autoscaler.resize" && a["outcome"] == "decided")
        .count()
}

fn main() {
    let d = Drover::start();

    // 1. Breach to new member serving.
    let app = unique("bench-breach");
    let _g = AppGuard(app.clone());
    d.deploy(&blueprint(&app, 1, 1, "5s"));
    d.wait_running(&app, Duration::from_secs(120));
    let port = d.sensors(&app, "lb")["lb.port"]["value"].as_u64().unwrap() as u16;
    let rate = Arc::new(AtomicU32::new(60));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let client = load(port, rate.clone(), stop.clone());
    let served = wait_for(Duration::from_secs(120), "a second member serving", || {
        let per = d.sensors(&app, "lb")["lb.connections.per_member"]["value"].clone();
        (per.as_object().map(|m| m.len()).unwrap_or(0) >= 2).then_some(t0.elapsed())
    });
    let decided = {
        let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
        acts.as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|a| a["name"] == "autoscaler.resize")
            .map(|a| a["message"].clone())
    };
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    println!(
        "breach → new member serving: {:.2} s (up window 5 s; goal ≤ 6 s)",
        served.as_secs_f64()
    );
    println!("  decision: {}", decided.unwrap_or_default());
    println!("  ratio to the goal: {:.2}", served.as_secs_f64() / 6.0);

    // 2. Noise inside the band for 2 minutes: 2 members, 8..16 requests per
    //    second per member (band 5..20).
    let app2 = unique("bench-noise");
    let _g2 = AppGuard(app2.clone());
    d.deploy(&blueprint(&app2, 2, 2, "5s"));
    d.wait_running(&app2, Duration::from_secs(120));
    let port2 = d.sensors(&app2, "lb")["lb.port"]["value"].as_u64().unwrap() as u16;
    let rate2 = Arc::new(AtomicU32::new(24));
    let stop2 = Arc::new(AtomicBool::new(false));
    let client2 = load(port2, rate2.clone(), stop2.clone());
    let t = Instant::now();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let secs = std::env::var("NOISE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120u64);
    while t.elapsed() < Duration::from_secs(secs) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        rate2.store(16 + (seed % 17) as u32, Ordering::SeqCst); // 16..32 total
        std::thread::sleep(Duration::from_secs(1));
    }
    stop2.store(true, Ordering::SeqCst);
    client2.join().unwrap();
    let n = resizes(&d, &app2);
    println!("resizes during {secs} s of noise inside the band: {n} (goal 0)");
}
