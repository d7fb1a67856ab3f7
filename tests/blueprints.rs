//! Every blueprint shipped in `blueprints/` must parse and validate.

use std::path::Path;

use drover::blueprint::parse_blueprint;

#[test]
fn shipped_blueprints_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no .yaml file in {}", dir.display());

    let mut failures = Vec::new();
    for path in &entries {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let name = format!("blueprints/{}", path.file_name().unwrap().to_string_lossy());
        if let Err(errors) = parse_blueprint(&name, &text) {
            failures.push(errors.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "invalid blueprints:\n{}",
        failures.join("\n")
    );
}

#[test]
fn quickstart_has_the_documented_shape() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints/quickstart.yaml");
    let text = std::fs::read_to_string(path).expect("blueprints/quickstart.yaml");
    let bp = parse_blueprint("blueprints/quickstart.yaml", &text).expect("valid quickstart");
    assert_eq!(bp.name, "quickstart");
    assert_eq!(bp.location, "local");
    assert_eq!(bp.services.len(), 2);
    assert_eq!(bp.services[1].target.as_deref(), Some("web"));
    let web = &bp.services[0];
    assert_eq!(web.id, "web");
    assert_eq!(web.initial_size, Some(3));
    let member = web.member.as_ref().expect("a cluster member");
    assert_eq!(member.image.as_deref(), Some("drover/workload:latest"));
    assert_eq!(member.ports, [8080]);
    let http = member
        .health
        .as_ref()
        .and_then(|h| h.http.as_ref())
        .expect("http check");
    assert_eq!((http.port, http.path.as_str()), (8080, "/health"));
}
