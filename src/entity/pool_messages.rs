//! What a container says to its location's host pool, and what the pool
//! says back: the entity side owns these messages, the location answers
//! them. Containers hold only recipients ([`PoolLink`]), never the pool's
//! actor type, so entities do not depend on locations.

use actix::prelude::*;

use crate::blueprint::PlacementSpec;
use crate::host::DockerHost;
use crate::placement::Request;
pub use crate::protocol::Move;

/// The pool's inboxes a container uses.
#[derive(Clone)]
pub struct PoolLink {
    pub place: Recipient<Place>,
    pub release: Recipient<Release>,
    /// The pool's running hosts, for a load balancer's agent container.
    pub agent_hosts: Recipient<crate::lb::plane::ListAgentHosts>,
}

/// Tells a container entity that its host is gone: start again elsewhere.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Relocate {
    pub host: String,
    pub reason: String,
}

/// Asks for a host for one container.
#[derive(Message)]
#[rtype(result = "Result<PlacedOn, PlaceError>")]
pub struct Place {
    pub request: Request,
    /// The entity's `placement:` layers (cluster, then member).
    pub rules: Vec<PlacementSpec>,
    /// Copied to the chosen host from another host if missing there.
    pub image: Option<String>,
    /// Where to send [`Relocate`] if the host fails.
    pub relocate: Option<Recipient<Relocate>>,
    /// A host not to choose (the one a move leaves).
    pub avoid: Option<String>,
    /// Where the CPU placement policy sends [`Move`].
    pub mover: Option<Recipient<Move>>,
    /// Engine names of the container's named volumes: a host holding
    /// them is required (see [`crate::placement::volumes`]).
    pub volumes: Vec<String>,
}

/// The chosen host.
#[derive(Clone)]
pub struct PlacedOn {
    pub host: Addr<DockerHost>,
    pub host_name: String,
    pub host_address: String,
    pub explanation: String,
    /// The container the pool found running there for this entity when
    /// it listed its hosts at start, as the list showed it: a rebind
    /// adopts it as it is, with no engine call.
    pub adopted: Option<crate::host::ContainerInfo>,
}

/// Why a container got no host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// No host fits and the pool cannot grow (at `max_hosts`, a `static`
    /// provisioner, or provisioning failed).
    #[error("insufficient capacity in location {location}: {detail}")]
    InsufficientCapacity { location: String, detail: String },
    /// A host was chosen but could not be readied (network, image).
    #[error("{0}")]
    HostNotReady(String),
    /// The pool stopped before it answered.
    #[error("the host pool stopped")]
    PoolStopped,
}

impl PlaceError {
    pub fn kind(&self) -> PlaceErrorKind {
        match self {
            PlaceError::InsufficientCapacity { .. } => PlaceErrorKind::InsufficientCapacity,
            PlaceError::HostNotReady(_) => PlaceErrorKind::HostNotReady,
            PlaceError::PoolStopped => PlaceErrorKind::PoolStopped,
        }
    }
}

/// A [`PlaceError`]'s variant without its text: what a container publishes
/// (sensor `placement.failure`) so that its cluster can tell a full pool
/// from a broken one and answer a resize with insufficient capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlaceErrorKind {
    InsufficientCapacity,
    HostNotReady,
    PoolStopped,
}

/// The container is gone: free its slot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Release {
    pub app: String,
    pub entity: String,
    /// Only on this host (a move's old host); `None`: wherever it is.
    pub host: Option<String>,
}
