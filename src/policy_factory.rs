//! The policy factory an application is handed: it turns the blueprint's
//! resolved policies into running policy actors on the entities the
//! application makes, and registers each with the management actor (which
//! routes REST calls and preset reloads to it).
//!
//! It sits above both `entity` and `policy`, so neither knows the other:
//! entities see the [`PolicyFactory`] trait and protocol recipients,
//! policies see only the protocol.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::blueprint::{Blueprint, PolicySpec, RebalanceSpec, ServiceType};
use crate::entity::policies::{MemberPolicies, PolicyFactory, PolicyTarget};
use crate::entity::Links;
use crate::policy::autoscaler::Autoscaler;
use crate::policy::placement::{CpuPlacement, Tune};
use crate::policy::replacer::{Replacer, Trigger};
use crate::policy::restarter::{Restarter, Unwatch, Watch};
use crate::policy::{PolicyConfig, PolicyControl, PolicyRegistered, ResolvedPolicy};
use crate::protocol::{EntityRef, Subscribe};

/// One policy as attached to a service, with the blueprint entry it was
/// resolved from (re-resolved when a preset changes).
struct Attached {
    policy: ResolvedPolicy,
    spec: PolicySpec,
}

/// The policies of one application's services.
pub struct BlueprintPolicies {
    app: String,
    kinds: BTreeMap<String, ServiceType>,
    policies: BTreeMap<String, Vec<Attached>>,
    links: Links,
    registry: Recipient<PolicyRegistered>,
    /// The location's host pool, which hands `cpu-placement` changes to its
    /// placement policy; `None` in a location without a pool.
    tune: Option<Recipient<Tune>>,
}

impl BlueprintPolicies {
    /// `policies`: the resolved policies by service id (every entry of the
    /// blueprint resolved against the presets).
    pub fn new(
        bp: &Blueprint,
        policies: BTreeMap<String, Vec<ResolvedPolicy>>,
        links: Links,
        registry: Recipient<PolicyRegistered>,
        tune: Option<Recipient<Tune>>,
    ) -> Self {
        let policies = policies
            .into_iter()
            .map(|(service, resolved)| {
                let attached = resolved
                    .into_iter()
                    .map(|policy| Attached {
                        spec: spec_of(bp, &service, &policy),
                        policy,
                    })
                    .collect();
                (service, attached)
            })
            .collect();
        BlueprintPolicies {
            app: bp.name.clone(),
            kinds: bp.services.iter().map(|s| (s.id.clone(), s.kind)).collect(),
            policies,
            links,
            registry,
            tune,
        }
    }

    fn of(&self, service: &str) -> &[Attached] {
        self.policies.get(service).map_or(&[], Vec::as_slice)
    }

    fn register(&self, service: &str, a: &Attached, control: Recipient<PolicyControl>) {
        self.registry.do_send(PolicyRegistered {
            app: self.app.clone(),
            entity: service.to_string(),
            policy: a.policy.clone(),
            spec: a.spec.clone(),
            control,
        });
    }

    fn saved(&self, entity: &str, policy: &str) -> Option<serde_json::Value> {
        self.links.saved_policy(&self.app, entity, policy)
    }
}

/// The blueprint entry a resolved policy came from (its preset or kind
/// names it).
fn spec_of(bp: &Blueprint, service: &str, policy: &ResolvedPolicy) -> PolicySpec {
    bp.services
        .iter()
        .find(|s| s.id == service)
        .and_then(|s| {
            s.policies
                .iter()
                .find(|p| p.preset.as_deref().or(p.kind.as_deref()) == Some(policy.name.as_str()))
        })
        .cloned()
        .unwrap_or(PolicySpec {
            preset: policy.preset.clone(),
            kind: Some(policy.config.kind().into()),
            config: Default::default(),
        })
}

/// A replacer that acts on `entity.failed` replaces the member at once, so
/// the members must not also be restarted (pure).
pub fn replaces_at_once(policies: &[ResolvedPolicy]) -> bool {
    policies
        .iter()
        .any(|p| matches!(&p.config, PolicyConfig::Replacer(c) if c.trigger == Trigger::Failed))
}

impl PolicyFactory for BlueprintPolicies {
    fn rebalance(&self, service: &str) -> Option<RebalanceSpec> {
        self.of(service)
            .iter()
            .find_map(|a| match &a.policy.config {
                PolicyConfig::CpuPlacement(c) => Some(c.clone()),
                _ => None,
            })
    }

