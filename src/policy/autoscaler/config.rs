//! The autoscaler's tunables: what a blueprint or preset writes, with its
//! defaults and the checks types cannot express.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tunables of the autoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscalerConfig {
    /// The sensor to watch, per member (required).
    pub metric: String,
    /// The entity publishing `metric`: the cluster itself (default) or
    /// another service of the application, such as its load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Below this the pool is cold (required).
    pub lower: f64,
    /// Above this the pool is hot (required).
    pub upper: f64,
    /// Default `1`.
    #[serde(default = "default_min_size")]
    pub min_size: u32,
    /// Default `10`.
    #[serde(default = "default_max_size")]
    pub max_size: u32,
    /// Relative band around the bounds inside which nothing happens
    /// (Kubernetes HPA's default). Default `0.1`.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Grow only to the smallest size recommended over this window. Default `0s`
    /// (HPA scales up at once).
    #[serde(default, with = "crate::policy::dur")]
    pub up_stabilization: Duration,
    /// Shrink only to the largest size recommended over this window.
    /// Default `30s` (HPA: 300 s; our decisions are cheaper to undo).
    #[serde(default = "default_down_stabilization", with = "crate::policy::dur")]
    pub down_stabilization: Duration,
    /// A resize changes the size by a multiple of this. Default `1`.
    #[serde(default = "default_one")]
    pub step_increment: u32,
    /// At most this many members added by one resize. Default unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step_up: Option<u32>,
    /// At most this many members removed by one resize. Default unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step_down: Option<u32>,
    /// A metric older than this is missing. Default `10s`.
    #[serde(default = "default_metric_max_age", with = "crate::policy::dur")]
    pub metric_max_age: Duration,
    /// How often the policy evaluates. Default `250ms`.
    #[serde(default = "default_evaluation_interval", with = "crate::policy::dur")]
    pub evaluation_interval: Duration,
    /// How long a capacity high-water mark holds. Default `5m`.
    #[serde(default = "default_high_water_hold", with = "crate::policy::dur")]
    pub high_water_hold: Duration,
}

fn default_min_size() -> u32 {
    1
}
fn default_max_size() -> u32 {
    10
}
fn default_tolerance() -> f64 {
    0.1
}
fn default_down_stabilization() -> Duration {
    Duration::from_secs(30)
}
fn default_one() -> u32 {
    1
}
fn default_metric_max_age() -> Duration {
    Duration::from_secs(10)
}
fn default_evaluation_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_high_water_hold() -> Duration {
    Duration::from_secs(300)
}

impl AutoscalerConfig {
    /// Checks what types cannot say; messages name the key.
    pub fn check(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: String| Err((k.to_string(), m));
        if self.metric.trim().is_empty() {
            return e(
                "metric",
                "`metric` must name a sensor, such as lb.reqs_per_sec.per_member".into(),
            );
        }
        if !(self.lower.is_finite() && self.upper.is_finite()) || self.lower < 0.0 {
            return e(
                "lower",
                "`lower` and `upper` must be finite and not negative".into(),
            );
        }
        if self.lower > self.upper {
            return e(
                "upper",
                format!(
                    "`upper` ({}) must be at least `lower` ({})",
                    self.upper, self.lower
                ),
            );
        }
        if self.min_size > self.max_size {
            return e(
                "max_size",
                format!(
                    "`max_size` ({}) must be at least `min_size` ({})",
                    self.max_size, self.min_size
                ),
            );
        }
        if !(0.0..1.0).contains(&self.tolerance) {
            return e(
                "tolerance",
                format!("`tolerance` must be in [0, 1), got {}", self.tolerance),
            );
        }
        if self.step_increment == 0 {
            return e(
                "step_increment",
                "`step_increment` must be at least 1".into(),
            );
        }
        if self.max_step_up == Some(0) || self.max_step_down == Some(0) {
            return e(
                "max_step_up",
                "`max_step_up` and `max_step_down` must be at least 1".into(),
            );
        }
        if self.evaluation_interval.is_zero() {
            return e(
                "evaluation_interval",
                "`evaluation_interval` must be more than 0".into(),
            );
        }
        Ok(())
    }
}
