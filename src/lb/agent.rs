//! The load balancer's data plane as a program of its own: `drover
//! lb-agent`, run as a container on a host of the load balancer's location.
//!
//! drover's control plane restarts (upgrades, crashes, `kill -9`); the data
//! plane must not restart with it, as kube-proxy keeps serving while the
//! API server is down. So each load balancer's proxy runs in a container
//! made from drover's own binary (see `crate::host::agent`: the image, and
//! why host networking). It holds the listening socket, its last backends
//! and its counters, and ejects failing members itself (the proxy's passive
//! health checks).
//!
//! drover talks to an agent over a small HTTP control API, over TLS with a
//! certificate the agent makes when it starts and drover pins (see
//! [`super::control_tls`]), on a port the agent picks: `GET /v1/stats`, `GET|PUT /v1/backends`, `GET|PUT
//! /v1/settings` (mode and limits, changed in place: the listening socket
//! and open connections stay), `POST /v1/shutdown`. Every call carries the
//! secret drover generated for that agent (`Authorization: Bearer`),
//! compared in constant time; the secret reaches the agent in its
//! environment, never on its command line. The agent prints one ready line
//! (its listen and control addresses and its certificate's SHA-256, not the
//! secret) on stdout.
//!
//! A restarted drover, or a standby taking over, finds the container by
//! its name and labels, reads the secret from its environment and the
//! addresses from its ready line, and adopts it: nothing is restarted and
//! the counters go on.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tracing::{debug, info};

use super::proxy::{Backend, Proxy, ProxyConfig, ProxyStats};
use crate::blueprint::{LbLimits, LbMode};

/// The environment variable carrying the control secret to the agent
/// (never on its command line, which `ps` shows).
pub const SECRET_ENV: &str = "DROVER_LB_SECRET";
/// The start of the agent's ready line on stdout; JSON [`AgentReady`] follows.
pub const READY_PREFIX: &str = "drover-lb-agent ready ";
/// How long a control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);

/// What an agent prints once it listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReady {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The control API (TLS).
    pub control: SocketAddr,
    /// SHA-256 of the control API's certificate, hex: drover accepts no other.
    pub cert_sha256: String,
}

impl AgentReady {
    /// From a ready line (pure).
    pub fn parse(line: &str) -> Option<AgentReady> {
        serde_json::from_str(line.strip_prefix(READY_PREFIX)?.trim()).ok()
    }
}

/// The settings an agent changes in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    pub mode: LbMode,
    pub limits: LbLimits,
}

/// Failures of starting or talking to an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the load balancer agent did not start: {0}")]
    Start(String),
    #[error("the load balancer's control API at {control} failed: {message}; drover replaces the load balancer if it stays unreachable")]
    Control {
        control: SocketAddr,
        message: String,
    },
}

/// The arguments of `drover lb-agent` (a hidden command: drover runs it).
#[derive(Debug, Clone)]
pub struct AgentArgs {
    pub listen: SocketAddr,
    /// Where the control API listens (port 0: a free one).
    pub control: SocketAddr,
    pub settings: AgentSettings,
}

