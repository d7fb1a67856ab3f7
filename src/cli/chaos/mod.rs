//! `drover chaos APP`: fault injection against a running application, over
//! the REST API only.
//!
//! On a seeded schedule it kills (or stops, or pauses) members of the
//! application's clusters, while a background prober opens a new TCP
//! connection to the application's load balancer every ~10 ms and a single
//! poller watches the application tree every ~25 ms to time each fault's
//! recovery (MTTR). At the end it waits up to `settle` for the application to
//! converge back to full health and reports MTTR percentiles, probe
//! availability, the longest outage and whether it converged.
//!
//! The pure parts ([`schedule`], [`pick_victim`], [`percentile`],
//! [`full_health`], [`recovered`]) carry the logic and are unit-tested; the
//! same seed gives the same schedule and, against the same sequence of
//! application states, the same victims.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
mod probe;
mod report;
mod tree;

use super::{error_text, Answer, CliError, Client};
use crate::wire::{AppDetail, ChaosFault};
use probe::{probe_loop, ProbeStats};
pub use report::print_report;
use tree::{candidates, load_balancers, resolve_target, summarise, victim_back};
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
/// A schedule never holds more faults than this, whatever the options.
const MAX_FAULTS: u128 = 1_000_000;

/// A kind of fault, named after the container effector that injects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// SIGKILL the container (`kill` effector).
    Kill,
    /// Stop the container (`stop` effector).
    Stop,
    /// Pause the container (`pause` effector).
    Pause,
}

impl FaultKind {
    pub const ALL: [FaultKind; 3] = [FaultKind::Kill, FaultKind::Stop, FaultKind::Pause];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
        }
    }

    /// The container effector that injects this fault.
    pub fn effector(self) -> &'static str {
        self.as_str()
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;

    /// Case-insensitive: `kill`, `stop` or `pause`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| format!("unknown fault `{wanted}`: expected one of kill, stop, pause"))
    }
}

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

/// A seed from the clock, for runs that do not give one.
pub fn seed_from_clock() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Fold to 64 bits and mix so that close instants give unrelated seeds.
    let mut z =
        (nanos as u64) ^ ((nanos >> 64) as u64) ^ u64::from(std::process::id()).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fault schedule: offsets from the start and the kind of each fault.
///
/// Time is cut into `floor(duration / interval)` slots of one interval; slot
/// `k` holds one fault at `k·interval + interval/4 + jitter`, the jitter drawn
/// uniformly in `[0, interval/2]`. So every offset is below `duration`,
/// consecutive faults are between `interval/2` and `1.5·interval` apart
/// (`interval` on average), and the kind is drawn uniformly from `faults`.
/// Pure: the same arguments give the same schedule. Empty if `faults` is
/// empty or `interval` is zero.
pub fn schedule(
    seed: u64,
    duration: Duration,
    interval: Duration,
    faults: &[FaultKind],
) -> Vec<(Duration, FaultKind)> {
    if faults.is_empty() || interval.is_zero() {
        return Vec::new();
    }
    let step = interval.as_nanos();
    let slots = (duration.as_nanos() / step).min(MAX_FAULTS);
    let quarter = step / 4;
    let half = u64::try_from(step / 2).unwrap_or(u64::MAX);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..slots)
        .map(|k| {
            let jitter = u128::from(rng.random_range(0..=half));
            let kind = faults[rng.random_range(0..faults.len())];
            let offset = k * step + quarter + jitter;
            (nanos_to_duration(offset), kind)
        })
        .collect()
}

fn nanos_to_duration(n: u128) -> Duration {
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (n % 1_000_000_000) as u32)
}

/// Picks the victim among `candidates` (the members currently running) with
/// the seeded `rng`. The candidates are sorted (and deduplicated) first, so the
/// choice depends on the set only, not on the order the service listed them.
/// `None` (and the rng untouched) if there is no candidate.
pub fn pick_victim(rng: &mut impl rand::Rng, candidates: &[String]) -> Option<String> {
    let mut sorted: Vec<&String> = candidates.iter().collect();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[rng.random_range(0..sorted.len())].clone())
}

