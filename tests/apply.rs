//! Issue 14, apply: `drover apply` / `drover diff` / `PUT
//! /v1/applications/{app}` and `serve --deploy` as an apply, against the
//! real engine and the real `drover` binary.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use drover::wire::{Plan, PlanAction, PolicyStatus};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

/// A cluster with an autoscaler on CPU (`upper`; `lower: 0` never shrinks it), and
/// optionally a single container `extra`.
fn blueprint(app: &str, size: u32, upper: u32, version: &str, extra: Option<&str>) -> String {
    let mut text = format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    member:
      image: drover/workload:latest
      ports: [8080]
      env: {{ VERSION: "{version}" }}
      resources: {{ cpus: 0.25, memory: 64Mi }}
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
      - type: autoscaler
        metric: cpu.usage
        lower: 0
        upper: {upper}
        min_size: 1
        max_size: 6
"#
    );
    if let Some(id) = extra {
        text.push_str(&format!(
            "  - id: {id}\n    type: container\n    image: drover/workload:latest\n    ports: [8080]\n"
        ));
    }
    text
}

fn write(dir: &Path, text: &str) -> String {
    let f = dir.join("app.yaml");
    std::fs::write(&f, text).unwrap();
    f.to_str().unwrap().to_string()
}

fn apply(d: &Drover, file: &str, extra: &[&str]) -> Plan {
    let mut args = vec!["apply", file];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", "json"]);
    let run = d.cli(&args);
    assert!(run.ok, "drover apply: {}{}", run.stdout, run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("plan: {e}: {}", run.stdout))
}

fn action(p: &Plan, id: &str) -> PlanAction {
    p.services.iter().find(|s| s.id == id).expect(id).action
}

/// Every container of the application with when it started.
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

fn policy(d: &Drover, app: &str) -> PolicyStatus {
    let (s, body) = d.get(&format!(
        "/v1/applications/{app}/entities/web/policies/autoscaler"
    ));
    assert_eq!(s, 200, "{body}");
    decode(body)
}

fn activities(d: &Drover, query: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/activities?{query}&limit=1000"));
    assert_eq!(status, 200, "activities: {body}");
    body.as_array().cloned().unwrap_or_default()
}

fn members(d: &Drover, app: &str) -> usize {
    d.app_detail(app)
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
        .count()
}

#[test]
fn a_policy_change_touches_no_container_and_the_same_file_twice_is_a_noop() {
    let app = unique("apply-pol");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Drover::start();
    let file = write(dir.path(), &blueprint(&app, 2, 80, "1", None));
    let created = apply(&d, &file, &[]);
    assert!(created.create, "{created:?}");
    d.wait_running(&app, DEADLINE);
    let before = containers_started(&app);
    assert_eq!(before.len(), 2);

    // diff first: the plan, nothing done.
    write(dir.path(), &blueprint(&app, 2, 95, "1", None));
    let diff = d.cli(&["diff", &file]);
    assert!(diff.ok, "{}{}", diff.stdout, diff.stderr);
    assert!(diff.stdout.contains("~ web in-place"), "{}", diff.stdout);
    assert!(
        diff.stdout.contains("policies.autoscaler"),
        "{}",
        diff.stdout
    );
    assert_eq!(
        policy(&d, &app).config["upper"],
        80.0,
        "diff changes nothing"
    );

    let plan = apply(&d, &file, &[]);
    assert_eq!(action(&plan, "web"), PlanAction::InPlace, "{plan:?}");
    wait_for(DEADLINE, "the autoscaler takes upper 95", || {
        (policy(&d, &app).config["upper"] == 95.0).then_some(())
    });
    assert_eq!(containers_started(&app), before, "no container was touched");

    // The same file again: a no-op, nothing touched.
    let again = apply(&d, &file, &[]);
    assert!(again.noop, "{again:?}");
    wait_for(DEADLINE, "the no-op apply is recorded", || {
        activities(&d, &format!("application={app}&name=apply"))
            .iter()
            .any(|a| a["args"]["noop"] == true)
            .then_some(())
    });
    assert_eq!(containers_started(&app), before, "no container was touched");
}

#[test]
fn a_resize_resizes_only_and_services_come_and_go() {
    let app = unique("apply-size");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Drover::start();
    let file = write(dir.path(), &blueprint(&app, 1, 80, "1", Some("old")));
    apply(&d, &file, &[]);
    d.wait_running(&app, DEADLINE);
    let before = containers_started(&app);
    assert_eq!(before.len(), 2);

    write(dir.path(), &blueprint(&app, 3, 80, "1", Some("new")));
    let plan = apply(&d, &file, &[]);
    assert_eq!(action(&plan, "web"), PlanAction::InPlace, "{plan:?}");
    assert_eq!(action(&plan, "new"), PlanAction::Added);
    assert_eq!(action(&plan, "old"), PlanAction::Removed);
    wait_for(DEADLINE, "3 members, `new` running and `old` gone", || {
        let detail = d.app_detail(&app);
        let ids: BTreeSet<&str> = detail.entities.iter().map(|e| e.id.as_str()).collect();
        (members(&d, &app) == 3 && ids.contains("new") && !ids.contains("old")).then_some(())
    });
    d.wait_running(&app, DEADLINE);
    let after = containers_started(&app);
    assert_eq!(after.len(), 4, "3 members and `new`");
    let kept: Vec<_> = before.intersection(&after).collect();
    assert_eq!(
        kept.len(),
        1,
        "the first member was kept as it ran: {before:?} {after:?}"
    );
}

