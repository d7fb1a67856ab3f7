//! Authentication and authorization against a real `drover serve`: tokens
//! and roles, revocation, body types, Host checks, CORS, the open routes,
//! the plain-HTTP rule off loopback, HTTPS with a self-signed certificate,
//! and logs that never show a token.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A `drover serve` of this file: its own store, its stderr kept in a file
/// (to check what it logs), killed on drop.
struct Serve {
    child: Child,
    url: String,
    token: String,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        require_docker();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("serve.log");
        let mut child = Command::new(drover_bin())
            .arg("serve")
            .args(args)
            .arg("--store")
            .arg(dir.path().join("drover.redb"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("drover starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!(
                    "drover exited before listening:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(u) = line.trim().strip_prefix("drover listening on ") {
                break u.to_string();
            }
        };
        std::thread::spawn(move || {
            let mut s = String::new();
            while reader.read_line(&mut s).map(|n| n > 0).unwrap_or(false) {
                s.clear();
            }
        });
        let token = admin_token_of(&dir.path().join("drover.redb"));
        Serve {
            child,
            url,
            token,
            log,
            dir,
        }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `drover` CLI against this drover with `token`.
    fn cli(&self, token: &str, args: &[&str]) -> CliRun {
        let out = Command::new(drover_bin())
            .args(args)
            .env("DROVER_URL", &self.url)
            .env("DROVER_TOKEN", token)
            .output()
            .expect("drover runs");
        CliRun {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 exchange (to send any Host, method and headers):
/// status, headers (lowercase names) and body.
fn raw(port: u16, request: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {buf:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// A call with an optional token: status and JSON body.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let r = match (method, body) {
        ("GET", _) => {
            let mut b = agent.get(url);
            if let Some(a) = &auth {
                b = b.header("authorization", a);
            }
            b.call()
        }
        ("DELETE", _) => {
            let mut b = agent.delete(url);
            if let Some(a) = &auth {
                b = b.header("authorization", a);
            }
            b.call()
        }
        ("POST", body) => {
            let mut b = agent.post(url);
            if let Some(a) = &auth {
                b = b.header("authorization", a);
            }
            match body {
                Some((ct, text)) => b.header("content-type", ct).send(text),
                None => b.send_empty(),
            }
        }
        (m, _) => panic!("no such call {m}"),
    };
    let mut r = r.expect("drover answers");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn plain_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn empty_cluster(app: &str) -> String {
    format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 0\n    member:\n      image: drover/workload:latest\n"
    )
}

/// The value of `drover_api_refused_total{reason}` in a scrape.
fn refused(metrics: &str, reason: &str) -> f64 {
    let prefix = format!("drover_api_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in the scrape"))
}

#[test]
fn tokens_and_roles_decide_who_may_do_what() {
    let app = unique("auth");
    let _g = AppGuard(app.clone());
    let d = Serve::start(&["--listen", "127.0.0.1:0"]);
    let a = plain_agent();
    let url = |p: &str| format!("{}{p}", d.url);
    let admin = d.token.clone();

    // The admin token file is the owner's alone, and its path is logged.
    let file = d.dir.path().join("admin.token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        d.logs().contains(&file.display().to_string()),
        "{}",
        d.logs()
    );

    // No token, a wrong one: 401 with {error}.
    let (s, b) = call(&a, "GET", &url("/v1/applications"), None, None);
    assert_eq!(s, 401, "{b}");
    assert!(b["error"].as_str().unwrap().contains("token"), "{b}");
    let (s, b) = call(
        &a,
        "GET",
        &url("/v1/applications"),
        Some("drover_guess"),
        None,
    );
    assert_eq!(s, 401, "{b}");

    // The admin makes a viewer and an operator token with the CLI.
    let make = |role: &str, name: &str| -> String {
        let r = d.cli(&admin, &["token", "create", "--role", role, "--name", name]);
        assert!(r.ok, "token create: {}", r.stderr);
        r.stdout.trim().to_string()
    };
    let viewer = make("viewer", "watcher");
    let operator = make("operator", "oncall");
    assert!(viewer.starts_with("drover_") && viewer != operator);
    let again = d.cli(
        &admin,
        &["token", "create", "--role", "viewer", "--name", "watcher"],
    );
    assert!(
        !again.ok && again.stderr.contains("exists"),
        "{}",
        again.stderr
    );

    // Deploy: admin only.
    let bp = empty_cluster(&app);
    let (s, b) = call(
        &a,
        "POST",
        &url("/v1/applications"),
        Some(&operator),
        Some(("application/yaml", &bp)),
    );
    assert_eq!(s, 403, "operator cannot deploy: {b}");
    assert!(b["error"].as_str().unwrap().contains("admin"), "{b}");
    let (s, b) = call(
        &a,
        "POST",
        &url("/v1/applications"),
        Some(&admin),
        Some(("application/yaml", &bp)),
    );
    assert_eq!(s, 201, "{b}");

    // Reads: viewer. Effectors: operator, not viewer.
    let (s, b) = call(
        &a,
        "GET",
        &url(&format!("/v1/applications/{app}")),
        Some(&viewer),
        None,
    );
    assert_eq!(s, 200, "{b}");
    let resize = url(&format!(
        "/v1/applications/{app}/entities/web/effectors/resize"
    ));
    let (s, b) = call(
        &a,
        "POST",
        &resize,
        Some(&viewer),
        Some(("application/json", r#"{"size":0}"#)),
    );
    assert_eq!(s, 403, "viewer cannot invoke: {b}");
    let r = d.cli(&viewer, &["invoke", &app, "web", "resize", "size=0"]);
    assert!(!r.ok && r.stderr.contains("viewer"), "{}", r.stderr);
    wait_for(Duration::from_secs(60), "the cluster running", || {
        let (s, b) = call(
            &a,
            "POST",
            &resize,
            Some(&operator),
            Some(("application/json", r#"{"size":0}"#)),
        );
        (s == 200).then_some(b)
    });

    // Destroy: not the operator, the admin.
    let (s, b) = call(
        &a,
        "DELETE",
        &url(&format!("/v1/applications/{app}")),
        Some(&operator),
        None,
    );
    assert_eq!(s, 403, "operator cannot destroy: {b}");
    let r = d.cli(&admin, &["destroy", &app]);
    assert!(r.ok, "admin destroys: {}", r.stderr);

    // Tokens: admin only; the list shows names and roles, never a token.
    let (s, _) = call(&a, "GET", &url("/v1/tokens"), Some(&operator), None);
    assert_eq!(s, 403);
    let ls = d.cli(&admin, &["token", "ls"]);
    assert!(ls.ok, "{}", ls.stderr);
    for name in ["admin", "watcher", "oncall"] {
        assert!(ls.stdout.contains(name), "{}", ls.stdout);
    }
    let json = d.cli(&admin, &["token", "ls", "-o", "json"]).stdout;
    for t in [&admin, &viewer, &operator] {
        assert!(!ls.stdout.contains(t.as_str()) && !json.contains(t.as_str()));
    }
    let list: Vec<drover::wire::TokenInfo> = serde_json::from_str(&json).unwrap();
    let watcher = list.iter().find(|t| t.name == "watcher").unwrap();
    assert_eq!(watcher.role, drover::wire::Role::Viewer);
    assert!(watcher.last_used_ms.is_some(), "{watcher:?}");

    // Revocation is in force for the very next request.
    let (s, _) = call(&a, "GET", &url("/v1/applications"), Some(&viewer), None);
    assert_eq!(s, 200);
    let r = d.cli(&admin, &["token", "revoke", "watcher"]);
    assert!(r.ok, "{}", r.stderr);
    let (s, b) = call(&a, "GET", &url("/v1/applications"), Some(&viewer), None);
    assert_eq!(s, 401, "revoked: {b}");
    let r = d.cli(&admin, &["token", "revoke", "watcher"]);
    assert!(!r.ok && r.stderr.contains("no token named"), "{}", r.stderr);

    // Every refusal counted by reason.
    let (s, metrics) = call(&a, "GET", &url("/metrics"), None, None);
    assert_eq!(s, 200, "/metrics is open on loopback");
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(refused(&metrics, "no_token") >= 1.0);
    assert!(refused(&metrics, "bad_token") >= 2.0);
    assert!(refused(&metrics, "role") >= 5.0, "{metrics}");

    // Refusals are logged, with the token's name, never a token.
    let logs = d.logs();
    assert!(
        logs.contains("request refused") && logs.contains("oncall"),
        "{logs}"
    );
    for t in [&admin, &viewer, &operator] {
        assert!(
            !logs.contains(t.as_str()),
            "a token is in the logs:\n{logs}"
        );
    }
}

#[test]
fn bodies_hosts_and_preflights_are_checked() {
    let d = Serve::start(&["--listen", "127.0.0.1:0", "--allow-host", "drover.test"]);
    let port = d.port();
    let auth = format!("Authorization: Bearer {}\r\n", d.token);
    let bp = "name: x\nservices: []\n";

    // A blueprint as text/plain (what a web form can post without a
    // preflight), or without a type: 415, nothing deployed.
    for ct in ["Content-Type: text/plain\r\n", ""] {
        let (s, _, body) = raw(
            port,
            &format!(
                "POST /v1/applications HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{ct}Content-Length: {}\r\nConnection: close\r\n\r\n{bp}",
                bp.len()
            ),
        );
        assert_eq!(s, 415, "{ct:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("JSON or YAML"), "{v}");
    }

    // DNS rebinding: a name drover does not serve is refused, even with a
    // token; its address, localhost and --allow-host names are served.
    let get = |host: &str| {
        raw(
            port,
            &format!(
                "GET /v1/applications HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
            ),
        )
    };
    let (s, _, body) = get(&format!("rebind.example:{port}"));
    assert_eq!(s, 421, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("drover.test:{port}"),
    ] {
        let (s, headers, body) = get(&host);
        assert_eq!(s, 200, "{host}: {body}");
        assert!(
            !headers
                .iter()
                .any(|(k, _)| k.starts_with("access-control-")),
            "{headers:?}"
        );
    }

    // CORS stays closed: a preflight is refused, with no Access-Control-*.
    let (s, headers, body) = raw(
        port,
        &format!(
            "OPTIONS /v1/applications HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(s, 403, "{body}");
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k.starts_with("access-control-")),
        "{headers:?}"
    );

    // /healthz and (on loopback) /metrics need no token.
    for path in ["/healthz", "/metrics"] {
        let (s, _, body) = raw(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(s, 200, "{path}: {body}");
    }
    let (_, _, metrics) = raw(
        port,
        &format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    );
    assert!(refused(&metrics, "media_type") >= 2.0);
    assert!(refused(&metrics, "host") >= 1.0);
    assert!(refused(&metrics, "cors") >= 1.0);
    assert!(!d.logs().contains(&d.token), "the token is in the logs");
}

#[test]
fn plain_http_off_loopback_is_refused_unless_insecure() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(drover_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--store"])
        .arg(dir.path().join("drover.redb"))
        .output()
        .expect("drover runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plain HTTP")
            && stderr.contains("--tls-cert")
            && stderr.contains("--insecure-http"),
        "the reason and the way out: {stderr}"
    );
    assert!(
        !dir.path().join("admin.token").exists(),
        "nothing made before the refusal"
    );

    // Allowed with --insecure-http; /metrics then needs a token.
    let d = Serve::start(&["--listen", "0.0.0.0:0", "--insecure-http"]);
    let port = d.port();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let a = plain_agent();
    let (s, b) = call(&a, "GET", &metrics, None, None);
    assert_eq!(s, 401, "/metrics off loopback: {b}");
    let (s, _) = call(&a, "GET", &metrics, Some(&d.token), None);
    assert_eq!(s, 200);
    let (s, _) = call(
        &a,
        "GET",
        &format!("http://127.0.0.1:{port}/healthz"),
        None,
        None,
    );
    assert_eq!(s, 200);
}

#[test]
fn https_with_a_test_ca_and_the_cli_trusting_it() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::certs::server_certificates(certs.path());
    let d = Serve::start(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(d.url.starts_with("https://127.0.0.1:"), "{}", d.url);
    let ok = d.cli(&d.token, &["ls", "--ca-cert", ca.to_str().unwrap()]);
    assert!(ok.ok, "drover ls over https: {}", ok.stderr);
    let by_env = Command::new(drover_bin())
        .args(["token", "ls"])
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .env("DROVER_CA_CERT", &ca)
        .output()
        .unwrap();
    assert!(
        by_env.status.success(),
        "{}",
        String::from_utf8_lossy(&by_env.stderr)
    );
    assert!(String::from_utf8_lossy(&by_env.stdout).contains("admin"));
    // Without the certificate, the CLI does not trust the service.
    let untrusted = d.cli(&d.token, &["ls"]);
    assert!(!untrusted.ok, "{}", untrusted.stdout);
    assert!(
        untrusted.stderr.contains("cannot reach drover"),
        "{}",
        untrusted.stderr
    );
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = plain_agent()
        .get(&d.url.replace("https://", "http://"))
        .call();
    assert!(plain.map(|r| r.status().as_u16() >= 400).unwrap_or(true));
    assert!(!d.logs().contains(&d.token));
}
