//! Provisioners: how a location gets new Docker hosts and gives them back.
//!
//! - `static`: a fixed list; never makes a host.
//! - `local-dockerd`: an extra dockerd on this machine with its own data
//!   root, exec root, socket, pidfile and bridge (single-machine testing,
//!   partitioning one machine). Decommission stops it and removes all of it.
//! - `command`: the operator's scripts (clouds, Terraform, bare metal):
//!   `create NAME` prints the endpoint as JSON, `destroy NAME` removes it.
//!
//! The work is blocking (processes, files), so every call runs on
//! `spawn_blocking`: never on an actor's thread.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::config::{
    address_of_endpoint, parse_subnet16, ProvisionerConfig, ProvisionerKind, TlsConfig,
};
use crate::store::SavedHost;

/// A host a provisioner made.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHost {
    pub name: String,
    pub endpoint: String,
    pub tls: Option<TlsConfig>,
    pub address: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl NewHost {
    /// The host as the store keeps it, to reach it again after a restart.
    pub fn saved(&self, index: u32) -> SavedHost {
        SavedHost {
            name: self.name.clone(),
            index,
            endpoint: self.endpoint.clone(),
            address: self.address.clone(),
            labels: self.labels.clone(),
            tls: self
                .tls
                .as_ref()
                .map(|t| (t.ca.clone(), t.cert.clone(), t.key.clone())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the `static` provisioner makes no hosts; add hosts to drover.yaml or pick `local-dockerd` or `command`")]
    Static,
    #[error("provisioning host {host} failed: {source}")]
    Create {
        host: String,
        source: ProvisionCause,
    },
    #[error("decommissioning host {host} failed: {source}")]
    Destroy {
        host: String,
        source: ProvisionCause,
    },
}

/// What went wrong inside a provisioner.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionCause {
    #[error(transparent)]
    Engine(#[from] LocalEngineError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("its output's last line must be JSON like {{\"endpoint\": \"tcp://10.0.0.5:2376\", \"tls\": {{\"ca\": ..., \"cert\": ..., \"key\": ...}}}}: {0}")]
    Output(serde_json::Error),
}

/// Why a local engine did not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum LocalEngineError {
    #[error("cannot {what} {}: {source}; check that drover may write there (the provisioner's `dir`)", path.display())]
    Files {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}; is it installed and on PATH?")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}; `local-dockerd` needs root (CAP_NET_ADMIN) to make its bridge")]
    Command { command: String, stderr: String },
    #[error("dockerd did not answer on {} within {timeout:?}: {log_tail}; its log is {}", socket.display(), log.display())]
    NoAnswer {
        socket: PathBuf,
        timeout: Duration,
        log_tail: String,
        log: PathBuf,
    },
}

/// Why an operator's `create` or `destroy` script failed.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(
        "no command is configured; set the provisioner's `create` and `destroy` in drover.yaml"
    )]
    NoCommand,
    #[error(
        "cannot run {program}: {source}; check the path in the provisioner's `create`/`destroy`"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?}; raise the provisioner's `timeout` or make the script faster")]
    Timeout { program: String, timeout: Duration },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} exited with {status}: {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Makes and removes hosts. Blocking: called from `spawn_blocking`.
pub trait Provisioner: Send + Sync {
    /// Makes host `name` (its `index`-th in the pool) and returns how to
    /// reach it once its engine answers.
    fn create(&self, name: &str, index: u32) -> Result<NewHost, ProvisionError>;
    /// Removes a host this provisioner made. Idempotent.
    fn destroy(&self, name: &str) -> Result<(), ProvisionError>;
    /// Stops the engine of host `name` without removing anything, as a
    /// crash would (the chaos fault `engine-stop`). Only provisioners that
    /// can stop an engine short of destroying its host do.
    fn stop_engine(
        &self,
        name: &str,
    ) -> Result<super::engine_stop::EngineStopped, super::engine_stop::EngineStopError> {
        let _ = name;
        Err(super::engine_stop::EngineStopError::Unsupported)
    }
}

pub fn from_config(location: &str, cfg: &ProvisionerConfig) -> Box<dyn Provisioner> {
    match cfg.kind {
        ProvisionerKind::Static => Box::new(StaticProvisioner),
        ProvisionerKind::LocalDockerd => Box::new(LocalDockerd {
            location: location.to_string(),
            // `serve` fills `dir` in beside the store; this fallback (the
            // working directory) serves callers without a store.
            dir: cfg
                .dir
                .clone()
                .unwrap_or_else(|| default_hosts_dir(Path::new("drover.redb"))),
            subnet: cfg
                .subnet
                .as_deref()
                .and_then(parse_subnet16)
                .unwrap_or((10, 215)),
            dockerd: cfg.dockerd.clone().unwrap_or_else(|| "dockerd".into()),
        }),
        ProvisionerKind::Command => Box::new(CommandProvisioner {
            create: cfg.create.clone(),
            destroy: cfg.destroy.clone(),
            timeout: cfg.timeout.unwrap_or(Duration::from_secs(300)),
        }),
    }
}

pub struct StaticProvisioner;

impl Provisioner for StaticProvisioner {
    fn create(&self, _: &str, _: u32) -> Result<NewHost, ProvisionError> {
        Err(ProvisionError::Static)
    }
    fn destroy(&self, _: &str) -> Result<(), ProvisionError> {
        Ok(())
    }
}

/// Extra dockerd processes on this machine.
pub struct LocalDockerd {
    pub location: String,
    pub dir: PathBuf,
    pub subnet: (u8, u8),
    pub dockerd: PathBuf,
}

/// Where one local engine keeps everything.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub bridge: String,
    /// More dockerd flags (a TLS listener, say). Default none.
    pub extra_args: Vec<String>,
}

