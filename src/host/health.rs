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

/// Why a probe found a container unhealthy. The entity shows it as the
/// reason (`health check: ...`), so each says where to look.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connect {address}:{port}: {source}; is the process listening on the checked port?")]
    Connect {
        address: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("send request: {0}")]
    Send(std::io::Error),
    #[error("read response: {0}")]
    Read(std::io::Error),
    #[error("not an HTTP response: {0:?}; is the check `tcp` rather than `http`?")]
    NotHttp(String),
    #[error("GET {path} answered {status}")]
    Status { path: String, status: u16 },
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

/// Runs one probe against `address:port` (the published port). `Ok` is healthy.
pub async fn probe(check: &HealthCheck, address: &str, port: u16) -> Result<(), ProbeError> {
    let fut = async {
        let mut stream = TcpStream::connect((address, port))
            .await
            .map_err(|source| ProbeError::Connect {
                address: address.to_string(),
                port,
                source,
            })?;
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
            .map_err(ProbeError::Send)?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        // Read only as far as the status code.
        while n < 12 {
            let r = stream.read(&mut buf[n..]).await.map_err(ProbeError::Read)?;
            if r == 0 {
                break;
            }
            n += r;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let status = parse_status(&line).ok_or_else(|| ProbeError::NotHttp(line.to_string()))?;
        if (200..400).contains(&status) {
            Ok(())
        } else {
            Err(ProbeError::Status {
                path: http.path.clone(),
                status,
            })
        }
    };
    match tokio::time::timeout(check.timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(check.timeout)),
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

    #[test]
    fn probe_errors_read_as_before() {
        assert_eq!(
            ProbeError::Status {
                path: "/health".into(),
                status: 503
            }
            .to_string(),
            "GET /health answered 503"
        );
        assert_eq!(
            ProbeError::Timeout(Duration::from_millis(1500)).to_string(),
            "no answer within 1s 500ms"
        );
        assert_eq!(
            ProbeError::NotHttp("SSH-2.0".into()).to_string(),
            "not an HTTP response: \"SSH-2.0\"; is the check `tcp` rather than `http`?"
        );
    }
}
