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

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns (in characters) from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Positions of the values and mapping keys of a document, by path.
#[derive(Debug, Default)]
struct PositionIndex {
    /// Where each value starts; for a block mapping, its first key.
    values: HashMap<FieldPath, Pos>,
    /// Where each mapping key is (the path is the key's value's).
    keys: HashMap<FieldPath, Pos>,
    /// Keys written twice in one mapping (as YAML compares keys: `a` and
    /// `"a"` are one key, `1` and `"1"` two): path, key, position of the
    /// repeat. Only the first document, and only up to a syntax error.
    duplicates: Vec<(FieldPath, String, Pos)>,
    /// Where each document starts.
    documents: Vec<Pos>,
    /// Where a collection first nests deeper than [`MAX_NESTING`].
    too_deep: Option<Pos>,
}

/// The deepest nesting of lists and mappings accepted. Blueprints need a
/// handful of levels; the limit keeps absurd input cheap (libyaml takes time
/// quadratic in the depth of flow collections).
const MAX_NESTING: usize = 64;

impl PositionIndex {
    /// Indexes `text`; what cannot be parsed is left out, so that errors
    /// there fall back to an enclosing value (or to no position).
    fn build(text: &str) -> PositionIndex {
        let mut builder = IndexBuilder::default();
        let mut parser = Parser::new_from_str(text);
        // Pulled event by event: `Parser::load` recurses once per nesting
        // level and can overflow the stack. A syntax error leaves the index
        // with what came before it; too deep a nesting stops it there.
        loop {
            match parser.next_token() {
                Ok((event, mark)) => {
                    let end = event == Event::StreamEnd;
                    // A block mapping is marked after its first key: let that
                    // key correct the position of a too deep mapping.
                    let mapping = matches!(event, Event::MappingStart(..));
                    builder.on_event(event, mark);
                    if end || (builder.index.too_deep.is_some() && !mapping) {
                        break;
                    }
                }
                Err(e) => {
                    // yaml-rust2 has its own limit on flow nesting, met while
                    // scanning ahead, before any event of the collections
                    // reaches the check above: a refusal at an opening
                    // bracket already nested too deep is that limit.
                    let at = e.marker().index();
                    if opens_flow_too_deep(text, at) {
                        builder.index.too_deep = Some(Pos::from_marker(*e.marker()));
                    }
                    break;
                }
            }
        }
        builder.index
    }

    /// Where to report a problem at `path`: the key itself if `at_key`, else
    /// the value, else the nearest enclosing value with a position.
    fn locate(&self, path: &FieldPath, at_key: bool) -> Option<Pos> {
        if at_key {
            if let Some(pos) = self.keys.get(path) {
                return Some(*pos);
            }
        }
        let mut current = Some(path.clone());
        while let Some(p) = current {
            if let Some(pos) = self.values.get(&p) {
                return Some(*pos);
            }
            current = p.parent();
        }
        None
    }
}

#[derive(Debug, Default)]
struct IndexBuilder {
    index: PositionIndex,
    stack: Vec<Frame>,
}

/// An open collection; `path` is `None` inside a complex (non-scalar) key,
/// which no field path can name.
#[derive(Debug)]
enum Frame {
    Map {
        path: Option<FieldPath>,
        key: KeyState,
        seen: HashSet<Value>,
    },
    Seq {
        path: Option<FieldPath>,
        next: usize,
    },
}

#[derive(Debug)]
enum KeyState {
    /// The next node is a key.
    Expecting,
    /// The next node is the value of this key (`None`: a complex key).
    Have(Option<(String, Pos)>),
}

enum Node<'e> {
    Scalar(&'e str, TScalarStyle),
    Alias,
    Mapping,
    Sequence,
}

