//! drover's own image, and the agent containers run from it (a load
//! balancer's data plane, see `crate::lb::agent`).
//!
//! The image is the running drover executable plus the shared libraries
//! `ldd` names for it (drover links glibc dynamically), packed as a rootfs
//! tarball and imported through the Docker API (`POST /images/create` with
//! `fromSrc=-`): no registry, and any x86_64 engine takes it. Debug info is
//! stripped first when `strip` is there (a debug build is ~200 MB, ~65 MB
//! without it), which makes the first import on an engine several times
//! faster. The tag is the SHA-256 of what is packed, so an unchanged drover
//! imports once per engine and an upgraded one gets a new image.
//!
//! Agent containers use host networking: they listen on the host's own
//! ports (as `port:` in the blueprint says), reach members the way drover
//! does (host address and published port, on any host of the pool), and a
//! port the agent picks itself (`port: 0`, its control API) needs no
//! publishing step that would have to be known before it starts. The agent
//! prints one ready line with its addresses on stdout; drover reads it from
//! the container's log, at start and when it adopts a running agent.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use actix::prelude::*;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use sha2::Digest;

use super::{labels, DockerHost, HostError, OWNER};

/// Repository of drover's own image; the tag is a content hash.
pub const SELF_IMAGE_REPO: &str = "drover/self";
/// Where the executable sits inside the image.
const EXE_IN_IMAGE: &str = "/drover";
/// The role label value of a load balancer's agent container.
pub const ROLE_LB_AGENT: &str = "lb-agent";

/// The packed rootfs of drover's image and its tag, made once per process.
struct Packed {
    tar: bytes::Bytes,
    tag: String,
}

static PACKED: tokio::sync::OnceCell<Result<std::sync::Arc<Packed>, String>> =
    tokio::sync::OnceCell::const_new();

/// The shared libraries `ldd` lists for `exe` (absolute paths, loader
/// included; the vDSO has no file).
pub fn ldd_paths(ldd_output: &str) -> Vec<PathBuf> {
    ldd_output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn pack_blocking() -> Result<Packed, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is drover's executable: {e}"))?;
    let out = std::process::Command::new("ldd")
        .arg(&exe)
        .output()
        .map_err(|e| format!("running ldd on {}: {e}; install libc-bin", exe.display()))?;
    let libs = ldd_paths(&String::from_utf8_lossy(&out.stdout));
    // Stripped to a temp file when `strip` is there; else as it is.
    let dir = tempfile_dir()?;
    let stripped = dir.join("drover");
    let binary = match std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
    {
        Ok(s) if s.success() => std::fs::read(&stripped),
        _ => std::fs::read(&exe),
    }
    .map_err(|e| format!("reading {}: {e}", exe.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let binary = binary?;
    let mut files: Vec<(String, Vec<u8>, u32)> = vec![(EXE_IN_IMAGE.into(), binary, 0o755)];
    for lib in libs {
        // The content of what the path names (they are often symlinks).
        let data = std::fs::read(&lib).map_err(|e| format!("reading {}: {e}", lib.display()))?;
        files.push((lib.display().to_string(), data, 0o755));
    }
    let mut hash = sha2::Sha256::new();
    for (path, data, _) in &files {
        hash.update(path.as_bytes());
        hash.update((data.len() as u64).to_le_bytes());
        hash.update(data);
    }
    let digest = hash.finalize();
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let tar = rootfs_tar(&files).map_err(|e| format!("packing drover's image: {e}"))?;
    Ok(Packed {
        tar: tar.into(),
        tag,
    })
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "drover-self-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// A rootfs tarball of `files` (path, content, mode), with their parent
/// directories and `/tmp`.
fn rootfs_tar(files: &[(String, Vec<u8>, u32)]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert("tmp".to_string());
    for (path, _, _) in files {
        let mut p = Path::new(path.trim_start_matches('/')).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.display().to_string());
            p = d.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if d == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("{d}/"), std::io::empty())?;
    }
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path.trim_start_matches('/'), data.as_slice())?;
    }
    b.into_inner().and_then(|mut v| {
        v.flush()?;
        Ok(v)
    })
}

async fn packed() -> Result<std::sync::Arc<Packed>, HostError> {
    PACKED
        .get_or_init(|| async {
            tokio::task::spawn_blocking(pack_blocking)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map(std::sync::Arc::new)
        })
        .await
        .clone()
        .map_err(|e| HostError::local("make drover's own image", e))
}

/// Serialises imports within this process: two load balancers starting at
/// once import the image once.
static IMPORT_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// drover's own image on this engine (imported if missing); its reference.
pub async fn ensure_self_image(docker: &Docker) -> Result<String, HostError> {
    let p = packed().await?;
    let image = format!("{SELF_IMAGE_REPO}:{}", p.tag);
    let _one = IMPORT_LOCK.lock().await;
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(SELF_IMAGE_REPO)
        .tag(&p.tag)
        .build();
    let body = bollard::body_full(p.tar.clone());
    let mut stream = docker.create_image(Some(opts), Some(body), None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| HostError::engine(format!("import {image}"), e))?;
        if let Some(m) = info.error_detail.and_then(|d| d.message) {
            return Err(HostError::local(format!("import {image}"), m));
        }
    }
    if docker.inspect_image(&image).await.is_err() {
        return Err(HostError::local(
            format!("import {image}"),
            "the image is not there after the import",
        ));
    }
    remove_older(docker, &image).await;
    Ok(image)
}

