//! Host provisioning benchmark (issue 5): the time from "no host fits" to
//! the container running (passing its health check) on a newly provisioned
//! local dockerd host, against the same steps done by hand in the same run:
//! start a dockerd with its own data root and bridge, load the workload
//! image, `docker run` it, poll its `/health`.
//!
//! drover's rounds: a pool of one static host holding one container
//! (`max_containers: 1`); a resize to 2 makes the pool provision a host and
//! start the member there; a resize back to 1 empties it and the host
//! autoscaler decommissions it after its cold window (1 s) before the next
//! round. Prints the medians and their ratio (by hand / drover).
//!
//! `cargo bench --bench provision`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::engines::{Engines, Octet};
use common::{wait_for, Drover};
use drover::location::provision::LocalEngine;
use serde_json::json;

const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn member_running(d: &Drover, app: &str, member: &str) -> bool {
    let v = d.app(app);
    v["entities"]
        .as_array()
        .map(|es| {
            es.iter()
                .any(|e| e["id"] == member && e["state"] == "running")
        })
        .unwrap_or(false)
}

fn drover_rounds(engines: &mut Engines) -> Vec<f64> {
    let subnet = engines.provision_subnet();
    let cfg = engines.dir.path().join("drover.yaml");
    std::fs::write(
        &cfg,
        format!(
            "locations:\n  pool:\n    hosts:\n      - {{ name: pool-0, endpoint: '{}' }}\n    \
             placement: {{ max_containers: 1 }}\n    max_hosts: 2\n    cold_window: 1s\n    \
             provisioner: {{ type: local-dockerd, dir: '{}', subnet: {subnet} }}\n",
            engines.socket(0),
            engines.provision_dir().display()
        ),
    )
    .unwrap();
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = common::unique("provision");
    d.deploy(&format!(
        "name: {app}\nlocation: pool\nservices:\n  - id: web\n    type: cluster\n    \
         initial_size: 1\n    member:\n      image: drover/workload:latest\n      ports: [8080]\n      \
         health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}\n"
    ));
    wait_for(Duration::from_secs(60), "web-1 running", || {
        member_running(&d, &app, "web-1").then_some(())
    });
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let member = format!("web-{}", round + 2);
        let t0 = Instant::now();
        let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 2 }));
        assert_eq!(s, 200, "{b}");
        wait_for(Duration::from_secs(90), "the new member running", || {
            member_running(&d, &app, &member).then_some(())
        });
        let t = t0.elapsed().as_secs_f64();
        println!("drover round {round}: {t:.2} s");
        times.push(t);
        let (s, b) = d.invoke(&app, "web", "resize", json!({ "size": 1 }));
        assert_eq!(s, 200, "{b}");
        // The host autoscaler gives the emptied host back.
        wait_for(
            Duration::from_secs(60),
            "the new host decommissioned",
            || {
                let (_, locs) = d.get("/v1/locations");
                (locs[0]["hosts"].as_array().map(|h| h.len()) == Some(1)).then_some(())
            },
        );
    }
    let (s, _) = d.delete(&format!("/v1/applications/{app}"));
    assert!(s == 204 || s == 404);
    times
}

fn by_hand_rounds(engines: &mut Engines) -> Vec<f64> {
    let octet = Octet::claim();
    let dir = engines.dir.path().join("manual");
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("manual-{round}");
        let e = LocalEngine::at(&dir, &name);
        // Stopped by `Engines` on drop too, if a round fails half-way.
        engines.engines.push((name, e.clone()));
        let sock = format!("unix://{}", e.socket.display());
        let t0 = Instant::now();
        e.start(
            Path::new("dockerd"),
            (10, octet.octet),
            round as u32 + 1,
            Duration::from_secs(30),
        )
        .expect("dockerd starts");
        let st = Command::new(common::drover_bin())
            .args(["workload-image", "--docker", &sock])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let out = Command::new("docker")
            .args(["-H", &sock, "run", "-d", "-p", "127.0.0.1::8080"])
            .arg("drover/workload:latest")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("docker")
            .args(["-H", &sock, "ps", "--format", "{{.Ports}}"])
            .output()
            .unwrap();
        let ports = String::from_utf8_lossy(&out.stdout).to_string();
        let port: u16 = ports
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split("->").next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no published port in {ports:?}"));
        wait_for(Duration::from_secs(30), "/health answers", || {
            common::http_get(port, "/health")
                .filter(|(status, _)| *status == 200)
                .map(|_| ())
        });
        let t = t0.elapsed().as_secs_f64();
        println!("by hand round {round}: {t:.2} s");
        times.push(t);
        let _ = Command::new("docker")
            .args(["-H", &sock, "rm", "-f"])
            .args(
                String::from_utf8_lossy(
                    &Command::new("docker")
                        .args(["-H", &sock, "ps", "-aq"])
                        .output()
                        .unwrap()
                        .stdout,
                )
                .split_whitespace(),
            )
            .output();
        let _ = e.stop();
    }
    times
}

fn main() {
    let mut engines = Engines::start(1);
    // The workload image on the static host: drover copies nothing for it
    // (the embedded workload is imported on any engine), as by hand.
    let by_hand = by_hand_rounds(&mut engines);
    let drover = drover_rounds(&mut engines);
    let (m_d, m_h) = (median(drover), median(by_hand));
    println!(
        "no host fits → running on a new local dockerd host: drover median {m_d:.2} s; \
         the same steps by hand median {m_h:.2} s; by hand / drover = {:.2}",
        m_h / m_d
    );
}
