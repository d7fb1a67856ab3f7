//! A SIMULATED Docker engine, for scale measurement only (issue 18).
//!
//! One process serves many fake engines, one unix socket each, answering
//! in memory the Docker Engine API calls drover makes through bollard
//! (API 1.41): ping, version, info, image inspect, container create,
//! start, stop, kill, restart, pause, unpause, remove, inspect and list
//! (with label filters), the event stream (with type and label filters and
//! `since`), stats (one-shot and streamed), networks and volumes. Nothing
//! runs: a "container" is a row in a table. Calls can be slowed (`latency`)
//! and starts made to fail (`start_failure_rate`); [`SimEngine::kill`]
//! makes running containers die as a crash would (a `die` event, exit code
//! 137).
//!
//! Lives in the bench tree (`benches/sim/`, included by `benches/scale.rs`
//! and `tests/scale.rs` through `#[path]`): it is never on a production
//! path, and no test that claims real-engine behaviour uses it. The one
//! test that checks it against the real engine (`tests/scale.rs`,
//! `sim_answers_like_the_real_engine`) runs the same calls on both.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

/// How the simulated engines behave.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many engines (sockets `DIR/host-<i>.sock`).
    pub hosts: usize,
    /// Added to every API call's answer (the engine's own work).
    pub latency: Duration,
    /// Fraction (0..1) of container starts refused with HTTP 500.
    pub start_failure_rate: f64,
    /// How often a streamed stats feed sends a frame (Docker: about 1 s),
    /// and the `stats_every` of the location `drover_yaml` writes (how
    /// often drover samples each container).
    pub stats_every: Duration,
    /// What `docker info` says of each engine.
    pub ncpu: i64,
    pub mem_total: i64,
    /// Worker threads of the simulator's own runtime.
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            hosts: 1,
            latency: Duration::ZERO,
            start_failure_rate: 0.0,
            stats_every: Duration::from_secs(1),
            ncpu: 64,
            mem_total: 256 << 30,
            threads: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Created,
    Running,
    Paused,
    Exited,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Paused => "paused",
            State::Exited => "exited",
        }
    }
}

struct Container {
    id: String,
    name: String,
    image: String,
    labels: HashMap<String, String>,
    state: State,
    exit_code: i64,
    created: i64,
    started_at: i64,
    /// Cumulative CPU nanoseconds, for the stats frames.
    cpu_ns: u64,
}

struct Network {
    id: String,
    name: String,
    subnet: Option<String>,
    gateway: Option<String>,
    labels: HashMap<String, String>,
}

/// One event as the engine sends it (`time` in seconds, kept for `since`).
#[derive(Clone)]
struct Event {
    time: i64,
    json: Arc<Value>,
    typ: &'static str,
    labels: Arc<HashMap<String, String>>,
}

#[derive(Default)]
struct Host {
    containers: HashMap<String, Container>,
    names: HashMap<String, String>,
    networks: HashMap<String, Network>,
    volumes: HashMap<String, Value>,
    /// Recent events, replayed to a subscriber with `since`.
    log: VecDeque<Event>,
}

/// Events kept per engine for `since` replays. Small: a thousand engines
/// keep a thousand logs (4,096 each held 4 GiB of JSON).
const LOG_KEEP: usize = 256;
/// Events a slow subscriber may lag behind before it loses some (the
/// engine's own buffer is of this order); tokio's broadcast channel
/// allocates every slot up front, per engine.
const EVENT_BUFFER: usize = 1024;

struct Engine {
    name: String,
    /// Hangs every call (answers none) while set: an engine that stopped
    /// answering, its containers still there.
    silent: std::sync::atomic::AtomicBool,
    /// Container lists wait (every other call is answered).
    lists_held: std::sync::atomic::AtomicBool,
    /// Stats frames sent (streamed and one-shot).
    stats_frames: AtomicU64,
    host: Mutex<Host>,
    events: tokio::sync::broadcast::Sender<Event>,
}

struct Shared {
    cfg: SimConfig,
    engines: Vec<Arc<Engine>>,
    counter: AtomicU64,
    /// Calls answered, by all engines (for the bench's report).
    pub calls: AtomicU64,
    /// Calls answered, by route (`GET containers/*/json`): which calls a
    /// phase of the bench makes, and how many per container.
    by_route: Mutex<HashMap<String, u64>>,
}

