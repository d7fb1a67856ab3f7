//! The restarter: restart a failed container in place, with backoff.
//!
//! Brooklyn's ServiceRestarter restarts an entity on `entity.failed` and
//! gives up when failures recur within a window; Kubernetes adds an
//! exponential back-off (10 s doubling to 5 min). We take both, with faster
//! defaults because a local restart takes a fraction of a second: the first
//! restart after a healthy period is immediate, repeated failures back off
//! (so a crash loop never makes drover spin), and too many failures in the
//! window give up and emit `entity.failed.restart` for the replacer.

use std::collections::HashMap;
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

/// What a restarter needs of an entity it watches.
pub struct Watch {
    pub target: EntityRef,
    pub subscribe: Recipient<Subscribe>,
    pub invoke: Recipient<Invoke>,
    pub notice: Recipient<EmitNotice>,
    /// What the store held for this entity's restarter, on a rebind.
    pub saved: Option<serde_json::Value>,
}

impl Message for Watch {
    type Result = ();
}

/// The entity left (a cluster member removed): its memory goes with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch(pub EntityRef);

/// One restarter policy as attached: a container's, or a cluster's for all
/// its members, present and to come.
///
/// A cluster's members share one actor. At 100,000 containers an actor per
/// member was 100,000 mailboxes and contexts doing nothing but wait for a
/// notice; what each member needs is only its restart memory below.
pub struct Restarter {
    name: String,
    cfg: RestarterConfig,
    running: bool,
    activities: Recipient<RecordActivity>,
    /// Where the policy's memory is saved (the durable store).
    store: Option<Recipient<crate::store::StoreWrite>>,
    watched: HashMap<EntityRef, Watched>,
    /// A container's own restarter stops with the container, and shows the
    /// container's restart memory as its state.
    of_one: bool,
}

/// The restarter's memory of one watched entity.
struct Watched {
    invoke: Recipient<Invoke>,
    notice: Recipient<EmitNotice>,
    history: RestartHistory,
    state: Lifecycle,
    gave_up: bool,
    pending: Option<SpawnHandle>,
}

impl Restarter {
    /// A restarter for a cluster's members, who come by [`Watch`].
    pub fn for_members(
        name: impl Into<String>,
        cfg: RestarterConfig,
        activities: Recipient<RecordActivity>,
        store: Option<Recipient<crate::store::StoreWrite>>,
    ) -> Self {
        Restarter {
            name: name.into(),
            cfg,
            running: true,
            activities,
            store,
            watched: HashMap::new(),
            of_one: false,
        }
    }

    /// The restarter of one container, started watching it.
    pub fn start_for(
        name: impl Into<String>,
        cfg: RestarterConfig,
        activities: Recipient<RecordActivity>,
        store: Option<Recipient<crate::store::StoreWrite>>,
        target: Watch,
    ) -> Addr<Restarter> {
        let mut r = Self::for_members(name, cfg, activities, store);
        r.of_one = true;
        let addr = r.start();
        addr.do_send(target);
        addr
    }

    fn record(
        &self,
        target: &EntityRef,
        name: &str,
        args: serde_json::Value,
        outcome: &str,
        message: String,
    ) {
        self.activities.do_send(RecordActivity(Activity::policy(
            &target.app,
            &target.entity,
            name,
            args,
            outcome,
            message,
        )));
    }

    fn save(&self, target: &EntityRef) {
        if let Some(w) = self.watched.get(target) {
            super::save_memory(&self.store, target, &self.name, &w.history);
        }
    }

