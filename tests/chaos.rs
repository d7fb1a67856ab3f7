//! Faults injected from outside drover, against the real engine: the fault
//! routes (`docker stop` through the engine, SIGKILL of the process from
//! this machine) are failures the restarter repairs, not orders, and a
//! `drover chaos` run mixing stop, pause and kill converges with the load
//! balancer still serving.

mod common;

use std::time::Duration;

use common::*;
use drover::wire::{Activity, FaultInjected, FaultKind};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

/// The chaos runs measure recovery: they run one at a time so that one
/// run's faults (or the extra dockerd of the engine-stop run) do not slow
/// another's recovery on a 2-core machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn resilient_cluster(app: &str, size: u32) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    member:
      image: drover/workload:latest
      ports: [8080]
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

/// Runs `drover chaos ... -o json` against `d` and reads its report.
fn chaos_json(d: &Drover, args: &[&str]) -> (std::process::Output, Value) {
    let out = d.command().args(args).output().expect("drover chaos runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "chaos -o json: {e}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, report)
}

fn activities(d: &Drover, app: &str, name: &str) -> Vec<Activity> {
    let (status, body) = d.get(&format!(
        "/v1/activities?application={app}&name={name}&limit=1000"
    ));
    assert_eq!(status, 200, "{body}");
    decode(body)
}

/// The member's `service.up`: (value, timestamp).
fn service_up(d: &Drover, app: &str, entity: &str) -> Option<(bool, u64)> {
    let s = d.sensors(app, entity);
    Some((
        s["service.up"]["value"].as_bool()?,
        s["service.up"]["timestamp_ms"].as_u64()?,
    ))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Injects `kind` into `entity` through the fault route, then waits for the
/// restarter to bring it back: the fault was a failure, not an order.
fn fault_is_repaired(d: &Drover, app: &str, entity: &str, kind: FaultKind) -> FaultInjected {
    let container = d.sensors(app, entity)["container.id"]["value"]
        .as_str()
        .expect("container.id")
        .to_string();
    let restarts_before = activities(d, app, "restarter.restart")
        .iter()
        .filter(|a| a.entity == entity)
        .count();
    let t0 = now_ms();
    let (status, body) = d.post(
        &format!("/v1/applications/{app}/entities/{entity}/faults/{kind}"),
        "",
    );
    assert_eq!(status, 200, "{kind} fault: {body}");
    let done: FaultInjected = decode(body);
    assert_eq!(done.fault, kind);
    assert_eq!(done.host, "local");
    assert_eq!(done.container.as_deref(), Some(&container[..12]));
    // The restarter restarts it in place (same container, started again).
    wait_for(
        DEADLINE,
        &format!("the restarter restarts {entity} after {kind}"),
        || {
            let restarts = activities(d, app, "restarter.restart")
                .iter()
                .filter(|a| a.entity == entity)
                .count();
            let back = service_up(d, app, entity).is_some_and(|(up, ts)| up && ts > t0);
            (restarts > restarts_before && back && d.entity(app, entity)["state"] == "running")
                .then_some(())
        },
    );
    // Not an order: the entity still wants to run, and runs.
    assert_eq!(inspect(&container)["State"]["Running"], true);
    // Recorded, with how it was done.
    let recorded = activities(d, app, "chaos.fault");
    let a = recorded
        .iter()
        .find(|a| a.entity == entity && a.args["fault"] == kind.as_str())
        .unwrap_or_else(|| panic!("no chaos.fault activity for {kind}: {recorded:?}"));
    assert_eq!(a.kind, "event");
    assert_eq!(a.outcome, "ok");
    assert_eq!(a.args["how"], Value::from(done.how.clone()));
    done
}

#[test]
fn faults_through_the_route_are_failures_the_restarter_repairs() {
    require_docker();
    let app = unique("fault");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 2));
    d.wait_running(&app, DEADLINE);

    let stop = fault_is_repaired(&d, &app, "web-1", FaultKind::Stop);
    assert_eq!(stop.how, "docker stop through engine local");
    assert_eq!(stop.pid, None);

    // SIGKILL of the main process from this machine's OS, past the engine.
    let main_pid = inspect(
        &containers_of(&app, false)
            .into_iter()
            .find(|c| inspect(c)["Config"]["Labels"]["io.drover.entity"] == "web-2")
            .expect("web-2's container"),
    )["State"]["Pid"]
        .as_u64()
        .unwrap() as u32;
    let sigkill = fault_is_repaired(&d, &app, "web-2", FaultKind::Sigkill);
    assert_eq!(sigkill.pid, Some(main_pid));
    assert!(
        sigkill
            .how
            .starts_with(&format!("SIGKILL pid {main_pid} on this machine")),
        "{}",
        sigkill.how
    );

    // Refusals say why: a cluster is no container, engine-stop strikes a
    // host, and `local` is no pool.
    let (status, body) = d.post(
        &format!("/v1/applications/{app}/entities/web/faults/kill"),
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_body(body).error.contains("not a container"));
    let (status, body) = d.post(
        &format!("/v1/applications/{app}/entities/web-1/faults/engine-stop"),
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_body(body).error.contains("/v1/locations/"));
    let (status, body) = d.post("/v1/locations/local/hosts/local/faults/engine-stop", "");
    assert_eq!(status, 404, "{body}");
    assert!(error_body(body).error.contains("no host pool `local`"));
    let (status, body) = d.post(
        &format!("/v1/applications/{app}/entities/web-1/faults/reboot"),
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(error_body(body).error.contains("unknown fault `reboot`"));
}

