//! Every step of the rollout state machine, driven by a small simulator of
//! the cluster: starts add members, drains mark them, removals drop them.

use std::time::Duration;

use super::*;

const S: u64 = 1000;

fn update() -> UpdateSpec {
    UpdateSpec {
        min_ready: Duration::from_secs(2),
        deadline: Duration::from_secs(60),
        drain_timeout: Duration::from_secs(1),
        ..UpdateSpec::default()
    }
}

struct Sim {
    r: Rollout,
    members: Vec<MemberView>,
    size: u32,
    now: u64,
    next: u32,
    /// Peak serving members (not draining) and minimum available seen.
    peak: usize,
    min_avail: usize,
    log: Vec<String>,
}

impl Sim {
    fn new(size: u32, u: UpdateSpec) -> Sim {
        let members = (1..=size)
            .map(|i| MemberView {
                index: i,
                revision: 1,
                health: Health::Ready { since_ms: 0 },
                draining_since_ms: None,
            })
            .collect();
        Sim {
            r: Rollout::new(1, 2, u, 100 * S),
            members,
            size,
            now: 100 * S,
            next: size + 1,
            peak: size as usize,
            min_avail: size as usize,
            log: Vec::new(),
        }
    }

    /// One step, its actions applied. New members start as `Starting`.
    fn step(&mut self) -> Step {
        let st = step(&self.r, &self.members, self.size, self.now);
        for a in &st.actions {
            match a {
                Action::Start { revision, .. } => {
                    if self.r.in_place {
                        // The cluster takes the lowest free number.
                        self.next = (1..)
                            .find(|i| self.members.iter().all(|m| m.index != *i))
                            .unwrap();
                    }
                    self.members.push(MemberView {
                        index: self.next,
                        revision: *revision,
                        health: Health::Starting,
                        draining_since_ms: None,
                    });
                    self.log.push(format!("start {} r{revision}", self.next));
                    self.next += 1;
                }
                Action::Drain { index, .. } => {
                    self.m(*index).draining_since_ms = Some(self.now);
                    self.log.push(format!("drain {index}"));
                }
                Action::Remove { index, .. } => {
                    self.members.retain(|m| m.index != *index);
                    self.log.push(format!("remove {index}"));
                }
            }
        }
        if let Some(n) = &st.next {
            self.log.push(format!("state {}", n.state.as_str()));
            self.r = n.clone();
        }
        let serving = self
            .members
            .iter()
            .filter(|m| m.draining_since_ms.is_none())
            .count();
        let avail = self
            .members
            .iter()
            .filter(|m| m.draining_since_ms.is_none() && matches!(m.health, Health::Ready { .. }))
            .count();
        self.peak = self.peak.max(serving);
        self.min_avail = self.min_avail.min(avail);
        st
    }

    fn m(&mut self, index: u32) -> &mut MemberView {
        self.members.iter_mut().find(|m| m.index == index).unwrap()
    }

    /// Every starting member of `revision` becomes healthy now.
    fn ready(&mut self, revision: u64) {
        let now = self.now;
        for m in &mut self.members {
            if m.revision == revision && m.health == Health::Starting {
                m.health = Health::Ready { since_ms: now };
            }
        }
    }

