//! How a cluster rolls to a new member spec: the `update:` block of a
//! cluster service.
//!
//! ```yaml
//! update:
//!   max_surge: 1          # new members started above the size at once
//!   max_unavailable: 0    # members below the size allowed while rolling
//!   min_ready: 2s         # a new member stays healthy this long before an old one goes
//!   deadline: 5m          # the whole rollout; past it, the rollout has failed
//!   failure_action: rollback   # or `pause`
//!   canary: 0             # roll this many members, then pause for `drover rollout resume`
//!   drain_timeout: 10s    # an old member gets this long to finish open connections
//! ```
//!
//! The defaults give zero downtime: one extra member at a time, none missing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::problem::{FieldPath, ValidationError};

/// What a failed rollout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureAction {
    /// Roll back to the previous spec by the same rolling procedure.
    #[default]
    Rollback,
    /// Stay where it is until `drover rollout resume` or `undo`.
    Pause,
}

/// A cluster's rolling update settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// New members started beyond the cluster's size at a time. Default 1.
    #[serde(default = "default_max_surge")]
    pub max_surge: u32,
    /// Members the cluster may be short of its size while rolling. Default 0.
    #[serde(default)]
    pub max_unavailable: u32,
    /// How long a new member must stay healthy before it counts. Default 2s.
    #[serde(default = "default_min_ready", with = "humantime_serde")]
    pub min_ready: Duration,
    /// The longest a rollout may take before it has failed. Default 5m.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// What a failed rollout does. Default `rollback`.
    #[serde(default)]
    pub failure_action: FailureAction,
    /// Members rolled before the rollout pauses for a `resume`. Default 0 (no pause).
    #[serde(default)]
    pub canary: u32,
    /// How long a removed member keeps its open connections before it is
    /// stopped; it gets no new ones. Default 10s.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
}

fn default_max_surge() -> u32 {
    1
}
fn default_min_ready() -> Duration {
    Duration::from_secs(2)
}
fn default_deadline() -> Duration {
    Duration::from_secs(300)
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for UpdateSpec {
    fn default() -> Self {
        UpdateSpec {
            max_surge: default_max_surge(),
            max_unavailable: 0,
            min_ready: default_min_ready(),
            deadline: default_deadline(),
            failure_action: FailureAction::Rollback,
            canary: 0,
            drain_timeout: default_drain_timeout(),
        }
    }
}

/// Largest `max_surge`, `max_unavailable` and `canary` (the cluster size limit).
const MAX_COUNT: u32 = 1000;

/// The rules of an `update:` block at `path`.
pub fn validate_update(path: &FieldPath, u: &UpdateSpec, errs: &mut Vec<ValidationError>) {
    if u.max_surge == 0 && u.max_unavailable == 0 {
        errs.push(ValidationError::at(
            path.key("max_surge"),
            "`max_surge` and `max_unavailable` are both 0: a rollout could never replace a \
             member; allow at least one (`max_surge: 1` keeps every member serving)",
        ));
    }
    for (key, v) in [
        ("max_surge", u.max_surge),
        ("max_unavailable", u.max_unavailable),
        ("canary", u.canary),
    ] {
        if v > MAX_COUNT {
            errs.push(ValidationError::at(
                path.key(key),
                format!("`{key}` is {v}; at most {MAX_COUNT} is allowed"),
            ));
        }
    }
    if u.deadline < Duration::from_secs(1) {
        errs.push(ValidationError::at(
            path.key("deadline"),
            "`deadline` is under 1s: no member can start that fast; write e.g. `5m`",
        ));
    }
    if u.min_ready >= u.deadline {
        errs.push(ValidationError::at(
            path.key("min_ready"),
            "`min_ready` is not shorter than `deadline`: every rollout would fail",
        ));
    }
    if u.drain_timeout > Duration::from_secs(3600) {
        errs.push(ValidationError::at(
            path.key("drain_timeout"),
            "`drain_timeout` is at most 1h",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<UpdateSpec, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn defaults_give_zero_downtime() {
        let u = parse("{}").unwrap();
        assert_eq!(u, UpdateSpec::default());
        assert_eq!(u.max_surge, 1);
        assert_eq!(u.max_unavailable, 0);
        assert_eq!(u.min_ready, Duration::from_secs(2));
        assert_eq!(u.deadline, Duration::from_secs(300));
        assert_eq!(u.failure_action, FailureAction::Rollback);
        assert_eq!(u.canary, 0);
        assert_eq!(u.drain_timeout, Duration::from_secs(10));
    }

    #[test]
    fn fields_parse_and_unknown_ones_are_refused() {
        let u = parse("max_surge: 2\nmax_unavailable: 1\nmin_ready: 500ms\ndeadline: 1m\nfailure_action: pause\ncanary: 1\ndrain_timeout: 1s\n").unwrap();
        assert_eq!(u.max_surge, 2);
        assert_eq!(u.failure_action, FailureAction::Pause);
        assert_eq!(u.min_ready, Duration::from_millis(500));
        assert!(parse("max_surges: 2").is_err());
        assert!(parse("failure_action: explode").is_err());
    }

    #[test]
    fn validation() {
        let path = FieldPath::root().key("update");
        let check = |u: UpdateSpec| {
            let mut errs = Vec::new();
            validate_update(&path, &u, &mut errs);
            errs.into_iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert!(check(UpdateSpec::default()).is_empty());
        let stuck = check(UpdateSpec {
            max_surge: 0,
            ..Default::default()
        });
        assert_eq!(stuck.len(), 1);
        assert!(stuck[0].contains("update.max_surge"), "{stuck:?}");
        assert!(check(UpdateSpec {
            max_surge: 0,
            max_unavailable: 1,
            ..Default::default()
        })
        .is_empty());
        assert_eq!(
            check(UpdateSpec {
                canary: 5000,
                ..Default::default()
            })
            .len(),
            1
        );
        assert_eq!(
            check(UpdateSpec {
                min_ready: Duration::from_secs(600),
                ..Default::default()
            })
            .len(),
            1
        );
    }
}
