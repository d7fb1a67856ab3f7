//! The autoscaler: resize a cluster to keep a metric between two bounds.
//!
//! Brooklyn's AutoScalerPolicy semantics with Kubernetes HPA's safety rules:
//!
//! - the metric is per member (`lb.reqs_per_sec.per_member`,
//!   `cpu.usage.average`): hot above `upper`, cold below `lower`;
//! - hot: desired = ceil(metric × size / upper); cold: desired =
//!   floor(metric × size / lower), raised if needed so the shrunk cluster
//!   would not be hot at once (Brooklyn's anti-thrash rule);
//! - a tolerance band around the bounds (HPA's 0.1) absorbs noise;
//! - a missing or stale metric never scales down (HPA);
//! - stabilization windows over the history of recommendations: grow to the
//!   minimum recommended in the up window, shrink to the maximum in the down
//!   window, so a short spike or dip changes nothing;
//! - step increment and maximum per resize; `[min_size, max_size]`; a
//!   capacity high-water mark after a resize failed for lack of hosts.
//!
//! [`evaluate`] is pure over (config, history, metric, size, now); the actor
//! only feeds it and acts on its answer.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod actor;
mod config;

pub use actor::Autoscaler;
pub use config::AutoscalerConfig;

/// Where the metric stands against the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    Hot,
    Cold,
    Ok,
    /// No (fresh) metric.
    Unknown,
}

impl Pool {
    /// The notice a change to this state emits.
    pub fn event(self) -> Option<&'static str> {
        match self {
            Pool::Hot => Some("pool.hot"),
            Pool::Cold => Some("pool.cold"),
            Pool::Ok => Some("pool.ok"),
            Pool::Unknown => None,
        }
    }
}

/// What the autoscaler remembers (and the store keeps across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerHistory {
    /// (time ms, recommended size), oldest first.
    pub recommendations: VecDeque<(u64, u32)>,
    /// When the policy started watching: before that, nothing was recommended.
    pub since_ms: Option<u64>,
    /// Capacity high-water mark: (size that could not be reached, until ms).
    pub high_water: Option<(u32, u64)>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub pool: Pool,
    /// The raw recommendation from this sample (before stabilization).
    pub recommended: u32,
    /// Resize to this, if anything.
    pub resize_to: Option<u32>,
    /// Why: the inputs and the rule that decided.
    pub reason: String,
    /// Worth recording even without a resize: a recommendation differed
    /// from the size but stabilization held it back.
    pub close: bool,
}

/// Rounds a change up to a multiple of the increment and caps it.
fn step(current: u32, target: u32, cfg: &AutoscalerConfig) -> u32 {
    let inc = cfg.step_increment.max(1);
    if target > current {
        let mut d = (target - current).div_ceil(inc) * inc;
        if let Some(m) = cfg.max_step_up {
            d = d.min(m);
        }
        current.saturating_add(d)
    } else if target < current {
        let mut d = (current - target).div_ceil(inc) * inc;
        if let Some(m) = cfg.max_step_down {
            d = d.min(m);
        }
        current.saturating_sub(d)
    } else {
        current
    }
}

/// The size the metric asks for (Brooklyn's rule), before clamping.
pub fn recommend(cfg: &AutoscalerConfig, metric: f64, size: u32) -> (Pool, u32) {
    let n = size.max(1) as f64;
    // Rounded to 1e-9: 7/3 × 3 must ask for 7, not 8.
    let total = (metric * n * 1e9).round() / 1e9;
    if metric > cfg.upper * (1.0 + cfg.tolerance) {
        (Pool::Hot, (total / cfg.upper).ceil() as u32)
    } else if metric < cfg.lower * (1.0 - cfg.tolerance) {
        let mut d = if cfg.lower > 0.0 {
            (total / cfg.lower).floor() as u32
        } else {
            size
        };
        // Anti-thrash: never shrink to a size at which the same load is hot.
        while d < size && d > 0 && total / d as f64 > cfg.upper {
            d += 1;
        }
        (Pool::Cold, d.min(size))
    } else {
        (Pool::Ok, size)
    }
}

