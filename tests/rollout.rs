//! Rollouts against the real engine: a cluster rolled under steady HTTP
//! load through drover's load balancer with zero failed requests, an
//! automatic rollback of a version whose health check fails, a pause and an
//! undo, and `kill -9` of drover at seeded points of a rollout.
//!
//! The rollout is asked for through the cluster's `rollout` effector over
//! REST (what `drover apply` calls).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::load::Load;
use common::*;
use drover::wire::RolloutStatus;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(180);

fn blueprint(app: &str, size: u32, failure_action: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    update: {{ min_ready: 1s, drain_timeout: 1s, deadline: 60s, failure_action: {failure_action} }}
    member:
      image: drover/workload:latest
      env: {{ VERSION: "1" }}
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

/// The member spec of the `rollout` effector: the blueprint's with `env`.
fn member(env: Value) -> Value {
    json!({
        "image": "drover/workload:latest",
        "env": env,
        "ports": [8080],
        "health": { "http": { "port": 8080, "path": "/health" }, "interval": "500ms" },
    })
}

fn status(d: &Drover, app: &str) -> RolloutStatus {
    let (code, body) = d.get(&format!("/v1/applications/{app}/entities/web/rollout"));
    assert_eq!(code, 200, "{body}");
    decode(body)
}

fn wait_state(d: &Drover, app: &str, states: &[&str]) -> RolloutStatus {
    wait_for(
        DEADLINE,
        &format!("rollout of {app} reaches {states:?}"),
        || {
            // Right after a restart the application may not be rebound yet.
            let (code, body) = d.get(&format!("/v1/applications/{app}/entities/web/rollout"));
            if code != 200 {
                return None;
            }
            let st: RolloutStatus = decode(body);
            states.contains(&st.state.as_str()).then_some(st)
        },
    )
}

/// The host ports of the members, by member id.
fn member_ports(d: &Drover, app: &str) -> Vec<(String, u16)> {
    d.app_detail(app)
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some("web"))
        .filter_map(|e| Some((e.id.clone(), e.sensor_u64("host.port.8080")? as u16)))
        .collect()
}

