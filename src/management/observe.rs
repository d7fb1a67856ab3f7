//! The metrics of notices and activities: failures, the end of an outage
//! (through [`super::recovery::RecoveryClock`]), restarts, replacements and
//! policy actions. The activity record and the notices are their only
//! source, so a metric never disagrees with `drover activities`.

use crate::metrics;
use crate::protocol::{now_ms, sensors as s, EntityRef};

use super::{Activity, Management};

impl Management {
    /// The metrics of a notice: failures, and the end of a recovery.
    pub(super) fn observe_notice(
        &mut self,
        source: &EntityRef,
        name: &str,
        detail: &serde_json::Value,
    ) {
        if !self.apps.contains_key(&source.app) {
            return;
        }
        let now = now_ms();
        let service = self.view.model().service_of(source);
        if name == s::ENTITY_FAILED {
            metrics::FAILURES
                .with_label_values(&[&source.app, &service])
                .inc();
            let since_ms = detail
                .get("time_ms")
                .and_then(|t| t.as_u64())
                .unwrap_or(now);
            self.recovery.failed(source, service, since_ms);
        } else if name == s::ENTITY_RECOVERED {
            self.close_failure(source, now);
        }
    }

    /// Ends an open failure of `who`, if there is one, and measures it.
    fn close_failure(&mut self, who: &EntityRef, now: u64) {
        if let Some(r) = self.recovery.ended(who, now) {
            metrics::RECOVERY_SECONDS
                .with_label_values(&[&who.app, &r.service])
                .observe(r.seconds);
            tracing::info!(app = %who.app, entity = %who.entity, service = %r.service, seconds = r.seconds, "recovered");
        }
    }

    /// The metrics of an activity: policy actions, restarts, replacements
    /// (which also end the replaced member's failure).
    pub(super) fn observe_activity(&mut self, a: &Activity) {
        if !self.apps.contains_key(&a.application) {
            return;
        }
        let app = a.application.as_str();
        if a.kind == "policy" {
            let (policy, action) = metrics::policy_and_action(&a.name);
            metrics::POLICY_ACTIONS
                .with_label_values(&[app, policy, action, &a.outcome])
                .inc();
            let reason = a.message.as_deref().unwrap_or("");
            tracing::info!(app, entity = %a.entity, policy, action, outcome = %a.outcome, reason, "policy action");
            if a.name == "restarter.restart" && a.outcome == "scheduled" {
                let service = self
                    .view
                    .model()
                    .service_of(&EntityRef::new(app, a.entity.clone()));
                metrics::RESTARTS.with_label_values(&[app, &service]).inc();
            }
        }
        let replacement = (a.kind == "policy" && a.name == "replacer.replace")
            || (a.kind == "effector" && a.name == "replace_member");
        if replacement {
            let ok = a.outcome == "ok";
            metrics::REPLACEMENTS
                .with_label_values(&[app, &a.entity, if ok { "ok" } else { "error" }])
                .inc();
            if let (true, Some(member)) = (ok, a.args.get("member").and_then(|m| m.as_str())) {
                self.close_failure(&EntityRef::new(app, member), now_ms());
            }
        }
    }
}