    fn on_failed(&mut self, target: EntityRef, reason: String, ctx: &mut Context<Self>) {
        // One span per evaluation, carrying the ids every log line needs.
        let span = tracing::info_span!("policy", policy = "restarter", app = %target.app, entity = %target.entity);
        let _entered = span.enter();
        tracing::debug!(%reason, "restarter evaluating a failure");
        let running = self.running;
        let cfg = self.cfg.clone();
        let Some(w) = self.watched.get_mut(&target) else {
            return;
        };
        if w.gave_up || !running {
            return;
        }
        let decision = w.history.on_failure(now_ms(), &cfg);
        let n = w.history.failures_ms.len();
        self.save(&target);
        match decision {
            RestartDecision::RestartIn(delay) => {
                self.record(
                    &target,
                    "restarter.restart",
                    json!({ "failures_in_window": n, "delay_seconds": delay.as_secs_f64(), "reason": reason }),
                    "scheduled",
                    format!("failure {n} in {}: restart in {}", humantime::format_duration(cfg.window), humantime::format_duration(delay)),
                );
                let key = target.clone();
                let handle = ctx.run_later(delay, move |act, ctx| act.restart_now(key, ctx));
                if let Some(w) = self.watched.get_mut(&target) {
                    if let Some(h) = w.pending.replace(handle) {
                        ctx.cancel_future(h);
                    }
                }
            }
            RestartDecision::GiveUp { failures } => {
                let why = format!(
                    "{failures} failures within {} (limit {}): giving up; the entity stays on fire",
                    humantime::format_duration(cfg.window),
                    cfg.max_restarts
                );
                self.record(
                    &target,
                    "restarter.give_up",
                    json!({ "failures_in_window": failures, "reason": reason }),
                    "gave-up",
                    why.clone(),
                );
                if let Some(w) = self.watched.get_mut(&target) {
                    w.gave_up = true;
                    w.notice.do_send(EmitNotice {
                        name: s::ENTITY_FAILED_RESTART.into(),
                        detail: json!({ "reason": why }),
                    });
                }
            }
        }
    }

    fn restart_now(&mut self, target: EntityRef, ctx: &mut Context<Self>) {
        let Some(w) = self.watched.get_mut(&target) else {
            return;
        };
        w.pending = None;
        // Recovered meanwhile (someone else restarted it): nothing to do.
        if w.state != Lifecycle::OnFire {
            return;
        }
        let invoke = w.invoke.clone();
        ctx.spawn(
            async move { invoke.send(Invoke::new("restart")).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    if let Ok(Err(e)) = res {
                        act.record(
                            &target,
                            "restarter.restart",
                            json!({}),
                            "error",
                            e.to_string(),
                        );
                    }
                }),
        );
    }

    fn forget(&mut self, target: &EntityRef, ctx: &mut Context<Self>) {
        if let Some(h) = self.watched.remove(target).and_then(|w| w.pending) {
            ctx.cancel_future(h);
        }
        if self.of_one && self.watched.is_empty() {
            ctx.stop();
        }
    }
}

impl Actor for Restarter {
    type Context = Context<Self>;
}

impl Handler<Watch> for Restarter {
    type Result = ();
    fn handle(&mut self, w: Watch, ctx: &mut Context<Self>) {
        // Failures come as notices and state: no sensor is of use here.
        w.subscribe
            .do_send(Subscribe(ctx.address().recipient(), Interest::NoSensors));
        let was = self.watched.insert(
            w.target,
            Watched {
                invoke: w.invoke,
                notice: w.notice,
                history: super::restore_memory(w.saved).unwrap_or_default(),
                state: Lifecycle::Created,
                gave_up: false,
                pending: None,
            },
        );
        // Watched again (a member of the same name made again): a restart
        // the old one had scheduled is not this one's.
        if let Some(h) = was.and_then(|w| w.pending) {
            ctx.cancel_future(h);
        }
    }
}

impl Handler<Unwatch> for Restarter {
    type Result = ();
    fn handle(&mut self, Unwatch(target): Unwatch, ctx: &mut Context<Self>) {
        self.forget(&target, ctx);
    }
}

impl Handler<EntityEvent> for Restarter {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::State { source, state, .. } => {
                if let Some(w) = self.watched.get_mut(&source) {
                    w.state = state;
                }
            }
            EntityEvent::Notice {
                source,
                name,
                detail,
            } if name == s::ENTITY_FAILED => {
                let reason = detail
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("failed")
                    .to_string();
                self.on_failed(source, reason, ctx);
            }
            EntityEvent::Notice { source, name, .. } if name == s::ENTITY_RECOVERED => {
                if let Some(w) = self.watched.get_mut(&source) {
                    w.history.on_recovered(now_ms());
                    w.gave_up = false;
                    self.save(&source);
                }
            }
            EntityEvent::Gone { source } => self.forget(&source, ctx),
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

