//! Images from a real registry (Debian's `docker-registry` with htpasswd
//! auth on a loopback port): one pull per host however many members wait,
//! one digest for every member, errors that say what happened, no retry
//! storm, and passwords nowhere.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::registry::{pull_events, Registry};
use common::{containers_of, inspect, unique, wait_for, AppGuard, Drover};
use serde_json::Value;

const PASSWORD: &str = "pw-Zq81-never-shown";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn activities(d: &Drover, app: &str) -> Vec<Value> {
    let (status, body) = d.get(&format!("/v1/activities?application={app}&limit=1000"));
    assert_eq!(status, 200);
    body.as_array().unwrap().clone()
}

/// drover.yaml naming the registry's user and a password file.
fn drover_yaml(reg: &Registry, password: &str) -> std::path::PathBuf {
    let pw = reg.password_file("password", password);
    let path = reg.dir().join("drover.yaml");
    std::fs::write(
        &path,
        format!(
            "registries:\n  \"{}\": {{ username: {}, password_file: {} }}\n",
            reg.host(),
            reg.user,
            pw.display()
        ),
    )
    .unwrap();
    path
}

fn cluster(app: &str, image: &str, pull: &str) -> String {
    format!(
        r#"name: {app}
services:
  - id: web
    type: cluster
    initial_size: 3
    member:
      image: {image}
      image_pull: {pull}
      ports: [8080]
      health: {{ http: {{ port: 8080, path: /health }}, interval: 1s }}
    policies: [{{ type: restarter }}]
"#
    )
}

/// Fails if `text` holds the password.
fn assert_no_password(what: &str, text: &str) {
    assert!(!text.contains(PASSWORD), "the password appears in {what}");
}

/// Every place an operator or a scraper reads: API answers, metrics, the
/// log and the store file.
fn assert_password_nowhere(d: &Drover, app: &str, log: &Path) {
    for path in [
        format!("/v1/applications/{app}"),
        format!("/v1/applications/{app}/entities"),
        format!("/v1/applications/{app}/entities/web-1/sensors"),
        format!("/v1/activities?application={app}&limit=1000"),
        "/v1/hosts".to_string(),
        "/metrics".to_string(),
    ] {
        assert_no_password(&path, &d.get_text(&path));
    }
    assert_no_password("drover's log", &std::fs::read_to_string(log).unwrap());
    let store = std::fs::read(d.store_file().unwrap()).unwrap();
    assert!(
        !store
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the password appears in the store file"
    );
}

#[test]
fn a_cluster_pulls_once_and_every_member_runs_the_pinned_digest() {
    let reg = Registry::start("alice", PASSWORD);
    let (image, digest) = reg.push_unique_image(&unique("pull"), 256);
    let log = reg.dir().join("drover.log");
    let dc = tempfile::tempdir().unwrap();
    // The guard outlives drover (dropped after it): a drover still running
    // would re-create what the guard removes.
    let app = unique("pull");
    let _g = AppGuard(app.clone());
    let d = Drover::start_logged(&drover_yaml(&reg, PASSWORD), dc.path(), &log);
    let since = now_s().saturating_sub(1);
    d.deploy(&cluster(&app, &image, "if-not-present"));
    d.wait_running(&app, Duration::from_secs(120));

    // Exactly one pull, seen by the engine and recorded once.
    let acts = activities(&d, &app);
    let led: Vec<&Value> = acts
        .iter()
        .filter(|a| a["name"] == "image.pull" && a["args"]["role"] == "led")
        .collect();
    assert_eq!(led.len(), 1, "one pull recorded: {led:?}");
    assert_eq!(led[0]["outcome"], "ok");
    assert_eq!(led[0]["args"]["digest"], digest.as_str());
    let events = wait_for(Duration::from_secs(10), "the engine's pull event", || {
        let n = pull_events(&image, since);
        (n > 0).then_some(n)
    });
    assert_eq!(events, 1, "the engine pulled {image} {events} times");

    // Three members, one digest, the registry's.
    let pinned = format!("{image}@{digest}").replace(":v1@", "@");
    for m in ["web-1", "web-2", "web-3"] {
        let s = d.sensors(&app, m);
        assert_eq!(s["image.digest"]["value"], digest.as_str(), "{m}: {s}");
        let id = s["container.id"]["value"].as_str().unwrap().to_string();
        assert_eq!(
            inspect(&id)["Config"]["Image"],
            pinned.as_str(),
            "{m} runs the pinned digest"
        );
    }
    assert_eq!(containers_of(&app, true).len(), 3);
    assert_password_nowhere(&d, &app, &log);
}

