//! Images built from Dockerfiles (compose's `build:`).
//!
//! The context directory is packed into a tar with fixed headers (sorted
//! names, mtime 0, owner 0, modes kept to 0644/0755), so the same files
//! always make the same bytes; their SHA-256 names the image
//! `drover-build/<app>-<service>:<first 12 hex digits>`. An engine that
//! already holds that tag is not asked to build again: an unchanged
//! context is never rebuilt, and a changed one gets a new tag (the old
//! image stays for a rollback). Images are ensured per host
//! ([`ensure_image`]): each engine that runs a container of the service
//! builds (or finds) the image itself: a built image is in no registry.

use std::time::Instant;

use actix::prelude::*;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::build_context::{UploadRef, Uploads};

use super::{DockerHost, HostError};
use crate::blueprint::{BuildSpec, ContainerSpec};

/// Lines of build output kept for an error message.
const ERROR_TAIL_LINES: usize = 12;

/// The tag of a service's built image.
pub fn image_tag(app: &str, service: &str, hash: &str) -> String {
    format!(
        "drover-build/{app}-{service}:{}",
        &hash[..hash.len().min(12)]
    )
}

/// The context's hash, extended by the build's `target` and `args`: a
/// changed argument or stage is a different image (a new tag), and an
/// unchanged build keeps its hash (and its image) exactly.
pub fn variant_hash(context_hash: &str, build: &BuildSpec) -> String {
    if build.target.is_none() && build.args.is_empty() {
        return context_hash.to_string();
    }
    let mut h = Sha256::new();
    h.update(context_hash.as_bytes());
    h.update([0]);
    h.update(build.target.as_deref().unwrap_or_default().as_bytes());
    for (k, v) in &build.args {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub use crate::build_context::{pack_context, IgnoreError, IgnoreRules, PackedContext};

/// Build output on its way: a line the entity shows as its `image.build`
/// sensor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct BuildProgress(pub String);

/// Makes sure the image of a container spec is on this host: builds it
/// from `build` (or finds it built), or checks that `image` is there.
#[derive(Message)]
#[rtype(result = "Result<ImageReady, HostError>")]
pub struct EnsureImage {
    pub app: String,
    /// The service the image is for (a cluster's id for its members).
    pub service: String,
    pub spec: ContainerSpec,
    pub progress: Option<Recipient<BuildProgress>>,
}

/// The image a container can be created from.
#[derive(Debug, Clone)]
pub struct ImageReady {
    pub image: String,
    pub id: String,
    /// Built now (`false`: found on the host).
    pub built: bool,
    pub seconds: f64,
}

/// One build at a time per drover process: the members of a cluster ask
/// together, and the first one's build is what the others then find.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Handler<EnsureImage> for DockerHost {
    type Result = ResponseFuture<Result<ImageReady, HostError>>;
    fn handle(&mut self, msg: EnsureImage, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        let host = self.name.clone();
        let uploads = self.uploads.clone();
        Box::pin(async move { ensure_image(&docker, &host, uploads.as_ref(), &msg).await })
    }
}

/// Ensures the image of `req.spec` on one host (`docker`, named `host`).
pub async fn ensure_image(
    docker: &Docker,
    host: &str,
    uploads: Option<&Uploads>,
    req: &EnsureImage,
) -> Result<ImageReady, HostError> {
    let t0 = Instant::now();
    let Some(build) = req.spec.build.clone() else {
        let image = req.spec.image.clone().unwrap_or_default();
        super::ensure_image(docker, host, &image).await?;
        let id = docker
            .inspect_image(&image)
            .await
            .ok()
            .and_then(|i| i.id)
            .unwrap_or_default();
        return Ok(ImageReady {
            image,
            id,
            built: false,
            seconds: t0.elapsed().as_secs_f64(),
        });
    };
    let packed = pack(&build, uploads).await?;
    let tag = image_tag(&req.app, &req.service, &variant_hash(&packed.hash, &build));
    let _guard = BUILD_LOCK.lock().await;
    if let Ok(found) = docker.inspect_image(&tag).await {
        tracing::info!(image = %tag, "context unchanged: reusing the built image");
        return Ok(ImageReady {
            image: tag,
            id: found.id.unwrap_or_default(),
            built: false,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    tracing::info!(image = %tag, context = %build.context, files = packed.files, "building image");
    run_build(docker, &tag, &build, packed.tar, req.progress.as_ref()).await?;
    let id = docker
        .inspect_image(&tag)
        .await
        .map_err(|e| HostError::engine(format!("inspect built image {tag}"), e))?
        .id
        .unwrap_or_default();
    tracing::info!(image = %tag, %id, seconds = t0.elapsed().as_secs_f64(), "built image");
    Ok(ImageReady {
        image: tag,
        id,
        built: true,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The context's tar: an uploaded one from the service's upload directory,
/// else the directory on this machine (allowed by `build_roots`, checked
/// before the deploy was accepted).
async fn pack(build: &BuildSpec, uploads: Option<&Uploads>) -> Result<PackedContext, HostError> {
    let what = format!("pack build context {}", build.context);
    let dockerfile = build.dockerfile().to_string();
    let context = build.context.clone();
    let uploads = uploads.cloned();
    let packed = tokio::task::spawn_blocking(move || match UploadRef::parse(&context) {
        Some(reference) => {
            let reference = reference.map_err(|e| e.to_string())?;
            let uploads = uploads.ok_or_else(|| {
                format!("{reference} is an uploaded context, but this host has no upload directory")
            })?;
            let tar = uploads.read(&reference).map_err(|e| e.to_string())?;
            let files =
                crate::build_context::uploads::check_tar(&tar).map_err(|e| e.to_string())?;
            Ok(PackedContext {
                hash: crate::build_context::context_hash(&dockerfile, &tar),
                tar,
                files,
            })
        }
        None => pack_context(
            std::path::Path::new(&context),
            &dockerfile,
            crate::build_context::DEFAULT_MAX_BYTES,
        )
        .map_err(|e| e.to_string()),
    })
    .await
    .map_err(|e| HostError::local(what.clone(), e.to_string()))?;
    packed.map_err(|e| HostError::local(what, e))
}

async fn run_build(
    docker: &Docker,
    tag: &str,
    build: &BuildSpec,
    tar: Vec<u8>,
    progress: Option<&Recipient<BuildProgress>>,
) -> Result<(), HostError> {
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(build.dockerfile())
        .t(tag)
        .rm(true)
        .forcerm(true);
    if let Some(target) = &build.target {
        options = options.target(target);
    }
    if !build.args.is_empty() {
        let args: std::collections::HashMap<String, String> =
            build.args.clone().into_iter().collect();
        options = options.buildargs(&args);
    }
    let options = options.build();
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut log: Vec<String> = Vec::new();
    let mut error: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    error = Some(message);
                    break;
                }
                if let Some(text) = info.stream {
                    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                        tracing::info!(image = %tag, "build: {line}");
                        if let Some(p) = progress {
                            p.do_send(BuildProgress(line.to_string()));
                        }
                        log.push(line.to_string());
                    }
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error: e }) => {
                error = Some(e);
                break;
            }
            Err(e) => {
                error = Some(super::docker_message(&e));
                break;
            }
        }
    }
    match error {
        None => Ok(()),
        Some(message) => Err(build_error(tag, &message, &log)),
    }
}

/// The failing step (the last `Step n/m : ...` line), the engine's message
/// and the last lines of output.
pub fn build_error(tag: &str, message: &str, log: &[String]) -> HostError {
    let step = log
        .iter()
        .rev()
        .find(|l| l.starts_with("Step "))
        .cloned()
        .unwrap_or_else(|| "before the first step".into());
    let tail: Vec<&str> = log
        .iter()
        .rev()
        .take(ERROR_TAIL_LINES)
        .rev()
        .map(String::as_str)
        .collect();
    HostError::local(
        format!("build of {tag} at `{step}`"),
        format!(
            "{}\nlast build output:\n  {}",
            message.trim(),
            tail.join("\n  ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_and_args_make_another_image() {
        let b = |yaml: &str| -> BuildSpec { serde_yaml::from_str(yaml).unwrap() };
        let plain = b("{ context: /x }");
        assert_eq!(
            variant_hash("abc", &plain),
            "abc",
            "unchanged builds keep their tag"
        );
        let prod = variant_hash("abc", &b("{ context: /x, target: prod }"));
        let v1 = variant_hash("abc", &b("{ context: /x, args: { V: '1' } }"));
        let v2 = variant_hash("abc", &b("{ context: /x, args: { V: '2' } }"));
        assert!(prod != "abc" && v1 != v2 && v1 != prod);
        assert_eq!(v1, variant_hash("abc", &b("{ context: /x, args: [V=1] }")));
    }

    #[test]
    fn build_errors_name_the_step() {
        let log: Vec<String> = [
            "Step 1/2 : FROM scratch",
            " ---> x",
            "Step 2/2 : COPY missing /x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let e = build_error("t:1", "COPY failed: file not found", &log).to_string();
        assert!(
            e.starts_with(
                "build of t:1 at `Step 2/2 : COPY missing /x` failed: COPY failed: file not found"
            ),
            "{e}"
        );
        assert!(
            e.contains("last build output:\n  Step 1/2 : FROM scratch"),
            "{e}"
        );
    }
}
