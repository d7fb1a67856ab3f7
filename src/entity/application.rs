//! The application entity: the root of a deployed blueprint.
//!
//! It creates one child per service, starts them in parallel, and derives
//! its own lifecycle from theirs. `stop` removes every container (the
//! children go); `start` makes them again from the blueprint.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde_json::json;

use super::cluster::ClusterEntity;
use super::container::ContainerEntity;
use super::references::{ReferenceOptions, WireReferences};
use super::{
    sensors as s, ChildAdded, EntityError, EntityEvent, EntityHandle, EntityKind, EntityRef,
    Invoke, Lifecycle, Links, Placement, SensorBoard, Subscribe, Teardown,
};
use crate::blueprint::{default_initial_size, Blueprint, ServiceType};
use crate::host::{EnsureNetwork, RemoveNetwork};
use crate::lb::LoadBalancerEntity;
use crate::policy::autoscaler::Autoscaler;
use crate::policy::replacer::{Replacer, Trigger};
use crate::policy::restarter::Restarter;
use crate::policy::{PolicyConfig, PolicyControl, PolicyRegistered, ResolvedPolicy};

/// Whether a service waits for others (references or `depends_on`).
fn needs_wiring(svc: &crate::blueprint::ServiceSpec) -> bool {
    let spec = match svc.kind {
        ServiceType::Container => svc.own_container(),
        ServiceType::Cluster => svc.member.clone().unwrap_or_default(),
        ServiceType::LoadBalancer => return false,
    };
    !svc.depends_on.is_empty() || !crate::blueprint::wiring::container_refs(&spec).is_empty()
}

struct Child {
    handle: EntityHandle,
    state: Lifecycle,
}

pub struct ApplicationEntity {
    me: EntityRef,
    blueprint: Blueprint,
    at: Placement,
    links: Links,
    /// Resolved policies by service id.
    policies: BTreeMap<String, Vec<ResolvedPolicy>>,
    state: Lifecycle,
    board: SensorBoard,
    children: BTreeMap<String, Child>,
    /// Between `start` and `stop`: the state follows the children.
    active: bool,
    tearing_down: bool,
}

/// The application's lifecycle from its children's (pure).
pub fn application_state(children: &[Lifecycle]) -> Lifecycle {
    if children.contains(&Lifecycle::OnFire) {
        Lifecycle::OnFire
    } else if children.iter().all(|s| *s == Lifecycle::Running) {
        Lifecycle::Running
    } else {
        Lifecycle::Starting
    }
}

impl ApplicationEntity {
    pub fn new(
        blueprint: Blueprint,
        at: Placement,
        links: Links,
        policies: BTreeMap<String, Vec<ResolvedPolicy>>,
    ) -> Self {
        ApplicationEntity {
            me: EntityRef::new(blueprint.name.clone(), blueprint.name.clone()),
            blueprint,
            at,
            links,
            policies,
            state: Lifecycle::Created,
            board: SensorBoard::default(),
            children: BTreeMap::new(),
            active: false,
            tearing_down: false,
        }
    }

    pub fn handle(addr: &Addr<ApplicationEntity>) -> EntityHandle {
        EntityHandle {
            kind: EntityKind::Application,
            invoke: addr.clone().recipient(),
            subscribe: addr.clone().recipient(),
            teardown: addr.clone().recipient(),
            container: None,
            publish: None,
        }
    }

    fn set_state(&mut self, state: Lifecycle) {
        if state != self.state {
            self.state = state;
            self.board
                .set(&self.me, s::ENTITY_STATE, json!(state.as_str()));
            self.board.emit(EntityEvent::State {
                source: self.me.clone(),
                kind: EntityKind::Application,
                state,
            });
        }
    }

    fn update_state(&mut self) {
        if self.active && !self.tearing_down {
            let states: Vec<Lifecycle> = self.children.values().map(|c| c.state).collect();
            self.set_state(application_state(&states));
        }
    }

    /// A `cpu-placement` policy: its handle for operators (the moves are
    /// the location's placement policy's).
    fn start_cpu_placement(&self, service: &str, policies: &[ResolvedPolicy], at: &Placement) {
        for p in policies {
            if let PolicyConfig::CpuPlacement(cfg) = &p.config {
                let handle = crate::policy::placement::CpuPlacement::new(
                    p.name.clone(),
                    self.me.app.clone(),
                    service.to_string(),
                    cfg.clone(),
                    at.pool.clone().map(|a| a.recipient()),
                )
                .start();
                self.register_policy(service, p, handle.recipient());
            }
        }
    }

