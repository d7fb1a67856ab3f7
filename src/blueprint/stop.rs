//! How a container is stopped: `stop_signal` (Docker `StopSignal`) and `stop_grace_period`
//! (Docker `StopTimeout`: how long a stop waits after the signal before it kills).

use std::time::Duration;

use super::problem::{FieldPath, ValidationError};

/// drover's grace when the blueprint names none: short because members are
/// replaced rather than drained; Docker's own default (10s) would make every
/// shrink and replace slow. A database sets its own.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(3);

const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS", "RTMIN", "RTMAX",
];

/// Whether Docker takes `s` as a stop signal: a name with or without `SIG`
/// (`SIGTERM`, `QUIT`, `SIGRTMIN+3`) or a number from 1 to 64.
pub fn is_valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let (base, offset) = match name.find(['+', '-']) {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    match offset {
        None => SIGNALS.contains(&base),
        Some(o) => {
            matches!(base, "RTMIN" | "RTMAX")
                && o.parse::<u32>().is_ok_and(|n| (1..=30).contains(&n))
        }
    }
}

/// Docker's `StopTimeout` (whole seconds, rounded up) for a grace period.
pub fn stop_timeout_secs(grace: Option<Duration>) -> i64 {
    let g = grace.unwrap_or(DEFAULT_STOP_GRACE);
    g.as_secs() as i64 + i64::from(g.subsec_nanos() > 0)
}

/// The rules of `stop_signal` and `stop_grace_period` of a container at `path`.
pub fn validate_stop(
    path: &FieldPath,
    signal: Option<&str>,
    grace: Option<Duration>,
    errs: &mut Vec<ValidationError>,
) {
    if let Some(s) = signal {
        if !is_valid_signal(s) {
            errs.push(ValidationError::at(
                path.key("stop_signal"),
                format!(
                    "`stop_signal` `{s}` is not a signal: write a name such as SIGTERM, SIGINT, \
                     SIGQUIT (or a number from 1 to 64)"
                ),
            ));
        }
    }
    if grace.is_some_and(|g| g > Duration::from_secs(3600)) {
        errs.push(ValidationError::at(
            path.key("stop_grace_period"),
            "`stop_grace_period` is at most 1h",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        for good in [
            "SIGTERM",
            "TERM",
            "SIGQUIT",
            "SIGRTMIN+3",
            "RTMAX-1",
            "9",
            "64",
        ] {
            assert!(is_valid_signal(good), "{good}");
        }
        for bad in [
            "",
            "sigterm",
            "SIGFOO",
            "0",
            "65",
            "SIGTERM+1",
            "SIGRTMIN+",
            "SIG",
        ] {
            assert!(!is_valid_signal(bad), "{bad}");
        }
    }

    #[test]
    fn grace_in_whole_seconds() {
        assert_eq!(stop_timeout_secs(None), 3);
        assert_eq!(stop_timeout_secs(Some(Duration::from_secs(30))), 30);
        assert_eq!(stop_timeout_secs(Some(Duration::from_millis(1500))), 2);
        assert_eq!(stop_timeout_secs(Some(Duration::ZERO)), 0);
    }

    #[test]
    fn rules_with_paths() {
        let mut errs = Vec::new();
        validate_stop(
            &FieldPath::root().key("c"),
            Some("SIGNOPE"),
            Some(Duration::from_secs(7200)),
            &mut errs,
        );
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "c.stop_signal: `stop_signal` `SIGNOPE` is not a signal: write a name such as \
                 SIGTERM, SIGINT, SIGQUIT (or a number from 1 to 64)",
                "c.stop_grace_period: `stop_grace_period` is at most 1h",
            ]
        );
    }
}
