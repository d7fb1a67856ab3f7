//! What a validation problem is and where it sits: shared by the
//! validators ([`super::validate`], [`super::wiring`]) and the parser,
//! which turns paths into lines and columns.

use std::fmt;

/// One step of a [`FieldPath`]: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// Where a value sits in a blueprint, such as `services[1].member.ports[0]`.
///
/// Displayed with `.` between keys and `[i]` for list items; a key that is
/// not made of letters, digits, `_` and `-` is quoted (`labels["io.drover.x"]`).
/// The root displays as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<PathSegment>);

impl FieldPath {
    /// The root: the whole document.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path followed by a mapping key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(key.into()));
        p
    }

    /// This path followed by a list index.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(index));
        p
    }

    /// This path followed by `segments`.
    pub fn join(&self, segments: &[PathSegment]) -> Self {
        let mut p = self.clone();
        p.0.extend_from_slice(segments);
        p
    }

    /// The path one step up; `None` at the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(FieldPath(rest.to_vec()))
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl From<Vec<PathSegment>> for FieldPath {
    fn from(segments: Vec<PathSegment>) -> Self {
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSegment::Index(n) => write!(f, "[{n}]")?,
                PathSegment::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathSegment::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A semantic problem in a blueprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The offending value (or key, see `at_key`).
    pub path: FieldPath,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
    /// The problem is the key itself being there (a field in the wrong place,
    /// a bad variable name): point at the key rather than at its value.
    pub at_key: bool,
}

impl ValidationError {
    pub fn at(path: FieldPath, message: impl Into<String>) -> Self {
        ValidationError {
            path,
            message: message.into(),
            at_key: false,
        }
    }

    pub fn at_key(path: FieldPath, message: impl Into<String>) -> Self {
        ValidationError {
            path,
            message: message.into(),
            at_key: true,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}
