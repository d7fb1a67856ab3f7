//! The `.env` and `env_file` format compose reads (pure).
//!
//! One `KEY=VALUE` a line; blank lines and `#` comments skipped; an
//! optional leading `export `; `KEY` alone (no `=`) takes the variable
//! from the lookup, and is left out when unset. Values: unquoted ones are
//! trimmed and lose a ` #comment`; `'single'` quotes are literal;
//! `"double"` quotes understand `\n`, `\t`, `\"`, `\\` and may span
//! lines. Unquoted and double-quoted values are interpolated (`${VAR}`,
//! with the variables defined above in the same file and the lookup), as
//! compose v2 does; single-quoted ones are not.

use super::interpolate::{interpolate, InterpolateError, Lookup};

/// A line of an env file that compose would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: `{text}` is not KEY=VALUE")]
    Syntax { line: usize, text: String },
    #[error("line {line}: a quoted value is not closed")]
    Unclosed { line: usize },
    #[error("line {line}: {source}")]
    Interpolate {
        line: usize,
        #[source]
        source: InterpolateError,
    },
}

/// Parses an env file; later definitions of a key win.
pub fn parse(text: &str, env: Lookup) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let line_no = n + 1;
        let line = lines[n].trim_start();
        n += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, raw) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (line.trim(), None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(DotenvError::Syntax {
                line: line_no,
                text: line.to_string(),
            });
        }
        let Some(raw) = raw else {
            // `KEY` alone: its value from the environment, if set.
            if let Some(v) = env(key) {
                set(&mut out, key, v);
            }
            continue;
        };
        let raw = raw.trim_start();
        let lookup = |k: &str| {
            out.iter()
                .rev()
                .find(|(ok, _)| ok == k)
                .map(|(_, v)| v.clone())
                .or_else(|| env(k))
        };
        let mut ignored = Vec::new();
        let value = if let Some(body) = raw.strip_prefix('\'') {
            let end = body
                .find('\'')
                .ok_or(DotenvError::Unclosed { line: line_no })?;
            body[..end].to_string()
        } else if let Some(body) = raw.strip_prefix('"') {
            // May continue on the following lines.
            let mut text = body.to_string();
            let close = loop {
                if let Some(i) = unescaped_quote(&text) {
                    break i;
                }
                if n >= lines.len() {
                    return Err(DotenvError::Unclosed { line: line_no });
                }
                text.push('\n');
                text.push_str(lines[n]);
                n += 1;
            };
            let unescaped = unescape(&text[..close]);
            interpolate(&unescaped, &lookup, &mut ignored).map_err(|source| {
                DotenvError::Interpolate {
                    line: line_no,
                    source,
                }
            })?
        } else {
            let v = match raw.find(" #") {
                Some(i) => &raw[..i],
                None => raw,
            };
            interpolate(v.trim(), &lookup, &mut ignored).map_err(|source| {
                DotenvError::Interpolate {
                    line: line_no,
                    source,
                }
            })?
        };
        set(&mut out, key, value);
    }
    Ok(out)
}

fn set(out: &mut Vec<(String, String)>, key: &str, value: String) {
    out.retain(|(k, _)| k != key);
    out.push((key.to_string(), value));
}

fn unescaped_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "HOME").then(|| "/home/op".to_string())
    }

    fn p(t: &str) -> Vec<(String, String)> {
        parse(t, &env).unwrap()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let text = "# settings\n\nA=1\nexport B = two words  # note\nC='lit ${HOME} #x'\nD=\"x\\ny \\\"q\\\" ${A}\"\nE=\nF=a#b\nHOME\nUNSET_ALONE\nA=3\n";
        assert_eq!(
            p(text),
            kv(&[
                ("B", "two words"),
                ("C", "lit ${HOME} #x"),
                ("D", "x\ny \"q\" 1"),
                ("E", ""),
                ("F", "a#b"),
                ("HOME", "/home/op"),
                ("A", "3"),
            ])
        );
    }

    #[test]
    fn interpolation_sees_earlier_lines_and_the_environment() {
        assert_eq!(
            p("DIR=${HOME}/data\nURL=pg://${USER:-app}@db/${DIR}\n"),
            kv(&[
                ("DIR", "/home/op/data"),
                ("URL", "pg://app@db//home/op/data")
            ])
        );
    }

    #[test]
    fn multi_line_double_quotes() {
        assert_eq!(p("K=\"a\nb\"\nL=c\n"), kv(&[("K", "a\nb"), ("L", "c")]));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("A=1\nnot a pair\n", &env),
            Err(DotenvError::Syntax {
                line: 2,
                text: "not a pair".into()
            })
        );
        assert_eq!(
            parse("A='x\n", &env),
            Err(DotenvError::Unclosed { line: 1 })
        );
        assert_eq!(
            parse("A=\"x\nB=1\n", &env),
            Err(DotenvError::Unclosed { line: 1 })
        );
        assert!(matches!(
            parse("\nA=${B:?needed}\n", &env),
            Err(DotenvError::Interpolate { line: 2, .. })
        ));
    }
}
