//! The load balancer as its own process: `drover lb-agent`.
//!
//! drover's control plane restarts (upgrades, crashes, `kill -9`); the data
//! plane must not restart with it, as kube-proxy keeps serving while the
//! API server is down. So drover runs each load balancer's proxy in a
//! process of its own, `drover lb-agent` (the same binary), started in its
//! own process group so a signal to drover's group does not reach it.
//! It holds the listening socket, its last backends and its counters, and
//! ejects failing members itself (the proxy's passive health checks).
//!
//! drover talks to an agent over a small HTTP control API on loopback,
//! authenticated by a secret drover hands the agent through its
//! environment: `GET /v1/stats`, `PUT /v1/backends`, `POST /v1/shutdown`.
//! The agent writes its state file (pid, addresses, secret) beside
//! drover's store once it listens; a restarted drover reads it, asks the
//! agent for its counters and adopts it: nothing is restarted.
//!
//! The state file is also the agent's lease: when it is gone (the
//! application destroyed, or the store's directory removed) the agent
//! stops within a second, so no agent outlives what it served.
//!
//! Members are reached as drover reaches them: the address their host
//! publishes and the published port (the agent runs on drover's machine).

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use super::proxy::{Backend, Proxy, ProxyConfig, ProxyStats};
use crate::blueprint::{LbLimits, LbMode};

/// The environment variable carrying the control secret to the agent
/// (never on its command line, which `ps` shows).
pub const SECRET_ENV: &str = "DROVER_LB_SECRET";
/// How often the agent checks its lease (the state file).
const LEASE_EVERY: Duration = Duration::from_secs(1);
/// How long a control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long drover waits for a new agent to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What an agent writes once it listens, and what a restarted drover reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub pid: u32,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The control API (loopback).
    pub control: SocketAddr,
    pub secret: String,
    pub mode: LbMode,
    pub limits: LbLimits,
}

/// Failures of starting or talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot start the load balancer process ({exe}): {source}; check that drover's binary is still where it was started from")]
    Spawn {
        exe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the load balancer process did not start: {0}")]
    Start(String),
    #[error("the load balancer's control API at {control} failed: {message}; drover starts a new load balancer if it stays unreachable")]
    Control {
        control: SocketAddr,
        message: String,
    },
    #[error("the load balancer's state file {file}: {message}")]
    State { file: String, message: String },
}

/// The arguments of `drover lb-agent` (a hidden command: drover runs it).
#[derive(Debug, Clone)]
pub struct AgentArgs {
    pub state: PathBuf,
    pub listen: SocketAddr,
    pub mode: LbMode,
    pub limits: LbLimits,
}

/// `drover lb-agent`: runs until its state file is removed, it is told to
/// shut down, or it gets SIGTERM/SIGINT.
pub fn run(args: AgentArgs) -> Result<(), AgentError> {
    let secret = std::env::var(SECRET_ENV).map_err(|_| {
        AgentError::Start(format!(
            "{SECRET_ENV} is not set; `drover lb-agent` is started by drover serve, not by hand"
        ))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Start(format!("tokio runtime: {e}")))?;
    rt.block_on(serve_agent(args, secret))
}

async fn serve_agent(args: AgentArgs, secret: String) -> Result<(), AgentError> {
    let cfg = ProxyConfig::from_blueprint(args.mode, &args.limits);
    let proxy = Proxy::start(args.listen, cfg).await.map_err(|e| {
        AgentError::Start(format!(
            "cannot listen on {}: {e}; choose another `port` (0 picks a free one)",
            args.listen
        ))
    })?;
    let control = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| AgentError::Start(format!("control listener: {e}")))?;
    let state = AgentState {
        pid: std::process::id(),
        listen: proxy.local_addr(),
        control: control
            .local_addr()
            .map_err(|e| AgentError::Start(format!("control listener: {e}")))?,
        secret,
        mode: args.mode,
        limits: args.limits.clone(),
    };
    write_state(&args.state, &state)?;
    info!(listen = %state.listen, control = %state.control, "lb-agent serving");
    let stop = Arc::new(tokio::sync::Notify::new());
    let ctl = tokio::spawn(control_loop(
        control,
        proxy.clone(),
        state.secret.clone(),
        stop.clone(),
    ));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AgentError::Start(format!("signal handler: {e}")))?;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LEASE_EVERY) => {
                if !lease_held(&args.state, state.pid) {
                    info!(state = %args.state.display(), "lb-agent: state file gone; stopping");
                    break;
                }
            }
            _ = stop.notified() => { info!("lb-agent: told to stop"); break; }
            _ = term.recv() => { info!("lb-agent: SIGTERM; stopping"); break; }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    ctl.abort();
    proxy.shutdown();
    if lease_held(&args.state, state.pid) {
        let _ = std::fs::remove_file(&args.state);
    }
    Ok(())
}

