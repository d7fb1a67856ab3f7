//! compose `ports` entries, short and long syntax (pure).
//!
//! Short: `80`, `"8000:80"`, `"127.0.0.1:8000:80"`, `"127.0.0.1::80"`,
//! `"8000-8002:80-82"`, `"53:53/udp"`, `"[::1]:8000:80"`. Long:
//! `{target, published, host_ip, protocol, mode, name, app_protocol}`.
//! Ranges are expanded port by port, as the engine does.

use serde_yaml::Value;

use super::{key, scalar};

/// One published container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Port {
    pub container: u16,
    /// A fixed host port; `None`: any free one.
    pub host: Option<u16>,
    /// The host address it is bound to, when the file names one.
    pub host_ip: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PortError {
    #[error("`{0}` is not a port: write `80`, `\"8000:80\"` or `{{target: 80, published: 8000}}`")]
    Syntax(String),
    #[error("`{0}`: the host range and the container range differ in length")]
    RangeLength(String),
    #[error("unknown key `{0}` in a port; expected target, published, host_ip, protocol, mode, name or app_protocol")]
    Key(String),
}

/// `8000` or `8000-8002` → the ports.
fn range(t: &str) -> Option<Vec<u16>> {
    match t.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?);
            (a <= b && b - a < 1000).then(|| (a..=b).collect())
        }
        None => Some(vec![t.parse().ok()?]),
    }
}

fn zip(
    whole: &str,
    host: Option<&str>,
    container: &str,
    host_ip: Option<String>,
    protocol: String,
) -> Result<Vec<Port>, PortError> {
    let bad = || PortError::Syntax(whole.to_string());
    let cs = range(container).ok_or_else(bad)?;
    let hs: Vec<Option<u16>> = match host.filter(|h| !h.is_empty()) {
        None => vec![None; cs.len()],
        Some(h) => {
            let hs = range(h).ok_or_else(bad)?;
            if hs.len() == 1 && cs.len() == 1 {
                hs.into_iter().map(Some).collect()
            } else if hs.len() != cs.len() {
                return Err(PortError::RangeLength(whole.to_string()));
            } else {
                hs.into_iter().map(Some).collect()
            }
        }
    };
    Ok(cs
        .into_iter()
        .zip(hs)
        .map(|(container, host)| Port {
            container,
            host,
            host_ip: host_ip.clone(),
            protocol: protocol.clone(),
        })
        .collect())
}

/// One `ports` entry → its ports.
pub(super) fn parse(v: &Value) -> Result<Vec<Port>, PortError> {
    if let Value::Mapping(m) = v {
        for k in m.keys() {
            let k = key(k);
            if !matches!(
                k.as_str(),
                "target" | "published" | "host_ip" | "protocol" | "mode" | "name" | "app_protocol"
            ) {
                return Err(PortError::Key(k));
            }
        }
        let whole = format!("{v:?}");
        let target = m
            .get("target")
            .and_then(scalar)
            .ok_or_else(|| PortError::Syntax(whole.clone()))?;
        let published = m.get("published").and_then(scalar);
        let host_ip = m.get("host_ip").and_then(scalar);
        let protocol = m
            .get("protocol")
            .and_then(scalar)
            .unwrap_or_else(|| "tcp".into());
        return zip(&whole, published.as_deref(), &target, host_ip, protocol);
    }
    let whole = scalar(v).ok_or_else(|| PortError::Syntax(format!("{v:?}")))?;
    let (spec, protocol) = match whole.split_once('/') {
        Some((a, p)) => (a, p.to_string()),
        None => (whole.as_str(), "tcp".to_string()),
    };
    // An IPv6 host address is bracketed: `[::1]:8000:80`.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(r) => {
            let (ip, rest) = r
                .split_once("]:")
                .ok_or_else(|| PortError::Syntax(whole.clone()))?;
            (Some(ip.to_string()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    match (host_ip, parts.as_slice()) {
        (None, [c]) => zip(&whole, None, c, None, protocol),
        (None, [h, c]) => zip(&whole, Some(h), c, None, protocol),
        (None, [ip, h, c]) => zip(&whole, Some(h), c, Some(ip.to_string()), protocol),
        (Some(ip), [h, c]) => zip(&whole, Some(h), c, Some(ip), protocol),
        _ => Err(PortError::Syntax(whole)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(y: &str) -> Result<Vec<Port>, PortError> {
        parse(&serde_yaml::from_str(y).unwrap())
    }

    fn port(container: u16, host: Option<u16>, ip: Option<&str>, proto: &str) -> Port {
        Port {
            container,
            host,
            host_ip: ip.map(str::to_string),
            protocol: proto.into(),
        }
    }

    #[test]
    fn short_syntax() {
        assert_eq!(p("80").unwrap(), [port(80, None, None, "tcp")]);
        assert_eq!(p("'8000:80'").unwrap(), [port(80, Some(8000), None, "tcp")]);
        assert_eq!(
            p("'127.0.0.1:8000:80'").unwrap(),
            [port(80, Some(8000), Some("127.0.0.1"), "tcp")]
        );
        assert_eq!(
            p("'127.0.0.1::80'").unwrap(),
            [port(80, None, Some("127.0.0.1"), "tcp")]
        );
        assert_eq!(p("'53:53/udp'").unwrap(), [port(53, Some(53), None, "udp")]);
        assert_eq!(
            p("'[::1]:8000:80'").unwrap(),
            [port(80, Some(8000), Some("::1"), "tcp")]
        );
        assert_eq!(
            p("'8000-8001:80-81'").unwrap(),
            [
                port(80, Some(8000), None, "tcp"),
                port(81, Some(8001), None, "tcp")
            ]
        );
        assert_eq!(p("'3000-3001'").unwrap().len(), 2);
    }

    #[test]
    fn long_syntax() {
        assert_eq!(
            p("{target: 80, published: '8080', host_ip: 0.0.0.0, protocol: tcp, mode: host}")
                .unwrap(),
            [port(80, Some(8080), Some("0.0.0.0"), "tcp")]
        );
        assert_eq!(p("{target: 443}").unwrap(), [port(443, None, None, "tcp")]);
        assert_eq!(p("{target: 80, x: 1}"), Err(PortError::Key("x".into())));
    }

    #[test]
    fn bad_entries() {
        assert!(matches!(p("'http'"), Err(PortError::Syntax(_))));
        assert!(matches!(p("'1:2:3:4'"), Err(PortError::Syntax(_))));
        assert_eq!(
            p("'8000-8002:80-81'"),
            Err(PortError::RangeLength("8000-8002:80-81".into()))
        );
    }
}