/// The running simulator: its sockets and its own runtime (a thread).
pub struct SimEngine {
    shared: Arc<Shared>,
    dir: tempfile::TempDir,
    rt: Option<tokio::runtime::Runtime>,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// splitmix64: ids and failure draws without a random-number crate.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Shared {
    fn next(&self) -> u64 {
        mix(self.counter.fetch_add(1, Ordering::Relaxed) ^ 0x5eed)
    }
    fn new_id(&self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.next(),
            self.next(),
            self.next(),
            self.next()
        )
    }
    fn draw(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl SimEngine {
    /// Starts `cfg.hosts` engines, each on its own socket.
    pub fn start(cfg: SimConfig) -> SimEngine {
        let dir = tempfile::Builder::new()
            .prefix("drover-sim-")
            .tempdir()
            .expect("temp dir for the simulated engines' sockets");
        let engines = (0..cfg.hosts)
            .map(|i| {
                Arc::new(Engine {
                    name: format!("sim-{i}"),
                    silent: Default::default(),
                    lists_held: Default::default(),
                    stats_frames: AtomicU64::new(0),
                    host: Mutex::new(Host::default()),
                    events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
                })
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cfg.threads.max(1))
            .thread_name("sim-engine")
            .enable_all()
            .build()
            .expect("the simulator's runtime");
        let shared = Arc::new(Shared {
            cfg,
            engines,
            counter: AtomicU64::new(1),
            calls: AtomicU64::new(0),
            by_route: Mutex::new(HashMap::new()),
        });
        for (i, engine) in shared.engines.iter().enumerate() {
            let path = dir.path().join(format!("host-{i}.sock"));
            let _guard = rt.enter();
            let listener = tokio::net::UnixListener::bind(&path)
                .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
            let (shared, engine) = (shared.clone(), engine.clone());
            rt.spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let (shared, engine) = (shared.clone(), engine.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let (shared, engine) = (shared.clone(), engine.clone());
                            async move { Ok::<_, Infallible>(answer(&shared, &engine, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        }
        SimEngine {
            shared,
            dir,
            rt: Some(rt),
        }
    }

    pub fn hosts(&self) -> usize {
        self.shared.engines.len()
    }

    /// Makes engine `i` stop answering (every call hangs until it answers
    /// again), or answer again.
    pub fn silence(&self, i: usize, silent: bool) {
        self.shared.engines[i]
            .silent
            .store(silent, Ordering::Relaxed);
    }

    /// Makes engine `i` hold its container lists (`GET containers/json`
    /// waits until released) while answering every other call: an engine
    /// slow to list, as at a restart of drover.
    pub fn hold_lists(&self, i: usize, held: bool) {
        self.shared.engines[i]
            .lists_held
            .store(held, Ordering::Relaxed);
    }

    /// Containers of ours (any state) on engine `i`.
    pub fn count_on(&self, i: usize) -> usize {
        let h = self.shared.engines[i]
            .host
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        h.containers
            .values()
            .filter(|c| c.labels.contains_key("io.drover.managed"))
            .count()
    }

    pub fn stats_every(&self) -> Duration {
        self.shared.cfg.stats_every
    }

    /// The socket of engine `i`.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("host-{i}.sock"))
    }

    /// `unix://...` of engine `i`, as `drover.yaml` names an endpoint.
    pub fn endpoint(&self, i: usize) -> String {
        format!("unix://{}", self.socket(i).display())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stats frames sent so far, by every engine.
    pub fn stats_frames(&self) -> u64 {
        self.shared
            .engines
            .iter()
            .map(|e| e.stats_frames.load(Ordering::Relaxed))
            .sum()
    }

    /// API calls answered so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::Relaxed)
    }

    /// API calls answered so far, by route (ids and names as `*`).
    pub fn calls_by_route(&self) -> HashMap<String, u64> {
        self.shared
            .by_route
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// (running, all) containers over every engine, optionally only those
    /// carrying label `key=value`.
    pub fn count(&self, label: Option<(&str, &str)>) -> (usize, usize) {
        let (mut running, mut all) = (0, 0);
        for e in &self.shared.engines {
            let h = e.host.lock().unwrap_or_else(|e| e.into_inner());
            for c in h.containers.values() {
                if let Some((k, v)) = label {
                    if c.labels.get(k).map(String::as_str) != Some(v) {
                        continue;
                    }
                }
                all += 1;
                if c.state == State::Running {
                    running += 1;
                }
            }
        }
        (running, all)
    }

    /// Running containers per entity label (`io.drover.entity`), to check
    /// that no entity has two.
    pub fn running_per_entity(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for e in &self.shared.engines {
            let h = e.host.lock().unwrap_or_else(|e| e.into_inner());
            for c in h.containers.values() {
                if c.state == State::Running {
                    if let Some(ent) = c.labels.get("io.drover.entity") {
                        *m.entry(ent.clone()).or_insert(0) += 1;
                    }
                }
            }
        }
        m
    }

    /// Makes `fraction` of the running containers die as a crash would
    /// (exit code 137, a `die` event): the failure injection.
    pub fn kill(&self, fraction: f64) -> usize {
        let mut killed = 0;
        for e in &self.shared.engines {
            let mut h = e.host.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = h
                .containers
                .values()
                .filter(|c| c.state == State::Running)
                .filter(|_| self.shared.draw() < fraction)
                .map(|c| c.id.clone())
                .collect();
            for id in ids {
                let c = h.containers.get_mut(&id).unwrap();
                c.state = State::Exited;
                c.exit_code = 137;
                let ev = event(c, "die", &[("exitCode", "137")]);
                emit(e, &mut h, ev);
                killed += 1;
            }
        }
        killed
    }

    /// Kills exactly `n` running containers (spread over the engines).
    pub fn kill_n(&self, n: usize) -> usize {
        let mut killed = 0;
        let hosts = self.shared.engines.len().max(1);
        let start = (self.shared.next() as usize) % hosts;
        'outer: for k in 0..hosts {
            let e = &self.shared.engines[(start + k) % hosts];
            let mut h = e.host.lock().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<String> = h
                .containers
                .values()
                .filter(|c| c.state == State::Running)
                .map(|c| c.id.clone())
                .take(n.div_ceil(hosts).max(1))
                .collect();
            for id in ids {
                if killed == n {
                    break 'outer;
                }
                let c = h.containers.get_mut(&id).unwrap();
                c.state = State::Exited;
                c.exit_code = 137;
                let ev = event(c, "die", &[("exitCode", "137")]);
                emit(e, &mut h, ev);
                killed += 1;
            }
        }
        killed
    }

    /// Stops the simulator (closes every socket).
    pub fn shutdown(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for SimEngine {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

// ---------------------------------------------------------------------------
// Answers.

type Body = BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Api-Version", "1.41")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Api-Version", "1.41")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    reply(status, json!({ "message": message.into() }))
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `filters={"label":["a=b","c"],"type":["container"]}` (also the older
/// `{"label":{"a=b":true}}` form).
fn filters(q: &HashMap<String, String>) -> HashMap<String, Vec<String>> {
    let Some(raw) = q.get("filters") else {
        return HashMap::new();
    };
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let mut out = HashMap::new();
    if let Value::Object(m) = v {
        for (k, v) in m {
            let list = match v {
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => vec![],
            };
            out.insert(k, list);
        }
    }
    out
}

fn labels_match(labels: &HashMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(w.as_str()),
    })
}

fn event(c: &Container, action: &str, extra: &[(&str, &str)]) -> Event {
    let mut attrs: serde_json::Map<String, Value> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    attrs.insert("image".into(), json!(c.image));
    attrs.insert("name".into(), json!(c.name));
    for (k, v) in extra {
        attrs.insert((*k).into(), json!(v));
    }
    let t = now_ns();
    Event {
        time: t / 1_000_000_000,
        typ: "container",
        labels: Arc::new(c.labels.clone()),
        json: Arc::new(json!({
            "status": action, "id": c.id, "from": c.image,
            "Type": "container", "Action": action,
            "Actor": { "ID": c.id, "Attributes": attrs },
            "scope": "local", "time": t / 1_000_000_000, "timeNano": t,
        })),
    }
}

fn emit(engine: &Engine, h: &mut Host, ev: Event) {
    if h.log.len() >= LOG_KEEP {
        h.log.pop_front();
    }
    h.log.push_back(ev.clone());
    let _ = engine.events.send(ev);
}

fn status_text(c: &Container) -> String {
    match c.state {
        State::Created => "Created".into(),
        State::Running => format!("Up {} seconds", (now_s() - c.started_at).max(0)),
        State::Paused => format!("Up {} seconds (Paused)", (now_s() - c.started_at).max(0)),
        State::Exited => format!("Exited ({}) 1 second ago", c.exit_code),
    }
}

fn inspect_json(c: &Container, networks: &HashMap<String, Network>) -> Value {
    let nets: serde_json::Map<String, Value> = networks
        .values()
        .filter(|n| {
            c.labels.get("io.drover.app").map(String::as_str)
                == n.labels.get("io.drover.app").map(String::as_str)
        })
        .map(|n| (n.name.clone(), json!({ "NetworkID": n.id })))
        .collect();
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Image": format!("sha256:{}", image_id(&c.image)),
        "Created": c.created.to_string(),
        "State": {
            "Status": c.state.as_str(),
            "Running": c.state == State::Running || c.state == State::Paused,
            "Paused": c.state == State::Paused,
            "Restarting": false, "OOMKilled": false, "Dead": false,
            "Pid": if c.state == State::Running { 4242 } else { 0 },
            "ExitCode": c.exit_code,
        },
        "Config": { "Image": c.image, "Labels": c.labels },
        "HostConfig": { "NetworkMode": "default" },
        "NetworkSettings": { "Ports": {}, "Networks": nets },
    })
}

fn summary_json(c: &Container) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": format!("sha256:{}", image_id(&c.image)),
        "Command": "",
        "Created": c.created,
        "Ports": [],
        "Labels": c.labels,
        "State": c.state.as_str(),
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": "default" },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

fn image_id(image: &str) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in image.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        mix(h),
        mix(h + 1),
        mix(h + 2),
        mix(h + 3)
    )
}

fn stats_frame(c: &Container, before_ns: u64, system_ns: u64, cpus: i64) -> Value {
    let cur = json!({
        "cpu_usage": { "total_usage": c.cpu_ns },
        "system_cpu_usage": system_ns,
        "online_cpus": cpus,
    });
    let pre = json!({
        "cpu_usage": { "total_usage": before_ns },
        "system_cpu_usage": system_ns.saturating_sub(1_000_000_000 * cpus as u64),
        "online_cpus": cpus,
    });
    json!({
        "read": "2026-01-01T00:00:00Z",
        "id": c.id, "name": format!("/{}", c.name),
        "cpu_stats": cur, "precpu_stats": pre,
        "memory_stats": { "usage": 8 << 20, "limit": 1u64 << 30, "stats": { "inactive_file": 0 } },
    })
}

/// A call's route for the tally: the method and the path, its ids and
/// names (long, or with `-`, `:` or `.`) as one `*` (`GET containers/*/json`).
fn route(method: &Method, parts: &[&str]) -> String {
    let mut out = method.to_string();
    let mut sep = ' ';
    for p in parts {
        let word = if p.len() >= 12 || p.contains(['-', ':', '.']) {
            "*"
        } else {
            p
        };
        if word == "*" && out.ends_with('*') {
            continue;
        }
        out.push(sep);
        out.push_str(word);
        sep = '/';
    }
    out
}

/// Finds a container by id, id prefix or name.
fn find<'a>(h: &'a Host, key: &str) -> Option<&'a str> {
    if h.containers.contains_key(key) {
        return h.containers.get(key).map(|c| c.id.as_str());
    }
    if let Some(id) = h.names.get(key.trim_start_matches('/')) {
        return Some(id.as_str());
    }
    if key.len() >= 6 {
        return h
            .containers
            .keys()
            .find(|k| k.starts_with(key))
            .map(String::as_str);
    }
    None
}

