//! End-to-end runs of `drover chaos` against a fake service: a cluster
//! whose faulted members go on fire and are replaced 150 ms later, behind a
//! load balancer that answers 503 while a member is on fire.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

use crate::cli::Output;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// A fake drover: one cluster `web` of two members, killed members go
/// on fire and are replaced 150 ms later; the load balancer answers 503
/// while a member is on fire.
struct Fake {
    members: Vec<(String, Option<Instant>, u64)>,
    next: u32,
    with_lb: bool,
    lb_port: u16,
    recorded: Vec<Value>,
}

impl Fake {
    fn advance(&mut self) {
        let now = Instant::now();
        let mut replaced = 0;
        self.members.retain(|(_, killed, _)| match killed {
            Some(t) if now.duration_since(*t) >= Duration::from_millis(150) => {
                replaced += 1;
                false
            }
            _ => true,
        });
        for _ in 0..replaced {
            self.next += 1;
            self.members
                .push((format!("web-{}", self.next), None, now_ms()));
        }
    }

    fn degraded(&mut self) -> bool {
        self.advance();
        self.members.iter().any(|(_, k, _)| k.is_some())
    }

    fn tree(&mut self) -> Value {
        self.advance();
        let fire = self.members.iter().any(|(_, k, _)| k.is_some());
        let state = if fire { "on-fire" } else { "running" };
        let mut entities = vec![
            json!({ "id": "demo", "type": "application", "state": state, "parent": null, "children": [], "sensors": {} }),
            json!({ "id": "web", "type": "cluster", "state": state, "parent": "demo", "children": [], "sensors": {
                "group.size": { "value": self.members.len(), "timestamp_ms": 1 },
                "group.desired_size": { "value": 2, "timestamp_ms": 1 } } }),
        ];
        for (id, killed, ts) in &self.members {
            let (state, up) = if killed.is_some() {
                ("on-fire", false)
            } else {
                ("running", true)
            };
            entities.push(json!({ "id": id, "type": "container", "state": state, "parent": "web", "children": [],
                "sensors": { "service.up": { "value": up, "timestamp_ms": ts } } }));
        }
        if self.with_lb {
            entities.push(json!({ "id": "lb", "type": "load-balancer", "state": "running", "parent": "demo", "children": [], "sensors": {
                "lb.address": { "value": "127.0.0.1", "timestamp_ms": 1 }, "lb.port": { "value": self.lb_port, "timestamp_ms": 1 } } }));
        }
        let count = entities.len();
        json!({ "id": "demo", "location": "local", "state": state, "entity_count": count,
            "created_ms": 0, "entities": entities, "blueprint": { "name": "demo", "services": [] },
            "latest_activities": {} })
    }

    fn handle(&mut self, method: &str, path: &str, body: &str) -> (u16, Value) {
        match (method, path.split('/').collect::<Vec<_>>().as_slice()) {
            ("GET", ["", "v1", "applications", "demo"]) => (200, self.tree()),
            // No host pools: the application runs on `local`.
            ("GET", ["", "v1", "locations"]) => (200, json!([])),
            (
                "POST",
                ["", "v1", "applications", "demo", "entities", id, "faults", kind @ ("kill" | "stop")],
            ) => {
                self.advance();
                match self
                    .members
                    .iter_mut()
                    .find(|(m, k, _)| m == id && k.is_none())
                {
                    Some(m) => {
                        m.1 = Some(Instant::now());
                        m.2 = now_ms();
                        let how = format!("docker {kind} through engine local");
                        (
                            200,
                            json!({ "fault": kind, "host": "local", "container": "c0ffee", "how": how }),
                        )
                    }
                    None => (404, json!({ "error": format!("no running entity {id}") })),
                }
            }
            ("POST", ["", "v1", "chaos", "faults"]) => {
                self.recorded
                    .push(serde_json::from_str(body).unwrap_or(Value::Null));
                (404, json!({ "error": "not found" }))
            }
            _ => (404, json!({ "error": "not found" })),
        }
    }
}

fn read_request(s: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((method, path, String::from_utf8_lossy(&body).to_string()))
}

fn serve<F: Fn(&mut TcpStream) + Send + Sync + 'static>(handler: F) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let h = handler.clone();
            std::thread::spawn(move || {
                let mut s = s;
                h(&mut s);
            });
        }
    });
    port
}

