//! The blueprint model: what a user writes in YAML.
//!
//! Every struct denies unknown keys so a typo is an error with its path
//! instead of a silently ignored setting. Defaults are named functions so the
//! README's reference and the code say the same thing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A whole application: the top level of a blueprint file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    /// Application name; also its id. Lower-case letters, digits and `-`,
    /// at most 40 characters, starting with a letter.
    pub name: String,
    /// Where the application runs. Default `local`: this machine's engine.
    #[serde(default = "default_location")]
    pub location: String,
    /// The services (top-level entities) of the application.
    pub services: Vec<ServiceSpec>,
}

pub fn default_location() -> String {
    "local".to_string()
}

/// Kinds of top-level entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceType {
    /// A single container.
    Container,
    /// A group of identical containers that can be resized.
    Cluster,
    /// drover's built-in TCP load balancer in front of a cluster.
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Container => "container",
            ServiceType::Cluster => "cluster",
            ServiceType::LoadBalancer => "load-balancer",
        }
    }
}

/// One top-level entity of an application.
///
/// A flat struct rather than a tagged enum: serde's `flatten` and internal
/// tags both defeat `deny_unknown_fields` and lose error positions, and a
/// flat struct lets validation say "`initial_size` is only for clusters"
/// instead of a generic "unknown field".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Entity id, unique in the application: lower-case letters, digits, `-`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: ServiceType,

    // -- container fields (type: container) --
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,

    // -- cluster fields (type: cluster) --
    /// Members started on deploy. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_size: Option<u32>,
    /// The spec every member is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<ContainerSpec>,

    // -- load balancer fields (type: load-balancer) --
    /// The cluster whose running members receive the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Port the load balancer listens on; `0` picks a free one (published
    /// as the `lb.port` sensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The members' container port to send to. Default: the member's first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// Address to listen on. Default `0.0.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,

    /// Policies attached to this entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicySpec>,
}

pub fn default_initial_size() -> u32 {
    1
}

impl ServiceSpec {
    /// The container spec of a `type: container` service (its own fields).
    pub fn own_container(&self) -> ContainerSpec {
        ContainerSpec {
            kind: default_member_type(),
            image: self.image.clone(),
            command: self.command.clone(),
            env: self.env.clone(),
            ports: self.ports.clone(),
            resources: self.resources.clone().unwrap_or_default(),
            health: self.health.clone(),
            labels: self.labels.clone(),
        }
    }
}

pub fn default_member_type() -> String {
    "container".to_string()
}

/// What a container runs and how it is checked: a cluster's `member`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    /// Must be `container`. Default `container`.
    #[serde(default = "default_member_type", rename = "type")]
    pub kind: String,
    /// Image reference. Required. `drover/workload:latest` is built locally
    /// on demand.
    #[serde(default)]
    pub image: Option<String>,
    /// Overrides the image's command (Docker `Cmd`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Container ports to publish on a free host port.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// CPU and memory limits.
    #[serde(default)]
    pub resources: Resources,
    /// How `service.up` is decided. Without it, a running container is up.
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Extra container labels (drover's own `io.drover.*` labels win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Resource limits of a container.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs, fractional (`0.5`). Default: no limit.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory, with a unit: `128Mi`, `1Gi`, `512M`, or bytes. Default: no limit.
    #[serde(default)]
    pub memory: Option<MemorySize>,
}

/// A memory size in bytes, written with a unit in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "String")]
pub struct MemorySize(pub u64);

impl From<MemorySize> for String {
    fn from(m: MemorySize) -> String {
        m.0.to_string()
    }
}

impl TryFrom<serde_yaml::Value> for MemorySize {
    type Error = String;
    fn try_from(v: serde_yaml::Value) -> Result<Self, String> {
        match v {
            serde_yaml::Value::Number(n) => n
                .as_u64()
                .map(MemorySize)
                .ok_or_else(|| format!("memory must be a positive whole number of bytes, got {n}")),
            serde_yaml::Value::String(s) => parse_memory(&s).map(MemorySize),
            other => Err(format!(
                "memory must be a size such as `128Mi`, got {other:?}"
            )),
        }
    }
}

/// Parses `128Mi`, `1Gi`, `512M`, `64k`, `1000`.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("memory `{s}` must start with a number, such as `128Mi`"))?;
    let mult: u64 = match unit {
        "" | "b" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1000,
        "Ki" | "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "Mi" | "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "Gi" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "memory unit `{other}` is unknown; use one of Ki, Mi, Gi, K, M, G"
            ))
        }
    };
    Ok((num * mult as f64).round() as u64)
}

/// A health check. Exactly one of `tcp` or `http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Connect to this container port (through its published host port).
    #[serde(default)]
    pub tcp: Option<TcpCheck>,
    /// GET this path on this container port; any 2xx/3xx is healthy.
    #[serde(default)]
    pub http: Option<HttpCheck>,
    /// Time between checks. Default 1s.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A check slower than this fails. Default 1s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

pub fn default_interval() -> Duration {
    Duration::from_secs(1)
}

pub fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub port: u16,
    /// Default `/`.
    #[serde(default = "default_http_path")]
    pub path: String,
}

pub fn default_http_path() -> String {
    "/".to_string()
}

/// A policy attached to an entity: a preset by name (`use`) or a kind
/// (`type`), plus config keys that override the preset's. The policies
/// themselves are interpreted by the `policy` module; the blueprint keeps
/// their config as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// Name of a preset in `policies/`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Policy kind, such as `autoscaler`, `restarter`, `replacer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Every other key: the policy's config.
    #[serde(flatten)]
    pub config: BTreeMap<String, serde_yaml::Value>,
}
