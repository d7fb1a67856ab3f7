//! Notice de-duplication: a cluster forwards its members' notices to its
//! own subscribers, and the management actor subscribes to both, so each
//! member notice arrives twice. The copy is dropped; an identical notice
//! later is a new one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Notices remembered per entity.
const RECENT_NOTICES: usize = 8;

/// The forwarded copy of a notice arrives one mailbox hop after the
/// original, within milliseconds; an identical notice later than this is a
/// new one (a second give-up with the same reason, say).
pub const NOTICE_ECHO_WINDOW: Duration = Duration::from_secs(2);

/// The last few notices of one entity.
#[derive(Debug, Default)]
pub struct NoticeEchoes {
    recent: VecDeque<(String, serde_json::Value, Instant)>,
}

impl NoticeEchoes {
    /// True for a new notice (remembered), false for the echo of one seen
    /// within [`NOTICE_ECHO_WINDOW`] before `now`.
    pub fn is_new(&mut self, name: &str, detail: &serde_json::Value, now: Instant) -> bool {
        let echo = self.recent.iter().any(|(n, d, at)| {
            n == name && d == detail && now.saturating_duration_since(*at) < NOTICE_ECHO_WINDOW
        });
        if echo {
            return false;
        }
        self.recent
            .push_back((name.to_string(), detail.clone(), now));
        if self.recent.len() > RECENT_NOTICES {
            self.recent.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_forwarded_copy_is_dropped() {
        let mut n = NoticeEchoes::default();
        let t = Instant::now();
        let d = json!({ "reason": "exit 1" });
        assert!(n.is_new("entity.failed", &d, t));
        assert!(!n.is_new("entity.failed", &d, t + Duration::from_millis(5)));
    }

    #[test]
    fn the_same_notice_after_the_window_is_new() {
        let mut n = NoticeEchoes::default();
        let t = Instant::now();
        let d = json!({ "reason": "exit 1" });
        assert!(n.is_new("entity.failed", &d, t));
        assert!(n.is_new("entity.failed", &d, t + NOTICE_ECHO_WINDOW));
    }

    #[test]
    fn a_different_name_or_detail_is_new() {
        let mut n = NoticeEchoes::default();
        let t = Instant::now();
        assert!(n.is_new("entity.failed", &json!({ "reason": "a" }), t));
        assert!(n.is_new("entity.failed", &json!({ "reason": "b" }), t));
        assert!(n.is_new("entity.recovered", &json!({ "reason": "a" }), t));
    }

    #[test]
    fn only_the_last_few_are_remembered() {
        let mut n = NoticeEchoes::default();
        let t = Instant::now();
        for i in 0..=RECENT_NOTICES {
            assert!(n.is_new("x", &json!(i), t));
        }
        assert!(n.is_new("x", &json!(0), t), "the oldest was forgotten");
        assert!(!n.is_new("x", &json!(RECENT_NOTICES), t));
    }
}
