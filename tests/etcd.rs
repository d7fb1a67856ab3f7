//! A cluster of drovers on one etcd (issue 17): the state in etcd, one
//! leader, warm standbys, takeover after `kill -9` that adopts everything
//! and restarts nothing, and fencing of a leader cut off from etcd.
//! Real etcd (Debian's `etcd-server`), real Docker engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
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

    /// A cluster on a given etcd (a secured one).
    fn on(etcd: Etcd) -> Cluster {
        require_docker();
        Cluster {
            etcd,
            name: unique("cl"),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn drover(&self) -> Drover {
        self.drover_in(self.state.path(), &[])
    }

    /// `drover serve`'s arguments for this cluster, its state in `state`.
    fn args(&self, state: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--store",
            &self.etcd.url(),
            "--cluster-name",
            &self.name,
            "--state-dir",
            state.to_str().unwrap(),
            "--leader-ttl",
            &format!("{}s", TTL.as_secs()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// A drover of the cluster whose local files are in `state` (another
    /// machine's, when it is not the cluster's shared one).
    fn drover_in(&self, state: &Path, extra: &[&str]) -> Drover {
        let args = self.args(state, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Drover::start_with(&args)
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
    // Until its lease runs out the dead leader is still named: the
    // standby cannot forward, and answers from its store, saying so.
    let r = read(&b, &format!("/v1/applications/{app}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.stale.as_deref(), r.reason.as_deref()),
        (Some("true"), Some("leader-unreachable")),
        "{r:?}"
    );
    assert_eq!(r.served_by.as_deref(), Some(b.url.as_str()));
    let stale: drover::wire::AppDetail = decode(r.json());
    assert_eq!(stale.entities.len(), 5, "app, web, lb and 2 members");
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

/// An answer with the standby's headers.
#[derive(Debug)]
struct Read {
    status: u16,
    body: String,
    served_by: Option<String>,
    stale: Option<String>,
    reason: Option<String>,
}

impl Read {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn read_with(d: &Drover, token: &str, path: &str) -> Read {
    let mut r = authed_agent(token, Duration::from_secs(30))
        .get(&format!("{}{path}", d.url))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let h = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (served_by, stale, reason) = (
        h("x-drover-served-by"),
        h("x-drover-stale"),
        h("x-drover-stale-reason"),
    );
    Read {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
        served_by,
        stale,
        reason,
    }
}

fn read(d: &Drover, path: &str) -> Read {
    read_with(d, &d.token, path)
}

fn ids(entities: &[drover::wire::EntityView]) -> BTreeSet<String> {
    entities.iter().map(|e| e.id.clone()).collect()
}

#[test]
fn a_standby_answers_every_read_from_the_leader_or_from_its_store() {
    let app = unique("reads");
    let _g = AppGuard(app.clone());
    let cluster = Cluster::new();
    let a = cluster.drover();
    wait_leads(&a, "the first drover leads");
    let b = cluster.drover();
    wait_for(DEADLINE, "the standby names the leader", || {
        health(&b).filter(|h| h.leader.is_some())
    });
    a.deploy(&blueprint(&app, 2, free_port()));
    a.wait_running(&app, DEADLINE);

    // Every GET route of the API: forwarded, the leader's answer passed on.
    let entity = format!("/v1/applications/{app}/entities/web");
    let paths = [
        "/v1/applications".to_string(),
        format!("/v1/applications/{app}"),
        format!("/v1/applications/{app}/entities"),
        format!("{entity}/sensors"),
        format!("{entity}/rollout"),
        format!("{entity}/policies"),
        format!("/v1/activities?application={app}&limit=5"),
        "/v1/hosts".into(),
        "/v1/locations".into(),
        "/v1/presets".into(),
        "/v1/tokens".into(),
        "/v1/build-contexts".into(),
        format!("/v1/build-contexts/{}", "0".repeat(64)),
        "/v1/applications/nope".into(),
    ];
    for path in &paths {
        let (on_a, on_b) = (read(&a, path), read(&b, path));
        assert_eq!(on_b.status, on_a.status, "{path}: {}", on_b.body);
        assert_eq!(
            (on_b.served_by.as_deref(), on_b.stale.as_deref()),
            (Some(a.url.as_str()), Some("false")),
            "{path}"
        );
        assert!(on_a.served_by.is_none(), "the leader answers itself");
    }
    // (Answers that do not change from one request to the next.)
    for path in ["/v1/presets", "/v1/build-contexts"] {
        assert_eq!(read(&b, path).json(), read(&a, path).json(), "{path}");
    }
    let live: drover::wire::AppDetail = decode(read(&b, &paths[1]).json());
    assert!(
        live.entity("web-1")
            .is_some_and(|e| e.state == Lifecycle::Running),
        "the leader's live view, through the standby"
    );

    // ?stale=true: the standby's own copy of the store.
    let r = wait_for(DEADLINE, "the standby's store has the members", || {
        let r = read(&b, &format!("/v1/applications/{app}?stale=true"));
        (r.status == 200 && r.body.contains("web-2")).then_some(r)
    });
    assert_eq!(
        (
            r.served_by.as_deref(),
            r.stale.as_deref(),
            r.reason.as_deref()
        ),
        (Some(b.url.as_str()), Some("true"), Some("asked"))
    );
    let stale: drover::wire::AppDetail = decode(r.json());
    assert_eq!(ids(&stale.entities), ids(&live.entities), "the same tree");
    assert_eq!(
        stale
            .entity("web")
            .unwrap()
            .sensor_u64("group.desired_size"),
        Some(2)
    );
    let listed = read(&b, "/v1/applications?stale=true").json();
    assert!(listed.to_string().contains(&app), "{listed}");
    let r = read(&b, &format!("{entity}/rollout?stale=1"));
    assert_eq!(r.status, 200, "{}", r.body);
    let rollout: drover::wire::RolloutStatus = decode(r.json());
    assert_eq!((rollout.size, rollout.state.as_str()), (2, "complete"));
    let r = read(&b, &format!("{entity}/policies?stale=true"));
    assert!(r.status == 200 && r.body.contains("resilient"), "{r:?}");
    assert_eq!(read(&b, "/v1/applications/nope?stale=true").status, 404);
    // What only the leader has is never made up.
    let r = read(&b, "/v1/activities?stale=true");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        decode::<NotLeader>(r.json()).leader.as_deref(),
        Some(a.url.as_str())
    );

    // The CLI pointed at the standby reads.
    let ls = b.cli(&["ls"]);
    assert!(
        ls.ok && ls.stdout.contains(&app),
        "{}{}",
        ls.stdout,
        ls.stderr
    );
    let st = b.cli(&["status", &app]);
    assert!(
        st.ok && st.stdout.contains("web-2") && st.stdout.contains(&format!("leader: {}", a.url)),
        "{}{}",
        st.stdout,
        st.stderr
    );
    // Writes are not forwarded.
    let (status, _) = b.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 503);
    assert!(a.get(&format!("/v1/applications/{app}")).0 == 200);
}

/// Keys under the cluster's prefix in etcd (etcdctl, not drover).
fn stored_keys(cluster: &Cluster, folder: &str) -> Vec<String> {
    let out = cluster.etcd.etcdctl(&[
        "get",
        "--prefix",
        "--keys-only",
        &format!("/drover/{}/{folder}/", cluster.name),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn drovers_starting_at_once_on_an_empty_etcd_make_one_admin_token_both_accept() {
    let cluster = Cluster::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let start = std::sync::Barrier::new(2);
    let drovers: Vec<Drover> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| {
                let (cluster, start) = (&cluster, &start);
                s.spawn(move || {
                    start.wait();
                    cluster.drover_in(d.path(), &[])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let files: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.path().join("admin.token")).ok())
        .collect();
    assert_eq!(files.len(), 1, "exactly one drover made a token file");
    let token = files[0].trim().to_string();
    assert_eq!(
        stored_keys(&cluster, "tokens").len(),
        1,
        "exactly one token stored"
    );
    for d in &drovers {
        wait_for(DEADLINE, "each drover accepts the admin token", || {
            (read_with(d, &token, "/v1/tokens?stale=true").status == 200).then_some(())
        });
    }
}

#[test]
fn a_build_context_uploaded_through_the_leader_is_built_by_the_next_on_another_machine() {
    workload_image();
    let app = unique("ctx");
    let _g = AppGuard(app.clone());
    let _i = BuiltImages(app.clone());
    let cluster = Cluster::new();
    // Two machines: each drover its own state directory.
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = cluster.drover_in(one.path(), &[]);
    wait_leads(&a, "the first drover leads");
    let mut b = cluster.drover_in(two.path(), &[]);
    b.token = a.token.clone();

    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(
        web.join("Dockerfile"),
        format!("FROM drover/workload:latest\nLABEL io.example.app={app}\n"),
    )
    .unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!("name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 1\n    member:\n      build: ./web\n      ports: [8080]\n      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}\n"),
    )
    .unwrap();
    let run = a.cli(&["deploy", file.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    a.wait_running(&app, DEADLINE);
    let image = inspect(&containers_of(&app, false)[0])["Config"]["Image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(image.starts_with("drover-build/"), "{image}");
    assert_eq!(
        stored_keys(&cluster, "uploads").len(),
        2,
        "manifest and one chunk"
    );

    a.kill9();
    wait_leads(&b, "the standby leads");
    b.wait_running(&app, DEADLINE);
    // The image is gone from the engine: a new member must be built, from
    // the context uploaded to the dead drover's machine.
    assert!(Command::new("docker")
        .args(["rmi", "-f", &image])
        .status()
        .unwrap()
        .success());
    let (status, body) = b.invoke(&app, "web", "resize", json!({ "size": 2 }));
    assert_eq!(status, 200, "{body}");
    let s = wait_for(DEADLINE, "the new member runs, built again", || {
        let e = b.entity_view(&app, "web-2")?;
        (e.state == Lifecycle::Running).then_some(e)
    });
    // Removed above, so built again here, by the only drover alive.
    assert!(
        Command::new("docker")
            .args(["image", "inspect", &image])
            .output()
            .unwrap()
            .status
            .success(),
        "{image} was built again ({:?})",
        s.sensors.get("image.build")
    );
    let id = s.sensor_str("container.id").expect("web-2 has a container");
    assert_eq!(
        inspect(id)["Config"]["Image"].as_str(),
        Some(image.as_str())
    );
    let held: Vec<_> = std::fs::read_dir(two.path().join("build-contexts"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar"))
        .collect();
    assert_eq!(held.len(), 1, "the context is on the new leader's machine");
}

/// `drover serve` that must fail: its exit status and stderr (killed
/// after a deadline: a hang is a failure too).
fn serve_fails(args: &[String]) -> (Option<i32>, String) {
    let mut child = Command::new(drover_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("drover serve {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn over_tls_and_etcd_auth_a_leader_deploys_and_a_standby_follows_and_bad_credentials_name_the_flag()
{
    use common::certs::{ca, cert};
    use common::etcd::EtcdTls;
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    let ca_pem = ca(d, "ca");
    let other_ca = ca(d, "other");
    let (server_cert, server_key) = cert(d, "etcd", "ca", "serverAuth");
    let (client_cert, client_key) = cert(d, "client", "ca", "clientAuth");
    let etcd = Etcd::start_tls(EtcdTls {
        ca: ca_pem.clone(),
        server_cert,
        server_key,
        client_cert: client_cert.clone(),
        client_key: client_key.clone(),
    });
    let password = "pw-of-the-test";
    etcd.enable_auth(password);
    let app = unique("secured");
    let _g = AppGuard(app.clone());
    let cluster = Cluster::on(etcd);
    let tls = |ca: &Path, pw: &str| -> Vec<String> {
        [
            "--etcd-ca",
            ca.to_str().unwrap(),
            "--etcd-cert",
            client_cert.to_str().unwrap(),
            "--etcd-key",
            client_key.to_str().unwrap(),
            "--etcd-user",
            "root",
            "--etcd-password",
            pw,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let good = tls(&ca_pem, password);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let a = cluster.drover_in(cluster.state.path(), &good);
    wait_leads(&a, "a drover leads over TLS with a user");
    let b = cluster.drover_in(cluster.state.path(), &good);
    a.deploy(&blueprint(&app, 1, free_port()));
    a.wait_running(&app, DEADLINE);
    wait_for(DEADLINE, "the standby follows the store", || {
        let r = read(&b, &format!("/v1/applications/{app}?stale=true"));
        (r.status == 200).then_some(())
    });
    assert_eq!(health(&b).and_then(|h| h.leader), Some(a.url.clone()));

    let state = tempfile::tempdir().unwrap();
    let wrong = tls(&ca_pem, "wrong");
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (code, err) = serve_fails(&cluster.args(state.path(), &wrong));
    assert_ne!(code, Some(0));
    assert!(
        err.contains("--etcd-password") && err.contains("--etcd-user"),
        "a wrong password names the flags: {err}"
    );
    eprintln!("wrong password: {err}");
    let wrong = tls(&other_ca, password);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (code, err) = serve_fails(&cluster.args(state.path(), &wrong));
    assert_ne!(code, Some(0));
    assert!(
        err.contains("--etcd-ca"),
        "a wrong CA names the flag: {err}"
    );
    eprintln!("wrong CA: {err}");
    assert!(
        !state.path().join("admin.token").exists(),
        "nothing made by a drover that could not start"
    );
}
