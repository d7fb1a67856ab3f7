//! The rolling update of a cluster, as a pure state machine.
//!
//! [`step`] takes the rollout, the members (their revision, health and
//! whether they drain), the cluster's size and the time, and answers what to
//! do next: start new-revision members (the surge), drain old ones (out of
//! the load balancer, still running), remove the drained ones once their
//! drain timeout is over, and when the state changes (complete, paused,
//! rolling back, failed). No clock and no actors: the cluster calls it on a
//! tick and on every member change, and does what it says.
//!
//! The procedure (Kubernetes' RollingUpdate with Swarm's automatic rollback):
//! at most `size + max_surge` serving members, at least `size -
//! max_unavailable` available ones, where a new member is available once it
//! has been healthy for `min_ready`. A new member that fails, or a rollout
//! past its `deadline`, is a failure: `rollback` rolls back to the previous
//! revision by the same procedure, `pause` waits for an operator.

use serde::{Deserialize, Serialize};

use crate::blueprint::update::{FailureAction, UpdateSpec};

/// Where a rollout stands (sensor `rollout.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    Complete,
    Rolling,
    Paused,
    RolledBack,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Complete => "complete",
            RolloutState::Rolling => "rolling",
            RolloutState::Paused => "paused",
            RolloutState::RolledBack => "rolled-back",
            RolloutState::Failed => "failed",
        }
    }

    /// Whether the rollout is over (nothing more happens without an operator).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RolloutState::Complete | RolloutState::RolledBack | RolloutState::Failed
        )
    }
}

/// A rollout as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The revision members are rolled to (the previous one while rolling back).
    pub target: u64,
    /// The revision a rollback returns to.
    pub previous: u64,
    pub state: RolloutState,
    /// Going back to `previous` (after a failure or an undo): it ends
    /// `rolled-back`, and a failure now ends it `failed`.
    #[serde(default)]
    pub rolling_back: bool,
    /// When this leg began (ms since the epoch): the deadline counts from here.
    pub started_ms: u64,
    /// When the rollout was asked for (ms since the epoch), for its duration.
    #[serde(default)]
    pub begun_ms: u64,
    pub update: UpdateSpec,
    /// The canary pause is behind (a `resume` passed it).
    #[serde(default)]
    pub canary_passed: bool,
    /// Why it is paused, rolled back or failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// Members own named volumes: each is replaced in place, under its own
    /// number and on its own volume, one at a time (see [`step`]).
    #[serde(default)]
    pub in_place: bool,
}

impl Rollout {
    /// A rollout from revision `previous` to `target`, begun at `now_ms`.
    pub fn new(previous: u64, target: u64, update: UpdateSpec, now_ms: u64) -> Self {
        Rollout {
            target,
            previous,
            state: RolloutState::Rolling,
            rolling_back: false,
            started_ms: now_ms,
            begun_ms: now_ms,
            update,
            canary_passed: false,
            reason: None,
            in_place: false,
        }
    }

    /// Members are replaced in place (they own named volumes).
    pub fn in_place(self, in_place: bool) -> Self {
        Rollout { in_place, ..self }
    }

    /// The revision the cluster counts as its own once this rollout is over.
    pub fn settled_revision(&self) -> u64 {
        match self.state {
            RolloutState::Failed if !self.rolling_back => self.previous,
            _ => self.target,
        }
    }

    /// Back to `previous`, by the same rolling procedure, from now.
    pub fn roll_back(&self, reason: impl Into<String>, now_ms: u64) -> Rollout {
        let (target, previous) = if self.rolling_back {
            (self.target, self.previous)
        } else {
            (self.previous, self.target)
        };
        Rollout {
            target,
            previous,
            state: RolloutState::Rolling,
            rolling_back: true,
            started_ms: now_ms,
            begun_ms: self.begun_ms,
            update: self.update.clone(),
            canary_passed: true,
            reason: Some(reason.into()),
            in_place: self.in_place,
        }
    }

    /// `drover rollout resume`: a paused rollout goes on, past its canary,
    /// with a fresh deadline.
    pub fn resume(&self, now_ms: u64) -> Option<Rollout> {
        (self.state == RolloutState::Paused).then(|| Rollout {
            state: RolloutState::Rolling,
            started_ms: now_ms,
            canary_passed: true,
            reason: None,
            ..self.clone()
        })
    }

