//! The data plane outlives the control plane: load balancers run as agent
//! containers (`drover lb-agent` from drover's own image, host
//! networking), keep serving while drover is `kill -9`ed, eject a member
//! killed meanwhile by themselves, and are adopted (not restarted) by the
//! next drover, found on the engine. HTTP mode counts requests one by one
//! on keep-alive connections. A settings change is applied in place; a
//! killed agent container is replaced. Real engine, real processes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const DEADLINE: Duration = Duration::from_secs(120);

/// The tests of this file take turns: each drives load through a load
/// balancer, and on a 2-core machine two at once would measure each other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The workload cluster with a load balancer in front of it on a free port.
fn blueprint(app: &str, size: u32) -> String {
    cluster_blueprint(app, size)
        + "  - id: lb\n    type: load-balancer\n    target: web\n    port: 0\n"
}

/// Keep-alive GET load from a few threads; counts answers and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    // One agent per thread: its pool keeps the connection alive.
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    let mut errors = Vec::new();
                    let url = format!("http://127.0.0.1:{port}/");
                    while !stop.load(Ordering::SeqCst) {
                        match agent.get(&url).call() {
                            Ok(mut r) if r.status() == 200 => {
                                let _ = r.body_mut().read_to_string();
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(format!("status {}", r.status()));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                errors.push(e.to_string());
                            }
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    errors
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the load; (answers, failures with their errors).
    fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let errors: Vec<String> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

fn lb_sensor_u64(d: &Drover, app: &str, name: &str) -> Option<u64> {
    d.sensors(app, "lb")[name]["value"].as_u64()
}

/// The load balancer's agent container: (id, State.StartedAt) as its sensors say.
fn agent_of(d: &Drover, app: &str) -> Option<(String, String)> {
    let (status, s) = d.get(&format!("/v1/applications/{app}/entities/lb/sensors"));
    if status != 200 {
        return None;
    }
    Some((
        s["lb.container_id"]["value"].as_str()?.to_string(),
        s["lb.started_at"]["value"].as_str()?.to_string(),
    ))
}

/// Deploys, waits for the pool of `size` behind the load balancer; returns
/// (port, agent container id, its StartedAt).
fn deploy(d: &Drover, app: &str, size: u32) -> (u16, String, String) {
    let r = deploy_on(d, app, &blueprint(app, size), size);
    let c = inspect(&r.1);
    assert_eq!(c["State"]["Running"], true, "{c}");
    assert_eq!(c["State"]["StartedAt"], r.2.as_str());
    assert_eq!(c["HostConfig"]["NetworkMode"], "host");
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["io.drover.app"], app);
    assert_eq!(labels["io.drover.entity"], "lb");
    assert_eq!(labels["io.drover.role"], "lb-agent");
    assert!(
        !c["Args"].to_string().contains("DROVER_LB_SECRET"),
        "no secret on the command line: {c}"
    );
    assert_eq!(lb_agents_of(app, false), vec![r.1.clone()]);
    r
}

/// As [`deploy`], a given blueprint, its agent on the engine `docker` names.
fn deploy_on(d: &Drover, app: &str, bp: &str, size: u32) -> (u16, String, String) {
    d.deploy(bp);
    d.wait_running(app, DEADLINE);
    wait_for(DEADLINE, "every member in the pool", || {
        let s = d.sensors(app, "lb");
        (s["lb.backends"]["value"].as_array()?.len() == size as usize).then_some(())
    });
    let s = d.sensors(app, "lb");
    assert_eq!(s["lb.mode"]["value"], "http", "an http-checked target: {s}");
    let port = s["lb.port"]["value"].as_u64().expect("lb.port") as u16;
    let (id, started) = agent_of(d, app).expect("lb.container_id and lb.started_at");
    (port, id, started)
}

#[test]
fn kill_9_of_drover_fails_no_request_and_the_next_drover_adopts_the_load_balancer() {
    let _turn = turn();
    let app = unique("dpkill");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let (port, id, started) = deploy(&d, &app, 2);

    let load = Load::start(port, 4);
    wait_for(Duration::from_secs(30), "load flowing", || {
        (load.ok() > 100).then_some(())
    });
    let counted_before = wait_for(Duration::from_secs(10), "requests counted", || {
        lb_sensor_u64(&d, &app, "lb.requests_total").filter(|n| *n > 0)
    });
    d.kill9();
    let at_kill = load.ok();
    std::thread::sleep(Duration::from_secs(5));
    let during_down = load.ok() - at_kill;
    assert!(
        during_down > 100,
        "the load balancer served while drover was down: {during_down} answers in 5 s"
    );
    let d = Drover::start_on(&store);
    let adopted = wait_for(DEADLINE, "the load balancer adopted", || {
        // 404 until the rebind has made the entity again.
        let (status, s) = d.get(&format!("/v1/applications/{app}/entities/lb/sensors"));
        if status != 200 {
            return None;
        }
        let total = s["lb.requests_total"]["value"].as_u64()?;
        (s["lb.container_id"]["value"].as_str()? == id).then_some(total)
    });
    // Adopted, not restarted: the same container, started at the same time.
    assert_eq!(agent_of(&d, &app), Some((id.clone(), started.clone())));
    assert_eq!(inspect(&id)["State"]["StartedAt"], started.as_str());
    // The counters are the agent's: they went on while drover was away.
    assert!(
        adopted >= counted_before + during_down,
        "the restarted drover shows the same counters: {adopted} >= {counted_before} + {during_down}"
    );
    let after = load.ok();
    wait_for(Duration::from_secs(20), "load still flowing", || {
        (load.ok() > after + 100).then_some(())
    });
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "zero failed requests of {ok}: {errors:?}");
    let lb = d.entity_view(&app, "lb").expect("lb");
    assert_eq!(lb.state, drover::protocol::Lifecycle::Running);
    assert_eq!(lb.sensor_u64("lb.port"), Some(port as u64));

    // Destroy removes the agent's container.
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert!(status < 300, "{status} {body}");
    wait_for(
        Duration::from_secs(30),
        "the agent container gone after destroy",
        || lb_agents_of(&app, true).is_empty().then_some(()),
    );
}

