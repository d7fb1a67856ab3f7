//! docker-compose files to drover blueprints (pure).
//!
//! [`translate`] turns a compose file's text into a blueprint (a YAML
//! value that `parse_blueprint` accepts) and lists every compose key it
//! could not translate, each with its path and the reason: nothing is
//! dropped silently. It does no I/O of its own: the caller hands it the
//! process environment and a way to read files (the `.env` beside the
//! compose file, `env_file`s), so every decision is testable.
//!
//! The file is read as compose reads it: YAML first (merge keys `<<`
//! applied), then `${VAR}` interpolation of every string value from the
//! environment over the `.env` file ([`interpolate`]), then the services
//! whose `profiles` are not active (`COMPOSE_PROFILES`) are left out.
//!
//! What maps to what (the README has the table): `services` → services
//! (`deploy.replicas`/`scale` other than 1 makes a cluster); `image`,
//! `build` (with `target`, `args`), `command`, `environment` and
//! `env_file`, `ports` (fixed host ports of single containers kept as
//! `"8000:80"`; a replicated service's host port becomes a load
//! balancer), `volumes` and `tmpfs` (named volumes, host paths, tmpfs),
//! `secrets`, `healthcheck` (curl/wget/nc of localhost → drover's own
//! http/tcp probe, any other test → the engine's check), `restart` and
//! `deploy.restart_policy` → a restarter, `depends_on`/`links`,
//! resources, `networks`, `labels`, `stop_signal`, `stop_grace_period`,
//! `pull_policy`.

mod dotenv;
mod env;
mod health;
pub mod interpolate;
mod ports;
mod restart;
mod service;
mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::{Mapping, Value};

pub use dotenv::{parse as parse_dotenv, DotenvError};
pub use interpolate::{interpolate, InterpolateError, Lookup};

/// A compose key drover did not translate, and why; or (in
/// [`Translation::notes`]) one that needs nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untranslated {
    /// Where in the compose file: `services.web.volumes[0]`.
    pub path: String,
    pub reason: String,
}

/// The result of a translation.
#[derive(Debug, Clone, Serialize)]
pub struct Translation {
    pub name: String,
    /// The blueprint, as a YAML value.
    pub blueprint: Value,
    /// Keys whose meaning is lost: the user decides whether that matters.
    pub untranslated: Vec<Untranslated>,
    /// Keys that need nothing in drover (compose ignores them too, or
    /// drover does the same by default) and compose's own warnings (unset
    /// variables): listed so that nothing goes unmentioned.
    pub notes: Vec<Untranslated>,
}

impl Translation {
    /// The blueprint as YAML text.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.blueprint).unwrap_or_default()
    }
}

/// What a translation reads besides the compose text.
pub struct Source<'a> {
    /// The application name the user gave (`--name`): it wins over
    /// `COMPOSE_PROJECT_NAME`, the file's `name:` and the directory's name,
    /// in compose's order.
    pub name: Option<&'a str>,
    /// The compose file's directory: the `.env` file, `env_file`s,
    /// relative build contexts and bind mounts resolve against it, and its
    /// name is the default application name (compose's project name).
    pub base_dir: &'a Path,
    /// The process environment; it wins over the `.env` file.
    pub env: Lookup<'a>,
    /// Reads a file (`.env`, `env_file`); `NotFound` is an absent file.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

/// Whether `text` is a compose file: a top-level `services` that is a
/// mapping (a blueprint's `services` is a list).
pub fn is_compose(text: &str) -> bool {
    serde_yaml::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("services").map(Value::is_mapping))
        .unwrap_or(false)
}

/// Turns a compose name into a drover id: lower case, anything but
/// letters and digits to `-`, starting with a letter, at most 40
/// characters.
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
    while id.ends_with('-') && id.len() > 1 {
        id.pop();
    }
    id
}

