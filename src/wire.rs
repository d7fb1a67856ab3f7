//! The JSON shapes of the REST API: one serde type per answer (and per
//! request body that has structure). The server builds them, and the CLI,
//! `drover chaos` and the tests read them, so the compiler checks both
//! sides of every route.
//!
//! A leaf beside [`crate::protocol`]: it imports only the protocol's and the
//! blueprint's types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::blueprint::{Blueprint, BlueprintError};
use crate::protocol::{EntityKind, Lifecycle, SensorValue};

/// The management actor's view of one entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntityView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub state: Lifecycle,
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub sensors: BTreeMap<String, SensorValue>,
}

/// A summary row of `GET /v1/applications`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSummary {
    pub id: String,
    pub location: String,
    pub state: Lifecycle,
    /// How many entities the application has (its tree is `entities` in
    /// [`AppDetail`]).
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
}

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

/// The JSON body of every error answer. Blueprint errors carry the position
/// of the first error and the full list in `errors`.
#[derive(Debug, Serialize, Deserialize)]
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