#[test]
fn a_member_killed_while_drover_is_down_is_ejected_by_the_load_balancer() {
    let _turn = turn();
    let app = unique("dpeject");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let (port, _, _) = deploy(&d, &app, 3);
    let load = Load::start(port, 4);
    wait_for(Duration::from_secs(30), "load flowing", || {
        (load.ok() > 100).then_some(())
    });
    d.kill9();
    let victim = containers_of(&app, false)
        .into_iter()
        .next()
        .expect("a running member");
    let out = std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker kill: {out:?}");
    let t0 = Instant::now();
    let at_kill = load.ok();
    while t0.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, failed, errors) = load.finish();
    assert!(
        ok > at_kill + 100,
        "served after the kill: {}",
        ok - at_kill
    );
    assert_eq!(
        failed, 0,
        "zero failed requests of {ok} with a member killed and drover down: {errors:?}"
    );
    // The agent's own counters: the dead member was tried, ejected and
    // its requests retried on another; nothing failed; its pool is the
    // last drover gave it.
    let agent = lb_agent_client(&[], &app, "lb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let st = rt.block_on(agent.stats()).unwrap();
    assert!(st.retries_total >= 1, "{st:?}");
    assert_eq!(st.errors_total, 0, "{st:?}");
    assert_eq!(
        st.responses[1], st.requests_total,
        "every answer a 2xx: {st:?}"
    );
}

/// `wrk` keep-alive load; its report's text.
fn wrk(port: u16, threads: u32, connections: u32, seconds: u32) -> String {
    wrk_niced(port, "/", threads, connections, seconds, 0)
}