    fn register_policy(
        &self,
        entity: &str,
        policy: &ResolvedPolicy,
        control: Recipient<PolicyControl>,
    ) {
        let spec = self
            .blueprint
            .services
            .iter()
            .find(|s| s.id == entity)
            .and_then(|s| {
                s.policies.iter().find(|p| {
                    p.preset.as_deref().or(p.kind.as_deref()) == Some(policy.name.as_str())
                })
            })
            .cloned()
            .unwrap_or(crate::blueprint::PolicySpec {
                preset: policy.preset.clone(),
                kind: Some(policy.config.kind().into()),
                config: Default::default(),
            });
        self.links.policies.do_send(PolicyRegistered {
            app: self.me.app.clone(),
            entity: entity.to_string(),
            policy: policy.clone(),
            spec,
            control,
        });
    }

    /// Makes the children that are missing. Returns their handles.
    fn ensure_children(&mut self, ctx: &mut Context<Self>, at: &Placement) -> Vec<EntityHandle> {
        // Load balancers last: they subscribe to their target cluster.
        let mut services = self.blueprint.services.clone();
        services.sort_by_key(|s| s.kind == ServiceType::LoadBalancer);
        let mut clusters: BTreeMap<String, Addr<ClusterEntity>> = BTreeMap::new();
        // Dependants (references or depends_on), wired once every child exists.
        let mut dependants: Vec<(Recipient<WireReferences>, ReferenceOptions)> = Vec::new();
        for svc in services {
            if self.children.contains_key(&svc.id) {
                continue;
            }
            let child = EntityRef::new(self.me.app.clone(), svc.id.clone());
            let policies = self.policies.get(&svc.id).cloned().unwrap_or_default();
            let activities = self.links.activities.clone();
            let handle = match svc.kind {
                ServiceType::Container => {
                    let mut spec = svc.own_container();
                    cpu_placement(&mut spec.placement, &policies);
                    let addr = ContainerEntity::new(child.clone(), spec, at.clone())
                        .with_activities(activities.clone())
                        .start();
                    if needs_wiring(&svc) {
                        dependants.push((addr.clone().recipient(), ReferenceOptions::of(&svc)));
                    }
                    self.start_cpu_placement(&svc.id, &policies, &at);
                    for p in &policies {
                        if let PolicyConfig::Restarter(cfg) = &p.config {
                            let r = addr.clone();
                            let pa = Restarter::new(
                                child.clone(),
                                r.clone().recipient(),
                                r.clone().recipient(),
                                r.recipient(),
                                activities.clone(),
                                cfg.clone(),
                            )
                            .named(p.name.clone())
                            .persisted(
                                self.links.store.clone(),
                                self.links.saved_policy(&self.me.app, &svc.id, &p.name),
                            )
                            .start();
                            self.register_policy(&svc.id, p, pa.recipient());
                        }
                    }
                    ContainerEntity::handle(&addr)
                }
                ServiceType::Cluster => {
                    let mut member = svc.member.clone().unwrap_or_default();
                    // The cluster's own `placement:` under the member's.
                    member.placement = crate::placement::rules::overlay(
                        svc.placement.as_ref(),
                        member.placement.as_ref(),
                    );
                    cpu_placement(&mut member.placement, &policies);
                    let size = svc.initial_size.unwrap_or_else(default_initial_size);
                    // A replacer that acts on `entity.failed` replaces the
                    // member, so it must not also be restarted.
                    let replaces_at_once = policies
                        .iter()
                        .any(|p| matches!(&p.config, PolicyConfig::Replacer(c) if c.trigger == Trigger::Failed));
                    let member_policies: Vec<ResolvedPolicy> = policies
                        .iter()
                        .filter(|p| {
                            matches!(p.config, PolicyConfig::Restarter(_)) && !replaces_at_once
                        })
                        .cloned()
                        .collect();
                    let addr = ClusterEntity::new(
                        child.clone(),
                        member,
                        size,
                        at.clone(),
                        self.links.clone(),
                        member_policies,
                    )
                    .start();
                    if needs_wiring(&svc) {
                        dependants.push((addr.clone().recipient(), ReferenceOptions::of(&svc)));
                    }
                    for p in &policies {
                        match &p.config {
                            PolicyConfig::Replacer(cfg) => {
                                let c = addr.clone();
                                let pa = Replacer::new(
                                    child.clone(),
                                    c.clone().recipient(),
                                    c.clone().recipient(),
                                    c.recipient(),
                                    activities.clone(),
                                    cfg.clone(),
                                )
                                .named(p.name.clone())
                                .persisted(
                                    self.links.store.clone(),
                                    self.links.saved_policy(&self.me.app, &svc.id, &p.name),
                                )
                                .start();
                                self.register_policy(&svc.id, p, pa.recipient());
                            }
                            // The cluster answers for its members' restarters.
                            PolicyConfig::Restarter(_) if !replaces_at_once => {
                                self.register_policy(&svc.id, p, addr.clone().recipient());
                            }
                            _ => {}
                        }
                    }
                    self.start_cpu_placement(&svc.id, &policies, &at);
                    clusters.insert(svc.id.clone(), addr.clone());
                    ClusterEntity::handle(&addr)
                }
                ServiceType::LoadBalancer => {
                    let target_id = svc.target.clone().unwrap_or_default();
                    let target = EntityRef::new(self.me.app.clone(), target_id.clone());
                    let Some(target_handle) = self
                        .children
                        .get(&target_id)
                        .map(|c| c.handle.subscribe.clone())
                    else {
                        // Validation guarantees the target exists; be safe anyway.
                        tracing::error!(lb = %child, target = %target_id, "load balancer target missing");
                        continue;
                    };
                    let target_port = svc.target_port.unwrap_or_else(|| {
                        self.blueprint
                            .services
                            .iter()
                            .find(|s| s.id == target_id)
                            .and_then(|s| s.member.as_ref())
                            .and_then(|m| m.ports.first().copied())
                            .unwrap_or(0)
                    });
                    let ip: std::net::IpAddr = svc
                        .bind
                        .as_deref()
                        .unwrap_or("0.0.0.0")
                        .parse()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                    let listen = std::net::SocketAddr::new(ip, svc.port.unwrap_or(0));
                    let addr = LoadBalancerEntity::new(
                        child.clone(),
                        target,
                        target_handle,
                        listen,
                        target_port,
                    )
                    .start();
                    LoadBalancerEntity::handle(&addr)
                }
            };
            self.links.children.do_send(ChildAdded {
                parent: self.me.clone(),
                child,
                handle: handle.clone(),
            });
            handle
                .subscribe
                .do_send(Subscribe(ctx.address().recipient()));
            self.children.insert(
                svc.id.clone(),
                Child {
                    handle,
                    state: Lifecycle::Created,
                },
            );
        }
        // Enrichers after every child exists: their input may be any child.
        for svc in self.blueprint.services.clone() {
            for spec in &svc.enrichers {
                let owner = EntityRef::new(self.me.app.clone(), svc.id.clone());
                let Some(owner_child) = self.children.get(&svc.id) else {
                    continue;
                };
                let publish_to = match (svc.kind, clusters.get(&svc.id)) {
                    (ServiceType::Cluster, Some(c)) => c.clone().recipient(),
                    _ => match owner_child.handle.publish.clone() {
                        Some(p) => p,
                        None => continue,
                    },
                };
                let source_id = spec.entity.clone().unwrap_or_else(|| svc.id.clone());
                let source = EntityRef::new(self.me.app.clone(), source_id.clone());
                let feed = if spec.kind == crate::blueprint::EnricherKind::Aggregate {
                    match clusters.get(&svc.id) {
                        Some(c) => crate::enricher::Feed::Members(c.clone().recipient()),
                        None => continue,
                    }
                } else {
                    match self.children.get(&source_id) {
                        Some(c) => crate::enricher::Feed::Entity(c.handle.subscribe.clone()),
                        None => continue,
                    }
                };
                crate::enricher::Enricher::new(spec.clone(), owner, source, publish_to, feed)
                    .start();
            }
        }
        // Every child exists now: give dependants their sources. The message
        // is queued before the `start` the caller sends next, so a
        // dependant knows what to wait for before it is asked to start.
        if !dependants.is_empty() {
            let sources: BTreeMap<String, Recipient<Subscribe>> = self
                .children
                .iter()
                .map(|(id, c)| (id.clone(), c.handle.subscribe.clone()))
                .collect();
            for (to, options) in dependants {
                to.do_send(WireReferences {
                    sources: sources.clone(),
                    options,
                });
            }
        }
        // Autoscalers last: their metric may come from any child (a load balancer).
        for (cluster_id, addr) in &clusters {
            for p in self.policies.get(cluster_id).cloned().unwrap_or_default() {
                let PolicyConfig::Autoscaler(cfg) = &p.config else {
                    continue;
                };
                let cluster = EntityRef::new(self.me.app.clone(), cluster_id.clone());
                let source_id = cfg.entity.clone().unwrap_or_else(|| cluster_id.clone());
                let source = EntityRef::new(self.me.app.clone(), source_id.clone());
                let mut subscribe_to = vec![addr.clone().recipient()];
                if source_id != *cluster_id {
                    match self.children.get(&source_id) {
                        Some(c) => subscribe_to.push(c.handle.subscribe.clone()),
                        None => {
                            tracing::error!(app = %self.me.app, entity = %source_id, "autoscaler metric entity missing");
                            continue;
                        }
                    }
                }
                let pa = Autoscaler::new(
                    p.name.clone(),
                    cluster,
                    source,
                    addr.clone().recipient(),
                    addr.clone().recipient(),
                    subscribe_to,
                    self.links.activities.clone(),
                    cfg.clone(),
                )
                .persisted(
                    self.links.store.clone(),
                    self.links.saved_policy(&self.me.app, cluster_id, &p.name),
                )
                .start();
                self.register_policy(cluster_id, &p, pa.recipient());
            }
        }
        self.children.values().map(|c| c.handle.clone()).collect()
    }