async fn answer(shared: &Shared, engine: &Arc<Engine>, req: Request<Incoming>) -> Response<Body> {
    shared.calls.fetch_add(1, Ordering::Relaxed);
    while engine.silent.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !shared.cfg.latency.is_zero() {
        tokio::time::sleep(shared.cfg.latency).await;
    }
    let method = req.method().clone();
    let full = req.uri().path().to_string();
    // `/v1.41/containers/json` and `/containers/json` alike.
    let path = match full.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => full.as_str(),
    }
    .to_string();
    let q = query(&req);
    let body = if method == Method::POST || method == Method::PUT {
        req.into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default()
    } else {
        Bytes::new()
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if method == Method::GET && parts == ["containers", "json"] {
        while engine.lists_held.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    *shared
        .by_route
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(route(&method, &parts))
        .or_default() += 1;
    match (method.clone(), parts.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => Response::builder()
            .status(200)
            .header("Api-Version", "1.41")
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"OK")).boxed())
            .unwrap(),
        (Method::GET, ["version"]) => reply(
            StatusCode::OK,
            json!({
                "Version": "20.10.24-sim", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
                "Os": "linux", "Arch": "amd64", "KernelVersion": "sim",
                "Components": [{ "Name": "Engine", "Version": "20.10.24-sim" }],
            }),
        ),
        (Method::GET, ["info"]) => {
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            let running = h
                .containers
                .values()
                .filter(|c| c.state == State::Running)
                .count();
            reply(
                StatusCode::OK,
                json!({
                    "ID": engine.name, "Name": engine.name,
                    "Containers": h.containers.len(), "ContainersRunning": running,
                    "NCPU": shared.cfg.ncpu, "MemTotal": shared.cfg.mem_total,
                    "ServerVersion": "20.10.24-sim", "OperatingSystem": "drover simulated engine",
                    "Driver": "sim",
                }),
            )
        }
        (Method::GET, ["images", rest @ .., "json"]) if !rest.is_empty() => {
            let name = rest.join("/");
            reply(
                StatusCode::OK,
                json!({
                    "Id": format!("sha256:{}", image_id(&name)),
                    "RepoTags": [name], "RepoDigests": [],
                    "Created": "2026-01-01T00:00:00Z", "Size": 0,
                    "Config": { "Labels": {} },
                }),
            )
        }
        (Method::GET, ["images", "json"]) => reply(StatusCode::OK, json!([])),
        (Method::POST, ["containers", "create"]) => create(shared, engine, &q, &body),
        (Method::GET, ["containers", "json"]) => {
            let all = matches!(q.get("all").map(String::as_str), Some("1" | "true"));
            let f = filters(&q);
            let wanted = f.get("label").cloned().unwrap_or_default();
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            let list: Vec<Value> = h
                .containers
                .values()
                .filter(|c| all || c.state == State::Running || c.state == State::Paused)
                .filter(|c| labels_match(&c.labels, &wanted))
                .map(summary_json)
                .collect();
            reply(StatusCode::OK, Value::Array(list))
        }
        (Method::GET, ["containers", id, "json"]) => {
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            match find(&h, id) {
                Some(cid) => reply(
                    StatusCode::OK,
                    inspect_json(&h.containers[cid], &h.networks),
                ),
                None => error(StatusCode::NOT_FOUND, format!("No such container: {id}")),
            }
        }
        (Method::POST, ["containers", id, op]) => operate(shared, engine, id, op),
        (Method::DELETE, ["containers", id]) => {
            let force = matches!(q.get("force").map(String::as_str), Some("1" | "true"));
            remove(engine, id, force)
        }
        (Method::GET, ["containers", id, "stats"]) => {
            let stream = !matches!(q.get("stream").map(String::as_str), Some("0" | "false"));
            stats(shared, engine, id, stream)
        }
        (Method::GET, ["events"]) => events(engine, &q),
        (Method::GET, ["networks"]) => {
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            let mut list = vec![json!({
                "Name": "bridge", "Id": "bridge0", "Driver": "bridge",
                "IPAM": { "Driver": "default", "Config": [{ "Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1" }] },
                "Labels": {},
            })];
            list.extend(h.networks.values().map(network_json));
            reply(StatusCode::OK, Value::Array(list))
        }
        (Method::GET, ["networks", name]) => {
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            match h
                .networks
                .values()
                .find(|n| n.name == *name || n.id == *name)
            {
                Some(n) => reply(StatusCode::OK, network_json(n)),
                None => error(StatusCode::NOT_FOUND, format!("network {name} not found")),
            }
        }
        (Method::POST, ["networks", "create"]) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let name = v["Name"].as_str().unwrap_or_default().to_string();
            let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            if h.networks.contains_key(&name) {
                return error(
                    StatusCode::CONFLICT,
                    format!("network with name {name} already exists"),
                );
            }
            let cfg = &v["IPAM"]["Config"][0];
            let id = shared.new_id();
            let labels = serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
            h.networks.insert(
                name.clone(),
                Network {
                    id: id.clone(),
                    name,
                    subnet: cfg["Subnet"].as_str().map(String::from),
                    gateway: cfg["Gateway"].as_str().map(String::from),
                    labels,
                },
            );
            reply(StatusCode::CREATED, json!({ "Id": id, "Warning": "" }))
        }
        (Method::POST, ["networks", _name, "connect" | "disconnect"]) => empty(StatusCode::OK),
        (Method::DELETE, ["networks", name]) => {
            let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            let key = h
                .networks
                .values()
                .find(|n| n.name == *name || n.id == *name)
                .map(|n| n.name.clone());
            match key {
                Some(k) => {
                    h.networks.remove(&k);
                    empty(StatusCode::NO_CONTENT)
                }
                None => error(StatusCode::NOT_FOUND, format!("network {name} not found")),
            }
        }
        (Method::GET, ["volumes"]) => {
            let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
            let f = filters(&q);
            let wanted = f.get("label").cloned().unwrap_or_default();
            let list: Vec<Value> = h
                .volumes
                .values()
                .filter(|v| {
                    let l: HashMap<String, String> =
                        serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
                    labels_match(&l, &wanted)
                })
                .cloned()
                .collect();
            reply(StatusCode::OK, json!({ "Volumes": list, "Warnings": null }))
        }
        (Method::POST, ["volumes", "create"]) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let name = v["Name"].as_str().unwrap_or_default().to_string();
            let vol = json!({
                "Name": name, "Driver": "local", "Mountpoint": format!("/sim/volumes/{name}"),
                "Labels": v["Labels"].clone(), "Scope": "local", "Options": {},
            });
            engine
                .host
                .lock()
                .unwrap()
                .volumes
                .insert(name, vol.clone());
            reply(StatusCode::CREATED, vol)
        }
        (Method::DELETE, ["volumes", name]) => {
            engine
                .host
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .volumes
                .remove(*name);
            empty(StatusCode::NO_CONTENT)
        }
        _ => {
            eprintln!("drover-sim-engine: no answer for {method} {full}");
            error(StatusCode::NOT_FOUND, "page not found")
        }
    }
}

