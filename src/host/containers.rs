//! Calls on one engine's containers: create and start (adopting a
//! container that exists), inspect, operations (start, stop, kill,
//! remove, ...), and the list of drover's containers; with the two rules
//! every such call follows: at most [`CALLS_IN_FLIGHT`] quick calls at a
//! time per engine, and any call the engine's socket refused before it
//! was sent is made again ([`with_connect_retries`]). Creates and starts
//! were left to the entity's own retry of a failed start until a
//! 100,000-container deploy, no longer queued behind a network inspect
//! per container, overflowed the engines' accept queues: 3,900 starts
//! failed and were placed again.

use super::*;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Container calls in flight to one engine at most. Each is a connection,
/// and the client keeps connections it opened in a burst: 30,000 entities
/// adopting their containers at once after a restart opened enough of them
/// to run drover and the engines out of open files. Stops and restarts are
/// not bounded (they wait out the container's grace period, so bounding
/// them would make stopping many containers on one host take longer); the
/// stats sampler has its own bound.
pub const CALLS_IN_FLIGHT: usize = 8;

/// Creates (or adopts, if a container of that name and entity exists) and
/// starts a container. Idempotent.
#[derive(Message)]
#[rtype(result = "Result<ContainerInfo, HostError>")]
pub struct CreateAndStart(pub ContainerRequest);

impl Handler<CreateAndStart> for DockerHost {
    type Result = ResponseFuture<Result<ContainerInfo, HostError>>;
    fn handle(&mut self, msg: CreateAndStart, _: &mut Context<Self>) -> Self::Result {
        Box::pin(queued_create(
            self.calls.clone(),
            self.docker.clone(),
            self.name.clone(),
            self.recent.clone(),
            msg.0,
        ))
    }
}

/// Runs `call` once it has a turn among the engine's calls in flight
/// (`calls`; `None`: it needs none).
///
/// The call's future (bollard's and hyper's request state: several KiB)
/// is made and boxed only once the turn comes, so a call that waits holds
/// only what `call` captured. Inline, every call queued behind the limit
/// held the whole future while it waited, and a deploy or a destroy of
/// 100,000 containers queues nearly all of them at once.
async fn in_turn<T, Fut: std::future::Future<Output = T>>(
    calls: Option<Arc<Semaphore>>,
    call: impl FnOnce() -> Fut,
) -> T {
    let _turn = match calls {
        Some(calls) => calls.acquire_owned().await.ok(),
        None => None,
    };
    Box::pin(call()).await
}

fn queued_create(
    calls: Arc<Semaphore>,
    docker: Docker,
    host: String,
    recent: Recent,
    req: ContainerRequest,
) -> impl std::future::Future<Output = Result<ContainerInfo, HostError>> {
    in_turn(Some(calls), move || async move {
        create_and_start(&docker, &host, &recent, req).await
    })
}

pub(crate) async fn ensure_image(
    docker: &Docker,
    host: &str,
    image: &str,
) -> Result<(), HostError> {
    match with_connect_retries(|| docker.inspect_image(image)).await {
        Ok(_) => return Ok(()),
        Err(e) => {
            let e = HostError::engine(format!("inspect image {image}"), e);
            if !e.is_not_found() {
                return Err(e);
            }
        }
    }
    if workload::is_workload_image(image) {
        workload::ensure_workload_image(docker)
            .await
            .map_err(|e| HostError::Workload(e.to_string()))?;
        return Ok(());
    }
    Err(HostError::ImageMissing {
        host: host.to_string(),
        image: image.to_string(),
    })
}

