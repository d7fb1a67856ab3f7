//! Foundation behaviour against the real Docker engine: deploy, resize,
//! destroy, bad input, engine events, the CLI, graceful stop.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use drover::protocol::Lifecycle;
use drover::wire::{Activity, AppSummary, Created};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);

fn member_ports(d: &Drover, app: &str) -> Vec<(String, u16)> {
    d.app_detail(app)
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
        .map(|e| {
            let port = e
                .sensor_u64("host.port.8080")
                .expect("member publishes host.port.8080") as u16;
            (
                e.sensor_str("container.id").unwrap_or_default().to_string(),
                port,
            )
        })
        .collect()
}

#[test]
fn deploys_a_three_member_cluster_that_answers_http() {
    let app = unique("deploy");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    assert_eq!(d.deploy(&cluster_blueprint(&app, 3)), app);
    d.wait_running(&app, DEADLINE);

    let running = containers_of(&app, false);
    assert_eq!(
        running.len(),
        3,
        "exactly 3 running containers carry io.drover.app={app}"
    );
    for id in &running {
        let labels = &inspect(id)["Config"]["Labels"];
        assert_eq!(labels["io.drover.managed"], "true");
        assert_eq!(labels["io.drover.app"], app.as_str());
        assert!(
            labels["io.drover.entity"]
                .as_str()
                .unwrap()
                .starts_with("web-"),
            "entity label: {labels}"
        );
    }
    let members = member_ports(&d, &app);
    assert_eq!(members.len(), 3);
    for (cid, port) in &members {
        let (status, body) = http_get(*port, "/").expect("member answers on its published port");
        assert_eq!(status, 200);
        assert!(
            cid.starts_with(body.trim()),
            "`/` answers with the container id: {body} vs {cid}"
        );
    }
    let cluster = d.entity_view(&app, "web").expect("cluster web");
    assert_eq!(cluster.state, Lifecycle::Running);
    assert_eq!(cluster.sensor_u64("group.size"), Some(3));
    // The application network exists, and members carry their id as alias.
    assert!(network_exists(&format!("drover-{app}")));
    let aliases =
        &inspect(&running[0])["NetworkSettings"]["Networks"][format!("drover-{app}")]["Aliases"];
    assert!(
        aliases
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("web-")),
        "aliases: {aliases}"
    );
    // Resource limits from the blueprint reach the engine.
    let hc = &inspect(&running[0])["HostConfig"];
    assert_eq!(hc["NanoCpus"], 250_000_000);
    assert_eq!(hc["Memory"], 64 * 1024 * 1024);
}

#[test]
fn resize_grows_and_shrinks_newest_first_and_is_idempotent() {
    let app = unique("resize");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&cluster_blueprint(&app, 2));
    d.wait_running(&app, DEADLINE);
    let first_two = containers_of(&app, true);

    let (status, body) = d.invoke(&app, "web", "resize", json!({"size": 5}));
    assert_eq!(status, 200, "resize 5: {body}");
    assert_eq!(containers_of(&app, true).len(), 5);
    assert_eq!(containers_of(&app, false).len(), 5);
    let five = containers_of(&app, true);
    let (status, _) = d.invoke(&app, "web", "resize", json!({"size": 5}));
    assert_eq!(status, 200);
    let mut again = containers_of(&app, true);
    let mut five_sorted = five.clone();
    again.sort();
    five_sorted.sort();
    assert_eq!(again, five_sorted, "a second resize(5) changes nothing");

    let (status, body) = d.invoke(&app, "web", "resize", json!({"size": 2}));
    assert_eq!(status, 200, "resize 2: {body}");
    let mut left = containers_of(&app, true);
    left.sort();
    let mut oldest = first_two.clone();
    oldest.sort();
    assert_eq!(left, oldest, "shrinking removes the newest members first");
    let web = d.entity_view(&app, "web").expect("cluster web");
    assert_eq!(web.sensor_u64("group.size"), Some(2));
    let (status, _) = d.invoke(&app, "web", "resize", json!({"size": 2}));
    assert_eq!(status, 200);
    assert_eq!(containers_of(&app, true).len(), 2);

    // Bad arguments are a 400 that names the problem.
    let (status, body) = d.invoke(&app, "web", "resize", json!({"count": 3}));
    assert_eq!(status, 400, "{body}");
    assert!(error_body(body.clone()).error.contains("size"), "{body}");
    let (status, body) = d.invoke(&app, "web", "explode", json!({}));
    assert_eq!(status, 400, "{body}");
    assert!(
        error_body(body.clone()).error.contains("resize"),
        "lists known effectors: {body}"
    );
}

