//! compose `volumes`, `tmpfs` and `secrets` (service and top level) →
//! drover's container `volumes` and `secrets` (pure).
//!
//! | compose | drover |
//! | --- | --- |
//! | `data:/var/lib/data[:ro]`, `{type: volume, source: data, ...}` | `{name: data, path: /var/lib/data, read_only}` |
//! | `./site:/srv:ro`, `/srv/x:/x`, `{type: bind, ...}` | `{host: <absolute>, path, read_only}` |
//! | `/var/lib/x` (anonymous) | `{name: var-lib-x, path: /var/lib/x}` |
//! | `tmpfs: /run`, `{type: tmpfs, target, tmpfs: {size}}` | `{tmpfs: /run, size}` |
//! | `secrets: [db_password]`, `{source, target}` | `secrets: [db_password]`, `{name, target}` |
//!
//! drover's named volumes belong to one container (a member's identity);
//! a compose volume shared by several services is listed as untranslated.

use serde_yaml::{Mapping, Value};

use super::{key, memory, s, scalar, to_id, Ctx};

/// Whether a short-syntax source is a host path rather than a volume name.
fn is_path(src: &str) -> bool {
    src.starts_with('/') || src.starts_with('.') || src.starts_with('~')
}

/// The drover name of an anonymous volume mounted at `path`.
fn anonymous_name(path: &str) -> String {
    to_id(path.trim_matches('/'))
}

fn named(cx: &mut Ctx, service: &str, name: &str, path: &str, read_only: bool) -> Value {
    let id = to_id(name);
    let users = cx.volume_users.entry(id.clone()).or_default();
    if !users.iter().any(|u| u == service) {
        users.push(service.to_string());
    }
    let mut m = Mapping::new();
    m.insert(s("name"), s(id));
    m.insert(s("path"), s(path));
    if read_only {
        m.insert(s("read_only"), Value::Bool(true));
    }
    Value::Mapping(m)
}

fn host(cx: &Ctx, src: &str, path: &str, read_only: bool) -> Value {
    let mut m = Mapping::new();
    m.insert(s("host"), s(cx.resolve(src).display().to_string()));
    m.insert(s("path"), s(path));
    if read_only {
        m.insert(s("read_only"), Value::Bool(true));
    }
    Value::Mapping(m)
}

fn tmpfs(path: &str, size: Option<String>) -> Value {
    let mut m = Mapping::new();
    m.insert(s("tmpfs"), s(path));
    if let Some(size) = size {
        m.insert(s("size"), s(size));
    }
    Value::Mapping(m)
}

/// A service's `volumes` entry → a drover volume, listing what is lost.
pub(super) fn volume(cx: &mut Ctx, service: &str, at: &str, v: &Value) -> Option<Value> {
    if let Value::Mapping(m) = v {
        return long_volume(cx, service, at, m);
    }
    let Some(text) = scalar(v) else {
        cx.skip(at, "a volume is a string or a mapping");
        return None;
    };
    let parts: Vec<&str> = text.split(':').collect();
    let (src, path, mode) = match parts.as_slice() {
        [p] => (None, *p, ""),
        [src, p] => (Some(*src), *p, ""),
        [src, p, mode] => (Some(*src), *p, *mode),
        _ => {
            cx.skip(at, format!("`{text}` is not SOURCE:TARGET[:MODE]"));
            return None;
        }
    };
    let mut read_only = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => read_only = true,
            // Docker Desktop's file-sharing hints: no effect on Linux.
            "rw" | "cached" | "delegated" | "consistent" => {}
            "z" | "Z" => cx.skip(
                format!("{at}:{m}"),
                "drover does not relabel host paths for SELinux: label the directory on the host",
            ),
            "nocopy" => cx.skip(
                format!("{at}:{m}"),
                "drover's new volumes start with the image's files at that path, as Docker's do",
            ),
            other => cx.skip(format!("{at}:{other}"), "unknown volume mode"),
        }
    }
    Some(match src {
        None => {
            cx.note(
                at,
                format!(
                    "an anonymous volume: drover names it `{}` and keeps it with the container \
                     (compose makes a new one when the container is recreated)",
                    anonymous_name(path)
                ),
            );
            named(cx, service, &anonymous_name(path), path, read_only)
        }
        Some(src) if is_path(src) => host(cx, src, path, read_only),
        Some(src) => named(cx, service, src, path, read_only),
    })
}

