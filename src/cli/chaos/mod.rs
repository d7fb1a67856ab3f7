//! `drover chaos APP`: fault injection against a running application, over
//! the REST API only.
//!
//! Faults come from outside drover, as Pumba's do, never through drover's
//! own effectors (a `stop` effector is an order drover rightly obeys, not a
//! failure to repair): the service's fault routes kill, stop or pause the
//! container through its engine, SIGKILL its process from the machine's OS,
//! or stop a provisioned pool host's engine through its provisioner. The
//! entity is not told; it must notice through the engine like any failure.
//!
//! On a seeded schedule it faults members of the application's clusters
//! while a background prober opens a new TCP connection to the
//! application's load balancer every ~10 ms and a single poller watches the
//! application tree every ~25 ms to time each fault's recovery (MTTR). At
//! the end it waits up to `settle` for the application to converge back to
//! full health and reports MTTR percentiles (overall and per kind of fault),
//! how each fault was injected, probe availability, the longest outage and
//! whether it converged.
//!
//! | file | concern |
//! | --- | --- |
//! | `mod.rs` | the options, the report's types, the run |
//! | [`plan`] | pure: the schedule, the victim choice, percentiles, per-fault summaries |
//! | `tree.rs` | pure: members, hosts and load balancers in the application tree; full health and recovery |
//! | `track.rs` | injecting through the fault routes; the recovery poller and the settle phase |
//! | `probe.rs` | the prober through the load balancer |
//! | `report.rs` | the report in text and JSON |

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;

#[cfg(test)]
mod fake;
pub mod plan;
mod probe;
mod report;
mod track;
mod tree;

use super::{CliError, Client};
pub use crate::wire::FaultKind;
use crate::wire::{AppDetail, PoolHostView, PoolView};
pub use plan::{percentile, pick_victim, schedule, seed_from_clock, summarise_by_fault};
use probe::{probe_loop, ProbeStats};
pub use report::print_report;
use track::{inject, lock, poll_loop, settle, Injection, Pending, Shared};
use tree::{candidates, host_candidates, load_balancers, resolve_target};
pub use tree::{full_health, recovered};

/// A new probe starts this long after the previous one started.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Connect, read and write timeout of one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The application tree is polled this often while faults are outstanding
/// and during the settle phase.
const POLL_EVERY: Duration = Duration::from_millis(25);
/// The probe request: a new connection each time, closed by the server.
const PROBE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
/// At most this many response bytes are read (and discarded) per probe.
const PROBE_DRAIN_LIMIT: usize = 64 * 1024;

/// What `drover chaos` does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The application id.
    pub app: String,
    /// How long faults are injected (default 60 s).
    pub duration: Duration,
    /// Mean time between faults (default 2 s).
    pub interval: Duration,
    /// The kinds of fault to draw from (default `[Kill]`).
    pub faults: Vec<FaultKind>,
    /// A cluster id (fault its members) or a member id (fault only it);
    /// default: every member of every cluster.
    pub target: Option<String>,
    /// Seed of the schedule and of the victim choice (default: from the
    /// clock; printed in the report so a run can be repeated).
    pub seed: u64,
    /// The longest wait for convergence after the last fault (default 60 s).
    pub settle: Duration,
}

impl ChaosOptions {
    /// The defaults, with a seed taken from the clock.
    pub fn new(app: impl Into<String>) -> Self {
        ChaosOptions {
            app: app.into(),
            duration: Duration::from_secs(60),
            interval: Duration::from_secs(2),
            faults: vec![FaultKind::Kill],
            target: None,
            seed: seed_from_clock(),
            settle: Duration::from_secs(60),
        }
    }
}

/// One injected (or attempted) fault.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRecord {
    /// When the fault was injected, in seconds from the start of the run.
    pub at_seconds: f64,
    pub fault: FaultKind,
    /// The victim: a member's id, or a host's name for `engine-stop` (`-`
    /// if none could be chosen).
    pub target: String,
    /// How the service injected it (`docker stop through engine local`,
    /// `SIGKILL pid 1234 on this machine ...`); `None` if it was not.
    pub how: Option<String>,
    /// For `engine-stop`: the members placed on the stopped host, all of
    /// which must be back for the fault to count as recovered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<String>,
    /// Time to recovery; `None` if it did not recover (or was not injected).
    pub mttr_seconds: Option<f64>,
    /// Why the fault could not be injected.
    pub error: Option<String>,
}

