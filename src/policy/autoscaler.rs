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
    #[serde(default, with = "super::dur")]
    pub up_stabilization: Duration,
    /// Shrink only to the largest size recommended over this window.
    /// Default `30s` (HPA: 300 s; our decisions are cheaper to undo).
    #[serde(default = "default_down_stabilization", with = "super::dur")]
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
    #[serde(default = "default_metric_max_age", with = "super::dur")]
    pub metric_max_age: Duration,
    /// How often the policy evaluates. Default `250ms`.
    #[serde(default = "default_evaluation_interval", with = "super::dur")]
    pub evaluation_interval: Duration,
    /// How long a capacity high-water mark holds. Default `5m`.
    #[serde(default = "default_high_water_hold", with = "super::dur")]
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
    history.high_water = Some((attempted, now_ms + cfg.high_water_hold.as_millis() as u64));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> AutoscalerConfig {
        serde_yaml::from_str("metric: load\nlower: 10\nupper: 20\nmin_size: 1\nmax_size: 10\ndown_stabilization: 0s\n").unwrap()
    }

    fn run(
        c: &AutoscalerConfig,
        h: &mut AutoscalerHistory,
        v: f64,
        size: u32,
        now: u64,
    ) -> Evaluation {
        evaluate(c, h, Some((v, now)), size, now)
    }

    #[test]
    fn a_set_point_follows_the_metric_exactly() {
        // lower = upper: the host pool's autoscaler (demand per host).
        let c: AutoscalerConfig =
            serde_yaml::from_str("metric: d\nlower: 1\nupper: 1\ntolerance: 0\nmax_size: 100\n")
                .unwrap();
        c.check().unwrap();
        for (want, have) in [(7u32, 3u32), (3, 7), (10, 3), (1, 9), (5, 5)] {
            let (_, got) = recommend(&c, want as f64 / have as f64, have);
            assert_eq!(got, want, "{want} wanted of {have}");
        }
    }

    #[test]
    fn hot_grows_by_brooklyns_rule() {
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        // 30 per member × 2 members = 60 total; 60 / 20 = 3.
        let e = run(&c, &mut h, 30.0, 2, 0);
        assert_eq!((e.pool, e.resize_to), (Pool::Hot, Some(3)));
    }

    #[test]
    fn cold_shrinks_without_landing_hot() {
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        // 5 × 4 = 20 total; floor(20 / 10) = 2; at 2 members 10 each: fine.
        let e = run(&c, &mut h, 5.0, 4, 0);
        assert_eq!((e.pool, e.resize_to), (Pool::Cold, Some(2)));
        // Anti-thrash: lower 10, upper 12: 9 × 4 = 36; floor(36/10) = 3 → 12
        // each, not hot; but with upper 11, 3 members would be hot (12 > 11): stay at 4.
        let c2 = AutoscalerConfig {
            upper: 11.0,
            ..cfg()
        };
        let e = run(&c2, &mut AutoscalerHistory::default(), 8.9, 4, 0);
        assert_eq!(e.resize_to, None, "{e:?}");
    }

    #[test]
    fn noise_inside_the_tolerance_does_nothing() {
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        for (i, v) in [21.9, 9.1, 20.5, 10.0, 15.0, 21.0].iter().enumerate() {
            let e = run(&c, &mut h, *v, 3, i as u64 * 1000);
            assert_eq!(e.resize_to, None, "{v}: {e:?}");
        }
    }

    #[test]
    fn a_missing_or_stale_metric_never_scales_down() {
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        assert_eq!(evaluate(&c, &mut h, None, 5, 0).resize_to, None);
        assert_eq!(
            evaluate(&c, &mut h, Some((0.0, 0)), 5, 60_000).resize_to,
            None,
            "stale"
        );
        assert_eq!(
            evaluate(&c, &mut h, Some((f64::NAN, 60_000)), 5, 60_000).resize_to,
            None,
            "NaN"
        );
    }

    #[test]
    fn a_steady_breach_resizes_only_after_the_up_window() {
        let c = AutoscalerConfig {
            up_stabilization: Duration::from_secs(5),
            ..cfg()
        };
        let mut h = AutoscalerHistory::default();
        let mut first = None;
        // Virtual time: a sample every 250 ms.
        for i in 0..40u64 {
            let now = 1_000_000 + i * 250;
            let e = run(&c, &mut h, 40.0, 2, now);
            if e.resize_to.is_some() && first.is_none() {
                first = Some(now - 1_000_000);
                assert_eq!(e.resize_to, Some(4));
            }
        }
        assert_eq!(
            first,
            Some(5_000),
            "resize exactly when the 5 s window is covered"
        );
    }

    #[test]
    fn a_short_spike_inside_the_window_changes_nothing() {
        let c = AutoscalerConfig {
            up_stabilization: Duration::from_secs(5),
            ..cfg()
        };
        let mut h = AutoscalerHistory::default();
        for i in 0..40u64 {
            let v = if (10..14).contains(&i) { 100.0 } else { 15.0 };
            assert_eq!(run(&c, &mut h, v, 2, i * 250).resize_to, None);
        }
    }

    #[test]
    fn down_window_takes_the_highest_recommendation() {
        let c = AutoscalerConfig {
            down_stabilization: Duration::from_secs(10),
            ..cfg()
        };
        let mut h = AutoscalerHistory::default();
        let mut resized_at = None;
        for i in 0..60u64 {
            let e = run(&c, &mut h, 2.0, 5, i * 500);
            if let Some(to) = e.resize_to {
                resized_at = Some((i * 500, to));
                break;
            }
        }
        assert_eq!(resized_at, Some((10_000, 1)));
    }

    #[test]
    fn steps_are_limited_and_rounded() {
        let c = AutoscalerConfig {
            max_step_up: Some(2),
            step_increment: 1,
            ..cfg()
        };
        assert_eq!(
            run(&c, &mut AutoscalerHistory::default(), 100.0, 2, 0).resize_to,
            Some(4)
        );
        let c = AutoscalerConfig {
            step_increment: 3,
            ..cfg()
        };
        assert_eq!(
            run(&c, &mut AutoscalerHistory::default(), 30.0, 2, 0).resize_to,
            Some(5)
        );
    }

    #[test]
    fn the_high_water_mark_holds_growth_below_it() {
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        on_insufficient_capacity(&c, &mut h, 4, 0);
        assert_eq!(run(&c, &mut h, 100.0, 2, 1_000).resize_to, Some(3));
        // The mark expires.
        assert_eq!(run(&c, &mut h, 100.0, 3, 400_000).resize_to, Some(10));
    }

    #[test]
    fn config_checks_name_the_key() {
        let c = AutoscalerConfig {
            lower: 30.0,
            ..cfg()
        };
        assert_eq!(c.check().unwrap_err().0, "upper");
        let c = AutoscalerConfig {
            min_size: 5,
            max_size: 2,
            ..cfg()
        };
        assert_eq!(c.check().unwrap_err().0, "max_size");
    }

    proptest! {
        #[test]
        fn the_result_is_always_within_min_and_max(
            samples in proptest::collection::vec(0.0f64..1000.0, 1..50),
            size in 0u32..40, min in 1u32..5, extra in 0u32..20,
        ) {
            let c = AutoscalerConfig { min_size: min, max_size: min + extra, up_stabilization: Duration::ZERO, ..cfg() };
            let mut h = AutoscalerHistory::default();
            let mut size = size;
            for (i, v) in samples.iter().enumerate() {
                let e = run(&c, &mut h, *v, size, i as u64 * 250);
                if let Some(to) = e.resize_to {
                    prop_assert!(to >= c.min_size && to <= c.max_size, "{to} outside [{}, {}]", c.min_size, c.max_size);
                    size = to;
                }
            }
        }

        #[test]
        fn no_resize_while_the_metric_stays_in_the_band(
            samples in proptest::collection::vec(9.0f64..22.0, 1..100), size in 1u32..10,
        ) {
            // 9.0 and 22.0 are inside lower × 0.9 and upper × 1.1.
            let c = cfg();
            let mut h = AutoscalerHistory::default();
            for (i, v) in samples.iter().enumerate() {
                prop_assert_eq!(run(&c, &mut h, *v, size, i as u64 * 250).resize_to, None);
            }
        }

        #[test]
        fn a_step_never_exceeds_its_maximum(v in 0.0f64..1000.0, size in 1u32..10, up in 1u32..4, down in 1u32..4) {
            let c = AutoscalerConfig { max_step_up: Some(up), max_step_down: Some(down), max_size: 100, ..cfg() };
            if let Some(to) = run(&c, &mut AutoscalerHistory::default(), v, size, 0).resize_to {
                prop_assert!(to <= size + up && to + down >= size);
            }
        }
    }
}