/// Nearest-rank percentile of an ascending slice: the smallest value such
/// that at least `p` percent of the values are at most it (`p = 0` gives the
/// minimum, `p = 100` the maximum). `None` if the slice is empty or `p` is
/// not in `[0, 100]`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let n = sorted.len();
    let rank = (p * n as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// One injected (or attempted) fault.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRecord {
    /// When the fault was injected, in seconds from the start of the run.
    pub at_seconds: f64,
    pub fault: FaultKind,
    /// The victim's id (`-` if none could be chosen).
    pub target: String,
    /// Time to recovery; `None` if it did not recover (or was not injected).
    pub mttr_seconds: Option<f64>,
    /// Why the fault could not be injected.
    pub error: Option<String>,
}

/// The outcome of a chaos run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChaosReport {
    pub application: String,
    pub seed: u64,
    /// Wall-clock time of the whole run: the fault window plus the settle phase.
    pub duration_seconds: f64,
    /// Faults whose effector succeeded.
    pub faults_injected: usize,
    pub faults: Vec<FaultRecord>,
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

// ---------------------------------------------------------------------------
// Injection and recovery tracking.

/// A fault whose recovery is awaited.
struct Pending {
    index: usize,
    victim: String,
    injected: Instant,
    injected_ms: u64,
}

#[derive(Default)]
struct Shared {
    records: Vec<FaultRecord>,
    pending: Vec<Pending>,
    /// Effector calls not answered yet.
    in_flight: usize,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error of a non-2xx answer.
fn answer_error(a: &Answer) -> String {
    if a.text.trim().is_empty() {
        format!("HTTP {}", a.status)
    } else {
        format!("HTTP {}: {}", a.status, error_text(a.status, &a.text))
    }
}

/// Polls the application while faults are pending and marks those that
/// recovered. One poller serves every outstanding fault.
fn poll_loop(client: &Client, app_path: &str, shared: &Mutex<Shared>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if !lock(shared).pending.is_empty() {
            if let Ok(app) = client.get_ok::<AppDetail>(app_path) {
                let app = app.entities;
                let seen = Instant::now();
                if full_health(&app).is_ok() {
                    let mut guard = lock(shared);
                    let s = &mut *guard;
                    s.pending.retain(|p| {
                        // A state read before the fault says nothing about it.
                        if p.injected >= sent || !victim_back(&app, &p.victim, p.injected_ms) {
                            return true;
                        }
                        if let Some(r) = s.records.get_mut(p.index) {
                            r.mttr_seconds = Some(seen.duration_since(p.injected).as_secs_f64());
                        }
                        false
                    });
                }
            }
        }
        sleep_until(sent + POLL_EVERY);
    }
}

