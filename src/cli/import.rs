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
        text: absolute_contexts(&text, &base),
        name: bp.name,
        file: file.to_string(),
        untranslated: Vec::new(),
        notes: Vec::new(),
        from_compose: false,
    })
}

/// Rewrites relative `build` contexts (services[*].build,
/// services[*].member.build, and their `context:`) against `base`, in
/// place: only the path's own characters change, so every line and every
/// other column stays where the user wrote it and the service's errors
/// point into the user's file. The text is returned as it was when there
/// are none (or it does not parse: the service reports that).
pub fn absolute_contexts(text: &str, base: &Path) -> String {
    let mut finder = ContextFinder::default();
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    if parser.load(&mut finder, false).is_err() {
        return text.to_string();
    }
    // Char index -> byte offset (the parser counts characters).
    let byte_at = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map(|(b, _)| b)
            .unwrap_or(text.len())
    };
    let mut out = text.to_string();
    // From the end, so earlier offsets stay valid.
    for found in finder.found.iter().rev() {
        if Path::new(&found.value).is_absolute() {
            continue;
        }
        let start = byte_at(found.char_index);
        let Some(len) = scalar_source_len(&text[start..], found) else {
            continue;
        };
        let joined = base.join(found.value.trim_start_matches("./"));
        let absolute = std::fs::canonicalize(&joined)
            .unwrap_or(joined)
            .display()
            .to_string();
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(&absolute).unwrap_or(absolute);
        out.replace_range(start..start + len, &quoted);
    }
    out
}

/// The length in bytes of a one-line scalar as written at the start of
/// `src`; `None` for block scalars or scalars spanning lines (left alone).
fn scalar_source_len(src: &str, found: &Found) -> Option<usize> {
    use yaml_rust2::scanner::TScalarStyle as S;
    let line = src.lines().next().unwrap_or("");
    match found.style {
        S::Plain => line
            .starts_with(found.value.as_str())
            .then_some(found.value.len()),
        S::SingleQuoted | S::DoubleQuoted => {
            let q = if found.style == S::SingleQuoted {
                '\''
            } else {
                '"'
            };
            let mut escaped = false;
            for (i, c) in line.char_indices().skip(1) {
                if found.style == S::DoubleQuoted && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == q && !escaped {
                    // `''` inside single quotes is an escaped quote.
                    if found.style == S::SingleQuoted && line[i + 1..].starts_with('\'') {
                        escaped = true;
                        continue;
                    }
                    return Some(i + 1);
                }
                escaped = false;
            }
            None
        }
        S::Literal | S::Folded => None,
    }
}

/// A build context as written: its text, style and where it starts.
struct Found {
    value: String,
    style: yaml_rust2::scanner::TScalarStyle,
    char_index: usize,
}

/// One open mapping or sequence, with the key it sits under.
struct Frame {
    is_map: bool,
    /// The key under which this container sits (`[]` for a list item).
    under: String,
    /// In a mapping: the key whose value comes next, if a key was read.
    key: Option<String>,
}

/// Finds the scalars of `services[*].build`, `services[*].member.build`
/// and their `context`.
#[derive(Default)]
struct ContextFinder {
    stack: Vec<Frame>,
    found: Vec<Found>,
}

impl ContextFinder {
    /// The keys from the root to the top container.
    fn path(&self) -> Vec<&str> {
        self.stack
            .iter()
            .skip(1)
            .map(|f| f.under.as_str())
            .collect()
    }

    fn is_service(path: &[&str]) -> bool {
        matches!(path, ["services", "[]"] | ["services", "[]", "member"])
    }

    /// Where a new node goes: the key it sits under, and whether it is a
    /// key of the top mapping rather than a value.
    fn slot(&mut self) -> (String, bool) {
        match self.stack.last_mut() {
            Some(f) if f.is_map => match f.key.take() {
                Some(k) => (k, false),
                None => (String::new(), true),
            },
            Some(_) => ("[]".into(), false),
            None => (String::new(), false),
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for ContextFinder {
    fn on_event(&mut self, ev: yaml_rust2::parser::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::parser::Event as E;
        match ev {
            E::MappingStart(..) | E::SequenceStart(..) => {
                let (under, _) = self.slot();
                self.stack.push(Frame {
                    is_map: matches!(ev, E::MappingStart(..)),
                    under,
                    key: None,
                });
            }
            E::MappingEnd | E::SequenceEnd => {
                self.stack.pop();
            }
            E::Scalar(value, style, ..) => {
                let (key, is_key) = self.slot();
                if is_key {
                    if let Some(f) = self.stack.last_mut() {
                        f.key = Some(value);
                    }
                    return;
                }
                let path = self.path();
                let wanted = (key == "build" && Self::is_service(&path))
                    || (key == "context"
                        && path.last() == Some(&"build")
                        && Self::is_service(&path[..path.len() - 1]));
                if wanted {
                    self.found.push(Found {
                        value,
                        style,
                        char_index: mark.index(),
                    });
                }
            }
            E::Alias(_) => {
                self.slot();
            }
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml::Value;

    const SHOP: &str = "# the shop\nname: shop\n\nservices:\n  - name: web   # front\n    build: ./web\n    env:\n      build: ./not-a-context\n  - name: api\n    type: cluster\n    member:\n      build:\n        context: 'api'\n        dockerfile: Dockerfile.dev\n  - name: db\n    build: \"/abs/db\"\n";

    #[test]
    fn contexts_become_absolute_in_place() {
        let base = Path::new("/nowhere/shop");
        let out = absolute_contexts(SHOP, base);
        let before: Vec<&str> = SHOP.lines().collect();
        let after: Vec<&str> = out.lines().collect();
        assert_eq!(before.len(), after.len(), "{out}");
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            match i {
                5 => assert_eq!(*a, "    build: \"/nowhere/shop/web\""),
                12 => assert_eq!(*a, "        context: \"/nowhere/shop/api\""),
                _ => assert_eq!(a, b, "line {} changed:\n{out}", i + 1),
            }
        }
        // The result still reads as YAML with the same keys.
        let v: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(v["services"][0]["build"], Value::from("/nowhere/shop/web"));
        assert_eq!(
            v["services"][0]["env"]["build"],
            Value::from("./not-a-context")
        );
        assert_eq!(
            v["services"][1]["member"]["build"]["context"],
            Value::from("/nowhere/shop/api")
        );
        assert_eq!(v["services"][2]["build"], Value::from("/abs/db"));
    }

    #[test]
    fn text_without_relative_contexts_is_unchanged() {
        let t = "name: x\nservices:\n  - name: a\n    image: nginx\n";
        assert_eq!(absolute_contexts(t, Path::new("/b")), t);
        assert_eq!(
            absolute_contexts("{ not: [yaml", Path::new("/b")),
            "{ not: [yaml"
        );
    }
}
