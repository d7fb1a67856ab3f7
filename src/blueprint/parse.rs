//! Blueprint text (YAML, or JSON, which is YAML) to a checked [`Blueprint`],
//! with every problem of the file reported at once, each at its line, column
//! and path.
//!
//! How: `serde_yaml` parses the text to a [`Value`] (a syntax error stops
//! there and is reported where the parser found it). The yaml-rust2 event
//! parser walks the same text to index the position of every value and every
//! mapping key by its [`FieldPath`]. The top-level fields and each service
//! are then deserialized separately with `serde_path_to_error`; after an
//! error the offending key is taken out and deserialization retried, so one
//! file can report a typo in one service, a bad type in another and a missing
//! field in a third. Services that deserialized cleanly then go through the
//! semantic checks of [`super::validate`]. Errors point at the offending value,
//! or at the key when the key itself is the problem (an unknown field), or at
//! the nearest enclosing value that has a position.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use super::model::{Blueprint, ServiceSpec};
use super::validate::{self, FieldPath, PathSegment, ValidationError};

/// One problem in a blueprint file.
///
/// Displays as `{file}:{line}:{column}: {path}: {error}`, leaving out the
/// parts that are unknown (no position) or empty (the root path), e.g.
/// `web.yaml:7:7: services[0].member.imgae: unknown field ...`. Serializes
/// as `{file, line, column, path, error}` (the REST API's error items) and
/// deserializes back (the CLI prints errors it receives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlueprintError {
    /// Display name of the input: a path, or `<request>` for a REST body.
    pub file: String,
    /// 1-based line of the offending value or key.
    pub line: Option<usize>,
    /// 1-based column (in characters) of the offending value or key.
    pub column: Option<usize>,
    /// Where in the document, such as `services[1].member.ports[0]`; empty
    /// for the document itself.
    pub path: String,
    /// What is wrong.
    pub error: String,
}

impl fmt::Display for BlueprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.error)
    }
}

impl std::error::Error for BlueprintError {}

/// Every problem found in a blueprint file, sorted by position; never empty.
/// Displays one error per line.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct BlueprintErrors(pub Vec<BlueprintError>);

