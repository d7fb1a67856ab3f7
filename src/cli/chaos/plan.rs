//! The pure decisions of `drover chaos`: the seeded fault schedule, the
//! victim choice, the percentiles and the per-fault summary of the report.
//! The same seed gives the same schedule and, against the same sequence of
//! application states, the same victims.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::{FaultKind, FaultRecord, FaultSummary};

/// A schedule never holds more faults than this, whatever the options.
const MAX_FAULTS: u128 = 1_000_000;

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

/// Seed of the victim choice, derived from the run's seed.
pub(super) fn victim_seed(seed: u64) -> u64 {
    seed ^ 0x5eed_c4a0_5eed_c4a0
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

/// Picks the victim among `candidates` (members, or hosts, that may be
/// faulted now) with the seeded `rng`. The candidates are sorted (and
/// deduplicated) first, so the choice depends on the set only, not on the
/// order the service listed them. `None` (and the rng untouched) if there
/// is no candidate.
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

/// The recovery times, ascending.
pub(super) fn sorted_mttrs<'a>(records: impl Iterator<Item = &'a FaultRecord>) -> Vec<f64> {
    let mut mttrs: Vec<f64> = records.filter_map(|r| r.mttr_seconds).collect();
    mttrs.sort_by(f64::total_cmp);
    mttrs
}

/// One summary per kind of fault drawn, in [`FaultKind::ALL`] order: how
/// many were attempted, injected and recovered, the MTTR percentiles, and
/// how the faults were injected (each distinct way once).
pub fn summarise_by_fault(records: &[FaultRecord]) -> Vec<FaultSummary> {
    let mut by: BTreeMap<usize, Vec<&FaultRecord>> = BTreeMap::new();
    for r in records {
        let rank = FaultKind::ALL
            .iter()
            .position(|k| *k == r.fault)
            .unwrap_or(usize::MAX);
        by.entry(rank).or_default().push(r);
    }
    by.into_values()
        .map(|rs| {
            let mttrs = sorted_mttrs(rs.iter().copied());
            let mut how: Vec<String> = Vec::new();
            for h in rs.iter().filter_map(|r| r.how.as_ref()) {
                if !how.contains(h) {
                    how.push(h.clone());
                }
            }
            FaultSummary {
                fault: rs[0].fault,
                attempted: rs.len(),
                injected: rs.iter().filter(|r| r.error.is_none()).count(),
                recovered: mttrs.len(),
                mttr_p50_seconds: percentile(&mttrs, 50.0),
                mttr_p99_seconds: percentile(&mttrs, 99.0),
                mttr_max_seconds: mttrs.last().copied(),
                how,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!("sigkill".parse::<FaultKind>(), Ok(FaultKind::Sigkill));
        assert_eq!(
            "engine-stop".parse::<FaultKind>(),
            Ok(FaultKind::EngineStop)
        );
        let err = "reboot".parse::<FaultKind>().unwrap_err().to_string();
        assert!(
            err.contains("reboot") && err.contains("kill, stop, pause, sigkill, engine-stop"),
            "{err}"
        );
        for k in FaultKind::ALL {
            assert_eq!(k.to_string().parse::<FaultKind>(), Ok(k));
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }

    fn record(fault: FaultKind, mttr: Option<f64>, how: Option<&str>, error: bool) -> FaultRecord {
        FaultRecord {
            at_seconds: 0.0,
            fault,
            target: "web-1".into(),
            how: how.map(str::to_string),
            affected: vec![],
            mttr_seconds: mttr,
            error: error.then(|| "boom".to_string()),
        }
    }

    #[test]
    fn summaries_per_fault_kind() {
        let stop = "docker stop through engine local";
        let records = vec![
            record(FaultKind::Stop, Some(0.6), Some(stop), false),
            record(
                FaultKind::Kill,
                Some(0.4),
                Some("docker kill (SIGKILL) through engine local"),
                false,
            ),
            record(FaultKind::Stop, Some(0.8), Some(stop), false),
            record(FaultKind::Stop, None, None, true),
            record(FaultKind::Stop, None, Some(stop), false),
        ];
        let s = summarise_by_fault(&records);
        // In the order of FaultKind::ALL, whatever the order drawn.
        assert_eq!(
            s.iter().map(|x| x.fault).collect::<Vec<_>>(),
            vec![FaultKind::Kill, FaultKind::Stop]
        );
        let stop_summary = &s[1];
        assert_eq!(
            (
                stop_summary.attempted,
                stop_summary.injected,
                stop_summary.recovered
            ),
            (4, 3, 2)
        );
        assert_eq!(stop_summary.mttr_p50_seconds, Some(0.6));
        assert_eq!(stop_summary.mttr_p99_seconds, Some(0.8));
        assert_eq!(stop_summary.mttr_max_seconds, Some(0.8));
        // Each way of injecting once.
        assert_eq!(stop_summary.how, vec![stop.to_string()]);
        assert_eq!(s[0].mttr_p50_seconds, Some(0.4));
        assert!(summarise_by_fault(&[]).is_empty());
    }
}
