//! Autoscaling and live policy tuning against the real engine.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use drover::wire::{Activity, PolicyStatus, PresetList};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

fn autoscaled(app: &str, policy: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 1
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 500ms }}
    policies:
{policy}
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

fn size(d: &Drover, app: &str) -> u64 {
    d.entity_view(app, "web")
        .and_then(|e| e.sensor_u64("group.size"))
        .unwrap_or(0)
}

fn resizes(d: &Drover, app: &str) -> Vec<Activity> {
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    let mut v: Vec<Activity> = decode::<Vec<Activity>>(acts)
        .into_iter()
        .filter(|a| a.name == "autoscaler.resize" && a.outcome == "decided")
        .collect();
    v.reverse();
    v
}

/// Requests through the load balancer at about `per_sec`, until stopped.
fn load(port: u16, per_sec: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        let gap = Duration::from_secs_f64(1.0 / per_sec as f64);
        let mut n = 0;
        let mut next = std::time::Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if http_get(port, "/").is_some_and(|(s, _)| s == 200) {
                n += 1;
            }
            next += gap;
            if let Some(w) = next.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(w);
            }
        }
        n
    })
}

#[test]
fn the_cluster_grows_under_load_and_shrinks_back_without_flapping() {
    let app = unique("scale");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let policy = "      - use: web-autoscaler
        lower: 5
        upper: 20
        min_size: 1
        max_size: 4
        up_stabilization: 2s
        down_stabilization: 5s";
    d.deploy(&autoscaled(&app, policy));
    d.wait_running(&app, DEADLINE);
    let port = d.sensors(&app, "lb")["lb.port"]["value"].as_u64().unwrap() as u16;

    // About 90 requests per second on one member: hot (upper 20).
    let stop = Arc::new(AtomicBool::new(false));
    let client = load(port, 90, stop.clone());
    wait_for(DEADLINE, "the cluster grows under load", || {
        (size(&d, &app) >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(size(&d, &app) <= 4, "never above max_size");
    stop.store(true, Ordering::SeqCst);
    let served = client.join().unwrap();
    assert!(served > 100, "the load generator was served: {served}");

    // No load: cold; back to min_size after the 5 s down window.
    wait_for(DEADLINE, "the cluster shrinks back to min_size", || {
        (size(&d, &app) == 1).then_some(())
    });
    d.wait_running(&app, DEADLINE);
    let r = resizes(&d, &app);
    let sizes: Vec<u64> = r
        .iter()
        .map(|a| {
            a.message
                .as_deref()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    // Up, then down: never up after going down (no flapping).
    let peak = sizes
        .iter()
        .position(|s| *s == *sizes.iter().max().unwrap())
        .unwrap();
    assert!(
        sizes[..=peak].windows(2).all(|w| w[1] > w[0]),
        "grows monotonically: {sizes:?}"
    );
    assert!(
        sizes[peak..].windows(2).all(|w| w[1] < w[0]),
        "then shrinks monotonically: {sizes:?}"
    );
    assert_eq!(*sizes.last().unwrap(), 1);
    // Every decision carries its inputs and reason.
    assert!(
        r.iter()
            .all(|a| a.args["metric"] == "lb.reqs_per_sec.per_member"
                && a.message.as_deref().unwrap().contains("bounds")),
        "{r:#?}"
    );
}

#[test]
fn editing_a_preset_reconfigures_live_and_a_bad_edit_keeps_the_old_config() {
    let app = unique("reload");
    let _g = AppGuard(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let preset = dir.path().join("t-auto.yaml");
    let write = |upper: &str| {
        std::fs::write(
            &preset,
            format!("kind: autoscaler\nconfig:\n  metric: lb.reqs_per_sec.per_member\n  entity: lb\n  lower: 1\n  upper: {upper}\n  max_size: 3\n"),
        )
        .unwrap()
    };
    write("20");
    let d = Drover::start_with(&["--policies", dir.path().to_str().unwrap()]);
    d.deploy(&autoscaled(&app, "      - use: t-auto"));
    d.wait_running(&app, DEADLINE);
    let path = format!("/v1/applications/{app}/entities/web/policies/t-auto");
    let (status, p) = d.get(&path);
    assert_eq!(status, 200, "{p}");
    let p: PolicyStatus = decode(p);
    assert_eq!(p.config["upper"], 20.0);
    assert_eq!(p.kind, "autoscaler");

    // A valid edit is in force within seconds.
    std::thread::sleep(Duration::from_millis(1100)); // a new mtime second
    write("33");
    wait_for(
        Duration::from_secs(10),
        "the edited preset in force",
        || (decode::<PolicyStatus>(d.get(&path).1).config["upper"] == 33.0).then_some(()),
    );

    // An invalid edit is refused, with its position; the old config stays.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &preset,
        "kind: autoscaler\nconfig:\n  metric: x\n  lower: 1\n  uper: 5\n",
    )
    .unwrap();
    let refused = wait_for(
        Duration::from_secs(10),
        "preset.invalid in the activity record",
        || {
            let (_, acts) = d.get("/v1/activities?kind=event&limit=100");
            decode::<Vec<Activity>>(acts)
                .into_iter()
                .find(|a| a.name == "preset.invalid")
        },
    );
    assert_eq!(refused.args["line"], 5, "{refused:?}");
    assert!(
        refused.message.as_deref().unwrap().contains("uper"),
        "{refused:?}"
    );
    assert_eq!(
        decode::<PolicyStatus>(d.get(&path).1).config["upper"],
        33.0,
        "the old config stays in force"
    );
    let (_, presets) = d.get("/v1/presets");
    let presets: PresetList = decode(presets);
    assert!(presets.errors.contains_key("t-auto"), "{presets:?}");
    assert!(d
        .get_text("/metrics")
        .contains("drover_policy_preset_errors 1"));
}

#[test]
fn a_policy_is_read_changed_stopped_and_started_over_rest_and_the_cli() {
    let app = unique("polrest");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&autoscaled(
        &app,
        "      - use: resilient\n      - use: web-autoscaler",
    ));
    d.wait_running(&app, DEADLINE);
    let base = format!("/v1/applications/{app}/entities/web/policies");
    let (status, list) = d.get(&base);
    assert_eq!(status, 200);
    let list: Vec<PolicyStatus> = decode(list);
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"resilient") && names.contains(&"web-autoscaler"),
        "{list:?}"
    );

    // PUT a bad config: 400 with a position, nothing changes.
    let agent = d.agent();
    let put = |body: &str| {
        let mut r = agent
            .put(&format!("{}{base}/web-autoscaler", d.url))
            .header("content-type", "application/yaml")
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap(),
        )
    };
    let (status, body) =
        put("metric: lb.reqs_per_sec.per_member\nentity: lb\nlower: 1\nupper: 9\nmax_sise: 3\n");
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_body(body.clone()).line, Some(5), "{body}");
    let (status, body) =
        put("metric: lb.reqs_per_sec.per_member\nentity: lb\nlower: 9\nupper: 1\n");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_body(body.clone()).path.as_deref(),
        Some("upper"),
        "{body}"
    );
    let (status, body) =
        put("metric: lb.reqs_per_sec.per_member\nentity: lb\nlower: 1\nupper: 9\nmax_size: 3\n");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        decode::<PolicyStatus>(d.get(&format!("{base}/web-autoscaler")).1).config["max_size"],
        3
    );

    // The CLI: stop, get, set k=v over the current config, start.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(drover_bin())
            .args(args)
            .env("DROVER_URL", &d.url)
            .env("DROVER_TOKEN", &d.token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<PolicyStatus>(&out.stdout).unwrap()
    };
    assert_eq!(
        cli(&[
            "policy",
            "stop",
            &app,
            "web",
            "web-autoscaler",
            "-o",
            "json"
        ])
        .running,
        false
    );
    assert_eq!(
        cli(&[
            "policy",
            "set",
            &app,
            "web",
            "web-autoscaler",
            "upper=12",
            "-o",
            "json"
        ])
        .config["upper"],
        12.0
    );
    assert_eq!(
        cli(&["policy", "get", &app, "web", "web-autoscaler", "-o", "json"]).config["max_size"],
        3,
        "k=v keeps the other keys"
    );
    assert_eq!(
        cli(&[
            "policy",
            "start",
            &app,
            "web",
            "web-autoscaler",
            "-o",
            "json"
        ])
        .running,
        true
    );
    // The cluster's member restarter answers through the cluster.
    assert_eq!(
        cli(&["policy", "get", &app, "web", "resilient", "-o", "json"]).kind,
        "restarter"
    );
}

