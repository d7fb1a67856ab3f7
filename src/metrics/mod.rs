//! The Prometheus metric catalogue.
//!
//! Names are `drover_*` in base units (`_seconds`, `_bytes`, `_total` for
//! counters). [`CATALOGUE`] lists every metric with its type, labels and
//! help; the registered metrics take their help and label names from it,
//! and tests check it against the registry and against the README's table,
//! so the three cannot drift.
//!
//! # Bounded labels
//!
//! Label values come from a small, known set: `application` and `entity`
//! (a *service* of a blueprint: a cluster, a container or a load balancer,
//! never a cluster member: members are numbered without bound as they are
//! replaced, so a member's failure counts under its cluster), `host`,
//! `kind`, `state`, `effector`, `outcome`, `policy`, `action`, `fault`,
//! `reason` (of a refused API request: six fixed values), `class` (an HTTP
//! status class: `1xx` to `5xx`), `percentile` (`p50`, `p99`; not
//! `quantile`, which Prometheus keeps for summaries).
//! Never a container id.
//!
//! # Where the numbers come from
//!
//! Metrics that describe the *current* state (entity states, cluster sizes,
//! load-balancer traffic, host capacity) are rebuilt from the management
//! actor's read model at every scrape, the way kube-state-metrics works:
//! the sensor path does no metric work at all, and the series of a
//! destroyed entity disappear with it. Counters and histograms of events
//! (failures, recoveries, policy actions) are updated where the event
//! arrives, and [`forget_application`] removes an application's series when
//! it is destroyed.

