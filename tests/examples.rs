//! Every shipped example really deploys, and every blueprint snippet in the
//! README parses: documentation that cannot drift.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

/// The blueprint with a unique name and free ports, so it runs beside
/// anything else (a user's own quickstart included).
fn isolate(text: &str, app: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("name:") {
                format!("name: {app}")
            } else if l.trim_start().starts_with("port:") && l.contains("8000") {
                l.replace("8000", "0")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_shipped_blueprint_deploys_and_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let d = Drover::start();
    for file in files {
        let app = unique("example");
        let _g = AppGuard(app.clone());
        let text = isolate(&std::fs::read_to_string(&file).unwrap(), &app);
        let (status, body) = d.post("/v1/applications", &text);
        assert_eq!(status, 201, "{} does not deploy: {body}", file.display());
        d.wait_running(&app, Duration::from_secs(120));
        let (status, _) = d.delete(&format!("/v1/applications/{app}"));
        assert_eq!(status, 204);
        assert!(containers_of(&app, true).is_empty());
    }
}

#[test]
fn readme_blueprint_snippets_parse() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut found = 0;
    let mut in_yaml = false;
    let mut block = String::new();
    for line in readme.lines() {
        if line.trim_start() == "```yaml" {
            in_yaml = true;
            block.clear();
        } else if in_yaml && line.trim_start() == "```" {
            in_yaml = false;
            if block.lines().any(|l| l.starts_with("name:")) {
                found += 1;
                if let Err(e) = drover::blueprint::parse_blueprint("README.md", &block) {
                    panic!("a README snippet does not parse:\n{block}\n{e}");
                }
            }
        } else if in_yaml {
            block.push_str(line);
            block.push('\n');
        }
    }
    assert!(found >= 1, "the README shows at least one full blueprint");
}

#[test]
fn shipped_presets_resolve_for_the_shipped_blueprints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let presets =
        drover::policy::Presets::load(&root.join("policies")).unwrap_or_else(|e| panic!("{e:?}"));
    for name in ["quickstart.yaml", "two-services.yaml"] {
        let text = std::fs::read_to_string(root.join("blueprints").join(name)).unwrap();
        let bp = drover::blueprint::parse_blueprint(name, &text).unwrap();
        for svc in &bp.services {
            for p in &svc.policies {
                drover::policy::resolve(p, &presets)
                    .unwrap_or_else(|e| panic!("{name}: {}: {e:?}", svc.id));
            }
        }
    }
}
