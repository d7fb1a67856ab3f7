//! compose `restart` and `deploy` → drover's restarter policy, replicas
//! and resources (pure).
//!
//! `restart: always` / `unless-stopped` / `on-failure` restart forever with
//! Docker's backoff (100 ms doubling to 1 minute, reset after 10 s up):
//! the restarter gets exactly those settings, named in the output, and a
//! `max_restarts` it cannot reach. `on-failure:N` gives up after N
//! restarts, as Docker does (the count is not reset by a healthy period:
//! `window` and `reset_after` of a day). `no` attaches no restarter.

use serde_yaml::{Mapping, Value};

use super::{duration, key, memory, s, scalar, Ctx};

/// More restarts than Docker's backoff allows within the window: never
/// reached, so the restarter never gives up, as Docker's `always` does.
const FOREVER: u64 = 1_000_000;

fn docker_backoff() -> Mapping {
    let mut p = Mapping::new();
    p.insert(s("type"), s("restarter"));
    p.insert(s("backoff_start"), s("100ms"));
    p.insert(s("backoff_factor"), Value::from(2.0));
    p.insert(s("backoff_cap"), s("1m"));
    p.insert(s("reset_after"), s("10s"));
    p
}

/// A service's `restart` → a restarter (or none).
pub(super) fn restart(cx: &mut Ctx, at: &str, v: &Value) -> Option<Value> {
    let t = scalar(v).unwrap_or_default();
    let mut p = docker_backoff();
    match t.as_str() {
        "no" | "" | "false" => return None,
        "always" | "unless-stopped" | "on-failure" => {
            p.insert(s("max_restarts"), Value::from(FOREVER));
        }
        other if other.starts_with("on-failure:") => {
            let Ok(n) = other["on-failure:".len()..].parse::<u64>() else {
                cx.skip(at, format!("`{other}`: the retry count is not a number"));
                return None;
            };
            p.insert(s("max_restarts"), Value::from(n));
            p.insert(s("window"), s("24h"));
            p.insert(s("reset_after"), s("24h"));
        }
        other => {
            cx.skip(at, format!("unknown restart policy `{other}`: use no, always, on-failure[:N] or unless-stopped"));
            return None;
        }
    }
    Some(Value::Mapping(p))
}

/// `deploy.restart_policy` (Swarm's) → a restarter.
fn restart_policy(cx: &mut Ctx, path: &str, rp: &Mapping) -> Option<Value> {
    let mut p = Mapping::new();
    p.insert(s("type"), s("restarter"));
    for (k, v) in rp {
        let k = key(k);
        let at = format!("{path}.{k}");
        match k.as_str() {
            "condition" => match scalar(v).as_deref() {
                Some("none") => return None,
                Some("on-failure") | Some("any") => {}
                other => cx.skip(
                    at,
                    format!(
                        "unknown condition `{}` (Swarm's are none, on-failure and any): restarting on failure",
                        other.unwrap_or_default()
                    ),
                ),
            },
            "delay" => match duration(v) {
                Some(d) => {
                    p.insert(s("backoff_start"), s(d.clone()));
                    p.insert(s("initial_delay"), s(d));
                }
                None => cx.skip(at, "not a duration"),
            },
            "max_attempts" => match v.as_u64() {
                Some(n) => {
                    p.insert(s("max_restarts"), Value::from(n));
                }
                None => cx.skip(at, "not a number"),
            },
            "window" => match duration(v) {
                Some(d) => {
                    p.insert(s("window"), s(d));
                }
                None => cx.skip(at, "not a duration"),
            },
            _ => cx.skip(at, "not a Compose restart_policy key"),
        }
    }
    Some(Value::Mapping(p))
}

/// What a `deploy` section sets.
#[derive(Default)]
pub(super) struct Deploy {
    pub replicas: Option<u64>,
    pub policy: Option<Option<Value>>,
}

