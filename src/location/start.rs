//! Bringing a configured location up at `drover serve`: connect its
//! engines (provisioning the first host of an empty pool), then start
//! its host actors and its pool.

use std::collections::BTreeMap;

use actix::prelude::*;
use bollard::Docker;

use super::config::{LocationConfig, ProvisionerKind, TlsConfig};
use super::connect::{self, HostUpError};
use super::pool::{HostPool, InitialHost, PoolServices};
use super::provision::{self, NewHost, Provisioner};
use crate::entity::pool_messages::PoolLink;
use crate::entity::Placement;
use crate::host::{engines, Capacity, ContainerEvent, DockerHost, HostError, HostResync};
use crate::store::{LocationState, SavedHost};

/// An engine that answered.
pub struct Connected {
    pub name: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub docker: Docker,
    /// Made by the provisioner: how to reach it again after a restart.
    pub provisioned: Option<SavedHost>,
    /// Whether it answered at start: a configured host that did not is
    /// still in the pool, silent (on fire after `on_fire_after`), and
    /// takes containers again once it answers.
    pub answered: bool,
}

/// Why a location could not be brought up at `drover serve`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("location {location}, host {host}: {source}; check its endpoint and TLS files in drover.yaml")]
    Configured {
        location: String,
        host: String,
        source: HostError,
    },
    #[error("location {location}: {source}")]
    FirstHost {
        location: String,
        source: HostUpError,
    },
    #[error("location {location} has no hosts; list some under its `hosts:` in drover.yaml, or give it a provisioner that makes them (`local-dockerd`, `command`)")]
    NoHosts { location: String },
}

/// How long a configured host has to answer at start before drover goes
/// on without it (a machine that drops packets would otherwise hold the
/// start for the client's 120 s timeout).
const ANSWER_AT_START: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects every configured host, then every host the provisioner made
/// before a restart (`saved`): one that does not answer is created again
/// under its name (a `local-dockerd` engine restarts on its data root, with
/// its containers; a `command` provisioner's create script gets the same
/// name). A pool without hosts gets its first one from its provisioner now,
/// so applications have a home engine.
pub async fn connect_location(
    name: &str,
    cfg: &LocationConfig,
    saved: Option<&LocationState>,
) -> Result<Vec<Connected>, StartError> {
    let mut out = Vec::new();
    // A configured host that does not answer does not stop drover (one
    // engine down must not leave every application unmanaged); a
    // location none of whose hosts answers does, with the first reason.
    let mut silent: Option<StartError> = None;
    for h in &cfg.hosts {
        let tls = h
            .tls
            .as_ref()
            .map(|t| (t.ca.as_path(), t.cert.as_path(), t.key.as_path()));
        let configured = |source| StartError::Configured {
            location: name.to_string(),
            host: h.name.clone(),
            source,
        };
        // An endpoint or TLS file drover cannot use is the configuration's
        // fault: refused at once.
        let client = engines::endpoint_client(&h.endpoint, tls).map_err(configured)?;
        let asked = engines::answer_endpoint(&h.endpoint, tls.is_some(), client.clone());
        let answer = tokio::time::timeout(ANSWER_AT_START, asked)
            .await
            .unwrap_or_else(|_| {
                Err(HostError::Connect {
                    endpoint: h.endpoint.clone(),
                    message: format!("no answer within {ANSWER_AT_START:?}"),
                })
            });
        let (docker, answered) = match answer {
            Ok(docker) => (docker, true),
            Err(e) => {
                tracing::warn!(location = %name, host = %h.name, error = %e, "a configured host does not answer; drover starts without it and takes it in when it answers (its containers start elsewhere after `on_fire_after`)");
                silent.get_or_insert(configured(e));
                (client, false)
            }
        };
        out.push(Connected {
            name: h.name.clone(),
            address: h.address(),
            labels: h.labels.clone(),
            docker,
            provisioned: None,
            answered,
        });
    }
    let p: std::sync::Arc<dyn Provisioner> = provision::from_config(name, &cfg.provisioner).into();
    for s in saved.map(|s| s.hosts.as_slice()).unwrap_or_default() {
        let new = NewHost {
            name: s.name.clone(),
            endpoint: s.endpoint.clone(),
            tls: s
                .tls
                .clone()
                .map(|(ca, cert, key)| TlsConfig { ca, cert, key }),
            address: s.address.clone(),
            labels: s.labels.clone(),
        };
        let docker = match connect::connect(&new).await {
            Ok(d) => Some((new, d)),
            Err(e) => {
                tracing::warn!(location = %name, host = %s.name, error = %e, "a provisioned host does not answer; creating it again");
                match connect::create_and_connect(&p, &s.name, s.index).await {
                    Ok(up) => Some(up),
                    Err(e) => {
                        tracing::error!(location = %name, host = %s.name, error = %e, "a provisioned host is lost; its containers start elsewhere");
                        None
                    }
                }
            }
        };
        if let Some((new, docker)) = docker {
            tracing::info!(location = %name, host = %new.name, "adopted a provisioned host");
            out.push(Connected {
                name: new.name.clone(),
                address: new.address.clone(),
                labels: new.labels.clone(),
                docker,
                provisioned: Some(new.saved(s.index)),
                answered: true,
            });
        }
    }
    if !out.iter().any(|c| c.answered) {
        if let Some(e) = silent {
            return Err(e);
        }
    }
    if out.is_empty() && cfg.provisioner.kind != ProvisionerKind::Static {
        let index = saved.map(|s| s.next_index).unwrap_or(1).max(1);
        let host = format!("{name}-{index}");
        let (new, docker) = connect::create_and_connect(&p, &host, index)
            .await
            .map_err(|source| StartError::FirstHost {
                location: name.to_string(),
                source,
            })?;
        out.push(Connected {
            name: new.name.clone(),
            address: new.address.clone(),
            labels: new.labels.clone(),
            docker,
            provisioned: Some(new.saved(index)),
            answered: true,
        });
    }
    if out.is_empty() {
        return Err(StartError::NoHosts {
            location: name.to_string(),
        });
    }
    Ok(out)
}