/// Every member answers `want` on `GET /env/VERSION`, and the engine holds
/// exactly the members drover shows (no orphan, no duplicate).
fn all_members_run(d: &Drover, app: &str, size: usize, want: &str) -> Option<()> {
    let ports = member_ports(d, app);
    if ports.len() != size || containers_of(app, true).len() != size {
        return None;
    }
    for (_, p) in &ports {
        let (code, body) = http_get(*p, "/env/VERSION")?;
        if code != 200 || body.trim() != want {
            return None;
        }
    }
    let names: BTreeSet<String> = containers_of(app, true)
        .iter()
        .map(|id| {
            inspect(id)["Config"]["Labels"]["io.drover.entity"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let members: BTreeSet<String> = ports.into_iter().map(|(m, _)| m).collect();
    (names == members).then_some(())
}

fn lb_port(d: &Drover, app: &str, backends: usize) -> u16 {
    wait_for(DEADLINE, "the load balancer has every member", || {
        let s = d.sensors(app, "lb");
        let port = s["lb.port"]["value"].as_u64()?;
        (s["lb.backends"]["value"].as_array()?.len() == backends).then_some(port as u16)
    })
}

fn rollout(d: &Drover, app: &str, env: Value, update: Value) -> Value {
    let (code, body) = d.invoke(
        app,
        "web",
        "rollout",
        json!({ "member": member(env), "update": update }),
    );
    assert_eq!(code, 200, "{body}");
    body["result"].clone()
}

fn update(failure_action: &str) -> Value {
    update_with(failure_action, "30s")
}

fn update_with(failure_action: &str, deadline: &str) -> Value {
    json!({ "min_ready": "1s", "drain_timeout": "1s", "deadline": deadline, "failure_action": failure_action })
}

#[test]
fn rolls_four_members_under_load_with_zero_failed_requests() {
    require_docker();
    let app = unique("roll");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&blueprint(&app, 4, "rollback"));
    d.wait_running(&app, DEADLINE);
    let port = lb_port(&d, &app, 4);
    let load = Load::start(port);
    wait_for(DEADLINE, "the load runs", || (load.ok() > 50).then_some(()));

    let answer = rollout(&d, &app, json!({"VERSION": "2"}), update("rollback"));
    assert_eq!(answer["state"], "rolling", "{answer}");
    assert_eq!(answer["revision"], 2);
    let st = wait_state(&d, &app, &["complete", "rolled-back", "failed"]);
    assert_eq!(st.state, "complete", "{st:?}");
    wait_for(DEADLINE, "every member answers 2", || {
        all_members_run(&d, &app, 4, "2")
    });
    let (ok, failed) = load.finish();
    eprintln!("rollout under load: {ok} requests ok, {failed} failed");
    assert!(ok > 100, "the load ran through the rollout ({ok})");
    assert_eq!(failed, 0, "zero failed requests through the load balancer");

    // The same spec again is a no-op; history holds both revisions.
    let again = rollout(&d, &app, json!({"VERSION": "2"}), Value::Null);
    assert_eq!(again, json!({"revision": 2, "state": "complete"}));
    let st = status(&d, &app);
    assert_eq!(
        st.history.iter().map(|h| h.revision).collect::<Vec<_>>(),
        [2, 1]
    );
    // Each step is an activity with its reason.
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    let text = acts.to_string();
    assert!(
        text.contains("drain web-1") && text.contains("rolling to revision 2"),
        "{text}"
    );
    // The metrics count it.
    let metrics = d.get_text("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("drover_rollouts_total")
                && l.contains(&app)
                && l.contains("complete")),
        "drover_rollouts_total counts the rollout"
    );
}

#[test]
fn a_failing_health_check_rolls_back_by_itself_and_pause_waits_for_undo() {
    require_docker();
    let app = unique("rollback");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&blueprint(&app, 3, "rollback"));
    d.wait_running(&app, DEADLINE);
    let port = lb_port(&d, &app, 3);
    let load = Load::start(port);
    wait_for(DEADLINE, "the load runs", || (load.ok() > 50).then_some(()));

    // A 5-minute deadline: only the new member's own verdict (its health
    // check failing past its threshold) can stop the rollout in time.
    let asked = std::time::Instant::now();
    let answer = rollout(
        &d,
        &app,
        json!({"VERSION": "2", "HEALTH_FAIL": "1"}),
        update_with("rollback", "5m"),
    );
    assert_eq!(answer["state"], "rolling");
    let began = wait_for(DEADLINE, "the rollback begins", || {
        let st = status(&d, &app);
        (st.rolling_back || st.state != "rolling").then_some(st)
    });
    let after = asked.elapsed();
    eprintln!("rollback began {after:?} after the rollout was asked for");
    assert!(
        after < Duration::from_secs(60),
        "the rollback began {after:?} after the rollout, not at once: {began:?}"
    );
    let reason = began.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("health check failed") && !reason.contains("deadline"),
        "{began:?}"
    );
    let st = wait_state(&d, &app, &["rolled-back", "failed", "complete"]);
    assert_eq!(st.state, "rolled-back", "{st:?}");
    assert_eq!(st.revision, 1, "back on revision 1");
    wait_for(DEADLINE, "every member runs the previous spec", || {
        all_members_run(&d, &app, 3, "1")
    });

    // failure_action: pause stays paused, and undo finishes it.
    let answer = rollout(
        &d,
        &app,
        json!({"VERSION": "3", "HEALTH_FAIL": "1"}),
        update_with("pause", "5m"),
    );
    assert_eq!(answer["state"], "rolling");
    let st = wait_state(&d, &app, &["paused", "rolled-back", "failed", "complete"]);
    assert_eq!(st.state, "paused", "{st:?}");
    assert!(
        !st.reason.clone().unwrap_or_default().contains("deadline"),
        "{st:?}"
    );
    let (code, body) = d.post(
        &format!("/v1/applications/{app}/entities/web/rollout/undo"),
        "{}",
    );
    assert_eq!(code, 200, "{body}");
    let st = wait_state(&d, &app, &["rolled-back", "failed", "complete"]);
    assert_eq!(st.state, "rolled-back", "{st:?}");
    wait_for(
        DEADLINE,
        "every member runs the previous spec after undo",
        || all_members_run(&d, &app, 3, "1"),
    );
    let (ok, failed) = load.finish();
    eprintln!("rollbacks under load: {ok} requests ok, {failed} failed");
    assert_eq!(failed, 0, "zero failed requests through the load balancer");
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