/// A service's `deploy` section; resources go into `resources`.
pub(super) fn deploy(cx: &mut Ctx, at: &str, v: &Value, resources: &mut Mapping) -> Deploy {
    let mut out = Deploy::default();
    let Value::Mapping(d) = v else {
        cx.skip(at, "`deploy` must be a mapping");
        return out;
    };
    for (dk, dv) in d {
        let dk = key(dk);
        let dat = format!("{at}.{dk}");
        match dk.as_str() {
            "replicas" => match dv.as_u64() {
                Some(n) => out.replicas = Some(n),
                None => cx.skip(dat, "not a number"),
            },
            "resources" => {
                for (rk, rv) in dv.as_mapping().into_iter().flatten() {
                    let rk = key(rk);
                    let rat = format!("{dat}.{rk}");
                    if rk != "limits" {
                        for lk in rv.as_mapping().into_iter().flatten().map(|(k, _)| key(k)) {
                            cx.skip(
                                format!("{rat}.{lk}"),
                                "drover sets limits only; reservations are not kept",
                            );
                        }
                        continue;
                    }
                    for (lk, lv) in rv.as_mapping().into_iter().flatten() {
                        let lk = key(lk);
                        limit(cx, &format!("{rat}.{lk}"), &lk, lv, resources);
                    }
                }
            }
            "restart_policy" => match dv {
                Value::Mapping(rp) => out.policy = Some(restart_policy(cx, &dat, rp)),
                _ => cx.skip(dat, "must be a mapping"),
            },
            "mode" if scalar(dv).as_deref() == Some("replicated") => {}
            "mode" => cx.skip(dat, "drover runs replicated services only (a cluster)"),
            "labels" => cx.skip_section(
                dat,
                "Swarm service labels have no container to go on: use the service's `labels`",
                dv,
            ),
            "update_config" | "rollback_config" => cx.skip_section(
                dat,
                "drover replaces containers one by one on update; Swarm's update settings do not apply",
                dv,
            ),
            "placement" | "endpoint_mode" => cx.skip_section(
                dat,
                "a Swarm setting: drover places containers with its own `placement`",
                dv,
            ),
            _ => cx.skip_section(dat, "a Swarm setting drover has no equivalent for", dv),
        }
    }
    out
}

/// One resource limit (`cpus`, `memory`, also the service-level `cpus`
/// and `mem_limit`).
pub(super) fn limit(cx: &mut Ctx, at: &str, k: &str, v: &Value, resources: &mut Mapping) {
    match k {
        "cpus" => match scalar(v).and_then(|c| c.parse::<f64>().ok()) {
            Some(c) => {
                resources.insert(s("cpus"), Value::from(c));
            }
            None => cx.skip(at, "not a number of CPUs"),
        },
        "memory" | "mem_limit" => match memory(v) {
            Some(m) => {
                resources.insert(s("memory"), s(m));
            }
            None => cx.skip(at, "not a memory size"),
        },
        "pids" => cx.skip(at, "drover limits cpus and memory only"),
        _ => cx.skip(at, "drover limits cpus and memory only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_values() {
        let base = std::path::Path::new("/srv/app");
        let src = crate::compose::Source {
            name: None,
            base_dir: base,
            env: &|_| None,
            read: &|_| Err(std::io::ErrorKind::NotFound.into()),
        };
        let vars = |_: &str| None;
        let mut cx = Ctx::new(&src, &vars);
        let r = |cx: &mut Ctx, t: &str| restart(cx, "services.a.restart", &Value::from(t));
        let always = r(&mut cx, "always").unwrap();
        assert_eq!(always["max_restarts"], Value::from(FOREVER));
        assert_eq!(always["backoff_cap"], Value::from("1m"));
        assert_eq!(r(&mut cx, "unless-stopped"), Some(always.clone()));
        assert_eq!(r(&mut cx, "on-failure"), Some(always));
        let three = r(&mut cx, "on-failure:3").unwrap();
        assert_eq!(three["max_restarts"], Value::from(3));
        assert_eq!(three["window"], Value::from("24h"));
        assert_eq!(r(&mut cx, "no"), None);
        assert!(cx.out.is_empty());
        assert_eq!(r(&mut cx, "sometimes"), None);
        assert_eq!(r(&mut cx, "on-failure:x"), None);
        assert_eq!(cx.out.len(), 2);
    }
}
