//! docker-compose files to drover blueprints (pure).
//!
//! [`translate`] turns a compose file's text into a blueprint (a YAML
//! value that `parse_blueprint` accepts) and the list of every compose key
//! it could not translate, each with its path and the reason: nothing is
//! dropped silently. It reads no file and no environment: compose's
//! `${VAR}` interpolation takes its variables from the caller.
//!
//! What maps to what: `services` → services (`deploy.replicas` other than
//! 1 makes a cluster with `initial_size`); `image`; `build` (string or
//! `context`/`dockerfile`; relative contexts resolved against `base_dir`);
//! `command`; `environment` (list or map); `ports` (the container port;
//! the host port is kept only for a cluster, as a load balancer on that
//! port); `depends_on` → `depends_on`; `healthcheck` (curl/wget of
//! localhost → http check, `nc` → tcp check); `deploy.resources.limits`,
//! `cpus`, `mem_limit` → `resources`; `deploy.restart_policy` or `restart`
//! → a restarter policy; `networks` → declared networks; `labels`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_yaml::{Mapping, Value};

/// A compose key drover did not translate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untranslated {
    /// Where in the compose file: `services.web.volumes`.
    pub path: String,
    pub reason: String,
}

/// The result of a translation.
#[derive(Debug, Clone, Serialize)]
pub struct Translation {
    pub name: String,
    /// The blueprint, as a YAML value.
    pub blueprint: Value,
    pub untranslated: Vec<Untranslated>,
}

impl Translation {
    /// The blueprint as YAML text.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.blueprint).unwrap_or_default()
    }
}

/// Whether `text` is a compose file: a top-level `services` that is a
/// mapping (a blueprint's `services` is a list).
pub fn is_compose(text: &str) -> bool {
    serde_yaml::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("services").map(Value::is_mapping))
        .unwrap_or(false)
}

/// Turns a compose name into a drover id: lower case, `_` and `.` to `-`,
/// starting with a letter, at most 40 characters.
pub fn to_id(name: &str) -> String {
    let mut id: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id = format!("s-{id}");
    }
    id.truncate(40);
    id
}

/// Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `$VAR`; `$$` is a literal `$` (kept as `$${` before a brace, which is
/// drover's literal `${`). Unset variables become empty, as in compose, and
/// are reported.
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push_str(if b.get(i + 2) == Some(&b'{') {
                    "$$"
                } else {
                    "$"
                });
                i += 2;
            }
            Some(b'{') => {
                let Some(end) = text[i + 2..].find('}') else {
                    out.push_str(&text[i..]);
                    break;
                };
                let inner = &text[i + 2..i + 2 + end];
                let (var, default) = match inner.find(":-").or_else(|| inner.find('-')) {
                    Some(k)
                        if inner[..k]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        let d = inner[k..].trim_start_matches(':');
                        (&inner[..k], Some(&d[1..]))
                    }
                    _ => (inner, None),
                };
                match env(var) {
                    Some(v) if !v.is_empty() || !inner.contains(":-") => out.push_str(&v),
                    _ => match default {
                        Some(d) => out.push_str(d),
                        None => {
                            unset.insert(var.to_string());
                        }
                    },
                }
                i += 2 + end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let len = text[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(text.len() - i - 1);
                let var = &text[i + 1..i + 1 + len];
                match env(var) {
                    Some(v) => out.push_str(&v),
                    None => {
                        unset.insert(var.to_string());
                    }
                }
                i += 1 + len;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

struct Ctx<'a> {
    out: Vec<Untranslated>,
    base_dir: Option<&'a Path>,
    ids: BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn skip(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.out.push(Untranslated {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

fn key(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// Why a file cannot be translated at all (what cannot be translated of a
/// good file is listed in [`Translation::untranslated`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("not a YAML file: {0}")]
    NotYaml(serde_yaml::Error),
    #[error("bad merge key (`<<`): {0}; a merge key takes a mapping or a list of mappings")]
    BadMerge(serde_yaml::Error),
    #[error("a compose file is a mapping with `services`")]
    NotMapping,
    #[error("not a compose file: no `services` mapping")]
    NoServices,
}

/// Translates a compose file. `name` is the application name to use when
/// the file has no `name:` (already a valid id or made one); `base_dir`
/// resolves relative build contexts; `env` feeds `${VAR}` interpolation.
pub fn translate(
    text: &str,
    name: &str,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Translation, ComposeError> {
    let mut unset = BTreeSet::new();
    let text = interpolate(text, env, &mut unset);
    let mut doc: Value = serde_yaml::from_str(&text).map_err(ComposeError::NotYaml)?;
    doc.apply_merge().map_err(ComposeError::BadMerge)?;
    let Value::Mapping(top) = doc else {
        return Err(ComposeError::NotMapping);
    };
    let Some(Value::Mapping(services)) = top.get("services").cloned() else {
        return Err(ComposeError::NoServices);
    };
    let mut cx = Ctx {
        out: unset
            .into_iter()
            .map(|v| Untranslated {
                path: format!("${{{v}}}"),
                reason: format!(
                    "variable {v} is not set: an empty string was substituted, as compose does"
                ),
            })
            .collect(),
        base_dir,
        ids: services.keys().map(|k| (key(k), to_id(&key(k)))).collect(),
    };
    let mut app_name = name.to_string();
    let mut networks: Vec<Value> = Vec::new();
    for (k, v) in &top {
        let k = key(k);
        match k.as_str() {
            "services" => {}
            "name" => {
                if let Some(n) = scalar(v) {
                    app_name = to_id(&n);
                }
            }
            "version" => cx.skip(
                "version",
                "informational only: the Compose specification ignores it too",
            ),
            "networks" => {
                if let Value::Mapping(m) = v {
                    for (nk, nv) in m {
                        let nk = key(nk);
                        if nk == "default" {
                            cx.skip(
                                "networks.default",
                                "the application network `drover-<app>` takes its place",
                            );
                            continue;
                        }
                        let mut n = Mapping::new();
                        n.insert(s("name"), s(to_id(&nk)));
                        networks.push(Value::Mapping(n));
                        if let Value::Mapping(opts) = nv {
                            for ok in opts.keys() {
                                let ok = key(ok);
                                cx.skip(
                                    format!("networks.{nk}.{ok}"),
                                    "drover makes every network a bridge with a subnet from its pool",
                                );
                            }
                        }
                    }
                }
            }
            x if x.starts_with("x-") => cx.skip(x, "extension field: anchors and merges from it are applied, the field itself has no meaning to drover"),
            "volumes" => cx.skip("volumes", "drover manages stateless containers: named volumes are not created"),
            "secrets" | "configs" => cx.skip(k.as_str(), "drover has no secrets or configs; pass values through `env`"),
            other => cx.skip(other, "unknown to drover"),
        }
    }
    let mut out_services: Vec<Value> = Vec::new();
    for (k, v) in &services {
        let name = key(k);
        let Value::Mapping(svc) = v else {
            cx.skip(format!("services.{name}"), "a service must be a mapping");
            continue;
        };
        out_services.extend(service(&mut cx, &name, svc));
    }
    let mut bp = Mapping::new();
    bp.insert(s("name"), s(app_name.clone()));
    if !networks.is_empty() {
        bp.insert(s("networks"), Value::Sequence(networks));
    }
    bp.insert(s("services"), Value::Sequence(out_services));
    Ok(Translation {
        name: app_name,
        blueprint: Value::Mapping(bp),
        untranslated: cx.out,
    })
}

/// Splits a shell-style command line (quotes, backslashes; no expansion).
pub fn split_command(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Compose memory (`512m`, `1g`, `1024k`, bytes; binary units, as Docker
/// reads them) to a drover size.
pub fn memory(v: &Value) -> Option<String> {
    let t = scalar(v)?.trim().to_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: u64 = num.parse().ok()?;
    let unit = match unit.trim_end_matches('b') {
        "" => return Some(num.to_string()),
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        _ => return None,
    };
    Some(format!("{num}{unit}"))
}

fn duration(v: &Value) -> Option<String> {
    let t = scalar(v)?;
    humantime::parse_duration(&t).ok()?;
    Some(t)
}

/// Why a compose health check test has no drover equivalent; listed as
/// untranslated, with what drover would take instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HealthTestError {
    #[error(
        "unrecognised test form {0:?}; use [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]"
    )]
    Form(Vec<String>),
    #[error("`test` must be a string or a list")]
    NotCommand,
    #[error("`{0}` fetches no http:// URL")]
    NoUrl(String),
    #[error("bad port in {0}")]
    BadPort(String),
    #[error(
        "`{0}` is not this container's own address: drover's checks probe the container itself"
    )]
    NotLocal(String),
    #[error("`{0}` names no port")]
    NoPort(String),
    #[error(
        "`{0}` runs inside the container; drover probes from outside (an http GET or a tcp \
             connect to a published port) and translates only curl/wget of localhost and nc"
    )]
    RunsInside(String),
}