use std::collections::HashMap;
use std::sync::LazyLock;

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Buckets for operations on a local engine: tens of milliseconds to a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets for failure-to-recovery time: an immediate local restart takes a
/// few hundred milliseconds (our goal is p99 under 1 s); backoff and
/// replacements stretch it to minutes (the restarter's cap is 30 s, a
/// replacer retries for up to 5 min).
const RECOVERY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
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
        "drover_application_entities",
        "gauge",
        "application, kind, state",
        "Entities of an application by kind and lifecycle state (every state of every kind the application has, zeros included).",
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
        "drover_failures_total",
        "counter",
        "application, entity",
        "Failures detected (entity.failed), by application and service; a cluster member counts under its cluster.",
    ),
    (
        "drover_recovery_seconds",
        "histogram",
        "application, entity",
        "Time from a failure (entity.failed) to recovery (entity.recovered) or to the failed member's replacement, by application and service.",
    ),
    (
        "drover_restarts_total",
        "counter",
        "application, entity",
        "Restarts ordered by the restarter (restarter.restart scheduled), by application and service.",
    ),
    (
        "drover_replacements_total",
        "counter",
        "application, entity, outcome",
        "Member replacements (replace_member, by the replacer or an operator), by application, cluster and outcome (ok, error).",
    ),
    (
        "drover_rollouts_total",
        "counter",
        "application, entity, outcome",
        "Rollouts of a cluster's member spec that ended, by application, cluster and outcome (complete, rolled-back, failed).",
    ),
    (
        "drover_rollout_seconds",
        "histogram",
        "application, entity, outcome",
        "Time from a rollout's request to its end (rollbacks included), by application, cluster and outcome.",
    ),
    (
        "drover_policy_actions_total",
        "counter",
        "application, policy, action, outcome",
        "Policy decisions and actions in the activity record (restarter.restart is policy restarter, action restart), by outcome.",
    ),
    (
        "drover_applies_total",
        "counter",
        "outcome",
        "Applies of a blueprint to an application, by outcome: created, changed, noop, refused (bad input or not applicable), failed (a step failed; see the `apply` activities).",
    ),
    (
        "drover_lb_backends",
        "gauge",
        "application, entity",
        "Members in a load balancer's pool (sensor lb.backends).",
    ),
    (
        "drover_lb_active_connections",
        "gauge",
        "application, entity",
        "Client connections a load balancer is proxying now (sensor lb.active_connections).",
    ),
    (
        "drover_lb_connections_total",
        "counter",
        "application, entity",
        "Client connections a load balancer accepted (sensor lb.connections_total).",
    ),
    (
        "drover_lb_requests_per_second",
        "gauge",
        "application, entity",
        "Requests per second over the last second in http mode, client connections per second in tcp mode (sensor lb.reqs_per_sec); rate(drover_lb_requests_total) (http) or rate(drover_lb_connections_total) (tcp) is its smoothed form.",
    ),
    (
        "drover_lb_requests_total",
        "counter",
        "application, entity",
        "HTTP requests a load balancer in http mode answered, whether a member or the load balancer itself (502, 503) answered (sensor lb.requests_total).",
    ),
    (
        "drover_lb_responses_total",
        "counter",
        "application, entity, class",
        "HTTP responses of a load balancer in http mode by status class, 1xx to 5xx (sensor lb.responses).",
    ),
    (
        "drover_lb_latency_seconds",
        "gauge",
        "application, entity, percentile",
        "Request latency percentiles (p50, p99) of a load balancer in http mode over the last 10 s, from a request read to its response written (sensors lb.latency_p50, lb.latency_p99).",
    ),
    (
        "drover_lb_errors_total",
        "counter",
        "application, entity",
        "Client connections (tcp mode) or requests (http mode: answered 502 or 503 by the load balancer itself) a load balancer could not serve (sensor lb.errors_total).",
    ),
    (
        "drover_lb_retries_total",
        "counter",
        "application, entity",
        "Connections (tcp mode) or requests (http mode) sent again to another member after one failed (sensor lb.retries_total).",
    ),
    (
        "drover_host_containers",
        "gauge",
        "host",
        "Managed containers on a Docker host, running or not (from the last full list).",
    ),
    (
        "drover_placement_decision_seconds",
        "histogram",
        "location",
        "Time to choose a host for one container through the placement chain, by location.",
    ),
    (
        "drover_location_hosts",
        "gauge",
        "location",
        "Live hosts in a location's pool.",
    ),
    (
        "drover_location_headroom_free",
        "gauge",
        "location",
        "Free container slots in a location's pool.",
    ),
    (
        "drover_location_headroom_wanted",
        "gauge",
        "location",
        "Free container slots the location's headroom asks for (below it the pool is hot).",
    ),
    (
        "drover_host_cpu_usage_ratio",
        "gauge",
        "host",
        "CPU use of a pool host's containers, as a fraction of its CPUs (the CPU placement policy's input); gone when the host is decommissioned.",
    ),
    (
        "drover_host_cpus",
        "gauge",
        "host",
        "CPUs of a Docker host, as its engine reports them.",
    ),
    (
        "drover_host_memory_bytes",
        "gauge",
        "host",
        "Memory of a Docker host, as its engine reports it.",
    ),
    (
        "drover_host_reserved_cpus",
        "gauge",
        "host",
        "CPU limits (resources.cpus) of the managed containers on a host that are starting, running or on fire.",
    ),
    (
        "drover_host_reserved_memory_bytes",
        "gauge",
        "host",
        "Memory limits (resources.memory) of the managed containers on a host that are starting, running or on fire.",
    ),
    (
        "drover_chaos_faults_total",
        "counter",
        "fault",
        "Faults injected by `drover chaos`, by fault (kill, stop, pause, sigkill, engine-stop).",
    ),
    ("drover_policy_preset_errors", "gauge", "", "Preset files whose last edit was refused as invalid (the previous version stays in force)."),
    ("drover_store_write_seconds", "histogram", "backend", "Time to commit one write to the durable store, by backend: redb (an fsync) or etcd (a fenced transaction, a raft commit)."),
    ("drover_leader", "gauge", "", "1 while this drover leads its cluster (--store etcd://...; always 1 with a redb store), 0 on a standby."),
    ("drover_leader_changes_total", "counter", "", "Times this drover became, or stopped being, the leader of its cluster."),
    ("drover_api_refused_total", "counter", "reason", "API requests refused, by reason: no_token, bad_token (unknown or revoked), role (below the route's), host (not an address drover serves), media_type (a body neither JSON nor YAML), cors (a preflight)."),
];