/// Starts the host actors and the pool of a connected location (inside
/// the management actor's `create`, which owns the event recipients).
/// Returns the placement entities of this location use (the home engine,
/// the first host, and the pool's container inboxes) and the pool.
pub fn start_location(
    name: &str,
    cfg: LocationConfig,
    hosts: Vec<Connected>,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    services: PoolServices,
) -> (Placement, Addr<HostPool>) {
    let provisioner: Box<dyn Provisioner> = provision::from_config(name, &cfg.provisioner);
    // The home engine is one that answered (`connect_location` made sure
    // there is one).
    let first = hosts.iter().position(|c| c.answered).unwrap_or(0);
    let initial: Vec<InitialHost> = hosts
        .into_iter()
        .map(|c| InitialHost {
            addr: connect::start_host(
                &c.name,
                &c.address,
                c.docker,
                events_to.clone(),
                resync_to.clone(),
                services.uploads.clone(),
                cfg.stats_every,
                c.answered,
            ),
            name: c.name,
            address: c.address,
            labels: c.labels,
            provisioned: c.provisioned,
        })
        .collect();
    let home = (
        initial[first].addr.clone(),
        initial[first].name.clone(),
        initial[first].address.clone(),
    );
    let pool = HostPool::new(
        name.to_string(),
        cfg,
        provisioner,
        initial,
        events_to,
        resync_to,
        services,
    )
    .start();
    let link = PoolLink {
        place: pool.clone().recipient(),
        release: pool.clone().recipient(),
        agent_hosts: pool.clone().recipient(),
    };
    let at = Placement {
        host: home.0,
        host_name: home.1,
        host_address: home.2,
        network: None,
        pool: Some(link),
    };
    (at, pool)
}

/// Reads an engine's capacity (for tests and tools).
pub async fn capacity(host: &Addr<DockerHost>) -> Option<crate::host::HostCapacity> {
    host.send(Capacity).await.ok()?.ok()
}
