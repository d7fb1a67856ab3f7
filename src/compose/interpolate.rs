//! Compose's variable interpolation, as the Compose specification and
//! compose-go define it (pure).
//!
//! Compose parses the YAML first and interpolates each string *value*
//! afterwards (keys are left alone), so a value that expands to `a: b`
//! stays one string: [`interpolate_value`] does the same.
//!
//! | form | unset | set but empty |
//! | --- | --- | --- |
//! | `$VAR`, `${VAR}` | empty (warned) | empty |
//! | `${VAR:-default}` | default | default |
//! | `${VAR-default}` | default | empty |
//! | `${VAR:?error}` | error | error |
//! | `${VAR?error}` | error | empty |
//! | `${VAR:+alt}` | empty | empty |
//! | `${VAR+alt}` | empty | alt |
//!
//! `$$` is a literal `$`. A default may itself hold `${...}`. A `$`
//! followed by anything else is kept as written; a `${` that does not
//! close, or names no variable, is an error (compose's "invalid template").

use serde_yaml::Value;

/// Why interpolation failed; compose refuses the file for the same reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("required variable {var} is missing a value: {message}; set it in the environment or in the .env file beside the compose file")]
    Required { var: String, message: String },
    #[error(
        "invalid template `{0}`: write `${{NAME}}`, `${{NAME:-default}}` or `$$` for a literal `$`"
    )]
    Invalid(String),
}

