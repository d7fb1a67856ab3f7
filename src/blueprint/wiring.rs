//! How the services of a blueprint are wired together (pure): declared
//! networks, sensor references (`${db.host.port.8080}`, Brooklyn's
//! `attributeWhenReady`), `depends_on`, and image builds.
//!
//! A reference names another service of the application and one of the
//! sensors that service's type publishes. The checks here run at deploy
//! time, before anything is created: an unknown entity, a sensor that cannot
//! exist for that entity's type, a malformed reference or a cycle is an
//! error at the value that holds it (`services[1].env.DB_ADDR`). The same
//! template code renders the values at run time, so what validation accepts
//! is exactly what the entities resolve.

use std::collections::{BTreeMap, BTreeSet};

use super::ids::is_valid_id;
use super::model::{Blueprint, ContainerSpec, ServiceSpec, ServiceType};
use super::problem::{FieldPath, ValidationError};

/// One piece of a value that may hold references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ref(SensorRef),
}

/// `${entity.sensor.name}`: a sensor of another entity of the application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorRef {
    pub entity: String,
    pub sensor: String,
}

impl std::fmt::Display for SensorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${{{}.{}}}", self.entity, self.sensor)
    }
}

/// Splits a value into text and references. `$${` is a literal `${`.
pub fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(r) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = r;
        } else if let Some(r) = after.strip_prefix("${") {
            let end = r.find('}').ok_or_else(|| {
                format!("`${{` opens a reference that is never closed with `}}` in `{s}`")
            })?;
            let inner = &r[..end];
            let (entity, sensor) = inner.split_once('.').ok_or_else(|| {
                format!(
                    "`${{{inner}}}` is not a sensor reference: write `${{entity.sensor}}`, \
                     such as `${{db.host.address}}` (`$${{` is a literal `${{`)"
                )
            })?;
            if entity.is_empty() || sensor.is_empty() || sensor.ends_with('.') {
                return Err(format!(
                    "`${{{inner}}}` is not a sensor reference: write `${{entity.sensor}}`, such as `${{db.host.address}}`"
                ));
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Ref(SensorRef {
                entity: entity.to_string(),
                sensor: sensor.to_string(),
            }));
            rest = &r[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The references in a value (none if it is malformed: validation reports that).
pub fn refs_in(s: &str) -> Vec<SensorRef> {
    parse_template(s)
        .map(|p| {
            p.into_iter()
                .filter_map(|p| match p {
                    Piece::Ref(r) => Some(r),
                    Piece::Text(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A sensor value as text in an env var or argument: strings as they are,
/// numbers and booleans printed, lists of scalars joined with `,` (a
/// cluster's `group.members`), anything else as JSON. `null` (not
/// published, or cleared) is `None`.
pub fn value_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => Some(
            items
                .iter()
                .filter_map(value_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// Renders a value whose references `lookup` resolves; the first reference
/// it cannot resolve is the error.
pub fn render(s: &str, lookup: &dyn Fn(&SensorRef) -> Option<String>) -> Result<String, SensorRef> {
    let pieces = parse_template(s).unwrap_or_else(|_| vec![Piece::Text(s.to_string())]);
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => match lookup(&r) {
                Some(v) => out.push_str(&v),
                None => return Err(r),
            },
        }
    }
    Ok(out)
}

/// Every reference of a container spec (env values, then command items).
pub fn container_refs(c: &ContainerSpec) -> BTreeSet<SensorRef> {
    c.env
        .values()
        .chain(c.command.iter().flatten())
        .flat_map(|v| refs_in(v))
        .collect()
}

/// Sensors every entity publishes.
const COMMON_SENSORS: &[&str] = &["entity.state", "entity.error"];
const CONTAINER_SENSORS: &[&str] = &[
    "container.id",
    "container.name",
    "host.address",
    "host.name",
    "service.up",
    "service.state",
    "cpu.usage",
    "memory.usage_bytes",
];
const CLUSTER_SENSORS: &[&str] = &[
    "group.size",
    "group.members",
    "group.desired_size",
    "group.endpoints",
];
const LB_SENSORS: &[&str] = &[
    "lb.address",
    "lb.port",
    "lb.backends",
    "lb.connections_total",
    "lb.active_connections",
    "lb.errors_total",
    "lb.retries_total",
    "lb.reqs_per_sec",
    "lb.reqs_per_sec.per_member",
    "lb.connections.per_member",
    "lb.connect_latency_seconds",
    "lb.reqs_per_sec.by_member",
    "lb.mode",
    "lb.requests_total",
    "lb.responses",
    "lb.latency_p50",
    "lb.latency_p99",
];

/// The sensors a service of this type and spec publishes, for messages.
/// `host.port.<p>` appears once per port in `ports`.
pub fn sensors_of(svc: &ServiceSpec) -> Vec<String> {
    let mut names: Vec<String> = COMMON_SENSORS.iter().map(|s| s.to_string()).collect();
    match svc.kind {
        ServiceType::Container => {
            names.extend(CONTAINER_SENSORS.iter().map(|s| s.to_string()));
            names.extend(
                svc.ports
                    .iter()
                    .map(|p| format!("host.port.{}", p.container)),
            );
            if svc.build.is_some() {
                names.push("image.build".into());
            }
        }
        ServiceType::Cluster => names.extend(CLUSTER_SENSORS.iter().map(|s| s.to_string())),
        ServiceType::LoadBalancer => names.extend(LB_SENSORS.iter().map(|s| s.to_string())),
    }
    names.extend(svc.enrichers.iter().map(|e| e.output()));
    names
}

/// One place that holds references: its path and its references.
struct Holder {
    path: FieldPath,
    refs: Vec<SensorRef>,
}

fn holders(i: usize, svc: &ServiceSpec) -> (Vec<Holder>, Vec<ValidationError>) {
    let base = FieldPath::root().key("services").index(i);
    let (path, spec) = match svc.kind {
        ServiceType::Container => (base, svc.own_container()),
        ServiceType::Cluster => match &svc.member {
            Some(m) => (base.key("member"), m.clone()),
            None => return (Vec::new(), Vec::new()),
        },
        ServiceType::LoadBalancer => return (Vec::new(), Vec::new()),
    };
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let mut take = |p: FieldPath, v: &str| match parse_template(v) {
        Ok(pieces) => {
            let refs: Vec<SensorRef> = pieces
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Ref(r) => Some(r),
                    Piece::Text(_) => None,
                })
                .collect();
            if !refs.is_empty() {
                out.push(Holder { path: p, refs });
            }
        }
        Err(e) => errs.push(ValidationError::at(p, e)),
    };
    for (k, v) in &spec.env {
        take(path.key("env").key(k.as_str()), v);
    }
    for (j, v) in spec.command.iter().flatten().enumerate() {
        take(path.key("command").index(j), v);
    }
    (out, errs)
}

/// Checks networks, `depends_on`, sensor references (unknown entity or
/// sensor, cycles) and `build`.
pub fn validate_wiring(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = validate_networks(bp);
    let by_id: BTreeMap<&str, (usize, &ServiceSpec)> = bp
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), (i, s)))
        .collect();
    // Edges of the start-order graph: service → (what it waits for, where it says so).
    let mut edges: Vec<(usize, usize, FieldPath)> = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        let base = FieldPath::root().key("services").index(i);
        let (hs, bad) = holders(i, svc);
        errs.extend(bad);
        for h in hs {
            for r in &h.refs {
                let Some(&(j, target)) = by_id.get(r.entity.as_str()) else {
                    errs.push(ValidationError::at(
                        h.path.clone(),
                        format!(
                            "`{r}` names no service `{}`; services here: {} \
                             (a cluster's members are reached through the cluster's sensors)",
                            r.entity,
                            bp.services
                                .iter()
                                .map(|s| s.id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                    continue;
                };
                let known = sensors_of(target);
                if !known.contains(&r.sensor) {
                    let hint = if let Some(p) = r.sensor.strip_prefix("host.port.") {
                        format!(
                            "`{}` publishes no port {p}: add {p} to its `ports`",
                            r.entity
                        )
                    } else {
                        format!("a {} publishes: {}", target.kind.as_str(), known.join(", "))
                    };
                    errs.push(ValidationError::at(
                        h.path.clone(),
                        format!("`{r}`: `{}` has no sensor `{}`; {hint}", r.entity, r.sensor),
                    ));
                    continue;
                }
                edges.push((i, j, h.path.clone()));
            }
        }
        let mut seen = BTreeSet::new();
        for (k, dep) in svc.depends_on.iter().enumerate() {
            let dpath = base.key("depends_on").index(k);
            if !seen.insert(dep) {
                errs.push(ValidationError::at(
                    dpath,
                    format!("`{dep}` is listed twice in `depends_on`"),
                ));
                continue;
            }
            match by_id.get(dep.as_str()) {
                Some(&(j, _)) => edges.push((i, j, dpath)),
                None => errs.push(ValidationError::at(
                    dpath,
                    format!("`depends_on` names no service `{dep}`"),
                )),
            }
        }
        if svc.kind == ServiceType::LoadBalancer {
            for (field, present) in [
                ("depends_on", !svc.depends_on.is_empty()),
                ("on_reference_change", svc.on_reference_change.is_some()),
                ("reference_timeout", svc.reference_timeout.is_some()),
                (
                    "abort_if_source_on_fire",
                    svc.abort_if_source_on_fire.is_some(),
                ),
                ("build", svc.build.is_some()),
                ("networks", !svc.networks.is_empty()),
            ] {
                if present {
                    errs.push(ValidationError::at_key(
                        base.key(field),
                        format!("`{field}` is not a load balancer setting"),
                    ));
                }
            }
        }
        if svc.reference_timeout.is_some_and(|t| t.is_zero()) {
            errs.push(ValidationError::at(
                base.key("reference_timeout"),
                "`reference_timeout` must be more than 0, e.g. `reference_timeout: 5m`",
            ));
        }
    }
    errs.extend(cycles(bp, &edges));
    errs
}

/// One error per cycle, at the first edge (in blueprint order) that closes it.
fn cycles(bp: &Blueprint, edges: &[(usize, usize, FieldPath)]) -> Vec<ValidationError> {
    let n = bp.services.len();
    let mut adj: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (a, b, _) in edges {
        adj[*a].insert(*b);
    }
    let mut reported: BTreeSet<BTreeSet<usize>> = BTreeSet::new();
    let mut errs = Vec::new();
    for (a, b, path) in edges {
        // A path b →* a closes the cycle a → b →* a.
        let Some(back) = find_path(&adj, *b, *a) else {
            continue;
        };
        let members: BTreeSet<usize> = back.iter().copied().chain([*a]).collect();
        if !reported.insert(members) {
            continue;
        }
        let id = |i: usize| bp.services[i].id.as_str();
        let message = if a == b {
            format!(
                "`{}` refers to itself: a container cannot wait for its own sensors \
                 (they exist only once it runs)",
                id(*a)
            )
        } else {
            let chain: Vec<&str> = std::iter::once(*a)
                .chain(back.iter().copied())
                .map(id)
                .collect();
            format!(
                "reference cycle: {}: none of them can start before the others",
                chain.join(" → ")
            )
        };
        errs.push(ValidationError::at(path.clone(), message));
    }
    errs
}

/// Nodes from `from` to `to` (both included), breadth-first.
fn find_path(adj: &[BTreeSet<usize>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(x) = queue.pop_front() {
        if x == to {
            let mut path = vec![x];
            let mut cur = x;
            while let Some(&p) = prev.get(&cur) {
                path.push(p);
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for &y in &adj[x] {
            if seen.insert(y) {
                prev.insert(y, x);
                queue.push_back(y);
            }
        }
    }
    None
}

fn validate_networks(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    let mut declared: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in bp.networks.iter().enumerate() {
        let path = FieldPath::root().key("networks").index(i).key("name");
        if n.name == "default" {
            errs.push(ValidationError::at(
                path,
                "`default` is the application network, which every container joins; \
                 declare only extra networks",
            ));
        } else if !is_valid_id(&n.name) {
            errs.push(ValidationError::at(
                path,
                format!(
                    "network name `{}` is invalid: it must match ^[a-z][a-z0-9-]{{0,39}}$",
                    n.name
                ),
            ));
        } else if let Some(j) = declared.insert(&n.name, i) {
            errs.push(ValidationError::at(
                path,
                format!(
                    "network `{}` is declared twice: networks[{j}] has it",
                    n.name
                ),
            ));
        }
    }
    let names = || {
        if bp.networks.is_empty() {
            "none (declare them under the top-level `networks`)".to_string()
        } else {
            bp.networks
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for (i, svc) in bp.services.iter().enumerate() {
        let base = FieldPath::root().key("services").index(i);
        let lists: Vec<(FieldPath, &Vec<String>)> = match svc.kind {
            ServiceType::Container => vec![(base.key("networks"), &svc.networks)],
            ServiceType::Cluster => {
                if !svc.networks.is_empty() {
                    errs.push(ValidationError::at_key(
                        base.key("networks"),
                        "`networks` belongs under `member` for a cluster",
                    ));
                }
                if svc.build.is_some() {
                    errs.push(ValidationError::at_key(
                        base.key("build"),
                        "`build` belongs under `member` for a cluster",
                    ));
                }
                svc.member
                    .iter()
                    .map(|m| (base.key("member").key("networks"), &m.networks))
                    .collect()
            }
            ServiceType::LoadBalancer => Vec::new(),
        };
        for (path, list) in lists {
            let mut seen = BTreeSet::new();
            for (k, n) in list.iter().enumerate() {
                if n == "default" {
                    errs.push(ValidationError::at(
                        path.index(k),
                        "every container joins the application network; list only declared networks",
                    ));
                } else if !declared.contains_key(n.as_str()) {
                    errs.push(ValidationError::at(
                        path.index(k),
                        format!(
                            "no network `{n}` is declared; declared networks: {}",
                            names()
                        ),
                    ));
                } else if !seen.insert(n) {
                    errs.push(ValidationError::at(
                        path.index(k),
                        format!("network `{n}` is listed twice"),
                    ));
                }
            }
        }
    }
    errs
}

/// Every `build` of a blueprint with its path (`services[0].build`,
/// `services[1].member.build`).
pub fn builds(bp: &Blueprint) -> Vec<(FieldPath, &super::model::BuildSpec)> {
    let mut out = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        let base = FieldPath::root().key("services").index(i);
        if let Some(b) = &svc.build {
            out.push((base.key("build"), b));
        }
        if let Some(b) = svc.member.as_ref().and_then(|m| m.build.as_ref()) {
            out.push((base.key("member").key("build"), b));
        }
    }
    out
}

/// The service accepts absolute build contexts only: it cannot know the
/// directory a relative path was written against (`drover deploy` resolves
/// them against the blueprint file's directory before sending).
pub fn validate_absolute_contexts(bp: &Blueprint) -> Vec<ValidationError> {
    builds(bp)
        .into_iter()
        .filter(|(_, b)| {
            !std::path::Path::new(&b.context).is_absolute() && !b.context.starts_with("upload:")
        })
        .map(|(path, b)| {
            ValidationError::at(
                path,
                format!(
                    "build context `{}` is relative: the service cannot know relative to what; \
                     `drover deploy FILE` uploads the directory (relative to FILE's directory)",
                    b.context
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(e: &str, s: &str) -> Piece {
        Piece::Ref(SensorRef {
            entity: e.into(),
            sensor: s.into(),
        })
    }

    #[test]
    fn templates() {
        assert_eq!(
            parse_template("${db.host.address}:${db.host.port.8080}").unwrap(),
            [
                r("db", "host.address"),
                Piece::Text(":".into()),
                r("db", "host.port.8080")
            ]
        );
        assert_eq!(
            parse_template("a $b $${x} $").unwrap(),
            [Piece::Text("a $b ${x} $".into())]
        );
        assert!(parse_template("${db}").is_err());
        assert!(parse_template("${db.host").is_err());
        assert!(parse_template("${.x}").is_err());
        assert!(parse_template("${db.}").is_err());
    }

    #[test]
    fn rendering() {
        let lookup = |r: &SensorRef| (r.entity == "db").then(|| format!("<{}>", r.sensor));
        assert_eq!(render("x=${db.a}/${db.b}", &lookup).unwrap(), "x=<a>/<b>");
        assert_eq!(
            render("${web.a}", &lookup).unwrap_err().to_string(),
            "${web.a}"
        );
        use serde_json::json;
        assert_eq!(value_text(&json!("a")).as_deref(), Some("a"));
        assert_eq!(value_text(&json!(8080)).as_deref(), Some("8080"));
        assert_eq!(value_text(&json!(["a", "b"])).as_deref(), Some("a,b"));
        assert_eq!(value_text(&json!(null)), None);
    }

    fn problems(yaml: &str) -> Vec<String> {
        let bp: Blueprint = serde_yaml::from_str(yaml).unwrap();
        validate_wiring(&bp).iter().map(|e| e.to_string()).collect()
    }

    const TWO_TIER: &str = "name: a
services:
  - id: db
    type: container
    image: x
    ports: [8080]
  - id: web
    type: cluster
    member:
      image: x
      env: { DB_ADDR: '${db.host.address}:${db.host.port.8080}' }
      command: [serve, '${db.container.name}']
";

    #[test]
    fn good_references() {
        assert!(problems(TWO_TIER).is_empty(), "{:?}", problems(TWO_TIER));
    }

    #[test]
    fn unknown_entity_and_sensor() {
        let yaml = "name: a
services:
  - { id: db, type: container, image: x, ports: [8080] }
  - id: web
    type: container
    image: x
    env:
      A: '${dbx.host.address}'
      B: '${db.host.port.9999}'
      C: '${db.group.size}'
      D: '${db'
";
        assert_eq!(
            problems(yaml),
            [
                "services[1].env.D: `${` opens a reference that is never closed with `}` in `${db`",
                "services[1].env.A: `${dbx.host.address}` names no service `dbx`; services here: db, web (a cluster's members are reached through the cluster's sensors)",
                "services[1].env.B: `${db.host.port.9999}`: `db` has no sensor `host.port.9999`; `db` publishes no port 9999: add 9999 to its `ports`",
                "services[1].env.C: `${db.group.size}`: `db` has no sensor `group.size`; a container publishes: entity.state, entity.error, container.id, container.name, host.address, host.name, service.up, service.state, cpu.usage, memory.usage_bytes, host.port.8080",
            ]
        );
    }

    #[test]
    fn cycles_are_reported_once() {
        let yaml = "name: a
services:
  - { id: a, type: container, image: x, env: { X: '${b.host.address}' } }
  - { id: b, type: container, image: x, env: { X: '${c.host.address}' } }
  - { id: c, type: container, image: x, depends_on: [a] }
  - { id: d, type: container, image: x, env: { X: '${d.container.id}' } }
";
        assert_eq!(
            problems(yaml),
            [
                "services[0].env.X: reference cycle: a → b → c → a: none of them can start before the others",
                "services[3].env.X: `d` refers to itself: a container cannot wait for its own sensors (they exist only once it runs)",
            ]
        );
    }

    #[test]
    fn networks() {
        let yaml = "name: a
networks: [{ name: back }, { name: default }, { name: back }]
services:
  - { id: a, type: container, image: x, networks: [back, front, back] }
  - { id: b, type: cluster, networks: [back], member: { image: x, networks: [back] } }
";
        assert_eq!(
            problems(yaml),
            [
                "networks[1].name: `default` is the application network, which every container joins; declare only extra networks",
                "networks[2].name: network `back` is declared twice: networks[0] has it",
                "services[0].networks[1]: no network `front` is declared; declared networks: back, default, back",
                "services[0].networks[2]: network `back` is listed twice",
                "services[1].networks: `networks` belongs under `member` for a cluster",
            ]
        );
    }

    #[test]
    fn relative_contexts_are_refused_by_the_service() {
        let bp: Blueprint = serde_yaml::from_str(
            "name: a\nservices:\n  - { id: a, type: container, build: ./web }\n  - { id: b, type: container, build: { context: /abs } }\n",
        )
        .unwrap();
        let errs = validate_absolute_contexts(&bp);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path.to_string(), "services[0].build");
    }
}
