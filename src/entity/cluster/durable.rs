//! What a cluster keeps in the store and how it comes back: its membership
//! (with each member's revision), the rollout in progress, the
//! replacements under way, written intent-before-action and restored at a
//! rebind.

use super::*;

impl ClusterEntity {
    /// What the store keeps of this cluster.
    pub(super) fn saved_state(&self) -> crate::store::ClusterState {
        crate::store::ClusterState {
            desired: self.desired,
            next_index: self.next_index,
            members: self.members.keys().copied().collect(),
            replacing: self.replacing.clone(),
            member_revisions: self.members.iter().map(|(i, m)| (*i, m.revision)).collect(),
            revision: self.revs.current,
            specs: self
                .revs
                .specs
                .iter()
                .map(|(r, s)| (*r, (**s).clone()))
                .collect(),
            rollout: self
                .revs
                .rollout
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok()),
        }
    }

    /// Writes the membership, then acts on it: starts the new members and
    /// tears down the removed ones. Intent before action: a crash between
    /// the two is finished on rebind, never doubled.
    pub(super) fn commit(&mut self, ctx: &mut Context<Self>) {
        let starts = std::mem::take(&mut self.unstarted);
        let stops = std::mem::take(&mut self.to_teardown);
        let write = self.persist();
        ctx.spawn(write.into_actor(self).map(move |_, act, ctx| {
            for a in starts {
                a.do_send(Invoke::new("start"));
            }
            for (id, addr) in stops {
                // Removed for good: its `retain: false` volumes go too;
                // replaced in place by a rollout: they stay.
                let keep = act.keep_volumes.remove(&id);
                ctx.spawn(
                    async move {
                        if keep {
                            addr.send(Teardown).await
                        } else {
                            addr.send(crate::entity::container::TeardownForGood).await
                        }
                    }
                    .into_actor(act)
                    .map(move |res, act, _| {
                        let res = res.unwrap_or_else(|e| Err(EntityError::unreachable(&id, e)));
                        if let Err(e) = res {
                            tracing::warn!(member = %id, error = %e, "member teardown failed");
                        }
                        act.removing.remove(&id);
                        act.publish();
                        act.update_state();
                    }),
                );
            }
        }));
    }

    /// The store write of the current membership (done at once without a store).
    pub(super) fn persist(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        let Some(store) = self.links.store.clone() else {
            return Box::pin(async {});
        };
        let w = crate::store::StoreWrite::PutCluster {
            app: self.me.app.clone(),
            entity: self.me.entity.clone(),
            state: self.saved_state(),
        };
        let me = self.me.to_string();
        Box::pin(async move {
            match store.send(w).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(cluster = %me, error = %e, "cannot save the membership")
                }
                Err(e) => tracing::error!(cluster = %me, error = %e, "the store is not answering"),
            }
        })
    }

    /// At the first start after a rebind: the members the store knows, at
    /// their numbers (their containers are adopted by name), and the
    /// replacements that were under way.
    pub(super) fn restore(&mut self, ctx: &mut Context<Self>) {
        if self.restored {
            return;
        }
        self.restored = true;
        let Some(st) = self
            .links
            .saved
            .clusters
            .get(&(self.me.app.clone(), self.me.entity.clone()))
            .cloned()
        else {
            return;
        };
        tracing::info!(cluster = %self.me, members = ?st.members, replacing = ?st.replacing, "restoring membership");
        // The blueprint's member spec, before the stored revisions replace it.
        let from_blueprint = self.member_spec.clone();
        self.desired = st.desired;
        self.next_index = st.next_index.max(1);
        // The revisions first: members are made from their own.
        if st.revision > 0 {
            self.revs.current = st.revision;
            self.revs.specs = st
                .specs
                .iter()
                .map(|(r, s)| (*r, Arc::new(s.clone())))
                .collect();
            self.revs.rollout = st
                .rollout
                .as_ref()
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            if let Some(spec) = self.revs.specs.get(&self.revs.for_new_member()) {
                self.member_spec = spec.clone();
            }
        }
        for i in &st.members {
            let rev = st
                .member_revisions
                .get(i)
                .copied()
                .unwrap_or(self.revs.current);
            self.add_member_rev(*i, rev, ctx);
        }
        self.finish_apply(from_blueprint);
        for (old, new) in st.replacing {
            if self.members.contains_key(&old) && self.members.contains_key(&new) {
                self.surge.insert(new);
                self.replacing.push((old, new));
                let addr = self.members[&new].addr.clone();
                let new_id = self.members[&new].id.clone();
                ctx.spawn(async move { addr.send(Invoke::new("start")).await }.into_actor(self).map(move |res, act, ctx| {
                    act.replacing.retain(|p| *p != (old, new));
                    if matches!(res, Ok(Ok(_))) {
                        act.surge.remove(&new);
                        act.remove_member(old, ctx);
                    } else {
                        tracing::warn!(member = %new_id, "resumed replacement failed; keeping the old member");
                        act.remove_member(new, ctx);
                    }
                    act.commit(ctx);
                    act.publish();
                    act.update_state();
                }));
            }
        }
    }
}
