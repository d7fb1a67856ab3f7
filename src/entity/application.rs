//! The application entity: the root of a deployed blueprint.
//!
//! It creates one child per service, starts them in parallel, and derives
//! its own lifecycle from theirs. `stop` removes every container (the
//! children go); `start` makes them again from the blueprint.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::json;

use super::cluster::ClusterEntity;
use super::container::ContainerEntity;
use super::policies::{PolicyFactory, PolicyTarget};
use super::references::{ReferenceOptions, WireReferences};
use super::{ChildAdded, EntityHandle, Links, Placement};
use crate::blueprint::{default_initial_size, Blueprint, ServiceType};
use crate::host::{EnsureNetwork, RemoveNetwork};
use crate::lb::LoadBalancerEntity;
use crate::protocol::{
    entity_handlers, sensors as s, teardown_all, EntityError, EntityEvent, EntityKind, EntityRef,
    Interest, Invoke, Lifecycle, Observable, SensorBoard, Subscribe, Teardown,
};

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
    /// How its policies reach it (containers and clusters), kept so an
    /// apply can rebuild them on the running entity.
    target: Option<PolicyTarget>,
}

mod reconfigure;
pub use reconfigure::{Reconfigure, StepOutcome};

pub struct ApplicationEntity {
    me: EntityRef,
    blueprint: Blueprint,
    at: Placement,
    links: Links,
    /// Builds the policies the blueprint attaches to each service.
    policies: Arc<dyn PolicyFactory>,
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
        policies: Arc<dyn PolicyFactory>,
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
                .publish_state(&self.me, EntityKind::Application, state);
        }
    }

    fn update_state(&mut self) {
        if self.active && !self.tearing_down {
            let states: Vec<Lifecycle> = self.children.values().map(|c| c.state).collect();
            self.set_state(application_state(&states));
        }
    }

    /// Makes the children that are missing. Returns their handles.
    fn ensure_children(&mut self, ctx: &mut Context<Self>, at: &Placement) -> Vec<EntityHandle> {
        // Load balancers last: they subscribe to their target cluster.
        let mut services = self.blueprint.services.clone();
        services.sort_by_key(|s| s.kind == ServiceType::LoadBalancer);
        let mut clusters: BTreeMap<String, Addr<ClusterEntity>> = BTreeMap::new();
        // Dependants (references or depends_on), wired once every child exists.
        let mut dependants: Vec<(Recipient<WireReferences>, ReferenceOptions)> = Vec::new();
        // The new children's policies start once every child exists.
        let mut targets: Vec<(String, PolicyTarget)> = Vec::new();
        // The services made by this call: an apply adds children to a
        // running application, whose others already have their enrichers.
        let mut made: std::collections::BTreeSet<String> = Default::default();
        for svc in services {
            if self.children.contains_key(&svc.id) {
                continue;
            }
            let child = EntityRef::new(self.me.app.clone(), svc.id.clone());
            let activities = self.links.activities.clone();
            let handle = match svc.kind {
                ServiceType::Container => {
                    let mut spec = svc.own_container();
                    rebalance(&mut spec.placement, self.policies.rebalance(&svc.id));
                    let addr = ContainerEntity::new(child.clone(), spec, at.clone())
                        .with_activities(activities.clone())
                        .with_images(self.links.images.clone())
                        .start();
                    if needs_wiring(&svc) {
                        dependants.push((addr.clone().recipient(), ReferenceOptions::of(&svc)));
                    }
                    targets.push((
                        svc.id.clone(),
                        PolicyTarget {
                            entity: child.clone(),
                            subscribe: addr.clone().recipient(),
                            invoke: addr.clone().recipient(),
                            notice: addr.clone().recipient(),
                            problem: None,
                        },
                    ));
                    ContainerEntity::handle(&addr)
                }
                ServiceType::Cluster => {
                    let mut member = svc.member.clone().unwrap_or_default();
                    // The cluster's own `placement:` under the member's.
                    member.placement = crate::placement::rules::overlay(
                        svc.placement.as_ref(),
                        member.placement.as_ref(),
                    );
                    rebalance(&mut member.placement, self.policies.rebalance(&svc.id));
                    let size = svc.initial_size.unwrap_or_else(default_initial_size);
                    let addr = ClusterEntity::new(
                        child.clone(),
                        member,
                        size,
                        at.clone(),
                        self.links.clone(),
                        self.policies.members(&svc.id),
                    )
                    .with_update(svc.update.clone())
                    .start();
                    if needs_wiring(&svc) {
                        dependants.push((addr.clone().recipient(), ReferenceOptions::of(&svc)));
                    }
                    targets.push((
                        svc.id.clone(),
                        PolicyTarget {
                            entity: child.clone(),
                            subscribe: addr.clone().recipient(),
                            invoke: addr.clone().recipient(),
                            notice: addr.clone().recipient(),
                            problem: Some(addr.clone().recipient()),
                        },
                    ));
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
                            .and_then(|m| m.ports.first().map(|p| p.container))
                            .unwrap_or(0)
                    });
                    let ip: std::net::IpAddr = svc
                        .bind
                        .as_deref()
                        .unwrap_or("0.0.0.0")
                        .parse()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                    let listen = std::net::SocketAddr::new(ip, svc.port.unwrap_or(0));
                    // The agent container runs on the location's home
                    // engine (with a pool, where its networks are made);
                    // the pool's other running hosts when it cannot.
                    let agent_host =
                        self.links
                            .lb_containers
                            .then(|| crate::lb::plane::AgentHosts {
                                home: crate::lb::plane::AgentHost {
                                    host: at.host.clone(),
                                    name: at.host_name.clone(),
                                    address: at.host_address.clone(),
                                },
                                others: at.pool.as_ref().map(|p| p.agent_hosts.clone()),
                            });
                    let addr = LoadBalancerEntity::new(
                        child.clone(),
                        target,
                        target_handle,
                        listen,
                        target_port,
                        crate::lb::mode_of(&self.blueprint, &svc),
                        svc.limits.clone().unwrap_or_default(),
                    )
                    .on_host(agent_host)
                    .start();
                    load_balancer_handle(&addr)
                }
            };
            self.links.children.do_send(ChildAdded {
                parent: self.me.clone(),
                child,
                handle: handle.clone(),
            });
            handle
                .subscribe
                .do_send(Subscribe(ctx.address().recipient(), Interest::NoSensors));
            made.insert(svc.id.clone());
            let target = targets
                .iter()
                .find(|(id, _)| *id == svc.id)
                .map(|(_, t)| t.clone());
            self.children.insert(
                svc.id.clone(),
                Child {
                    handle,
                    state: Lifecycle::Created,
                    target,
                },
            );
        }
        // Enrichers after every child exists: their input may be any child.
        for svc in self.blueprint.services.clone() {
            if !made.contains(&svc.id) {
                continue;
            }
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
        let sources: BTreeMap<String, Recipient<Subscribe>> = self
            .children
            .iter()
            .map(|(id, c)| (id.clone(), c.handle.subscribe.clone()))
            .collect();
        // Every child exists now: give dependants their sources. The message
        // is queued before the `start` the caller sends next, so a
        // dependant knows what to wait for before it is asked to start.
        for (to, options) in dependants {
            to.do_send(WireReferences {
                sources: sources.clone(),
                options,
            });
        }
        // Policies last: their metric may come from any child (a load balancer).
        for (service, target) in targets {
            self.policies.attach(&service, target, &sources);
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
        let children: Vec<Recipient<Teardown>> = std::mem::take(&mut self.children)
            .into_values()
            .map(|c| c.handle.teardown)
            .collect();
        teardown_all(self.me.to_string(), "", children)
    }
}

