//! Pull benchmark: deploy a 20-member cluster of an image that is only in a
//! registry (Debian's `docker-registry` on a loopback port), until every
//! member passes its health check, against `docker-compose up -d --scale
//! web=20` of the same image (also only in the registry), on the same
//! engine, alternately in the same run. The image is the workload plus a
//! random 8 MiB layer, removed locally before every round, so each round
//! downloads it.
//!
//! Run: `cargo bench --bench pull`.

#[path = "common/mod.rs"]
mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MEMBERS: usize = 20;
const ROUNDS: usize = 2;
const LAYER_MIB: usize = 8;
const POLL: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_secs(240);

/// A registry without auth, stopped (and its images removed) on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (apt-get install docker-registry)");
        let t0 = Instant::now();
        while http_status(port, "/v2/", Duration::from_secs(1)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }

    fn remove_local(&self, image: &str) {
        // By id: the pinned digest and the tag name the same image.
        let id = docker_quiet(&["images", "-q", "--no-trunc", image]);
        let _ = run("docker", &["rmi", "-f", image]);
        for id in id.lines() {
            let _ = run("docker", &["rmi", "-f", id.trim()]);
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the workload plus a random layer, pushes it, removes it locally.
fn push_image(reg: &Registry) -> String {
    let image = format!("127.0.0.1:{}/{}:v1", reg.port, unique("pullbench"));
    let ctx = tempfile::tempdir().unwrap();
    let mut blob = vec![0u8; LAYER_MIB << 20];
    let mut seed = now_ms();
    for b in blob.iter_mut() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (seed >> 33) as u8;
    }
    std::fs::write(ctx.path().join("blob"), &blob).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM drover/workload:latest\nCOPY blob /blob\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &image])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("docker", &["push", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reg.remove_local(&image);
    image
}

fn drover_round(reg: &Registry, image: &str) -> f64 {
    reg.remove_local(image);
    let drover = Drover::start();
    let app = unique("bench-pull");
    let _guard = AppGuard(app.clone());
    let yaml = format!(
        "name: {app}
services:
  - id: web
    type: cluster
    initial_size: {MEMBERS}
    member:
      image: {image}
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
"
    );
    let t0 = Instant::now();
    let id = drover.deploy(&yaml);
    loop {
        let detail = drover.app(&id);
        let m = members(&detail, "web");
        if m.len() == MEMBERS && m.iter().all(|e| is_up(e)) {
            break;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "drover: not all up after {DEADLINE:?}; log:\n{}",
            drover.log_tail()
        );
        std::thread::sleep(POLL);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let left = drover.destroy(&id, Duration::from_secs(30));
    assert!(left.is_empty(), "drover left {} containers", left.len());
    seconds
}

fn compose_round(reg: &Registry, image: &str) -> f64 {
    reg.remove_local(image);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        format!("version: \"2.4\"\nservices:\n  web:\n    image: {image}\n    ports: [\"8080\"]\n"),
    )
    .unwrap();
    let project = unique("drpull");
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .arg("-f")
            .arg(&file)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker-compose runs")
    };
    let t0 = Instant::now();
    let out = compose(&["up", "-d", "--scale", &format!("web={MEMBERS}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ports: Vec<u16> = containers_with_label(&format!("com.docker.compose.project={project}"))
        .iter()
        .filter_map(|id| inspect(id).and_then(|v| published_port(&v)))
        .collect();
    assert_eq!(ports.len(), MEMBERS, "compose ports {ports:?}");
    let mut pending = ports;
    loop {
        pending.retain(|&p| !healthy(p));
        if pending.is_empty() {
            break;
        }
        assert!(t0.elapsed() < DEADLINE, "compose: not all healthy");
        std::thread::sleep(POLL);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let _ = compose(&["down", "-v"]);
    remove_containers_with_label(&format!("com.docker.compose.project={project}"));
    seconds
}

fn main() {
    require_docker();
    ensure_workload_image();
    println!(
        "== pull benchmark: {MEMBERS} members of an image only in a registry, until all healthy =="
    );
    println!("engine: dockerd {}", engine_version());
    let reg = Registry::start();
    let image = push_image(&reg);
    println!("image: {image} (workload + {LAYER_MIB} MiB random layer), removed locally before each round");
    let (mut d, mut c) = (Vec::new(), Vec::new());
    for i in 1..=ROUNDS {
        let ds = drover_round(&reg, &image);
        println!("round {i} drover : {ds:>6.3} s");
        let cs = compose_round(&reg, &image);
        println!("round {i} compose: {cs:>6.3} s");
        d.push(ds);
        c.push(cs);
    }
    reg.remove_local(&image);
    let (dm, cm) = (median(&d), median(&c));
    println!();
    println!(
        "median drover {dm:.3} s, compose {cm:.3} s; compose/drover = {:.2}",
        cm / dm
    );
}
