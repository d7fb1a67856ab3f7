//! The `engine-stop` fault: a provisioned host's engine stops, as on a
//! crashed or rebooted machine, while drover's pool model still counts the
//! host as its own. Nothing is removed and the pool is not told: it must
//! notice the silent engine by itself (its pings), mark the host on fire and
//! move the containers, exactly as for a real failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a stopping engine may take before it is killed: dockerd stops
/// its containers first, each within its stop timeout (10 s by default).
const ENGINE_STOP_GRACE: Duration = Duration::from_secs(15);

/// Why an engine could not be stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineStopError {
    #[error("location `{location}` has no host `{host}`; its hosts: {known}")]
    NoHost {
        location: String,
        host: String,
        known: String,
    },
    #[error("host `{host}` of location `{location}` was not provisioned by drover (listed hosts are the operator's machines); engine-stop stops only engines drover made")]
    NotProvisioned { location: String, host: String },
    #[error(
        "host `{host}` of location `{location}` is {state}; engine-stop needs a running engine"
    )]
    NotRunning {
        location: String,
        host: String,
        state: String,
    },
    #[error("this location's provisioner cannot stop an engine without decommissioning it; engine-stop works with `local-dockerd` pools")]
    Unsupported,
    #[error("the engine of host `{host}` has no running dockerd (no pid in {pidfile}); it is stopped already")]
    NoProcess { host: String, pidfile: String },
    #[error("cannot signal dockerd pid {pid} of host `{host}`: {message}")]
    Signal {
        host: String,
        pid: u32,
        message: String,
    },
    #[error("the provisioner's stop did not finish: {0}")]
    Interrupted(String),
}

impl EngineStopError {
    /// The request cannot be done for this host (as opposed to a failure
    /// while doing it).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            EngineStopError::NotProvisioned { .. } | EngineStopError::Unsupported
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineStopError::NoHost { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            EngineStopError::NotRunning { .. } | EngineStopError::NoProcess { .. }
        )
    }
}

/// What stopping an engine did.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStopped {
    pub pid: u32,
    pub how: String,
}

/// Stops the dockerd whose pidfile is `pidfile` as `systemctl stop docker`
/// would (SIGTERM: it stops its containers and exits; SIGKILL after
/// [`ENGINE_STOP_GRACE`]) and leaves its files, bridge and pidfile alone:
/// the host is down, not decommissioned. Blocking. (The `local-dockerd`
/// provisioner's engines; see `provision::LocalEngine`.)
pub fn halt(pidfile: &Path, host: &str) -> Result<EngineStopped, EngineStopError> {
    let pid = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|p| *p > 0 && alive(*p))
        .ok_or_else(|| EngineStopError::NoProcess {
            host: host.to_string(),
            pidfile: pidfile.display().to_string(),
        })?;
    signal(pid, "-TERM").map_err(|message| EngineStopError::Signal {
        host: host.to_string(),
        pid,
        message,
    })?;
    let t0 = Instant::now();
    while alive(pid) && t0.elapsed() < ENGINE_STOP_GRACE {
        std::thread::sleep(Duration::from_millis(50));
    }
    let how = if alive(pid) {
        let _ = signal(pid, "-KILL");
        format!(
            "SIGTERM to dockerd pid {pid} of host {host} on this machine (local-dockerd provisioner), SIGKILL after {}s",
            ENGINE_STOP_GRACE.as_secs()
        )
    } else {
        format!(
            "SIGTERM to dockerd pid {pid} of host {host} on this machine (local-dockerd provisioner); the engine exited in {:.1}s",
            t0.elapsed().as_secs_f64()
        )
    };
    Ok(EngineStopped { pid, how })
}

/// Whether the process lives (a zombie counts as gone: it only waits to
/// be reaped by the thread that started it).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(&stat)
}

/// Whether a `/proc/PID/stat` line is a zombie's: the state follows the
/// command name, which is in parentheses and may itself hold spaces.
fn is_zombie(stat: &str) -> bool {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("Z")
}

fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let out = Command::new("kill")
        .args([sig, &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zombies_are_read_from_the_state_after_the_name() {
        assert!(is_zombie("1234 (dockerd) Z 1 1234 1234 0 -1"));
        assert!(!is_zombie("1234 (dockerd) S 1 1234 1234 0 -1"));
        // A name with spaces and parentheses does not fool it.
        assert!(is_zombie("9 (a) b) Z 1"));
        assert!(!is_zombie("9 (Z Z) S 1"));
        assert!(!is_zombie(""));
    }

    #[test]
    fn a_missing_pidfile_is_a_stopped_engine() {
        let dir = std::env::temp_dir().join(format!("drover-halt-{}", std::process::id()));
        let e = halt(&dir.join("docker.pid"), "h1").unwrap_err();
        assert!(e.is_conflict(), "{e}");
        assert!(e.to_string().contains("no running dockerd"), "{e}");
    }

    #[test]
    fn error_classes() {
        assert!(EngineStopError::Unsupported.is_refusal());
        let e = EngineStopError::NoHost {
            location: "l".into(),
            host: "h".into(),
            known: "a, b".into(),
        };
        assert!(e.is_not_found() && !e.is_refusal());
        assert_eq!(
            e.to_string(),
            "location `l` has no host `h`; its hosts: a, b"
        );
    }
}
