//! The crate's module dependencies run one way (issue 12).
//!
//! Reads every file under `src/`, collects each top-level module's
//! references to the others (`crate::NAME` in `use` lines and paths, and a
//! `super::NAME` that climbs out of a top-level module), and checks them
//! against the layers below. A module may use modules of lower layers and
//! its own; the few same-layer edges allowed are listed with their reason.
//! Every violation is printed with its file and line.
//!
//! | layer | modules |
//! | --- | --- |
//! | 0 (leaves) | protocol, blueprint, placement (pure), metrics, wire, compose, build_context |
//! | 1 | store, activity, host |
//! | 2 | policy, enricher, lb: they reach entities only through protocol messages; leader (the role on an etcd store) |
//! | 3 | entity (knows neither policies nor locations) |
//! | 4 | location, policy_factory (builds policies for entities: it sees both) |
//! | 5 | management, api, serve; cli uses only wire, blueprint, compose, protocol, build_context (and policy's pure validation) |

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer of every top-level module.
const LAYERS: &[(&str, u8)] = &[
    ("protocol", 0),
    ("blueprint", 0),
    ("placement", 0),
    ("metrics", 0),
    ("wire", 0),
    ("compose", 0),
    ("build_context", 0),
    ("store", 1),
    ("activity", 1),
    ("host", 1),
    ("policy", 2),
    ("enricher", 2),
    ("lb", 2),
    ("leader", 2),
    ("entity", 3),
    ("location", 4),
    ("policy_factory", 4),
    ("management", 5),
    ("api", 5),
    ("serve", 5),
    ("cli", 5),
];

/// Same-layer edges that are allowed, with the reason.
const SAME_LAYER: &[(&str, &str, &str)] = &[
    (
        "wire",
        "protocol",
        "REST answers show entity kinds, states and sensor values",
    ),
    (
        "wire",
        "blueprint",
        "REST answers carry blueprints and their errors",
    ),
    (
        "compose",
        "blueprint",
        "a compose file is translated to a blueprint",
    ),
    (
        "placement",
        "blueprint",
        "placement rules are the blueprint's `placement:`",
    ),
    (
        "api",
        "management",
        "the REST API is the management actor's front door",
    ),
    (
        "serve",
        "management",
        "`drover serve` starts the management actor",
    ),
    ("serve", "api", "`drover serve` mounts the REST API"),
];

/// `#[macro_export]` macros live at the crate root: `crate::NAME!` names
/// no module.
const CRATE_MACROS: &[&str] = &["outln"];

/// Modules with a closed list of what they may use, whatever the layers say.
const ONLY: &[(&str, &[&str], &str)] = &[
    (
        "cli",
        &["wire", "blueprint", "compose", "protocol", "policy", "build_context"],
        "the CLI reaches the service over REST only; `policy` only for `drover validate`, which runs the server's own pure validation (blueprint + presets) without a service; `build_context` to pack and upload the user's build contexts",
    ),
    ("protocol", &[], "the entity protocol is a leaf"),
    ("build_context", &[], "packing build contexts is a leaf (files, tar, hashes)"),
    (
        "wire",
        &["protocol", "blueprint", "placement"],
        "the REST types are a leaf beside the protocol (placement: the pure headroom and rebalance values a pool view shows)",
    ),
];

/// Edges the layers would allow but the design does not.
const FORBIDDEN: &[(&str, &str, &str)] = &[(
    "entity",
    "policy",
    "an application is handed a policy factory (entity::policies); entities know no policy types",
)];

/// Known violations, each with its reason; `TODO(lead)` ones go once the
/// branches are merged. (file, referenced module)
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// Sibling files of one top-level module that may use each other.
/// (module, from, to)
const SUBMODULE_CYCLE_EXCEPTIONS: &[(&str, &str, &str, &str)] = &[];

fn layer(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// One reference from a file to a module.
#[derive(Debug, Clone)]
struct Ref {
    file: String,
    line: usize,
    text: String,
    /// The file's top-level module.
    from: String,
    /// The file's submodule inside it (`None`: its root file).
    from_sub: Option<String>,
    /// The top-level module referenced.
    to: String,
    /// The submodule of `to` named, if any.
    to_sub: Option<String>,
}

/// Identifiers following `prefix` in `line` (`crate::NAME::SUB`).
fn paths_after<'a>(line: &'a str, prefix: &str) -> Vec<(&'a str, Option<&'a str>)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + prefix.len()..];
        rest = after;
        // `$crate::` in macros is the crate too; `foo_crate::` is not.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let ident = |s: &'a str| {
            let end = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            &s[..end]
        };
        let name = ident(after);
        if name.is_empty() {
            continue;
        }
        let sub = after[name.len()..]
            .strip_prefix("::")
            .map(ident)
            .filter(|s| !s.is_empty());
        out.push((name, sub));
    }
    out
}

fn collect() -> Vec<Ref> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut refs = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let from = parts[0].clone();
        // The crate root and the binary name modules, they do not use them.
        if from == "lib" || from == "main" {
            continue;
        }
        let from_sub = parts.get(1).filter(|s| *s != "mod").cloned();
        // How many `super::` climb out of the top-level module.
        let depth = match parts.len() {
            1 => 1,
            _ if parts.last().is_some_and(|p| p == "mod") => parts.len() - 1,
            _ => parts.len(),
        };
        let climb = "super::".repeat(depth);
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut found: Vec<_> = paths_after(line, "crate::")
                .into_iter()
                .filter(|(n, _)| !CRATE_MACROS.contains(n))
                .collect();
            found.extend(
                paths_after(line, &climb)
                    .into_iter()
                    .filter(|(n, _)| layer(n).is_some()),
            );
            for (to, to_sub) in found {
                refs.push(Ref {
                    file: format!("src/{}", rel.display()),
                    line: i + 1,
                    text: line.trim().to_string(),
                    from: from.clone(),
                    from_sub: from_sub.clone(),
                    to: to.to_string(),
                    to_sub: to_sub.map(str::to_string),
                });
            }
            // `super::NAME` from a submodule file is a sibling.
            if parts.len() == 2 && from_sub.is_some() {
                for (to_sub, _) in paths_after(line, "super::") {
                    refs.push(Ref {
                        file: format!("src/{}", rel.display()),
                        line: i + 1,
                        text: line.trim().to_string(),
                        from: from.clone(),
                        from_sub: from_sub.clone(),
                        to: from.clone(),
                        to_sub: Some(to_sub.to_string()),
                    });
                }
            }
        }
    }
    refs
}

