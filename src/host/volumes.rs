//! Volumes on an engine: the mounts of a container, the named volumes
//! made for it (labelled like drover's containers), their listing and
//! removal.
//!
//! A named volume belongs to its entity's identity
//! (`drover-<app>-<entity>-<name>`, see
//! [`crate::blueprint::volumes::engine_volume_name`]): creating it again for
//! the same entity finds the existing one (Docker's create is idempotent),
//! so a restarted or replaced member mounts its data again. Volumes are
//! never removed with their container; only [`RemoveVolumes`] removes them
//! (a destroy with `--volumes`, or a `retain: false` volume whose member
//! is removed for good).

use std::collections::HashMap;

use actix::prelude::*;
use bollard::models::{Mount, MountTmpfsOptions, MountType, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};
use bollard::Docker;
use serde::Serialize;

use super::{fault, labels, ContainerRequest, DockerHost, OWNER};
use crate::blueprint::volumes::{engine_volume_name, VolumeSpec};

/// Labels a volume carries besides the container labels.
pub mod volume_labels {
    /// The volume's name in the blueprint (`data`).
    pub const NAME: &str = "io.drover.volume";
    /// `false` when the blueprint says `retain: false`.
    pub const RETAIN: &str = "io.drover.retain";
}

/// Failures of volume operations, each naming the volume.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
pub enum VolumeError {
    #[error("volume `{volume}` exists but is not drover's volume for {app}/{entity}; remove it (`docker volume rm {volume}`) or rename the application")]
    NameTaken {
        volume: String,
        app: String,
        entity: String,
    },
    #[error("volume `{volume}` is still used by a container ({message}); remove the container first, or destroy its application")]
    InUse { volume: String, message: String },
    /// `status`: the engine's HTTP status, `None` when it did not answer.
    #[error("{operation} volume `{volume}` failed: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Engine {
        operation: &'static str,
        volume: String,
        status: Option<u16>,
        message: String,
    },
}

impl VolumeError {
    fn engine(operation: &'static str, volume: &str, e: bollard::errors::Error) -> Self {
        let (status, message) = fault::status_and_message(&e);
        VolumeError::Engine {
            operation,
            volume: volume.to_string(),
            status,
            message,
        }
    }
}

/// A drover volume found on an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedVolume {
    /// The engine's name (`drover-shop-web-2-data`).
    pub name: String,
    pub app: String,
    pub entity: String,
    /// The blueprint's name (`data`).
    pub volume: String,
    /// `false`: `retain: false`, removed with its member.
    pub retain: bool,
}