    fn members(&self, service: &str) -> Option<Box<dyn MemberPolicies>> {
        let attached = self.of(service);
        let resolved: Vec<ResolvedPolicy> = attached.iter().map(|a| a.policy.clone()).collect();
        if replaces_at_once(&resolved) {
            return None;
        }
        let mut restarters = Vec::new();
        for a in attached {
            let PolicyConfig::Restarter(cfg) = &a.policy.config else {
                continue;
            };
            let addr = Restarter::for_members(
                a.policy.name.clone(),
                cfg.clone(),
                self.links.activities.clone(),
                self.links.store.clone(),
            )
            .start();
            self.register(service, a, addr.clone().recipient());
            restarters.push((a.policy.name.clone(), addr));
        }
        if restarters.is_empty() {
            return None;
        }
        Some(Box::new(Members {
            restarters,
            links: self.links.clone(),
        }))
    }

    fn attach(
        &self,
        service: &str,
        target: PolicyTarget,
        children: &BTreeMap<String, Recipient<Subscribe>>,
    ) {
        let kind = self.kinds.get(service).copied();
        let activities = self.links.activities.clone();
        for a in self.of(service) {
            let name = a.policy.name.clone();
            let control: Recipient<PolicyControl> = match &a.policy.config {
                // On a cluster the members' restarters are `members`'.
                PolicyConfig::Restarter(cfg) if kind == Some(ServiceType::Container) => {
                    Restarter::start_for(
                        name.clone(),
                        cfg.clone(),
                        activities.clone(),
                        self.links.store.clone(),
                        Watch {
                            target: target.entity.clone(),
                            subscribe: target.subscribe.clone(),
                            invoke: target.invoke.clone(),
                            notice: target.notice.clone(),
                            saved: self.saved(service, &name),
                        },
                    )
                    .recipient()
                }
                PolicyConfig::Replacer(cfg) => {
                    let Some(problem) = target.problem.clone() else {
                        continue;
                    };
                    Replacer::new(
                        target.entity.clone(),
                        target.subscribe.clone(),
                        target.invoke.clone(),
                        problem,
                        activities.clone(),
                        cfg.clone(),
                    )
                    .named(name.clone())
                    .persisted(self.links.store.clone(), self.saved(service, &name))
                    .start()
                    .recipient()
                }
                PolicyConfig::Autoscaler(cfg) => {
                    let source_id = cfg.entity.clone().unwrap_or_else(|| service.to_string());
                    let mut subscribe_to = vec![target.subscribe.clone()];
                    if source_id != service {
                        match children.get(&source_id) {
                            Some(s) => subscribe_to.push(s.clone()),
                            None => {
                                tracing::error!(app = %self.app, entity = %source_id, "autoscaler metric entity missing");
                                continue;
                            }
                        }
                    }
                    Autoscaler::new(
                        name.clone(),
                        target.entity.clone(),
                        EntityRef::new(self.app.clone(), source_id),
                        target.invoke.clone(),
                        target.notice.clone(),
                        subscribe_to,
                        activities.clone(),
                        cfg.clone(),
                    )
                    .persisted(self.links.store.clone(), self.saved(service, &name))
                    .start()
                    .recipient()
                }
                // A handle for operators; the moves are the location's
                // placement policy's.
                PolicyConfig::CpuPlacement(cfg) => CpuPlacement::new(
                    name.clone(),
                    self.app.clone(),
                    service.to_string(),
                    cfg.clone(),
                    self.tune.clone(),
                )
                .start()
                .recipient(),
                PolicyConfig::Restarter(_) => continue,
            };
            self.register(service, a, control);
        }
    }
}

/// A cluster's member policies: one [`Restarter`] per restarter policy on
/// the cluster, watching every member.
struct Members {
    restarters: Vec<(String, Addr<Restarter>)>,
    links: Links,
}

impl MemberPolicies for Members {
    fn joined(&mut self, m: PolicyTarget) {
        for (name, r) in &self.restarters {
            r.do_send(Watch {
                target: m.entity.clone(),
                subscribe: m.subscribe.clone(),
                invoke: m.invoke.clone(),
                notice: m.notice.clone(),
                saved: self
                    .links
                    .saved_policy(&m.entity.app, &m.entity.entity, name),
            });
        }
    }

    fn left(&mut self, member: &EntityRef) {
        for (_, r) in &self.restarters {
            r.do_send(Unwatch(member.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::replacer::ReplacerConfig;
    use crate::policy::restarter::RestarterConfig;

    fn resolved(config: PolicyConfig) -> ResolvedPolicy {
        ResolvedPolicy {
            name: config.kind().into(),
            preset: None,
            config,
        }
    }

    #[test]
    fn a_replacer_on_failure_takes_the_members_from_the_restarter() {
        let restarter = resolved(PolicyConfig::Restarter(RestarterConfig::default()));
        let after_restart = resolved(PolicyConfig::Replacer(ReplacerConfig::default()));
        let at_once = resolved(PolicyConfig::Replacer(ReplacerConfig {
            trigger: Trigger::Failed,
            ..ReplacerConfig::default()
        }));
        assert!(!replaces_at_once(&[restarter.clone()]));
        assert!(!replaces_at_once(&[restarter.clone(), after_restart]));
        assert!(replaces_at_once(&[restarter, at_once]));
    }
}
