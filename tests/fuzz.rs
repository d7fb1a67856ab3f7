//! Property tests ("fuzzing" within `cargo test`, no nightly needed) over
//! every parser that takes outside input: blueprints (parse and the one
//! validation), compose import, policy PUT bodies, effector arguments and
//! `drover.yaml`. Each case asserts no panic and no hang (a per-case time
//! bound), and that whatever is accepted round-trips: parse, serialize,
//! parse gives the same value. Inputs are both random text and mutations
//! of valid documents (so that the deep paths are reached, not only the
//! first syntax error). The totals and the rate are printed at the end of
//! each test (`cargo test --test fuzz -- --nocapture`).

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// No single case may take longer than this (a hang is a failure).
const CASE_LIMIT: Duration = Duration::from_secs(2);
const CASES: u32 = 2000;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = Instant::now();
    let out = f();
    assert!(t0.elapsed() < CASE_LIMIT, "{what} took {:?}", t0.elapsed());
    out
}

fn report(name: &str, cases: u32, t0: Instant) {
    let s = t0.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {cases} cases in {s:.2}s ({:.0}/s), 0 crashes",
        cases as f64 / s
    );
}

const BLUEPRINT: &str = "name: shop
services:
  - id: web
    type: cluster
    initial_size: 2
    member:
      image: drover/workload:latest
      ports: [8080]
      resources: { cpus: 0.5, memory: 128Mi }
      health: { http: { port: 8080, path: /health }, interval: 1s, timeout: 1s }
      env: { DB: \"${db.host.address}\" }
    policies:
      - type: restarter
        backoff_cap: 30s
      - type: autoscaler
        metric: load
        lower: 1
        upper: 10
  - id: db
    type: container
    image: redis
    ports: [6379]
  - id: lb
    type: load-balancer
    target: web
    port: 0
";

/// A valid document with one token replaced, a line cut or duplicated,
/// or bytes inserted: most mutations keep the YAML parseable, so the
/// validator, not only the YAML reader, sees them.
fn mutations(base: &'static str) -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "0",
        "-1",
        "18446744073709551615",
        "4294967296",
        "1e308",
        "NaN",
        ".inf",
        "\"\"",
        "~",
        "[]",
        "{}",
        "18446744073709551615s",
        "99999999h",
        "0s",
        "\"\\r\\nX: y\"",
        "*a",
        "&a x",
        "!!binary aGk=",
        "<<: *a",
        "? x",
        "${",
        "$${x}",
        "\u{0}",
        "é",
        "- - -",
    ]);
    (0usize..base.len(), tokens, 0usize..4, 0usize..40).prop_map(move |(at, tok, how, len)| {
        let mut at = at;
        while !base.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + len).min(base.len());
        while !base.is_char_boundary(end) {
            end -= 1;
        }
        match how {
            0 => format!("{}{}{}", &base[..at], tok, &base[end..]),
            1 => format!("{}{}{}", &base[..at], tok, &base[at..]),
            2 => format!("{}{}", &base[..at], &base[end..]),
            _ => format!("{}\n{}{}", &base[..end], &base[at..end], &base[end..]),
        }
    })
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,300}", "[a-z_:\\-\\[\\]{}, \n0-9.$\"']{0,300}",]
}

#[test]
fn blueprints_never_panic_and_round_trip() {
    let presets = drover::policy::Presets::builtin();
    let cx = drover::policy::validate::ValidationContext::offline(&presets);
    let t0 = Instant::now();
    let accepted = std::cell::Cell::new(0u32);
    runner()
        .run(&prop_oneof![mutations(BLUEPRINT), any_text()], |text| {
            let got = timed("validate_blueprint", || {
                drover::policy::validate::validate_blueprint("f.yaml", &text, &cx)
            });
            if let Ok(bp) = got {
                accepted.set(accepted.get() + 1);
                let again = serde_yaml::to_string(&bp).unwrap();
                let back = drover::policy::validate::validate_blueprint("g.yaml", &again, &cx)
                    .unwrap_or_else(|e| {
                        panic!("accepted then refused:\n{text}\n---\n{again}\n{e}")
                    });
                prop_assert_eq!(back, bp);
            }
            Ok(())
        })
        .unwrap();
    report("blueprint", CASES, t0);
    println!("fuzz blueprint: {} accepted", accepted.get());
}

