//! Engines reached over TLS (`tls: {ca, cert, key}` in drover.yaml):
//! a dockerd started with `--tlsverify` and certificates made here with
//! openssl. The right CA and client certificate connect; a wrong CA, or a
//! client certificate the engine does not trust, is refused with an error
//! naming the endpoint.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::engines::Octet;
use drover::location::provision::LocalEngine;

use common::certs::{ca, cert};

/// Stops the engine even when the test fails.
struct Guard(LocalEngine, #[allow(dead_code)] Octet);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_engine_connects_with_the_right_certificates_only() {
    common::require_docker();
    let dir = tempfile::Builder::new()
        .prefix("drover-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    ca(d, "ca");
    ca(d, "evil");
    cert(d, "server", "ca", "serverAuth");
    cert(d, "client", "ca", "clientAuth");
    cert(d, "intruder", "evil", "clientAuth");
    let p = |f: &str| -> PathBuf { d.join(f) };
    let port = free_port();
    let octet = Octet::claim();
    let mut engine = LocalEngine::at(&d.join("engines"), "tls-1");
    engine.extra_args = vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        p("ca.pem").display().to_string(),
        "--tlscert".into(),
        p("server.pem").display().to_string(),
        "--tlskey".into(),
        p("server.key").display().to_string(),
        "-H".into(),
        format!("tcp://127.0.0.1:{port}"),
    ];
    let o = octet.octet;
    let guard = Guard(engine.clone(), octet);
    guard
        .0
        .start(Path::new("dockerd"), (10, o), 1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("dockerd with --tlsverify did not start: {e}"));
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // Its TCP listener may come up just after the unix socket.
    let mut ok = None;
    for _ in 0..100 {
        match drover::host::engines::connect_endpoint(
            &endpoint,
            Some((&p("ca.pem"), &p("client.pem"), &p("client.key"))),
        )
        .await
        {
            Ok(docker) => {
                ok = Some(docker);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let docker = ok.expect("the right CA and client certificate connect");
    docker.ping().await.unwrap();
    // A CA that did not sign the server's certificate: refused.
    let e = drover::host::engines::connect_endpoint(
        &endpoint,
        Some((&p("evil.pem"), &p("client.pem"), &p("client.key"))),
    )
    .await
    .expect_err("a wrong CA is refused")
    .to_string();
    assert!(
        e.starts_with(&format!(
            "TLS connection to the Docker engine at {endpoint} failed"
        )),
        "{e}"
    );
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    println!("wrong CA: {e}");
    // A client certificate the engine does not trust: refused.
    let e = drover::host::engines::connect_endpoint(
        &endpoint,
        Some((&p("ca.pem"), &p("intruder.pem"), &p("intruder.key"))),
    )
    .await
    .expect_err("an untrusted client certificate is refused")
    .to_string();
    assert!(
        e.starts_with(&format!(
            "TLS connection to the Docker engine at {endpoint} failed"
        )),
        "{e}"
    );
    println!("untrusted client: {e}");
    drop(guard);
}
