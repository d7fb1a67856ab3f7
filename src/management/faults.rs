//! Faults injected from outside drover (`drover chaos`, or an operator's
//! game day), routed to where they happen: a container fault to the engine
//! the container runs on ([`crate::host::inject`]), an engine stop to the
//! host pool's provisioner ([`crate::location::engine_stop`]).
//!
//! The entity is never told: like a real failure, the fault reaches it only
//! through the engine's event stream, the resync and its health probe. Every
//! fault (and every refused one) is recorded as an `event` activity named
//! `chaos.fault`, with how it was injected.

use std::time::Instant;

use actix::prelude::*;
use serde_json::json;

use crate::host::inject::{InjectError, InjectFault};
use crate::host::DockerHost;
use crate::location::engine_stop::EngineStopError;
use crate::location::pool::{FindHost, StopEngine, POOL_APP};
use crate::protocol::{now_ms, sensors as s, EntityKind, EntityRef};
use crate::wire::{FaultInjected, FaultKind};

use super::{Activity, Management, ManagementError};

/// The activity name of an injected fault.
pub const FAULT_ACTIVITY: &str = "chaos.fault";

/// Why a fault was not injected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Management(#[from] ManagementError),
    #[error("`{entity}` of application `{app}` is a {kind}, not a container; faults strike containers (a cluster's members)")]
    NotAContainer {
        app: String,
        entity: String,
        kind: &'static str,
    },
    #[error("engine-stop strikes a host, not a container: POST /v1/locations/{{location}}/hosts/{{host}}/faults/engine-stop")]
    HostFault,
    #[error("only engine-stop strikes a host; `{0}` strikes a container: POST /v1/applications/{{app}}/entities/{{entity}}/faults/{0}")]
    ContainerFault(FaultKind),
    #[error("container `{entity}` of application `{app}` runs on no engine yet (it publishes no container.id or host.name); wait until it is running")]
    NotPlaced { app: String, entity: String },
    #[error("container `{entity}` runs on host `{host}`, which location `{location}` does not have any more")]
    NoEngine {
        entity: String,
        host: String,
        location: String,
    },
    #[error("no host pool `{location}`; engine-stop needs a `drover.yaml` location whose provisioner made the host")]
    NoPool { location: String },
    #[error(transparent)]
    Inject(#[from] InjectError),
    #[error(transparent)]
    EngineStop(#[from] EngineStopError),
    #[error("the {what} did not answer: {message}")]
    Unreachable { what: &'static str, message: String },
}

impl FaultError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            // The API maps the management errors itself.
            FaultError::Management(_) => 500,
            FaultError::NotAContainer { .. }
            | FaultError::HostFault
            | FaultError::ContainerFault(_) => 400,
            FaultError::Inject(e) if e.is_refusal() => 400,
            FaultError::EngineStop(e) if e.is_refusal() => 400,
            FaultError::NoPool { .. } => 404,
            FaultError::EngineStop(e) if e.is_not_found() => 404,
            FaultError::NotPlaced { .. } | FaultError::NoEngine { .. } => 409,
            FaultError::Inject(e) if e.is_conflict() => 409,
            FaultError::EngineStop(e) if e.is_conflict() => 409,
            FaultError::Unreachable { .. } => 503,
            FaultError::Inject(_) | FaultError::EngineStop(_) => 502,
        }
    }
}

/// `POST /v1/applications/{app}/entities/{entity}/faults/{kind}`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<FaultInjected, FaultError>")]
pub struct InjectContainerFault {
    pub app: String,
    pub entity: String,
    pub kind: FaultKind,
}

/// `POST /v1/locations/{location}/hosts/{host}/faults/engine-stop`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<FaultInjected, FaultError>")]
pub struct InjectEngineFault {
    pub location: String,
    pub host: String,
}

/// Where a container's engine actor is found.
enum EngineOf {
    Known(Addr<DockerHost>),
    InPool(Addr<crate::location::HostPool>),
}