impl LocalEngine {
    pub fn at(dir: &Path, name: &str) -> LocalEngine {
        let root = dir.join(name);
        // Interface names are at most 15 bytes: `dr` + a short hash of the
        // host's directory keeps two pools' bridges apart.
        let hash = root
            .to_string_lossy()
            .bytes()
            .fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100000001b3)
            });
        LocalEngine {
            socket: root.join("docker.sock"),
            pidfile: root.join("docker.pid"),
            bridge: format!("drv{:010x}", hash & 0xff_ffff_ffff),
            extra_args: Vec::new(),
            root,
        }
    }

    /// Starts dockerd with its own bridge (`a.b.index.1/24`) and waits
    /// until its socket answers. `--iptables=false`: engines side by side
    /// must not rewrite each other's NAT rules; published ports still work
    /// through docker-proxy.
    pub fn start(
        &self,
        dockerd: &Path,
        subnet: (u8, u8),
        index: u32,
        timeout: Duration,
    ) -> Result<(), LocalEngineError> {
        let _ = self.stop();
        for dir in [self.root.join("data"), self.root.join("exec")] {
            std::fs::create_dir_all(&dir).map_err(files("create", &dir))?;
        }
        // Owner-only: the socket inside gives root on the engine.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))
                .map_err(files("restrict", &self.root))?;
        }
        // An empty config file: the machine's /etc/docker/daemon.json sets
        // `data-root`, which clashes with our flag.
        let cfg = self.root.join("daemon.json");
        std::fs::write(&cfg, "{}").map_err(files("write", &cfg))?;
        let cidr = format!("{}.{}.{}.1/24", subnet.0, subnet.1, index % 250 + 1);
        run("ip", &["link", "add", &self.bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &cidr, "dev", &self.bridge])?;
        run("ip", &["link", "set", &self.bridge, "up"])?;
        let log_path = self.root.join("dockerd.log");
        let log = std::fs::File::create(&log_path).map_err(files("create", &log_path))?;
        let child = Command::new(dockerd)
            .arg("--config-file")
            .arg(&cfg)
            .arg("--data-root")
            .arg(self.root.join("data"))
            .arg("--exec-root")
            .arg(self.root.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--pidfile")
            .arg(&self.pidfile)
            .arg("--bridge")
            .arg(&self.bridge)
            .args(["--iptables=false", "--ip-masq=false"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(files("open", &log_path))?)
            .stderr(log)
            .spawn()
            .map_err(|source| LocalEngineError::Spawn {
                program: dockerd.display().to_string(),
                source,
            })?;
        // Reap it when it exits so it never lingers as a zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() && self.pid().is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        Err(LocalEngineError::NoAnswer {
            socket: self.socket.clone(),
            timeout,
            log_tail: tail.join(" | "),
            log: log_path,
        })
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops dockerd (TERM, then KILL after 10 s), then removes its
    /// bridge and directories. Idempotent.
    pub fn stop(&self) -> Result<(), LocalEngineError> {
        // The bridges of the engine's own networks (`br-<id>`) outlive a
        // killed dockerd; list them while it answers, delete them after.
        let mut bridges: Vec<String> = Vec::new();
        if self.socket.exists() {
            if let Ok(out) = Command::new("docker")
                .arg("-H")
                .arg(format!("unix://{}", self.socket.display()))
                .args([
                    "network",
                    "ls",
                    "-q",
                    "--no-trunc",
                    "--filter",
                    "driver=bridge",
                ])
                .stderr(Stdio::null())
                .output()
            {
                bridges = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|id| id.len() >= 12)
                    .map(|id| format!("br-{}", &id[..12]))
                    .collect();
            }
        }
        // A dead engine cannot list them: its network store names them too.
        for id in network_ids_in_store(&self.root.join("data/network/files/local-kv.db")) {
            let b = format!("br-{}", &id[..12]);
            if !bridges.contains(&b) {
                bridges.push(b);
            }
        }
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let t0 = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && t0.elapsed() < Duration::from_secs(10)
            {
                // A zombie counts as gone.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if stat.split_whitespace().nth(2) == Some("Z") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        for b in bridges.iter().chain(std::iter::once(&self.bridge)) {
            let _ = Command::new("ip")
                .args(["link", "del", b])
                .stderr(Stdio::null())
                .status();
        }
        // A killed dockerd leaves its containers' shims (and so the
        // containers) running: they name this engine's root on their
        // command line. The containers' processes go with them: killing a
        // shim alone leaves its container's processes running under init
        // (a load balancer agent kept its port after a test's engine went).
        for pid in with_descendants(&processes_naming(&self.root)) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // Mounts left under the root (overlay, netns files) must go before
        // the files: every mount point below it, deepest first, lazily (a
        // dying shim may still hold one).
        let root = self.root.to_string_lossy().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|m| m.starts_with(&format!("{root}/")))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount")
                .args(["-l", &m])
                .stderr(Stdio::null())
                .status();
        }
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root).map_err(files("remove", &self.root))?;
        }
        Ok(())
    }
}

