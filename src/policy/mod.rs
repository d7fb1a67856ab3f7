//! Policies: actors that watch sensors and call effectors.
//!
//! Each policy kind has a config struct (the user documentation of its
//! tunables), a pure decision function, and a thin actor that moves
//! messages. A blueprint attaches a policy by kind (`type: restarter`) or
//! by preset (`use: resilient`, a file in `policies/`), overriding keys.
//!
//! - [`restarter`]: restart a failed container in place, with backoff.
//! - [`replacer`]: replace a cluster member the restarter gave up on.
//! - [`autoscaler`]: resize a cluster (or a host pool) to keep a metric
//!   between bounds.
//! - [`placement`]: the CPU placement policy, one per location: decides
//!   where containers go and moves them off busy hosts.

pub mod autoscaler;
pub mod build_roots;
pub mod placement;
pub mod presets;
pub mod ranges;
pub mod registry;
pub mod replacer;
pub mod restarter;
/// The one blueprint validation (pure: blueprint + presets), shared by deploy,
/// rebind, `serve`'s start-up check and `drover validate`.
pub mod validate;

use serde::{Deserialize, Serialize};

pub use presets::{Preset, PresetError, Presets};

/// Every policy kind, with its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "kebab-case")]
pub enum PolicyConfig {
    Restarter(restarter::RestarterConfig),
    Replacer(replacer::ReplacerConfig),
    Autoscaler(autoscaler::AutoscalerConfig),
    /// Sets `placement.rebalance` for the containers it is attached to:
    /// the location's placement policy then moves them off busy hosts.
    CpuPlacement(placement::CpuPlacementConfig),
}

impl PolicyConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyConfig::Restarter(_) => "restarter",
            PolicyConfig::Replacer(_) => "replacer",
            PolicyConfig::Autoscaler(_) => "autoscaler",
            PolicyConfig::CpuPlacement(_) => "cpu-placement",
        }
    }

    /// Where a policy of this kind may be attached.
    pub fn allowed_on(&self, service_type: &str) -> bool {
        match self {
            // On a cluster, the restarter watches every member.
            PolicyConfig::Restarter(_) => matches!(service_type, "container" | "cluster"),
            PolicyConfig::Replacer(_) | PolicyConfig::Autoscaler(_) => service_type == "cluster",
            PolicyConfig::CpuPlacement(_) => matches!(service_type, "container" | "cluster"),
        }
    }
}

pub const KINDS: &[&str] = &["restarter", "replacer", "autoscaler", "cpu-placement"];

/// A policy as attached: its name (the preset's, or the kind) and config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedPolicy {
    pub name: String,
    pub preset: Option<String>,
    pub config: PolicyConfig,
}

/// An error in a policy's config, with the path below the policy entry
/// (`backoff_start`, `use`, `type`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfigError {
    pub path: String,
    pub message: String,
}

/// Resolves a blueprint's policy entry against the presets: the preset's
/// config with the entry's keys laid over it, checked as the kind's config.
pub fn resolve(
    spec: &crate::blueprint::PolicySpec,
    presets: &Presets,
) -> Result<ResolvedPolicy, Vec<PolicyConfigError>> {
    let err = |path: &str, message: String| {
        vec![PolicyConfigError {
            path: path.to_string(),
            message,
        }]
    };
    let mut config = serde_yaml::Mapping::new();
    let (kind, name) = match (&spec.preset, &spec.kind) {
        (Some(p), kind) => {
            let Some(preset) = presets.get(p) else {
                return Err(err(
                    "use",
                    format!(
                        "unknown policy preset `{p}`; presets in {}: {}",
                        presets.dir_display(),
                        presets.names().join(", ")
                    ),
                ));
            };
            if let Some(k) = kind {
                if k != &preset.kind {
                    return Err(err(
                        "type",
                        format!("preset `{p}` is a {} policy, not {k}", preset.kind),
                    ));
                }
            }
            config = preset.config.clone();
            (preset.kind.clone(), p.clone())
        }
        (None, Some(k)) => (k.clone(), k.clone()),
        (None, None) => {
            return Err(err(
                "",
                format!(
                    "a policy needs `type` (one of {}) or `use` (a preset name)",
                    KINDS.join(", ")
                ),
            ))
        }
    };
    for (k, v) in &spec.config {
        config.insert(serde_yaml::Value::String(k.clone()), v.clone());
    }
    let config = parse_config(&kind, serde_yaml::Value::Mapping(config))?;
    Ok(ResolvedPolicy {
        name,
        preset: spec.preset.clone(),
        config,
    })
}