    fn fail(&mut self, revision: u64) {
        for m in &mut self.members {
            if m.revision == revision && m.health == Health::Starting {
                m.health = Health::Failed("health check failed".into());
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// Runs healthy to a final or paused state: members of `healthy`
    /// become ready, others fail. Bounded.
    fn run(&mut self, healthy: &[u64]) -> RolloutState {
        for _ in 0..500 {
            self.step();
            if self.r.state != RolloutState::Rolling {
                // Finish pending drains.
                for _ in 0..5 {
                    self.advance(S);
                    self.step();
                }
                return self.r.state;
            }
            for rev in [1, 2] {
                if healthy.contains(&rev) {
                    self.ready(rev);
                } else {
                    self.fail(rev);
                }
            }
            self.advance(500);
        }
        panic!("no end: {:?}", self.log);
    }

    fn revisions(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.members.iter().map(|m| m.revision).collect();
        v.sort();
        v
    }
}

#[test]
fn default_rollout_surges_one_and_never_dips() {
    let mut sim = Sim::new(4, update());
    // First step: one new member, nothing drained.
    let st = sim.step();
    assert_eq!(st.actions.len(), 1, "{:?}", st.actions);
    assert!(matches!(st.actions[0], Action::Start { revision: 2, .. }));
    // Starting, then ready but not for min_ready: nothing happens.
    assert!(sim.step().actions.is_empty());
    sim.ready(2);
    sim.advance(1000);
    assert!(sim.step().actions.is_empty(), "min_ready not over");
    sim.advance(1000);
    let st = sim.step();
    assert_eq!(
        st.actions
            .iter()
            .map(|a| match a {
                Action::Drain { index, .. } => format!("drain {index}"),
                Action::Start { .. } => "start".into(),
                Action::Remove { index, .. } => format!("remove {index}"),
            })
            .collect::<Vec<_>>(),
        ["drain 1", "start"],
        "the oldest drains, the next new member starts"
    );
    // The drained member goes after its drain timeout, not before.
    sim.advance(500);
    assert!(!sim
        .step()
        .actions
        .iter()
        .any(|a| matches!(a, Action::Remove { .. })));
    sim.advance(500);
    assert!(sim
        .step()
        .actions
        .iter()
        .any(|a| matches!(a, Action::Remove { index: 1, .. })));
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2, 2, 2]);
    assert_eq!(sim.peak, 5, "max_surge 1");
    assert_eq!(sim.min_avail, 4, "max_unavailable 0");
}

#[test]
fn complete_waits_for_the_last_drain() {
    let mut sim = Sim::new(1, update());
    sim.step();
    sim.ready(2);
    sim.advance(2 * S);
    let st = sim.step();
    assert!(matches!(st.actions[..], [Action::Drain { index: 1, .. }]));
    assert!(st.next.is_none(), "not complete while member 1 drains");
    sim.advance(S);
    let st = sim.step();
    assert!(matches!(st.actions[..], [Action::Remove { index: 1, .. }]));
    let st = sim.step();
    assert_eq!(st.next.unwrap().state, RolloutState::Complete);
}

#[test]
fn max_surge_zero_with_max_unavailable_one() {
    let mut sim = Sim::new(
        4,
        UpdateSpec {
            max_surge: 0,
            max_unavailable: 1,
            ..update()
        },
    );
    let st = sim.step();
    assert!(matches!(
        st.actions[..],
        [Action::Drain { index: 1, .. }, Action::Start { .. }]
    ));
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2, 2, 2]);
    assert_eq!(sim.peak, 4, "never above the size");
    assert_eq!(sim.min_avail, 3);
}

#[test]
fn max_unavailable_two_goes_faster() {
    let mut sim = Sim::new(
        4,
        UpdateSpec {
            max_unavailable: 2,
            ..update()
        },
    );
    let st = sim.step();
    let drains = st
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Drain { .. }))
        .count();
    let starts = st
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Start { .. }))
        .count();
    assert_eq!((drains, starts), (2, 3));
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.min_avail, 2);
    assert_eq!(sim.peak, 5);
}

#[test]
fn a_failing_new_member_rolls_back() {
    let mut sim = Sim::new(4, update());
    sim.step();
    sim.fail(2);
    let st = sim.step();
    let next = st.next.unwrap();
    assert_eq!(next.state, RolloutState::Rolling);
    assert!(next.rolling_back);
    assert_eq!((next.target, next.previous), (1, 2));
    assert!(next.reason.unwrap().contains("health check failed"));
    sim.r = sim.step().next.unwrap_or(sim.r.clone());
    // The failed member goes at once (it never served).
    assert_eq!(sim.run(&[1]), RolloutState::RolledBack);
    assert_eq!(sim.revisions(), [1, 1, 1, 1]);
    assert_eq!(sim.min_avail, 4, "no old member left before the failure");
}