impl MarkedEventReceiver for IndexBuilder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        if let Event::DocumentStart = ev {
            self.index.documents.push(pos);
            return;
        }
        // Only the first document is a blueprint.
        if self.index.documents.len() > 1 {
            return;
        }
        match &ev {
            Event::Scalar(s, style, ..) => self.node(pos, Node::Scalar(s, *style)),
            Event::Alias(_) => self.node(pos, Node::Alias),
            Event::MappingStart(..) => self.node(pos, Node::Mapping),
            Event::SequenceStart(..) => self.node(pos, Node::Sequence),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl IndexBuilder {
    fn node(&mut self, mut pos: Pos, node: Node<'_>) {
        let IndexBuilder { index, stack } = self;
        let path = match stack.last_mut() {
            None => Some(FieldPath::root()),
            Some(Frame::Seq { path, next }) => {
                let p = path.as_ref().map(|p| p.index(*next));
                *next += 1;
                p
            }
            Some(Frame::Map { path, key, seen }) => match key {
                KeyState::Expecting => {
                    let (text, id) = match node {
                        Node::Scalar(s, style) => (Some(s.to_string()), Some(key_value(s, style))),
                        _ => (None, None),
                    };
                    if let (Some(parent), Some(text)) = (path.as_ref(), &text) {
                        // A block mapping's start event is marked after its
                        // first key; the mapping starts at that key.
                        if seen.is_empty() {
                            if let Some(start) = index.values.get_mut(parent) {
                                *start = (*start).min(pos);
                            }
                            if let Some(too_deep) = &mut index.too_deep {
                                *too_deep = (*too_deep).min(pos);
                            }
                        }
                        let key_path = parent.key(text.as_str());
                        if let Some(id) = id {
                            if !seen.insert(id) {
                                index.duplicates.push((key_path.clone(), text.clone(), pos));
                            }
                        }
                        index.keys.entry(key_path).or_insert(pos);
                    }
                    *key = KeyState::Have(text.map(|t| (t, pos)));
                    // A complex key's own nodes have no field path.
                    match node {
                        Node::Mapping => stack.push(Frame::Map {
                            path: None,
                            key: KeyState::Expecting,
                            seen: HashSet::new(),
                        }),
                        Node::Sequence => stack.push(Frame::Seq {
                            path: None,
                            next: 0,
                        }),
                        Node::Scalar(..) | Node::Alias => {}
                    }
                    return;
                }
                KeyState::Have(have) => {
                    let p = match (path.as_ref(), have.take()) {
                        (Some(parent), Some((k, key_pos))) => {
                            // An empty value (`image:`) is marked at the next
                            // token; point at its key instead.
                            if matches!(node, Node::Scalar("", TScalarStyle::Plain)) {
                                pos = key_pos;
                            }
                            Some(parent.key(k))
                        }
                        _ => None,
                    };
                    *key = KeyState::Expecting;
                    p
                }
            },
        };
        if let Some(p) = &path {
            index.values.entry(p.clone()).or_insert(pos);
        }
        if matches!(node, Node::Mapping | Node::Sequence) && stack.len() >= MAX_NESTING {
            index.too_deep.get_or_insert(pos);
        }
        match node {
            Node::Mapping => stack.push(Frame::Map {
                path,
                key: KeyState::Expecting,
                seen: HashSet::new(),
            }),
            Node::Sequence => stack.push(Frame::Seq { path, next: 0 }),
            Node::Scalar(..) | Node::Alias => {}
        }
    }
}

/// A mapping key as YAML compares keys: a quoted scalar is text; a plain
/// one is resolved (`1` is a number, `~` null, `web` text).
fn key_value(text: &str, style: TScalarStyle) -> Value {
    let is_word = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "null" | "true" | "false"
        );
    if style != TScalarStyle::Plain || is_word {
        return Value::String(text.to_string());
    }
    // A lone plain scalar is always a valid document; should it ever not
    // be, the key is compared as text.
    serde_yaml::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// Whether the character at `at` (a character index) opens a flow
/// collection (`[`, `{`) nested deeper than [`MAX_NESTING`] by the flow
/// collections open before it. Quoted scalars and comments are skipped;
/// block scalars are not, which can only overcount where the parser has
/// refused the text anyway.
fn opens_flow_too_deep(text: &str, at: usize) -> bool {
    let chars: Vec<char> = text.chars().take(at + 1).collect();
    if chars.len() <= at || !matches!(chars[at], '[' | '{') {
        return false;
    }
    let mut depth = 0usize;
    let mut i = 0;
    let mut prev = '\n';
    while i < at {
        let c = chars[i];
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            '#' if prev.is_whitespace() => {
                while i < at && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                i += 1;
                while i < at {
                    match chars[i] {
                        '\\' if c == '"' => i += 1,
                        q if q == c => {
                            // `''` is an escaped quote inside single quotes.
                            if c == '\'' && chars.get(i + 1) == Some(&'\'') {
                                i += 1;
                            } else {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        prev = c;
        i += 1;
    }
    depth >= MAX_NESTING
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blueprint::model::{MemorySize, ServiceType};
    use std::time::Duration;

    /// Parses `text` as `t.yaml` and returns its errors, one display line each.
    fn errors(text: &str) -> Vec<String> {
        match parse_blueprint("t.yaml", text) {
            Ok(bp) => panic!("expected errors, got {bp:?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn ok(text: &str) -> Blueprint {
        parse_blueprint("t.yaml", text).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
    }

    const GOOD: &str = "\
name: shop
services:
  - id: web
    type: cluster
    initial_size: 3
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: { cpus: 0.25, memory: 64Mi }
      health: { http: { port: 8080, path: /health }, interval: 2s }
    policies:
      - use: web-autoscaler
        upper: 200
  - id: db
    type: container
    image: drover/workload:latest
    ports: [6379]
    health:
      tcp: { port: 6379 }
";

    #[test]
    fn a_good_blueprint_parses() {
        let bp = ok(GOOD);
        assert_eq!(bp.name, "shop");
        assert_eq!(bp.location, "local");
        assert_eq!(bp.services.len(), 2);
        let web = &bp.services[0];
        assert_eq!(web.kind, ServiceType::Cluster);
        assert_eq!(web.initial_size, Some(3));
        let member = web.member.as_ref().unwrap();
        assert_eq!(member.kind, "container");
        assert_eq!(member.resources.memory, Some(MemorySize(64 << 20)));
        let health = member.health.as_ref().unwrap();
        assert_eq!(health.interval, Duration::from_secs(2));
        assert_eq!(health.timeout, Duration::from_secs(1));
        assert_eq!(health.http.as_ref().unwrap().path, "/health");
        assert_eq!(web.policies[0].preset.as_deref(), Some("web-autoscaler"));
        assert_eq!(web.policies[0].config["upper"], Value::from(200));
        assert_eq!(bp.services[1].kind, ServiceType::Container);
    }

    #[test]
    fn syntax_error_stops_with_its_position() {
        let text = "name: shop\nservices: [\n  { id: web\n";
        let e = parse_blueprint("t.yaml", text).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e.0[0],
            BlueprintError {
                file: "t.yaml".into(),
                line: Some(4),
                column: Some(1),
                path: String::new(),
                error: "did not find expected ',' or '}', while parsing a flow mapping \
                        at line 3 column 3"
                    .into(),
            }
        );
        assert_eq!(
            e.to_string(),
            "t.yaml:4:1: did not find expected ',' or '}', while parsing a flow mapping \
             at line 3 column 3"
        );
    }

    #[test]
    fn syntax_error_in_block_yaml() {
        let text = "name: shop\nservices:\n  - id: web\n    type: cluster: 3\n";
        assert_eq!(
            errors(text),
            ["t.yaml:4:18: mapping values are not allowed in this context"]
        );
        // A tab used for indentation.
        assert_eq!(
            errors("name: shop\nservices:\n\t- id: web\n"),
            ["t.yaml:3:1: found character that cannot start any token, \
              while scanning for the next token"]
        );
    }

    #[test]
    fn unknown_key_in_member_points_at_the_key() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      imgae: drover/workload:latest
";
        let e = parse_blueprint("t.yaml", text).unwrap_err();
        assert_eq!(e.len(), 1, "{e}");
        let err = &e.0[0];
        assert_eq!((err.line, err.column), (Some(6), Some(7)));
        assert_eq!(err.path, "services[0].member.imgae");
        // The list of fields grows with the model: check its start only.
        assert!(
            err.error.starts_with(
                "unknown field `imgae`, expected one of `type`, `image`, `image_pull`, `command`, `env`, \
                 `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            err.error
        );
    }

    #[test]
    fn unknown_top_level_key() {
        let text = "name: shop\nservices: []\nlocaton: local\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            errs[0],
            "t.yaml:2:11: services: an application needs at least one service"
        );
        assert!(
            errs[1].starts_with(
                "t.yaml:3:1: locaton: unknown field `locaton`, expected one of `name`, \
                 `location`, `services`"
            ),
            "{}",
            errs[1]
        );
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    initial_size: three
    member: { image: drover/workload:latest }
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:5:19: services[0].initial_size: invalid type: string \"three\", \
              expected a whole number"
            ]
        );
    }

    #[test]
    fn missing_image() {
        let text = "\
name: shop
services:
  - id: one
    type: container
    ports: [80]
  - id: two
    type: cluster
    member:
      ports: [80]
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:3:5: services[0]: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
                "t.yaml:9:7: services[1].member: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
            ]
        );
    }

    #[test]
    fn duplicate_id_points_at_the_second() {
        let text = "\
name: shop
services:
  - { id: web, type: container, image: a }
  - id: db
    type: container
    image: b
  - id: web
    type: container
    image: c
";
        assert_eq!(
            errors(text),
            ["t.yaml:7:9: services[2].id: duplicate service id `web`: services[0] already has it"]
        );
    }

    #[test]
    fn errors_in_two_services_are_reported_together() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      image: drover/workload:latest
      prots: [8080]
  - id: db
    type: container
    image: redis
    ports: [6379]
    resources:
      memory: lots
";
        let e = parse_blueprint("t.yaml", text).unwrap_err();
        let lines: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(
            lines[0].starts_with(
                "t.yaml:7:7: services[0].member.prots: unknown field `prots`, expected one of \
                 `type`, `image`, `image_pull`, `command`, `env`, `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "t.yaml:13:15: services[1].resources.memory: memory `lots` must start with a \
             number, such as `128Mi`"
        );
    }

    #[test]
    fn type_errors_and_semantic_errors_of_different_services_together() {
        let text = "\
name: Shop
services:
  - id: web
    type: clustr
  - id: db
    type: container
  - id: web
    type: container
    image: x
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:1:7: name: application name `Shop` is invalid: it must match \
                 ^[a-z][a-z0-9-]{0,39}$ (1 to 40 lower-case letters, digits or `-`, \
                 starting with a letter)",
                "t.yaml:4:11: services[0].type: unknown variant `clustr`, expected \
                 one of `container`, `cluster`, `load-balancer`",
                "t.yaml:5:5: services[1]: a container needs `image`, \
                 e.g. `image: drover/workload:latest`",
                "t.yaml:7:9: services[2].id: duplicate service id `web`: services[0] already has it",
            ]
        );
    }

    #[test]
    fn several_errors_in_one_service() {
        let text = "\
name: shop
services:
  - type: cluster
    initial_size: -2
    member:
      image: x
      ports: [8080, http]
      health:
        http: { path: / }
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:3:5: services[0]: missing field `id`",
                "t.yaml:4:19: services[0].initial_size: invalid value: integer `-2`, \
                 expected a whole number",
                "t.yaml:7:21: services[0].member.ports[1]: `http` is not a port: write a port \
                 number (`8080`), `\"HOST:CONTAINER\"` (`\"8000:80\"`) or \
                 `{ container: 80, host: 8000 }`",
                "t.yaml:9:15: services[0].member.health.http: missing field `port`",
            ]
        );
    }

    #[test]
    fn missing_required_fields_are_all_reported() {
        assert_eq!(
            errors("location: local\nservices:\n  - image: x\n"),
            [
                "t.yaml:1:1: missing field `name`",
                "t.yaml:3:5: services[0]: missing field `id`",
                "t.yaml:3:5: services[0]: missing field `type`",
            ]
        );
        assert_eq!(
            errors("name: shop\n"),
            ["t.yaml:1:1: missing field `services`"]
        );
    }

    #[test]
    fn bad_memory_unit() {
        let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    resources: { cpus: 1, memory: 64MB, }
  - id: db
    type: container
    image: x
    resources: { memory: 64mb }
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:10:26: services[1].resources.memory: memory unit `mb` is unknown; \
              use one of Ki, Mi, Gi, K, M, G"
            ]
        );
    }

    #[test]
    fn memory_below_dockers_minimum() {
        let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    resources:
      memory: 4Mi
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:7:15: services[0].resources.memory: memory 4Mi is below Docker's \
              minimum of 6Mi"
            ]
        );
    }

    #[test]
    fn health_port_not_published() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    member:
      image: drover/workload:latest
      ports: [8080]
      health:
        http:
          port: 8081
          path: /health
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:10:17: services[0].member.health.http.port: health check port 8081 is \
              not in `ports`: health checks go through the published port, so add 8081 to \
              `ports`"
            ]
        );
    }

    #[test]
    fn cluster_fields_at_the_wrong_level_point_at_the_key() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    image: drover/workload:latest
    member: { image: drover/workload:latest }
