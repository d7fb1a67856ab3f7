//! Activities: the record of work done and decisions taken, with reasons.

use actix::Message;
use serde::Serialize;

/// A record of work done: an effector call, a policy decision, an event.
#[derive(Debug, Clone, Serialize)]
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
            time_ms: crate::entity::now_ms(),
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

/// Sent to the management actor to add an activity.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordActivity(pub Activity);