/// The autoscaler actor: feeds [`evaluate`] and resizes the cluster.
pub struct Autoscaler {
    name: String,
    cluster: crate::protocol::EntityRef,
    source: crate::protocol::EntityRef,
    cluster_invoke: actix::Recipient<crate::protocol::Invoke>,
    cluster_notice: actix::Recipient<crate::protocol::EmitNotice>,
    subscribe_to: Vec<actix::Recipient<crate::protocol::Subscribe>>,
    activities: actix::Recipient<crate::activity::RecordActivity>,
    cfg: AutoscalerConfig,
    history: AutoscalerHistory,
    size: Option<u32>,
    metric: Option<(f64, u64)>,
    source_running: bool,
    pool: Pool,
    resizing: bool,
    running: bool,
    last_hold: Option<u32>,
    tick: Option<actix::SpawnHandle>,
    /// Where the policy's memory is saved (the durable store).
    store: Option<actix::Recipient<crate::store::StoreWrite>>,
    last_saved: Option<serde_json::Value>,
}

impl Autoscaler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        cluster: crate::protocol::EntityRef,
        source: crate::protocol::EntityRef,
        cluster_invoke: actix::Recipient<crate::protocol::Invoke>,
        cluster_notice: actix::Recipient<crate::protocol::EmitNotice>,
        subscribe_to: Vec<actix::Recipient<crate::protocol::Subscribe>>,
        activities: actix::Recipient<crate::activity::RecordActivity>,
        cfg: AutoscalerConfig,
    ) -> Self {
        Autoscaler {
            store: None,
            last_saved: None,
            name,
            cluster,
            source,
            cluster_invoke,
            cluster_notice,
            subscribe_to,
            activities,
            cfg,
            history: AutoscalerHistory::default(),
            size: None,
            metric: None,
            source_running: false,
            pool: Pool::Unknown,
            resizing: false,
            running: true,
            last_hold: None,
            tick: None,
        }
    }

    fn record(&self, name: &str, args: serde_json::Value, outcome: &str, message: String) {
        self.activities.do_send(crate::activity::RecordActivity(
            crate::activity::Activity::policy(
                &self.cluster.app,
                &self.cluster.entity,
                name,
                args,
                outcome,
                message,
            ),
        ));
    }

    fn schedule(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        if let Some(h) = self.tick.take() {
            ctx.cancel_future(h);
        }
        self.tick =
            Some(ctx.run_interval(self.cfg.evaluation_interval, |act, ctx| act.evaluate(ctx)));
    }

    fn evaluate(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::{ActorFutureExt, AsyncContext, WrapFuture};
        let now = crate::protocol::now_ms();
        // A running source with the sensor present keeps its value current:
        // sensors are published on change only.
        if self.source_running {
            if let Some((v, _)) = self.metric {
                self.metric = Some((v, now));
            }
        }
        let (Some(size), true, false) = (self.size, self.running, self.resizing) else {
            return;
        };
        let span = tracing::debug_span!("policy", app = %self.cluster.app, entity = %self.cluster.entity, policy = %self.name);
        let _g = span.enter();
        let e = evaluate(&self.cfg, &mut self.history, self.metric, size, now);
        if e.pool != self.pool {
            self.pool = e.pool;
            if let Some(ev) = e.pool.event() {
                self.cluster_notice.do_send(crate::protocol::EmitNotice {
                    name: ev.to_string(),
                    detail: serde_json::json!({ "reason": e.reason, "metric": self.metric.map(|m| m.0) }),
                });
            }
        }
        let inputs = serde_json::json!({
            "metric": self.cfg.metric, "value": self.metric.map(|m| m.0), "size": size,
            "recommended": e.recommended, "lower": self.cfg.lower, "upper": self.cfg.upper, "pool": e.pool,
        });
        if let Some(to) = e.resize_to {
            self.resizing = true;
            self.last_hold = None;
            tracing::info!(from = size, to, reason = %e.reason, "autoscaler resizes");
            self.record(
                "autoscaler.resize",
                inputs.clone(),
                "decided",
                e.reason.clone(),
            );
            let invoke = self.cluster_invoke.clone();
            ctx.spawn(
                async move {
                    invoke
                        .send(crate::protocol::Invoke::with_args(
                            "resize",
                            serde_json::json!({ "size": to }),
                        ))
                        .await
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.resizing = false;
                    let res = res.unwrap_or_else(|e| {
                        Err(crate::protocol::EntityError::unreachable(&act.cluster, e))
                    });
                    match res {
                        // The size reached, as the target reports it (a
                        // host pool may shrink by fewer than asked).
                        Ok(v) => {
                            act.size = Some(v["size"].as_u64().map(|n| n as u32).unwrap_or(to))
                        }
                        Err(err) => {
                            if matches!(
                                err,
                                crate::protocol::EntityError::InsufficientCapacity { .. }
                            ) {
                                on_insufficient_capacity(
                                    &act.cfg,
                                    &mut act.history,
                                    to,
                                    crate::protocol::now_ms(),
                                );
                            }
                            act.record(
                                "autoscaler.resize",
                                inputs,
                                "error",
                                format!("resize to {to} failed: {err}"),
                            );
                        }
                    }
                }),
            );
        } else if e.close && self.last_hold != Some(e.recommended) {
            // Close calls are recorded once per recommendation, not 4 times a second.
            self.last_hold = Some(e.recommended);
            self.record("autoscaler.hold", inputs, "held", e.reason);
        } else if !e.close {
            self.last_hold = None;
        }
    }
}

