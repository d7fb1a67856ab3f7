//! MTTR benchmark: container killed → replacement passing its health check,
//! p50/p99 over 30 kills of a 3-member drover cluster (policies `resilient`
//! + `replace-failed`, behind drover's load balancer), against
//! `docker run --restart=always` recovering from the same SIGKILL on the same
//! engine in the same run; then `drover chaos` for the probe success rate
//! through the load balancer.
//!
//! Run: `cargo bench --bench mttr`.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

const MEMBERS: usize = 3;
const KILLS: usize = 30;
const POLL: Duration = Duration::from_millis(5);
const BETWEEN_KILLS: Duration = Duration::from_millis(1500);
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
/// dockerd resets a container's restart back-off (100 ms, doubling up to
/// 1 min) once the container has run for 10 s.
const DOCKER_BACKOFF_RESET: Duration = Duration::from_millis(10_500);
/// Containers the docker side rotates over so that every kill hits one that
/// has run ≥ 10 s (back-off reset) while keeping the drover cadence.
const DOCKER_CONTAINERS: usize = 7;

fn blueprint(app: &str) -> String {
    format!(
        "name: {app}
services:
  - id: web
    type: cluster
    initial_size: {MEMBERS}
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
    policies:
      - use: resilient
      - use: replace-failed
  - id: lb
    type: load-balancer
    target: web
    port: 0
"
    )
}

/// Full health: MEMBERS members, all running with `service.up == true`, and
/// the victim (if still there) reporting `service.up` since `t0_ms`.
fn recovered(app: &Value, victim: &str, t0_ms: u64) -> bool {
    let m = members(app, "web");
    if m.len() != MEMBERS || !m.iter().all(|e| e["state"] == "running" && is_up(e)) {
        return false;
    }
    match find(app, victim) {
        None => true,
        Some(e) => sensor_ts(e, "service.up").is_some_and(|t| t >= t0_ms),
    }
}

