//! The proxy against real sockets: round robin, ejection, replay, half-close.

use super::*;
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Slow clients (connected, sending nothing) hold no more than their cap
/// and their timeout: 1,000 of them do not stop a normal client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_clients_do_not_stop_a_normal_one() {
    let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
    proxy.set_backends(vec![http_backend("a").await]);
    let mut slow = Vec::new();
    for _ in 0..1000 {
        slow.push(TcpStream::connect(proxy.local_addr()).await.unwrap());
    }
    // Every slow connection reached the proxy before the normal client.
    tokio::time::timeout(Duration::from_secs(30), async {
        while proxy.stats().active < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the slow connections were accepted");
    let resp = tokio::time::timeout(Duration::from_secs(10), request(&proxy))
        .await
        .expect("the normal client was served")
        .unwrap();
    assert_eq!(member_of(&resp), "a");
    drop(slow);
}

#[tokio::test]
async fn over_the_cap_a_client_is_closed_and_a_silent_one_times_out() {
    within(async {
        let cfg = ProxyConfig {
            max_connections: 2,
            first_byte_timeout: Duration::from_millis(300),
            ..quick_cfg()
        };
        let proxy = Proxy::start(localhost(), cfg).await.unwrap();
        proxy.set_backends(vec![http_backend("a").await]);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(TcpStream::connect(proxy.local_addr()).await.unwrap());
        }
        while proxy.stats().active < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The third is closed at once: EOF, no answer.
        let mut third = TcpStream::connect(proxy.local_addr()).await.unwrap();
        let mut buf = Vec::new();
        let _ = third.read_to_end(&mut buf).await;
        assert!(buf.is_empty());
        // The silent two are closed by the first-byte timeout (EOF),
        // and the slots come back.
        for mut s in held {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            assert!(buf.is_empty());
        }
        wait_idle(&proxy).await;
        let resp = request(&proxy).await.unwrap();
        assert_eq!(member_of(&resp), "a");
    })
    .await
}

#[tokio::test]
async fn settings_change_in_place_keeping_the_socket_and_open_connections() {
    within(async {
        let proxy = Proxy::start(localhost(), quick_cfg()).await.unwrap();
        let addr = proxy.local_addr();
        proxy.set_backends(vec![http_backend("a").await]);
        // One connection open (silent for now) before the change.
        let mut held = TcpStream::connect(addr).await.unwrap();
        while proxy.stats().active < 1 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        proxy.set_config(ProxyConfig {
            max_connections: 1,
            ..quick_cfg()
        });
        assert_eq!(proxy.config().max_connections, 1);
        assert_eq!(proxy.local_addr(), addr, "the same socket");
        // A new connection meets the new cap: closed at once.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let _ = second.read_to_end(&mut buf).await;
        assert!(buf.is_empty(), "over the new cap");
        // The open one is served as before.
        held.write_all(REQ.as_bytes()).await.unwrap();
        let mut resp = String::new();
        held.read_to_string(&mut resp).await.unwrap();
        assert_eq!(member_of(&resp), "a", "{resp}");
    })
    .await
}
