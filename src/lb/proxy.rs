//! Data plane of drover's built-in TCP load balancer.
//!
//! A [`Proxy`] owns a listening socket and forwards every accepted client
//! connection to one backend of its pool, chosen round-robin among the
//! backends that are not currently ejected.
//!
//! Failure handling:
//! * a backend whose connect fails (refused, unreachable, slower than
//!   [`ProxyConfig::connect_timeout`]) is ejected for [`ProxyConfig::eject_for`]
//!   and the next backend is tried, up to [`ProxyConfig::max_attempts`]
//!   distinct backends per client connection;
//! * backends are usually reached through Docker's userland proxy, which
//!   accepts connections even when the container behind it is gone and then
//!   closes them. Until the backend sends its first byte, the client bytes
//!   forwarded to it are also kept (up to [`ProxyConfig::replay_buffer`]
//!   bytes); if the backend closes or resets before answering, it is ejected
//!   and the buffered bytes are replayed to the next backend. Once the first
//!   backend byte reaches the client the connection is committed and becomes
//!   a plain bidirectional copy with half-close handling.
//!
//! Nothing here locks per byte: the pool is an `Arc` snapshot read once per
//! connection, ejection is an atomic deadline per backend, and the per-member
//! counters are a mutex touched once per served connection.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::blueprint::{LbLimits, LbMode};

/// One upstream endpoint of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Backend {
    /// Member (container) name; used for ejection identity and statistics.
    pub member: String,
    /// Address the proxy connects to.
    pub addr: SocketAddr,
}

/// Tuning knobs of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Maximum time to establish a TCP connection to a backend.
    pub connect_timeout: Duration,
    /// How long a backend that refused or failed stays out of the rotation.
    pub eject_for: Duration,
    /// Number of distinct backends tried per client connection (at least 1).
    pub max_attempts: usize,
    /// Maximum number of client bytes kept for replay before the backend answers.
    pub replay_buffer: usize,
    /// Client connections open at once; one more is closed at accept. A
    /// connection holds up to ~96 KiB before its backend answers (two
    /// read buffers and the replay buffer), so the cap bounds memory
    /// (10 000 × 96 KiB ≈ 1 GiB at worst). Default 10 000.
    pub max_connections: usize,
    /// How long a connection may wait from accept until a backend sends
    /// its first byte (a slow or silent client, or a slow backend); then
    /// it is closed. After that first byte the connection is free to last.
    /// Default 60 s (long requests; HAProxy's `timeout client` is often
    /// 30 to 60 s).
    pub first_byte_timeout: Duration,
    /// `http`: each request balanced, counted and timed; `tcp`: bytes.
    pub mode: LbMode,
    /// HTTP mode: time a client has to send a request's head.
    pub header_timeout: Duration,
    /// HTTP mode: a keep-alive connection without a request this long is closed.
    pub idle_timeout: Duration,
    /// HTTP mode: hyper's read buffer and the largest request body kept
    /// to retry on another member.
    pub max_buffered: usize,
}

impl ProxyConfig {
    /// The data plane's settings from a blueprint's mode and limits.
    pub fn from_blueprint(mode: LbMode, limits: &LbLimits) -> Self {
        ProxyConfig {
            mode,
            max_connections: limits.max_connections as usize,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            max_buffered: limits.max_buffered_bytes as usize,
            replay_buffer: limits.max_buffered_bytes as usize,
            ..ProxyConfig::default()
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_millis(500),
            eject_for: Duration::from_secs(5),
            max_attempts: 3,
            replay_buffer: 64 * 1024,
            max_connections: 10_000,
            first_byte_timeout: Duration::from_secs(60),
            mode: LbMode::Tcp,
            header_timeout: crate::blueprint::lb::default_header_timeout(),
            idle_timeout: crate::blueprint::lb::default_idle_timeout(),
            max_buffered: crate::blueprint::lb::default_max_buffered_bytes() as usize,
        }
    }
}

/// Snapshot of the proxy counters (also the agent's `GET /v1/stats` answer).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections_total: u64,
    /// Client connections open now.
    pub active: u64,
    /// Client connections that got no backend (closed without service).
    pub errors_total: u64,
    /// Extra backend attempts (after a connect failure or an empty response).
    pub retries_total: u64,
    /// Client connections served, per member name.
    pub per_member: BTreeMap<String, u64>,
    /// Sum of successful backend connect latencies, in seconds.
    pub connect_seconds_sum: f64,
    /// Number of successful backend connects.
    pub connect_seconds_count: u64,
    /// The proxy's mode.
    pub mode: LbMode,
    /// HTTP mode: responses sent to clients.
    pub requests_total: u64,
    /// HTTP mode: responses by status class, 1xx to 5xx.
    pub responses: [u64; 5],
    /// HTTP mode: the cumulative latency histogram (see [`latency`]).
    pub latency: Vec<u64>,
}