/// The state file still names this agent (a newer agent may have replaced it).
fn lease_held(file: &Path, pid: u32) -> bool {
    read_state(file).is_ok_and(|s| s.pid == pid)
}

fn write_state(file: &Path, state: &AgentState) -> Result<(), AgentError> {
    let err = |e: std::io::Error| AgentError::State {
        file: file.display().to_string(),
        message: e.to_string(),
    };
    let tmp = file.with_extension("tmp");
    let text = serde_json::to_vec_pretty(state).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(err)?;
    // Only the owner reads the secret.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    std::fs::rename(&tmp, file).map_err(err)
}

pub fn read_state(file: &Path) -> Result<AgentState, AgentError> {
    let err = |m: String| AgentError::State {
        file: file.display().to_string(),
        message: m,
    };
    let text = std::fs::read(file).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| err(e.to_string()))
}

async fn control_loop(
    listener: TcpListener,
    proxy: Proxy,
    secret: String,
    stop: Arc<tokio::sync::Notify>,
) {
    let secret = Arc::new(format!("Bearer {secret}"));
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let proxy = proxy.clone();
        let secret = secret.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let proxy = proxy.clone();
                let secret = secret.clone();
                let stop = stop.clone();
                async move { Ok::<_, Infallible>(control(req, &proxy, &secret, &stop).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn control(
    req: Request<hyper::body::Incoming>,
    proxy: &Proxy,
    secret: &str,
    stop: &tokio::sync::Notify,
) -> Response<Full<Bytes>> {
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == secret.as_bytes());
    if !authorized {
        return reply(StatusCode::UNAUTHORIZED, "a bearer secret is required\n");
    }
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/v1/stats") => reply(
            StatusCode::OK,
            serde_json::to_vec(&proxy.stats()).unwrap_or_default(),
        ),
        (Method::GET, "/v1/backends") => reply(
            StatusCode::OK,
            serde_json::to_vec(&proxy.backends()).unwrap_or_default(),
        ),
        (Method::PUT, "/v1/backends") => {
            let body = match Limited::new(req.into_body(), 4 << 20).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return reply(StatusCode::BAD_REQUEST, format!("body: {e}\n")),
            };
            match serde_json::from_slice::<Vec<Backend>>(&body) {
                Ok(b) => {
                    debug!(backends = b.len(), "lb-agent: backends set");
                    proxy.set_backends(b);
                    reply(StatusCode::NO_CONTENT, Bytes::new())
                }
                Err(e) => reply(StatusCode::BAD_REQUEST, format!("backends: {e}\n")),
            }
        }
        (Method::POST, "/v1/shutdown") => {
            stop.notify_one();
            reply(StatusCode::NO_CONTENT, Bytes::new())
        }
        _ => reply(StatusCode::NOT_FOUND, "no such control route\n"),
    }
}