/// Network ids in an engine's network store (a boltdb file whose keys
/// read `docker/network/v1.0/network/<id>/`).
fn network_ids_in_store(path: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let key = b"docker/network/v1.0/network/";
    let mut ids = Vec::new();
    let mut i = 0;
    while i + key.len() + 64 <= bytes.len() {
        if &bytes[i..i + key.len()] == key {
            let id = &bytes[i + key.len()..i + key.len() + 64];
            if id.iter().all(|b| b.is_ascii_hexdigit()) {
                let id = String::from_utf8_lossy(id).to_string();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            i += key.len();
        } else {
            i += 1;
        }
    }
    ids
}

/// Processes whose command line names `root` or a path below it.
fn processes_naming(root: &Path) -> Vec<u32> {
    let needle = root.to_string_lossy().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| cmdline_names_path(&c, &needle))
                .unwrap_or(false)
        })
        .collect()
}

/// These processes and every process below them (their children, and
/// theirs), each once.
fn with_descendants(roots: &[u32]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return roots.to_vec();
    };
    let parents: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_in_stat(&stat)?))
        })
        .collect();
    descendants_of(roots, &parents)
}

/// `roots` and every process below them, from (pid, parent pid) pairs.
fn descendants_of(roots: &[u32], parents: &[(u32, u32)]) -> Vec<u32> {
    let mut all: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        for &(child, parent) in parents {
            if parent == p && !all.contains(&child) {
                all.push(child);
            }
        }
        i += 1;
    }
    all
}