fn create_body(req: &ContainerRequest) -> ContainerCreateBody {
    let spec = &req.spec;
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(labels::MANAGED.into(), "true".into());
    labels.insert(labels::APP.into(), req.app.clone());
    labels.insert(labels::ENTITY.into(), req.entity.clone());
    if let Some(owner) = OWNER.get() {
        labels.insert(labels::OWNER.into(), owner.clone());
    }
    // An empty host port asks the engine for a free one.
    let (exposed, bindings) = runtime::port_bindings(&spec.ports);
    let host_config = HostConfig {
        port_bindings: Some(bindings),
        nano_cpus: spec.resources.cpus.map(|c| (c * 1e9) as i64),
        memory: spec.resources.memory.map(|m| m.0 as i64),
        network_mode: req.network.clone(),
        mounts: Some(volumes::mounts(req)).filter(|m| !m.is_empty()),
        ..Default::default()
    };
    let networking_config = req.network.as_ref().map(|n| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            n.clone(),
            EndpointSettings {
                aliases: Some(req.all_aliases()),
                ..Default::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: spec.image.clone(),
        cmd: spec.command.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: Some(exposed),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

async fn create_and_start(
    docker: &Docker,
    host: &str,
    recent: &Recent,
    req: ContainerRequest,
) -> Result<ContainerInfo, HostError> {
    let mut req = req;
    req.resolve();
    let name = container_name(&req.app, &req.entity);
    let image = req.spec.image.clone().unwrap_or_default();
    // The image is not inspected first: the pool and the pull have just
    // made sure of it, and the create's own 404 says when it is missing.
    // The workload's tag is shared by every drover build using the engine
    // (an upgrade, several branches' tests): the container is made from
    // this build's image, by id, never from whatever the tag names now.
    if workload::is_workload_image(&image) {
        let id = workload::ensure_workload_image(docker)
            .await
            .map_err(|e| HostError::Workload(e.to_string()))?;
        std::sync::Arc::make_mut(&mut req.spec).image = Some(id);
    }
    volumes::ensure_volumes(docker, &req).await?;
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let mut body = create_body(&req);
    runtime::apply(&req.spec, &mut body)?;
    let created =
        with_connect_retries(|| docker.create_container(Some(opts.clone()), body.clone()))
            .await
            .map_err(|e| HostError::engine(format!("create container {name}"), e));
    let id = match created {
        Ok(r) => r.id,
        // A container of that name exists, left by an earlier attempt.
        // Adopt it if it is ours and for this entity.
        // An image or network drover believed there is not: forget what
        // this host was believed to have, and say which it was.
        Err(e) if e.is_not_found() => {
            recent.forget_all();
            ensure_image(docker, host, &image).await?;
            return Err(e);
        }
        Err(e) if e.is_conflict() => {
            let found = docker
                .inspect_container(&name, None)
                .await
                .map_err(|e| HostError::engine("inspect container", e))?;
            let labels = found
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            if labels.get(labels::APP) != Some(&req.app)
                || labels.get(labels::ENTITY) != Some(&req.entity)
            {
                return Err(HostError::NameTaken { name });
            }
            found.id.unwrap_or_default()
        }
        Err(e) => return Err(e),
    };
    // Engine API 1.41 joins one network at creation; the others are
    // connected before the start, so the process sees all of them.
    for net in &req.extra_networks {
        let connect = bollard::models::NetworkConnectRequest {
            container: id.clone(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(req.all_aliases()),
                ..Default::default()
            }),
        };
        let connected = docker
            .connect_network(net, connect)
            .await
            .map_err(|e| HostError::engine(format!("connect {name} to network {net}"), e));
        match connected {
            Ok(()) => {}
            // An adopted container may be connected already.
            Err(e) if e.fault() == EngineFault::AlreadyConnected => {}
            Err(e) => return Err(e),
        }
    }
    // Several engines on one machine each allocate published ports from
    // the same ephemeral range without knowing of the others: a port
    // another engine holds fails the start with "address already in use".
    // The engine's allocator moves on to the next port, so a few retries
    // settle it.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = with_connect_retries(|| docker.start_container(&id, None))
            .await
            .map_err(|e| HostError::engine(format!("start container {name}"), e));
        match started {
            Ok(()) => break,
            // Already started.
            Err(e) if e.fault() == EngineFault::NotModified => break,
            // A fixed host port that is taken stays taken: say which.
            Err(HostError::Engine { ref message, .. })
                if runtime::fixed_port_clash(message, &req.spec.ports).is_some() =>
            {
                let port = runtime::fixed_port_clash(message, &req.spec.ports).unwrap_or(0);
                let container = req
                    .spec
                    .ports
                    .iter()
                    .find(|p| p.host == Some(port))
                    .map_or(0, |p| p.container);
                return Err(HostError::PortInUse {
                    host: host.to_string(),
                    port,
                    container,
                });
            }
            Err(e) if attempt < 8 && e.fault() == EngineFault::AddressInUse => continue,
            Err(e) => return Err(e),
        }
    }
    inspect(docker, &id).await
}

async fn inspect(docker: &Docker, id: &str) -> Result<ContainerInfo, HostError> {
    let c = with_connect_retries(|| docker.inspect_container(id, None))
        .await
        .map_err(|e| HostError::engine("inspect container", e))?;
    let state = c
        .state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut ports = BTreeMap::new();
    if let Some(map) = c.network_settings.as_ref().and_then(|n| n.ports.as_ref()) {
        for (key, bindings) in map {
            let Some(cport) = key.split('/').next().and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            let hport = bindings
                .iter()
                .flatten()
                .filter_map(|b| b.host_port.as_deref().and_then(|p| p.parse::<u16>().ok()))
                .next();
            if let Some(h) = hport {
                ports.insert(cport, h);
            }
        }
    }
    Ok(ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        state,
        ports,
    })
}

