//! The failure detector's verdict, as a pure state machine.
//!
//! Brooklyn's ServiceFailureDetector semantics: an entity that goes
//! `on-fire` is reported failed (`entity.failed`) once it has stayed so for
//! the failed-stabilization delay; once it is `running` again for the
//! recovered-stabilization delay it is reported recovered
//! (`entity.recovered`). Each new attempt (a restart puts the entity back in
//! `starting`) can fail anew, so a failed restart is reported again: that is
//! what drives the restarter's backoff. Time comes in as an argument.

use crate::protocol::Lifecycle;

/// Tunables of the failure detector (blueprint key `failure_detector`).
pub type FailureDetectorConfig = crate::blueprint::FailureDetectorSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Nothing,
    Failed,
    Recovered,
    /// Look again at this time (ms): a stabilization delay is running.
    CheckAt(u64),
}

#[derive(Debug, Clone, Default)]
pub struct FailureDetector {
    cfg: FailureDetectorConfig,
    /// A failure was reported and no recovery since.
    failed_reported: bool,
    /// The current on-fire episode was reported.
    episode_reported: bool,
    /// Since when the entity is in its current state (on-fire or running).
    since_ms: Option<u64>,
    state: Option<Lifecycle>,
}

impl FailureDetector {
    pub fn new(cfg: FailureDetectorConfig) -> Self {
        FailureDetector {
            cfg,
            ..Default::default()
        }
    }

    pub fn failed(&self) -> bool {
        self.failed_reported
    }

    /// The entity's state changed.
    pub fn observe(&mut self, state: Lifecycle, now_ms: u64) -> Verdict {
        if self.state != Some(state) {
            self.state = Some(state);
            self.since_ms = Some(now_ms);
            if state == Lifecycle::Starting {
                self.episode_reported = false;
            }
        }
        self.tick(now_ms)
    }

    /// Time passed; decides whether a stabilization delay has run out.
    pub fn tick(&mut self, now_ms: u64) -> Verdict {
        let since = self.since_ms.unwrap_or(now_ms);
        match self.state {
            Some(Lifecycle::OnFire) if !self.episode_reported => {
                let due = since.saturating_add(
                    u64::try_from(self.cfg.failed_stabilization.as_millis()).unwrap_or(u64::MAX),
                );
                if now_ms >= due {
                    self.episode_reported = true;
                    self.failed_reported = true;
                    Verdict::Failed
                } else {
                    Verdict::CheckAt(due)
                }
            }
            Some(Lifecycle::Running) if self.failed_reported => {
                let due = since.saturating_add(
                    u64::try_from(self.cfg.recovered_stabilization.as_millis()).unwrap_or(u64::MAX),
                );
                if now_ms >= due {
                    self.failed_reported = false;
                    self.episode_reported = false;
                    Verdict::Recovered
                } else {
                    Verdict::CheckAt(due)
                }
            }
            // Stopping on purpose ends an episode without a verdict.
            Some(Lifecycle::Stopping | Lifecycle::Stopped) => {
                self.failed_reported = false;
                self.episode_reported = false;
                Verdict::Nothing
            }
            _ => Verdict::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use Lifecycle::*;

    #[test]
    fn reports_failure_at_once_by_default_and_recovery_after() {
        let mut d = FailureDetector::default();
        assert_eq!(d.observe(Starting, 0), Verdict::Nothing);
        assert_eq!(d.observe(Running, 10), Verdict::Nothing);
        assert_eq!(d.observe(OnFire, 20), Verdict::Failed);
        assert_eq!(d.tick(30), Verdict::Nothing, "one report per episode");
        assert_eq!(d.observe(Running, 40), Verdict::Recovered);
        assert_eq!(d.tick(50), Verdict::Nothing);
    }

    #[test]
    fn a_failed_restart_is_a_new_failure() {
        let mut d = FailureDetector::default();
        d.observe(Running, 0);
        assert_eq!(d.observe(OnFire, 1), Verdict::Failed);
        assert_eq!(d.observe(Starting, 2), Verdict::Nothing);
        assert_eq!(d.observe(OnFire, 3), Verdict::Failed);
        assert_eq!(d.observe(Starting, 4), Verdict::Nothing);
        assert_eq!(d.observe(Running, 5), Verdict::Recovered);
    }

    #[test]
    fn stabilization_delays_hold_verdicts_back() {
        let cfg = FailureDetectorConfig {
            failed_stabilization: Duration::from_millis(100),
            recovered_stabilization: Duration::from_millis(50),
        };
        let mut d = FailureDetector::new(cfg);
        d.observe(Running, 0);
        assert_eq!(d.observe(OnFire, 1000), Verdict::CheckAt(1100));
        assert_eq!(d.tick(1099), Verdict::CheckAt(1100));
        assert_eq!(d.tick(1100), Verdict::Failed);
        assert_eq!(d.observe(Running, 1200), Verdict::CheckAt(1250));
        assert_eq!(d.tick(1250), Verdict::Recovered);
    }

    #[test]
    fn a_blip_shorter_than_the_stabilization_is_not_reported() {
        let cfg = FailureDetectorConfig {
            failed_stabilization: Duration::from_millis(100),
            ..Default::default()
        };
        let mut d = FailureDetector::new(cfg);
        d.observe(Running, 0);
        assert_eq!(d.observe(OnFire, 10), Verdict::CheckAt(110));
        assert_eq!(d.observe(Running, 50), Verdict::Nothing);
        assert_eq!(d.tick(200), Verdict::Nothing);
        assert!(!d.failed());
    }

    #[test]
    fn stopping_on_purpose_is_not_a_failure() {
        let mut d = FailureDetector::default();
        d.observe(Running, 0);
        assert_eq!(d.observe(Stopping, 1), Verdict::Nothing);
        assert_eq!(d.observe(Stopped, 2), Verdict::Nothing);
        assert_eq!(d.observe(Starting, 3), Verdict::Nothing);
        assert_eq!(d.observe(Running, 4), Verdict::Nothing);
    }
}