/// `drover lb-agent`: runs until it is told to shut down or gets
/// SIGTERM/SIGINT (`docker stop`).
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
    let cfg = ProxyConfig::from_blueprint(args.settings.mode, &args.settings.limits);
    let proxy = Proxy::start(args.listen, cfg).await.map_err(|e| {
        AgentError::Start(format!(
            "cannot listen on {}: {e}; choose another `port` (0 picks a free one)",
            args.listen
        ))
    })?;
    let (tls, cert_sha256) = super::control_tls::server().map_err(AgentError::Start)?;
    let control = TcpListener::bind(args.control)
        .await
        .map_err(|e| AgentError::Start(format!("control listener on {}: {e}", args.control)))?;
    let ready = AgentReady {
        listen: proxy.local_addr(),
        control: control
            .local_addr()
            .map_err(|e| AgentError::Start(format!("control listener: {e}")))?,
        cert_sha256,
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{READY_PREFIX}{}",
            serde_json::to_string(&ready).unwrap_or_default()
        );
        let _ = out.flush();
    }
    info!(listen = %ready.listen, control = %ready.control, "lb-agent serving");
    let stop = Arc::new(tokio::sync::Notify::new());
    let agent = Agent {
        proxy: proxy.clone(),
        settings: Arc::new(RwLock::new(args.settings)),
        secret: Arc::new(format!("Bearer {secret}")),
        stop: stop.clone(),
    };
    let ctl = tokio::spawn(control_loop(control, tls, agent));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| AgentError::Start(format!("signal handler: {e}")))?;
    tokio::select! {
        _ = stop.notified() => info!("lb-agent: told to stop"),
        _ = term.recv() => info!("lb-agent: SIGTERM; stopping"),
        _ = tokio::signal::ctrl_c() => {}
    }
    ctl.abort();
    proxy.shutdown();
    Ok(())
}

/// What the control API serves.
#[derive(Clone)]
struct Agent {
    proxy: Proxy,
    settings: Arc<RwLock<AgentSettings>>,
    /// `Bearer <secret>`, as the header must read.
    secret: Arc<String>,
    stop: Arc<tokio::sync::Notify>,
}

async fn control_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, agent: Agent) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((s, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let agent = agent.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A handshake that stalls is dropped, not kept forever.
            let Ok(Ok(s)) = tokio::time::timeout(CONTROL_TIMEOUT, acceptor.accept(s)).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let agent = agent.clone();
                async move { Ok::<_, Infallible>(control(req, &agent).await) }
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

/// Equal without an early exit, so the time taken does not tell an
/// attacker how much of a guess was right (pure).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn body_of<T: serde::de::DeserializeOwned>(
    req: Request<hyper::body::Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let body = Limited::new(req.into_body(), 4 << 20)
        .collect()
        .await
        .map_err(|e| reply(StatusCode::BAD_REQUEST, format!("body: {e}\n")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| reply(StatusCode::BAD_REQUEST, format!("{e}\n")))
}

async fn control(req: Request<hyper::body::Incoming>, agent: &Agent) -> Response<Full<Bytes>> {
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| constant_time_eq(v.as_bytes(), agent.secret.as_bytes()));
    if !authorized {
        return reply(StatusCode::UNAUTHORIZED, "a bearer secret is required\n");
    }
    let json = |v: &dyn erased::Json| reply(StatusCode::OK, v.to_vec());
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/v1/stats") => json(&agent.proxy.stats()),
        (Method::GET, "/v1/backends") => json(&agent.proxy.backends()),
        (Method::PUT, "/v1/backends") => match body_of::<Vec<Backend>>(req).await {
            Ok(b) => {
                debug!(backends = b.len(), "lb-agent: backends set");
                agent.proxy.set_backends(b);
                reply(StatusCode::NO_CONTENT, Bytes::new())
            }
            Err(r) => r,
        },
        (Method::GET, "/v1/settings") => {
            json(&*agent.settings.read().unwrap_or_else(|p| p.into_inner()))
        }
        (Method::PUT, "/v1/settings") => match body_of::<AgentSettings>(req).await {
            Ok(s) => {
                info!(mode = s.mode.as_str(), limits = ?s.limits, "lb-agent: settings changed in place");
                agent
                    .proxy
                    .set_config(ProxyConfig::from_blueprint(s.mode, &s.limits));
                *agent.settings.write().unwrap_or_else(|p| p.into_inner()) = s.clone();
                json(&s)
            }
            Err(r) => r,
        },
        (Method::POST, "/v1/shutdown") => {
            agent.stop.notify_one();
            reply(StatusCode::NO_CONTENT, Bytes::new())
        }
        _ => reply(StatusCode::NOT_FOUND, "no such control route\n"),
    }
}

