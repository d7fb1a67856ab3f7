//! HTTP load through a load balancer while something changes behind it (a
//! rollout): keep-alive clients and new-connection clients doing `GET /`,
//! counting answers and failures. Shared by `tests/rollout.rs` and
//! `benches/rollout.rs`, so the benchmark's "failed requests" mean what the
//! test's zero means.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Four client threads on `127.0.0.1:port`: two keep their connection
/// alive, two open a new one per request.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// One `GET /` on `s`; Ok(keep) when a 200 came back (keep: the server
/// keeps the connection open).
fn request(s: &mut TcpStream, keep_alive: bool) -> std::io::Result<bool> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: lb\r\nConnection: {conn}\r\n\r\n"
    )?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before answering",
        ));
    }
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    let mut close = !keep_alive;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if h == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    if code != 200 {
        return Err(std::io::Error::other(format!("status {code}")));
    }
    Ok(!close)
}

impl Load {
    pub fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..4)
            .map(|i| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                let keep_alive = i % 2 == 0;
                std::thread::spawn(move || {
                    let mut conn: Option<TcpStream> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let reused = conn.is_some();
                        let mut s = match conn.take() {
                            Some(s) => s,
                            None => match TcpStream::connect(("127.0.0.1", port)) {
                                Ok(s) => {
                                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                                    s
                                }
                                Err(e) => {
                                    eprintln!("load: connect: {e}");
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    // A refused port refuses at once: do not spin.
                                    std::thread::sleep(Duration::from_millis(5));
                                    continue;
                                }
                            },
                        };
                        match request(&mut s, keep_alive) {
                            Ok(keep) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if keep && keep_alive {
                                    conn = Some(s);
                                }
                            }
                            // An idle keep-alive connection the server closed
                            // before reading the request: every HTTP client
                            // sends an idempotent request again on a new one
                            // (RFC 9110 9.2.2), and so does this one.
                            Err(e) if reused && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                            Err(e) => {
                                eprintln!("load: request: {e}");
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    /// Requests answered so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the load: (ok, failed) requests.
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