fn wait_full_health(drover: &Drover, app: &str, within: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let d = drover.app(app);
        let m = members(&d, "web");
        let lb_ok = find(&d, "lb")
            .and_then(|e| sensor_port(e, "lb.port"))
            .is_some();
        if lb_ok && m.len() == MEMBERS && m.iter().all(|e| e["state"] == "running" && is_up(e)) {
            return d;
        }
        assert!(
            t0.elapsed() < within,
            "application {app} not at full health after {within:?}: {d}\nlog:\n{}",
            drover.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Kill {
    outcome: String,
    seconds: Option<f64>,
    kill_call_ms: f64,
    /// Other members restarted by drover meanwhile without a kill of ours.
    unprovoked: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum KillHow {
    /// `docker kill` (Engine API `POST /containers/{id}/kill`, what the CLI
    /// sends; the call returns only once the engine has handled the death).
    DockerKill,
    /// `kill -9` of the container's main process (`State.Pid`): the way the
    /// `--restart=always` side is killed.
    Sigkill,
}

impl KillHow {
    fn label(self) -> &'static str {
        match self {
            KillHow::DockerKill => "docker kill",
            KillHow::Sigkill => "kill -9 pid",
        }
    }
}

fn drover_kills(drover: &Drover, app: &str, how: KillHow) -> Vec<Kill> {
    let mut kills = Vec::new();
    for k in 0..KILLS {
        let d = wait_full_health(drover, app, Duration::from_secs(120));
        let m = members(&d, "web");
        let victim = m[k % m.len()];
        let vid = victim["id"].as_str().unwrap().to_string();
        let cid = sensor(victim, "container.id")
            .as_str()
            .expect("container.id sensor")
            .to_string();
        let port_before = sensor_port(victim, "host.port.8080");
        let ports_before: Vec<(String, Option<u16>)> = m
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or("").to_string(),
                    sensor_port(e, "host.port.8080"),
                )
            })
            .collect();
        let pid = if how == KillHow::Sigkill {
            main_pid(&cid)
        } else {
            0
        };

        let t0_ms = now_ms();
        let t0 = Instant::now();
        match how {
            KillHow::DockerKill => docker_kill(&cid),
            KillHow::Sigkill => kill9(pid),
        }
        let kill_call_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let mut last = Value::Null;
        let seconds = loop {
            let a = drover.app(app);
            if recovered(&a, &vid, t0_ms) {
                last = a;
                break Some(t0.elapsed().as_secs_f64());
            }
            if t0.elapsed() > RECOVERY_DEADLINE {
                eprintln!(
                    "kill {}: {vid} not recovered within {RECOVERY_DEADLINE:?}: {a}",
                    k + 1
                );
                break None;
            }
            std::thread::sleep(POLL);
        };
        let outcome = match find(&last, &vid) {
            _ if seconds.is_none() => "NOT RECOVERED".to_string(),
            None => {
                let ids: Vec<&str> = members(&last, "web")
                    .iter()
                    .filter_map(|e| e["id"].as_str())
                    .collect();
                format!("replaced (members now {})", ids.join(","))
            }
            Some(e) => {
                let new_cid = sensor(e, "container.id").as_str().unwrap_or("");
                let how = if new_cid == cid {
                    "restarted in place (same container)"
                } else {
                    "recreated (new container)"
                };
                format!(
                    "{how}, host port {:?} -> {:?}",
                    port_before,
                    sensor_port(e, "host.port.8080")
                )
            }
        };
        // A member we did not kill whose published port changed meanwhile
        // was restarted by drover on its own (e.g. a failed health check).
        let unprovoked: Vec<String> = ports_before
            .iter()
            .filter(|(id, _)| *id != vid)
            .filter(|(id, port)| {
                find(&last, id).is_some_and(|e| sensor_port(e, "host.port.8080") != *port)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let extra = if unprovoked.is_empty() {
            String::new()
        } else {
            format!(
                "; ALSO restarted meanwhile without a kill: {}",
                unprovoked.join(",")
            )
        };
        println!(
            "  drover {} {:>2}: {vid:<7} MTTR {:>8}  [{outcome}; kill call {kill_call_ms:.0} ms{extra}]",
            how.label(),
            k + 1,
            seconds
                .map(|s| format!("{:.0} ms", s * 1000.0))
                .unwrap_or_else(|| "-".into())
        );
        kills.push(Kill {
            outcome,
            seconds,
            kill_call_ms,
            unprovoked: unprovoked.len(),
        });
        std::thread::sleep(BETWEEN_KILLS);
    }
    kills
}

// ---------------------------------------------------------------------------
// docker run --restart=always

struct DockerGuard(String);

impl Drop for DockerGuard {
    fn drop(&mut self) {
        remove_containers_with_label(&format!("io.drover.bench={}", self.0));
    }
}

struct Restarting {
    name: String,
    /// When it last became healthy (its restart back-off resets 10 s after
    /// it started).
    healthy_since: Instant,
}

fn wait_healthy_port(name: &str, within: Duration) -> (u16, Duration) {
    let t0 = Instant::now();
    let mut port = None;
    loop {
        if port.is_none() {
            port = inspect(name).as_ref().and_then(published_port);
        }
        match port {
            Some(p) => match http_status(p, "/health", Duration::from_millis(500)) {
                Ok(200) => return (p, t0.elapsed()),
                // Refused / reset: the port may have changed on restart.
                _ => port = inspect(name).as_ref().and_then(published_port),
            },
            None => {}
        }
        assert!(
            t0.elapsed() < within,
            "container {name} not healthy within {within:?}"
        );
        std::thread::sleep(POLL);
    }
}

fn main_pid(name: &str) -> u64 {
    inspect(name)
        .and_then(|v| v["State"]["Pid"].as_u64())
        .filter(|p| *p > 0)
        .expect("container main pid")
}

fn restart_count(name: &str) -> u64 {
    inspect(name)
        .and_then(|v| v["RestartCount"].as_u64())
        .unwrap_or(0)
}

fn kill9(pid: u64) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(st.success(), "kill -9 {pid} failed");
}