    fn start(&mut self) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        self.active = true;
        self.set_state(Lifecycle::Starting);
        let host = self.at.host.clone();
        let app = self.me.app.clone();
        let me = self.me.to_string();
        let declared: Vec<String> = self
            .blueprint
            .networks
            .iter()
            .map(|n| n.name.clone())
            .collect();
        // The networks first: every container joins them at creation. The
        // application network is created before the declared ones so it gets
        // the first free subnet of the pool.
        let net = async move {
            let main = host
                .send(EnsureNetwork {
                    app: app.clone(),
                    network: None,
                })
                .await;
            if !matches!(main, Ok(Ok(_))) {
                return main;
            }
            for n in declared {
                let r = host
                    .send(EnsureNetwork {
                        app: app.clone(),
                        network: Some(n),
                    })
                    .await;
                if !matches!(r, Ok(Ok(_))) {
                    return r;
                }
            }
            main
        };
        Box::pin(net.into_actor(self).then(move |res, act, ctx| {
            let res = match res {
                Ok(Ok(network)) => Ok(network),
                Ok(Err(e)) => Err(EntityError::Engine {
                    entity: me.clone(),
                    operation: "create network".into(),
                    message: e.to_string(),
                }),
                Err(e) => Err(EntityError::Unreachable {
                    entity: me.clone(),
                    message: e.to_string(),
                }),
            };
            let handles = match res {
                Ok(network) => {
                    let mut at = act.at.clone();
                    at.network = Some(network.clone());
                    act.at.network = Some(network);
                    Ok(act.ensure_children(ctx, &at))
                }
                Err(e) => Err(e),
            };
            async move {
                let handles = handles?;
                let results = futures_util::future::join_all(
                    handles.iter().map(|h| h.invoke.send(Invoke::new("start"))),
                )
                .await;
                let errors: Vec<String> = results
                    .into_iter()
                    .filter_map(|r| match r {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(e.to_string()),
                    })
                    .collect();
                if errors.is_empty() {
                    Ok(json!({ "state": "running" }))
                } else {
                    Err(EntityError::StartFailed {
                        entity: me,
                        message: errors.join("; "),
                    })
                }
            }
            .into_actor(act)
        }))
    }

    /// Tears down every child (removing their containers).
    fn remove_children(&mut self) -> impl std::future::Future<Output = Result<(), EntityError>> {
        let handles: Vec<EntityHandle> = std::mem::take(&mut self.children)
            .into_values()
            .map(|c| c.handle)
            .collect();
        let me = self.me.to_string();
        async move {
            let results =
                futures_util::future::join_all(handles.iter().map(|h| h.teardown.send(Teardown)))
                    .await;
            let errors: Vec<String> = results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                })
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(EntityError::Failed {
                    entity: me,
                    message: errors.join("; "),
                })
            }
        }
    }
}