impl actix::Actor for Autoscaler {
    type Context = actix::Context<Self>;
    fn started(&mut self, ctx: &mut actix::Context<Self>) {
        use actix::AsyncContext;
        for s in &self.subscribe_to {
            s.do_send(crate::protocol::Subscribe(ctx.address().recipient()));
        }
        self.schedule(ctx);
        // The history changes at every evaluation: saved once a second, so a
        // decision after a restart uses (almost) all of it.
        ctx.run_interval(std::time::Duration::from_secs(1), |act, _| {
            let now = serde_json::to_value(&act.history).unwrap_or_default();
            if act.last_saved.as_ref() != Some(&now) {
                act.save();
                act.last_saved = Some(now);
            }
        });
    }
}

impl actix::Handler<crate::protocol::EntityEvent> for Autoscaler {
    type Result = ();
    fn handle(&mut self, ev: crate::protocol::EntityEvent, ctx: &mut actix::Context<Self>) {
        use crate::protocol::{sensors as s, EntityEvent, Lifecycle};
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } => {
                if source == self.cluster && name == s::GROUP_SIZE {
                    self.size = value.value.as_u64().map(|v| v as u32);
                }
                if source == self.source && name == self.cfg.metric {
                    self.metric = value.value.as_f64().map(|v| (v, crate::protocol::now_ms()));
                }
            }
            EntityEvent::State { source, state, .. } if source == self.source => {
                self.source_running = state == Lifecycle::Running;
            }
            EntityEvent::Gone { source } if source == self.cluster => {
                actix::ActorContext::stop(ctx)
            }
            _ => {}
        }
    }
}

