//! Request latency of the HTTP data plane: a lock-free log-scale histogram
//! and the quantiles read from the difference of two snapshots (pure).
//!
//! Sixteen buckets per doubling (each ~4.4% wide, a bucket's middle is
//! within 2.2% of any value in it) from 1 µs to ~134 s: quantiles are well
//! within the 10% a load generator's own figures can be compared at, and
//! recording is one atomic add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per doubling of the latency.
const PER_OCTAVE: f64 = 16.0;
/// Octaves covered from 1 µs: 2^27 µs is ~134 s; slower lands in the last bucket.
const OCTAVES: usize = 27;
/// Number of buckets.
pub const BUCKETS: usize = OCTAVES * PER_OCTAVE as usize + 1;

/// The bucket of a latency.
pub fn bucket_of(d: Duration) -> usize {
    let us = d.as_secs_f64() * 1e6;
    if us <= 1.0 {
        return 0;
    }
    ((us.log2() * PER_OCTAVE) as usize).min(BUCKETS - 1)
}

/// The value a bucket stands for: its geometric middle, in seconds.
pub fn bucket_value(i: usize) -> f64 {
    2f64.powf((i as f64 + 0.5) / PER_OCTAVE) / 1e6
}

/// Counts per bucket, shared by every connection of a proxy.
pub struct Histogram {
    counts: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        self.counts[bucket_of(d)].fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts since the proxy started.
    pub fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// The `q` quantile (0..=1), in seconds, of the requests recorded between
/// two snapshots; `None` when none were. A missing or shorter `before`
/// (a fresh proxy) counts as zeros.
pub fn quantile_between(before: &[u64], after: &[u64], q: f64) -> Option<f64> {
    let delta: Vec<u64> = after
        .iter()
        .enumerate()
        .map(|(i, a)| a.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect();
    let total: u64 = delta.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile, 1-based: p99 of 100 requests is the 99th.
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (i, n) in delta.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    Some(bucket_value(BUCKETS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_stands_for_its_values_within_three_percent() {
        for us in [2u64, 17, 250, 999, 4_321, 87_000, 1_500_000, 60_000_000] {
            let d = Duration::from_micros(us);
            let v = bucket_value(bucket_of(d));
            let err = (v - d.as_secs_f64()).abs() / d.as_secs_f64();
            assert!(err < 0.03, "{us} µs read as {v} s ({err})");
        }
    }

    #[test]
    fn quantiles_come_from_the_window_between_snapshots() {
        let h = Histogram::default();
        for _ in 0..1000 {
            h.record(Duration::from_millis(100));
        }
        let before = h.snapshot();
        for _ in 0..98 {
            h.record(Duration::from_millis(1));
        }
        for _ in 0..2 {
            h.record(Duration::from_millis(50));
        }
        let after = h.snapshot();
        let p50 = quantile_between(&before, &after, 0.5).unwrap();
        let p99 = quantile_between(&before, &after, 0.99).unwrap();
        assert!((p50 - 0.001).abs() < 0.00003, "p50 {p50}");
        assert!((p99 - 0.050).abs() < 0.0015, "p99 {p99}");
        assert_eq!(quantile_between(&after, &after, 0.5), None);
        // A fresh proxy: everything since the start.
        let all = quantile_between(&[], &after, 0.5).unwrap();
        assert!((all - 0.1).abs() < 0.003, "{all}");
    }

    #[test]
    fn slower_than_the_range_lands_in_the_last_bucket() {
        assert_eq!(bucket_of(Duration::from_secs(10_000)), BUCKETS - 1);
        assert_eq!(bucket_of(Duration::ZERO), 0);
    }
}
