//! Scale benchmark (issue 18): one `drover serve` managing up to 100,000
//! containers on 1,000 SIMULATED engines (`benches/sim/`), measured.
//!
//! `cargo bench --bench scale`; smaller runs with `DROVER_SCALE_HOSTS`
//! (default 1,000), `DROVER_SCALE_CONTAINERS` (default 100,000) and
//! `DROVER_SCALE_FAILURE_SECS` (how long 1%/min failures are injected,
//! default 60); `DROVER_SCALE_REBIND=0` skips the `kill -9` rebind and the
//! final destroy (for runs that measure only the deploy, steady state and
//! API latency). For work on one phase: `DROVER_SCALE_SKIP` (a comma list
//! of `steady`, `latency`, `failures`: phases not run), `DROVER_SCALE_REBINDS`
//! (how many times drover is killed and rebinds, default 1), and
//! `DROVER_SCALE_PERF=FILE` (each rebind recorded by `perf record` into
//! `FILE.<n>`, with `DROVER_SCALE_PERF_ARGS`, default `-g`;
//! `DROVER_SCALE_PERF_DEPLOY=FILE` records the deploy the same way);
//! `DROVER_SCALE_PROGRESS_SECS` (how often progress is printed, default 10).
//! Every application is 10 clusters with the restarter and
//! replacer presets and an `aggregate` enricher of the members'
//! `cpu.usage`; drover samples every container's stats every second
//! (`stats_every: 1s`, one-shot calls per engine) and the simulator's CPU
//! value changes at each, so every sample is a sensor event through the
//! enricher to the cluster.
//!
//! The simulated engines run in this process on one thread and outlive
//! drover's `kill -9` for the rebind measurement. Numbers are for this
//! machine and this run; the simulator's own cost is shown beside them.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use common::*;
use sim::{SimConfig, SimEngine};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// (RSS bytes, CPU seconds user+system) of a process.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (rss_kib * 1024, ticks / 100.0)
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(line_prefix))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

fn running_of(d: &Drover, apps: &[String]) -> usize {
    let m = d.get_text("/metrics");
    apps.iter()
        .map(|a| {
            metric(
                &m,
                &format!("drover_application_entities{{application=\"{a}\",kind=\"container\",state=\"running\"}} "),
            ) as usize
        })
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn latencies(d: &Drover, path: &str, n: usize) -> (f64, f64, usize) {
    let agent = d.agent();
    let mut ms = Vec::new();
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        let mut r = agent
            .get(&format!("{}{path}", d.url))
            .call()
            .expect("drover answers");
        let body = r
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .expect("body");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&ms, 0.5), percentile(&ms, 0.99), bytes)
}

