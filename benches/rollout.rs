//! Rollout benchmark: the same rolling update of 10 members of
//! `drover/workload:latest` (env `VERSION=1` → `VERSION=2`) under steady
//! HTTP load (keep-alive and new-connection clients), through drover's load
//! balancer and through Docker Swarm's routing mesh, in the same run on the
//! same engine.
//!
//! - drover: `drover apply` of the blueprint with `VERSION: "2"`, until
//!   `rollout status` says `complete` and every member answers `2`.
//! - Swarm: `docker swarm init --advertise-addr 127.0.0.1`, `docker service
//!   create --replicas 10 --update-order start-first --no-resolve-image
//!   --publish ...`, then `docker service update --env-add VERSION=2` until
//!   its update state is `completed` and answers are all `2`; `docker swarm
//!   leave --force` at the end, even when the bench fails.
//!
//! Prints, for each: time to complete, failed requests, requests served,
//! and the ratios. Run: `cargo bench --bench rollout`.

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/common/load.rs"]
mod load;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use load::Load;

const MEMBERS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(100);
/// How long the routing mesh gets to answer on the published port.
const MESH_WAIT: Duration = Duration::from_secs(20);
/// drover's rollout settings, printed with the result (Swarm's are its
/// defaults: parallelism 1, delay 0, monitor 5 s, plus start-first).
const UPDATE: &str = "{ min_ready: 1s, drain_timeout: 2s }";

/// A plain `GET path` on a new connection: the body.
fn get_body(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    if !buf.starts_with("HTTP/1.1 200") && !buf.starts_with("HTTP/1.0 200") {
        return None;
    }
    buf.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
}

