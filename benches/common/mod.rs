//! Shared helpers of the benchmark programs (`benches/deploy.rs`,
//! `benches/mttr.rs`): a real `drover serve` on a free port, the Docker
//! engine through its CLI and (for low-latency reads) its API socket, plain
//! TCP health probes, guards that remove whatever a bench made even when it
//! panics, and small statistics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

pub fn manifest_dir() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A lower-case name no other run uses: `<prefix>-<pid>-<n>` (valid as a
/// drover application id and as a container name).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Milliseconds since the epoch (the clock drover stamps sensors with).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Docker.

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

/// Runs `docker ARGS`, returns trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = run("docker", args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `docker ARGS`, ignoring failure (cleanup paths).
pub fn docker_quiet(args: &[&str]) -> String {
    let out = run("docker", args);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn require_docker() {
    let out = run("docker", &["info", "--format", "{{.ServerVersion}}"]);
    assert!(
        out.status.success(),
        "the Docker engine is not reachable: these benches need a running dockerd"
    );
}

pub fn engine_version() -> String {
    docker_quiet(&[
        "version",
        "--format",
        "{{.Server.Version}} (API {{.Server.APIVersion}})",
    ])
}

/// Container ids (all states) matching a label filter `key=value`.
pub fn containers_with_label(label: &str) -> Vec<String> {
    docker_quiet(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ])
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty())
    .map(String::from)
    .collect()
}

pub fn remove_containers_with_label(label: &str) {
    let ids = containers_with_label(label);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        let _ = run("docker", &args);
    }
}

/// Builds `drover/workload:latest` (not timed by the callers).
pub fn ensure_workload_image() {
    let t0 = Instant::now();
    let out = run(drover_bin(), &["workload-image"]);
    assert!(
        out.status.success(),
        "drover workload-image failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "workload image: {} ({:.1} s, not timed)",
        String::from_utf8_lossy(&out.stdout).trim(),
        t0.elapsed().as_secs_f64()
    );
}

