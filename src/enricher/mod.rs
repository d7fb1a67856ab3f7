//! Enrichers: actors that derive sensors from sensors.
//!
//! - `aggregate`: a function (average, sum, min, max) of a sensor over a
//!   cluster's members, such as `cpu.usage.average`;
//! - `rolling-mean`: the mean of a sensor over a time window;
//! - `rate`: the change of a sensor per second.
//!
//! The computations are pure ([`aggregate`], [`RollingMean`], [`Rate`]);
//! the actor subscribes, feeds them and publishes the result on its entity.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use crate::blueprint::{AggregateFn, EnricherKind, EnricherSpec};
use crate::protocol::{
    now_ms, EntityEvent, EntityRef, Interest, PublishSensor, Subscribe, SubscribeMembers,
};

/// The aggregate of the members' values; `None` without values.
pub fn aggregate(values: &[f64], f: AggregateFn) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match f {
        AggregateFn::Average => values.iter().sum::<f64>() / values.len() as f64,
        AggregateFn::Sum => values.iter().sum(),
        AggregateFn::Min => values.iter().cloned().fold(f64::INFINITY, f64::min),
        AggregateFn::Max => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Mean over a time window of samples (time in ms).
#[derive(Debug, Clone)]
pub struct RollingMean {
    window_ms: u64,
    samples: VecDeque<(u64, f64)>,
}

impl RollingMean {
    pub fn new(window: Duration) -> Self {
        RollingMean {
            window_ms: window.as_millis() as u64,
            samples: VecDeque::new(),
        }
    }

    pub fn push(&mut self, now_ms: u64, v: f64) {
        self.samples.push_back((now_ms, v));
        self.prune(now_ms);
    }

    /// The mean at `now`; the latest sample stands for the whole window
    /// since it was taken (a sensor keeps its value until it changes).
    pub fn mean(&mut self, now_ms: u64) -> Option<f64> {
        self.prune(now_ms);
        let start = now_ms.saturating_sub(self.window_ms);
        // Time-weighted: each value holds until the next one.
        let mut total = 0.0;
        let mut weight = 0.0;
        let n = self.samples.len();
        for i in 0..n {
            let (t, v) = self.samples[i];
            let from = t.max(start);
            let to = if i + 1 < n {
                self.samples[i + 1].0
            } else {
                now_ms
            };
            let w = to.saturating_sub(from) as f64;
            total += v * w;
            weight += w;
        }
        match (weight > 0.0, self.samples.back()) {
            (true, _) => Some(total / weight),
            (false, Some((_, v))) => Some(*v),
            (false, None) => None,
        }
    }

    fn prune(&mut self, now_ms: u64) {
        let start = now_ms.saturating_sub(self.window_ms);
        // Keep the last sample before the window: it is the value at its start.
        while self.samples.len() > 1 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
    }
}

/// Change per second between consecutive samples.
#[derive(Debug, Clone, Default)]
pub struct Rate {
    last: Option<(u64, f64)>,
}

impl Rate {
    /// A counter that went down (a restart) restarts the rate at the next sample.
    pub fn push(&mut self, now_ms: u64, v: f64) -> Option<f64> {
        let r = match self.last {
            Some((t, prev)) if now_ms > t && v >= prev => {
                Some((v - prev) / ((now_ms - t) as f64 / 1000.0))
            }
            _ => None,
        };
        self.last = Some((now_ms, v));
        r
    }
}

/// The members' latest values and their running sum, so that one member's
/// new value costs O(1) for `average` and `sum` (recomputing over every
/// member per event made a 10,000-member cluster's CPU feed cost 10^8
/// additions a second). `min`/`max` rescan only when the extreme itself
/// changes or leaves.
#[derive(Debug, Default, Clone)]
pub struct Aggregator {
    /// Hashed with foldhash: one lookup per member event.
    values: foldhash::HashMap<String, f64>,
    sum: f64,
    /// Updates since the sum was last recomputed exactly (float drift).
    updates: usize,
    extreme: Option<f64>,
}

impl Aggregator {
    pub fn set(&mut self, member: &str, v: f64, f: AggregateFn) {
        // The member's name is copied only at its first value.
        let old = match self.values.get_mut(member) {
            Some(slot) => Some(std::mem::replace(slot, v)),
            None => self.values.insert(member.to_string(), v),
        };
        self.sum += v - old.unwrap_or(0.0);
        self.changed(old, Some(v), f);
    }

    pub fn remove(&mut self, member: &str, f: AggregateFn) -> bool {
        let Some(old) = self.values.remove(member) else {
            return false;
        };
        self.sum -= old;
        self.changed(Some(old), None, f);
        true
    }

    fn changed(&mut self, old: Option<f64>, new: Option<f64>, f: AggregateFn) {
        self.updates += 1;
        if self.updates > self.values.len().max(64) {
            self.updates = 0;
            self.sum = self.values.values().sum();
        }
        let better = |a: f64, b: f64| match f {
            AggregateFn::Min => a < b,
            _ => a > b,
        };
        if matches!(f, AggregateFn::Min | AggregateFn::Max) {
            self.extreme = match (self.extreme, old, new) {
                // The extreme itself changed or left: rescan.
                (Some(e), Some(o), _) if o == e && new.is_none_or(|n| !better(n, e)) => {
                    aggregate(&self.values.values().copied().collect::<Vec<_>>(), f)
                }
                (Some(e), _, Some(n)) if better(n, e) => Some(n),
                (None, _, Some(n)) => Some(n),
                (e, _, _) => e,
            };
        }
    }

    pub fn value(&self, f: AggregateFn) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        match f {
            AggregateFn::Average => Some(self.sum / self.values.len() as f64),
            AggregateFn::Sum => Some(self.sum),
            AggregateFn::Min | AggregateFn::Max => self.extreme,
        }
    }
}

