//! The blueprint model: what a user writes in YAML.
//!
//! Every struct denies unknown keys so a typo is an error with its path
//! instead of a silently ignored setting. Defaults are named functions so the
//! README's reference and the code say the same thing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::volumes::VolumeSpec;

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
    /// Extra networks besides the application network, which every
    /// container joins anyway. Containers (or members) list the ones they
    /// join in their own `networks`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkSpec>,
}

/// A network an application declares: a Docker bridge network
/// `drover-<app>-<name>` with its own subnet from the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Same pattern as service ids; `default` is the application network.
    pub name: String,
}

/// Where an image comes from when it is built: a directory with a
/// Dockerfile. Written `build: ./web` or `build: { context: ./web,
/// dockerfile: Dockerfile.prod, target: prod, args: { VERSION: "1.2" } }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
pub struct BuildSpec {
    /// The build context directory. In a file given to `drover deploy`,
    /// relative to the file's directory; the service itself takes absolute
    /// paths only (the CLI resolves them before sending).
    pub context: String,
    /// The Dockerfile's path inside the context. Default `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The stage of a multi-stage Dockerfile to build. Default: the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Build arguments (`ARG`), as a map or compose's `[NAME=value]` list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

impl BuildSpec {
    pub fn dockerfile(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or("Dockerfile")
    }
}

/// A `build:` that is neither a directory nor `{ context, dockerfile }`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildSpecError {
    #[error("`build.{key}` must be a string, got {got}")]
    NotText { key: String, got: String },
    #[error(
        "unknown field `{0}` in `build`, expected `context`, `dockerfile`, `target` or `args`"
    )]
    UnknownField(String),
    #[error(transparent)]
    Args(#[from] super::build_args::BuildArgsError),
    #[error("`build` needs `context`, the directory to build")]
    NoContext,
    #[error(
        "`build` must be a directory (`build: ./web`) or `{{ context, dockerfile }}`, got {0}"
    )]
    Shape(String),
}

impl TryFrom<serde_yaml::Value> for BuildSpec {
    type Error = BuildSpecError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, BuildSpecError> {
        use serde_yaml::Value;
        match v {
            Value::String(context) => Ok(BuildSpec {
                context,
                dockerfile: None,
                target: None,
                args: BTreeMap::new(),
            }),
            Value::Mapping(m) => {
                let mut context = None;
                let mut dockerfile = None;
                let mut target = None;
                let mut args = BTreeMap::new();
                for (k, v) in m {
                    let key = k.as_str().unwrap_or_default().to_string();
                    let text = || {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| BuildSpecError::NotText {
                                key: key.clone(),
                                got: format!("{v:?}"),
                            })
                    };
                    match key.as_str() {
                        "context" => context = Some(text()?),
                        "dockerfile" => dockerfile = Some(text()?),
                        "target" => target = Some(text()?),
                        "args" => args = super::build_args::parse_build_args(&v)?,
                        other => return Err(BuildSpecError::UnknownField(other.to_string())),
                    }
                }
                Ok(BuildSpec {
                    context: context.ok_or(BuildSpecError::NoContext)?,
                    dockerfile,
                    target,
                    args,
                })
            }
            other => Err(BuildSpecError::Shape(format!("{other:?}"))),
        }
    }
}

/// What a dependant does when a sensor it references changes after it
/// started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnReferenceChange {
    /// Recreate the container with the new values (the default: env is
    /// read once, at process start).
    #[default]
    Restart,
    /// Keep running with the old values.
    None,
}