impl Actor for ApplicationEntity {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(self.state.as_str()));
    }
}

impl Observable for ApplicationEntity {
    fn me(&self) -> &EntityRef {
        &self.me
    }
    fn kind(&self) -> EntityKind {
        EntityKind::Application
    }
    fn state(&self) -> Lifecycle {
        self.state
    }
    fn board(&mut self) -> &mut SensorBoard {
        &mut self.board
    }
}

entity_handlers!(subscribe: ApplicationEntity);

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
            other => Box::pin(fut::ready(Err(EntityError::unknown_effector(
                &self.me,
                other,
                &["start", "stop"],
            )))),
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
                Err(e) => Err(EntityError::unreachable(me, e)),
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
fn rebalance(
    placement: &mut Option<crate::blueprint::PlacementSpec>,
    rule: Option<crate::blueprint::RebalanceSpec>,
) {
    let Some(rule) = rule else {
        return;
    };
    let p = placement.get_or_insert_with(Default::default);
    if p.rebalance.is_none() {
        p.rebalance = Some(rule);
    }
}

/// How others reach a load balancer (the load balancer knows no entity
/// handles: it sits below entities).
fn load_balancer_handle(addr: &Addr<LoadBalancerEntity>) -> EntityHandle {
    EntityHandle {
        kind: EntityKind::LoadBalancer,
        invoke: addr.clone().recipient(),
        subscribe: addr.clone().recipient(),
        teardown: addr.clone().recipient(),
        container: None,
        publish: Some(addr.clone().recipient()),
    }
}
