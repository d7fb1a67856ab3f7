//! `drover.yaml`'s `secrets`: which file each secret name a blueprint may use is read from.
//!
//! ```yaml
//! secrets:
//!   db_password: { file: /etc/drover/secrets/db_password }
//! ```
//!
//! The file is bind-mounted read-only into the containers that name the secret (at
//! `/run/secrets/NAME`); drover never reads it, so its content reaches neither the store, nor a
//! log, nor an API answer. It must exist on the machine of every engine that runs such a
//! container (here: this machine).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::blueprint::secrets::is_valid_secret_name;
use crate::blueprint::validate::{FieldPath, ValidationError};

/// Where one secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An absolute path to a regular file.
    pub file: PathBuf,
}

/// Names well-formed; files absolute and present (checked when drover starts, so a typo stops
/// start-up instead of failing a deploy later).
pub fn validate_secrets(secrets: &BTreeMap<String, SecretSource>) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (name, src) in secrets {
        let path = FieldPath::root().key("secrets").key(name.as_str());
        if !is_valid_secret_name(name) {
            errs.push(ValidationError::at(
                path.clone(),
                format!(
                    "secret name `{name}` is invalid: use letters, digits, `_`, `-` and `.` \
                     (at most 64, not starting with `.`)"
                ),
            ));
        }
        let file = &src.file;
        if !file.is_absolute() {
            errs.push(ValidationError::at(
                path.key("file"),
                format!("`{}` must be an absolute path", file.display()),
            ));
        } else if !file.is_file() {
            errs.push(ValidationError::at(
                path.key("file"),
                format!(
                    "`{}` is not a file on this machine; create it (readable by the engine) \
                     or fix the path",
                    file.display()
                ),
            ));
        }
    }
    errs
}

/// Name → file, as the host module mounts them.
pub fn secret_files(secrets: &BTreeMap<String, SecretSource>) -> BTreeMap<String, PathBuf> {
    secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.file.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("pw");
        std::fs::write(&good, "s3cret").unwrap();
        let secrets: BTreeMap<String, SecretSource> = [
            ("db".to_string(), SecretSource { file: good.clone() }),
            ("bad/name".to_string(), SecretSource { file: good }),
            ("rel".to_string(), SecretSource { file: "pw".into() }),
            (
                "gone".to_string(),
                SecretSource {
                    file: dir.path().join("nope"),
                },
            ),
        ]
        .into();
        let got: Vec<String> = validate_secrets(&secrets)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("secrets[\"bad/name\"]: secret name `bad/name` is invalid"));
        assert!(got[1].starts_with("secrets.gone.file: `") && got[1].ends_with("is not a file on this machine; create it (readable by the engine) or fix the path"), "{}", got[1]);
        assert_eq!(got[2], "secrets.rel.file: `pw` must be an absolute path");
    }
}