/// A compose health check test → a drover check (`http` or `tcp`).
fn health_test(test: &Value) -> Result<Option<(Mapping, u16)>, HealthTestError> {
    let tokens: Vec<String> = match test {
        Value::String(line) => split_command(line),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().filter_map(scalar).collect();
            match items.first().map(String::as_str) {
                Some("NONE") => return Ok(None),
                Some("CMD") => items[1..].to_vec(),
                Some("CMD-SHELL") => split_command(&items[1..].join(" ")),
                _ => return Err(HealthTestError::Form(items)),
            }
        }
        _ => return Err(HealthTestError::NotCommand),
    };
    // Only the first command of `a || exit 1`, `a && b`, `a; b`.
    let cmd: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .take_while(|t| !matches!(*t, "||" | "&&" | ";" | "|"))
        .collect();
    let prog = cmd
        .first()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .unwrap_or_default();
    let local = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]");
    match prog {
        "curl" | "wget" => {
            let url = cmd
                .iter()
                .find(|t| t.starts_with("http://"))
                .ok_or_else(|| HealthTestError::NoUrl(cmd.join(" ")))?;
            let rest = &url["http://".len()..];
            let (hostport, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| HealthTestError::BadPort(url.to_string()))?,
                ),
                None => (hostport, 80),
            };
            if !local(host) {
                return Err(HealthTestError::NotLocal(url.to_string()));
            }
            let mut http = Mapping::new();
            http.insert(s("port"), Value::from(port));
            http.insert(s("path"), s(path));
            let mut m = Mapping::new();
            m.insert(s("http"), Value::Mapping(http));
            Ok(Some((m, port)))
        }
        "nc" | "ncat" | "netcat" => {
            let port = cmd
                .iter()
                .rev()
                .find_map(|t| t.parse::<u16>().ok())
                .ok_or_else(|| HealthTestError::NoPort(cmd.join(" ")))?;
            let mut tcp = Mapping::new();
            tcp.insert(s("port"), Value::from(port));
            let mut m = Mapping::new();
            m.insert(s("tcp"), Value::Mapping(tcp));
            Ok(Some((m, port)))
        }
        _ => Err(HealthTestError::RunsInside(cmd.join(" "))),
    }
}

/// Restart policy keys → restarter config.
fn restarter(cx: &mut Ctx, path: &str, rp: &Mapping) -> Option<Value> {
    let mut p = Mapping::new();
    p.insert(s("type"), s("restarter"));
    for (k, v) in rp {
        let k = key(k);
        let at = format!("{path}.{k}");
        match k.as_str() {
            "condition" => match scalar(v).as_deref() {
                Some("none") => {
                    cx.skip(at, "`none`: no restarter is attached");
                    return None;
                }
                Some("on-failure") | Some("any") => {}
                other => cx.skip(
                    at,
                    format!("unknown condition {other:?}; restarting on failure"),
                ),
            },
            "delay" => match duration(v) {
                Some(d) => {
                    p.insert(s("backoff_start"), s(d.clone()));
                    p.insert(s("initial_delay"), s(d));
                }
                None => cx.skip(at, "not a duration"),
            },
            "max_attempts" => match v.as_u64() {
                Some(n) => {
                    p.insert(s("max_restarts"), Value::from(n));
                }
                None => cx.skip(at, "not a number"),
            },
            "window" => match duration(v) {
                Some(d) => {
                    p.insert(s("window"), s(d));
                }
                None => cx.skip(at, "not a duration"),
            },
            _ => cx.skip(at, "unknown restart_policy key"),
        }
    }
    Some(Value::Mapping(p))
}