enum State {
    Aggregate(Aggregator),
    RollingMean(RollingMean),
    Rate(Rate),
}

pub struct Enricher {
    spec: EnricherSpec,
    owner: EntityRef,
    source: EntityRef,
    output: String,
    publish_to: Recipient<PublishSensor>,
    feed: Feed,
    state: State,
    /// A recompute is scheduled (see [`Enricher::recompute_soon`]).
    recompute_due: bool,
}

/// Where an enricher's input comes from.
pub enum Feed {
    /// One entity's sensors.
    Entity(Recipient<Subscribe>),
    /// A cluster's members' sensors.
    Members(Recipient<SubscribeMembers>),
}

impl Enricher {
    pub fn new(
        spec: EnricherSpec,
        owner: EntityRef,
        source: EntityRef,
        publish_to: Recipient<PublishSensor>,
        feed: Feed,
    ) -> Self {
        let state = match spec.kind {
            EnricherKind::Aggregate => State::Aggregate(Aggregator::default()),
            EnricherKind::RollingMean => State::RollingMean(RollingMean::new(
                spec.window.unwrap_or(Duration::from_secs(30)),
            )),
            EnricherKind::Rate => State::Rate(Rate::default()),
        };
        let output = spec.output();
        Enricher {
            spec,
            owner,
            source,
            output,
            publish_to,
            feed,
            state,
            recompute_due: false,
        }
    }

    fn publish(&self, v: Option<f64>) {
        let value = v
            .filter(|x| x.is_finite())
            .map(|x| json!((x * 10_000.0).round() / 10_000.0))
            .unwrap_or(serde_json::Value::Null);
        self.publish_to.do_send(PublishSensor {
            name: self.output.clone(),
            value,
        });
    }

    fn function(&self) -> AggregateFn {
        self.spec.function.unwrap_or(AggregateFn::Average)
    }

    fn recompute(&mut self) {
        let f = self.function();
        let v = match &mut self.state {
            State::Aggregate(a) => a.value(f),
            State::RollingMean(m) => m.mean(now_ms()),
            State::Rate(_) => return,
        };
        self.publish(v);
    }
}

impl Enricher {
    /// Recomputes and publishes once the members' values queued now are
    /// in (a zero-delay timer, as the cluster publishes its endpoints):
    /// with every member sampled each second, publishing after each value
    /// made one member event cost a publish, a cluster sensor change and
    /// an event to each of the cluster's subscribers; now a burst of them
    /// costs one.
    fn recompute_soon(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.recompute_due, true) {
            return;
        }
        ctx.run_later(Duration::ZERO, |act, _| {
            act.recompute_due = false;
            act.recompute();
        });
    }

    /// Only the sensor this enricher derives from.
    fn interest(&self) -> Interest {
        Interest::Named(self.spec.sensor.as_str().into())
    }
}