#[test]
fn a_policy_set_survives_kill_9_and_an_apply_resets_it() {
    let app = unique("apply-ovr");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let file = write(dir.path(), &blueprint(&app, 1, 80, "1", None));
    let mut d = Drover::start_on(&store);
    apply(&d, &file, &[]);
    d.wait_running(&app, DEADLINE);
    let set = d.cli(&[
        "policy",
        "set",
        &app,
        "web",
        "autoscaler",
        "upper=42",
        "-o",
        "json",
    ]);
    assert!(set.ok, "{}{}", set.stdout, set.stderr);
    let stop = d.cli(&["policy", "stop", &app, "web", "autoscaler", "-o", "json"]);
    assert!(stop.ok, "{}{}", stop.stdout, stop.stderr);
    assert_eq!(
        activities(&d, &format!("application={app}&name=policy.set")).len(),
        1
    );
    let before = containers_started(&app);
    d.kill9();

    let d = Drover::start_on(&store);
    wait_for(
        DEADLINE,
        "the operator's setting holds after kill -9",
        || {
            let (s, body) = d.get(&format!(
                "/v1/applications/{app}/entities/web/policies/autoscaler"
            ));
            (s == 200 && body["config"]["upper"] == 42.0 && body["running"] == false).then_some(())
        },
    );
    let diff = d.cli(&["diff", &file]);
    assert!(
        diff.stdout
            .contains("policy override reset: web/autoscaler"),
        "{}",
        diff.stdout
    );
    let plan = apply(&d, &file, &[]);
    assert!(!plan.noop);
    assert_eq!(plan.overrides_reset.len(), 1, "{plan:?}");
    wait_for(
        DEADLINE,
        "the apply puts the blueprint's config back",
        || {
            let p = policy(&d, &app);
            (p.config["upper"] == 80.0 && p.running).then_some(())
        },
    );
    assert_eq!(containers_started(&app), before, "no container was touched");
    assert!(
        apply(&d, &file, &[]).noop,
        "reset: a second apply has nothing to do"
    );
}

#[test]
fn serve_deploy_twice_is_fine_and_an_edited_file_is_applied() {
    let app = unique("apply-serve");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let file = write(dir.path(), &blueprint(&app, 1, 80, "1", None));
    let args = ["--store", store.to_str().unwrap(), "--deploy", &file];
    {
        let mut d = Drover::start_with(&args);
        d.wait_running(&app, DEADLINE);
        assert!(d.terminate().success());
    }
    let before = containers_started(&app);
    {
        let mut d = Drover::start_with(&args);
        wait_for(DEADLINE, "the second --deploy is a no-op apply", || {
            activities(&d, &format!("application={app}&name=apply"))
                .iter()
                .any(|a| a["args"]["noop"] == true)
                .then_some(())
        });
        d.wait_running(&app, DEADLINE);
        assert_eq!(containers_started(&app), before, "no container was touched");
        assert!(d.terminate().success());
    }
    write(dir.path(), &blueprint(&app, 2, 80, "1", None));
    let d = Drover::start_with(&args);
    wait_for(DEADLINE, "the edited file is applied: 2 members", || {
        (members(&d, &app) == 2).then_some(())
    });
    d.wait_running(&app, DEADLINE);
    assert!(
        before.is_subset(&containers_started(&app)),
        "the first member was kept"
    );
}

#[test]
fn bad_input_is_refused_with_its_position_and_nothing_changes() {
    let app = unique("apply-bad");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Drover::start();
    let file = write(dir.path(), &blueprint(&app, 1, 80, "1", None));
    apply(&d, &file, &[]);
    d.wait_running(&app, DEADLINE);
    let bad = blueprint(&app, 2, 80, "1", None)
        .replace("initial_size: 2", "initial_size: 2\n    sizee: 3");
    write(dir.path(), &bad);
    let run = d.cli(&["apply", &file]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("app.yaml:6:"),
        "file, line and column: {}",
        run.stderr
    );
    assert_eq!(members(&d, &app), 1, "nothing half-applied");
    let (s, body) = d.get(&format!("/v1/applications/{app}"));
    assert_eq!(s, 200, "{body}");
}

