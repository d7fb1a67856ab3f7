//! A real registry for pull tests: Debian's `docker-registry` (distribution
//! 2.8) on a free loopback port, filesystem storage and an htpasswd file in
//! a temp dir. The engine pulls from `127.0.0.1:PORT` without TLS
//! (loopback registries are insecure-allowed). Dropping it stops the
//! registry, removes every local image of its repositories and the dir.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;

use super::Drover;

pub struct Registry {
    child: Child,
    pub port: u16,
    pub user: String,
    pub password: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with one user; panics (never skips) if the tools
    /// are missing.
    pub fn start(user: &str, password: &str) -> Registry {
        super::require_docker();
        for tool in ["docker-registry", "htpasswd"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(found, "`{tool}` is missing: install docker-registry and apache2-utils (.ci/run does). The pull tests never skip.");
        }
        let dir = tempfile::tempdir().expect("registry temp dir");
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-B", "-b", "-c"])
            .arg(&htpasswd)
            .args([user, password])
            .output()
            .expect("htpasswd runs");
        assert!(
            out.status.success(),
            "htpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: drover-test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let reg = Registry {
            child,
            port,
            user: user.into(),
            password: password.into(),
            dir,
        };
        // Up once `/v2/` answers (401: it wants a login).
        let t0 = Instant::now();
        loop {
            if let Some(status) = http_status(port, "/v2/") {
                assert_eq!(
                    status, 401,
                    "the registry answers /v2/ without asking for a login"
                );
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "docker-registry did not answer on 127.0.0.1:{port}: {}",
                std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file holding `password` (for drover.yaml's `password_file`).
    pub fn password_file(&self, name: &str, password: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{password}\n")).unwrap();
        p
    }

    /// Builds an image of its own (the workload plus a layer of `extra_kib`
    /// random KiB, so a pull has something to download), pushes it as
    /// `127.0.0.1:PORT/NAME:v1` and removes it locally. Answers the
    /// reference and the registry's digest.
    pub fn push_unique_image(&self, name: &str, extra_kib: usize) -> (String, String) {
        let reference = format!("{}/{name}:v1", self.host());
        let ctx = tempfile::tempdir().unwrap();
        let mut blob = vec![0u8; extra_kib * 1024];
        let mut seed = std::process::id() as u64
            ^ Instant::now().elapsed().as_nanos() as u64
            ^ name.len() as u64;
        for b in blob.iter_mut() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (seed >> 33) as u8;
        }
        blob.extend_from_slice(name.as_bytes());
        std::fs::write(ctx.path().join("blob"), &blob).unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM drover/workload:latest\nCOPY blob /blob\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let docker = rt.block_on(async {
            let d = bollard::Docker::connect_with_local_defaults()
                .unwrap()
                .negotiate_version()
                .await
                .unwrap();
            drover::host::workload::ensure_workload_image(&d)
                .await
                .expect("the workload image");
            d
        });
        let out = Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &reference])
            .arg(ctx.path())
            .output()
            .expect("docker build runs");
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest = rt.block_on(async {
            let creds = DockerCredentials {
                username: Some(self.user.clone()),
                password: Some(self.password.clone()),
                serveraddress: Some(self.host()),
                ..Default::default()
            };
            let repo = format!("{}/{name}", self.host());
            let opts = PushImageOptionsBuilder::default().tag("v1").build();
            let mut s = docker.push_image(&repo, Some(opts), Some(creds));
            let mut digest = None;
            while let Some(item) = s.next().await {
                let info = item.unwrap_or_else(|e| panic!("push {repo}: {e}"));
                if let Some(st) = info.status.as_deref() {
                    if let Some(i) = st.find("digest: ") {
                        digest = st[i + 8..].split_whitespace().next().map(str::to_string);
                    }
                }
            }
            digest.unwrap_or_else(|| panic!("push {repo} reported no digest"))
        });
        let out = Command::new("docker")
            .args(["rmi", &reference])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker rmi: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (reference, digest)
    }

    /// Removes the local images of this registry's repositories (what
    /// pulls left), by id.
    pub fn remove_local_images(&self) {
        let out = Command::new("docker")
            .args(["images", "--digests", "--format", "{{.Repository}} {{.ID}}"])
            .output();
        let Ok(out) = out else { return };
        let prefix = format!("{}/", self.host());
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(repo, _)| repo.starts_with(&prefix))
            .map(|(_, id)| id.to_string())
            .collect();
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rmi")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.remove_local_images();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of `GET path` on 127.0.0.1:port, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Pull events of the engine for `reference` between `since` and now
/// (unix seconds), from `docker events`.
pub fn pull_events(reference: &str, since: u64) -> usize {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=image",
            "--filter",
            "event=pull",
            "--format",
            "{{.Actor.ID}}",
        ])
        .output()
        .expect("docker events runs");
    let repo = reference
        .rsplit_once(':')
        .map(|(r, _)| r)
        .unwrap_or(reference);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(repo))
        .count()
}

impl Drover {
    /// A drover with `drover.yaml` at `config`, `DOCKER_CONFIG` at
    /// `docker_config`, and its log (debug) written to `log`.
    pub fn start_logged(config: &Path, docker_config: &Path, log: &Path) -> Drover {
        super::require_docker();
        let store_dir = tempfile::tempdir().unwrap();
        let store = store_dir.path().join("drover.redb");
        let mut child = Command::new(super::drover_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(&store)
            .arg("--config")
            .arg(config)
            .env("DOCKER_CONFIG", docker_config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("drover binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let url = loop {
            use std::io::BufRead;
            line.clear();
            let n = reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "drover serve exited before printing its address: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            if let Some(u) = line.trim().strip_prefix("drover listening on ") {
                break u.to_string();
            }
        };
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Drover {
            child,
            url,
            token: super::admin_token_of(&store),
            agent,
            _store_dir: Some(store_dir),
            wrapped: false,
        }
    }

    /// The store file of a drover the harness made.
    pub fn store_file(&self) -> Option<PathBuf> {
        self._store_dir
            .as_ref()
            .map(|d| d.path().join("drover.redb"))
    }
}