/// The catalogue entry of a metric. Panics on a name that is not in the
/// catalogue: that is a programming error the unit tests catch.
fn entry(name: &str, kind: &str) -> (&'static str, Vec<&'static str>) {
    let (_, k, labels, help) = CATALOGUE
        .iter()
        .find(|(n, ..)| *n == name)
        .unwrap_or_else(|| panic!("{name} is not in the metric catalogue"));
    assert_eq!(*k, kind, "{name} is a {k} in the catalogue");
    let labels = labels
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (help, labels)
}

fn register<C: Collector + Clone + 'static>(c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registers once");
    c
}

fn gauge(name: &str) -> IntGauge {
    let (help, _) = entry(name, "gauge");
    register(IntGauge::new(name, help).expect("valid metric"))
}

fn gauge_vec(name: &str) -> IntGaugeVec {
    let (help, labels) = entry(name, "gauge");
    register(IntGaugeVec::new(Opts::new(name, help), &labels).expect("valid metric"))
}

fn counter(name: &str) -> IntCounter {
    let (help, _) = entry(name, "counter");
    register(IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(name: &str) -> IntCounterVec {
    let (help, labels) = entry(name, "counter");
    register(IntCounterVec::new(Opts::new(name, help), &labels).expect("valid metric"))
}

fn histogram(name: &str, buckets: &[f64]) -> Histogram {
    let (help, _) = entry(name, "histogram");
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric"),
    )
}

fn histogram_vec(name: &str, buckets: &[f64]) -> HistogramVec {
    let (help, labels) = entry(name, "histogram");
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            &labels,
        )
        .expect("valid metric"),
    )
}

pub static APPLICATIONS: LazyLock<IntGauge> = LazyLock::new(|| gauge("drover_applications"));
pub static ENTITIES: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("drover_entities"));
pub static APPLICATION_ENTITIES: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_application_entities"));
pub static CLUSTER_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("drover_cluster_size"));
pub static CLUSTER_DESIRED_SIZE: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_cluster_desired_size"));
pub static CONTAINERS_STARTED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("drover_containers_started_total"));
pub static CONTAINERS_FAILED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("drover_containers_failed_total"));
pub static CONTAINER_START_SECONDS: LazyLock<Histogram> =
    LazyLock::new(|| histogram("drover_container_start_seconds", DURATION_BUCKETS));
pub static EFFECTOR_DURATION: LazyLock<HistogramVec> =
    LazyLock::new(|| histogram_vec("drover_effector_duration_seconds", DURATION_BUCKETS));
pub static ENGINE_EVENTS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("drover_engine_events_total"));
pub static FAILURES: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_failures_total"));
pub static RECOVERY_SECONDS: LazyLock<HistogramVec> =
    LazyLock::new(|| histogram_vec("drover_recovery_seconds", RECOVERY_BUCKETS));
pub static RESTARTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_restarts_total"));
pub static REPLACEMENTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_replacements_total"));
pub static ROLLOUTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_rollouts_total"));
pub static ROLLOUT_SECONDS: LazyLock<HistogramVec> =
    LazyLock::new(|| histogram_vec("drover_rollout_seconds", RECOVERY_BUCKETS));