/// Inspects a container. `Ok(None)` if it does not exist.
#[derive(Message)]
#[rtype(result = "Result<Option<ContainerInfo>, HostError>")]
pub struct Inspect(pub String);

impl Handler<Inspect> for DockerHost {
    type Result = ResponseFuture<Result<Option<ContainerInfo>, HostError>>;
    fn handle(&mut self, msg: Inspect, _: &mut Context<Self>) -> Self::Result {
        Box::pin(queued_inspect(
            self.calls.clone(),
            self.docker.clone(),
            msg.0,
        ))
    }
}

fn queued_inspect(
    calls: Arc<Semaphore>,
    docker: Docker,
    id: String,
) -> impl std::future::Future<Output = Result<Option<ContainerInfo>, HostError>> {
    in_turn(Some(calls), move || async move {
        match inspect(&docker, &id).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    })
}

/// Operations on an existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerOp {
    Start,
    Stop,
    Restart,
    /// Stop and remove; a missing container counts as removed.
    Remove,
    Kill,
    Pause,
    Unpause,
}

#[derive(Message)]
#[rtype(result = "Result<(), HostError>")]
pub struct Operate {
    pub container: String,
    pub op: ContainerOp,
}

impl Handler<Operate> for DockerHost {
    type Result = ResponseFuture<Result<(), HostError>>;
    fn handle(&mut self, msg: Operate, _: &mut Context<Self>) -> Self::Result {
        Box::pin(queued_operate(self.calls.clone(), self.docker.clone(), msg))
    }
}

/// A stop or restart takes no turn: it waits for the container, not the
/// engine.
fn queued_operate(
    calls: Arc<Semaphore>,
    docker: Docker,
    msg: Operate,
) -> impl std::future::Future<Output = Result<(), HostError>> {
    let calls = (!matches!(msg.op, ContainerOp::Stop | ContainerOp::Restart)).then_some(calls);
    in_turn(calls, move || async move {
        operate(&docker, &msg.container, msg.op).await
    })
}

/// The engine's socket refused the connection before the request was sent
/// (its accept queue full in a burst, or the engine gone): nothing reached
/// the engine, so the call may be made again, whatever it is.
fn refused_before_sent(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::HyperLegacyError { err } if err.is_connect())
}

/// Retries a call the engine's socket refused before it was sent: 50 ms,
/// then twice as long each time, five times (1.55 s in all). Destroying
/// 10,000 containers at once on simulated engines overflowed their accept
/// queues and failed hundreds of removals that a moment later succeed.
pub(crate) async fn with_connect_retries<T, F, Fut>(
    mut call: F,
) -> Result<T, bollard::errors::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match call().await {
            Err(e) if refused_before_sent(&e) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            r => return r,
        }
    }
    call().await
}