/// Does `docker kill` make dockerd restart a `--restart=always` container?
/// (Since Docker 1.x a kill through the API counts as a manual stop.)
fn docker_kill_restarts(c: &mut Restarting) -> bool {
    docker(&["kill", &c.name]);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        let v = inspect(&c.name).unwrap_or(Value::Null);
        if v["State"]["Running"] == true && v["RestartCount"].as_u64().unwrap_or(0) > 0 {
            wait_healthy_port(&c.name, Duration::from_secs(30));
            c.healthy_since = Instant::now();
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Not restarted: start it again (which re-arms the restart policy).
    docker(&["start", &c.name]);
    wait_healthy_port(&c.name, Duration::from_secs(30));
    c.healthy_since = Instant::now();
    false
}

/// Kills `c` the chosen way and times until GET /health answers 200 again.
fn kill_and_time(c: &Restarting, use_docker_kill: bool) -> f64 {
    let pid = main_pid(&c.name);
    let t0 = Instant::now();
    if use_docker_kill {
        docker_kill(&c.name);
    } else {
        kill9(pid);
    }
    // The port stays bound to the dead container for a moment: wait until
    // the engine has seen the death before trusting a 200.
    let (_, _) = wait_healthy_after_kill(&c.name, pid, t0);
    t0.elapsed().as_secs_f64()
}

/// Probes every 5 ms until a *new* main process answers GET /health 200.
fn wait_healthy_after_kill(name: &str, old_pid: u64, t0: Instant) -> (u16, u64) {
    let mut port = inspect(name).as_ref().and_then(published_port);
    loop {
        if let Some(p) = port {
            match http_status(p, "/health", Duration::from_millis(500)) {
                Ok(200) => {
                    // A 200 can only come from a live server; make sure it
                    // is the restarted one (it is: the old pid is dead).
                    let v = inspect(name).unwrap_or(Value::Null);
                    let pid = v["State"]["Pid"].as_u64().unwrap_or(0);
                    if pid != old_pid && pid != 0 {
                        return (p, pid);
                    }
                }
                _ => port = inspect(name).as_ref().and_then(published_port),
            }
        } else {
            port = inspect(name).as_ref().and_then(published_port);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "container {name} did not come back within 120 s"
        );
        std::thread::sleep(POLL);
    }
}

struct DockerResult {
    method: String,
    mttrs: Vec<f64>,
    escalation: Vec<f64>,
}

fn docker_side() -> DockerResult {
    let tag = unique("mttr");
    let _guard = DockerGuard(tag.clone());
    let mut cs = Vec::new();
    for i in 0..DOCKER_CONTAINERS {
        let name = format!("drover-bench-{tag}-{i}");
        docker(&[
            "run",
            "-d",
            "--restart=always",
            "-p",
            "127.0.0.1::8080",
            "--label",
            &format!("io.drover.bench={tag}"),
            "--name",
            &name,
            "drover/workload:latest",
        ]);
        cs.push(Restarting {
            name,
            healthy_since: Instant::now(),
        });
    }
    for c in cs.iter_mut() {
        wait_healthy_port(&c.name, Duration::from_secs(60));
        c.healthy_since = Instant::now();
    }

    let restarts_on_docker_kill = docker_kill_restarts(&mut cs[0]);
    let method = if restarts_on_docker_kill {
        "`docker kill` (SIGKILL through the API; dockerd restarts the container)".to_string()
    } else {
        "`kill -9 <State.Pid>` of the container's main process: on this engine `docker kill` counts as a manual stop and \
         --restart=always does NOT restart the container"
            .to_string()
    };
    println!("  docker kill method: {method}");
    println!(
        "  rotating over {DOCKER_CONTAINERS} containers so each kill hits one that has run >= 10 s (dockerd's restart back-off reset), \
         {:.1} s between kills",
        BETWEEN_KILLS.as_secs_f64()
    );

    let mut mttrs = Vec::new();
    for k in 0..KILLS {
        let c = &mut cs[k % DOCKER_CONTAINERS];
        let up = c.healthy_since.elapsed();
        if up < DOCKER_BACKOFF_RESET {
            std::thread::sleep(DOCKER_BACKOFF_RESET - up);
        }
        let before = restart_count(&c.name);
        let s = kill_and_time(c, restarts_on_docker_kill);
        c.healthy_since = Instant::now();
        let after = restart_count(&c.name);
        println!(
            "  docker kill {:>2}: {:<28} MTTR {:>5.0} ms  [RestartCount {before} -> {after}]",
            k + 1,
            c.name,
            s * 1000.0
        );
        mttrs.push(s);
        std::thread::sleep(BETWEEN_KILLS);
    }

    // The same container killed again 1.5 s after each recovery: dockerd's
    // back-off doubles (100 ms, 200 ms, ...) because it never runs 10 s.
    let c = &mut cs[0];
    let up = c.healthy_since.elapsed();
    if up < DOCKER_BACKOFF_RESET {
        std::thread::sleep(DOCKER_BACKOFF_RESET - up);
    }
    let mut escalation = Vec::new();
    for _ in 0..6 {
        let s = kill_and_time(c, restarts_on_docker_kill);
        c.healthy_since = Instant::now();
        escalation.push(s);
        std::thread::sleep(BETWEEN_KILLS);
    }
    DockerResult {
        method,
        mttrs,
        escalation,
    }
}

// ---------------------------------------------------------------------------

fn run_chaos(drover: &Drover, app: &str) -> Option<Value> {
    let t0 = Instant::now();
    let out = Command::new(drover_bin())
        .args([
            "chaos",
            app,
            "--duration",
            "60s",
            "--interval",
            "2s",
            "--seed",
            "7",
            "-o",
            "json",
        ])
        .env("DROVER_URL", &drover.url)
        .env("DROVER_TOKEN", &drover.token)
        .current_dir(manifest_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("drover chaos runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "  drover chaos exited {} after {:.1} s{}",
        out.status,
        t0.elapsed().as_secs_f64(),
        if stderr.trim().is_empty() {
            String::new()
        } else {
            format!("; stderr: {}", stderr.trim())
        }
    );
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(v) => Some(v),
        Err(e) => {
            println!("  could not parse chaos output as JSON ({e}): {stdout}");
            None
        }
    }
}

fn ms(s: f64) -> String {
    format!("{:.0} ms", s * 1000.0)
}

fn opt_ms(v: &Value) -> String {
    v.as_f64().map(ms).unwrap_or_else(|| "-".into())
}

fn main() {
    require_docker();
    println!("== drover MTTR benchmark: kill -> replacement passing its health check ==");
    println!("engine: dockerd {}", engine_version());
    ensure_workload_image();
    println!();

    // ---- drover
    let drover = Drover::start();
    let app = unique("bench-mttr");
    let guard = AppGuard(app.clone());
    let id = drover.deploy(&blueprint(&app));
    assert_eq!(id, app);
    let d = wait_full_health(&drover, &app, Duration::from_secs(120));
    let lb_port = find(&d, "lb")
        .and_then(|e| sensor_port(e, "lb.port"))
        .unwrap();
    println!(
        "drover: application {app}, {MEMBERS} members + load balancer on 127.0.0.1:{lb_port}; \
         {KILLS} kills round-robin, {:.1} s apart, poll GET app every {} ms",
        BETWEEN_KILLS.as_secs_f64(),
        POLL.as_millis()
    );
    println!("series A: `docker kill` (Engine API POST /containers/ID/kill, what the CLI sends)");
    std::thread::sleep(Duration::from_secs(2));
    let kills_a = drover_kills(&drover, &app, KillHow::DockerKill);
    println!();
    println!(
        "series B: `kill -9` of the container's main process (the same kill as the docker side)"
    );
    let kills_b = drover_kills(&drover, &app, KillHow::Sigkill);

    // ---- docker --restart=always
    println!();
    println!("docker run --restart=always: {KILLS} kills");
    let dock = docker_side();

    // ---- chaos
    println!();
    println!("drover chaos {app} --duration 60s --interval 2s --seed 7 (probing through the load balancer)");
    wait_full_health(&drover, &app, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(3));
    let chaos = run_chaos(&drover, &app);

    // ---- cleanup
    let left = drover.destroy(&app, Duration::from_secs(30));
    drop(guard);
    drop(drover);

    // ---- report
    let kp50 = percentile(&dock.mttrs, 50.0);
    let kp99 = percentile(&dock.mttrs, 99.0);
    println!();
    println!("== report ==");
    println!("(percentiles are nearest-rank over {KILLS} kills: p99 of 30 samples is the maximum)");
    let a = summarize("drover, docker kill", &kills_a);
    let b = summarize("drover, kill -9 pid", &kills_b);
    println!(
        "docker --restart=always, kill -9 pid: p50 {}  p90 {}  p99 {}  max {}  mean {}  min {}  (n={}; restart back-off reset before every kill)",
        ms(kp50),
        ms(percentile(&dock.mttrs, 90.0)),
        ms(kp99),
        ms(percentile(&dock.mttrs, 100.0)),
        ms(mean(&dock.mttrs)),
        ms(percentile(&dock.mttrs, 0.0)),
        dock.mttrs.len()
    );
    println!("    sorted ms: {}", fmt_list(&sorted(&dock.mttrs), true));
    println!("    method: {}", dock.method);
    println!(
        "    same container re-killed 1.5 s after each recovery (dockerd back-off doubling): {} ms",
        fmt_list(&dock.escalation, true)
    );
    if let Some(c) = &chaos {
        println!(
            "drover chaos (seed 7, 60 s, 1 kill / 2 s): probe_success_rate {:.4}% ({} of {} probes failed), MTTR p50 {} p99 {} max {}, \
             faults_injected {}, longest outage {}, converged {}",
            c["probe_success_rate"].as_f64().unwrap_or(f64::NAN) * 100.0,
            c["probes_failed"],
            c["probes_total"],
            opt_ms(&c["mttr_p50_seconds"]),
            opt_ms(&c["mttr_p99_seconds"]),
            opt_ms(&c["mttr_max_seconds"]),
            c["faults_injected"],
            opt_ms(&c["longest_outage_seconds"]),
            c["converged"]
        );
    } else {
        println!("drover chaos: no report");
    }
    println!("drover containers left after DELETE: {}", left.len());
    println!(
        "ratio docker/drover with drover killed by `docker kill`: p50 {:.2}x, p99 {:.2}x",
        kp50 / a.0,
        kp99 / a.1
    );
    let p99_best = a.1.min(b.1);
    println!(
        "RATIO docker/drover MTTR (same kill -9 on both sides): p50 {:.2}x, p99 {:.2}x (drover p99 goal < 1 s: {})",
        kp50 / b.0,
        kp99 / b.1,
        if a.1 < 1.0 && b.1 < 1.0 {
            "met".to_string()
        } else if p99_best < 1.0 {
            "met in one series only".to_string()
        } else {
            "NOT met".to_string()
        }
    );
}

/// Prints one drover series; returns (p50, p99) in seconds.
fn summarize(what: &str, kills: &[Kill]) -> (f64, f64) {
    let x: Vec<f64> = kills.iter().filter_map(|k| k.seconds).collect();
    let not_recovered = kills.iter().filter(|k| k.seconds.is_none()).count();
    let replaced = kills
        .iter()
        .filter(|k| k.outcome.starts_with("replaced"))
        .count();
    let in_place = kills
        .iter()
        .filter(|k| k.outcome.starts_with("restarted"))
        .count();
    let unprovoked: usize = kills.iter().map(|k| k.unprovoked).sum();
    let kill_call: Vec<f64> = kills.iter().map(|k| k.kill_call_ms).collect();
    let (p50, p99) = (percentile(&x, 50.0), percentile(&x, 99.0));
    println!(
        "{what}: p50 {}  p90 {}  p99 {}  max {}  mean {}  min {}  (n={}, not recovered {not_recovered}; {in_place} restarted in place, \
         {replaced} replaced; {unprovoked} restarts of other members without a kill)",
        ms(p50),
        ms(percentile(&x, 90.0)),
        ms(p99),
        ms(percentile(&x, 100.0)),
        ms(mean(&x)),
        ms(percentile(&x, 0.0)),
        x.len()
    );
    println!("    sorted ms: {}", fmt_list(&sorted(&x), true));
    println!(
        "    the kill call itself (inside the MTTR): median {:.1} ms, max {:.1} ms",
        median(&kill_call),
        percentile(&kill_call, 100.0)
    );
    (p50, p99)
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}
