//! One client connection: the accept loop, the phase before the backend's
//! first byte (retries and replay to the next backend), then the plain
//! bidirectional copy.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::Inner;
use crate::blueprint::LbMode;

/// Size of the read buffers used before a connection is committed.
const CHUNK: usize = 16 * 1024;

/// Decrements `active` when a client connection ends, however it ends.
pub(super) struct ActiveGuard(pub(super) Arc<Inner>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                if inner.closed.load(Ordering::SeqCst) {
                    break;
                }
                inner.connections_total.fetch_add(1, Ordering::Relaxed);
                let cfg = inner.cfg();
                if inner.active.load(Ordering::Relaxed) >= cfg.max_connections as u64 {
                    // Over the cap: closed at once (left in the backlog it
                    // would hang the client instead of telling it).
                    inner.errors_total.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, cap = cfg.max_connections, "lb: connection cap reached; closing");
                    drop(client);
                    continue;
                }
                inner.active.fetch_add(1, Ordering::Relaxed);
                let guard = ActiveGuard(inner.clone());
                match cfg.mode {
                    LbMode::Http => tokio::spawn(super::http::serve(guard, client, peer)),
                    LbMode::Tcp => tokio::spawn(serve(guard, client, peer)),
                };
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
    // One deadline for the whole phase before a backend answers, across
    // retries: a client that sends nothing cannot hold its slot forever.
    // A connection keeps the settings in force when it came.
    let cfg = inner.cfg();
    let deadline = tokio::time::Instant::now() + cfg.first_byte_timeout;
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
        let phase = tokio::time::timeout_at(
            deadline,
            precommit(&mut client, &mut upstream, &mut side, cfg.replay_buffer),
        )
        .await;
        let Ok(phase) = phase else {
            inner.errors_total.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, timeout = ?cfg.first_byte_timeout, "lb: no answer within the first-byte timeout; closing");
            return;
        };
        match phase {
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
                    debug!(%peer, limit = cfg.replay_buffer, "lb: replay buffer overflowed; not retrying");
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