/// `wrk` at a scheduling priority (`nice -n`; negative needs root).
fn wrk_niced(
    port: u16,
    path: &str,
    threads: u32,
    connections: u32,
    seconds: u32,
    nice: i32,
) -> String {
    let out = std::process::Command::new("nice")
        .args(["-n", &nice.to_string(), "wrk"])
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("wrk is installed (Debian's wrk; .ci/run installs it)");
    assert!(out.status.success(), "wrk: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A duration of wrk's report (`812.00us`, `1.52ms`, `2.01s`) in seconds.
fn wrk_seconds(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap());
    let n: f64 = num.parse().unwrap();
    n * match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        other => panic!("wrk unit {other}"),
    }
}

/// (requests, non-2xx/3xx, p99 seconds) from wrk's report.
fn wrk_figures(report: &str) -> (u64, u64, f64) {
    let requests = report
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk's request count: {report}"));
    let non_ok = report
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(0, |n| n.trim().parse().unwrap());
    let p99 = report
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(wrk_seconds)
        .unwrap_or_else(|| panic!("wrk's p99: {report}"));
    (requests, non_ok, p99)
}

#[test]
fn latency_p99_and_status_classes_match_what_wrk_saw() {
    let _turn = turn();
    let app = unique("dplat");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let (port, _, _) = deploy(&d, &app, 2);
    let before = wait_for(Duration::from_secs(10), "counters published", || {
        lb_sensor_u64(&d, &app, "lb.requests_total")
    });
    // Requests that take 20 ms at the member (a sleep, no CPU): the
    // latency both sides see is then the member's, and the hops only
    // wrk sees (its own socket, the scheduler on a busy machine) are a
    // small part of it, so the two p99s can be held to 10% of each other.
    let report = wrk_niced(port, "/work?sleep_ms=20", 1, 4, 10, 0);
    let (requests, non_ok, wrk_p99) = wrk_figures(&report);
    // The sensors published once the run's requests are counted (they
    // come every second; the latency window is 10 s). The load balancer
    // counts at least what wrk saw: wrk leaves out those in flight at its end.
    let s = wait_for(
        Duration::from_secs(10),
        "the run's requests counted",
        || {
            let s = d.sensors(&app, "lb");
            let total = s["lb.requests_total"]["value"].as_u64()?;
            (total - before >= requests).then_some(s)
        },
    );
    let counted = s["lb.requests_total"]["value"].as_u64().unwrap() - before;
    let ok = s["lb.responses"]["value"]["2xx"].as_u64().unwrap();
    let p99 = s["lb.latency_p99"]["value"].as_f64().unwrap();
    assert!(requests > 500, "{report}");
    assert_eq!(non_ok, 0, "{report}");
    // wrk does not count the requests still in flight when it stops.
    let within = |a: f64, b: f64| (a - b).abs() <= 0.1 * b;
    assert!(
        within(counted as f64, requests as f64),
        "lb.requests_total counted {counted}, wrk {requests}"
    );
    assert!(
        within(ok as f64, requests as f64),
        "2xx {ok}, wrk {requests}"
    );
    assert_eq!(s["lb.responses"]["value"]["5xx"].as_u64(), Some(0));
    // The load balancer times from a request read to its response
    // written; wrk also sees its own socket and the loopback hop.
    assert!(
        (p99 - wrk_p99).abs() <= 0.1 * wrk_p99,
        "lb.latency_p99 {p99} s, wrk's p99 {wrk_p99} s\n{report}"
    );
    assert!(p99 >= 0.020, "every request slept 20 ms: {p99}");
}

