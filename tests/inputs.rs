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
    assert_eq!(e.path.as_deref(), Some("services[0].policies[0].backoff_cap"), "{e:?}");
    assert!(e.error.contains("at most 7days"), "{e:?}");
    // A CR/LF in a probe path (header injection) is refused the same way.
    let text = blueprint(&app, "      - type: replacer\n", "/h\\r\\nX-Injected: 1");
    let (status, body) = d.post("/v1/applications", &text);
    assert_eq!(status, 400, "{body}");
    let e = error_body(body);
    assert_eq!(e.path.as_deref(), Some("services[0].member.health.http.path"), "{e:?}");
    assert_eq!(e.line, Some(9), "{e:?}");
    // Nothing was created, and drover still answers.
    let (status, list) = d.get("/v1/applications");
    assert_eq!(status, 200);
    assert!(!list.to_string().contains(&app), "{list}");
    let (status, _) = d.get("/healthz");
    assert_eq!(status, 200);
}
