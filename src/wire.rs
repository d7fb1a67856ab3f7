//! The JSON shapes of the REST API: one serde type per answer (and per
//! request body that has structure). The server builds them, and the CLI,
//! `drover chaos` and the tests read them, so the compiler checks both
//! sides of every route.
//!
//! A leaf beside [`crate::protocol`]: it imports only the protocol's, the
//! blueprint's and the (pure) placement model's types.
//!
//! `serde_json::Value` appears only where a value is dynamic by nature: a
//! sensor's value, effector arguments and results, a policy's config and
//! memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::blueprint::{Blueprint, BlueprintError};
use crate::placement::rebalance::RebalanceMemory;
use crate::placement::Headroom;
use crate::protocol::{EntityKind, Lifecycle, SensorName, SensorValue};

/// The management actor's view of one entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub state: Lifecycle,
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// Keyed by the entity's own (interned) names: a copy per view was an
    /// allocation per sensor per entity.
    pub sensors: BTreeMap<SensorName, SensorValue>,
}

/// A summary row of `GET /v1/applications`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSummary {
    pub id: String,
    pub location: String,
    pub state: Lifecycle,
    /// How many entities the application has (the tree is `entities` in
    /// [`AppDetail`]; one name per meaning, so the flattened detail has
    /// no duplicate key).
    pub entity_count: usize,
    pub created_ms: u64,
}

/// `GET /v1/applications/{app}`: the summary, the tree, the blueprint, and
/// the latest activity of each entity that has one (`drover status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppDetail {
    #[serde(flatten)]
    pub summary: AppSummary,
    pub entities: Vec<EntityView>,
    pub blueprint: Blueprint,
    pub latest_activities: BTreeMap<String, Activity>,
    /// With `?limit=N`: the token of the next page of `entities`
    /// (`?limit=N&continue=TOKEN`), absent on the last page.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

impl EntityView {
    /// A sensor's value, if the entity publishes it.
    pub fn sensor(&self, name: &str) -> Option<&serde_json::Value> {
        self.sensors.get(name).map(|s| &*s.value)
    }

    pub fn sensor_str(&self, name: &str) -> Option<&str> {
        self.sensor(name).and_then(|v| v.as_str())
    }

    pub fn sensor_u64(&self, name: &str) -> Option<u64> {
        self.sensor(name).and_then(|v| v.as_u64())
    }
}

impl AppDetail {
    /// The entity with this id.
    pub fn entity(&self, id: &str) -> Option<&EntityView> {
        self.entities.iter().find(|e| e.id == id)
    }
}

/// A row of `GET /v1/hosts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostView {
    pub name: String,
    pub address: String,
    pub containers: usize,
    /// CPU, memory and load of the engine's machine, when drover runs on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineStats {
    pub cpus: usize,
    /// Busy fraction of all CPUs together (0..1).
    pub cpu_usage: f64,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub load_1m: f64,
    pub load_5m: f64,
    pub load_15m: f64,
}

/// A record of work done: an effector call, a policy decision, an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    /// Assigned by the management actor; increasing.
    pub id: u64,
    pub time_ms: u64,
    pub application: String,
    pub entity: String,
    /// `effector` (a call), `policy` (a policy's decision or action) or
    /// `event` (`entity.failed`, `entity.recovered`, ...).
    pub kind: String,
    /// The effector, the policy's action (`restarter.restart`), or the event.
    pub name: String,
    /// Inputs: effector arguments, or what the policy saw.
    pub args: serde_json::Value,
    /// `ok`, `error`, or a policy's verdict.
    pub outcome: String,
    /// Why, or what went wrong.
    pub message: Option<String>,
    pub duration_seconds: f64,
}

impl Activity {
    /// A policy's record.
    pub fn policy(
        app: &str,
        entity: &str,
        name: &str,
        args: serde_json::Value,
        outcome: &str,
        message: impl Into<String>,
    ) -> Activity {
        Activity {
            id: 0,
            time_ms: crate::protocol::now_ms(),
            application: app.to_string(),
            entity: entity.to_string(),
            kind: "policy".into(),
            name: name.to_string(),
            args,
            outcome: outcome.to_string(),
            message: Some(message.into()),
            duration_seconds: 0.0,
        }
    }
}

/// The kinds of [`Activity`], the values `GET /v1/activities?kind=` takes.
pub const ACTIVITY_KINDS: [&str; 3] = ["effector", "policy", "event"];

/// `GET /v1/build-contexts`: what the service takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildContextLimits {
    /// The largest context (tar bytes) it accepts.
    pub max_bytes: u64,
}

