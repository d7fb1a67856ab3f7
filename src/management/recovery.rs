//! Recovery-time accounting: how long each outage lasted, from an entity's
//! first `entity.failed` to its `entity.recovered` or to the successful
//! replacement of the failed member (`drover_recovery_seconds`).
//!
//! A plain struct fed (event, now): the actor turns what it measures into
//! the metric. No clock is read here.

use std::collections::HashMap;

use crate::protocol::EntityRef;

/// How long a failed entity that went away (removed by `replace_member`)
/// waits for the replacement's record before its open failure is dropped
/// unmeasured. The replacer records the replacement right after the old
/// member is removed; a minute covers a slow engine.
pub const GONE_FAILURE_GRACE_MS: u64 = 60_000;

/// A failure that has not ended yet.
#[derive(Debug, Clone, PartialEq)]
struct OpenFailure {
    /// The blueprint service the entity belongs to: the metric's `entity`.
    service: String,
    since_ms: u64,
    /// Set when the failed entity is removed: it may be a replacement in
    /// progress, which ends the failure when its record arrives.
    gone_ms: Option<u64>,
}

/// One measured outage.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    pub service: String,
    pub seconds: f64,
}

#[derive(Debug, Default)]
pub struct RecoveryClock {
    open: HashMap<EntityRef, OpenFailure>,
}

impl RecoveryClock {
    /// `who` failed at `since_ms`. A crash loop fails again before it ever
    /// recovers: the outage runs from the first failure.
    pub fn failed(&mut self, who: &EntityRef, service: String, since_ms: u64) {
        self.open.entry(who.clone()).or_insert(OpenFailure {
            service,
            since_ms,
            gone_ms: None,
        });
    }

    /// `who` recovered (or was replaced) at `now_ms`: its outage, if open.
    pub fn ended(&mut self, who: &EntityRef, now_ms: u64) -> Option<Recovery> {
        self.open.remove(who).map(|f| Recovery {
            service: f.service,
            seconds: now_ms.saturating_sub(f.since_ms) as f64 / 1000.0,
        })
    }

    /// `who` was removed at `now_ms`. Its outage stays open for
    /// [`GONE_FAILURE_GRACE_MS`], for the replacement's record to end it;
    /// outages of entities gone longer are dropped unmeasured.
    pub fn gone(&mut self, who: &EntityRef, now_ms: u64) {
        if let Some(f) = self.open.get_mut(who) {
            f.gone_ms = Some(now_ms);
        }
        self.open.retain(|_, f| {
            f.gone_ms
                .is_none_or(|g| now_ms.saturating_sub(g) < GONE_FAILURE_GRACE_MS)
        });
    }

    /// A destroyed application's outages end unmeasured.
    pub fn forget_app(&mut self, app: &str) {
        self.open.retain(|k, _| k.app != app);
    }

    pub fn is_open(&self, who: &EntityRef) -> bool {
        self.open.contains_key(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web1() -> EntityRef {
        EntityRef::new("shop", "web-1")
    }

    #[test]
    fn a_recovery_measures_from_the_failure() {
        let mut c = RecoveryClock::default();
        c.failed(&web1(), "web".into(), 1_000);
        assert_eq!(
            c.ended(&web1(), 3_500),
            Some(Recovery {
                service: "web".into(),
                seconds: 2.5
            })
        );
        assert_eq!(c.ended(&web1(), 4_000), None, "measured once");
    }

    #[test]
    fn a_crash_loop_measures_from_its_first_failure() {
        let mut c = RecoveryClock::default();
        c.failed(&web1(), "web".into(), 1_000);
        c.failed(&web1(), "web".into(), 2_000);
        assert_eq!(c.ended(&web1(), 5_000).unwrap().seconds, 4.0);
    }

    #[test]
    fn a_recovery_without_a_failure_measures_nothing() {
        let mut c = RecoveryClock::default();
        assert_eq!(c.ended(&web1(), 5_000), None);
    }

    #[test]
    fn a_removed_member_waits_for_its_replacement_within_the_grace() {
        let mut c = RecoveryClock::default();
        c.failed(&web1(), "web".into(), 1_000);
        c.gone(&web1(), 2_000);
        assert!(c.is_open(&web1()));
        // Another removal, later, sweeps outages gone longer than the grace.
        c.gone(
            &EntityRef::new("shop", "web-2"),
            2_000 + GONE_FAILURE_GRACE_MS - 1,
        );
        assert_eq!(c.ended(&web1(), 3_000).unwrap().seconds, 2.0);
    }

    #[test]
    fn a_removed_member_never_replaced_is_dropped_unmeasured() {
        let mut c = RecoveryClock::default();
        c.failed(&web1(), "web".into(), 1_000);
        c.gone(&web1(), 2_000);
        c.gone(
            &EntityRef::new("shop", "web-2"),
            2_000 + GONE_FAILURE_GRACE_MS,
        );
        assert!(!c.is_open(&web1()));
    }

    #[test]
    fn a_destroy_drops_the_applications_outages() {
        let mut c = RecoveryClock::default();
        c.failed(&web1(), "web".into(), 1_000);
        let other = EntityRef::new("blog", "web-1");
        c.failed(&other, "web".into(), 1_000);
        c.forget_app("shop");
        assert!(!c.is_open(&web1()) && c.is_open(&other));
    }
}
