//! What a container's create says beyond image, env and resources: its published ports (fixed or
//! free host ports), the healthcheck the engine runs, how it is stopped, and its secrets.
//!
//! Secrets are files on the engine's machine, named in `drover.yaml`; they are bind-mounted
//! read-only and never read by drover, so their content can reach neither the store nor a log.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use bollard::models::{ContainerCreateBody, HealthConfig, Mount, MountType, PortBinding};

use super::HostError;
use crate::blueprint::stop::stop_timeout_secs;
use crate::blueprint::{ContainerSpec, HealthCheck, PortSpec, SecretRef};

/// Secret name → its file, from `drover.yaml` (set once at start).
pub static SECRET_FILES: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();

/// The exposed ports and their bindings: a fixed host port where the spec
/// names one, else an empty one (the engine picks a free port).
pub fn port_bindings(
    ports: &[PortSpec],
) -> (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>) {
    let exposed = ports
        .iter()
        .map(|p| format!("{}/tcp", p.container))
        .collect();
    let bindings = ports
        .iter()
        .map(|p| {
            let b = PortBinding {
                host_ip: Some("0.0.0.0".into()),
                host_port: Some(p.host.map(|h| h.to_string()).unwrap_or_default()),
            };
            (format!("{}/tcp", p.container), Some(vec![b]))
        })
        .collect();
    (exposed, bindings)
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The Docker healthcheck of a check the engine runs (`exec`, `test`);
/// `None` for drover's own probes.
pub fn healthcheck(h: &HealthCheck) -> Option<HealthConfig> {
    Some(HealthConfig {
        test: Some(h.engine_test()?),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(i64::from(h.unhealthy_threshold.max(1))),
        start_period: h.start_period.map(nanos),
        // Engine API 1.44+; the engines here speak 1.41.
        start_interval: None,
    })
}

/// The read-only bind mounts of a container's secrets.
pub fn secret_mounts(
    secrets: &[SecretRef],
    files: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, HostError> {
    secrets
        .iter()
        .map(|s| {
            let file = files.get(&s.name).ok_or_else(|| HostError::UnknownSecret {
                name: s.name.clone(),
            })?;
            Ok(Mount {
                target: Some(s.path()),
                source: Some(file.display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(true),
                ..Default::default()
            })
        })
        .collect()
}

/// Adds the healthcheck, the stop signal and grace, and the secrets' mounts.
pub fn apply(spec: &ContainerSpec, body: &mut ContainerCreateBody) -> Result<(), HostError> {
    if let Some(h) = spec.health.as_ref().and_then(healthcheck) {
        body.healthcheck = Some(h);
    }
    body.stop_signal = spec.stop_signal.clone();
    body.hostname = spec.hostname.clone();
    // Always set: drover's stop and restart use the container's own timeout.
    body.stop_timeout = Some(stop_timeout_secs(spec.stop_grace_period));
    if !spec.secrets.is_empty() {
        let empty = BTreeMap::new();
        let files = SECRET_FILES.get().unwrap_or(&empty);
        let mounts = secret_mounts(&spec.secrets, files)?;
        body.host_config
            .get_or_insert_with(Default::default)
            .mounts
            .get_or_insert_with(Vec::new)
            .extend(mounts);
    }
    Ok(())
}

/// The fixed host port an "address in use" refusal names, if it is one of
/// the spec's: retrying cannot help then (a free-port clash can: the engine
/// picks another port next time). dockerd 20.10 words it `listen tcp4
/// 0.0.0.0:8000: bind: address already in use` (another process) or `Bind
/// for 0.0.0.0:8000 failed: port is already allocated` (another container).
pub fn fixed_port_clash(message: &str, ports: &[PortSpec]) -> Option<u16> {
    let fixed: Vec<u16> = ports.iter().filter_map(|p| p.host).collect();
    let named = message
        .split(|c: char| !c.is_ascii_digit() && c != ':' && c != '.')
        .filter_map(|w| w.trim_end_matches(':').rsplit_once(':'))
        .filter_map(|(_, port)| port.parse::<u16>().ok())
        .find(|p| fixed.contains(p));
    named.or_else(|| (fixed.len() == 1 && ports.len() == 1).then(|| fixed[0]))
}

/// The action of an engine event as drover routes it: `exec_start: ls`
/// becomes `exec_start` (the command is nobody's business), while
/// `health_status: unhealthy` keeps its verdict.
pub fn event_action(action: &str) -> String {
    let action = action.trim();
    if action.starts_with("health_status:") {
        return action.to_string();
    }
    action
        .split(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The engine's health verdict in a container list's `Status` (`Up 5
/// seconds (healthy)`, `(unhealthy)`, `(health: starting)`); `None` when
/// the container has no healthcheck.
pub fn health_in_status(status: &str) -> Option<&'static str> {
    if status.contains("(healthy)") {
        Some("healthy")
    } else if status.contains("(unhealthy)") {
        Some("unhealthy")
    } else if status.contains("(health: starting)") {
        Some("starting")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ContainerSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn fixed_and_free_host_ports() {
        let s = spec("{ image: x, ports: [8080, '8000:80', { container: 81, host: 8001 }] }");
        let (exposed, bindings) = port_bindings(&s.ports);
        assert_eq!(exposed, ["8080/tcp", "80/tcp", "81/tcp"]);
        let host = |k: &str| bindings[k].as_ref().unwrap()[0].host_port.clone().unwrap();
        assert_eq!(host("8080/tcp"), "");
        assert_eq!(host("80/tcp"), "8000");
        assert_eq!(host("81/tcp"), "8001");
    }

    #[test]
    fn engine_checks_become_the_containers_healthcheck() {
        let s = spec(
            "{ image: x, health: { exec: [pg_isready, -U, app], interval: 2s, timeout: 500ms, \
             retries: 5, start_period: 30s }, stop_signal: SIGINT, stop_grace_period: 30s }",
        );
        let mut body = ContainerCreateBody::default();
        apply(&s, &mut body).unwrap();
        let h = body.healthcheck.unwrap();
        assert_eq!(
            h.test.unwrap(),
            ["CMD", "pg_isready", "-U", "app"].map(String::from)
        );
        assert_eq!(h.interval, Some(2_000_000_000));
        assert_eq!(h.timeout, Some(500_000_000));
        assert_eq!(h.retries, Some(5));
        assert_eq!(h.start_period, Some(30_000_000_000));
        assert_eq!(body.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(body.stop_timeout, Some(30));

        // drover's own probes set no engine healthcheck; the grace defaults to 3s.
        let mut plain = ContainerCreateBody::default();
        apply(
            &spec("{ image: x, ports: [80], health: { tcp: { port: 80 } } }"),
            &mut plain,
        )
        .unwrap();
        assert!(plain.healthcheck.is_none());
        assert_eq!(plain.stop_signal, None);
        assert_eq!(plain.stop_timeout, Some(3));
    }

    #[test]
    fn compose_shell_test() {
        let h: HealthCheck = serde_yaml::from_str("{ test: 'pg_isready -U app' }").unwrap();
        assert_eq!(
            healthcheck(&h).unwrap().test.unwrap(),
            ["CMD-SHELL", "pg_isready -U app"].map(String::from)
        );
    }

    #[test]
    fn secrets_are_read_only_binds_of_the_configured_files() {
        let files = BTreeMap::from([("db".to_string(), PathBuf::from("/etc/drover/db"))]);
        let list: Vec<SecretRef> =
            serde_yaml::from_str("[db, { name: db, target: /etc/pw }]").unwrap();
        let m = secret_mounts(&list, &files).unwrap();
        assert_eq!(m[0].target.as_deref(), Some("/run/secrets/db"));
        assert_eq!(m[0].source.as_deref(), Some("/etc/drover/db"));
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[1].target.as_deref(), Some("/etc/pw"));
        let unknown: Vec<SecretRef> = serde_yaml::from_str("[nope]").unwrap();
        assert_eq!(
            secret_mounts(&unknown, &files).unwrap_err().to_string(),
            "secret `nope` is not in drover.yaml's `secrets`; add `nope: { file: /path }` there \
             and restart drover"
        );
    }

    #[test]
    fn event_actions_and_listed_health() {
        assert_eq!(
            event_action("exec_start: /workload --check x"),
            "exec_start"
        );
        assert_eq!(
            event_action("health_status: unhealthy"),
            "health_status: unhealthy"
        );
        assert_eq!(event_action("die"), "die");
        assert_eq!(health_in_status("Up 3 seconds (healthy)"), Some("healthy"));
        assert_eq!(
            health_in_status("Up 3 seconds (unhealthy)"),
            Some("unhealthy")
        );
        assert_eq!(
            health_in_status("Up 1 second (health: starting)"),
            Some("starting")
        );
        assert_eq!(health_in_status("Up 3 seconds"), None);
        assert_eq!(health_in_status("Exited (1) 2 seconds ago"), None);
    }

    #[test]
    fn a_clash_names_the_fixed_port() {
        let ports: Vec<PortSpec> = serde_yaml::from_str("[8080, '18000:80']").unwrap();
        let proc_msg = "driver failed programming external connectivity on endpoint x (abc): \
                        Error starting userland proxy: listen tcp4 0.0.0.0:18000: bind: address \
                        already in use";
        let docker_msg = "driver failed programming external connectivity on endpoint x (abc): \
                          Bind for 0.0.0.0:18000 failed: port is already allocated";
        assert_eq!(fixed_port_clash(proc_msg, &ports), Some(18000));
        assert_eq!(fixed_port_clash(docker_msg, &ports), Some(18000));
        // A free port's clash is retried, not reported.
        let other = "listen tcp4 0.0.0.0:32768: bind: address already in use";
        assert_eq!(fixed_port_clash(other, &ports), None);
        let free: Vec<PortSpec> = serde_yaml::from_str("[8080]").unwrap();
        assert_eq!(fixed_port_clash(proc_msg, &free), None);
    }
}
