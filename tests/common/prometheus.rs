//! A real Prometheus for the tests that check metrics and dashboards:
//! Debian's `prometheus` scraping one drover every second, and the helpers
//! that run every panel's query of a Grafana dashboard against it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The host-pool dashboard (checked by tests/hostpool.rs).
pub const LOCATIONS_DASHBOARD: &str = "drover-locations.json";

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Panics (never skips) without Debian's prometheus package.
pub fn require_tool(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: this test needs Debian's `prometheus` package \
         (`apt-get install -y prometheus`; .ci/run installs it). It never skips."
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus scraping one target every second, in a temporary
/// directory; killed and removed on drop, also when the test fails.
pub struct Prometheus {
    child: Child,
    pub url: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        require_tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: drover\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        // A free port can be taken between our probe and Prometheus' bind
        // by a parallel test: try a few.
        for attempt in 0..5 {
            let port = free_port();
            let mut child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("prometheus starts");
            let url = format!("http://127.0.0.1:{port}");
            let agent = agent();
            let t0 = Instant::now();
            let ready = loop {
                if child.try_wait().ok().flatten().is_some() {
                    break false;
                }
                if let Ok(r) = agent.get(&format!("{url}/-/ready")).call() {
                    if r.status() == 200 {
                        break true;
                    }
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "prometheus was not ready within 60 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            if ready {
                return Prometheus {
                    child,
                    url,
                    agent,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("prometheus exited at start five times (see its log above)");
    }

    /// `/api/v1/query`: (HTTP status, body).
    pub fn query(&self, expr: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(&format!("{}/api/v1/query", self.url))
            .query("query", expr)
            .call()
            .expect("prometheus answers");
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn label_values(&self, label: &str, matcher: &str) -> Vec<String> {
        let mut r = self
            .agent
            .get(&format!("{}/api/v1/label/{label}/values", self.url))
            .query("match[]", matcher)
            .call()
            .expect("prometheus answers");
        let body: Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap();
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The numbers of an instant query's vector result (NaN included).
pub fn values(body: &Value) -> Vec<f64> {
    body["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|s| s["value"][1].as_str())
                .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
                .collect()
        })
        .unwrap_or_default()
}

/// Every target expression of every panel (rows nest panels), with the
/// panel's title.
pub fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("?").to_string(), e.into()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Grafana's variables, as Grafana would fill them for this test.
pub fn substitute(expr: &str, app: &str) -> String {
    let e = expr
        .replace("${application}", app)
        .replace("$application", app)
        .replace("$__rate_interval", "1m")
        .replace("$__range", "10m")
        .replace("$__interval", "5s");
    assert!(!e.contains('$'), "an unknown variable in `{expr}`");
    e
}