    /// `drover rollout pause`.
    pub fn pause(&self, reason: impl Into<String>) -> Option<Rollout> {
        (self.state == RolloutState::Rolling).then(|| Rollout {
            state: RolloutState::Paused,
            reason: Some(reason.into()),
            ..self.clone()
        })
    }
}

/// A member's health as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Not serving yet (created, starting, restarting).
    Starting,
    /// Running and healthy since this time (ms since the epoch).
    Ready { since_ms: u64 },
    /// Its start failed, its health check failed or it crashed for good.
    Failed(String),
}

/// What the cluster has seen of a member, for [`member_health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Created, starting or restarting.
    Starting,
    /// Running (its health check passes) since this time (ms).
    Running { since_ms: u64 },
    /// On fire: its start failed, it exited or its checks failed for good.
    OnFire,
}

/// A member's facts: its state, its `entity.error`, since when its health
/// check fails (`health.failing`, with the latest reason) and how often it
/// left `running` since it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub seen: Seen,
    pub error: Option<String>,
    pub failing: Option<(u64, String)>,
    pub restarts: u32,
}

/// A member that left `running` this many times is in a restart loop.
pub const RESTART_LOOP: u32 = 3;

/// How long failing checks take to be a verdict: the check's own
/// threshold, `unhealthy_threshold` × `interval` (Docker's `retries` ×
/// `interval`). Failures within `start_period` are not reported at all, so
/// the grace is already behind when failing begins.
pub fn failing_limit(h: &crate::blueprint::HealthCheck) -> std::time::Duration {
    h.interval * h.unhealthy_threshold.max(1)
}

/// A member's health for the rollout (pure). It fails at once, not at the
/// rollout's `deadline`, when it is on fire (a crash, an exit, a start
/// that failed), when it is in a restart loop, or when its health check
/// has failed for longer than `limit` (see [`failing_limit`]; `None`
/// without a check) with no pass since its start.
pub fn member_health(f: &MemberFacts, limit: Option<std::time::Duration>, now_ms: u64) -> Health {
    if f.restarts >= RESTART_LOOP {
        return Health::Failed(format!(
            "left running {} times since it started: a restart loop",
            f.restarts
        ));
    }
    match &f.seen {
        Seen::OnFire => Health::Failed(f.error.clone().unwrap_or_else(|| "on fire".into())),
        Seen::Running { since_ms } => Health::Ready {
            since_ms: *since_ms,
        },
        // A starting member whose last attempt already failed (its error
        // is set) has failed.
        Seen::Starting if f.error.is_some() => Health::Failed(f.error.clone().unwrap_or_default()),
        Seen::Starting => match (&f.failing, limit) {
            (Some((since, why)), Some(limit)) if now_ms.saturating_sub(*since) >= ms(limit) => {
                Health::Failed(format!(
                    "its health check failed for {} (its threshold): {why}",
                    humantime::format_duration(std::time::Duration::from_millis(
                        now_ms.saturating_sub(*since)
                    ))
                ))
            }
            _ => Health::Starting,
        },
    }
}

/// One member as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Its number (`web-3` is 3): lower is older.
    pub index: u32,
    pub revision: u64,
    pub health: Health,
    /// Out of the load balancer since this time: it finishes open connections.
    pub draining_since_ms: Option<u64>,
}

/// What the cluster does, each with the reason it is recorded under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Add a member of this revision and start it.
    Start { revision: u64, reason: String },
    /// Take a member out of the load balancer; it keeps running.
    Drain { index: u32, reason: String },
    /// Stop and remove a member.
    Remove { index: u32, reason: String },
}

/// The outcome of one [`step`]: actions, and the rollout's new state if it changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub actions: Vec<Action>,
    pub next: Option<Rollout>,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// The next actions of rollout `r` over `members`, for a cluster of `size`, at `now_ms`.
