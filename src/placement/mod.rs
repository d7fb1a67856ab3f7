//! Placement: which Docker host of a location a new container goes to.
//!
//! Pure decisions, no actors, Docker or clock: the host pool actor keeps
//! the in-memory [`HostState`] of every host (fed by the host actors'
//! sensors) and calls [`decide`] for every request. The chain is Clocker's
//! (and kube-scheduler's) shape: filters remove hosts that cannot or must
//! not take the container, then scorers rank the rest; every host's verdict
//! is kept so an operator can read why ("host-2: rejected by
//! max-containers(8)").
//!
//! - [`rules`]: the chain ([`Rules`]) built from a location's defaults and an
//!   entity's overrides (the blueprint's `placement:` key);
//! - [`decide`](mod@decide): the decision over (hosts, request, rules);
//! - [`headroom`]: the pool's spare capacity verdict (hot, cold, ok);
//! - [`rebalance`]: the CPU placement policy's moves off busy hosts;
//! - [`volumes`]: a container with named volumes goes to the host holding them.

pub mod decide;
pub mod headroom;
pub mod rebalance;
pub mod rules;
pub mod volumes;

pub use decide::{decide, Decision, HostState, HostVerdict, Placed, Rejection, Request};
pub use headroom::{headroom, Headroom, HeadroomSpec, HeadroomVerdict};
pub use rules::{Affinity, Rules, DEFAULT_MAX_CONTAINERS};
