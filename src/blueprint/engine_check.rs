//! Health checks the engine runs inside the container (a Docker healthcheck): `exec` or compose's
//! `test`, beside drover's own `tcp`/`http` probes.

use super::health_test::HealthTest;
use super::model::HealthCheck;
use super::problem::{FieldPath, ValidationError};

impl HealthCheck {
    /// The Docker `Healthcheck.Test` of a check the engine runs; `None` for drover's own
    /// `tcp`/`http` probes.
    pub fn engine_test(&self) -> Option<Vec<String>> {
        if let Some(args) = &self.exec {
            return Some(HealthTest::Cmd(args.clone()).docker_test());
        }
        self.test.as_ref().map(HealthTest::docker_test)
    }

    /// The engine runs this check (`exec` or `test`), not drover.
    pub fn by_engine(&self) -> bool {
        self.exec.is_some() || self.test.is_some()
    }
}

/// Docker refuses intervals, timeouts and start periods below 1ms.
const ENGINE_MIN: std::time::Duration = std::time::Duration::from_millis(1);

/// The rules of an engine-run check at `hpath` (called when it has `exec` or `test`).
pub fn validate_engine_check(hpath: &FieldPath, h: &HealthCheck, errs: &mut Vec<ValidationError>) {
    if h.exec
        .as_ref()
        .is_some_and(|a| a.is_empty() || a[0].trim().is_empty())
    {
        errs.push(ValidationError::at(
            hpath.key("exec"),
            "`exec` needs the command to run, e.g. `exec: [pg_isready, -U, app]`",
        ));
    }
    match &h.test {
        Some(HealthTest::None) => errs.push(ValidationError::at(
            hpath.key("test"),
            "`test: [NONE]` turns the check off; leave `health` out instead",
        )),
        Some(HealthTest::Cmd(args)) if args.is_empty() => errs.push(ValidationError::at(
            hpath.key("test"),
            "`test: [CMD]` needs the command to run, e.g. `[CMD, pg_isready]`",
        )),
        Some(HealthTest::Shell(cmd)) if cmd.trim().is_empty() => errs.push(ValidationError::at(
            hpath.key("test"),
            "`test` needs the command to run, e.g. `pg_isready -U app`",
        )),
        _ => {}
    }
    for (field, value) in [
        ("interval", Some(h.interval)),
        ("timeout", Some(h.timeout)),
        ("start_period", h.start_period),
    ] {
        if value.is_some_and(|v| !v.is_zero() && v < ENGINE_MIN) {
            errs.push(ValidationError::at(
                hpath.key(field),
                format!("`{field}` of a check the engine runs must be at least 1ms"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_is_cmd() {
        let h: HealthCheck = serde_yaml::from_str("{ exec: [/workload, --check, x] }").unwrap();
        assert!(h.by_engine());
        assert_eq!(
            h.engine_test().unwrap(),
            ["CMD", "/workload", "--check", "x"]
        );
        let tcp: HealthCheck = serde_yaml::from_str("{ tcp: { port: 1 }, retries: 4 }").unwrap();
        assert!(!tcp.by_engine());
        assert_eq!(tcp.engine_test(), None);
        assert_eq!(tcp.unhealthy_threshold, 4, "`retries` is compose's name");
    }

    #[test]
    fn engine_check_rules() {
        let check = |yaml: &str| {
            let h: HealthCheck = serde_yaml::from_str(yaml).unwrap();
            let mut errs = Vec::new();
            validate_engine_check(&FieldPath::root().key("health"), &h, &mut errs);
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert!(check("{ exec: [a], start_period: 30s }").is_empty());
        assert_eq!(
            check("{ exec: [] }"),
            ["health.exec: `exec` needs the command to run, e.g. `exec: [pg_isready, -U, app]`"]
        );
        assert_eq!(
            check("{ test: [NONE] }"),
            ["health.test: `test: [NONE]` turns the check off; leave `health` out instead"]
        );
        assert_eq!(
            check("{ test: x, interval: 500us }"),
            ["health.interval: `interval` of a check the engine runs must be at least 1ms"]
        );
    }
}