/// How long a dependant waits for the sensors it references. Default 5m.
pub fn default_reference_timeout() -> Duration {
    Duration::from_secs(300)
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
    /// When the image is pulled; see [`ContainerSpec::image_pull`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull: Option<super::image::ImagePull>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<super::ports::PortSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Named volumes, host paths and tmpfs mounts (see [`VolumeSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// Build the image from a Dockerfile instead of naming `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// Declared networks to join besides the application network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Failure detection tunables (Brooklyn's ServiceFailureDetector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detector: Option<FailureDetectorSpec>,
    /// Secrets mounted read-only from files `drover.yaml` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::secrets::SecretRef>,
    /// The signal that stops the container (Docker `StopSignal`). Default:
    /// the image's, else SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// How long a stop waits after the signal before killing. Default 3s.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub stop_grace_period: Option<Duration>,
    /// The container's hostname (Docker `Hostname`). Default: the engine's
    /// (the container id). Other containers reach it by its entity id, not
    /// by this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,

    // -- references (containers and clusters) --
    /// Services that must be `running` before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What to do when a referenced sensor changes. Default `restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reference_change: Option<OnReferenceChange>,
    /// How long to wait for referenced sensors before failing. Default 5m.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub reference_timeout: Option<Duration>,
    /// Fail at once when a source goes on-fire while waiting. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_if_source_on_fire: Option<bool>,

    // -- cluster fields (type: cluster) --
    /// Members started on deploy. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<super::update::UpdateSpec>,
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
    /// Address to listen on. Default `0.0.0.0` (every interface, as
    /// Docker publishes ports); `127.0.0.1` keeps it to this machine.
    /// Also written `address`.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "address")]
    pub bind: Option<String>,
    /// `http` (each request counted, timed and balanced on its own) or
    /// `tcp` (a connection is bound to one member). Default `http` when the
    /// target's members have an `http` health check, else `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<super::lb::LbMode>,
    /// Connection cap, header and idle timeouts, buffered bytes per
    /// connection (see [`super::lb::LbLimits`] for the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<super::lb::LbLimits>,

    /// Enrichers: sensors derived from sensors (see [`EnricherSpec`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrichers: Vec<EnricherSpec>,

    /// Policies attached to this entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicySpec>,

    /// Where the container (or each member of a cluster) may run and which
    /// host it prefers; overrides the location's placement key by key. A
    /// cluster's `member.placement` wins over the cluster's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementSpec>,
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
            image_pull: self.image_pull.unwrap_or_default(),
            command: self.command.clone(),
            env: self.env.clone(),
            ports: self.ports.clone(),
            resources: self.resources.clone().unwrap_or_default(),
            health: self.health.clone(),
            labels: self.labels.clone(),
            volumes: self.volumes.clone(),
            placement: self.placement.clone(),
            build: self.build.clone(),
            networks: self.networks.clone(),
            failure_detector: self.failure_detector,
            secrets: self.secrets.clone(),
            stop_signal: self.stop_signal.clone(),
            stop_grace_period: self.stop_grace_period,
            hostname: self.hostname.clone(),
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
    /// When drover pulls `image` through the host's engine:
    /// `if-not-present` (default: only when the host lacks it), `always`
    /// (the registry is asked at every deploy), `never` (it must be there).
    /// A tag is resolved to a digest once per deploy, and every member runs
    /// that digest (sensor `image.digest`).
    #[serde(default, skip_serializing_if = "super::image::ImagePull::is_default")]
    pub image_pull: super::image::ImagePull,
    /// Overrides the image's command (Docker `Cmd`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Container ports to publish: `8080` on a free host port, `"8000:80"`
    /// or `{ container: 80, host: 8000 }` on a fixed one (single containers
    /// only).
    #[serde(default)]
    pub ports: Vec<super::ports::PortSpec>,
    /// CPU and memory limits.
    #[serde(default)]
    pub resources: Resources,
    /// How `service.up` is decided. Without it, a running container is up.
    #[serde(default)]
    pub health: Option<HealthCheck>,
    /// Extra container labels (drover's own `io.drover.*` labels win).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Named volumes, host paths and tmpfs mounts. A named volume belongs
    /// to the container's identity (a member's survives its restart and
    /// `replace_member`); see [`VolumeSpec`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// Placement rules of this container; see [`PlacementSpec`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementSpec>,
    /// Build the image from a Dockerfile instead of naming `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// Declared networks to join besides the application network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Failure detection tunables (Brooklyn's ServiceFailureDetector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detector: Option<FailureDetectorSpec>,
    /// Secrets mounted read-only from files `drover.yaml` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::secrets::SecretRef>,
    /// The signal that stops the container (Docker `StopSignal`). Default:
    /// the image's, else SIGTERM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// How long a stop waits after the signal before killing. Default 3s.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub stop_grace_period: Option<Duration>,
    /// The container's hostname (Docker `Hostname`). Default: the engine's
    /// (the container id). Other containers reach it by its entity id, not
    /// by this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
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

// The memory size type lives in its own file: `volumes` (a tmpfs
// `size`) uses it too, and the model uses `volumes`.
pub use super::size::{parse_memory, MemoryError, MemorySize};

/// A health check. Exactly one of `tcp` or `http` (probed by drover
/// through the published port), or `exec` or `test` (run inside the
/// container by the engine, as its Docker healthcheck).
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
    /// Consecutive failing checks before a running container is down.
    /// Default 2: one slow answer on a busy machine is not a failure (a
    /// container that dies or is paused is seen from the engine's events
    /// at once, whatever this says).
    /// Also written `retries` (compose's name).
    #[serde(default = "default_unhealthy_threshold", alias = "retries")]
    pub unhealthy_threshold: u32,
    /// A command the engine runs in the container; exit 0 is healthy:
    /// `exec: [pg_isready, -U, app]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// compose's form of `exec`: `[CMD, args...]`, `[CMD-SHELL, "a command"]`
    /// or a plain string (run by the image's `/bin/sh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<super::health_test::HealthTest>,
    /// After each (re)start, failing checks do not count for this long;
    /// once it is over they count even before the first pass. Default:
    /// none (a start waits up to 2 minutes for its first pass).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub start_period: Option<Duration>,
}

