//! Where each value and mapping key of a blueprint's text is: the
//! yaml-rust2 event walk that indexes positions by [`FieldPath`], and the
//! structural checks made on the same events (duplicate keys, a second
//! document, nesting depth), so that parse errors never depend on the YAML
//! library's wording.

use std::collections::{HashMap, HashSet};

use super::validate::FieldPath;
use serde_yaml::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Pos {
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    pub(super) fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 and columns (in characters) from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Positions of the values and mapping keys of a document, by path.
#[derive(Debug, Default)]
pub(super) struct PositionIndex {
    /// Where each value starts; for a block mapping, its first key.
    pub(super) values: HashMap<FieldPath, Pos>,
    /// Where each mapping key is (the path is the key's value's).
    pub(super) keys: HashMap<FieldPath, Pos>,
    /// Keys written twice in one mapping (as YAML compares keys: `a` and
    /// `"a"` are one key, `1` and `"1"` two): path, key, position of the
    /// repeat. Only the first document, and only up to a syntax error.
    pub(super) duplicates: Vec<(FieldPath, String, Pos)>,
    /// Where each document starts.
    pub(super) documents: Vec<Pos>,
    /// Where a collection first nests deeper than [`MAX_NESTING`].
    pub(super) too_deep: Option<Pos>,
}

/// The deepest nesting of lists and mappings accepted. Blueprints need a
/// handful of levels; the limit keeps absurd input cheap (libyaml takes time
/// quadratic in the depth of flow collections).
pub(super) const MAX_NESTING: usize = 64;

impl PositionIndex {
    /// Indexes `text`; what cannot be parsed is left out, so that errors
    /// there fall back to an enclosing value (or to no position).
    pub(super) fn build(text: &str) -> PositionIndex {
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
    pub(super) fn locate(&self, path: &FieldPath, at_key: bool) -> Option<Pos> {
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
pub(super) struct IndexBuilder {
    pub(super) index: PositionIndex,
    pub(super) stack: Vec<Frame>,
}

/// An open collection; `path` is `None` inside a complex (non-scalar) key,
/// which no field path can name.
#[derive(Debug)]
pub(super) enum Frame {
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
pub(super) enum KeyState {
    /// The next node is a key.
    Expecting,
    /// The next node is the value of this key (`None`: a complex key).
    Have(Option<(String, Pos)>),
}

pub(super) enum Node<'e> {
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
    pub(super) fn node(&mut self, mut pos: Pos, node: Node<'_>) {
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
pub(super) fn key_value(text: &str, style: TScalarStyle) -> Value {
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
pub(super) fn opens_flow_too_deep(text: &str, at: usize) -> bool {
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
