//! One compose service → one drover service (plus a load balancer for a
//! replicated service's fixed host port). Every key is either translated,
//! noted as needing nothing, or listed as untranslated with its reason.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::{
    env, health, key, literal, ports, restart, s, scalar, split_command, to_id, volumes,
    ComposeError, Ctx,
};

/// Why a service key drover does not translate is not translated.
fn unsupported(k: &str, id: &str) -> Option<String> {
    Some(match k {
        "entrypoint" => "drover sets the command only: bake the entrypoint into the image".into(),
        "user" => "drover runs the image's USER: set it in the Dockerfile".into(),
        "working_dir" => "drover runs in the image's WORKDIR: set it in the Dockerfile".into(),
        "domainname" => format!(
            "drover sets no domain name; other containers reach this one as `{id}`"
        ),
        "cap_add" | "cap_drop" | "privileged" | "security_opt" | "devices" | "device_cgroup_rules"
        | "userns_mode" | "ipc" | "pid" | "uts" | "cgroup" | "cgroup_parent" | "runtime"
        | "isolation" | "group_add" | "oom_kill_disable" | "oom_score_adj" | "credential_spec"
        | "gpus" => "drover runs containers with the engine's default privileges, namespaces and devices".into(),
        "sysctls" | "ulimits" | "shm_size" | "storage_opt" => {
            "drover keeps the engine's default kernel settings and limits for the container".into()
        }
        "read_only" => "drover's containers have a writable root filesystem".into(),
        "network_mode" => {
            "drover joins every container to its application's networks; host, none and shared \
             network modes are not offered"
                .into()
        }
        "extra_hosts" | "dns" | "dns_search" | "dns_opt" => {
            "drover's containers resolve through the engine's DNS (service ids on the application network)".into()
        }
        "external_links" => "drover's containers reach only their own application's services".into(),
        "logging" => "drover keeps the engine's log driver; `drover logs` reads it".into(),
        "init" => "drover runs the image's entrypoint as PID 1: use an image with an init (tini) if it needs one".into(),
        "platform" => "drover runs images of the engine's own platform".into(),
        "tty" | "stdin_open" | "attach" => "drover runs services detached, without a terminal".into(),
        "mac_address" => "the engine assigns MAC addresses".into(),
        "volumes_from" => "drover mounts each container's own volumes only".into(),
        "configs" => "drover has no configs: mount the file as a secret or bake it into the image".into(),
        "mem_reservation" | "mem_swappiness" | "memswap_limit" | "pids_limit" | "cpu_shares"
        | "cpu_quota" | "cpu_period" | "cpuset" | "cpu_count" | "cpu_percent" | "cpu_rt_runtime"
        | "cpu_rt_period" | "blkio_config" => {
            "drover limits cpus and memory only (`resources`)".into()
        }
        "extends" => "`extends` is not followed: copy the keys, or share them with a YAML anchor".into(),
        "annotations" => "drover sets no container annotations".into(),
        "post_start" | "pre_stop" => "drover runs no lifecycle hooks: put them in the entrypoint".into(),
        "label_file" => "drover reads no label files: write the labels under `labels`".into(),
        _ => return None,
    })
}

/// Whether `text` (at `path`) uses `name` as a host: in a URL (`//name`,
/// `@name`), with a port (`name:5432`), or as the whole value of a
/// variable whose name says it is an address (`DB_HOST=name`).
fn host_reference(path: &str, text: &str, name: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let (var, value) = if last.ends_with(']') {
        text.split_once('=').unwrap_or(("", text))
    } else {
        (last, text)
    };
    let var = var.to_uppercase();
    let addressy = ["HOST", "ADDR", "SERVER", "URL", "URI", "ENDPOINT"]
        .iter()
        .any(|w| var.contains(w));
    if value == name && addressy {
        return true;
    }
    value.match_indices(name).any(|(i, _)| {
        let before = &value[..i];
        let after = &value[i + name.len()..];
        let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        !before.ends_with(word)
            && !after.starts_with(word)
            && (before.ends_with("//")
                || before.ends_with('@')
                || after.starts_with(|c: char| {
                    c == ':' && after[1..].starts_with(|d: char| d.is_ascii_digit())
                }))
    }) || (value == name && last == "network_mode")
        || value == format!("container:{name}")
}