#[test]
fn a_wrong_password_is_unauthorized_without_a_retry_storm() {
    let reg = Registry::start("alice", PASSWORD);
    let (image, _) = reg.push_unique_image(&unique("deny"), 4);
    let log = reg.dir().join("drover.log");
    let dc = tempfile::tempdir().unwrap();
    let app = unique("deny");
    let _g = AppGuard(app.clone());
    let d = Drover::start_logged(&drover_yaml(&reg, "not-the-password"), dc.path(), &log);
    let since = now_s().saturating_sub(1);
    d.deploy(&cluster(&app, &image, "if-not-present"));

    // Evidence the retries ran their course: every member's restarter
    // gave up (default: 5 restarts in 60 s, backing off).
    let acts = wait_for(
        Duration::from_secs(120),
        "every restarter giving up",
        || {
            let acts = activities(&d, &app);
            let gave_up = acts
                .iter()
                .filter(|a| a["name"] == "restarter.give_up")
                .count();
            (gave_up == 3).then_some(acts)
        },
    );
    for m in ["web-1", "web-2", "web-3"] {
        let e = d.entity(&app, m);
        assert_eq!(e["state"], "on-fire", "{m}: {e}");
        let why = d.sensors(&app, m)["entity.error"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(why.contains("unauthorized"), "{m}: {why}");
        assert!(
            why.contains(&format!("registry {}", reg.host())),
            "{m} names the registry: {why}"
        );
        assert!(
            why.contains("credentials from drover.yaml (user `alice`)"),
            "{m} names the source: {why}"
        );
    }
    // Bounded: at most one registry pull per failure of any member (the
    // pulls of members failing together are one), and no retries of a
    // refusal inside a pull.
    let led = acts
        .iter()
        .filter(|a| a["name"] == "image.pull" && a["args"]["role"] == "led")
        .count();
    let failures = acts
        .iter()
        .filter(|a| a["name"] == "image.pull" && a["outcome"] == "error")
        .count();
    eprintln!("wrong password: {led} registry pulls, {failures} failed-pull records for 3 members");
    assert!((1..=18).contains(&led), "{led} pulls for 3 members");
    assert!(failures <= 18, "{failures} failed pulls recorded");
    assert!(pull_events(&image, since) == 0, "nothing was pulled");
    // Nothing else created: no container, no extra member.
    assert!(
        containers_of(&app, true).is_empty(),
        "containers were created"
    );
    let members = d
        .app_detail(&app)
        .entities
        .iter()
        .filter(|e| e.id.starts_with("web-"))
        .count();
    assert_eq!(members, 3);
    assert_password_nowhere(&d, &app, &log);
}

#[test]
fn never_pulling_a_missing_image_says_so_and_config_json_credentials_pull() {
    let reg = Registry::start("bob", PASSWORD);
    let (image, digest) = reg.push_unique_image(&unique("never"), 4);
    // No drover.yaml entry: the credentials come from DOCKER_CONFIG's config.json.
    let dc = tempfile::tempdir().unwrap();
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("bob:{PASSWORD}"))
    };
    std::fs::write(
        dc.path().join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let empty = reg.dir().join("empty.yaml");
    std::fs::write(&empty, "locations: {}\n").unwrap();
    let log = reg.dir().join("drover.log");
    let never = unique("never");
    let _g1 = AppGuard(never.clone());
    let pulled = unique("cfgjson");
    let _g2 = AppGuard(pulled.clone());
    let d = Drover::start_logged(&empty, dc.path(), &log);

    d.deploy(&format!(
        "name: {never}\nservices:\n  - {{ id: db, type: container, image: {image}, image_pull: never }}\n"
    ));
    let why = wait_for(Duration::from_secs(60), "the never-pull error", || {
        d.entity_view(&never, "db")
            .and_then(|e| e.sensor_str("entity.error").map(str::to_string))
    });
    assert!(
        why.contains(&format!(
            "image `{image}` is not on host local and `image_pull: never` forbids pulling it"
        )),
        "{why}"
    );
    assert!(containers_of(&never, true).is_empty());

    d.deploy(&format!(
        "name: {pulled}\nservices:\n  - {{ id: db, type: container, image: {image} }}\n"
    ));
    d.wait_running(&pulled, Duration::from_secs(120));
    assert_eq!(
        d.sensors(&pulled, "db")["image.digest"]["value"],
        digest.as_str()
    );
    assert_password_nowhere(&d, &pulled, &log);
}