/// `POST /v1/build-contexts` (201) and `GET /v1/build-contexts/{digest}`:
/// an uploaded build context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadedContext {
    /// What a blueprint names it by: `upload:sha256:<hex>`.
    pub reference: String,
    pub bytes: u64,
    /// Entries in the tar (files, directories, links); given by the upload
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<usize>,
}

/// The answer of `POST /v1/applications` (201).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

/// The answer of `POST .../effectors/{effector}`: whatever the effector
/// returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectorResult {
    pub result: serde_json::Value,
}

/// `GET .../entities/{entity}/sensors`.
pub type Sensors = BTreeMap<String, SensorValue>;

/// `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// `leader` or `standby` (a drover on an etcd store; a drover on redb
    /// always leads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The leader's advertised URL, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// A standby's answer to a request only the leader serves (503).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotLeader {
    /// Says so, naming the leader (the CLI prints it).
    pub error: String,
    /// The leader's advertised URL; absent while no drover leads.
    pub leader: Option<String>,
}

/// What `GET .../policies/{policy}` shows (and each row of `GET
/// .../policies`; `PUT`, `start` and `stop` answer it too).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub name: String,
    pub kind: String,
    pub running: bool,
    /// The kind's config keys.
    pub config: serde_json::Value,
    /// What the policy remembers (history, backoff), for operators.
    pub state: serde_json::Value,
}

/// `GET /v1/presets`: the policy presets directory and what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresetList {
    pub dir: String,
    pub presets: Vec<PresetView>,
    /// Preset name → why it did not load.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresetView {
    pub name: String,
    pub kind: Option<String>,
    pub description: Option<String>,
    pub config: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// A row of `GET /v1/locations`: a host pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolView {
    pub location: String,
    pub hosts: Vec<PoolHostView>,
    pub headroom: Headroom,
    pub provisioning: bool,
    pub waiting: usize,
    pub decisions: Vec<String>,
    pub events: Vec<String>,
    /// The CPU placement policy's view (watched containers, moves).
    pub placement: PlacementView,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolHostView {
    pub name: String,
    pub address: String,
    /// `running`, `on-fire`, `decommissioning`, `draining`, `cordoned`.
    pub state: String,
    pub provisioned: bool,
    /// Sensors: `host.cpus`, `host.memory_bytes`, `host.containers`,
    /// `host.reserved.cpus`, `host.reserved.memory_bytes`, `host.cpu.usage`.
    pub sensors: BTreeMap<String, serde_json::Value>,
}

/// The CPU placement policy of a pool, as `GET /v1/locations` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, actix::MessageResponse)]
pub struct PlacementView {
    /// Containers watched for CPU moves, as `app/entity@host`.
    pub watched: Vec<String>,
    pub memory: RebalanceMemory,
    pub recent_moves: Vec<String>,
}

/// The answer of `POST /v1/locations/{location}/hosts/{host}/drain|uncordon`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostOpAnswer {
    pub host: String,
    pub state: String,
    pub containers: usize,
}

/// `POST /v1/chaos/faults`: `drover chaos` reports each fault it injects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosFault {
    pub application: String,
    pub entity: String,
    pub fault: String,
}

/// A fault `drover chaos` (or an operator) injects from outside drover,
/// as a real failure would happen: through the engine or the machine, never
/// through drover's own effectors, so the entity must notice it by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `docker kill`: SIGKILL through the engine.
    Kill,
    /// `docker stop`: SIGTERM, then SIGKILL after the container's stop
    /// timeout, through the engine.
    Stop,
    /// `docker pause`: the container's processes are frozen.
    Pause,
    /// `kill -9` of the container's main process from this machine's OS,
    /// past the engine (only where the engine runs on this machine).
    Sigkill,
    /// The engine of a provisioned pool host stops (through its
    /// provisioner), as a crashed or rebooted machine would.
    EngineStop,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Pause,
        FaultKind::Sigkill,
        FaultKind::EngineStop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
            FaultKind::Sigkill => "sigkill",
            FaultKind::EngineStop => "engine-stop",
        }
    }

    /// Whether the fault strikes one container (else a whole host).
    pub fn is_container_fault(self) -> bool {
        self != FaultKind::EngineStop
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown fault name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault `{0}`: expected one of kill, stop, pause, sigkill, engine-stop")]
pub struct UnknownFault(pub String);

impl std::str::FromStr for FaultKind {
    type Err = UnknownFault;

    /// Case-insensitive: `kill`, `stop`, `pause`, `sigkill`, `engine-stop`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownFault(wanted.to_string()))
    }
}

