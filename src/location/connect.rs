//! Bringing one pool host up: provisioning it (off the runtime's threads),
//! connecting its engine and starting its host actor. Shared by the
//! location's start (`start`) and the pool's growth (`pool`), so neither
//! needs the other.

use std::sync::Arc;

use actix::prelude::*;
use bollard::Docker;

use super::provision::{NewHost, ProvisionError, Provisioner};
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
    let out = tokio::task::spawn_blocking(move || p.destroy(&n))
        .await
        .map_err(|source| HostUpError::Task {
            host: name.to_string(),
            source,
        })?
        .map_err(HostUpError::from);
    if out.is_ok() {
        // Its bridges are gone: the slice may go to a new host.
        super::subnet_slices::release_host_subnet_pool(name);
    }
    out
}

/// Starts the host actor of a pool engine (`answered`: it answered when
/// connected; see [`DockerHost::not_answered_yet`]).
pub fn start_host(
    name: &str,
    address: &str,
    docker: Docker,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    uploads: Option<crate::build_context::Uploads>,
    stats_every: std::time::Duration,
    answered: bool,
) -> Addr<DockerHost> {
    let host = DockerHost::new(
        name.to_string(),
        address.to_string(),
        docker,
        events_to,
        resync_to,
    )
    .with_subnet_pool(host_subnet_pool(name))
    .with_uploads(uploads)
    .with_stats_every(stats_every);
    if answered {
        host
    } else {
        host.not_answered_yet()
    }
    .start()
}

pub use super::subnet_slices::host_subnet_pool;
