//! The pure decision: recommendations, stabilization, steps, bounds, the
//! capacity high-water mark, and random sequences.

use super::*;
use proptest::prelude::*;

fn cfg() -> AutoscalerConfig {
    serde_yaml::from_str(
        "metric: load\nlower: 10\nupper: 20\nmin_size: 1\nmax_size: 10\ndown_stabilization: 0s\n",
    )
    .unwrap()
}

fn run(c: &AutoscalerConfig, h: &mut AutoscalerHistory, v: f64, size: u32, now: u64) -> Evaluation {
    evaluate(c, h, Some((v, now)), size, now)
}

#[test]
fn a_set_point_follows_the_metric_exactly() {
    // lower = upper: the host pool's autoscaler (demand per host).
    let c: AutoscalerConfig =
        serde_yaml::from_str("metric: d\nlower: 1\nupper: 1\ntolerance: 0\nmax_size: 100\n")
            .unwrap();
    c.check().unwrap();
    for (want, have) in [(7u32, 3u32), (3, 7), (10, 3), (1, 9), (5, 5)] {
        let (_, got) = recommend(&c, want as f64 / have as f64, have);
        assert_eq!(got, want, "{want} wanted of {have}");
    }
}

#[test]
fn hot_grows_by_brooklyns_rule() {
    let c = cfg();
    let mut h = AutoscalerHistory::default();
    // 30 per member × 2 members = 60 total; 60 / 20 = 3.
    let e = run(&c, &mut h, 30.0, 2, 0);
    assert_eq!((e.pool, e.resize_to), (Pool::Hot, Some(3)));
}

#[test]
fn cold_shrinks_without_landing_hot() {
    let c = cfg();
    let mut h = AutoscalerHistory::default();
    // 5 × 4 = 20 total; floor(20 / 10) = 2; at 2 members 10 each: fine.
    let e = run(&c, &mut h, 5.0, 4, 0);
    assert_eq!((e.pool, e.resize_to), (Pool::Cold, Some(2)));
    // Anti-thrash: lower 10, upper 12: 9 × 4 = 36; floor(36/10) = 3 → 12
    // each, not hot; but with upper 11, 3 members would be hot (12 > 11): stay at 4.
    let c2 = AutoscalerConfig {
        upper: 11.0,
        ..cfg()
    };
    let e = run(&c2, &mut AutoscalerHistory::default(), 8.9, 4, 0);
    assert_eq!(e.resize_to, None, "{e:?}");
}

#[test]
fn noise_inside_the_tolerance_does_nothing() {
    let c = cfg();
    let mut h = AutoscalerHistory::default();
    for (i, v) in [21.9, 9.1, 20.5, 10.0, 15.0, 21.0].iter().enumerate() {
        let e = run(&c, &mut h, *v, 3, i as u64 * 1000);
        assert_eq!(e.resize_to, None, "{v}: {e:?}");
    }
}

#[test]
fn a_missing_or_stale_metric_never_scales_down() {
    let c = cfg();
    let mut h = AutoscalerHistory::default();
    assert_eq!(evaluate(&c, &mut h, None, 5, 0).resize_to, None);
    assert_eq!(
        evaluate(&c, &mut h, Some((0.0, 0)), 5, 60_000).resize_to,
        None,
        "stale"
    );
    assert_eq!(
        evaluate(&c, &mut h, Some((f64::NAN, 60_000)), 5, 60_000).resize_to,
        None,
        "NaN"
    );
}

#[test]
fn a_steady_breach_resizes_only_after_the_up_window() {
    let c = AutoscalerConfig {
        up_stabilization: Duration::from_secs(5),
        ..cfg()
    };
    let mut h = AutoscalerHistory::default();
    let mut first = None;
    // Virtual time: a sample every 250 ms.
    for i in 0..40u64 {
        let now = 1_000_000 + i * 250;
        let e = run(&c, &mut h, 40.0, 2, now);
        if e.resize_to.is_some() && first.is_none() {
            first = Some(now - 1_000_000);
            assert_eq!(e.resize_to, Some(4));
        }
    }
    assert_eq!(
        first,
        Some(5_000),
        "resize exactly when the 5 s window is covered"
    );
}

