//! A cluster of drovers on one etcd (issue 17): the state in etcd, one
//! leader, warm standbys, takeover after `kill -9` that adopts everything
//! and restarts nothing, and fencing of a leader cut off from etcd.
//! Real etcd (Debian's `etcd-server`), real Docker engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::etcd::Etcd;
use common::*;
use drover::protocol::Lifecycle;
use drover::wire::{Health, NotLeader};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);
/// The tests' lease: short, so a takeover is quick to wait for.
const TTL: Duration = Duration::from_secs(3);

/// Drovers of one cluster on one etcd, sharing a state dir (its
/// `admin.token`, made by the first).
struct Cluster {
    etcd: Etcd,
    name: String,
    state: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        require_docker();
        Cluster {
            etcd: Etcd::start(),
            name: unique("cl"),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn drover(&self) -> Drover {
        let url = self.etcd.url();
        let ttl = format!("{}s", TTL.as_secs());
        Drover::start_with(&[
            "--store",
            &url,
            "--cluster-name",
            &self.name,
            "--state-dir",
            self.state.path().to_str().unwrap(),
            "--leader-ttl",
            &ttl,
        ])
    }
}

fn health(d: &Drover) -> Option<Health> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let mut r = agent.get(&format!("{}/healthz", d.url)).call().ok()?;
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

fn leads(d: &Drover) -> bool {
    health(d).is_some_and(|h| h.role.as_deref() == Some("leader"))
}

fn wait_leads(d: &Drover, what: &str) {
    wait_for(DEADLINE, what, || leads(d).then_some(()));
}

fn blueprint(app: &str, size: u32, lb_port: u16) -> String {
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
  - id: lb
    type: load-balancer
    target: web
    port: {lb_port}
"#
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Container id → StartedAt of the application's containers.
fn started(app: &str) -> BTreeMap<String, String> {
    containers_of(app, true)
        .into_iter()
        .map(|id| {
            let at = inspect(&id)["State"]["StartedAt"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (id, at)
        })
        .collect()
}

/// The engine holds exactly the members the tree shows, all running, as
/// many as the cluster's desired size (tests/rebind.rs's check).
fn converged(d: &Drover, app: &str) -> Option<u64> {
    let (status, body) = d.get(&format!("/v1/applications/{app}"));
    if status != 200 {
        return None;
    }
    let entities = decode::<drover::wire::AppDetail>(body).entities;
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
        if !members.contains(labels["io.drover.entity"].as_str().unwrap_or("")) {
            return None;
        }
    }
    Some(desired)
}

fn metric(d: &Drover, name: &str) -> Option<f64> {
    d.get_text("/metrics")
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn kill9_of_the_leader_hands_over_to_the_standby_which_adopts_everything_and_restarts_nothing() {
    // The guard first: dropped last, after every drover is gone (a live
    // leader would restart what the guard removes).
    let app = unique("takeover");
    let _g = AppGuard(app.clone());
    let cluster = Cluster::new();
    let mut a = cluster.drover();
    wait_leads(&a, "the first drover leads");
    let b = cluster.drover();
    let h = wait_for(DEADLINE, "the standby names the leader", || {
        health(&b).filter(|h| h.leader.is_some())
    });
    assert_eq!(h.role.as_deref(), Some("standby"));
    assert_eq!(
        h.leader.as_deref(),
        Some(a.url.as_str()),
        "it names the leader"
    );
    assert_eq!(metric(&a, "drover_leader"), Some(1.0));
    assert_eq!(metric(&b, "drover_leader"), Some(0.0));

    let lb_port = free_port();
    // A write on the standby: 503 and the leader's address, nothing done.
    let (status, body) = b.post("/v1/applications", &blueprint(&app, 2, lb_port));
    assert_eq!(status, 503, "{body}");
    let nl: NotLeader = decode(body);
    assert_eq!(nl.leader.as_deref(), Some(a.url.as_str()));
    assert!(nl.error.contains(&a.url), "{}", nl.error);
    // The CLI prints the hint.
    let out = b.cli(&["invoke", &app, "web", "resize", "size=3"]);
    assert!(!out.ok && out.stderr.contains(&a.url), "{}", out.stderr);

    a.deploy(&blueprint(&app, 2, lb_port));
    a.wait_running(&app, DEADLINE);
    // The standby's read model follows etcd.
    wait_for(DEADLINE, "the standby lists the application", || {
        let (s, v) = b.get("/v1/applications");
        (s == 200 && v.to_string().contains(&app)).then_some(())
    });
    let before = started(&app);
    assert_eq!(before.len(), 2);
    assert!(http_get(lb_port, "/").is_some_and(|(s, _)| s == 200));
    // A token made on the leader works on the standby, and after takeover.
    let mut r = a
        .agent()
        .post(&format!("{}/v1/tokens", a.url))
        .header("content-type", "application/json")
        .send(json!({ "name": "ci", "role": "viewer" }).to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let ci: drover::wire::TokenCreated =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let viewer = authed_agent(&ci.token, Duration::from_secs(30));
    let viewer_get = |d: &Drover| {
        viewer
            .get(&format!("{}/v1/applications", d.url))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    wait_for(DEADLINE, "the standby knows the new token", || {
        (viewer_get(&b) == 200).then_some(())
    });

    let t0 = Instant::now();
    a.kill9();
    wait_leads(&b, "the standby leads after kill -9 of the leader");
    eprintln!("takeover after {:?} (TTL {TTL:?})", t0.elapsed());
    let status = b.cli(&["status", &app]);
    assert!(
        status.ok && status.stdout.contains(&format!("leader: {}", b.url)),
        "drover status names the leader: {}",
        status.stdout
    );
    wait_for(DEADLINE, "the new leader adopts the application", || {
        converged(&b, &app).map(|_| ())
    });
    assert_eq!(
        started(&app),
        before,
        "the same containers, never restarted or recreated"
    );
    wait_for(DEADLINE, "the load balancer serves again", || {
        http_get(lb_port, "/").filter(|(s, _)| *s == 200)
    });
    assert_eq!(metric(&b, "drover_leader"), Some(1.0));
    assert_eq!(metric(&b, "drover_leader_changes_total"), Some(1.0));
    assert_eq!(viewer_get(&b), 200, "the token made on the old leader");

    // The new leader's policies act: a killed member is restarted.
    let victim = containers_of(&app, false)[0].clone();
    assert!(Command::new("docker")
        .args(["kill", &victim])
        .status()
        .unwrap()
        .success());
    wait_for(DEADLINE, "the new leader restarts a killed member", || {
        let at = inspect(&victim)["State"]["StartedAt"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (at != before[&victim] && inspect(&victim)["State"]["Running"] == true).then_some(())
    });
    let size = wait_for(DEADLINE, "converged after the restart", || {
        converged(&b, &app)
    });
    assert_eq!(size, 2, "no member added or lost");
}

#[test]
fn a_leader_cut_off_from_etcd_stops_before_its_lease_could_be_taken_over() {
    let app = unique("fenced");
    let _g = AppGuard(app.clone());
    let cluster = Cluster::new();
    let mut a = cluster.drover();
    wait_leads(&a, "the first drover leads");
    let b = cluster.drover();
    a.deploy(&blueprint(&app, 2, free_port()));
    a.wait_running(&app, DEADLINE);
    let before = started(&app);

    // etcd stops answering. The leader's last renewal was sent before
    // this moment, so its lease can expire TTL after it at the earliest:
    // the leader must have stopped by then.
    let t0 = Instant::now();
    cluster.etcd.pause();
    let code = wait_for(TTL * 4, "the cut-off leader stops", || {
        a.child.try_wait().unwrap().map(|s| s.code())
    });
    let stopped_after = t0.elapsed();
    assert_eq!(code, Some(75), "it exits as having lost its leadership");
    assert!(
        stopped_after < TTL,
        "stopped {stopped_after:?} after etcd went away, not before the lease (TTL {TTL:?}) could expire"
    );
    // The standby cannot lead while etcd is away.
    assert!(!leads(&b));

    cluster.etcd.resume();
    wait_leads(&b, "the standby leads once etcd is back");
    assert!(
        a.child.try_wait().unwrap().is_some(),
        "the old leader stays stopped"
    );
    let size = wait_for(
        DEADLINE,
        "exactly one leader manages the application",
        || converged(&b, &app),
    );
    assert_eq!(size, 2);
    assert_eq!(started(&app), before, "nothing restarted or recreated");
    a.kill9();
}

/// kill -9 of the leader at a seeded point of a resize: the standby
/// finishes it (or it never happened), exactly, as a rebind on redb does.
fn kill_during_resize(delay_ms: u64, from: u32, to: u32) {
    let app = unique("resize");
    let _g = AppGuard(app.clone());
    let cluster = Cluster::new();
    let mut a = cluster.drover();
    wait_leads(&a, "the first drover leads");
    let b = cluster.drover();
    a.deploy(&blueprint(&app, from, free_port()));
    a.wait_running(&app, DEADLINE);
    let url = a.url.clone();
    let agent = authed_agent(&a.token, Duration::from_secs(60));
    let app2 = app.clone();
    let bg = std::thread::spawn(move || {
        let _ = agent
            .post(&format!(
                "{url}/v1/applications/{app2}/entities/web/effectors/resize"
            ))
            .header("content-type", "application/json")
            .send(json!({ "size": to }).to_string());
    });
    std::thread::sleep(Duration::from_millis(delay_ms));
    a.kill9();
    let _ = bg.join();
    wait_leads(&b, "the standby leads");
    let size = wait_for(
        DEADLINE,
        &format!("resize {from}→{to} killed at {delay_ms} ms converges"),
        || converged(&b, &app),
    );
    assert!(
        size == to as u64 || size == from as u64,
        "killed at {delay_ms} ms: size {size} is neither {from} nor {to}"
    );
}

#[test]
fn kill9_during_a_resize_up_on_etcd_converges_exactly() {
    for delay in [150, 600] {
        kill_during_resize(delay, 2, 4);
    }
}

#[test]
fn kill9_during_a_resize_down_on_etcd_converges_exactly() {
    kill_during_resize(300, 4, 1);
}

#[test]
fn a_graceful_stop_of_the_leader_hands_over_and_a_standby_stops_cleanly() {
    let cluster = Cluster::new();
    let mut a = cluster.drover();
    wait_leads(&a, "the first drover leads");
    let mut b = cluster.drover();
    let mut c = cluster.drover();
    let status = a.terminate();
    assert!(
        status.success(),
        "a leader's graceful stop exits 0: {status:?}"
    );
    // The lease was revoked: one of the standbys leads, the other follows it.
    let (leader, standby) = wait_for(DEADLINE, "a standby leads", || {
        if leads(&b) {
            Some((&b, &c))
        } else if leads(&c) {
            Some((&c, &b))
        } else {
            None
        }
    });
    wait_for(DEADLINE, "the other standby names the new leader", || {
        health(standby)
            .filter(|h| h.leader.as_deref() == Some(leader.url.as_str()))
            .map(|_| ())
    });
    assert!(!leads(standby), "exactly one leads");
    let (standby_is_c, _) = (std::ptr::eq(standby, &c), ());
    let stopped = if standby_is_c {
        c.terminate()
    } else {
        b.terminate()
    };
    assert!(
        stopped.success(),
        "a standby's graceful stop exits 0: {stopped:?}"
    );
}