/// The container's mounts, in blueprint order.
pub fn mounts(req: &ContainerRequest) -> Vec<Mount> {
    req.spec
        .volumes
        .iter()
        .map(|v| match v {
            VolumeSpec::Named(n) => Mount {
                target: Some(n.path.clone()),
                source: Some(engine_volume_name(&req.app, &req.entity, &n.name)),
                typ: Some(MountType::VOLUME),
                read_only: Some(n.read_only),
                ..Default::default()
            },
            VolumeSpec::Host(h) => Mount {
                target: Some(h.path.clone()),
                source: Some(h.host.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(h.read_only),
                ..Default::default()
            },
            VolumeSpec::Tmpfs(t) => Mount {
                target: Some(t.tmpfs.clone()),
                typ: Some(MountType::TMPFS),
                tmpfs_options: t.size.map(|s| MountTmpfsOptions {
                    size_bytes: Some(s.0 as i64),
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
        .collect()
}

/// The labels of one named volume of `req`.
fn volume_labels_of(req: &ContainerRequest, name: &str, retain: bool) -> HashMap<String, String> {
    let mut l = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::APP.to_string(), req.app.clone()),
        (labels::ENTITY.to_string(), req.entity.clone()),
        (volume_labels::NAME.to_string(), name.to_string()),
    ]);
    if let Some(owner) = OWNER.get() {
        l.insert(labels::OWNER.to_string(), owner.clone());
    }
    if !retain {
        l.insert(volume_labels::RETAIN.to_string(), "false".to_string());
    }
    l
}

/// Creates (or finds) every named volume of `req`, before its container
/// is created. A volume of that name that is not this entity's is refused.
pub async fn ensure_volumes(docker: &Docker, req: &ContainerRequest) -> Result<(), VolumeError> {
    for n in crate::blueprint::volumes::named(&req.spec.volumes) {
        let name = engine_volume_name(&req.app, &req.entity, &n.name);
        let create = VolumeCreateRequest {
            name: Some(name.clone()),
            labels: Some(volume_labels_of(req, &n.name, n.retain)),
            ..Default::default()
        };
        // Docker answers an existing volume of that name as created, with
        // its own labels: whose it is is decided on those.
        let v = docker
            .create_volume(create)
            .await
            .map_err(|e| VolumeError::engine("create", &name, e))?;
        if v.labels.get(labels::APP) != Some(&req.app)
            || v.labels.get(labels::ENTITY) != Some(&req.entity)
        {
            return Err(VolumeError::NameTaken {
                volume: name,
                app: req.app.clone(),
                entity: req.entity.clone(),
            });
        }
    }
    Ok(())
}

/// Lists this drover's volumes (optionally of one application).
pub async fn list_volumes(
    docker: &Docker,
    app: Option<&str>,
) -> Result<Vec<ManagedVolume>, VolumeError> {
    let mut label_filters = vec![format!("{}=true", labels::MANAGED)];
    if let Some(app) = app {
        label_filters.push(format!("{}={app}", labels::APP));
    }
    // Only this drover's: other drovers on the engine (or an earlier
    // store) own theirs.
    if let Some(owner) = OWNER.get() {
        label_filters.push(format!("{}={owner}", labels::OWNER));
    }
    let filters = HashMap::from([("label".to_string(), label_filters)]);
    let opts = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let list = docker
        .list_volumes(Some(opts))
        .await
        .map_err(|e| VolumeError::engine("list", app.unwrap_or("*"), e))?;
    let mut out: Vec<ManagedVolume> = list
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| ManagedVolume {
            app: v.labels.get(labels::APP).cloned().unwrap_or_default(),
            entity: v.labels.get(labels::ENTITY).cloned().unwrap_or_default(),
            volume: v
                .labels
                .get(volume_labels::NAME)
                .cloned()
                .unwrap_or_default(),
            retain: v.labels.get(volume_labels::RETAIN).map(String::as_str) != Some("false"),
            name: v.name,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes one volume; a volume already gone counts as removed.
pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), VolumeError> {
    let opts = RemoveVolumeOptionsBuilder::default().force(false).build();
    match docker.remove_volume(name, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) => match VolumeError::engine("remove", name, e) {
            VolumeError::Engine {
                status: Some(404), ..
            } => Ok(()),
            VolumeError::Engine {
                status: Some(409),
                message,
                ..
            } => Err(VolumeError::InUse {
                volume: name.to_string(),
                message,
            }),
            other => Err(other),
        },
    }
}

/// This drover's volumes on the engine, optionally of one application.
#[derive(Message)]
#[rtype(result = "Result<Vec<ManagedVolume>, VolumeError>")]
pub struct ListVolumes {
    pub app: Option<String>,
}

impl Handler<ListVolumes> for DockerHost {
    type Result = ResponseFuture<Result<Vec<ManagedVolume>, VolumeError>>;
    fn handle(&mut self, msg: ListVolumes, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        Box::pin(async move { list_volumes(&docker, msg.app.as_deref()).await })
    }
}

/// Removes volumes by engine name; answers the names removed (or already
/// gone). Every volume is tried; the first failure is answered after.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, VolumeError>")]
pub struct RemoveVolumes(pub Vec<String>);

impl Handler<RemoveVolumes> for DockerHost {
    type Result = ResponseFuture<Result<Vec<String>, VolumeError>>;
    fn handle(
        &mut self,
        RemoveVolumes(names): RemoveVolumes,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let docker = self.docker.clone();
        Box::pin(async move {
            let mut removed = Vec::new();
            let mut first_error = None;
            for n in names {
                match remove_volume(&docker, &n).await {
                    Ok(()) => removed.push(n),
                    Err(e) => {
                        tracing::warn!(volume = %n, error = %e, "volume not removed");
                        first_error.get_or_insert(e);
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(removed),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_follow_the_blueprint() {
        let spec: crate::blueprint::ContainerSpec = serde_yaml::from_str(
            "{image: x, volumes: [{name: data, path: /d, read_only: true}, {host: /srv/a, path: /a}, {tmpfs: /t, size: 1Mi}]}",
        )
        .unwrap();
        let req = ContainerRequest::new("shop", "web-2", spec.into());
        let m = mounts(&req);
        assert_eq!(m[0].source.as_deref(), Some("drover-shop-web-2-data"));
        assert_eq!(
            (m[0].typ, m[0].read_only),
            (Some(MountType::VOLUME), Some(true))
        );
        assert_eq!(m[1].source.as_deref(), Some("/srv/a"));
        assert_eq!(m[1].typ, Some(MountType::BIND));
        assert_eq!(m[2].typ, Some(MountType::TMPFS));
        assert_eq!(
            m[2].tmpfs_options.as_ref().and_then(|o| o.size_bytes),
            Some(1 << 20)
        );
        let l = volume_labels_of(&req, "data", false);
        assert_eq!(l[labels::ENTITY], "web-2");
        assert_eq!(l[volume_labels::RETAIN], "false");
    }
}
