//! A container's published port: written `8080` (a free host port), `"8000:80"` (host port
//! 8000 to container port 80, compose's short form) or `{ container: 80, host: 8000 }`.
//!
//! Only a single container may fix its host port: members of a cluster share hosts and would
//! clash (validation says so, with the position).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::problem::{FieldPath, ValidationError};

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "serde_yaml::Value")]
pub struct PortSpec {
    /// The port the process listens on inside the container.
    pub container: u16,
    /// The host port to publish it on. Default: a free one, chosen by the
    /// engine and published as the `host.port.<container>` sensor.
    pub host: Option<u16>,
}

impl PortSpec {
    /// A container port published on a free host port.
    pub fn any(container: u16) -> Self {
        PortSpec {
            container,
            host: None,
        }
    }
}

impl From<u16> for PortSpec {
    fn from(container: u16) -> Self {
        PortSpec::any(container)
    }
}

/// `ports: [8080]` stays comparable with plain numbers.
impl PartialEq<u16> for PortSpec {
    fn eq(&self, other: &u16) -> bool {
        self.host.is_none() && self.container == *other
    }
}

/// The container port; a fixed host port as `HOST:CONTAINER`.
impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(h) => write!(f, "{h}:{}", self.container),
            None => write!(f, "{}", self.container),
        }
    }
}

/// Written back as the user would: a number, or `"HOST:CONTAINER"`.
impl From<PortSpec> for serde_yaml::Value {
    fn from(p: PortSpec) -> Self {
        match p.host {
            None => serde_yaml::Value::from(p.container),
            Some(_) => serde_yaml::Value::from(p.to_string()),
        }
    }
}

/// A `ports` entry that is not a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    #[error(
        "`{0}` is not a port: write a port number (`8080`), `\"HOST:CONTAINER\"` (`\"8000:80\"`) \
         or `{{ container: 80, host: 8000 }}`"
    )]
    Shape(String),
    #[error("port {0} is out of range: ports are 1 to 65535")]
    Range(String),
    #[error("`{0}` binds an address or a protocol; drover publishes tcp on every address: write `\"HOST:CONTAINER\"`")]
    Unsupported(String),
    #[error("unknown field `{0}` in a port, expected `container` or `host`")]
    UnknownField(String),
    #[error("a port needs `container`, the port the process listens on")]
    NoContainer,
}

fn number(text: &str) -> Result<u16, PortSpecError> {
    let t = text.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(PortSpecError::Shape(text.to_string()));
    }
    // 0 is left to validation, which says why with the entry's position.
    match t.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(PortSpecError::Range(t.to_string())),
    }
}

fn value_number(v: &serde_yaml::Value) -> Result<u16, PortSpecError> {
    match v {
        serde_yaml::Value::Number(n) => match n.as_u64() {
            Some(p) if p <= 65535 => Ok(p as u16),
            _ => Err(PortSpecError::Range(n.to_string())),
        },
        serde_yaml::Value::String(s) => number(s),
        other => Err(PortSpecError::Shape(describe(other))),
    }
}

fn describe(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => "null".into(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().replace('\n', " "))
            .unwrap_or_else(|_| "?".into()),
    }
}

/// Parses compose's short form: `80`, `8000:80`.
pub fn parse_port(text: &str) -> Result<PortSpec, PortSpecError> {
    if text.contains('/') || text.matches(':').count() > 1 || text.contains('-') {
        return Err(PortSpecError::Unsupported(text.to_string()));
    }
    match text.split_once(':') {
        None => Ok(PortSpec::any(number(text)?)),
        Some((host, container)) => Ok(PortSpec {
            container: number(container)?,
            host: Some(number(host)?),
        }),
    }
}