/// One compose service → one drover service, plus a load balancer when a
/// replicated service publishes a fixed host port.
pub(super) fn service(cx: &mut Ctx, name: &str, svc: &Mapping) -> Result<Vec<Value>, ComposeError> {
    let id = cx.ids[name].clone();
    let base = format!("services.{name}");
    let mut c = Mapping::new(); // container fields
    let mut top = Mapping::new(); // service-level fields
    let mut ports_out: Vec<ports::Port> = Vec::new();
    let mut env = Mapping::new();
    let mut replicas: u64 = 1;
    let mut resources = Mapping::new();
    let mut health: Option<(Mapping, Option<u16>)> = None;
    let mut policy: Option<Value> = None;
    let mut deploy_policy: Option<Option<Value>> = None;
    let mut nets: Vec<Value> = Vec::new();
    let mut labels = Mapping::new();
    let mut vols: Vec<Value> = Vec::new();
    let mut secrets: Vec<Value> = Vec::new();
    let mut deps: Vec<Value> = Vec::new();
    let has_build = svc.contains_key("build");
    // `env_file` first: `environment` wins over it wherever it stands.
    if let Some(v) = svc.get("env_file") {
        env::env_files(cx, &format!("{base}.env_file"), v, &mut env)?;
    }
    for (k, v) in svc {
        let k = key(k);
        let at = format!("{base}.{k}");
        match k.as_str() {
            "image" if has_build => cx.note(
                at,
                "the service also has `build`: drover builds it and tags it drover-build/<app>-<service>:<hash>",
            ),
            "image" => {
                c.insert(s("image"), v.clone());
            }
            "build" => {
                c.insert(s("build"), build(cx, &at, v));
            }
            "command" => match v {
                Value::String(line) => {
                    c.insert(
                        s("command"),
                        Value::Sequence(split_command(line).iter().map(|a| s(literal(a))).collect()),
                    );
                }
                Value::Sequence(items) => {
                    c.insert(
                        s("command"),
                        Value::Sequence(items.iter().filter_map(scalar).map(|a| s(literal(&a))).collect()),
                    );
                }
                Value::Null => {}
                _ => cx.skip(at, "`command` must be a string or a list"),
            },
            "env_file" => {}
            "environment" => env::environment(cx, &at, v, &mut env),
            "ports" => {
                for (i, p) in v.as_sequence().into_iter().flatten().enumerate() {
                    match ports::parse(p) {
                        Ok(list) => {
                            for port in list {
                                let pat = format!("{at}[{i}]");
                                if port.protocol != "tcp" {
                                    cx.skip(pat, format!("{} ports are not published by drover (tcp only)", port.protocol));
                                    continue;
                                }
                                match port.host_ip.as_deref() {
                                    None | Some("0.0.0.0") | Some("::") | Some("") => {}
                                    Some(ip) => cx.skip(
                                        pat,
                                        format!("drover publishes on every address of the host, not only {ip}"),
                                    ),
                                }
                                ports_out.push(port);
                            }
                        }
                        Err(e) => cx.skip(format!("{at}[{i}]"), e.to_string()),
                    }
                }
            }
            "expose" => cx.note(
                at,
                "containers of an application reach each other on every port of its network, as in compose",
            ),
            "depends_on" => depends_on(cx, &at, v, &mut deps),
            "links" => {
                for l in v.as_sequence().into_iter().flatten().filter_map(scalar) {
                    let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
                    match cx.ids.get(target) {
                        Some(did) => {
                            if !deps.contains(&s(did.clone())) {
                                deps.push(s(did.clone()));
                            }
                        }
                        None => cx.skip(format!("{at}.{target}"), "no such service"),
                    }
                    if alias != target {
                        cx.skip(
                            format!("{at}.{l}"),
                            format!("drover's containers answer to their service id `{}`, not to an alias", to_id(target)),
                        );
                    }
                }
            }
            "healthcheck" => match v {
                Value::Mapping(h) => health = health::healthcheck(cx, &at, h),
                _ => cx.skip(at, "`healthcheck` must be a mapping"),
            },
            "deploy" => {
                let d = restart::deploy(cx, &at, v, &mut resources);
                if let Some(n) = d.replicas {
                    replicas = n;
                }
                deploy_policy = d.policy;
            }
            "scale" => match v.as_u64() {
                Some(n) => replicas = n,
                None => cx.skip(at, "not a number"),
            },
            "cpus" | "mem_limit" => restart::limit(cx, &at, &k, v, &mut resources),
            "restart" => policy = restart::restart(cx, &at, v),
            "networks" => networks(cx, &at, v, &mut nets),
            "labels" => labels_of(cx, &at, v, &mut labels),
            "volumes" => {
                for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
                    if let Some(vol) = volumes::volume(cx, name, &format!("{at}[{i}]"), item) {
                        vols.push(vol);
                    }
                }
            }
            "tmpfs" => vols.extend(volumes::service_tmpfs(cx, &at, v)),
            "secrets" => secrets = volumes::service_secrets(cx, &at, v),
            "stop_signal" | "stop_grace_period" | "hostname" => {
                c.insert(s(k), v.clone());
            }
            "pull_policy" => match scalar(v).as_deref() {
                Some("always") => {
                    c.insert(s("image_pull"), s("always"));
                }
                Some("never") => {
                    c.insert(s("image_pull"), s("never"));
                }
                Some("missing") | Some("if_not_present") => {
                    c.insert(s("image_pull"), s("if-not-present"));
                }
                Some("build") => cx.note(at, "drover builds a service that has `build`"),
                other => cx.skip(at, format!("unknown pull policy {other:?}")),
            },
            "container_name" => container_name(cx, &at, name, &id, v),
            "profiles" => cx.note(at, "the service's profile is active"),
            "develop" => cx.note(at, "compose watch is a development loop; drover deploys the service as built"),
            x if x.starts_with("x-") => cx.note(at, "extension field: compose gives it no meaning"),
            "read_only" | "privileged" | "init" | "tty" | "stdin_open" | "oom_kill_disable"
                if v.as_bool() == Some(false) =>
            {
                cx.note(at, "`false` is the default, as in drover")
            }
            other => match unsupported(other, &id) {
                Some(reason) => cx.skip_section(at, reason, v),
                None => cx.skip_section(at, "not a Compose service key", v),
            },
        }
    }
    // `deploy.restart_policy` takes precedence over `restart`, as in compose.
    if let Some(p) = deploy_policy {
        if svc.contains_key("restart") {
            cx.note(
                format!("{base}.restart"),
                "`deploy.restart_policy` takes precedence, as in compose",
            );
        }
        policy = p;
    }
    let cluster = replicas != 1;
    // Assemble the container fields in a readable order.
    if !env.is_empty() {
        c.insert(s("env"), Value::Mapping(env));
    }
    let mut port_values: Vec<Value> = Vec::new();
    let mut fixed: Vec<(u16, u16)> = Vec::new();
    let mut seen: Vec<u16> = Vec::new();
    for p in &ports_out {
        if seen.contains(&p.container) {
            cx.skip(
                format!("{base}.ports"),
                format!(
                    "container port {} is published more than once: drover publishes each \
                     container port once (the first entry)",
                    p.container
                ),
            );
            continue;
        }
        seen.push(p.container);
        match (p.host, cluster) {
            (Some(h), false) => port_values.push(s(format!("{h}:{}", p.container))),
            (Some(h), true) => {
                fixed.push((h, p.container));
                port_values.push(Value::from(p.container));
            }
            (None, _) => port_values.push(Value::from(p.container)),
        }
    }
    if let Some((check, port)) = health {
        if let Some(port) = port.filter(|p| !seen.contains(p)) {
            // drover's own probe goes through a published port.
            port_values.push(Value::from(port));
        }
        c.insert(s("health"), Value::Mapping(check));
    }
    if !port_values.is_empty() {
        c.insert(s("ports"), Value::Sequence(port_values));
    }
    if !vols.is_empty() {
        c.insert(s("volumes"), Value::Sequence(vols));
    }
    if !secrets.is_empty() {
        c.insert(s("secrets"), Value::Sequence(secrets));
    }
    if !resources.is_empty() {
        c.insert(s("resources"), Value::Mapping(resources));
    }
    if !labels.is_empty() {
        c.insert(s("labels"), Value::Mapping(labels));
    }
    if !nets.is_empty() {
        c.insert(s("networks"), Value::Sequence(nets));
    }
    if !deps.is_empty() {
        top.insert(s("depends_on"), Value::Sequence(deps));
    }
    let mut out = Mapping::new();
    out.insert(s("id"), s(id.clone()));
    if cluster {
        out.insert(s("type"), s("cluster"));
        out.insert(s("initial_size"), Value::from(replicas));
        out.insert(s("member"), Value::Mapping(c));
    } else {
        out.insert(s("type"), s("container"));
        for (k, v) in c {
            out.insert(k, v);
        }
    }
    for (k, v) in top {
        out.insert(k, v);
    }
    if let Some(p) = policy {
        out.insert(s("policies"), Value::Sequence(vec![p]));
    }
    let mut result = vec![Value::Mapping(out)];
    for (i, (host, container)) in fixed.into_iter().enumerate() {
        if i == 0 {
            // A fixed host port in front of replicas: drover's load balancer.
            let mut lb = Mapping::new();
            lb.insert(s("id"), s(to_id(&format!("{id}-lb"))));
            lb.insert(s("type"), s("load-balancer"));
            lb.insert(s("target"), s(id.clone()));
            lb.insert(s("port"), Value::from(host));
            lb.insert(s("target_port"), Value::from(container));
            result.push(Value::Mapping(lb));
        } else {
            cx.skip(
                format!("{base}.ports"),
                format!(
                    "host port {host}: members of a cluster share hosts, so only the first fixed \
                     port gets a load balancer; {container} is published on a free host port \
                     (sensor host.port.{container})"
                ),
            );
        }
    }
    Ok(result)
}

