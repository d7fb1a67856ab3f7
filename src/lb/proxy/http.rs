//! HTTP mode: every request of a keep-alive connection is balanced, counted
//! and timed on its own.
//!
//! hyper parses the client side (with the header timeout and the read
//! buffer bound) and hyper-util's pooled client keeps keep-alive
//! connections to the members, so a member reached through a connection
//! opened for another client is reused rather than re-dialled.
//!
//! Passive health, as in the TCP mode: a member whose connect fails or
//! times out, or whose connection fails before the response head, is
//! ejected, and the request goes to another member when that is safe:
//! always on a connect failure (nothing was sent), and for any failure of
//! an idempotent request whose body was kept (at most `max_buffered`
//! bytes). A request that cannot be retried gets a 502; no member at all,
//! a 503.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use super::conn::ActiveGuard;
use super::{Inner, ProxyConfig};

/// Body type of every forwarded request and response.
pub(super) type Body = BoxBody<Bytes, hyper::Error>;

/// The pooled client to the members.
pub(super) type MemberClient = Client<HttpConnector, Body>;

/// How many idle keep-alive connections are kept per member: enough for a
/// few hundred concurrent clients without re-dialling.
const IDLE_PER_MEMBER: usize = 256;
/// Idle connections to a member are closed after this (below the
/// workload's and most servers' own keep-alive timeouts, so the pool
/// rarely picks a connection the member is closing).
const MEMBER_IDLE: Duration = Duration::from_secs(20);

