//! The replacer: replace a cluster member that cannot be restarted.
//!
//! Brooklyn's ServiceReplacer: on a member's `entity.failed.restart` (or
//! on `entity.failed`, by config) call the cluster's `replace_member`, which
//! starts the new member before removing the old. Replacements that keep
//! failing (a bad image, a broken host) stop it: too many failures within a
//! window put the cluster on fire with the reason, instead of churning.

use std::collections::BTreeSet;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::activity::{Activity, RecordActivity};
use crate::protocol::{
    now_ms, sensors as s, EntityError, EntityEvent, EntityRef, Interest, Invoke, MarkProblem,
    Subscribe,
};

/// Which member event triggers a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// After the restarter gave up (default): restart first, replace second.
    #[serde(rename = "entity.failed.restart")]
    FailedRestart,
    /// At once on failure; the restarter then leaves the members alone.
    #[serde(rename = "entity.failed")]
    Failed,
}

/// Tunables of the replacer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacerConfig {
    /// Default `entity.failed.restart`.
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    /// Stop after this many failed replacements within `window`. Default `3`.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Default `10m`.
    #[serde(default = "default_window", with = "super::dur")]
    pub window: Duration,
    /// Wait before retrying a failed replacement; doubles each time. Default `1s`.
    #[serde(default = "default_retry_delay", with = "super::dur")]
    pub retry_delay: Duration,
}

fn default_trigger() -> Trigger {
    Trigger::FailedRestart
}
fn default_max_failures() -> u32 {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(600)
}
fn default_retry_delay() -> Duration {
    Duration::from_secs(1)
}

impl Default for ReplacerConfig {
    fn default() -> Self {
        ReplacerConfig {
            trigger: default_trigger(),
            max_failures: default_max_failures(),
            window: default_window(),
            retry_delay: default_retry_delay(),
        }
    }
}

/// What the replacer remembers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplacerHistory {
    pub failures_ms: Vec<u64>,
    pub stopped: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplaceDecision {
    RetryIn(Duration),
    Stop(String),
}

impl ReplacerHistory {
    /// Records a failed replacement and decides (pure).
    pub fn on_failure(&mut self, now_ms: u64, cfg: &ReplacerConfig) -> ReplaceDecision {
        let window = cfg.window.as_millis() as u64;
        self.failures_ms
            .retain(|t| now_ms.saturating_sub(*t) < window);
        self.failures_ms.push(now_ms);
        let n = self.failures_ms.len();
        if n >= cfg.max_failures as usize {
            let why = format!(
                "{n} replacements failed within {} (limit {}): the replacer stopped",
                humantime::format_duration(cfg.window),
                cfg.max_failures
            );
            self.stopped = Some(why.clone());
            ReplaceDecision::Stop(why)
        } else {
            let d = cfg.retry_delay.as_secs_f64() * 2f64.powi(n as i32 - 1);
            ReplaceDecision::RetryIn(Duration::from_secs_f64(d.min(300.0)))
        }
    }
}

pub struct Replacer {
    cluster: EntityRef,
    subscribe: Recipient<Subscribe>,
    invoke: Recipient<Invoke>,
    problem: Recipient<MarkProblem>,
    activities: Recipient<RecordActivity>,
    cfg: ReplacerConfig,
    name: String,
    running: bool,
    history: ReplacerHistory,
    in_flight: BTreeSet<String>,
    /// Where the policy's memory is saved (the durable store).
    store: Option<actix::Recipient<crate::store::StoreWrite>>,
}

impl Replacer {
    pub fn new(
        cluster: EntityRef,
        subscribe: Recipient<Subscribe>,
        invoke: Recipient<Invoke>,
        problem: Recipient<MarkProblem>,
        activities: Recipient<RecordActivity>,
        cfg: ReplacerConfig,
    ) -> Self {
        Replacer {
            store: None,
            cluster,
            subscribe,
            invoke,
            problem,
            activities,
            cfg,
            name: "replacer".into(),
            running: true,
            history: ReplacerHistory::default(),
            in_flight: BTreeSet::new(),
        }
    }

    fn record(&self, name: &str, args: serde_json::Value, outcome: &str, message: String) {
        self.activities.do_send(RecordActivity(Activity::policy(
            &self.cluster.app,
            &self.cluster.entity,
            name,
            args,
            outcome,
            message,
        )));
    }