/// `build`: a context string or `{context, dockerfile, target, args, ...}`.
fn build(cx: &mut Ctx, at: &str, v: &Value) -> Value {
    let mut b = Mapping::new();
    let ctx_dir = match v {
        Value::Mapping(m) => {
            for (bk, bv) in m {
                let bk = key(bk);
                match bk.as_str() {
                    "context" => {}
                    "dockerfile" | "target" => {
                        if let Some(t) = scalar(bv) {
                            b.insert(s(bk), s(t));
                        }
                    }
                    "args" => {
                        let mut args = Mapping::new();
                        match bv {
                            Value::Mapping(am) => {
                                for (ak, av) in am {
                                    let ak = key(ak);
                                    match scalar(av).or_else(|| (cx.vars)(&ak)) {
                                        Some(val) => {
                                            args.insert(s(ak), s(val));
                                        }
                                        None => cx.note(format!("{at}.args.{ak}"), "no value: the Dockerfile's default applies, as in compose"),
                                    }
                                }
                            }
                            Value::Sequence(items) => {
                                for item in items.iter().filter_map(scalar) {
                                    let (ak, av) = match item.split_once('=') {
                                        Some((a, b)) => (a.to_string(), Some(b.to_string())),
                                        None => (item.clone(), (cx.vars)(&item)),
                                    };
                                    match av {
                                        Some(val) => {
                                            args.insert(s(ak), s(val));
                                        }
                                        None => cx.note(format!("{at}.args.{ak}"), "no value: the Dockerfile's default applies, as in compose"),
                                    }
                                }
                            }
                            _ => cx.skip(format!("{at}.args"), "a mapping or a list of NAME=value"),
                        }
                        if !args.is_empty() {
                            b.insert(s("args"), Value::Mapping(args));
                        }
                    }
                    "labels"
                    | "cache_from"
                    | "cache_to"
                    | "network"
                    | "shm_size"
                    | "extra_hosts"
                    | "ssh"
                    | "secrets"
                    | "platforms"
                    | "tags"
                    | "no_cache"
                    | "pull"
                    | "additional_contexts"
                    | "dockerfile_inline"
                    | "isolation"
                    | "privileged"
                    | "ulimits"
                    | "entitlements" => cx.skip(
                        format!("{at}.{bk}"),
                        "drover builds with the context, Dockerfile, target and args only",
                    ),
                    _ => cx.skip(format!("{at}.{bk}"), "not a Compose build key"),
                }
            }
            m.get("context")
                .and_then(scalar)
                .unwrap_or_else(|| ".".into())
        }
        other => scalar(other).unwrap_or_else(|| ".".into()),
    };
    let dir = if ctx_dir.contains("://") || ctx_dir.starts_with("git@") {
        cx.skip(
            format!("{at}.context"),
            "drover builds from a directory, not a URL: clone it first",
        );
        ctx_dir
    } else if Path::new(&ctx_dir).is_absolute() {
        ctx_dir
    } else {
        cx.resolve(&ctx_dir).display().to_string()
    };
    b.insert(s("context"), s(dir));
    // `context` first, for a readable blueprint.
    let mut ordered = Mapping::new();
    ordered.insert(s("context"), b.remove("context").unwrap_or(Value::Null));
    for (k, v) in b {
        ordered.insert(k, v);
    }
    Value::Mapping(ordered)
}

