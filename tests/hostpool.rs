//! Host pools against real engines: each test starts its own extra
//! dockerd processes (own data root, exec root, socket, pidfile, bridge)
//! and a drover whose `drover.yaml` names them. [`Engines`] stops every
//! engine the test started, and every engine drover provisioned under the
//! test's directory, even when the test fails.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::engines::Engines;
use common::{decode, wait_for, Drover};
use drover::location::provision::LocalEngine;
use drover::placement::HeadroomVerdict;
use drover::protocol::Lifecycle;
use drover::wire::{HostOpAnswer, PolicyStatus, PoolView};
use serde_json::{json, Value};

fn write_config(engines: &Engines, yaml: &str) -> PathBuf {
    let p = engines.dir.path().join("drover.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `drover.yaml` with one location `pool` of the test's first `n` engines
/// (`e-1`..), and `extra` location keys (each line indented by 4).
fn static_pool(engines: &Engines, n: usize, extra: &str) -> PathBuf {
    let hosts: String = (0..n)
        .map(|i| {
            format!(
                "      - {{ name: e-{}, endpoint: '{}' }}\n",
                i + 1,
                engines.socket(i)
            )
        })
        .collect();
    write_config(
        engines,
        &format!("locations:\n  pool:\n    hosts:\n{hosts}{extra}"),
    )
}

/// Sorted ids of the application's containers on the engine at `socket`
/// (`all`: in any state, else running only).
fn app_containers(socket: &str, app: &str, all: bool) -> Vec<String> {
    let out = Command::new("docker")
        .args(["-H", socket, "ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=io.drover.app={app}"))
        .args(all.then_some("-a"))
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The socket of a host drover provisioned in location `pool`.
fn provisioned_socket(engines: &Engines, host: &str) -> String {
    let e = LocalEngine::at(&engines.provision_dir().join("pool"), host);
    format!("unix://{}", e.socket.display())
}

/// `GET /v1/locations`: every host pool.
fn locations(d: &Drover) -> Vec<PoolView> {
    let (status, locs) = d.get("/v1/locations");
    assert_eq!(status, 200, "{locs}");
    decode(locs)
}

/// The first (in these tests, the only) host pool.
fn first_pool(d: &Drover) -> PoolView {
    locations(d).into_iter().next().expect("a host pool")
}

/// The pool's hosts as `GET /v1/locations` shows them: (name, state,
/// provisioned).
fn pool_hosts(d: &Drover) -> Vec<(String, String, bool)> {
    let (_, locs) = d.get("/v1/locations");
    serde_json::from_value::<Vec<PoolView>>(locs)
        .unwrap_or_default()
        .first()
        .map(|p| {
            p.hosts
                .iter()
                .map(|h| (h.name.clone(), h.state.clone(), h.provisioned))
                .collect()
        })
        .unwrap_or_default()
}

/// A CLI command against `d`; its output, which must be a success.
fn cli(d: &Drover, args: &[&str]) -> String {
    let out = Command::new(common::drover_bin())
        .args(args)
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Member → host name, from the sensors.
fn hosts_of_members(d: &Drover, app: &str, cluster: &str) -> BTreeMap<String, String> {
    d.app_detail(app)
        .entities
        .iter()
        .filter(|e| e.parent.as_deref() == Some(cluster))
        .map(|e| {
            (
                e.id.clone(),
                e.sensor_str("host.name").unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn counts(m: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for h in m.values() {
        *c.entry(h.clone()).or_insert(0) += 1;
    }
    c
}

fn cluster_yaml(app: &str, size: u32, image: &str, placement: &str) -> String {
    format!(
        "name: {app}\nlocation: pool\nservices:\n  - id: web\n    type: cluster\n    \
         initial_size: {size}\n    member:\n      image: {image}\n      ports: [8080]\n      \
         health: {{ http: {{ port: 8080, path: /health }} }}\n{placement}"
    )
}

/// Waits until every entity runs; on timeout, shows the tree.
fn running(d: &Drover, app: &str, deadline: Duration) {
    let t0 = Instant::now();
    loop {
        let v = d.app_detail(app);
        let all = v.entities.iter().all(|e| e.state == Lifecycle::Running);
        if v.summary.state == Lifecycle::Running && all {
            return;
        }
        if t0.elapsed() > deadline {
            let rows: Vec<String> = v
                .entities
                .iter()
                .map(|e| {
                    format!(
                        "{} {} host={} error={}",
                        e.id,
                        e.state,
                        e.sensor("host.name").unwrap_or(&Value::Null),
                        e.sensor("entity.error").unwrap_or(&Value::Null)
                    )
                })
                .collect();
            panic!("{app} not running after {deadline:?}:\n{}", rows.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until cluster `web` of `app` has `n` members, every one running
/// on `host`.
fn all_members_running_on(d: &Drover, app: &str, n: usize, host: &str, deadline: Duration) {
    wait_for(
        deadline,
        &format!("all {n} members running on {host}"),
        || {
            let m = hosts_of_members(d, app, "web");
            let all_running = d
                .app_detail(app)
                .entities
                .iter()
                .filter(|e| e.parent.as_deref() == Some("web"))
                .all(|e| e.state == Lifecycle::Running);
            (m.len() == n && m.values().all(|h| h == host) && all_running).then_some(())
        },
    );
}

fn destroy(d: &Drover, app: &str) {
    let (s, b) = d.delete(&format!("/v1/applications/{app}"));
    assert!(s == 204 || s == 404, "destroy {app}: {s} {b}");
}

#[test]
fn placement_spreads_packs_and_separates_across_three_engines() {
    let engines = Engines::start(3);
    let cfg = static_pool(&engines, 3, "    placement: { strategy: breadth-first }\n");
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let image = "drover/workload:latest";

    // Breadth-first: 6 members, 2/2/2.
    let app = common::unique("spread");
    d.deploy(&cluster_yaml(&app, 6, image, ""));
    running(&d, &app, Duration::from_secs(90));
    let placed = hosts_of_members(&d, &app, "web");
    assert_eq!(
        counts(&placed),
        BTreeMap::from([("e-1".into(), 2), ("e-2".into(), 2), ("e-3".into(), 2)]),
        "{placed:?}"
    );
    // The engines agree with the sensors.
    for i in 0..3 {
        assert_eq!(app_containers(&engines.socket(i), &app, false).len(), 2);
    }
    destroy(&d, &app);

    // Depth-first, max 4 per host: 5 members, 4/1/0.
    let app = common::unique("pack");
    d.deploy(&cluster_yaml(
        &app,
        5,
        image,
        "    placement: { strategy: depth-first, max_containers: 4 }\n",
    ));
    running(&d, &app, Duration::from_secs(90));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    let mut sizes: Vec<usize> = c.values().copied().collect();
    sizes.sort();
    assert_eq!(sizes, [1, 4], "{c:?}");
    destroy(&d, &app);

    // Anti-affinity: 3 members on 3 different hosts; a 4th fits nowhere,
    // and the error says why, host by host.
    let app = common::unique("apart");
    d.deploy(&cluster_yaml(
        &app,
        3,
        image,
        "    placement: { affinity: [{ same: entity, not: true }] }\n",
    ));
    running(&d, &app, Duration::from_secs(90));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(c.len(), 3, "{c:?}");
    let (status, body) = d.invoke(&app, "web", "resize", json!({ "size": 4 }));
    let text = body.to_string();
    assert_ne!(status, 200, "{body}");
    assert!(text.contains("insufficient capacity"), "{text}");
    // The cluster's answer keeps the kind (what its autoscaler holds on).
    assert!(
        text.contains(&format!("{app}/web: insufficient capacity: members failed")),
        "{text}"
    );
    for h in ["e-1", "e-2", "e-3"] {
        assert!(
            text.contains(&format!("{h}: rejected by anti-affinity(same-entity)")),
            "{text}"
        );
    }
    destroy(&d, &app);
}

#[test]
fn local_dockerd_provisioning_grows_copies_images_and_shrinks() {
    let mut engines = Engines::start(1);
    let subnet = engines.provision_subnet();
    // An image only the first engine has: new hosts must get it by copy.
    let image = format!("drover-test/copied:{}", std::process::id());
    let st = Command::new(common::drover_bin())
        .args(["workload-image", "--docker", &engines.socket(0)])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out = engines.docker(0, &["tag", "drover/workload:latest", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cfg = write_config(
        &engines,
        &format!(
            "locations:\n  pool:\n    hosts:\n      - {{ name: pool-0, endpoint: '{}' }}\n    \
             placement: {{ max_containers: 4 }}\n    max_hosts: 3\n    cold_window: 2s\n    \
             provisioner: {{ type: local-dockerd, dir: '{}', subnet: {subnet} }}\n",
            engines.socket(0),
            engines.provision_dir().display()
        ),
    );
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("grow");
    d.deploy(&cluster_yaml(&app, 2, &image, ""));
    running(&d, &app, Duration::from_secs(60));
    // 2 → 4 fits on the one host.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 4 }));
    assert_eq!(s, 200, "{b}");
    // 4 → 5: no host fits; the pool provisions one. Timed until running.
    let t0 = Instant::now();
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 5 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(90));
    let first_new = t0.elapsed();
    println!(
        "MEASURED no_host_fits_to_running_on_new_local_host_seconds={:.2}",
        first_new.as_secs_f64()
    );
    // 5 → 10: a third host.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 10 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(120));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(
        c,
        BTreeMap::from([
            ("pool-0".into(), 4),
            ("pool-2".into(), 4),
            ("pool-3".into(), 2)
        ]),
        "{c:?}"
    );
    // The pool's view: three hosts with their sensors, and why.
    let pool = locations(&d)
        .into_iter()
        .find(|l| l.location == "pool")
        .expect("pool listed");
    let per_host: BTreeMap<String, u64> = pool
        .hosts
        .iter()
        .map(|h| {
            (
                h.name.clone(),
                h.sensors["host.containers"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_host,
        BTreeMap::from([
            ("pool-0".into(), 4),
            ("pool-2".into(), 4),
            ("pool-3".into(), 2)
        ]),
        "{pool:?}"
    );
    assert!(
        pool.hosts[0].sensors["host.cpus"].as_f64().unwrap() >= 1.0,
        "{pool:?}"
    );
    assert!(
        pool.events.join("\n").contains("provisioning host pool-2"),
        "{pool:?}"
    );
    // The image was copied to the new engines.
    for host in ["pool-2", "pool-3"] {
        let out = Command::new("docker")
            .args(["-H", &provisioned_socket(&engines, host)])
            .args(["image", "inspect", &image])
            .output()
            .unwrap();
        assert!(out.status.success(), "{image} is not on {host}");
    }
    // Beyond max_hosts: insufficient capacity.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 13 }));
    assert_ne!(s, 200, "{b}");
    assert!(b.to_string().contains("insufficient capacity"), "{b}");
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 10 }));
    assert_eq!(s, 200, "{b}");
    // Shrink back to 2 (newest first: the provisioned hosts empty).
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 2 }));
    assert_eq!(s, 200, "{b}");
    wait_for(
        Duration::from_secs(60),
        "emptied hosts decommissioned",
        || {
            let gone = ["pool-2", "pool-3"]
                .iter()
                .all(|h| !engines.provision_dir().join("pool").join(h).exists());
            gone.then_some(())
        },
    );
    // The pool said why: cold, then the decommissions.
    let events = first_pool(&d).events.join("\n");
    assert!(events.contains("pool cold"), "{events}");
    assert!(events.contains("host pool-2 decommissioned"), "{events}");
    // Decided by the host pool's autoscaler (the shared autoscaler policy).
    let (_, acts) = d.get("/v1/activities?application=%40location&entity=pool");
    let acts = acts.to_string();
    assert!(acts.contains("autoscaler.resize"), "{acts}");
    assert!(acts.contains("shrink to"), "{acts}");
    // The static host and its two members stay.
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(c, BTreeMap::from([("pool-0".into(), 2)]), "{c:?}");
    assert_eq!(app_containers(&engines.socket(0), &app, false).len(), 2);
    destroy(&d, &app);
}

#[test]
fn a_failed_engine_s_containers_start_again_on_the_others() {
    let engines = Engines::start(2);
    let cfg = static_pool(&engines, 2, "    on_fire_after: 2s\n");
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("failover");
    d.deploy(&cluster_yaml(&app, 4, "drover/workload:latest", ""));
    running(&d, &app, Duration::from_secs(90));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(
        c,
        BTreeMap::from([("e-1".into(), 2), ("e-2".into(), 2)]),
        "{c:?}"
    );
    let t0 = Instant::now();
    engines.kill_engine(1);
    all_members_running_on(&d, &app, 4, "e-1", Duration::from_secs(60));
    println!(
        "MEASURED engine_killed_to_full_size_seconds={:.2}",
        t0.elapsed().as_secs_f64()
    );
    let web = d.sensors(&app, "web");
    assert_eq!(web["group.size"]["value"], json!(4), "{web}");
    assert_eq!(app_containers(&engines.socket(0), &app, false).len(), 4);
    destroy(&d, &app);
}

/// `GET path` on addr:port, the body (or nothing on any error).
fn http_get(addr: &str, port: u64, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((addr, port as u16)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn the_cpu_placement_policy_moves_a_member_off_a_busy_host_once() {
    let engines = Engines::start(3);
    let cfg = static_pool(&engines, 3, "");
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("cpu");
    d.deploy(&cluster_yaml(
        &app,
        2,
        "drover/workload:latest",
        // The shipped preset, tuned down for a test.
        "    policies:\n      - use: cpu-rebalance\n        above: 0.2\n        for: 3s\n",
    ));
    running(&d, &app, Duration::from_secs(60));
    let before = hosts_of_members(&d, &app, "web");
    let busy_host = before["web-1"].clone();
    // Operators see and tune it like any policy: stopped first.
    let policy = format!("/v1/applications/{app}/entities/web/policies/cpu-rebalance");
    let (s, b) = d.get(&policy);
    assert_eq!(s, 200, "{b}");
    let status: PolicyStatus = decode(b.clone());
    assert_eq!(status.kind, "cpu-placement", "{b}");
    assert_eq!(status.config["above"], 0.2, "{b}");
    let (s, b) = d.post(&format!("{policy}/stop"), "");
    assert_eq!(s, 200, "{b}");
    // Keep web-1 busy wherever it runs: ~1 core on its host.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (url, app, stop) = (d.url.clone(), app.clone(), stop.clone());
        let agent = d.agent();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let s: Option<Value> = agent
                    .get(&format!(
                        "{url}/v1/applications/{app}/entities/web-1/sensors"
                    ))
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_json().ok());
                let port = s
                    .as_ref()
                    .and_then(|s| s["host.port.8080"]["value"].as_u64());
                match port {
                    Some(p) => {
                        let _ = http_get("127.0.0.1", p, "/work?cpu_ms=300");
                    }
                    None => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })
    };
    // Stopped: busy for longer than its window, it stays put.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(hosts_of_members(&d, &app, "web")["web-1"], busy_host);
    let (s, b) = d.post(&format!("{policy}/start"), "");
    assert_eq!(s, 200, "{b}");
    let t0 = Instant::now();
    let moved_to = wait_for(
        Duration::from_secs(60),
        "web-1 moved off its busy host",
        || {
            let h = hosts_of_members(&d, &app, "web");
            h.get("web-1")
                .filter(|h| **h != busy_host && h.as_str() != "?")
                .cloned()
        },
    );
    println!(
        "MEASURED busy_host_to_move_seconds={:.1} ({busy_host} → {moved_to})",
        t0.elapsed().as_secs_f64()
    );
    // To the idle host, not to the one running web-2.
    assert_ne!(moved_to, before["web-2"]);
    // The location's placement policy decided it and says why.
    let moves = first_pool(&d).placement.recent_moves.join("\n");
    assert!(
        moves.contains(&format!("{app}/web-1 off {busy_host}")),
        "{moves}"
    );
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&entity=web-1"));
    assert!(acts.to_string().contains("placement.move"), "{acts}");
    running(&d, &app, Duration::from_secs(30));
    // The load follows it, but the cooldown keeps it there: no ping-pong.
    std::thread::sleep(Duration::from_secs(12));
    let after = hosts_of_members(&d, &app, "web");
    assert_eq!(after["web-1"], moved_to, "{after:?}");
    assert_eq!(after["web-2"], before["web-2"], "{after:?}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = load.join();
    // The old container is gone from the busy host.
    let i = ["e-1", "e-2", "e-3"]
        .iter()
        .position(|h| *h == busy_host)
        .unwrap();
    assert_eq!(app_containers(&engines.socket(i), &app, true).len(), 0);
    destroy(&d, &app);
}

#[test]
fn a_restarted_drover_adopts_its_provisioned_hosts_and_their_containers() {
    let mut engines = Engines::start(0);
    let subnet = engines.provision_subnet();
    let store = engines.dir.path().join("drover.redb");
    let cfg = write_config(
        &engines,
        &format!(
            "locations:\n  pool:\n    placement: {{ max_containers: 2 }}\n    max_hosts: 3\n    \
             cold_window: 10m\n    \
             provisioner: {{ type: local-dockerd, dir: '{}', subnet: {subnet} }}\n",
            engines.provision_dir().display()
        ),
    );
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let mut d = Drover::start_with(&args);
    let app = common::unique("adopt");
    // pool-1 comes up with drover; 3 members at 2 per host need pool-2.
    d.deploy(&cluster_yaml(&app, 3, "drover/workload:latest", ""));
    running(&d, &app, Duration::from_secs(120));
    let before = hosts_of_members(&d, &app, "web");
    assert_eq!(
        counts(&before),
        BTreeMap::from([("pool-1".into(), 2), ("pool-2".into(), 1)]),
        "{before:?}"
    );
    let ids = |host: &str| app_containers(&provisioned_socket(&engines, host), &app, true);
    let (ids1, ids2) = (ids("pool-1"), ids("pool-2"));
    assert_eq!((ids1.len(), ids2.len()), (2, 1));

    // kill -9: the provisioned engines keep running, drover forgets all.
    d.kill9();
    let d = Drover::start_with(&args);
    running(&d, &app, Duration::from_secs(120));
    // The same hosts, adopted from the store (none provisioned anew) ...
    let hosts = pool_hosts(&d);
    assert_eq!(
        hosts,
        vec![
            ("pool-1".to_string(), "running".to_string(), true),
            ("pool-2".to_string(), "running".to_string(), true)
        ],
        "{hosts:?}"
    );
    // ... the same members on the same hosts, the same containers: none
    // recreated, none doubled, even after the orphan sweep.
    assert_eq!(hosts_of_members(&d, &app, "web"), before);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!((ids("pool-1"), ids("pool-2")), (ids1, ids2));
    let decisions = first_pool(&d).decisions.join("\n");
    assert!(decisions.contains("adopted on pool-2"), "{decisions}");
    // And the pool still grows from where it was: the next host is pool-3.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 5 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(120));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(c.get("pool-3"), Some(&1), "{c:?}");
    destroy(&d, &app);
}

#[test]
fn headroom_adds_a_host_before_one_is_needed() {
    let mut engines = Engines::start(0);
    let subnet = engines.provision_subnet();
    let cfg = write_config(
        &engines,
        &format!(
            "locations:\n  pool:\n    placement: {{ max_containers: 2 }}\n    max_hosts: 3\n    \
             headroom: {{ count: 2 }}\n    hot_window: 1s\n    cold_window: 3s\n    on_fire_after: 2s\n    \
             provisioner: {{ type: local-dockerd, dir: '{}', subnet: {subnet} }}\n",
            engines.provision_dir().display()
        ),
    );
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("headroom");
    // One member on pool-1 leaves 1 free slot of the 2 the headroom wants:
    // the pool is hot and its autoscaler adds pool-2, though everything fits.
    d.deploy(&cluster_yaml(&app, 1, "drover/workload:latest", ""));
    running(&d, &app, Duration::from_secs(60));
    wait_for(
        Duration::from_secs(60),
        "pool-2 provisioned for headroom",
        || {
            let names: Vec<String> = pool_hosts(&d)
                .into_iter()
                .filter(|h| h.1 == "running")
                .map(|h| h.0)
                .collect();
            (names == ["pool-1", "pool-2"]).then_some(())
        },
    );
    let events = first_pool(&d).events.join("\n");
    assert!(events.contains("pool.hot"), "{events}");
    assert!(
        events.contains("provisioning host pool-2: the host autoscaler wants 2 hosts"),
        "{events}"
    );
    let (_, acts) = d.get("/v1/activities?application=%40location&entity=pool");
    assert!(acts.to_string().contains("grow to 2"), "{acts}");
    // The same through the CLI.
    let text = cli(&d, &["locations"]);
    assert!(text.contains("LOCATION pool: 2 hosts"), "{text}");
    assert!(text.contains("pool-2") && text.contains("yes"), "{text}");
    let text = cli(
        &d,
        &[
            "activities",
            "--app",
            "@location",
            "--entity",
            "pool",
            "--kind",
            "policy",
        ],
    );
    assert!(
        text.contains("@location/pool policy autoscaler.resize"),
        "{text}"
    );
    // The host-pool dashboard: every panel's query answers from a real
    // Prometheus scraping this drover.
    let prom = common::prometheus::Prometheus::start(d.url.trim_start_matches("http://"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(common::prometheus::repo_path(&format!(
            "grafana/dashboards/{}",
            common::prometheus::LOCATIONS_DASHBOARD
        )))
        .unwrap(),
    )
    .unwrap();
    let queries = common::prometheus::panel_queries(&dash);
    assert!(queries.len() >= 4, "{queries:?}");
    for (title, expr) in queries {
        let q = common::prometheus::substitute(&expr, &app);
        wait_for(
            Duration::from_secs(30),
            &format!("panel `{title}`: `{q}` answers"),
            || {
                let (status, body) = prom.query(&q);
                assert_eq!(status, 200, "`{q}` is not valid PromQL: {body}");
                common::prometheus::values(&body)
                    .iter()
                    .any(|v| !v.is_nan())
                    .then_some(())
            },
        );
    }
    let (_, body) = prom.query("drover_location_hosts{location=\"pool\"}");
    assert_eq!(common::prometheus::values(&body), vec![2.0], "{body}");
    // 2 hosts × 2 slots, 1 used: 3 free ≥ 2 wanted. No third host.
    std::thread::sleep(Duration::from_secs(3));
    let pool = first_pool(&d);
    assert_eq!(pool.hosts.len(), 2, "{pool:?}");
    assert_eq!(pool.headroom.verdict, HeadroomVerdict::Ok, "{pool:?}");
    // The member stayed where it was.
    assert_eq!(
        hosts_of_members(&d, &app, "web"),
        BTreeMap::from([("web-1".to_string(), "pool-1".to_string())])
    );
    // The spare host dies: headroom is short again, so a new host comes,
    // and the dead one is given back to its provisioner after its grace
    // period and the cold window.
    let pool_dir = engines.provision_dir().join("pool");
    let pid = LocalEngine::at(&pool_dir, "pool-2")
        .pid()
        .expect("pool-2's dockerd runs");
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    wait_for(
        Duration::from_secs(90),
        "pool-3 replaces the dead pool-2",
        || {
            let hosts: Vec<(String, String)> =
                pool_hosts(&d).into_iter().map(|h| (h.0, h.1)).collect();
            (hosts
                == [
                    ("pool-1".to_string(), "running".to_string()),
                    ("pool-3".to_string(), "running".to_string()),
                ])
            .then_some(())
        },
    );
    assert!(!pool_dir.join("pool-2").exists(), "pool-2 removed");
    let events = first_pool(&d).events.join("\n");
    assert!(events.contains("host pool-2 is on fire"), "{events}");
    assert!(events.contains("given back to its provisioner"), "{events}");
    destroy(&d, &app);
}

#[test]
fn draining_a_host_moves_its_containers_and_uncordon_takes_it_back() {
    let engines = Engines::start(2);
    let cfg = static_pool(&engines, 2, "");
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("drain");
    d.deploy(&cluster_yaml(&app, 4, "drover/workload:latest", ""));
    running(&d, &app, Duration::from_secs(60));
    assert_eq!(
        counts(&hosts_of_members(&d, &app, "web")),
        BTreeMap::from([("e-1".into(), 2), ("e-2".into(), 2)])
    );
    // Through the CLI, as an operator would.
    let text = cli(&d, &["drain", "pool", "e-1"]);
    assert!(text.contains("pool/e-1: draining"), "{text}");
    wait_for(Duration::from_secs(60), "every member off e-1", || {
        let m = hosts_of_members(&d, &app, "web");
        (m.len() == 4 && m.values().all(|h| h == "e-2")).then_some(())
    });
    running(&d, &app, Duration::from_secs(30));
    // New first, old removed after: nothing of the application is left on e-1.
    wait_for(Duration::from_secs(30), "e-1 emptied", || {
        app_containers(&engines.socket(0), &app, true)
            .is_empty()
            .then_some(())
    });
    assert_eq!(pool_hosts(&d)[0].1, "cordoned");
    // A drained host takes nothing new.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 5 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(30));
    assert_eq!(hosts_of_members(&d, &app, "web")["web-5"], "e-2");
    // Unknown hosts are a clear 404.
    let (s, b) = d.post("/v1/locations/pool/hosts/e-9/drain", "");
    assert_eq!(s, 404, "{b}");
    assert!(b.to_string().contains("its hosts: e-1, e-2"), "{b}");
    // Back in service: the next member goes to the emptier host.
    let (s, b) = d.post("/v1/locations/pool/hosts/e-1/uncordon", "");
    assert_eq!(s, 200, "{b}");
    assert_eq!(decode::<HostOpAnswer>(b.clone()).state, "running", "{b}");
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 6 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(30));
    assert_eq!(hosts_of_members(&d, &app, "web")["web-6"], "e-1");
    destroy(&d, &app);
}

/// A configured engine that does not answer when drover starts (its
/// socket moved away: a partition, the engine and its containers still
/// running). drover starts anyway, where it used to refuse; that engine's
/// members start again on the other once it has been silent for
/// `on_fire_after`; when it answers again, the containers it still runs
/// for them are removed and it takes new containers.
#[test]
fn an_engine_silent_at_start_does_not_stop_drover_and_is_taken_back() {
    let engines = Engines::start(2);
    let store = engines.dir.path().join("drover.redb");
    let cfg = static_pool(&engines, 2, "    on_fire_after: 2s\n");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let mut d = Drover::start_with(&args);
    let app = common::unique("silentstart");
    d.deploy(&cluster_yaml(&app, 4, "drover/workload:latest", ""));
    running(&d, &app, Duration::from_secs(90));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(
        c,
        BTreeMap::from([("e-1".into(), 2), ("e-2".into(), 2)]),
        "{c:?}"
    );
    let left_on_e2 = app_containers(&engines.socket(1), &app, false);
    assert_eq!(left_on_e2.len(), 2);

    d.kill9();
    let socket = engines.engines[1].1.socket.clone();
    let away = socket.with_extension("away");
    std::fs::rename(&socket, &away).unwrap();
    // Put back however the test ends: the engine's stop needs it.
    struct PutBack(PathBuf, PathBuf);
    impl Drop for PutBack {
        fn drop(&mut self) {
            let _ = std::fs::rename(&self.1, &self.0);
        }
    }
    let back = PutBack(socket, away);

    let d = Drover::start_with(&args);
    all_members_running_on(&d, &app, 4, "e-1", Duration::from_secs(90));
    let hosts = pool_hosts(&d);
    assert!(
        hosts.contains(&("e-2".to_string(), "on-fire".to_string(), false)),
        "{hosts:?}"
    );
    // The two it ran are still there: nobody could reach it.
    let moved_socket = format!("unix://{}", back.1.display());
    assert_eq!(app_containers(&moved_socket, &app, false), left_on_e2);

    drop(back);
    wait_for(
        Duration::from_secs(60),
        "e-2 answering, without the containers it ran for members now on e-1",
        || {
            let e2 = pool_hosts(&d)
                .into_iter()
                .find(|h| h.0 == "e-2")
                .map(|h| h.1);
            (e2.as_deref() == Some("running")
                && app_containers(&engines.socket(1), &app, true).is_empty())
            .then_some(())
        },
    );
    let events = first_pool(&d).events.join("\n");
    assert!(events.contains("removing 2 containers"), "{events}");
    // It takes containers again: the two new members go to the empty host.
    let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 6 }));
    assert_eq!(s, 200, "{b}");
    running(&d, &app, Duration::from_secs(90));
    let c = counts(&hosts_of_members(&d, &app, "web"));
    assert_eq!(
        c,
        BTreeMap::from([("e-1".into(), 4), ("e-2".into(), 2)]),
        "{c:?}"
    );
    destroy(&d, &app);
}
