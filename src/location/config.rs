//! `drover.yaml`: the locations drover may run applications in.
//!
//! ```yaml
//! locations:
//!   pool:
//!     hosts:                                  # engines that exist already
//!       - { name: a, endpoint: unix:///run/a.sock, labels: { zone: a } }
//!     placement: { strategy: breadth-first, max_containers: 4 }
//!     headroom: { count: 2 }
//!     max_hosts: 4
//!     provisioner: { type: local-dockerd, dir: /tmp/drover-pool }
//! ```
//!
//! The location `local` (this machine's engine, every default) exists
//! without any configuration; a `local` entry in the file replaces it.
//! Every struct denies unknown keys; defaults are named functions so this
//! file is the reference the README copies.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::blueprint::validate::{validate_placement, FieldPath, ValidationError};
use crate::blueprint::PlacementSpec;
use crate::placement::HeadroomSpec;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroverConfig {
    /// Host directories (absolute) under which a blueprint's host-path
    /// volumes (`- { host: /srv/shop, path: /srv }`) may lie. Default:
    /// none, so no blueprint can mount the host's files until the
    /// operator allows it; `/` allows everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_paths: Vec<PathBuf>,
    /// Location name → its pool of hosts. Names as application ids.
    #[serde(default)]
    pub locations: BTreeMap<String, LocationConfig>,
    /// Secret name → the file it is read from, mounted read-only at
    /// `/run/secrets/NAME` in containers that list it. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, super::secrets::SecretSource>,
    /// Registry host (as image references name it: `registry.example.com`,
    /// `localhost:5000`, `docker.io`) → the credentials pulls from it use.
    /// A registry not listed uses the docker `config.json` of the user
    /// drover runs as (`$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`), else none. Default: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, crate::host::credentials::RegistryConfig>,
    /// Directories (absolute) under which a blueprint's build contexts may
    /// lie: drover reads no other path a blueprint names, and a context
    /// outside them is refused (400) before any file is touched. Default:
    /// absent, no rule (every absolute directory on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_roots: Option<Vec<PathBuf>>,
}

/// One location: a pool of Docker hosts with its placement, headroom and
/// provisioning rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationConfig {
    /// Engines that exist already (never decommissioned by drover).
    /// Default: none; with the `static` provisioner at least one is needed.
    #[serde(default)]
    pub hosts: Vec<HostConfig>,
    /// Placement defaults for every container of this location; a
    /// blueprint's `placement:` overrides them key by key.
    #[serde(default)]
    pub placement: PlacementSpec,
    /// Spare container slots to keep (count, or percent of the pool's
    /// possible containers). Default: none.
    #[serde(default)]
    pub headroom: HeadroomSpec,
    /// The pool never shrinks below this many hosts. Default 1.
    #[serde(default = "default_min_hosts")]
    pub min_hosts: u32,
    /// The pool never grows beyond this many hosts; beyond it a container
    /// that fits nowhere fails with "insufficient capacity". Default 8.
    #[serde(default = "default_max_hosts")]
    pub max_hosts: u32,
    /// A host whose engine has not answered for this long is `on-fire`
    /// and its containers are started again on other hosts. Default 5s
    /// (five missed one-second pings: long enough to ride out a busy
    /// engine, short against a Kubernetes node's 40 s grace).
    #[serde(default = "default_on_fire_after", with = "humantime_serde")]
    pub on_fire_after: Duration,
    /// When at least this percent of the pool's hosts (of three or more)
    /// are silent at once, the silent ones take no new containers but
    /// their containers are not moved: so many hosts failing together is
    /// likelier a partition or an overload on drover's side than a fire,
    /// and moving everything would make it worse. Once fewer are silent,
    /// the hosts still silent are on fire as usual. Default 55 (as
    /// Kubernetes' `--unhealthy-zone-threshold` 0.55, under which its node
    /// controller stops evicting); 100 holds only when every host is silent.
    #[serde(default = "default_silent_hold_percent")]
    pub silent_hold_percent: u32,
    /// The pool must stay hot this long before a host is added for
    /// headroom (a container that fits nowhere adds one at once).
    /// Default 5s.
    #[serde(default = "default_hot_window", with = "humantime_serde")]
    pub hot_window: Duration,
    /// A provisioned host must stay empty, and the pool cold, this long
    /// before it is decommissioned. Default 30s (Clocker decommissions
    /// after its cold window too; a longer window avoids flapping).
    #[serde(default = "default_cold_window", with = "humantime_serde")]
    pub cold_window: Duration,
    /// How new hosts are made. Default `static` (no new hosts).
    #[serde(default)]
    pub provisioner: ProvisionerConfig,
    /// How often each container's CPU and memory are sampled (one
    /// one-shot stats call per container, at most 8 at a time per
    /// engine; a slow engine is sampled less often, never piled up).
    /// Default 1s, as often as `docker stats` shows them; longer costs
    /// the engines and drover less with many containers per host.
    #[serde(default = "default_stats_every", with = "humantime_serde")]
    pub stats_every: Duration,
}