impl Actor for ApplicationEntity {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(self.state.as_str()));
    }
}

impl Handler<Subscribe> for ApplicationEntity {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        self.board
            .subscribe(msg.0, &self.me, EntityKind::Application, self.state);
    }
}

impl Handler<EntityEvent> for ApplicationEntity {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
        if let EntityEvent::State { source, state, .. } = ev {
            if let Some(c) = self.children.get_mut(&source.entity) {
                c.state = state;
            }
            self.update_state();
        }
    }
}

impl Handler<Invoke> for ApplicationEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, _: &mut Context<Self>) -> Self::Result {
        if self.tearing_down {
            return Box::pin(fut::ready(Err(EntityError::Stopping {
                entity: self.me.to_string(),
            })));
        }
        match msg.effector.as_str() {
            "start" => self.start(),
            "stop" => {
                self.active = false;
                self.set_state(Lifecycle::Stopping);
                Box::pin(self.remove_children().into_actor(self).map(|res, act, _| {
                    act.set_state(if res.is_ok() {
                        Lifecycle::Stopped
                    } else {
                        Lifecycle::OnFire
                    });
                    res.map(|_| json!({ "state": act.state.as_str() }))
                }))
            }
            other => Box::pin(fut::ready(Err(EntityError::UnknownEffector {
                entity: self.me.to_string(),
                effector: other.to_string(),
                known: "start, stop".into(),
            }))),
        }
    }
}

