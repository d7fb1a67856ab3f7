//! Members that own named volumes keep their identity, as a Kubernetes
//! StatefulSet's pods keep their ordinals: member `web-2` is always
//! `web-2`, and its volume `drover-<app>-web-2-<name>` with it.
//!
//! - A replacement is made in place: the old container is removed first,
//!   then a new one starts under the same number, on the host that holds
//!   the volume (the pool places it there). Capacity dips by one member
//!   for that time, as with a StatefulSet: two processes never share one
//!   data directory, which most databases would not survive.
//! - A cluster grown again takes the lowest free numbers, so members that
//!   a shrink removed come back with their data.
//!
//! A child module of `cluster`, for its private fields.

use actix::prelude::*;
use serde_json::json;

use super::ClusterEntity;
use crate::protocol::{EntityError, Invoke, Teardown};

/// The lowest member number (from 1) neither in use nor being removed.
pub fn lowest_free_index(in_use: impl Iterator<Item = u32>, removing: impl Fn(u32) -> bool) -> u32 {
    let used: std::collections::BTreeSet<u32> = in_use.collect();
    (1..)
        .find(|i| !used.contains(i) && !removing(*i))
        .expect("fewer than u32::MAX members")
}

impl ClusterEntity {
    /// `replace_member` of a stateful cluster: remove, then start the same
    /// member again (see the module doc).
    pub(super) fn replace_in_place(
        &mut self,
        index: u32,
        member: String,
        _ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        let Some(old) = self.members.remove(&index) else {
            return Box::pin(fut::ready(Err(EntityError::NoSuchMember {
                entity: self.me.to_string(),
                member,
                known: String::new(),
            })));
        };
        if let Some(p) = &mut self.member_policies {
            p.left(&crate::protocol::EntityRef::new(
                self.me.app.clone(),
                old.id.clone(),
            ));
        }
        self.removing.insert(old.id.clone());
        // Without the old member in the store: a crash from here on comes
        // back one member short, and the reconcile after the rebind adds
        // the lowest free number, this one.
        let write = self.persist();
        self.publish();
        self.update_state();
        let addr = old.addr.clone();
        Box::pin(
            async move {
                write.await;
                addr.send(Teardown).await
            }
            .into_actor(self)
            .then(move |res, act, ctx| {
                act.removing.remove(&old.id);
                let res = res.unwrap_or_else(|e| Err(EntityError::unreachable(&old.id, e)));
                if let Err(e) = res {
                    // The old container may still hold the name: the next
                    // reconcile starts the member once it is gone.
                    act.reconcile(ctx);
                    let failed: Answer = Box::pin(fut::ready(Err(EntityError::Failed {
                        entity: act.me.to_string(),
                        message: format!("replacing {member}: removing its container failed: {e}"),
                    })));
                    return failed;
                }
                act.add_member_at(index, ctx);
                let new_addr = act.members[&index].addr.clone();
                act.unstarted.retain(|a| a != &new_addr);
                let write = act.persist();
                act.publish();
                act.update_state();
                let id = member.clone();
                let started: Answer = Box::pin(
                    async move {
                        write.await;
                        new_addr.send(Invoke::new("start")).await
                    }
                    .into_actor(act)
                    .map(move |res, act, _| {
                        act.publish();
                        act.update_state();
                        let res = res.unwrap_or_else(|e| Err(EntityError::unreachable(&id, e)));
                        match res {
                            Ok(_) => Ok(json!({ "old": member, "new": id })),
                            Err(e) => Err(EntityError::Failed {
                                entity: act.me.to_string(),
                                message: format!(
                                    "{id} was replaced in place but did not start: {e}"
                                ),
                            }),
                        }
                    }),
                );
                started
            }),
        )
    }
}

type Answer = fut::LocalBoxActorFuture<ClusterEntity, Result<serde_json::Value, EntityError>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_free_number_comes_back() {
        assert_eq!(lowest_free_index([].into_iter(), |_| false), 1);
        assert_eq!(lowest_free_index([1, 2, 4].into_iter(), |_| false), 3);
        // A number whose container is still being removed is not reused yet.
        assert_eq!(lowest_free_index([1, 2, 4].into_iter(), |i| i == 3), 5);
    }
}
