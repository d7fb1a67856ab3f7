//! Locations: pools of Docker hosts, from `drover.yaml`.
//!
//! - [`config`]: the file (serde, unknown keys denied, positions in errors);
//! - [`provision`]: the `static`, `local-dockerd` and `command` provisioners;
//! - [`model`]: the host pool's bookkeeping, pure (hosts, reservations,
//!   cordons, failed hosts, demand, which host may go, numbering);
//! - [`pool`]: the host pool actor around it (messages, pings,
//!   provisioning, metrics);
//! - [`connect`]: bringing one pool host up (provision, connect, start);
//! - [`start`]: bringing a configured location up at `drover serve`;
//! - [`view`]: the pool as the API shows it;
//! - [`engine_stop`]: the chaos fault that stops a provisioned host's engine.
//! - [`secrets`]: the files secrets are mounted from.

pub mod config;
pub mod connect;
pub mod engine_stop;
pub mod model;
pub mod pool;
pub mod provision;
pub mod secrets;
pub mod start;
pub mod subnet_slices;
pub mod view;

pub use config::{DroverConfig, LocationConfig};
pub use pool::HostPool;
