//! What a cluster publishes about its members: `group.*` sensors, its
//! state, and the answers of resizes waiting for it to settle, worked out
//! once per burst of member events.

use actix::prelude::*;
use serde_json::json;

use super::{cluster_state, resize_verdict, ClusterEntity, FailedMember, Member};
use crate::entity::pool_messages::PlaceErrorKind;
use crate::protocol::{sensors as s, EntityKind, Lifecycle};

/// Work over every member, done once per burst of member events rather
/// than per event: a wave of n events (a deploy, a rebind) cost n² per
/// cluster otherwise. A zero-delay timer ends the burst, so a member that
/// stops running still leaves the load balancer within a millisecond.
#[derive(Debug, Default)]
pub(super) struct AfterBurst {
    /// Publish `group.endpoints` (rebuilt, compared and sent whole: at 500
    /// members per cluster, per event, it took most of the arbiter).
    pub(super) endpoints: bool,
    /// Work out the cluster's state (9% of the actor thread rebinding
    /// 30,000 containers in clusters of 1,000, per event).
    pub(super) state: bool,
}

impl ClusterEntity {
    pub(super) fn publish(&mut self) {
        let size = self.counted().count();
        let ids: Vec<String> = self.counted().map(|(_, m)| m.id.clone()).collect();
        self.board.set(&self.me, s::GROUP_SIZE, json!(size));
        self.board
            .set(&self.me, s::GROUP_DESIRED_SIZE, json!(self.desired));
        self.board.set(&self.me, s::GROUP_MEMBERS, json!(ids));
        self.publish_endpoints();
    }

    /// Running members only: a member leaves every load balancer's pool the
    /// moment it leaves `running`. Surge members (new ones of a replacement)
    /// count once running: they are serving.
    pub(super) fn publish_endpoints(&mut self) {
        let eps: Vec<crate::lb::Endpoint> = self
            .members
            .values()
            .filter(|m| m.state == Lifecycle::Running && !self.removing.contains(&m.id))
            // A draining member gets no new connections.
            .filter(|m| m.draining_since_ms.is_none())
            .filter_map(|m| {
                Some(crate::lb::Endpoint {
                    member: m.id.clone(),
                    address: m.address.clone()?,
                    ports: m.ports.clone(),
                })
            })
            .collect();
        self.board.set(&self.me, s::GROUP_ENDPOINTS, json!(eps));
    }

    /// Publishes `group.endpoints` once the member events at hand are
    /// handled (see [`AfterBurst`]).
    pub(super) fn endpoints_soon(&mut self, ctx: &mut Context<Self>) {
        self.after_burst(ctx, |due| due.endpoints = true);
    }

    /// Works out the cluster's state once the member events at hand are
    /// handled (see [`AfterBurst`]).
    pub(super) fn state_soon(&mut self, ctx: &mut Context<Self>) {
        self.after_burst(ctx, |due| due.state = true);
    }

    /// Marks work due at the end of this burst; the first mark of a burst
    /// sets the timer that does it all.
    pub(super) fn after_burst(
        &mut self,
        ctx: &mut Context<Self>,
        mark: impl FnOnce(&mut AfterBurst),
    ) {
        let scheduled = self.due.endpoints || self.due.state;
        mark(&mut self.due);
        if !scheduled {
            ctx.run_later(std::time::Duration::ZERO, |act, _| {
                let due = std::mem::take(&mut act.due);
                if due.endpoints {
                    act.publish_endpoints();
                }
                if due.state {
                    act.update_state();
                }
            });
        }
    }

    pub(super) fn update_state(&mut self) {
        if self.tearing_down || !self.started {
            return;
        }
        let states: Vec<Lifecycle> = self.counted().map(|(_, m)| m.state).collect();
        let state = if self.problem.is_some() {
            Lifecycle::OnFire
        } else {
            cluster_state(self.desired, &states, self.removing.len())
        };
        if state != self.state {
            self.state = state;
            self.board
                .publish_state(&self.me, EntityKind::Cluster, state);
        }
        self.check_waiters();
    }

    /// Resolves resize waiters once the cluster has settled, well or badly.
    pub(super) fn check_waiters(&mut self) {
        if self.waiters.is_empty() {
            return;
        }
        let counted: Vec<&Member> = self.counted().map(|(_, m)| m).collect();
        let settled = counted.len() as u32 == self.desired
            && self.removing.is_empty()
            && counted
                .iter()
                .all(|m| matches!(m.state, Lifecycle::Running | Lifecycle::OnFire));
        if !settled {
            return;
        }
        let failed: Vec<FailedMember> = counted
            .iter()
            .filter(|m| m.state == Lifecycle::OnFire)
            .map(|m| FailedMember {
                id: &m.id,
                error: m.error.as_deref(),
                no_capacity: m.place_failure == Some(PlaceErrorKind::InsufficientCapacity),
            })
            .collect();
        let result = resize_verdict(&self.me, counted.len(), &failed);
        for w in self.waiters.drain(..) {
            let _ = w.send(result.clone());
        }
    }
}