/// Why a file cannot be translated at all (what cannot be translated of a
/// good file is listed in [`Translation::untranslated`] instead). Each is
/// a reason compose itself refuses the file for.
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
    #[error("{path}: {source}")]
    Interpolate {
        path: String,
        #[source]
        source: InterpolateError,
    },
    #[error("{file}: {source}")]
    Dotenv {
        file: String,
        #[source]
        source: DotenvError,
    },
    #[error(
        "{path}: cannot read env file {file}: {source}; create it, or mark it `required: false`"
    )]
    EnvFile {
        path: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
}

struct Ctx<'a> {
    out: Vec<Untranslated>,
    notes: Vec<Untranslated>,
    src: &'a Source<'a>,
    /// The process environment over the `.env` file.
    vars: &'a dyn Fn(&str) -> Option<String>,
    /// compose service name -> drover id.
    ids: BTreeMap<String, String>,
    /// Every string value of every service, with its path: to tell
    /// whether a `container_name` is referred to.
    values: Vec<(String, String)>,
    /// Named volume (drover name) -> the services that mount it.
    volume_users: BTreeMap<String, Vec<String>>,
}

impl<'a> Ctx<'a> {
    fn new(src: &'a Source<'a>, vars: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            out: Vec::new(),
            notes: Vec::new(),
            src,
            vars,
            ids: BTreeMap::new(),
            values: Vec::new(),
            volume_users: BTreeMap::new(),
        }
    }

    fn skip(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.out.push(Untranslated {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// A whole section dropped: the reason ends with every key (or list
    /// item) under it, so that nothing in it goes unmentioned.
    fn skip_section(&mut self, path: impl Into<String>, reason: impl Into<String>, v: &Value) {
        let mut reason = reason.into();
        let mut keys = Vec::new();
        leaves(v, "", &mut keys);
        if !keys.is_empty() {
            reason.push_str(&format!(" (dropped: {})", keys.join(", ")));
        }
        self.skip(path, reason);
    }

    fn note(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.notes.push(Untranslated {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// A path relative to the compose file's directory made absolute.
    fn resolve(&self, p: &str) -> PathBuf {
        let home = (self.vars)("HOME");
        if let (Some(rest), Some(home)) = (p.strip_prefix("~/"), home.as_deref()) {
            return Path::new(home).join(rest);
        }
        if Path::new(p).is_absolute() {
            return PathBuf::from(p);
        }
        let rel = p.trim_start_matches("./");
        if rel.is_empty() || rel == "." {
            return self.src.base_dir.to_path_buf();
        }
        normalize(&self.src.base_dir.join(rel))
    }
}

/// `a/b/../c` -> `a/c` without touching the file system (the directory
/// may be on another machine's view).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
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

/// drover reads `${entity.sensor}` in `env` and `command`: a literal `${`
/// left after compose's interpolation is written `$${` so it stays
/// literal.
fn literal(v: &str) -> String {
    v.replace("${", "$${")
}

/// The keys under a mapping (`options.max-size`) and the items of a list
/// of scalars (`NET_ADMIN`).
fn leaves(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, item) in m {
                let p = if at.is_empty() {
                    key(k)
                } else {
                    format!("{at}.{}", key(k))
                };
                match item {
                    Value::Mapping(inner) if !inner.is_empty() => leaves(item, &p, out),
                    _ => out.push(p),
                }
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                match scalar(item) {
                    Some(t) if at.is_empty() => out.push(t),
                    Some(t) => out.push(format!("{at}: {t}")),
                    None => leaves(item, &format!("{at}[{i}]"), out),
                }
            }
        }
        _ => {}
    }
}

/// Collects every string value under `v` with its path.
fn strings(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(t) => out.push((at.to_string(), t.clone())),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, &format!("{at}[{i}]"), out);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                strings(item, &format!("{at}.{}", key(k)), out);
            }
        }
        _ => {}
    }
}

