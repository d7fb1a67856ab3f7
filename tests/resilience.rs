//! Resilience against the real engine: failure detection, the restarter and
//! the replacer, the load balancer under a kill, and `drover chaos`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use drover::protocol::Lifecycle;
use drover::wire::Activity;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

fn resilient_cluster(app: &str, size: u32, env: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    member:
      image: drover/workload:latest
      ports: [8080]
      env: {{ {env} }}
      health: {{ http: {{ port: 8080, path: /health }}, interval: 200ms, timeout: 500ms }}
    policies:
      - use: resilient
      - use: replace-failed
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

fn activities(d: &Drover, app: &str) -> Vec<Activity> {
    let (status, body) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    assert_eq!(status, 200);
    decode(body)
}

fn healthy_members(d: &Drover, app: &str) -> usize {
    d.app_detail(app)
        .entities
        .iter()
        .filter(|e| {
            e.parent.as_deref() == Some("web")
                && e.state == Lifecycle::Running
                && e.sensor("service.up") == Some(&Value::Bool(true))
        })
        .count()
}

fn wait_full_health(d: &Drover, app: &str, size: usize) {
    wait_for(
        DEADLINE,
        &format!("{app} back to {size} healthy members"),
        || {
            let all_running = d
                .app_detail(app)
                .entities
                .iter()
                .all(|e| e.state == Lifecycle::Running);
            (all_running
                && healthy_members(d, app) == size
                && containers_of(app, false).len() == size)
                .then_some(())
        },
    );
}

fn docker(args: &[&str]) {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_killed_member_is_restarted_and_recorded() {
    let app = unique("kill1");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 3, ""));
    d.wait_running(&app, DEADLINE);
    let victim = containers_of(&app, false)[0].clone();
    docker(&["kill", &victim]);
    // Seen as failed, then healed.
    wait_for(DEADLINE, "entity.failed in the activity record", || {
        activities(&d, &app)
            .iter()
            .any(|a| a.name == "entity.failed")
            .then_some(())
    });
    wait_full_health(&d, &app, 3);
    let all = containers_of(&app, true);
    assert_eq!(all.len(), 3, "no dead container is left behind: {all:?}");
    let acts = activities(&d, &app);
    assert!(
        acts.iter()
            .any(|a| a.name == "restarter.restart" || a.name == "replacer.replace"),
        "the restart or replacement is in the activity record: {acts:#?}"
    );
    assert!(
        acts.iter().any(|a| a.name == "entity.recovered"),
        "{acts:#?}"
    );
}

#[test]
fn killing_every_member_at_once_recovers_to_full_size() {
    let app = unique("killall");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 3, ""));
    d.wait_running(&app, DEADLINE);
    let ids = containers_of(&app, false);
    let mut args = vec!["kill"];
    args.extend(ids.iter().map(String::as_str));
    docker(&args);
    wait_full_health(&d, &app, 3);
    let web = d.entity_view(&app, "web").expect("cluster web");
    assert_eq!(web.sensor_u64("group.size"), Some(3));
}

#[test]
fn a_paused_member_is_detected_and_handled() {
    let app = unique("pause");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 2, ""));
    d.wait_running(&app, DEADLINE);
    let victim = containers_of(&app, false)[0].clone();
    docker(&["pause", &victim]);
    wait_for(DEADLINE, "pause detected as a failure", || {
        activities(&d, &app)
            .iter()
            .any(|a| a.name == "entity.failed")
            .then_some(())
    });
    wait_full_health(&d, &app, 2);
    let paused = inspect(&victim)["State"]["Paused"].as_bool();
    assert_ne!(
        paused,
        Some(true),
        "the paused container is no longer paused (restarted or replaced)"
    );
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("drover's /proc stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn a_crash_looping_member_backs_off_gives_up_and_stays_bounded() {
    let app = unique("crash");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(d.child.id());
    d.deploy(&resilient_cluster(&app, 1, "CRASH_AT_START: \"1\""));

    // The replacer stops after its failure limit and puts the cluster on fire.
    let stop = wait_for(DEADLINE, "replacer.stop", || {
        activities(&d, &app)
            .into_iter()
            .find(|a| a.name == "replacer.stop")
    });
    assert!(
        stop.message.as_deref().unwrap().contains("limit 3"),
        "{stop:?}"
    );
    wait_for(
        Duration::from_secs(10),
        "cluster on fire with the replacer's reason",
        || {
            let web = d.entity_view(&app, "web")?;
            (web.state == Lifecycle::OnFire
                && web
                    .sensor_str("entity.error")
                    .is_some_and(|e| e.contains("replacer stopped")))
            .then_some(())
        },
    );

    // Backoff: for the first member, restart delays grow.
    let acts = activities(&d, &app);
    let mut delays: Vec<f64> = acts
        .iter()
        .filter(|a| {
            a.name == "restarter.restart" && a.entity == "web-1" && a.outcome == "scheduled"
        })
        .map(|a| a.args["delay_seconds"].as_f64().unwrap())
        .collect();
    delays.reverse(); // newest first in the record
    assert!(
        delays.len() >= 3,
        "several restarts were scheduled: {delays:?}"
    );
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "restart delays grow: {delays:?}"
    );
    assert!(
        acts.iter()
            .any(|a| a.name == "restarter.give_up" && a.entity == "web-1"),
        "the restarter gave up"
    );
    let replaced = acts.iter().filter(|a| a.name == "replacer.replace").count();
    assert_eq!(
        replaced, 2,
        "two failed replacements were retried before the limit (3) stopped it: {acts:#?}"
    );

    // Bounded: nothing new is created after the stop.
    let started = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("drover_containers_started_total "))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = started(&d.get_text("/metrics"));
    std::thread::sleep(Duration::from_secs(3));
    let after = started(&d.get_text("/metrics"));
    assert_eq!(
        before, after,
        "no container is created once the replacer stopped"
    );
    assert!(
        after <= 4.0,
        "1 member + 3 replacement attempts at most: {after}"
    );
    assert!(
        containers_of(&app, true).len() <= 1,
        "failed replacements are cleaned up"
    );

    // Low CPU: backoff, not a spin.
    let cpu = cpu_seconds(d.child.id()) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    assert!(
        cpu < wall * 0.3,
        "drover used {cpu:.2} s of CPU in {wall:.1} s"
    );
}