/// drover's side of one agent.
#[derive(Clone)]
pub struct AgentClient {
    pub state: AgentState,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("pid", &self.state.pid)
            .field("listen", &self.state.listen)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    fn new(state: AgentState) -> Self {
        AgentClient {
            state,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, AgentError> {
        let control = self.state.control;
        let fail = |message: String| AgentError::Control { control, message };
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{control}{path}"))
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.state.secret),
            )
            .body(Full::new(body))
            .map_err(|e| fail(e.to_string()))?;
        let resp = tokio::time::timeout(CONTROL_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| fail(format!("no answer within {CONTROL_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = tokio::time::timeout(CONTROL_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| fail("the answer did not finish".into()))?
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(fail(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(body)
    }

    /// The agent's counters since it started.
    pub async fn stats(&self) -> Result<ProxyStats, AgentError> {
        let body = self.call(Method::GET, "/v1/stats", Bytes::new()).await?;
        serde_json::from_slice(&body).map_err(|e| AgentError::Control {
            control: self.state.control,
            message: format!("stats: {e}"),
        })
    }

    /// Replaces the agent's pool.
    pub async fn set_backends(&self, backends: &[Backend]) -> Result<(), AgentError> {
        let body = serde_json::to_vec(backends).unwrap_or_default();
        self.call(Method::PUT, "/v1/backends", body.into())
            .await
            .map(drop)
    }

    /// Stops the agent now (its lease, the state file, is released by
    /// [`release`]; without this call it stops within a second of that).
    pub async fn shutdown(&self) {
        if let Err(e) = self.call(Method::POST, "/v1/shutdown", Bytes::new()).await {
            warn!(error = %e, "lb-agent did not take the shutdown; it stops by itself once its state file is gone");
        }
    }
}

/// Gives up an agent's lease: removes its state file if it still names
/// `pid` (a newer agent's file is left alone), or whatever agent it names
/// when the pid is unknown. Synchronous and quick, so that a load balancer
/// made again right after sees no stale file.
pub fn release(file: &Path, pid: Option<u32>) {
    let ours = match (pid, read_state(file)) {
        (_, Err(_)) => false,
        (Some(p), Ok(s)) => s.pid == p,
        (None, Ok(_)) => true,
    };
    if ours {
        let _ = std::fs::remove_file(file);
    }
}

/// The agent a previous drover left, if its state file is there and it
/// answers with the secret (pure I/O, no side effect).
pub async fn adopt(file: &Path) -> Option<AgentClient> {
    let state = read_state(file).ok()?;
    let client = AgentClient::new(state);
    match client.stats().await {
        Ok(_) => Some(client),
        Err(e) => {
            debug!(file = %file.display(), error = %e, "lb-agent state file left, agent gone");
            None
        }
    }
}

/// A random secret from the kernel's generator, hex.
fn new_secret() -> Result<String, AgentError> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| AgentError::Start(format!("reading /dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Starts `drover lb-agent` and waits until it listens.
pub async fn spawn(
    file: &Path,
    listen: SocketAddr,
    mode: LbMode,
    limits: &LbLimits,
) -> Result<AgentClient, AgentError> {
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| AgentError::State {
                file: dir.display().to_string(),
                message: e.to_string(),
            })?;
    }
    let _ = tokio::fs::remove_file(file).await;
    let exe = std::env::current_exe().map_err(|e| AgentError::Spawn {
        exe: "drover".into(),
        source: e,
    })?;
    let log_path = file.with_extension("log");
    let log = std::fs::File::create(&log_path).map_err(|e| AgentError::State {
        file: log_path.display().to_string(),
        message: e.to_string(),
    })?;
    let secret = new_secret()?;
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.arg("lb-agent")
        .arg("--state")
        .arg(file)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--mode")
        .arg(mode.as_str())
        .arg("--limits")
        .arg(serde_json::to_string(limits).unwrap_or_default())
        .env(SECRET_ENV, &secret)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        // Its own process group: Ctrl-C or a signal to drover's group
        // must not stop the data plane.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|e| AgentError::Spawn {
        exe: exe.display().to_string(),
        source: e,
    })?;
    let pid = child.id().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(state) = read_state(file) {
            if state.pid == pid && state.secret == secret {
                // tokio reaps the child when it exits; drover does not wait on it.
                drop(child);
                return Ok(AgentClient::new(state));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = log
                .lines()
                .rev()
                .find(|l| l.contains("error"))
                .unwrap_or(log.lines().last().unwrap_or(""))
                .trim()
                .to_string();
            return Err(AgentError::Start(format!("it exited ({status}): {why}")));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(AgentError::Start(format!(
                "it did not listen within {START_TIMEOUT:?}; see {}",
                log_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-lb.json");
        let s = AgentState {
            pid: 42,
            listen: "127.0.0.1:8000".parse().unwrap(),
            control: "127.0.0.1:9000".parse().unwrap(),
            secret: "s".into(),
            mode: LbMode::Http,
            limits: LbLimits::default(),
        };
        write_state(&file, &s).unwrap();
        assert_eq!(read_state(&file).unwrap(), s);
        assert!(lease_held(&file, 42));
        assert!(!lease_held(&file, 43));
        std::fs::remove_file(&file).unwrap();
        assert!(!lease_held(&file, 42));
    }

    #[tokio::test]
    async fn the_control_api_refuses_a_wrong_secret_and_serves_the_right_one() {
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), ProxyConfig::default())
            .await
            .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = l.local_addr().unwrap();
        let stop = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(control_loop(l, proxy.clone(), "right".into(), stop));
        let state = |secret: &str| AgentState {
            pid: 1,
            listen: proxy.local_addr(),
            control,
            secret: secret.into(),
            mode: LbMode::Tcp,
            limits: LbLimits::default(),
        };
        let wrong = AgentClient::new(state("wrong"));
        assert!(wrong.stats().await.is_err());
        let right = AgentClient::new(state("right"));
        let b = Backend {
            member: "web-1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        right.set_backends(std::slice::from_ref(&b)).await.unwrap();
        assert_eq!(proxy.backends(), vec![b]);
        assert_eq!(right.stats().await.unwrap().connections_total, 0);
    }
}
