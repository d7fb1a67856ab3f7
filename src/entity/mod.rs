//! Entities: one actor per managed thing.
//!
//! An entity owns its spec, its sensors and its lifecycle state, publishes
//! every sensor change to its subscribers, and handles effector calls.
//! Entities talk to each other and to the engine only by messages.
//!
//! - [`container::ContainerEntity`]: one Docker container.
//! - [`cluster::ClusterEntity`]: a resizable group of identical containers.
//! - [`application::ApplicationEntity`]: the root of a deployed blueprint.

pub mod application;
pub mod cluster;
pub mod container;
pub mod failure;
pub mod images;
pub mod memory;
pub mod policies;
pub mod pool_messages;
pub mod references;

use actix::prelude::*;

/// How others reach an entity without knowing its actor type.
#[derive(Clone)]
pub struct EntityHandle {
    pub kind: crate::protocol::EntityKind,
    pub invoke: Recipient<crate::protocol::Invoke>,
    pub subscribe: Recipient<crate::protocol::Subscribe>,
    pub teardown: Recipient<crate::protocol::Teardown>,
    /// Containers only: engine events and resync observations.
    pub container: Option<ContainerInbox>,
    /// Where enrichers publish (containers, clusters, load balancers).
    pub publish: Option<Recipient<crate::protocol::PublishSensor>>,
}

#[derive(Clone)]
pub struct ContainerInbox {
    pub events: Recipient<crate::host::ContainerEvent>,
    pub observed: Recipient<Observed>,
}

impl std::fmt::Debug for EntityHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityHandle")
            .field("kind", &self.kind)
            .finish()
    }
}

/// A periodic resync's view of one container entity: what the engine holds
/// under its labels (`None`: nothing).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Observed(
    pub Option<crate::host::ManagedContainer>,
    /// When the engine was listed (see `HostResync::listed_at`).
    pub std::time::Instant,
);

/// Announces a new child to the parent's subscribers (the management actor
/// registers it and subscribes in turn, so the tree is observed whole).
#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct ChildAdded {
    pub parent: crate::protocol::EntityRef,
    pub child: crate::protocol::EntityRef,
    pub handle: EntityHandle,
}

/// Where an entity runs: its engine and the application network.
#[derive(Clone)]
pub struct Placement {
    pub host: actix::Addr<crate::host::DockerHost>,
    pub host_name: String,
    pub host_address: String,
    pub network: Option<String>,
    /// The location's host pool: containers ask it for a host (`host` is
    /// then the pool's home engine, where application networks are made).
    /// `None`: every container runs on `host`.
    pub pool: Option<pool_messages::PoolLink>,
}

/// Who is told about new children: the management actor.
pub type ChildSink = Recipient<ChildAdded>;

/// The management actor's inboxes every entity may need.
#[derive(Clone)]
pub struct Links {
    /// The durable store; `None` in tests that run without one.
    pub store: Option<Recipient<crate::store::StoreWrite>>,
    /// What the store held at start, for entities and policies rebuilt by a rebind.
    pub saved: std::sync::Arc<Saved>,
    pub children: Recipient<ChildAdded>,
    pub activities: Recipient<crate::activity::RecordActivity>,
    /// The application's image pins (one digest per tag per deploy).
    pub images: images::ImagePins,
    /// Load balancers run as agent containers on their location's engine
    /// (`drover serve`); `false` runs them inside drover (unit tests).
    pub lb_containers: bool,
}

/// Saved state for a rebind: cluster membership and policy memory.
#[derive(Debug, Default)]
pub struct Saved {
    pub clusters: std::collections::BTreeMap<(String, String), crate::store::ClusterState>,
    pub policies: std::collections::BTreeMap<(String, String, String), serde_json::Value>,
    /// Policy memory written since start (newer than `policies`): an
    /// apply's rebuilt policies start from it.
    pub live: memory::LiveMemory,
    /// Clusters (app, cluster) an interrupted apply was rolling to their
    /// blueprint's member spec: they roll at their first start.
    pub applying: std::collections::BTreeSet<(String, String)>,
}

impl Saved {
    /// A policy's memory as it is now: written since start, else as the
    /// store held it at start.
    pub fn policy(&self, app: &str, entity: &str, policy: &str) -> Option<serde_json::Value> {
        self.live.get(app, entity, policy).or_else(|| {
            self.policies
                .get(&(app.to_string(), entity.to_string(), policy.to_string()))
                .cloned()
        })
    }
}

impl Links {
    /// Saves a policy's memory (fire and forget: policies act on their
    /// in-memory state; the store follows).
    pub fn save_policy(&self, app: &str, entity: &str, policy: &str, state: serde_json::Value) {
        self.saved.live.put(app, entity, policy, state.clone());
        if let Some(s) = &self.store {
            s.do_send(crate::store::StoreWrite::PutPolicy {
                app: app.to_string(),
                entity: entity.to_string(),
                policy: policy.to_string(),
                state,
            });
        }
    }

    pub fn saved_policy(&self, app: &str, entity: &str, policy: &str) -> Option<serde_json::Value> {
        self.saved.policy(app, entity, policy)
    }
}
