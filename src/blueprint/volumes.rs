//! A container's `volumes:`: named volumes, host paths and tmpfs mounts.
//!
//! ```yaml
//! volumes:
//!   - { name: data, path: /var/lib/data }              # a named volume, kept by default
//!   - { name: cache, path: /cache, retain: false }     # removed with its member
//!   - { host: /srv/shop, path: /srv, read_only: true } # a host path (under `allowed_host_paths`)
//!   - { tmpfs: /tmp, size: 64Mi }                      # memory-backed, never persisted
//! ```
//!
//! One enum of three kinds, so a `size` on a named volume or a `retain` on
//! a host path cannot be represented: the text is read key by key (like
//! [`super::BuildSpec`]) and every wrong combination is an error with the
//! volume's position and a message naming the key.
//!
//! A named volume belongs to its container's identity, like a Kubernetes
//! StatefulSet's volume claim: the engine volume is
//! `drover-<app>-<entity>-<name>` ([`engine_volume_name`]), where a cluster
//! member's entity is its member id (`web-2`), so a restarted or replaced
//! `web-2` mounts the same data.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::ids::is_valid_id;
use super::problem::{FieldPath, ValidationError};
use super::size::{parse_memory, MemoryError, MemorySize};

/// One entry of `volumes:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, try_from = "serde_yaml::Value")]
pub enum VolumeSpec {
    /// `{ name, path, read_only?, retain? }`: a Docker volume owned by drover.
    Named(NamedVolume),
    /// `{ host, path, read_only? }`: a directory of the Docker host.
    Host(HostPathVolume),
    /// `{ tmpfs, size? }`: a memory-backed directory, empty at every start.
    Tmpfs(TmpfsVolume),
}

/// A named volume: created on the container's host, labelled like drover's
/// containers, and kept when the container goes (unless `retain: false`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedVolume {
    /// The volume's name in the blueprint: lower-case letters, digits and
    /// `-`, unique in the container. The engine's name adds the
    /// application and entity ([`engine_volume_name`]).
    pub name: String,
    /// Where it is mounted in the container (absolute).
    pub path: String,
    /// Mounted read-only. Default `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Kept when its container is removed for good (a cluster resized
    /// down, `drover destroy` without `--volumes`). Default `true`, as a
    /// StatefulSet keeps its claims: data is never lost by a resize.
    /// `false`: removed with its member (never by a restart or a
    /// `replace_member`, which keep the member's identity).
    #[serde(skip_serializing_if = "is_true")]
    pub retain: bool,
}

/// A directory of the Docker host, bind-mounted. Allowed only under the
/// roots the operator lists in `drover.yaml` (`allowed_host_paths`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPathVolume {
    /// The directory on the host (absolute, without `.` or `..`).
    pub host: String,
    /// Where it is mounted in the container (absolute).
    pub path: String,
    /// Mounted read-only. Default `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A tmpfs mount: memory-backed, empty at every start, never persisted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TmpfsVolume {
    /// Where it is mounted in the container (absolute).
    pub tmpfs: String,
    /// Largest size, with a unit (`64Mi`). Default: the engine's (half
    /// the host's memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<MemorySize>,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl VolumeSpec {
    /// Where it is mounted in the container.
    pub fn container_path(&self) -> &str {
        match self {
            VolumeSpec::Named(v) => &v.path,
            VolumeSpec::Host(v) => &v.path,
            VolumeSpec::Tmpfs(v) => &v.tmpfs,
        }
    }

    /// The key under which the container path is written.
    fn container_path_key(&self) -> &'static str {
        match self {
            VolumeSpec::Tmpfs(_) => "tmpfs",
            _ => "path",
        }
    }
}

/// The named volumes of a container's `volumes:`.
pub fn named(volumes: &[VolumeSpec]) -> impl Iterator<Item = &NamedVolume> {
    volumes.iter().filter_map(|v| match v {
        VolumeSpec::Named(n) => Some(n),
        _ => None,
    })
}

