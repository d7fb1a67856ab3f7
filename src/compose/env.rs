//! A service's `env_file` and `environment` → drover's `env` (pure but
//! for the file reader the caller hands in).
//!
//! As compose: the `env_file`s are read in order (later files win), then
//! `environment` wins over them; a variable written without a value
//! (`- DEBUG`, `DEBUG:`) takes its value from the environment compose
//! interpolates from (the process environment over `.env`), and is left
//! out when that has none.

use serde_yaml::{Mapping, Value};

use super::{dotenv, key, literal, s, scalar, ComposeError, Ctx};

/// `env_file`: a path, a list of paths, or a list of `{path, required}`.
pub(super) fn env_files(
    cx: &mut Ctx,
    at: &str,
    v: &Value,
    env: &mut Mapping,
) -> Result<(), ComposeError> {
    let entries: Vec<(String, bool)> = match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| match i {
                Value::Mapping(m) => Some((
                    m.get("path").and_then(scalar)?,
                    m.get("required").and_then(Value::as_bool).unwrap_or(true),
                )),
                other => scalar(other).map(|p| (p, true)),
            })
            .collect(),
        other => scalar(other).map(|p| (p, true)).into_iter().collect(),
    };
    for (i, (file, required)) in entries.into_iter().enumerate() {
        let path = cx.resolve(&file);
        let text = match (cx.src.read)(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                cx.note(
                    format!("{at}[{i}]"),
                    format!(
                        "{} does not exist and is not required: skipped, as compose does",
                        path.display()
                    ),
                );
                continue;
            }
            Err(source) => {
                return Err(ComposeError::EnvFile {
                    path: at.to_string(),
                    file: path.display().to_string(),
                    source,
                })
            }
        };
        let pairs = dotenv::parse(&text, cx.vars).map_err(|source| ComposeError::Dotenv {
            file: path.display().to_string(),
            source,
        })?;
        for (k, v) in pairs {
            env.insert(s(k), s(literal(&v)));
        }
    }
    Ok(())
}

/// `environment`: a list of `KEY=value` or a mapping.
pub(super) fn environment(cx: &mut Ctx, at: &str, v: &Value, env: &mut Mapping) {
    let pairs: Vec<(String, Option<String>)> = match v {
        Value::Mapping(m) => m.iter().map(|(k, v)| (key(k), scalar(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .filter_map(scalar)
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (item, None),
            })
            .collect(),
        _ => {
            cx.skip(at, "`environment` must be a list or a mapping");
            return;
        }
    };
    for (k, v) in pairs {
        match v.or_else(|| (cx.vars)(&k)) {
            Some(v) => {
                env.insert(s(k), s(literal(&v)));
            }
            None => {
                env.remove(k.as_str());
                cx.note(
                    format!("{at}.{k}"),
                    "no value here, in the environment or in .env: left out of the container, as compose does",
                );
            }
        }
    }
}