const COMPOSE: &str = "services:
  web:
    image: nginx:${TAG:-1.25}
    ports: [\"8080:80\"]
    environment: [A=1, B]
    depends_on: [db]
    healthcheck: { test: [CMD, curl, -f, localhost], interval: 5s, retries: 3 }
    deploy: { replicas: 2, resources: { limits: { cpus: '0.5', memory: 64M } } }
  db:
    image: postgres
    volumes: [data:/var/lib/postgresql/data]
    command: postgres -c max_connections=10
volumes:
  data: {}
";

#[test]
fn compose_import_never_panics_and_what_it_makes_parses() {
    let t0 = Instant::now();
    let read = |_: &std::path::Path| -> std::io::Result<String> {
        Err(std::io::ErrorKind::NotFound.into())
    };
    let env = |_: &str| -> Option<String> { None };
    runner()
        .run(&prop_oneof![mutations(COMPOSE), any_text()], |text| {
            let src = drover::compose::Source {
                name: Some("app"),
                base_dir: std::path::Path::new("/nonexistent/app"),
                env: &env,
                read: &read,
            };
            let got = timed("compose translate", || {
                drover::compose::translate(&text, &src)
            });
            if let Ok(t) = got {
                // What import makes is a blueprint text: it must read back
                // as the same YAML value (the blueprint checks may refuse
                // it, with a position, but never panic).
                let yaml = t.yaml();
                let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
                prop_assert_eq!(&v, &t.blueprint);
                let _ = timed("parse imported", || {
                    drover::blueprint::parse_blueprint("c.yaml", &yaml)
                });
            }
            Ok(())
        })
        .unwrap();
    report("compose", CASES, t0);
}

#[test]
fn policy_put_bodies_never_panic_and_round_trip() {
    let t0 = Instant::now();
    let body = "initial_delay: 0s\nbackoff_start: 100ms\nbackoff_factor: 2\nbackoff_cap: 30s\nmax_restarts: 5\nwindow: 1m\nreset_after: 10s\nmetric: load\nlower: 1\nupper: 10\nmin_size: 1\nmax_size: 10\ntolerance: 0.1\nmax_failures: 3\nretry_delay: 1s\nabove: 0.8\nfor: 30s\ncooldown: 10m\n";
    let kinds = prop::sample::select(drover::policy::KINDS.to_vec());
    runner()
        .run(
            &(kinds, prop_oneof![mutations(body), any_text()]),
            |(kind, text)| {
                let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
                    return Ok(());
                };
                // Keep only this kind's keys sometimes: a PUT names one kind.
                let got = timed("parse_config", || drover::policy::parse_config(kind, value));
                if let Ok(cfg) = got {
                    let json = serde_json::to_value(&cfg).unwrap();
                    let inner = json.get("config").cloned().unwrap();
                    let back =
                        drover::policy::parse_config(kind, serde_yaml::to_value(&inner).unwrap())
                            .unwrap_or_else(|e| panic!("accepted then refused: {inner} {e:?}"));
                    prop_assert_eq!(&back, &cfg);
                    // The decisions run on what was accepted without panicking.
                    if let drover::policy::PolicyConfig::Restarter(c) = &cfg {
                        for n in [1, 2, 10, 100] {
                            let _ = drover::policy::restarter::backoff(n, c);
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    report("policy", CASES, t0);
}

#[test]
fn effector_arguments_never_panic() {
    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Resize {
        size: u32,
    }
    let t0 = Instant::now();
    let json = prop_oneof![
        any::<i64>().prop_map(|n| serde_json::json!({ "size": n })),
        any::<f64>().prop_map(|n| serde_json::json!({ "size": n })),
        ".{0,40}".prop_map(|s| serde_json::json!({ "size": s, "x": 1 })),
        ".{0,200}".prop_map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)),
    ];
    runner()
        .run(&json, |args| {
            let got = timed("parse_args", || {
                drover::protocol::parse_args::<Resize>("resize", &args)
            });
            if let Ok(r) = got {
                let back: Resize =
                    drover::protocol::parse_args("resize", &serde_json::to_value(&r).unwrap())
                        .unwrap();
                prop_assert_eq!(back, r);
            }
            Ok(())
        })
        .unwrap();
    report("effector args", CASES, t0);
}

const DROVER_YAML: &str = "allowed_host_paths: [/srv]
locations:
  local:
    hosts:
      - { name: local, endpoint: local }
  pool:
    hosts: []
    provisioner: { type: local-dockerd, dir: /var/lib/drover/hosts }
    min_hosts: 1
    max_hosts: 4
";

#[test]
fn drover_yaml_never_panics_and_round_trips() {
    let t0 = Instant::now();
    runner()
        .run(&prop_oneof![mutations(DROVER_YAML), any_text()], |text| {
            let got = timed("config parse", || {
                drover::location::config::parse("drover.yaml", &text)
            });
            if let Ok(cfg) = got {
                let again = serde_yaml::to_string(&cfg).unwrap();
                let back = drover::location::config::parse("again.yaml", &again)
                    .unwrap_or_else(|e| panic!("accepted then refused:\n{again}\n{e}"));
                prop_assert_eq!(back, cfg);
            }
            Ok(())
        })
        .unwrap();
    report("drover.yaml", CASES, t0);
}

const WITH_BUILDS: &str = "name: shop
services:
  - id: web
    type: container
    build: ./web
  - id: api
    type: cluster
    member:
      build: { context: 'api', dockerfile: Dockerfile.dev }
";

/// The CLI rewrites a blueprint's build contexts in place before it sends
/// it: on any text it never panics, never moves a line, and a rewrite
/// that changes nothing gives the text back byte for byte.
#[test]
fn build_context_rewrites_never_panic_or_move_lines() {
    use drover::build_context::rewrite::rewrite_contexts;
    let t0 = Instant::now();
    runner()
        .run(&prop_oneof![mutations(WITH_BUILDS), any_text()], |text| {
            let same: Result<String, ()> =
                timed("rewrite (none)", || rewrite_contexts(&text, |_| Ok(None)));
            prop_assert_eq!(same.unwrap(), text.clone());
            let up = format!("upload:sha256:{}", "a".repeat(64));
            let out: Result<String, ()> = timed("rewrite (upload)", || {
                rewrite_contexts(&text, |_| Ok(Some(up.clone())))
            });
            prop_assert_eq!(out.unwrap().lines().count(), text.lines().count());
            Ok(())
        })
        .unwrap();
    report("build-context rewrite", CASES, t0);
}

/// Uploaded build contexts are bytes from a client: checking them never
/// panics, and nothing accepted has an entry outside the context.
#[test]
fn uploaded_contexts_never_panic_and_never_escape() {
    let t0 = Instant::now();
    let names = prop_oneof![
        Just("Dockerfile".to_string()),
        Just("../x".to_string()),
        Just("/etc/passwd".to_string()),
        "[a-z./]{1,40}",
    ];
    let entries = proptest::collection::vec((names, 0u8..8, any::<Vec<u8>>()), 0..6);
    let bytes = prop_oneof![
        entries.prop_map(|es| {
            let mut b = tar::Builder::new(Vec::new());
            for (name, kind, data) in es {
                let mut h = tar::Header::new_gnu();
                let n = name.as_bytes().len().min(99);
                h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
                h.set_entry_type(tar::EntryType::new(b'0' + kind));
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                let _ = b.append(&h, &data[..]);
            }
            b.into_inner().unwrap_or_default()
        }),
        any::<Vec<u8>>(),
    ];
    runner()
        .run(&bytes, |tar| {
            let got = timed("check_tar", || {
                drover::build_context::uploads::check_tar(&tar)
            });
            if got.is_ok() {
                for e in tar::Archive::new(&tar[..]).entries().unwrap() {
                    let e = e.unwrap();
                    let p = e.path().unwrap().into_owned();
                    prop_assert!(
                        p.components().all(|c| matches!(
                            c,
                            std::path::Component::Normal(_) | std::path::Component::CurDir
                        )),
                        "accepted {:?}",
                        p
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    report("uploaded context", CASES, t0);
}