pub fn default_min_hosts() -> u32 {
    1
}
pub fn default_max_hosts() -> u32 {
    8
}
pub fn default_on_fire_after() -> Duration {
    Duration::from_secs(5)
}
pub fn default_silent_hold_percent() -> u32 {
    55
}
pub fn default_hot_window() -> Duration {
    Duration::from_secs(5)
}
pub fn default_cold_window() -> Duration {
    Duration::from_secs(30)
}
pub fn default_stats_every() -> Duration {
    crate::host::stats::ROUND_EVERY
}

impl Default for LocationConfig {
    fn default() -> Self {
        LocationConfig {
            hosts: Vec::new(),
            placement: PlacementSpec::default(),
            headroom: HeadroomSpec::default(),
            min_hosts: default_min_hosts(),
            max_hosts: default_max_hosts(),
            on_fire_after: default_on_fire_after(),
            silent_hold_percent: default_silent_hold_percent(),
            hot_window: default_hot_window(),
            cold_window: default_cold_window(),
            provisioner: ProvisionerConfig::default(),
            stats_every: default_stats_every(),
        }
    }
}

/// One engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The host's name in the pool (sensor `host.name`, placement's
    /// `hostname`). Names as application ids.
    pub name: String,
    /// `local` (the default socket), `unix:///path/docker.sock`, or
    /// `tcp://host:port`.
    pub endpoint: String,
    /// Client certificates for `tcp://` with TLS (dockerd's `--tlsverify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Where published ports are reached. Default: the tcp endpoint's
    /// host, else 127.0.0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Labels for placement constraints (`placement.labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl HostConfig {
    pub fn address(&self) -> String {
        if let Some(a) = &self.address {
            return a.clone();
        }
        address_of_endpoint(&self.endpoint)
    }
}

/// TLS client files (PEM), as `docker --tlsverify` uses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Kinds of provisioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisionerKind {
    /// A fixed list of hosts (`hosts`); the pool never grows.
    #[default]
    Static,
    /// Extra dockerd processes on this machine, each with its own data
    /// root, exec root, socket, pidfile and bridge.
    LocalDockerd,
    /// The operator's scripts create and destroy hosts.
    Command,
}

/// How a location gets new hosts. A flat struct (like a blueprint
/// service): the keys of the other kinds are errors with their path.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionerConfig {
    #[serde(rename = "type", default)]
    pub kind: ProvisionerKind,
    /// `local-dockerd`: where each host's data root, exec root, socket and
    /// pidfile go (`DIR/<host>/...`). Default `drover-hosts/` beside the store file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// `local-dockerd`: the bridges' address space; host number `n` gets
    /// `a.b.n.1/24`. Default `10.215.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// `local-dockerd`: the dockerd binary. Default `dockerd` (on PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerd: Option<PathBuf>,
    /// `command`: run with the new host's name as last argument; prints
    /// `{"endpoint": ..., "tls": {ca, cert, key}?, "address"?: ..., "labels"?: {...}}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create: Vec<String>,
    /// `command`: run with the host's name as last argument to destroy it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroy: Vec<String>,
    /// `command`: longest a script may run. Default 5m.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub timeout: Option<Duration>,
}