/// Translates a compose file.
pub fn translate(text: &str, src: &Source) -> Result<Translation, ComposeError> {
    let mut doc: Value = serde_yaml::from_str(text).map_err(ComposeError::NotYaml)?;
    doc.apply_merge().map_err(ComposeError::BadMerge)?;
    if !doc.is_mapping() {
        return Err(ComposeError::NotMapping);
    }
    // The `.env` beside the file; the process environment wins over it.
    let dotenv_path = src.base_dir.join(".env");
    let dotenv = match (src.read)(&dotenv_path) {
        Ok(t) => dotenv::parse(&t, src.env).map_err(|source| ComposeError::Dotenv {
            file: dotenv_path.display().to_string(),
            source,
        })?,
        Err(_) => Vec::new(),
    };
    let vars = |k: &str| {
        (src.env)(k).or_else(|| {
            dotenv
                .iter()
                .rev()
                .find(|(dk, _)| dk == k)
                .map(|(_, v)| v.clone())
        })
    };
    let mut unset = Vec::new();
    interpolate::interpolate_value(&mut doc, &vars, &mut unset, "")
        .map_err(|(path, source)| ComposeError::Interpolate { path, source })?;
    let Value::Mapping(top) = doc else {
        return Err(ComposeError::NotMapping);
    };
    let Some(Value::Mapping(services)) = top.get("services").cloned() else {
        return Err(ComposeError::NoServices);
    };
    let mut values = Vec::new();
    for (k, v) in &services {
        strings(v, &format!("services.{}", key(k)), &mut values);
    }
    let mut cx = Ctx::new(src, &vars);
    cx.notes = unset
        .into_iter()
        .map(|v| Untranslated {
            path: format!("${{{v}}}"),
            reason: format!(
                "variable {v} is not set: an empty string was substituted, as compose does"
            ),
        })
        .collect();
    cx.ids = services.keys().map(|k| (key(k), to_id(&key(k)))).collect();
    cx.values = values;
    // compose's project name: -p, COMPOSE_PROJECT_NAME, `name:`, the directory.
    let dir_name = src
        .base_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    let app_name = to_id(
        &src.name
            .map(str::to_string)
            .or_else(|| vars("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()))
            .or_else(|| top.get("name").and_then(scalar))
            .unwrap_or(dir_name),
    );
    let active: Vec<String> = vars("COMPOSE_PROFILES")
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let mut networks: Vec<Value> = Vec::new();
    for (k, v) in &top {
        let k = key(k);
        match k.as_str() {
            "services" | "name" => {}
            "version" => cx.note(
                "version",
                "informational only: the Compose specification ignores it too",
            ),
            "networks" => networks = top_networks(&mut cx, v),
            "volumes" => volumes::top_volumes(&mut cx, v),
            "secrets" => volumes::top_secrets(&mut cx, v),
            "configs" => {
                for ck in v.as_mapping().into_iter().flatten().map(|(k, _)| key(k)) {
                    cx.skip(
                        format!("configs.{ck}"),
                        "drover has no configs: mount the file as a secret (`secrets:` in \
                         drover.yaml) or bake it into the image",
                    );
                }
            }
            x if x.starts_with("x-") => cx.note(
                x,
                "extension field: its anchors and merges are applied; compose gives it no other meaning",
            ),
            "include" => cx.skip(
                "include",
                "included compose files are not read: deploy each file as its own application",
            ),
            other => cx.skip_section(other, "not a Compose specification key", v),
        }
    }
    // Services of inactive profiles are left out, as compose does: first,
    // so that a dependency on one is reported rather than translated.
    let inactive = |svc: &Mapping| -> Option<Vec<String>> {
        let profiles: Vec<String> = svc
            .get("profiles")
            .and_then(Value::as_sequence)
            .map(|p| p.iter().filter_map(scalar).collect())
            .unwrap_or_default();
        let on = profiles
            .iter()
            .any(|p| active.contains(p) || active.iter().any(|a| a == "*"));
        (!profiles.is_empty() && !on).then_some(profiles)
    };
    for (k, v) in &services {
        if let Some(profiles) = v.as_mapping().and_then(inactive) {
            let name = key(k);
            cx.ids.remove(&name);
            cx.note(
                format!("services.{name}"),
                format!(
                    "in profile {} which is not active: compose leaves it out too (set \
                     COMPOSE_PROFILES to include it)",
                    profiles.join(", ")
                ),
            );
        }
    }
    let mut out_services: Vec<Value> = Vec::new();
    for (k, v) in &services {
        let name = key(k);
        if !cx.ids.contains_key(&name) {
            continue;
        }
        let Value::Mapping(svc) = v else {
            cx.skip(format!("services.{name}"), "a service must be a mapping");
            continue;
        };
        out_services.extend(service::service(&mut cx, &name, svc)?);
    }
    volumes::shared_volumes(&mut cx);
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
        notes: cx.notes,
    })
}

