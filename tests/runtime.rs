//! What real images need, against the real engine: health checks the engine runs, start
//! periods, secrets, stop signal and grace, Docker's env names, build target and args, and fixed
//! host ports.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

/// The workload image's one program, as its own health check command.
const EXEC_CHECK: &str = r#"["/workload", "--check", "http://127.0.0.1:8080/health"]"#;

fn activities(d: &Drover, app: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    assert_eq!(status, 200);
    body.as_array().unwrap().clone()
}

fn sensor(d: &Drover, app: &str, entity: &str, name: &str) -> Value {
    d.sensors(app, entity)[name]["value"].clone()
}

fn state(d: &Drover, app: &str, entity: &str) -> String {
    d.entity(app, entity)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A port nothing listens on now (the kernel's choice).
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_exec_health_check_runs_in_the_engine_with_the_stop_settings_and_docker_env_names() {
    let app = unique("exec");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&format!(
        r#"name: {app}
services:
  - id: db
    type: container
    image: drover/workload:latest
    env: {{ discovery.type: single-node }}
    stop_signal: SIGINT
    stop_grace_period: 7s
    hostname: shop_db
    health: {{ exec: {EXEC_CHECK}, interval: 300ms, timeout: 2s, retries: 2 }}
"#
    ));
    d.wait_running(&app, DEADLINE);
    assert_eq!(sensor(&d, &app, "db", "service.up"), true);
    let c = inspect(&containers_of(&app, false)[0]);
    assert_eq!(
        c["Config"]["Healthcheck"]["Test"],
        serde_json::json!([
            "CMD",
            "/workload",
            "--check",
            "http://127.0.0.1:8080/health"
        ])
    );
    assert_eq!(c["Config"]["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Config"]["Healthcheck"]["Interval"], 300_000_000i64);
    // The engine itself ran the check and passed it: drover only listened.
    assert_eq!(c["State"]["Health"]["Status"], "healthy");
    assert_eq!(c["Config"]["StopSignal"], "SIGINT");
    assert_eq!(c["Config"]["StopTimeout"], 7);
    assert_eq!(c["Config"]["Hostname"], "shop_db");
    assert!(
        c["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("discovery.type=single-node")),
        "{}",
        c["Config"]["Env"]
    );
}

#[test]
fn an_unhealthy_engine_check_puts_it_on_fire_and_the_restarter_acts() {
    let app = unique("unhealthy");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&format!(
        r#"name: {app}
services:
  - id: db
    type: container
    image: drover/workload:latest
    env: {{ HEALTH_FAIL: "1" }}
    health: {{ exec: {EXEC_CHECK}, interval: 200ms, timeout: 2s, retries: 2 }}
    policies:
      - use: resilient
"#
    ));
    let failed = wait_for(DEADLINE, "entity.failed for the engine's verdict", || {
        activities(&d, &app)
            .into_iter()
            .find(|a| a["name"] == "entity.failed" && a["entity"] == "db")
    });
    let reason = failed["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the engine reports the container unhealthy"),
        "{failed}"
    );
    wait_for(DEADLINE, "the restarter's restart", || {
        activities(&d, &app)
            .iter()
            .any(|a| a["name"] == "restarter.restart" && a["entity"] == "db")
            .then_some(())
    });
    let id = containers_of(&app, true)[0].clone();
    assert_eq!(
        inspect(&id)["State"]["Health"]["Log"]
            .as_array()
            .and_then(|l| l.last().cloned())
            .map(|l| l["ExitCode"].clone()),
        Some(Value::from(1)),
        "the check's own command said unhealthy"
    );
}

/// The time from the deploy to the entity being on fire.
fn time_to_fire(d: &Drover, app: &str, blueprint: &str) -> Duration {
    let t0 = Instant::now();
    d.deploy(blueprint);
    wait_for(DEADLINE, &format!("{app} on fire"), || {
        (state(d, app, "db") == "on-fire").then_some(())
    });
    t0.elapsed()
}

#[test]
fn start_period_delays_failure_counting_for_engine_and_drover_checks() {
    let d = Drover::start();
    let period = Duration::from_secs(4);
    for (kind, health) in [
        ("engine", format!("exec: {EXEC_CHECK}")),
        ("http", "http: { port: 8080, path: /health }".to_string()),
    ] {
        let app = unique(&format!("grace-{kind}"));
        let _g = AppGuard(app.clone());
        let took = time_to_fire(
            &d,
            &app,
            &format!(
                r#"name: {app}
services:
  - id: db
    type: container
    image: drover/workload:latest
    ports: [8080]
    env: {{ HEALTH_FAIL: "1" }}
    health: {{ {health}, interval: 200ms, timeout: 2s, retries: 1, start_period: 4s }}
"#
            ),
        );
        // Failing from the first check, yet on fire only after the grace
        // (and well before drover's 2-minute start timeout).
        assert!(took >= period, "{kind}: on fire after {took:?}");
        assert!(took < Duration::from_secs(60), "{kind}: {took:?}");
        if kind == "engine" {
            let c = inspect(&containers_of(&app, true)[0]);
            assert_eq!(c["Config"]["Healthcheck"]["StartPeriod"], 4_000_000_000i64);
        }
    }
}