/// One compose service → one drover service, plus a load balancer when a
/// replicated service publishes a fixed host port.
fn service(cx: &mut Ctx, name: &str, svc: &Mapping) -> Vec<Value> {
    let id = cx.ids[name].clone();
    let base = format!("services.{name}");
    let mut c = Mapping::new(); // container fields
    let mut top = Mapping::new(); // service-level fields
    let mut ports: Vec<u16> = Vec::new();
    let mut fixed: Vec<(u16, u16)> = Vec::new(); // (host, container)
    let mut env = Mapping::new();
    let mut replicas: u64 = 1;
    let mut resources = Mapping::new();
    let mut health: Option<(Mapping, u16)> = None;
    let mut health_extra = Mapping::new();
    let mut policy: Option<Value> = None;
    let mut restart_key: Option<Value> = None;
    let mut nets: Vec<Value> = Vec::new();
    let mut labels = Mapping::new();
    let has_build = svc.contains_key("build");
    for (k, v) in svc {
        let k = key(k);
        let at = format!("{base}.{k}");
        match k.as_str() {
            "image" if has_build => cx.skip(
                at,
                "the service also has `build`: drover builds it and tags it drover-build/<app>-<service>:<hash>",
            ),
            "image" => {
                c.insert(s("image"), v.clone());
            }
            "build" => {
                let (ctx_dir, dockerfile) = match v {
                    Value::Mapping(b) => {
                        for bk in b.keys() {
                            let bk = key(bk);
                            if bk != "context" && bk != "dockerfile" {
                                cx.skip(
                                    format!("{at}.{bk}"),
                                    "drover builds with the context and Dockerfile only",
                                );
                            }
                        }
                        (
                            b.get("context").and_then(scalar).unwrap_or_else(|| ".".into()),
                            b.get("dockerfile").and_then(scalar),
                        )
                    }
                    other => (scalar(other).unwrap_or_else(|| ".".into()), None),
                };
                let ctx_dir = match cx.base_dir {
                    Some(d) if !Path::new(&ctx_dir).is_absolute() => {
                        let rel = ctx_dir.trim_start_matches("./");
                        if rel.is_empty() || rel == "." {
                            d.display().to_string()
                        } else {
                            d.join(rel).display().to_string()
                        }
                    }
                    _ => ctx_dir,
                };
                let mut b = Mapping::new();
                b.insert(s("context"), s(ctx_dir));
                if let Some(df) = dockerfile {
                    b.insert(s("dockerfile"), s(df));
                }
                c.insert(s("build"), Value::Mapping(b));
            }
            "command" => match v {
                Value::String(line) => {
                    c.insert(
                        s("command"),
                        Value::Sequence(split_command(line).into_iter().map(s).collect()),
                    );
                }
                Value::Sequence(items) => {
                    c.insert(
                        s("command"),
                        Value::Sequence(items.iter().filter_map(scalar).map(s).collect()),
                    );
                }
                _ => cx.skip(at, "`command` must be a string or a list"),
            },
            "environment" => match v {
                Value::Mapping(m) => {
                    for (ek, ev) in m {
                        match scalar(ev) {
                            Some(val) => {
                                env.insert(s(key(ek)), s(val));
                            }
                            None => cx.skip(
                                format!("{at}.{}", key(ek)),
                                "no value: compose takes it from the shell at `up`; set it in the blueprint",
                            ),
                        }
                    }
                }
                Value::Sequence(items) => {
                    for item in items.iter().filter_map(scalar) {
                        match item.split_once('=') {
                            Some((ek, ev)) => {
                                env.insert(s(ek), s(ev));
                            }
                            None => cx.skip(
                                format!("{at}.{item}"),
                                "no value: compose takes it from the shell at `up`; set it in the blueprint",
                            ),
                        }
                    }
                }
                _ => cx.skip(at, "`environment` must be a list or a mapping"),
            },
            "ports" => {
                for (i, p) in v.as_sequence().into_iter().flatten().enumerate() {
                    let pat = format!("{at}[{i}]");
                    let (host, container, proto) = match p {
                        Value::Mapping(m) => (
                            m.get("published").and_then(scalar),
                            m.get("target").and_then(scalar).unwrap_or_default(),
                            m.get("protocol").and_then(scalar).unwrap_or_else(|| "tcp".into()),
                        ),
                        other => {
                            let t = scalar(other).unwrap_or_default();
                            let (t, proto) = match t.split_once('/') {
                                Some((a, b)) => (a.to_string(), b.to_string()),
                                None => (t, "tcp".to_string()),
                            };
                            let parts: Vec<&str> = t.rsplitn(3, ':').collect();
                            (
                                parts.get(1).map(|s| s.to_string()),
                                parts[0].to_string(),
                                proto,
                            )
                        }
                    };
                    if proto != "tcp" {
                        cx.skip(pat, format!("{proto} ports are not published by drover (tcp only)"));
                        continue;
                    }
                    let Ok(cport) = container.parse::<u16>() else {
                        cx.skip(pat, format!("`{container}`: port ranges are not supported; list each port"));
                        continue;
                    };
                    if !ports.contains(&cport) {
                        ports.push(cport);
                    }
                    if let Some(h) = host.and_then(|h| h.parse::<u16>().ok()) {
                        fixed.push((h, cport));
                    }
                }
            }
            "expose" => cx.skip(
                at,
                "containers of an application reach each other on its network without it",
            ),
            "depends_on" => {
                let deps: Vec<(String, Option<String>)> = match v {
                    Value::Sequence(items) => {
                        items.iter().filter_map(scalar).map(|d| (d, None)).collect()
                    }
                    Value::Mapping(m) => m
                        .iter()
                        .map(|(dk, dv)| (key(dk), dv.get("condition").and_then(scalar)))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut list = Vec::new();
                for (d, cond) in deps {
                    if cond.as_deref() == Some("service_completed_successfully") {
                        cx.skip(
                            format!("{at}.{d}"),
                            "drover runs long-lived services; waiting for one to exit is not supported",
                        );
                        continue;
                    }
                    match cx.ids.get(&d) {
                        Some(did) => list.push(s(did.clone())),
                        None => cx.skip(format!("{at}.{d}"), "no such service"),
                    }
                }
                if !list.is_empty() {
                    top.insert(s("depends_on"), Value::Sequence(list));
                }
            }
            "healthcheck" => {
                let Value::Mapping(h) = v else {
                    cx.skip(at, "`healthcheck` must be a mapping");
                    continue;
                };
                if h.get("disable").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                for (hk, hv) in h {
                    let hk = key(hk);
                    let hat = format!("{at}.{hk}");
                    match hk.as_str() {
                        "test" => match health_test(hv) {
                            Ok(t) => health = t,
                            Err(reason) => cx.skip(hat, reason.to_string()),
                        },
                        "interval" | "timeout" => match duration(hv) {
                            Some(d) => {
                                health_extra.insert(s(hk), s(d));
                            }
                            None => cx.skip(hat, "not a duration"),
                        },
                        "retries" => cx.skip(hat, "drover's failure detector acts on the first failed check; a restarter's backoff limits the churn"),
                        "start_period" | "start_interval" => cx.skip(hat, "drover probes every 50 ms while starting and gives a container 2 minutes to pass its first check"),
                        "disable" => {}
                        _ => cx.skip(hat, "unknown healthcheck key"),
                    }
                }
            }
            "deploy" => {
                let Value::Mapping(d) = v else {
                    cx.skip(at, "`deploy` must be a mapping");
                    continue;
                };
                for (dk, dv) in d {
                    let dk = key(dk);
                    let dat = format!("{at}.{dk}");
                    match dk.as_str() {
                        "replicas" => match dv.as_u64() {
                            Some(n) => replicas = n,
                            None => cx.skip(dat, "not a number"),
                        },
                        "resources" => {
                            for (rk, rv) in rv_map(dv) {
                                let rat = format!("{dat}.{rk}");
                                if rk != "limits" {
                                    cx.skip(rat, "drover sets limits only; reservations are not kept");
                                    continue;
                                }
                                for (lk, lv) in rv_map(&rv) {
                                    let lat = format!("{rat}.{lk}");
                                    match lk.as_str() {
                                        "cpus" => match scalar(&lv).and_then(|c| c.parse::<f64>().ok()) {
                                            Some(c) => {
                                                resources.insert(s("cpus"), Value::from(c));
                                            }
                                            None => cx.skip(lat, "not a number of CPUs"),
                                        },
                                        "memory" => match memory(&lv) {
                                            Some(m) => {
                                                resources.insert(s("memory"), s(m));
                                            }
                                            None => cx.skip(lat, "not a memory size"),
                                        },
                                        _ => cx.skip(lat, "drover limits cpus and memory only"),
                                    }
                                }
                            }
                        }
                        "restart_policy" => match dv {
                            Value::Mapping(rp) => policy = restarter(cx, &dat, rp),
                            _ => cx.skip(dat, "must be a mapping"),
                        },
                        "mode" if scalar(dv).as_deref() == Some("replicated") => {}
                        "mode" => cx.skip(dat, "drover runs replicated services only (a cluster)"),
                        _ => cx.skip(dat, "a Swarm setting drover has no equivalent for"),
                    }
                }
            }
            "cpus" => match scalar(v).and_then(|c| c.parse::<f64>().ok()) {
                Some(cpus) => {
                    resources.insert(s("cpus"), Value::from(cpus));
                }
                None => cx.skip(at, "not a number of CPUs"),
            },
            "mem_limit" => match memory(v) {
                Some(m) => {
                    resources.insert(s("memory"), s(m));
                }
                None => cx.skip(at, "not a memory size"),
            },
            "restart" => restart_key = Some(v.clone()),
            "networks" => {
                let names: Vec<(String, bool)> = match v {
                    Value::Sequence(items) => {
                        items.iter().filter_map(scalar).map(|n| (n, false)).collect()
                    }
                    Value::Mapping(m) => m
                        .iter()
                        .map(|(nk, nv)| (key(nk), nv.as_mapping().is_some_and(|x| !x.is_empty())))
                        .collect(),
                    _ => Vec::new(),
                };
                for (n, has_opts) in names {
                    if has_opts {
                        cx.skip(
                            format!("{at}.{n}"),
                            "network aliases and fixed addresses are not kept: the entity id is the alias",
                        );
                    }
                    if n != "default" {
                        nets.push(s(to_id(&n)));
                    }
                }
            }
            "labels" => {
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
                        cx.skip(format!("{at}.{lk}"), "drover sets io.drover.* labels itself");
                    } else {
                        labels.insert(s(lk), s(lv));
                    }
                }
            }
            "container_name" => cx.skip(at, "drover names containers drover-<app>-<entity>"),
            "volumes" | "tmpfs" => cx.skip(at, "drover manages stateless containers: no volumes or mounts"),
            "entrypoint" => cx.skip(at, "drover sets the command only: bake the entrypoint into the image"),
            "env_file" => cx.skip(at, "drover reads no files at deploy: put the variables under `environment`"),
            x if x.starts_with("x-") => cx.skip(at, "extension field"),
            _ => cx.skip(at, "drover has no equivalent"),
        }
    }
    if let Some(r) = restart_key {
        let at = format!("{base}.restart");
        if policy.is_some() {
            cx.skip(
                at,
                "`deploy.restart_policy` takes precedence, as in compose",
            );
        } else {
            let t = scalar(&r).unwrap_or_default();
            match t.as_str() {
                "no" | "" => {}
                "always" | "unless-stopped" | "on-failure" => {
                    policy = restarter(cx, &at, &Mapping::new());
                }
                other if other.starts_with("on-failure:") => {
                    let mut m = Mapping::new();
                    if let Ok(n) = other["on-failure:".len()..].parse::<u64>() {
                        m.insert(s("max_attempts"), Value::from(n));
                    }
                    policy = restarter(cx, &at, &m);
                }
                other => cx.skip(at, format!("unknown restart policy `{other}`")),
            }
        }
    }
    // Assemble the container fields in a readable order.
    if !env.is_empty() {
        c.insert(s("env"), Value::Mapping(env));
    }
    if let Some((mut check, port)) = health {
        if !ports.contains(&port) {
            // Checks go through the published port.
            ports.push(port);
        }
        for (k, v) in health_extra {
            check.insert(k, v);
        }
        c.insert(s("health"), Value::Mapping(check));
    }
    if !ports.is_empty() {
        c.insert(
            s("ports"),
            Value::Sequence(ports.iter().map(|p| Value::from(*p)).collect()),
        );
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
    let mut out = Mapping::new();
    out.insert(s("id"), s(id.clone()));
    let cluster = replicas != 1;
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
        let at = format!("{base}.ports");
        if cluster && i == 0 {
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
                at,
                format!(
                    "host port {host} is not kept: drover publishes {container} on a free host \
                     port (sensor host.port.{container}); a cluster gets a load balancer on {host}"
                ),
            );
        }
    }
    result
}