impl Management {
    /// The container's id and host, and how to reach its engine.
    fn fault_target(
        &self,
        msg: &InjectContainerFault,
    ) -> Result<(String, String, String, EngineOf), FaultError> {
        if !msg.kind.is_container_fault() {
            return Err(FaultError::HostFault);
        }
        let rec = self
            .apps
            .get(&msg.app)
            .ok_or_else(|| ManagementError::NoApplication(msg.app.clone()))?;
        if rec.destroying {
            return Err(ManagementError::Destroying(msg.app.clone()).into());
        }
        let view = self
            .view
            .model()
            .shared(&EntityRef::new(msg.app.clone(), msg.entity.clone()))
            .cloned()
            .ok_or_else(|| ManagementError::NoEntity {
                app: msg.app.clone(),
                entity: msg.entity.clone(),
            })?;
        if view.kind != EntityKind::Container {
            return Err(FaultError::NotAContainer {
                app: msg.app.clone(),
                entity: msg.entity.clone(),
                kind: view.kind.as_str(),
            });
        }
        let text = |name: &str| {
            view.sensors
                .get(name)
                .and_then(|v| v.value.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let (Some(container), Some(host)) = (text(s::CONTAINER_ID), text(s::HOST_NAME)) else {
            return Err(FaultError::NotPlaced {
                app: msg.app.clone(),
                entity: msg.entity.clone(),
            });
        };
        let location = rec.blueprint.location.clone();
        if let Some(pool) = self.pools.get(&location) {
            return Ok((container, host, location, EngineOf::InPool(pool.clone())));
        }
        match self.locations.get(&location) {
            Some(p) if p.host_name == host => {
                Ok((container, host, location, EngineOf::Known(p.host.clone())))
            }
            _ => Err(FaultError::NoEngine {
                entity: msg.entity.clone(),
                host,
                location,
            }),
        }
    }

    fn record_fault(
        &mut self,
        app: &str,
        entity: &str,
        kind: FaultKind,
        target: serde_json::Value,
        res: &Result<FaultInjected, FaultError>,
        seconds: f64,
    ) {
        let mut args = json!({ "fault": kind.as_str(), "target": target });
        if let Ok(done) = res {
            args["host"] = json!(done.host);
            args["how"] = json!(done.how);
            if let Some(c) = &done.container {
                args["container"] = json!(c);
            }
            if let Some(pid) = done.pid {
                args["pid"] = json!(pid);
            }
        }
        self.record(Activity {
            id: 0,
            time_ms: now_ms(),
            application: app.to_string(),
            entity: entity.to_string(),
            kind: "event".into(),
            name: FAULT_ACTIVITY.into(),
            args,
            outcome: if res.is_ok() { "ok" } else { "error" }.into(),
            message: Some(match res {
                Ok(done) => done.how.clone(),
                Err(e) => e.to_string(),
            }),
            duration_seconds: seconds,
        });
    }
}

impl Handler<InjectContainerFault> for Management {
    type Result = ResponseActFuture<Self, Result<FaultInjected, FaultError>>;
    fn handle(&mut self, msg: InjectContainerFault, _: &mut Context<Self>) -> Self::Result {
        let (container, host, location, engine) = match self.fault_target(&msg) {
            Ok(t) => t,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let t0 = Instant::now();
        let kind = msg.kind;
        let entity = msg.entity.clone();
        let fut = async move {
            let addr = match engine {
                EngineOf::Known(a) => a,
                EngineOf::InPool(pool) => pool
                    .send(FindHost(host.clone()))
                    .await
                    .map_err(|e| FaultError::Unreachable {
                        what: "host pool",
                        message: e.to_string(),
                    })?
                    .ok_or(FaultError::NoEngine {
                        entity,
                        host,
                        location,
                    })?,
            };
            addr.send(InjectFault { container, kind })
                .await
                .map_err(|e| FaultError::Unreachable {
                    what: "host's engine actor",
                    message: e.to_string(),
                })?
                .map_err(FaultError::from)
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let target = json!({ "application": msg.app, "entity": msg.entity });
            act.record_fault(&msg.app, &msg.entity, kind, target, &res, t0.elapsed().as_secs_f64());
            match &res {
                Ok(done) => tracing::info!(app = %msg.app, entity = %msg.entity, fault = %kind, how = %done.how, "fault injected"),
                Err(e) => tracing::warn!(app = %msg.app, entity = %msg.entity, fault = %kind, error = %e, "fault not injected"),
            }
            res
        }))
    }
}

impl Handler<InjectEngineFault> for Management {
    type Result = ResponseActFuture<Self, Result<FaultInjected, FaultError>>;
    fn handle(&mut self, msg: InjectEngineFault, _: &mut Context<Self>) -> Self::Result {
        let Some(pool) = self.pools.get(&msg.location).cloned() else {
            return Box::pin(fut::ready(Err(FaultError::NoPool {
                location: msg.location,
            })));
        };
        let t0 = Instant::now();
        let host = msg.host.clone();
        let fut = async move {
            let stopped = pool
                .send(StopEngine { host: host.clone() })
                .await
                .map_err(|e| FaultError::Unreachable {
                    what: "host pool",
                    message: e.to_string(),
                })??;
            Ok(FaultInjected {
                fault: FaultKind::EngineStop,
                host,
                container: None,
                pid: Some(stopped.pid),
                how: stopped.how,
            })
        };
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let target = json!({ "location": msg.location, "host": msg.host });
            // A pool's activities are filed under its location, as the
            // pool's own (`drover activity --app @location`).
            act.record_fault(
                POOL_APP,
                &msg.location,
                FaultKind::EngineStop,
                target,
                &res,
                t0.elapsed().as_secs_f64(),
            );
            match &res {
                Ok(done) => tracing::info!(location = %msg.location, host = %msg.host, how = %done.how, "engine stopped"),
                Err(e) => tracing::warn!(location = %msg.location, host = %msg.host, error = %e, "engine not stopped"),
            }
            res
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_whose_fault_it_is() {
        assert_eq!(FaultError::HostFault.status(), 400);
        assert_eq!(FaultError::ContainerFault(FaultKind::Kill).status(), 400);
        assert_eq!(
            FaultError::Inject(InjectError::NotOnThisMachine {
                host: "h".into(),
                container: "c".into(),
                pid: 1
            })
            .status(),
            400
        );
        assert_eq!(
            FaultError::EngineStop(EngineStopError::Unsupported).status(),
            400
        );
        assert_eq!(
            FaultError::NoPool {
                location: "x".into()
            }
            .status(),
            404
        );
        assert_eq!(
            FaultError::NotPlaced {
                app: "a".into(),
                entity: "e".into()
            }
            .status(),
            409
        );
        assert_eq!(
            FaultError::Inject(InjectError::Engine(crate::host::HostError::local("x", "y")))
                .status(),
            502
        );
    }
}