pub static POLICY_ACTIONS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_policy_actions_total"));
pub static APPLIES: LazyLock<IntCounterVec> = LazyLock::new(|| counter_vec("drover_applies_total"));
pub static LB_BACKENDS: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("drover_lb_backends"));
pub static LB_ACTIVE: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_lb_active_connections"));
pub static LB_CONNECTIONS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_lb_connections_total"));
/// A float gauge: rates are fractional.
pub static LB_REQUESTS_PER_SECOND: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let (help, labels) = entry("drover_lb_requests_per_second", "gauge");
    register(
        prometheus::GaugeVec::new(Opts::new("drover_lb_requests_per_second", help), &labels)
            .expect("valid metric"),
    )
});
pub static LB_ERRORS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_lb_errors_total"));
pub static LB_RETRIES: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_lb_retries_total"));
pub static LB_REQUESTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_lb_requests_total"));
pub static LB_RESPONSES: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_lb_responses_total"));
/// A float gauge: seconds.
pub static LB_LATENCY: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let (help, labels) = entry("drover_lb_latency_seconds", "gauge");
    register(
        prometheus::GaugeVec::new(Opts::new("drover_lb_latency_seconds", help), &labels)
            .expect("valid metric"),
    )
});
pub static HOST_CONTAINERS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_host_containers"));
pub static HOST_CPUS: LazyLock<IntGaugeVec> = LazyLock::new(|| gauge_vec("drover_host_cpus"));
pub static PLACEMENT_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "drover_placement_decision_seconds",
        &[0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05],
    )
});
pub static LOCATION_HOSTS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_location_hosts"));
pub static LOCATION_HEADROOM_FREE: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_location_headroom_free"));
pub static LOCATION_HEADROOM_WANTED: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_location_headroom_wanted"));
/// A float gauge: a fraction.
pub static HOST_CPU_USAGE: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let (help, labels) = entry("drover_host_cpu_usage_ratio", "gauge");
    register(
        prometheus::GaugeVec::new(Opts::new("drover_host_cpu_usage_ratio", help), &labels)
            .expect("valid metric"),
    )
});
pub static HOST_MEMORY: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_host_memory_bytes"));
/// A float gauge: `resources.cpus` is fractional.
pub static HOST_RESERVED_CPUS: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let (help, labels) = entry("drover_host_reserved_cpus", "gauge");
    register(
        prometheus::GaugeVec::new(Opts::new("drover_host_reserved_cpus", help), &labels)
            .expect("valid metric"),
    )
});
pub static HOST_RESERVED_MEMORY: LazyLock<IntGaugeVec> =
    LazyLock::new(|| gauge_vec("drover_host_reserved_memory_bytes"));
pub static CHAOS_FAULTS: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_chaos_faults_total"));

pub static PRESET_ERRORS: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge_with_registry!(
        "drover_policy_preset_errors",
        catalogue_help("drover_policy_preset_errors"),
        REGISTRY
    )
    .expect("metric registers once")
});

/// The help text of a catalogue entry.
fn catalogue_help(name: &str) -> &'static str {
    CATALOGUE
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, _, _, h)| *h)
        .unwrap_or("")
}

/// The effectors of drover's entities (and `destroy`), whose duration series
/// start at zero.
const EFFECTORS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "kill",
    "pause",
    "unpause",
    "resize",
    "replace_member",
    "destroy",
];

pub static API_REFUSED: LazyLock<IntCounterVec> =
    LazyLock::new(|| counter_vec("drover_api_refused_total"));

/// The reasons of `drover_api_refused_total` (the API's middleware names
/// them; listed here so their series start at zero).
const REFUSAL_REASONS: &[&str] = &[
    "no_token",
    "bad_token",
    "role",
    "host",
    "media_type",
    "cors",
];

pub static STORE_WRITE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    prometheus::register_histogram_vec_with_registry!(
        "drover_store_write_seconds",
        catalogue_help("drover_store_write_seconds"),
        &["backend"],
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
        REGISTRY
    )
    .expect("metric registers once")
});
pub static LEADER: LazyLock<IntGauge> = LazyLock::new(|| gauge("drover_leader"));
pub static LEADER_CHANGES: LazyLock<IntCounter> =
    LazyLock::new(|| counter("drover_leader_changes_total"));