#[test]
fn failure_after_some_members_rolled_rolls_them_back() {
    let mut sim = Sim::new(4, update());
    // Two members roll well...
    for _ in 0..40 {
        sim.step();
        if sim
            .members
            .iter()
            .filter(|m| m.revision == 2 && m.draining_since_ms.is_none())
            .count()
            == 2
            && sim.members.iter().all(|m| m.health != Health::Starting)
        {
            break;
        }
        sim.ready(2);
        sim.advance(500);
    }
    // ...then the third crashes.
    for _ in 0..10 {
        sim.step();
        sim.advance(500);
        if sim.members.iter().any(|m| m.health == Health::Starting) {
            break;
        }
    }
    sim.fail(2);
    sim.step();
    assert!(sim.r.rolling_back, "{:?}", sim.log);
    assert_eq!(sim.run(&[1]), RolloutState::RolledBack);
    assert_eq!(sim.revisions(), [1, 1, 1, 1]);
    assert_eq!(sim.min_avail, 4, "{:?}", sim.log);
}

#[test]
fn a_missed_deadline_rolls_back() {
    let mut sim = Sim::new(2, update());
    sim.step();
    // The new member never gets healthy.
    sim.advance(61 * S);
    let next = sim.step().next.unwrap();
    assert!(next.rolling_back);
    assert!(next.reason.unwrap().contains("deadline"));
}

#[test]
fn a_failing_rollback_ends_failed() {
    // An undo from revision 2 (all members run it) to 1, which fails.
    let mut sim = Sim::new(2, update());
    for m in &mut sim.members {
        m.revision = 2;
    }
    sim.r = sim.r.roll_back("undo", sim.now);
    assert!(sim.r.rolling_back);
    assert_eq!(sim.run(&[2]), RolloutState::Failed);
    assert_eq!(sim.revisions(), [2, 2], "the members that serve stay");
    assert!(sim
        .r
        .reason
        .as_deref()
        .unwrap()
        .starts_with("rollback failed"));
}

#[test]
fn pause_on_failure_waits_then_undo_rolls_back() {
    let mut sim = Sim::new(
        3,
        UpdateSpec {
            failure_action: FailureAction::Pause,
            ..update()
        },
    );
    sim.step();
    sim.fail(2);
    assert_eq!(sim.run(&[1]), RolloutState::Paused);
    // Paused: nothing moves however long it waits.
    let before = sim.members.clone();
    sim.advance(3600 * S);
    assert!(sim.step().actions.is_empty());
    assert_eq!(sim.members, before);
    // Undo: back to revision 1, the failed member removed.
    sim.r = sim.r.roll_back("undo", sim.now);
    assert_eq!(sim.run(&[1]), RolloutState::RolledBack);
    assert_eq!(sim.revisions(), [1, 1, 1]);
}

#[test]
fn canary_pauses_then_resume_completes() {
    let mut sim = Sim::new(
        4,
        UpdateSpec {
            canary: 1,
            ..update()
        },
    );
    assert_eq!(sim.run(&[1, 2]), RolloutState::Paused);
    assert_eq!(sim.revisions(), [1, 1, 1, 2], "{:?}", sim.log);
    assert!(sim.r.reason.as_deref().unwrap().contains("canary"));
    sim.r = sim.r.resume(sim.now).unwrap();
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2, 2, 2]);
}

#[test]
fn canary_with_max_surge_zero_still_moves() {
    let mut sim = Sim::new(
        4,
        UpdateSpec {
            canary: 2,
            max_surge: 0,
            max_unavailable: 1,
            ..update()
        },
    );
    assert_eq!(sim.run(&[1, 2]), RolloutState::Paused);
    assert_eq!(sim.revisions(), [1, 1, 2, 2]);
    assert_eq!(sim.peak, 4);
}

#[test]
fn canary_then_undo_rolls_back() {
    let mut sim = Sim::new(
        3,
        UpdateSpec {
            canary: 1,
            ..update()
        },
    );
    assert_eq!(sim.run(&[1, 2]), RolloutState::Paused);
    sim.r = sim.r.roll_back("undo", sim.now);
    assert_eq!(sim.run(&[1, 2]), RolloutState::RolledBack);
    assert_eq!(sim.revisions(), [1, 1, 1]);
}

