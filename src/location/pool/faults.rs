//! What the chaos faults need of a pool: the engine actor of a named host
//! (container faults go to the engine a container runs on), and stopping a
//! provisioned host's engine behind the pool model's back (`engine-stop`).

use actix::prelude::*;

use super::HostPool;
use crate::host::DockerHost;
use crate::location::engine_stop::{EngineStopError, EngineStopped};

/// The engine actor of the pool's host `name`, if the pool has it.
#[derive(Message)]
#[rtype(result = "Option<Addr<DockerHost>>")]
pub struct FindHost(pub String);

impl Handler<FindHost> for HostPool {
    type Result = Option<Addr<DockerHost>>;
    fn handle(&mut self, FindHost(name): FindHost, _: &mut Context<Self>) -> Self::Result {
        self.model
            .hosts()
            .iter()
            .find(|h| h.state.name == name)
            .map(|h| h.handle.clone())
    }
}

/// Stops the engine of provisioned host `host` through the provisioner.
/// The model is not touched: the pool must notice the silent engine by
/// itself, as it would a crashed machine.
#[derive(Message)]
#[rtype(result = "Result<EngineStopped, EngineStopError>")]
pub struct StopEngine {
    pub host: String,
}

impl Handler<StopEngine> for HostPool {
    type Result = ResponseFuture<Result<EngineStopped, EngineStopError>>;
    fn handle(&mut self, msg: StopEngine, _: &mut Context<Self>) -> Self::Result {
        let location = self.name().to_string();
        let hosts = self.model.hosts();
        let Some(h) = hosts.iter().find(|h| h.state.name == msg.host) else {
            let known: Vec<&str> = hosts.iter().map(|h| h.state.name.as_str()).collect();
            let e = EngineStopError::NoHost {
                location,
                host: msg.host,
                known: if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                },
            };
            return Box::pin(async move { Err(e) });
        };
        if h.provisioned.is_none() {
            let e = EngineStopError::NotProvisioned {
                location,
                host: msg.host,
            };
            return Box::pin(async move { Err(e) });
        }
        if !h.is_running() {
            let e = EngineStopError::NotRunning {
                location,
                host: msg.host,
                state: h.phase().as_str().to_string(),
            };
            return Box::pin(async move { Err(e) });
        }
        let provisioner = self.provisioner.clone();
        Box::pin(async move {
            // Processes and files: blocking work, off the actor's thread.
            tokio::task::spawn_blocking(move || provisioner.stop_engine(&msg.host))
                .await
                .map_err(|e| EngineStopError::Interrupted(e.to_string()))?
        })
    }
}