fn network_json(n: &Network) -> Value {
    json!({
        "Name": n.name, "Id": n.id, "Driver": "bridge", "Scope": "local",
        "IPAM": { "Driver": "default", "Config": [{ "Subnet": n.subnet, "Gateway": n.gateway }] },
        "Labels": n.labels, "Containers": {},
    })
}

fn create(
    shared: &Shared,
    engine: &Engine,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response<Body> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
    };
    let id = shared.new_id();
    let name = q
        .get("name")
        .cloned()
        .unwrap_or_else(|| format!("sim_{}", &id[..12]));
    let image = v["Image"].as_str().unwrap_or_default().to_string();
    if image.is_empty() {
        return error(StatusCode::BAD_REQUEST, "No command specified");
    }
    let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(other) = h.names.get(&name) {
        return error(
            StatusCode::CONFLICT,
            format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            ),
        );
    }
    let labels = serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
    let c = Container {
        id: id.clone(),
        name: name.clone(),
        image,
        labels,
        state: State::Created,
        exit_code: 0,
        created: now_s(),
        started_at: 0,
        cpu_ns: 0,
    };
    let ev = event(&c, "create", &[]);
    h.containers.insert(id.clone(), c);
    h.names.insert(name, id.clone());
    emit(engine, &mut h, ev);
    reply(StatusCode::CREATED, json!({ "Id": id, "Warnings": [] }))
}