#[test]
fn operator_pause_stops_starts_and_drains_but_finishes_removals() {
    let mut sim = Sim::new(2, update());
    sim.step();
    sim.ready(2);
    sim.advance(2 * S);
    sim.step(); // drains member 1, starts another
    sim.r = sim.r.pause("operator").unwrap();
    assert!(
        sim.r.pause("again").is_none(),
        "pausing a paused rollout is no change"
    );
    sim.advance(S);
    let st = sim.step();
    assert!(
        matches!(st.actions[..], [Action::Remove { index: 1, .. }]),
        "{:?}",
        st.actions
    );
    sim.ready(2);
    sim.advance(10 * S);
    assert!(sim.step().actions.is_empty());
    sim.r = sim.r.resume(sim.now).unwrap();
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
}

#[test]
fn resize_during_a_rollout_makes_new_revision_members() {
    let mut sim = Sim::new(2, update());
    sim.step();
    sim.size = 4;
    sim.ready(2);
    sim.advance(2 * S);
    let st = sim.step();
    // Growth: new members only, still within the surge.
    assert!(st
        .actions
        .iter()
        .all(|a| !matches!(a, Action::Start { revision: 1, .. })));
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2, 2, 2]);
    // And shrinking in the middle of another.
    let mut sim = Sim::new(4, update());
    sim.step();
    sim.ready(2);
    sim.size = 2;
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2]);
}

#[test]
fn a_paused_rollout_still_grows_and_shrinks_on_the_good_revision() {
    // A canary of one pauses with one member of each revision.
    let mut sim = Sim::new(
        2,
        UpdateSpec {
            canary: 1,
            ..update()
        },
    );
    assert_eq!(sim.run(&[1, 2]), RolloutState::Paused);
    assert_eq!(sim.revisions(), [1, 2]);
    // The autoscaler grows it: the added members run revision 1, not the
    // canary's, and the rollout stays paused.
    sim.size = 4;
    let st = sim.step();
    assert!(
        matches!(
            st.actions[..],
            [
                Action::Start { revision: 1, .. },
                Action::Start { revision: 1, .. }
            ]
        ),
        "{:?}",
        st.actions
    );
    assert!(st.next.is_none());
    assert_eq!(sim.revisions(), [1, 1, 1, 2]);
    sim.ready(1);
    assert!(sim.step().actions.is_empty(), "at its size: nothing more");
    // Shrunk while paused: the newest go first.
    sim.size = 2;
    let st = sim.step();
    let drained: Vec<u32> = st
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    let newest: Vec<u32> = {
        let mut i: Vec<u32> = sim.members.iter().map(|m| m.index).collect();
        i.sort();
        i.into_iter().rev().take(1).collect()
    };
    assert_eq!(drained, newest, "down to the size plus one surge member");
    // Resumed, every member rolls.
    sim.r = sim.r.resume(sim.now).unwrap();
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2]);
}

#[test]
fn a_paused_rollback_grows_on_the_revision_it_returns_to() {
    let mut sim = Sim::new(2, update());
    sim.step();
    // Members 1 and 2 on revision 1, member 3 on revision 2.
    sim.r = sim.r.roll_back("undo", sim.now).pause("operator").unwrap();
    sim.size = 4;
    let st = sim.step();
    assert!(
        matches!(st.actions[..], [Action::Start { revision: 1, .. }]),
        "{:?}",
        st.actions
    );
}

#[test]
fn an_old_member_that_failed_goes_at_once() {
    let mut sim = Sim::new(3, update());
    sim.m(2).health = Health::Failed("container is exited".into());
    let st = sim.step();
    assert!(st
        .actions
        .iter()
        .any(|a| matches!(a, Action::Remove { index: 2, .. })));
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    assert_eq!(sim.revisions(), [2, 2, 2]);
}

/// Right after drover's restart every member is `starting` until its
/// container is adopted and checked: none is removed for that, and none
/// is drained before it serves again.
#[test]
fn old_members_starting_after_a_restart_are_kept_until_they_serve() {
    for in_place in [false, true] {
        let mut sim = Sim::new(3, update());
        sim.r = sim.r.clone().in_place(in_place);
        for i in 1..=3 {
            sim.m(i).health = Health::Starting;
        }
        let st = sim.step();
        assert!(
            st.actions.iter().all(|a| matches!(a, Action::Start { .. })),
            "in place {in_place}: {:?}",
            st.actions
        );
        assert_eq!(sim.run(&[1, 2]), RolloutState::Complete, "{:?}", sim.log);
        assert_eq!(sim.revisions(), [2, 2, 2]);
        assert!(
            sim.log
                .iter()
                .filter(|l| l.starts_with("remove"))
                .all(|l| sim.log.contains(&l.replace("remove", "drain"))),
            "every old member was drained before it went: {:?}",
            sim.log
        );
    }
}

