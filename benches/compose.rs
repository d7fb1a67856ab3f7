//! Compose benchmark: deploy time of the two-tier application of
//! `tests/data/compose/two-tier.yml` (a `db` and a `web` that depends on
//! it, both `drover/workload:latest`) with `drover deploy FILE` (the CLI
//! translates the compose file and posts the blueprint) against
//! `docker-compose up -d` of the same file, on the same engine, alternately
//! in the same run. Both clocks stop when both containers answer
//! `GET /health` 200 on their published ports, polled the same way.
//!
//! Run: `cargo bench --bench compose`.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const ROUNDS: usize = 5;
const POLL: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(120);

fn compose_file() -> String {
    format!("{}/tests/data/compose/two-tier.yml", manifest_dir())
}

/// Polls until every port answers /health.
fn wait_healthy(ports: &[u16], t0: Instant, who: &str) {
    let mut pending = ports.to_vec();
    while !pending.is_empty() {
        pending.retain(|&p| !healthy(p));
        assert!(
            t0.elapsed() < DEADLINE,
            "{who}: not healthy after {DEADLINE:?}"
        );
        if !pending.is_empty() {
            std::thread::sleep(POLL);
        }
    }
}

fn drover_round(d: &Drover) -> f64 {
    let app = unique("cbench");
    let _g = AppGuard(app.clone());
    let t0 = Instant::now();
    let out = Command::new(drover_bin())
        .args(["deploy", &compose_file()])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .expect("drover deploy runs");
    // `deploy` names the app after the file's directory; rename through
    // `import --name` would add a process: use the id the service answered.
    assert!(
        out.status.success(),
        "drover deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let id = text
        .split('`')
        .nth(1)
        .expect("deployed application `id`")
        .to_string();
    let _g2 = AppGuard(id.clone());
    let ports = loop {
        let detail = d.app(&id);
        let ports: Vec<u16> = ["db", "web"]
            .iter()
            .filter_map(|e| find(&detail, e).and_then(|e| sensor_port(e, "host.port.8080")))
            .collect();
        if ports.len() == 2 {
            break ports;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "drover: no ports after {DEADLINE:?}"
        );
        std::thread::sleep(POLL);
    };
    wait_healthy(&ports, t0, "drover");
    let seconds = t0.elapsed().as_secs_f64();
    d.destroy(&id, Duration::from_secs(30));
    seconds
}

fn compose_round() -> f64 {
    let project = unique("cbench").replace('-', "");
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .args(["-p", &project, "-f", &compose_file()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker-compose runs")
    };
    let t0 = Instant::now();
    let out = compose(&["up", "-d"]);
    assert!(
        out.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ports: Vec<u16> = ["db", "web"]
        .iter()
        .map(|s| {
            let out = compose(&["port", s, "8080"]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("compose publishes 8080")
        })
        .collect();
    wait_healthy(&ports, t0, "compose");
    let seconds = t0.elapsed().as_secs_f64();
    let out = compose(&["down", "-v", "--remove-orphans"]);
    if !out.status.success() {
        remove_containers_with_label(&format!("com.docker.compose.project={project}"));
    }
    seconds
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    require_docker();
    ensure_workload_image();
    println!("engine {}", engine_version());
    let d = Drover::start();
    // Warm-up: first container creations on a fresh engine are slower.
    let _ = drover_round(&d);
    let _ = compose_round();
    let (mut dr, mut co) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        // Alternate which goes first, so neither always meets a warmer engine.
        if i % 2 == 0 {
            dr.push(drover_round(&d));
            co.push(compose_round());
        } else {
            co.push(compose_round());
            dr.push(drover_round(&d));
        }
        println!(
            "round {}: drover {:.3}s  docker-compose {:.3}s",
            i + 1,
            dr[i],
            co[i]
        );
    }
    let (md, mc) = (median(&mut dr), median(&mut co));
    println!(
        "two-tier compose file, until both answer /health: drover median {md:.3}s, docker-compose up median {mc:.3}s, compose/drover = {:.2}",
        mc / md
    );
}