impl DroverConfig {
    /// The configured locations plus `local` (this engine) unless the file
    /// defines its own.
    pub fn with_local(mut self, local_endpoint: &str) -> Self {
        self.locations
            .entry("local".to_string())
            .or_insert_with(|| LocationConfig {
                hosts: vec![HostConfig {
                    name: "local".into(),
                    endpoint: local_endpoint.to_string(),
                    tls: None,
                    address: None,
                    labels: BTreeMap::new(),
                }],
                // One engine: placement's max-containers must not cap a
                // single-machine user at 8 containers.
                placement: PlacementSpec {
                    max_containers: Some(u32::MAX),
                    ..PlacementSpec::default()
                },
                ..LocationConfig::default()
            });
        self
    }
}

/// Errors of `drover.yaml`, each with the file, and the line and column
/// when the YAML itself is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}:{column}: {path}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        path: String,
        message: String,
    },
    #[error("{}", .errors.iter().map(|e| format!("{file}: {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, errors: Vec<String> },
}

pub fn load(path: &std::path::Path) -> Result<DroverConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    parse(&file, &text)
}

pub fn parse(file: &str, text: &str) -> Result<DroverConfig, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    let cfg: DroverConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let mut message = inner.to_string();
        // serde_yaml appends " at line L column C": the prefix says it.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        // It may also start with its own path (`a.b: `): ours says it.
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.contains(' ') {
                message = rest.to_string();
            }
        }
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            column,
            path: if path == "." { "(top)".into() } else { path },
            message,
        }
    })?;
    let errors = validate(&cfg);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_string(),
            errors,
        });
    }
    Ok(cfg)
}

