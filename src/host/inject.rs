//! Faults injected from outside drover, as Pumba injects them: through the
//! engine (`docker kill`, `docker stop`, `docker pause`) or past it (`kill
//! -9` of the container's main process from this machine's OS).
//!
//! Nothing here tells the entity: it must notice the fault through the
//! engine's event stream (or the resync, or its health probe) like any real
//! failure. That is the point: a fault injected through drover's own `stop`
//! effector is an order drover rightly obeys, not a failure it should repair.
//!
//! (Not to be confused with [`super::fault`], which classifies the engine's
//! refusals.)

use actix::prelude::*;
use bollard::query_parameters::{InspectContainerOptions, KillContainerOptions};
use bollard::Docker;

use super::{DockerHost, HostError};
use crate::wire::{FaultInjected, FaultKind};

/// Injects a container fault on this host's engine.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<FaultInjected, InjectError>")]
pub struct InjectFault {
    /// The container's id (or name) on this engine.
    pub container: String,
    pub kind: FaultKind,
}

/// Why a fault could not be injected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InjectError {
    #[error("`{0}` is not a container fault; container faults are kill, stop, pause and sigkill")]
    NotAContainerFault(FaultKind),
    #[error(
        "container {container} on host {host} is {state}, not running: there is nothing to {fault}"
    )]
    NotRunning {
        host: String,
        container: String,
        state: String,
        fault: FaultKind,
    },
    #[error("sigkill needs drover on the machine of host {host}'s engine: pid {pid} of container {container} is not that container's process here (the engine runs on another machine or in another PID namespace); use the `kill` fault (SIGKILL through the engine) instead")]
    NotOnThisMachine {
        host: String,
        container: String,
        pid: u32,
    },
    #[error("cannot send SIGKILL to pid {pid} (container {container}): {message}")]
    Signal {
        container: String,
        pid: u32,
        message: String,
    },
    #[error(transparent)]
    Engine(#[from] HostError),
}

impl InjectError {
    /// The caller asked for something that cannot be done here (as
    /// opposed to a failure while doing it).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            InjectError::NotAContainerFault(_) | InjectError::NotOnThisMachine { .. }
        )
    }

    /// The container is not in a state the fault applies to.
    pub fn is_conflict(&self) -> bool {
        matches!(self, InjectError::NotRunning { .. })
    }
}

impl Handler<InjectFault> for DockerHost {
    type Result = ResponseFuture<Result<FaultInjected, InjectError>>;
    fn handle(&mut self, msg: InjectFault, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        let host = self.name.clone();
        Box::pin(async move { inject(&docker, &host, &msg.container, msg.kind).await })
    }
}

/// Whether `/proc/PID/cgroup` (its text) places the process in the
/// container `id`: Docker's cgroup paths end in the full container id
/// (`/docker/<id>` with the cgroupfs driver, `docker-<id>.scope` with
/// systemd). A pid the engine reports that does not pass this is not that
/// container's process on this machine: the engine runs elsewhere, or in
/// another PID namespace, and signalling that pid here would hit a
/// stranger.
pub fn cgroup_names_container(cgroup: &str, id: &str) -> bool {
    // A full id is 64 hex digits; a short or empty one proves nothing.
    id.len() >= 64 && cgroup.lines().any(|l| l.contains(id))
}

