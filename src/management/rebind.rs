//! Rebind: at start, every stored application is rebuilt and reconciled
//! with the engines (containers adopted by their deterministic names,
//! missing ones created, interrupted operations resumed), then the orphan
//! sweep removes this drover's containers that nothing expects.

use std::collections::BTreeSet;

use actix::prelude::*;

use crate::protocol::EntityRef;

use super::{Activity, Destroy, Management};

impl Management {
    /// Rebuilds every stored application and reconciles with the engines:
    /// containers are adopted by name (deterministic), missing ones are
    /// created, interrupted operations resume from the saved intents, and
    /// containers labelled as drover's that nothing expects are removed.
    pub(super) fn rebind(&mut self, ctx: &mut Context<Self>) {
        let Some(snap) = self.rebind.take() else {
            return;
        };
        let mut expected: BTreeSet<(String, String)> = Default::default();
        let finishing = self.finish_pending(&snap);
        for (id, app) in snap.apps {
            let bp = match self.validate(&app.file, &app.text) {
                Ok(bp) => bp,
                Err(e) => {
                    // Kept as it is (its containers too): an operator decides.
                    tracing::error!(app = %id, error = %e, "a stored application no longer validates; not rebound");
                    expected.insert((id.clone(), "*".into()));
                    continue;
                }
            };
            for svc in &bp.services {
                match svc.kind {
                    crate::blueprint::ServiceType::Cluster => {
                        let members: Vec<u32> =
                            match snap.clusters.get(&(id.clone(), svc.id.clone())) {
                                Some(st) => st
                                    .members
                                    .iter()
                                    .copied()
                                    .chain(st.replacing.iter().flat_map(|(a, b)| [*a, *b]))
                                    .collect(),
                                None => (1..=svc.initial_size.unwrap_or(1)).collect(),
                            };
                        for m in members {
                            expected.insert((id.clone(), format!("{}-{m}", svc.id)));
                        }
                    }
                    _ => {
                        expected.insert((id.clone(), svc.id.clone()));
                    }
                }
            }
            tracing::info!(app = %id, destroying = app.destroying, "rebinding");
            self.create_app(ctx, bp, app.created_ms, app.file.clone(), app.text.clone());
            self.record(Activity::policy(
                &id,
                &id,
                "rebind",
                serde_json::json!({}),
                "ok",
                "rebuilt from the store".to_string(),
            ));
            if app.destroying {
                // A destroy was under way: finish it.
                ctx.address().do_send(Destroy(id));
            }
        }
        // After the rebuilt entities had time to register their members.
        ctx.run_later(ORPHAN_SWEEP_AFTER, move |act, ctx| {
            act.sweep_orphans(ctx, expected);
            // The pools' hosts are swept once their lists come back.
            ctx.run_later(std::time::Duration::from_secs(60), |act, _| {
                act.gone_before_sweep = None;
            });
            // The clusters took the finished steps at their start (and
            // stored them): the pending applies are done.
            for app in finishing {
                act.store_pending(&app, None);
            }
        });
    }

    /// Applies interrupted by a crash: their stored steps go into what the
    /// rebuilt entities start from (sizes, rollouts), overrides they reset
    /// go now. Returns the applications concerned.
    fn finish_pending(&mut self, snap: &crate::store::Snapshot) -> Vec<String> {
        use super::pending::{PendingApply, PENDING};
        let mut clusters = self.saved.clusters.clone();
        let mut applying = self.saved.applying.clone();
        let mut finishing = Vec::new();
        for (id, app) in &snap.apps {
            let key = (id.clone(), id.clone(), PENDING.to_string());
            let Some(p) = PendingApply::stored_for(snap.policies.get(&key), &app.text) else {
                continue;
            };
            tracing::info!(app = %id, pending = ?p, "finishing an interrupted apply");
            for (svc, size) in &p.resize {
                if let Some(st) = clusters.get_mut(&(id.clone(), svc.clone())) {
                    st.desired = *size;
                }
            }
            for svc in &p.roll {
                applying.insert((id.clone(), svc.clone()));
            }
            for (entity, policy) in &p.reset {
                self.clear_override(id, entity, policy);
            }
            self.record(Activity::policy(
                id,
                id,
                "apply.resume",
                serde_json::to_value(&p).unwrap_or_default(),
                "ok",
                "finishing the apply a restart interrupted".to_string(),
            ));
            finishing.push(id.clone());
        }
        if !finishing.is_empty() {
            self.saved = std::sync::Arc::new(crate::entity::Saved {
                clusters,
                policies: self.saved.policies.clone(),
                live: self.saved.live.clone(),
                applying,
            });
        }
        finishing
    }

    /// Removes containers labelled as drover's that no entity expects (left
    /// by an interrupted deploy, or an interrupted shrink).
    fn sweep_orphans(&mut self, ctx: &mut Context<Self>, expected: BTreeSet<(String, String)>) {
        let mut hosts: Vec<Addr<crate::host::DockerHost>> = Vec::new();
        let mut seen = BTreeSet::new();
        let expected = std::sync::Arc::new(expected);
        for (name, p) in &self.locations {
            match self.pools.get(name) {
                // Every engine of a pool, not only its home engine.
                Some(pool) => {
                    let (pool, expected) = (pool.clone(), expected.clone());
                    ctx.spawn(
                        async move { pool.send(crate::location::pool::GetHosts).await }
                            .into_actor(self)
                            .map(move |res, act, ctx| {
                                for host in res.unwrap_or_default() {
                                    act.sweep_host(ctx, host, expected.clone());
                                }
                            }),
                    );
                }
                None => {
                    if seen.insert(p.host_name.clone()) {
                        hosts.push(p.host.clone());
                    }
                }
            }
        }
        for host in hosts {
            self.sweep_host(ctx, host, expected.clone());
        }
    }

    fn sweep_host(
        &mut self,
        ctx: &mut Context<Self>,
        host: Addr<crate::host::DockerHost>,
        expected: std::sync::Arc<BTreeSet<(String, String)>>,
    ) {
        {
            let h = host.clone();
            ctx.spawn(async move { h.send(crate::host::ListManaged { app: None }).await }.into_actor(self).map(move |res, act, _| {
                let Ok(Ok(list)) = res else { return };
                let ours = crate::host::OWNER.get();
                for c in list {
                    // Another drover's container (one engine, several drovers): not ours to judge.
                    if ours.is_some() && c.owner.as_ref() != ours {
                        continue;
                    }
                    let known_app = act.apps.contains_key(&c.app) || act.pending_deploys.contains(&c.app);
                    let me = EntityRef::new(c.app.clone(), c.entity.clone());
                    let went = act.gone_before_sweep.as_ref().is_some_and(|g| g.contains(&me));
                    let expected_here = expected.contains(&(c.app.clone(), "*".into()))
                        || expected.contains(&(c.app.clone(), c.entity.clone()));
                    let keep = (expected_here && !went) || (known_app && act.view.model().contains(&me));
                    if keep {
                        continue;
                    }
                    tracing::warn!(app = %c.app, entity = %c.entity, container = %c.name, "removing an orphaned container");
                    act.record(Activity::policy(&c.app, &c.entity, "rebind.remove_orphan", serde_json::json!({ "container": c.name }), "ok",
                        "a container labelled as drover's that no entity expects".to_string()));
                    host.do_send(crate::host::Operate { container: c.id, op: crate::host::ContainerOp::Remove });
                }
            }));
        }
    }
}

/// How long after start the orphan sweep runs: rebuilt clusters register
/// their members first.
const ORPHAN_SWEEP_AFTER: std::time::Duration = std::time::Duration::from_secs(3);