/// Every problem of a parsed file, each prefixed with its path.
pub fn validate(cfg: &DroverConfig) -> Vec<String> {
    let mut errs: Vec<ValidationError> =
        crate::blueprint::volumes::validate_roots(&cfg.allowed_host_paths);
    for (host, r) in &cfg.registries {
        let path = FieldPath::root().key("registries").key(host.as_str());
        if let Some(problem) = crate::host::credentials::registry_key_problem(host) {
            errs.push(ValidationError::at(path.clone(), problem));
        }
        if r.username.trim().is_empty() {
            errs.push(ValidationError::at(
                path.key("username"),
                "`username` must not be empty",
            ));
        }
    }
    for (name, loc) in &cfg.locations {
        let path = FieldPath::root().key("locations").key(name.as_str());
        if !crate::blueprint::validate::is_valid_id(name) {
            errs.push(ValidationError::at(
                path.clone(),
                format!("location name `{name}` must be lower-case letters, digits and `-`, starting with a letter"),
            ));
        }
        validate_placement(&path.key("placement"), &loc.placement, &mut errs);
        if let Some(p) = loc.headroom.percent {
            if !(0.0..100.0).contains(&p) {
                errs.push(ValidationError::at(
                    path.key("headroom").key("percent"),
                    format!("`percent` must be at least 0 and below 100, got {p}"),
                ));
            }
        }
        if !(1..=100).contains(&loc.silent_hold_percent) {
            errs.push(ValidationError::at(
                path.key("silent_hold_percent"),
                format!(
                    "`silent_hold_percent` must be 1 to 100, got {}",
                    loc.silent_hold_percent
                ),
            ));
        }
        if loc.max_hosts == 0 || loc.min_hosts > loc.max_hosts {
            errs.push(ValidationError::at(
                path.key("max_hosts"),
                format!(
                    "`max_hosts` ({}) must be at least 1 and at least `min_hosts` ({})",
                    loc.max_hosts, loc.min_hosts
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, h) in loc.hosts.iter().enumerate() {
            let hpath = path.key("hosts").index(i);
            if !crate::blueprint::validate::is_valid_id(&h.name) {
                errs.push(ValidationError::at(
                    hpath.key("name"),
                    format!("host name `{}` must be lower-case letters, digits and `-`, starting with a letter", h.name),
                ));
            }
            if !seen.insert(h.name.clone()) {
                errs.push(ValidationError::at(
                    hpath.key("name"),
                    format!("host name `{}` is used twice", h.name),
                ));
            }
            let ep = h.endpoint.as_str();
            if !(ep == "local" || ep.starts_with("unix://") || ep.starts_with("tcp://")) {
                errs.push(ValidationError::at(
                    hpath.key("endpoint"),
                    format!("endpoint `{ep}` must be `local`, `unix:///path` or `tcp://host:port`"),
                ));
            }
            if h.tls.is_some() && !ep.starts_with("tcp://") {
                errs.push(ValidationError::at(
                    hpath.key("tls"),
                    "`tls` needs a `tcp://` endpoint",
                ));
            }
        }
        let p = &loc.provisioner;
        let ppath = path.key("provisioner");
        let misplaced: &[(&str, bool)] = match p.kind {
            ProvisionerKind::Static => &[
                ("dir", p.dir.is_some()),
                ("subnet", p.subnet.is_some()),
                ("dockerd", p.dockerd.is_some()),
                ("create", !p.create.is_empty()),
                ("destroy", !p.destroy.is_empty()),
                ("timeout", p.timeout.is_some()),
            ],
            ProvisionerKind::LocalDockerd => &[
                ("create", !p.create.is_empty()),
                ("destroy", !p.destroy.is_empty()),
                ("timeout", p.timeout.is_some()),
            ],
            ProvisionerKind::Command => &[
                ("dir", p.dir.is_some()),
                ("subnet", p.subnet.is_some()),
                ("dockerd", p.dockerd.is_some()),
            ],
        };
        let kind = serde_yaml::to_string(&p.kind).unwrap_or_default();
        for (field, present) in misplaced {
            if *present {
                errs.push(ValidationError::at(
                    ppath.key(*field),
                    format!(
                        "`{field}` is not a setting of the `{}` provisioner",
                        kind.trim()
                    ),
                ));
            }
        }
        match p.kind {
            ProvisionerKind::Static if loc.hosts.is_empty() => errs.push(ValidationError::at(
                path.key("hosts"),
                "a `static` location needs at least one host",
            )),
            ProvisionerKind::Command if p.create.is_empty() || p.destroy.is_empty() => {
                errs.push(ValidationError::at(
                    ppath.clone(),
                    "a `command` provisioner needs `create` and `destroy` (each a command and its arguments)",
                ))
            }
            _ => {}
        }
        if let Some(s) = &p.subnet {
            if parse_subnet16(s).is_none() {
                errs.push(ValidationError::at(
                    ppath.key("subnet"),
                    format!("`subnet` must be an IPv4 /16 such as 10.213.0.0/16, got `{s}`"),
                ));
            }
        }
    }
    errs.extend(super::secrets::validate_secrets(&cfg.secrets));
    errs.iter().map(ToString::to_string).collect()
}

/// Where published ports of an engine are reached: the host of a `tcp://`
/// endpoint, else this machine.
pub fn address_of_endpoint(endpoint: &str) -> String {
    endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// `10.213.0.0/16` → (10, 213).
pub fn parse_subnet16(s: &str) -> Option<(u8, u8)> {
    let (ip, len) = s.split_once('/')?;
    if len != "16" {
        return None;
    }
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let o = ip.octets();
    (o[2] == 0 && o[3] == 0).then_some((o[0], o[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("drover.example.yaml");
        let cfg = load(&path).unwrap();
        let pool = &cfg.locations["pool"];
        assert_eq!(pool.provisioner.kind, ProvisionerKind::LocalDockerd);
        assert_eq!(pool.placement.max_containers, Some(4));
        // Round trip.
        let text = serde_yaml::to_string(&cfg).unwrap();
        assert_eq!(parse("again.yaml", &text).unwrap(), cfg);
    }

    /// The README's `drover.yaml` and `placement:` snippets parse.
    #[test]
    fn readme_snippets_parse() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        )
        .unwrap();
        let mut blocks = Vec::new();
        let mut cur: Option<String> = None;
        for line in readme.lines() {
            match (&mut cur, line.trim_start()) {
                (None, "```yaml") => cur = Some(String::new()),
                (Some(b), "```") => {
                    blocks.push(std::mem::take(b));
                    cur = None;
                }
                (Some(b), _) => {
                    b.push_str(line);
                    b.push('\n');
                }
                _ => {}
            }
        }
        let configs: Vec<&String> = blocks
            .iter()
            .filter(|b| b.starts_with("locations:"))
            .collect();
        assert!(!configs.is_empty());
        for b in configs {
            parse("README.md", b).unwrap_or_else(|e| panic!("{e}\n{b}"));
        }
        let placements: Vec<&String> = blocks
            .iter()
            .filter(|b| b.starts_with("placement:"))
            .collect();
        assert!(!placements.is_empty());
        for b in placements {
            let v: BTreeMap<String, PlacementSpec> = serde_yaml::from_str(b).unwrap();
            let mut errs = Vec::new();
            validate_placement(&FieldPath::root(), &v["placement"], &mut errs);
            assert!(errs.is_empty(), "{errs:?}");
        }
    }

    #[test]
    fn defaults() {
        let cfg = parse(
            "d.yaml",
            "locations:\n  p:\n    hosts: [{ name: a, endpoint: local }]\n",
        )
        .unwrap();
        let p = &cfg.locations["p"];
        assert_eq!((p.min_hosts, p.max_hosts), (1, 8));
        assert_eq!(p.on_fire_after, Duration::from_secs(5));
        assert_eq!(p.cold_window, Duration::from_secs(30));
        assert_eq!(p.provisioner.kind, ProvisionerKind::Static);
        let cfg = DroverConfig::default().with_local("local");
        assert_eq!(cfg.locations["local"].hosts[0].name, "local");
    }

    #[test]
    fn unknown_keys_have_positions() {
        let e = parse(
            "d.yaml",
            "locations:\n  p:\n    hosts: []\n    provisioner: { type: local-dockerd, dri: /x }\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.yaml:4:41: locations.p.provisioner.dri: unknown field `dri`, expected one of \
             `type`, `dir`, `subnet`, `dockerd`, `create`, `destroy`, `timeout`"
        );
        let e = parse(
            "d.yaml",
            "locations:\n  p:\n    placement: { strategy: random }\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "d.yaml:3:28: locations.p.placement.strategy: unknown variant `random`"
            ),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let e = parse(
            "d.yaml",
            "locations:\n  p:\n    max_hosts: 0\n    headroom: { percent: 100 }\n    \
             placement: { max_containers: 0 }\n    hosts: [{ name: a, endpoint: 'http://x', tls: { ca: a, cert: b, key: c } }, { name: a, endpoint: local }]\n    \
             provisioner: { type: command, dir: /x }\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.yaml: locations.p.placement.max_containers: `max_containers` must be at least 1\n\
             d.yaml: locations.p.headroom.percent: `percent` must be at least 0 and below 100, got 100\n\
             d.yaml: locations.p.max_hosts: `max_hosts` (0) must be at least 1 and at least `min_hosts` (1)\n\
             d.yaml: locations.p.hosts[0].endpoint: endpoint `http://x` must be `local`, `unix:///path` or `tcp://host:port`\n\
             d.yaml: locations.p.hosts[0].tls: `tls` needs a `tcp://` endpoint\n\
             d.yaml: locations.p.hosts[1].name: host name `a` is used twice\n\
             d.yaml: locations.p.provisioner.dir: `dir` is not a setting of the `command` provisioner\n\
             d.yaml: locations.p.provisioner: a `command` provisioner needs `create` and `destroy` (each a command and its arguments)"
        );
    }

    #[test]
    fn registries_name_hosts_users_and_password_files() {
        let cfg = parse(
            "drover.yaml",
            "registries:\n  localhost:5000: { username: ci, password_file: /run/secrets/reg }\n",
        )
        .unwrap();
        let r = &cfg.registries["localhost:5000"];
        assert_eq!(
            (r.username.as_str(), r.password_file.to_str()),
            ("ci", Some("/run/secrets/reg"))
        );
        let e = parse(
            "drover.yaml",
            "registries:\n  https://ghcr.io: { username: '', password_file: /x }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "registries[\"https://ghcr.io\"]: `https://ghcr.io` must be a registry host"
            ),
            "{e}"
        );
        assert!(e.contains("username: `username` must not be empty"), "{e}");
        // A password is never written in the file itself.
        let e = parse(
            "drover.yaml",
            "registries:\n  r.io: { username: u, password: p }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `password`"), "{e}");
    }
}