pub fn step(r: &Rollout, members: &[MemberView], size: u32, now_ms: u64) -> Step {
    let u = &r.update;
    let mut out = Step::default();
    // Drained members go once their drain timeout is over, whatever the state.
    for m in members {
        if let Some(since) = m.draining_since_ms {
            if now_ms.saturating_sub(since) >= ms(u.drain_timeout) {
                out.actions.push(Action::Remove {
                    index: m.index,
                    reason: format!(
                        "drained for {}",
                        humantime::format_duration(u.drain_timeout)
                    ),
                });
            }
        }
    }
    if r.state == RolloutState::Paused {
        return paused(r, members, size, out);
    }
    if r.state != RolloutState::Rolling {
        return out;
    }
    let serving = |m: &&MemberView| m.draining_since_ms.is_none();
    let mut new: Vec<&MemberView> = members
        .iter()
        .filter(serving)
        .filter(|m| m.revision == r.target)
        .collect();
    let mut old: Vec<&MemberView> = members
        .iter()
        .filter(serving)
        .filter(|m| m.revision != r.target)
        .collect();
    new.sort_by_key(|m| m.index);
    old.sort_by_key(|m| m.index);

    // A failure stops the rollout.
    let failure = new
        .iter()
        .find_map(|m| match &m.health {
            Health::Failed(why) => Some(format!(
                "member {} of revision {} failed: {why}",
                m.index, r.target
            )),
            _ => None,
        })
        .or_else(|| {
            (now_ms.saturating_sub(r.started_ms) > ms(u.deadline)).then(|| {
                format!(
                    "revision {} missed its deadline of {}",
                    r.target,
                    humantime::format_duration(u.deadline)
                )
            })
        });
    if let Some(why) = failure {
        return on_failure(r, &new, why, now_ms, out);
    }
    if r.in_place {
        return in_place(r, members, new, old, size, now_ms, out);
    }
    regular(r, members, new, old, size, now_ms, out)
}

/// A failure stops the rollout: it rolls back or pauses (or, rolling back
/// already, ends failed).
fn on_failure(r: &Rollout, new: &[&MemberView], why: String, now_ms: u64, mut out: Step) -> Step {
    let u = &r.update;
    if r.rolling_back {
        // The rollout ends here: members that never served go, those
        // that serve stay.
        for m in new
            .iter()
            .filter(|m| !matches!(m.health, Health::Ready { .. }))
        {
            out.actions.push(Action::Remove {
                index: m.index,
                reason: format!("revision {} failed to start", r.target),
            });
        }
    }
    out.next = Some(if r.rolling_back {
        Rollout {
            state: RolloutState::Failed,
            reason: Some(format!("rollback failed: {why}")),
            ..r.clone()
        }
    } else {
        match u.failure_action {
            FailureAction::Rollback => r.roll_back(why, now_ms),
            FailureAction::Pause => Rollout {
                state: RolloutState::Paused,
                reason: Some(why),
                ..r.clone()
            },
        }
    });
    out
}

/// Members that must be ready for `min_ready` at `now_ms`.
fn ready_for(u: &UpdateSpec, m: &MemberView, now_ms: u64) -> bool {
    match m.health {
        Health::Ready { since_ms } => now_ms.saturating_sub(since_ms) >= ms(u.min_ready),
        _ => false,
    }
}