fn fake(with_lb: bool) -> (Client, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(Fake {
        members: vec![
            ("web-1".into(), None, now_ms()),
            ("web-2".into(), None, now_ms()),
        ],
        next: 2,
        with_lb,
        lb_port: 0,
        recorded: Vec::new(),
    }));
    let lb_state = state.clone();
    let lb_port = serve(move |s| {
        if read_request(s).is_some() {
            let degraded = lb_state.lock().unwrap().degraded();
            let answer: &[u8] = if degraded {
                b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            };
            let _ = s.write_all(answer);
        }
    });
    state.lock().unwrap().lb_port = lb_port;
    let api_state = state.clone();
    let api_port = serve(move |s| {
        while let Some((method, path, body)) = read_request(s) {
            let (status, value) = api_state.lock().unwrap().handle(&method, &path, &body);
            let text = value.to_string();
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len());
            if s.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    (Client::new(&format!("http://127.0.0.1:{api_port}")), state)
}

#[test]
fn run_against_a_fake_service() {
    let (client, state) = fake(true);
    let opts = ChaosOptions {
        duration: Duration::from_millis(1200),
        interval: Duration::from_millis(300),
        settle: Duration::from_secs(5),
        seed: 11,
        ..ChaosOptions::new("demo")
    };
    let report = run(&client, &opts).unwrap();
    assert_eq!(report.faults.len(), 4, "{report:#?}");
    assert_eq!(report.faults_injected, 4, "{report:#?}");
    for f in &report.faults {
        assert_eq!(f.error, None);
        let mttr = f.mttr_seconds.expect("recovered");
        assert!((0.14..2.0).contains(&mttr), "{f:?}");
    }
    assert!(report.converged, "{}", report.convergence_detail);
    assert!(report.probes_total > 50, "{report:#?}");
    assert!(
        report.probes_failed > 0 && report.probes_failed < report.probes_total,
        "{report:#?}"
    );
    assert!(
        (0.1..1.5).contains(&report.longest_outage_seconds),
        "{report:#?}"
    );
    assert!(report.probe_success_rate > 0.0 && report.probe_success_rate < 1.0);
    assert!(
        report.mttr_p50_seconds <= report.mttr_p99_seconds
            && report.mttr_p99_seconds <= report.mttr_max_seconds
    );
    assert_eq!(state.lock().unwrap().recorded.len(), 4);
    assert_eq!(state.lock().unwrap().recorded[0]["fault"], "kill");
    print_report(&report, Output::Text);
    print_report(&report, Output::Json);
    let text = serde_json::to_value(&report).unwrap();
    assert_eq!(text["faults"][0]["fault"], "kill");
    // How each fault was injected, from the service's answer.
    assert!(report
        .faults
        .iter()
        .all(|f| f.how.as_deref() == Some("docker kill through engine local")));
    assert_eq!(report.by_fault.len(), 1);
    assert_eq!(report.by_fault[0].recovered, 4);
    assert_eq!(
        text["by_fault"][0]["how"][0],
        "docker kill through engine local"
    );
}

#[test]
fn stops_come_through_the_fault_route_and_are_told_apart() {
    let (client, state) = fake(true);
    let opts = ChaosOptions {
        duration: Duration::from_millis(900),
        interval: Duration::from_millis(300),
        settle: Duration::from_secs(5),
        faults: vec![FaultKind::Kill, FaultKind::Stop],
        seed: 3,
        ..ChaosOptions::new("demo")
    };
    let report = run(&client, &opts).unwrap();
    assert!(report.converged, "{}", report.convergence_detail);
    for f in &report.faults {
        assert_eq!(
            f.how.as_deref(),
            Some(format!("docker {} through engine local", f.fault).as_str()),
            "{f:?}"
        );
    }
    let recorded = &state.lock().unwrap().recorded;
    assert_eq!(recorded.len(), report.faults.len());
}

#[test]
fn engine_stop_needs_a_pool_location() {
    let (client, _) = fake(true);
    let e = run(
        &client,
        &ChaosOptions {
            faults: vec![FaultKind::Kill, FaultKind::EngineStop],
            ..ChaosOptions::new("demo")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("engine-stop") && e.contains("location `local`, which is no pool"),
        "{e}"
    );
}

#[test]
fn run_needs_a_load_balancer_and_reports_refused_faults() {
    let (client, _) = fake(false);
    let e = run(&client, &ChaosOptions::new("demo"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("load balancer"), "{e}");

    let (client, _) = fake(true);
    let opts = ChaosOptions {
        duration: Duration::from_millis(300),
        interval: Duration::from_millis(300),
        settle: Duration::from_millis(200),
        faults: vec![FaultKind::Pause],
        ..ChaosOptions::new("demo")
    };
    let report = run(&client, &opts).unwrap();
    assert_eq!(report.faults.len(), 1);
    assert_eq!(report.faults_injected, 0);
    let err = report.faults[0].error.as_deref().unwrap_or_default();
    assert!(
        err.contains("pause fault not injected") && err.contains("404"),
        "{err}"
    );
    assert!(report.converged, "{}", report.convergence_detail);
    assert_eq!(report.probes_failed, 0);
    let e = run(
        &client,
        &ChaosOptions {
            target: Some("nope".into()),
            ..ChaosOptions::new("demo")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`nope`"), "{e}");
}
