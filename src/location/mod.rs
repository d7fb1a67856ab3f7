//! Locations: pools of Docker hosts, from `drover.yaml`.
//!
//! - [`config`]: the file (serde, unknown keys denied, positions in errors);
//! - [`provision`]: the `static`, `local-dockerd` and `command` provisioners;
//! - [`pool`]: the host pool actor (placement, headroom, provisioning,
//!   failed hosts).

pub mod config;
pub mod pool;
pub mod provision;

pub use config::{DroverConfig, LocationConfig};
pub use pool::{HostPool, Place, PlacedOn, Release, Relocate};

/// Where published ports of an engine are reached: the host of a `tcp://`
/// endpoint, else this machine.
pub fn address_of_endpoint(endpoint: &str) -> String {
    endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".to_string())
}