/// `n` answers in a row through `port` say `want` (every backend rolled).
fn all_answer(port: u16, path: &str, want: &str, n: usize) -> bool {
    (0..n).all(|_| get_body(port, path).as_deref() == Some(want))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

struct Outcome {
    seconds: f64,
    served: u64,
    failed: u64,
}

// ---------------------------------------------------------------------------
// drover.

fn blueprint(app: &str, version: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {MEMBERS}
    update: {UPDATE}
    member:
      image: drover/workload:latest
      env: {{ VERSION: "{version}" }}
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

fn drover_apply(d: &Drover, file: &std::path::Path) {
    let out = Command::new(drover_bin())
        .args(["apply", &file.to_string_lossy()])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .stdin(Stdio::null())
        .output()
        .expect("drover apply runs");
    assert!(
        out.status.success(),
        "drover apply failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn drover_round() -> Outcome {
    let d = Drover::start();
    let app = unique("bench-roll");
    let _guard = AppGuard(app.clone());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, blueprint(&app, "1")).unwrap();
    drover_apply(&d, &file);
    let lb_port = {
        let mut port = 0;
        wait_until("the load balancer has 10 backends", || {
            let (_, s) = d.get(&format!("/v1/applications/{app}/entities/lb/sensors"));
            port = s["lb.port"]["value"].as_u64().unwrap_or(0) as u16;
            s["lb.backends"]["value"]
                .as_array()
                .is_some_and(|b| b.len() == MEMBERS)
        });
        port
    };
    wait_until("every member answers 1", || {
        all_answer(lb_port, "/env/VERSION", "1", 20)
    });
    let load = Load::start(lb_port);
    std::thread::sleep(Duration::from_secs(2));

    std::fs::write(&file, blueprint(&app, "2")).unwrap();
    let t0 = Instant::now();
    drover_apply(&d, &file);
    wait_until("drover's rollout completes", || {
        let (code, st) = d.get(&format!("/v1/applications/{app}/entities/web/rollout"));
        code == 200 && st["state"] == "complete" && st["revision"] == 2
    });
    wait_until("every member answers 2 through drover", || {
        all_answer(lb_port, "/env/VERSION", "2", 20)
    });
    let seconds = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let (served, failed) = load.finish();
    d.destroy(&app, DEADLINE);
    Outcome {
        seconds,
        served,
        failed,
    }
}

// ---------------------------------------------------------------------------
// Swarm.

/// Leaves swarm mode (and so removes its services) when dropped.
struct Swarm {
    service: String,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = run("docker", &["service", "rm", &self.service]);
        let out = run("docker", &["swarm", "leave", "--force"]);
        if !out.status.success() {
            eprintln!(
                "docker swarm leave --force failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn swarm_round() -> Outcome {
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(
        state, "inactive",
        "this engine is already in swarm mode ({state}); the bench leaves it alone"
    );
    let service = unique("bench-roll-swarm");
    docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let _swarm = Swarm {
        service: service.clone(),
    };
    let port = free_port();
    docker(&[
        "service",
        "create",
        "--detach",
        "--name",
        &service,
        "--replicas",
        &MEMBERS.to_string(),
        "--update-order",
        "start-first",
        "--update-parallelism",
        "1",
        "--no-resolve-image",
        "--env",
        "VERSION=1",
        "--publish",
        &format!("published={port},target=8080"),
        "drover/workload:latest",
    ]);
    wait_until("10 Swarm tasks run", || {
        let out = docker_quiet(&[
            "service",
            "ps",
            &service,
            "--filter",
            "desired-state=running",
            "--format",
            "{{.CurrentState}}",
        ]);
        out.lines().filter(|l| l.starts_with("Running")).count() == MEMBERS
    });
    // The routing mesh needs IPVS in the kernel; where it is missing the
    // published port refuses connections and only the update's time can
    // be compared.
    let t_mesh = Instant::now();
    let mesh = loop {
        if all_answer(port, "/env/VERSION", "1", 20) {
            break true;
        }
        if t_mesh.elapsed() > MESH_WAIT {
            break false;
        }
        std::thread::sleep(POLL);
    };
    if !mesh {
        println!(
            "swarm: the routing mesh refuses connections on published port {port} after {MESH_WAIT:?} \
             (no IPVS on this engine's kernel): Swarm's update is timed without load"
        );
    }
    let load = mesh.then(|| Load::start(port));
    std::thread::sleep(Duration::from_secs(2));

    let t0 = Instant::now();
    docker(&[
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--env-add",
        "VERSION=2",
        &service,
    ]);
    wait_until("Swarm's update completes", || {
        docker_quiet(&[
            "service",
            "inspect",
            "--format",
            "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
            &service,
        ]) == "completed"
    });
    wait_until("every running Swarm task has VERSION=2", || {
        let ids = docker_quiet(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
        ]);
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        ids.len() == MEMBERS
            && ids.iter().all(|id| {
                inspect(id).is_some_and(|v| {
                    v["Config"]["Env"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == "VERSION=2"))
                })
            })
    });
    if mesh {
        wait_until("every Swarm task answers 2", || {
            all_answer(port, "/env/VERSION", "2", 20)
        });
    }
    let seconds = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(1));
    let (served, failed) = load.map_or((0, 0), Load::finish);
    Outcome {
        seconds,
        served,
        failed,
    }
}

fn main() {
    require_docker();
    ensure_workload_image();
    println!(
        "rollout of {MEMBERS} members, VERSION 1 -> 2, under keep-alive + new-connection load \
         (engine {})",
        engine_version()
    );
    let d = drover_round();
    println!(
        "drover (update {UPDATE}, through its load balancer): {:.2} s, {} failed of {} requests",
        d.seconds,
        d.failed,
        d.served + d.failed
    );
    let s = swarm_round();
    println!(
        "swarm (start-first, parallelism 1, through the routing mesh if it works): {:.2} s, {} failed of {} requests",
        s.seconds,
        s.failed,
        s.served + s.failed
    );
    let rate = |o: &Outcome| {
        if o.served + o.failed == 0 {
            "n/a (no load)".to_string()
        } else {
            format!(
                "{:.4}%",
                100.0 * o.failed as f64 / (o.served + o.failed) as f64
            )
        }
    };
    println!(
        "ratio swarm/drover time: {:.2}; failed-request rate drover {}, swarm {}",
        s.seconds / d.seconds,
        rate(&d),
        rate(&s)
    );
}