/// Needs the rollout helper's branch (the cluster's `rollout` effector).
#[test]
fn a_member_env_change_rolls_the_cluster_to_the_new_env() {
    let app = unique("apply-roll");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Drover::start();
    let file = write(dir.path(), &blueprint(&app, 2, 80, "1", None));
    apply(&d, &file, &[]);
    d.wait_running(&app, DEADLINE);
    write(dir.path(), &blueprint(&app, 2, 80, "2", None));
    let plan = apply(&d, &file, &[]);
    assert_eq!(action(&plan, "web"), PlanAction::Rolled, "{plan:?}");
    assert_eq!(plan.services[0].changes[0].path, "member.env");
    let called = wait_for(DEADLINE, "the rollout step of the apply", || {
        activities(&d, &format!("application={app}&name=apply.rollout"))
            .first()
            .cloned()
    });
    // Needs the rollout helper's branch: the cluster's `rollout` effector.
    assert_eq!(
        called["outcome"], "ok",
        "the cluster's rollout effector: {called}"
    );
    wait_for(
        Duration::from_secs(300),
        "every member answers VERSION=2",
        || {
            let ids = containers_of(&app, false);
            let all = ids.len() == 2
                && ids.iter().all(|id| {
                    let port = inspect(id)["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
                        .as_str()
                        .and_then(|p| p.parse::<u16>().ok());
                    port.and_then(|p| http_get(p, "/env/VERSION"))
                        .is_some_and(|(s, b)| s == 200 && b.trim() == "2")
                });
            all.then_some(())
        },
    );
}

/// The `io.drover.entity` labels of the application's containers, with
/// repeats (a duplicate shows twice).
fn container_entities(app: &str) -> Vec<String> {
    let mut v: Vec<String> = containers_of(app, true)
        .iter()
        .map(|id| {
            inspect(id)["Config"]["Labels"]["io.drover.entity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// One kill point: an apply that resizes `web` 2 → 3, removes `old` and
/// adds `new`; `kill -9` of drover `delay_ms` after the apply answered
/// (its steps under way); a restart on the same store must finish it.
/// Whether the restart found the apply unfinished (activity `apply.resume`).
fn apply_kill_point(delay_ms: u64) -> bool {
    let app = unique("apply-kill");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let file = write(dir.path(), &blueprint(&app, 2, 80, "1", Some("old")));
    apply(&d, &file, &[]);
    d.wait_running(&app, DEADLINE);
    write(dir.path(), &blueprint(&app, 3, 80, "1", Some("new")));
    apply(&d, &file, &[]);
    std::thread::sleep(Duration::from_millis(delay_ms));
    d.kill9();
    let d = Drover::start_on(&store);
    let want: Vec<String> = ["new", "web-1", "web-2", "web-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    wait_for(
        DEADLINE,
        &format!("killed {delay_ms} ms into the apply: web has 3 members, `new` runs, `old` is gone, and the engine holds exactly those"),
        || {
            let detail = d.app_detail(&app);
            let ids: BTreeSet<&str> = detail.entities.iter().map(|e| e.id.as_str()).collect();
            let shown = members(&d, &app) == 3 && ids.contains("new") && !ids.contains("old");
            (shown && container_entities(&app) == want).then_some(())
        },
    );
    let t0 = std::time::Instant::now();
    loop {
        let detail = d.app_detail(&app);
        if detail
            .entities
            .iter()
            .all(|e| e.state == drover::protocol::Lifecycle::Running)
        {
            break;
        }
        let states: Vec<String> = detail
            .entities
            .iter()
            .map(|e| {
                let error = e
                    .sensors
                    .get("entity.error")
                    .map(|v| v.value.to_string())
                    .unwrap_or_default();
                format!("{} {} {error}", e.id, e.state.as_str())
            })
            .collect();
        assert!(
            t0.elapsed() < DEADLINE,
            "killed at {delay_ms} ms: not every entity runs: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Settled: still exactly the blueprint (no late duplicate, no orphan).
    assert_eq!(container_entities(&app), want, "killed at {delay_ms} ms");
    assert_eq!(members(&d, &app), 3, "killed at {delay_ms} ms");
    let resumed = activities(&d, &format!("application={app}"))
        .iter()
        .any(|a| a["name"] == "apply.resume");
    eprintln!("killed {delay_ms} ms into the apply: resumed by the restart: {resumed}");
    resumed
}

#[test]
fn an_apply_cut_short_by_kill_9_is_finished_after_the_restart() {
    // Seeded points: at once, while `new` is made, while web grows, late.
    let mut resumed = apply_kill_point(0) as u32;
    let mut x: u64 = 14;
    for _ in 0..5 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        resumed += apply_kill_point(x % 1500) as u32;
    }
    // At least one kill came before the apply's steps were done: the
    // restart, not the apply, finished them.
    assert!(resumed >= 1, "no kill point cut an apply short");
}
