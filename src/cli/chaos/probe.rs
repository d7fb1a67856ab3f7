//! The prober of `drover chaos`: a new TCP connection to a load balancer
//! every few milliseconds, an HTTP GET, and whether it answered 200.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{sleep_until, PROBE_DRAIN_LIMIT, PROBE_EVERY, PROBE_REQUEST, PROBE_TIMEOUT};

/// Whether an HTTP status line is `HTTP/1.x 200`.
fn status_line_ok(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().split(' ');
    parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) && parts.next() == Some("200")
}

/// One probe: a new connection, one request, success iff the answer is 200.
fn probe_once(addr: &SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(addr, PROBE_TIMEOUT) else {
        return false;
    };
    if stream.set_read_timeout(Some(PROBE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(PROBE_TIMEOUT)).is_err()
    {
        return false;
    }
    if stream.write_all(PROBE_REQUEST).is_err() {
        return false;
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    let ok = loop {
        if let Some(end) = buf.iter().position(|b| *b == b'\n') {
            break status_line_ok(&buf[..end]);
        }
        if buf.len() > 8192 || Instant::now() >= deadline {
            return false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    };
    // Read the rest (bounded) so the server is not answered with a reset.
    let mut drained = buf.len();
    while ok && drained < PROBE_DRAIN_LIMIT && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    ok
}

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ProbeStats {
    pub total: u64,
    pub failed: u64,
    pub longest_outage: Duration,
}

/// Probes `addr` every [`PROBE_EVERY`] until `stop`, at least once.
pub(super) fn probe_loop(addr: SocketAddr, stop: &AtomicBool) -> ProbeStats {
    let mut stats = ProbeStats::default();
    let mut outage_since: Option<Instant> = None;
    let mut last_end;
    loop {
        let begin = Instant::now();
        let ok = probe_once(&addr);
        let end = Instant::now();
        stats.total += 1;
        if ok {
            if let Some(since) = outage_since.take() {
                stats.longest_outage = stats.longest_outage.max(end.duration_since(since));
            }
        } else {
            stats.failed += 1;
            outage_since.get_or_insert(begin);
        }
        last_end = end;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_until(begin + PROBE_EVERY);
    }
    if let Some(since) = outage_since {
        stats.longest_outage = stats.longest_outage.max(last_end.duration_since(since));
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(status_line_ok(b"HTTP/1.1 200 OK\r"));
        assert!(status_line_ok(b"HTTP/1.0 200"));
        assert!(!status_line_ok(b"HTTP/1.1 503 Service Unavailable\r"));
        assert!(!status_line_ok(b"HTTP/1.1 2000 OK"));
        assert!(!status_line_ok(b"HTTP/2 200"));
        assert!(!status_line_ok(b""));
    }
}
