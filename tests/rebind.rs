//! Durable state and rebind: `kill -9` of the real drover process at
//! seeded points of deploy, resize and replace, then a restart on the same
//! store, against the real engine.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use drover::protocol::Lifecycle;
use drover::wire::Activity;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(120);

fn blueprint(app: &str, size: u32) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - use: resilient
      - use: replace-failed
"#
    )
}

/// A tiny seeded generator (xorshift): the same seed, the same kill points.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The engine holds exactly the members the tree shows, all running, with
/// drover's labels, and as many as the cluster's desired size.
fn converged(d: &Drover, app: &str) -> Option<u64> {
    let entities = d.app_detail(app).entities;
    if !entities.iter().all(|e| e.state == Lifecycle::Running) {
        return None;
    }
    let web = entities.iter().find(|e| e.id == "web")?;
    let desired = web.sensor_u64("group.desired_size")?;
    let members: BTreeSet<String> = entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
        .map(|e| e.id.clone())
        .collect();
    let all = containers_of(app, true);
    let running = containers_of(app, false);
    if all.len() as u64 != desired
        || running.len() as u64 != desired
        || members.len() as u64 != desired
    {
        return None;
    }
    for id in &all {
        let labels = &inspect(id)["Config"]["Labels"];
        if labels["io.drover.managed"] != "true"
            || !members.contains(labels["io.drover.entity"].as_str().unwrap_or(""))
        {
            return None;
        }
    }
    Some(desired)
}

/// Kills a member behind drover's back and waits for the policies to heal it.
fn policies_act(d: &Drover, app: &str, size: u64) {
    let victim = containers_of(app, false)[0].clone();
    let out = Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_for(
        DEADLINE,
        "the policies heal a killed member after the rebind",
        || {
            let healthy = d
                .app_detail(app)
                .entities
                .iter()
                .filter(|e| e.parent.as_deref() == Some("web") && e.state == Lifecycle::Running)
                .count() as u64;
            (healthy == size && containers_of(app, false).len() as u64 == size).then_some(())
        },
    );
}

/// One kill point: set up, start `op` in the background, kill -9 after
/// `delay_ms`, restart on the same store, and check.
fn kill_point(seed: u64, op: &str, delay_ms: u64) {
    let app = unique(&format!("kp-{op}"));
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let (before, after) = match op {
        "deploy" => (0, 3),
        "grow" => (2, 5),
        "shrink" => (4, 1),
        _ => (2, 2),
    };
    if op != "deploy" {
        d.deploy(&blueprint(&app, before));
        d.wait_running(&app, DEADLINE);
    }
    let url = d.url.clone();
    let app2 = app.clone();
    let op2 = op.to_string();
    let agent = authed_agent(&d.token, Duration::from_secs(60));
    let bg = std::thread::spawn(move || {
        let base = format!("{url}/v1/applications");
        let _ = match op2.as_str() {
            "deploy" => agent
                .post(&base)
                .header("content-type", "application/yaml")
                .send(blueprint(&app2, after)),
            "grow" | "shrink" => agent
                .post(&format!("{base}/{app2}/entities/web/effectors/resize"))
                .header("content-type", "application/json")
                .send(json!({"size": after}).to_string()),
            _ => agent
                .post(&format!(
                    "{base}/{app2}/entities/web/effectors/replace_member"
                ))
                .header("content-type", "application/json")
                .send(json!({"member": "web-1"}).to_string()),
        };
    });
    std::thread::sleep(Duration::from_millis(delay_ms));
    d.kill9();
    let _ = bg.join();
    // A crash leaves the containers alone.
    let d = Drover::start_on(&store);
    let (status, _) = d.get(&format!("/v1/applications/{app}"));
    if op == "deploy" && status == 404 {
        // Killed before the deploy was stored (and so before it was
        // acknowledged): nothing of it may remain.
        wait_for(
            Duration::from_secs(30),
            "no container of an unacknowledged deploy",
            || containers_of(&app, true).is_empty().then_some(()),
        );
        return;
    }
    assert_eq!(
        status, 200,
        "seed {seed}, {op} killed at {delay_ms} ms: the application is rebound"
    );
    let size = wait_for(
        DEADLINE,
        &format!("seed {seed}: {op} killed at {delay_ms} ms converges"),
        || converged(&d, &app),
    );
    // Either the operation was stored before the kill (and finished on
    // rebind) or it was not (and never happened): nothing in between.
    let (before, after) = (before as u64, after as u64);
    assert!(
        size == after || (op != "deploy" && size == before),
        "seed {seed}, {op} at {delay_ms} ms: size {size} is neither {before} nor {after}"
    );
    policies_act(&d, &app, size);
}

fn kill_points(op: &str, seed: u64) {
    let mut rng = Rng(seed);
    for _ in 0..3 {
        let delay = 20 + rng.next() % 700;
        kill_point(seed, op, delay);
    }
}

#[test]
fn kill9_during_deploy_rebinds_exactly() {
    kill_points("deploy", 11);
}

#[test]
fn kill9_during_resize_up_rebinds_exactly() {
    kill_points("grow", 23);
}

#[test]
fn kill9_during_resize_down_rebinds_exactly() {
    kill_points("shrink", 37);
}

#[test]
fn kill9_during_replace_rebinds_exactly() {
    kill_points("replace", 41);
}