/// The faults of one kind, summarised.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaultSummary {
    pub fault: FaultKind,
    /// Drawn by the schedule.
    pub attempted: usize,
    /// Injected by the service.
    pub injected: usize,
    pub recovered: usize,
    pub mttr_p50_seconds: Option<f64>,
    pub mttr_p99_seconds: Option<f64>,
    pub mttr_max_seconds: Option<f64>,
    /// Each distinct way the service injected them.
    pub how: Vec<String>,
}

/// The outcome of a chaos run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChaosReport {
    pub application: String,
    pub seed: u64,
    /// Wall-clock time of the whole run: the fault window plus the settle phase.
    pub duration_seconds: f64,
    /// Faults the service injected.
    pub faults_injected: usize,
    pub faults: Vec<FaultRecord>,
    /// Per kind of fault, in the order kill, stop, pause, sigkill, engine-stop.
    pub by_fault: Vec<FaultSummary>,
    pub mttr_p50_seconds: Option<f64>,
    pub mttr_p99_seconds: Option<f64>,
    pub mttr_max_seconds: Option<f64>,
    pub probes_total: u64,
    pub probes_failed: u64,
    /// Fraction of successful probes, 0..1.
    pub probe_success_rate: f64,
    /// Longest span from a failing probe's start to the next successful
    /// probe's end (to the last probe's end if the run ended failing).
    pub longest_outage_seconds: f64,
    pub converged: bool,
    pub convergence_detail: String,
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The hosts of the application's pool location, read fresh before each
/// `engine-stop` (hosts come and go). An application not on a pool is an
/// error: `engine-stop` stops engines drover provisioned.
fn pool_hosts(client: &Client, app_id: &str, location: &str) -> Result<Vec<PoolHostView>, String> {
    let pools = client
        .get_ok::<Vec<PoolView>>("/v1/locations")
        .map_err(|e| format!("cannot read the locations: {e}"))?;
    pools
        .into_iter()
        .find(|p| p.location == location)
        .map(|p| p.hosts)
        .ok_or_else(|| {
            format!(
                "engine-stop stops engines drover provisioned in a host pool, but application `{app_id}` runs on location `{location}`, which is no pool (drover.yaml); leave engine-stop out of --faults"
            )
        })
}

