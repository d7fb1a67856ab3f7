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

use std::path::{Path, PathBuf};
use std::time::Instant;

use actix::prelude::*;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{DockerHost, HostError};
use crate::blueprint::{BuildSpec, ContainerSpec};

/// Lines of build output kept for an error message.
const ERROR_TAIL_LINES: usize = 12;

/// A packed build context.
#[derive(Debug, Clone)]
pub struct PackedContext {
    pub tar: Vec<u8>,
    /// SHA-256 (hex) of the tar and the Dockerfile path.
    pub hash: String,
    pub files: usize,
}

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

mod dockerignore;
pub use dockerignore::{IgnoreError, IgnoreRules};

/// Packs `dir` (honouring its `.dockerignore`) deterministically.
pub fn pack_context(dir: &Path, dockerfile: &str) -> std::io::Result<PackedContext> {
    let rules = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => IgnoreRules::parse(&t)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(e) => return Err(e),
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    walk(dir, "", &rules, dockerfile, &mut files)?;
    files.sort();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for (rel, path) in &files {
        let meta = std::fs::symlink_metadata(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if meta.file_type().is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            let target = std::fs::read_link(path)?;
            builder.append_link(&mut header, rel, target)?;
        } else if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            builder.append_data(&mut header, format!("{rel}/"), std::io::empty())?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let exec = meta.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if exec { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            builder.append_data(&mut header, rel, std::fs::File::open(path)?)?;
        }
    }
    let tar = builder.into_inner()?;
    let mut h = Sha256::new();
    h.update(dockerfile.as_bytes());
    h.update([0]);
    h.update(&tar);
    let hash = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(PackedContext {
        tar,
        hash,
        files: files.len(),
    })
}

fn walk(
    dir: &Path,
    prefix: &str,
    rules: &IgnoreRules,
    dockerfile: &str,
    out: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        // Docker sends the Dockerfile and .dockerignore even when ignored.
        let always = rel == dockerfile || rel == ".dockerignore";
        let ft = entry.file_type()?;
        let excluded = !always && rules.excluded(&rel);
        // An excluded directory is still walked when a `!` line may take
        // a file inside it back (as Docker does).
        if excluded && !(ft.is_dir() && rules.has_exceptions()) {
            continue;
        }
        if !excluded {
            out.push((rel.clone(), entry.path()));
        }
        if ft.is_dir() {
            walk(&entry.path(), &rel, rules, dockerfile, out)?;
        }
    }
    Ok(())
}

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
        Box::pin(async move { ensure_image(&docker, &host, &msg).await })
    }
}

/// Ensures the image of `req.spec` on one host (`docker`, named `host`).
pub async fn ensure_image(
    docker: &Docker,
    host: &str,
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
    let packed = pack(&build).await?;
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

async fn pack(build: &BuildSpec) -> Result<PackedContext, HostError> {
    let dir = PathBuf::from(&build.context);
    let dockerfile = build.dockerfile().to_string();
    let what = format!("pack build context {}", build.context);
    let dir2 = dir.clone();
    let df = dockerfile.clone();
    let packed = tokio::task::spawn_blocking(move || {
        if !dir2.join(&df).is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {df} in {}", dir2.display()),
            ));
        }
        pack_context(&dir2, &df)
    })
    .await
    .map_err(|e| HostError::local(what.clone(), e.to_string()))?;
    packed.map_err(|e| HostError::local(what, e.to_string()))
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
    fn packing_is_stable_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
        std::fs::write(p.join("a"), "one").unwrap();
        std::fs::create_dir(p.join("logs")).unwrap();
        std::fs::write(p.join("logs/x.log"), "noise").unwrap();
        std::fs::write(p.join(".dockerignore"), "logs\n").unwrap();
        let one = pack_context(p, "Dockerfile").unwrap();
        let two = pack_context(p, "Dockerfile").unwrap();
        assert_eq!(one.hash, two.hash);
        assert_eq!(one.files, 3, ".dockerignore, Dockerfile, a");
        // Ignored files do not change the hash; others do.
        std::fs::write(p.join("logs/x.log"), "more noise").unwrap();
        assert_eq!(pack_context(p, "Dockerfile").unwrap().hash, one.hash);
        std::fs::write(p.join("a"), "two").unwrap();
        let three = pack_context(p, "Dockerfile").unwrap();
        assert_ne!(three.hash, one.hash);
        assert_eq!(
            image_tag("shop", "web", &three.hash),
            format!("drover-build/shop-web:{}", &three.hash[..12])
        );
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