/// How often `converge` prints its progress (`DROVER_SCALE_PROGRESS_SECS`,
/// default 10).
fn progress_secs() -> f64 {
    std::env::var("DROVER_SCALE_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0)
}

/// Waits until the simulator runs exactly `total` containers of ours and
/// drover counts them all running; prints progress.
fn converge(d: &Drover, sim: &SimEngine, apps: &[String], total: usize, what: &str) -> f64 {
    let t = Instant::now();
    let mut last = Instant::now();
    // Every 500 ms, not `wait_for`'s 50: each look scrapes `/metrics`
    // (about 70 ms of drover's CPU at 100,000 containers) and locks every
    // simulated engine to count, and looking back to back took half a
    // core of the machine from what it measured.
    wait_for_every(
        Duration::from_secs(3600),
        Duration::from_millis(500),
        what,
        || {
            let (running, all) = sim.count(Some(("io.drover.managed", "true")));
            let drover = running_of(d, apps);
            if last.elapsed() > Duration::from_secs_f64(progress_secs()) {
                last = Instant::now();
                println!(
                "  {what}: {:.1} s, simulated running {running} of {all}, drover counts {drover}",
                t.elapsed().as_secs_f64()
            );
            }
            (running == total && all == total && drover == total).then_some(())
        },
    );
    t.elapsed().as_secs_f64()
}

/// Records drover (`pid`) with `perf record` into `file`, until dropped.
struct Perf(std::process::Child);

impl Perf {
    fn start(pid: u32, file: &str) -> Perf {
        let args = std::env::var("DROVER_SCALE_PERF_ARGS").unwrap_or_else(|_| "-g".into());
        let child = std::process::Command::new("perf")
            .arg("record")
            .args(args.split_whitespace())
            .args(["-p", &pid.to_string(), "-o", file])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("perf runs");
        Perf(child)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        // SIGINT: perf writes its file and exits.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Prints the engine calls of a phase: in all, per container, and the
/// eight most made.
fn print_calls(
    phase: &str,
    sim: &SimEngine,
    before: &std::collections::HashMap<String, u64>,
    total: usize,
) {
    let calls = calls_since(sim, before);
    let all: u64 = calls.iter().map(|(_, n)| n).sum();
    let top: Vec<String> = calls
        .iter()
        .take(8)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!(
        "{phase}: {all} engine calls until converged ({:.1} per container): {}",
        all as f64 / total as f64,
        top.join(", ")
    );
}

/// The simulator's calls since `before`, by route, most first.
fn calls_since(
    sim: &SimEngine,
    before: &std::collections::HashMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = sim
        .calls_by_route()
        .into_iter()
        .map(|(k, n)| {
            let d = n - before.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.1));
    v
}

fn blueprint(app: &str, clusters: usize, size: usize) -> String {
    let mut y = format!("name: {app}\nlocation: sim\nservices:\n");
    for c in 0..clusters {
        y.push_str(&format!(
            "  - id: c{c}\n    type: cluster\n    initial_size: {size}\n    member:\n      image: drover-sim/idle:latest\n    enrichers:\n      - {{ type: aggregate, sensor: cpu.usage, function: average }}\n    policies:\n      - use: resilient\n      - use: replace-failed\n"
        ));
    }
    y
}

fn main() {
    let hosts = env_usize("DROVER_SCALE_HOSTS", 1_000);
    let wanted = env_usize("DROVER_SCALE_CONTAINERS", 100_000);
    let failure_secs = env_usize("DROVER_SCALE_FAILURE_SECS", 60);
    let rebind = env_usize("DROVER_SCALE_REBIND", 1) != 0;
    let skip = std::env::var("DROVER_SCALE_SKIP").unwrap_or_default();
    let skip: Vec<&str> = skip.split(',').map(str::trim).collect();
    let rebinds = env_usize("DROVER_SCALE_REBINDS", 1);
    let perf = std::env::var("DROVER_SCALE_PERF").ok();
    let per_app = wanted.min(10_000);
    let apps_n = wanted.div_ceil(per_app);
    let clusters = 10;
    let size = per_app / clusters;
    let total = apps_n * clusters * size;
    println!(
        "scale: {total} containers ({apps_n} applications × {clusters} clusters × {size}) on {hosts} simulated engines"
    );
    let sim = SimEngine::start(SimConfig {
        hosts,
        threads: 1,
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let per_host = (total / hosts + 1) as u32 * 2;
    let args = sim::drover_args(&sim, dir.path(), per_host);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Drover::start_with(&args);
    let pid = d.child.id();
    println!("drover pid {pid}");
    std::thread::sleep(Duration::from_secs(3));
    let (rss0, _) = usage(pid);

    // Deploy.
    let apps: Vec<String> = (0..apps_n).map(|_| unique("scale")).collect();
    let (_, cpu0) = usage(pid);
    let recording = std::env::var("DROVER_SCALE_PERF_DEPLOY")
        .ok()
        .map(|f| Perf::start(pid, &f));
    let before = sim.calls_by_route();
    let t = Instant::now();
    for app in &apps {
        d.deploy(&blueprint(app, clusters, size));
    }
    let deploy_s = converge(&d, &sim, &apps, total, "deploy");
    drop(recording);
    print_calls("deploy", &sim, &before, total);
    let (_, cpu1) = usage(pid);
    let m = d.get_text("/metrics");
    let labelled = |name: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let decisions = labelled("drover_placement_decision_seconds_count");
    let deciding = labelled("drover_placement_decision_seconds_sum");
    println!(
        "deploy: {total} containers in {deploy_s:.1} s wall ({:.0} containers/s), drover CPU {:.1} s ({:.0} containers per CPU-second); POSTs took {:.1} s",
        total as f64 / deploy_s,
        cpu1 - cpu0,
        total as f64 / (cpu1 - cpu0).max(0.001),
        t.elapsed().as_secs_f64() - deploy_s
    );
    println!(
        "placement: {decisions:.0} decisions, {:.0} decisions/s of deciding time (pool as it was: {hosts} hosts filling up)",
        decisions / deciding.max(1e-9)
    );

    // Steady state: memory, CPU and sensor events.
    if !skip.contains(&"steady") {
        std::thread::sleep(Duration::from_secs(5));
        let (rss1, c0) = usage(pid);
        let frames0 = sim.stats_frames();
        let window = Duration::from_secs(10);
        std::thread::sleep(window);
        let (_, c1) = usage(pid);
        let frames = sim.stats_frames() - frames0;
        let cores = (c1 - c0) / window.as_secs_f64();
        println!(
        "memory: RSS {:.0} MiB before deploy, {:.0} MiB with {total} containers: {:.1} KiB per container entity",
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0 / total as f64
    );
        println!(
        "sensors: {:.0} stats frames/s delivered (each a cpu.usage change through the enricher), drover using {cores:.2} cores: {:.0} sensor events per core-second",
        frames as f64 / window.as_secs_f64(),
        frames as f64 / window.as_secs_f64() / cores.max(1e-3)
    );
        println!(
            "CPU per 10k container entities (steady, stats feeds on): {:.3} cores",
            cores * 10_000.0 / total as f64
        );
    }

    // API latency.
    if !skip.contains(&"latency") {
        let (p50, p99, bytes) = latencies(&d, &format!("/v1/applications/{}", apps[0]), 50);
        println!(
        "GET /v1/applications/{{app}} ({} containers, {} KiB): p50 {p50:.1} ms, p99 {p99:.1} ms",
        per_app,
        bytes / 1024
    );
        let (p50, p99, bytes) =
            latencies(&d, &format!("/v1/applications/{}?limit=500", apps[0]), 50);
        println!(
        "GET /v1/applications/{{app}}?limit=500 (one page of the tree, {} KiB): p50 {p50:.1} ms, p99 {p99:.1} ms",
        bytes / 1024
    );
        let (p50, p99, bytes) = latencies(&d, "/metrics", 20);
        println!(
            "GET /metrics ({} KiB): p50 {p50:.1} ms, p99 {p99:.1} ms",
            bytes / 1024
        );
    }

    // Failures: 1% of the containers a minute, in six doses a minute.
    let mut killed = 0;
    let dose = (total / 100 / 6).max(1);
    let t = Instant::now();
    let mut last_dose = Instant::now();
    let failure_secs = if skip.contains(&"failures") {
        0
    } else {
        failure_secs
    };
    while t.elapsed() < Duration::from_secs(failure_secs as u64) {
        killed += sim.kill_n(dose);
        last_dose = Instant::now();
        std::thread::sleep(Duration::from_secs(10));
    }
    converge(&d, &sim, &apps, total, "recovery");
    // Checked every 10 s during the injection, so an upper bound.
    let recovered_s = last_dose.elapsed().as_secs_f64();
    println!(
        "failures: {killed} containers killed over {failure_secs} s (1%/min); all {total} running again at most {recovered_s:.1} s after the last dose, none lost or doubled"
    );

    if !rebind {
        // The simulated engines go with this process: nothing to clean up.
        return;
    }

    // Rebind after kill -9; the simulated engines keep running.
    for n in 1..=rebinds {
        d.kill9();
        let before = sim.calls_by_route();
        let t = Instant::now();
        d = Drover::start_with(&args);
        let started = t.elapsed().as_secs_f64();
        let recording = perf
            .as_ref()
            .map(|f| Perf::start(d.child.id(), &format!("{f}.{n}")));
        let rebind_s = converge(&d, &sim, &apps, total, "rebind") + started;
        drop(recording);
        println!(
            "rebind: kill -9, restart → serving in {started:.1} s, every one of {total} containers rebound in {rebind_s:.1} s; still {} containers on the engines",
            sim.count(Some(("io.drover.managed", "true"))).1
        );
        print_calls("rebind", &sim, &before, total);
    }
    println!("simulator: {} API calls answered in the run", sim.calls());
    destroy_all(&d, &sim, &apps);
}

/// Destroys every application, one `DELETE` at a time, and says how long
/// each took (it answers once the application's containers are removed).
fn destroy_all(d: &Drover, sim: &SimEngine, apps: &[String]) {
    let t = Instant::now();
    let mut each = Vec::new();
    for app in apps {
        let a = Instant::now();
        let (s, body) = d.delete(&format!("/v1/applications/{app}"));
        assert_eq!(s, 204, "destroy {app}: {body}");
        each.push(format!("{:.1}", a.elapsed().as_secs_f64()));
    }
    wait_for(Duration::from_secs(600), "every container removed", || {
        (sim.count(Some(("io.drover.managed", "true"))).1 == 0).then_some(())
    });
    println!(
        "destroy: {} applications in {:.1} s (each DELETE, s: {})",
        apps.len(),
        t.elapsed().as_secs_f64(),
        each.join(", ")
    );
}