#[test]
fn the_load_balancer_keeps_serving_through_a_kill() {
    let app = unique("lbkill");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 3, ""));
    d.wait_running(&app, DEADLINE);
    let lb = d.sensors(&app, "lb");
    let port = lb["lb.port"]["value"]
        .as_u64()
        .expect("lb publishes its port") as u16;
    wait_for(Duration::from_secs(10), "3 backends in the pool", || {
        (d.sensors(&app, "lb")["lb.backends"]["value"]
            .as_array()
            .map(|a| a.len())
            == Some(3))
        .then_some(())
    });

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, 0u32);
            let mut served_by = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match http_get(port, "/") {
                    Some((200, body)) => {
                        ok += 1;
                        served_by.insert(body.trim().to_string());
                    }
                    _ => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (ok, failed, served_by)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let victim = containers_of(&app, false)[1].clone();
    docker(&["kill", &victim]);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, served_by) = client.join().unwrap();
    assert!(ok > 100, "the client made progress: {ok}");
    assert!(
        served_by.len() >= 3,
        "requests were spread over the members: {served_by:?}"
    );
    assert!(
        failed <= 2,
        "at most 2 of {} requests failed during the kill, got {failed}",
        ok + failed
    );
    // Traffic sensors are published every second: they catch up with the client.
    wait_for(
        Duration::from_secs(5),
        "lb.connections_total counts the client's connections",
        || {
            let sensors = d.sensors(&app, "lb");
            (sensors["lb.connections_total"]["value"]
                .as_u64()
                .unwrap_or(0)
                >= (ok + failed) as u64)
                .then_some(())
        },
    );
}

#[test]
fn chaos_with_a_fixed_seed_converges_with_high_probe_success() {
    let app = unique("chaos");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 3, ""));
    d.wait_running(&app, DEADLINE);
    let out = Command::new(drover_bin())
        .args([
            "chaos",
            &app,
            "--duration",
            "60s",
            "--interval",
            "2s",
            "--seed",
            "42",
            "--faults",
            "kill",
            "-o",
            "json",
        ])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .expect("drover chaos runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "chaos -o json: {e}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "chaos exits 0 when converged: {report:#}"
    );
    assert_eq!(report["converged"], true, "{report:#}");
    assert!(
        report["faults_injected"].as_u64().unwrap() >= 25,
        "{report:#}"
    );
    let rate = report["probe_success_rate"].as_f64().unwrap();
    assert!(rate >= 0.99, "probe success {rate} < 0.99: {report:#}");
    assert!(
        report["mttr_p50_seconds"].as_f64().is_some()
            && report["mttr_p99_seconds"].as_f64().is_some(),
        "{report:#}"
    );
    // The same seed gives the same schedule.
    let kinds: Vec<&Value> = report["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["fault"])
        .collect();
    assert!(kinds.iter().all(|k| *k == "kill"));
}

#[test]
fn a_failed_stabilization_delay_holds_the_failure_back() {
    let app = unique("stab");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let bp = format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 1
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }} }}
      failure_detector: {{ failed_stabilization: 1500ms }}
    policies:
      - use: resilient
"#
    );
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    let victim = containers_of(&app, false)[0].clone();
    let t0 = std::time::Instant::now();
    docker(&["kill", &victim]);
    // On fire at once, but reported failed (and so restarted) only after 1.5 s.
    wait_for(Duration::from_secs(5), "on fire", || {
        let web_1 = d.entity_view(&app, "web-1");
        web_1
            .is_some_and(|e| e.state == Lifecycle::OnFire)
            .then_some(())
    });
    let failed_at = wait_for(DEADLINE, "entity.failed", || {
        activities(&d, &app)
            .iter()
            .any(|a| a.name == "entity.failed")
            .then(|| t0.elapsed())
    });
    assert!(
        failed_at >= Duration::from_millis(1400),
        "entity.failed came after {failed_at:?}, before the 1.5 s stabilization"
    );
    wait_full_health(&d, &app, 1);
}
