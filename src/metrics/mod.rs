//! The Prometheus metric catalogue.
//!
//! Names are `drover_*` in base units. Labels are bounded: application,
//! entity, kind, state, effector, outcome; never a container id. Gauges that
//! describe entities are rebuilt from the management actor's read model at
//! every scrape, so the series of a destroyed entity disappear with it.
//! [`CATALOGUE`] lists every metric; a test checks it against the registry
//! and the README so the three cannot drift.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec_with_registry, register_histogram_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_vec_with_registry, register_int_gauge_with_registry, Encoder, Histogram,
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Buckets for operations on a local engine: tens of milliseconds to a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// (name, type, labels, help): the catalogue, in the README's order.
pub const CATALOGUE: &[(&str, &str, &str, &str)] = &[
    (
        "drover_applications",
        "gauge",
        "",
        "Applications under management.",
    ),
    (
        "drover_entities",
        "gauge",
        "kind, state",
        "Entities by kind (application, cluster, container, load-balancer) and lifecycle state.",
    ),
    (
        "drover_cluster_size",
        "gauge",
        "application, entity",
        "Current members of a cluster.",
    ),
    (
        "drover_cluster_desired_size",
        "gauge",
        "application, entity",
        "Desired members of a cluster.",
    ),
    (
        "drover_containers_started_total",
        "counter",
        "",
        "Containers created and started by drover.",
    ),
    (
        "drover_containers_failed_total",
        "counter",
        "",
        "Container creations or starts that failed.",
    ),
    (
        "drover_container_start_seconds",
        "histogram",
        "",
        "Time to create and start a container on the engine (until the engine reports it running).",
    ),
    (
        "drover_effector_duration_seconds",
        "histogram",
        "effector, outcome",
        "Duration of effector calls, by effector and outcome (ok, error).",
    ),
    (
        "drover_engine_events_total",
        "counter",
        "",
        "Engine events about managed containers received from the event streams.",
    ),
    (
        "drover_chaos_faults_total",
        "counter",
        "fault",
        "Faults injected by `drover chaos`, by fault (kill, stop, pause).",
    ),
];

pub static APPLICATIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge_with_registry!("drover_applications", CATALOGUE[0].3, REGISTRY)
        .expect("metric registers once")
});
pub static ENTITIES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec_with_registry!(
        "drover_entities",
        CATALOGUE[1].3,
        &["kind", "state"],
        REGISTRY
    )
    .expect("metric registers once")
});
pub static CLUSTER_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec_with_registry!(
        "drover_cluster_size",
        CATALOGUE[2].3,
        &["application", "entity"],
        REGISTRY
    )
    .expect("metric registers once")
});
pub static CLUSTER_DESIRED_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec_with_registry!(
        "drover_cluster_desired_size",
        CATALOGUE[3].3,
        &["application", "entity"],
        REGISTRY
    )
    .expect("metric registers once")
});
pub static CONTAINERS_STARTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter_with_registry!("drover_containers_started_total", CATALOGUE[4].3, REGISTRY)
        .expect("metric registers once")
});
pub static CONTAINERS_FAILED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter_with_registry!("drover_containers_failed_total", CATALOGUE[5].3, REGISTRY)
        .expect("metric registers once")
});
pub static CONTAINER_START_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram_with_registry!(
        "drover_container_start_seconds",
        CATALOGUE[6].3,
        DURATION_BUCKETS.to_vec(),
        REGISTRY
    )
    .expect("metric registers once")
});
pub static EFFECTOR_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec_with_registry!(
        "drover_effector_duration_seconds",
        CATALOGUE[7].3,
        &["effector", "outcome"],
        DURATION_BUCKETS.to_vec(),
        REGISTRY
    )
    .expect("metric registers once")
});
pub static ENGINE_EVENTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter_with_registry!("drover_engine_events_total", CATALOGUE[8].3, REGISTRY)
        .expect("metric registers once")
});

pub static CHAOS_FAULTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "drover_chaos_faults_total",
        CATALOGUE[9].3,
        &["fault"],
        REGISTRY
    )
    .expect("metric registers once")
});

/// Registers every metric, so a scrape shows them all from the start.
pub fn init() {
    LazyLock::force(&APPLICATIONS);
    LazyLock::force(&ENTITIES);
    LazyLock::force(&CLUSTER_SIZE);
    LazyLock::force(&CLUSTER_DESIRED_SIZE);
    LazyLock::force(&CONTAINERS_STARTED);
    LazyLock::force(&CONTAINERS_FAILED);
    LazyLock::force(&CONTAINER_START_SECONDS);
    LazyLock::force(&EFFECTOR_DURATION);
    LazyLock::force(&ENGINE_EVENTS);
    LazyLock::force(&CHAOS_FAULTS);
}

/// The text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    let families = REGISTRY.gather();
    // Encoding into a Vec cannot fail for well-formed families.
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_registry() {
        init();
        // Vec metrics appear once they have a series; give each one.
        ENTITIES.with_label_values(&["container", "running"]).set(0);
        CLUSTER_SIZE.with_label_values(&["a", "b"]).set(0);
        CLUSTER_DESIRED_SIZE.with_label_values(&["a", "b"]).set(0);
        EFFECTOR_DURATION
            .with_label_values(&["start", "ok"])
            .observe(0.0);
        CHAOS_FAULTS.with_label_values(&["kill"]).inc_by(0);
        let names: Vec<String> = REGISTRY
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for (name, ..) in CATALOGUE {
            assert!(
                names.contains(&name.to_string()),
                "{name} is in the catalogue but not registered"
            );
        }
        for n in &names {
            assert!(
                CATALOGUE.iter().any(|(c, ..)| c == n),
                "{n} is registered but not in the catalogue"
            );
            assert!(n.starts_with("drover_"));
        }
    }

    #[test]
    fn readme_lists_every_metric() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md exists");
        for (name, kind, labels, help) in CATALOGUE {
            let row = format!("| `{name}` | {kind} | {labels} | {help} |");
            assert!(
                readme.contains(&row),
                "README's metric table lacks or differs for {name}; expected the row:\n{row}"
            );
        }
    }
}
