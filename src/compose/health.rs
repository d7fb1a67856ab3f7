//! A compose `healthcheck` → a drover `health` block (pure).
//!
//! A test that fetches this container's own `http://localhost:P/...`
//! (curl, wget) or connects to its own port (nc) becomes drover's own
//! probe (`http`/`tcp`: no curl needed in the image, and drover sees the
//! answer at once). Every other test is run by the engine inside the
//! container exactly as compose runs it: the `test` is passed through
//! (`[CMD, ...]`, `[CMD-SHELL, "..."]` or a string, which is CMD-SHELL).
//! `interval`, `timeout`, `start_period` keep their names; `retries`
//! becomes `unhealthy_threshold` (compose's default, 3, written out when
//! the file gives none, since drover's own default is 2).

use serde_yaml::{Mapping, Value};

use super::{duration, key, s, scalar, split_command, Ctx};

/// compose's default `retries`.
const COMPOSE_RETRIES: u64 = 3;

/// What a compose `test` becomes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Probe {
    /// drover probes `GET path` on this container port.
    Http { port: u16, path: String },
    /// drover connects to this container port.
    Tcp { port: u16 },
    /// The engine runs the test inside the container.
    Engine(Value),
    /// `[NONE]`: the image's own check is turned off.
    Off,
}

/// Why a `test` cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum HealthTestError {
    #[error(
        "unrecognised test form {0:?}; use [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]"
    )]
    Form(Vec<String>),
    #[error("`test` must be a string or a list")]
    NotCommand,
}

/// A compose `test` → a probe.
pub(super) fn probe(test: &Value) -> Result<Probe, HealthTestError> {
    let tokens: Vec<String> = match test {
        Value::String(line) => split_command(line),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().filter_map(scalar).collect();
            match items.first().map(String::as_str) {
                Some("NONE") => return Ok(Probe::Off),
                Some("CMD") if items.len() > 1 => items[1..].to_vec(),
                Some("CMD-SHELL") if items.len() > 1 => split_command(&items[1..].join(" ")),
                _ => return Err(HealthTestError::Form(items)),
            }
        }
        _ => return Err(HealthTestError::NotCommand),
    };
    Ok(own_probe(&tokens).unwrap_or_else(|| Probe::Engine(test.clone())))
}

/// curl/wget of this container's own http URL, or nc to its own port.
fn own_probe(tokens: &[String]) -> Option<Probe> {
    // `a || exit 1` is the same check as `a`; anything chained after `&&`,
    // `;` or `|` is more than one probe: leave that to the engine.
    let cmd: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .take_while(|t| *t != "||")
        .collect();
    if cmd.iter().any(|t| matches!(*t, "&&" | ";" | "|")) {
        return None;
    }
    let prog = cmd.first().map(|p| p.rsplit('/').next().unwrap_or(p))?;
    let local = |h: &str| matches!(h, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]");
    match prog {
        "curl" | "wget" => {
            let url = cmd.iter().find(|t| t.starts_with("http://"))?;
            let rest = &url["http://".len()..];
            let (hostport, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().ok()?),
                None => (hostport, 80),
            };
            local(host).then(|| Probe::Http {
                port,
                path: path.to_string(),
            })
        }
        "nc" | "ncat" | "netcat" => {
            let host_ok = cmd.iter().skip(1).any(|t| local(t));
            let port = cmd.iter().rev().find_map(|t| t.parse::<u16>().ok())?;
            host_ok.then_some(Probe::Tcp { port })
        }
        _ => None,
    }
}