#[test]
fn a_short_spike_inside_the_window_changes_nothing() {
    let c = AutoscalerConfig {
        up_stabilization: Duration::from_secs(5),
        ..cfg()
    };
    let mut h = AutoscalerHistory::default();
    for i in 0..40u64 {
        let v = if (10..14).contains(&i) { 100.0 } else { 15.0 };
        assert_eq!(run(&c, &mut h, v, 2, i * 250).resize_to, None);
    }
}

#[test]
fn down_window_takes_the_highest_recommendation() {
    let c = AutoscalerConfig {
        down_stabilization: Duration::from_secs(10),
        ..cfg()
    };
    let mut h = AutoscalerHistory::default();
    let mut resized_at = None;
    for i in 0..60u64 {
        let e = run(&c, &mut h, 2.0, 5, i * 500);
        if let Some(to) = e.resize_to {
            resized_at = Some((i * 500, to));
            break;
        }
    }
    assert_eq!(resized_at, Some((10_000, 1)));
}

#[test]
fn steps_are_limited_and_rounded() {
    let c = AutoscalerConfig {
        max_step_up: Some(2),
        step_increment: 1,
        ..cfg()
    };
    assert_eq!(
        run(&c, &mut AutoscalerHistory::default(), 100.0, 2, 0).resize_to,
        Some(4)
    );
    let c = AutoscalerConfig {
        step_increment: 3,
        ..cfg()
    };
    assert_eq!(
        run(&c, &mut AutoscalerHistory::default(), 30.0, 2, 0).resize_to,
        Some(5)
    );
}

#[test]
fn the_high_water_mark_holds_growth_below_it() {
    let c = cfg();
    let mut h = AutoscalerHistory::default();
    on_insufficient_capacity(&c, &mut h, 4, 0);
    assert_eq!(run(&c, &mut h, 100.0, 2, 1_000).resize_to, Some(3));
    // The mark expires.
    assert_eq!(run(&c, &mut h, 100.0, 3, 400_000).resize_to, Some(10));
}

#[test]
fn config_checks_name_the_key() {
    let c = AutoscalerConfig {
        lower: 30.0,
        ..cfg()
    };
    assert_eq!(c.check().unwrap_err().0, "upper");
    let c = AutoscalerConfig {
        min_size: 5,
        max_size: 2,
        ..cfg()
    };
    assert_eq!(c.check().unwrap_err().0, "max_size");
}

proptest! {
    #[test]
    fn the_result_is_always_within_min_and_max(
        samples in proptest::collection::vec(0.0f64..1000.0, 1..50),
        size in 0u32..40, min in 1u32..5, extra in 0u32..20,
    ) {
        let c = AutoscalerConfig { min_size: min, max_size: min + extra, up_stabilization: Duration::ZERO, ..cfg() };
        let mut h = AutoscalerHistory::default();
        let mut size = size;
        for (i, v) in samples.iter().enumerate() {
            let e = run(&c, &mut h, *v, size, i as u64 * 250);
            if let Some(to) = e.resize_to {
                prop_assert!(to >= c.min_size && to <= c.max_size, "{to} outside [{}, {}]", c.min_size, c.max_size);
                size = to;
            }
        }
    }

    #[test]
    fn no_resize_while_the_metric_stays_in_the_band(
        samples in proptest::collection::vec(9.0f64..22.0, 1..100), size in 1u32..10,
    ) {
        // 9.0 and 22.0 are inside lower × 0.9 and upper × 1.1.
        let c = cfg();
        let mut h = AutoscalerHistory::default();
        for (i, v) in samples.iter().enumerate() {
            prop_assert_eq!(run(&c, &mut h, *v, size, i as u64 * 250).resize_to, None);
        }
    }

    #[test]
    fn a_step_never_exceeds_its_maximum(v in 0.0f64..1000.0, size in 1u32..10, up in 1u32..4, down in 1u32..4) {
        let c = AutoscalerConfig { max_step_up: Some(up), max_step_down: Some(down), max_size: 100, ..cfg() };
        if let Some(to) = run(&c, &mut AutoscalerHistory::default(), v, size, 0).resize_to {
            prop_assert!(to <= size + up && to + down >= size);
        }
    }
}