/// Registers every metric, so a scrape shows them all from the start.
pub fn init() {
    // Every outcome from the start, so `rate()` sees the first apply.
    for outcome in ["created", "changed", "noop", "refused", "failed"] {
        APPLIES.with_label_values(&[outcome]).inc_by(0);
    }
    LazyLock::force(&APPLICATIONS);
    LazyLock::force(&ENTITIES);
    LazyLock::force(&APPLICATION_ENTITIES);
    LazyLock::force(&CLUSTER_SIZE);
    LazyLock::force(&CLUSTER_DESIRED_SIZE);
    LazyLock::force(&CONTAINERS_STARTED);
    LazyLock::force(&CONTAINERS_FAILED);
    LazyLock::force(&CONTAINER_START_SECONDS);
    LazyLock::force(&EFFECTOR_DURATION);
    LazyLock::force(&ENGINE_EVENTS);
    LazyLock::force(&FAILURES);
    LazyLock::force(&RECOVERY_SECONDS);
    LazyLock::force(&RESTARTS);
    LazyLock::force(&REPLACEMENTS);
    LazyLock::force(&POLICY_ACTIONS);
    LazyLock::force(&LB_BACKENDS);
    LazyLock::force(&LB_ACTIVE);
    LazyLock::force(&LB_CONNECTIONS);
    LazyLock::force(&LB_REQUESTS_PER_SECOND);
    LazyLock::force(&LB_ERRORS);
    LazyLock::force(&LB_RETRIES);
    LazyLock::force(&LB_REQUESTS);
    LazyLock::force(&LB_RESPONSES);
    LazyLock::force(&LB_LATENCY);
    LazyLock::force(&HOST_CONTAINERS);
    LazyLock::force(&PLACEMENT_SECONDS);
    LazyLock::force(&LOCATION_HOSTS);
    LazyLock::force(&LOCATION_HEADROOM_FREE);
    LazyLock::force(&LOCATION_HEADROOM_WANTED);
    LazyLock::force(&HOST_CPUS);
    LazyLock::force(&HOST_MEMORY);
    LazyLock::force(&HOST_CPU_USAGE);
    LazyLock::force(&HOST_RESERVED_CPUS);
    LazyLock::force(&HOST_RESERVED_MEMORY);
    LazyLock::force(&CHAOS_FAULTS);
    // Known label sets start at zero, so that the first event shows in
    // `rate()` and `increase()` (a series born at its first event has no
    // earlier sample to compare with).
    for fault in ["kill", "stop", "pause", "sigkill", "engine-stop"] {
        CHAOS_FAULTS.with_label_values(&[fault]);
    }
    for effector in EFFECTORS {
        EFFECTOR_DURATION.with_label_values(&[effector, "ok"]);
    }
    LazyLock::force(&PRESET_ERRORS);
    for backend in ["redb", "etcd"] {
        STORE_WRITE_SECONDS.with_label_values(&[backend]);
    }
    LazyLock::force(&LEADER);
    LazyLock::force(&LEADER_CHANGES);
    for reason in REFUSAL_REASONS {
        API_REFUSED.with_label_values(&[reason]);
    }
}

/// Creates the event series of a new application at zero. A counter series
/// born at its first event has no earlier sample, so `rate()` and
/// `increase()` would miss that first failure, restart or recovery;
/// Prometheus' advice is to initialise known label sets. `services` are the
/// blueprint's clusters and containers, `clusters` its clusters.
pub fn init_application(app: &str, services: &[&str], clusters: &[&str]) {
    for service in services {
        FAILURES.with_label_values(&[app, service]);
        RESTARTS.with_label_values(&[app, service]);
        RECOVERY_SECONDS.with_label_values(&[app, service]);
    }
    for cluster in clusters {
        for outcome in ["ok", "error"] {
            REPLACEMENTS.with_label_values(&[app, cluster, outcome]);
        }
        // From deploy on, so `rate()` sees a cluster's first rollout.
        for outcome in ["complete", "rolled-back", "failed"] {
            ROLLOUTS.with_label_values(&[app, cluster, outcome]);
            ROLLOUT_SECONDS.with_label_values(&[app, cluster, outcome]);
        }
    }
}

/// Removes every series of `vec` whose `application` label is `app`.
fn remove_app<T: MetricVecBuilder>(vec: &MetricVec<T>, app: &str) {
    for family in vec.collect() {
        for m in family.get_metric() {
            let labels: HashMap<&str, &str> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("application") == Some(&app) {
                let _ = vec.remove(&labels);
            }
        }
    }
}

