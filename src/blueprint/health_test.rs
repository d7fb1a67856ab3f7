//! Health checks the engine runs inside the container (a Docker healthcheck): drover's `exec`
//! and compose's `test` forms, and the Docker `Test` they become.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::model::HealthCheck;
use super::problem::{FieldPath, ValidationError};

/// compose's `healthcheck.test`: `[CMD, args...]`, `[CMD-SHELL, "command"]`, a plain string
/// (= `CMD-SHELL`) or `[NONE]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "Vec<String>")]
pub enum HealthTest {
    /// Arguments run directly (no shell).
    Cmd(Vec<String>),
    /// A command run by the image's `/bin/sh -c`.
    Shell(String),
    /// compose's way to turn off the image's check.
    None,
}

impl From<HealthTest> for Vec<String> {
    fn from(t: HealthTest) -> Vec<String> {
        t.docker_test()
    }
}

impl HealthTest {
    /// Docker's `Healthcheck.Test`.
    pub fn docker_test(&self) -> Vec<String> {
        match self {
            HealthTest::Cmd(args) => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
            HealthTest::Shell(cmd) => vec!["CMD-SHELL".into(), cmd.clone()],
            HealthTest::None => vec!["NONE".into()],
        }
    }
}

/// A `test` of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthTestError {
    #[error("`test` is a list of text starting with CMD, CMD-SHELL or NONE, or a string (run by the shell), got {0}")]
    Shape(String),
    #[error("`test` starts with `{0}`; it must start with CMD (arguments), CMD-SHELL (a shell command) or NONE")]
    Kind(String),
    #[error("`test: [CMD-SHELL, ...]` takes one command string, got {0} items")]
    ShellArity(usize),
}

impl TryFrom<serde_yaml::Value> for HealthTest {
    type Error = HealthTestError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, HealthTestError> {
        use serde_yaml::Value;
        let items = match v {
            Value::String(cmd) => return Ok(HealthTest::Shell(cmd)),
            Value::Sequence(items) => items,
            other => return Err(HealthTestError::Shape(format!("{other:?}"))),
        };
        let mut words = Vec::new();
        for item in items {
            match item {
                Value::String(s) => words.push(s),
                Value::Number(n) => words.push(n.to_string()),
                other => return Err(HealthTestError::Shape(format!("{other:?}"))),
            }
        }
        let Some((kind, rest)) = words.split_first() else {
            return Err(HealthTestError::Shape("an empty list".into()));
        };
        match kind.as_str() {
            "CMD" => Ok(HealthTest::Cmd(rest.to_vec())),
            "CMD-SHELL" if rest.len() == 1 => Ok(HealthTest::Shell(rest[0].clone())),
            "CMD-SHELL" => Err(HealthTestError::ShellArity(rest.len())),
            "NONE" => Ok(HealthTest::None),
            other => Err(HealthTestError::Kind(other.to_string())),
        }
    }
}

impl fmt::Display for HealthTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.docker_test())
    }
}

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

    fn t(yaml: &str) -> Result<HealthTest, HealthTestError> {
        HealthTest::try_from(serde_yaml::from_str::<serde_yaml::Value>(yaml).unwrap())
    }

    #[test]
    fn compose_forms_become_dockers_test() {
        assert_eq!(
            t("[CMD, pg_isready, -U, app]").unwrap().docker_test(),
            ["CMD", "pg_isready", "-U", "app"]
        );
        assert_eq!(
            t("[CMD-SHELL, 'curl -f http://localhost || exit 1']")
                .unwrap()
                .docker_test(),
            ["CMD-SHELL", "curl -f http://localhost || exit 1"]
        );
        assert_eq!(
            t("'pg_isready -U app'").unwrap(),
            HealthTest::Shell("pg_isready -U app".into())
        );
        assert_eq!(t("[NONE]").unwrap(), HealthTest::None);
        assert_eq!(t("[RUN, x]"), Err(HealthTestError::Kind("RUN".into())));
        assert_eq!(t("[CMD-SHELL, a, b]"), Err(HealthTestError::ShellArity(2)));
        assert!(matches!(t("[]"), Err(HealthTestError::Shape(_))));
        assert!(matches!(t("{a: 1}"), Err(HealthTestError::Shape(_))));
    }

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
