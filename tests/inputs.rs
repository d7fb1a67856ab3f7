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

/// The names in an image's file system (from `docker create` + export).
fn image_files(image: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(["create", image, "/x"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let export = std::process::Command::new("docker")
        .args(["export", &id])
        .output()
        .unwrap();
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &id])
        .output();
    tar::Archive::new(&export.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn post_tar(d: &Drover, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut r = d
        .agent()
        .post(&format!("{}/v1/build-contexts", d.url))
        .header("content-type", content_type)
        .send(body)
        .expect("drover answers");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn build_contexts_are_uploaded_by_the_cli_and_the_service_reads_no_path() {
    require_docker();
    workload_image();
    let d = Drover::start_with(&["--max-build-context", "64Ki"]);
    let app = unique("upload");
    let _guard = AppGuard(app.clone());
    let _images = BuiltImages(app.clone());
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(
        web.join("Dockerfile"),
        "FROM drover/workload:latest\nCOPY . /ctx/\n",
    )
    .unwrap();
    std::fs::write(web.join("app.txt"), "kept").unwrap();
    std::fs::write(web.join("secret1.env"), "TOKEN=s3cr3t").unwrap();
    std::fs::write(web.join(".dockerignore"), "secret[0-9].env\n").unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!("name: {app}\nservices:\n  - id: web\n    type: container\n    build: ./web\n"),
    )
    .unwrap();

    // The CLI packs ./web (its .dockerignore applied on this side) and
    // uploads it; the image holds what the user meant to send, no more.
    let run = d.cli(&["deploy", file.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    d.wait_running(&app, std::time::Duration::from_secs(120));
    let c = inspect(&containers_of(&app, false)[0]);
    let image = c["Config"]["Image"].as_str().unwrap().to_string();
    assert!(
        image.starts_with(&format!("drover-build/{app}-web:")),
        "{image}"
    );
    let files = image_files(&image);
    assert!(files.iter().any(|f| f == "ctx/app.txt"), "{files:?}");
    assert!(!files.iter().any(|f| f.contains("secret1")), "{files:?}");
    // The stored blueprint names the upload, not a path of the client.
    let (_, bp) = d.get(&format!("/v1/applications/{app}"));
    let shown = bp.to_string();
    assert!(shown.contains("upload:sha256:"), "{shown}");
    assert!(!shown.contains(&web.display().to_string()), "{shown}");

    // A path in a REST blueprint is refused: no build_roots, no path read,
    // one answer whether the path exists or not.
    let mut answers = Vec::new();
    for ctx in [web.clone(), dir.path().join("missing")] {
        let text = format!(
            "name: {app}x\nservices:\n  - id: api\n    type: container\n    build: {{ context: {} }}\n",
            ctx.display()
        );
        let (status, body) = d.post("/v1/applications", &text);
        assert_eq!(status, 400, "{body}");
        let e = error_body(body);
        assert_eq!(e.path.as_deref(), Some("services[0].build"), "{e:?}");
        assert!(e.error.contains("drover deploy FILE"), "{e:?}");
        answers.push(e.error.replace(&ctx.display().to_string(), "CTX"));
    }
    assert_eq!(answers[0], answers[1]);
    // An upload the service does not hold, and a malformed reference.
    for (ctx, says) in [
        (
            format!("upload:sha256:{}", "0".repeat(64)),
            "no uploaded build context",
        ),
        (
            "upload:sha256:../../etc".to_string(),
            "is not a SHA-256 digest",
        ),
    ] {
        let text = format!(
            "name: {app}y\nservices:\n  - id: api\n    type: container\n    build: '{ctx}'\n"
        );
        let (status, body) = d.post("/v1/applications", &text);
        assert_eq!(status, 400, "{body}");
        assert!(error_body(body).error.contains(says), "{ctx}");
    }

    // Uploads themselves: a tar only, within the limit, staying inside.
    let (status, body) = post_tar(&d, "text/plain", b"x");
    assert_eq!(status, 415, "{body}");
    let (status, body) = post_tar(&d, "application/x-tar", &vec![0u8; 80 * 1024]);
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");
    let mut evil = tar::Header::new_gnu();
    evil.as_old_mut().name[..9].copy_from_slice(b"../escape");
    evil.set_size(1);
    evil.set_mode(0o644);
    evil.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&evil, &b"x"[..]).unwrap();
    let (status, body) = post_tar(&d, "application/x-tar", &b.into_inner().unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("leaves the context"),
        "{body}"
    );
    // A viewer may not upload.
    let viewer = d.cli(&[
        "token",
        "create",
        "--role",
        "viewer",
        "--name",
        &format!("{app}-v"),
        "-o",
        "json",
    ]);
    assert!(viewer.ok, "{}", viewer.stderr);
    let token: serde_json::Value = serde_json::from_str(&viewer.stdout).unwrap();
    let r = authed_agent(
        token["token"].as_str().unwrap(),
        std::time::Duration::from_secs(30),
    )
    .post(&format!("{}/v1/build-contexts", d.url))
    .header("content-type", "application/x-tar")
    .send(&[0u8; 10][..])
    .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A context over the limit is stopped by the CLI before it is sent,
    // with what to do.
    std::fs::write(web.join("big.bin"), vec![7u8; 100 * 1024]).unwrap();
    let run = d.cli(&["apply", file.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(run.stderr.contains(".dockerignore"), "{}", run.stderr);
    let (_, list) = d.get("/v1/applications");
    assert!(!list.to_string().contains(&format!("{app}x")), "{list}");
}

#[test]
fn serve_deploy_packs_its_own_files_build_contexts() {
    require_docker();
    workload_image();
    let app = unique("servebuild");
    let _guard = AppGuard(app.clone());
    let _images = BuiltImages(app.clone());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("api")).unwrap();
    std::fs::write(
        dir.path().join("api/Dockerfile.dev"),
        "FROM drover/workload:latest\nLABEL io.test.from=serve-deploy\n",
    )
    .unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "name: {app}\nservices:\n  - id: api\n    type: container\n    \
             build: {{ context: ./api, dockerfile: Dockerfile.dev }}\n"
        ),
    )
    .unwrap();
    let d = Drover::start_with(&["--deploy", file.to_str().unwrap()]);
    d.wait_running(&app, std::time::Duration::from_secs(120));
    let c = inspect(&containers_of(&app, false)[0]);
    assert_eq!(c["Config"]["Labels"]["io.test.from"], "serve-deploy");
}

#[test]
fn a_resize_beyond_the_cluster_limit_is_refused_and_nothing_changes() {
    require_docker();
    let d = Drover::start();
    let app = unique("bigresize");
    let _guard = AppGuard(app.clone());
    d.deploy(&blueprint(&app, "      - type: replacer\n", "/health"));
    d.wait_running(&app, std::time::Duration::from_secs(120));
    for size in [1001u64, 4_294_967_295] {
        let (status, body) = d.invoke(&app, "web", "resize", serde_json::json!({ "size": size }));
        assert_eq!(status, 400, "{size}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("limit of 1000"),
            "{body}"
        );
    }
    // Beyond u32: a bad argument, not a wrap-around.
    let (status, _) = d.invoke(
        &app,
        "web",
        "resize",
        serde_json::json!({ "size": 4_294_967_296u64 }),
    );
    assert_eq!(status, 400);
    assert_eq!(containers_of(&app, false).len(), 1);
}
