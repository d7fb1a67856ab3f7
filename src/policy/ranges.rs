//! The ranges of every policy tunable: durations, counts and ratios.
//!
//! serde checks types; this checks sizes. A value outside its range is a
//! typo or an attack (`backoff_cap: 18446744073709551615s` once panicked
//! the restarter), never a setting anyone means, so it is refused where
//! the config is parsed ([`super::parse_config`]): blueprints, presets and
//! REST policy PUTs all pass through there, and the error names the key.
//!
//! The bounds are generous: a week for any duration (no control loop here
//! needs to remember longer), a million for counts and sizes.

use std::time::Duration;

use super::{PolicyConfig, PolicyConfigError};

/// The longest duration any tunable takes.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest count or size any tunable takes.
pub const MAX_COUNT: u32 = 1_000_000;
/// The largest backoff multiplier.
pub const MAX_BACKOFF_FACTOR: f64 = 100.0;
/// The largest autoscaler bound: metrics are rates, percentages and
/// counts; beyond this f64 arithmetic on them loses precision.
pub const MAX_BOUND: f64 = 1e12;

/// Every range error of a policy config, each with its key.
pub fn check_ranges(config: &PolicyConfig) -> Result<(), Vec<PolicyConfigError>> {
    let mut errs = Vec::new();
    let mut dur = |key: &str, d: Duration| {
        if let Some(e) = duration_error(key, d) {
            errs.push(e);
        }
    };
    match config {
        PolicyConfig::Restarter(c) => {
            dur("initial_delay", c.initial_delay);
            dur("backoff_start", c.backoff_start);
            dur("backoff_cap", c.backoff_cap);
            dur("window", c.window);
            dur("reset_after", c.reset_after);
            count(&mut errs, "max_restarts", c.max_restarts);
            if !(c.backoff_factor.is_finite()
                && (1.0..=MAX_BACKOFF_FACTOR).contains(&c.backoff_factor))
            {
                errs.push(err(
                    "backoff_factor",
                    format!(
                        "`backoff_factor` must be between 1 and {MAX_BACKOFF_FACTOR}, got {}",
                        c.backoff_factor
                    ),
                ));
            }
        }
        PolicyConfig::Replacer(c) => {
            dur("window", c.window);
            dur("retry_delay", c.retry_delay);
            count(&mut errs, "max_failures", c.max_failures);
        }
        PolicyConfig::Autoscaler(c) => {
            dur("up_stabilization", c.up_stabilization);
            dur("down_stabilization", c.down_stabilization);
            dur("metric_max_age", c.metric_max_age);
            dur("evaluation_interval", c.evaluation_interval);
            dur("high_water_hold", c.high_water_hold);
            count(&mut errs, "min_size", c.min_size);
            count(&mut errs, "max_size", c.max_size);
            count(&mut errs, "step_increment", c.step_increment);
            if let Some(n) = c.max_step_up {
                count(&mut errs, "max_step_up", n);
            }
            if let Some(n) = c.max_step_down {
                count(&mut errs, "max_step_down", n);
            }
            for (key, v) in [("lower", c.lower), ("upper", c.upper)] {
                if v.is_finite() && v > MAX_BOUND {
                    errs.push(err(
                        key,
                        format!("`{key}` must be at most {MAX_BOUND:e}, got {v}"),
                    ));
                }
            }
        }
        PolicyConfig::CpuPlacement(c) => {
            dur("for", c.window);
            dur("cooldown", c.cooldown);
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// A duration beyond [`MAX_DURATION`], as an error on `key`.
pub fn duration_error(key: &str, d: Duration) -> Option<PolicyConfigError> {
    (d > MAX_DURATION).then(|| {
        err(
            key,
            format!(
                "`{key}` must be at most {} (a week), got {}",
                humantime::format_duration(MAX_DURATION),
                humantime::format_duration(d)
            ),
        )
    })
}

fn count(errs: &mut Vec<PolicyConfigError>, key: &str, n: u32) {
    if n > MAX_COUNT {
        errs.push(err(
            key,
            format!("`{key}` must be at most {MAX_COUNT}, got {n}"),
        ));
    }
}

fn err(path: &str, message: String) -> PolicyConfigError {
    PolicyConfigError {
        path: path.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, yaml: &str) -> Result<PolicyConfig, Vec<PolicyConfigError>> {
        super::super::parse_config(kind, serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn the_overflowing_backoff_cap_is_refused_with_its_key() {
        let e = parse("restarter", "backoff_cap: 18446744073709551615s").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "backoff_cap");
        assert!(e[0].message.contains("at most 7days"), "{}", e[0].message);
    }

    #[test]
    fn every_out_of_range_value_is_reported() {
        let e = parse(
            "restarter",
            "backoff_factor: 1000\nmax_restarts: 4000000000\nwindow: 30days",
        )
        .unwrap_err();
        let keys: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(keys, ["window", "max_restarts", "backoff_factor"]);
        let e = parse(
            "autoscaler",
            "metric: m\nlower: 1\nupper: 1e300\nhigh_water_hold: 1000000h",
        )
        .unwrap_err();
        let keys: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(keys, ["high_water_hold", "upper"]);
    }

    #[test]
    fn the_defaults_and_the_limits_themselves_are_accepted() {
        for kind in ["restarter", "replacer"] {
            parse(kind, "{}").unwrap();
        }
        parse("restarter", "backoff_cap: 7days\nbackoff_factor: 100").unwrap();
        parse("replacer", "max_failures: 1000000").unwrap();
    }

    #[test]
    fn the_restarter_backoff_never_panics_even_on_an_unchecked_config() {
        let cfg = super::super::restarter::RestarterConfig {
            backoff_cap: Duration::from_secs(u64::MAX),
            backoff_start: Duration::from_secs(u64::MAX),
            backoff_factor: 1e300,
            ..Default::default()
        };
        for n in [1, 2, 3, 70, 1000] {
            let _ = super::super::restarter::backoff(n, &cfg);
        }
    }
}