impl TryFrom<serde_yaml::Value> for PortSpec {
    type Error = PortSpecError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, PortSpecError> {
        use serde_yaml::Value;
        match v {
            Value::Number(_) => Ok(PortSpec::any(value_number(&v)?)),
            Value::String(s) => parse_port(&s),
            Value::Mapping(m) => {
                let mut container = None;
                let mut host = None;
                for (k, v) in m {
                    match k.as_str().unwrap_or_default() {
                        "container" => container = Some(value_number(&v)?),
                        "host" => host = Some(value_number(&v)?),
                        other => return Err(PortSpecError::UnknownField(other.to_string())),
                    }
                }
                Ok(PortSpec {
                    container: container.ok_or(PortSpecError::NoContainer)?,
                    host,
                })
            }
            other => Err(PortSpecError::Shape(describe(&other))),
        }
    }
}

/// A cluster's members share hosts: a fixed host port would clash on the
/// second member of a host (and a resize could never grow).
pub fn member_fixed_ports(mpath: &FieldPath, ports: &[PortSpec]) -> Vec<ValidationError> {
    ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let h = p.host?;
            Some(ValidationError::at(
                mpath.key("ports").index(i),
                format!(
                    "a cluster member cannot fix its host port ({h}): members on one host would \
                     clash; publish `{}` on a free port and put a load balancer (`type: \
                     load-balancer`, `port: {h}`) in front",
                    p.container
                ),
            ))
        })
        .collect()
}

/// Two ports of one container on the same fixed host port.
pub fn duplicate_host_ports(path: &FieldPath, ports: &[PortSpec]) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let Some(h) = p.host else { continue };
        if let Some(j) = ports[..i].iter().position(|q| q.host == Some(h)) {
            errs.push(ValidationError::at(
                path.index(i),
                format!("host port {h} is fixed twice: ports[{j}] is on {h} too"),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(yaml: &str) -> Result<PortSpec, PortSpecError> {
        PortSpec::try_from(serde_yaml::from_str::<serde_yaml::Value>(yaml).unwrap())
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(p("8080"), Ok(PortSpec::any(8080)));
        assert_eq!(p("'8080'"), Ok(PortSpec::any(8080)));
        let fixed = PortSpec {
            container: 80,
            host: Some(8000),
        };
        assert_eq!(p("'8000:80'"), Ok(fixed));
        assert_eq!(p("{ container: 80, host: 8000 }"), Ok(fixed));
        assert_eq!(p("{ container: 80 }"), Ok(PortSpec::any(80)));
    }

    #[test]
    fn bad_ports_say_what_to_write() {
        assert_eq!(p("70000"), Err(PortSpecError::Range("70000".into())));
        assert_eq!(p("'8000:70000'"), Err(PortSpecError::Range("70000".into())));
        assert_eq!(
            p("http").unwrap_err().to_string(),
            "`http` is not a port: write a port number (`8080`), `\"HOST:CONTAINER\"` \
             (`\"8000:80\"`) or `{ container: 80, host: 8000 }`"
        );
        assert_eq!(
            p("'127.0.0.1:8000:80'"),
            Err(PortSpecError::Unsupported("127.0.0.1:8000:80".into()))
        );
        assert_eq!(
            p("'80/udp'"),
            Err(PortSpecError::Unsupported("80/udp".into()))
        );
        assert_eq!(p("{ host: 1 }"), Err(PortSpecError::NoContainer));
        assert_eq!(
            p("{ container: 1, hots: 2 }"),
            Err(PortSpecError::UnknownField("hots".into()))
        );
        assert!(matches!(p("[1]"), Err(PortSpecError::Shape(_))));
    }

    #[test]
    fn round_trips_as_written() {
        for text in ["8080", "'8000:80'"] {
            let port = p(text).unwrap();
            let back = serde_yaml::to_string(&port).unwrap();
            let again: PortSpec = serde_yaml::from_str(&back).unwrap();
            assert_eq!(again, port);
        }
        assert_eq!(PortSpec::any(80), 80);
        assert_ne!(p("'8000:80'").unwrap(), 80);
    }
}