#[test]
fn resumed_after_a_crash_from_any_membership() {
    // Whatever mix of revisions the store holds, the rollout converges
    // without starting more than the surge.
    for old in 0..=4u32 {
        for new in 0..=2u32 {
            let mut sim = Sim::new(4, update());
            sim.members.retain(|m| m.index <= old);
            for i in 0..new {
                sim.members.push(MemberView {
                    index: 10 + i,
                    revision: 2,
                    health: Health::Ready { since_ms: 0 },
                    draining_since_ms: None,
                });
            }
            sim.next = 20;
            assert_eq!(
                sim.run(&[1, 2]),
                RolloutState::Complete,
                "old {old} new {new}"
            );
            assert_eq!(sim.revisions(), [2, 2, 2, 2]);
            assert!(sim.peak <= (old + new).max(5) as usize);
        }
    }
}

#[test]
fn settled_revision_and_final_states() {
    let r = Rollout::new(3, 4, update(), 0);
    assert_eq!(r.settled_revision(), 4);
    let failed = Rollout {
        state: RolloutState::Failed,
        ..r.clone()
    };
    assert_eq!(failed.settled_revision(), 3);
    let back = r.roll_back("x", 5);
    assert_eq!((back.target, back.previous, back.started_ms), (3, 4, 5));
    assert_eq!(
        back.roll_back("y", 6).target,
        3,
        "a rollback's rollback stays back"
    );
    assert!(RolloutState::RolledBack.is_final());
    assert!(!RolloutState::Paused.is_final());
    assert_eq!(
        serde_json::to_value(RolloutState::RolledBack).unwrap(),
        "rolled-back"
    );
}

fn facts(seen: Seen) -> MemberFacts {
    MemberFacts {
        seen,
        error: None,
        failing: None,
        restarts: 0,
    }
}

fn check(interval_ms: u64, threshold: u32) -> Duration {
    let h: crate::blueprint::HealthCheck = serde_json::from_value(serde_json::json!({
        "http": { "port": 8080, "path": "/health" },
        "interval": format!("{interval_ms}ms"),
        "unhealthy_threshold": threshold,
    }))
    .unwrap();
    failing_limit(&h)
}

#[test]
fn failing_checks_fail_a_starting_member_at_the_checks_own_threshold() {
    let limit = check(500, 3);
    assert_eq!(limit, Duration::from_millis(1500));
    let mut f = facts(Seen::Starting);
    assert_eq!(member_health(&f, Some(limit), 10 * S), Health::Starting);
    f.failing = Some((10 * S, "health check: status 503".into()));
    // Not yet: 1.499 s of failures.
    assert_eq!(
        member_health(&f, Some(limit), 10 * S + 1499),
        Health::Starting
    );
    let Health::Failed(why) = member_health(&f, Some(limit), 10 * S + 1500) else {
        panic!("failing for its threshold is a verdict");
    };
    assert!(why.contains("status 503"), "{why}");
    // Without a check, failures decide nothing (the deadline does).
    assert_eq!(member_health(&f, None, 100 * S), Health::Starting);
}

#[test]
fn a_crash_an_error_or_a_restart_loop_fail_at_once() {
    let mut f = facts(Seen::OnFire);
    f.error = Some("container is exited".into());
    assert_eq!(
        member_health(&f, None, 0),
        Health::Failed("container is exited".into())
    );
    let mut f = facts(Seen::Starting);
    f.error = Some("killed for lack of memory (OOM)".into());
    assert!(matches!(member_health(&f, None, 0), Health::Failed(_)));
    let mut f = facts(Seen::Running { since_ms: 5 });
    assert_eq!(member_health(&f, None, 9), Health::Ready { since_ms: 5 });
    f.restarts = RESTART_LOOP - 1;
    assert_eq!(member_health(&f, None, 9), Health::Ready { since_ms: 5 });
    f.restarts = RESTART_LOOP;
    let Health::Failed(why) = member_health(&f, None, 9) else {
        panic!("a restart loop is a failure");
    };
    assert!(why.contains("restart loop"), "{why}");
}