/// The victim of the next fault, and the members that must come back.
fn choose(
    client: &Client,
    app_path: &str,
    opts: &ChaosOptions,
    location: &str,
    target: &tree::Target,
    kind: FaultKind,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<(String, Vec<String>), String> {
    let app = client
        .get_ok::<AppDetail>(app_path)
        .map_err(|e| format!("cannot read the application: {e}"))?;
    if kind.is_container_fault() {
        let victim = pick_victim(rng, &candidates(&app.entities, target))
            .ok_or_else(|| "no running member to fault".to_string())?;
        return Ok((victim.clone(), vec![victim]));
    }
    let hosts = host_candidates(
        &app.entities,
        &pool_hosts(client, &opts.app, location)?,
        target,
    );
    let names: Vec<String> = hosts.iter().map(|(h, _)| h.clone()).collect();
    let host = pick_victim(rng, &names)
        .ok_or_else(|| "no running host drover provisioned runs a member to fault".to_string())?;
    let members = hosts
        .into_iter()
        .find(|(h, _)| *h == host)
        .map(|(_, m)| m)
        .unwrap_or_default();
    Ok((host, members))
}

/// `drover chaos APP`: injects faults per [`schedule`], measures recovery
/// and availability, and reports. The probes run from the first fault window
/// to the end of the settle phase.
///
/// Injection time is the client's clock just before the fault request; the
/// restart condition of [`recovered`] compares it with the service's sensor
/// timestamps, so the client and the service should share a clock (they
/// usually share a host).
pub fn run(client: &Client, opts: &ChaosOptions) -> Result<ChaosReport, CliError> {
    if opts.interval.is_zero() {
        return Err(CliError::Invalid(
            "the chaos interval must be greater than zero".to_string(),
        ));
    }
    if opts.faults.is_empty() {
        return Err(CliError::Invalid(
            "give at least one fault kind: kill, stop, pause, sigkill, engine-stop".to_string(),
        ));
    }
    let app_id = opts.app.as_str();
    let app_path = format!("/v1/applications/{}", super::query_value(app_id));
    let detail = client.get_ok::<AppDetail>(&app_path)?;
    let location = detail.summary.location.clone();
    let app = detail.entities;
    let lbs = load_balancers(&app, app_id)?;
    let target = resolve_target(&app, app_id, opts.target.as_deref())?;
    if opts.faults.contains(&FaultKind::EngineStop) {
        pool_hosts(client, app_id, &location).map_err(CliError::Invalid)?;
    }
    let plan = schedule(opts.seed, opts.duration, opts.interval, &opts.faults);
    let mut victims = Xoshiro256PlusPlus::seed_from_u64(plan::victim_seed(opts.seed));

    let shared = Mutex::new(Shared::default());
    let stop = AtomicBool::new(false);
    let warned = AtomicBool::new(false);
    let start = Instant::now();

    let (probes, converged, detail) = std::thread::scope(|scope| {
        let probers: Vec<_> = lbs
            .iter()
            .map(|(_, addr)| {
                let (addr, stop) = (*addr, &stop);
                scope.spawn(move || probe_loop(addr, stop))
            })
            .collect();
        let poller = scope.spawn(|| poll_loop(client, &app_path, &shared, &stop));

        let mut injections = Vec::new();
        for (offset, kind) in &plan {
            let kind = *kind;
            sleep_until(start + *offset);
            let choice = choose(
                client,
                &app_path,
                opts,
                &location,
                &target,
                kind,
                &mut victims,
            );
            let (victim, members) = match choice {
                Ok(v) => v,
                Err(e) => {
                    let at_seconds = start.elapsed().as_secs_f64();
                    lock(&shared).records.push(FaultRecord {
                        at_seconds,
                        fault: kind,
                        target: "-".to_string(),
                        how: None,
                        affected: vec![],
                        mttr_seconds: None,
                        error: Some(e),
                    });
                    continue;
                }
            };
            let injected = Instant::now();
            let injected_ms = now_ms();
            let index = {
                let mut s = lock(&shared);
                let index = s.records.len();
                s.records.push(FaultRecord {
                    at_seconds: injected.duration_since(start).as_secs_f64(),
                    fault: kind,
                    target: victim.clone(),
                    how: None,
                    affected: if kind.is_container_fault() {
                        vec![]
                    } else {
                        members.clone()
                    },
                    mttr_seconds: None,
                    error: None,
                });
                s.pending.push(Pending {
                    index,
                    members,
                    off_host: (!kind.is_container_fault()).then(|| victim.clone()),
                    injected,
                    injected_ms,
                });
                s.in_flight += 1;
                index
            };
            let job = Injection {
                app: app_id,
                victim,
                location: &location,
                kind,
                index,
            };
            let (shared, warned) = (&shared, &warned);
            injections.push(scope.spawn(move || inject(client, job, shared, warned)));
        }
        sleep_until(start + opts.duration);

        let (converged, detail) = settle(client, &app_path, &shared, opts.settle);
        stop.store(true, Ordering::Relaxed);
        let mut probes = ProbeStats::default();
        for p in probers {
            let s = p.join().unwrap_or_default();
            probes.total += s.total;
            probes.failed += s.failed;
            probes.longest_outage = probes.longest_outage.max(s.longest_outage);
        }
        let _ = poller.join();
        for i in injections {
            let _ = i.join();
        }
        (probes, converged, detail)
    });

    let records = shared
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .records;
    let mttrs = plan::sorted_mttrs(records.iter());
    Ok(ChaosReport {
        application: opts.app.clone(),
        seed: opts.seed,
        duration_seconds: start.elapsed().as_secs_f64(),
        faults_injected: records.iter().filter(|r| r.error.is_none()).count(),
        by_fault: summarise_by_fault(&records),
        mttr_p50_seconds: percentile(&mttrs, 50.0),
        mttr_p99_seconds: percentile(&mttrs, 99.0),
        mttr_max_seconds: mttrs.last().copied(),
        faults: records,
        probes_total: probes.total,
        probes_failed: probes.failed,
        probe_success_rate: if probes.total == 0 {
            0.0
        } else {
            (probes.total - probes.failed) as f64 / probes.total as f64
        },
        longest_outage_seconds: probes.longest_outage.as_secs_f64(),
        converged,
        convergence_detail: detail,
    })
}