#[test]
fn destroy_removes_every_container_and_the_network() {
    let app = unique("destroy");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&cluster_blueprint(&app, 2));
    d.wait_running(&app, DEADLINE);
    assert_eq!(containers_of(&app, true).len(), 2);
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204, "{body}");
    assert!(
        containers_of(&app, true).is_empty(),
        "no container of the app remains"
    );
    assert!(
        !network_exists(&format!("drover-{app}")),
        "the network is removed"
    );
    let (status, _) = d.get(&format!("/v1/applications/{app}"));
    assert_eq!(status, 404);
    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 404);
}

#[test]
fn bad_blueprints_are_rejected_with_positions_and_create_nothing() {
    let d = Drover::start();
    let cases: Vec<(&str, String, &str)> = {
        let n = |s: &str| unique(s);
        vec![
            ("syntax", format!("name: {}\nservices:\n  - id: web\n    type: \"cluster\n", n("bad")), ""),
            ("unknown key", format!("name: {}\nservices:\n  - id: web\n    type: container\n    imgae: x\n", n("bad")), "services[0]"),
            ("wrong type", format!("name: {}\nservices:\n  - id: web\n    type: cluster\n    initial_size: three\n    member:\n      image: drover/workload:latest\n", n("bad")), "services[0].initial_size"),
            ("missing image", format!("name: {}\nservices:\n  - id: web\n    type: container\n    ports: [8080]\n", n("bad")), "services[0]"),
            ("duplicate id", format!("name: {}\nservices:\n  - id: web\n    type: container\n    image: drover/workload:latest\n  - id: web\n    type: container\n    image: drover/workload:latest\n", n("bad")), "services[1].id"),
        ]
    };
    for (what, yaml, path) in &cases {
        let app = yaml
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("name: ")
            .to_string();
        let _g = AppGuard(app.clone());
        let (status, body) = d.post("/v1/applications", yaml);
        assert_eq!(status, 400, "{what}: {body}");
        let e = error_body(body.clone());
        assert!(e.line.is_some_and(|l| l >= 1), "{what}: a line: {body}");
        assert!(e.column.is_some_and(|c| c >= 1), "{what}: a column: {body}");
        assert!(!e.error.is_empty(), "{what}: {body}");
        assert!(
            e.path.as_deref().unwrap_or_default().starts_with(path),
            "{what}: path {path}: {body}"
        );
        assert!(
            containers_of(&app, true).is_empty(),
            "{what}: no container created"
        );
        assert!(
            !network_exists(&format!("drover-{app}")),
            "{what}: no network created"
        );
        let (status, _) = d.get(&format!("/v1/applications/{app}"));
        assert_eq!(status, 404, "{what}: no application created");

        // `drover validate` says the same, with file:line:column, and fails.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bp.yaml");
        std::fs::write(&file, yaml).unwrap();
        let out = Command::new(drover_bin())
            .args(["validate", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what}: validate exits non-zero");
        let err = String::from_utf8_lossy(&out.stderr);
        let expected = format!(
            "{}:{}:{}",
            file.display(),
            e.line.unwrap(),
            e.column.unwrap()
        );
        assert!(
            err.contains(&expected),
            "{what}: validate names {expected}: {err}"
        );
    }
    let (_, apps) = d.get("/v1/applications");
    assert_eq!(apps, json!([]), "nothing was created");
}

#[test]
fn a_container_removed_behind_droversback_is_seen_from_the_event_stream() {
    let app = unique("rmf");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&cluster_blueprint(&app, 1));
    d.wait_running(&app, DEADLINE);
    let id = containers_of(&app, false).pop().expect("one member");
    let out = Command::new("docker")
        .args(["rm", "-f", &id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t0 = Instant::now();
    // The periodic resync runs every 10 s: seeing it within 2 s proves the
    // event stream did it.
    let member = wait_for(
        Duration::from_secs(2),
        "member leaves running after docker rm -f",
        || {
            let m = d.entity_view(&app, "web-1").expect("member web-1");
            (m.state != Lifecycle::Running).then_some(m)
        },
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(member.state, Lifecycle::OnFire);
    assert_eq!(member.sensor("service.up"), Some(&json!(false)));
    assert_eq!(member.sensor_str("service.state"), Some("removed"));
}

#[test]
fn the_cli_deploys_shows_invokes_and_destroys() {
    let app = unique("cli");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, cluster_blueprint(&app, 1)).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(drover_bin())
            .args(args)
            .env("DROVER_URL", &d.url)
            .env("DROVER_TOKEN", &d.token)
            .output()
            .expect("drover runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = cli(&["deploy", file.to_str().unwrap(), "--wait", "-o", "json"]);
    assert!(ok, "deploy --wait: {stdout} {stderr}");
    let v: Created = serde_json::from_str(&stdout).expect("deploy -o json prints JSON");
    assert_eq!(v.id, app);

    let (ok, stdout, _) = cli(&["ls", "-o", "json"]);
    assert!(ok);
    let apps: Vec<AppSummary> = serde_json::from_str(&stdout).unwrap();
    assert!(apps
        .iter()
        .any(|a| a.id == app && a.state == Lifecycle::Running));

    let (ok, stdout, _) = cli(&["status", &app]);
    assert!(ok);
    assert!(
        stdout.contains("web-1") && stdout.contains("running"),
        "status shows the tree: {stdout}"
    );

    let (ok, stdout, stderr) = cli(&["invoke", &app, "web", "resize", "size=2", "-o", "json"]);
    assert!(ok, "invoke: {stdout} {stderr}");
    assert_eq!(containers_of(&app, false).len(), 2);

    let (ok, stdout, stderr) = cli(&["invoke", &app, "web-1", "restart"]);
    assert!(ok, "restart: {stdout} {stderr}");

    let (ok, _, stderr) = cli(&["status", "no-such-app"]);
    assert!(!ok);
    assert!(stderr.contains("no application `no-such-app`"), "{stderr}");

    let (ok, stdout, _) = cli(&["activities", "--app", &app, "-o", "json"]);
    assert!(ok);
    let acts: Vec<Activity> = serde_json::from_str(&stdout).unwrap();
    assert!(
        acts.iter().any(|a| a.name == "resize" && a.outcome == "ok"),
        "{acts:?}"
    );

    let (ok, _, stderr) = cli(&["destroy", &app]);
    assert!(ok, "destroy: {stderr}");
    assert!(containers_of(&app, true).is_empty());
}

#[test]
fn sigterm_stops_gracefully_and_leaves_containers_running() {
    let app = unique("sigterm");
    let _g = AppGuard(app.clone());
    let mut d = Drover::start();
    d.deploy(&cluster_blueprint(&app, 2));
    d.wait_running(&app, DEADLINE);
    let before = containers_of(&app, false);
    let status = d.terminate();
    assert!(status.success(), "drover exits 0 on SIGTERM: {status:?}");
    let mut after = containers_of(&app, false);
    let mut b = before.clone();
    after.sort();
    b.sort();
    assert_eq!(after, b, "containers keep running after drover stops");
}

#[test]
fn metrics_and_health_endpoints_answer() {
    let app = unique("metrics");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&cluster_blueprint(&app, 1));
    d.wait_running(&app, DEADLINE);
    let (status, body) = d.get("/healthz");
    assert_eq!(status, 200, "{body}");
    let text = d.get_text("/metrics");
    assert!(text.contains("drover_applications 1"), "{text}");
    assert!(
        text.contains(r#"drover_entities{kind="container",state="running"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"drover_cluster_size{{application="{app}",entity="web"}} 1"#
        )),
        "{text}"
    );
    assert!(text.contains("drover_containers_started_total 1"), "{text}");
    assert!(
        text.contains("drover_effector_duration_seconds_bucket"),
        "{text}"
    );
    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204);
    let text = d.get_text("/metrics");
    assert!(
        !text.contains(&app),
        "series of a destroyed application disappear: {text}"
    );
}
