//! Semantic checks on a blueprint that has the right shape.
//!
//! Deserialization (see [`super::parse`]) makes sure every value has the right
//! type; this module checks what types cannot say: ids are well-formed and
//! unique, a container has an image, a cluster keeps its container fields under
//! `member`, health checks use a published port, and so on.
//!
//! Everything here is pure: no I/O, no positions. Each problem carries the
//! [`FieldPath`] of the offending value (`services[1].member.ports[0]`); the
//! parser turns paths into lines and columns and sorts them by position.
//! Checks never stop at the first problem: every problem found is returned.

use std::collections::{BTreeMap, HashMap};

pub use super::ids::{is_valid_id, ID_PATTERN};
pub use super::problem::{FieldPath, PathSegment, ValidationError};

use super::model::{Blueprint, ContainerSpec, PlacementSpec, PolicySpec, ServiceSpec, ServiceType};

/// The rule of environment variable names: Docker's. Any text without `=`
/// or NUL, so `discovery.type` (Elasticsearch) and `A-B` pass.
pub const ENV_KEY_PATTERN: &str = "any non-empty name without `=` or NUL";
/// Labels with this prefix are drover's own.
pub const RESERVED_LABEL_PREFIX: &str = "io.drover.";
/// Docker refuses a memory limit below 6 MiB.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
/// Largest `resources.cpus`.
pub const MAX_CPUS: f64 = 1024.0;
/// Largest `initial_size` of a cluster.
pub const MAX_INITIAL_SIZE: u32 = 1000;

/// Checks a whole blueprint; returns every problem found, in the order of the
/// blueprint's fields (the parser re-sorts them by line and column).
pub fn validate(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = validate_application(&bp.name, &bp.location);
    errs.extend(validate_service_count(bp.services.len()));
    for (i, spec) in bp.services.iter().enumerate() {
        errs.extend(validate_service(i, spec));
    }
    let ids: Vec<(usize, &str)> = bp
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (i, s.id.as_str()))
        .collect();
    errs.extend(validate_unique_ids(&ids));
    errs.extend(validate_references(bp));
    errs.extend(super::wiring::validate_wiring(bp));
    errs.extend(super::ranges::range_checks(bp));
    errs
}