/// Why `from` may not use `to`, if it may not.
fn violation(from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    let (Some(lf), Some(lt)) = (layer(from), layer(to)) else {
        return Some(format!(
            "`{from}` or `{to}` has no layer: add it to LAYERS in tests/architecture.rs"
        ));
    };
    if let Some((_, _, why)) = FORBIDDEN.iter().find(|(f, t, _)| *f == from && *t == to) {
        return Some(format!("`{from}` may not use `{to}`: {why}"));
    }
    if let Some((_, only, why)) = ONLY.iter().find(|(m, _, _)| *m == from) {
        if !only.contains(&to) {
            return Some(format!("`{from}` may use only {only:?} ({why})"));
        }
        return None;
    }
    if lt < lf {
        return None;
    }
    if lt == lf && SAME_LAYER.iter().any(|(f, t, _)| *f == from && *t == to) {
        return None;
    }
    Some(format!(
        "`{from}` (layer {lf}) may not use `{to}` (layer {lt}): dependencies run downwards"
    ))
}

#[test]
fn every_module_has_a_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let missing: Vec<&&str> = declared.iter().filter(|m| layer(m).is_none()).collect();
    assert!(missing.is_empty(), "modules without a layer: {missing:?}");
}

#[test]
fn dependencies_run_one_way() {
    let mut violations = Vec::new();
    for r in collect() {
        if let Some(why) = violation(&r.from, &r.to) {
            let excused = EXCEPTIONS
                .iter()
                .any(|(f, t, _)| *f == r.file && *t == r.to);
            if !excused {
                violations.push(format!("{}:{}: {why}\n    {}", r.file, r.line, r.text));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "{} layering violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn listed_exceptions_are_still_needed() {
    let refs = collect();
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .filter(|(f, t, _)| {
            !refs
                .iter()
                .any(|r| r.file == *f && r.to == *t && violation(&r.from, &r.to).is_some())
        })
        .collect();
    assert!(stale.is_empty(), "exceptions no longer needed: {stale:?}");
}

#[test]
fn the_leaves_use_nothing_of_drover_but_each_other() {
    let refs = collect();
    let bad: Vec<String> = refs
        .iter()
        .filter(|r| {
            (r.from == "protocol" && r.to != "protocol")
                || (r.from == "wire"
                    && !["wire", "protocol", "blueprint", "placement"].contains(&r.to.as_str()))
        })
        .map(|r| format!("{}:{}: {}", r.file, r.line, r.text))
        .collect();
    assert!(bad.is_empty(), "the leaves use:\n{}", bad.join("\n"));
}

/// Between the files of one top-level module (`blueprint/validate.rs` and
/// `blueprint/wiring.rs` used each other): no cycles. The module's own
/// `mod.rs` is left out: it declares and re-exports its children.
#[test]
fn no_cycles_between_the_files_of_a_module() {
    let refs = collect();
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut lines: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for r in &refs {
        let (Some(from), Some(to)) = (&r.from_sub, &r.to_sub) else {
            continue;
        };
        if r.from != r.to || from == to {
            continue;
        }
        // Only siblings that are files or folders of the module.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(&r.from);
        if !root.join(format!("{to}.rs")).exists() && !root.join(to).is_dir() {
            continue;
        }
        let excused = SUBMODULE_CYCLE_EXCEPTIONS
            .iter()
            .any(|(m, f, t, _)| *m == r.from && f == from && t == to);
        if excused {
            continue;
        }
        edges
            .entry((r.from.clone(), from.clone()))
            .or_default()
            .insert(to.clone());
        lines
            .entry((r.from.clone(), from.clone(), to.clone()))
            .or_insert_with(|| format!("{}:{}: {}", r.file, r.line, r.text));
    }
    let mut cycles = Vec::new();
    for ((module, a), tos) in &edges {
        for b in tos {
            if a < b
                && edges
                    .get(&(module.clone(), b.clone()))
                    .is_some_and(|back| back.contains(a))
            {
                cycles.push(format!(
                    "{module}::{a} <-> {module}::{b}\n    {}\n    {}",
                    lines[&(module.clone(), a.clone(), b.clone())],
                    lines[&(module.clone(), b.clone(), a.clone())]
                ));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files that use each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_and_climbs() {
    assert_eq!(
        paths_after("use crate::entity::Placement;", "crate::"),
        vec![("entity", Some("Placement"))]
    );
    assert_eq!(
        paths_after("impl $crate::protocol::Observable", "crate::"),
        vec![("protocol", Some("Observable"))]
    );
    assert!(paths_after("use my_crate::x;", "crate::").is_empty());
    assert!(violation("entity", "policy").is_some());
    assert!(violation("policy", "entity").is_some());
    assert!(violation("location", "entity").is_none());
    assert!(violation("cli", "management").is_some());
    assert!(violation("wire", "protocol").is_none());
}
