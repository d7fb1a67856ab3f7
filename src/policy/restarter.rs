//! The restarter: restart a failed container in place, with backoff.
//!
//! Brooklyn's ServiceRestarter restarts an entity on `entity.failed` and
//! gives up when failures recur within a window; Kubernetes adds an
//! exponential back-off (10 s doubling to 5 min). We take both, with faster
//! defaults because a local restart takes a fraction of a second: the first
//! restart after a healthy period is immediate, repeated failures back off
//! (so a crash loop never makes drover spin), and too many failures in the
//! window give up and emit `entity.failed.restart` for the replacer.

use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::activity::{Activity, RecordActivity};
use crate::protocol::{
    now_ms, sensors as s, EmitNotice, EntityEvent, EntityRef, Interest, Invoke, Lifecycle,
    Subscribe,
};

/// Tunables of the restarter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestarterConfig {
    /// Delay before the first restart after a healthy period. Default `0s`.
    #[serde(default, with = "super::dur")]
    pub initial_delay: Duration,
    /// Delay before the second restart in a row; later ones multiply it by
    /// `backoff_factor`. Default `100ms`.
    #[serde(default = "default_backoff_start", with = "super::dur")]
    pub backoff_start: Duration,
    /// Default `2.0`.
    #[serde(default = "default_backoff_factor")]
    pub backoff_factor: f64,
    /// The longest delay. Default `30s`.
    #[serde(default = "default_backoff_cap", with = "super::dur")]
    pub backoff_cap: Duration,
    /// Give up after more than this many failures within `window`. Default `5`.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Default `60s`.
    #[serde(default = "default_window", with = "super::dur")]
    pub window: Duration,
    /// A failure after this long healthy starts afresh: history and backoff
    /// reset. Default `10s` (Kubernetes resets after 10 min; our restarts
    /// are cheap, and a chaos run kills members every few seconds).
    #[serde(default = "default_reset_after", with = "super::dur")]
    pub reset_after: Duration,
}

fn default_backoff_start() -> Duration {
    Duration::from_millis(100)
}
fn default_backoff_factor() -> f64 {
    2.0
}
fn default_backoff_cap() -> Duration {
    Duration::from_secs(30)
}
fn default_max_restarts() -> u32 {
    5
}
fn default_window() -> Duration {
    Duration::from_secs(60)
}
fn default_reset_after() -> Duration {
    Duration::from_secs(10)
}