#[test]
fn a_secret_is_mounted_read_only_and_never_stored_or_answered() {
    let app = unique("secret");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let content = format!("s3cret-{app}-value");
    let file = dir.path().join("db_password");
    std::fs::write(&file, &content).unwrap();
    let cfg = dir.path().join("drover.yaml");
    std::fs::write(
        &cfg,
        format!("secrets:\n  db_password: {{ file: {} }}\n", file.display()),
    )
    .unwrap();
    let store = dir.path().join("drover.redb");
    let d = Drover::start_with(&[
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);

    // An unknown name is refused with its position; nothing is created.
    let (status, body) = d.post(
        "/v1/applications",
        &format!(
            "name: {app}\nservices:\n  - id: db\n    type: container\n    \
             image: drover/workload:latest\n    secrets: [db_password, nope]\n"
        ),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["line"], 6, "{body}");
    assert_eq!(body["column"], 28, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown secret `nope`; drover.yaml's `secrets` defines db_password"),
        "{body}"
    );
    assert!(containers_of(&app, true).is_empty());

    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: db\n    type: container\n    \
         image: drover/workload:latest\n    \
         secrets: [db_password, {{ name: db_password, target: /etc/app/pw }}]\n"
    ));
    d.wait_running(&app, DEADLINE);
    let id = containers_of(&app, false)[0].clone();
    let mounts = inspect(&id)["Mounts"].as_array().unwrap().clone();
    for target in ["/run/secrets/db_password", "/etc/app/pw"] {
        let m = mounts
            .iter()
            .find(|m| m["Destination"] == target)
            .unwrap_or_else(|| panic!("no mount at {target}: {mounts:?}"));
        assert_eq!(m["Type"], "bind");
        assert_eq!(m["Source"], file.to_str().unwrap());
        assert_eq!(m["RW"], false, "read-only: {m}");
    }
    // Readable in the container (copied out through the engine: the image
    // has no shell to exec).
    let out = Command::new("docker")
        .args(["cp", &format!("{id}:/run/secrets/db_password"), "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&content));

    // Nowhere in drover's answers or store.
    for path in [
        "/v1/applications".to_string(),
        format!("/v1/applications/{app}"),
        format!("/v1/applications/{app}/entities"),
        format!("/v1/applications/{app}/entities/db/sensors"),
        format!("/v1/activities?application={app}"),
        "/metrics".to_string(),
    ] {
        let text = d.get_text(&path);
        assert!(!text.contains(&content), "{path} shows the secret");
    }
    let stored = std::fs::read(&store).unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&content),
        "the store holds the secret"
    );
}

#[test]
fn a_fixed_host_port_answers_there_and_a_clash_names_the_port() {
    let app = unique("fixed");
    let other = unique("clash");
    let _g = AppGuard(app.clone());
    let _g2 = AppGuard(other.clone());
    let d = Drover::start();
    let port = free_port();
    let blueprint = |name: &str| {
        format!(
            "name: {name}\nservices:\n  - id: db\n    type: container\n    \
             image: drover/workload:latest\n    ports: ['{port}:8080']\n    \
             health: {{ http: {{ port: 8080, path: /health }} }}\n"
        )
    };
    d.deploy(&blueprint(&app));
    d.wait_running(&app, DEADLINE);
    let (status, _) = http_get(port, "/health").expect("the fixed port answers");
    assert_eq!(status, 200);
    assert_eq!(sensor(&d, &app, "db", "host.port.8080"), port);

    d.deploy(&blueprint(&other));
    let error = wait_for(DEADLINE, "the clash's error", || {
        // The entity appears once the deploy has built it.
        let (status, s) = d.get(&format!("/v1/applications/{other}/entities/db/sensors"));
        if status != 200 {
            return None;
        }
        s["entity.error"]["value"].as_str().map(str::to_string)
    });
    assert!(
        error.contains(&format!("host port {port} is already in use on host local")),
        "{error}"
    );
    assert_eq!(state(&d, &other, "db"), "on-fire");
    // The first one still holds and serves its port.
    assert_eq!(http_get(port, "/health").map(|r| r.0), Some(200));
}

#[test]
fn a_build_target_and_args_reach_the_engines_build() {
    let app = unique("target");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    workload_image();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM drover/workload:latest AS first\nARG VERSION=none\n\
         LABEL io.test.version=$VERSION io.test.stage=first\n\
         FROM first AS second\nLABEL io.test.stage=second\n",
    )
    .unwrap();
    // The CLI packs and uploads the context (the service reads no path).
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "name: {app}\nservices:\n  - id: web\n    type: container\n    \
             build: {{ context: ., target: first, args: {{ VERSION: '1.2' }} }}\n"
        ),
    )
    .unwrap();
    let run = d.cli(&["deploy", file.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    d.wait_running(&app, DEADLINE);
    let c = inspect(&containers_of(&app, false)[0]);
    let image = c["Config"]["Image"].as_str().unwrap().to_string();
    let _rmi = ImageGuard(image);
    assert_eq!(c["Config"]["Labels"]["io.test.stage"], "first");
    assert_eq!(c["Config"]["Labels"]["io.test.version"], "1.2");
}

/// Removes a built image when dropped.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}
