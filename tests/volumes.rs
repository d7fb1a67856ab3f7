//! Volumes against the real engine: a member's named volume follows its
//! identity through a kill and `replace_member`, survives a destroy and a
//! redeploy, and goes with `destroy --volumes`; host paths only under the
//! allowed roots; tmpfs writable and never persisted; `retain: false`
//! volumes go with their member.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use drover::wire::{DestroyAnswer, ErrorBody};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(120);

/// Removes the application's containers, network and volumes when dropped.
struct VolumeGuard(AppGuard);

impl VolumeGuard {
    fn new(app: &str) -> Self {
        VolumeGuard(AppGuard(app.to_string()))
    }
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        remove_app_leftovers(&self.0 .0);
        let vols = volumes_of(&self.0 .0);
        if !vols.is_empty() {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f"])
                .args(&vols)
                .output();
        }
    }
}

/// `docker volume ls --filter label=io.drover.app=APP`, sorted.
fn volumes_of(app: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=io.drover.app={app}"),
        ])
        .output()
        .expect("docker volume ls runs");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn volume_labels(name: &str) -> serde_json::Value {
    let out = Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .expect("docker volume inspect runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[0]["Labels"].clone()
}

/// A plain HTTP request over std; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The published port of an entity's 8080, once it has one.
fn port_of(d: &Drover, app: &str, entity: &str) -> u16 {
    wait_for(DEADLINE, &format!("{entity}'s published port"), || {
        d.sensors(app, entity)["host.port.8080"]["value"]
            .as_u64()
            .map(|p| p as u16)
    })
}

/// `GET /files/NAME` through the entity's port, waiting for an answer.
fn read_file(d: &Drover, app: &str, entity: &str, name: &str) -> (u16, String) {
    let port = port_of(d, app, entity);
    wait_for(DEADLINE, &format!("GET /files/{name} on {entity}"), || {
        http(port, "GET", &format!("/files/{name}"), "")
    })
}

fn container_id(app: &str, entity: &str) -> String {
    let out = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.Id}}",
            &format!("drover-{app}-{entity}"),
        ])
        .output()
        .expect("docker inspect runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A drover whose drover.yaml allows host paths under `root` only.
fn drover_allowing(root: &std::path::Path) -> (Drover, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("drover.yaml");
    std::fs::write(&cfg, format!("allowed_host_paths: [{}]\n", root.display())).unwrap();
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    (d, dir)
}

fn stateful_blueprint(app: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
      volumes:
        - {{ name: data, path: /data }}
  - id: scratch
    type: container
    image: drover/workload:latest
    ports: [8080]
    env: {{ DATA_DIR: /scratch }}
    health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
    volumes:
      - {{ tmpfs: /scratch, size: 8Mi }}
"#
    )
}

#[test]
fn a_members_volume_survives_kill_replace_and_redeploy_until_destroy_volumes() {
    let app = unique("vol");
    let _g = VolumeGuard::new(&app);
    let d = Drover::start();
    let bp = stateful_blueprint(&app);
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);

    // Volumes carry drover's labels, one per member identity.
    let data1 = format!("drover-{app}-web-1-data");
    let data2 = format!("drover-{app}-web-2-data");
    assert_eq!(volumes_of(&app), vec![data1.clone(), data2.clone()]);
    let labels = volume_labels(&data1);
    assert_eq!(labels["io.drover.managed"], "true", "{labels}");
    assert_eq!(labels["io.drover.app"], app.as_str(), "{labels}");
    assert_eq!(labels["io.drover.entity"], "web-1", "{labels}");
    assert!(labels["io.drover.owner"].is_string(), "{labels}");

    // Write through web-1.
    let secret = format!("kept by {app}");
    let port = port_of(&d, &app, "web-1");
    let put = http(port, "PUT", "/files/x", &secret).expect("PUT answered");
    assert_eq!(put.0, 200, "{put:?}");
    assert_eq!(read_file(&d, &app, "web-1", "x"), (200, secret.clone()));
    assert_eq!(
        read_file(&d, &app, "web-2", "x").0,
        404,
        "web-2 has its own volume"
    );

    // Kill it, then replace it: the replacement is web-1 again, a new
    // container on the same volume.
    let before = container_id(&app, "web-1");
    let killed = Command::new("docker")
        .args(["kill", &before])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let (status, body) = d.invoke(&app, "web", "replace_member", json!({ "member": "web-1" }));
    assert_eq!(status, 200, "replace_member: {body}");
    assert_eq!(body["result"]["new"], "web-1", "{body}");
    d.wait_running(&app, DEADLINE);
    let after = container_id(&app, "web-1");
    assert!(
        !after.is_empty() && after != before,
        "a new container: {before} -> {after}"
    );
    assert_eq!(read_file(&d, &app, "web-1", "x"), (200, secret.clone()));

    // tmpfs: writable, and empty again after a restart.
    let sport = port_of(&d, &app, "scratch");
    assert_eq!(
        http(sport, "PUT", "/files/t", "temp").map(|r| r.0),
        Some(200)
    );
    assert_eq!(read_file(&d, &app, "scratch", "t"), (200, "temp".into()));
    let sid = container_id(&app, "scratch");
    let mounts = inspect(&sid)["Mounts"].clone();
    assert!(
        mounts
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["Type"] == "tmpfs" && m["Destination"] == "/scratch"),
        "{mounts}"
    );
    let (status, body) = d.invoke(&app, "scratch", "restart", json!({}));
    assert_eq!(status, 200, "restart: {body}");
    d.wait_running(&app, DEADLINE);
    let (code, _) = read_file(&d, &app, "scratch", "t");
    assert_eq!(code, 404, "a tmpfs is not persisted across a restart");

    // Destroy keeps the volumes and says so.
    let out = d.cli(&["destroy", &app]);
    assert!(out.ok, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "kept 2 volumes: {data1}, {data2}; `drover destroy {app} --volumes` removes them"
        )),
        "{out:?}"
    );
    assert_eq!(volumes_of(&app), vec![data1.clone(), data2.clone()]);
    assert!(containers_of(&app, true).is_empty());

    // Redeployed: web-1 mounts its data again.
    d.deploy(&bp);
    d.wait_running(&app, DEADLINE);
    assert_eq!(read_file(&d, &app, "web-1", "x"), (200, secret));

    // Through REST: destroy with volumes=true removes them.
    let (status, body) = d.delete(&format!("/v1/applications/{app}?volumes=true"));
    assert_eq!(status, 200, "{body}");
    let answer: DestroyAnswer = decode(body);
    assert!(answer.destroyed);
    assert_eq!(answer.volumes_removed, vec![data1, data2]);
    assert!(answer.volumes_kept.is_empty());
    assert!(volumes_of(&app).is_empty(), "{:?}", volumes_of(&app));
    // Nothing left: a second destroy finds no application.
    let (status, _) = d.delete(&format!("/v1/applications/{app}?volumes=true"));
    assert_eq!(status, 404);
}

