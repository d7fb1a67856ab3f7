//! Bringing a configured location up at `drover serve`: connect its
//! engines (provisioning the first host of an empty pool), then start
//! its host actors and its pool.

use std::collections::BTreeMap;

use actix::prelude::*;
use bollard::Docker;

use super::config::{LocationConfig, ProvisionerKind};
use super::pool::{HostPool, InitialHost};
use super::provision::{self, Provisioner};
use crate::entity::Placement;
use crate::host::{engines, Capacity, ContainerEvent, DockerHost, HostResync};

/// An engine that answered.
pub struct Connected {
    pub name: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub docker: Docker,
    pub provisioned: bool,
}

/// Connects every configured host; a pool without hosts gets its first
/// one from its provisioner now, so applications have a home engine.
pub async fn connect_location(name: &str, cfg: &LocationConfig) -> Result<Vec<Connected>, String> {
    let mut out = Vec::new();
    for h in &cfg.hosts {
        let tls = h
            .tls
            .as_ref()
            .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path()));
        let docker = engines::connect_endpoint(&h.endpoint, tls)
            .await
            .map_err(|e| format!("location {name}, host {}: {e}", h.name))?;
        out.push(Connected {
            name: h.name.clone(),
            address: h.address(),
            labels: h.labels.clone(),
            docker,
            provisioned: false,
        });
    }
    if out.is_empty() && cfg.provisioner.kind != ProvisionerKind::Static {
        let p = provision::from_config(name, &cfg.provisioner);
        let host = format!("{name}-1");
        let h = host.clone();
        let new = tokio::task::spawn_blocking(move || p.create(&h, 1))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("location {name}: {e}"))?;
        let tls = new
            .tls
            .as_ref()
            .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path()));
        let docker = engines::connect_endpoint(&new.endpoint, tls)
            .await
            .map_err(|e| format!("location {name}, host {host}: {e}"))?;
        out.push(Connected {
            name: new.name,
            address: new.address,
            labels: new.labels,
            docker,
            provisioned: true,
        });
    }
    if out.is_empty() {
        return Err(format!("location {name} has no hosts"));
    }
    Ok(out)
}

/// Starts the host actors and the pool of a connected location (inside
/// the management actor's `create`, which owns the event recipients).
/// Returns the placement entities of this location use: the home engine
/// (the first host) and the pool.
pub fn start_location(
    name: &str,
    cfg: LocationConfig,
    hosts: Vec<Connected>,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
) -> Placement {
    let provisioner: Box<dyn Provisioner> = provision::from_config(name, &cfg.provisioner);
    let initial: Vec<InitialHost> = hosts
        .into_iter()
        .map(|c| InitialHost {
            addr: DockerHost::new(
                c.name.clone(),
                c.address.clone(),
                c.docker,
                events_to.clone(),
                resync_to.clone(),
            )
            .with_subnet_pool(super::host_subnet_pool())
            .start(),
            name: c.name,
            address: c.address,
            labels: c.labels,
            provisioned: c.provisioned,
        })
        .collect();
    let home = (
        initial[0].addr.clone(),
        initial[0].name.clone(),
        initial[0].address.clone(),
    );
    let pool = HostPool::new(
        name.to_string(),
        cfg,
        provisioner,
        initial,
        events_to,
        resync_to,
    )
    .start();
    Placement {
        host: home.0,
        host_name: home.1,
        host_address: home.2,
        network: None,
        pool: Some(pool),
    }
}

/// Reads an engine's capacity (for tests and tools).
pub async fn capacity(host: &Addr<DockerHost>) -> Option<crate::host::HostCapacity> {
    host.send(Capacity).await.ok()?.ok()
}