#[test]
fn stats_feeds_and_enrichers_publish_derived_sensors() {
    let app = unique("enrich");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let bp = format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }} }}
    enrichers:
      - {{ type: aggregate, sensor: cpu.usage, function: average }}
      - {{ type: aggregate, sensor: memory.usage_bytes, function: sum, publish: memory.total_bytes }}
      - {{ type: rolling-mean, sensor: cpu.usage.average, window: 5s }}
      - {{ type: rate, sensor: lb.connections_total, entity: lb }}
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    );
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    let port = d.sensors(&app, "lb")["lb.port"]["value"].as_u64().unwrap() as u16;
    // Burn CPU through the load balancer for a while.
    let stop = Arc::new(AtomicBool::new(false));
    let burner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let _ = http_get(port, "/work?cpu_ms=100");
            }
        })
    };
    let s = wait_for(
        Duration::from_secs(60),
        "cpu.usage.average above 0.05 cores",
        || {
            let s = d.sensors(&app, "web");
            (s["cpu.usage.average"]["value"].as_f64().unwrap_or(0.0) > 0.05).then_some(s)
        },
    );
    assert!(
        s["memory.total_bytes"]["value"].as_f64().unwrap_or(0.0) > 100_000.0,
        "memory summed over members: {s}"
    );
    let t = std::time::Instant::now();
    loop {
        let s = d.sensors(&app, "web");
        if s["cpu.usage.average.mean"]["value"].as_f64().is_some()
            && s["lb.connections_total.per_sec"]["value"]
                .as_f64()
                .is_some()
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "rolling mean and rate not published: web {s}; lb {}",
            d.sensors(&app, "lb")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    burner.join().unwrap();
    wait_for(Duration::from_secs(10), "members publish cpu.usage", || {
        d.sensors(&app, "web-1")["cpu.usage"]["value"]
            .as_f64()
            .map(|_| ())
    });
    // Resize: the aggregate follows the members that exist.
    let (status, _) = d.invoke(&app, "web", "resize", serde_json::json!({"size": 1}));
    assert_eq!(status, 200);
}