/// Checks a config value as the config of `kind`.
pub fn parse_config(
    kind: &str,
    value: serde_yaml::Value,
) -> Result<PolicyConfig, Vec<PolicyConfigError>> {
    fn typed<T: serde::de::DeserializeOwned>(
        v: serde_yaml::Value,
    ) -> Result<T, Vec<PolicyConfigError>> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            vec![PolicyConfigError {
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            }]
        })
    }
    let config = match kind {
        "restarter" => Ok(PolicyConfig::Restarter(typed(value)?)),
        "replacer" => Ok(PolicyConfig::Replacer(typed(value)?)),
        "autoscaler" => {
            let c: autoscaler::AutoscalerConfig = typed(value)?;
            c.check()
                .map_err(|(path, message)| vec![PolicyConfigError { path, message }])?;
            Ok(PolicyConfig::Autoscaler(c))
        }
        "cpu-placement" => {
            let c: placement::CpuPlacementConfig = typed(value)?;
            c.check().map_err(|message| {
                vec![PolicyConfigError {
                    path: "above".into(),
                    message: message.to_string(),
                }]
            })?;
            Ok(PolicyConfig::CpuPlacement(c))
        }
        other => Err(vec![PolicyConfigError {
            path: "type".into(),
            message: format!("unknown policy type `{other}`; known: {}", KINDS.join(", ")),
        }]),
    }?;
    // Every duration, count and ratio in range: blueprints, presets and
    // REST PUTs all come through here.
    ranges::check_ranges(&config)?;
    Ok(config)
}

/// Operations on a running policy (REST `GET`/`PUT` of its config,
/// `start`, `stop`). `policy` names it where one actor answers for several
/// (a cluster for its members' restarters).
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "Result<PolicyStatus, PolicyError>")]
pub struct PolicyControl {
    pub policy: String,
    pub op: PolicyOp,
}

/// Why a running policy refused an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("this policy is a {is}, not a {asked}; send a {is} config")]
    WrongKind {
        is: &'static str,
        asked: &'static str,
    },
    #[error("{key}: {message}")]
    BadConfig { key: String, message: String },
    #[error("{entity} has no policy `{policy}`")]
    NoSuchPolicy { entity: String, policy: String },
}

impl PolicyError {
    fn wrong_kind(is: &'static str, asked: &PolicyConfig) -> PolicyError {
        PolicyError::WrongKind {
            is,
            asked: asked.kind(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum PolicyOp {
    Get,
    Set(PolicyConfig),
    Start,
    Stop,
}

pub use crate::wire::PolicyStatus;

impl PolicyStatus {
    pub fn of(
        name: &str,
        config: &PolicyConfig,
        running: bool,
        state: serde_json::Value,
    ) -> PolicyStatus {
        let full = serde_json::to_value(config).unwrap_or_default();
        PolicyStatus {
            name: name.to_string(),
            kind: config.kind().to_string(),
            running,
            config: full.get("config").cloned().unwrap_or_default(),
            state,
        }
    }
}

/// A policy actor announces itself to the management actor, which routes
/// REST calls and preset reloads to it.
#[derive(Clone, actix::Message)]
#[rtype(result = "()")]
pub struct PolicyRegistered {
    pub app: String,
    pub entity: String,
    pub policy: ResolvedPolicy,
    /// The blueprint's entry (preset name and overrides), to re-resolve on reload.
    pub spec: crate::blueprint::PolicySpec,
    pub control: actix::Recipient<PolicyControl>,
}

/// Saves a policy's memory to the store (fire and forget: the policy acts
/// on its in-memory state; the store follows).
pub(crate) fn save_memory<T: Serialize>(
    store: &Option<actix::Recipient<crate::store::StoreWrite>>,
    on: &crate::protocol::EntityRef,
    policy: &str,
    memory: &T,
) {
    if let Some(s) = store {
        s.do_send(crate::store::StoreWrite::PutPolicy {
            app: on.app.clone(),
            entity: on.entity.clone(),
            policy: policy.to_string(),
            state: serde_json::to_value(memory).unwrap_or_default(),
        });
    }
}

/// A policy's memory from what the store held at start, if it still reads.
pub(crate) fn restore_memory<T: serde::de::DeserializeOwned>(
    saved: Option<serde_json::Value>,
) -> Option<T> {
    saved.and_then(|v| serde_json::from_value(v).ok())
}

/// Humane durations in configs: `100ms`, `5s`, `2m`.
pub(crate) mod dur {
    pub use humantime_serde::{deserialize, serialize};
}