/// Removes the event-driven series of a destroyed application (the
/// scrape-time gauges go away on their own at the next scrape).
pub fn forget_application(app: &str) {
    remove_app(&FAILURES, app);
    remove_app(&RECOVERY_SECONDS, app);
    remove_app(&RESTARTS, app);
    remove_app(&REPLACEMENTS, app);
    remove_app(&POLICY_ACTIONS, app);
    remove_app(&ROLLOUTS, app);
    remove_app(&ROLLOUT_SECONDS, app);
}

/// Clears the gauges rebuilt from the read model at every scrape, before
/// they are set again.
pub fn reset_state_metrics() {
    APPLICATION_ENTITIES.reset();
    CLUSTER_SIZE.reset();
    CLUSTER_DESIRED_SIZE.reset();
    LB_BACKENDS.reset();
    LB_ACTIVE.reset();
    LB_CONNECTIONS.reset();
    LB_REQUESTS_PER_SECOND.reset();
    LB_ERRORS.reset();
    LB_RETRIES.reset();
    LB_REQUESTS.reset();
    LB_RESPONSES.reset();
    LB_LATENCY.reset();
    HOST_CONTAINERS.reset();
    HOST_CPUS.reset();
    HOST_MEMORY.reset();
    HOST_RESERVED_CPUS.reset();
    HOST_RESERVED_MEMORY.reset();
}