#[test]
fn the_quickstart_with_the_web_autoscaler_grows_under_keep_alive_load_and_shrinks_after() {
    let _turn = turn();
    let app = unique("dpscale");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let quickstart = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/blueprints/quickstart.yaml"
    ))
    .unwrap();
    // The quickstart as shipped, with the preset (shorter windows, so the
    // test does not wait 30 s to see it shrink) and a free port.
    let bp = quickstart
        .replace("name: quickstart", &format!("name: {app}"))
        .replace("port: 8000", "port: 0")
        .replace(
            "      - use: resilient\n",
            "      - use: resilient\n      - use: web-autoscaler\n        max_size: 6\n        down_stabilization: 5s\n",
        );
    assert!(bp.contains("web-autoscaler"), "{bp}");
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    let s = d.sensors(&app, "lb");
    assert_eq!(s["lb.mode"]["value"], "http");
    let port = s["lb.port"]["value"].as_u64().unwrap() as u16;
    let size = |d: &Drover| {
        d.entity_view(&app, "web")
            .and_then(|w| w.sensor_u64("group.size"))
            .unwrap_or(0)
    };
    let start = size(&d);
    // Keep-alive load: 16 connections, as a browser fleet or service
    // clients would hold them. Connections per second stay near zero;
    // requests per second do not.
    let report = wrk(port, 2, 16, 12);
    let grown = size(&d);
    assert!(
        grown > start,
        "the cluster grew under keep-alive load: {start} -> {grown}\n{report}"
    );
    wait_for(DEADLINE, "the cluster shrinks after the load", || {
        (size(&d) < grown).then_some(())
    });
}

#[test]
fn a_graceful_stop_of_drover_leaves_the_load_balancer_serving() {
    let _turn = turn();
    let app = unique("dpterm");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let mut d = Drover::start_on(&store);
    let (port, id, started) = deploy(&d, &app, 2);
    let load = Load::start(port, 2);
    wait_for(Duration::from_secs(30), "load flowing", || {
        (load.ok() > 50).then_some(())
    });
    // SIGTERM, as an upgrade or an operator's stop sends it.
    assert!(d.terminate().success(), "drover stops cleanly on SIGTERM");
    let at_stop = load.ok();
    wait_for(
        Duration::from_secs(10),
        "answers while drover is stopped",
        || (load.ok() > at_stop + 50).then_some(()),
    );
    let d = Drover::start_on(&store);
    wait_for(DEADLINE, "the same load balancer adopted", || {
        (agent_of(&d, &app)? == (id.clone(), started.clone())).then_some(())
    });
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "zero failed requests of {ok}: {errors:?}");
}

#[test]
fn an_apply_of_only_a_load_balancer_setting_changes_it_in_place_under_load() {
    let _turn = turn();
    let app = unique("dpset");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = Drover::start();
    let (port, id, started) = deploy(&d, &app, 2);
    let load = Load::start(port, 4);
    wait_for(Duration::from_secs(30), "load flowing", || {
        (load.ok() > 100).then_some(())
    });
    let file = dir.path().join("app.yaml");
    let changed = format!(
        "{}    limits: {{ max_connections: 321, idle_timeout: 20s }}\n",
        blueprint(&app, 2)
    );
    std::fs::write(&file, &changed).unwrap();
    let file = file.to_str().unwrap();
    let diff = d.cli(&["diff", file]);
    assert!(diff.ok, "{}{}", diff.stdout, diff.stderr);
    assert!(
        diff.stdout.contains("~ lb in-place") && diff.stdout.contains("changed in place"),
        "{}",
        diff.stdout
    );
    let run = d.cli(&["apply", file, "-o", "json"]);
    assert!(run.ok, "drover apply: {}{}", run.stdout, run.stderr);
    let plan: drover::wire::Plan = serde_json::from_str(&run.stdout).unwrap();
    let lb = plan.services.iter().find(|s| s.id == "lb").unwrap();
    assert_eq!(lb.action, drover::wire::PlanAction::InPlace, "{plan:?}");
    // The sensor, and the agent itself, show the new setting.
    wait_for(
        Duration::from_secs(30),
        "the new limit in lb.limits",
        || {
            (d.sensors(&app, "lb")["lb.limits"]["value"]["max_connections"].as_u64()? == 321)
                .then_some(())
        },
    );
    let agent = lb_agent_client(&[], &app, "lb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = rt.block_on(agent.settings()).unwrap();
    assert_eq!(settings.limits.max_connections, 321);
    assert_eq!(settings.limits.idle_timeout, Duration::from_secs(20));
    let after = load.ok();
    wait_for(Duration::from_secs(20), "load still flowing", || {
        (load.ok() > after + 100).then_some(())
    });
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "zero failed requests of {ok}: {errors:?}");
    // The same container, never restarted; the same port.
    assert_eq!(agent_of(&d, &app), Some((id.clone(), started)));
    assert_eq!(lb_agents_of(&app, true), vec![id]);
    assert_eq!(lb_sensor_u64(&d, &app, "lb.port"), Some(port as u64));
}