pub async fn operate(docker: &Docker, id: &str, op: ContainerOp) -> Result<(), HostError> {
    let r = with_connect_retries(|| operate_once(docker, id, op)).await;
    let r = r.map_err(|e| HostError::engine(format!("{op:?} container {id}").to_lowercase(), e));
    match r.map_err(|e| (e.fault(), e)) {
        Ok(()) => Ok(()),
        Err((fault, e)) => {
            if tolerated(op, fault) {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

async fn operate_once(
    docker: &Docker,
    id: &str,
    op: ContainerOp,
) -> Result<(), bollard::errors::Error> {
    match op {
        ContainerOp::Start => docker.start_container(id, None).await,
        // No timeout here: the container's own (its `stop_grace_period`,
        // set at create; drover's default 3s) and its own stop signal apply.
        ContainerOp::Stop => {
            docker
                .stop_container(id, None::<bollard::query_parameters::StopContainerOptions>)
                .await
        }
        ContainerOp::Restart => {
            // A paused container cannot be restarted; unpausing one that is
            // not paused is a harmless error.
            let _ = docker.unpause_container(id).await;
            docker
                .restart_container(
                    id,
                    None::<bollard::query_parameters::RestartContainerOptions>,
                )
                .await
        }
        ContainerOp::Remove => {
            // Force removal kills at once; members are stateless, and the
            // graceful path (stop first) is the entity's choice.
            docker
                .remove_container(
                    id,
                    Some(
                        RemoveContainerOptionsBuilder::default()
                            .force(true)
                            .v(true)
                            .build(),
                    ),
                )
                .await
        }
        ContainerOp::Kill => {
            docker
                .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
                .await
        }
        ContainerOp::Pause => docker.pause_container(id).await,
        ContainerOp::Unpause => docker.unpause_container(id).await,
    }
}

/// Whether a refusal of `op` means it is done already: the container is
/// in the requested state, or (for a removal) gone or going.
fn tolerated(op: ContainerOp, fault: EngineFault) -> bool {
    match fault {
        EngineFault::NotModified => true,
        EngineFault::NotFound | EngineFault::Conflict => op == ContainerOp::Remove,
        _ => false,
    }
}

/// Lists managed containers, optionally of one application.
#[derive(Message)]
#[rtype(result = "Result<Vec<ManagedContainer>, HostError>")]
pub struct ListManaged {
    pub app: Option<String>,
}

impl Handler<ListManaged> for DockerHost {
    type Result = ResponseFuture<Result<Vec<ManagedContainer>, HostError>>;
    fn handle(&mut self, msg: ListManaged, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        Box::pin(async move { list_managed(&docker, msg.app.as_deref()).await })
    }
}

pub async fn list_managed(
    docker: &Docker,
    app: Option<&str>,
) -> Result<Vec<ManagedContainer>, HostError> {
    let mut label_filters = vec![format!("{}=true", labels::MANAGED)];
    if let Some(app) = app {
        label_filters.push(format!("{}={app}", labels::APP));
    }
    let filters = HashMap::from([("label".to_string(), label_filters)]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| HostError::engine("list containers", e))?;
    Ok(list
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            ManagedContainer {
                owner: labels.get(labels::OWNER).cloned(),
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .unwrap_or_default()
                    .first()
                    .cloned()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                app: labels.get(labels::APP).cloned().unwrap_or_default(),
                entity: labels.get(labels::ENTITY).cloned().unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                health: c
                    .status
                    .as_deref()
                    .and_then(runtime::health_in_status)
                    .map(str::to_string),
                ports: listed_ports(c.ports.as_deref().unwrap_or_default()),
            }
        })
        .collect())
}

/// Container port → published host port, from a list's ports (one entry
/// per address family and protocol): the first published binding of
/// each container port, as [`inspect`] keeps it.
fn listed_ports(ports: &[bollard::models::PortSummary]) -> BTreeMap<u16, u16> {
    let mut out = BTreeMap::new();
    for p in ports {
        if let Some(public) = p.public_port {
            out.entry(p.private_port).or_insert(public);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a call holds while it waits for its turn: a deploy or destroy
    /// of 100,000 containers queues nearly all of them at once.
    #[test]
    fn a_queued_call_holds_little_while_it_waits() {
        let docker = Docker::connect_with_unix("/dev/null", 1, bollard::API_DEFAULT_VERSION)
            .expect("a client (it connects only when used)");
        let calls = Arc::new(Semaphore::new(1));
        let req = ContainerRequest::new("a", "e", Default::default());
        let recent = Recent::default();
        let unboxed = std::mem::size_of_val(&create_and_start(&docker, "h", &recent, req.clone()));
        let queued = [
            (
                "create",
                std::mem::size_of_val(&queued_create(
                    calls.clone(),
                    docker.clone(),
                    "h".into(),
                    recent.clone(),
                    req,
                )),
            ),
            (
                "inspect",
                std::mem::size_of_val(&queued_inspect(calls.clone(), docker.clone(), "id".into())),
            ),
            (
                "operate",
                std::mem::size_of_val(&queued_operate(
                    calls,
                    docker.clone(),
                    Operate {
                        container: "id".into(),
                        op: ContainerOp::Remove,
                    },
                )),
            ),
        ];
        for (call, size) in queued {
            assert!(
                size <= 1024,
                "a queued {call} holds {size} bytes (the create's call itself is {unboxed})"
            );
        }
    }

    #[test]
    fn a_lists_ports_are_the_published_ones_once_each() {
        let port = |private_port, public_port, ip: &str| bollard::models::PortSummary {
            ip: Some(ip.into()),
            private_port,
            public_port,
            typ: None,
        };
        let listed = [
            port(8080, Some(32768), "0.0.0.0"),
            port(8080, Some(32768), "::"),
            port(9090, None, ""),
            port(53, Some(5353), "0.0.0.0"),
        ];
        assert_eq!(
            listed_ports(&listed),
            BTreeMap::from([(53, 5353), (8080, 32768)])
        );
    }

    #[test]
    fn refusals_that_mean_done() {
        use EngineFault::*;
        for op in [
            ContainerOp::Start,
            ContainerOp::Stop,
            ContainerOp::Restart,
            ContainerOp::Remove,
            ContainerOp::Kill,
            ContainerOp::Pause,
            ContainerOp::Unpause,
        ] {
            assert!(tolerated(op, NotModified), "{op:?}");
            assert!(!tolerated(op, Other), "{op:?}");
            assert!(!tolerated(op, AddressInUse), "{op:?}");
            // Gone or going counts as removed, and only as removed.
            let removal = op == ContainerOp::Remove;
            assert_eq!(tolerated(op, NotFound), removal, "{op:?}");
            assert_eq!(tolerated(op, Conflict), removal, "{op:?}");
        }
    }
}
