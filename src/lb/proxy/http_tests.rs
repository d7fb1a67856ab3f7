//! HTTP mode against real sockets: each request of a keep-alive connection
//! balanced and counted, retries on another member, status classes, the
//! header and idle timeouts.

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn http_cfg() -> ProxyConfig {
    ProxyConfig {
        mode: LbMode::Http,
        connect_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test timed out")
}

/// A keep-alive HTTP member answering `NAME PATH`; `/status/N` answers N.
async fn member(name: &str) -> Backend {
    let l = TcpListener::bind(localhost()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let member = name.to_owned();
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let name = name.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let name = name.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let status = path
                            .strip_prefix("/status/")
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(200u16);
                        let mut r = Response::new(Full::new(Bytes::from(format!("{name} {path}"))));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Backend { member, addr }
}

/// One keep-alive client connection to the proxy.
async fn client(proxy: &Proxy) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let s = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn get(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
) -> (u16, String) {
    send.ready().await.unwrap();
    let req = Request::builder()
        .uri(path)
        .header("host", "test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn each_request_of_a_keep_alive_connection_is_balanced_and_counted() {
    within(async {
        let proxy = Proxy::start(localhost(), http_cfg()).await.unwrap();
        proxy.set_backends(vec![member("a").await, member("b").await]);
        let mut c = client(&proxy).await;
        let mut served = Vec::new();
        for i in 0..4 {
            let (status, body) = get(&mut c, &format!("/r{i}")).await;
            assert_eq!(status, 200);
            assert!(body.ends_with(&format!(" /r{i}")), "{body}");
            served.push(body.split(' ').next().unwrap().to_owned());
        }
        // Round robin per request, on one connection.
        assert_ne!(served[0], served[1], "{served:?}");
        assert_eq!(served[0], served[2], "{served:?}");
        let (status, _) = get(&mut c, "/status/503").await;
        assert_eq!(status, 503);
        let (status, _) = get(&mut c, "/status/404").await;
        assert_eq!(status, 404);
        let st = proxy.stats();
        assert_eq!(st.connections_total, 1);
        assert_eq!(st.requests_total, 6);
        assert_eq!(st.responses, [0, 4, 0, 1, 1]);
        assert_eq!(st.per_member.values().sum::<u64>(), 6);
        assert_eq!(st.latency.iter().sum::<u64>(), 6);
        assert_eq!(st.errors_total, 0);
    })
    .await;
}

#[tokio::test]
async fn a_dead_member_is_ejected_and_its_requests_go_to_another() {
    within(async {
        let proxy = Proxy::start(localhost(), http_cfg()).await.unwrap();
        // Bound, not listening: refuses connections.
        let dead = tokio::net::TcpSocket::new_v4().unwrap();
        dead.bind(localhost()).unwrap();
        proxy.set_backends(vec![
            Backend {
                member: "dead".into(),
                addr: dead.local_addr().unwrap(),
            },
            member("live").await,
        ]);
        let mut c = client(&proxy).await;
        for _ in 0..6 {
            let (status, body) = get(&mut c, "/").await;
            assert_eq!(status, 200);
            assert!(body.starts_with("live "), "{body}");
        }
        let st = proxy.stats();
        assert_eq!(st.responses[1], 6);
        assert!(st.retries_total >= 1, "{st:?}");
        assert_eq!(proxy.ejected().len(), 1);
        assert_eq!(proxy.ejected()[0].member, "dead");
    })
    .await;
}

#[tokio::test]
async fn no_member_is_a_503_counted_as_5xx() {
    within(async {
        let proxy = Proxy::start(localhost(), http_cfg()).await.unwrap();
        let mut c = client(&proxy).await;
        let (status, _) = get(&mut c, "/").await;
        assert_eq!(status, 503);
        let st = proxy.stats();
        assert_eq!(st.responses[4], 1);
        assert_eq!(st.errors_total, 1);
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    within(async {
        let cfg = ProxyConfig {
            idle_timeout: Duration::from_millis(300),
            ..http_cfg()
        };
        let proxy = Proxy::start(localhost(), cfg).await.unwrap();
        proxy.set_backends(vec![member("a").await]);
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // The response, then end of stream once the connection idles.
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("a /"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_client_slow_to_send_its_head_is_cut_off() {
    within(async {
        let cfg = ProxyConfig {
            header_timeout: Duration::from_millis(300),
            ..http_cfg()
        };
        let proxy = Proxy::start(localhost(), cfg).await.unwrap();
        proxy.set_backends(vec![member("a").await]);
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n").await.unwrap();
        let mut buf = [0u8; 4096];
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // hyper answers 408 or just closes; either way no member saw it.
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("a /"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(proxy.stats().per_member.values().sum::<u64>(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_head_larger_than_the_buffer_bound_is_refused() {
    within(async {
        let cfg = ProxyConfig {
            max_buffered: 8192,
            ..http_cfg()
        };
        let proxy = Proxy::start(localhost(), cfg).await.unwrap();
        proxy.set_backends(vec![member("a").await]);
        let mut s = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let big = "x".repeat(20_000);
        let req = format!("GET / HTTP/1.1\r\nhost: t\r\nx-big: {big}\r\n\r\n");
        let _ = s.write_all(req.as_bytes()).await;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(!text.contains("a /"), "{text}");
        assert_eq!(proxy.stats().per_member.values().sum::<u64>(), 0);
    })
    .await;
}
