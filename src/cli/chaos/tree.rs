//! What `drover chaos` reads in the application tree: the members it may
//! fault, the load balancers it probes through, and whether the application
//! is back at full health after a fault. Pure, over [`EntityView`]s.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::cli::CliError;
use crate::protocol::{EntityKind, Lifecycle};
use crate::wire::{EntityView, PoolHostView};
fn sensor_value<'a>(e: &'a EntityView, name: &str) -> Option<&'a serde_json::Value> {
    e.sensor(name).filter(|v| !v.is_null())
}

/// A number sensor that may also be published as a numeric string.
fn sensor_u64(e: &EntityView, name: &str) -> Option<u64> {
    let v = sensor_value(e, name)?;
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        })
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn find<'a>(app: &'a [EntityView], id: &str) -> Option<&'a EntityView> {
    app.iter().find(|e| e.id == id)
}

fn ids_of_type(app: &[EntityView], kind: EntityKind) -> Vec<String> {
    let mut ids: Vec<String> = app
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    ids
}

/// The members of the clusters: `(member id, cluster id, state)`.
fn members(app: &[EntityView]) -> Vec<(String, String, Lifecycle)> {
    let clusters = ids_of_type(app, EntityKind::Cluster);
    let mut out: Vec<(String, String, Lifecycle)> = app
        .iter()
        .filter(|e| e.kind == EntityKind::Container)
        .filter_map(|e| {
            let parent = e.parent.as_deref()?;
            clusters
                .iter()
                .any(|c| c == parent)
                .then(|| (e.id.clone(), parent.to_string(), e.state))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// Whether the application is at full health: every entity `running` and
/// every cluster's `group.size` equal to its `group.desired_size`. The error
/// says what is still wrong.
pub fn full_health(app: &[EntityView]) -> Result<(), String> {
    if app.is_empty() {
        return Err("the application has no entities".to_string());
    }
    let mut problems = Vec::new();
    let not_running: Vec<String> = app
        .iter()
        .filter(|e| e.state != Lifecycle::Running)
        .map(|e| format!("{} is {}", e.id, e.state.as_str()))
        .collect();
    if !not_running.is_empty() {
        problems.push(summarise(&not_running, 5));
    }
    for c in app.iter().filter(|e| e.kind == EntityKind::Cluster) {
        let id = &c.id;
        match (
            sensor_u64(c, "group.size"),
            sensor_u64(c, "group.desired_size"),
        ) {
            (Some(size), Some(desired)) if size == desired => {}
            (Some(size), Some(desired)) => {
                problems.push(format!("cluster {id} has {size} of {desired} members"))
            }
            _ => problems.push(format!(
                "cluster {id} reports no group.size and group.desired_size"
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

pub(super) fn summarise(items: &[String], at_most: usize) -> String {
    if items.len() <= at_most {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..at_most].join(", "),
            items.len() - at_most
        )
    }
}

/// Whether the victim is back: gone from the tree (replaced), or its
/// `service.up` is `true` with a timestamp after the fault (restarted).
/// With `off_host` (an engine-stop of that host) it must also run
/// elsewhere: a stopping engine keeps its containers serving for up to
/// their stop timeout, so a health check passing after the fault says
/// nothing until the pool has noticed the engine is gone and moved it.
pub(super) fn victim_back(
    app: &[EntityView],
    victim: &str,
    injected_ms: u64,
    off_host: Option<&str>,
) -> bool {
    let Some(e) = find(app, victim) else {
        return true;
    };
    let Some(up) = e.sensors.get("service.up") else {
        return false;
    };
    let moved = match off_host {
        None => true,
        Some(stopped) => e
            .sensors
            .get("host.name")
            .and_then(|h| h.value.as_str())
            .is_some_and(|h| h != stopped),
    };
    moved && *up.value == serde_json::Value::Bool(true) && up.timestamp_ms > injected_ms
}

/// Whether a fault injected into `victim` at `injected_ms` (ms since the
/// epoch, the service's clock) has recovered in this application state: the
/// application is at [`full_health`] and the victim either no longer exists
/// (it was replaced) or reports `service.up` true since after the fault.
pub fn recovered(app: &[EntityView], victim: &str, injected_ms: u64) -> bool {
    full_health(app).is_ok() && victim_back(app, victim, injected_ms, None)
}

/// What to fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    All,
    Cluster(String),
    Member(String),
}

impl Target {
    fn covers(&self, member: &str, cluster: &str) -> bool {
        match self {
            Target::All => true,
            Target::Cluster(c) => c == cluster,
            Target::Member(m) => m == member,
        }
    }
}

pub(super) fn resolve_target(
    app: &[EntityView],
    app_id: &str,
    target: Option<&str>,
) -> Result<Target, CliError> {
    let clusters = ids_of_type(app, EntityKind::Cluster);
    let members = members(app);
    let target = match target.map(str::trim).filter(|t| !t.is_empty()) {
        None => Target::All,
        Some(t) if clusters.iter().any(|c| c == t) => Target::Cluster(t.to_string()),
        Some(t) if members.iter().any(|(m, _, _)| m == t) => Target::Member(t.to_string()),
        Some(t) => {
            let known = if clusters.is_empty() {
                "it has no cluster".to_string()
            } else {
                format!("its clusters are {}", clusters.join(", "))
            };
            return Err(CliError::Invalid(format!(
                "chaos target `{t}` is neither a cluster nor a cluster member of application `{app_id}`; {known}"
            )));
        }
    };
    if !members.iter().any(|(m, c, _)| target.covers(m, c)) {
        let why = match &target {
            Target::Cluster(c) => format!("cluster `{c}` of application `{app_id}` has no members to fault"),
            _ => format!("application `{app_id}` has no cluster members to fault: chaos faults the containers of `type: cluster` services"),
        };
        return Err(CliError::Invalid(why));
    }
    Ok(target)
}

/// The running members the target covers.
pub(super) fn candidates(app: &[EntityView], target: &Target) -> Vec<String> {
    members(app)
        .into_iter()
        .filter(|(m, c, state)| *state == Lifecycle::Running && target.covers(m, c))
        .map(|(m, _, _)| m)
        .collect()
}

/// The pool hosts an `engine-stop` may strike: provisioned by drover,
/// running, and running at least one running member the target covers.
/// Each comes with every cluster member placed on it (whatever its state):
/// all of them must be back before the fault counts as recovered. Sorted
/// by host name.
pub(super) fn host_candidates(
    app: &[EntityView],
    hosts: &[PoolHostView],
    target: &Target,
) -> Vec<(String, Vec<String>)> {
    let placed = |host: &str| -> Vec<(String, String, Lifecycle)> {
        members(app)
            .into_iter()
            .filter(|(m, _, _)| find(app, m).and_then(|e| e.sensor_str("host.name")) == Some(host))
            .collect()
    };
    let mut out: Vec<(String, Vec<String>)> = hosts
        .iter()
        .filter(|h| h.provisioned && h.state == "running")
        .filter_map(|h| {
            let on = placed(&h.name);
            let struck = on
                .iter()
                .any(|(m, c, state)| *state == Lifecycle::Running && target.covers(m, c));
            struck.then(|| (h.name.clone(), on.into_iter().map(|(m, _, _)| m).collect()))
        })
        .collect();
    out.sort();
    out
}

/// The addresses of the application's load balancers: `(id, address)`.
pub(super) fn load_balancers(
    app: &[EntityView],
    app_id: &str,
) -> Result<Vec<(String, SocketAddr)>, CliError> {
    let lbs: Vec<&EntityView> = app
        .iter()
        .filter(|e| e.kind == EntityKind::LoadBalancer)
        .collect();
    if lbs.is_empty() {
        return Err(CliError::Invalid(format!(
            "application `{app_id}` has no load balancer: chaos probes through the application's load balancer; add a `type: load-balancer` service"
        )));
    }
    let mut out = Vec::new();
    for lb in lbs {
        let id = lb.id.as_str();
        let address = sensor_value(lb, "lb.address").and_then(|v| v.as_str());
        let port = sensor_u64(lb, "lb.port")
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let (Some(address), Some(port)) = (address, port) else {
            return Err(CliError::Failed(format!(
                "load balancer `{id}` of application `{app_id}` publishes no lb.address and lb.port (it is {}); wait until it is running",
                lb.state.as_str()
            )));
        };
        let addr = (address, port)
            .to_socket_addrs()
            .map_err(|e| {
                CliError::Failed(format!(
                    "cannot resolve load balancer `{id}` at {address}:{port}: {e}"
                ))
            })?
            .next()
            .ok_or_else(|| {
                CliError::Failed(format!(
                    "load balancer `{id}` address {address}:{port} resolves to nothing"
                ))
            })?;
        out.push((id.to_string(), addr));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn entity(id: &str, kind: &str, state: &str, parent: Option<&str>, sensors: Value) -> Value {
        json!({ "id": id, "type": kind, "state": state, "parent": parent, "children": [], "sensors": sensors })
    }

    fn up(value: bool, ts: u64) -> Value {
        json!({ "service.up": { "value": value, "timestamp_ms": ts } })
    }

    fn app_with(web1: Option<Value>, size: u64, desired: u64) -> Vec<EntityView> {
        let mut entities = vec![
            entity("demo", "application", "running", None, json!({})),
            entity(
                "web",
                "cluster",
                "running",
                Some("demo"),
                json!({ "group.size": { "value": size, "timestamp_ms": 1 }, "group.desired_size": { "value": desired, "timestamp_ms": 1 } }),
            ),
            entity("web-2", "container", "running", Some("web"), up(true, 100)),
            entity(
                "lb",
                "load-balancer",
                "running",
                Some("demo"),
                json!({ "lb.address": { "value": "127.0.0.1", "timestamp_ms": 1 }, "lb.port": { "value": 8080, "timestamp_ms": 1 } }),
            ),
        ];
        if let Some(w) = web1 {
            entities.push(w);
        }
        serde_json::from_value(json!(entities)).expect("entity views")
    }

    #[test]
    fn full_health_says_what_is_wrong() {
        assert_eq!(
            full_health(&app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    up(true, 5)
                )),
                2,
                2
            )),
            Ok(())
        );
        let e = full_health(&app_with(
            Some(entity(
                "web-1",
                "container",
                "on-fire",
                Some("web"),
                up(false, 5),
            )),
            2,
            2,
        ))
        .unwrap_err();
        assert!(e.contains("web-1 is on-fire"), "{e}");
        let e = full_health(&app_with(None, 1, 2)).unwrap_err();
        assert!(e.contains("cluster web has 1 of 2 members"), "{e}");
        let mut no_sizes = app_with(None, 1, 1);
        no_sizes[1].sensors.clear();
        assert!(full_health(&no_sizes).unwrap_err().contains("group.size"));
        assert!(full_health(&[]).is_err());
    }

    #[test]
    fn a_member_of_a_stopped_engine_is_back_only_on_another_host() {
        let on = |host: &str| {
            let app = app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    json!({
                        "service.up": { "value": true, "timestamp_ms": 1_500 },
                        "host.name": { "value": host, "timestamp_ms": 1_500 },
                    }),
                )),
                2,
                2,
            );
            (
                victim_back(&app, "web-1", 1_000, Some("pool-1")),
                victim_back(&app, "web-1", 1_000, None),
            )
        };
        // Still passing its checks on the stopping engine: not recovered
        // from an engine-stop, though it would count after a container fault.
        assert_eq!(on("pool-1"), (false, true));
        assert_eq!(on("pool-2"), (true, true));
        // Replaced (gone from the tree) counts as back either way.
        assert!(victim_back(
            &app_with(None, 1, 1),
            "web-1",
            1_000,
            Some("pool-1")
        ));
    }

    #[test]
    fn recovery_predicate() {
        let injected = 1_000;
        // Replaced: the victim is gone and the cluster is back at size.
        assert!(recovered(&app_with(None, 1, 1), "web-1", injected));
        // Gone but the cluster is short: not yet.
        assert!(!recovered(&app_with(None, 1, 2), "web-1", injected));
        // Restarted in place: service.up true since after the fault.
        assert!(recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    up(true, 1_500)
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
        // Still up from before the fault: the fault has not even been seen.
        assert!(!recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    up(true, 900)
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
        assert!(!recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    up(true, 1_000)
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
        // Down since after the fault.
        assert!(!recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    up(false, 1_500)
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
        // Up again, but not running yet.
        assert!(!recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "starting",
                    Some("web"),
                    up(true, 1_500)
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
        // No service.up at all.
        assert!(!recovered(
            &app_with(
                Some(entity(
                    "web-1",
                    "container",
                    "running",
                    Some("web"),
                    json!({})
                )),
                2,
                2
            ),
            "web-1",
            injected
        ));
    }

    #[test]
    fn engine_stop_strikes_provisioned_running_hosts_with_members() {
        let on = |host: &str, ts: u64| {
            let mut s = up(true, ts);
            s["host.name"] = json!({ "value": host, "timestamp_ms": 1 });
            s
        };
        let mut app = app_with(None, 3, 3);
        app.retain(|e| e.id != "web-2");
        for (id, state, host) in [
            ("web-1", "running", "h1"),
            ("web-2", "starting", "h1"),
            ("web-3", "running", "h2"),
            ("web-4", "starting", "h3"),
            ("web-5", "running", "local"),
        ] {
            app.push(
                serde_json::from_value(entity(id, "container", state, Some("web"), on(host, 5)))
                    .unwrap(),
            );
        }
        let host = |name: &str, state: &str, provisioned: bool| json!({ "name": name, "address": "127.0.0.1", "state": state, "provisioned": provisioned, "sensors": {} });
        let pool: Vec<PoolHostView> = serde_json::from_value(json!([
            host("h2", "running", true),
            host("h1", "running", true),
            host("h3", "running", true),
            host("local", "running", false),
            host("h4", "on-fire", true),
        ]))
        .unwrap();
        // h3 runs no running member; `local` is the operator's; h4 is down.
        assert_eq!(
            host_candidates(&app, &pool, &Target::All),
            vec![
                (
                    "h1".to_string(),
                    vec!["web-1".to_string(), "web-2".to_string()]
                ),
                ("h2".to_string(), vec!["web-3".to_string()]),
            ]
        );
        assert_eq!(
            host_candidates(&app, &pool, &Target::Member("web-3".into())),
            vec![("h2".to_string(), vec!["web-3".to_string()])]
        );
    }

    #[test]
    fn targets_and_candidates() {
        let mut app = app_with(
            Some(entity(
                "web-1",
                "container",
                "starting",
                Some("web"),
                up(false, 5),
            )),
            2,
            2,
        );
        app.push(
            serde_json::from_value(entity(
                "db",
                "container",
                "running",
                Some("demo"),
                json!({}),
            ))
            .unwrap(),
        );
        assert_eq!(candidates(&app, &Target::All), vec!["web-2".to_string()]);
        assert_eq!(
            resolve_target(&app, "demo", Some("web")).unwrap(),
            Target::Cluster("web".into())
        );
        assert_eq!(
            resolve_target(&app, "demo", Some("web-1")).unwrap(),
            Target::Member("web-1".into())
        );
        assert_eq!(
            candidates(&app, &Target::Member("web-1".into())),
            Vec::<String>::new()
        );
        // A container outside any cluster is no target.
        let e = resolve_target(&app, "demo", Some("db"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`db`") && e.contains("its clusters are web"),
            "{e}"
        );
        let lbs = load_balancers(&app, "demo").unwrap();
        assert_eq!(
            lbs,
            vec![("lb".to_string(), "127.0.0.1:8080".parse().unwrap())]
        );
        let no_lb: Vec<EntityView> = serde_json::from_value(json!([entity(
            "web",
            "cluster",
            "running",
            None,
            json!({})
        )]))
        .unwrap();
        let e = load_balancers(&no_lb, "demo").unwrap_err().to_string();
        assert!(e.contains("add a `type: load-balancer` service"), "{e}");
        let e = resolve_target(&no_lb, "demo", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no cluster members"), "{e}");
    }
}
