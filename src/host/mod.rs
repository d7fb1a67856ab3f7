//! Docker hosts: one actor per engine, the only code that talks to Docker.
//!
//! [`DockerHost`] owns the bollard client. Its handlers never block: each
//! returns a future over a clone of the client. It follows the engine's
//! event stream (reconnecting with `since` and re-listing to reconcile) and
//! forwards every event of a drover-managed container to whoever manages it.

pub mod agent;
pub mod build;
mod containers;
pub mod credentials;
pub mod engines;
pub mod error;
pub mod events;
pub mod fault;
pub mod health;
pub mod inject;
pub mod machine;
pub mod network;
pub mod pull;
pub mod recent;
pub mod runtime;
pub mod stats;
pub mod subnets;
mod transport;
pub mod usage;
pub mod volumes;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use serde::Serialize;

use crate::blueprint::ContainerSpec;
pub(crate) use containers::{ensure_image, with_connect_retries};
pub use containers::{
    list_managed, operate, ContainerOp, CreateAndStart, Inspect, ListManaged, Operate,
    CALLS_IN_FLIGHT,
};
pub use error::{docker_message, HostError};
pub use fault::EngineFault;
pub use network::{EnsureNetwork, RemoveNetwork};
pub use recent::{Recent, Seen};

/// The labels every container drover creates carries.
pub mod labels {
    pub const MANAGED: &str = "io.drover.managed";
    pub const APP: &str = "io.drover.app";
    pub const ENTITY: &str = "io.drover.entity";
    /// Which drover made the container (its store's identity).
    pub const OWNER: &str = "io.drover.owner";
    /// What a container is when it is not an entity's workload: `lb-agent`
    /// for a load balancer's data plane (see [`super::agent`]).
    pub const ROLE: &str = "io.drover.role";
}

/// How long `docker stop` waits before SIGKILL. Short because drover's
/// members are stateless and replaced rather than drained; Docker's default
/// of 10 s would make every shrink and replace slow.
pub const STOP_TIMEOUT_SECS: i32 = 3;

/// Connects to an engine and negotiates the API version (the engine here
/// speaks 1.41; bollard defaults to a newer one).
pub async fn connect(endpoint: &str) -> Result<Docker, HostError> {
    answer(endpoint, client(endpoint)?).await
}

/// A client for `endpoint` (`local`, `unix://`, `tcp://`), made without
/// asking the engine anything: an error here is the endpoint's, not the
/// engine's. Its API version is bollard's newest until [`answer`] (or
/// any clone's `negotiate_version`: clones share it) lowers it.
pub fn client(endpoint: &str) -> Result<Docker, HostError> {
    // Pooled connections (see `transport`); a TLS or ssh `DOCKER_HOST`
    // goes through bollard's own client.
    let v = bollard::API_DEFAULT_VERSION;
    if endpoint == "local" || endpoint.is_empty() {
        transport::local(120, v)
            .unwrap_or_else(|| Docker::connect_with_local_defaults().map_err(|e| e.to_string()))
    } else if let Some(path) = endpoint.strip_prefix("unix://") {
        transport::unix(path, 120, v)
    } else {
        transport::http(endpoint, 120, v)
    }
    .map_err(|message| HostError::Connect {
        endpoint: endpoint.to_string(),
        message,
    })
}

/// Asks the engine behind `docker` its API version and pings it.
pub async fn answer(endpoint: &str, docker: Docker) -> Result<Docker, HostError> {
    let socket = match endpoint {
        "local" | "" => transport::local_socket(),
        e => e.strip_prefix("unix://").map(str::to_string),
    };
    if let Some(message) = socket.as_deref().and_then(transport::missing_socket) {
        return Err(HostError::Connect {
            endpoint: endpoint.to_string(),
            message,
        });
    }
    agree(docker, |e| HostError::Connect {
        endpoint: endpoint.to_string(),
        message: docker_message(e),
    })
    .await
}

/// Agrees the API version with the engine and pings it, its errors told
/// by `err`.
pub(crate) async fn agree(
    docker: Docker,
    err: impl Fn(&bollard::errors::Error) -> HostError,
) -> Result<Docker, HostError> {
    let docker = docker.negotiate_version().await.map_err(|e| err(&e))?;
    docker.ping().await.map_err(|e| err(&e))?;
    Ok(docker)
}

