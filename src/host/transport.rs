//! How drover reaches an engine over HTTP: bollard's calls through a
//! hyper client that keeps connections open between calls.
//!
//! bollard builds its own unix-socket and plain-HTTP clients with
//! `pool_max_idle_per_host(0)`: no connection is ever reused, so every API
//! call opens a socket, connects, and shuts it down again. At 10,000
//! simulated containers that was 2,600 new connections a second at steady
//! state (strace), a socket, connect, shutdown and close each in drover and
//! an accept and close in the engine, for one stats sample or one inspect.
//! dockerd keeps idle keep-alive connections open (its API server sets no
//! idle timeout), so a pooled client is what the Docker CLI does too.
//!
//! The client is handed to bollard as a custom transport, so every call
//! (and version negotiation, and the request timeout bollard applies
//! around the transport) is unchanged. Upgraded connections (attach, exec)
//! are never put back in a pool by hyper.

use std::pin::Pin;
use std::time::Duration;

use bollard::{BollardRequest, ClientVersion, Docker};
use bytes::Bytes;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The request body bollard sends (its `BodyType`, which it does not
/// export by name).
type Body = Either<
    Full<Bytes>,
    StreamBody<
        Pin<Box<dyn futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send>>,
    >,
>;

/// An idle connection is closed after this long: shorter than the idle
/// timeouts proxies in front of remote engines commonly use (60 s), so a
/// pooled connection is not reused just as the other side closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per engine: as many as the calls drover keeps
/// in flight to one engine at steady state (the stats sampler's
/// `stats::IN_FLIGHT` and the engine CPU sampler's two). A burst of
/// container calls (`CALLS_IN_FLIGHT`, a deploy or a rebind) opens more,
/// closed as they come back. Without a bound every engine kept as many as
/// its busiest burst had opened (image and network checks are not
/// bounded), for 30 s: at 30,000 containers on 1,000 engines drover and
/// the simulator each reached this machine's 20,000 open files and calls
/// failed to connect. Each kept connection costs about 40 KiB (hyper's
/// read and write buffers, its dispatch channel and task: heaptrack).
const IDLE_PER_ENGINE: usize = 4;

fn builder() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(IDLE_PER_ENGINE);
    b
}

/// Why an engine at a unix socket cannot answer before it is asked: no
/// socket there. Checked when drover asks the engine, not when the client
/// is made: a configured engine that is down must not stop drover.
pub fn missing_socket(path: &str) -> Option<String> {
    (!std::path::Path::new(path).exists())
        .then(|| format!("no socket at {path}: is the engine running?"))
}

/// The socket of the `local` engine, if it is one: `DOCKER_HOST`'s, else
/// Docker's default.
pub fn local_socket() -> Option<String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if host.is_empty() {
        return Some("/var/run/docker.sock".to_string());
    }
    host.strip_prefix("unix://").map(str::to_string)
}

/// An engine on a unix socket (`path`), with pooled connections.
pub fn unix(path: &str, timeout_secs: u64, version: &ClientVersion) -> Result<Docker, String> {
    // hyperlocal's connector finds the socket from the URI's host: the
    // path, hex-encoded (how bollard addresses unix sockets too).
    let uri: hyper::Uri = hyperlocal::Uri::new(path, "/").into();
    let host = uri.host().unwrap_or_default().to_string();
    let client: Client<hyperlocal::UnixConnector, Body> =
        builder().build(hyperlocal::UnixConnector);
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(format!("unix://{host}")),
        timeout_secs,
        version,
    )
    .map_err(|e| e.to_string())
}

/// An engine on plain HTTP (`tcp://` or `http://HOST:PORT`), with pooled
/// connections.
pub fn http(endpoint: &str, timeout_secs: u64, version: &ClientVersion) -> Result<Docker, String> {
    let addr = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    let client: Client<HttpConnector, Body> = builder().build(HttpConnector::new());
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(format!("http://{addr}")),
        timeout_secs,
        version,
    )
    .map_err(|e| e.to_string())
}

/// The local engine as the Docker CLI finds it: `DOCKER_HOST`, else
/// `/var/run/docker.sock`. `None`: a `DOCKER_HOST` this module does not
/// speak (TLS, ssh), left to bollard's own client.
pub fn local(timeout_secs: u64, version: &ClientVersion) -> Option<Result<Docker, String>> {
    if let Some(path) = local_socket() {
        return Some(unix(&path, timeout_secs, version));
    }
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let tls = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
    if !tls && (host.starts_with("tcp://") || host.starts_with("http://")) {
        return Some(http(&host, timeout_secs, version));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response};

    /// A unix-socket HTTP server answering `/_ping` as an engine does,
    /// counting the connections it accepts.
    async fn pinged_server(path: std::path::PathBuf) -> Arc<AtomicUsize> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(|_: Request<hyper::body::Incoming>| async {
                            Ok::<_, std::convert::Infallible>(
                                Response::builder()
                                    .header("Api-Version", "1.41")
                                    .body(Full::new(Bytes::from_static(b"OK")))
                                    .unwrap(),
                            )
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        accepted
    }

    #[tokio::test]
    async fn calls_to_a_unix_socket_engine_reuse_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let accepted = pinged_server(path.clone()).await;
        let docker = super::unix(path.to_str().unwrap(), 5, bollard::API_DEFAULT_VERSION).unwrap();
        for _ in 0..20 {
            assert_eq!(docker.ping().await.unwrap(), "OK");
        }
        // bollard's own unix client opens one connection per call (20 here:
        // checked by swapping it in).
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_missing_socket_says_so() {
        let e = super::missing_socket("/nonexistent/engine.sock").unwrap();
        assert!(e.contains("no socket at /nonexistent/engine.sock"), "{e}");
        assert_eq!(super::missing_socket("/"), None);
        // A client is still made: it is asked only later.
        assert!(super::unix("/nonexistent/engine.sock", 5, bollard::API_DEFAULT_VERSION).is_ok());
    }
}