fn long_volume(cx: &mut Ctx, service: &str, at: &str, m: &Mapping) -> Option<Value> {
    let kind = m
        .get("type")
        .and_then(scalar)
        .unwrap_or_else(|| "volume".into());
    let Some(target) = m.get("target").and_then(scalar) else {
        cx.skip(at, "a volume needs a `target`");
        return None;
    };
    let source = m.get("source").and_then(scalar);
    let read_only = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
    let mut size = None;
    for (k, v) in m {
        let k = key(k);
        let kat = format!("{at}.{k}");
        match k.as_str() {
            "type" | "source" | "target" | "read_only" | "consistency" => {}
            "bind" | "volume" | "tmpfs" => {
                for (ok, ov) in v.as_mapping().into_iter().flatten() {
                    let ok = key(ok);
                    let oat = format!("{kat}.{ok}");
                    match (k.as_str(), ok.as_str()) {
                        ("tmpfs", "size") => size = memory(ov),
                        ("bind", "create_host_path") => cx.note(
                            oat,
                            "the engine creates a missing host directory, as compose's default does",
                        ),
                        ("bind", "propagation") => {
                            cx.skip(oat, "drover mounts host paths with the engine's default propagation")
                        }
                        ("bind", "selinux") => cx.skip(
                            oat,
                            "drover does not relabel host paths for SELinux: label the directory on the host",
                        ),
                        ("volume", "nocopy") => cx.skip(
                            oat,
                            "drover's new volumes start with the image's files at that path, as Docker's do",
                        ),
                        ("volume", "subpath") => {
                            cx.skip(oat, "drover mounts the whole volume: mount it and use the subdirectory")
                        }
                        ("tmpfs", "mode") => cx.skip(oat, "drover's tmpfs mounts keep the engine's mode (1777)"),
                        _ => cx.skip(oat, "not a Compose volume option"),
                    }
                }
            }
            _ => cx.skip(kat, "not a Compose volume key"),
        }
    }
    match (kind.as_str(), source) {
        ("volume", None) => {
            cx.note(
                at,
                format!(
                    "an anonymous volume: drover names it `{}` and keeps it with the container",
                    anonymous_name(&target)
                ),
            );
            Some(named(
                cx,
                service,
                &anonymous_name(&target),
                &target,
                read_only,
            ))
        }
        ("volume", Some(src)) => Some(named(cx, service, &src, &target, read_only)),
        ("bind", Some(src)) => Some(host(cx, &src, &target, read_only)),
        ("tmpfs", _) => Some(tmpfs(&target, size)),
        (other, _) => {
            cx.skip(
                at,
                format!("a `{other}` mount: drover mounts named volumes, host paths and tmpfs"),
            );
            None
        }
    }
}

/// A service's `tmpfs` (a path or a list; `/run:size=64m,mode=1777`).
pub(super) fn service_tmpfs(cx: &mut Ctx, at: &str, v: &Value) -> Vec<Value> {
    let items: Vec<String> = match v {
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (path, opts) = item.split_once(':').unwrap_or((item.as_str(), ""));
        let mut size = None;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.split_once('=') {
                Some(("size", v)) => size = memory(&Value::from(v)),
                _ if matches!(o, "rw" | "noexec" | "nosuid" | "nodev" | "exec") => {}
                _ => cx.skip(
                    format!("{at}[{i}]:{o}"),
                    "drover's tmpfs mounts take a size only",
                ),
            }
        }
        out.push(tmpfs(path, size));
    }
    out
}