#[test]
fn the_restarters_backoff_survives_a_crash() {
    let app = unique("backoff");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let bp = format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 1
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - type: restarter
        backoff_start: 100ms
        max_restarts: 10
        reset_after: 1h
"#
    );
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    for n in 1..=3 {
        let victim = containers_of(&app, false)[0].clone();
        assert!(Command::new("docker")
            .args(["kill", &victim])
            .output()
            .unwrap()
            .status
            .success());
        wait_for(DEADLINE, "restarted", || {
            let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=100"));
            let restarts = decode::<Vec<Activity>>(acts)
                .iter()
                .filter(|a| a.name == "restarter.restart" && a.outcome == "scheduled")
                .count();
            let web_1 = d.entity_view(&app, "web-1");
            (restarts == n && web_1.is_some_and(|e| e.state == Lifecycle::Running)).then_some(())
        });
    }
    d.kill9();
    let d = Drover::start_on(&store);
    wait_for(DEADLINE, "rebound", || converged(&d, &app).map(|_| ()));
    let victim = containers_of(&app, false)[0].clone();
    assert!(Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap()
        .status
        .success());
    let act = wait_for(DEADLINE, "a restart after the rebind", || {
        let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=100"));
        decode::<Vec<Activity>>(acts)
            .into_iter()
            .find(|a| a.name == "restarter.restart" && a.outcome == "scheduled")
    });
    assert_eq!(
        act.args["failures_in_window"], 4,
        "the history from before the crash counts: {act:?}"
    );
    assert_eq!(
        act.args["delay_seconds"], 0.4,
        "the backoff continues (0, 0.1, 0.2, then 0.4): {act:?}"
    );
}

#[test]
fn the_autoscalers_stabilization_history_survives_a_crash() {
    let app = unique("scalemem");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    // A fixed port, so the load goes on across the crash (the load balancer
    // lives in drover: it is down while drover is).
    let lb_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bp = format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 1
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - use: web-autoscaler
        lower: 5
        upper: 20
        max_size: 3
        up_stabilization: 20s
  - id: lb
    type: load-balancer
    target: web
    port: {lb_port}
"#
    );
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let client = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = http_get(lb_port, "/");
            std::thread::sleep(Duration::from_millis(12));
        }
    });
    // 12 s of breach: less than the 20 s window, so no resize yet.
    std::thread::sleep(Duration::from_secs(12));
    let web = d.entity_view(&app, "web").expect("cluster web");
    assert_eq!(web.sensor_u64("group.size"), Some(1));
    d.kill9();
    let d = Drover::start_on(&store);
    let t0 = std::time::Instant::now();
    let decided = wait_for(
        Duration::from_secs(60),
        "a resize decision after the rebind",
        || {
            let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=200"));
            decode::<Vec<Activity>>(acts)
                .iter()
                .find(|a| a.name == "autoscaler.resize")
                .map(|_| t0.elapsed())
        },
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    client.join().unwrap();
    // With the history lost the window would start again: 20 s at least.
    assert!(
        decided < Duration::from_secs(16),
        "the decision used the history from before the crash: {decided:?} after the rebind"
    );
}

#[test]
fn a_damaged_store_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&store, &garbage).unwrap();
    let out = Command::new(drover_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store.to_str().unwrap(),
        ])
        .output()
        .expect("drover runs");
    assert!(!out.status.success(), "drover refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store") && err.contains("left as it is"),
        "{err}"
    );
    assert!(
        std::fs::read(&store).unwrap() == garbage,
        "the damaged store is left unchanged"
    );
}

#[test]
fn destroy_is_the_only_thing_that_removes_an_application() {
    let app = unique("keep");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    d.deploy(&blueprint(&app, 2));
    d.wait_running(&app, DEADLINE);
    let before: BTreeSet<String> = containers_of(&app, false).into_iter().collect();
    d.terminate();
    let mut d = Drover::start_on(&store);
    wait_for(DEADLINE, "rebound after a graceful stop", || {
        converged(&d, &app).map(|_| ())
    });
    let after: BTreeSet<String> = containers_of(&app, false).into_iter().collect();
    assert_eq!(
        before, after,
        "the same containers are adopted, not recreated"
    );
    d.kill9();
    let d = Drover::start_on(&store);
    wait_for(DEADLINE, "rebound after a crash", || {
        converged(&d, &app).map(|_| ())
    });
    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204);
    assert!(containers_of(&app, true).is_empty());
    drop(d);
    let d = Drover::start_on(&store);
    let (_, apps) = d.get("/v1/applications");
    assert_eq!(
        apps,
        Value::Array(vec![]),
        "a destroyed application stays destroyed"
    );
}

#[test]
fn a_rebind_never_touches_another_drovers_containers() {
    let app = unique("other");
    let _g = AppGuard(app.clone());
    let a = Drover::start();
    a.deploy(&blueprint(&app, 2));
    a.wait_running(&app, DEADLINE);
    let before: BTreeSet<String> = containers_of(&app, false).into_iter().collect();
    // A second drover on the same engine, with its own (empty) store: its
    // orphan sweep runs 3 s after start.
    let _b = Drover::start();
    std::thread::sleep(Duration::from_secs(5));
    let after: BTreeSet<String> = containers_of(&app, false).into_iter().collect();
    assert_eq!(
        before, after,
        "the other drover's sweep left these containers alone"
    );
    let owner =
        inspect(before.iter().next().unwrap())["Config"]["Labels"]["io.drover.owner"].clone();
    assert!(
        owner.as_str().is_some_and(|o| o.len() == 16),
        "containers carry their drover's identity: {owner}"
    );
}