/// The engine's name of a named volume: `drover-<app>-<entity>-<name>`
/// (for a cluster member, `entity` is the member id: `drover-shop-web-2-data`).
pub fn engine_volume_name(app: &str, entity: &str, name: &str) -> String {
    format!("drover-{app}-{entity}-{name}")
}

/// A `volumes:` entry serde accepts as YAML but that is not a volume.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "a volume is a mapping: `{{ name: data, path: /var/lib/data }}` (a named volume), \
         `{{ host: /srv/shop, path: /srv }}` (a host path) or `{{ tmpfs: /tmp, size: 64Mi }}`, got {0}"
    )]
    Shape(String),
    #[error(
        "a volume needs one of `name` (a named volume), `host` (a host path) or `tmpfs` \
         (a memory-backed path), e.g. `{{ name: data, path: /var/lib/data }}`"
    )]
    NoKind,
    #[error("a volume has both `{0}` and `{1}`; keep exactly one of `name` (a named volume), `host` (a host path) or `tmpfs`")]
    TwoKinds(&'static str, &'static str),
    #[error("`{key}` is not a setting of {kind}; it has {allowed}")]
    NotFor {
        key: String,
        kind: &'static str,
        allowed: &'static str,
    },
    #[error("`{key}` must be text, got {got}")]
    NotText { key: String, got: String },
    #[error("`{key}` must be `true` or `false`, got {got}")]
    NotBool { key: String, got: String },
    #[error("{0} needs `path`, where it is mounted in the container, e.g. `path: /var/lib/data`")]
    NoPath(&'static str),
    #[error("`size`: {0}")]
    Size(MemoryError),
    #[error(
        "a tmpfs is empty at every start, so a read-only one is of no use; leave out `read_only`"
    )]
    ReadOnlyTmpfs,
}

const NAMED: &str = "a named volume";
const HOST: &str = "a host-path volume";
const TMPFS: &str = "a tmpfs volume";

impl TryFrom<serde_yaml::Value> for VolumeSpec {
    type Error = VolumeError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, VolumeError> {
        use serde_yaml::Value;
        let m = match v {
            Value::Mapping(m) => m,
            other => return Err(VolumeError::Shape(describe(&other))),
        };
        let key_of = |k: &Value| match k {
            Value::String(s) => s.clone(),
            other => describe(other),
        };
        let kinds: Vec<&'static str> = ["name", "host", "tmpfs"]
            .into_iter()
            .filter(|k| m.contains_key(*k))
            .collect();
        let (kind, allowed) = match kinds.as_slice() {
            [] => return Err(VolumeError::NoKind),
            [a, b, ..] => return Err(VolumeError::TwoKinds(a, b)),
            ["name"] => (NAMED, "`name`, `path`, `read_only` and `retain`"),
            ["host"] => (HOST, "`host`, `path` and `read_only`"),
            _ => (TMPFS, "`tmpfs` and `size`"),
        };
        let mut texts: std::collections::BTreeMap<&'static str, String> = Default::default();
        let mut read_only = false;
        let mut retain = true;
        let mut size = None;
        for (k, v) in &m {
            let key = key_of(k);
            let known: &[&str] = match kind {
                NAMED => &["name", "path", "read_only", "retain"],
                HOST => &["host", "path", "read_only"],
                _ => &["tmpfs", "size", "read_only"],
            };
            let Some(&key_static) = known.iter().find(|x| **x == key) else {
                return Err(VolumeError::NotFor { key, kind, allowed });
            };
            let text = || match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(VolumeError::NotText {
                    key: key.clone(),
                    got: describe(other),
                }),
            };
            let flag = || match v {
                Value::Bool(b) => Ok(*b),
                other => Err(VolumeError::NotBool {
                    key: key.clone(),
                    got: describe(other),
                }),
            };
            match key_static {
                "read_only" if kind == TMPFS => {
                    if flag()? {
                        return Err(VolumeError::ReadOnlyTmpfs);
                    }
                }
                "read_only" => read_only = flag()?,
                "retain" => retain = flag()?,
                "size" => {
                    size = Some(match v {
                        Value::Number(n) => n.as_u64().map(MemorySize).ok_or_else(|| {
                            VolumeError::Size(MemoryError::NotWhole(n.to_string()))
                        })?,
                        Value::String(s) => MemorySize(parse_memory(s).map_err(VolumeError::Size)?),
                        other => {
                            return Err(VolumeError::Size(MemoryError::Shape(describe(other))))
                        }
                    })
                }
                k => {
                    texts.insert(k, text()?);
                }
            }
        }
        let mut take = |k: &str| texts.remove(k);
        Ok(match kind {
            NAMED => VolumeSpec::Named(NamedVolume {
                name: take("name").unwrap_or_default(),
                path: take("path").ok_or(VolumeError::NoPath(NAMED))?,
                read_only,
                retain,
            }),
            HOST => VolumeSpec::Host(HostPathVolume {
                host: take("host").unwrap_or_default(),
                path: take("path").ok_or(VolumeError::NoPath(HOST))?,
                read_only,
            }),
            _ => VolumeSpec::Tmpfs(TmpfsVolume {
                tmpfs: take("tmpfs").unwrap_or_default(),
                size,
            }),
        })
    }
}