/// A raw request to the Docker Engine API over its unix socket, HTTP/1.0
/// (no chunking, the engine closes the connection). ~1 ms instead of the
/// ~50 ms a `docker` CLI process costs, so a measurement is not blurred by
/// the CLI's start-up. `None` if the socket is unusable.
pub fn engine_api(method: &str, path: &str) -> Option<(u16, String)> {
    let sock = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// `docker inspect` through the API socket (falls back to the CLI).
pub fn inspect(id: &str) -> Option<Value> {
    if let Some((200, body)) = engine_api("GET", &format!("/containers/{id}/json")) {
        return serde_json::from_str(&body).ok();
    }
    let out = run("docker", &["inspect", id]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}

/// The host port published for `8080/tcp` in an inspect document.
pub fn published_port(inspect: &Value) -> Option<u16> {
    inspect["NetworkSettings"]["Ports"]["8080/tcp"]
        .as_array()?
        .iter()
        .find_map(|b| b["HostPort"].as_str().and_then(|p| p.parse().ok()))
}

/// `docker kill` through the Engine API (`POST /containers/{id}/kill`, what
/// the CLI sends), falling back to the CLI.
pub fn docker_kill(id: &str) {
    match engine_api("POST", &format!("/containers/{id}/kill")) {
        Some((204, _)) => {}
        _ => {
            docker(&["kill", id]);
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP probes.

/// `GET path` over a fresh TCP connection with a plain HTTP/1.0 request;
/// returns the status code.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let line = String::from_utf8_lossy(&got);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no HTTP status line in {line:?}"),
            )
        })
}

pub fn healthy(port: u16) -> bool {
    matches!(
        http_status(port, "/health", Duration::from_millis(500)),
        Ok(200)
    )
}

// ---------------------------------------------------------------------------
// drover serve.

/// A running `drover serve` (cwd = the crate, so `policies/` resolves),
/// killed on drop. Its stderr goes to a log file kept for diagnostics.
pub struct Drover {
    pub child: Child,
    pub url: String,
    /// The admin token drover wrote beside its store: every request sends it.
    pub token: String,
    agent: ureq::Agent,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drover {
    pub fn start() -> Drover {
        let dir = tempfile::Builder::new()
            .prefix("drover-bench-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("serve.log");
        let err = std::fs::File::create(&log).expect("log file");
        let policies = format!("{}/policies", manifest_dir());
        let mut child = Command::new(drover_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--policies", &policies])
            // Its own store: a bench never rebinds another run's applications.
            .arg("--store")
            .arg(dir.path().join("drover.redb"))
            .current_dir(manifest_dir())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("drover binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let url = loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read drover's stdout");
            if n == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "drover serve exited before printing its address; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(u) = line.trim().strip_prefix("drover listening on ") {
                break u.trim_end_matches('/').to_string();
            }
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        // Written before drover listens: it is there now.
        let token = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("drover wrote admin.token beside its store")
            .trim()
            .to_string();
        let bearer = format!("Bearer {token}");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .middleware(
                move |mut req: ureq::http::Request<ureq::SendBody>,
                      next: ureq::middleware::MiddlewareNext| {
                    if !req.headers().contains_key("authorization") {
                        req.headers_mut()
                            .insert("authorization", bearer.parse().expect("a header value"));
                    }
                    next.handle(req)
                },
            )
            .build()
            .into();
        let d = Drover {
            child,
            url,
            token,
            agent,
            log,
            _dir: dir,
        };
        // Ready when /healthz answers.
        let t0 = Instant::now();
        loop {
            if let Ok(r) = d.agent.get(&format!("{}/healthz", d.url)).call() {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "drover /healthz not ready in 30 s; log:\n{}",
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn answer(&self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut resp = match r {
            Ok(r) => r,
            Err(e) => panic!("drover does not answer: {e}; log:\n{}", self.log_tail()),
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.answer(self.agent.get(&format!("{}{path}", self.url)).call())
    }

    pub fn post_yaml(&self, path: &str, body: &str) -> (u16, Value) {
        self.answer(
            self.agent
                .post(&format!("{}{path}", self.url))
                .header("content-type", "application/yaml")
                .send(body),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.answer(self.agent.delete(&format!("{}{path}", self.url)).call())
    }

    pub fn deploy(&self, yaml: &str) -> String {
        let (status, body) = self.post_yaml("/v1/applications", yaml);
        assert_eq!(
            status,
            201,
            "deploy answered {status}: {body}; log:\n{}",
            self.log_tail()
        );
        body["id"]
            .as_str()
            .expect("id in deploy answer")
            .to_string()
    }

    pub fn app(&self, app: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/applications/{app}"));
        assert_eq!(status, 200, "GET application {app}: {status} {body}");
        body
    }

    /// `(VmRSS, VmHWM)` of the serve process, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// DELETE the application and wait (up to `within`) until the engine
    /// holds none of its containers. Returns the containers still left.
    pub fn destroy(&self, app: &str, within: Duration) -> Vec<String> {
        let (status, body) = self.delete(&format!("/v1/applications/{app}"));
        assert!(
            status == 204 || status == 200 || status == 202,
            "DELETE {app} answered {status}: {body}"
        );
        let t0 = Instant::now();
        loop {
            let left = containers_with_label(&format!("io.drover.app={app}"));
            if left.is_empty() || t0.elapsed() > within {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Drover {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes every container and the network of a drover application when
/// dropped (after a panic, or if drover's own DELETE left something).
pub struct AppGuard(pub String);

impl Drop for AppGuard {
    fn drop(&mut self) {
        remove_containers_with_label(&format!("io.drover.app={}", self.0));
        let net = format!("drover-{}", self.0);
        if !docker_quiet(&["network", "ls", "-q", "--filter", &format!("name=^{net}$")]).is_empty()
        {
            let _ = run("docker", &["network", "rm", &net]);
        }
    }
}

// ---------------------------------------------------------------------------
// The application tree.

pub fn entities(app: &Value) -> &[Value] {
    app["entities"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// Members of cluster `cluster` (entities whose parent is it), by id.
pub fn members<'a>(app: &'a Value, cluster: &str) -> Vec<&'a Value> {
    let mut m: Vec<&Value> = entities(app)
        .iter()
        .filter(|e| e["parent"] == cluster)
        .collect();
    m.sort_by_key(|e| member_ordinal(e["id"].as_str().unwrap_or("")));
    m
}

fn member_ordinal(id: &str) -> (u64, String) {
    let n = id
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, id.to_string())
}

pub fn find<'a>(app: &'a Value, id: &str) -> Option<&'a Value> {
    entities(app).iter().find(|e| e["id"] == id)
}

pub fn sensor<'a>(e: &'a Value, name: &str) -> &'a Value {
    &e["sensors"][name]["value"]
}

pub fn sensor_ts(e: &Value, name: &str) -> Option<u64> {
    e["sensors"][name]["timestamp_ms"].as_u64()
}

pub fn is_up(e: &Value) -> bool {
    sensor(e, "service.up") == &Value::Bool(true)
}

pub fn sensor_port(e: &Value, name: &str) -> Option<u16> {
    let v = sensor(e, name);
    v.as_u64()
        .map(|n| n as u16)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

// ---------------------------------------------------------------------------
// Statistics.

/// Nearest-rank percentile of `xs` (any order); `p` in 0..=100.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

pub fn fmt_list(xs: &[f64], unit_ms: bool) -> String {
    xs.iter()
        .map(|x| {
            if unit_ms {
                format!("{:.0}", x * 1000.0)
            } else {
                format!("{x:.3}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
