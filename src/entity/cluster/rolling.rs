//! The cluster's side of a rollout: revisions of its member spec, the
//! `rollout` effector and its status, pause, resume and undo, and driving
//! the pure [`rollout::step`](super::rollout::step) on a tick and on every
//! member change.
//!
//! Intent before action: a new member is in the stored membership, with its
//! revision, before it starts; a removed one is out of it before it is torn
//! down; the rollout's state is stored with the membership. After a `kill
//! -9` the cluster restores its members at their revisions and the rollout
//! where it was, and the state machine carries on from there.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::rollout::{
    failing_limit, member_health, step, Action, MemberFacts, MemberView, Rollout, RolloutState,
    Seen,
};
use super::ClusterEntity;
use crate::blueprint::update::UpdateSpec;
use crate::blueprint::ContainerSpec;
use crate::protocol::{EntityError, Lifecycle};

/// Revisions kept per cluster (besides those members still run).
pub const HISTORY: usize = 10;
/// How often a rollout is looked at besides member changes (min_ready and
/// drain timeouts end on their own).
pub const TICK: std::time::Duration = std::time::Duration::from_millis(250);

pub const ROLLOUT_STATE: &str = "rollout.state";
pub const ROLLOUT_REVISION: &str = "rollout.revision";

/// The revisions of a cluster's member spec and its rollout.
#[derive(Default)]
pub struct Revisions {
    /// The revision the cluster settled on (new members outside a rollout).
    pub current: u64,
    /// Shared with the members made from them.
    pub specs: BTreeMap<u64, Arc<ContainerSpec>>,
    /// The blueprint's `update:` (or the last rollout's).
    pub update: UpdateSpec,
    pub rollout: Option<Rollout>,
}

impl Revisions {
    pub fn new(spec: &Arc<ContainerSpec>, update: Option<UpdateSpec>) -> Self {
        Revisions {
            current: 1,
            specs: BTreeMap::from([(1, spec.clone())]),
            update: update.unwrap_or_default(),
            rollout: None,
        }
    }

    /// A rollout is moving or paused: it owns the membership.
    pub fn active(&self) -> bool {
        self.rollout.as_ref().is_some_and(|r| !r.state.is_final())
    }

    /// The revision a member added now gets.
    pub fn for_new_member(&self) -> u64 {
        match &self.rollout {
            Some(r) if !r.state.is_final() => r.target,
            _ => self.current,
        }
    }

    pub fn state(&self) -> RolloutState {
        self.rollout
            .as_ref()
            .map_or(RolloutState::Complete, |r| r.state)
    }