/// The parent pid in a `/proc/PID/stat` line: the second field after the
/// command name, which is in parentheses and may itself hold spaces.
fn parent_in_stat(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether a command line (NUL-separated arguments) names `root` itself
/// or a path below it: the match must end at a path separator or at the
/// end of the path, so `/x/pool-1` never matches `/x/pool-10/...` (a
/// plain substring match once killed `pool-10`..`pool-19`'s shims when
/// `pool-1` stopped).
pub(crate) fn cmdline_names_path(cmdline: &[u8], root: &str) -> bool {
    let root = root.trim_end_matches('/');
    if root.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(cmdline);
    text.match_indices(root).any(|(i, _)| {
        // The path starts an argument or follows `=` (`--root=/x`).
        let starts = i == 0 || matches!(text.as_bytes()[i - 1], 0 | b'=' | b' ');
        let after = text.as_bytes().get(i + root.len());
        let ends = matches!(after, None | Some(0) | Some(b'/') | Some(b' '));
        starts && ends
    })
}

/// The error of a file operation on `path`.
fn files<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LocalEngineError + 'a {
    move |source| LocalEngineError::Files {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), LocalEngineError> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|source| LocalEngineError::Spawn {
            program: cmd.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(LocalEngineError::Command {
            command: format!("{cmd} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

impl Provisioner for LocalDockerd {
    fn create(&self, name: &str, index: u32) -> Result<NewHost, ProvisionError> {
        let engine = LocalEngine::at(&self.dir.join(&self.location), name);
        engine
            .start(&self.dockerd, self.subnet, index, Duration::from_secs(30))
            .map_err(|e| ProvisionError::Create {
                host: name.to_string(),
                source: e.into(),
            })?;
        Ok(NewHost {
            name: name.to_string(),
            endpoint: format!("unix://{}", engine.socket.display()),
            tls: None,
            address: "127.0.0.1".into(),
            labels: Default::default(),
        })
    }

    fn stop_engine(
        &self,
        name: &str,
    ) -> Result<super::engine_stop::EngineStopped, super::engine_stop::EngineStopError> {
        let engine = LocalEngine::at(&self.dir.join(&self.location), name);
        super::engine_stop::halt(&engine.pidfile, name)
    }

    fn destroy(&self, name: &str) -> Result<(), ProvisionError> {
        LocalEngine::at(&self.dir.join(&self.location), name)
            .stop()
            .map_err(|e| ProvisionError::Destroy {
                host: name.to_string(),
                source: e.into(),
            })
    }
}

/// The most of a script's output kept (16 MiB): a provisioner prints an
/// endpoint and a few labels; more is a runaway script.
const SCRIPT_OUTPUT_CAP: usize = 16 << 20;

/// Reads a pipe to its end on a thread, keeping at most
/// [`SCRIPT_OUTPUT_CAP`] bytes; the bytes arrive on the channel.
fn drain<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut pipe) = pipe {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = SCRIPT_OUTPUT_CAP.saturating_sub(kept.len());
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// Where `local-dockerd` keeps its hosts when `dir` is not set: beside
/// drover's store, in `drover-hosts/` (owner-only), never in a
/// world-writable directory such as /tmp where another user could plant
/// a socket or a data root first.
pub fn default_hosts_dir(store: &Path) -> PathBuf {
    let parent = store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent)
        .unwrap_or_else(|_| parent.to_path_buf())
        .join("drover-hosts")
}

/// The operator's scripts.
pub struct CommandProvisioner {
    pub create: Vec<String>,
    pub destroy: Vec<String>,
    pub timeout: Duration,
}

/// What `create` prints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    endpoint: String,
    #[serde(default)]
    tls: Option<TlsConfig>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

fn run_script(argv: &[String], name: &str, timeout: Duration) -> Result<String, ScriptError> {
    let (cmd, args) = argv.split_first().ok_or(ScriptError::NoCommand)?;
    let program = || cmd.to_string();
    let mut child = Command::new(cmd)
        .args(args)
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ScriptError::Spawn {
            program: program(),
            source,
        })?;
    // Both pipes are drained while the script runs: a script printing more
    // than a pipe buffer (64 KiB) would otherwise block on its write and
    // look like a timeout. What it prints is capped (the readers keep
    // draining, so the script never blocks, but drop the excess).
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let t0 = Instant::now();
    let status = loop {
        let done = child.try_wait().map_err(|source| ScriptError::Wait {
            program: program(),
            source,
        })?;
        match done {
            Some(status) => break status,
            None if t0.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ScriptError::Timeout {
                    program: program(),
                    timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // The script has exited; a child it left behind holding the pipes
    // would keep the readers open, so they are not waited on forever.
    let stdout = stdout
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    let stderr = stderr
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_default();
    if !status.success() {
        return Err(ScriptError::Failed {
            program: program(),
            status,
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&stdout).to_string())
}

impl Provisioner for CommandProvisioner {
    fn create(&self, name: &str, _: u32) -> Result<NewHost, ProvisionError> {
        let err = |source: ProvisionCause| ProvisionError::Create {
            host: name.to_string(),
            source,
        };
        let out = run_script(&self.create, name, self.timeout).map_err(|e| err(e.into()))?;
        // The last non-empty line is the JSON: scripts may log before it.
        let line = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let c: Created = serde_json::from_str(line).map_err(|e| err(ProvisionCause::Output(e)))?;
        Ok(NewHost {
            name: name.to_string(),
            address: c
                .address
                .unwrap_or_else(|| address_of_endpoint(&c.endpoint)),
            endpoint: c.endpoint,
            tls: c.tls,
            labels: c.labels,
        })
    }

    fn destroy(&self, name: &str) -> Result<(), ProvisionError> {
        run_script(&self.destroy, name, self.timeout)
            .map(|_| ())
            .map_err(|e| ProvisionError::Destroy {
                host: name.to_string(),
                source: e.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shims_containers_are_found_below_it() {
        assert_eq!(parent_in_stat("42 (containerd-shim) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("43 (a) b) S 42 1"), Some(42));
        assert_eq!(parent_in_stat("garbage"), None);
        // shim 10 → container init 11 → its child 12; 20 is someone else's.
        let parents = [(10, 1), (11, 10), (12, 11), (20, 1), (21, 20)];
        assert_eq!(descendants_of(&[10], &parents), vec![10, 11, 12]);
        assert_eq!(descendants_of(&[], &parents), Vec::<u32>::new());
        // On this machine: a shell and the sleep it started.
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .expect("sh runs");
        let me = sh.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let found = with_descendants(&[me]);
            if found.len() >= 2 || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        for pid in &found {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
        let _ = sh.wait();
        assert_eq!(found.len(), 2, "the shell and its sleep: {found:?}");
        assert_eq!(found[0], me);
    }

    #[test]
    fn a_host_root_matches_its_own_paths_only() {
        let cmd = b"containerd-shim\0-address\0/d/loc/pool-10/exec/containerd.sock\0";
        assert!(!cmdline_names_path(cmd, "/d/loc/pool-1"));
        assert!(cmdline_names_path(cmd, "/d/loc/pool-10"));
        assert!(cmdline_names_path(
            b"dockerd\0--data-root=/d/loc/pool-1\0",
            "/d/loc/pool-1"
        ));
        assert!(cmdline_names_path(
            b"dockerd\0--pidfile\0/d/loc/pool-1/docker.pid",
            "/d/loc/pool-1/"
        ));
        assert!(!cmdline_names_path(
            b"x\0/d/loc/pool-1.bak/y",
            "/d/loc/pool-1"
        ));
        assert!(!cmdline_names_path(
            b"x\0/e/d/loc/pool-1/y",
            "/d/loc/pool-1"
        ));
    }

    #[test]
    fn a_script_printing_more_than_a_pipe_buffer_finishes_at_once() {
        // 1 MiB on stdout and 1 MiB on stderr: far more than a pipe holds.
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "head -c 1048576 /dev/zero | tr '\\0' x; head -c 1048576 /dev/zero >&2; echo; echo done-$0".to_string(),
        ];
        let t0 = Instant::now();
        let out = run_script(&argv, "h1", Duration::from_secs(60)).unwrap();
        assert!(out.ends_with("done-h1\n"), "{}", &out[out.len() - 20..]);
        assert_eq!(out.len(), 1048576 + 1 + 8);
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    }

    #[test]
    fn the_default_host_dir_is_beside_the_store() {
        let d = default_hosts_dir(Path::new("/var/lib/drover/drover.redb"));
        assert_eq!(d, Path::new("/var/lib/drover/drover-hosts"));
        assert!(default_hosts_dir(Path::new("drover.redb")).is_absolute());
    }

    #[test]
    fn subnets() {
        assert_eq!(parse_subnet16("10.213.0.0/16"), Some((10, 213)));
        assert_eq!(parse_subnet16("10.213.1.0/16"), None);
        assert_eq!(parse_subnet16("10.213.0.0/24"), None);
    }

    #[test]
    fn bridge_names_fit_linux_limits_and_differ() {
        let a = LocalEngine::at(Path::new("/tmp/x"), "pool-1");
        let b = LocalEngine::at(Path::new("/tmp/x"), "pool-2");
        assert!(a.bridge.len() <= 15);
        assert_ne!(a.bridge, b.bridge);
    }

    #[test]
    fn command_provisioner_reads_the_last_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("create.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho creating $1 >&2\necho log line\necho '{\"endpoint\": \"tcp://10.0.0.5:2376\", \"labels\": {\"zone\": \"a\"}}'\n",
        )
        .unwrap();
        let p = CommandProvisioner {
            create: vec!["sh".into(), script.display().to_string()],
            destroy: vec!["true".into()],
            timeout: Duration::from_secs(10),
        };
        let h = p.create("pool-3", 3).unwrap();
        assert_eq!(h.endpoint, "tcp://10.0.0.5:2376");
        assert_eq!(h.address, "10.0.0.5");
        assert_eq!(h.labels["zone"], "a");
        p.destroy("pool-3").unwrap();
        let bad = CommandProvisioner {
            create: vec!["sh".into(), "-c".into(), "echo nope".into()],
            ..p
        };
        assert!(bad
            .create("x", 1)
            .unwrap_err()
            .to_string()
            .contains("must be JSON"));
    }
}