/// A compose `healthcheck` mapping → the health block and the port that
/// must be published for drover's own probe. `None` when there is no
/// check (`disable: true`, `[NONE]`, or no usable `test`).
pub(super) fn healthcheck(cx: &mut Ctx, at: &str, h: &Mapping) -> Option<(Mapping, Option<u16>)> {
    if h.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let mut block = Mapping::new();
    let mut port = None;
    let mut retries = COMPOSE_RETRIES;
    for (hk, hv) in h {
        let hk = key(hk);
        let hat = format!("{at}.{hk}");
        match hk.as_str() {
            "test" => match probe(hv) {
                Ok(Probe::Http { port: p, path }) => {
                    let mut m = Mapping::new();
                    m.insert(s("port"), Value::from(p));
                    m.insert(s("path"), s(path));
                    block.insert(s("http"), Value::Mapping(m));
                    port = Some(p);
                }
                Ok(Probe::Tcp { port: p }) => {
                    let mut m = Mapping::new();
                    m.insert(s("port"), Value::from(p));
                    block.insert(s("tcp"), Value::Mapping(m));
                    port = Some(p);
                }
                Ok(Probe::Engine(t)) => {
                    block.insert(s("test"), t);
                }
                Ok(Probe::Off) => return None,
                Err(e) => cx.skip(hat, e.to_string()),
            },
            "interval" | "timeout" | "start_period" => match duration(hv) {
                Some(d) => {
                    block.insert(s(hk), s(d));
                }
                None => cx.skip(hat, "not a duration"),
            },
            "retries" => match hv.as_u64() {
                Some(n) => retries = n,
                None => cx.skip(hat, "not a number"),
            },
            "start_interval" => cx.skip(
                hat,
                "drover has no separate start interval: while starting, its own probes run \
                 every 25 ms and engine checks every `interval`",
            ),
            "disable" => {}
            _ => cx.skip(hat, "not a Compose healthcheck key"),
        }
    }
    if !["http", "tcp", "test"]
        .iter()
        .any(|k| block.contains_key(*k))
    {
        // Timings for the image's own HEALTHCHECK: the engine runs that
        // check with the image's timings.
        for (k, _) in h {
            let k = key(k);
            if matches!(
                k.as_str(),
                "interval" | "timeout" | "start_period" | "retries"
            ) {
                cx.skip(
                    format!("{at}.{k}"),
                    "no `test`: the engine runs the image's own HEALTHCHECK with the image's timings",
                );
            }
        }
        return None;
    }
    block.insert(s("unhealthy_threshold"), Value::from(retries.max(1)));
    Some((block, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Result<Probe, HealthTestError> {
        probe(&serde_yaml::from_str(v).unwrap())
    }

    #[test]
    fn own_probes() {
        assert_eq!(
            p(r#"["CMD", "curl", "-f", "http://localhost:8080/health"]"#),
            Ok(Probe::Http {
                port: 8080,
                path: "/health".into()
            })
        );
        assert_eq!(
            p(r#"["CMD-SHELL", "wget -qO- http://127.0.0.1/ || exit 1"]"#),
            Ok(Probe::Http {
                port: 80,
                path: "/".into()
            })
        );
        assert_eq!(
            p(r#""nc -z localhost 5432""#),
            Ok(Probe::Tcp { port: 5432 })
        );
    }

    #[test]
    fn engine_checks_keep_the_test_as_written() {
        for t in [
            r#"["CMD", "pg_isready", "-U", "postgres"]"#,
            r#"["CMD-SHELL", "redis-cli ping | grep PONG"]"#,
            r#""mysqladmin ping -h localhost""#,
            // Another container's address, or https: the engine runs it.
            r#"["CMD", "curl", "http://db:5432/"]"#,
            r#"["CMD", "curl", "-f", "https://localhost/"]"#,
            r#"["CMD", "curl", "http://localhost:x/"]"#,
            r#"["CMD-SHELL", "curl -f http://localhost/ && test -f /ready"]"#,
        ] {
            let v: Value = serde_yaml::from_str(t).unwrap();
            assert_eq!(p(t), Ok(Probe::Engine(v)), "{t}");
        }
    }

    #[test]
    fn timings_without_a_test_are_listed() {
        let src = crate::compose::Source {
            name: None,
            base_dir: std::path::Path::new("/srv"),
            env: &|_| None,
            read: &|_| Err(std::io::ErrorKind::NotFound.into()),
        };
        let vars = |_: &str| None;
        let mut cx = Ctx::new(&src, &vars);
        let h: Mapping = serde_yaml::from_str("{interval: 5s, retries: 4}").unwrap();
        assert_eq!(healthcheck(&mut cx, "services.a.healthcheck", &h), None);
        let listed: Vec<&str> = cx.out.iter().map(|u| u.path.as_str()).collect();
        assert_eq!(
            listed,
            [
                "services.a.healthcheck.interval",
                "services.a.healthcheck.retries"
            ]
        );
    }

    #[test]
    fn off_and_bad_forms() {
        assert_eq!(p(r#"["NONE"]"#), Ok(Probe::Off));
        assert_eq!(p(r#"["X"]"#), Err(HealthTestError::Form(vec!["X".into()])));
        assert_eq!(
            p(r#"["CMD"]"#),
            Err(HealthTestError::Form(vec!["CMD".into()]))
        );
        assert_eq!(p("7"), Err(HealthTestError::NotCommand));
    }
}