#[test]
fn destroy_volumes_removes_what_an_earlier_destroy_kept() {
    let app = unique("volk");
    let _g = VolumeGuard::new(&app);
    let d = Drover::start();
    d.deploy(&format!(
        "name: {app}\nservices:\n  - id: db\n    type: container\n    image: drover/workload:latest\n    ports: [8080]\n    volumes:\n      - {{ name: data, path: /data }}\n"
    ));
    d.wait_running(&app, DEADLINE);
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 200, "{body}");
    let answer: DestroyAnswer = decode(body);
    assert_eq!(answer.volumes_kept, vec![format!("drover-{app}-db-data")]);
    let out = d.cli(&["destroy", &app, "--volumes"]);
    assert!(out.ok, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "application `{app}` was gone already; removed 1 volume: drover-{app}-db-data"
        )),
        "{out:?}"
    );
    assert!(volumes_of(&app).is_empty());
}

#[test]
fn host_paths_only_under_the_allowed_roots() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("hello"), "from the host").unwrap();
    let (d, cfg_dir) = drover_allowing(root.path());

    // Outside the roots: refused at its position, nothing created.
    let app = unique("volh");
    let _g = VolumeGuard::new(&app);
    let refused = format!(
        "name: {app}\nservices:\n  - id: a\n    type: container\n    image: drover/workload:latest\n    ports: [8080]\n    volumes:\n      - {{ host: /etc, path: /data, read_only: true }}\n"
    );
    let (status, body) = d.post("/v1/applications", &refused);
    assert_eq!(status, 400, "{body}");
    let e: ErrorBody = decode(body);
    assert_eq!((e.line, e.column), (Some(8), Some(17)), "{e:?}");
    assert_eq!(e.path.as_deref(), Some("services[0].volumes[0].host"));
    assert!(
        e.error.contains("host path `/etc` is outside the allowed roots; allowed roots (`allowed_host_paths` in drover.yaml): "),
        "{e:?}"
    );
    let file = cfg_dir.path().join("refused.yaml");
    std::fs::write(&file, &refused).unwrap();
    let out = d.cli(&["deploy", file.to_str().unwrap()]);
    assert!(!out.ok, "{out:?}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&format!(
            "{}:8:17: services[0].volumes[0].host: host path `/etc` is outside the allowed roots",
            file.display()
        )),
        "{text}"
    );
    assert!(containers_of(&app, true).is_empty());
    assert!(volumes_of(&app).is_empty());

    // Under the root: mounted, read-only as asked.
    let allowed = refused.replace("/etc", &root.path().display().to_string());
    d.deploy(&allowed);
    d.wait_running(&app, DEADLINE);
    assert_eq!(
        read_file(&d, &app, "a", "hello"),
        (200, "from the host".into())
    );
    let port = port_of(&d, &app, "a");
    let put = http(port, "PUT", "/files/w", "x").expect("PUT answered");
    assert_eq!(put.0, 500, "a read-only mount refuses writes: {put:?}");
    assert!(!root.path().join("w").exists());
}