/// This drover's identity (set once at start, from the store): every
/// container it creates carries it, and it only ever sweeps its own.
pub static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The Docker network of an application.
pub fn network_name(app: &str) -> String {
    format!("drover-{app}")
}

/// Containers are named deterministically so a retried create finds the
/// first one instead of making a duplicate.
pub fn container_name(app: &str, entity: &str) -> String {
    format!("drover-{app}-{entity}")
}

/// What to create.
#[derive(Debug, Clone)]
pub struct ContainerRequest {
    pub app: String,
    pub entity: String,
    /// Shared with the entity that asks (and its cluster's other members of
    /// the same revision): a create waiting for its turn holds no copy of
    /// it. What this create changes of it is below, applied once the call
    /// is made ([`ContainerRequest::resolve`]).
    pub spec: std::sync::Arc<ContainerSpec>,
    /// The image to run instead of the spec's (and its build): as pulled,
    /// pinned to a digest, or as built.
    pub image: Option<String>,
    /// The env and command, with their sensor references resolved.
    pub rendered: Option<(BTreeMap<String, String>, Option<Vec<String>>)>,
    /// Network to join, with the entity id as DNS alias.
    pub network: Option<String>,
    /// More networks to join (Docker names), with the same aliases.
    pub extra_networks: Vec<String>,
    /// DNS aliases besides the entity id: a cluster member also answers to
    /// its cluster's id, as compose's replicas answer to the service name.
    pub aliases: Vec<String>,
}

impl ContainerRequest {
    /// A request for `spec` as it is.
    pub fn new(app: &str, entity: &str, spec: std::sync::Arc<ContainerSpec>) -> Self {
        ContainerRequest {
            app: app.to_string(),
            entity: entity.to_string(),
            spec,
            image: None,
            rendered: None,
            network: None,
            extra_networks: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// Applies `image` and `rendered` to `spec` (copying it only if either
    /// is set): the spec as this create makes the container.
    pub fn resolve(&mut self) {
        if self.image.is_none() && self.rendered.is_none() {
            return;
        }
        let spec = std::sync::Arc::make_mut(&mut self.spec);
        if let Some(image) = self.image.take() {
            spec.image = Some(image);
            spec.build = None;
        }
        if let Some((env, command)) = self.rendered.take() {
            spec.env = env;
            spec.command = command;
        }
    }

    /// The entity id, then the extra aliases.
    pub fn all_aliases(&self) -> Vec<String> {
        let mut a = vec![self.entity.clone()];
        a.extend(self.aliases.iter().filter(|x| **x != self.entity).cloned());
        a
    }
}

/// A container as drover sees it after creating or inspecting it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// `created`, `running`, `paused`, `exited`, ...
    pub state: String,
    /// Container port → published host port.
    pub ports: BTreeMap<u16, u16>,
}

/// A managed container found on the engine.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedContainer {
    /// The drover that made it (`io.drover.owner`), if labelled.
    pub owner: Option<String>,
    pub id: String,
    pub name: String,
    pub app: String,
    pub entity: String,
    pub state: String,
    /// The verdict of the healthcheck the engine runs (`healthy`,
    /// `unhealthy`, `starting`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Container port → published host port, as an inspect reads them:
    /// what a rebind adopts the container with.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, u16>,
}

impl ManagedContainer {
    /// The container as a create or an inspect would have reported it.
    pub fn info(&self) -> ContainerInfo {
        ContainerInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state.clone(),
            ports: self.ports.clone(),
        }
    }
}

/// An engine event about a managed container.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ContainerEvent {
    pub host: String,
    pub app: String,
    pub entity: String,
    pub container_id: String,
    /// Docker's action: `start`, `die`, `kill`, `stop`, `destroy`, `pause`,
    /// `unpause`, `oom`, ...
    pub action: String,
}

/// The full list of managed containers, sent after every (re)connection of
/// the event stream and periodically: events can be lost, a list cannot.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct HostResync {
    pub host: String,
    pub containers: Vec<ManagedContainer>,
    /// When the list was asked for: it shows the engine as it was then,
    /// and anything an entity learned since is newer.
    pub listed_at: std::time::Instant,
}