fn depends_on(cx: &mut Ctx, at: &str, v: &Value, deps: &mut Vec<Value>) {
    let list: Vec<(String, Option<String>)> = match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).map(|d| (d, None)).collect(),
        Value::Mapping(m) => m
            .iter()
            .map(|(dk, dv)| (key(dk), dv.get("condition").and_then(scalar)))
            .collect(),
        _ => Vec::new(),
    };
    for (d, cond) in list {
        if cond.as_deref() == Some("service_completed_successfully") {
            cx.skip(
                format!("{at}.{d}"),
                "drover runs long-lived services; waiting for one to exit is not supported",
            );
            continue;
        }
        match cx.ids.get(&d) {
            Some(did) => {
                if !deps.contains(&s(did.clone())) {
                    deps.push(s(did.clone()));
                }
            }
            None => cx.skip(
                format!("{at}.{d}"),
                "no such service, or one of an inactive profile: compose refuses this dependency; \
                 set COMPOSE_PROFILES or remove it",
            ),
        }
    }
}

fn networks(cx: &mut Ctx, at: &str, v: &Value, nets: &mut Vec<Value>) {
    let names: Vec<(String, Option<Mapping>)> = match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).map(|n| (n, None)).collect(),
        Value::Mapping(m) => m
            .iter()
            .map(|(nk, nv)| (key(nk), nv.as_mapping().cloned()))
            .collect(),
        _ => Vec::new(),
    };
    for (n, opts) in names {
        for ok in opts.iter().flatten().map(|(k, _)| key(k)) {
            let reason = match ok.as_str() {
                "aliases" => {
                    "drover's containers answer to their service id on the network, not to aliases"
                        .to_string()
                }
                "ipv4_address" | "ipv6_address" | "link_local_ips" => {
                    "drover's containers take the next free address of the network's subnet"
                        .to_string()
                }
                "priority" | "gw_priority" => "drover orders no networks".to_string(),
                _ => "not a Compose service network key".to_string(),
            };
            cx.skip(format!("{at}.{n}.{ok}"), reason);
        }
        if n != "default" {
            nets.push(s(to_id(&n)));
        }
    }
}