/// Handle on a running proxy. Cheap to clone; the accept loop stops when
/// [`Proxy::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct Proxy {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addr", &self.handle.inner.local_addr)
            .finish_non_exhaustive()
    }
}

/// Owned by the user-facing handles only (not by the accept loop), so that
/// dropping the last [`Proxy`] stops the listener.
struct Handle {
    inner: Arc<Inner>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Handle {
    fn shutdown(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            debug!(listen = %self.inner.local_addr, "lb proxy shutting down");
        }
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
    }
}

/// A pool member plus its ejection state. Entries are shared between pool
/// generations when the backend (member and addr) is unchanged, so an
/// ejection recorded by an in-flight connection survives `set_backends`.
#[derive(Debug)]
struct Entry {
    backend: Backend,
    /// Ejected while `ejected_until > now`, both in nanoseconds since `Inner::epoch`.
    ejected_until: AtomicU64,
}

struct Inner {
    /// Swapped whole by [`Proxy::set_config`]: a connection reads it at
    /// accept, an HTTP request when it is read, so a change takes effect
    /// for what comes next and no open connection is touched.
    cfg: RwLock<Arc<ProxyConfig>>,
    local_addr: SocketAddr,
    epoch: Instant,
    closed: AtomicBool,
    pool: RwLock<Arc<Vec<Arc<Entry>>>>,
    cursor: AtomicUsize,
    connections_total: AtomicU64,
    active: AtomicU64,
    errors_total: AtomicU64,
    retries_total: AtomicU64,
    connect_nanos_sum: AtomicU64,
    connect_count: AtomicU64,
    per_member: Mutex<HashMap<String, u64>>,
    /// HTTP mode: responses sent to clients (from members or the proxy's own 502/503).
    requests_total: AtomicU64,
    /// HTTP mode: responses by status class, 1xx to 5xx.
    classes: [AtomicU64; 5],
    /// HTTP mode: time from a request read to its response written.
    latency: latency::Histogram,
    /// HTTP mode: keep-alive connections to the members.
    client: http::MemberClient,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Proxy {
    /// Binds the listener (port 0 picks a free one) and spawns the accept loop
    /// with `tokio::spawn`. Starts with an empty pool.
    pub async fn start(listen: SocketAddr, cfg: ProxyConfig) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            local_addr,
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            pool: RwLock::new(Arc::new(Vec::new())),
            cursor: AtomicUsize::new(0),
            connections_total: AtomicU64::new(0),
            active: AtomicU64::new(0),
            errors_total: AtomicU64::new(0),
            retries_total: AtomicU64::new(0),
            connect_nanos_sum: AtomicU64::new(0),
            connect_count: AtomicU64::new(0),
            per_member: Mutex::new(HashMap::new()),
            requests_total: AtomicU64::new(0),
            classes: Default::default(),
            latency: latency::Histogram::default(),
            client: http::member_client(&cfg),
            cfg: RwLock::new(Arc::new(cfg)),
        });
        let task = tokio::spawn(accept_loop(inner.clone(), listener));
        debug!(listen = %local_addr, "lb proxy listening");
        Ok(Proxy {
            handle: Arc::new(Handle {
                inner,
                accept_task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.inner.local_addr
    }

    /// Replaces the pool; takes effect for the next connection attempt. A
    /// backend that is ejected and still present (same member and addr) stays
    /// ejected until its ejection time passes; a changed addr starts fresh.
    pub fn set_backends(&self, backends: Vec<Backend>) {
        let inner = &self.handle.inner;
        let mut pool = inner.pool.write().unwrap_or_else(PoisonError::into_inner);
        let old: HashMap<&Backend, &Arc<Entry>> = pool.iter().map(|e| (&e.backend, e)).collect();
        let new: Vec<Arc<Entry>> = backends
            .into_iter()
            .map(|b| match old.get(&b) {
                Some(e) => Arc::clone(e),
                None => Arc::new(Entry {
                    backend: b,
                    ejected_until: AtomicU64::new(0),
                }),
            })
            .collect();
        debug!(listen = %inner.local_addr, backends = new.len(), "lb pool updated");
        *pool = Arc::new(new);
    }

    /// Current pool.
    pub fn backends(&self) -> Vec<Backend> {
        self.handle
            .inner
            .pool_snapshot()
            .iter()
            .map(|e| e.backend.clone())
            .collect()
    }

    /// Backends of the current pool that are ejected right now.
    pub fn ejected(&self) -> Vec<Backend> {
        let inner = &self.handle.inner;
        let now = inner.now();
        inner
            .pool_snapshot()
            .iter()
            .filter(|e| e.ejected_until.load(Ordering::Relaxed) > now)
            .map(|e| e.backend.clone())
            .collect()
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        let i = &self.handle.inner;
        ProxyStats {
            connections_total: i.connections_total.load(Ordering::Relaxed),
            active: i.active.load(Ordering::Relaxed),
            errors_total: i.errors_total.load(Ordering::Relaxed),
            retries_total: i.retries_total.load(Ordering::Relaxed),
            per_member: lock(&i.per_member)
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            connect_seconds_sum: i.connect_nanos_sum.load(Ordering::Relaxed) as f64 / 1e9,
            connect_seconds_count: i.connect_count.load(Ordering::Relaxed),
            mode: i.cfg().mode,
            requests_total: i.requests_total.load(Ordering::Relaxed),
            responses: std::array::from_fn(|k| i.classes[k].load(Ordering::Relaxed)),
            latency: i.latency.snapshot(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<ProxyConfig> {
        self.handle.inner.cfg()
    }

    /// Changes the settings in place: the listening socket, the pool, the
    /// counters and open connections stay; new connections and requests
    /// follow the new settings. (`connect_timeout` of the HTTP mode's
    /// member client is kept: the blueprint does not set it.)
    pub fn set_config(&self, cfg: ProxyConfig) {
        let inner = &self.handle.inner;
        debug!(listen = %inner.local_addr, ?cfg, "lb settings changed in place");
        *inner.cfg.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(cfg);
    }

    /// Stops accepting and aborts the accept loop; existing connections may
    /// finish. Idempotent.
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }
}

impl Inner {
    fn now(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// The settings in force (one read lock, one `Arc` clone).
    fn cfg(&self) -> Arc<ProxyConfig> {
        self.cfg
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn pool_snapshot(&self) -> Arc<Vec<Arc<Entry>>> {
        self.pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn eject(&self, entry: &Entry) {
        let until = self.now().saturating_add(nanos(self.cfg().eject_for));
        entry.ejected_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Backends to try for one client connection, in order: the healthy ones
    /// round-robin from the cursor, then the ejected ones (soonest back first),
    /// at most `max_attempts` distinct entries.
    fn candidates(&self) -> Vec<Arc<Entry>> {
        let pool = self.pool_snapshot();
        if pool.is_empty() {
            return Vec::new();
        }
        let max = self.cfg().max_attempts.max(1);
        let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let (healthy, mut ejected): (Vec<&Arc<Entry>>, Vec<&Arc<Entry>>) = pool
            .iter()
            .partition(|e| e.ejected_until.load(Ordering::Relaxed) <= now);
        ejected.sort_by_key(|e| e.ejected_until.load(Ordering::Relaxed));
        let n = healthy.len();
        let ordered = (0..n)
            .map(|k| healthy[(turn.wrapping_add(k)) % n])
            .chain(ejected);
        let mut out: Vec<Arc<Entry>> = Vec::with_capacity(max.min(pool.len()));
        for e in ordered {
            if out.len() == max {
                break;
            }
            if !out.iter().any(|o| Arc::ptr_eq(o, e)) {
                out.push(Arc::clone(e));
            }
        }
        out
    }

    fn served_by(&self, member: &str) {
        let mut m = lock(&self.per_member);
        match m.get_mut(member) {
            Some(n) => *n += 1,
            None => {
                m.insert(member.to_owned(), 1);
            }
        }
    }

    /// Connects to a backend; on failure ejects it and returns `None`.
    async fn connect(&self, entry: &Entry) -> Option<TcpStream> {
        let addr = entry.backend.addr;
        let started = Instant::now();
        let res = tokio::time::timeout(self.cfg().connect_timeout, TcpStream::connect(addr)).await;
        match res {
            Ok(Ok(stream)) => {
                self.connect_nanos_sum
                    .fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
                self.connect_count.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(%addr, error = %e, "lb: set_nodelay on backend socket failed");
                }
                Some(stream)
            }
            Ok(Err(e)) => {
                debug!(member = %entry.backend.member, %addr, error = %e, "lb: backend connect failed; ejecting");
                self.eject(entry);
                None
            }
            Err(_) => {
                debug!(member = %entry.backend.member, %addr, timeout = ?self.cfg().connect_timeout,
                    "lb: backend connect timed out; ejecting");
                self.eject(entry);
                None
            }
        }
    }
}

mod conn;
mod http;
pub mod latency;
use conn::accept_loop;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod http_tests;