impl fmt::Display for BlueprintErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl BlueprintErrors {
    /// The first error (the one nearest the top of the file).
    pub fn first(&self) -> Option<&BlueprintError> {
        self.0.first()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, BlueprintError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a BlueprintErrors {
    type Item = &'a BlueprintError;
    type IntoIter = std::slice::Iter<'a, BlueprintError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for BlueprintErrors {
    type Item = BlueprintError;
    type IntoIter = std::vec::IntoIter<BlueprintError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<BlueprintError> for BlueprintErrors {
    fn from(e: BlueprintError) -> Self {
        BlueprintErrors(vec![e])
    }
}

/// Parses and validates a blueprint. `file` names the input in errors (a
/// path, or `<request>`); `text` is YAML or JSON.
///
/// Returns the blueprint only if there is no problem at all; otherwise every
/// problem found, sorted by line and column.
pub fn parse_blueprint(file: &str, text: &str) -> Result<Blueprint, BlueprintErrors> {
    parse_blueprint_with(file, text, &|_| Vec::new())
}

/// Checks that depend on the running service rather than on the text alone
/// (known locations, policy presets). They run on a blueprint that passed
/// every other check and report with the same positions.
pub type ContextCheck<'a> = dyn Fn(&Blueprint) -> Vec<ValidationError> + 'a;

/// [`parse_blueprint`] plus the caller's context checks.
pub fn parse_blueprint_with(
    file: &str,
    text: &str,
    context: &ContextCheck<'_>,
) -> Result<Blueprint, BlueprintErrors> {
    // A byte-order mark is not content; with CRLF line ends it also makes
    // libyaml see a second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let index = PositionIndex::build(text);
    let mut out = Collector {
        file,
        index: &index,
        errors: Vec::new(),
    };
    if let Some(pos) = index.too_deep {
        out.push_at(
            &FieldPath::root(),
            Some(pos),
            format!("lists and mappings are nested too deeply (at most {MAX_NESTING} levels)"),
        );
        return Err(out.finish());
    }
    // Checked on the event stream, before the YAML library builds values,
    // so its own wording of these refusals (or a future leniency) never
    // decides what a blueprint is.
    if let Some((path, key, pos)) = index.duplicates.first() {
        out.push_at(
            path,
            Some(*pos),
            format!("duplicate key `{key}`: a key may appear only once in a mapping"),
        );
        return Err(out.finish());
    }
    if let Some(pos) = index.documents.get(1) {
        out.push_at(
            &FieldPath::root(),
            Some(*pos),
            "a blueprint file holds one YAML document; a second one starts here".to_string(),
        );
        return Err(out.finish());
    }

    let mut value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.syntax_error(&e);
            return Err(out.finish());
        }
    };
    if let Err(e) = value.apply_merge() {
        out.push(&FieldPath::root(), false, e.to_string());
        return Err(out.finish());
    }
    let root = match value {
        Value::Mapping(m) => m,
        Value::Null => {
            out.errors.push(BlueprintError {
                file: file.to_string(),
                line: None,
                column: None,
                path: String::new(),
                error: "the blueprint is empty: expected a mapping with `name` and `services`"
                    .to_string(),
            });
            return Err(out.finish());
        }
        other => {
            out.push(
                &FieldPath::root(),
                false,
                format!(
                    "a blueprint must be a mapping with `name` and `services`, got {}",
                    kind_of(&other)
                ),
            );
            return Err(out.finish());
        }
    };

    // The application's own fields, with `services` stood in for by an empty
    // list: services are deserialized one by one below.
    let services_path = FieldPath::root().key("services");
    let services_value = root.get("services").cloned();
    let mut top = root;
    if services_value.is_some() {
        top.insert(Value::from("services"), Value::Sequence(Vec::new()));
    }
    let app: Option<Blueprint> = out.deserialize(Value::Mapping(top), &FieldPath::root());

    let mut specs: Vec<Option<ServiceSpec>> = Vec::new();
    let mut raw_ids: Vec<(usize, String)> = Vec::new();
    let mut services_is_list = false;
    match services_value {
        // Reported by the top-level pass as a missing field.
        None => {}
        Some(Value::Sequence(items)) => {
            services_is_list = true;
            for (i, item) in items.into_iter().enumerate() {
                if out.errors.len() >= MAX_ERRORS {
                    out.push(
                        &services_path.index(i),
                        false,
                        "too many errors: the services from here on were not checked".into(),
                    );
                    return Err(out.finish());
                }
                if let Some(id) = item.get("id").and_then(Value::as_str) {
                    raw_ids.push((i, id.to_string()));
                }
                specs.push(out.deserialize(item, &services_path.index(i)));
            }
        }
        Some(other) => out.push(
            &services_path,
            false,
            format!(
                "`services` must be a list of services (`- id: web ...`), got {}",
                kind_of(&other)
            ),
        ),
    }

    if out.errors.is_empty() {
        if let Some(app) = app {
            let bp = Blueprint {
                services: specs.into_iter().flatten().collect(),
                ..app
            };
            out.semantic(validate::validate(&bp));
            if out.errors.is_empty() {
                out.semantic(context(&bp));
            }
            return if out.errors.is_empty() {
                Ok(bp)
            } else {
                Err(out.finish())
            };
        }
    }

    // Some parts did not deserialize: check the parts that did, the same way
    // `validate::validate` would.
    let mut problems: Vec<ValidationError> = Vec::new();
    if let Some(app) = &app {
        problems.extend(validate::validate_application(&app.name, &app.location));
    }
    if services_is_list {
        problems.extend(validate::validate_service_count(specs.len()));
    }
    for (i, spec) in specs.iter().enumerate() {
        match spec {
            Some(spec) => problems.extend(validate::validate_service(i, spec)),
            None => {
                if let Some((_, id)) = raw_ids.iter().find(|(j, _)| *j == i) {
                    problems.extend(validate::validate_service_id(i, id));
                }
            }
        }
    }
    let ids: Vec<(usize, &str)> = raw_ids.iter().map(|(i, id)| (*i, id.as_str())).collect();
    problems.extend(validate::validate_unique_ids(&ids));
    out.semantic(problems);
    Err(out.finish())
}

/// Gathers errors with their positions.
struct Collector<'a> {
    file: &'a str,
    index: &'a PositionIndex,
    errors: Vec<BlueprintError>,
}