impl Actor for Enricher {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        match &self.feed {
            Feed::Entity(s) => s.do_send(Subscribe(ctx.address().recipient(), self.interest())),
            Feed::Members(s) => {
                s.do_send(SubscribeMembers(ctx.address().recipient(), self.interest()))
            }
        }
        if matches!(self.state, State::RollingMean(_)) {
            // Values leave the window even when no new sample comes.
            ctx.run_interval(Duration::from_secs(1), |act, _| act.recompute());
        }
    }
}

impl Handler<EntityEvent> for Enricher {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::Sensor {
                source,
                name,
                value,
            } if name == self.spec.sensor => {
                let v = value.value.as_f64();
                let f = self.function();
                match &mut self.state {
                    State::Aggregate(a) => {
                        if source.app != self.owner.app || source == self.owner {
                            return;
                        }
                        match v {
                            Some(v) => a.set(&source.entity, v, f),
                            None => {
                                a.remove(&source.entity, f);
                            }
                        }
                        self.recompute_soon(ctx);
                    }
                    State::RollingMean(m) if source == self.source => {
                        if let Some(v) = v {
                            m.push(now_ms(), v);
                        }
                        self.recompute();
                    }
                    State::Rate(r) if source == self.source => {
                        if let Some(v) = v {
                            if let Some(rate) = r.push(now_ms(), v) {
                                self.publish(Some(rate));
                            }
                        }
                    }
                    _ => {}
                }
            }
            EntityEvent::Gone { source } => {
                if source == self.owner || source == self.source {
                    ctx.stop();
                } else if let State::Aggregate(a) = &mut self.state {
                    let f = self.spec.function.unwrap_or(AggregateFn::Average);
                    if a.remove(&source.entity, f) {
                        self.recompute_soon(ctx);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn aggregates() {
        let v = [1.0, 2.0, 6.0];
        assert_eq!(aggregate(&v, AggregateFn::Average), Some(3.0));
        assert_eq!(aggregate(&v, AggregateFn::Sum), Some(9.0));
        assert_eq!(aggregate(&v, AggregateFn::Min), Some(1.0));
        assert_eq!(aggregate(&v, AggregateFn::Max), Some(6.0));
        assert_eq!(aggregate(&[], AggregateFn::Average), None);
    }

    #[test]
    fn the_running_aggregate_matches_a_full_recompute() {
        for f in [
            AggregateFn::Average,
            AggregateFn::Sum,
            AggregateFn::Min,
            AggregateFn::Max,
        ] {
            let mut a = Aggregator::default();
            let mut full: HashMap<String, f64> = HashMap::new();
            assert_eq!(a.value(f), None);
            // A deterministic walk of sets, replacements and removals.
            let mut x = 7u64;
            for step in 0..5_000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let member = format!("m{}", (x >> 33) % 50);
                if step % 7 == 3 {
                    assert_eq!(a.remove(&member, f), full.remove(&member).is_some());
                } else {
                    let v = ((x >> 20) % 1000) as f64 / 10.0;
                    a.set(&member, v, f);
                    full.insert(member, v);
                }
                let want = aggregate(&full.values().copied().collect::<Vec<_>>(), f);
                match (a.value(f), want) {
                    (Some(got), Some(want)) => {
                        assert!(
                            (got - want).abs() < 1e-6,
                            "{f:?} at {step}: {got} vs {want}"
                        )
                    }
                    (got, want) => assert_eq!(got, want, "{f:?} at {step}"),
                }
            }
        }
    }

    #[test]
    fn rolling_mean_is_time_weighted_over_the_window() {
        let mut m = RollingMean::new(Duration::from_secs(10));
        m.push(0, 10.0);
        m.push(5_000, 20.0);
        assert_eq!(m.mean(10_000), Some(15.0));
        // At 15 s the window is [5 s, 15 s]: only 20 remains.
        assert_eq!(m.mean(15_000), Some(20.0));
    }

    #[test]
    fn rate_is_change_per_second_and_survives_resets() {
        let mut r = Rate::default();
        assert_eq!(r.push(0, 100.0), None);
        assert_eq!(r.push(2_000, 300.0), Some(100.0));
        assert_eq!(r.push(3_000, 5.0), None, "a reset is not a negative rate");
        assert_eq!(r.push(4_000, 15.0), Some(10.0));
    }
}