/// Members that own named volumes, StatefulSet-style: one member at a
/// time, from the highest number down, is drained, removed (its volume
/// stays) and started again under its own number on the new revision; the
/// next goes once it has been ready for `min_ready`. `max_surge` does not
/// apply (two containers never share a member's volume) and capacity dips
/// by one member meanwhile, whatever `max_unavailable` says.
fn in_place(
    r: &Rollout,
    members: &[MemberView],
    new: Vec<&MemberView>,
    old: Vec<&MemberView>,
    size: u32,
    now_ms: u64,
    mut out: Step,
) -> Step {
    let u = &r.update;
    let (old_failed, mut old_up, old_starting) = by_health(old);
    // Failed: nothing to drain, it goes at once (and comes back new).
    for m in &old_failed {
        out.actions.push(Action::Remove {
            index: m.index,
            reason: format!(
                "revision {} failed; revision {} replaces it in place",
                m.revision, r.target
            ),
        });
    }
    // More members than the size: the highest numbers go.
    let mut serving: Vec<&MemberView> = new.iter().chain(old_up.iter()).copied().collect();
    serving.sort_by_key(|m| std::cmp::Reverse(m.index));
    let extra = serving.len().saturating_sub(size as usize);
    for m in serving.iter().take(extra) {
        out.actions.push(drain_or_remove(
            m,
            "the cluster is smaller than its members",
        ));
        old_up.retain(|o| o.index != m.index);
    }
    let new: Vec<&MemberView> = new
        .into_iter()
        .filter(|m| !serving.iter().take(extra).any(|x| x.index == m.index))
        .collect();
    // A (re)starting old member is waited for: it is drained once it serves.
    let busy = members.iter().any(|m| m.draining_since_ms.is_some())
        || !out.actions.is_empty()
        || !old_starting.is_empty();
    let new_ready = new.iter().filter(|m| ready_for(u, m, now_ms)).count() as u32;
    if old_up.is_empty() && new.len() as u32 == size && new_ready == size {
        if !busy {
            out.next = Some(settled(r));
        }
        return out;
    }
    // One member at a time: wait for the one being replaced.
    if busy {
        return out;
    }
    if ((new.len() + old_up.len()) as u32) < size {
        out.actions.push(Action::Start {
            revision: r.target,
            reason: format!(
                "rolling to revision {} in place: {} of {size} members run it",
                r.target,
                new.len()
            ),
        });
        return out;
    }
    if new_ready < new.len() as u32 {
        return out;
    }
    let canary = (!r.rolling_back && !r.canary_passed && u.canary > 0).then(|| u.canary.min(size));
    if let Some(c) = canary {
        if new_ready >= c {
            out.next = Some(canary_paused(r, c));
            return out;
        }
    }
    if let Some(m) = old_up.iter().max_by_key(|m| m.index) {
        out.actions.push(Action::Drain {
            index: m.index,
            reason: format!(
                "revision {} replaces it in place ({new_ready} of {size} members ready)",
                r.target
            ),
        });
    }
    out
}

/// Kubernetes' RollingUpdate: new members surge, old ones drain.
fn regular(
    r: &Rollout,
    members: &[MemberView],
    mut new: Vec<&MemberView>,
    old: Vec<&MemberView>,
    size: u32,
    now_ms: u64,
    mut out: Step,
) -> Step {
    let u = &r.update;
    let ready_for = |m: &MemberView| ready_for(u, m, now_ms);
    let (old_failed, old_up, old_starting) = by_health(old);
    for m in &old_failed {
        out.actions.push(Action::Remove {
            index: m.index,
            reason: format!(
                "revision {} failed; revision {} replaces it",
                m.revision, r.target
            ),
        });
    }
    let mut old = old_up;
    let starting = old_starting.len() as u32;
    // More new members than the size (it shrank): the unready and newest go.
    if new.len() as u32 > size {
        let mut extra: Vec<&MemberView> = new.clone();
        extra.sort_by_key(|m| (ready_for(m), std::cmp::Reverse(m.index)));
        for m in extra.into_iter().take(new.len() - size as usize) {
            out.actions.push(drain_or_remove(
                m,
                "the cluster is smaller than its members",
            ));
            new.retain(|n| n.index != m.index);
        }
    }
    let new_ready = new.iter().filter(|m| ready_for(m)).count() as u32;
    let draining = members.iter().any(|m| m.draining_since_ms.is_some())
        || out
            .actions
            .iter()
            .any(|a| matches!(a, Action::Drain { .. }));

    if old.is_empty() && starting == 0 && new.len() as u32 == size && new_ready == size {
        if !draining {
            out.next = Some(settled(r));
        }
        return out;
    }

    // The canary: this many new members, then a pause.
    let canary = (!r.rolling_back && !r.canary_passed && u.canary > 0).then(|| u.canary.min(size));
    let want_new = canary.unwrap_or(size);

    // Drain old members, oldest first, while enough stay available; under a
    // canary, only as many as the canary replaces.
    let min_available = size.saturating_sub(u.max_unavailable);
    let keep_old = canary.map_or(0, |c| size - c) as usize;
    let mut available = new_ready + old.len() as u32;
    while old.len() > keep_old && available > min_available {
        let m = old.remove(0);
        out.actions.push(Action::Drain {
            index: m.index,
            reason: format!(
                "revision {} replaces it ({new_ready} of {size} members ready)",
                r.target
            ),
        });
        available -= 1;
    }
    let total = new.len() as u32 + old.len() as u32 + starting;
    if let Some(c) = canary {
        if new_ready >= c && old.len() <= keep_old {
            out.next = Some(canary_paused(r, c));
            return out;
        }
    }
    // Start new members within the surge.
    let room = (size + u.max_surge).saturating_sub(total);
    let missing = want_new.saturating_sub(new.len() as u32);
    for _ in 0..room.min(missing) {
        out.actions.push(Action::Start {
            revision: r.target,
            reason: format!(
                "rolling to revision {}: {} of {size} members run it",
                r.target,
                new.len()
            ),
        });
    }
    out
}

