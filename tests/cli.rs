//! The client commands and the HTTP server's edges against a real drover:
//! closed pipes, error answers, log colours, blueprint error positions.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drover::wire::{AppSummary, ErrorBody};

/// Runs a client command whose stdout reader has gone before it writes
/// (as `drover status shop | head -0` would): the pipe is closed at once.
fn run_into_closed_pipe(d: &Drover, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(drover_bin())
        .args(args)
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drover runs");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stderr)
}

#[test]
fn commands_exit_quietly_when_their_reader_goes() {
    let app = unique("pipe");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    // No members: no containers to wait for, still a tree to print.
    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 0\n    member:\n      image: drover/workload:latest\n"
    ));
    for args in [
        vec!["status", app.as_str()],
        vec!["ls"],
        vec!["hosts"],
        vec!["status", app.as_str(), "-o", "json"],
    ] {
        let (code, stderr) = run_into_closed_pipe(&d, &args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "drover {args:?} into a closed pipe: {stderr}"
        );
        assert_ne!(code, Some(101), "drover {args:?} panicked: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "drover {args:?} is not quiet: {stderr}"
        );
    }
    let (_, stderr) = run_into_closed_pipe(&d, &["destroy", &app]);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unknown_activity_kind_is_an_error_naming_the_kinds() {
    let d = Drover::start();
    let (status, body) = d.get("/v1/activities?kind=bogus");
    assert_eq!(status, 400, "{body}");
    let e = error_body(body);
    assert!(e.error.contains("effector, policy, event"), "{}", e.error);

    let run = d.cli(&["activities", "--kind", "bogus"]);
    assert!(!run.ok, "exit 0 for a bogus kind: {run:?}");
    assert!(
        run.stderr.contains("unknown activity kind `bogus`")
            && run.stderr.contains("effector, policy, event"),
        "{run:?}"
    );
    let run = d.cli(&["activities", "--kind", "event"]);
    assert!(run.ok, "{run:?}");
}

#[test]
fn every_error_answer_is_json() {
    let d = Drover::start();
    let agent = d.agent();
    let call = |method: &str, path: &str, body: Option<String>| {
        let url = format!("{}{path}", d.url);
        let r = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("PUT", Some(b)) => agent
                .put(&url)
                .header("content-type", "application/yaml")
                .send(b),
            ("POST", Some(b)) => agent
                .post(&url)
                .header("content-type", "application/yaml")
                .send(b),
            (m, b) => panic!("no such call {m} {b:?}"),
        };
        let mut r = r.expect("drover answers");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        let body: ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} answered {status} {ct} `{text}`: {e}"));
        (status, ct, body)
    };
    let (status, ct, b) = call("GET", "/v1/nope", None);
    assert_eq!((status, ct.as_str()), (404, "application/json"));
    assert!(b.error.contains("no route GET /v1/nope"), "{}", b.error);
    let (status, _, b) = call("PUT", "/healthz", Some(String::new()));
    assert_eq!(status, 405, "{}", b.error);
    // Over the body limit (256 KiB).
    let big = format!("name: x\n# {}\n", "x".repeat(400 * 1024));
    let (status, _, b) = call("POST", "/v1/applications", Some(big));
    assert_eq!(status, 413, "{}", b.error);
    assert!(b.error.contains("too large"), "{}", b.error);
    // The documented errors are unchanged.
    let (status, _, b) = call("GET", "/v1/applications/none-such", None);
    assert_eq!(status, 404, "{}", b.error);
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(drover_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(dir.path().join("drover.redb"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("drover serve starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut lines = Vec::new();
    // A few log lines (drover logs its start at info).
    while lines.len() < 3 && t0.elapsed() < Duration::from_secs(30) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(l);
        } else if !lines.is_empty() {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!lines.is_empty(), "drover serve logged nothing at info");
    let text = lines.concat();
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape codes in logs written to a pipe:\n{text:?}"
    );
    assert!(text.contains("INFO"), "{text}");
}

#[test]
fn deploy_errors_name_the_users_file_and_position() {
    let app = unique("file");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let dir = tempfile::tempdir().unwrap();
    // A context without a Dockerfile: only the service finds that out.
    std::fs::create_dir(dir.path().join("web")).unwrap();
    std::fs::write(
        dir.path().join("shop.yml"),
        format!(
            "# comments and blank lines that a re-serialised text would drop\n\nname: {app}\n\nservices:\n  # the front\n  - id: web\n    type: container\n    build: ./web\n"
        ),
    )
    .unwrap();
    let out = Command::new(drover_bin())
        .args(["deploy", "shop.yml"])
        .current_dir(dir.path())
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .expect("drover runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("has no `Dockerfile`"), "{stderr}");
    assert!(!stderr.contains("<request>"), "{stderr}");
    // `build: ./web` is on line 9, its value at column 12.
    assert!(
        stderr.contains("shop.yml:9:12: services[0].build"),
        "{stderr}"
    );
}

#[test]
fn the_application_summary_counts_entities_once() {
    let app = unique("count");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 0\n    member:\n      image: drover/workload:latest\n"
    ));
    let detail = d.app_detail(&app);
    assert_eq!(detail.summary.entity_count, detail.entities.len());
    let text = d.get_text(&format!("/v1/applications/{app}"));
    assert_eq!(text.matches("\"entities\"").count(), 1, "{text}");
    let (_, list) = d.get("/v1/applications");
    let apps: Vec<AppSummary> = decode(list);
    assert!(apps
        .iter()
        .any(|a| a.id == app && a.entity_count == detail.entities.len()));
    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204);
}

#[test]
fn every_listing_reads_as_its_wire_type() {
    use drover::wire::{Activity, Health, HostView, PoolView, PresetList};
    let d = Drover::start();
    let get = |path: &str| {
        let (status, body) = d.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    };
    assert_eq!(decode::<Health>(get("/healthz")).status, "ok");
    let hosts: Vec<HostView> = decode(get("/v1/hosts"));
    assert!(!hosts.is_empty());
    let _: Vec<PoolView> = decode(get("/v1/locations"));
    let _: PresetList = decode(get("/v1/presets"));
    let _: Vec<Activity> = decode(get("/v1/activities"));
    let _: Vec<AppSummary> = decode(get("/v1/applications"));
    // And the CLI's tables render them.
    for args in [["hosts"], ["locations"], ["ls"], ["activities"]] {
        let run = d.cli(&args);
        assert!(run.ok, "{run:?}");
    }
    let run = d.cli(&["hosts"]);
    assert!(run.stdout.contains("MEMORY"), "{run:?}");
}

/// `drover hosts` counts this drover's containers as soon as they run, not
/// at the engine's next resync (every 10 s), and never another drover's.
#[test]
fn hosts_count_this_drovers_containers_at_once() {
    use drover::wire::HostView;
    let app = unique("hostcount");
    let _g = AppGuard(app.clone());
    let other = Drover::start();
    let d = Drover::start();
    let other_app = unique("hostother");
    let _g2 = AppGuard(other_app.clone());
    other.deploy(&format!(
        "name: {other_app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 1\n    member:\n      image: drover/workload:latest\n"
    ));
    other.wait_running(&other_app, std::time::Duration::from_secs(60));
    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      image: drover/workload:latest\n"
    ));
    d.wait_running(&app, std::time::Duration::from_secs(60));
    let (status, body) = d.get("/v1/hosts");
    assert_eq!(status, 200, "{body}");
    let hosts: Vec<HostView> = decode(body);
    let local = hosts
        .iter()
        .find(|h| h.name == "local")
        .expect("the local host");
    assert_eq!(local.containers, 2, "{hosts:?}");
}
