//! The management actor's defects of issue 12, against the real engine and
//! the real `drover` binary: a second `serve --deploy` keeps the rebound
//! application, presets are built in, `drover validate` and the server
//! refuse the same blueprints with the same messages, a redeployed
//! application starts afresh, and the detail answer has one `entities`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

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
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - use: resilient
      - use: replace-failed
"#
    )
}

fn activities(d: &Drover, query: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/activities?{query}&limit=1000"));
    assert_eq!(status, 200, "activities: {body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Each container of the application, with when it last started.
fn containers_started(app: &str) -> BTreeSet<(String, String)> {
    containers_of(app, true)
        .into_iter()
        .map(|id| {
            let started = inspect(&id)["State"]["StartedAt"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (id, started)
        })
        .collect()
}

fn members(detail: &Value) -> BTreeSet<String> {
    detail["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["parent"] == "web")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_second_serve_with_the_same_deploy_keeps_the_running_application() {
    let app = unique("again");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, cluster_blueprint(&app, 2)).unwrap();
    let args = [
        "--store",
        store.to_str().unwrap(),
        "--deploy",
        file.to_str().unwrap(),
    ];
    {
        let mut d = Drover::start_with(&args);
        d.wait_running(&app, DEADLINE);
        assert!(d.terminate().success());
    }
    let before = containers_started(&app);
    assert_eq!(before.len(), 2);

    // Same file: an apply with nothing to do; nothing touched, drover
    // carries on.
    let mut d = Drover::start_with(&args);
    let kept = wait_for(DEADLINE, "the start-up deploy is a no-op apply", || {
        activities(&d, &format!("application={app}&name=apply"))
            .first()
            .cloned()
    });
    assert_eq!(kept["args"]["noop"], true, "{kept}");
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "drover serve keeps running after a second --deploy of the same blueprint"
    );
    d.wait_running(&app, DEADLINE);
    assert_eq!(containers_started(&app), before, "no container was touched");
    assert!(d.terminate().success());

    // A changed file (issue 14): applied, a resize; the members that ran
    // are kept.
    std::fs::write(&file, cluster_blueprint(&app, 3)).unwrap();
    let d = Drover::start_with(&args);
    wait_for(DEADLINE, "the edited file is applied: 3 members", || {
        let detail = d.app(&app);
        (members(&detail).len() == 3).then_some(())
    });
    d.wait_running(&app, DEADLINE);
    assert!(
        before.is_subset(&containers_started(&app)),
        "the members that ran were kept"
    );
}

#[test]
fn the_shipped_presets_are_known_without_a_preset_directory() {
    let app = unique("builtin");
    let _g = AppGuard(app.clone());
    let nowhere = tempfile::tempdir().unwrap();
    let missing = nowhere.path().join("no-policies-here");
    let d = Drover::start_with(&["--policies", missing.to_str().unwrap()]);
    let (status, body) = d.post("/v1/applications", &resilient_cluster(&app, 1));
    assert_eq!(status, 201, "use: resilient deploys anywhere: {body}");
    d.wait_running(&app, DEADLINE);
    let (_, presets) = d.get("/v1/presets");
    let names: Vec<&str> = presets["presets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in [
        "resilient",
        "replace-failed",
        "web-autoscaler",
        "cpu-rebalance",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // And `drover validate`, run outside the repository.
    let file = nowhere.path().join("b.yaml");
    std::fs::write(&file, resilient_cluster(&app, 1)).unwrap();
    let out = Command::new(drover_bin())
        .current_dir(nowhere.path())
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn drover_validate_refuses_what_the_server_refuses_with_the_same_messages() {
    let d = Drover::start();
    let dir = tempfile::tempdir().unwrap();
    let faults = [
        ("key", "      - type: restarter\n        bakcoff_start: 1s\n"),
        ("kind", "      - type: teleporter\n"),
        (
            "bounds",
            "      - type: autoscaler\n        metric: load\n        lower: 50\n        upper: 10\n",
        ),
    ];
    for (fault, policy) in faults {
        let app = unique(&format!("val-{fault}"));
        let _g = AppGuard(app.clone());
        let text = format!(
            "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 1\n    member:\n      image: drover/workload:latest\n    policies:\n{policy}"
        );
        let (status, body) = d.post("/v1/applications", &text);
        assert_eq!(status, 400, "{fault}: the server refuses: {body}");
        let e = &body["errors"][0];
        let file = dir.path().join(format!("{fault}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let expected = format!(
            "{}:{}:{}: {}: {}",
            file.display(),
            e["line"],
            e["column"],
            e["path"].as_str().unwrap(),
            e["error"].as_str().unwrap()
        );
        let out = Command::new(drover_bin())
            .args(["validate", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{fault}: drover validate refuses it");
        assert!(
            stderr.contains(&expected),
            "{fault}: same message\n  validate: {stderr}\n  expected: {expected}"
        );
    }
}

/// Every latest activity the detail shows is of this incarnation.
fn no_latest_activity_before(detail: &Value) {
    let created = detail["created_ms"].as_u64().unwrap();
    for (entity, a) in detail["latest_activities"].as_object().unwrap() {
        assert!(
            a["time_ms"].as_u64().unwrap() >= created,
            "{entity}'s latest activity is of the new application: {a}"
        );
        assert_ne!(a["name"], "entity.failed", "{entity}: {a}");
    }
}

#[test]
fn a_redeployed_application_starts_afresh() {
    let app = unique("again-fresh");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);

    // In one process: a member fails, the application is destroyed and
    // deployed again; the new members show none of the old activities.
    d.deploy(&resilient_cluster(&app, 2));
    d.wait_running(&app, DEADLINE);
    let victim = containers_of(&app, false)[0].clone();
    assert!(Command::new("docker")
        .args(["kill", &victim])
        .status()
        .unwrap()
        .success());
    wait_for(DEADLINE, "the failure is recorded", || {
        (!activities(&d, &format!("application={app}&name=entity.failed")).is_empty()).then_some(())
    });
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert!(status < 300, "destroy: {body}");
    d.deploy(&resilient_cluster(&app, 2));
    let detail = d.wait_running(&app, DEADLINE);
    no_latest_activity_before(&detail);

    // A replacement moves the cluster's numbering on (web-3); a restart
    // puts that saved state in memory; destroy and deploy again.
    let (status, body) = d.invoke(
        &app,
        "web",
        "replace_member",
        serde_json::json!({ "member": "web-1" }),
    );
    assert_eq!(status, 200, "replace_member: {body}");
    wait_for(DEADLINE, "the replacement runs", || {
        let detail = d.app(&app);
        members(&detail).contains("web-3").then_some(())
    });
    assert!(d.terminate().success());
    let d = Drover::start_on(&store);
    d.wait_running(&app, DEADLINE);
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert!(status < 300, "destroy: {body}");
    d.deploy(&resilient_cluster(&app, 2));
    let detail = d.wait_running(&app, DEADLINE);
    assert_eq!(
        members(&detail),
        BTreeSet::from(["web-1".to_string(), "web-2".to_string()]),
        "members are numbered afresh"
    );
    no_latest_activity_before(&detail);
    // One `entities` key: the tree; the count is `entity_count`.
    let raw = d.get_text(&format!("/v1/applications/{app}"));
    assert_eq!(raw.matches("\"entities\":").count(), 1, "{raw}");
    assert_eq!(
        detail["entity_count"].as_u64().unwrap() as usize,
        detail["entities"].as_array().unwrap().len()
    );
    // And across a restart: nothing of the first application comes back.
    drop(d);
    let d = Drover::start_on(&store);
    let detail = d.wait_running(&app, DEADLINE);
    assert_eq!(
        members(&detail),
        BTreeSet::from(["web-1".to_string(), "web-2".to_string()])
    );
}