/// Calls the fault effector on the victim and records the outcome.
fn inject(
    client: &Client,
    app: &str,
    victim: &str,
    kind: FaultKind,
    index: usize,
    shared: &Mutex<Shared>,
    warned: &AtomicBool,
) {
    let path = format!(
        "/v1/applications/{app}/entities/{victim}/effectors/{}",
        kind.effector()
    );
    let error = match client.post(&path, "application/json", "{}") {
        Ok(a) if (200..300).contains(&a.status) => None,
        Ok(a) => Some(format!("{kind} effector failed: {}", answer_error(&a))),
        Err(e) => Some(format!("{kind} effector failed: {e}")),
    };
    {
        let mut s = lock(shared);
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(e) = &error {
            s.pending.retain(|p| p.index != index);
            if let Some(r) = s.records.get_mut(index) {
                r.error = Some(e.clone());
                r.mttr_seconds = None;
            }
        }
    }
    if error.is_some() {
        return;
    }
    // Record the fault for the service's metrics; older services lack the endpoint.
    let body = serde_json::to_string(&ChaosFault {
        application: app.to_string(),
        entity: victim.to_string(),
        fault: kind.as_str().to_string(),
    })
    .unwrap_or_default();
    let problem = match client.post("/v1/chaos/faults", "application/json", &body) {
        Ok(a) if (200..300).contains(&a.status) || a.status == 404 => None,
        Ok(a) => Some(answer_error(&a)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(p) = problem {
        if !warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: cannot record chaos faults in the service's metrics: {p}");
        }
    }
}

/// Waits up to `limit` (checking at least once) for full health with every
/// fault recovered and every effector answered.
fn settle(
    client: &Client,
    app_path: &str,
    shared: &Mutex<Shared>,
    limit: Duration,
) -> (bool, String) {
    let start = Instant::now();
    let deadline = start + limit;
    loop {
        let tick = Instant::now();
        let (in_flight, pending) = {
            let s = lock(shared);
            (s.in_flight, s.pending.len())
        };
        let health = client
            .get_ok::<AppDetail>(app_path)
            .map_err(|e| format!("cannot read the application: {e}"))
            .and_then(|app| full_health(&app.entities));
        // Faults may recover between the two reads: look again.
        let pending = pending.min(lock(shared).pending.len());
        if in_flight == 0 && pending == 0 && health.is_ok() {
            return (
                true,
                format!(
                    "converged {:.1}s after the fault window: every entity running, every cluster at its desired size, every fault recovered",
                    start.elapsed().as_secs_f64()
                ),
            );
        }
        if tick >= deadline {
            let s = lock(shared);
            let mut wrong = Vec::new();
            if let Err(e) = health {
                wrong.push(e);
            }
            if !s.pending.is_empty() {
                let faults: Vec<String> = s
                    .pending
                    .iter()
                    .map(|p| match s.records.get(p.index) {
                        Some(r) => format!("{} of {} at {:.1}s", r.fault, p.victim, r.at_seconds),
                        None => p.victim.clone(),
                    })
                    .collect();
                wrong.push(format!(
                    "{} fault(s) not recovered: {}",
                    faults.len(),
                    summarise(&faults, 5)
                ));
            }
            if s.in_flight > 0 {
                wrong.push(format!("{} effector call(s) not answered", s.in_flight));
            }
            if wrong.is_empty() {
                wrong.push("the state changed while it was checked".to_string());
            }
            return (
                false,
                format!(
                    "not converged within {}: {}",
                    humantime::format_duration(limit),
                    wrong.join("; ")
                ),
            );
        }
        sleep_until((tick + POLL_EVERY).min(deadline));
    }
}

/// Seed of the victim choice, derived from the run's seed.
fn victim_seed(seed: u64) -> u64 {
    seed ^ 0x5eed_c4a0_5eed_c4a0
}

/// `drover chaos APP`: injects faults per [`schedule`], measures recovery
/// and availability, and reports. The probes run from the first fault window
/// to the end of the settle phase.
///
/// Injection time is the client's clock just before the effector call; the
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
            "give at least one fault kind: kill, stop, pause".to_string(),
        ));
    }
    let app_id = opts.app.as_str();
    let app_path = format!("/v1/applications/{}", super::query_value(app_id));
    let app = client.get_ok::<AppDetail>(&app_path)?.entities;
    let lbs = load_balancers(&app, app_id)?;
    let target = resolve_target(&app, app_id, opts.target.as_deref())?;
    let plan = schedule(opts.seed, opts.duration, opts.interval, &opts.faults);
    let mut victims = Xoshiro256PlusPlus::seed_from_u64(victim_seed(opts.seed));

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
            let choice = client
                .get_ok::<AppDetail>(&app_path)
                .map_err(|e| format!("cannot read the application: {e}"))
                .and_then(|app| {
                    pick_victim(&mut victims, &candidates(&app.entities, &target))
                        .ok_or_else(|| "no running member to fault".to_string())
                });
            let victim = match choice {
                Ok(v) => v,
                Err(e) => {
                    let at_seconds = start.elapsed().as_secs_f64();
                    lock(&shared).records.push(FaultRecord {
                        at_seconds,
                        fault: kind,
                        target: "-".to_string(),
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
                    mttr_seconds: None,
                    error: None,
                });
                s.pending.push(Pending {
                    index,
                    victim: victim.clone(),
                    injected,
                    injected_ms,
                });
                s.in_flight += 1;
                index
            };
            let (shared, warned) = (&shared, &warned);
            injections.push(
                scope.spawn(move || inject(client, app_id, &victim, kind, index, shared, warned)),
            );
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
    let mut mttrs: Vec<f64> = records.iter().filter_map(|r| r.mttr_seconds).collect();
    mttrs.sort_by(f64::total_cmp);
    Ok(ChaosReport {
        application: opts.app.clone(),
        seed: opts.seed,
        duration_seconds: start.elapsed().as_secs_f64(),
        faults_injected: records.iter().filter(|r| r.error.is_none()).count(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn schedule_is_deterministic_and_spaced() {
        let faults = [FaultKind::Kill, FaultKind::Stop, FaultKind::Pause];
        let (d, i) = (Duration::from_secs(60), Duration::from_secs(2));
        let a = schedule(42, d, i, &faults);
        assert_eq!(a, schedule(42, d, i, &faults));
        assert_eq!(a.len(), 30);
        for (k, (offset, _)) in a.iter().enumerate() {
            assert!(*offset < d);
            // Each fault lies in the middle half of its slot.
            let lo = secs(i) * k as f64 + 0.5;
            assert!(
                secs(*offset) >= lo - 1e-9 && secs(*offset) <= lo + 1.0 + 1e-9,
                "{k}: {offset:?}"
            );
        }
        for w in a.windows(2) {
            let gap = secs(w[1].0 - w[0].0);
            assert!((1.0 - 1e-9..=3.0 + 1e-9).contains(&gap), "gap {gap}");
        }
        let mean = secs(a[a.len() - 1].0 - a[0].0) / (a.len() - 1) as f64;
        assert!((mean - 2.0).abs() < 0.1, "mean gap {mean}");
        // Every kind shows up in 30 draws from 3.
        for k in faults {
            assert!(a.iter().any(|(_, f)| *f == k), "{k} never drawn");
        }
    }

    #[test]
    fn different_seeds_give_different_schedules() {
        let (d, i) = (Duration::from_secs(60), Duration::from_secs(2));
        let a = schedule(1, d, i, &[FaultKind::Kill]);
        let b = schedule(2, d, i, &[FaultKind::Kill]);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        assert!(a.iter().all(|(_, k)| *k == FaultKind::Kill));
    }

    #[test]
    fn schedule_edge_cases() {
        let k = [FaultKind::Kill];
        assert!(schedule(1, Duration::from_secs(60), Duration::ZERO, &k).is_empty());
        assert!(schedule(1, Duration::from_secs(60), Duration::from_secs(2), &[]).is_empty());
        assert!(schedule(1, Duration::from_secs(1), Duration::from_secs(2), &k).is_empty());
        assert!(schedule(1, Duration::ZERO, Duration::from_secs(2), &k).is_empty());
        assert_eq!(
            schedule(1, Duration::from_secs(2), Duration::from_secs(2), &k).len(),
            1
        );
        let tiny = schedule(9, Duration::from_nanos(10), Duration::from_nanos(1), &k);
        assert_eq!(tiny.len(), 10);
        assert!(tiny.iter().all(|(o, _)| *o < Duration::from_nanos(10)));
    }

    #[test]
    fn percentile_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0], 50.0), Some(1.0));
        assert_eq!(percentile(&[1.0], 100.0), Some(1.0));
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 10.0), Some(1.0));
        assert_eq!(percentile(&v, 11.0), Some(2.0));
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        let h: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&h, 99.0), Some(99.0));
        assert_eq!(percentile(&h, 50.0), Some(50.0));
        assert_eq!(percentile(&v, -1.0), None);
        assert_eq!(percentile(&v, 100.5), None);
        assert_eq!(percentile(&v, f64::NAN), None);
    }

    #[test]
    fn pick_victim_is_deterministic_and_order_free() {
        let c: Vec<String> = ["web-3", "web-1", "web-2", "web-4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut shuffled = c.clone();
        shuffled.reverse();
        let mut r1 = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut r2 = Xoshiro256PlusPlus::seed_from_u64(7);
        let a: Vec<_> = (0..20).map(|_| pick_victim(&mut r1, &c)).collect();
        let b: Vec<_> = (0..20).map(|_| pick_victim(&mut r2, &shuffled)).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| v.as_ref().is_some_and(|v| c.contains(v))));
        // Not always the same member.
        assert!(a.iter().any(|v| v != &a[0]));
        let mut r = Xoshiro256PlusPlus::seed_from_u64(7);
        assert_eq!(pick_victim(&mut r, &[]), None);
        assert_eq!(
            pick_victim(&mut r, &["only".to_string()]),
            Some("only".to_string())
        );
    }

    #[test]
    fn fault_kind_parses_and_explains() {
        assert_eq!("kill".parse::<FaultKind>(), Ok(FaultKind::Kill));
        assert_eq!(" Stop ".parse::<FaultKind>(), Ok(FaultKind::Stop));
        assert_eq!("PAUSE".parse::<FaultKind>(), Ok(FaultKind::Pause));
        let err = "reboot".parse::<FaultKind>().unwrap_err();
        assert!(
            err.contains("reboot") && err.contains("kill, stop, pause"),
            "{err}"
        );
        for k in FaultKind::ALL {
            assert_eq!(k.to_string().parse::<FaultKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }

    // -- An end-to-end run against a fake service -------------------------

    use crate::cli::Output;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    /// A fake drover: one cluster `web` of two members, killed members go
    /// on fire and are replaced 150 ms later; the load balancer answers 503
    /// while a member is on fire.
    struct Fake {
        members: Vec<(String, Option<Instant>, u64)>,
        next: u32,
        with_lb: bool,
        lb_port: u16,
        recorded: Vec<Value>,
    }

    impl Fake {
        fn advance(&mut self) {
            let now = Instant::now();
            let mut replaced = 0;
            self.members.retain(|(_, killed, _)| match killed {
                Some(t) if now.duration_since(*t) >= Duration::from_millis(150) => {
                    replaced += 1;
                    false
                }
                _ => true,
            });
            for _ in 0..replaced {
                self.next += 1;
                self.members
                    .push((format!("web-{}", self.next), None, now_ms()));
            }
        }

        fn degraded(&mut self) -> bool {
            self.advance();
            self.members.iter().any(|(_, k, _)| k.is_some())
        }

        fn tree(&mut self) -> Value {
            self.advance();
            let fire = self.members.iter().any(|(_, k, _)| k.is_some());
            let state = if fire { "on-fire" } else { "running" };
            let mut entities = vec![
                json!({ "id": "demo", "type": "application", "state": state, "parent": null, "children": [], "sensors": {} }),
                json!({ "id": "web", "type": "cluster", "state": state, "parent": "demo", "children": [], "sensors": {
                    "group.size": { "value": self.members.len(), "timestamp_ms": 1 },
                    "group.desired_size": { "value": 2, "timestamp_ms": 1 } } }),
            ];
            for (id, killed, ts) in &self.members {
                let (state, up) = if killed.is_some() {
                    ("on-fire", false)
                } else {
                    ("running", true)
                };
                entities.push(json!({ "id": id, "type": "container", "state": state, "parent": "web", "children": [],
                    "sensors": { "service.up": { "value": up, "timestamp_ms": ts } } }));
            }
            if self.with_lb {
                entities.push(json!({ "id": "lb", "type": "load-balancer", "state": "running", "parent": "demo", "children": [], "sensors": {
                    "lb.address": { "value": "127.0.0.1", "timestamp_ms": 1 }, "lb.port": { "value": self.lb_port, "timestamp_ms": 1 } } }));
            }
            let count = entities.len();
            json!({ "id": "demo", "location": "local", "state": state, "entity_count": count,
                "created_ms": 0, "entities": entities, "blueprint": { "name": "demo", "services": [] },
                "latest_activities": {} })
        }

        fn handle(&mut self, method: &str, path: &str, body: &str) -> (u16, Value) {
            match (method, path.split('/').collect::<Vec<_>>().as_slice()) {
                ("GET", ["", "v1", "applications", "demo"]) => (200, self.tree()),
                (
                    "POST",
                    ["", "v1", "applications", "demo", "entities", id, "effectors", "kill"],
                ) => {
                    self.advance();
                    match self
                        .members
                        .iter_mut()
                        .find(|(m, k, _)| m == id && k.is_none())
                    {
                        Some(m) => {
                            m.1 = Some(Instant::now());
                            m.2 = now_ms();
                            (200, json!({ "result": null }))
                        }
                        None => (404, json!({ "error": format!("no running entity {id}") })),
                    }
                }
                ("POST", ["", "v1", "chaos", "faults"]) => {
                    self.recorded
                        .push(serde_json::from_str(body).unwrap_or(Value::Null));
                    (404, json!({ "error": "not found" }))
                }
                _ => (404, json!({ "error": "not found" })),
            }
        }
    }

    fn read_request(s: &mut TcpStream) -> Option<(String, String, String)> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).ok()? == 0 {
                return None;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let mut first = head.lines().next()?.split(' ');
        let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
        let len = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).ok()?;
        Some((method, path, String::from_utf8_lossy(&body).to_string()))
    }

    fn serve<F: Fn(&mut TcpStream) + Send + Sync + 'static>(handler: F) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let h = handler.clone();
                std::thread::spawn(move || {
                    let mut s = s;
                    h(&mut s);
                });
            }
        });
        port
    }

    fn fake(with_lb: bool) -> (Client, Arc<Mutex<Fake>>) {
        let state = Arc::new(Mutex::new(Fake {
            members: vec![
                ("web-1".into(), None, now_ms()),
                ("web-2".into(), None, now_ms()),
            ],
            next: 2,
            with_lb,
            lb_port: 0,
            recorded: Vec::new(),
        }));
        let lb_state = state.clone();
        let lb_port = serve(move |s| {
            if read_request(s).is_some() {
                let degraded = lb_state.lock().unwrap().degraded();
                let answer: &[u8] = if degraded {
                    b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                };
                let _ = s.write_all(answer);
            }
        });
        state.lock().unwrap().lb_port = lb_port;
        let api_state = state.clone();
        let api_port = serve(move |s| {
            while let Some((method, path, body)) = read_request(s) {
                let (status, value) = api_state.lock().unwrap().handle(&method, &path, &body);
                let text = value.to_string();
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}", text.len());
                if s.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
        });
        (Client::new(&format!("http://127.0.0.1:{api_port}")), state)
    }

    #[test]
    fn run_against_a_fake_service() {
        let (client, state) = fake(true);
        let opts = ChaosOptions {
            duration: Duration::from_millis(1200),
            interval: Duration::from_millis(300),
            settle: Duration::from_secs(5),
            seed: 11,
            ..ChaosOptions::new("demo")
        };
        let report = run(&client, &opts).unwrap();
        assert_eq!(report.faults.len(), 4, "{report:#?}");
        assert_eq!(report.faults_injected, 4, "{report:#?}");
        for f in &report.faults {
            assert_eq!(f.error, None);
            let mttr = f.mttr_seconds.expect("recovered");
            assert!((0.14..2.0).contains(&mttr), "{f:?}");
        }
        assert!(report.converged, "{}", report.convergence_detail);
        assert!(report.probes_total > 50, "{report:#?}");
        assert!(
            report.probes_failed > 0 && report.probes_failed < report.probes_total,
            "{report:#?}"
        );
        assert!(
            (0.1..1.5).contains(&report.longest_outage_seconds),
            "{report:#?}"
        );
        assert!(report.probe_success_rate > 0.0 && report.probe_success_rate < 1.0);
        assert!(
            report.mttr_p50_seconds <= report.mttr_p99_seconds
                && report.mttr_p99_seconds <= report.mttr_max_seconds
        );
        assert_eq!(state.lock().unwrap().recorded.len(), 4);
        assert_eq!(state.lock().unwrap().recorded[0]["fault"], "kill");
        print_report(&report, Output::Text);
        print_report(&report, Output::Json);
        let text = serde_json::to_value(&report).unwrap();
        assert_eq!(text["faults"][0]["fault"], "kill");
    }

    #[test]
    fn run_needs_a_load_balancer_and_reports_effector_errors() {
        let (client, _) = fake(false);
        let e = run(&client, &ChaosOptions::new("demo"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("load balancer"), "{e}");

        let (client, _) = fake(true);
        let opts = ChaosOptions {
            duration: Duration::from_millis(300),
            interval: Duration::from_millis(300),
            settle: Duration::from_millis(200),
            faults: vec![FaultKind::Pause],
            ..ChaosOptions::new("demo")
        };
        let report = run(&client, &opts).unwrap();
        assert_eq!(report.faults.len(), 1);
        assert_eq!(report.faults_injected, 0);
        let err = report.faults[0].error.as_deref().unwrap_or_default();
        assert!(
            err.contains("pause effector failed") && err.contains("404"),
            "{err}"
        );
        assert!(report.converged, "{}", report.convergence_detail);
        assert_eq!(report.probes_failed, 0);
        let e = run(
            &client,
            &ChaosOptions {
                target: Some("nope".into()),
                ..ChaosOptions::new("demo")
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`nope`"), "{e}");
    }
}