fn rv_map(v: &Value) -> Vec<(String, Value)> {
    v.as_mapping()
        .map(|m| m.iter().map(|(k, v)| (key(k), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Translates a file of tests/data/compose; the blueprint must pass
    /// `parse_blueprint`. Returns the blueprint and the untranslated paths.
    fn file(name: &str) -> (crate::blueprint::Blueprint, Translation) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose");
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let t = translate(&text, "imported", Some(Path::new("/srv/app")), &no_env).unwrap();
        let bp = crate::blueprint::parse_blueprint(name, &t.yaml()).unwrap_or_else(|e| {
            panic!("{name} translates to a valid blueprint:\n{e}\n{}", t.yaml())
        });
        (bp, t)
    }

    fn paths(t: &Translation) -> Vec<&str> {
        t.untranslated.iter().map(|u| u.path.as_str()).collect()
    }

    #[test]
    fn web_app_with_database_and_cache() {
        let (bp, t) = file("webapp.yml");
        assert_eq!(bp.name, "imported");
        let ids: Vec<&str> = bp.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["web", "db", "cache"]);
        let web = &bp.services[0];
        assert_eq!(web.image.as_deref(), Some("myorg/shop-web:1.4.2"));
        assert_eq!(web.ports, [8080]);
        assert_eq!(
            web.env["DATABASE_URL"], "postgres://shop:secret@db:5432/shop",
            "compose defaults are interpolated"
        );
        assert_eq!(web.depends_on, ["db", "cache"]);
        assert_eq!(web.labels["com.example.team"], "shop");
        assert_eq!(web.policies[0].kind.as_deref(), Some("restarter"));
        let cache = &bp.services[2];
        assert_eq!(
            cache.command.as_ref().unwrap(),
            &["redis-server", "--appendonly", "yes", "--maxmemory", "64mb"]
        );
        assert_eq!(
            cache.resources.as_ref().unwrap().memory.unwrap().0,
            128 << 20
        );
        let h = cache.health.as_ref().unwrap();
        assert_eq!(h.tcp.as_ref().unwrap().port, 6379);
        assert_eq!(cache.ports, [6379], "the checked port is published");
        assert_eq!(h.interval, std::time::Duration::from_secs(2));
        assert_eq!(
            paths(&t),
            [
                "version",
                "volumes",
                "services.web.environment.SENTRY_DSN",
                "services.web.volumes",
                "services.web.ports",
                "services.db.volumes",
                "services.db.healthcheck.test",
                "services.db.healthcheck.retries",
            ]
        );
        let reason = |p: &str| {
            t.untranslated
                .iter()
                .find(|u| u.path == p)
                .map(|u| u.reason.clone())
                .unwrap()
        };
        assert!(reason("services.web.ports").contains("host port 8000 is not kept"));
        assert!(reason("services.db.healthcheck.test")
            .contains("`pg_isready -U shop` runs inside the container"));
    }

    #[test]
    fn builds_resolve_against_the_file_directory() {
        let (bp, t) = file("build.yml");
        let api = &bp.services[0];
        let b = api.build.as_ref().unwrap();
        assert_eq!(b.context, "/srv/app/api");
        assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile.dev"));
        assert_eq!(api.image, None);
        assert_eq!(api.env["WORKERS"], "4");
        assert_eq!(api.command.as_ref().unwrap(), &["--listen", "0.0.0.0:3000"]);
        let worker = &bp.services[1];
        assert_eq!(worker.build.as_ref().unwrap().context, "/srv/app/worker");
        assert_eq!(worker.depends_on, ["api"]);
        assert_eq!(
            paths(&t),
            [
                "x-common",
                "services.api.build.args",
                "services.api.image",
                "services.api.env_file",
                "services.api.entrypoint",
                "services.worker.container_name",
                "services.migrate.depends_on.api",
            ]
        );
    }

    #[test]
    fn deploy_sections_and_health_checks() {
        let (bp, t) = file("deploy.yml");
        assert_eq!(bp.name, "storefront", "the file's `name`, made an id");
        assert_eq!(
            bp.networks
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>(),
            ["front", "back"]
        );
        let fe = &bp.services[0];
        assert_eq!(fe.kind, crate::blueprint::ServiceType::Cluster);
        assert_eq!(fe.initial_size, Some(3));
        let m = fe.member.as_ref().unwrap();
        assert_eq!(m.resources.cpus, Some(0.5));
        assert_eq!(m.resources.memory.unwrap().0, 256 << 20);
        assert_eq!(m.networks, ["front", "back"]);
        let h = m.health.as_ref().unwrap();
        assert_eq!(h.http.as_ref().unwrap().path, "/health");
        assert_eq!(h.timeout, std::time::Duration::from_secs(3));
        let p = &fe.policies[0];
        assert_eq!(p.kind.as_deref(), Some("restarter"));
        assert_eq!(p.config["max_restarts"], serde_yaml::Value::from(3));
        assert_eq!(p.config["backoff_start"], serde_yaml::Value::from("5s"));
        assert_eq!(p.config["window"], serde_yaml::Value::from("120s"));
        // The published port of the replicas: a load balancer.
        let lb = &bp.services[1];
        assert_eq!(lb.id, "frontend-lb");
        assert_eq!(
            (lb.target.as_deref(), lb.port, lb.target_port),
            (Some("frontend"), Some(80), Some(8080))
        );
        let orders = &bp.services[2];
        assert_eq!(orders.kind, crate::blueprint::ServiceType::Container);
        assert_eq!(
            orders.health.as_ref().unwrap().http.as_ref().unwrap().port,
            9000
        );
        assert_eq!(orders.ports, [9000]);
        assert_eq!(
            orders.resources.as_ref().unwrap().memory.unwrap().0,
            1 << 30
        );
        assert_eq!(
            paths(&t),
            [
                "version",
                "networks.front.driver",
                "networks.back.driver",
                "networks.back.ipam",
                "services.frontend.deploy.resources.reservations",
                "services.frontend.deploy.update_config",
                "services.frontend.healthcheck.retries",
                "services.frontend.healthcheck.start_period",
                "services.orders.deploy.resources.limits.pids",
                "services.orders.networks.back",
                "services.queue.ports[0]",
                "services.queue.ports[1]",
            ]
        );
    }

    #[test]
    fn two_tier_bench_file() {
        let (bp, t) = file("two-tier.yml");
        assert!(t.untranslated.is_empty(), "{:?}", t.untranslated);
        assert_eq!(bp.services[1].depends_on, ["db"]);
        assert_eq!(bp.services[1].env["DB_HOST"], "db");
    }

    #[test]
    fn ids_and_commands_and_memory() {
        assert_eq!(to_id("My_App.v2"), "my-app-v2");
        assert_eq!(to_id("1st"), "s-1st");
        assert_eq!(
            split_command(r#"sh -c 'echo "hi there"' a\ b"#),
            ["sh", "-c", "echo \"hi there\"", "a b"]
        );
        assert_eq!(memory(&Value::from("512m")).as_deref(), Some("512Mi"));
        assert_eq!(memory(&Value::from("1GB")).as_deref(), Some("1Gi"));
        assert_eq!(memory(&Value::from(1000)).as_deref(), Some("1000"));
        assert_eq!(memory(&Value::from("lots")), None);
    }

    #[test]
    fn interpolation() {
        let env = |k: &str| (k == "TAG").then(|| "1.2".to_string());
        let mut unset = BTreeSet::new();
        assert_eq!(
            interpolate(
                "a:${TAG} ${X:-def} $TAG $$HOME $${db.x} ${NOPE}",
                &env,
                &mut unset
            ),
            "a:1.2 def 1.2 $HOME $${db.x} "
        );
        assert_eq!(unset, BTreeSet::from(["NOPE".to_string()]));
    }

    #[test]
    fn health_tests() {
        let t = |v: &str| health_test(&serde_yaml::from_str(v).unwrap());
        let (m, p) = t(r#"["CMD", "curl", "-f", "http://localhost:8080/health"]"#)
            .unwrap()
            .unwrap();
        assert_eq!(p, 8080);
        assert_eq!(m["http"]["path"], "/health");
        let (m, p) = t(r#"["CMD-SHELL", "wget -qO- http://127.0.0.1/ || exit 1"]"#)
            .unwrap()
            .unwrap();
        assert_eq!((p, m["http"]["path"].as_str()), (80, Some("/")));
        let (m, p) = t(r#""nc -z localhost 5432""#).unwrap().unwrap();
        assert_eq!((p, m["tcp"]["port"].as_u64()), (5432, Some(5432)));
        assert_eq!(
            t(r#"["CMD", "pg_isready", "-U", "postgres"]"#),
            Err(HealthTestError::RunsInside("pg_isready -U postgres".into()))
        );
        assert!(t(r#"["CMD", "pg_isready"]"#)
            .unwrap_err()
            .to_string()
            .contains("runs inside the container"));
        assert_eq!(
            t(r#"["CMD", "curl", "http://db:5432/"]"#),
            Err(HealthTestError::NotLocal("http://db:5432/".into()))
        );
        assert_eq!(
            t(r#"["CMD", "curl", "http://localhost:x/"]"#),
            Err(HealthTestError::BadPort("http://localhost:x/".into()))
        );
        assert_eq!(
            t(r#"["CMD", "curl", "-f"]"#),
            Err(HealthTestError::NoUrl("curl -f".into()))
        );
        assert_eq!(
            t(r#"["CMD", "nc", "-z"]"#),
            Err(HealthTestError::NoPort("nc -z".into()))
        );
        assert_eq!(t(r#"["X"]"#), Err(HealthTestError::Form(vec!["X".into()])));
        assert_eq!(t("7"), Err(HealthTestError::NotCommand));
        assert!(t(r#"["NONE"]"#).unwrap().is_none());
    }

    #[test]
    fn files_that_cannot_be_translated() {
        let no_env = |_: &str| None;
        let t = |text: &str| translate(text, "a", None, &no_env).map(|_| ());
        assert!(matches!(t("a: [\n"), Err(ComposeError::NotYaml(_))));
        assert!(matches!(t("- a\n"), Err(ComposeError::NotMapping)));
        assert!(matches!(t("name: a\n"), Err(ComposeError::NoServices)));
        assert!(matches!(
            t("x: &a 1\nservices:\n  <<: *a\n"),
            Err(ComposeError::BadMerge(_))
        ));
        assert_eq!(
            ComposeError::NoServices.to_string(),
            "not a compose file: no `services` mapping"
        );
    }

    #[test]
    fn detection() {
        assert!(is_compose("services:\n  web:\n    image: x\n"));
        assert!(!is_compose("name: a\nservices:\n  - id: web\n"));
        assert!(!is_compose("- a\n"));
    }
}
