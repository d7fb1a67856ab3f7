//! Secrets a container reads from files: the blueprint names them, `drover.yaml` says which file
//! each name is (`secrets: { db_password: { file: /etc/drover/db_password } }`), and the file is
//! bind-mounted read-only at `/run/secrets/NAME` (or `target`). The blueprint, and so drover's
//! store and API answers, holds only the name; drover never reads the file.
//!
//! ```yaml
//! secrets:
//!   - db_password                               # /run/secrets/db_password
//!   - { name: tls_key, target: server.key }     # /run/secrets/server.key
//!   - { name: app_conf, target: /etc/app.conf } # an absolute path
//! ```

use serde::{Deserialize, Serialize};

use super::problem::{FieldPath, ValidationError};

/// Where secrets are mounted unless `target` is an absolute path.
pub const SECRETS_DIR: &str = "/run/secrets";

/// One secret a container mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value")]
pub struct SecretRef {
    /// The name `drover.yaml`'s `secrets` knows it by.
    pub name: String,
    /// The file's path in the container: a file name under `/run/secrets`,
    /// or an absolute path. Default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl SecretRef {
    /// The path the file is mounted at in the container.
    pub fn path(&self) -> String {
        let t = self.target.as_deref().unwrap_or(&self.name);
        if t.starts_with('/') {
            t.to_string()
        } else {
            format!("{SECRETS_DIR}/{t}")
        }
    }
}

/// A `secrets` entry of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefError {
    #[error("`secrets.{0}` must be text")]
    NotText(String),
    #[error("unknown field `{0}` in a secret, expected `name` or `target`")]
    UnknownField(String),
    #[error("a secret needs `name`, as `drover.yaml`'s `secrets` names it")]
    NoName,
    #[error("a secret is a name (`- db_password`) or `{{ name, target }}`")]
    Shape,
}

impl TryFrom<serde_yaml::Value> for SecretRef {
    type Error = SecretRefError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, SecretRefError> {
        use serde_yaml::Value;
        match v {
            Value::String(name) => Ok(SecretRef { name, target: None }),
            Value::Mapping(m) => {
                let (mut name, mut target) = (None, None);
                for (k, v) in m {
                    let key = k.as_str().unwrap_or_default().to_string();
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| SecretRefError::NotText(key.clone()));
                    match key.as_str() {
                        "name" => name = Some(text?),
                        "target" => target = Some(text?),
                        other => return Err(SecretRefError::UnknownField(other.to_string())),
                    }
                }
                Ok(SecretRef {
                    name: name.ok_or(SecretRefError::NoName)?,
                    target,
                })
            }
            _ => Err(SecretRefError::Shape),
        }
    }
}

/// Whether `name` can name a secret: letters, digits, `_`, `-` and `.`, not starting with `.`
/// (it is also the default file name).
pub fn is_valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The rules of a container's `secrets` (at `path`): names well-formed, targets a plain file
/// name or a clean absolute path, no two at one path.
pub fn validate_secrets(path: &FieldPath, secrets: &[SecretRef], errs: &mut Vec<ValidationError>) {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        let spath = path.index(i);
        if !is_valid_secret_name(&s.name) {
            errs.push(ValidationError::at(
                spath.key("name"),
                format!(
                    "secret name `{}` is invalid: use letters, digits, `_`, `-` and `.` \
                     (at most 64, not starting with `.`)",
                    s.name
                ),
            ));
            continue;
        }
        if let Some(t) = &s.target {
            let bad = if t.starts_with('/') {
                t.split('/').any(|seg| seg == ".." || seg == ".") || t.ends_with('/') || t == "/"
            } else {
                t.is_empty() || t.contains('/') || t == "." || t == ".."
            };
            if bad {
                errs.push(ValidationError::at(
                    spath.key("target"),
                    format!(
                        "secret target `{t}` must be a file name (mounted under {SECRETS_DIR}) \
                         or an absolute file path without `.` or `..`"
                    ),
                ));
                continue;
            }
        }
        let at = s.path();
        match seen.iter().find(|(p, _)| *p == at) {
            Some((_, j)) => errs.push(ValidationError::at(
                spath,
                format!("secrets[{j}] is mounted at {at} too; give one a different `target`"),
            )),
            None => seen.push((at, i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(yaml: &str) -> Result<SecretRef, SecretRefError> {
        SecretRef::try_from(serde_yaml::from_str::<serde_yaml::Value>(yaml).unwrap())
    }

    #[test]
    fn both_forms_and_their_paths() {
        let short = s("db_password").unwrap();
        assert_eq!(short.path(), "/run/secrets/db_password");
        let long = s("{ name: tls, target: server.key }").unwrap();
        assert_eq!(long.path(), "/run/secrets/server.key");
        assert_eq!(
            s("{ name: c, target: /etc/app.conf }").unwrap().path(),
            "/etc/app.conf"
        );
        assert_eq!(s("{ target: x }"), Err(SecretRefError::NoName));
        assert_eq!(
            s("{ name: a, file: x }"),
            Err(SecretRefError::UnknownField("file".into()))
        );
        assert_eq!(s("7"), Err(SecretRefError::Shape));
        assert_eq!(
            s("{ name: 7 }"),
            Err(SecretRefError::NotText("name".into()))
        );
    }

    #[test]
    fn names_targets_and_clashes_are_checked_with_their_paths() {
        let list: Vec<SecretRef> = serde_yaml::from_str(
            "[ok, 'b/ad', { name: t, target: ../x }, { name: u, target: /a/../b }, \
             { name: v, target: ok }, { name: w, target: /etc/w.conf }]",
        )
        .unwrap();
        let mut errs = Vec::new();
        validate_secrets(&FieldPath::root().key("secrets"), &list, &mut errs);
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            got,
            [
                "secrets[1].name: secret name `b/ad` is invalid: use letters, digits, `_`, `-` \
                 and `.` (at most 64, not starting with `.`)",
                "secrets[2].target: secret target `../x` must be a file name (mounted under \
                 /run/secrets) or an absolute file path without `.` or `..`",
                "secrets[3].target: secret target `/a/../b` must be a file name (mounted under \
                 /run/secrets) or an absolute file path without `.` or `..`",
                "secrets[4]: secrets[0] is mounted at /run/secrets/ok too; give one a different \
                 `target`",
            ]
        );
    }
}