fn operate(shared: &Shared, engine: &Engine, key: &str, op: &str) -> Response<Body> {
    let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
    let Some(id) = find(&h, key).map(String::from) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    let c = h.containers.get_mut(&id).unwrap();
    let mut evs = Vec::new();
    let status = match op {
        "start" => match c.state {
            State::Running | State::Paused => StatusCode::NOT_MODIFIED,
            _ => {
                if shared.draw() < shared.cfg.start_failure_rate {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "simulated failure: OCI runtime create failed",
                    );
                }
                c.state = State::Running;
                c.exit_code = 0;
                c.started_at = now_s();
                evs.push(event(c, "start", &[]));
                StatusCode::NO_CONTENT
            }
        },
        "stop" => match c.state {
            State::Running | State::Paused => {
                evs.push(event(c, "kill", &[("signal", "15")]));
                c.state = State::Exited;
                c.exit_code = 0;
                evs.push(event(c, "die", &[("exitCode", "0")]));
                evs.push(event(c, "stop", &[]));
                StatusCode::NO_CONTENT
            }
            _ => StatusCode::NOT_MODIFIED,
        },
        "kill" => match c.state {
            State::Running | State::Paused => {
                evs.push(event(c, "kill", &[("signal", "9")]));
                c.state = State::Exited;
                c.exit_code = 137;
                evs.push(event(c, "die", &[("exitCode", "137")]));
                StatusCode::NO_CONTENT
            }
            _ => {
                return error(
                    StatusCode::CONFLICT,
                    format!("Cannot kill container: {key}: Container {id} is not running"),
                )
            }
        },
        "restart" => {
            if c.state == State::Running {
                evs.push(event(c, "kill", &[("signal", "15")]));
                evs.push(event(c, "die", &[("exitCode", "0")]));
                evs.push(event(c, "stop", &[]));
            }
            c.state = State::Running;
            c.exit_code = 0;
            c.started_at = now_s();
            evs.push(event(c, "start", &[]));
            evs.push(event(c, "restart", &[]));
            StatusCode::NO_CONTENT
        }
        "pause" => match c.state {
            State::Running => {
                c.state = State::Paused;
                evs.push(event(c, "pause", &[]));
                StatusCode::NO_CONTENT
            }
            State::Paused => {
                return error(
                    StatusCode::CONFLICT,
                    format!("Container {id} is already paused"),
                )
            }
            _ => {
                return error(
                    StatusCode::CONFLICT,
                    format!("Container {id} is not running"),
                )
            }
        },
        "unpause" => match c.state {
            State::Paused => {
                c.state = State::Running;
                evs.push(event(c, "unpause", &[]));
                StatusCode::NO_CONTENT
            }
            _ => {
                return error(
                    StatusCode::CONFLICT,
                    format!("Container {id} is not paused"),
                )
            }
        },
        "wait" | "attach" | "resize" | "rename" | "update" => StatusCode::OK,
        _ => return error(StatusCode::NOT_FOUND, "page not found"),
    };
    for ev in evs {
        emit(engine, &mut h, ev);
    }
    empty(status)
}

