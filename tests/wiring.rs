//! Wiring against the real engine: per-application networks with their own
//! subnets, sensor references between services, images built from
//! Dockerfiles.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
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