/// Splits a policy activity's name (`restarter.restart`) into policy and
/// action; a name without a dot is its own policy with action `decide`.
pub fn policy_and_action(name: &str) -> (&str, &str) {
    name.split_once('.').unwrap_or((name, "decide"))
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

    /// Gives every vec metric a series so that it shows in a gather.
    fn touch_all() {
        init();
        ENTITIES.with_label_values(&["container", "running"]).set(0);
        for v in [
            &*CLUSTER_SIZE,
            &*CLUSTER_DESIRED_SIZE,
            &*LB_BACKENDS,
            &*LB_ACTIVE,
        ] {
            v.with_label_values(&["a", "b"]).set(0);
        }
        APPLICATION_ENTITIES
            .with_label_values(&["a", "container", "running"])
            .set(0);
        for v in [&*HOST_CONTAINERS, &*HOST_CPUS, &*HOST_MEMORY] {
            v.with_label_values(&["h"]).set(0);
        }
        HOST_RESERVED_MEMORY.with_label_values(&["h"]).set(0);
        HOST_RESERVED_CPUS.with_label_values(&["h"]).set(0.0);
        HOST_CPU_USAGE.with_label_values(&["h"]).set(0.0);
        LB_REQUESTS_PER_SECOND
            .with_label_values(&["a", "b"])
            .set(0.0);
        for v in [
            &*FAILURES,
            &*RESTARTS,
            &*LB_CONNECTIONS,
            &*LB_ERRORS,
            &*LB_RETRIES,
            &*LB_REQUESTS,
        ] {
            v.with_label_values(&["a", "b"]).inc_by(0);
        }
        LB_RESPONSES.with_label_values(&["a", "b", "2xx"]).inc_by(0);
        LB_LATENCY.with_label_values(&["a", "b", "p99"]).set(0.0);
        REPLACEMENTS.with_label_values(&["a", "b", "ok"]).inc_by(0);
        POLICY_ACTIONS
            .with_label_values(&["a", "restarter", "restart", "scheduled"])
            .inc_by(0);
        EFFECTOR_DURATION
            .with_label_values(&["start", "ok"])
            .observe(0.0);
        RECOVERY_SECONDS.with_label_values(&["a", "b"]).observe(0.0);
        CHAOS_FAULTS.with_label_values(&["kill"]).inc_by(0);
        ROLLOUTS
            .with_label_values(&["a", "b", "complete"])
            .inc_by(0);
        ROLLOUT_SECONDS
            .with_label_values(&["a", "b", "complete"])
            .observe(0.0);
        PLACEMENT_SECONDS.with_label_values(&["l"]).observe(0.0);
        for g in [
            &*LOCATION_HOSTS,
            &*LOCATION_HEADROOM_FREE,
            &*LOCATION_HEADROOM_WANTED,
        ] {
            g.with_label_values(&["l"]).set(0);
        }
    }

    #[test]
    fn catalogue_matches_registry() {
        touch_all();
        let families = REGISTRY.gather();
        for (name, kind, labels, _) in CATALOGUE {
            let f = families
                .iter()
                .find(|f| f.name() == *name)
                .unwrap_or_else(|| panic!("{name} is in the catalogue but not registered"));
            let t = format!("{:?}", f.get_field_type()).to_lowercase();
            assert_eq!(&t, kind, "{name}");
            let mut want: Vec<&str> = labels
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            want.sort();
            let mut got: Vec<&str> = f.get_metric()[0]
                .get_label()
                .iter()
                .map(|l| l.name())
                .collect();
            got.sort();
            assert_eq!(got, want, "labels of {name}");
        }
        for f in &families {
            let n = f.name();
            assert!(
                CATALOGUE.iter().any(|(c, ..)| *c == n),
                "{n} is registered but not in the catalogue"
            );
            assert!(n.starts_with("drover_"));
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        const ALLOWED_LABELS: &[&str] = &[
            "location",
            "application",
            "entity",
            "host",
            "policy",
            "action",
            "kind",
            "state",
            "effector",
            "outcome",
            "fault",
            "reason",
            "class",
            "percentile",
            // redb or etcd.
            "backend",
        ];
        for (name, kind, labels, help) in CATALOGUE {
            assert!(name.starts_with("drover_"), "{name}");
            assert_eq!(
                *kind == "counter",
                name.ends_with("_total"),
                "{name}: counters, and only counters, end in _total"
            );
            if *kind == "histogram" {
                assert!(name.ends_with("_seconds"), "{name}: durations in seconds");
            }
            for l in labels.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                assert!(ALLOWED_LABELS.contains(&l), "{name}: unbounded label {l}?");
            }
            assert!(help.ends_with('.'), "{name}: help is a sentence");
            assert!(!help.contains('|'), "{name}: help breaks the README table");
        }
    }

    #[test]
    fn readme_lists_every_metric_and_nothing_else() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md exists");
        for (name, kind, labels, help) in CATALOGUE {
            let row = format!("| `{name}` | {kind} | {labels} | {help} |");
            assert!(
                readme.contains(&row),
                "README's metric table lacks or differs for {name}; expected the row:\n{row}"
            );
        }
        for line in readme.lines() {
            if let Some(rest) = line.strip_prefix("| `drover_") {
                let name = format!("drover_{}", rest.split('`').next().unwrap_or(""));
                assert!(
                    CATALOGUE.iter().any(|(n, ..)| *n == name),
                    "README lists {name}, which the code does not export"
                );
            }
        }
    }

    #[test]
    fn forget_application_removes_only_that_applications_series() {
        init();
        FAILURES.with_label_values(&["gone-app", "web"]).inc();
        FAILURES.with_label_values(&["kept-app", "web"]).inc();
        RECOVERY_SECONDS
            .with_label_values(&["gone-app", "web"])
            .observe(0.5);
        POLICY_ACTIONS
            .with_label_values(&["gone-app", "restarter", "restart", "scheduled"])
            .inc();
        forget_application("gone-app");
        let text = render();
        assert!(!text.contains("gone-app"), "{text}");
        assert!(text.contains("kept-app"), "{text}");
    }

    #[test]
    fn policy_names_split_into_policy_and_action() {
        assert_eq!(
            policy_and_action("restarter.restart"),
            ("restarter", "restart")
        );
        assert_eq!(
            policy_and_action("replacer.give_up"),
            ("replacer", "give_up")
        );
        assert_eq!(policy_and_action("odd"), ("odd", "decide"));
    }
}
