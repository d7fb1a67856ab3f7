//! `build.args`: the build arguments (`ARG`) of a built image, written as a map
//! (`{ VERSION: "1.2" }`) or compose's list (`[VERSION=1.2]`).

use std::collections::BTreeMap;

/// `build.args` of the wrong shape (what was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`build.args` is a map (`{{ NAME: value }}`) or a list of `NAME=value`, got {0}")]
pub struct BuildArgsError(pub String);

/// Reads `build.args` in either form; numbers and booleans are kept as text.
pub fn parse_build_args(v: &serde_yaml::Value) -> Result<BTreeMap<String, String>, BuildArgsError> {
    use serde_yaml::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    };
    let shape = || BuildArgsError(format!("{v:?}"));
    match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v)?)))
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(shape),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let text = item.as_str()?;
                let (k, v) = text.split_once('=').unwrap_or((text, ""));
                Some((k.to_string(), v.to_string()))
            })
            .collect::<Option<BTreeMap<_, _>>>()
            .ok_or_else(shape),
        _ => Err(shape()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(yaml: &str) -> Result<BTreeMap<String, String>, BuildArgsError> {
        parse_build_args(&serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn map_and_list_forms() {
        let want: BTreeMap<String, String> =
            [("A".into(), "1".into()), ("B".into(), "x=y".into())].into();
        assert_eq!(args("{ A: 1, B: 'x=y' }").unwrap(), want);
        assert_eq!(args("[A=1, 'B=x=y']").unwrap(), want);
        assert!(matches!(args("7"), Err(BuildArgsError(_))));
        assert!(matches!(args("{ A: [1] }"), Err(BuildArgsError(_))));
    }
}
