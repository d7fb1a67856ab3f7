//! Deploy benchmark: wall time to deploy a 20-member cluster of
//! `drover/workload:latest` until every member passes its health check,
//! against `docker-compose up -d --scale web=20` of the same image on the
//! same engine until every container answers `GET /health` 200, measured
//! alternately in the same run; plus drover's RSS while it manages the 20
//! containers.
//!
//! Run: `cargo bench --bench deploy`. Goal: compose/drover ≥ 2.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const MEMBERS: usize = 20;
const ROUNDS: usize = 3;
const POLL: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_secs(180);

struct DroverRound {
    seconds: f64,
    polls: u32,
    rss_idle_kib: u64,
    rss_at_ready_kib: u64,
    rss_steady_kib: u64,
    hwm_kib: u64,
    left_after_delete: usize,
    delete_seconds: f64,
}

fn blueprint(app: &str) -> String {
    format!(
        "name: {app}
services:
  - id: web
    type: cluster
    initial_size: {MEMBERS}
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
"
    )
}

fn drover_round() -> DroverRound {
    let drover = Drover::start(); // not timed
    std::thread::sleep(Duration::from_millis(500));
    let (rss_idle_kib, _) = drover.rss_kib();
    let app = unique("bench-deploy");
    let _guard = AppGuard(app.clone());
    let yaml = blueprint(&app);

    let t0 = Instant::now();
    let id = drover.deploy(&yaml);
    let mut polls = 0u32;
    loop {
        let detail = drover.app(&id);
        polls += 1;
        let m = members(&detail, "web");
        if m.len() == MEMBERS && m.iter().all(|e| is_up(e)) {
            break;
        }
        if t0.elapsed() > DEADLINE {
            let up = m.iter().filter(|e| is_up(e)).count();
            panic!(
                "drover: only {up}/{} members up after {DEADLINE:?}; log:\n{}",
                m.len(),
                drover.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let (rss_at_ready_kib, _) = drover.rss_kib();
    // Steady state: drover health-checks 20 members every second.
    std::thread::sleep(Duration::from_secs(3));
    let (rss_steady_kib, hwm_kib) = drover.rss_kib();
    let running = containers_with_label(&format!("io.drover.app={id}")).len();
    assert_eq!(
        running, MEMBERS,
        "drover: expected {MEMBERS} containers of {id} on the engine, found {running}"
    );

    let td = Instant::now();
    let left = drover.destroy(&id, Duration::from_secs(30));
    let delete_seconds = td.elapsed().as_secs_f64();
    if !left.is_empty() {
        eprintln!(
            "WARNING: {} containers of {id} left 30 s after DELETE (the guard removes them)",
            left.len()
        );
    }
    DroverRound {
        seconds,
        polls,
        rss_idle_kib,
        rss_at_ready_kib,
        rss_steady_kib,
        hwm_kib,
        left_after_delete: left.len(),
        delete_seconds,
    }
}

/// `docker-compose -p PROJECT down -v` and removal of the temp dir on drop.
struct ComposeGuard {
    project: String,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ComposeGuard {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(&self.file)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker-compose runs")
    }

    fn leftovers(&self) -> (Vec<String>, String) {
        let containers =
            containers_with_label(&format!("com.docker.compose.project={}", self.project));
        let nets = docker_quiet(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
        ]);
        (containers, nets)
    }
}

impl Drop for ComposeGuard {
    fn drop(&mut self) {
        let (c, n) = self.leftovers();
        if !c.is_empty() || !n.is_empty() {
            let _ = self.compose(&["down", "-v", "--remove-orphans"]);
            remove_containers_with_label(&format!("com.docker.compose.project={}", self.project));
            for net in docker_quiet(&[
                "network",
                "ls",
                "-q",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.project),
            ])
            .lines()
            {
                let _ = common::run("docker", &["network", "rm", net.trim()]);
            }
        }
    }
}

struct ComposeRound {
    seconds: f64,
    up_seconds: f64,
    down_seconds: f64,
    left_after_down: usize,
}

/// Host ports published for 8080/tcp by the project's containers, parsed
/// from `docker ps --format {{.Ports}}` (e.g. `0.0.0.0:49153->8080/tcp, :::49153->8080/tcp`).
fn compose_ports(project: &str) -> Vec<u16> {
    let out = docker(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=web",
        "--format",
        "{{.Ports}}",
    ]);
    out.lines()
        .filter_map(|line| {
            line.split(',').find_map(|b| {
                let (host, ctr) = b.trim().split_once("->")?;
                if ctr != "8080/tcp" {
                    return None;
                }
                host.rsplit(':').next()?.parse().ok()
            })
        })
        .collect()
}

