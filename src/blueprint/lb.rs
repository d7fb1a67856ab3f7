//! A load balancer's protocol mode and limits, as written in a blueprint.
//!
//! ```yaml
//! - id: lb
//!   type: load-balancer
//!   target: web
//!   port: 8000
//!   mode: http            # or tcp; default http when web has an http health check
//!   limits:
//!     max_connections: 10000
//!     header_timeout: 10s
//!     idle_timeout: 60s
//!     max_buffered_bytes: 65536
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the load balancer sees of the traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbMode {
    /// HTTP/1.1: each request on a keep-alive connection is counted, timed
    /// and sent to the next member on its own (the autoscaler then sees
    /// requests, not connections). The default when the target cluster's
    /// members have an `http` health check.
    Http,
    /// Bytes: a client connection is bound to one member for its life.
    /// The default otherwise; use it for anything that is not HTTP/1.x
    /// (databases, WebSocket upgrades, TLS passed through).
    #[default]
    Tcp,
}

impl LbMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LbMode::Http => "http",
            LbMode::Tcp => "tcp",
        }
    }
}

/// Bounds on what one client may hold. Every key is optional; the defaults
/// follow HAProxy's usual `timeout http-request 10s` / `timeout client 60s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbLimits {
    /// Client connections open at once; one more is closed at accept (left
    /// in the backlog it would hang the client instead of telling it).
    /// Default 10000; 1 to 1000000.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// HTTP mode: how long a client may take to send a request's head
    /// (slowloris). Default 10s.
    #[serde(default = "default_header_timeout", with = "humantime_serde")]
    pub header_timeout: Duration,
    /// HTTP mode: a keep-alive connection with no request in flight for
    /// this long is closed. Default 60s.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Bytes buffered per connection: in HTTP mode the request head
    /// (hyper's read buffer) and the body kept to retry a request on
    /// another member (larger bodies stream, without a retry); in TCP mode
    /// the client bytes kept to replay to another member before the first
    /// answers. Default 65536; 8192 (hyper's smallest buffer) to 67108864.
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: u32,
}

pub fn default_max_connections() -> u32 {
    10_000
}
pub fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn default_max_buffered_bytes() -> u32 {
    64 * 1024
}

impl Default for LbLimits {
    fn default() -> Self {
        LbLimits {
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            max_buffered_bytes: default_max_buffered_bytes(),
        }
    }
}

// The ranges below are checked with every other range, in `ranges.rs`.

/// The smallest read buffer hyper accepts.
pub const MIN_BUFFERED_BYTES: u32 = 8192;
/// The largest buffer one connection may hold (64 MiB).
pub const MAX_BUFFERED_BYTES: u32 = 64 * 1024 * 1024;
/// The shortest timeout that is not a typo (a timeout of 0 closes every
/// connection at once).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
