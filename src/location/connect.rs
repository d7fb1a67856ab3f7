//! Bringing one pool host up: provisioning it (off the runtime's threads),
//! connecting its engine and starting its host actor. Shared by the
//! location's start (`start`) and the pool's growth (`pool`), so neither
//! needs the other.

use std::sync::Arc;

use actix::prelude::*;
use bollard::Docker;

use super::provision::{NewHost, ProvisionError, Provisioner};
use crate::host::subnets::{Ipv4Net, SubnetPool};
use crate::host::{engines, ContainerEvent, DockerHost, HostError, HostResync};

/// Why a host could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum HostUpError {
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("the provisioner of host {host} stopped before it answered ({source}); drover's log has its panic")]
    Task {
        host: String,
        source: tokio::task::JoinError,
    },
    #[error("host {host}: {source}")]
    Connect { host: String, source: HostError },
}

/// Connects to a provisioned host's engine.
pub async fn connect(new: &NewHost) -> Result<Docker, HostUpError> {
    let tls = new
        .tls
        .as_ref()
        .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path()));
    engines::connect_endpoint(&new.endpoint, tls)
        .await
        .map_err(|source| HostUpError::Connect {
            host: new.name.clone(),
            source,
        })
}

/// Provisions host `name`, the pool's `index`-th (blocking work, so on
/// `spawn_blocking`).
pub async fn create(
    p: &Arc<dyn Provisioner>,
    name: &str,
    index: u32,
) -> Result<NewHost, HostUpError> {
    let (p, n) = (p.clone(), name.to_string());
    tokio::task::spawn_blocking(move || p.create(&n, index))
        .await
        .map_err(|source| HostUpError::Task {
            host: name.to_string(),
            source,
        })?
        .map_err(HostUpError::from)
}

/// Provisions host `name` and connects to its engine.
pub async fn create_and_connect(
    p: &Arc<dyn Provisioner>,
    name: &str,
    index: u32,
) -> Result<(NewHost, Docker), HostUpError> {
    let new = create(p, name, index).await?;
    let docker = connect(&new).await?;
    Ok((new, docker))
}

/// Gives a provisioned host back to its provisioner.
pub async fn destroy(p: &Arc<dyn Provisioner>, name: &str) -> Result<(), HostUpError> {
    let (p, n) = (p.clone(), name.to_string());
    tokio::task::spawn_blocking(move || p.destroy(&n))
        .await
        .map_err(|source| HostUpError::Task {
            host: name.to_string(),
            source,
        })?
        .map_err(HostUpError::from)
}

/// Starts the host actor of a connected pool engine.
pub fn start_host(
    name: &str,
    address: &str,
    docker: Docker,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
) -> Addr<DockerHost> {
    DockerHost::new(
        name.to_string(),
        address.to_string(),
        docker,
        events_to,
        resync_to,
    )
    .with_subnet_pool(host_subnet_pool())
    .start()
}

/// Every pool host gets its own slice of addresses for application
/// networks: engines on one machine share one kernel, and two bridges with
/// the same subnet would route each other's traffic (the `local` engine
/// uses `--subnet-pool`, 10.213.0.0/16 by default). Host `n` of this
/// process gets `10.(216 + n/16).((n%16)·16).0/20`: sixteen /24 networks.
pub fn host_subnet_pool() -> SubnetPool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % 128;
    let addr = std::net::Ipv4Addr::new(10, (216 + n / 16) as u8, ((n % 16) * 16) as u8, 0);
    let net = Ipv4Net::new(addr, 20).expect("a /20 is valid");
    SubnetPool::new(net, 24).expect("/24s fit in a /20")
}
