//! The project's own HTTP workload image, built locally (no registry).
//!
//! `build.rs` compiles `workload/main.rs` into a static binary, which is embedded
//! here and packed into a `FROM scratch` image through the Docker build API.
//! The image carries a label with a digest of the embedded binary, so an image
//! left behind by an older drover build is rebuilt rather than reused.

use std::sync::OnceLock;

use bollard::errors::Error as DockerError;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

/// Name (and tag) of the workload image.
pub const WORKLOAD_IMAGE: &str = "drover/workload:latest";

/// The static workload binary, compiled by build.rs.
pub static WORKLOAD_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/drover-workload"));

/// Label set on the workload image.
const LABEL: &str = "io.drover.workload";
/// Label holding the digest of the binary the image was built from.
const DIGEST_LABEL: &str = "io.drover.workload.digest";
/// Port the workload listens on inside the container.
pub const WORKLOAD_PORT: u16 = 8080;

/// Failures while making the workload image available.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Asking the engine about the existing image failed (other than "not found").
    #[error(
        "could not inspect image {image} on the Docker engine: {source}; \
         check that dockerd is running and its socket (/var/run/docker.sock or DOCKER_HOST) is reachable"
    )]
    Inspect {
        /// The image that was inspected.
        image: String,
        /// The engine's error.
        #[source]
        source: DockerError,
    },

    /// Packing the Dockerfile and binary into the build context failed.
    #[error("could not assemble the build context for {image}: {source}")]
    Context {
        /// The image being built.
        image: String,
        /// The I/O error from the tar writer.
        #[source]
        source: std::io::Error,
    },

    /// The engine rejected or aborted the build and said why; `log` is the
    /// builder's output up to the failure.
    #[error(
        "building image {image} failed: {message}. Check that the Docker engine has free disk space and \
         look at its logs (e.g. journalctl -u docker); the image is built from the binary embedded in drover, \
         so rebuilding drover (cargo build) may also help.{}",
        show_log(.log)
    )]
    Build {
        /// The image being built.
        image: String,
        /// The engine's error message.
        message: String,
        /// The builder's output before the failure (may be empty).
        log: String,
    },

    /// The connection to the engine failed during the build.
    #[error(
        "building image {image} failed while talking to the Docker engine: {source}; \
         check that dockerd is running and has free disk space"
    )]
    BuildTransport {
        /// The image being built.
        image: String,
        /// The client or connection error.
        #[source]
        source: DockerError,
    },

    /// The build reported success but the tagged image cannot be found or has no id.
    #[error(
        "image {image} is missing after a successful build ({detail}); another process may have removed it \
         concurrently: retry"
    )]
    MissingAfterBuild {
        /// The image that was built.
        image: String,
        /// What the follow-up inspection returned.
        detail: String,
    },
}

/// True if `image` names the workload image (`drover/workload` with tag `latest` or no tag).
///
/// The fully qualified `docker.io/drover/workload[:latest]` spelling is accepted too;
/// digest references (`@sha256:…`) are not.
pub fn is_workload_image(image: &str) -> bool {
    let name = image.strip_prefix("docker.io/").unwrap_or(image);
    matches!(name, "drover/workload" | "drover/workload:latest")
}

/// Builds the image if the engine lacks it; returns the image id. Idempotent; safe to call concurrently from several processes.
///
/// An existing `drover/workload:latest` whose binary digest label differs from the
/// binary embedded in this drover (e.g. one built by an older version) is rebuilt.
pub async fn ensure_workload_image(docker: &Docker) -> Result<String, ImageError> {
    let _serialised = BUILD_LOCK.lock().await;
    match docker.inspect_image(WORKLOAD_IMAGE).await {
        Ok(inspect) => {
            let digest = inspect
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(DIGEST_LABEL));
            if let (Some(id), Some(digest)) = (inspect.id, digest) {
                if digest == binary_digest() {
                    return Ok(id);
                }
            }
            build_unlocked(docker).await
        }
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => build_unlocked(docker).await,
        Err(source) => Err(ImageError::Inspect {
            image: WORKLOAD_IMAGE.to_string(),
            source,
        }),
    }
}