/// One evaluation: pure over (config, history, metric sample, size, now).
/// `metric` is the latest value and its time (ms); `None` if never seen.
pub fn evaluate(
    cfg: &AutoscalerConfig,
    history: &mut AutoscalerHistory,
    metric: Option<(f64, u64)>,
    size: u32,
    now_ms: u64,
) -> Evaluation {
    let since = *history.since_ms.get_or_insert(now_ms);
    if let Some((_, until)) = history.high_water {
        if now_ms >= until {
            history.high_water = None;
        }
    }
    let fresh = metric.filter(|(v, t)| {
        v.is_finite() && now_ms.saturating_sub(*t) <= cfg.metric_max_age.as_millis() as u64
    });
    let Some((value, _)) = fresh else {
        // HPA's rule: a missing metric never scales down. It does not
        // scale up either: there is no evidence of load.
        return Evaluation {
            pool: Pool::Unknown,
            recommended: size,
            resize_to: clamp_only(cfg, history, size),
            reason: format!(
                "metric `{}` is missing or older than {}: no scaling on it",
                cfg.metric,
                humantime::format_duration(cfg.metric_max_age)
            ),
            close: false,
        };
    };
    let (pool, raw) = recommend(cfg, value, size);
    let recommended = clamp(cfg, history, raw);
    history.recommendations.push_back((now_ms, recommended));
    let keep = cfg.up_stabilization.max(cfg.down_stabilization).as_millis() as u64;
    while history.recommendations.len() > 1
        && history
            .recommendations
            .front()
            .is_some_and(|(t, _)| now_ms.saturating_sub(*t) > keep)
    {
        history.recommendations.pop_front();
    }
    let in_window = |w: Duration| {
        let w = w.as_millis() as u64;
        history
            .recommendations
            .iter()
            .filter(move |(t, _)| now_ms.saturating_sub(*t) <= w)
            .map(|(_, r)| *r)
    };
    // A window is only trusted once the policy has watched for all of it:
    // before that, the current size stands in for what was not seen.
    let covered = |w: Duration| now_ms.saturating_sub(since) >= w.as_millis() as u64;
    let mut up = in_window(cfg.up_stabilization).min().unwrap_or(size);
    if !covered(cfg.up_stabilization) {
        up = up.min(size);
    }
    let mut down = in_window(cfg.down_stabilization).max().unwrap_or(size);
    if !covered(cfg.down_stabilization) {
        down = down.max(size);
    }
    let inputs = format!(
        "{} = {value:.3} per member × {size} members; bounds [{}, {}] ± {:.0}%",
        cfg.metric,
        cfg.lower,
        cfg.upper,
        cfg.tolerance * 100.0
    );
    let (resize_to, reason) = if up > size {
        let to = step(size, up, cfg);
        (
            Some(to),
            format!(
                "hot: {inputs}; lowest recommendation over the last {} is {up}: grow to {to}",
                humantime::format_duration(cfg.up_stabilization)
            ),
        )
    } else if down < size {
        let to = step(size, down, cfg);
        (
            Some(to),
            format!(
                "cold: {inputs}; highest recommendation over the last {} is {down}: shrink to {to}",
                humantime::format_duration(cfg.down_stabilization)
            ),
        )
    } else if let Some(to) = clamp_only(cfg, history, size) {
        (
            Some(to),
            format!(
                "size {size} is outside [{}, {}]: resize to {to}",
                cfg.min_size, cfg.max_size
            ),
        )
    } else if recommended != size {
        (None, format!("{inputs}; recommends {recommended} but the stabilization window holds the size at {size}"))
    } else {
        (None, format!("{inputs}; within bounds: keep {size}"))
    };
    Evaluation {
        pool,
        recommended,
        resize_to,
        reason,
        close: recommended != size && resize_to.is_none(),
    }
}

fn clamp(cfg: &AutoscalerConfig, history: &AutoscalerHistory, size: u32) -> u32 {
    let mut max = cfg.max_size;
    if let Some((hw, _)) = history.high_water {
        max = max.min(hw.saturating_sub(1).max(cfg.min_size));
    }
    size.clamp(cfg.min_size, max.max(cfg.min_size))
}

fn clamp_only(cfg: &AutoscalerConfig, history: &AutoscalerHistory, size: u32) -> Option<u32> {
    let c = clamp(cfg, history, size);
    (c != size).then_some(c)
}

/// A resize to `attempted` failed for lack of capacity: hold below it.
pub fn on_insufficient_capacity(
    cfg: &AutoscalerConfig,
    history: &mut AutoscalerHistory,
    attempted: u32,
    now_ms: u64,
) {
    // Saturating: a huge hold (refused by validation, but a stored config
    // predates that) must not wrap to a mark that already expired.
    history.high_water = Some((
        attempted,
        now_ms.saturating_add(u64::try_from(cfg.high_water_hold.as_millis()).unwrap_or(u64::MAX)),
    ));
}

#[cfg(test)]
mod tests;