    /// Keeps the last [`HISTORY`] revisions and every one in `in_use`.
    fn trim(&mut self, in_use: &[u64]) {
        let keep: Vec<u64> = self.specs.keys().rev().take(HISTORY).copied().collect();
        self.specs
            .retain(|r, _| keep.contains(r) || in_use.contains(r));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RolloutArgs {
    member: ContainerSpec,
    #[serde(default)]
    update: Option<UpdateSpec>,
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl ClusterEntity {
    pub(super) fn publish_rollout(&mut self) {
        let st = self.revs.state();
        let rev = self.revs.for_new_member();
        self.board.set(&self.me, ROLLOUT_STATE, json!(st.as_str()));
        self.board.set(&self.me, ROLLOUT_REVISION, json!(rev));
    }

    /// Each step is an activity with its reason.
    fn record(&self, name: &str, detail: String) {
        self.links
            .activities
            .do_send(crate::activity::RecordActivity(crate::activity::Activity {
                id: 0,
                time_ms: now_ms(),
                application: self.me.app.clone(),
                entity: self.me.entity.clone(),
                kind: "event".into(),
                name: name.into(),
                args: json!({ "revision": self.revs.for_new_member() }),
                outcome: "ok".into(),
                message: Some(detail),
                duration_seconds: 0.0,
            }));
    }

    /// The `rollout` effector: a new revision, rolled in the background.
    pub(super) fn start_rollout(
        &mut self,
        args: RolloutArgs,
        ctx: &mut Context<Self>,
    ) -> Result<serde_json::Value, EntityError> {
        let target = self.revs.for_new_member();
        if let Some(u) = args.update {
            self.revs.update = u;
        }
        if self
            .revs
            .specs
            .get(&target)
            .is_some_and(|s| **s == args.member)
        {
            return Ok(json!({ "revision": target, "state": self.revs.state().as_str() }));
        }
        let revision = self.revs.specs.keys().next_back().copied().unwrap_or(0) + 1;
        let member = Arc::new(args.member);
        self.revs.specs.insert(revision, member.clone());
        let in_use: Vec<u64> = self.members.values().map(|m| m.revision).collect();
        self.revs.trim(&in_use);
        let now = now_ms();
        // Members with per-member data are replaced in place, keeping
        // their number and volume (either revision owning one decides).
        let in_place = self.stateful() || super::owns_named_volumes(&member);
        self.revs.rollout = Some(
            Rollout::new(self.revs.current, revision, self.revs.update.clone(), now)
                .in_place(in_place),
        );
        self.member_spec = member;
        self.record(
            "rollout",
            format!("rolling from revision {} to {revision}", self.revs.current),
        );
        self.drive(ctx);
        Ok(json!({ "revision": revision, "state": "rolling" }))
    }

    /// At the first start after a crash: an apply was rolling this cluster
    /// to `spec` (the blueprint's) and may have been cut short before it
    /// asked. The rollout is set, not driven: the reconcile that follows
    /// the restore drives it, as it does a resumed one.
    pub(super) fn finish_apply(&mut self, spec: Arc<ContainerSpec>) {
        let key = (self.me.app.clone(), self.me.entity.clone());
        if !self.links.saved.applying.contains(&key) || self.revs.active() {
            return;
        }
        if self.revs.specs.get(&self.revs.current) == Some(&spec) {
            return;
        }
        let revision = self.revs.specs.keys().next_back().copied().unwrap_or(0) + 1;
        let in_place = self.stateful() || super::owns_named_volumes(&spec);
        self.revs.specs.insert(revision, spec.clone());
        let now = now_ms();
        self.revs.rollout = Some(
            Rollout::new(self.revs.current, revision, self.revs.update.clone(), now)
                .in_place(in_place),
        );
        self.member_spec = spec;
        self.record(
            "rollout",
            format!(
                "rolling from revision {} to {revision}: an apply a restart interrupted",
                self.revs.current
            ),
        );
    }

    /// One step of the rollout, done.
    pub(super) fn drive(&mut self, ctx: &mut Context<Self>) {
        if self.tearing_down {
            return;
        }
        let Some(r) = self.revs.rollout.clone() else {
            return;
        };
        let now = now_ms();
        let views: Vec<MemberView> = self
            .members
            .iter()
            .filter(|(i, m)| !self.surge.contains(i) && !self.removing.contains(&m.id))
            .map(|(i, m)| {
                let limit = self
                    .revs
                    .specs
                    .get(&m.revision)
                    .and_then(|s| s.health.as_ref())
                    .map(failing_limit);
                let facts = MemberFacts {
                    seen: match (m.state, m.ready_since_ms) {
                        (Lifecycle::Running, Some(since_ms)) => Seen::Running { since_ms },
                        (Lifecycle::OnFire, _) => Seen::OnFire,
                        _ => Seen::Starting,
                    },
                    error: m.error.clone(),
                    failing: m.failing.clone(),
                    // Only this leg's: an old member's past restarts do
                    // not fail a rollback to it.
                    restarts: m
                        .left_running_ms
                        .iter()
                        .filter(|t| **t >= r.started_ms)
                        .count() as u32,
                };
                MemberView {
                    index: *i,
                    revision: m.revision,
                    health: member_health(&facts, limit, now),
                    draining_since_ms: m.draining_since_ms,
                }
            })
            .collect();
        let st = step(&r, &views, self.desired, now);
        let changed = !st.actions.is_empty() || st.next.is_some();
        for a in st.actions {
            match a {
                Action::Start { revision, reason } => {
                    let index = if r.in_place {
                        // The member's old container must be gone first
                        // (its name and volume); the next tick starts it.
                        if !self.removing.is_empty() {
                            continue;
                        }
                        super::member_identity::lowest_free_index(
                            self.members.keys().copied(),
                            |_| false,
                        )
                    } else {
                        self.next_index
                    };
                    self.add_member_rev(index, revision, ctx);
                    self.record(
                        "rollout",
                        format!("start {}: {reason}", self.member_id(index)),
                    );
                }
                Action::Drain { index, reason } => {
                    if let Some(m) = self.members.get_mut(&index) {
                        m.draining_since_ms = Some(now);
                        let id = m.id.clone();
                        self.record("rollout", format!("drain {id}: {reason}"));
                    }
                }
                Action::Remove { index, reason } => {
                    let id = self.member_id(index);
                    if r.in_place {
                        // Its volumes stay for the member that takes its place.
                        self.keep_volumes.insert(id.clone());
                    }
                    self.remove_member(index, ctx);
                    self.record("rollout", format!("remove {id}: {reason}"));
                }
            }
        }
        if let Some(next) = st.next {
            self.finish_step(&r, next);
        }
        if changed {
            self.commit(ctx);
            self.publish();
            self.publish_rollout();
            self.update_state();
        }
    }

    /// A state change of the rollout: recorded, counted when final.
    fn finish_step(&mut self, was: &Rollout, next: Rollout) {
        let reason = next.reason.clone().unwrap_or_default();
        if next.rolling_back && !was.rolling_back {
            self.record(
                "rollout",
                format!("rolling back to revision {}: {reason}", next.target),
            );
        } else {
            self.record(
                "rollout",
                format!("revision {}: {} {reason}", next.target, next.state.as_str()),
            );
        }
        if next.state.is_final() {
            let rev = next.settled_revision();
            self.revs.current = rev;
            if let Some(spec) = self.revs.specs.get(&rev) {
                self.member_spec = spec.clone();
            }
            crate::metrics::ROLLOUTS
                .with_label_values(&[&self.me.app, &self.me.entity, next.state.as_str()])
                .inc();
            crate::metrics::ROLLOUT_SECONDS
                .with_label_values(&[&self.me.app, &self.me.entity, next.state.as_str()])
                .observe(now_ms().saturating_sub(next.begun_ms) as f64 / 1000.0);
        }
        self.revs.rollout = Some(next);
    }

    /// `rollout_status`: state, revision, progress and history.
    pub(super) fn rollout_status(&self) -> serde_json::Value {
        let r = self.revs.rollout.as_ref();
        let target = self.revs.for_new_member();
        let mut on: BTreeMap<u64, u32> = BTreeMap::new();
        let mut draining = 0;
        for m in self.members.values() {
            if m.draining_since_ms.is_some() {
                draining += 1;
            } else {
                *on.entry(m.revision).or_default() += 1;
            }
        }
        let updated = self
            .members
            .values()
            .filter(|m| {
                m.revision == target
                    && m.draining_since_ms.is_none()
                    && m.state == Lifecycle::Running
            })
            .count();
        json!(crate::wire::RolloutStatus {
            state: self.revs.state().as_str().into(),
            revision: target,
            previous: r.map(|r| r.previous),
            rolling_back: r.is_some_and(|r| r.rolling_back),
            reason: r.and_then(|r| r.reason.clone()),
            size: self.desired,
            updated: updated as u32,
            draining,
            members_by_revision: on,
            history: self
                .revs
                .specs
                .iter()
                .rev()
                .map(|(rev, spec)| crate::wire::RevisionInfo {
                    revision: *rev,
                    image: spec.image.clone(),
                    current: *rev == self.revs.current,
                })
                .collect(),
        })
    }

    /// `rollout_pause`, `rollout_resume`, `rollout_undo`.
    pub(super) fn rollout_control(
        &mut self,
        what: &str,
        ctx: &mut Context<Self>,
    ) -> Result<serde_json::Value, EntityError> {
        let now = now_ms();
        let bad = |message: String| EntityError::Failed {
            entity: self.me.to_string(),
            message,
        };
        let r = self.revs.rollout.clone();
        let next = match (what, &r) {
            ("pause", Some(r)) => r
                .pause("paused by an operator")
                .ok_or_else(|| bad(format!("the rollout is {}, not rolling", r.state.as_str())))?,
            ("resume", Some(r)) => r
                .resume(now)
                .ok_or_else(|| bad(format!("the rollout is {}, not paused", r.state.as_str())))?,
            ("undo", Some(r)) if !r.state.is_final() => r.roll_back("undone by an operator", now),
            ("undo", _) => {
                // A settled cluster: roll to the revision before it.
                let current = self.revs.current;
                let Some(prev) = self
                    .revs
                    .specs
                    .range(..current)
                    .next_back()
                    .map(|(r, _)| *r)
                else {
                    return Err(bad(format!(
                        "revision {current} has no earlier revision to go back to"
                    )));
                };
                let in_place = self.stateful()
                    || self
                        .revs
                        .specs
                        .get(&prev)
                        .is_some_and(|s| super::owns_named_volumes(s));
                let mut back = Rollout::new(current, current, self.revs.update.clone(), now)
                    .in_place(in_place)
                    .roll_back("undone by an operator", now);
                back.target = prev;
                back.previous = current;
                back
            }
            (_, None) => return Err(bad("no rollout to pause or resume".into())),
            _ => return Err(bad(format!("unknown rollout command {what}"))),
        };
        self.record("rollout", format!("{what}: revision {}", next.target));
        if next.target != self.member_spec_revision() {
            if let Some(spec) = self.revs.specs.get(&next.target) {
                self.member_spec = spec.clone();
            }
        }
        self.revs.rollout = Some(next);
        self.commit(ctx);
        self.publish_rollout();
        self.drive(ctx);
        Ok(self.rollout_status())
    }

    fn member_spec_revision(&self) -> u64 {
        self.revs
            .specs
            .iter()
            .find(|(_, s)| **s == self.member_spec)
            .map_or(0, |(r, _)| *r)
    }
}