/// Removes the images of older drovers (`drover/self:*` but `keep`), so
/// upgrades and rebuilds do not pile up ~70 MB each. Never forced: the
/// engine refuses to remove an image a container (an agent an older
/// drover still runs) uses, and that one stays.
async fn remove_older(docker: &Docker, keep: &str) {
    let filters = HashMap::from([("reference".to_string(), vec![SELF_IMAGE_REPO.to_string()])]);
    let opts = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let Ok(images) = docker.list_images(Some(opts)).await else {
        return;
    };
    for tag in images
        .iter()
        .flat_map(|i| i.repo_tags.iter())
        .filter(|t| t.starts_with(&format!("{SELF_IMAGE_REPO}:")) && t.as_str() != keep)
    {
        match docker
            .remove_image(
                tag,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(_) => tracing::info!(image = %tag, "removed an older drover's image"),
            Err(e) => {
                tracing::debug!(image = %tag, error = %e, "an older drover's image stays (in use)")
            }
        }
    }
}

/// An agent container to run: drover's image with `args`, on host networking.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub app: String,
    pub entity: String,
    pub role: &'static str,
    pub args: Vec<String>,
    /// `KEY=VALUE` (the control secret goes here, never in `args`).
    pub env: Vec<String>,
}

/// An agent container as the engine shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentContainer {
    pub id: String,
    pub running: bool,
    /// `State.StartedAt`: the same after an adoption, new after a restart.
    pub started_at: String,
    pub env: Vec<String>,
    /// The last line of its stdout that starts with the ready prefix asked for.
    pub ready: Option<String>,
}

/// Creates and starts an agent container named `drover-<app>-<entity>`;
/// a container of that name left from before (dead, or of an older
/// drover) is removed first. Returns its id.
#[derive(Message)]
#[rtype(result = "Result<String, HostError>")]
pub struct RunAgent(pub AgentSpec);

impl Handler<RunAgent> for DockerHost {
    type Result = ResponseFuture<Result<String, HostError>>;
    fn handle(&mut self, msg: RunAgent, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        Box::pin(async move { run_agent(&docker, msg.0).await })
    }
}

/// The agent container of `(app, entity)`, if there is one; `ready` is
/// the last stdout line starting with `ready_prefix`.
#[derive(Message)]
#[rtype(result = "Result<Option<AgentContainer>, HostError>")]
pub struct InspectAgent {
    pub app: String,
    pub entity: String,
    pub ready_prefix: String,
}

impl Handler<InspectAgent> for DockerHost {
    type Result = ResponseFuture<Result<Option<AgentContainer>, HostError>>;
    fn handle(&mut self, msg: InspectAgent, _: &mut Context<Self>) -> Self::Result {
        let docker = self.docker.clone();
        Box::pin(async move { inspect_agent(&docker, &msg).await })
    }
}

async fn run_agent(docker: &Docker, spec: AgentSpec) -> Result<String, HostError> {
    let image = ensure_self_image(docker).await?;
    let name = super::container_name(&spec.app, &spec.entity);
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::default().force(true).build()),
        )
        .await
        .or_else(|e| {
            let e = HostError::engine(format!("remove the old {name}"), e);
            if e.is_not_found() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    let mut lbls = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::APP.to_string(), spec.app.clone()),
        (labels::ENTITY.to_string(), spec.entity.clone()),
        (labels::ROLE.to_string(), spec.role.to_string()),
    ]);
    if let Some(owner) = OWNER.get() {
        lbls.insert(labels::OWNER.into(), owner.clone());
    }
    let body = ContainerCreateBody {
        image: Some(image),
        entrypoint: Some(vec![EXE_IN_IMAGE.to_string()]),
        cmd: Some(spec.args.clone()),
        env: Some(spec.env.clone()),
        labels: Some(lbls),
        host_config: Some(HostConfig {
            network_mode: Some("host".into()),
            // Small logs: only the ready line and warnings matter.
            log_config: Some(bollard::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([("max-size".into(), "1m".into())])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker
        .create_container(Some(opts), body)
        .await
        .map_err(|e| HostError::engine(format!("create {name}"), e))?;
    docker
        .start_container(&created.id, None)
        .await
        .map_err(|e| HostError::engine(format!("start {name}"), e))?;
    Ok(created.id)
}

async fn inspect_agent(
    docker: &Docker,
    q: &InspectAgent,
) -> Result<Option<AgentContainer>, HostError> {
    let name = super::container_name(&q.app, &q.entity);
    let c = match docker.inspect_container(&name, None).await {
        Ok(c) => c,
        Err(e) => {
            let e = HostError::engine(format!("inspect {name}"), e);
            return if e.is_not_found() { Ok(None) } else { Err(e) };
        }
    };
    let state = c.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let mut ready = None;
    if running {
        // The ready line is among the first; `tail` bounds the read.
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(false)
            .tail("200")
            .build();
        let mut logs = docker.logs(&name, Some(opts));
        while let Some(item) = logs.next().await {
            let item = item.map_err(|e| HostError::engine(format!("logs of {name}"), e))?;
            let text = item.to_string();
            for line in text.lines() {
                if line.starts_with(&q.ready_prefix) {
                    ready = Some(line.to_string());
                }
            }
        }
    }
    Ok(Some(AgentContainer {
        id: c.id.unwrap_or_default(),
        running,
        started_at: state.started_at.unwrap_or_default(),
        env: c.config.and_then(|c| c.env).unwrap_or_default(),
        ready,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_files() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f72)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f72)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f72)\n";
        assert_eq!(
            ldd_paths(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn the_rootfs_has_the_files_and_their_directories() {
        let tar = rootfs_tar(&[
            ("/drover".into(), b"x".to_vec(), 0o755),
            ("/lib64/ld.so".into(), b"yy".to_vec(), 0o755),
        ])
        .unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["lib64/", "tmp/", "drover", "lib64/ld.so"]);
    }
}
