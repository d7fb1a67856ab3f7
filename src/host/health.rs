//! Health probes: TCP connect or HTTP GET on a published port.
//!
//! Hand-written over tokio sockets rather than an HTTP client crate: a probe
//! needs only the status line, and keeping it tiny keeps a probe cheap when
//! hundreds run every second.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::blueprint::HealthCheck;

/// The container port a check targets.
pub fn check_port(check: &HealthCheck) -> Option<u16> {
    check
        .http
        .as_ref()
        .map(|h| h.port)
        .or(check.tcp.as_ref().map(|t| t.port))
}

/// Runs one probe against `address:port` (the published port). `Ok` is healthy.
pub async fn probe(check: &HealthCheck, address: &str, port: u16) -> Result<(), String> {
    let fut = async {
        let mut stream = TcpStream::connect((address, port))
            .await
            .map_err(|e| format!("connect {address}:{port}: {e}"))?;
        let Some(http) = &check.http else {
            return Ok(());
        };
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n",
            http.path
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("send request: {e}"))?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        // Read only as far as the status code.
        while n < 12 {
            let r = stream
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("read response: {e}"))?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let status =
            parse_status(&line).ok_or_else(|| format!("not an HTTP response: {:?}", line))?;
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(format!("GET {} answered {status}", http.path))
        }
    };
    match tokio::time::timeout(check.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(check.timeout)
        )),
    }
}

/// Status code of `HTTP/1.x NNN ...`.
pub fn parse_status(head: &str) -> Option<u16> {
    let mut parts = head.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.get(..3)?.parse().ok()
}

/// Default probe interval when a container has no health check: drover
/// still watches the engine's events, so this only paces the resync.
pub const NO_CHECK_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status("SSH-2.0"), None);
        assert_eq!(parse_status("HTTP/1.1 2"), None);
    }
}
