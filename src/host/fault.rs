//! What an engine's refusal means, as far as drover acts on it.
//!
//! Docker answers errors with an HTTP status and a message. Drover decides
//! on the status wherever it is enough (304, 404, 409). Three cases it acts
//! on share a status with unrelated refusals, and the engine's API has
//! nothing but the message to tell them apart; [`classify`] is the one
//! place that reads engine message text, so an engine upgrade that rewords
//! one of them is caught by its unit test here, not by a silent change of
//! behaviour somewhere else. Callers match on [`EngineFault`].

use serde::Serialize;

/// An engine refusal drover acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EngineFault {
    /// 304: the object is already in the requested state (start of a
    /// running container, stop of a stopped one). bollard 0.21 answers 304
    /// as a success; kept so a client that stops doing so changes nothing.
    NotModified,
    /// 404: no such container, network or image.
    NotFound,
    /// 409: the name is taken, or a removal is already in progress.
    Conflict,
    /// 403 on a network connect: the (running) container already has an
    /// endpoint on that network.
    AlreadyConnected,
    /// 403 on a network create: the subnet overlaps another network's pool
    /// (or a bridge of another engine on the machine).
    SubnetOverlap,
    /// 500 on a container start: a published host port is taken, typically
    /// by another engine on the same machine allocating from the same range.
    AddressInUse,
    /// Anything else: reported, never acted on.
    Other,
}

/// Classifies an engine error by its HTTP status (`None`: no answer from
/// the engine, a transport error) and, only where the status is shared with
/// unrelated refusals, its message.
///
/// The messages, as dockerd 20.10 (API 1.41) words them:
/// - 403 `endpoint with name <c> already exists in network <n>` (connect)
/// - 403 `Pool overlaps with other one on this address space` (network
///   create), or `... conflicts with network ...: networks have overlapping
///   IPv4` (bridge driver)
/// - 500 `driver failed programming external connectivity on endpoint ...:
///   Error starting userland proxy: listen tcp4 0.0.0.0:<p>: bind: address
///   already in use` (start), or `... Bind for 0.0.0.0:<p> failed: port is
///   already allocated` (start: another container of the engine holds it)
pub fn classify(status: Option<u16>, message: &str) -> EngineFault {
    match status {
        Some(304) => EngineFault::NotModified,
        Some(404) => EngineFault::NotFound,
        Some(409) => EngineFault::Conflict,
        Some(403) if message.contains("already exists in network") => EngineFault::AlreadyConnected,
        Some(403) if message.to_ascii_lowercase().contains("overlap") => EngineFault::SubnetOverlap,
        Some(500)
            if message.contains("address already in use")
                || message.contains("port is already allocated") =>
        {
            EngineFault::AddressInUse
        }
        _ => EngineFault::Other,
    }
}