pub fn default_unhealthy_threshold() -> u32 {
    2
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

/// Kinds of enricher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnricherKind {
    /// Over a cluster's members: `function` of `sensor`.
    Aggregate,
    /// The mean of `sensor` over the last `window`.
    RollingMean,
    /// Change of `sensor` per second.
    Rate,
}

/// How an aggregate combines the members' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFn {
    Average,
    Sum,
    Min,
    Max,
}

impl AggregateFn {
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateFn::Average => "average",
            AggregateFn::Sum => "sum",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
        }
    }
}

/// An enricher: publishes a new sensor on the entity, derived from sensors.
///
/// ```yaml
/// enrichers:
///   - { type: aggregate, sensor: cpu.usage, function: average }   # publishes cpu.usage.average
///   - { type: rolling-mean, sensor: cpu.usage.average, window: 30s }  # cpu.usage.average.mean
///   - { type: rate, sensor: lb.connections_total, entity: lb }     # lb.connections_total.per_sec
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnricherSpec {
    #[serde(rename = "type")]
    pub kind: EnricherKind,
    /// The input sensor.
    pub sensor: String,
    /// `aggregate` only. Default `average`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<AggregateFn>,
    /// `rolling-mean` only. Default `30s`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub window: Option<Duration>,
    /// Where the input comes from (`rolling-mean`, `rate`): another service
    /// of the application. Default: this entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// The sensor to publish. Default `<sensor>.<function>` (aggregate),
    /// `<sensor>.mean` (rolling-mean), `<sensor>.per_sec` (rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
}

impl EnricherSpec {
    pub fn output(&self) -> String {
        if let Some(p) = &self.publish {
            return p.clone();
        }
        match self.kind {
            EnricherKind::Aggregate => format!(
                "{}.{}",
                self.sensor,
                self.function.unwrap_or(AggregateFn::Average).as_str()
            ),
            EnricherKind::RollingMean => format!("{}.mean", self.sensor),
            EnricherKind::Rate => format!("{}.per_sec", self.sensor),
        }
    }
}

/// Placement rules: which hosts of the location a container may go to, and
/// which of those it prefers. Written under `placement:` on a service, a
/// cluster's `member`, or a location in `drover.yaml`; every key is optional
/// and an entity's keys override its location's, which override the
/// defaults documented here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// How hosts that pass every filter are ranked. Default `breadth-first`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<PlacementStrategy>,
    /// At most this many containers on a host. Default 8 (Clocker's
    /// `maxContainers` default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_containers: Option<u32>,
    /// Skip hosts whose CPU usage (a fraction of all the host's CPUs,
    /// 0 to 1) is above this. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_usage: Option<f64>,
    /// The requested `resources.cpus` and `resources.memory` must fit in
    /// what the host has left unreserved. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_fit: Option<bool>,
    /// Only the host with this name (its name in the pool, or the engine's
    /// hostname).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Only hosts carrying every one of these labels (set per host in
    /// `drover.yaml`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Affinity and anti-affinity rules; a host must satisfy all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<AffinityRule>,
    /// The CPU placement policy: move a container off a host whose CPU
    /// stays above a threshold (stateless members only). Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,
}

/// When to move a container to a cooler host: its host's CPU usage (0 to
/// 1 of its CPUs) above `above` for `for`; the new container starts on a
/// host below `above` first, then the old one is removed; at most one move
/// per cluster at a time, and none for `cooldown` after one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebalanceSpec {
    /// Default 0.8.
    #[serde(default = "default_rebalance_above")]
    pub above: f64,
    /// Default 30s (long enough that a burst is not a trend).
    #[serde(
        rename = "for",
        default = "default_rebalance_for",
        with = "humantime_serde"
    )]
    pub window: Duration,
    /// Default 10m: a moved container's load moves with it; without a
    /// pause it would chase itself from host to host.
    #[serde(default = "default_rebalance_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
}

impl RebalanceSpec {
    /// What serde cannot say (the blueprint's `placement.rebalance` and the
    /// `cpu-placement` policy share it).
    pub fn check(&self) -> Result<(), RebalanceError> {
        if self.above > 0.0 && self.above < 1.0 {
            Ok(())
        } else {
            Err(RebalanceError::AboveNotFraction(self.above))
        }
    }
}