fn remove(engine: &Engine, key: &str, force: bool) -> Response<Body> {
    let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
    let Some(id) = find(&h, key).map(String::from) else {
        return error(StatusCode::NOT_FOUND, format!("No such container: {key}"));
    };
    let mut evs = Vec::new();
    {
        let c = h.containers.get_mut(&id).unwrap();
        if matches!(c.state, State::Running | State::Paused) {
            if !force {
                return error(
                    StatusCode::CONFLICT,
                    format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
                );
            }
            evs.push(event(c, "kill", &[("signal", "9")]));
            c.state = State::Exited;
            c.exit_code = 137;
            evs.push(event(c, "die", &[("exitCode", "137")]));
        }
        evs.push(event(c, "destroy", &[]));
    }
    let c = h.containers.remove(&id).unwrap();
    h.names.remove(&c.name);
    for ev in evs {
        emit(engine, &mut h, ev);
    }
    empty(StatusCode::NO_CONTENT)
}

fn stats(shared: &Shared, engine: &Arc<Engine>, key: &str, stream: bool) -> Response<Body> {
    let cpus = shared.cfg.ncpu;
    let frame = move |engine: &Engine, id: &str, tick: u64| -> Option<Bytes> {
        let mut h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
        let c = h.containers.get_mut(id)?;
        // Between 1% and 20% of a core, changing every frame, so every
        // frame changes the container's CPU sensor (a constant one would
        // be published once: sensors publish on change).
        let used = 10_000_000 + (mix(tick ^ c.created as u64 ^ c.cpu_ns) % 190_000_000);
        let before = c.cpu_ns;
        if c.state == State::Running {
            c.cpu_ns += used;
        }
        engine.stats_frames.fetch_add(1, Ordering::Relaxed);
        let mut line = stats_frame(c, before, tick * 1_000_000_000 * cpus as u64, cpus).to_string();
        line.push('\n');
        Some(Bytes::from(line))
    };
    let id = {
        let h = engine.host.lock().unwrap_or_else(|e| e.into_inner());
        match find(&h, key) {
            Some(id) => id.to_string(),
            None => return error(StatusCode::NOT_FOUND, format!("No such container: {key}")),
        }
    };
    // The engine's system CPU clock, in seconds since some boot: small
    // enough that nanoseconds times CPUs fit in a u64.
    let tick0 = (now_s() % 1_000_000) as u64 + 1;
    if !stream {
        let f = frame(engine, &id, tick0).unwrap_or_default();
        return Response::builder()
            .status(200)
            .header("Content-Type", "application/json")
            .body(Full::new(f).boxed())
            .unwrap();
    }
    let every = shared.cfg.stats_every;
    let engine = engine.clone();
    let s = futures_util::stream::unfold(
        (engine, id, tick0, true),
        move |(engine, id, tick, first)| async move {
            if !first {
                tokio::time::sleep(every).await;
            }
            let f = frame(&engine, &id, tick)?;
            Some((
                Ok::<_, Infallible>(Frame::data(f)),
                (engine, id, tick + 1, false),
            ))
        },
    );
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(s)))
        .unwrap()
}