fn compose_round() -> ComposeRound {
    let dir = tempfile::Builder::new()
        .prefix("drover-bench-compose-")
        .tempdir()
        .expect("temp dir");
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        "version: \"2.4\"\nservices:\n  web:\n    image: drover/workload:latest\n    ports: [\"8080\"]\n",
    )
    .expect("write compose file");
    // Compose v1 project names: lower-case letters, digits, `-` and `_`.
    let project = unique("drbench");
    let guard = ComposeGuard {
        project: project.clone(),
        file,
        _dir: dir,
    };

    let t0 = Instant::now();
    let out = guard.compose(&["up", "-d", "--scale", &format!("web={MEMBERS}")]);
    assert!(
        out.status.success(),
        "docker-compose up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let up_seconds = t0.elapsed().as_secs_f64();
    let ports = compose_ports(&project);
    assert_eq!(
        ports.len(),
        MEMBERS,
        "compose: expected {MEMBERS} published ports, found {ports:?}"
    );
    let mut pending: Vec<u16> = ports;
    loop {
        pending.retain(|&p| !healthy(p));
        if pending.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "compose: {} containers not healthy after {DEADLINE:?}",
            pending.len()
        );
        std::thread::sleep(POLL);
    }
    let seconds = t0.elapsed().as_secs_f64();

    let td = Instant::now();
    let out = guard.compose(&["down", "-v"]);
    let down_seconds = td.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "docker-compose down failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (c, n) = guard.leftovers();
    if !c.is_empty() || !n.is_empty() {
        eprintln!("WARNING: compose project {project} left {} containers / networks [{n}] (the guard removes them)", c.len());
    }
    ComposeRound {
        seconds,
        up_seconds,
        down_seconds,
        left_after_down: c.len(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    require_docker();
    println!(
        "== drover deploy benchmark: {MEMBERS}-member cluster until all pass health checks =="
    );
    println!("engine: dockerd {}", engine_version());
    let compose_version = common::run("docker-compose", &["version", "--short"]);
    println!(
        "docker-compose: {}",
        String::from_utf8_lossy(&compose_version.stdout).trim()
    );
    ensure_workload_image();
    println!(
        "rounds: {ROUNDS} of each, alternating (drover, compose, ...); poll every {} ms",
        POLL.as_millis()
    );
    println!();

    let mut dr = Vec::new();
    let mut cr = Vec::new();
    for i in 1..=ROUNDS {
        let d = drover_round();
        println!(
            "round {i} drover : {:>6.3} s to {MEMBERS}/{MEMBERS} service.up ({} polls); RSS idle {:.1} MiB, at ready {:.1} MiB, steady {:.1} MiB, peak {:.1} MiB; DELETE+gone {:.2} s, left {}",
            d.seconds,
            d.polls,
            mib(d.rss_idle_kib),
            mib(d.rss_at_ready_kib),
            mib(d.rss_steady_kib),
            mib(d.hwm_kib),
            d.delete_seconds,
            d.left_after_delete
        );
        dr.push(d);
        let c = compose_round();
        println!(
            "round {i} compose: {:>6.3} s to {MEMBERS}/{MEMBERS} GET /health 200 (`up -d --scale` returned after {:.3} s); down -v {:.2} s, left {}",
            c.seconds, c.up_seconds, c.down_seconds, c.left_after_down
        );
        cr.push(c);
    }

    let d_times: Vec<f64> = dr.iter().map(|d| d.seconds).collect();
    let c_times: Vec<f64> = cr.iter().map(|c| c.seconds).collect();
    let c_up: Vec<f64> = cr.iter().map(|c| c.up_seconds).collect();
    let d_med = median(&d_times);
    let c_med = median(&c_times);
    let rss_steady: Vec<f64> = dr.iter().map(|d| mib(d.rss_steady_kib)).collect();
    let rss_ready: Vec<f64> = dr.iter().map(|d| mib(d.rss_at_ready_kib)).collect();
    let hwm: Vec<f64> = dr.iter().map(|d| mib(d.hwm_kib)).collect();
    let ratio = c_med / d_med;

    println!();
    println!("== report ==");
    println!(
        "drover deploy {MEMBERS} members to healthy : median {d_med:.3} s  (runs: {})",
        fmt_list(&d_times, false)
    );
    println!(
        "docker-compose up --scale {MEMBERS} to healthy: median {c_med:.3} s  (runs: {}; of which `up -d` median {:.3} s)",
        fmt_list(&c_times, false),
        median(&c_up)
    );
    println!(
        "drover RSS managing {MEMBERS} containers   : median {:.1} MiB steady (3 s after ready), {:.1} MiB at ready, peak (VmHWM) max {:.1} MiB",
        median(&rss_steady),
        median(&rss_ready),
        hwm.iter().cloned().fold(0.0, f64::max)
    );
    let left: usize = dr.iter().map(|d| d.left_after_delete).sum::<usize>()
        + cr.iter().map(|c| c.left_after_down).sum::<usize>();
    println!("containers left after DELETE / down -v     : {left}");
    println!(
        "RATIO compose/drover deploy time = {ratio:.2}x (goal >= 2x: {})",
        if ratio >= 2.0 { "met" } else { "NOT met" }
    );
}
