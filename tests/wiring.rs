//! Wiring against the real engine: per-application networks with their own
//! subnets, sensor references between services, images built from
//! Dockerfiles.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use drover::protocol::Lifecycle;
use drover::wire::Activity;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(120);

/// The IPv4 subnet of a network, from `docker network inspect`.
fn subnet_of(net: &str) -> String {
    inspect_network(net)["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap_or_else(|| panic!("network {net} has a subnet"))
        .to_string()
}

fn cidr(s: &str) -> (u32, u32) {
    let (a, p) = s.split_once('/').unwrap();
    let a: std::net::Ipv4Addr = a.parse().unwrap();
    let p: u32 = p.parse().unwrap();
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    (u32::from(a) & mask, u32::from(a) | !mask)
}

fn overlaps(a: &str, b: &str) -> bool {
    let (a0, a1) = cidr(a);
    let (b0, b1) = cidr(b);
    a0 <= b1 && b0 <= a1
}

fn networked_blueprint(app: &str) -> String {
    format!(
        r#"name: {app}
networks:
  - name: back
services:
  - id: db
    type: container
    image: drover/workload:latest
    ports: [8080]
    networks: [back]
    health: {{ http: {{ port: 8080, path: /health }} }}
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }} }}
"#
    )
}

/// A plain GET to an address (a container's bridge IP).
fn get_at(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

#[test]
fn applications_get_disjoint_subnets_aliases_and_declared_networks() {
    let (a, b) = (unique("neta"), unique("netb"));
    let _ga = AppGuard(a.clone());
    let _gb = AppGuard(b.clone());
    let d = Drover::start();
    d.deploy(&networked_blueprint(&a));
    d.deploy(&networked_blueprint(&b));
    d.wait_running(&a, DEADLINE);
    d.wait_running(&b, DEADLINE);

    // Four networks, each labelled, each with its own subnet from the
    // default pool, none overlapping another.
    let mut subnets = Vec::new();
    for app in [&a, &b] {
        let mut nets = networks_of(app);
        nets.sort();
        assert_eq!(
            nets,
            [format!("drover-{app}"), format!("drover-{app}-back")],
            "networks of {app}"
        );
        for n in &nets {
            let info = inspect_network(n);
            assert_eq!(info["Labels"]["io.drover.managed"], "true");
            assert_eq!(info["Labels"]["io.drover.app"], app.as_str());
            let s = subnet_of(n);
            assert!(
                overlaps(&s, "10.213.0.0/16") && cidr(&s).1 - cidr(&s).0 == 255,
                "{n}: {s} is a /24 of the pool"
            );
            subnets.push(s);
        }
    }
    for (i, x) in subnets.iter().enumerate() {
        for y in &subnets[i + 1..] {
            assert!(!overlaps(x, y), "{x} and {y} overlap: {subnets:?}");
        }
    }

    // Each container joins the application network under its entity id
    // (members also under their cluster's id); `db` also joins `back`.
    let main = format!("drover-{a}");
    let mut seen_aliases = BTreeSet::new();
    for id in containers_of(&a, false) {
        let c = inspect(&id);
        let entity = c["Config"]["Labels"]["io.drover.entity"]
            .as_str()
            .unwrap()
            .to_string();
        let nets = &c["NetworkSettings"]["Networks"];
        let aliases: Vec<String> = nets[&main]["Aliases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(aliases.contains(&entity), "{entity}: aliases {aliases:?}");
        if entity.starts_with("web-") {
            assert!(aliases.contains(&"web".to_string()), "{aliases:?}");
        }
        seen_aliases.insert(entity.clone());
        let ip = nets[&main]["IPAddress"].as_str().unwrap().to_string();
        assert!(
            cidr(&subnet_of(&main)).0 <= cidr(&format!("{ip}/32")).0
                && cidr(&format!("{ip}/32")).0 <= cidr(&subnet_of(&main)).1,
            "{entity}'s address {ip} is in the application subnet"
        );
        // Bridge addresses are reachable from this host: the container
        // answers on its network address, not only on its published port.
        let (status, body) = get_at(&format!("{ip}:8080"), "/")
            .unwrap_or_else(|| panic!("{entity} answers at {ip}:8080"));
        assert_eq!(status, 200);
        assert!(id.starts_with(body.trim()), "{body} is {id}");
        if entity == "db" {
            let back = &nets[format!("drover-{a}-back")];
            assert!(back.is_object(), "db joined back: {nets}");
            assert!(back["Aliases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "db"));
        } else {
            assert!(
                nets[format!("drover-{a}-back")].is_null(),
                "{entity} is not on back"
            );
        }
    }
    assert_eq!(
        seen_aliases,
        BTreeSet::from(["db".to_string(), "web-1".into(), "web-2".into()])
    );

    // Destroy removes every network of the application, and only those.
    let (status, body) = d.delete(&format!("/v1/applications/{a}"));
    assert_eq!(status, 204, "destroy: {body}");
    assert!(networks_of(&a).is_empty(), "{:?}", networks_of(&a));
    assert_eq!(networks_of(&b).len(), 2);
    let (status, _) = d.delete(&format!("/v1/applications/{b}"));
    assert_eq!(status, 204);
    assert!(networks_of(&b).is_empty());
}

#[test]
fn subnet_pool_is_configurable() {
    let app = unique("pool");
    let _g = AppGuard(app.clone());
    let d = Drover::start_with(&["--subnet-pool", "10.214.128.0/20", "--subnet-size", "26"]);
    d.deploy(&format!(
        "name: {app}\nservices:\n  - {{ id: c, type: container, image: drover/workload:latest }}\n"
    ));
    d.wait_running(&app, DEADLINE);
    let s = subnet_of(&format!("drover-{app}"));
    let (lo, hi) = cidr(&s);
    assert_eq!(hi - lo, 63, "{s} is a /26");
    assert!(overlaps(&s, "10.214.128.0/20"), "{s} is in the pool");
    let _ = json!(null);
    let _: Option<Value> = None;
}

fn env_of(container: &str) -> Vec<String> {
    inspect(container)["Config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn container_of_entity(app: &str, entity: &str) -> Option<String> {
    containers_of(app, false)
        .into_iter()
        .find(|id| inspect(id)["Config"]["Labels"]["io.drover.entity"].as_str() == Some(entity))
}

fn two_tier(app: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      env:
        DB_ADDR: "${{db.host.address}}:${{db.host.port.8080}}"
        DB_ID: "${{db.container.id}}"
      health: {{ http: {{ port: 8080, path: /health }} }}
  - id: db
    type: container
    image: drover/workload:latest
    ports: [8080]
    health: {{ http: {{ port: 8080, path: /health }} }}
    policies: [{{ type: restarter }}]
"#
    )
}

/// The web members' DB_ADDR and DB_ID, once every member holds the values
/// of the current db container.
fn web_sees_db(d: &Drover, app: &str) -> Option<(String, String)> {
    let db = d.sensors(app, "db");
    let addr = format!(
        "{}:{}",
        db["host.address"]["value"].as_str()?,
        db["host.port.8080"]["value"].as_u64()?
    );
    let id = db["container.id"]["value"].as_str()?.to_string();
    let members: Vec<String> = containers_of(app, false)
        .into_iter()
        .filter(|c| {
            inspect(c)["Config"]["Labels"]["io.drover.entity"]
                .as_str()
                .is_some_and(|e| e.starts_with("web-"))
        })
        .collect();
    if members.len() != 2 {
        return None;
    }
    let want = [format!("DB_ADDR={addr}"), format!("DB_ID={id}")];
    members
        .iter()
        .all(|m| {
            let env = env_of(m);
            want.iter().all(|w| env.contains(w))
        })
        .then_some((addr, id))
}

#[test]
fn references_order_the_start_and_follow_the_source() {
    let app = unique("refs");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&two_tier(&app));
    d.wait_running(&app, DEADLINE);

    // The web tier's environment holds the database's address and port.
    let (addr, db_id) = web_sees_db(&d, &app).expect("members hold db's address and id");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    // Start order followed the references: every member was created after
    // the database container started.
    let db_started = inspect(&db_id)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string();
    for m in containers_of(&app, false) {
        if m != db_id {
            let created = inspect(&m)["Created"].as_str().unwrap().to_string();
            assert!(created > db_started, "{created} after {db_started}");
        }
    }
    let web1 = d.sensors(&app, "web-1");
    assert_eq!(
        web1["references.resolved"]["value"]["${db.host.port.8080}"],
        addr.rsplit(':').next().unwrap()
    );

    // Kill and remove the database: the restarter makes a new container
    // (new id, new published port) and the web tier is recreated with the
    // new values.
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &db_id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (addr2, id2) = wait_for(DEADLINE, "web members see the new db", || {
        web_sees_db(&d, &app).filter(|(_, id)| *id != db_id)
    });
    assert_ne!(id2, db_id);
    d.wait_running(&app, DEADLINE);
    let restarts = d.sensors(&app, "web-1")["references.restarts"]["value"]
        .as_u64()
        .unwrap_or(0);
    assert!(restarts >= 1, "web-1 was recreated: {restarts}");
    eprintln!("db moved from {addr} to {addr2}");
}

#[test]
fn cycles_and_unknown_sensors_are_rejected_with_paths_and_nothing_is_created() {
    let app = unique("badref");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    let yaml = format!(
        r#"name: {app}
services:
  - id: a
    type: container
    image: drover/workload:latest
    env:
      B_ADDR: "${{b.host.address}}"
  - id: b
    type: container
    image: drover/workload:latest
    env:
      A_PORT: "${{a.host.port.8080}}"
      A_NAME: "${{a.container.name}}"
  - id: c
    type: container
    image: drover/workload:latest
    command: ["/workload", "${{b.group.size}}"]
"#
    );
    let (status, body) = d.post("/v1/applications", &yaml);
    assert_eq!(status, 400, "{body}");
    let errors: Vec<(String, u64, String)> = error_body(body.clone())
        .errors
        .into_iter()
        .map(|e| (e.path, e.line.unwrap() as u64, e.error))
        .collect();
    let paths: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "services[0].env.B_ADDR",
            "services[1].env.A_PORT",
            "services[2].command[1]"
        ],
        // (one error per cycle, at the first reference that closes it)
        "{errors:?}"
    );
    assert_eq!(errors[0].1, 7, "line of B_ADDR's value");
    assert!(
        errors[0].2.contains("reference cycle: a → b → a"),
        "{}",
        errors[0].2
    );
    assert!(
        errors[1].2.contains("`a` publishes no port 8080"),
        "{}",
        errors[1].2
    );
    assert!(
        errors[2]
            .2
            .contains("`b` has no sensor `group.size`; a container publishes: "),
        "{}",
        errors[2].2
    );
    assert!(containers_of(&app, true).is_empty());
    assert!(!network_exists(&format!("drover-{app}")));
    let (status, _) = d.get(&format!("/v1/applications/{app}"));
    assert_eq!(status, 404);
}

#[test]
fn a_dependant_gives_up_on_timeout_or_when_its_source_is_on_fire() {
    let app = unique("refwait");
    let _g = AppGuard(app.clone());
    let d = Drover::start();
    d.deploy(&format!(
        r#"name: {app}
services:
  - id: sick
    type: container
    image: drover/workload:latest
    ports: [8080]
    env: {{ HEALTH_FAIL: "1" }}
    health: {{ http: {{ port: 8080, path: /health }} }}
  - id: dead
    type: container
    image: drover/workload:latest
    env: {{ CRASH_AT_START: "1" }}
    # A health check it can never pass: without one, a container that
    # crashes at start is `running` for the few milliseconds before its
    # `die` event, and a dependant may legitimately start in that window.
    ports: [8080]
    health: {{ http: {{ port: 8080, path: /health }} }}
  - id: patient
    type: container
    image: drover/workload:latest
    depends_on: [sick]
    reference_timeout: 2s
  - id: aborts
    type: container
    image: drover/workload:latest
    env: {{ DEAD: "${{dead.container.id}}" }}
    depends_on: [dead]
"#
    ));
    let patient = wait_for(DEADLINE, "patient on fire", || {
        d.entity_view(&app, "patient")
            .filter(|e| e.state == Lifecycle::OnFire)
    });
    let err = patient.sensor_str("entity.error").unwrap().to_string();
    assert!(
        err.contains("waited 2s (reference_timeout) for `sick` to be running (it is starting)"),
        "{err}"
    );
    let aborts = wait_for(DEADLINE, "aborts on fire", || {
        d.entity_view(&app, "aborts")
            .filter(|e| e.state == Lifecycle::OnFire)
    });
    let err = aborts.sensor_str("entity.error").unwrap();
    assert!(
        err.contains("source `dead` is on-fire (abort_if_source_on_fire)"),
        "{err}"
    );
    // Neither dependant made a container.
    assert!(container_of_entity(&app, "patient").is_none());
    assert!(container_of_entity(&app, "aborts").is_none());
}

fn drover_cli(d: &Drover, args: &[&str]) -> std::process::Output {
    std::process::Command::new(drover_bin())
        .args(args)
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .output()
        .expect("drover runs")
}

#[test]
fn a_build_context_is_built_once_reused_after_and_errors_name_the_step() {
    let app = unique("build");
    let bad = unique("badbuild");
    let _g = AppGuard(app.clone());
    let _gb = AppGuard(bad.clone());
    let _i = BuiltImages(app.clone());
    let _ib = BuiltImages(bad.clone());
    let d = Drover::start();
    // The base image of the Dockerfiles.
    workload_image();

    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("web");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM drover/workload:latest\nLABEL io.example.built=yes\nENV GREETING=hi\n",
    )
    .unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(ctx.join("noise.log"), "ignored").unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      build: ./web\n      ports: [8080]\n      health: {{ http: {{ port: 8080, path: /health }} }}\n"
        ),
    )
    .unwrap();
    // The CLI resolves `./web` against the file's directory.
    let deploy = |d: &Drover| {
        let out = drover_cli(d, &["deploy", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    deploy(&d);
    d.wait_running(&app, DEADLINE);
    let s = d.sensors(&app, "web-1");
    let built = s["image.build"]["value"].as_str().unwrap().to_string();
    let first_id = s["image.id"]["value"].as_str().unwrap().to_string();
    // Two members asked; one built, the other found the result.
    let s2 = d.sensors(&app, "web-2");
    let texts = [
        built.clone(),
        s2["image.build"]["value"].as_str().unwrap().to_string(),
    ];
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("built drover-build/"))
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(s2["image.id"]["value"], first_id.as_str());
    let c = inspect(&containers_of(&app, false)[0]);
    assert!(c["Config"]["Image"]
        .as_str()
        .unwrap()
        .starts_with(&format!("drover-build/{app}-web:")));
    assert!(c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hi"));
    assert_eq!(c["Config"]["Labels"]["io.example.built"], "yes");

    // A changed ignored file leaves the context unchanged: the second
    // deploy reuses the image.
    std::fs::write(ctx.join("noise.log"), "still ignored").unwrap();
    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204);
    deploy(&d);
    d.wait_running(&app, DEADLINE);
    for m in ["web-1", "web-2"] {
        let s = d.sensors(&app, m);
        assert!(
            s["image.build"]["value"]
                .as_str()
                .unwrap()
                .starts_with(&format!("reused drover-build/{app}-web:")),
            "{s}"
        );
        assert_eq!(s["image.id"]["value"], first_id.as_str(), "same image");
    }
    let (_, acts) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    let acts: Vec<Activity> = decode(acts);
    let names: Vec<&str> = acts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "image.build").count(),
        1,
        "{names:?}"
    );
    assert!(
        names.iter().filter(|n| **n == "image.reused").count() >= 3,
        "{names:?}"
    );

    // A broken Dockerfile: the error names the failing step.
    let bctx = dir.path().join("broken");
    std::fs::create_dir(&bctx).unwrap();
    std::fs::write(
        bctx.join("Dockerfile"),
        "FROM drover/workload:latest\nCOPY missing-file /x\n",
    )
    .unwrap();
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_file,
        format!("name: {bad}\nservices:\n  - {{ id: api, type: container, build: {{ context: ./broken }} }}\n"),
    )
    .unwrap();
    let out = drover_cli(&d, &["deploy", bad_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = wait_for(DEADLINE, "the broken build fails", || {
        d.entity_view(&bad, "api")
            .filter(|e| e.state == Lifecycle::OnFire)
    });
    let err = e.sensor_str("entity.error").unwrap();
    assert!(
        err.contains("at `Step 2/2 : COPY missing-file /x`"),
        "{err}"
    );
    assert!(err.contains("missing-file"), "{err}");
    assert!(err.contains("last build output:"), "{err}");
    assert!(e.sensor_str("image.build").unwrap().starts_with("failed: "));

    // The service refuses relative contexts (only the CLI can resolve them).
    let (status, body) = d.post(
        "/v1/applications",
        &format!("name: {bad}x\nservices:\n  - {{ id: api, type: container, build: ./web }}\n"),
    );
    assert_eq!(status, 400);
    assert_eq!(
        error_body(body.clone()).path.as_deref(),
        Some("services[0].build"),
        "{body}"
    );
}

// compose files through the CLI: tests/compose.rs.
