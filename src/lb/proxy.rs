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

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::debug;

/// Size of the read buffers used before a connection is committed.
const CHUNK: usize = 16 * 1024;

/// One upstream endpoint of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_millis(500),
            eject_for: Duration::from_secs(5),
            max_attempts: 3,
            replay_buffer: 64 * 1024,
        }
    }
}

/// Snapshot of the proxy counters.
#[derive(Debug, Clone, Default, PartialEq)]
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
    cfg: ProxyConfig,
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
            cfg,
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
        }
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

    fn pool_snapshot(&self) -> Arc<Vec<Arc<Entry>>> {
        self.pool
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn eject(&self, entry: &Entry) {
        let until = self.now().saturating_add(nanos(self.cfg.eject_for));
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
        let max = self.cfg.max_attempts.max(1);
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
        let res = tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(addr)).await;
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
                debug!(member = %entry.backend.member, %addr, timeout = ?self.cfg.connect_timeout,
                    "lb: backend connect timed out; ejecting");
                self.eject(entry);
                None
            }
        }
    }
}

/// Decrements `active` when a client connection ends, however it ends.
struct ActiveGuard(Arc<Inner>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                if inner.closed.load(Ordering::SeqCst) {
                    break;
                }
                inner.connections_total.fetch_add(1, Ordering::Relaxed);
                inner.active.fetch_add(1, Ordering::Relaxed);
                let guard = ActiveGuard(inner.clone());
                tokio::spawn(serve(guard, client, peer));
            }
            Err(e) => match e.kind() {
                io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted => {
                    debug!(error = %e, "lb: accept failed");
                }
                _ => {
                    // e.g. EMFILE: back off instead of spinning.
                    debug!(error = %e, "lb: accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    debug!(listen = %inner.local_addr, "lb accept loop stopped");
}

/// What the client has sent so far, for replay to the next backend.
struct ClientSide {
    replay: Vec<u8>,
    overflowed: bool,
    eof: bool,
}

impl ClientSide {
    fn record(&mut self, data: &[u8], limit: usize) {
        if self.overflowed {
            return;
        }
        if self.replay.len() + data.len() > limit {
            self.overflowed = true;
            self.replay = Vec::new();
        } else {
            self.replay.extend_from_slice(data);
        }
    }
}

/// Result of the phase before the backend's first byte.
enum Precommit {
    /// The backend answered: `first` goes to the client, `pending` (client
    /// bytes not yet written) to the backend. `shut` tells whether the client's
    /// half-close was already forwarded.
    Committed {
        first: Vec<u8>,
        pending: Vec<u8>,
        shut: bool,
    },
    /// The client half-closed, the backend got that and closed without data:
    /// a normal (if empty) exchange, e.g. a connect/close probe.
    Finished,
    /// The backend closed or failed before answering.
    BackendFailed(String),
    /// The client went away before any answer.
    ClientGone(io::Error),
}

async fn serve(guard: ActiveGuard, mut client: TcpStream, peer: SocketAddr) {
    let inner = &*guard.0;
    if let Err(e) = client.set_nodelay(true) {
        debug!(%peer, error = %e, "lb: set_nodelay on client socket failed");
    }
    let candidates = inner.candidates();
    let mut side = ClientSide {
        replay: Vec::new(),
        overflowed: false,
        eof: false,
    };
    for (attempt, entry) in candidates.iter().enumerate() {
        if attempt > 0 {
            inner.retries_total.fetch_add(1, Ordering::Relaxed);
        }
        let backend = &entry.backend;
        let Some(mut upstream) = inner.connect(entry).await else {
            continue;
        };
        match precommit(
            &mut client,
            &mut upstream,
            &mut side,
            inner.cfg.replay_buffer,
        )
        .await
        {
            Precommit::Committed {
                first,
                pending,
                shut,
            } => {
                inner.served_by(&backend.member);
                if let Err(e) =
                    relay(&mut client, &mut upstream, &first, &pending, side.eof, shut).await
                {
                    debug!(%peer, member = %backend.member, error = %e, "lb: connection ended with error");
                }
                return;
            }
            Precommit::Finished => {
                inner.served_by(&backend.member);
                debug!(%peer, member = %backend.member, "lb: backend closed without data after client half-close");
                return;
            }
            Precommit::ClientGone(e) => {
                debug!(%peer, member = %backend.member, error = %e, "lb: client went away before the backend answered");
                return;
            }
            Precommit::BackendFailed(why) => {
                debug!(%peer, member = %backend.member, addr = %backend.addr, reason = %why,
                    "lb: backend failed before answering; ejecting");
                inner.eject(entry);
                if side.overflowed {
                    debug!(%peer, limit = inner.cfg.replay_buffer, "lb: replay buffer overflowed; not retrying");
                    break;
                }
            }
        }
    }
    inner.errors_total.fetch_add(1, Ordering::Relaxed);
    debug!(%peer, tried = candidates.len(), "lb: no backend served the connection; closing it");
}

/// Forwards client bytes to the backend (replaying what was sent to earlier
/// backends first) until the backend sends its first byte or fails. Backend
/// bytes are never held back waiting for client data.
async fn precommit(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    side: &mut ClientSide,
    limit: usize,
) -> Precommit {
    let (mut cr, _) = client.split();
    let (mut ur, mut uw) = upstream.split();
    // Bytes to write to the backend; `off` of them are written.
    let mut pending: Vec<u8> = if side.overflowed {
        Vec::new()
    } else {
        side.replay.clone()
    };
    let mut off = 0usize;
    let mut shut = false;
    let mut cbuf = vec![0u8; CHUNK];
    let mut ubuf = vec![0u8; CHUNK];
    loop {
        if off == pending.len() && side.eof && !shut {
            if let Err(e) = uw.shutdown().await {
                return Precommit::BackendFailed(format!("half-close: {e}"));
            }
            shut = true;
        }
        let flushed = off == pending.len();
        tokio::select! {
            r = ur.read(&mut ubuf) => {
                return match r {
                    Ok(0) if shut => Precommit::Finished,
                    Ok(0) => Precommit::BackendFailed("closed before answering".into()),
                    Ok(n) => {
                        ubuf.truncate(n);
                        pending.drain(..off);
                        Precommit::Committed { first: ubuf, pending, shut }
                    }
                    Err(e) => Precommit::BackendFailed(e.to_string()),
                };
            }
            r = uw.write(&pending[off..]), if !flushed => match r {
                Ok(0) => return Precommit::BackendFailed("write returned 0".into()),
                Ok(n) => {
                    off += n;
                    if off == pending.len() {
                        pending.clear();
                        off = 0;
                    }
                }
                Err(e) => return Precommit::BackendFailed(e.to_string()),
            },
            r = cr.read(&mut cbuf), if flushed && !side.eof => match r {
                Ok(0) => side.eof = true,
                Ok(n) => {
                    side.record(&cbuf[..n], limit);
                    pending.extend_from_slice(&cbuf[..n]);
                }
                Err(e) => return Precommit::ClientGone(e),
            },
        }
    }
}

/// Committed phase: bidirectional copy with half-close propagation. Returns
/// when both directions are done or either fails.
async fn relay(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    first: &[u8],
    pending: &[u8],
    client_eof: bool,
    shut: bool,
) -> io::Result<()> {
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let to_backend = async {
        if !pending.is_empty() {
            uw.write_all(pending).await?;
        }
        if !client_eof {
            tokio::io::copy(&mut cr, &mut uw).await?;
        }
        if !shut {
            uw.shutdown().await?;
        }
        io::Result::Ok(())
    };
    let to_client = async {
        cw.write_all(first).await?;
        tokio::io::copy(&mut ur, &mut cw).await?;
        cw.shutdown().await?;
        io::Result::Ok(())
    };
    tokio::pin!(to_backend, to_client);
    enum Done {
        ToBackend(io::Result<()>),
        ToClient(io::Result<()>),
    }
    let done = tokio::select! {
        r = &mut to_backend => Done::ToBackend(r),
        r = &mut to_client => Done::ToClient(r),
    };
    match done {
        Done::ToBackend(Ok(())) => to_client.await,
        Done::ToClient(Ok(())) => to_backend.await,
        Done::ToBackend(Err(e)) | Done::ToClient(Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn localhost() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("test timed out")
    }

    fn quick_cfg() -> ProxyConfig {
        ProxyConfig {
            connect_timeout: Duration::from_millis(200),
            ..ProxyConfig::default()
        }
    }

    /// A port that refuses connections: bound but not listening. Keep the
    /// returned socket alive so no other test can be handed the same port.
    fn dead_backend(name: &str) -> (Backend, tokio::net::TcpSocket) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(localhost()).unwrap();
        let addr = sock.local_addr().unwrap();
        (
            Backend {
                member: name.to_owned(),
                addr,
            },
            sock,
        )
    }

    /// Reads until the end of an HTTP-ish request head (or EOF).
    async fn read_head(s: &mut TcpStream) -> Vec<u8> {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        req
    }

    /// Answers each request with "<name> <request>" and closes.
    async fn http_backend(name: &str) -> Backend {
        let l = TcpListener::bind(localhost()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let member = name.to_owned();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let member = member.clone();
                tokio::spawn(async move {
                    let req = read_head(&mut s).await;
                    let mut resp = format!("HTTP/1.0 200 OK\r\n\r\n{member} ").into_bytes();
                    resp.extend_from_slice(&req);
                    let _ = s.write_all(&resp).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Backend {
            member: name.to_owned(),
            addr,
        }
    }

    /// Like docker-proxy in front of a dead container: accepts, then closes
    /// without writing (optionally after reading the request).
    async fn closing_backend(name: &str, read_first: bool) -> Backend {
        let l = TcpListener::bind(localhost()).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                if read_first {
                    tokio::spawn(async move {
                        read_head(&mut s).await;
                    });
                } else {
                    drop(s);
                }
            }
        });
        Backend {
            member: name.to_owned(),
            addr,
        }
    }

    /// Server-speaks-first: writes a banner on accept, then waits for EOF.
    async fn banner_backend(name: &str) -> Backend {
        let l = TcpListener::bind(localhost()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let member = name.to_owned();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let banner = format!("220 {member} ready\r\n");
                tokio::spawn(async move {
                    let _ = s.write_all(banner.as_bytes()).await;
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        Backend {
            member: name.to_owned(),
            addr,
        }
    }

    const REQ: &str = "GET /ping HTTP/1.0\r\nHost: x\r\n\r\n";

    /// Sends a request (without half-closing) and reads the whole answer.
    async fn request(proxy: &Proxy) -> io::Result<String> {
        let mut s = TcpStream::connect(proxy.local_addr()).await?;
        s.write_all(REQ.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Member name from an answer of `http_backend`.
    fn member_of(resp: &str) -> &str {
        resp.strip_prefix("HTTP/1.0 200 OK\r\n\r\n")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected answer {resp:?}"))
    }

    async fn wait_idle(proxy: &Proxy) {
        while proxy.stats().active != 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn round_robin_spreads_evenly() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let pool = vec![
                http_backend("a").await,
                http_backend("b").await,
                http_backend("c").await,
            ];
            proxy.set_backends(pool.clone());
            assert_eq!(proxy.backends(), pool);
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            for _ in 0..30 {
                let resp = request(&proxy).await.unwrap();
                assert!(
                    resp.ends_with(REQ),
                    "request not forwarded intact: {resp:?}"
                );
                *seen.entry(member_of(&resp).to_owned()).or_default() += 1;
            }
            wait_idle(&proxy).await;
            let expected: BTreeMap<String, u64> = ["a", "b", "c"]
                .iter()
                .map(|m| (m.to_string(), 10))
                .collect();
            assert_eq!(seen, expected);
            let st = proxy.stats();
            assert_eq!(st.per_member, expected);
            assert_eq!(st.connections_total, 30);
            assert_eq!(st.active, 0);
            assert_eq!(st.errors_total, 0);
            assert_eq!(st.retries_total, 0);
            assert_eq!(st.connect_seconds_count, 30);
            assert!(st.connect_seconds_sum > 0.0);
        })
        .await
    }

    #[tokio::test]
    async fn dead_backend_is_skipped_and_ejected() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let (dead, _hold) = dead_backend("dead");
            proxy.set_backends(vec![
                dead.clone(),
                http_backend("a").await,
                http_backend("b").await,
            ]);
            for _ in 0..20 {
                let resp = request(&proxy).await.unwrap();
                assert_ne!(member_of(&resp), "dead");
            }
            let st = proxy.stats();
            assert_eq!(st.errors_total, 0);
            // Tried once (first connection), then kept out of the rotation.
            assert_eq!(st.retries_total, 1);
            assert_eq!(proxy.ejected(), vec![dead]);
            assert_eq!(st.per_member.values().sum::<u64>(), 20);
            assert_eq!(st.per_member.get("a"), Some(&10));
            assert_eq!(st.per_member.get("b"), Some(&10));
            assert!(!st.per_member.contains_key("dead"));
        })
        .await
    }

    #[tokio::test]
    async fn empty_response_is_replayed_to_next_backend() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            proxy.set_backends(vec![
                closing_backend("gone", false).await,
                closing_backend("gone-after-read", true).await,
                http_backend("ok").await,
            ]);
            for _ in 0..6 {
                let resp = request(&proxy).await.unwrap();
                assert_eq!(member_of(&resp), "ok");
                assert!(resp.ends_with(REQ), "replayed request not intact: {resp:?}");
            }
            let st = proxy.stats();
            assert_eq!(st.errors_total, 0);
            assert_eq!(st.retries_total, 2);
            assert_eq!(st.per_member.get("ok"), Some(&6));
            assert_eq!(st.per_member.len(), 1);
            let mut ejected: Vec<String> = proxy.ejected().into_iter().map(|b| b.member).collect();
            ejected.sort();
            assert_eq!(ejected, vec!["gone", "gone-after-read"]);
        })
        .await
    }

    #[tokio::test]
    async fn no_replay_after_buffer_overflow() {
        within(async {
            let cfg = ProxyConfig {
                replay_buffer: 8,
                ..quick_cfg()
            };
            let proxy = Proxy::start(localhost(), cfg).await.unwrap();
            proxy.set_backends(vec![
                closing_backend("gone-after-read", true).await,
                http_backend("ok").await,
            ]);
            // The request (> 8 bytes) cannot be replayed: the client is closed.
            let resp = request(&proxy).await.unwrap_or_default();
            assert_eq!(resp, "");
            let st = proxy.stats();
            assert_eq!(st.errors_total, 1);
            assert_eq!(st.retries_total, 0);
            // The next connection skips the ejected backend.
            assert_eq!(member_of(&request(&proxy).await.unwrap()), "ok");
        })
        .await
    }

    #[tokio::test]
    async fn set_backends_removes_a_backend() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let a = http_backend("a").await;
            let b = http_backend("b").await;
            let c = http_backend("c").await;
            proxy.set_backends(vec![a.clone(), b.clone(), c.clone()]);
            for _ in 0..3 {
                request(&proxy).await.unwrap();
            }
            assert_eq!(proxy.stats().per_member.get("b"), Some(&1));
            proxy.set_backends(vec![a.clone(), c.clone()]);
            assert_eq!(proxy.backends(), vec![a, c]);
            for _ in 0..10 {
                let resp = request(&proxy).await.unwrap();
                assert_ne!(member_of(&resp), "b");
            }
            let st = proxy.stats();
            assert_eq!(st.per_member.get("b"), Some(&1));
            assert_eq!(st.per_member.values().sum::<u64>(), 13);
        })
        .await
    }

    #[tokio::test]
    async fn ejection_survives_set_backends_unless_addr_changes() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let (dead, _hold) = dead_backend("x");
            let ok = http_backend("ok").await;
            proxy.set_backends(vec![dead.clone(), ok.clone()]);
            request(&proxy).await.unwrap();
            assert_eq!(proxy.ejected(), vec![dead.clone()]);
            // Same backend in the new set: stays ejected.
            proxy.set_backends(vec![ok.clone(), dead.clone()]);
            assert_eq!(proxy.ejected(), vec![dead.clone()]);
            // Same member at a new address: fresh start.
            let moved = http_backend("x").await;
            proxy.set_backends(vec![moved.clone(), ok.clone()]);
            assert!(proxy.ejected().is_empty());
            let mut members: Vec<String> = Vec::new();
            for _ in 0..2 {
                members.push(member_of(&request(&proxy).await.unwrap()).to_owned());
            }
            members.sort();
            assert_eq!(members, vec!["ok", "x"]);
        })
        .await
    }

    #[tokio::test]
    async fn all_backends_dead_closes_client() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let (d1, _hold1) = dead_backend("d1");
            let (d2, _hold2) = dead_backend("d2");
            proxy.set_backends(vec![d1, d2]);
            // Closed without an answer (EOF or reset).
            let resp = request(&proxy).await.unwrap_or_default();
            assert_eq!(resp, "");
            let st = proxy.stats();
            assert_eq!(st.errors_total, 1);
            assert_eq!(st.retries_total, 1);
            assert!(st.per_member.is_empty());
            // All ejected: they are still tried rather than refused outright.
            assert_eq!(proxy.ejected().len(), 2);
            assert_eq!(request(&proxy).await.unwrap_or_default(), "");
            let st = proxy.stats();
            assert_eq!(st.errors_total, 2);
            assert_eq!(st.retries_total, 2);
            // Empty pool: closed too.
            proxy.set_backends(Vec::new());
            assert_eq!(request(&proxy).await.unwrap_or_default(), "");
            assert_eq!(proxy.stats().errors_total, 3);
            wait_idle(&proxy).await;
        })
        .await
    }

    #[tokio::test]
    async fn server_speaks_first() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            proxy.set_backends(vec![banner_backend("smtp").await]);
            let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while !got.ends_with(b"\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before banner");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"220 smtp ready\r\n");
            drop(s);
            wait_idle(&proxy).await;
            let st = proxy.stats();
            assert_eq!(st.per_member.get("smtp"), Some(&1));
            assert_eq!(st.errors_total, 0);
        })
        .await
    }

    #[tokio::test]
    async fn connect_and_close_probe_does_not_eject() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            proxy.set_backends(vec![http_backend("a").await]);
            let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.unwrap();
            wait_idle(&proxy).await;
            assert!(proxy.ejected().is_empty());
            let st = proxy.stats();
            assert_eq!(st.errors_total, 0);
            assert_eq!(st.retries_total, 0);
        })
        .await
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        within(async {
            let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
            let addr = proxy.local_addr();
            proxy.set_backends(vec![http_backend("a").await]);
            request(&proxy).await.unwrap();
            proxy.shutdown();
            // Give the aborted accept task a moment to drop the listener.
            for _ in 0..100 {
                if TcpStream::connect(addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("still accepting after shutdown");
        })
        .await
    }
}