fn events(engine: &Arc<Engine>, q: &HashMap<String, String>) -> Response<Body> {
    let f = filters(q);
    let types = f.get("type").cloned().unwrap_or_default();
    let wanted = f.get("label").cloned().unwrap_or_default();
    let since: Option<i64> = q
        .get("since")
        .and_then(|s| s.split('.').next()?.parse().ok());
    let keep = move |e: &Event| {
        (types.is_empty() || types.iter().any(|t| t == e.typ)) && labels_match(&e.labels, &wanted)
    };
    // Subscribe before reading the log, so nothing falls between them.
    let rx = engine.events.subscribe();
    let replay: Vec<Event> = match since {
        Some(s) => engine
            .host
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|e| e.time >= s)
            .cloned()
            .collect(),
        None => vec![],
    };
    let line = |e: &Event| Bytes::from(format!("{}\n", e.json));
    let first: Vec<Result<Frame<Bytes>, Infallible>> = replay
        .iter()
        .filter(|e| keep(e))
        .map(|e| Ok(Frame::data(line(e))))
        .collect();
    let live = futures_util::stream::unfold((rx, keep), move |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if keep(&e) => {
                    return Some((Ok(Frame::data(line(&e))), (rx, keep)));
                }
                Ok(_) => continue,
                // A slow reader loses events, as with the real engine's
                // buffer; drover's resync covers it.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    let s = futures_util::stream::iter(first).chain(live);
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(s)))
        .unwrap()
}

