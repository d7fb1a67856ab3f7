//! Sensor references at run time (Brooklyn's `attributeWhenReady`).
//!
//! A container whose env or command holds `${entity.sensor}` references, or
//! that `depends_on` other services, is given its sources by the
//! application ([`WireReferences`]) before its first `start`. It subscribes
//! to them and keeps their latest values here; `start` creates the container
//! only once every reference resolves and every dependency runs, with the
//! values rendered into env and command. A later change of a value recreates
//! the container (`on_reference_change: restart`, the default: a process
//! reads its environment once).
//!
//! [`Wait`] is the pure part: from what is known of the sources, what is
//! still missing, what the rendered values are, and whether to give up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::prelude::*;

use crate::blueprint::wiring::{self, SensorRef};
use crate::blueprint::{ContainerSpec, OnReferenceChange, ServiceSpec};
use crate::protocol::{Lifecycle, Subscribe};

/// How a dependant waits for and follows its sources.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceOptions {
    pub on_change: OnReferenceChange,
    /// A dependant still waiting after this fails on-fire.
    pub timeout: Duration,
    /// While waiting, a source going on-fire fails the dependant at once
    /// (Brooklyn's `abortIfOnFire`), rather than waiting out the timeout.
    pub abort_if_source_on_fire: bool,
    /// Services that must be `running` first.
    pub depends_on: Vec<String>,
}

impl ReferenceOptions {
    pub fn of(svc: &ServiceSpec) -> Self {
        ReferenceOptions {
            on_change: svc.on_reference_change.unwrap_or_default(),
            timeout: svc
                .reference_timeout
                .unwrap_or_else(crate::blueprint::default_reference_timeout),
            abort_if_source_on_fire: svc.abort_if_source_on_fire.unwrap_or(true),
            depends_on: svc.depends_on.clone(),
        }
    }
}

/// Gives a container (or a cluster, for its members) its sources.
#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct WireReferences {
    /// Service id → where to subscribe to it.
    pub sources: BTreeMap<String, Recipient<Subscribe>>,
    pub options: ReferenceOptions,
}

/// What a dependant knows of its sources (pure).
#[derive(Debug, Clone, Default)]
pub struct Wait {
    /// The references of the spec.
    pub refs: BTreeSet<SensorRef>,
    pub depends_on: Vec<String>,
    values: BTreeMap<SensorRef, String>,
    states: BTreeMap<String, Lifecycle>,
}

/// Why a dependant cannot start yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Sensor(SensorRef),
    NotRunning {
        entity: String,
        state: Option<Lifecycle>,
    },
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Sensor(r) => write!(f, "{r} (not published)"),
            Missing::NotRunning { entity, state } => write!(
                f,
                "`{entity}` to be running (it is {})",
                state.map(|s| s.as_str()).unwrap_or("not started")
            ),
        }
    }
}

impl Wait {
    pub fn new(spec: &ContainerSpec, depends_on: &[String]) -> Self {
        Wait {
            refs: wiring::container_refs(spec),
            depends_on: depends_on.to_vec(),
            ..Default::default()
        }
    }