/// Checks what one service says of another: a load balancer's `target`
/// must be a cluster of the application, and its `target_port` one of the
/// member's ports.
pub fn validate_references(bp: &Blueprint) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        for (k, e) in svc.enrichers.iter().enumerate() {
            if let Some(src) = &e.entity {
                if !bp.services.iter().any(|s| &s.id == src) {
                    errs.push(ValidationError::at(
                        service_path(i).key("enrichers").index(k).key("entity"),
                        format!("no service `{src}` in this application"),
                    ));
                }
            }
        }
    }
    // Affinity to a named entity: it must be a service of this application.
    for (i, svc) in bp.services.iter().enumerate() {
        let path = service_path(i);
        let specs = [
            (path.key("placement"), svc.placement.as_ref()),
            (
                path.key("member").key("placement"),
                svc.member.as_ref().and_then(|m| m.placement.as_ref()),
            ),
        ];
        for (ppath, p) in specs {
            for (k, rule) in p.iter().flat_map(|p| p.affinity.iter().enumerate()) {
                let Some(e) = rule.entity.as_deref() else {
                    continue;
                };
                if is_valid_id(e) && !bp.services.iter().any(|s| s.id == e) {
                    let ids: Vec<&str> = bp.services.iter().map(|s| s.id.as_str()).collect();
                    errs.push(ValidationError::at(
                        ppath.key("affinity").index(k).key("entity"),
                        format!(
                            "no service `{e}` in this application; services: {}",
                            ids.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    for (i, svc) in bp.services.iter().enumerate() {
        if svc.kind != ServiceType::LoadBalancer {
            continue;
        }
        let Some(target) = svc.target.as_deref() else {
            continue;
        };
        let path = service_path(i);
        match bp.services.iter().find(|s| s.id == target) {
            None => {
                let clusters: Vec<&str> = bp
                    .services
                    .iter()
                    .filter(|s| s.kind == ServiceType::Cluster)
                    .map(|s| s.id.as_str())
                    .collect();
                errs.push(ValidationError::at(
                    path.key("target"),
                    format!(
                        "no service `{target}` to balance; clusters here: {}",
                        if clusters.is_empty() {
                            "none".to_string()
                        } else {
                            clusters.join(", ")
                        }
                    ),
                ));
            }
            Some(t) if t.kind != ServiceType::Cluster => errs.push(ValidationError::at(
                path.key("target"),
                format!(
                    "`{target}` is a {}; a load balancer's target must be a cluster",
                    t.kind.as_str()
                ),
            )),
            Some(t) => {
                let ports: Vec<u16> = t
                    .member
                    .as_ref()
                    .map(|m| m.ports.iter().map(|p| p.container).collect())
                    .unwrap_or_default();
                match svc.target_port {
                    Some(p) if !ports.contains(&p) => errs.push(ValidationError::at(
                        path.key("target_port"),
                        format!(
                            "`{target}`'s members do not publish port {p}; their ports: {ports:?}"
                        ),
                    )),
                    None if ports.is_empty() => errs.push(ValidationError::at(
                        path.key("target"),
                        format!("`{target}`'s members publish no port; add `ports` to its member"),
                    )),
                    _ => {}
                }
            }
        }
    }
    errs
}

/// Checks the application's own fields: `name` and `location`.
pub fn validate_application(name: &str, location: &str) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    if !is_valid_id(name) {
        errs.push(ValidationError::at(
            FieldPath::root().key("name"),
            bad_id_message("application name", name),
        ));
    }
    if location.trim().is_empty() {
        errs.push(ValidationError::at(
            FieldPath::root().key("location"),
            "`location` must not be empty; `local` is this machine's engine",
        ));
    }
    errs
}

/// An application needs at least one service.
pub fn validate_service_count(count: usize) -> Option<ValidationError> {
    (count == 0).then(|| {
        ValidationError::at(
            FieldPath::root().key("services"),
            "an application needs at least one service",
        )
    })
}

fn bad_id_message(what: &str, value: &str) -> String {
    format!(
        "{what} `{value}` is invalid: it must match {ID_PATTERN} \
         (1 to 40 lower-case letters, digits or `-`, starting with a letter)"
    )
}

/// Checks a service id alone (also used for services whose other fields
/// failed to deserialize).
pub fn validate_service_id(index: usize, id: &str) -> Option<ValidationError> {
    (!is_valid_id(id)).then(|| {
        ValidationError::at(
            service_path(index).key("id"),
            bad_id_message("service id", id),
        )
    })
}

/// Reports every id used by an earlier service, at the later one's `id`.
/// `ids` holds (index in `services`, id).
pub fn validate_unique_ids(ids: &[(usize, &str)]) -> Vec<ValidationError> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut errs = Vec::new();
    for &(i, id) in ids {
        match first.get(id) {
            Some(&j) => errs.push(ValidationError::at(
                service_path(i).key("id"),
                format!("duplicate service id `{id}`: services[{j}] already has it"),
            )),
            None => {
                first.insert(id, i);
            }
        }
    }
    errs
}

fn service_path(index: usize) -> FieldPath {
    FieldPath::root().key("services").index(index)
}

/// Checks one service (its id's format included, not its uniqueness).
pub fn validate_service(index: usize, spec: &ServiceSpec) -> Vec<ValidationError> {
    let path = service_path(index);
    let mut errs: Vec<ValidationError> = validate_service_id(index, &spec.id).into_iter().collect();
    match spec.kind {
        ServiceType::Container => {
            if spec.initial_size.is_some() {
                errs.push(ValidationError::at_key(
                    path.key("initial_size"),
                    "`initial_size` is only for a cluster (`type: cluster`)",
                ));
            }
            if spec.member.is_some() {
                errs.push(ValidationError::at_key(
                    path.key("member"),
                    "`member` is only for a cluster (`type: cluster`); \
                     a container's image, ports and health go at the service's own level",
                ));
            }
            validate_container(&path, &spec.own_container(), &mut errs);
        }
        ServiceType::LoadBalancer => {
            let misplaced = [
                ("image", spec.image.is_some()),
                ("image_pull", spec.image_pull.is_some()),
                ("command", spec.command.is_some()),
                ("env", !spec.env.is_empty()),
                ("ports", !spec.ports.is_empty()),
                ("resources", spec.resources.is_some()),
                ("health", spec.health.is_some()),
                ("labels", !spec.labels.is_empty()),
                ("volumes", !spec.volumes.is_empty()),
                ("initial_size", spec.initial_size.is_some()),
                ("member", spec.member.is_some()),
                ("placement", spec.placement.is_some()),
                ("secrets", !spec.secrets.is_empty()),
                ("stop_signal", spec.stop_signal.is_some()),
                ("stop_grace_period", spec.stop_grace_period.is_some()),
                ("hostname", spec.hostname.is_some()),
            ];
            for (field, present) in misplaced {
                if present {
                    errs.push(ValidationError::at_key(
                        path.key(field),
                        format!("`{field}` is not a load balancer setting; it has `target`, `port`, `target_port`, `bind`, `mode` and `limits`"),
                    ));
                }
            }
            if spec.target.is_none() {
                errs.push(ValidationError::at(
                    path.clone(),
                    "a load balancer needs `target`, the id of a cluster",
                ));
            }
            if spec.port.is_none() {
                errs.push(ValidationError::at(
                    path.clone(),
                    "a load balancer needs `port` to listen on (0 picks a free one)",
                ));
            }
            if let Some(b) = &spec.bind {
                if b.parse::<std::net::IpAddr>().is_err() {
                    errs.push(ValidationError::at(
                        path.key("bind"),
                        format!("`bind` must be an IP address such as 0.0.0.0, got `{b}`"),
                    ));
                }
            }
        }
        ServiceType::Cluster => {
            let misplaced = [
                ("image", spec.image.is_some()),
                ("image_pull", spec.image_pull.is_some()),
                ("command", spec.command.is_some()),
                ("env", !spec.env.is_empty()),
                ("ports", !spec.ports.is_empty()),
                ("resources", spec.resources.is_some()),
                ("health", spec.health.is_some()),
                ("labels", !spec.labels.is_empty()),
                ("secrets", !spec.secrets.is_empty()),
                ("stop_signal", spec.stop_signal.is_some()),
                ("stop_grace_period", spec.stop_grace_period.is_some()),
                ("hostname", spec.hostname.is_some()),
                ("volumes", !spec.volumes.is_empty()),
            ];
            for (field, present) in misplaced {
                if present {
                    errs.push(ValidationError::at_key(
                        path.key(field),
                        format!("`{field}` belongs under `member` for a cluster"),
                    ));
                }
            }
            if let Some(p) = &spec.placement {
                validate_placement(&path.key("placement"), p, &mut errs);
                if let Some(m) = &spec.member {
                    super::volume_checks::validate_no_rebalance(
                        &path.key("placement"),
                        p,
                        &m.volumes,
                        &mut errs,
                    );
                }
            }
            if let Some(u) = &spec.update {
                super::update::validate_update(&path.key("update"), u, &mut errs);
            }
            if let Some(size) = spec.initial_size {
                if size > MAX_INITIAL_SIZE {
                    errs.push(ValidationError::at(
                        path.key("initial_size"),
                        format!("`initial_size` is {size}; at most {MAX_INITIAL_SIZE} is allowed"),
                    ));
                }
            }
            match &spec.member {
                None => errs.push(ValidationError::at(
                    path.clone(),
                    "a cluster needs `member`, the spec each member container is made from, \
                     e.g. `member: { image: drover/workload:latest }`",
                )),
                Some(member) => {
                    let mpath = path.key("member");
                    if member.kind != "container" {
                        errs.push(ValidationError::at(
                            mpath.key("type"),
                            format!("member `type` must be `container`, got `{}`", member.kind),
                        ));
                    }
                    validate_container(&mpath, member, &mut errs);
                    errs.extend(super::ports::member_fixed_ports(&mpath, &member.ports));
                }
            }
        }
    }
    if spec.kind != ServiceType::LoadBalancer {
        for (field, present) in [
            ("target", spec.target.is_some()),
            ("port", spec.port.is_some()),
            ("target_port", spec.target_port.is_some()),
            ("bind", spec.bind.is_some()),
            ("mode", spec.mode.is_some()),
            ("limits", spec.limits.is_some()),
        ] {
            if present {
                errs.push(ValidationError::at_key(
                    path.key(field),
                    format!("`{field}` is only for a load balancer (`type: load-balancer`)"),
                ));
            }
        }
    }
    for (k, e) in spec.enrichers.iter().enumerate() {
        let epath = path.key("enrichers").index(k);
        if e.sensor.trim().is_empty() {
            errs.push(ValidationError::at(
                epath.key("sensor"),
                "`sensor` must name the input sensor, such as cpu.usage",
            ));
        }
        match e.kind {
            super::model::EnricherKind::Aggregate => {
                if spec.kind != ServiceType::Cluster {
                    errs.push(ValidationError::at(epath.key("type"), "an `aggregate` enricher works over a cluster's members: attach it to a cluster"));
                }
                if e.entity.is_some() {
                    errs.push(ValidationError::at_key(
                        epath.key("entity"),
                        "`entity` is not for `aggregate`: it reads this cluster's members",
                    ));
                }
            }
            _ => {
                if e.function.is_some() {
                    errs.push(ValidationError::at_key(
                        epath.key("function"),
                        "`function` is only for `type: aggregate`",
                    ));
                }
            }
        }
        if e.window.is_some() && e.kind != super::model::EnricherKind::RollingMean {
            errs.push(ValidationError::at_key(
                epath.key("window"),
                "`window` is only for `type: rolling-mean`",
            ));
        }
        if e.window.is_some_and(|w| w.is_zero()) {
            errs.push(ValidationError::at(
                epath.key("window"),
                "`window` must be more than 0",
            ));
        }
    }
    for (k, policy) in spec.policies.iter().enumerate() {
        validate_policy(&path.key("policies").index(k), policy, &mut errs);
    }
    errs
}

/// Checks a container's fields; `path` is where they live (a container
/// service itself, or a cluster's `member`).
fn validate_container(path: &FieldPath, c: &ContainerSpec, errs: &mut Vec<ValidationError>) {
    match c.image.as_deref() {
        None if c.build.is_some() => {}
        None => errs.push(ValidationError::at(
            path.clone(),
            "a container needs `image`, e.g. `image: drover/workload:latest`",
        )),
        Some(_) if c.build.is_some() => errs.push(ValidationError::at_key(
            path.key("build"),
            "a container has both `image` and `build`; keep exactly one \
             (`build` makes the image from a Dockerfile)",
        )),
        Some(image) if image.trim().is_empty() => errs.push(ValidationError::at(
            path.key("image"),
            "`image` must not be empty, e.g. `image: drover/workload:latest`",
        )),
        Some(image) => {
            if let Err(e) = super::image::ImageRef::parse(image) {
                errs.push(ValidationError::at(path.key("image"), e.to_string()));
            }
        }
    }
    if c.build.is_some() && !c.image_pull.is_default() {
        errs.push(ValidationError::at_key(
            path.key("image_pull"),
            "`image_pull` is for an `image` from a registry; an image made by `build` is never pulled",
        ));
    }
    if let Some(b) = &c.build {
        if b.context.trim().is_empty() {
            errs.push(ValidationError::at(
                path.key("build"),
                "`build` context must not be empty, e.g. `build: ./web`",
            ));
        }
    }
    if c.command.as_ref().is_some_and(|cmd| cmd.is_empty()) {
        errs.push(ValidationError::at(
            path.key("command"),
            "`command` must not be empty; leave it out to run the image's own command",
        ));
    }
    for key in c.env.keys() {
        if !is_valid_env_key(key) {
            errs.push(ValidationError::at_key(
                path.key("env").key(key.as_str()),
                format!(
                    "environment variable name `{key}` is invalid: Docker takes {ENV_KEY_PATTERN}"
                ),
            ));
        }
    }
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, spec) in c.ports.iter().enumerate() {
        let port = spec.container;
        let ppath = path.key("ports").index(i);
        if spec.host == Some(0) {
            errs.push(ValidationError::at(
                ppath.clone(),
                "host port 0 is invalid: leave the host port out to get a free one",
            ));
        }
        if port == 0 {
            errs.push(ValidationError::at(
                ppath,
                "port 0 is invalid: ports are 1 to 65535",
            ));
        } else if let Some(&j) = seen.get(&port) {
            errs.push(ValidationError::at(
                ppath,
                format!("port {port} is listed twice: ports[{j}] is also {port}"),
            ));
        } else {
            seen.insert(port, i);
        }
    }
    errs.extend(super::ports::duplicate_host_ports(
        &path.key("ports"),
        &c.ports,
    ));
    super::secrets::validate_secrets(&path.key("secrets"), &c.secrets, errs);
    super::stop::validate_stop(path, c.stop_signal.as_deref(), c.stop_grace_period, errs);
    if let Some(h) = &c.hostname {
        if let Some(problem) = hostname_problem(h) {
            errs.push(ValidationError::at(path.key("hostname"), problem));
        }
    }
    let rpath = path.key("resources");
    if let Some(cpus) = c.resources.cpus {
        // Written so that NaN fails too.
        if !(cpus > 0.0 && cpus <= MAX_CPUS) {
            errs.push(ValidationError::at(
                rpath.key("cpus"),
                format!("`cpus` must be more than 0 and at most {MAX_CPUS}, got {cpus}"),
            ));
        }
    }
    if let Some(memory) = c.resources.memory {
        if memory.0 < MIN_MEMORY_BYTES {
            errs.push(ValidationError::at(
                rpath.key("memory"),
                format!(
                    "memory {} is below Docker's minimum of {}",
                    format_bytes(memory.0),
                    format_bytes(MIN_MEMORY_BYTES)
                ),
            ));
        }
    }
    if let Some(health) = &c.health {
        let hpath = path.key("health");
        let kinds = [
            ("tcp", health.tcp.is_some()),
            ("http", health.http.is_some()),
            ("exec", health.exec.is_some()),
            ("test", health.test.is_some()),
        ];
        let given: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        if health.by_engine() {
            super::engine_check::validate_engine_check(&hpath, health, errs);
        }
        let port = match (&health.tcp, &health.http) {
            _ if given.len() > 1 => {
                errs.push(ValidationError::at(hpath.clone(), {
                    let named: Vec<String> = given.iter().map(|k| format!("`{k}`")).collect();
                    let (last, rest) = named.split_last().expect("more than one");
                    let both = if rest.len() == 1 { "both " } else { "" };
                    format!(
                        "a health check has {both}{} and {last}; keep exactly one",
                        rest.join(", ")
                    )
                }));
                None
            }
            (None, None) if health.by_engine() => None,
            (None, None) => {
                errs.push(ValidationError::at(
                    hpath.clone(),
                    "a health check needs one of `tcp` or `http`, \
                     e.g. `http: { port: 8080, path: /health }`, or `exec` (run by the engine \
                     in the container), e.g. `exec: [pg_isready, -U, app]`",
                ));
                None
            }
            (Some(_), Some(_)) => {
                errs.push(ValidationError::at(
                    hpath.clone(),
                    "a health check has both `tcp` and `http`; keep exactly one",
                ));
                None
            }
            (Some(tcp), None) => Some((hpath.key("tcp").key("port"), tcp.port)),
            (None, Some(http)) => {
                if !http.path.starts_with('/') {
                    errs.push(ValidationError::at(
                        hpath.key("http").key("path"),
                        format!("http check path `{}` must start with `/`", http.path),
                    ));
                } else if let Some(e) = super::ranges::http_path_error(&http.path) {
                    errs.push(ValidationError::at(hpath.key("http").key("path"), e));
                }
                Some((hpath.key("http").key("port"), http.port))
            }
        };
        if let Some((ppath, port)) = port {
            if port == 0 {
                errs.push(ValidationError::at(
                    ppath,
                    "port 0 is invalid: ports are 1 to 65535",
                ));
            } else if !c.ports.iter().any(|p| p.container == port) {
                errs.push(ValidationError::at(
                    ppath,
                    format!(
                        "health check port {port} is not in `ports`: health checks go through \
                         the published port, so add {port} to `ports`"
                    ),
                ));
            }
        }
        for (field, value) in [("interval", health.interval), ("timeout", health.timeout)] {
            if value.is_zero() {
                errs.push(ValidationError::at(
                    hpath.key(field),
                    format!("`{field}` must be more than 0, e.g. `{field}: 1s`"),
                ));
            }
        }
    }
    if let Some(p) = &c.placement {
        validate_placement(&path.key("placement"), p, errs);
        super::volume_checks::validate_no_rebalance(&path.key("placement"), p, &c.volumes, errs);
    }
    super::volumes::validate_volumes(path, &c.volumes, errs);
    for key in c.labels.keys() {
        if key.starts_with(RESERVED_LABEL_PREFIX) {
            errs.push(ValidationError::at_key(
                path.key("labels").key(key.as_str()),
                format!(
                    "label `{key}` uses the reserved prefix `{RESERVED_LABEL_PREFIX}`; \
                     drover sets those labels itself"
                ),
            ));
        }
    }
}

/// Checks placement rules, of an entity or of a location in `drover.yaml`.
pub fn validate_placement(path: &FieldPath, p: &PlacementSpec, errs: &mut Vec<ValidationError>) {
    if p.max_containers == Some(0) {
        errs.push(ValidationError::at(
            path.key("max_containers"),
            "`max_containers` must be at least 1",
        ));
    }
    if let Some(u) = p.max_cpu_usage {
        // Written so that NaN fails too.
        if !(u > 0.0 && u <= 1.0) {
            errs.push(ValidationError::at(
                path.key("max_cpu_usage"),
                format!(
                    "`max_cpu_usage` is a fraction of the host's CPUs, more than 0 and at most 1 \
                     (0.8 is 80%), got {u}"
                ),
            ));
        }
    }
    if p.hostname.as_deref().is_some_and(|h| h.trim().is_empty()) {
        errs.push(ValidationError::at(
            path.key("hostname"),
            "`hostname` must not be empty",
        ));
    }
    if let Some(Err(e)) = p.rebalance.as_ref().map(|r| r.check()) {
        errs.push(ValidationError::at(
            path.key("rebalance").key("above"),
            e.to_string(),
        ));
    }
    for (k, rule) in p.affinity.iter().enumerate() {
        let rpath = path.key("affinity").index(k);
        match (&rule.same, &rule.entity) {
            (None, None) => errs.push(ValidationError::at(
                rpath,
                "an affinity rule needs one of `same` (application or entity) or `entity` \
                 (an entity id), e.g. `{ same: entity, not: true }`",
            )),
            (Some(_), Some(_)) => errs.push(ValidationError::at(
                rpath,
                "an affinity rule has both `same` and `entity`; keep exactly one",
            )),
            (None, Some(e)) if !is_valid_id(e) => errs.push(ValidationError::at(
                rpath.key("entity"),
                bad_id_message("entity", e),
            )),
            _ => {}
        }
    }
}

fn validate_policy(path: &FieldPath, p: &PolicySpec, errs: &mut Vec<ValidationError>) {
    if p.preset.is_none() && p.kind.is_none() {
        errs.push(ValidationError::at(
            path.clone(),
            "a policy needs `use` (a preset from policies/) or `type` \
             (a policy kind such as `autoscaler`)",
        ));
    }
    for (field, value) in [("use", &p.preset), ("type", &p.kind)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            errs.push(ValidationError::at(
                path.key(field),
                format!("`{field}` must not be empty"),
            ));
        }
    }
}

/// Whether Docker takes `s` as an environment variable name
/// ([`ENV_KEY_PATTERN`]).
pub fn is_valid_env_key(s: &str) -> bool {
    !s.is_empty() && !s.contains(['=', '\0'])
}

/// `6291456` → `6Mi`; sizes that are not a whole number of KiB stay in bytes.
fn format_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")];
    for (size, unit) in UNITS {
        if n >= size && n % size == 0 {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

/// Why a `hostname` is not one a container can have, if it is not: Linux
/// takes at most 64 bytes (`HOST_NAME_MAX`); drover keeps to letters,
/// digits, `-`, `_` and dots between non-empty labels, which is what
/// compose files use (`bookstack_db`), and nothing a shell or a resolver
/// would read differently.
pub fn hostname_problem(h: &str) -> Option<String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if h.len() > 64 || !h.split('.').all(ok_label) {
        Some(format!(
            "`hostname` `{h}` is not a valid host name: at most 64 letters, digits, `-` and `_`, in labels separated by dots"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod hostname_tests {
    use super::hostname_problem;

    #[test]
    fn hostnames_compose_files_use_pass_and_broken_ones_do_not() {
        for ok in ["wiki", "wiki-db", "bookstack_db", "db.internal", "a1"] {
            assert_eq!(hostname_problem(ok), None, "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "x/y", &"h".repeat(65)] {
            assert!(hostname_problem(bad).is_some(), "{bad:?}");
        }
    }
}