#[test]
fn chaos_of_stops_pauses_and_kills_converges_with_the_balancer_serving() {
    require_docker();
    let _one = serial();
    let app = unique("chaosmix");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&resilient_cluster(&app, 3));
    d.wait_running(&app, DEADLINE);
    let (out, report) = chaos_json(
        &d,
        &[
            "chaos",
            &app,
            "--faults",
            "stop,pause,kill",
            "--duration",
            "30s",
            // One fault every 2 s, the rate the design's availability goal
            // names: a paused member holds a probe until it is ejected, so
            // a faster mix measures the probe timeout, not recovery.
            "--interval",
            "2s",
            "--seed",
            "7",
            "-o",
            "json",
        ],
    );
    // The measurements, for the record.
    eprintln!(
        "chaos stop,pause,kill: probe success {}, MTTR p50 {} p99 {}; per fault: {}",
        report["probe_success_rate"],
        report["mttr_p50_seconds"],
        report["mttr_p99_seconds"],
        report["by_fault"]
    );
    assert!(
        out.status.success(),
        "chaos exits 0 when converged: {report:#}"
    );
    assert_eq!(report["converged"], true, "{report:#}");
    let faults = report["faults"].as_array().unwrap();
    let planned = drover::cli::chaos::schedule(
        7,
        Duration::from_secs(30),
        Duration::from_secs(2),
        &[FaultKind::Stop, FaultKind::Pause, FaultKind::Kill],
    );
    assert_eq!(faults.len(), planned.len(), "{report:#}");
    assert!(
        report["faults_injected"].as_u64().unwrap() + 2 >= planned.len() as u64,
        "{report:#}"
    );
    let rate = report["probe_success_rate"].as_f64().unwrap();
    assert!(rate >= 0.99, "probe success {rate} < 0.99: {report:#}");
    // Each fault says how it was injected: through the engine, never an effector.
    for f in faults.iter().filter(|f| f["error"].is_null()) {
        let want = match f["fault"].as_str().unwrap() {
            "stop" => "docker stop through engine local",
            "pause" => "docker pause through engine local",
            "kill" => "docker kill (SIGKILL) through engine local",
            other => panic!("fault {other} was not asked for"),
        };
        assert_eq!(f["how"], want, "{f}");
        assert!(f["mttr_seconds"].as_f64().is_some(), "not recovered: {f}");
    }
    let kinds: Vec<&str> = report["by_fault"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["fault"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["kill", "stop", "pause"], "{report:#}");
    // Converged: every member running, the cluster at its size.
    let detail = d.app_detail(&app);
    let members: Vec<_> = detail
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
        .collect();
    assert_eq!(members.len(), 3, "{:?}", detail.entities);
    for m in members {
        assert_eq!(m.state.as_str(), "running", "{m:?}");
    }
    assert_eq!(containers_of(&app, false).len(), 3);
    assert_eq!(
        activities(&d, &app, "chaos.fault").len(),
        report["faults_injected"].as_u64().unwrap() as usize
    );
}

#[test]
fn chaos_engine_stop_stops_a_provisioned_engine_and_the_pool_notices() {
    let _one = serial();
    let mut engines = common::engines::Engines::start(0);
    let subnet = engines.provision_subnet();
    let cfg = engines.dir.path().join("drover.yaml");
    std::fs::write(
        &cfg,
        format!(
            "locations:\n  pool:\n    placement: {{ max_containers: 2 }}\n    max_hosts: 3\n    \
             on_fire_after: 2s\n    \
             provisioner: {{ type: local-dockerd, dir: '{}', subnet: {subnet} }}\n",
            engines.provision_dir().display()
        ),
    )
    .unwrap();
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = unique("enginestop");
    let _g = AppGuard(app.clone());
    d.deploy(&resilient_cluster(&app, 2).replacen("services:", "location: pool\nservices:", 1));
    d.wait_running(&app, DEADLINE);
    // The listed-not-provisioned case and an unknown host are refused.
    let (status, body) = d.post("/v1/locations/pool/hosts/nope/faults/engine-stop", "");
    assert_eq!(status, 404, "{body}");
    assert!(error_body(body).error.contains("has no host `nope`"));

    let (_, report) = chaos_json(
        &d,
        &[
            "chaos",
            &app,
            "--faults",
            "engine-stop",
            "--duration",
            "2s",
            "--interval",
            "2s",
            "--seed",
            "1",
            "--settle",
            "120s",
            "-o",
            "json",
        ],
    );
    eprintln!(
        "chaos engine-stop: probe success {}, MTTR {}; fault: {}",
        report["probe_success_rate"], report["mttr_p50_seconds"], report["faults"][0]
    );
    assert_eq!(report["converged"], true, "{report:#}");
    let f = &report["faults"][0];
    assert_eq!(f["fault"], "engine-stop", "{f}");
    assert_eq!(f["target"], "pool-1", "{f}");
    assert_eq!(f["affected"], serde_json::json!(["web-1", "web-2"]), "{f}");
    let how = f["how"].as_str().unwrap_or_default();
    assert!(
        how.starts_with("SIGTERM to dockerd pid") && how.contains("host pool-1"),
        "{f}"
    );
    assert!(f["mttr_seconds"].as_f64().is_some(), "{f}");
    // The pool noticed by itself (its pings), and the members run elsewhere.
    let (_, locs) = d.get("/v1/locations");
    assert!(
        locs[0]["events"]
            .to_string()
            .contains("host pool-1 is on fire"),
        "{locs}"
    );
    for e in d
        .app_detail(&app)
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
    {
        assert_ne!(e.sensor_str("host.name"), Some("pool-1"), "{e:?}");
    }
    let (_, acts) = d.get("/v1/activities?application=%40location&entity=pool&name=chaos.fault");
    assert_eq!(acts[0]["args"]["host"], "pool-1", "{acts}");
    // No destroy here: the application's network lives on the stopped
    // engine; the guards remove the engines and what ran on them.
}