/// Always builds (and tags WORKLOAD_IMAGE); returns the image id.
///
/// Concurrent builds (from several processes) are harmless: each produces an
/// equivalent image and the tag ends up on one of them. Within one process,
/// builds and [`ensure_workload_image`] calls are serialised.
pub async fn build_workload_image(docker: &Docker) -> Result<String, ImageError> {
    let _serialised = BUILD_LOCK.lock().await;
    build_unlocked(docker).await
}

/// Serialises builds within this process, so concurrent `ensure` calls build once.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn build_unlocked(docker: &Docker) -> Result<String, ImageError> {
    let context = build_context(&dockerfile()).map_err(|source| ImageError::Context {
        image: WORKLOAD_IMAGE.to_string(),
        source,
    })?;
    run_build(docker, context).await?;

    let missing = |detail: String| ImageError::MissingAfterBuild {
        image: WORKLOAD_IMAGE.to_string(),
        detail,
    };
    match docker.inspect_image(WORKLOAD_IMAGE).await {
        Ok(inspect) => inspect
            .id
            .ok_or_else(|| missing("the engine reported no image id".into())),
        Err(e) => Err(missing(e.to_string())),
    }
}

/// Sends `context` to the engine's (classic) builder, tagging the result
/// WORKLOAD_IMAGE, and waits for the build to finish.
async fn run_build(docker: &Docker, context: Vec<u8>) -> Result<(), ImageError> {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(WORKLOAD_IMAGE)
        .rm(true)
        .build();

    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    return Err(build_failed(message, &log));
                }
                if let Some(line) = info.stream {
                    log.push_str(&line);
                }
            }
            Err(DockerError::DockerStreamError { error }) => {
                return Err(build_failed(error, &log));
            }
            Err(DockerError::DockerResponseServerError {
                message,
                status_code,
            }) => {
                return Err(build_failed(
                    format!("{message} (HTTP {status_code})"),
                    &log,
                ));
            }
            Err(source) => {
                return Err(ImageError::BuildTransport {
                    image: WORKLOAD_IMAGE.to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

fn build_failed(message: String, log: &str) -> ImageError {
    ImageError::Build {
        image: WORKLOAD_IMAGE.to_string(),
        message: message.trim().to_string(),
        log: log.trim().to_string(),
    }
}

fn show_log(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\nbuild output:\n{log}")
    }
}

/// FNV-1a (64-bit) of the embedded binary, as hex: stable across Rust versions.
fn binary_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in WORKLOAD_BINARY {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("fnv1a64-{h:016x}-{}", WORKLOAD_BINARY.len())
    })
}

fn dockerfile() -> String {
    format!(
        "FROM scratch\n\
         COPY drover-workload /workload\n\
         EXPOSE {WORKLOAD_PORT}\n\
         LABEL {LABEL}=\"true\" {DIGEST_LABEL}=\"{digest}\"\n\
         ENTRYPOINT [\"/workload\"]\n",
        digest = binary_digest()
    )
}

