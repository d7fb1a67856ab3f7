//! compose files through the `drover` CLI against the real engine: the
//! translation's `.env`, `env_file`, interpolation, application name and
//! restart settings reach the containers and policies drover runs.

mod common;

use std::time::Duration;

use common::*;
use drover::wire::PolicyStatus;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(120);
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compose");

/// `drover ARGS` against `d`, with extra environment variables.
fn cli_env(d: &Drover, args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let out = std::process::Command::new(drover_bin())
        .args(args)
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("GREETING")
        .envs(env.iter().copied())
        .output()
        .expect("drover runs");
    CliRun {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn container_of_entity(app: &str, entity: &str) -> String {
    containers_of(app, false)
        .into_iter()
        .find(|id| inspect(id)["Config"]["Labels"]["io.drover.entity"].as_str() == Some(entity))
        .unwrap_or_else(|| panic!("a container of {app}/{entity}"))
}

fn env_of(container: &str) -> Vec<String> {
    inspect(container)["Config"]["Env"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_compose_application_deploys_as_compose_would_run_it() {
    require_docker();
    let d = Drover::start();
    let file = format!("{DATA}/workload/compose.yaml");

    // Import names the application after the directory, as compose does,
    // and reads .env and the env_file.
    let out = cli_env(&d, &["import", "compose", &file, "-o", "json"], &[]);
    assert!(out.ok, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["name"], "workload");
    assert_eq!(v["untranslated"], serde_json::json!([]));
    assert_eq!(
        v["blueprint"]["services"][0]["env"]["GREETING"],
        "hello from .env"
    );

    // Deploy with --name; the shell's variable wins over .env.
    let app = unique("compose");
    let _g = AppGuard(app.clone());
    let out = cli_env(
        &d,
        &["deploy", &file, "--name", &app, "--wait", "--timeout", "2m"],
        &[("GREETING", "hello from the shell")],
    );
    assert!(out.ok, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    d.wait_running(&app, DEADLINE);

    let api = env_of(&container_of_entity(&app, "api"));
    for want in [
        "GREETING=hello from the shell",
        "ROLE=api",
        "BACKEND=http://store:8080",
    ] {
        assert!(api.contains(&want.to_string()), "{want} in {api:?}");
    }
    let store = env_of(&container_of_entity(&app, "store"));
    assert!(store.contains(&"COST=$5".to_string()), "{store:?}");

    // `restart: always` and `on-failure:3` are restarters with Docker's settings.
    let policies = |entity: &str| -> Vec<PolicyStatus> {
        let (status, body) = d.get(&format!(
            "/v1/applications/{app}/entities/{entity}/policies"
        ));
        assert_eq!(status, 200, "{body}");
        decode(body)
    };
    let api_policy = policies("api")
        .into_iter()
        .find(|p| p.kind == "restarter")
        .expect("api has a restarter");
    assert_eq!(
        api_policy.config["max_restarts"], 1_000_000,
        "{:?}",
        api_policy.config
    );
    assert_eq!(
        api_policy.config["backoff_cap"], "1m",
        "{:?}",
        api_policy.config
    );
    let store_policy = policies("store")
        .into_iter()
        .find(|p| p.kind == "restarter")
        .expect("store has a restarter");
    assert_eq!(store_policy.config["max_restarts"], 3);

    // The health check compose runs with curl is drover's own http probe.
    let (status, body) = d.get(&format!("/v1/applications/{app}/entities/api/sensors"));
    assert_eq!(status, 200);
    assert!(body.to_string().contains("host.port.8080"), "{body}");

    let (status, _) = d.delete(&format!("/v1/applications/{app}"));
    assert_eq!(status, 204);
}

#[test]
fn deploy_names_and_refusals() {
    require_docker();
    let d = Drover::start();
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("compose.yaml");
    std::fs::write(
        &compose,
        "services:\n  a:\n    image: drover/workload:latest\n    user: \"1000\"\n    environment:\n      X: ${UNSET_FOR_TEST}\n",
    )
    .unwrap();
    let file = compose.display().to_string();
    // Text mode lists what is not translated and compose's own warnings.
    let out = cli_env(&d, &["import", "compose", &file], &[]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("untranslated: services.a.user: drover runs the image's USER"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("warning: variable UNSET_FOR_TEST is not set"),
        "{}",
        out.stderr
    );
    // A required variable refuses the file before anything is created.
    std::fs::write(
        &compose,
        "services:\n  a:\n    image: drover/workload:latest\n    environment:\n      X: ${NEEDED_FOR_TEST:?set it}\n",
    )
    .unwrap();
    let app = unique("compose-req");
    let _g = AppGuard(app.clone());
    let out = cli_env(&d, &["deploy", &file, "--name", &app], &[]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("services.a.environment.X: required variable NEEDED_FOR_TEST is missing a value: set it"),
        "{}",
        out.stderr
    );
    let (status, _) = d.get(&format!("/v1/applications/{app}"));
    assert_eq!(status, 404, "nothing was created");
    // --name is for compose files: a blueprint names itself.
    let bp = dir.path().join("bp.yaml");
    std::fs::write(
        &bp,
        "name: x\nservices:\n  - { id: a, type: container, image: drover/workload:latest }\n",
    )
    .unwrap();
    let out = cli_env(
        &d,
        &["deploy", &bp.display().to_string(), "--name", "y"],
        &[],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("--name names a compose application"),
        "{}",
        out.stderr
    );
}