#[test]
fn a_killed_load_balancer_container_is_replaced_on_the_same_port() {
    let _turn = turn();
    let app = unique("dpkilllb");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let (port, id, _) = deploy(&d, &app, 2);
    let out = std::process::Command::new("docker")
        .args(["kill", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker kill: {out:?}");
    let new = wait_for(DEADLINE, "a new load balancer container", || {
        agent_of(&d, &app).map(|(c, _)| c).filter(|c| *c != id)
    });
    assert_eq!(inspect(&new)["State"]["Running"], true);
    // The dead one is gone, not left beside it.
    assert_eq!(lb_agents_of(&app, true), vec![new]);
    assert_eq!(lb_sensor_u64(&d, &app, "lb.port"), Some(port as u64));
    assert!(lb_sensor_u64(&d, &app, "lb.replaced_total").unwrap_or(0) >= 1);
    wait_for(Duration::from_secs(30), "served on the same port", || {
        (http_get(port, "/")?.0 == 200).then_some(())
    });
}

#[test]
fn a_load_balancer_on_a_second_engine_serves_and_is_adopted_after_a_restart() {
    let _turn = turn();
    let engines = common::engines::Engines::start(1);
    let cfg = engines.dir.path().join("drover.yaml");
    std::fs::write(
        &cfg,
        format!(
            "locations:\n  pool:\n    hosts:\n      - {{ name: e-1, endpoint: '{}' }}\n",
            engines.socket(0)
        ),
    )
    .unwrap();
    let app = unique("dpremote");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("drover.redb");
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ];
    let mut d = Drover::start_with(&args);
    let bp = blueprint(&app, 2).replace(
        &format!("name: {app}\n"),
        &format!("name: {app}\nlocation: pool\n"),
    );
    let (port, id, started) = deploy_on(&d, &app, &bp, 2);
    // On the second engine, not on this machine's default one.
    let on_e1 = engines.docker(
        0,
        &[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "label=io.drover.role=lb-agent",
            "--filter",
            &format!("label=io.drover.app={app}"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&on_e1.stdout).trim(), id);
    assert!(lb_agents_of(&app, true).is_empty());
    wait_for(Duration::from_secs(30), "served through it", || {
        (http_get(port, "/")?.0 == 200).then_some(())
    });
    d.kill9();
    let d = Drover::start_with(&args);
    wait_for(DEADLINE, "the same load balancer adopted", || {
        (agent_of(&d, &app)? == (id.clone(), started.clone())).then_some(())
    });
    let socket = engines.socket(0);
    let agent = lb_agent_client(&["-H", &socket], &app, "lb");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let st = rt.block_on(agent.stats()).unwrap();
    assert!(st.requests_total >= 1, "its counters kept: {st:?}");
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert!(status < 300, "{status} {body}");
    wait_for(Duration::from_secs(30), "its container removed", || {
        let out = engines.docker(
            0,
            &[
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.drover.app={app}"),
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .is_empty()
            .then_some(())
    });
}