/// In virtual time: a new version whose checks fail rolls back 1.5 s after
/// its first failing check, with a 5-minute deadline far away; `pause`
/// pauses just as soon.
#[test]
fn a_failing_new_version_stops_the_rollout_long_before_its_deadline() {
    for (action, want) in [
        (FailureAction::Rollback, RolloutState::Rolling),
        (FailureAction::Pause, RolloutState::Paused),
    ] {
        let u = UpdateSpec {
            deadline: Duration::from_secs(300),
            failure_action: action,
            ..update()
        };
        let limit = check(500, 3);
        let mut sim = Sim::new(3, u);
        let began = sim.now;
        sim.step();
        assert_eq!(sim.log, ["start 4 r2"]);
        // Its container runs; its checks answer 503 from now on.
        let failing_since = sim.now + 300;
        let mut verdict_at = None;
        for _ in 0..100 {
            sim.advance(250);
            let f = MemberFacts {
                failing: (sim.now >= failing_since).then(|| (failing_since, "status 503".into())),
                ..facts(Seen::Starting)
            };
            sim.m(4).health = member_health(&f, Some(limit), sim.now);
            sim.step();
            if sim.r.state != RolloutState::Rolling || sim.r.rolling_back {
                verdict_at = Some(sim.now);
                break;
            }
        }
        let at = verdict_at.expect("a verdict before the deadline");
        assert!(
            at - began < 3 * S,
            "stopped {} ms after it began",
            at - began
        );
        assert_eq!(sim.r.state, want, "{action:?}");
        if action == FailureAction::Rollback {
            assert!(sim.r.rolling_back);
            assert_eq!(sim.r.target, 1);
            // The failed member goes; the old ones were never drained.
            sim.step();
            assert!(sim.members.iter().all(|m| m.revision == 1));
            assert_eq!(sim.members.len(), 3);
        }
    }
}

/// Members with named volumes: one at a time, each drained, removed and
/// started again under its own number; never more members than the size.
#[test]
fn in_place_replaces_each_member_under_its_own_number() {
    let mut sim = Sim::new(3, update());
    sim.r = sim.r.clone().in_place(true);
    assert_eq!(sim.run(&[1, 2]), RolloutState::Complete);
    let mut indexes: Vec<u32> = sim.members.iter().map(|m| m.index).collect();
    indexes.sort();
    assert_eq!(indexes, [1, 2, 3], "{:?}", sim.log);
    assert_eq!(sim.revisions(), [2, 2, 2]);
    assert_eq!(sim.peak, 3, "no surge: {:?}", sim.log);
    assert_eq!(
        &sim.log[..4],
        ["drain 3", "remove 3", "start 3 r2", "drain 2"],
        "{:?}",
        sim.log
    );
    // Never two members of one number at once.
    let starts = sim.log.iter().filter(|l| l.starts_with("start")).count();
    assert_eq!(starts, 3, "{:?}", sim.log);
}

#[test]
fn in_place_waits_for_min_ready_before_the_next_member() {
    let mut sim = Sim::new(2, update());
    sim.r = sim.r.clone().in_place(true);
    sim.step(); // drain 2
    sim.advance(S);
    sim.step(); // remove 2
    sim.step(); // start 2
    sim.ready(2);
    sim.advance(S); // ready for 1 s of min_ready's 2 s
    let st = sim.step();
    assert!(st.actions.is_empty(), "{:?}", st.actions);
    sim.advance(S);
    let st = sim.step();
    assert!(
        matches!(&st.actions[..], [Action::Drain { index: 1, .. }]),
        "{:?}",
        st.actions
    );
}

#[test]
fn in_place_failure_rolls_back_in_place() {
    let mut sim = Sim::new(3, update());
    sim.r = sim.r.clone().in_place(true);
    assert_eq!(sim.run(&[1]), RolloutState::RolledBack);
    let mut indexes: Vec<u32> = sim.members.iter().map(|m| m.index).collect();
    indexes.sort();
    assert_eq!(indexes, [1, 2, 3], "{:?}", sim.log);
    assert_eq!(sim.revisions(), [1, 1, 1]);
    assert!(sim.peak <= 3, "{:?}", sim.log);
}
