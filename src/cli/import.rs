//! What `drover deploy` sends, and `drover import compose`.
//!
//! The service reads only the text it is sent, so the CLI does what needs
//! the user's file system first: a compose file is translated to a
//! blueprint (its untranslated keys shown), and relative `build` contexts
//! are made absolute against the file's directory.

use std::path::{Path, PathBuf};

use serde_json::json;
use serde_yaml::Value;

use super::output::{print_json, text};
use super::{send_blueprint, CliError, Client, Output};
use crate::compose::{self, Untranslated};
use crate::outln;

/// A blueprint ready to send.
pub struct Prepared {
    /// YAML the service accepts (absolute build contexts).
    pub text: String,
    /// The application name.
    pub name: String,
    /// What the service's errors name: the user's file as given.
    pub file: String,
    /// Compose keys not translated (empty for a blueprint).
    pub untranslated: Vec<Untranslated>,
    pub from_compose: bool,
}

fn base_dir(file: &str) -> PathBuf {
    let dir = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Reads `file` (a blueprint or a compose file) and makes it sendable.
/// Blueprint errors are reported against the user's file.
pub fn prepare(file: &str, name: Option<&str>) -> Result<Prepared, CliError> {
    let text = std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.to_string(),
        source,
    })?;
    let base = base_dir(file);
    if compose::is_compose(&text) {
        // Compose's default project name: the directory's name.
        let default_name = name.map(str::to_string).unwrap_or_else(|| {
            base.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "app".into())
        });
        let mut t = compose::translate(&text, &compose::to_id(&default_name), Some(&base), &|v| {
            std::env::var(v).ok()
        })
        .map_err(|e| CliError::Invalid(format!("{file}: {e}")))?;
        if let Some(n) = name {
            t.name = compose::to_id(n);
            if let Value::Mapping(m) = &mut t.blueprint {
                m.insert(Value::from("name"), Value::from(t.name.clone()));
            }
        }
        let yaml = t.yaml();
        let label = format!("{file} (translated from compose)");
        crate::blueprint::parse_blueprint(&label, &yaml)
            .map_err(|e| CliError::Invalid(format!("{e}\nthe translated blueprint:\n{yaml}")))?;
        return Ok(Prepared {
            text: yaml,
            name: t.name,
            file: label,
            untranslated: t.untranslated,
            from_compose: true,
        });
    }
    // Validate locally first: no round trip for a typo.
    let bp = crate::blueprint::parse_blueprint(file, &text)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(Prepared {
        text: absolute_contexts(&text, &base),
        name: bp.name,
        file: file.to_string(),
        untranslated: Vec::new(),
        from_compose: false,
    })
}

/// Rewrites relative `build` contexts (services[*].build,
/// services[*].member.build) against `base`; the text is returned as it
/// was when there are none.
pub fn absolute_contexts(text: &str, base: &Path) -> String {
    let Ok(mut doc) = serde_yaml::from_str::<Value>(text) else {
        return text.to_string();
    };
    let mut changed = false;
    let fix = |b: &mut Value, changed: &mut bool| {
        let rel = match b {
            Value::String(s) => Some(s),
            Value::Mapping(m) => match m.get_mut("context") {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        };
        if let Some(s) = rel {
            if !Path::new(s.as_str()).is_absolute() {
                let joined = base.join(s.trim_start_matches("./"));
                *s = std::fs::canonicalize(&joined)
                    .unwrap_or(joined)
                    .display()
                    .to_string();
                *changed = true;
            }
        }
    };
    if let Some(Value::Sequence(services)) = doc.get_mut("services") {
        for svc in services {
            if let Some(b) = svc.get_mut("build") {
                fix(b, &mut changed);
            }
            if let Some(b) = svc.get_mut("member").and_then(|m| m.get_mut("build")) {
                fix(b, &mut changed);
            }
        }
    }
    if changed {
        serde_yaml::to_string(&doc).unwrap_or_else(|_| text.to_string())
    } else {
        text.to_string()
    }
}

/// Shows untranslated compose keys on stderr (text mode).
pub fn warn_untranslated(list: &[Untranslated]) {
    for u in list {
        eprintln!("untranslated: {}: {}", u.path, u.reason);
    }
}

/// `drover import compose FILE [--name APP] [--deploy]`.
pub fn import_compose(
    c: &Client,
    file: &str,
    name: Option<&str>,
    deploy: bool,
    out: Output,
) -> Result<(), CliError> {
    let p = prepare(file, name)?;
    if !p.from_compose {
        return Err(CliError::Invalid(format!(
            "{file} is not a compose file (no top-level `services` mapping); `drover deploy` takes blueprints"
        )));
    }
    let id = if deploy {
        Some(send_blueprint(c, &p)?.id)
    } else {
        None
    };
    match out {
        Output::Json => {
            let blueprint: serde_json::Value =
                serde_yaml::from_str(&p.text).unwrap_or(serde_json::Value::Null);
            print_json(&json!({
                "name": p.name,
                "blueprint": blueprint,
                "untranslated": p.untranslated,
                "deployed": id,
            }));
        }
        Output::Text => {
            warn_untranslated(&p.untranslated);
            match id {
                Some(id) => outln!("deployed application `{id}`"),
                None => text(&p.text),
            }
        }
    }
    Ok(())
}
