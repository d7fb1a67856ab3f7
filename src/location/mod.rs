//! Locations: pools of Docker hosts, from `drover.yaml`.
//!
//! - [`config`]: the file (serde, unknown keys denied, positions in errors);
//! - [`provision`]: the `static`, `local-dockerd` and `command` provisioners;
//! - [`pool`]: the host pool actor (placement, headroom, provisioning,
//!   failed hosts).

pub mod config;
pub mod pool;
pub mod provision;
pub mod start;

pub use config::{DroverConfig, LocationConfig};
pub use pool::HostPool;

/// Where published ports of an engine are reached: the host of a `tcp://`
/// endpoint, else this machine.
pub fn address_of_endpoint(endpoint: &str) -> String {
    endpoint
        .strip_prefix("tcp://")
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .unwrap_or_else(|| "127.0.0.1".to_string())
}

/// Every pool host gets its own slice of addresses for application
/// networks: engines on one machine share one kernel, and two bridges with
/// the same subnet would route each other's traffic (the `local` engine
/// uses `--subnet-pool`, 10.213.0.0/16 by default). Host `n` of this
/// process gets `10.(216 + n/16).((n%16)·16).0/20`: sixteen /24 networks.
pub fn host_subnet_pool() -> crate::host::subnets::SubnetPool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % 128;
    let addr = std::net::Ipv4Addr::new(10, (216 + n / 16) as u8, ((n % 16) * 16) as u8, 0);
    let net = crate::host::subnets::Ipv4Net::new(addr, 20).expect("a /20 is valid");
    crate::host::subnets::SubnetPool::new(net, 24).expect("/24s fit in a /20")
}