/// A service's `secrets` → drover's `secrets` (names; the files are
/// named in drover.yaml).
pub(super) fn service_secrets(cx: &mut Ctx, at: &str, v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, item) in v.as_sequence().into_iter().flatten().enumerate() {
        let iat = format!("{at}[{i}]");
        match item {
            Value::Mapping(m) => {
                let Some(source) = m.get("source").and_then(scalar) else {
                    cx.skip(iat, "a secret needs a `source`");
                    continue;
                };
                let mut r = Mapping::new();
                r.insert(s("name"), s(source));
                if let Some(t) = m.get("target").and_then(scalar) {
                    r.insert(s("target"), s(t));
                }
                for k in m.keys().map(key) {
                    match k.as_str() {
                        "source" | "target" => {}
                        "uid" | "gid" | "mode" => cx.skip(
                            format!("{iat}.{k}"),
                            "drover mounts the secret file read-only with the host file's owner and mode",
                        ),
                        _ => cx.skip(format!("{iat}.{k}"), "not a Compose secret key"),
                    }
                }
                out.push(Value::Mapping(r));
            }
            other => match scalar(other) {
                Some(name) => out.push(s(name)),
                None => cx.skip(iat, "a secret is a name or a mapping"),
            },
        }
    }
    out
}

/// Top-level `volumes`: the declarations. A plain declaration needs
/// nothing (drover makes the volume when a container mounts it).
pub(super) fn top_volumes(cx: &mut Ctx, v: &Value) {
    for (name, decl) in v.as_mapping().into_iter().flatten() {
        let at = format!("volumes.{}", key(name));
        for (k, ov) in decl.as_mapping().into_iter().flatten() {
            let k = key(k);
            let kat = format!("{at}.{k}");
            match k.as_str() {
                "driver" if scalar(ov).as_deref() == Some("local") => {
                    cx.note(kat, "drover's volumes use the local driver")
                }
                "driver" => cx.skip(kat, "drover makes volumes with the engine's local driver"),
                "driver_opts" => {
                    for ok in ov.as_mapping().into_iter().flatten().map(|(k, _)| key(k)) {
                        cx.skip(
                            format!("{kat}.{ok}"),
                            "drover makes plain local volumes; for a bind of a host directory mount \
                             it as a host path (`{host: /dir, path: ...}`)",
                        );
                    }
                }
                "external" => cx.skip(
                    kat,
                    "drover makes and labels its own volumes, one per container; a volume made \
                     outside drover is not mounted",
                ),
                "name" => cx.skip(kat, "drover names volumes drover-<app>-<entity>-<volume>"),
                "labels" => cx.skip(kat, "drover labels its volumes with io.drover.* itself"),
                _ => cx.skip(kat, "not a Compose volume key"),
            }
        }
    }
}

/// Top-level `secrets`: where each file is. drover never reads secret
/// files from a blueprint: the operator names them in drover.yaml.
pub(super) fn top_secrets(cx: &mut Ctx, v: &Value) {
    for (name, decl) in v.as_mapping().into_iter().flatten() {
        let name = key(name);
        let at = format!("secrets.{name}");
        for (k, ov) in decl.as_mapping().into_iter().flatten() {
            let k = key(k);
            let kat = format!("{at}.{k}");
            match k.as_str() {
                "file" => {
                    let file = cx.resolve(&scalar(ov).unwrap_or_default());
                    cx.skip(
                        kat,
                        format!(
                            "drover takes secret files from drover.yaml only, so they never enter \
                             its store: add `secrets: {{{name}: {{file: {}}}}}` there",
                            file.display()
                        ),
                    );
                }
                "environment" => cx.skip(
                    kat,
                    "drover mounts secrets from files named in drover.yaml: write the value to a file",
                ),
                "external" | "name" => cx.skip(
                    kat,
                    "drover mounts secrets from files named in drover.yaml, not from the engine",
                ),
                _ => cx.skip(kat, "not a Compose secret key"),
            }
        }
    }
}

/// Named volumes mounted by more than one service: compose shares one
/// volume, drover gives each container its own.
pub(super) fn shared_volumes(cx: &mut Ctx) {
    let shared: Vec<(String, Vec<String>)> = cx
        .volume_users
        .iter()
        .filter(|(_, users)| users.len() > 1)
        .map(|(n, u)| (n.clone(), u.clone()))
        .collect();
    for (name, users) in shared {
        cx.skip(
            format!("volumes.{name}"),
            format!(
                "shared by {}: drover's named volumes belong to one container, so each gets \
                 its own `{name}`; share data through a host path instead",
                users.join(", ")
            ),
        );
    }
}