/// How many times one part (the top level, a service) is retried after
/// errors before giving up on it: each retry deserializes the part again.
const MAX_ATTEMPTS: usize = 16;

/// After this many errors, the remaining services are not checked.
const MAX_ERRORS: usize = 100;

impl Collector<'_> {
    fn push_at(&mut self, path: &FieldPath, pos: Option<Pos>, error: String) {
        self.errors.push(BlueprintError {
            file: self.file.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            path: path.to_string(),
            error,
        });
    }

    fn push(&mut self, path: &FieldPath, at_key: bool, error: String) {
        let pos = self.index.locate(path, at_key);
        self.push_at(path, pos, error);
    }

    fn semantic(&mut self, problems: Vec<ValidationError>) {
        for p in problems {
            self.push(&p.path, p.at_key, p.message);
        }
    }

    /// A refusal of the YAML library that the event stream did not catch
    /// first: reported as the library words it, at its position.
    fn syntax_error(&mut self, e: &serde_yaml::Error) {
        let message = e.to_string();
        let pos = e.location().map(|l| Pos {
            line: l.line(),
            column: l.column(),
        });
        let message = match pos {
            Some(p) => message.replacen(&format!(" at line {} column {}", p.line, p.column), "", 1),
            None => message,
        };
        self.push_at(&FieldPath::root(), pos, message);
    }

    /// Deserializes one part of the document, recording every error found
    /// under `base`. After an error the offending key is removed (or a
    /// missing one filled in) and deserialization retried, so that later
    /// errors of the same part are found too. Returns the value only if
    /// there was no error at all.
    fn deserialize<T: DeserializeOwned>(
        &mut self,
        mut value: Value,
        base: &FieldPath,
    ) -> Option<T> {
        // Paths (relative to `base`) already reported and taken out.
        let mut handled: Vec<FieldPath> = Vec::new();
        let mut failed = false;
        for _ in 0..MAX_ATTEMPTS {
            let (path, message) = match try_deserialize::<T>(&value) {
                Ok(t) => return (!failed).then_some(t),
                Err(e) => e,
            };
            failed = true;
            if let Some(field) = quoted_after(&message, "missing field ") {
                let missing = path.key(field);
                if !handled.iter().any(|h| missing.starts_with(h)) {
                    self.push(&base.join(path.segments()), false, message.clone());
                }
                if !fill_missing::<T>(&mut value, &path, field) {
                    return None;
                }
                handled.push(missing);
            } else {
                let at_key = message.starts_with("unknown field ");
                self.push(&base.join(path.segments()), at_key, tidy(&message));
                match remove_at(&mut value, &path) {
                    Some(removed) => handled.push(removed),
                    None => return None,
                }
            }
        }
        None
    }

    fn finish(mut self) -> BlueprintErrors {
        // Every failure records at least one error; keep the promise of a
        // non-empty list even if that ever stops being true.
        debug_assert!(!self.errors.is_empty(), "a failed parse with no error");
        if self.errors.is_empty() {
            self.push(
                &FieldPath::root(),
                false,
                "the blueprint could not be read".into(),
            );
        }
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.dedup();
        BlueprintErrors(self.errors)
    }
}

/// Deserializes `T` from `value`; on error, the path (relative to `value`)
/// and serde's message.
fn try_deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, (FieldPath, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let message = e.inner().to_string();
        let mut segments = Vec::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => {
                    segments.push(PathSegment::Index(*index))
                }
                serde_path_to_error::Segment::Map { key } => {
                    segments.push(PathSegment::Key(key.clone()))
                }
                serde_path_to_error::Segment::Enum { .. } => {}
                serde_path_to_error::Segment::Unknown => {
                    // A key that is not a string (`8080: x`): serde says
                    // "invalid type: integer `8080`, expected field identifier".
                    if message.ends_with("expected field identifier") {
                        if let Some(key) = quoted_after(&message, "") {
                            segments.push(PathSegment::Key(key.to_string()));
                            return (
                                FieldPath::from(segments),
                                format!("unknown field `{key}`: field names are text"),
                            );
                        }
                        let kind = tidy(&message);
                        let kind = kind
                            .strip_prefix("invalid type: ")
                            .and_then(|rest| rest.split(',').next())
                            .unwrap_or("not text");
                        return (
                            FieldPath::from(segments),
                            format!("a key of this mapping is a {kind}; field names are text"),
                        );
                    }
                    break;
                }
            }
        }
        (FieldPath::from(segments), message)
    })
}