/// One kill point: a rollout of 3 members (good or failing), `kill -9` of
/// drover after `delay_ms`, a restart on the same store: the rollout ends
/// complete or rolled back exactly, the engine holding exactly the members.
fn kill_point(seed: u64, delay_ms: u64, failing: bool) {
    let app = unique("roll-kill");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    d.deploy(&blueprint(&app, 3, "rollback"));
    d.wait_running(&app, DEADLINE);
    let env = if failing {
        json!({"VERSION": "2", "HEALTH_FAIL": "1"})
    } else {
        json!({"VERSION": "2"})
    };
    rollout(&d, &app, env, update("rollback"));
    std::thread::sleep(Duration::from_millis(delay_ms));
    d.kill9();
    let d = Drover::start_on(&store);
    let st = wait_state(&d, &app, &["complete", "rolled-back", "failed"]);
    let want = match (failing, st.state.as_str()) {
        (false, "complete") => "2",
        (true, "rolled-back") => "1",
        other => panic!("seed {seed}, killed at {delay_ms} ms: ended {other:?}: {st:?}"),
    };
    wait_for(
        DEADLINE,
        &format!("seed {seed}, killed at {delay_ms} ms: every member runs {want}, no orphan, no duplicate"),
        || all_members_run(&d, &app, 3, want),
    );
}

#[test]
fn kill9_at_seeded_points_of_a_rollout_resumes_exactly() {
    require_docker();
    let mut rng = Rng(53);
    for i in 0..6 {
        let delay = 100 + rng.next() % 6000;
        kill_point(53, delay, i % 3 == 2);
    }
}

/// Removes the application's containers and its labelled volumes when dropped.
struct WithVolumes(AppGuard);

impl Drop for WithVolumes {
    fn drop(&mut self) {
        remove_app_leftovers(&self.0 .0);
        let out = std::process::Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=io.drover.app={}", self.0 .0))
            .output();
        if let Ok(out) = out {
            let vols: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if !vols.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", "-f"])
                    .args(&vols)
                    .output();
            }
        }
    }
}

/// One plain HTTP request; (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: m\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Members with a per-member volume are rolled in place: each keeps its
/// number and its data, and answers the new version.
#[test]
fn members_with_named_volumes_roll_in_place_and_keep_their_data() {
    require_docker();
    let app = unique("roll-vol");
    let _g = WithVolumes(AppGuard(app.clone()));
    let d = Drover::start();
    d.deploy(&format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    update: {{ min_ready: 1s, drain_timeout: 1s, deadline: 5m }}
    member:
      image: drover/workload:latest
      env: {{ VERSION: "1" }}
      ports: [8080]
      volumes: [{{ name: data, path: /data }}]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
"#
    ));
    d.wait_running(&app, DEADLINE);
    let before = member_ports(&d, &app);
    assert_eq!(before.len(), 2, "{before:?}");
    for (id, port) in &before {
        let put = http(
            *port,
            "PUT",
            &format!("/files/{id}"),
            &format!("data of {id}"),
        );
        assert_eq!(put.map(|r| r.0), Some(200), "PUT /files/{id}");
    }
    let mut spec = member(json!({"VERSION": "2"}));
    spec["volumes"] = json!([{ "name": "data", "path": "/data" }]);
    let (code, body) = d.invoke(&app, "web", "rollout", json!({ "member": spec }));
    assert_eq!(code, 200, "{body}");
    let st = wait_state(&d, &app, &["complete", "rolled-back", "failed"]);
    assert_eq!(st.state, "complete", "{st:?}");
    let after = wait_for(DEADLINE, "both members answer 2", || {
        all_members_run(&d, &app, 2, "2")?;
        Some(member_ports(&d, &app))
    });
    let ids = |v: &[(String, u16)]| v.iter().map(|(i, _)| i.clone()).collect::<BTreeSet<_>>();
    assert_eq!(ids(&after), ids(&before), "the same member numbers");
    for (id, port) in &after {
        let got = http(*port, "GET", &format!("/files/{id}"), "");
        assert_eq!(
            got,
            Some((200, format!("data of {id}"))),
            "{id} kept its file through the rollout"
        );
    }
    // Replaced one at a time, each drained first.
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    let text = acts.to_string();
    assert!(text.contains("replaces it in place"), "{text}");
}