async fn inject(
    docker: &Docker,
    host: &str,
    container: &str,
    kind: FaultKind,
) -> Result<FaultInjected, InjectError> {
    let c = docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .map_err(|e| HostError::engine(format!("inspect container {container}"), e))?;
    let id = c.id.clone().unwrap_or_else(|| container.to_string());
    let state = c.state.clone().unwrap_or_default();
    let status = state
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".into());
    // A frozen process cannot die until thawed, and cannot be frozen
    // twice: neither fault applies to a paused container.
    let paused = state.paused == Some(true);
    if state.running != Some(true)
        || (paused && matches!(kind, FaultKind::Pause | FaultKind::Sigkill))
    {
        return Err(InjectError::NotRunning {
            host: host.to_string(),
            container: short(&id).to_string(),
            state: status,
            fault: kind,
        });
    }
    let done = |pid: Option<u32>, how: String| FaultInjected {
        fault: kind,
        host: host.to_string(),
        container: Some(short(&id).to_string()),
        pid,
        how,
    };
    let engine = |op: &str, e| HostError::engine(format!("{op} container {}", short(&id)), e);
    match kind {
        FaultKind::Kill => {
            // No signal given: the engine sends SIGKILL, as `docker kill`.
            docker
                .kill_container(&id, None::<KillContainerOptions>)
                .await
                .map_err(|e| engine("kill", e))?;
            Ok(done(
                None,
                format!("docker kill (SIGKILL) through engine {host}"),
            ))
        }
        FaultKind::Stop => {
            // No timeout given: the container's own stop timeout (10 s by
            // default), as `docker stop` without `-t`.
            docker
                .stop_container(&id, None)
                .await
                .map_err(|e| engine("stop", e))?;
            Ok(done(None, format!("docker stop through engine {host}")))
        }
        FaultKind::Pause => {
            docker
                .pause_container(&id)
                .await
                .map_err(|e| engine("pause", e))?;
            Ok(done(None, format!("docker pause through engine {host}")))
        }
        FaultKind::Sigkill => {
            let pid = state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    HostError::local(
                        format!("inspect container {}", short(&id)),
                        "the engine reports no main process for a running container",
                    )
                })?;
            let cgroup = tokio::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .await
                .unwrap_or_default();
            if !cgroup_names_container(&cgroup, &id) {
                return Err(InjectError::NotOnThisMachine {
                    host: host.to_string(),
                    container: short(&id).to_string(),
                    pid,
                });
            }
            sigkill(pid).await.map_err(|message| InjectError::Signal {
                container: short(&id).to_string(),
                pid,
                message,
            })?;
            Ok(done(
                Some(pid),
                format!("SIGKILL pid {pid} on this machine (container of engine {host})"),
            ))
        }
        FaultKind::EngineStop => Err(InjectError::NotAContainerFault(kind)),
    }
}

/// `kill -9 PID` (the crate links no libc bindings; the `kill` program is
/// on every machine drover runs on).
async fn sigkill(pid: u32) -> Result<(), String> {
    let out = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .output()
        .await
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The 12-digit id `docker ps` shows.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4aa3235e78749a8ec6e3dba27742bc9bee8342c638317768b0f4c64b729e384f";

    #[test]
    fn only_a_cgroup_naming_the_full_id_proves_the_process_is_the_containers() {
        // cgroup v1, cgroupfs driver (this machine).
        let v1 = format!("9:name=systemd:/docker/{ID}\n8:pids:/docker/{ID}\n");
        assert!(cgroup_names_container(&v1, ID));
        // cgroup v2, systemd driver.
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert!(cgroup_names_container(&v2, ID));
        // A process of the machine, or another container.
        assert!(!cgroup_names_container(
            "0::/user.slice/session-1.scope\n",
            ID
        ));
        let other = ID.replace('4', "5");
        assert!(!cgroup_names_container(
            &format!("0::/docker/{other}\n"),
            ID
        ));
        // No such process (empty text), or an id too short to prove anything.
        assert!(!cgroup_names_container("", ID));
        assert!(!cgroup_names_container(&v1, &ID[..12]));
        assert!(!cgroup_names_container(&v1, ""));
    }

    #[test]
    fn refusals_and_conflicts_are_told_apart() {
        assert!(InjectError::NotAContainerFault(FaultKind::EngineStop).is_refusal());
        let not_here = InjectError::NotOnThisMachine {
            host: "h".into(),
            container: "c".into(),
            pid: 7,
        };
        assert!(not_here.is_refusal() && !not_here.is_conflict());
        assert!(not_here.to_string().contains("use the `kill` fault"));
        let stopped = InjectError::NotRunning {
            host: "h".into(),
            container: "c".into(),
            state: "exited".into(),
            fault: FaultKind::Stop,
        };
        assert!(stopped.is_conflict() && !stopped.is_refusal());
        assert_eq!(
            stopped.to_string(),
            "container c on host h is exited, not running: there is nothing to stop"
        );
    }
}