/// Serialising through a `dyn` (the match arms answer different types).
mod erased {
    pub trait Json {
        fn to_vec(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_vec(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

/// drover's side of one agent.
#[derive(Clone)]
pub struct AgentClient {
    /// Where drover reaches the control API.
    pub control: SocketAddr,
    /// Where clients connect (as the agent bound it).
    pub listen: SocketAddr,
    secret: String,
    /// Trusts the agent's certificate only (from its ready line).
    tls: Result<Arc<rustls::ClientConfig>, String>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("control", &self.control)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// A client of the agent at `control` whose certificate's SHA-256 is `cert_sha256`.
    pub fn new(control: SocketAddr, listen: SocketAddr, secret: String, cert_sha256: &str) -> Self {
        AgentClient {
            control,
            listen,
            secret,
            tls: super::control_tls::client(cert_sha256),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, AgentError> {
        let control = self.control;
        let fail = |message: String| AgentError::Control { control, message };
        tokio::time::timeout(CONTROL_TIMEOUT, self.call_once(method, path, body))
            .await
            .map_err(|_| fail(format!("no answer within {CONTROL_TIMEOUT:?}")))?
            .map_err(fail)
    }

    /// One request on a connection of its own (a call a second per load
    /// balancer does not need a pool).
    async fn call_once(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, String> {
        let tls = self.tls.clone()?;
        let tcp = tokio::net::TcpStream::connect(self.control)
            .await
            .map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(super::control_tls::server_name(), tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "drover-lb-agent")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.secret),
            )
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        Ok(body)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        b: &[u8],
    ) -> Result<T, AgentError> {
        serde_json::from_slice(b).map_err(|e| AgentError::Control {
            control: self.control,
            message: format!("{what}: {e}"),
        })
    }

    /// The agent's counters since it started.
    pub async fn stats(&self) -> Result<ProxyStats, AgentError> {
        let body = self.call(Method::GET, "/v1/stats", Bytes::new()).await?;
        self.decode("stats", &body)
    }

    /// Replaces the agent's pool.
    pub async fn set_backends(&self, backends: &[Backend]) -> Result<(), AgentError> {
        let body = serde_json::to_vec(backends).unwrap_or_default();
        self.call(Method::PUT, "/v1/backends", body.into())
            .await
            .map(drop)
    }

    /// The agent's settings now.
    pub async fn settings(&self) -> Result<AgentSettings, AgentError> {
        let body = self.call(Method::GET, "/v1/settings", Bytes::new()).await?;
        self.decode("settings", &body)
    }

    /// Changes the agent's settings in place; returns them as it took them.
    pub async fn set_settings(&self, s: &AgentSettings) -> Result<AgentSettings, AgentError> {
        let body = serde_json::to_vec(s).unwrap_or_default();
        let body = self.call(Method::PUT, "/v1/settings", body.into()).await?;
        self.decode("settings", &body)
    }

    /// Stops the agent now.
    pub async fn shutdown(&self) -> Result<(), AgentError> {
        self.call(Method::POST, "/v1/shutdown", Bytes::new())
            .await
            .map(drop)
    }
}

/// A random secret from the kernel's generator, hex.
pub fn new_secret() -> Result<String, AgentError> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| AgentError::Start(format!("reading /dev/urandom: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The command line of an agent (no secret in it).
pub fn agent_args(listen: SocketAddr, settings: &AgentSettings) -> Vec<String> {
    vec![
        "lb-agent".into(),
        "--listen".into(),
        listen.to_string(),
        "--mode".into(),
        settings.mode.as_str().into(),
        "--limits".into(),
        serde_json::to_string(&settings.limits).unwrap_or_default(),
    ]
}

/// The secret in a container's environment, if it has one (pure).
pub fn secret_in(env: &[String]) -> Option<String> {
    env.iter().find_map(|e| {
        e.strip_prefix(&format!("{SECRET_ENV}="))
            .map(str::to_string)
    })
}

/// Spawns the agent's control API on `listener` for a proxy (tests that
/// run an agent in-process); returns its certificate's fingerprint.
pub fn serve_control(
    listener: TcpListener,
    proxy: Proxy,
    settings: AgentSettings,
    secret: &str,
) -> Result<String, AgentError> {
    let (tls, pin) = super::control_tls::server().map_err(AgentError::Start)?;
    tokio::spawn(control_loop(
        listener,
        tls,
        Agent {
            proxy,
            settings: Arc::new(RwLock::new(settings)),
            secret: Arc::new(format!("Bearer {secret}")),
            stop: Arc::new(tokio::sync::Notify::new()),
        },
    ));
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_round_trips() {
        let r = AgentReady {
            listen: "0.0.0.0:8000".parse().unwrap(),
            control: "0.0.0.0:9000".parse().unwrap(),
            cert_sha256: "ab".repeat(32),
        };
        let line = format!("{READY_PREFIX}{}", serde_json::to_string(&r).unwrap());
        assert_eq!(AgentReady::parse(&line), Some(r));
        assert_eq!(AgentReady::parse("something else"), None);
    }

    #[test]
    fn the_secret_is_read_from_the_environment_only() {
        let env = vec!["PATH=/bin".to_string(), format!("{SECRET_ENV}=abc")];
        assert_eq!(secret_in(&env).as_deref(), Some("abc"));
        assert_eq!(secret_in(&env[..1]), None);
        let args = agent_args(
            "0.0.0.0:1".parse().unwrap(),
            &AgentSettings {
                mode: LbMode::Http,
                limits: LbLimits::default(),
            },
        );
        assert!(!args.iter().any(|a| a.contains("abc")), "{args:?}");
    }

    #[test]
    fn equal_secrets_compare_equal_and_others_do_not() {
        assert!(constant_time_eq(b"Bearer x1", b"Bearer x1"));
        assert!(!constant_time_eq(b"Bearer x1", b"Bearer x2"));
        assert!(!constant_time_eq(b"Bearer x", b"Bearer x1"));
    }

    #[tokio::test]
    async fn the_control_api_refuses_a_wrong_secret_and_changes_settings_in_place() {
        let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), ProxyConfig::default())
            .await
            .unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control = l.local_addr().unwrap();
        let settings = AgentSettings {
            mode: LbMode::Tcp,
            limits: LbLimits::default(),
        };
        let pin = serve_control(l, proxy.clone(), settings.clone(), "right").unwrap();
        let wrong = AgentClient::new(control, proxy.local_addr(), "wrong".into(), &pin);
        let e = wrong.stats().await.unwrap_err().to_string();
        assert!(e.contains("401"), "{e}");
        // The right secret to a certificate other than the pinned one: refused
        // before the secret is sent.
        let other = super::super::control_tls::fingerprint(b"another certificate");
        let spoofed = AgentClient::new(control, proxy.local_addr(), "right".into(), &other);
        let e = spoofed.stats().await.unwrap_err().to_string();
        assert!(e.contains("TLS"), "{e}");
        let right = AgentClient::new(control, proxy.local_addr(), "right".into(), &pin);
        let b = Backend {
            member: "web-1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        right.set_backends(std::slice::from_ref(&b)).await.unwrap();
        assert_eq!(proxy.backends(), vec![b]);
        assert_eq!(right.stats().await.unwrap().connections_total, 0);
        assert_eq!(right.settings().await.unwrap(), settings);
        let changed = AgentSettings {
            mode: LbMode::Http,
            limits: LbLimits {
                max_connections: 7,
                ..LbLimits::default()
            },
        };
        assert_eq!(right.set_settings(&changed).await.unwrap(), changed);
        assert_eq!(right.settings().await.unwrap(), changed);
        // The proxy took it: same socket, new mode.
        assert_eq!(right.stats().await.unwrap().mode, LbMode::Http);
        assert_eq!(proxy.config().max_connections, 7);
    }
}