/// A rebalance setting serde accepts but drover cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RebalanceError {
    #[error("`above` is a fraction of the host's CPUs, between 0 and 1, got {0}")]
    AboveNotFraction(f64),
}

pub fn default_rebalance_above() -> f64 {
    0.8
}
pub fn default_rebalance_for() -> Duration {
    Duration::from_secs(30)
}
pub fn default_rebalance_cooldown() -> Duration {
    Duration::from_secs(600)
}

/// How hosts are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlacementStrategy {
    /// Fill the fullest host first, up to its maximum (fewest hosts busy).
    DepthFirst,
    /// Spread: the host with the fewest containers of this cluster (or
    /// entity), then the fewest containers in all.
    BreadthFirst,
    /// The host with the fewest containers in all.
    LeastContainers,
    /// The host with the lowest CPU usage.
    LowestCpuUsage,
}

impl PlacementStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementStrategy::DepthFirst => "depth-first",
            PlacementStrategy::BreadthFirst => "breadth-first",
            PlacementStrategy::LeastContainers => "least-containers",
            PlacementStrategy::LowestCpuUsage => "lowest-cpu-usage",
        }
    }
}

/// One affinity rule: exactly one of `same` or `entity`; `not: true` makes
/// it an anti-affinity rule.
///
/// ```yaml
/// affinity:
///   - { same: entity, not: true }   # members of this cluster on different hosts
///   - { entity: db }                # on a host that runs `db` of this application
///   - { same: application }         # next to the rest of this application
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityRule {
    /// `application`: hosts running a container of this application;
    /// `entity` (or `cluster`): hosts running a container of this entity
    /// (for a cluster member: of its cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same: Option<AffinityScope>,
    /// Hosts running this entity of the same application (a container or
    /// a cluster's members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Negation: hosts that do *not* run it. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityScope {
    Application,
    #[serde(alias = "cluster")]
    Entity,
}

/// Failure detection tunables of a container (Brooklyn's
/// ServiceFailureDetector): how long an entity stays on fire before
/// `entity.failed` is emitted, and how long it runs again before
/// `entity.recovered`. Both default to 0s, as in Brooklyn: every failure is
/// acted on at once.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureDetectorSpec {
    #[serde(default, with = "humantime_serde")]
    pub failed_stabilization: Duration,
    #[serde(default, with = "humantime_serde")]
    pub recovered_stabilization: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("128Mi"), Ok(128 << 20));
        assert_eq!(parse_memory(" 1.5G "), Ok(1_500_000_000));
        assert_eq!(parse_memory("Mi"), Err(MemoryError::NoNumber("Mi".into())));
        assert_eq!(
            parse_memory("3Tb").unwrap_err().to_string(),
            "memory unit `Tb` is unknown; use one of Ki, Mi, Gi, K, M, G"
        );
        let v =
            |t: &str| MemorySize::try_from(serde_yaml::from_str::<serde_yaml::Value>(t).unwrap());
        assert_eq!(v("1024"), Ok(MemorySize(1024)));
        assert_eq!(v("-1"), Err(MemoryError::NotWhole("-1".into())));
        assert!(matches!(v("[1]"), Err(MemoryError::Shape(_))));
    }

    #[test]
    fn build_specs() {
        let b =
            |t: &str| BuildSpec::try_from(serde_yaml::from_str::<serde_yaml::Value>(t).unwrap());
        assert_eq!(b("./web").unwrap().dockerfile(), "Dockerfile");
        assert_eq!(
            b("{context: ., dockerfile: D}").unwrap().dockerfile,
            Some("D".into())
        );
        assert_eq!(b("{dockerfile: D}"), Err(BuildSpecError::NoContext));
        assert_eq!(
            b("{context: ., tagret: x}"),
            Err(BuildSpecError::UnknownField("tagret".into()))
        );
        assert!(matches!(
            b("{context: 7}"),
            Err(BuildSpecError::NotText { key, .. }) if key == "context"
        ));
        assert!(matches!(b("7"), Err(BuildSpecError::Shape(_))));
    }

    #[test]
    fn rebalance_above_is_a_fraction() {
        let r = |above| RebalanceSpec {
            above,
            ..serde_yaml::from_str("{}").unwrap()
        };
        assert_eq!(r(0.5).check(), Ok(()));
        assert_eq!(
            r(1.0).check().unwrap_err().to_string(),
            "`above` is a fraction of the host's CPUs, between 0 and 1, got 1"
        );
    }
}