/// Top-level `networks`: each becomes a declared network.
fn top_networks(cx: &mut Ctx, v: &Value) -> Vec<Value> {
    let mut networks = Vec::new();
    let Value::Mapping(m) = v else {
        return networks;
    };
    for (nk, nv) in m {
        let nk = key(nk);
        let at = format!("networks.{nk}");
        let opts = nv.as_mapping().cloned().unwrap_or_default();
        if opts.get("external").and_then(Value::as_bool) == Some(true)
            || opts.get("external").is_some_and(Value::is_mapping)
        {
            cx.skip(
                format!("{at}.external"),
                "drover creates the application's own networks and joins no network made \
                 outside it; the services that named it join drover's network of that name",
            );
        }
        if nk == "default" {
            cx.note(
                &at,
                "the application network `drover-<app>` takes its place",
            );
        } else {
            let mut n = Mapping::new();
            n.insert(s("name"), s(to_id(&nk)));
            networks.push(Value::Mapping(n));
        }
        for (ok, ov) in &opts {
            let ok = key(ok);
            let oat = format!("{at}.{ok}");
            match ok.as_str() {
                "external" => {}
                "driver" if scalar(ov).as_deref() == Some("bridge") => {
                    cx.note(oat, "drover's networks are bridges")
                }
                "driver" | "driver_opts" | "ipam" | "enable_ipv6" => cx.skip(
                    oat,
                    "drover makes every network a bridge with an IPv4 subnet from its pool",
                ),
                "internal" => cx.skip(
                    oat,
                    "drover's networks reach outside through the host; an internal-only network is not made",
                ),
                "name" => cx.skip(oat, "drover names the network drover-<app>-<network>"),
                "attachable" => cx.note(oat, "a Swarm overlay setting; bridges need nothing"),
                "labels" => cx.skip(oat, "drover labels its networks with io.drover.* itself"),
                _ => cx.skip(oat, "not a Compose network key"),
            }
        }
    }
    networks
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
    // Docker's go-units RAMInBytes: `1.5g`, `512 MiB`, `64mb`, `1024`.
    let t = scalar(v)?.trim().to_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().trim_end_matches('b').trim_end_matches('i');
    let (suffix, shift) = match unit {
        "" => ("", 0),
        "k" => ("Ki", 10),
        "m" => ("Mi", 20),
        "g" => ("Gi", 30),
        "t" => ("", 40),
        _ => return None,
    };
    // drover's sizes stop at `Gi`: terabytes are written in bytes.
    if let (Ok(n), true) = (num.parse::<u64>(), shift < 40) {
        return Some(format!("{n}{suffix}"));
    }
    let f: f64 = num.parse().ok()?;
    (f.is_finite() && f >= 0.0).then(|| format!("{}", (f * (1u64 << shift) as f64) as u64))
}

fn duration(v: &Value) -> Option<String> {
    let t = scalar(v)?;
    humantime::parse_duration(&t).ok()?;
    Some(t)
}

#[cfg(test)]
mod tests;