pub(super) fn member_client(cfg: &ProxyConfig) -> MemberClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(cfg.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(MEMBER_IDLE)
        .pool_max_idle_per_host(IDLE_PER_MEMBER)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// When the connection last finished a request, and how many are in flight.
struct Activity {
    in_flight: AtomicU64,
    last: AtomicU64,
}

pub(super) async fn serve(guard: ActiveGuard, client: TcpStream, peer: SocketAddr) {
    let inner = guard.0.clone();
    if let Err(e) = client.set_nodelay(true) {
        debug!(%peer, error = %e, "lb: set_nodelay on client socket failed");
    }
    let activity = Arc::new(Activity {
        in_flight: AtomicU64::new(0),
        last: AtomicU64::new(inner.now()),
    });
    let svc = {
        let inner = inner.clone();
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let inner = inner.clone();
            let activity = activity.clone();
            async move {
                activity.in_flight.fetch_add(1, Ordering::Relaxed);
                let resp = forward(&inner, req).await;
                activity.last.store(inner.now(), Ordering::Relaxed);
                activity.in_flight.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    // A connection keeps the settings in force when it came.
    let cfg = inner.cfg();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .keep_alive(true)
        .max_buf_size(cfg.max_buffered.max(8192));
    let conn = builder.serve_connection(TokioIo::new(client), svc);
    tokio::pin!(conn);
    // Idle keep-alive connections are closed by this watchdog: hyper's own
    // timeout covers only the time to read a request's head.
    let idle = cfg.idle_timeout;
    let mut next = tokio::time::Instant::now() + idle;
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "lb: http connection ended with error");
                }
                return;
            }
            _ = tokio::time::sleep_until(next), if !closing => {
                let idle_for = Duration::from_nanos(inner.now().saturating_sub(activity.last.load(Ordering::Relaxed)));
                let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
                if !busy && idle_for >= idle {
                    debug!(%peer, ?idle, "lb: idle keep-alive connection closed");
                    // Graceful: a response being written still finishes.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                } else {
                    let wait = if busy { idle } else { idle - idle_for };
                    next = tokio::time::Instant::now() + wait.max(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Headers that belong to one hop (RFC 9110 7.6.1), never forwarded.
fn strip_hop_headers(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for n in named {
        h.remove(n.as_str());
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// Methods that may be sent twice (RFC 9110 9.2.2).
pub(super) fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The request body's declared length; `None` when chunked or unknown.
fn declared_len(h: &HeaderMap) -> Option<u64> {
    if h.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    match h.get(header::CONTENT_LENGTH) {
        None => Some(0),
        Some(v) => v.to_str().ok()?.trim().parse().ok(),
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|e| match e {}).boxed()
}

fn answer(status: StatusCode, why: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{why}\n"))));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Counts a response on its way to the client; its latency is recorded
/// when its body has been handed to the client's connection.
fn done(inner: &Arc<Inner>, started: Instant, resp: Response<Body>) -> Response<Body> {
    inner.requests_total.fetch_add(1, Ordering::Relaxed);
    let class = (resp.status().as_u16() / 100) as usize;
    if (1..=5).contains(&class) {
        inner.classes[class - 1].fetch_add(1, Ordering::Relaxed);
    }
    resp.map(|body| {
        Timed {
            body,
            started,
            inner: inner.clone(),
        }
        .boxed()
    })
}

/// A response body that records the request's latency, from its head read
/// to the end of its response written (or the response dropped: a client
/// gone mid-body), as a load generator counts it.
struct Timed {
    body: Body,
    started: Instant,
    inner: Arc<Inner>,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.inner.latency.record(self.started.elapsed());
    }
}

impl hyper::body::Body for Timed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn forward(inner: &Arc<Inner>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let candidates = inner.candidates();
    if candidates.is_empty() {
        inner.errors_total.fetch_add(1, Ordering::Relaxed);
        return done(
            inner,
            started,
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "no member of the target cluster is running",
            ),
        );
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_headers(&mut parts.headers);
    // A body kept in memory can be sent again; a larger or chunked one
    // streams through once.
    // The settings in force when the request came: one read for all of it
    // (they may change in place meanwhile; this request keeps its own).
    let cfg = inner.cfg();
    let limit = cfg.max_buffered;
    let mut kept: Option<Bytes> = None;
    let mut streamed: Option<Incoming> = None;
    match declared_len(&parts.headers) {
        Some(0) => kept = Some(Bytes::new()),
        Some(n) if n <= limit as u64 => match Limited::new(body, limit).collect().await {
            Ok(b) => kept = Some(b.to_bytes()),
            Err(e) => {
                debug!(error = %e, "lb: reading the request body failed");
                return done(
                    inner,
                    started,
                    answer(
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read",
                    ),
                );
            }
        },
        _ => streamed = Some(body),
    }
    let may_resend = kept.is_some() && idempotent(&parts.method);
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    for (attempt, entry) in candidates.iter().enumerate() {
        let body = match (&kept, streamed.take()) {
            (Some(b), _) if b.is_empty() => empty(),
            (Some(b), _) => full(b.clone()),
            (None, Some(s)) => s.boxed(),
            (None, None) => break,
        };
        if attempt > 0 {
            inner.retries_total.fetch_add(1, Ordering::Relaxed);
        }
        let uri = format!("http://{}{}", entry.backend.addr, target);
        let mut builder = Request::builder().method(parts.method.clone()).uri(uri);
        if let Some(h) = builder.headers_mut() {
            *h = parts.headers.clone();
        }
        let Ok(up) = builder.body(body) else {
            return done(
                inner,
                started,
                answer(StatusCode::BAD_REQUEST, "the request target is not valid"),
            );
        };
        let sent = tokio::time::timeout(cfg.first_byte_timeout, inner.client.request(up)).await;
        let why = match sent {
            Ok(Ok(resp)) => {
                inner.served_by(&entry.backend.member);
                let (mut rp, rb) = resp.into_parts();
                strip_hop_headers(&mut rp.headers);
                return done(inner, started, Response::from_parts(rp, rb.boxed()));
            }
            Ok(Err(e)) => {
                let connect = e.is_connect();
                debug!(member = %entry.backend.member, addr = %entry.backend.addr, error = %e, connect,
                    "lb: member failed before answering; ejecting");
                inner.eject(entry);
                if connect {
                    // Nothing was sent: the body (if streamed) is lost with
                    // the request, so only a kept body goes again.
                    if kept.is_some() {
                        continue;
                    }
                    "the member refused the connection"
                } else if may_resend {
                    continue;
                } else {
                    "the member failed before answering"
                }
            }
            Err(_) => {
                debug!(member = %entry.backend.member, timeout = ?cfg.first_byte_timeout,
                    "lb: member did not answer in time; ejecting");
                inner.eject(entry);
                if may_resend {
                    continue;
                }
                "the member did not answer in time"
            }
        };
        inner.errors_total.fetch_add(1, Ordering::Relaxed);
        return done(inner, started, answer(StatusCode::BAD_GATEWAY, why));
    }
    inner.errors_total.fetch_add(1, Ordering::Relaxed);
    done(
        inner,
        started,
        answer(StatusCode::BAD_GATEWAY, "no member could answer"),
    )
}