#[test]
fn a_shrink_keeps_retained_volumes_and_removes_retain_false_ones() {
    let app = unique("volr");
    let _g = VolumeGuard::new(&app);
    let d = Drover::start();
    d.deploy(&format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      volumes:
        - {{ name: data, path: /data }}
        - {{ name: cache, path: /cache, retain: false }}
"#
    ));
    d.wait_running(&app, DEADLINE);
    let v = |m: u32, n: &str| format!("drover-{app}-web-{m}-{n}");
    assert_eq!(
        volumes_of(&app),
        vec![v(1, "cache"), v(1, "data"), v(2, "cache"), v(2, "data")]
    );
    let port = port_of(&d, &app, "web-2");
    assert_eq!(http(port, "PUT", "/files/x", "two").map(|r| r.0), Some(200));

    let (status, body) = d.invoke(&app, "web", "resize", json!({ "size": 1 }));
    assert_eq!(status, 200, "{body}");
    wait_for(DEADLINE, "web-2's cache volume removed", || {
        (!volumes_of(&app).contains(&v(2, "cache"))).then_some(())
    });
    assert_eq!(
        volumes_of(&app),
        vec![v(1, "cache"), v(1, "data"), v(2, "data")]
    );

    // Grown again: web-2 comes back (not web-3), with its data.
    let (status, body) = d.invoke(&app, "web", "resize", json!({ "size": 2 }));
    assert_eq!(status, 200, "{body}");
    d.wait_running(&app, DEADLINE);
    assert!(d.entity_view(&app, "web-2").is_some());
    assert!(d.entity_view(&app, "web-3").is_none());
    assert_eq!(read_file(&d, &app, "web-2", "x"), (200, "two".into()));

    // A destroy without --volumes removes the retain: false ones only.
    let (status, body) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 200, "{body}");
    let answer: DestroyAnswer = decode(body);
    assert_eq!(answer.volumes_removed, vec![v(1, "cache"), v(2, "cache")]);
    assert_eq!(answer.volumes_kept, vec![v(1, "data"), v(2, "data")]);
    assert_eq!(volumes_of(&app), vec![v(1, "data"), v(2, "data")]);
}

/// The host a member runs on, from its `host.name` sensor.
fn host_of(d: &Drover, app: &str, entity: &str) -> String {
    wait_for(DEADLINE, &format!("{entity}'s host"), || {
        d.sensors(app, entity)["host.name"]["value"]
            .as_str()
            .map(str::to_string)
    })
}

#[test]
fn in_a_pool_a_replaced_member_goes_back_to_the_host_holding_its_volume() {
    let engines = common::engines::Engines::start(2);
    let hosts: String = (0..2)
        .map(|i| {
            format!(
                "      - {{ name: e-{}, endpoint: '{}' }}\n",
                i + 1,
                engines.socket(i)
            )
        })
        .collect();
    let cfg = engines.dir.path().join("drover.yaml");
    std::fs::write(
        &cfg,
        format!("locations:\n  pool:\n    hosts:\n{hosts}    placement: {{ strategy: breadth-first }}\n"),
    )
    .unwrap();
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = unique("volp");
    let filler = unique("volf");
    d.deploy(&format!(
        "name: {app}\nlocation: pool\nservices:\n  - id: web\n    type: cluster\n    initial_size: 1\n    member:\n      image: drover/workload:latest\n      ports: [8080]\n      volumes:\n        - {{ name: data, path: /data }}\n"
    ));
    d.wait_running(&app, DEADLINE);
    let home = host_of(&d, &app, "web-1");
    let port = port_of(&d, &app, "web-1");
    assert_eq!(
        http(port, "PUT", "/files/x", "here").map(|r| r.0),
        Some(200)
    );

    // Load the home host, so that breadth-first alone would now pick the
    // other one.
    d.deploy(&format!(
        "name: {filler}\nlocation: pool\nservices:\n  - id: f\n    type: cluster\n    initial_size: 2\n    placement: {{ hostname: {home} }}\n    member:\n      image: drover/workload:latest\n"
    ));
    d.wait_running(&filler, DEADLINE);

    let (status, body) = d.invoke(&app, "web", "replace_member", json!({ "member": "web-1" }));
    assert_eq!(status, 200, "replace_member: {body}");
    d.wait_running(&app, DEADLINE);
    assert_eq!(host_of(&d, &app, "web-1"), home, "placed with its volume");
    assert_eq!(read_file(&d, &app, "web-1", "x"), (200, "here".into()));
    let decision = d.sensors(&app, "web-1")["placement.decision"]["value"].to_string();
    assert!(decision.contains(&home), "{decision}");

    for a in [&app, &filler] {
        let (s, b) = d.delete(&format!("/v1/applications/{a}?volumes=true"));
        assert!(s == 200 || s == 204, "destroy {a}: {s} {b}");
    }
}