/// The machine's CPU, memory and load, sampled every few seconds for
/// engines on this machine.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct HostMachine {
    pub host: String,
    pub stats: machine::MachineStats,
}

/// One actor per Docker engine.
pub struct DockerHost {
    name: String,
    /// Address at which published ports are reached.
    address: String,
    docker: Docker,
    events_to: Recipient<ContainerEvent>,
    resync_to: Recipient<HostResync>,
    resync_every: Duration,
    /// Where application subnets come from.
    subnets: subnets::SubnetPool,
    /// Held while a subnet is chosen and its network created, so two
    /// applications deploying at once cannot pick the same subnet.
    network_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where machine stats go; set for engines on this machine.
    machine_to: Option<Recipient<HostMachine>>,
    /// Who gets the engine's capacity and usage sensors.
    usage: usage::Subscribers,
    /// Image pulls in flight, shared by every container waiting for one.
    pulls: pull::InFlight,
    /// Where uploaded build contexts are kept (`None`: builds from
    /// uploads fail with a message saying so).
    uploads: Option<crate::build_context::Uploads>,
    /// The containers whose stats are sampled, a round at a time.
    stats: stats::Feeds,
    /// How often a stats round starts.
    stats_every: Duration,
    /// Bounds the quick container calls (create, start, inspect, kill,
    /// remove, ...) in flight to this engine: see [`containers::CALLS_IN_FLIGHT`].
    calls: std::sync::Arc<tokio::sync::Semaphore>,
    /// Whether the client's API version was agreed with the engine: not
    /// for an engine that did not answer when drover started, whose
    /// first answered ping agrees it (every clone of the client shares
    /// the version).
    negotiated: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The networks and images this engine was seen to have lately.
    recent: Recent,
}

impl DockerHost {
    pub fn new(
        name: String,
        address: String,
        docker: Docker,
        events_to: Recipient<ContainerEvent>,
        resync_to: Recipient<HostResync>,
    ) -> Self {
        DockerHost {
            name,
            address,
            docker,
            events_to,
            resync_to,
            resync_every: Duration::from_secs(10),
            machine_to: None,
            subnets: subnets::SubnetPool::default(),
            network_lock: Default::default(),
            usage: Default::default(),
            pulls: Default::default(),
            uploads: None,
            stats: Default::default(),
            stats_every: stats::ROUND_EVERY,
            calls: std::sync::Arc::new(tokio::sync::Semaphore::new(CALLS_IN_FLIGHT)),
            negotiated: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            recent: Recent::default(),
        }
    }

    /// Build contexts uploaded to the service are read from here.
    pub fn with_uploads(mut self, uploads: Option<crate::build_context::Uploads>) -> Self {
        self.uploads = uploads;
        self
    }

    /// Stats rounds start this often (a location's `stats_every`).
    pub fn with_stats_every(mut self, every: Duration) -> Self {
        self.stats_every = every;
        self
    }

    /// Application networks get their subnet from this pool.
    pub fn with_subnet_pool(mut self, pool: subnets::SubnetPool) -> Self {
        self.subnets = pool;
        self
    }
}

/// How often machine stats are sampled.
const MACHINE_EVERY: Duration = Duration::from_secs(5);

