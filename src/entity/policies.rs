//! How entities get their policies without knowing them: whoever deploys
//! an application hands it a [`PolicyFactory`], built from the blueprint's
//! resolved policies. The application asks it for the policies of each
//! service once the service's entity exists, and hands a cluster the
//! [`MemberPolicies`] its members get. Entities see only protocol
//! recipients; the policy types live above (see `crate::policy_factory`).

use std::collections::BTreeMap;

use actix::Recipient;

use crate::blueprint::RebalanceSpec;
use crate::protocol::{EmitNotice, EntityRef, Invoke, MarkProblem, Subscribe};

/// An entity as a policy reaches it.
#[derive(Clone)]
pub struct PolicyTarget {
    pub entity: EntityRef,
    pub subscribe: Recipient<Subscribe>,
    pub invoke: Recipient<Invoke>,
    pub notice: Recipient<EmitNotice>,
    /// Group entities only: where a policy that gave up says why.
    pub problem: Option<Recipient<MarkProblem>>,
}

/// Builds and starts the policies of one application's services.
pub trait PolicyFactory: Send + Sync {
    /// The `placement.rebalance` a `cpu-placement` policy on `service`
    /// sets for its containers (`None`: no such policy).
    fn rebalance(&self, service: &str) -> Option<RebalanceSpec>;

    /// The policies every member of the cluster `service` gets (its
    /// restarters); `None`: none.
    fn members(&self, service: &str) -> Option<Box<dyn MemberPolicies>>;

    /// Starts the policies attached to `service`, once every child of the
    /// application exists: a policy may watch another child (an
    /// autoscaler's metric from the load balancer), found in `children`.
    fn attach(
        &self,
        service: &str,
        target: PolicyTarget,
        children: &BTreeMap<String, Recipient<Subscribe>>,
    );
}

/// The per-member policies of one cluster: told when members come and go.
pub trait MemberPolicies: Send {
    fn joined(&mut self, member: PolicyTarget);
    fn left(&mut self, member: &EntityRef);
}

/// No policies at all (tests, and applications whose blueprint has none).
pub struct NoPolicies;

impl PolicyFactory for NoPolicies {
    fn rebalance(&self, _: &str) -> Option<RebalanceSpec> {
        None
    }
    fn members(&self, _: &str) -> Option<Box<dyn MemberPolicies>> {
        None
    }
    fn attach(&self, _: &str, _: PolicyTarget, _: &BTreeMap<String, Recipient<Subscribe>>) {}
}