impl Handler<Teardown> for ApplicationEntity {
    type Result = ResponseActFuture<Self, Result<(), EntityError>>;

    fn handle(&mut self, _: Teardown, _: &mut Context<Self>) -> Self::Result {
        self.tearing_down = true;
        self.active = false;
        self.state = Lifecycle::Stopping;
        self.board.emit(EntityEvent::State {
            source: self.me.clone(),
            kind: EntityKind::Application,
            state: Lifecycle::Stopping,
        });
        let host = self.at.host.clone();
        let app = self.me.app.clone();
        let me = self.me.to_string();
        let children = self.remove_children();
        let fut = async move {
            children.await?;
            // The network goes last: it cannot be removed while containers use it.
            match host.send(RemoveNetwork { app }).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(EntityError::Engine {
                    entity: me,
                    operation: "remove network".into(),
                    message: e.to_string(),
                }),
                Err(e) => Err(EntityError::Unreachable {
                    entity: me,
                    message: e.to_string(),
                }),
            }
        };
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            if res.is_ok() {
                act.state = Lifecycle::Stopped;
                act.board.emit(EntityEvent::Gone {
                    source: act.me.clone(),
                });
                ctx.stop();
            } else {
                // Keep the actor so a second destroy can finish the job.
                act.tearing_down = false;
            }
            res
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;

    #[test]
    fn state_from_children() {
        assert_eq!(application_state(&[Running, Running]), Running);
        assert_eq!(application_state(&[Running, Starting]), Starting);
        assert_eq!(application_state(&[Running, OnFire]), OnFire);
    }
}

/// A `cpu-placement` policy (or preset) sets `placement.rebalance` for the
/// containers it is attached to, unless the blueprint set one itself: the
/// location's placement policy then watches them.
fn cpu_placement(
    placement: &mut Option<crate::blueprint::PlacementSpec>,
    policies: &[ResolvedPolicy],
) {
    let Some(cfg) = policies.iter().find_map(|p| match &p.config {
        PolicyConfig::CpuPlacement(c) => Some(c.clone()),
        _ => None,
    }) else {
        return;
    };
    let p = placement.get_or_insert_with(Default::default);
    if p.rebalance.is_none() {
        p.rebalance = Some(cfg);
    }
}