/// Where variables come from: the caller merges the process environment
/// over the `.env` file, as compose does.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The index just past the `}` closing the `${` that starts at `open`
/// (nested `${...}` in defaults counted).
fn closing(text: &str, open: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if b[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// Interpolates one string. Variables that were unset (and had no
/// default) are added to `unset`: compose warns about them and substitutes
/// an empty string.
pub fn interpolate(
    text: &str,
    env: Lookup,
    unset: &mut Vec<String>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let next = tail[1..].chars().next();
        match next {
            Some('$') => {
                out.push('$');
                rest = &tail[2..];
            }
            Some('{') => {
                let end = closing(tail, 0).ok_or_else(|| InterpolateError::Invalid(tail.into()))?;
                out.push_str(&braced(&tail[2..end - 1], &tail[..end], env, unset)?);
                rest = &tail[end..];
            }
            Some(c) if is_name_start(c) => {
                let len = tail[1..]
                    .find(|c: char| !is_name(c))
                    .unwrap_or(tail.len() - 1);
                let var = &tail[1..1 + len];
                match env(var) {
                    Some(v) => out.push_str(&v),
                    None => note_unset(unset, var),
                }
                rest = &tail[1 + len..];
            }
            _ => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn note_unset(unset: &mut Vec<String>, var: &str) {
    if !unset.iter().any(|u| u == var) {
        unset.push(var.to_string());
    }
}

/// The inside of `${...}`: a name, then optionally an operator and a word.
fn braced(
    inner: &str,
    whole: &str,
    env: Lookup,
    unset: &mut Vec<String>,
) -> Result<String, InterpolateError> {
    let len = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
    let var = &inner[..len];
    if var.is_empty() || !var.starts_with(is_name_start) {
        return Err(InterpolateError::Invalid(whole.into()));
    }
    let op = &inner[len..];
    let value = env(var);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let present = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    let Some(kind) = op.chars().next() else {
        if colon {
            return Err(InterpolateError::Invalid(whole.into()));
        }
        return Ok(match value {
            Some(v) => v,
            None => {
                note_unset(unset, var);
                String::new()
            }
        });
    };
    // `kind` may be any character (`${Xé-1}`): slice after it, not after a byte.
    let word = &op[kind.len_utf8()..];
    match kind {
        '-' => match (present, value) {
            (true, Some(v)) => Ok(v),
            _ => interpolate(word, env, unset),
        },
        '?' => match (present, value) {
            (true, Some(v)) => Ok(v),
            _ => Err(InterpolateError::Required {
                var: var.into(),
                message: interpolate(word, env, unset)?,
            }),
        },
        '+' => {
            if present {
                interpolate(word, env, unset)
            } else {
                Ok(String::new())
            }
        }
        _ => Err(InterpolateError::Invalid(whole.into())),
    }
}

/// Interpolates every string value (and list item) of a parsed compose
/// document in place; mapping keys are left as written, as compose does.
/// `at` names the position for errors: the error is returned with the
/// path of the value that failed.
pub fn interpolate_value(
    v: &mut Value,
    env: Lookup,
    unset: &mut Vec<String>,
    at: &str,
) -> Result<(), (String, InterpolateError)> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, env, unset).map_err(|e| (at.to_string(), e))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, env, unset, &format!("{at}[{i}]"))?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let k = super::key(k);
                let p = if at.is_empty() {
                    k
                } else {
                    format!("{at}.{k}")
                };
                interpolate_value(item, env, unset, &p)?;
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, env, unset, at)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "SET" => Some("v".into()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.2".into()),
            _ => None,
        }
    }

    fn i(t: &str) -> String {
        interpolate(t, &env, &mut Vec::new()).unwrap()
    }

    fn err(t: &str) -> InterpolateError {
        interpolate(t, &env, &mut Vec::new()).unwrap_err()
    }

    /// Found by tests/fuzz.rs: a multi-byte character right after the name
    /// panicked slicing a str mid-character.
    #[test]
    fn a_non_ascii_character_after_the_name_is_no_panic() {
        let _ = interpolate("${Xé-1.25}", &env, &mut Vec::new());
        let _ = interpolate("${SETé}", &env, &mut Vec::new());
    }

    #[test]
    fn plain_forms() {
        assert_eq!(i("a:${TAG} $TAG-x ${SET}${SET}"), "a:1.2 1.2-x vv");
        let mut unset = Vec::new();
        assert_eq!(
            interpolate("[${NOPE}|$NOPE|${EMPTY}]", &env, &mut unset).unwrap(),
            "[||]"
        );
        assert_eq!(unset, ["NOPE"], "listed once, as compose warns once");
    }

    #[test]
    fn defaults_with_and_without_colon() {
        assert_eq!(i("${NOPE:-d} ${EMPTY:-d} ${SET:-d}"), "d d v");
        assert_eq!(i("${NOPE-d} ${EMPTY-d} ${SET-d}"), "d  v");
        // A default may hold colons, dashes, slashes and variables.
        assert_eq!(
            i("${URL:-mongodb:27017/db?replicaSet=rs0}"),
            "mongodb:27017/db?replicaSet=rs0"
        );
        assert_eq!(i("${NOPE:-${TAG}-${NOPE2:-x}}"), "1.2-x");
        assert_eq!(i("${NOPE:-}"), "");
    }

    #[test]
    fn required_variables() {
        assert_eq!(i("${SET:?boom} ${EMPTY?boom}"), "v ");
        assert_eq!(
            err("${NOPE:?NOPE must be set}"),
            InterpolateError::Required {
                var: "NOPE".into(),
                message: "NOPE must be set".into()
            }
        );
        assert!(matches!(
            err("${EMPTY:?x}"),
            InterpolateError::Required { .. }
        ));
        assert!(matches!(
            err("${NOPE?x}"),
            InterpolateError::Required { .. }
        ));
        assert!(err("${NOPE:?x}").to_string().contains(".env file"));
    }

    #[test]
    fn alternatives() {
        assert_eq!(i("[${SET:+alt}|${EMPTY:+alt}|${NOPE:+alt}]"), "[alt||]");
        assert_eq!(i("[${SET+alt}|${EMPTY+alt}|${NOPE+alt}]"), "[alt|alt|]");
    }

    #[test]
    fn dollars_and_invalid_templates() {
        assert_eq!(
            i("$$HOME $${SET} cost $5 a$ $-"),
            "$HOME ${SET} cost $5 a$ $-"
        );
        assert_eq!(err("${SET"), InterpolateError::Invalid("${SET".into()));
        assert_eq!(err("${}"), InterpolateError::Invalid("${}".into()));
        assert_eq!(err("${1A}"), InterpolateError::Invalid("${1A}".into()));
        assert_eq!(err("${SET:}"), InterpolateError::Invalid("${SET:}".into()));
        assert_eq!(
            err("${SET*x}"),
            InterpolateError::Invalid("${SET*x}".into())
        );
    }

    #[test]
    fn values_not_keys_and_the_failing_path() {
        let mut v: Value = serde_yaml::from_str(
            "services:\n  $SET:\n    image: postgres:${NOPE}\n    command: [a, '${TAG}']\n",
        )
        .unwrap();
        let mut unset = Vec::new();
        interpolate_value(&mut v, &env, &mut unset, "").unwrap();
        // The value became `postgres:` (a string, not a YAML mapping).
        assert_eq!(v["services"]["$SET"]["image"], Value::from("postgres:"));
        assert_eq!(v["services"]["$SET"]["command"][1], Value::from("1.2"));
        let mut bad: Value =
            serde_yaml::from_str("services:\n  db:\n    env: ['${X:?x}']\n").unwrap();
        let (at, _) = interpolate_value(&mut bad, &env, &mut unset, "").unwrap_err();
        assert_eq!(at, "services.db.env[0]");
    }
}