";
        assert_eq!(
            errors(text),
            ["t.yaml:5:5: services[0].image: `image` belongs under `member` for a cluster"]
        );
    }

    #[test]
    fn json_input() {
        let good = r#"{"name": "shop", "services": [
            {"id": "web", "type": "container", "image": "drover/workload:latest",
             "ports": [8080], "health": {"tcp": {"port": 8080}, "interval": "500ms"}}]}"#;
        let bp = ok(good);
        assert_eq!(bp.services[0].ports, [8080]);
        assert_eq!(
            bp.services[0].health.as_ref().unwrap().interval,
            Duration::from_millis(500)
        );

        let bad = "{\n  \"name\": \"shop\",\n  \"services\": [\n    {\"id\": \"web\", \
                   \"type\": \"container\", \"image\": \"x\", \"ports\": [\"8o\"]},\n    \
                   {\"id\": \"db\", \"type\": \"container\", \"imgae\": \"x\"}\n  ]\n}\n";
        let e = parse_blueprint("<request>", bad).unwrap_err();
        let got: Vec<_> = e
            .iter()
            .map(|e| (e.line, e.column, e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(4), Some(64), "services[0].ports[0]"),
                (Some(5), Some(39), "services[1].imgae"),
            ]
        );
        assert_eq!(
            e.0[0].to_string(),
            "<request>:4:64: services[0].ports[0]: `8o` is not a port: write a port number \
             (`8080`), `\"HOST:CONTAINER\"` (`\"8000:80\"`) or `{ container: 80, host: 8000 }`"
        );
    }

    #[test]
    fn json_with_tabs() {
        let text = "{\n\t\"name\": \"shop\",\n\t\"services\": [\n\t\t{\"id\": \"Web\", \
                    \"type\": \"container\", \"image\": \"x\"}\n\t]\n}\n";
        assert_eq!(
            errors(text),
            [
                "t.yaml:4:10: services[0].id: service id `Web` is invalid: it must match \
              ^[a-z][a-z0-9-]{0,39}$ (1 to 40 lower-case letters, digits or `-`, starting \
              with a letter)"
            ]
        );
    }

    #[test]
    fn empty_and_non_mapping_documents() {
        for text in ["", "\n", "# just a comment\n", "---\n", "~\n"] {
            assert_eq!(
                errors(text),
                ["t.yaml: the blueprint is empty: expected a mapping with `name` and `services`"],
                "{text:?}"
            );
        }
        assert_eq!(
            errors("- name: shop\n"),
            ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a list"]
        );
        assert_eq!(
            errors("shop\n"),
            ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a string"]
        );
    }

    #[test]
    fn services_not_a_list() {
        assert_eq!(
            errors("name: shop\nservices:\n  web:\n    type: container\n"),
            [
                "t.yaml:3:3: services: `services` must be a list of services (`- id: web ...`), \
              got a mapping"
            ]
        );
        // An empty value points at its key.
        assert_eq!(
            errors("name: shop\nservices:\nlocation: local\n"),
            [
                "t.yaml:2:1: services: `services` must be a list of services (`- id: web ...`), \
              got nothing"
            ]
        );
    }

    #[test]
    fn empty_value_points_at_its_key() {
        let text = "name: shop\nservices:\n  - id:\n    type: container\n    image: x\n";
        assert_eq!(
            errors(text),
            ["t.yaml:3:5: services[0].id: invalid type: null, expected a string"]
        );
    }

    #[test]
    fn duplicate_key_is_a_syntax_error_at_the_repeat() {
        let text = "\
name: shop
services:
  - id: web
    type: container
    image: a
    image: b
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:6:5: services[0].image: duplicate key `image`: a key may appear only \
              once in a mapping"
            ]
        );
    }

    #[test]
    fn a_second_document_is_an_error() {
        assert_eq!(
            errors("name: a\nservices: []\n---\nname: b\n"),
            ["t.yaml:3:1: a blueprint file holds one YAML document; a second one starts here"]
        );
    }

    #[test]
    fn non_text_keys() {
        let text = "name: shop\nservices:\n  - id: web\n    type: container\n    image: x\n    \
                    8080: 1\n";
        assert_eq!(
            errors(text),
            ["t.yaml:6:5: services[0].8080: unknown field `8080`: field names are text"]
        );
    }

    #[test]
    fn quoted_keys_in_paths() {
        let text = "\
name: shop
services:
  - id: web
    type: container
    image: x
    labels:
      io.drover.app: x
      ok: y
";
        let e = parse_blueprint("t.yaml", text).unwrap_err();
        assert_eq!(e.0[0].path, r#"services[0].labels["io.drover.app"]"#);
        assert_eq!((e.0[0].line, e.0[0].column), (Some(7), Some(7)));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let text = "\
name: shop
services:
  - id: web
    type: cluster
    member: &base
      image: drover/workload:latest
      ports: [8080]
  - id: api
    type: cluster
    member:
      <<: *base
      ports: [9090]
      health: { tcp: { port: 8080 } }
";
        assert_eq!(
            errors(text),
            [
                "t.yaml:13:30: services[1].member.health.tcp.port: health check port 8080 is not \
              in `ports`: health checks go through the published port, so add 8080 to `ports`"
            ]
        );
    }

    #[test]
    fn byte_order_mark_and_crlf() {
        let text = "\u{feff}name: shop\r\nservices:\r\n  - id: web\r\n    type: container\r\n    \
                    imgae: x\r\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "t.yaml:5:5: services[0].imgae: unknown field `imgae`, expected one of `id`, \
                 `type`, `image`, `image_pull`, `command`, `env`, `ports`, `resources`, `health`, `labels`"
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn errors_are_sorted_by_position() {
        // The missing `image` of services[0] is found after the type error of
        // services[1] (validation runs last) but is reported first.
        let text = "\
name: shop
services:
  - id: a
    type: container
  - id: b
    type: container
    image: x
    ports: [x]
";
        let e = parse_blueprint("t.yaml", text).unwrap_err();
        let lines: Vec<_> = e.iter().map(|e| e.line.unwrap()).collect();
        assert_eq!(lines, [3, 8]);
    }

    #[test]
    fn error_display_leaves_out_missing_parts() {
        let mut e = BlueprintError {
            file: "f.yaml".into(),
            line: Some(3),
            column: Some(7),
            path: "services[0].id".into(),
            error: "bad".into(),
        };
        assert_eq!(e.to_string(), "f.yaml:3:7: services[0].id: bad");
        e.column = None;
        assert_eq!(e.to_string(), "f.yaml:3: services[0].id: bad");
        e.line = None;
        assert_eq!(e.to_string(), "f.yaml: services[0].id: bad");
        e.path = String::new();
        assert_eq!(e.to_string(), "f.yaml: bad");
        let all = BlueprintErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string(), "f.yaml: bad\nf.yaml: bad");
    }

    #[test]
    fn errors_serialize_for_the_rest_api() {
        let e = parse_blueprint("<request>", "name: shop\nservices: 3\n").unwrap_err();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!([{
                "file": "<request>",
                "line": 2,
                "column": 11,
                "path": "services",
                "error": "`services` must be a list of services (`- id: web ...`), got a number",
            }])
        );
        let back: Vec<BlueprintError> =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e.0);
    }

    #[test]
    fn position_index_columns_count_characters() {
        let index = PositionIndex::build("é: ü\nliste:\n  - { a: 1 }\n");
        let root = FieldPath::root();
        assert_eq!(index.values[&root.key("é")], Pos { line: 1, column: 4 });
        assert_eq!(index.keys[&root.key("liste")], Pos { line: 2, column: 1 });
        assert_eq!(index.values[&root.key("liste")], Pos { line: 3, column: 3 });
        assert_eq!(
            index.values[&root.key("liste").index(0)],
            Pos { line: 3, column: 5 }
        );
        assert_eq!(
            index.values[&root.key("liste").index(0).key("a")],
            Pos {
                line: 3,
                column: 10
            }
        );
    }

    /// Duplicates are found on the event stream, as YAML compares keys,
    /// whatever the YAML library would say of them.
    #[test]
    fn duplicate_keys_are_found_structurally() {
        let dups = |text: &str| -> Vec<(String, String, Pos)> {
            PositionIndex::build(text)
                .duplicates
                .into_iter()
                .map(|(p, k, pos)| (p.to_string(), k, pos))
                .collect()
        };
        let at = |line, column| Pos { line, column };
        assert_eq!(
            dups("a: 1\nb:\n  x: 1\n  x: 2\na: 3\n"),
            [
                ("b.x".to_string(), "x".to_string(), at(4, 3)),
                ("a".to_string(), "a".to_string(), at(5, 1)),
            ]
        );
        // Flow mappings, and inside lists.
        assert_eq!(
            dups("s:\n  - {id: a, id: b}\n"),
            [("s[0].id".to_string(), "id".to_string(), at(2, 13))]
        );
        // Quoting does not make another key of text...
        assert_eq!(dups("a: 1\n\"a\": 2\n").len(), 1);
        assert_eq!(dups("a: 1\n'a': 2\n").len(), 1);
        // ...but a number or null is not text.
        assert!(dups("1: a\n\"1\": b\n").is_empty());
        assert!(dups("~: a\n\"~\": b\n").is_empty());
        assert!(dups("true: a\n\"true\": b\n").is_empty());
        assert_eq!(dups("1: a\n1: b\n").len(), 1);
        // The same key in two mappings is no repeat.
        assert!(dups("- a: 1\n- a: 2\n").is_empty());
        // Only the first document is a blueprint.
        assert!(dups("a: 1\n---\na: 1\na: 2\n").is_empty());
    }

    #[test]
    fn the_first_duplicate_wins_over_everything_after_it() {
        // A later syntax error, a later duplicate, a second document.
        let text = "name: a\nname: b\nservices: [\nx: 1\nx: 2\n---\n";
        assert_eq!(
            errors(text),
            ["t.yaml:2:1: name: duplicate key `name`: a key may appear only once in a mapping"]
        );
        // A syntax error before it stops the reading there.
        let text = "name: [\n}\nname: b\n";
        let e = errors(text);
        assert_eq!(e.len(), 1);
        assert!(!e[0].contains("duplicate"), "{e:?}");
    }

    #[test]
    fn documents_are_counted_on_the_event_stream() {
        let docs = |text: &str| PositionIndex::build(text).documents.len();
        assert_eq!(docs(""), 0);
        assert_eq!(docs("a: 1\n"), 1);
        assert_eq!(docs("---\na: 1\n"), 1);
        assert_eq!(docs("a: 1\n...\n"), 1);
        assert_eq!(docs("a: 1\n---\n"), 2);
        assert_eq!(docs("a: 1\n---\nb: 2\n---\nc: 3\n"), 3);
        // An empty second document is a second document too, and it is
        // reported even when the first one has type errors.
        assert_eq!(
            errors("name: 7\nservices: 3\n---\n"),
            ["t.yaml:3:1: a blueprint file holds one YAML document; a second one starts here"]
        );
    }

    #[test]
    fn key_values_follow_yaml_resolution() {
        use TScalarStyle::*;
        assert_eq!(key_value("web", Plain), Value::from("web"));
        assert_eq!(key_value("web-1_x", Plain), Value::from("web-1_x"));
        assert_eq!(key_value("1", SingleQuoted), Value::from("1"));
        assert_eq!(key_value("null", DoubleQuoted), Value::from("null"));
        assert_eq!(key_value("8080", Plain), Value::from(8080));
        assert_eq!(key_value("~", Plain), Value::Null);
        assert_eq!(key_value("NULL", Plain), Value::Null);
        assert_eq!(key_value("True", Plain), Value::Bool(true));
        assert_eq!(key_value("a b", Plain), Value::from("a b"));
    }

    #[test]
    fn flow_depth_before_a_bracket() {
        let deep = format!("k: {}", "[".repeat(MAX_NESTING + 1));
        let last = 3 + MAX_NESTING;
        assert!(opens_flow_too_deep(&deep, last));
        assert!(
            !opens_flow_too_deep(&deep, last - 1),
            "the 64th level is allowed"
        );
        // Not at a bracket: not the nesting limit.
        let text = format!("{}x", "[".repeat(100));
        assert!(!opens_flow_too_deep(&text, 100));
        // Out of range.
        assert!(!opens_flow_too_deep("[", 5));
        // Brackets in quotes and comments do not nest.
        let quoted = format!(
            "k: '{}''' # {}\nv: \"\\\"{}\" [",
            "[".repeat(70),
            "{".repeat(70),
            "[".repeat(70)
        );
        let at = quoted.chars().count() - 1;
        assert!(!opens_flow_too_deep(&quoted, at));
        // Closed collections do not count.
        let closed = format!("{}{}[", "[]".repeat(100), "[".repeat(10));
        assert!(!opens_flow_too_deep(&closed, 210));
    }

    #[test]
    fn deep_nesting_is_cheap_and_reported() {
        let deep = format!(
            "name: shop\nservices: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            errors(&deep),
            ["t.yaml:2:266: lists and mappings are nested too deeply (at most 64 levels)"]
        );
        let deep: String = (0..100_000)
            .map(|i| format!("{}k:\n", " ".repeat(i % 4096)))
            .collect();
        assert_eq!(
            errors(&deep),
            ["t.yaml:65:65: lists and mappings are nested too deeply (at most 64 levels)"]
        );
        // 64 levels are fine (and then not a blueprint).
        let ok_depth = format!("{}{}\n", "[".repeat(64), "]".repeat(64));
        assert_eq!(
            errors(&ok_depth),
            ["t.yaml:1:1: a blueprint must be a mapping with `name` and `services`, got a list"]
        );
    }

    #[test]
    fn tidy_rewords_serde_types() {
        assert_eq!(
            tidy("invalid type: map, expected struct PolicySpec"),
            "invalid type: mapping, expected a mapping"
        );
        assert_eq!(
            tidy("invalid type: sequence, expected a map"),
            "invalid type: list, expected a mapping"
        );
        assert_eq!(
            tidy("invalid type: unit value, expected f64"),
            "invalid type: null, expected a number"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn check_positions(text: &str) {
            // YAML also breaks lines at CR, NEL, LS and PS; the end of the
            // input may be reported on the line after the last one.
            let breaks = text
                .replace("\r\n", "\n")
                .chars()
                .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
                .count();
            let lines = breaks + 2;
            if let Err(e) = parse_blueprint("p.yaml", text) {
                assert!(!e.is_empty());
                for err in &e {
                    if let Some(line) = err.line {
                        assert!(line >= 1 && line <= lines, "{err} in {text:?}");
                    }
                    assert!(err.column.is_none_or(|c| c >= 1), "{err}");
                }
                let mut sorted = e.0.clone();
                sorted.sort_by_key(|e| (e.line, e.column));
                assert_eq!(sorted, e.0);
            }
        }

        proptest! {
            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                check_positions(&text);
            }

            #[test]
            fn yaml_like_text_never_panics(
                text in "([ -]{0,4}(name|services|id|type|image|member|ports|health|[a-z]{1,5})(: ?)?([\\[\\]{},:0-9a-z ]{0,10})\n){0,12}"
            ) {
                check_positions(&text);
            }

            #[test]
            fn damaged_blueprints_never_panic(cut in 0usize..GOOD.len(), len in 0usize..20, insert in "[\\[\\]{}:, a-z0-9\n-]{0,5}") {
                let mut text = GOOD.to_string();
                let end = (cut + len).min(text.len());
                text.replace_range(cut..end, &insert);
                check_positions(&text);
            }
        }
    }
}