/// Each member's answer to `GET /env/VERSION`, by member id; None until
/// every one of `size` members answers.
fn versions(d: &Drover, app: &str, size: usize) -> Option<BTreeMap<String, String>> {
    let ports = member_ports(d, app);
    if ports.len() != size {
        return None;
    }
    ports
        .into_iter()
        .map(|(m, p)| {
            let (code, body) = http_get(p, "/env/VERSION")?;
            (code == 200).then(|| (m, body.trim().to_string()))
        })
        .collect()
}

/// How many members answer each version.
fn tally(v: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for version in v.values() {
        *t.entry(version.clone()).or_default() += 1;
    }
    t
}

#[test]
fn restart_replacement_and_resize_during_a_rollout_use_the_spec_each_member_belongs_to() {
    require_docker();
    let app = unique("roll-heal");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    // The members' own policies: restart on a crash, replace when that fails.
    let healed = blueprint(&app, 3, "rollback").replace(
        "  - id: lb\n",
        "    policies:\n      - use: resilient\n      - use: replace-failed\n  - id: lb\n",
    );
    d.deploy(&healed);
    d.wait_running(&app, DEADLINE);

    // A canary of one: the rollout pauses with members of both revisions.
    let mut upd = update("rollback");
    upd["canary"] = json!(1);
    rollout(&d, &app, json!({"VERSION": "2"}), upd);
    let st = wait_state(&d, &app, &["paused", "rolled-back", "failed", "complete"]);
    assert_eq!(st.state, "paused", "{st:?}");
    let mixed = wait_for(
        DEADLINE,
        "one canary member and two old ones answer",
        || {
            versions(&d, &app, 3)
                .filter(|v| tally(v) == BTreeMap::from([("1".into(), 2), ("2".into(), 1)]))
        },
    );

    // Restart: every container killed behind drover's back comes back
    // running the revision its member belongs to.
    for id in containers_of(&app, false) {
        let out = std::process::Command::new("docker")
            .args(["kill", &id])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker kill: {out:?}");
    }
    wait_for(
        DEADLINE,
        "the killed members are back on their own revisions",
        || versions(&d, &app, 3).filter(|v| *v == mixed),
    );

    // Replacement: a new member for an old one runs the old spec.
    let (old, _) = mixed.iter().find(|(_, v)| *v == "1").unwrap();
    let (code, body) = d.invoke(&app, "web", "replace_member", json!({ "member": old }));
    assert_eq!(code, 200, "replace_member: {body}");
    let replaced = wait_for(DEADLINE, "the replacement answers the old version", || {
        versions(&d, &app, 3).filter(|v| !v.contains_key(old.as_str()) && tally(v) == tally(&mixed))
    });

    // Growth (as the autoscaler resizes) while paused: the added member runs
    // the revision known to be good, not the canary's.
    let (code, body) = d.invoke(&app, "web", "resize", json!({ "size": 4 }));
    assert_eq!(code, 200, "resize: {body}");
    let grown = wait_for(DEADLINE, "a fourth member answers", || {
        versions(&d, &app, 4).filter(|v| v.len() == 4)
    });
    let added: Vec<&String> = grown
        .keys()
        .filter(|m| !replaced.contains_key(*m))
        .collect();
    assert_eq!(added.len(), 1, "{grown:?} after {replaced:?}");
    assert_eq!(grown[added[0]], "1", "{grown:?}");
    let st = status(&d, &app);
    assert_eq!(st.state, "paused", "{st:?}");

    // Resumed, the rollout finishes on every member, the added one included.
    let (code, body) = d.post(
        &format!("/v1/applications/{app}/entities/web/rollout/resume"),
        "{}",
    );
    assert_eq!(code, 200, "{body}");
    let st = wait_state(&d, &app, &["complete", "rolled-back", "failed"]);
    assert_eq!(st.state, "complete", "{st:?}");
    wait_for(DEADLINE, "every member runs revision 2", || {
        all_members_run(&d, &app, 4, "2")
    });
}
