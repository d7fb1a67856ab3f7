//! Shared harness of the integration tests: a real `drover serve` on a free
//! port against the real Docker engine, unique application names, and
//! guards that remove whatever a test made, even when it fails.
#![allow(dead_code)]

pub mod certs;
pub mod engines;
pub mod etcd;
pub mod load;
pub mod prometheus;
pub mod registry;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use drover::wire::{AppDetail, Created, EntityView, ErrorBody};
use serde_json::Value;

/// Panics (never skips) when the engine is missing: these tests exist to
/// prove behaviour against a real engine.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "Docker engine is not reachable: the integration tests need a running dockerd (see README). They never skip."
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (or test run) uses: `t-<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("t-{prefix}-{}-{n}", std::process::id())
}

pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// How long a client keeps an idle connection to drover for reuse: well
/// under actix-web's 5 s keep-alive. A test that slept 5 s and then reused
/// its connection raced the server closing it ("Peer disconnected").
const IDLE_REUSE: Duration = Duration::from_secs(2);

/// An agent whose every request carries `Authorization: Bearer TOKEN`
/// (unless the request sets its own), answering statuses as values.
pub fn authed_agent(token: &str, timeout: Duration) -> ureq::Agent {
    let bearer = format!("Bearer {token}");
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_idle_age(IDLE_REUSE)
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
        .into()
}

/// The admin token a drover wrote beside its store (written before drover
/// listens, so it is there once its address is printed).
pub fn admin_token_of(store: &std::path::Path) -> String {
    let file = store.with_file_name("admin.token");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("drover wrote no {}: {e}", file.display()))
        .trim()
        .to_string()
}

/// A running `drover serve`, stopped on drop.
pub struct Drover {
    pub child: Child,
    pub url: String,
    /// The admin token this drover wrote beside its store (`admin.token`):
    /// every request of the harness sends it.
    pub token: String,
    agent: ureq::Agent,
    /// The store's directory, when the harness made it (removed on drop).
    _store_dir: Option<tempfile::TempDir>,
    /// Run under `DROVER_WRAPPER`, in a process group of its own: the
    /// child is the wrapper, and killing it alone left drover running.
    wrapped: bool,
}

impl Drover {
    pub fn start() -> Drover {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Drover {
        // Every drover of the tests has its own store: none rebinds
        // another test's applications.
        if extra.contains(&"--store") {
            return Self::launch(extra, None);
        }
        let dir = tempfile::tempdir().expect("temp dir for the store");
        let path = dir.path().join("drover.redb");
        let mut args: Vec<&str> = extra.to_vec();
        let p = path.to_str().unwrap().to_string();
        args.push("--store");
        args.push(&p);
        Self::launch(&args, Some(dir))
    }

    /// A drover on a given store (to restart one on the same state).
    pub fn start_on(store: &std::path::Path) -> Drover {
        Self::launch(&["--store", store.to_str().unwrap()], None)
    }

    fn launch(extra: &[&str], store_dir: Option<tempfile::TempDir>) -> Drover {
        require_docker();
        // `DROVER_WRAPPER` (e.g. `heaptrack -o /tmp/drover`): drover runs
        // under that command, for profiling a bench's drover. The child is
        // then the wrapper, not drover.
        let wrapper = std::env::var("DROVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(first) => {
                let mut c = Command::new(first);
                c.args(words).arg(drover_bin());
                c
            }
            None => Command::new(drover_bin()),
        };
        let wrapped = !wrapper.trim().is_empty();
        if wrapped {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("drover binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let url = loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read drover's stdout");
            assert!(n > 0, "drover serve exited before printing its address");
            if let Some(u) = line.trim().strip_prefix("drover listening on ") {
                break u.to_string();
            }
        };
        // Keep draining stdout so drover never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .max_idle_age(IDLE_REUSE)
            .build()
            .into();
        let store = extra
            .iter()
            .position(|a| *a == "--store")
            .and_then(|i| extra.get(i + 1))
            .expect("the harness always gives --store");
        // Written before drover listens: it is there now. On etcd, the
        // token file is in --state-dir (the harness's tests give one),
        // and only the cluster's first drover writes it: another one's
        // test sets `token` itself.
        let token = if store.starts_with("etcd://") {
            let dir = extra
                .iter()
                .position(|a| *a == "--state-dir")
                .and_then(|i| extra.get(i + 1))
                .expect("a drover on etcd in the tests gets --state-dir");
            std::fs::read_to_string(std::path::Path::new(dir).join("admin.token"))
                .map(|t| t.trim().to_string())
                .unwrap_or_default()
        } else {
            admin_token_of(std::path::Path::new(store))
        };
        Drover {
            child,
            url,
            token,
            agent,
            _store_dir: store_dir,
            wrapped,
        }
    }

    /// An agent sending the admin token with every request.
    pub fn agent(&self) -> ureq::Agent {
        authed_agent(&self.token, Duration::from_secs(300))
    }

    /// The `Authorization` header's value of the admin token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// The `drover` binary as a client of this drover: DROVER_URL and
    /// DROVER_TOKEN set.
    pub fn command(&self) -> Command {
        let mut c = Command::new(drover_bin());
        c.env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", &self.token);
        c
    }

    /// `kill -9`: no chance to clean up or to finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn answer(&self, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        let mut resp = r.expect("drover answers");
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
        self.answer(
            self.agent
                .get(&format!("{}{path}", self.url))
                .header("authorization", self.bearer())
                .call(),
        )
    }

    pub fn get_text(&self, path: &str) -> String {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.url))
            .header("authorization", self.bearer())
            .call()
            .expect("drover answers");
        r.body_mut().read_to_string().expect("body")
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.answer(
            self.agent
                .post(&format!("{}{path}", self.url))
                .header("content-type", "application/yaml")
                .header("authorization", self.bearer())
                .send(body),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.answer(
            self.agent
                .delete(&format!("{}{path}", self.url))
                .header("authorization", self.bearer())
                .call(),
        )
    }

    pub fn deploy(&self, yaml: &str) -> String {
        let (status, body) = self.post("/v1/applications", yaml);
        assert_eq!(status, 201, "deploy answered {status}: {body}");
        decode::<Created>(body).id
    }

    pub fn invoke(&self, app: &str, entity: &str, effector: &str, args: Value) -> (u16, Value) {
        self.answer(
            self.agent
                .post(&format!(
                    "{}/v1/applications/{app}/entities/{entity}/effectors/{effector}",
                    self.url
                ))
                .header("content-type", "application/json")
                .header("authorization", self.bearer())
                .send(args.to_string()),
        )
    }

    pub fn app(&self, app: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/applications/{app}"));
        assert_eq!(status, 200, "GET application {app}: {body}");
        body
    }

    /// `GET /v1/applications/{app}`, typed.
    pub fn app_detail(&self, app: &str) -> AppDetail {
        decode(self.app(app))
    }

    /// One entity of the application's tree, typed.
    pub fn entity_view(&self, app: &str, entity: &str) -> Option<EntityView> {
        self.app_detail(app)
            .entities
            .into_iter()
            .find(|e| e.id == entity)
    }

    /// Runs a client command of the `drover` binary against this drover.
    pub fn cli(&self, args: &[&str]) -> CliRun {
        let out = self.command().args(args).output().expect("drover runs");
        CliRun {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn entity(&self, app: &str, entity: &str) -> Value {
        let detail = self.app(app);
        detail["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == entity)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn sensors(&self, app: &str, entity: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/applications/{app}/entities/{entity}/sensors"));
        assert_eq!(status, 200, "GET sensors of {app}/{entity}: {body}");
        body
    }

    /// Waits until the application's root entity and every entity run.
    pub fn wait_running(&self, app: &str, deadline: Duration) -> Value {
        use drover::protocol::Lifecycle;
        wait_for(deadline, &format!("application {app} running"), || {
            let v = self.app(app);
            let d: AppDetail = decode(v.clone());
            let all = d.entities.iter().all(|e| e.state == Lifecycle::Running);
            (d.summary.state == Lifecycle::Running && all).then_some(v)
        })
    }

    /// SIGTERM, as an operator's stop would send.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait drover") {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "drover did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Drover {
    fn drop(&mut self) {
        if self.wrapped {
            // The whole group, politely first: a profiler writes its data
            // when drover exits.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client command did.
#[derive(Debug)]
pub struct CliRun {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// An answer's body as its wire type (panics naming the body if it is not).
pub fn decode<T: serde::de::DeserializeOwned>(body: Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|e| {
        panic!(
            "the answer is not a {}: {e}: {body}",
            std::any::type_name::<T>()
        )
    })
}

/// An error answer's `{error}` body.
pub fn error_body(body: Value) -> ErrorBody {
    decode(body)
}

/// Polls `f` until it returns `Some`, or panics naming `what` after `deadline`.
pub fn wait_for<T>(deadline: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_every(deadline, Duration::from_millis(50), what, f)
}

/// [`wait_for`], looking every `every`: for a look that costs the system
/// under measurement (the scale bench scrapes `/metrics` each time).
pub fn wait_for_every<T>(
    deadline: Duration,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Removes every container and the network of an application when dropped.
/// Removes the images built for an application when dropped.
pub struct BuiltImages(pub String);

impl Drop for BuiltImages {
    fn drop(&mut self) {
        let out = std::process::Command::new("docker")
            .args([
                "images",
                "-q",
                "--filter",
                &format!("reference=drover-build/{}-*", self.0),
            ])
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rmi", "-f"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// `drover workload-image`: the workload image on the local engine (the
/// base of the tests' Dockerfiles); panics with drover's error if it fails.
pub fn workload_image() {
    let out = Command::new(drover_bin())
        .arg("workload-image")
        .output()
        .expect("drover workload-image runs");
    assert!(
        out.status.success(),
        "drover workload-image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct AppGuard(pub String);

impl Drop for AppGuard {
    fn drop(&mut self) {
        remove_app_leftovers(&self.0);
    }
}

pub fn remove_app_leftovers(app: &str) {
    // Twice: a create a killed drover had in flight can still complete in
    // dockerd after the first list (seen: a `Created` member left behind).
    for pass in 0..2 {
        if pass == 1 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let ids = all_containers_of(app);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
    let _ = Command::new("docker")
        .args(["network", "rm", &format!("drover-{app}")])
        .output();
    // Declared networks (`drover-<app>-<name>`) carry the app label.
    for net in networks_of(app) {
        let _ = Command::new("docker")
            .args(["network", "rm", &net])
            .output();
    }
}

/// Names of the Docker networks labelled `io.drover.app=<app>`.
pub fn networks_of(app: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--format",
            "{{.Name}}",
            "--filter",
            &format!("label=io.drover.app={app}"),
        ])
        .output()
        .expect("docker network ls runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// `docker network inspect` of one network.
pub fn inspect_network(name: &str) -> Value {
    let out = Command::new("docker")
        .args(["network", "inspect", name])
        .output()
        .expect("docker network inspect runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.get(0).cloned().unwrap_or(Value::Null)
}

/// Container ids carrying `io.drover.app=<app>` (all, or running only).
pub fn containers_of(app: &str, all: bool) -> Vec<String> {
    labelled(app, all)
        .into_iter()
        .filter(|(_, role)| role.is_empty())
        .map(|(id, _)| id)
        .collect()
}

/// Every container labelled with the application (load-balancer agents too).
pub fn all_containers_of(app: &str) -> Vec<String> {
    labelled(app, true).into_iter().map(|(id, _)| id).collect()
}

/// The load-balancer agent containers of an application (running only, unless `all`).
pub fn lb_agents_of(app: &str, all: bool) -> Vec<String> {
    labelled(app, all)
        .into_iter()
        .filter(|(_, role)| role == "lb-agent")
        .map(|(id, _)| id)
        .collect()
}

/// (id, `io.drover.role` label or "") of the containers labelled with `app`.
fn labelled(app: &str, all: bool) -> Vec<(String, String)> {
    let mut cmd = Command::new("docker");
    cmd.args([
        "ps",
        "--no-trunc",
        "--filter",
        &format!("label=io.drover.app={app}"),
        "--format",
        "{{.ID}} {{.Label \"io.drover.role\"}}",
    ]);
    if all {
        cmd.arg("-a");
    }
    let out = cmd.output().expect("docker ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next()?.to_string();
            Some((id, w.next().unwrap_or("").to_string()))
        })
        .collect()
}

/// drover's client of a load balancer's agent container, found as a
/// standby drover finds it: the secret from its environment, the control
/// port from its ready line (`docker` is the engine's CLI with its flags).
pub fn lb_agent_client(docker: &[&str], app: &str, lb: &str) -> drover::lb::agent::AgentClient {
    let name = format!("drover-{app}-{lb}");
    let out = Command::new("docker")
        .args(docker)
        .args(["inspect", "--format", "{{json .Config.Env}}", &name])
        .output()
        .expect("docker inspect runs");
    let env: Vec<String> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("env of {name}: {e}: {out:?}"));
    let secret = drover::lb::agent::secret_in(&env).expect("the agent's secret in its env");
    let out = Command::new("docker")
        .args(docker)
        .args(["logs", &name])
        .output()
        .expect("docker logs runs");
    let ready = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(drover::lb::agent::AgentReady::parse)
        .next_back()
        .unwrap_or_else(|| panic!("no ready line from {name}: {out:?}"));
    // Host networking on this machine: the control port is on loopback.
    let control = std::net::SocketAddr::new([127, 0, 0, 1].into(), ready.control.port());
    drover::lb::agent::AgentClient::new(control, ready.listen, secret, &ready.cert_sha256)
}

/// `docker inspect` of one container.
pub fn inspect(id: &str) -> Value {
    let out = Command::new("docker")
        .args(["inspect", id])
        .output()
        .expect("docker inspect runs");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.get(0).cloned().unwrap_or(Value::Null)
}

pub fn network_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["network", "inspect", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A plain HTTP GET over std; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A cluster blueprint of the workload image.
pub fn cluster_blueprint(app: &str, size: u32) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: {size}
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: {{ cpus: 0.25, memory: 64Mi }}
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
"#
    )
}
