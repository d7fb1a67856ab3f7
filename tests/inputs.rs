//! Inputs that could hurt drover, sent over REST: each is refused with a
//! 400 naming its position, nothing is created, and drover keeps serving.

mod common;

use common::*;

fn blueprint(app: &str, policy: &str, path: &str) -> String {
    format!(
        "name: {app}\nservices:\n  - id: web\n    type: cluster\n    initial_size: 1\n    member:\n      \
         image: drover/workload:latest\n      ports: [8080]\n      \
         health: {{ http: {{ port: 8080, path: \"{path}\" }} }}\n    policies:\n{policy}"
    )
}

#[test]
fn an_overflowing_duration_is_a_400_with_its_position_and_drover_keeps_serving() {
    require_docker();
    let d = Drover::start();
    let app = unique("overflow");
    let _guard = AppGuard(app.clone());
    let text = blueprint(
        &app,
        "      - type: restarter\n        backoff_cap: 18446744073709551615s\n",
        "/health",
    );
    let (status, body) = d.post("/v1/applications", &text);
    assert_eq!(status, 400, "{body}");
    let e = error_body(body);
    assert_eq!(e.line, Some(12), "{e:?}");
    assert_eq!(
        e.path.as_deref(),
        Some("services[0].policies[0].backoff_cap"),
        "{e:?}"
    );
    assert!(e.error.contains("at most 7days"), "{e:?}");
    // A CR/LF in a probe path (header injection) is refused the same way.
    let text = blueprint(&app, "      - type: replacer\n", "/h\\r\\nX-Injected: 1");
    let (status, body) = d.post("/v1/applications", &text);
    assert_eq!(status, 400, "{body}");
    let e = error_body(body);
    assert_eq!(
        e.path.as_deref(),
        Some("services[0].member.health.http.path"),
        "{e:?}"
    );
    assert_eq!(e.line, Some(9), "{e:?}");
    // Nothing was created, and drover still answers.
    let (status, list) = d.get("/v1/applications");
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&app), "{list}");
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_build_context_outside_the_build_roots_is_a_400_and_no_file_is_read() {
    require_docker();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("builds");
    std::fs::create_dir(&root).unwrap();
    let cfg = dir.path().join("drover.yaml");
    std::fs::write(&cfg, format!("build_roots: [{}]\n", root.display())).unwrap();
    let d = Drover::start_with(&["--config", cfg.to_str().unwrap()]);
    let app = unique("ctx");
    let _guard = AppGuard(app.clone());
    // A directory that exists (with a Dockerfile) and one that does not:
    // the same answer, so the answer tells nothing of this machine.
    let real = dir.path().join("outside");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("Dockerfile"), "FROM scratch\n").unwrap();
    let mut answers = Vec::new();
    for ctx in [real.clone(), dir.path().join("missing")] {
        let text = format!(
            "name: {app}\nservices:\n  - id: api\n    type: container\n    \
             build: {{ context: {} }}\n",
            ctx.display()
        );
        let (status, body) = d.post("/v1/applications", &text);
        assert_eq!(status, 400, "{body}");
        let e = error_body(body);
        assert_eq!(e.path.as_deref(), Some("services[0].build"), "{e:?}");
        assert!(e.error.contains("outside the allowed build roots"), "{e:?}");
        assert!(e.error.contains("`build_roots` in drover.yaml"), "{e:?}");
        answers.push(e.error.replace(&ctx.display().to_string(), "CTX"));
    }
    assert_eq!(answers[0], answers[1]);
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
}