    /// Whether there is anything to wait for at all.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty() && self.depends_on.is_empty()
    }

    /// Every source entity.
    pub fn sources(&self) -> BTreeSet<String> {
        self.refs
            .iter()
            .map(|r| r.entity.clone())
            .chain(self.depends_on.iter().cloned())
            .collect()
    }

    /// Records a sensor value; `true` if a value this dependant uses changed.
    pub fn on_sensor(&mut self, entity: &str, sensor: &str, value: &serde_json::Value) -> bool {
        let key = SensorRef {
            entity: entity.to_string(),
            sensor: sensor.to_string(),
        };
        if !self.refs.contains(&key) {
            return false;
        }
        match wiring::value_text(value) {
            Some(v) => self.values.insert(key, v.clone()) != Some(v),
            None => self.values.remove(&key).is_some(),
        }
    }

    pub fn on_state(&mut self, entity: &str, state: Lifecycle) {
        self.states.insert(entity.to_string(), state);
    }

    pub fn state_of(&self, entity: &str) -> Option<Lifecycle> {
        self.states.get(entity).copied()
    }

    /// What is still missing, references first.
    pub fn missing(&self) -> Vec<Missing> {
        let mut out: Vec<Missing> = self
            .refs
            .iter()
            .filter(|r| !self.values.contains_key(r))
            .cloned()
            .map(Missing::Sensor)
            .collect();
        for d in &self.depends_on {
            let state = self.states.get(d).copied();
            if state != Some(Lifecycle::Running) {
                out.push(Missing::NotRunning {
                    entity: d.clone(),
                    state,
                });
            }
        }
        out
    }

    /// A source that is on fire, if any.
    pub fn source_on_fire(&self) -> Option<String> {
        self.sources()
            .into_iter()
            .find(|s| self.states.get(s) == Some(&Lifecycle::OnFire))
    }

    /// The spec's env and command with every reference rendered; `None`
    /// while a reference is unresolved.
    pub fn render(&self, spec: &ContainerSpec) -> Option<Rendered> {
        let lookup = |r: &SensorRef| self.values.get(r).cloned();
        let mut env = BTreeMap::new();
        for (k, v) in &spec.env {
            env.insert(k.clone(), wiring::render(v, &lookup).ok()?);
        }
        let command = match &spec.command {
            None => None,
            Some(items) => Some(
                items
                    .iter()
                    .map(|v| wiring::render(v, &lookup))
                    .collect::<Result<Vec<_>, _>>()
                    .ok()?,
            ),
        };
        Some(Rendered { env, command })
    }

    /// The resolved values, `${ref}` → value, for the `references.resolved` sensor.
    pub fn resolved(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.values
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect(),
        )
    }
}

/// Env and command as the container gets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub env: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> ContainerSpec {
        serde_yaml::from_str(
            "image: x\nenv: { DB: '${db.host.address}:${db.host.port.8080}', X: plain }\n\
             command: [run, '--id=${db.container.id}']\n",
        )
        .unwrap()
    }

    #[test]
    fn waits_renders_and_sees_changes() {
        let s = spec();
        let mut w = Wait::new(&s, &["cache".to_string()]);
        assert_eq!(w.sources(), BTreeSet::from(["db".into(), "cache".into()]));
        assert_eq!(w.missing().len(), 4);
        assert!(w.render(&s).is_none());
        assert!(w.on_sensor("db", "host.address", &json!("127.0.0.1")));
        assert!(w.on_sensor("db", "host.port.8080", &json!(32768)));
        assert!(
            !w.on_sensor("db", "host.port.8080", &json!(32768)),
            "same value"
        );
        assert!(
            !w.on_sensor("db", "service.up", &json!(true)),
            "not referenced"
        );
        assert!(w.on_sensor("db", "container.id", &json!("abc")));
        assert_eq!(
            w.missing(),
            [Missing::NotRunning {
                entity: "cache".into(),
                state: None
            }]
        );
        w.on_state("cache", Lifecycle::Running);
        assert!(w.missing().is_empty());
        let r = w.render(&s).unwrap();
        assert_eq!(r.env["DB"], "127.0.0.1:32768");
        assert_eq!(r.env["X"], "plain");
        assert_eq!(r.command.unwrap(), ["run", "--id=abc"]);
        // A source cleared (its container removed) is missing again.
        assert!(w.on_sensor("db", "container.id", &json!(null)));
        assert!(w.render(&s).is_none());
        w.on_state("db", Lifecycle::OnFire);
        assert_eq!(w.source_on_fire().as_deref(), Some("db"));
    }

    #[test]
    fn missing_reads_well() {
        let m = Missing::Sensor(SensorRef {
            entity: "db".into(),
            sensor: "host.port.8080".into(),
        });
        assert_eq!(m.to_string(), "${db.host.port.8080} (not published)");
        let m = Missing::NotRunning {
            entity: "db".into(),
            state: Some(Lifecycle::Starting),
        };
        assert_eq!(m.to_string(), "`db` to be running (it is starting)");
    }
}
