//! Observability against real tools: Debian's `prometheus` scrapes a running
//! drover and every PromQL query of every Grafana panel must answer with
//! data; `promtool check metrics` passes; destroyed applications leave no
//! series; the activity record holds the restarter's and the replacer's
//! decisions with their reasons; logs are JSON lines with ids.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::prometheus::*;
use common::*;
use drover::protocol::Lifecycle;
use drover::wire::{Activity, AppDetail};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);

/// A cluster that restarts in place (`web`, behind the load balancer) and
/// one that replaces at once (`batch`): together they make every kind of
/// recovery, policy action and traffic the dashboards show.
fn observed_app(app: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: {{ cpus: 0.1, memory: 32Mi }}
      health: {{ http: {{ port: 8080, path: /health }}, interval: 200ms, timeout: 500ms }}
    policies:
      - use: resilient
      - use: replace-failed
  - id: batch
    type: cluster
    initial_size: 1
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: {{ cpus: 0.1, memory: 32Mi }}
      health: {{ http: {{ port: 8080, path: /health }}, interval: 200ms, timeout: 500ms }}
    policies:
      - type: replacer
        trigger: entity.failed
  - id: lb
    type: load-balancer
    target: web
    port: 0
"#
    )
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo_path("grafana/dashboards");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("grafana/dashboards exists") {
        let path = e.unwrap().path();
        if path.extension().and_then(|x| x.to_str()) == Some("json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            out.push((path.display().to_string(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "an overview and an application dashboard");
    out
}

fn activities(d: &Drover, query: &str) -> Vec<Activity> {
    let (status, body) = d.get(&format!("/v1/activities?{query}"));
    assert_eq!(status, 200, "{body}");
    decode(body)
}

/// The value of one sample line of a /metrics text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn container_of(app: &str, entity: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=io.drover.app={app}"),
            "--filter",
            &format!("label=io.drover.entity={entity}"),
        ])
        .output()
        .expect("docker ps");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!id.is_empty(), "{app}/{entity} has a running container");
    id
}

