//! compose's `healthcheck.test` forms, and the Docker `Test` they become.

use std::fmt;

use serde::{Deserialize, Serialize};

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
}
