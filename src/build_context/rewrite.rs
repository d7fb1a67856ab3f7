//! Rewrites the build contexts of a blueprint's text in place.
//!
//! `drover deploy FILE` turns each `build:` (services[*].build,
//! services[*].member.build, and their `context:`) into a reference to the
//! context it uploaded. Only the scalar's own characters change, so every
//! line and every other column stays where the user wrote it and the
//! service's errors still point into the user's file.

use std::path::Path;

use yaml_rust2::scanner::TScalarStyle;

/// One build context as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The context as written (a directory, or an upload reference).
    pub value: String,
    /// The `dockerfile:` beside it, when `build` is a mapping.
    pub dockerfile: Option<String>,
    /// Where it is written (1-based), for errors in the user's file.
    pub line: usize,
    pub column: usize,
    /// Its blueprint path, as the service's errors name it
    /// (`services[0].build`, `services[1].member.build`).
    pub path: String,
}

/// Calls `f` for every build context of `text`, in document order, and
/// puts what it returns (`Some`) in place of the scalar, quoted as a
/// JSON string (a YAML double-quoted scalar). Text that does not parse,
/// or has no contexts, comes back as it was (the service reports a
/// parse error itself). Block scalars and scalars spanning lines are
/// left alone.
pub fn rewrite_contexts<E>(
    text: &str,
    mut f: impl FnMut(&Site) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut finder = ContextFinder::default();
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    if parser.load(&mut finder, false).is_err() {
        return Ok(text.to_string());
    }
    // Char index -> byte offset (the parser counts characters).
    let byte_at = |chars: usize| {
        text.char_indices()
            .nth(chars)
            .map(|(b, _)| b)
            .unwrap_or(text.len())
    };
    let mut edits = Vec::new();
    for found in &finder.found {
        let start = byte_at(found.char_index);
        let Some(len) = scalar_source_len(&text[start..], found) else {
            continue;
        };
        if let Some(new) = f(&found.site)? {
            let quoted = serde_json::to_string(&new).unwrap_or(new);
            edits.push((start, len, quoted));
        }
    }
    let mut out = text.to_string();
    // From the end, so earlier offsets stay valid.
    for (start, len, new) in edits.into_iter().rev() {
        out.replace_range(start..start + len, &new);
    }
    Ok(out)
}