fn labels_of(cx: &mut Ctx, at: &str, v: &Value, labels: &mut Mapping) {
    let pairs: Vec<(String, String)> = match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(lk, lv)| (key(lk), scalar(lv).unwrap_or_default()))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(scalar)
            .map(|l| match l.split_once('=') {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (l, String::new()),
            })
            .collect(),
        _ => Vec::new(),
    };
    for (lk, lv) in pairs {
        if lk.starts_with("io.drover.") {
            cx.skip(
                format!("{at}.{lk}"),
                "drover sets io.drover.* labels itself",
            );
        } else {
            labels.insert(s(lk), s(lv));
        }
    }
}

/// `container_name`: drover names containers drover-<app>-<id>. That
/// loses something only when another value refers to the name (a host in
/// a URL, say): compose's network also resolves container names.
fn container_name(cx: &mut Ctx, at: &str, service: &str, id: &str, v: &Value) {
    let Some(n) = scalar(v) else {
        return;
    };
    if n == id {
        cx.note(
            at,
            format!("drover's containers answer to their service id `{id}`, the same name"),
        );
        return;
    }
    // Another service's address for this one: in its environment, command
    // or health check (an image name or a path that merely contains the
    // same word is no reference).
    let own = format!("services.{service}.");
    let user = cx
        .values
        .iter()
        .find(|(p, t)| {
            let Some(rest) = p.strip_prefix("services.") else {
                return false;
            };
            let field = rest.split('.').nth(1).unwrap_or("");
            !p.starts_with(&own)
                && [
                    "environment",
                    "command",
                    "entrypoint",
                    "healthcheck",
                    "network_mode",
                ]
                .iter()
                .any(|f| field.starts_with(f))
                && host_reference(p, t, &n)
        })
        .map(|(p, _)| p.clone());
    match user {
        Some(p) => cx.skip(
            at,
            format!(
                "{p} refers to `{n}`, but drover's containers answer to their service id: write `{id}` there"
            ),
        ),
        None => cx.note(
            at,
            format!("drover names the container drover-<app>-{id}; nothing in the file refers to `{n}`"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_references() {
        let r = host_reference;
        assert!(r(
            "services.web.environment[0]",
            "DB_HOST=shop_db",
            "shop_db"
        ));
        assert!(r(
            "services.web.environment.DATABASE_URL",
            "postgres://u:p@shop_db:5432/x",
            "shop_db"
        ));
        assert!(r(
            "services.web.environment.REDIS",
            "shop_cache:6379",
            "shop_cache"
        ));
        assert!(r("services.web.network_mode", "container:vpn", "vpn"));
        assert!(
            !r("services.db.environment.POSTGRES_DB", "shop", "shop"),
            "a database name"
        );
        assert!(!r(
            "services.db.environment[1]",
            "POSTGRES_USER=shop",
            "shop"
        ));
        assert!(!r(
            "services.web.environment.URL",
            "https://shop-db2:1/",
            "shop-db"
        ));
    }

    #[test]
    fn every_unsupported_key_has_a_reason() {
        for k in [
            "entrypoint",
            "user",
            "domainname",
            "cap_add",
            "network_mode",
            "logging",
            "extends",
        ] {
            assert!(unsupported(k, "web").is_some(), "{k}");
        }
        assert!(unsupported("imagee", "web").is_none());
    }
}