    /// Stands in for a watched container: counts restarts and notices.
    #[derive(Default)]
    struct FakeEntity {
        restarts: usize,
        notices: Vec<String>,
    }
    impl Actor for FakeEntity {
        type Context = Context<Self>;
    }
    impl Handler<Subscribe> for FakeEntity {
        type Result = ();
        fn handle(&mut self, _: Subscribe, _: &mut Context<Self>) {}
    }
    impl Handler<Invoke> for FakeEntity {
        type Result = Result<serde_json::Value, crate::protocol::EntityError>;
        fn handle(&mut self, i: Invoke, _: &mut Context<Self>) -> Self::Result {
            assert_eq!(i.effector, "restart");
            self.restarts += 1;
            Ok(json!({}))
        }
    }
    impl Handler<EmitNotice> for FakeEntity {
        type Result = ();
        fn handle(&mut self, n: EmitNotice, _: &mut Context<Self>) {
            self.notices.push(n.name);
        }
    }
    #[derive(Message)]
    #[rtype(result = "(usize, Vec<String>)")]
    struct Seen;
    impl Handler<Seen> for FakeEntity {
        type Result = MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
            MessageResult((self.restarts, self.notices.clone()))
        }
    }
    struct NoActivities;
    impl Actor for NoActivities {
        type Context = Context<Self>;
    }
    impl Handler<RecordActivity> for NoActivities {
        type Result = ();
        fn handle(&mut self, _: RecordActivity, _: &mut Context<Self>) {}
    }

    fn failed(source: &EntityRef) -> EntityEvent {
        EntityEvent::Notice {
            source: source.clone(),
            name: s::ENTITY_FAILED.into(),
            detail: json!({ "reason": "exited" }),
        }
    }

    fn on_fire(source: &EntityRef) -> EntityEvent {
        EntityEvent::State {
            source: source.clone(),
            kind: crate::protocol::EntityKind::Container,
            state: Lifecycle::OnFire,
        }
    }

    /// Waits (up to a generous second: a restart's zero delay is still a
    /// timer, due at the next millisecond) until `e` has seen `want`, and
    /// returns what it saw.
    async fn seen(e: &Addr<FakeEntity>, want: (usize, usize)) -> (usize, Vec<String>) {
        let mut got = e.send(Seen).await.unwrap();
        for _ in 0..200 {
            if (got.0, got.1.len()) == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            got = e.send(Seen).await.unwrap();
        }
        got
    }

    #[actix::test]
    async fn one_restarter_keeps_each_members_memory_apart() {
        // No delays: the test is about whose restart is whose.
        let c = RestarterConfig {
            backoff_start: Duration::ZERO,
            max_restarts: 2,
            ..cfg()
        };
        let r =
            Restarter::for_members("restarter", c, NoActivities.start().recipient(), None).start();
        let (a, b) = (FakeEntity::default().start(), FakeEntity::default().start());
        let (ra, rb) = (
            EntityRef::new("app", "web-0"),
            EntityRef::new("app", "web-1"),
        );
        for (target, e) in [(&ra, &a), (&rb, &b)] {
            r.do_send(Watch {
                target: target.clone(),
                subscribe: e.clone().recipient(),
                invoke: e.clone().recipient(),
                notice: e.clone().recipient(),
                saved: None,
            });
            r.do_send(on_fire(target));
        }
        // Three failures of web-0 in the window, each after the restart
        // before it: two restarts, then it gives up on web-0 alone.
        r.do_send(failed(&ra));
        assert_eq!(seen(&a, (1, 0)).await, (1, vec![]));
        r.do_send(failed(&ra));
        r.do_send(failed(&rb));
        assert_eq!(seen(&a, (2, 0)).await, (2, vec![]));
        r.do_send(failed(&ra));
        let (restarts, notices) = seen(&a, (2, 1)).await;
        assert_eq!(restarts, 2);
        assert_eq!(notices, vec![s::ENTITY_FAILED_RESTART.to_string()]);
        assert_eq!(seen(&b, (1, 0)).await, (1, vec![]));

        // A member that left is forgotten: its failures restart nothing.
        r.do_send(Unwatch(rb.clone()));
        r.do_send(failed(&rb));
        let status = r
            .send(super::super::PolicyControl {
                policy: "restarter".into(),
                op: super::super::PolicyOp::Get,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.state, json!({ "members": 1 }));
        assert_eq!(seen(&b, (2, 0)).await, (1, vec![]));
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
        let state = match self.watched.values().next() {
            Some(one) if self.of_one => serde_json::to_value(&one.history).unwrap_or_default(),
            _ => json!({ "members": self.watched.len() }),
        };
        Ok(super::PolicyStatus::of(
            &self.name,
            &super::PolicyConfig::Restarter(self.cfg.clone()),
            self.running,
            state,
        ))
    }
}