/// Relative contexts made absolute against `base` (a blueprint's
/// directory); everything else left as written.
pub fn absolute_contexts(text: &str, base: &Path) -> String {
    let r: Result<String, std::convert::Infallible> = rewrite_contexts(text, |site| {
        if Path::new(&site.value).is_absolute() || super::UploadRef::parse(&site.value).is_some() {
            return Ok(None);
        }
        let joined = base.join(site.value.trim_start_matches("./"));
        Ok(Some(
            std::fs::canonicalize(&joined)
                .unwrap_or(joined)
                .display()
                .to_string(),
        ))
    });
    match r {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// The length in bytes of a one-line scalar as written at the start of
/// `src`; `None` for block scalars or scalars spanning lines (left alone).
fn scalar_source_len(src: &str, found: &Found) -> Option<usize> {
    use TScalarStyle as S;
    let line = src.lines().next().unwrap_or("");
    match found.style {
        S::Plain => line
            .starts_with(found.site.value.as_str())
            .then_some(found.site.value.len()),
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
    site: Site,
    style: TScalarStyle,
    char_index: usize,
}

/// One open mapping or sequence, with the key it sits under.
struct Frame {
    is_map: bool,
    /// The key under which this container sits (`[i]` for a list item).
    under: String,
    /// In a sequence: the index of the next item.
    next: usize,
    /// In a mapping: the key whose value comes next, if a key was read.
    key: Option<String>,
    /// A `build:` mapping: the `dockerfile:` read in it, and the first
    /// context found in it (its `context:`).
    build: Option<(Option<String>, usize)>,
}

/// Finds the scalars of `services[*].build`, `services[*].member.build`
/// and their `context`, with the `dockerfile` beside a `context`.
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
        match path {
            ["services", item] | ["services", item, "member"] => item.starts_with('['),
            _ => false,
        }
    }

    /// `services[0].member.build` from its keys.
    fn dotted(path: &[&str]) -> String {
        let mut out = String::new();
        for p in path {
            if !out.is_empty() && !p.starts_with('[') {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }

    /// Where a new node goes: the key it sits under, and whether it is a
    /// key of the top mapping rather than a value.
    fn slot(&mut self) -> (String, bool) {
        match self.stack.last_mut() {
            Some(f) if f.is_map => match f.key.take() {
                Some(k) => (k, false),
                None => (String::new(), true),
            },
            Some(f) => {
                f.next += 1;
                (format!("[{}]", f.next - 1), false)
            }
            None => (String::new(), false),
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for ContextFinder {
    fn on_event(&mut self, ev: yaml_rust2::parser::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::parser::Event as E;
        match ev {
            E::MappingStart(..) | E::SequenceStart(..) => {
                let is_map = matches!(ev, E::MappingStart(..));
                let (under, _) = self.slot();
                let is_build = is_map && under == "build" && Self::is_service(&self.path());
                self.stack.push(Frame {
                    is_map,
                    under,
                    next: 0,
                    key: None,
                    build: is_build.then_some((None, self.found.len())),
                });
            }
            E::MappingEnd | E::SequenceEnd => {
                if let Some(Frame {
                    build: Some((dockerfile, first)),
                    ..
                }) = self.stack.pop()
                {
                    for f in &mut self.found[first..] {
                        f.site.dockerfile = dockerfile.clone();
                    }
                }
            }
            E::Scalar(value, style, ..) => {
                let (key, is_key) = self.slot();
                if is_key {
                    if let Some(f) = self.stack.last_mut() {
                        f.key = Some(value);
                    }
                    return;
                }
                if key == "dockerfile" {
                    if let Some(Frame {
                        build: Some((d, _)),
                        ..
                    }) = self.stack.last_mut()
                    {
                        *d = Some(value);
                    }
                    return;
                }
                let path = self.path();
                let at = if key == "build" && Self::is_service(&path) {
                    let mut p = path.clone();
                    p.push("build");
                    Some(Self::dotted(&p))
                } else if key == "context"
                    && path.last() == Some(&"build")
                    && Self::is_service(&path[..path.len() - 1])
                {
                    Some(Self::dotted(&path))
                } else {
                    None
                };
                if let Some(at) = at {
                    self.found.push(Found {
                        site: Site {
                            value,
                            dockerfile: None,
                            line: mark.line(),
                            column: mark.col() + 1,
                            path: at,
                        },
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
    fn every_site_is_seen_with_its_dockerfile_in_order() {
        let mut seen = Vec::new();
        let out: Result<String, ()> = rewrite_contexts(SHOP, |s| {
            seen.push(s.clone());
            Ok(Some(format!("upload:sha256:{}", seen.len())))
        });
        let site = |v: &str, d: Option<&str>, line, column, path: &str| Site {
            value: v.into(),
            dockerfile: d.map(str::to_string),
            line,
            column,
            path: path.into(),
        };
        assert_eq!(
            seen,
            [
                site("./web", None, 6, 12, "services[0].build"),
                site(
                    "api",
                    Some("Dockerfile.dev"),
                    13,
                    18,
                    "services[1].member.build"
                ),
                site("/abs/db", None, 16, 12, "services[2].build")
            ]
        );
        let v: Value = serde_yaml::from_str(&out.unwrap()).unwrap();
        assert_eq!(v["services"][2]["build"], Value::from("upload:sha256:3"));
        // An error stops the rewrite and is returned.
        let err: Result<String, &str> = rewrite_contexts(SHOP, |_| Err("no"));
        assert_eq!(err, Err("no"));
    }

    #[test]
    fn text_without_relative_contexts_is_unchanged() {
        let t = "name: x\nservices:\n  - name: a\n    image: nginx\n";
        assert_eq!(absolute_contexts(t, Path::new("/b")), t);
        assert_eq!(
            absolute_contexts("{ not: [yaml", Path::new("/b")),
            "{ not: [yaml"
        );
        let up = format!(
            "name: x\nservices:\n  - {{ name: a, build: 'upload:sha256:{}' }}\n",
            "a".repeat(64)
        );
        assert_eq!(absolute_contexts(&up, Path::new("/b")), up);
    }
}