/// The answer of `POST /v1/applications/{app}/entities/{entity}/faults/{kind}`
/// and `POST /v1/locations/{location}/hosts/{host}/faults/engine-stop`: what
/// was done, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultInjected {
    pub fault: FaultKind,
    /// The engine (host) the fault was injected on.
    pub host: String,
    /// The container, for a container fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The process signalled: the container's main process (`sigkill`) or
    /// the engine's (`engine-stop`), as this machine numbers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How it was injected, for people: `docker stop through engine
    /// local`, `SIGKILL pid 1234 on this machine`.
    pub how: String,
}

/// The JSON body of every error answer. Blueprint errors carry the position
/// of the first error and the full list in `errors`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<BlueprintError>,
}

impl ErrorBody {
    /// An error with a message only.
    pub fn message(error: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            line: None,
            column: None,
            path: None,
            errors: vec![],
        }
    }
}

/// `DELETE /v1/applications/{app}[?volumes=true]` when the application had
/// volumes (without any, the answer is 204 and no body): the engine names
/// of the volumes removed and of those kept. Kept volumes are mounted
/// again by a later deploy of the same name; `?volumes=true` removes them
/// all (also after the application itself is gone).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestroyAnswer {
    pub id: String,
    /// `false`: the application was gone already; only volumes were removed.
    pub destroyed: bool,
    #[serde(default)]
    pub volumes_removed: Vec<String>,
    #[serde(default)]
    pub volumes_kept: Vec<String>,
}

/// What an API token may do. Each role includes the ones below it:
/// `viewer` reads; `operator` also invokes effectors, tunes, starts and
/// stops policies, drains hosts and injects faults; `admin` also deploys,
/// applies, destroys and manages tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`; roles: viewer, operator, admin"
            )),
        }
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub role: Role,
}

/// The answer to `POST /v1/tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// One token of `GET /v1/tokens`: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
    /// When it last authenticated a request (to the minute), if ever.
    pub last_used_ms: Option<u64>,
}

/// What an apply does (or would do: `drover diff`, `apply --dry-run`):
/// the answer of `PUT /v1/applications/{app}` and `?dry_run=true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub app: String,
    /// The application did not exist: the apply deploys it.
    pub create: bool,
    /// One entry per service of the old and the new blueprint, by id.
    pub services: Vec<ServicePlan>,
    /// Policy changes made with `drover policy set|start|stop` (or REST)
    /// since the last apply; the apply puts the blueprint's config back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides_reset: Vec<PolicyOverrideRef>,
    /// Nothing to do: every service kept and no override in force.
    pub noop: bool,
}

/// What happens to one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub id: String,
    pub action: PlanAction,
    /// What differs, one entry per changed key (`initial_size`,
    /// `policies.autoscaler`, `member.env`, ...); empty for kept, added and
    /// removed services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PlanChange>,
    /// Why a service is replaced rather than changed in place or rolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    /// New: deployed.
    Added,
    /// Gone from the blueprint: destroyed.
    Removed,
    /// Unchanged: not touched.
    Kept,
    /// Changed without touching a container: policies, cluster size, the
    /// `update:` block, start-up ordering.
    InPlace,
    /// A cluster whose member spec changed: rolled by its `rollout`
    /// effector, member by member.
    Rolled,
    /// Stopped and made again: a single container whose spec changed, a
    /// load balancer whose settings changed, a service whose type changed.
    Replaced,
}

impl PlanAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Added => "added",
            PlanAction::Removed => "removed",
            PlanAction::Kept => "kept",
            PlanAction::InPlace => "in-place",
            PlanAction::Rolled => "rolled",
            PlanAction::Replaced => "replaced",
        }
    }
}

/// One changed key of a service: its path and both values (`null`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChange {
    pub path: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// A policy whose config or running state an operator changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyOverrideRef {
    pub entity: String,
    pub policy: String,
}

/// `GET /v1/applications/{app}/entities/{cluster}/rollout` (and the answer
/// of `POST .../rollout/pause|resume|undo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// complete, rolling, paused, rolled-back or failed.
    pub state: String,
    /// The revision new members get (the rollout's target).
    pub revision: u64,
    /// The revision a rollback returns to.
    #[serde(default)]
    pub previous: Option<u64>,
    #[serde(default)]
    pub rolling_back: bool,
    /// Why it paused, rolled back or failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// The cluster's size.
    pub size: u32,
    /// Members running `revision`, not draining.
    pub updated: u32,
    /// Members out of the load balancer, finishing their connections.
    pub draining: u32,
    /// Serving members per revision.
    pub members_by_revision: BTreeMap<u64, u32>,
    /// The kept revisions, newest first.
    pub history: Vec<RevisionInfo>,
}

/// One revision of a cluster's member spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub revision: u64,
    pub image: Option<String>,
    /// The revision the cluster settled on.
    pub current: bool,
}