impl DockerHost {
    /// For an engine that did not answer when drover started: its API
    /// version is agreed at its first answered ping.
    pub fn not_answered_yet(self) -> Self {
        self.negotiated
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Sample this machine's CPU, memory and load for the engine (only for
    /// engines on this machine).
    pub fn with_machine_stats(mut self, to: Recipient<HostMachine>) -> Self {
        self.machine_to = Some(to);
        self
    }
}

impl Actor for DockerHost {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(to) = self.machine_to.clone() {
            let host = self.name.clone();
            ctx.run_interval(MACHINE_EVERY, move |act, ctx| {
                let (to, host) = (to.clone(), host.clone());
                ctx.spawn(
                    async move {
                        if let Ok(stats) = tokio::task::spawn_blocking(machine::sample).await {
                            to.do_send(HostMachine { host, stats });
                        }
                    }
                    .into_actor(act),
                );
            });
        }
        // The follower runs on the actor's arbiter but only awaits: no
        // blocking. It owns clones, so it needs no access to `self`.
        let fut = events::follow(
            self.name.clone(),
            self.docker.clone(),
            self.events_to.clone(),
            self.resync_to.clone(),
        );
        ctx.spawn(fut.into_actor(self));
        ctx.run_interval(self.stats_every, |act, ctx| act.start_stats_round(ctx));
        // The safety net: a periodic full list, level-triggered.
        ctx.run_interval(self.resync_every, |act, ctx| {
            let (docker, host, to) = (act.docker.clone(), act.name.clone(), act.resync_to.clone());
            ctx.spawn(
                async move {
                    let listed_at = std::time::Instant::now();
                    if let Ok(containers) = list_managed(&docker, None).await {
                        to.do_send(HostResync {
                            host,
                            containers,
                            listed_at,
                        });
                    }
                }
                .into_actor(act),
            );
        });
    }
}

/// The host's name and address.
#[derive(Message)]
#[rtype(result = "HostDescription")]
pub struct Describe;

#[derive(Debug, Clone, MessageResponse)]
pub struct HostDescription {
    pub name: String,
    pub address: String,
}

impl Handler<Describe> for DockerHost {
    type Result = HostDescription;
    fn handle(&mut self, _: Describe, _: &mut Context<Self>) -> HostDescription {
        HostDescription {
            name: self.name.clone(),
            address: self.address.clone(),
        }
    }
}

/// The engine's capacity: CPUs and memory (`docker info`), for the host
/// capacity metrics.
#[derive(Message)]
#[rtype(result = "Result<HostCapacity, HostError>")]
pub struct Capacity;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct HostCapacity {
    pub cpus: i64,
    pub memory_bytes: i64,
}

impl Handler<Capacity> for DockerHost {
    type Result = ResponseFuture<Result<HostCapacity, HostError>>;
    fn handle(&mut self, _: Capacity, _: &mut Context<Self>) -> Self::Result {
        use std::sync::atomic::Ordering;
        let docker = self.docker.clone();
        let (negotiated, host) = (self.negotiated.clone(), self.name.clone());
        Box::pin(async move {
            if !negotiated.load(Ordering::Relaxed) {
                let d = docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map_err(|e| HostError::engine("engine version", e))?;
                if !negotiated.swap(true, Ordering::Relaxed) {
                    tracing::info!(host = %host, version = %d.client_version(), "the engine answers: API version agreed");
                }
            }
            let info = docker
                .info()
                .await
                .map_err(|e| HostError::engine("engine info", e))?;
            Ok(HostCapacity {
                cpus: info.ncpu.unwrap_or(0),
                memory_bytes: info.mem_total.unwrap_or(0),
            })
        })
    }
}

/// Starts sampling a container's stats; samples go to `to` until the
/// container goes, `to` closes, or the entity follows another container.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FollowStats {
    pub container: String,
    pub to: Recipient<stats::StatsSample>,
    /// The entity's previous container, whose feed ends.
    pub replaces: Option<String>,
}

impl Handler<FollowStats> for DockerHost {
    type Result = ();
    fn handle(&mut self, msg: FollowStats, _: &mut Context<Self>) {
        self.stats
            .follow(msg.container, msg.to, msg.replaces.as_deref());
    }
}

/// A stats round's outcomes, back from the runtime it ran on.
#[derive(Message)]
#[rtype(result = "()")]
struct StatsRoundDone(Vec<(String, stats::Outcome)>);

impl Handler<StatsRoundDone> for DockerHost {
    type Result = ();
    fn handle(&mut self, msg: StatsRoundDone, _: &mut Context<Self>) {
        self.stats.end_round(msg.0);
    }
}

impl DockerHost {
    fn start_stats_round(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.stats.start_round() else {
            return;
        };
        let (docker, me) = (self.docker.clone(), ctx.address());
        // On the multi-thread runtime, not the actor's thread: a round
        // decodes a JSON frame per container.
        tokio::spawn(async move {
            let outcomes = stats::round(docker, due).await;
            me.do_send(StatsRoundDone(outcomes));
        });
    }
}