impl Default for RestarterConfig {
    fn default() -> Self {
        RestarterConfig {
            initial_delay: Duration::ZERO,
            backoff_start: default_backoff_start(),
            backoff_factor: default_backoff_factor(),
            backoff_cap: default_backoff_cap(),
            max_restarts: default_max_restarts(),
            window: default_window(),
            reset_after: default_reset_after(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartDecision {
    RestartIn(Duration),
    GiveUp { failures: usize },
}

/// What the restarter remembers (and the store keeps across restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartHistory {
    /// Failure times (ms) within the window.
    pub failures_ms: Vec<u64>,
    /// When the entity last recovered, if it is healthy now.
    pub healthy_since_ms: Option<u64>,
}

/// The delay before restart number `n` (1-based) of a run of failures.
pub fn backoff(n: usize, cfg: &RestarterConfig) -> Duration {
    if n <= 1 {
        return cfg.initial_delay;
    }
    let factor = cfg.backoff_factor.max(1.0).powi((n - 2).min(64) as i32);
    let d = cfg.backoff_start.as_secs_f64() * factor;
    // `try_from`: a cap beyond what a Duration holds as f64 (say
    // `18446744073709551615s`, refused by validation but possible in a
    // stored config) must not panic the restarter: the cap itself is the
    // answer then.
    Duration::try_from_secs_f64(d.min(cfg.backoff_cap.as_secs_f64())).unwrap_or(cfg.backoff_cap)
}

impl RestartHistory {
    pub fn on_recovered(&mut self, now_ms: u64) {
        self.healthy_since_ms = Some(now_ms);
    }

    /// Records a failure and decides (pure over history, config and time).
    pub fn on_failure(&mut self, now_ms: u64, cfg: &RestarterConfig) -> RestartDecision {
        if let Some(h) = self.healthy_since_ms.take() {
            if now_ms.saturating_sub(h) >= cfg.reset_after.as_millis() as u64 {
                self.failures_ms.clear();
            }
        }
        let window = cfg.window.as_millis() as u64;
        self.failures_ms
            .retain(|t| now_ms.saturating_sub(*t) < window);
        self.failures_ms.push(now_ms);
        let n = self.failures_ms.len();
        if n > cfg.max_restarts as usize {
            RestartDecision::GiveUp { failures: n }
        } else {
            RestartDecision::RestartIn(backoff(n, cfg))
        }
    }
}

/// One restarter per container entity.
pub struct Restarter {
    target: EntityRef,
    subscribe: Recipient<Subscribe>,
    invoke: Recipient<Invoke>,
    notice: Recipient<EmitNotice>,
    activities: Recipient<RecordActivity>,
    cfg: RestarterConfig,
    name: String,
    running: bool,
    history: RestartHistory,
    state: Lifecycle,
    gave_up: bool,
    pending: Option<SpawnHandle>,
    /// Where the policy's memory is saved (the durable store).
    store: Option<actix::Recipient<crate::store::StoreWrite>>,
}

impl Restarter {
    pub fn new(
        target: EntityRef,
        subscribe: Recipient<Subscribe>,
        invoke: Recipient<Invoke>,
        notice: Recipient<EmitNotice>,
        activities: Recipient<RecordActivity>,
        cfg: RestarterConfig,
    ) -> Self {
        Restarter {
            store: None,
            target,
            subscribe,
            invoke,
            notice,
            activities,
            cfg,
            name: "restarter".into(),
            running: true,
            history: RestartHistory::default(),
            state: Lifecycle::Created,
            gave_up: false,
            pending: None,
        }
    }

    fn record(&self, name: &str, args: serde_json::Value, outcome: &str, message: String) {
        self.activities.do_send(RecordActivity(Activity::policy(
            &self.target.app,
            &self.target.entity,
            name,
            args,
            outcome,
            message,
        )));
    }

    fn on_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        // One span per evaluation, carrying the ids every log line needs.
        let span = tracing::info_span!("policy", policy = "restarter", app = %self.target.app, entity = %self.target.entity);
        let _entered = span.enter();
        tracing::debug!(%reason, "restarter evaluating a failure");
        if self.gave_up || !self.running {
            return;
        }
        let now = now_ms();
        let decision = self.history.on_failure(now, &self.cfg);
        self.save();
        match decision {
            RestartDecision::RestartIn(delay) => {
                let n = self.history.failures_ms.len();
                self.record(
                    "restarter.restart",
                    json!({ "failures_in_window": n, "delay_seconds": delay.as_secs_f64(), "reason": reason }),
                    "scheduled",
                    format!("failure {n} in {}: restart in {}", humantime::format_duration(self.cfg.window), humantime::format_duration(delay)),
                );
                if let Some(h) = self.pending.take() {
                    ctx.cancel_future(h);
                }
                self.pending = Some(ctx.run_later(delay, |act, ctx| {
                    act.pending = None;
                    // Recovered meanwhile (someone else restarted it): nothing to do.
                    if act.state != Lifecycle::OnFire {
                        return;
                    }
                    let invoke = act.invoke.clone();
                    ctx.spawn(
                        async move { invoke.send(Invoke::new("restart")).await }
                            .into_actor(act)
                            .map(|res, act, _| {
                                if let Ok(Err(e)) = res {
                                    act.record(
                                        "restarter.restart",
                                        json!({}),
                                        "error",
                                        e.to_string(),
                                    );
                                }
                            }),
                    );
                }));
            }
            RestartDecision::GiveUp { failures } => {
                self.gave_up = true;
                let why = format!(
                    "{failures} failures within {} (limit {}): giving up; the entity stays on fire",
                    humantime::format_duration(self.cfg.window),
                    self.cfg.max_restarts
                );
                self.record(
                    "restarter.give_up",
                    json!({ "failures_in_window": failures, "reason": reason }),
                    "gave-up",
                    why.clone(),
                );
                self.notice.do_send(EmitNotice {
                    name: s::ENTITY_FAILED_RESTART.into(),
                    detail: json!({ "reason": why }),
                });
            }
        }
    }
}

impl Restarter {
    /// The policy's name as attached (its preset's, or its kind).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Actor for Restarter {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // Failures come as notices and state: no sensor is of use here.
        self.subscribe
            .do_send(Subscribe(ctx.address().recipient(), Interest::NoSensors));
    }
}

impl Handler<EntityEvent> for Restarter {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::State { state, .. } => self.state = state,
            EntityEvent::Notice { name, detail, .. } if name == s::ENTITY_FAILED => {
                let reason = detail
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("failed")
                    .to_string();
                self.on_failed(reason, ctx);
            }
            EntityEvent::Notice { name, .. } if name == s::ENTITY_RECOVERED => {
                self.history.on_recovered(now_ms());
                self.save();
                self.gave_up = false;
            }
            EntityEvent::Gone { .. } => ctx.stop(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> RestarterConfig {
        RestarterConfig::default()
    }

    #[test]
    fn first_restart_is_immediate_then_backs_off_then_gives_up() {
        let c = cfg();
        let mut h = RestartHistory::default();
        let mut delays = vec![];
        for t in 0..5 {
            match h.on_failure(t * 100, &c) {
                RestartDecision::RestartIn(d) => delays.push(d.as_millis()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(delays, vec![0, 100, 200, 400, 800]);
        assert_eq!(
            h.on_failure(600, &c),
            RestartDecision::GiveUp { failures: 6 }
        );
    }

    #[test]
    fn a_long_healthy_period_resets_the_backoff() {
        let c = cfg();
        let mut h = RestartHistory::default();
        h.on_failure(0, &c);
        h.on_failure(100, &c);
        h.on_recovered(200);
        // Healthy for 10 s: the next failure is a first failure again.
        assert_eq!(
            h.on_failure(10_200, &c),
            RestartDecision::RestartIn(Duration::ZERO)
        );
    }

    #[test]
    fn a_short_healthy_period_does_not_reset() {
        let c = cfg();
        let mut h = RestartHistory::default();
        h.on_failure(0, &c);
        h.on_recovered(100);
        assert_eq!(
            h.on_failure(1_000, &c),
            RestartDecision::RestartIn(Duration::from_millis(100))
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let c = RestarterConfig {
            max_restarts: 1,
            reset_after: Duration::from_secs(3600),
            ..cfg()
        };
        let mut h = RestartHistory::default();
        h.on_failure(0, &c);
        assert_eq!(
            h.on_failure(61_000, &c),
            RestartDecision::RestartIn(Duration::ZERO)
        );
        assert!(matches!(
            h.on_failure(61_500, &c),
            RestartDecision::GiveUp { .. }
        ));
    }

    proptest! {
        #[test]
        fn backoff_never_exceeds_the_cap_and_never_shrinks(n in 1usize..200, start_ms in 1u64..5_000, factor in 1.0f64..10.0, cap_ms in 1u64..100_000) {
            let c = RestarterConfig { backoff_start: Duration::from_millis(start_ms), backoff_factor: factor, backoff_cap: Duration::from_millis(cap_ms), ..cfg() };
            prop_assert!(backoff(n, &c) <= c.backoff_cap.max(c.initial_delay));
            if n >= 2 {
                prop_assert!(backoff(n + 1, &c) >= backoff(n, &c));
            }
        }

        #[test]
        fn restarts_in_a_window_are_bounded(times in proptest::collection::vec(0u64..120_000, 1..100)) {
            let c = cfg();
            let mut sorted = times.clone();
            sorted.sort();
            let mut h = RestartHistory::default();
            let mut restarts_in_window: Vec<u64> = vec![];
            for t in sorted {
                if let RestartDecision::RestartIn(_) = h.on_failure(t, &c) {
                    restarts_in_window.retain(|x| t - x < 60_000);
                    restarts_in_window.push(t);
                    prop_assert!(restarts_in_window.len() <= c.max_restarts as usize);
                }
            }
        }
    }
}

impl Handler<super::PolicyControl> for Restarter {
    type Result = Result<super::PolicyStatus, super::PolicyError>;
    fn handle(&mut self, msg: super::PolicyControl, _: &mut Context<Self>) -> Self::Result {
        match msg.op {
            super::PolicyOp::Get => {}
            super::PolicyOp::Set(super::PolicyConfig::Restarter(c)) => self.cfg = c,
            super::PolicyOp::Set(other) => {
                return Err(super::PolicyError::wrong_kind("restarter", &other))
            }
            super::PolicyOp::Start => self.running = true,
            super::PolicyOp::Stop => self.running = false,
        }
        Ok(super::PolicyStatus::of(
            &self.name,
            &super::PolicyConfig::Restarter(self.cfg.clone()),
            self.running,
            serde_json::to_value(&self.history).unwrap_or_default(),
        ))
    }
}

impl Restarter {
    /// Saves the policy's memory to the store on every change, starting
    /// from `saved` (what the store held for it at start, on a rebind).
    pub fn persisted(
        mut self,
        store: Option<actix::Recipient<crate::store::StoreWrite>>,
        saved: Option<serde_json::Value>,
    ) -> Self {
        if let Some(h) = super::restore_memory::<RestartHistory>(saved) {
            self.history = h;
        }
        self.store = store;
        self
    }

    fn save(&self) {
        super::save_memory(&self.store, &self.target, &self.name, &self.history);
    }
}
