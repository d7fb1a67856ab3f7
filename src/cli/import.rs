//! What `drover deploy` sends, and `drover import compose`.
//!
//! The service reads only the text it is sent, so the CLI does what needs
//! the user's file system first: a compose file is translated to a
//! blueprint (its untranslated keys shown), and relative `build` contexts
//! are made absolute against the file's directory.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::{print_json, text};
use super::{send_blueprint, CliError, Client, Output};
use crate::compose::{self, Untranslated};
use crate::outln;

/// A blueprint ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// YAML the service accepts (absolute build contexts).
    pub text: String,
    /// The application name.
    pub name: String,
    /// What the service's errors name: the user's file as given.
    pub file: String,
    /// Compose keys not translated (empty for a blueprint).
    pub untranslated: Vec<Untranslated>,
    /// Compose keys that need nothing in drover, and compose's own
    /// warnings (unset variables).
    pub notes: Vec<Untranslated>,
    pub from_compose: bool,
}

fn base_dir(file: &str) -> PathBuf {
    let dir = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Translates the compose file `file` (its `text`) as `drover deploy`
/// does, with the process environment, the `.env` beside it and its
/// `env_file`s; the blueprint is not checked yet.
pub fn translate_compose(
    file: &str,
    text: &str,
    name: Option<&str>,
) -> Result<compose::Translation, CliError> {
    let base = base_dir(file);
    // Compose's project name: --name, COMPOSE_PROJECT_NAME, the file's
    // `name:`, the directory's name (decided in the translation).
    let env = |v: &str| std::env::var(v).ok();
    let read = |p: &Path| std::fs::read_to_string(p);
    let src = compose::Source {
        name,
        base_dir: &base,
        env: &env,
        read: &read,
    };
    compose::translate(text, &src).map_err(|e| CliError::Invalid(format!("{file}: {e}")))
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
        let t = translate_compose(file, &text, name)?;
        let yaml = t.yaml();
        let label = format!("{file} (translated from compose)");
        crate::blueprint::parse_blueprint(&label, &yaml)
            .map_err(|e| CliError::Invalid(format!("{e}\nthe translated blueprint:\n{yaml}")))?;
        return Ok(Prepared {
            text: yaml,
            name: t.name,
            file: label,
            untranslated: t.untranslated,
            notes: t.notes,
            from_compose: true,
        });
    }
    if name.is_some() {
        return Err(CliError::Invalid(format!(
            "{file}: --name names a compose application; a blueprint names itself in its `name:`"
        )));
    }
    // Validate locally first: no round trip for a typo.
    let bp = crate::blueprint::parse_blueprint(file, &text)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(Prepared {
        text: crate::build_context::rewrite::absolute_contexts(&text, &base),
        name: bp.name,
        file: file.to_string(),
        untranslated: Vec::new(),
        notes: Vec::new(),
        from_compose: false,
    })
}

/// Shows untranslated compose keys on stderr (text mode), compose's own
/// warnings (unset variables), and how many keys needed nothing.
pub fn warn_untranslated(p: &Prepared) {
    for u in &p.untranslated {
        eprintln!("untranslated: {}: {}", u.path, u.reason);
    }
    let (vars, rest): (Vec<&Untranslated>, Vec<&Untranslated>) =
        p.notes.iter().partition(|n| n.path.starts_with("${"));
    for n in vars {
        eprintln!("warning: {}", n.reason);
    }
    if !rest.is_empty() {
        eprintln!(
            "note: {} compose key(s) need nothing in drover (expose, version, ...): `-o json` lists them with reasons",
            rest.len()
        );
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
                "notes": p.notes,
                "deployed": id,
            }));
        }
        Output::Text => {
            warn_untranslated(&p);
            match id {
                Some(id) => outln!("deployed application `{id}`"),
                None => text(&p.text),
            }
        }
    }
    Ok(())
}
