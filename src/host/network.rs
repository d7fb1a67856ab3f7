//! Application networks: one bridge network per application (and one per
//! extra network a blueprint declares), each with its own subnet from the
//! host's pool, labelled so destroy and cleanup find them all.

use std::collections::HashMap;

use actix::prelude::*;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptionsBuilder};
use bollard::Docker;

use super::subnets::{Ipv4Net, SubnetPool};
use super::{labels, network_name, with_connect_retries, DockerHost, EngineFault, HostError, Seen};

/// Label naming which of an application's networks this is: `default` for
/// the application network, else the blueprint's network name.
pub const NETWORK_LABEL: &str = "io.drover.network";

/// The Docker name of an application's network: `drover-<app>` for the
/// application network, `drover-<app>-<name>` for a declared one.
pub fn docker_network_name(app: &str, network: Option<&str>) -> String {
    match network {
        None => network_name(app),
        Some(n) => format!("{}-{n}", network_name(app)),
    }
}

/// Creates one of an application's networks if it is missing, with a
/// subnet from the pool. Idempotent. Answers the Docker network name.
#[derive(Message)]
#[rtype(result = "Result<String, HostError>")]
pub struct EnsureNetwork {
    pub app: String,
    /// `None`: the application network; else a network the blueprint declares.
    pub network: Option<String>,
}

impl Handler<EnsureNetwork> for DockerHost {
    type Result = ResponseFuture<Result<String, HostError>>;
    fn handle(&mut self, msg: EnsureNetwork, _: &mut Context<Self>) -> Self::Result {
        let name = docker_network_name(&msg.app, msg.network.as_deref());
        let seen = Seen::Network(name.clone());
        // Every container of a deploy asks: a network seen lately is not
        // asked of the engine again (see `recent`).
        if self.recent.believed(&seen, std::time::Instant::now()) {
            return Box::pin(async move { Ok(name) });
        }
        let docker = self.docker.clone();
        let pool = self.subnets;
        let lock = self.network_lock.clone();
        let recent = self.recent.clone();
        Box::pin(async move {
            // One allocation at a time on this engine: listing the used
            // subnets and creating the network must not interleave.
            let _guard = lock.lock().await;
            // The containers of a deploy wave queue here together: the
            // first one's answer does for those behind it.
            if recent.believed(&seen, std::time::Instant::now()) {
                return Ok(name);
            }
            let made = ensure_network(&docker, pool, &msg.app, msg.network.as_deref()).await?;
            recent.saw(seen, std::time::Instant::now());
            Ok(made)
        })
    }
}

async fn ensure_network(
    docker: &Docker,
    pool: SubnetPool,
    app: &str,
    network: Option<&str>,
) -> Result<String, HostError> {
    let name = docker_network_name(app, network);
    if with_connect_retries(|| docker.inspect_network(&name, None::<InspectNetworkOptions>))
        .await
        .is_ok()
    {
        return Ok(name);
    }
    // Another engine user may create a network between our list and our
    // create; the engine then refuses the overlapping pool and we try again
    // with a fresh list.
    let mut last_error = None;
    // Subnets refused as overlapping in this call: several drovers on one
    // engine may race for the same free subnet, so each retry moves on.
    let mut refused: Vec<Ipv4Net> = Vec::new();
    for attempt in 0..10u64 {
        let mut used = used_subnets(docker).await?;
        used.extend(refused.iter().cloned());
        let Some(subnet) = pool.allocate(&used) else {
            return Err(HostError::SubnetsExhausted {
                network: name,
                pool: pool.pool.to_string(),
                size: pool.size,
                in_use: used.iter().filter(|u| u.overlaps(&pool.pool)).count(),
            });
        };
        let req = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(HashMap::from([
                (labels::MANAGED.to_string(), "true".to_string()),
                (labels::APP.to_string(), app.to_string()),
                (
                    NETWORK_LABEL.to_string(),
                    network.unwrap_or("default").to_string(),
                ),
            ])),
            ..Default::default()
        };
        let created = with_connect_retries(|| docker.create_network(req.clone()))
            .await
            .map_err(|e| HostError::engine(format!("create network {name} ({subnet})"), e));
        match created {
            Ok(_) => {
                tracing::info!(network = %name, %subnet, "created network");
                return Ok(name);
            }
            // Created meanwhile by another deploy of the same application.
            Err(e) if e.is_conflict() => return Ok(name),
            Err(e) if e.fault() != EngineFault::SubnetOverlap => return Err(e),
            Err(e) => {
                last_error = Some(e);
                refused.push(subnet);
                // A short, growing pause: the winner's network shows up in
                // the next list.
                tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt + 1))).await;
            }
        }
    }
    // The last overlap refusal, status and all.
    Err(last_error.unwrap_or_else(|| {
        HostError::local(format!("create network {name}"), "no attempt was made")
    }))
}

/// Every IPv4 subnet any network on the engine uses.
async fn used_subnets(docker: &Docker) -> Result<Vec<Ipv4Net>, HostError> {
    let networks = with_connect_retries(|| {
        docker.list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
    })
    .await
    .map_err(|e| HostError::engine("list networks", e))?;
    let mut used: Vec<Ipv4Net> = networks
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
        .flatten()
        .filter_map(|c| c.subnet.as_deref()?.parse().ok())
        .collect();
    // Engines side by side on one machine share its kernel: a subnet
    // another engine's bridge (or a stale one) routes here is taken too.
    used.extend(local_routes());
    Ok(used)
}

/// The IPv4 networks this machine routes to directly (`/proc/net/route`,
/// gateway 0). Empty where the file is missing.
fn local_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // Little-endian in the file; the default route is not a subnet.
            if gw != 0 || dest == 0 {
                return None;
            }
            let addr = std::net::Ipv4Addr::from(u32::from_be(dest.to_be()).swap_bytes());
            let prefix = u32::from_be(mask.to_be()).swap_bytes().leading_ones() as u8;
            Ipv4Net::new(addr, prefix).ok()
        })
        .collect()
}

/// Removes every network of an application (found by label). Missing
/// networks count as removed.
#[derive(Message)]
#[rtype(result = "Result<(), HostError>")]
pub struct RemoveNetwork {
    pub app: String,
}

impl Handler<RemoveNetwork> for DockerHost {
    type Result = ResponseFuture<Result<(), HostError>>;
    fn handle(&mut self, msg: RemoveNetwork, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        let recent = self.recent.clone();
        recent.forget(&Seen::Network(network_name(&msg.app)));
        Box::pin(async move {
            let filters = HashMap::from([(
                "label".to_string(),
                vec![format!("{}={}", labels::APP, msg.app)],
            )]);
            let opts = ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build();
            let listed = docker
                .list_networks(Some(opts))
                .await
                .map_err(|e| HostError::engine("list networks", e))?;
            let mut names: Vec<String> = listed.into_iter().filter_map(|n| n.name).collect();
            // The application network even if its labels were lost.
            let main = network_name(&msg.app);
            if !names.contains(&main) {
                names.push(main);
            }
            for name in names {
                recent.forget(&Seen::Network(name.clone()));
                let removed = docker
                    .remove_network(&name)
                    .await
                    .map_err(|e| HostError::engine(format!("remove network {name}"), e));
                match removed {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}