/// Where a rollout whose every member runs the target ends: complete, or
/// rolled back when the target was the previous revision.
fn settled(r: &Rollout) -> Rollout {
    Rollout {
        state: if r.rolling_back {
            RolloutState::RolledBack
        } else {
            RolloutState::Complete
        },
        ..r.clone()
    }
}

/// The pause after `c` canary members are ready.
fn canary_paused(r: &Rollout, c: u32) -> Rollout {
    Rollout {
        state: RolloutState::Paused,
        reason: Some(format!(
            "canary: {c} member(s) of revision {} are ready; `drover rollout resume` \
             goes on, `drover rollout undo` rolls back",
            r.target
        )),
        ..r.clone()
    }
}

/// Old members by health: (failed, ready, starting). Failed ones count for
/// nothing and go at once; starting ones (as every member is right after
/// drover's restart, until its container is adopted and checked) hold
/// their place, serve no one yet, and are drained once they serve.
type ByHealth<'a> = (
    Vec<&'a MemberView>,
    Vec<&'a MemberView>,
    Vec<&'a MemberView>,
);
fn by_health(old: Vec<&MemberView>) -> ByHealth<'_> {
    let (failed, rest): (Vec<&MemberView>, Vec<&MemberView>) = old
        .into_iter()
        .partition(|m| matches!(m.health, Health::Failed(_)));
    let (ready, starting) = rest
        .into_iter()
        .partition(|m| matches!(m.health, Health::Ready { .. }));
    (failed, ready, starting)
}

/// A paused rollout still keeps the cluster at its size, for the autoscaler
/// or an operator resizing it meanwhile (a paused Kubernetes Deployment
/// scales too). Members it adds run the revision known to be good (the one
/// rolled from, or rolled back to), so a canary or a version that paused the
/// rollout by failing does not spread while nobody is watching; `resume`
/// rolls them with the rest. Shrinking takes the newest members first, down
/// to the size plus the surge the rollout may have started.
fn paused(r: &Rollout, members: &[MemberView], size: u32, mut out: Step) -> Step {
    let stable = if r.rolling_back { r.target } else { r.previous };
    let mut serving: Vec<&MemberView> = members
        .iter()
        .filter(|m| m.draining_since_ms.is_none())
        .collect();
    let n = serving.len() as u32;
    for _ in n..size {
        out.actions.push(Action::Start {
            revision: stable,
            reason: format!(
                "the cluster is {size} while the rollout is paused: revision {stable}, the last known good"
            ),
        });
    }
    // The surge the rollout had started when it paused may stay.
    let most = size + r.update.max_surge;
    serving.sort_by_key(|m| std::cmp::Reverse(m.index));
    for m in serving.iter().take(n.saturating_sub(most) as usize) {
        out.actions.push(drain_or_remove(
            m,
            "the cluster is smaller than its members while the rollout is paused",
        ));
    }
    out
}

/// A member that serves drains first; one that does not goes at once.
fn drain_or_remove(m: &MemberView, reason: &str) -> Action {
    match m.health {
        Health::Ready { .. } => Action::Drain {
            index: m.index,
            reason: reason.into(),
        },
        _ => Action::Remove {
            index: m.index,
            reason: reason.into(),
        },
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