    fn replace(&mut self, member: String, reason: String, ctx: &mut Context<Self>) {
        // One span per evaluation, carrying the ids every log line needs.
        let span = tracing::info_span!("policy", policy = "replacer", app = %self.cluster.app, entity = %self.cluster.entity, %member);
        let _entered = span.enter();
        tracing::debug!(%reason, "replacer evaluating a failed member");
        if !self.running {
            self.record(
                "replacer.skip",
                json!({ "member": member }),
                "stopped",
                "the policy is stopped".into(),
            );
            return;
        }
        if let Some(why) = &self.history.stopped {
            self.record(
                "replacer.skip",
                json!({ "member": member }),
                "stopped",
                why.clone(),
            );
            return;
        }
        if !self.in_flight.insert(member.clone()) {
            return;
        }
        let invoke = self.invoke.clone();
        let args = json!({ "member": member });
        let t0 = std::time::Instant::now();
        ctx.spawn(
            async move { invoke.send(Invoke::with_args("replace_member", args)).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.in_flight.remove(&member);
                    let res =
                        res.unwrap_or_else(|e| Err(EntityError::unreachable(&act.cluster, e)));
                    match res {
                        Ok(v) => {
                            let new = v
                                .get("new")
                                .and_then(|n| n.as_str())
                                .unwrap_or("?")
                                .to_string();
                            let mut a = Activity::policy(
                                &act.cluster.app,
                                &act.cluster.entity,
                                "replacer.replace",
                                json!({ "member": member, "new": new, "reason": reason }),
                                "ok",
                                format!("replaced {member} with {new}: {reason}"),
                            );
                            a.duration_seconds = t0.elapsed().as_secs_f64();
                            act.activities.do_send(RecordActivity(a));
                        }
                        // The member is already gone (resized away): nothing to do.
                        Err(EntityError::NoSuchMember { .. }) => {}
                        Err(e) => match {
                            let d = act.history.on_failure(now_ms(), &act.cfg);
                            act.save();
                            d
                        } {
                            ReplaceDecision::RetryIn(d) => {
                                act.record(
                                    "replacer.replace",
                                    json!({ "member": member }),
                                    "error",
                                    format!("{e}; retrying in {}", humantime::format_duration(d)),
                                );
                                ctx.run_later(d, move |act, ctx| act.replace(member, reason, ctx));
                            }
                            ReplaceDecision::Stop(why) => {
                                act.record(
                                    "replacer.stop",
                                    json!({ "member": member }),
                                    "stopped",
                                    format!("{why}; last error: {e}"),
                                );
                                act.problem.do_send(MarkProblem(Some(why)));
                            }
                        },
                    }
                }),
        );
    }
}

impl Replacer {
    /// The policy's name as attached (its preset's, or its kind).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Actor for Replacer {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        // Failures come as notices: no sensor is of use here.
        self.subscribe
            .do_send(Subscribe(ctx.address().recipient(), Interest::NoSensors));
    }
}

impl Handler<EntityEvent> for Replacer {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::Notice {
                source,
                name,
                detail,
            } if source != self.cluster => {
                let wanted = match self.cfg.trigger {
                    Trigger::FailedRestart => s::ENTITY_FAILED_RESTART,
                    Trigger::Failed => s::ENTITY_FAILED,
                };
                if name == wanted {
                    let reason = detail
                        .get("reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or(&name)
                        .to_string();
                    self.replace(source.entity.clone(), reason, ctx);
                }
            }
            EntityEvent::Gone { source } if source == self.cluster => ctx.stop(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_the_failure_limit_within_the_window() {
        let c = ReplacerConfig::default();
        let mut h = ReplacerHistory::default();
        assert_eq!(
            h.on_failure(0, &c),
            ReplaceDecision::RetryIn(Duration::from_secs(1))
        );
        assert_eq!(
            h.on_failure(1_000, &c),
            ReplaceDecision::RetryIn(Duration::from_secs(2))
        );
        assert!(matches!(h.on_failure(3_000, &c), ReplaceDecision::Stop(_)));
        assert!(h.stopped.is_some());
    }

    #[test]
    fn old_failures_fall_out_of_the_window() {
        let c = ReplacerConfig::default();
        let mut h = ReplacerHistory::default();
        h.on_failure(0, &c);
        h.on_failure(1, &c);
        assert!(matches!(
            h.on_failure(700_000, &c),
            ReplaceDecision::RetryIn(_)
        ));
    }

    #[test]
    fn trigger_names_are_the_event_names() {
        let c: ReplacerConfig = serde_yaml::from_str("trigger: entity.failed\n").unwrap();
        assert_eq!(c.trigger, Trigger::Failed);
        assert!(serde_yaml::from_str::<ReplacerConfig>("trigger: sometimes\n").is_err());
    }
}

impl Handler<super::PolicyControl> for Replacer {
    type Result = Result<super::PolicyStatus, super::PolicyError>;
    fn handle(&mut self, msg: super::PolicyControl, _: &mut Context<Self>) -> Self::Result {
        match msg.op {
            super::PolicyOp::Get => {}
            super::PolicyOp::Set(super::PolicyConfig::Replacer(c)) => self.cfg = c,
            super::PolicyOp::Set(other) => {
                return Err(super::PolicyError::wrong_kind("replacer", &other))
            }
            super::PolicyOp::Start => self.running = true,
            super::PolicyOp::Stop => self.running = false,
        }
        Ok(super::PolicyStatus::of(
            &self.name,
            &super::PolicyConfig::Replacer(self.cfg.clone()),
            self.running,
            serde_json::to_value(&self.history).unwrap_or_default(),
        ))
    }
}

impl Replacer {
    /// Saves the policy's memory to the store on every change, starting
    /// from `saved` (what the store held for it at start, on a rebind).
    pub fn persisted(
        mut self,
        store: Option<actix::Recipient<crate::store::StoreWrite>>,
        saved: Option<serde_json::Value>,
    ) -> Self {
        if let Some(h) = super::restore_memory::<ReplacerHistory>(saved) {
            self.history = h;
        }
        self.store = store;
        self
    }

    fn save(&self) {
        super::save_memory(&self.store, &self.cluster, &self.name, &self.history);
    }
}