/// Fills the missing field `field` of the mapping at `path` with the first
/// stand-in value that deserializes, so that the other missing fields can be
/// found. The stand-in never reaches a caller: the part has failed already.
fn fill_missing<T: DeserializeOwned>(value: &mut Value, path: &FieldPath, field: &str) -> bool {
    let target = path.key(field);
    // `container` first: it is also a valid service `type`.
    let candidates = [
        Value::from("container"),
        Value::from(1),
        Value::Sequence(Vec::new()),
        Value::Mapping(Mapping::new()),
        Value::from(false),
    ];
    for candidate in candidates {
        let Some(Value::Mapping(m)) = get_mut(value, path.segments()) else {
            return false;
        };
        m.insert(Value::from(field), candidate);
        match try_deserialize::<T>(value) {
            Ok(_) => return true,
            Err((p, _)) if !p.starts_with(&target) => return true,
            Err(_) => {}
        }
    }
    if let Some(Value::Mapping(m)) = get_mut(value, path.segments()) {
        m.remove(field);
    }
    false
}

/// Removes the entry of the deepest mapping key on `path` (`ports` for
/// `ports[1]`, `imgae` for `member.imgae`); returns the removed path.
fn remove_at(value: &mut Value, path: &FieldPath) -> Option<FieldPath> {
    let segs = path.segments();
    let k = segs
        .iter()
        .rposition(|s| matches!(s, PathSegment::Key(_)))?;
    let PathSegment::Key(key) = &segs[k] else {
        return None;
    };
    let Some(Value::Mapping(m)) = get_mut(value, &segs[..k]) else {
        return None;
    };
    let found = m
        .keys()
        .find(|candidate| key_text(candidate).as_deref() == Some(key))
        .cloned()?;
    m.remove(&found);
    Some(FieldPath::from(segs[..=k].to_vec()))
}

fn get_mut<'v>(value: &'v mut Value, segs: &[PathSegment]) -> Option<&'v mut Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(untag_mut(value));
    };
    let next = match (untag_mut(value), first) {
        (Value::Mapping(m), PathSegment::Key(key)) => m
            .iter_mut()
            .find(|(k, _)| key_text(k).as_deref() == Some(key))
            .map(|(_, v)| v)?,
        (Value::Sequence(s), PathSegment::Index(i)) => s.get_mut(*i)?,
        _ => return None,
    };
    get_mut(next, rest)
}

fn untag_mut(value: &mut Value) -> &mut Value {
    match value {
        Value::Tagged(t) => untag_mut(&mut t.value),
        v => v,
    }
}

/// A mapping key as text, the way serde_path_to_error records it.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => key_text(&t.value),
        _ => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The text between the first pair of backquotes after `prefix`, if
/// `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    let start = rest.find('`')? + 1;
    let len = rest[start..].find('`')?;
    Some(&rest[start..start + len])
}

/// Rewords serde's type names in YAML terms.
fn tidy(message: &str) -> String {
    let mut m = message.to_string();
    for (from, to) in [
        ("invalid type: map,", "invalid type: mapping,"),
        ("invalid type: sequence,", "invalid type: list,"),
        ("invalid type: unit value,", "invalid type: null,"),
    ] {
        if m.starts_with(from) {
            m.replace_range(..from.len(), to);
        }
    }
    if let Some(i) = m.rfind("expected struct ") {
        m.replace_range(i.., "expected a mapping");
    }
    for (from, to) in [
        ("expected a sequence", "expected a list"),
        ("expected a map", "expected a mapping"),
        ("expected u16", "expected a port number (1 to 65535)"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ] {
        if m.ends_with(from) {
            let start = m.len() - from.len();
            m.replace_range(start.., to);
        }
    }
    m
}

pub(super) use super::positions::*;

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