/// The build context: an uncompressed tar with the Dockerfile and the binary.
/// Headers are deterministic (fixed mtime/owner) so the engine's build cache applies.
fn build_context(dockerfile: &str) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::with_capacity(WORKLOAD_BINARY.len() + 4096));
    let mut append = |path: &str, mode: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, data)
    };
    append("Dockerfile", 0o644, dockerfile.as_bytes())?;
    append("drover-workload", 0o755, WORKLOAD_BINARY)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    };
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    #[test]
    fn recognises_workload_image_names() {
        assert!(is_workload_image("drover/workload"));
        assert!(is_workload_image("drover/workload:latest"));
        assert!(is_workload_image(WORKLOAD_IMAGE));
        assert!(is_workload_image("docker.io/drover/workload:latest"));
        assert!(!is_workload_image("drover/workload:v2"));
        assert!(!is_workload_image("drover/workload:"));
        assert!(!is_workload_image("drover/workloadx"));
        assert!(!is_workload_image("other/workload"));
        assert!(!is_workload_image("workload"));
        assert!(!is_workload_image("nginx:latest"));
        assert!(!is_workload_image("registry.example.com/drover/workload"));
        assert!(!is_workload_image("drover/workload@sha256:0123"));
        assert!(!is_workload_image(""));
    }

    #[test]
    fn build_context_holds_dockerfile_and_executable_binary() {
        let bytes = build_context(&dockerfile()).unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = HashMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mode = entry.header().mode().unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            seen.insert(path, (mode, data));
        }
        let (mode, dockerfile) = &seen["Dockerfile"];
        assert_eq!(*mode, 0o644);
        let dockerfile = String::from_utf8(dockerfile.clone()).unwrap();
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        assert!(dockerfile.contains("COPY drover-workload /workload\n"));
        assert!(dockerfile.contains("ENTRYPOINT [\"/workload\"]\n"));
        assert!(dockerfile.contains("io.drover.workload=\"true\""));
        let (mode, binary) = &seen["drover-workload"];
        assert_eq!(*mode, 0o755);
        assert_eq!(binary.as_slice(), WORKLOAD_BINARY);
        assert_eq!(&WORKLOAD_BINARY[..4], b"\x7fELF");
    }

    async fn engine() -> Docker {
        if std::env::var_os("DOCKER_HOST").is_none()
            && !std::path::Path::new("/var/run/docker.sock").exists()
        {
            panic!(
                "this test needs a running Docker engine, but /var/run/docker.sock does not exist \
                 (and DOCKER_HOST is unset); start dockerd. This test does not skip."
            );
        }
        Docker::connect_with_local_defaults()
            .expect("cannot create a Docker client (this test needs a running Docker engine; it does not skip)")
            .negotiate_version()
            .await
            .expect("cannot reach the Docker engine (is dockerd running and the socket accessible?)")
    }

    /// Force-removes the container when dropped, including on panic. Uses a fresh
    /// client on its own thread and runtime, since `Drop` cannot await.
    struct ContainerGuard {
        name: String,
    }

    impl Drop for ContainerGuard {
        fn drop(&mut self) {
            let name = self.name.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let docker = Docker::connect_with_local_defaults()?
                        .negotiate_version()
                        .await?;
                    let opts = RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build();
                    match docker.remove_container(&name, Some(opts)).await {
                        Err(DockerError::DockerResponseServerError {
                            status_code: 404, ..
                        }) => Ok(()),
                        other => other,
                    }
                })
                .unwrap_or_else(|e| {
                    eprintln!("warning: could not remove test container {name}: {e}")
                })
            })
            .join();
        }
    }

    /// One HTTP/1.1 exchange on an existing connection: (status, body, connection header).
    fn http_get(
        reader: &mut BufReader<TcpStream>,
        path: &str,
    ) -> std::io::Result<(u16, String, String)> {
        write!(
            reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )?;
        reader.get_mut().flush()?;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let (mut length, mut connection) = (None, String::new());
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("connection") {
                    connection = v.trim().to_ascii_lowercase();
                }
            }
        }
        let length =
            length.ok_or_else(|| std::io::Error::other("response without Content-Length"))?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        Ok((
            status,
            String::from_utf8_lossy(&body).into_owned(),
            connection,
        ))
    }

    /// Connects and answers `/health` once the published port is ready.
    fn connect_when_ready(port: u16) -> BufReader<TcpStream> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = TcpStream::connect(("127.0.0.1", port)).and_then(|s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut r = BufReader::new(s);
                let (status, body, _) = http_get(&mut r, "/health")?;
                Ok((r, status, body))
            });
            match attempt {
                Ok((r, status, body)) => {
                    assert_eq!((status, body.as_str()), (200, "ok"), "GET /health");
                    return r;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("workload on 127.0.0.1:{port} never answered GET /health: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn build_errors_carry_the_engine_message() {
        let docker = engine().await;
        // Fails at COPY, before anything could be tagged.
        let context = build_context("FROM scratch\nCOPY no-such-file-in-context /x\n").unwrap();
        match run_build(&docker, context).await {
            Err(e @ ImageError::Build { .. }) => {
                let ImageError::Build { message, log, .. } = &e else {
                    unreachable!()
                };
                assert!(
                    message.contains("no-such-file-in-context"),
                    "message: {message}"
                );
                assert!(log.contains("Step 2/2"), "log: {log}");
                let shown = e.to_string();
                assert!(
                    shown.contains(message.as_str()) && shown.contains(log.as_str()),
                    "{shown}"
                );
            }
            other => panic!("expected ImageError::Build, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builds_and_serves_against_real_engine() {
        let docker = engine().await;

        let built = build_workload_image(&docker)
            .await
            .expect("build_workload_image");
        assert!(built.starts_with("sha256:"), "unexpected image id {built}");
        // Idempotent, and safe to race with itself. (Not compared with `built`: another
        // process may legitimately rebuild and retag in between.)
        let (a, b) = tokio::join!(
            ensure_workload_image(&docker),
            ensure_workload_image(&docker)
        );
        let (a, b) = (
            a.expect("ensure_workload_image"),
            b.expect("ensure_workload_image"),
        );
        assert!(a.starts_with("sha256:"), "unexpected image id {a}");
        assert_eq!(a, b);

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("drover-workload-test-{}-{nanos}", std::process::id());
        let _guard = ContainerGuard { name: name.clone() };

        let port_key = format!("{WORKLOAD_PORT}/tcp");
        let body = ContainerCreateBody {
            image: Some(WORKLOAD_IMAGE.to_string()),
            exposed_ports: Some(vec![port_key.clone()]),
            labels: Some(HashMap::from([(
                "io.drover.test".to_string(),
                "true".to_string(),
            )])),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port_key.clone(),
                    Some(vec![PortBinding {
                        host_ip: Some("127.0.0.1".to_string()),
                        host_port: Some(String::new()), // random free port
                    }]),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .expect("create_container");
        docker
            .start_container(&name, None)
            .await
            .expect("start_container");

        let inspect = docker
            .inspect_container(&name, None)
            .await
            .expect("inspect_container");
        let host_port: u16 = inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|p| p.get(&port_key).cloned().flatten())
            .and_then(|b| b.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse().ok())
            .expect("no published host port for 8080/tcp");

        let (id, root, connection) = tokio::task::spawn_blocking(move || {
            let mut conn = connect_when_ready(host_port);
            // Same connection: keep-alive must work.
            let (status, body, connection) = http_get(&mut conn, "/").expect("GET /");
            assert_eq!(status, 200, "GET / status");
            let (status, _, _) = http_get(&mut conn, "/no-such-path").expect("GET /no-such-path");
            assert_eq!(status, 404);
            (created.id, body, connection)
        })
        .await
        .expect("HTTP checks panicked");

        assert_eq!(connection, "keep-alive");
        assert!(
            root.ends_with('\n'),
            "GET / body should end with a newline: {root:?}"
        );
        let hostname = root.trim();
        assert!(
            !hostname.is_empty() && id.starts_with(hostname),
            "GET / answered {hostname:?}, expected a prefix of container id {id}"
        );

        // SIGTERM is handled even though the workload is PID 1: stop is immediate.
        let started = Instant::now();
        docker
            .stop_container(
                &name,
                Some(StopContainerOptionsBuilder::default().t(10).build()),
            )
            .await
            .expect("stop_container");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "docker stop took {took:?}; SIGTERM not handled?"
        );
        let state = docker
            .inspect_container(&name, None)
            .await
            .expect("inspect")
            .state
            .unwrap();
        assert_eq!(
            state.exit_code,
            Some(0),
            "workload should exit 0 on SIGTERM"
        );
    }
}