impl actix::Handler<super::PolicyControl> for Autoscaler {
    type Result = Result<super::PolicyStatus, super::PolicyError>;
    fn handle(
        &mut self,
        msg: super::PolicyControl,
        ctx: &mut actix::Context<Self>,
    ) -> Self::Result {
        match msg.op {
            super::PolicyOp::Get => {}
            super::PolicyOp::Set(super::PolicyConfig::Autoscaler(c)) => {
                c.check()
                    .map_err(|(key, message)| super::PolicyError::BadConfig { key, message })?;
                let old = std::mem::replace(&mut self.cfg, c);
                if old.evaluation_interval != self.cfg.evaluation_interval {
                    self.schedule(ctx);
                }
                self.record(
                    "autoscaler.reconfigure",
                    serde_json::to_value(&self.cfg).unwrap_or_default(),
                    "ok",
                    "new config in force".into(),
                );
            }
            super::PolicyOp::Set(other) => {
                return Err(super::PolicyError::wrong_kind("autoscaler", &other))
            }
            super::PolicyOp::Start => self.running = true,
            super::PolicyOp::Stop => self.running = false,
        }
        Ok(super::PolicyStatus::of(
            &self.name,
            &super::PolicyConfig::Autoscaler(self.cfg.clone()),
            self.running,
            serde_json::json!({ "pool": self.pool, "size": self.size, "metric": self.metric.map(|m| m.0), "history": self.history }),
        ))
    }
}

impl Autoscaler {
    /// Saves the policy's memory to the store on every change, starting
    /// from `saved` (what the store held for it at start, on a rebind).
    pub fn persisted(
        mut self,
        store: Option<actix::Recipient<crate::store::StoreWrite>>,
        saved: Option<serde_json::Value>,
    ) -> Self {
        if let Some(h) = super::restore_memory::<AutoscalerHistory>(saved) {
            self.history = h;
        }
        self.store = store;
        self
    }

    fn save(&self) {
        super::save_memory(&self.store, &self.cluster, &self.name, &self.history);
    }
}