#[test]
fn every_dashboard_query_answers_from_a_real_prometheus() {
    require_tool("prometheus");
    require_tool("promtool");
    let app = unique("obs");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let target = d.url.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&target);
    wait_for(
        Duration::from_secs(30),
        "prometheus scraping drover",
        || (values(&prom.query(r#"up{job="drover"}"#).1) == vec![1.0]).then_some(()),
    );

    // An application with traffic, a restart and a replacement while
    // Prometheus watches, so that rates and recovery times have data.
    d.deploy(&observed_app(&app));
    d.wait_running(&app, DEADLINE);
    let port = wait_for(Duration::from_secs(30), "lb with 2 backends", || {
        let s = d.sensors(&app, "lb");
        (s["lb.backends"]["value"].as_array().map(|a| a.len()) == Some(2))
            .then(|| s["lb.port"]["value"].as_u64())
            .flatten()
    }) as u16;
    // `lb.backends` names what the agent took; one answered request first
    // keeps a slow first connection out of the counted loop.
    wait_for(Duration::from_secs(30), "the lb agent serving", || {
        (http_get(port, "/").map(|r| r.0) == Some(200)).then_some(())
    });
    for _ in 0..40 {
        assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));
    }
    let chaos = Command::new(drover_bin())
        .args([
            "chaos",
            &app,
            "--duration",
            "2s",
            "--interval",
            "2s",
            "--target",
            "web",
            "--faults",
            "kill",
            "--seed",
            "7",
            "--settle",
            "60s",
            "-o",
            "json",
        ])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .expect("drover chaos runs");
    let report: Value = serde_json::from_slice(&chaos.stdout).unwrap_or(Value::Null);
    assert!(
        chaos.status.success()
            && report["converged"] == true
            && report["faults_injected"].as_u64() == Some(1),
        "chaos converged: {report:#} {}",
        String::from_utf8_lossy(&chaos.stderr)
    );
    docker_kill(&container_of(&app, "batch-1"));
    let replaced = wait_for(DEADLINE, "the replacer's replacement", || {
        activities(&d, &format!("application={app}&name=replacer.replace"))
            .into_iter()
            .find(|a| a.outcome == "ok")
    });
    d.wait_running(&app, DEADLINE);
    for _ in 0..20 {
        assert_eq!(http_get(port, "/").map(|r| r.0), Some(200));
    }
    // Both recoveries are measured in drover, then seen by Prometheus, then
    // scraped twice more so that every rate window holds the change.
    wait_for(Duration::from_secs(30), "both recoveries measured", || {
        let text = d.get_text("/metrics");
        let n = |e: &str| {
            sample(
                &text,
                "drover_recovery_seconds_count",
                &[("application", app.as_str()), ("entity", e)],
            )
            .unwrap_or(0.0)
        };
        (n("web") >= 1.0 && n("batch") >= 1.0).then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "prometheus has the recoveries",
        || {
            let q = format!(r#"drover_recovery_seconds_count{{application="{app}"}} >= 1"#);
            (values(&prom.query(&q).1).len() == 2).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(2_500));

    // Every query of every panel: valid, and a number to show.
    let mut checked = 0;
    let mut empty = Vec::new();
    // Host pools need engines of their own: tests/hostpool.rs runs that
    // dashboard's queries against a drover with a pool.
    for (file, dash) in dashboards()
        .into_iter()
        .filter(|(f, _)| !f.ends_with(LOCATIONS_DASHBOARD))
    {
        assert!(dash["uid"]
            .as_str()
            .is_some_and(|u| u.starts_with("drover-")));
        let vars = dash["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for v in vars.iter().filter(|v| v["type"] == "query") {
            let def = v["definition"]
                .as_str()
                .expect("query variables have a definition");
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| {
                    panic!("{file}: variable query `{def}` is label_values(metric, label)")
                });
            let (metric, label) = inner.split_once(',').unwrap();
            let got = prom.label_values(label.trim(), metric.trim());
            assert!(
                got.contains(&app),
                "{file}: variable `{def}` offers {got:?}, not {app}"
            );
        }
        let queries = panel_queries(&dash);
        assert!(queries.len() >= 10, "{file} has its panels");
        for (title, expr) in queries {
            let q = substitute(&expr, &app);
            // A rate needs two samples after a change: give slow scrapes a
            // little time, then report every query without data at once.
            let t0 = Instant::now();
            loop {
                let (status, body) = prom.query(&q);
                assert!(
                    status == 200 && body["status"] == "success",
                    "{file}: panel `{title}`: `{q}` is not valid PromQL: {status} {body}"
                );
                if values(&body).iter().any(|v| !v.is_nan()) {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    empty.push(format!(
                        "{file}: panel `{title}`: `{q}` returns no number: {body}"
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            checked += 1;
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
    assert!(checked >= 40, "checked {checked} queries");

    // promtool's own check and lint of the exposition.
    let text = d.get_text("/metrics");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    // The activity record: the replacer's replacement and the restarter's
    // restart, each with its reason; newest first; each notice once.
    assert_eq!(replaced.entity, "batch");
    assert_eq!(replaced.args["member"], "batch-1");
    assert!(
        replaced.args["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{replaced:?}"
    );
    assert!(
        replaced
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("replaced batch-1 with batch-")),
        "{replaced:?}"
    );
    let all = activities(&d, &format!("application={app}&limit=1000"));
    let ids: Vec<u64> = all.iter().map(|a| a.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let restart = all
        .iter()
        .find(|a| a.name == "restarter.restart" && a.outcome == "scheduled")
        .unwrap_or_else(|| panic!("a restart in {all:#?}"));
    assert!(restart.entity.starts_with("web-"));
    assert!(
        restart.args["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
            && restart
                .message
                .as_deref()
                .is_some_and(|m| m.contains("restart in")),
        "{restart:?}"
    );
    let failed_batch = all
        .iter()
        .filter(|a| a.name == "entity.failed" && a.entity == "batch-1")
        .count();
    assert_eq!(failed_batch, 1, "one failure, recorded once: {all:#?}");

    // `drover status` shows each entity's latest activity.
    let status = Command::new(drover_bin())
        .args(["status", &app])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("LAST ACTIVITY"), "{status}");
    let batch_row = status
        .lines()
        .find(|l| l.trim_start().starts_with("batch "))
        .unwrap_or_else(|| panic!("a batch row: {status}"));
    assert!(batch_row.contains("replacer.replace ok"), "{status}");

    // Every per-application metric has a series for the application, and
    // none is left once it is destroyed.
    let per_app: Vec<&str> = drover::metrics::CATALOGUE
        .iter()
        .filter(|(_, _, labels, _)| labels.contains("application"))
        .map(|(n, ..)| *n)
        .collect();
    assert!(per_app.len() >= 10, "{per_app:?}");
    let has = |text: &str, name: &str| {
        text.lines().any(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name}_")))
                && l.contains(&format!("application=\"{app}\""))
        })
    };
    for name in &per_app {
        assert!(has(&text, name), "{name} has a series for {app}:\n{text}");
    }
    let (code, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(code, 204);
    let after = d.get_text("/metrics");
    for name in &per_app {
        assert!(!has(&after, name), "{name} still has a series of {app}");
    }
    assert!(
        !after.contains(&app),
        "no series of {app} is left:\n{after}"
    );
}

fn docker_kill(id: &str) {
    let out = Command::new("docker").args(["kill", id]).output().unwrap();
    assert!(out.status.success(), "docker kill {id}");
}

#[test]
fn grafana_provisioning_and_compose_files_are_valid() {
    require_tool("promtool");
    // Checked beside a token file, as docker-compose.yml mounts it (the
    // real one is the operator's, never in the repository).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("grafana/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("drover.token"), "drover_placeholder\n").unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config grafana/prometheus.yml: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = Command::new("docker-compose")
        .args(["-f"])
        .arg(repo_path("grafana/docker-compose.yml"))
        .args(["config", "-q"])
        .output()
        .expect("docker-compose is installed (.ci/run installs it)");
    assert!(
        compose.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&compose.stderr)
    );
    for f in [
        "grafana/provisioning/datasources/drover.yml",
        "grafana/provisioning/dashboards/drover.yml",
    ] {
        let v: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(repo_path(f)).unwrap())
                .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(v["apiVersion"].as_u64(), Some(1), "{f}");
    }
    // Dashboards: unique panel ids, every panel on the datasource variable,
    // the drill-down has its `application` variable.
    for (file, dash) in dashboards() {
        let mut ids = std::collections::BTreeSet::new();
        fn walk(p: &Value, f: &mut dyn FnMut(&Value)) {
            for x in p.as_array().into_iter().flatten() {
                f(x);
                walk(&x["panels"], f);
            }
        }
        walk(&dash["panels"], &mut |p| {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: duplicate id"
            );
            if p["targets"].is_array() {
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "{file}: {}",
                    p["title"]
                );
            }
        });
        let names: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(names.contains(&"datasource"), "{file}");
        if file.ends_with("drover-application.json") {
            assert!(names.contains(&"application"), "{file}");
        }
    }
}

/// `drover serve` with stderr captured line by line.
struct LoggingDrover {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
    token: String,
    /// Its own store: the default one would let a later drover rebind this
    /// test's applications.
    _store: tempfile::TempDir,
}

impl LoggingDrover {
    fn start(rust_log: &str) -> LoggingDrover {
        require_docker();
        let store = tempfile::tempdir().expect("temp dir for the store");
        let mut child = Command::new(drover_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--store")
            .arg(store.path().join("drover.redb"))
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("drover starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "drover exited early"
            );
            if let Some(u) = line.trim().strip_prefix("drover listening on ") {
                break u.to_string();
            }
        };
        std::thread::spawn(move || {
            let mut s = String::new();
            while reader.read_line(&mut s).map(|n| n > 0).unwrap_or(false) {
                s.clear();
            }
        });
        LoggingDrover {
            child,
            url,
            lines,
            token: admin_token_of(&store.path().join("drover.redb")),
            _store: store,
        }
    }

    fn agent(&self) -> ureq::Agent {
        authed_agent(&self.token, Duration::from_secs(30))
    }
}

impl Drop for LoggingDrover {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn single_container(app: &str) -> String {
    format!(
        "name: {app}\nservices:\n  - id: box\n    type: container\n    image: drover/workload:latest\n    ports: [8080]\n"
    )
}

#[test]
fn json_logs_carry_application_and_entity_and_rust_log_filters() {
    let app = unique("logs");
    let _g = AppGuard(app.clone());
    // drover at info, everything else (actix) at warn.
    let mut d = LoggingDrover::start("warn,drover=info");
    let a = d.agent();
    let r = a
        .post(&format!("{}/v1/applications", d.url))
        .header("content-type", "application/yaml")
        .send(single_container(&app))
        .unwrap();
    assert_eq!(r.status(), 201);
    let invoke = |effector: &str| {
        a.post(&format!(
            "{}/v1/applications/{app}/entities/box/effectors/{effector}",
            d.url
        ))
        .header("content-type", "application/json")
        .send("{}")
        .unwrap()
        .status()
        .as_u16()
    };
    wait_for(DEADLINE, "box running", || {
        let mut r = a
            .get(&format!("{}/v1/applications/{app}", d.url))
            .call()
            .ok()?;
        let v: AppDetail = serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
        (v.summary.state == Lifecycle::Running).then_some(())
    });
    assert_eq!(invoke("restart"), 200);
    let found = wait_for(Duration::from_secs(10), "an `effector done` line", || {
        d.lines.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["fields"]["message"] == "effector done"
                && v["fields"]["app"] == app.as_str()
                && v["fields"]["entity"] == "box"
                && v["fields"]["effector"] == "restart")
                .then_some(v)
        })
    });
    assert_eq!(found["level"], "INFO", "{found}");
    let _ = Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status();
    let _ = d.child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let lines = d.lines.lock().unwrap().clone();
    assert!(lines.len() >= 3, "{lines:?}");
    for l in &lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        // RUST_LOG: info only for drover's own targets.
        if v["level"] == "INFO" {
            assert!(
                v["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("drover")),
                "RUST_LOG=warn,drover=info lets through {l}"
            );
        }
    }
}

#[test]
fn the_activity_record_is_bounded_filtered_and_newest_first() {
    let app = unique("acts");
    let _g = AppGuard(app.clone());
    // Its stderr is captured: the 1,010 refused calls below are warnings.
    let d = LoggingDrover::start("warn");
    let a = d.agent();
    let get = |path: &str| -> (u16, Value) {
        let mut r = a.get(&format!("{}{path}", d.url)).call().unwrap();
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    };
    let list = |query: &str| -> Vec<Activity> {
        let (status, body) = get(&format!("/v1/activities?{query}"));
        assert_eq!(status, 200, "{body}");
        decode(body)
    };
    let r = a
        .post(&format!("{}/v1/applications", d.url))
        .header("content-type", "application/yaml")
        .send(single_container(&app))
        .unwrap();
    assert_eq!(r.status(), 201);
    wait_for(DEADLINE, "box running", || {
        let detail = serde_json::from_value::<AppDetail>(get(&format!("/v1/applications/{app}")).1);
        detail
            .is_ok_and(|v| v.summary.state == Lifecycle::Running)
            .then_some(())
    });
    // 1,010 quick records: an unknown effector is refused and recorded.
    for _ in 0..1_010 {
        let r = a
            .post(&format!(
                "{}/v1/applications/{app}/entities/box/effectors/nothing",
                d.url
            ))
            .header("content-type", "application/json")
            .send("{}")
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    let capped = list("limit=5000");
    assert_eq!(capped.len(), 1_000, "limit is capped at 1,000");
    assert_eq!(list("").len(), 100, "default limit 100");
    let ids: Vec<u64> = capped.iter().map(|a| a.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    let start = list(&format!("application={app}&kind=effector&name=start"));
    assert!(
        !start.is_empty()
            && start
                .iter()
                .all(|a| a.name == "start" && a.application == app),
        "{start:#?}"
    );
    let by_entity = list(&format!("application={app}&entity=box&limit=3"));
    assert_eq!(by_entity.len(), 3);
    assert!(by_entity
        .iter()
        .all(|a| a.entity == "box" && a.name == "nothing" && a.outcome == "error"));
    let (status, body) = get("/v1/activities?app=typo");
    assert_eq!(status, 400, "unknown filters are refused: {body}");
    // `drover status`: the latest activity of the container.
    let (_, detail) = get(&format!("/v1/applications/{app}"));
    let detail: AppDetail = decode(detail);
    assert_eq!(detail.latest_activities["box"].name, "nothing");
    let (status, _) = {
        let r = a
            .delete(&format!("{}/v1/applications/{app}", d.url))
            .call()
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 204);
}

/// Measurements for the closing notes (run by hand):
/// `cargo test --release --test observability -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_metrics_with_100_containers() {
    let app = unique("m100");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 100\n    member:\n      image: drover/workload:latest\n      ports: [8080]\n      resources: {{ memory: 16Mi }}\n      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}\n"
    ));
    let t0 = Instant::now();
    d.wait_running(&app, Duration::from_secs(600));
    println!(
        "deployed 100 members in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let time = |path: &str, n: usize| -> (Vec<f64>, usize) {
        let mut t = Vec::with_capacity(n);
        let mut size = 0;
        for _ in 0..n {
            let t0 = Instant::now();
            size = d.get_text(path).len();
            t.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (t, size)
    };
    let pct = |t: &[f64], p: f64| t[((t.len() - 1) as f64 * p) as usize];
    let _ = time("/metrics", 20);
    let (m, size) = time("/metrics", 500);
    let (h, _) = time("/healthz", 500);
    let text = d.get_text("/metrics");
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    println!(
        "/metrics at 100 containers: {size} bytes, {series} samples; scrape p50 {:.2} ms, p99 {:.2} ms (/healthz p50 {:.2} ms, p99 {:.2} ms)",
        pct(&m, 0.5),
        pct(&m, 0.99),
        pct(&h, 0.5),
        pct(&h, 0.99)
    );
    // drover's CPU with the sensor path busy (100 health checks a second):
    // 20 s without scrapes, then 20 s with a scrape every second.
    let pid = d.child.id();
    let c0 = cpu(pid);
    std::thread::sleep(Duration::from_secs(20));
    let idle = cpu(pid) - c0;
    let c1 = cpu(pid);
    for _ in 0..20 {
        d.get_text("/metrics");
        std::thread::sleep(Duration::from_secs(1));
    }
    let scraped = cpu(pid) - c1;
    println!(
        "drover CPU over 20 s at 100 containers: {idle:.2} s without scrapes, {scraped:.2} s with one scrape a second"
    );
    // The event path: one counter increment, as observe_notice does.
    drover::metrics::init();
    let n = 1_000_000;
    let t0 = Instant::now();
    for _ in 0..n {
        drover::metrics::FAILURES
            .with_label_values(&["bench", "web"])
            .inc();
    }
    println!(
        "labelled counter increment: {:.0} ns",
        t0.elapsed().as_nanos() as f64 / n as f64
    );
    let (code, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(code, 204);
}