/// The status and message of a bollard error: the engine's own for an
/// answer, bollard's description (and no status) for a transport error.
pub fn status_and_message(e: &bollard::errors::Error) -> (Option<u16>, String) {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => (Some(*status_code), message.clone()),
        other => (None, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_alone_decides_where_it_can() {
        assert_eq!(classify(Some(304), ""), EngineFault::NotModified);
        assert_eq!(
            classify(Some(404), "No such container: x"),
            EngineFault::NotFound
        );
        // Whatever the wording: the status is the contract.
        assert_eq!(
            classify(Some(404), "network x not found"),
            EngineFault::NotFound
        );
        assert_eq!(
            classify(Some(409), "network with name x already exists"),
            EngineFault::Conflict
        );
        assert_eq!(classify(None, "connection refused"), EngineFault::Other);
        assert_eq!(classify(Some(500), "boom"), EngineFault::Other);
    }

    /// The messages below are what dockerd 20.10 answered on this machine.
    #[test]
    fn shared_statuses_are_told_apart_by_the_engine_message() {
        assert_eq!(
            classify(
                Some(403),
                "endpoint with name drover-a-web already exists in network drover-a-extra"
            ),
            EngineFault::AlreadyConnected
        );
        assert_eq!(
            classify(
                Some(403),
                "Pool overlaps with other one on this address space"
            ),
            EngineFault::SubnetOverlap
        );
        assert_eq!(
            classify(
                Some(403),
                "cannot create network x (br-1): conflicts with network y (br-2): networks have overlapping IPv4"
            ),
            EngineFault::SubnetOverlap
        );
        assert_eq!(
            classify(
                Some(500),
                "driver failed programming external connectivity on endpoint e (id): Error starting \
                 userland proxy: listen tcp4 0.0.0.0:38517: bind: address already in use"
            ),
            EngineFault::AddressInUse
        );
        assert_eq!(
            classify(
                Some(500),
                "driver failed programming external connectivity on endpoint e (id): Bind for \
                 0.0.0.0:18778 failed: port is already allocated"
            ),
            EngineFault::AddressInUse
        );
        // Other refusals under the same statuses are not mistaken for them.
        assert_eq!(
            classify(
                Some(403),
                "operation is not permitted on predefined bridge network"
            ),
            EngineFault::Other
        );
        assert_eq!(
            classify(Some(500), "OCI runtime create failed"),
            EngineFault::Other
        );
        // The same words under another status are not acted on.
        assert_eq!(
            classify(
                Some(400),
                "Pool overlaps with other one on this address space"
            ),
            EngineFault::Other
        );
        assert_eq!(classify(None, "address already in use"), EngineFault::Other);
    }

    #[test]
    fn keeps_the_engine_status_and_message() {
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        assert_eq!(
            status_and_message(&e),
            (Some(404), "No such container: x".to_string())
        );
    }
}

/// The classification against the engine on this machine: an engine that
/// rewords a refusal fails here, not silently in a deploy.
#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::host::workload;
    use crate::host::HostError;
    use bollard::models::{
        ContainerCreateBody, HostConfig, Ipam, IpamConfig, NetworkConnectRequest,
        NetworkCreateRequest, PortBinding,
    };
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, InspectNetworkOptions, RemoveContainerOptionsBuilder,
    };
    use bollard::Docker;
    use std::collections::HashMap;

    /// Removes what the test made, including on panic (on its own thread
    /// and runtime: `Drop` cannot await).
    struct Cleanup {
        containers: Vec<String>,
        networks: Vec<String>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let (containers, networks) = (self.containers.clone(), self.networks.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let Ok(docker) = Docker::connect_with_local_defaults() else {
                        return;
                    };
                    let Ok(docker) = docker.negotiate_version().await else {
                        return;
                    };
                    for c in containers {
                        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
                        let _ = docker.remove_container(&c, Some(opts)).await;
                    }
                    for n in networks {
                        let _ = docker.remove_network(&n).await;
                    }
                })
            })
            .join();
        }
    }

    #[track_caller]
    fn fault_of<T>(operation: &str, r: Result<T, bollard::errors::Error>) -> EngineFault {
        match r {
            Ok(_) => panic!("{operation} succeeded; the test expected a refusal"),
            Err(e) => HostError::engine(operation, e).fault(),
        }
    }

    #[tokio::test]
    async fn the_engine_here_refuses_as_classified() {
        let docker = Docker::connect_with_local_defaults()
            .expect("this test needs the Docker engine; it does not skip")
            .negotiate_version()
            .await
            .expect("cannot reach the Docker engine (is dockerd running?)");
        workload::ensure_workload_image(&docker)
            .await
            .expect("workload image");
        let unique = format!(
            "drover-faulttest-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let (net, twin, c, d) = (
            format!("{unique}-n"),
            format!("{unique}-t"),
            format!("{unique}-c"),
            format!("{unique}-d"),
        );
        let _cleanup = Cleanup {
            containers: vec![c.clone(), d.clone()],
            networks: vec![net.clone(), twin.clone()],
        };
        let network = |name: &str, subnet: String| NetworkCreateRequest {
            name: name.to_string(),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // A free subnet (others run tests on this engine too).
        let mut subnet = None;
        for third in (0..250u32).map(|i| (std::process::id() + i) % 250) {
            let s = format!("10.252.{third}.0/24");
            if docker
                .create_network(network(&net, s.clone()))
                .await
                .is_ok()
            {
                subnet = Some(s);
                break;
            }
        }
        let subnet = subnet.expect("no free /24 in 10.252.0.0/16");
        assert_eq!(
            fault_of(
                "create network",
                docker.create_network(network(&twin, subnet)).await
            ),
            EngineFault::SubnetOverlap
        );
        assert_eq!(
            fault_of(
                "inspect network",
                docker
                    .inspect_network(&twin, None::<InspectNetworkOptions>)
                    .await
            ),
            EngineFault::NotFound
        );

        let body = |ports: Option<HashMap<String, Option<Vec<PortBinding>>>>| ContainerCreateBody {
            image: Some(workload::WORKLOAD_IMAGE.to_string()),
            exposed_ports: ports.as_ref().map(|p| p.keys().cloned().collect()),
            host_config: Some(HostConfig {
                port_bindings: ports,
                ..Default::default()
            }),
            ..Default::default()
        };
        let create = |name: &str| CreateContainerOptionsBuilder::default().name(name).build();
        docker
            .create_container(Some(create(&c)), body(None))
            .await
            .unwrap();
        assert_eq!(
            fault_of(
                "create container",
                docker.create_container(Some(create(&c)), body(None)).await
            ),
            EngineFault::Conflict
        );
        docker.start_container(&c, None).await.unwrap();
        // 304 (already started): bollard answers it as a success, so the
        // NotModified arm only guards against a client that stops doing so.
        docker.start_container(&c, None).await.unwrap();
        let connect = NetworkConnectRequest {
            container: c.clone(),
            ..Default::default()
        };
        docker.connect_network(&net, connect.clone()).await.unwrap();
        assert_eq!(
            fault_of("connect", docker.connect_network(&net, connect).await),
            EngineFault::AlreadyConnected
        );

        // A published port someone else holds.
        let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let ports = HashMap::from([(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some(port.to_string()),
            }]),
        )]);
        docker
            .create_container(Some(create(&d)), body(Some(ports)))
            .await
            .unwrap();
        assert_eq!(
            fault_of("start container", docker.start_container(&d, None).await),
            EngineFault::AddressInUse
        );
        drop(held);
    }
}