/// drover's arguments for a pool `sim` of every simulated engine, its
/// config (see [`drover_yaml`]) and store in `dir`: a drover started
/// again with them (a rebind after `kill -9`) finds its applications.
pub fn drover_args(sim: &SimEngine, dir: &Path, max_containers: u32) -> Vec<String> {
    let config = dir.join("drover.yaml");
    std::fs::write(&config, drover_yaml(sim, "sim", max_containers)).expect("write drover.yaml");
    vec![
        "--config".into(),
        config.display().to_string(),
        "--store".into(),
        dir.join("drover.redb").display().to_string(),
    ]
}

/// A `drover.yaml` with one static location `location` of every simulated
/// engine (`sim-0`, `sim-1`, ...), at most `max_containers` each. A
/// generous `on_fire_after` (30 s): on a machine shared with builds a
/// starved drover misses the default 5 s of pings and moves healthy
/// engines' containers, which is not what these runs measure.
pub fn drover_yaml(sim: &SimEngine, location: &str, max_containers: u32) -> String {
    let mut y = format!(
        "locations:\n  {location}:\n    min_hosts: 1\n    max_hosts: {}\n    on_fire_after: 30s\n    stats_every: {}\n    placement: {{ strategy: least-containers, max_containers: {max_containers} }}\n    hosts:\n",
        sim.hosts(),
        humantime::format_duration(sim.stats_every())
    );
    for i in 0..sim.hosts() {
        y.push_str(&format!(
            "      - {{ name: sim-{i}, endpoint: \"{}\", address: 127.0.0.1 }}\n",
            sim.endpoint(i)
        ));
    }
    y
}

/// A blueprint of `clusters` clusters of `size` members each on
/// `location`, with the restarter and replacer presets. Simulated
/// containers have no network, so no health check: the member's health is
/// the engine's state (running), followed through its events.
pub fn blueprint(app: &str, location: &str, clusters: usize, size: usize) -> String {
    let mut y = format!("name: {app}\nlocation: {location}\nservices:\n");
    for c in 0..clusters {
        y.push_str(&format!(
            "  - id: c{c}\n    type: cluster\n    initial_size: {size}\n    member:\n      image: drover-sim/idle:latest\n    policies:\n      - use: resilient\n      - use: replace-failed\n"
        ));
    }
    y
}
