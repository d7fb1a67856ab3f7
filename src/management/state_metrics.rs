//! The gauges a scrape rebuilds from the read model (entities by state,
//! cluster sizes, load balancers, host containers, capacity and
//! reservations), and the background reads of host capacity.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::blueprint::Blueprint;
use crate::host::Capacity;
use crate::metrics;
use crate::protocol::{sensors as s, EntityKind, Lifecycle};
use crate::wire::EntityView;

use super::read_view::{HostFacts, ReadView, Reservations};
use super::Management;

/// How often host capacity (`docker info`) is read again. CPUs and memory of
/// an engine change only when a machine is resized; a minute is plenty.
const CAPACITY_REFRESH: Duration = Duration::from_secs(60);

impl Management {
    /// Reads a host's capacity (`docker info`) in the background, at most
    /// once per [`CAPACITY_REFRESH`].
    pub(super) fn refresh_capacity(&mut self, host_name: &str, ctx: &mut Context<Self>) {
        if self
            .capacity_read
            .get(host_name)
            .is_some_and(|t| t.elapsed() < CAPACITY_REFRESH)
        {
            return;
        }
        let Some(host) = self
            .locations
            .values()
            .find(|p| p.host_name == host_name)
            .map(|p| p.host.clone())
        else {
            return;
        };
        self.capacity_read
            .insert(host_name.to_string(), Instant::now());
        let name = host_name.to_string();
        ctx.spawn(
            async move { host.send(Capacity).await }
                .into_actor(self)
                .map(move |res, act, _| match res {
                    Ok(Ok(c)) => {
                        if let Some(facts) = act.view.hosts_mut().get_mut(&name) {
                            facts.capacity = Some(c);
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(host = %name, error = %e, "cannot read host capacity")
                    }
                    Err(_) => {}
                }),
        );
    }
}

/// One scrape at a time: a scrape resets the state gauges and sets them
/// again before it renders, and a second scrape in between would render
/// the first one's half-rebuilt gauges.
static SCRAPE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `GET /metrics`: rebuilds the state metrics from the shared read view and
/// renders every metric. It runs on the caller's thread, never in the
/// management actor: every actor shares one arbiter thread, so a scrape
/// that was a message waited behind the entities' sensor traffic, then
/// stalled every actor while it rendered (issue 18: 736 KiB at 100,000
/// containers on 1,000 hosts, p50 91 ms, p99 462 ms). Blocking: call it
/// from a blocking pool.
pub fn scrape(view: &ReadView) -> String {
    let _one = SCRAPE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    collect_state_metrics(view);
    metrics::render()
}

/// Sets every metric that describes the current state, from the read
/// view: nothing on the sensor path touches a metric. It walks
/// applications, services and hosts, never every entity: the model keeps
/// the counts (entities by state, reservations by host) as entities
/// change, so a scrape of 100,000 containers costs what one of 100 does,
/// but for its length.
fn collect_state_metrics(view: &ReadView) {
    // Copied out first, so that no lock is held while another is taken
    // (the management actor takes them one at a time too).
    let apps: HashMap<String, std::sync::Arc<Reservations>> = view
        .record()
        .apps
        .iter()
        .map(|(id, m)| (id.clone(), m.reservations.clone()))
        .collect();
    let hosts: Vec<(String, HostFacts)> = view
        .hosts()
        .iter()
        .map(|(h, f)| (h.clone(), f.clone()))
        .collect();
    let mut reserved: HashMap<String, (f64, i64)> = HashMap::new();
    {
        let model = view.model();
        metrics::APPLICATIONS.set(apps.len() as i64);
        let mut counts: HashMap<(EntityKind, Lifecycle), i64> = HashMap::new();
        let mut per_app: HashMap<(&str, EntityKind), HashMap<Lifecycle, i64>> = HashMap::new();
        for app in model.apps() {
            for (kind, state, n) in model.counts(app) {
                *counts.entry((kind, state)).or_default() += n;
                // A kind counts for the application while it has entities
                // of it (zeros of its other states included).
                if n > 0 {
                    per_app.entry((app, kind)).or_default().insert(state, n);
                }
            }
        }
        for kind in EntityKind::ALL {
            for state in Lifecycle::ALL {
                let n = counts.get(&(kind, state)).copied().unwrap_or(0);
                metrics::ENTITIES
                    .with_label_values(&[kind.as_str(), state.as_str()])
                    .set(n);
            }
        }
        // Reset, then set: series of destroyed entities disappear. The
        // scrape renders right after, under the same [`SCRAPE`] lock, so
        // it never sees the gap.
        metrics::reset_state_metrics();
        for ((app, kind), states) in &per_app {
            for state in Lifecycle::ALL {
                metrics::APPLICATION_ENTITIES
                    .with_label_values(&[app, kind.as_str(), state.as_str()])
                    .set(states.get(&state).copied().unwrap_or(0));
            }
        }
        for app in model.apps() {
            for view in model.services(app) {
                service_gauges(app, view);
            }
        }
        for (host, per_service) in model.reserving() {
            for ((app, service), n) in per_service {
                if let Some((cpus, mem)) = apps.get(app).and_then(|r| r.get(service)) {
                    let r = reserved.entry(host.clone()).or_default();
                    r.0 += cpus * *n as f64;
                    r.1 += mem * *n as i64;
                }
            }
        }
    }
    for (host, facts) in &hosts {
        let labels = [host.as_str()];
        metrics::HOST_CONTAINERS
            .with_label_values(&labels)
            .set(facts.containers as i64);
        if let Some(c) = &facts.capacity {
            metrics::HOST_CPUS.with_label_values(&labels).set(c.cpus);
            metrics::HOST_MEMORY
                .with_label_values(&labels)
                .set(c.memory_bytes);
        }
        let (cpus, mem) = reserved.get(host).copied().unwrap_or_default();
        metrics::HOST_RESERVED_CPUS
            .with_label_values(&labels)
            .set(cpus);
        metrics::HOST_RESERVED_MEMORY
            .with_label_values(&labels)
            .set(mem);
    }
}

/// The gauges of one cluster or load balancer, from its sensors.
fn service_gauges(app: &str, view: &EntityView) {
    let sensor = |n: &str| view.sensors.get(n).map(|v| &v.value);
    let int = |n: &str| sensor(n).and_then(|v| v.as_i64()).unwrap_or(0);
    let labels = [app, view.id.as_str()];
    match view.kind {
        EntityKind::Cluster => {
            metrics::CLUSTER_SIZE
                .with_label_values(&labels)
                .set(int(s::GROUP_SIZE));
            metrics::CLUSTER_DESIRED_SIZE
                .with_label_values(&labels)
                .set(int(s::GROUP_DESIRED_SIZE));
        }
        EntityKind::LoadBalancer => {
            use crate::lb::sensors as lb;
            let backends = sensor(lb::BACKENDS)
                .and_then(|b| b.as_array())
                .map_or(0, |b| b.len());
            metrics::LB_BACKENDS
                .with_label_values(&labels)
                .set(backends as i64);
            metrics::LB_ACTIVE
                .with_label_values(&labels)
                .set(int(lb::ACTIVE));
            // Counters that mirror a sensor: the series is rebuilt at
            // its current value (a load balancer that starts afresh
            // restarts at 0, which Prometheus reads as a reset).
            let counter = |v: &prometheus::IntCounterVec, n: &str| {
                v.with_label_values(&labels)
                    .inc_by(sensor(n).and_then(|x| x.as_u64()).unwrap_or(0))
            };
            counter(&metrics::LB_CONNECTIONS, lb::CONNECTIONS_TOTAL);
            counter(&metrics::LB_ERRORS, lb::ERRORS_TOTAL);
            counter(&metrics::LB_RETRIES, lb::RETRIES_TOTAL);
            // HTTP mode only: a tcp load balancer has no requests
            // to count, so it gets no series rather than zeros.
            if sensor(lb::REQUESTS_TOTAL).is_some() {
                counter(&metrics::LB_REQUESTS, lb::REQUESTS_TOTAL);
                if let Some(classes) = sensor(lb::RESPONSES).and_then(|r| r.as_object()) {
                    for (class, n) in classes {
                        metrics::LB_RESPONSES
                            .with_label_values(&[labels[0], labels[1], class.as_str()])
                            .inc_by(n.as_u64().unwrap_or(0));
                    }
                }
                for (q, name) in [("p50", lb::LATENCY_P50), ("p99", lb::LATENCY_P99)] {
                    if let Some(v) = sensor(name).and_then(|x| x.as_f64()) {
                        metrics::LB_LATENCY
                            .with_label_values(&[labels[0], labels[1], q])
                            .set(v);
                    }
                }
            }
            metrics::LB_REQUESTS_PER_SECOND
                .with_label_values(&labels)
                .set(
                    sensor(lb::REQS_PER_SEC)
                        .and_then(|x| x.as_f64())
                        .unwrap_or(0.0),
                );
        }
        _ => {}
    }
}

/// Resource limits of one container of each service of a blueprint.
pub(super) fn reservations(bp: &Blueprint) -> HashMap<String, (f64, i64)> {
    bp.services
        .iter()
        .filter_map(|svc| {
            let spec = match svc.kind {
                crate::blueprint::ServiceType::Container => svc.own_container(),
                crate::blueprint::ServiceType::Cluster => svc.member.clone()?,
                crate::blueprint::ServiceType::LoadBalancer => return None,
            };
            let r = &spec.resources;
            Some((
                svc.id.clone(),
                (r.cpus.unwrap_or(0.0), r.memory.map_or(0, |m| m.0 as i64)),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::{EntityRef, SensorValue};

    /// A scrape reads everything it reports from the shared view (no actor
    /// answers here): entities by state, reservations by host from the
    /// applications' limits, the locations' hosts.
    #[test]
    fn a_scrape_reads_the_shared_view_alone() {
        let view = ReadView::default();
        let bp = crate::blueprint::parse_blueprint(
            "s.yml",
            "name: scrape-shop\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      image: x\n      resources: { cpus: 0.5, memory: 64Mi }\n",
        )
        .expect("a blueprint");
        view.record_mut().apps.insert(
            "scrape-shop".into(),
            super::super::read_view::AppMeta {
                location: "local".into(),
                reservations: Arc::new(reservations(&bp)),
                blueprint: Arc::new(bp),
                created_ms: 1,
            },
        );
        {
            let mut m = view.model_mut();
            let root = EntityRef::new("scrape-shop", "scrape-shop");
            m.register(&root, EntityKind::Application, None);
            let web = EntityRef::new("scrape-shop", "web");
            m.register(&web, EntityKind::Cluster, Some(&root));
            for i in 1..=2 {
                let w = EntityRef::new("scrape-shop", format!("web-{i}"));
                m.register(&w, EntityKind::Container, Some(&web));
                m.set_sensor(&w, s::HOST_NAME, SensorValue::new("scrape-h1".into(), 1));
                m.set_state(&w, Lifecycle::Running);
            }
        }
        view.hosts_mut().insert(
            "scrape-h1".into(),
            HostFacts {
                containers: 2,
                capacity: Some(crate::host::HostCapacity {
                    cpus: 4,
                    memory_bytes: 1 << 30,
                }),
            },
        );
        let text = scrape(&view);
        for line in [
            r#"drover_application_entities{application="scrape-shop",kind="container",state="running"} 2"#,
            r#"drover_host_containers{host="scrape-h1"} 2"#,
            r#"drover_host_cpus{host="scrape-h1"} 4"#,
            r#"drover_host_reserved_cpus{host="scrape-h1"} 1"#,
            r#"drover_host_reserved_memory_bytes{host="scrape-h1"} 134217728"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // The application gone from the view: its series go with it.
        view.record_mut().apps.remove("scrape-shop");
        view.model_mut().forget_app("scrape-shop");
        let text = scrape(&view);
        assert!(!text.contains("scrape-shop"), "{text}");
        assert!(text.contains(r#"drover_host_reserved_cpus{host="scrape-h1"} 0"#));
    }
}