fn describe(v: &serde_yaml::Value) -> String {
    use serde_yaml::Value;
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// An absolute path without `.` or `..` components, so that "is it under
/// this root" can be decided on the text.
pub fn is_plain_absolute(p: &str) -> bool {
    let path = Path::new(p);
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        // `Path` drops a `.` in the middle silently: refuse it in the text.
        && !p.split('/').any(|seg| seg == "." || seg == "..")
}

/// Checks a container's `volumes:` (what types cannot say); `path` is the
/// container's (a service, or a cluster's `member`).
pub fn validate_volumes(path: &FieldPath, volumes: &[VolumeSpec], errs: &mut Vec<ValidationError>) {
    let mut paths: std::collections::BTreeMap<String, usize> = Default::default();
    let mut names: std::collections::BTreeMap<&str, usize> = Default::default();
    for (k, v) in volumes.iter().enumerate() {
        let vpath = path.key("volumes").index(k);
        let target = v.container_path();
        let tpath = vpath.key(v.container_path_key());
        if !is_plain_absolute(target) || target == "/" {
            errs.push(ValidationError::at(
                tpath,
                format!(
                    "container path `{target}` must be absolute, not `/`, and without `.` or `..`, \
                     e.g. `/var/lib/data`"
                ),
            ));
        } else {
            let key = target.trim_end_matches('/').to_string();
            match paths.get(&key) {
                Some(j) => errs.push(ValidationError::at(
                    tpath,
                    format!("`{target}` is mounted twice: volumes[{j}] is mounted there too"),
                )),
                None => {
                    paths.insert(key, k);
                }
            }
        }
        match v {
            VolumeSpec::Named(n) => {
                if !is_valid_id(&n.name) {
                    errs.push(ValidationError::at(
                        vpath.key("name"),
                        format!(
                            "volume name `{}` is invalid: 1 to 40 lower-case letters, digits or `-`, \
                             starting with a letter",
                            n.name
                        ),
                    ));
                } else if let Some(j) = names.get(n.name.as_str()) {
                    errs.push(ValidationError::at(
                        vpath.key("name"),
                        format!(
                            "volume `{}` is listed twice: volumes[{j}] has that name",
                            n.name
                        ),
                    ));
                } else {
                    names.insert(&n.name, k);
                }
            }
            VolumeSpec::Host(h) => {
                if !is_plain_absolute(&h.host) {
                    errs.push(ValidationError::at(
                        vpath.key("host"),
                        format!(
                            "host path `{}` must be absolute and without `.` or `..`, e.g. `/srv/shop`",
                            h.host
                        ),
                    ));
                }
            }
            VolumeSpec::Tmpfs(t) => {
                if t.size.is_some_and(|s| s.0 == 0) {
                    errs.push(ValidationError::at(
                        vpath.key("size"),
                        "`size` must be more than 0, e.g. `size: 64Mi`",
                    ));
                }
            }
        }
    }
}

/// Whether `path` lies under one of `roots` (component by component:
/// `/srv/shop2` is not under `/srv/shop`). Lexical: both are plain
/// absolute paths (checked before), and the engine's host is not this
/// machine in general, so nothing is resolved on disk.
pub fn host_path_allowed(path: &str, roots: &[std::path::PathBuf]) -> bool {
    is_plain_absolute(path) && roots.iter().any(|r| Path::new(path).starts_with(r))
}

/// Roots in `drover.yaml` must be plain absolute paths (`/` allows all).
pub fn validate_roots(roots: &[std::path::PathBuf]) -> Vec<ValidationError> {
    roots
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.to_str().is_some_and(is_plain_absolute))
        .map(|(i, r)| {
            ValidationError::at(
                FieldPath::root().key("allowed_host_paths").index(i),
                format!(
                    "`{}` must be an absolute path without `.` or `..`, e.g. `/srv`",
                    r.display()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(t: &str) -> Result<VolumeSpec, VolumeError> {
        VolumeSpec::try_from(serde_yaml::from_str::<serde_yaml::Value>(t).unwrap())
    }

    #[test]
    fn the_three_kinds_parse_and_round_trip() {
        for (text, want) in [
            (
                "{name: data, path: /var/lib/data}",
                VolumeSpec::Named(NamedVolume {
                    name: "data".into(),
                    path: "/var/lib/data".into(),
                    read_only: false,
                    retain: true,
                }),
            ),
            (
                "{name: c, path: /c, read_only: true, retain: false}",
                VolumeSpec::Named(NamedVolume {
                    name: "c".into(),
                    path: "/c".into(),
                    read_only: true,
                    retain: false,
                }),
            ),
            (
                "{host: /srv/shop, path: /srv, read_only: true}",
                VolumeSpec::Host(HostPathVolume {
                    host: "/srv/shop".into(),
                    path: "/srv".into(),
                    read_only: true,
                }),
            ),
            (
                "{tmpfs: /tmp, size: 64Mi}",
                VolumeSpec::Tmpfs(TmpfsVolume {
                    tmpfs: "/tmp".into(),
                    size: Some(MemorySize(64 << 20)),
                }),
            ),
        ] {
            let v = vol(text).unwrap();
            assert_eq!(v, want, "{text}");
            let again: VolumeSpec =
                serde_yaml::from_str(&serde_yaml::to_string(&v).unwrap()).unwrap();
            assert_eq!(again, want, "{text}");
        }
    }

    #[test]
    fn invalid_combinations_are_refused_with_what_to_do() {
        let e = |t: &str| vol(t).unwrap_err().to_string();
        assert_eq!(
            e("{name: d, host: /x, path: /d}"),
            "a volume has both `name` and `host`; keep exactly one of `name` (a named volume), \
             `host` (a host path) or `tmpfs`"
        );
        assert_eq!(
            e("{name: d, path: /d, size: 1Mi}"),
            "`size` is not a setting of a named volume; it has `name`, `path`, `read_only` and `retain`"
        );
        assert_eq!(
            e("{host: /srv, path: /d, retain: false}"),
            "`retain` is not a setting of a host-path volume; it has `host`, `path` and `read_only`"
        );
        assert_eq!(
            e("{name: d}"),
            "a named volume needs `path`, where it is mounted in the container, e.g. `path: /var/lib/data`"
        );
        assert!(e("{path: /d}").starts_with("a volume needs one of `name`"));
        assert!(e("data:/d").starts_with("a volume is a mapping"));
        assert_eq!(
            e("{name: d, path: /d, read_only: yes}"),
            "`read_only` must be `true` or `false`, got `yes`"
        );
        assert_eq!(
            e("{tmpfs: /t, size: 3Tb}"),
            "`size`: memory unit `Tb` is unknown; use one of Ki, Mi, Gi, K, M, G"
        );
        assert_eq!(
            vol("{tmpfs: /t, read_only: true}"),
            Err(VolumeError::ReadOnlyTmpfs)
        );
        assert!(vol("{tmpfs: /t, read_only: false}").is_ok());
    }

    fn problems(t: &str) -> Vec<String> {
        let vols: Vec<VolumeSpec> = serde_yaml::from_str(t).unwrap();
        let mut errs = Vec::new();
        validate_volumes(&FieldPath::root(), &vols, &mut errs);
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn semantic_checks_name_the_offending_entry() {
        assert!(problems("[{name: data, path: /d}, {tmpfs: /tmp}]").is_empty());
        assert_eq!(
            problems("[{name: Data, path: d}, {name: b, path: /x/../y}, {host: srv, path: /}]"),
            vec![
                "volumes[0].path: container path `d` must be absolute, not `/`, and without `.` or `..`, e.g. `/var/lib/data`",
                "volumes[0].name: volume name `Data` is invalid: 1 to 40 lower-case letters, digits or `-`, starting with a letter",
                "volumes[1].path: container path `/x/../y` must be absolute, not `/`, and without `.` or `..`, e.g. `/var/lib/data`",
                "volumes[2].path: container path `/` must be absolute, not `/`, and without `.` or `..`, e.g. `/var/lib/data`",
                "volumes[2].host: host path `srv` must be absolute and without `.` or `..`, e.g. `/srv/shop`",
            ]
        );
        assert_eq!(
            problems("[{name: a, path: /d}, {name: a, path: /d/}, {tmpfs: /t, size: 0}]"),
            vec![
                "volumes[1].path: `/d/` is mounted twice: volumes[0] is mounted there too",
                "volumes[1].name: volume `a` is listed twice: volumes[0] has that name",
                "volumes[2].size: `size` must be more than 0, e.g. `size: 64Mi`",
            ]
        );
    }

    #[test]
    fn host_paths_are_allowed_only_under_a_root() {
        let roots = vec!["/srv".into(), "/data/shop".into()];
        assert!(host_path_allowed("/srv", &roots));
        assert!(host_path_allowed("/srv/shop/x", &roots));
        assert!(host_path_allowed("/data/shop", &roots));
        assert!(!host_path_allowed("/data/shop2", &roots));
        assert!(!host_path_allowed("/etc", &roots));
        assert!(!host_path_allowed("/srv/../etc", &roots));
        assert!(!host_path_allowed("/srv", &[]));
        assert!(host_path_allowed("/anything", &["/".into()]));
        assert_eq!(validate_roots(&["srv".into(), "/ok".into()]).len(), 1);
    }

    #[test]
    fn errors_in_a_blueprint_have_file_line_column_and_path() {
        let text = "name: shop\nservices:\n  - id: web\n    type: cluster\n    member:\n      image: x\n      volumes:\n        - { name: data, path: /d }\n        - { name: d2, host: /srv, path: /e }\n        - { tmpfs: tmp }\n";
        let e = crate::blueprint::parse_blueprint("b.yaml", text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.yaml:9:11: services[0].member.volumes[1]: a volume has both `name` and `host`; \
             keep exactly one of `name` (a named volume), `host` (a host path) or `tmpfs`"
        );
        let text = text
            .replace("d2, host: /srv", "d2")
            .replace("{ tmpfs: tmp }", "{ tmpfs: tmp, size: 1Mi }");
        let e = crate::blueprint::parse_blueprint("b.yaml", &text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.yaml:10:20: services[0].member.volumes[2].tmpfs: container path `tmp` must be absolute, \
             not `/`, and without `.` or `..`, e.g. `/var/lib/data`"
        );
        let text = "name: shop\nservices:\n  - id: web\n    type: cluster\n    volumes: [{ name: d, path: /d }]\n    member: { image: x }\n";
        let e = crate::blueprint::parse_blueprint("b.yaml", text)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.yaml:5:5: services[0].volumes: `volumes` belongs under `member` for a cluster"
        );
    }

    #[test]
    fn engine_names_carry_the_member_identity() {
        assert_eq!(
            engine_volume_name("shop", "web-2", "data"),
            "drover-shop-web-2-data"
        );
    }
}
