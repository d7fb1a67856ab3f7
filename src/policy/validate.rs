//! The one blueprint validation: what the server checks before a deploy
//! (and again on a rebind) is what `drover validate` checks, so "valid"
//! means "the server takes it".
//!
//! Pure: the checks that need the service's context (its locations, its
//! presets, the build contexts on its machine) take that context as data;
//! `drover validate` runs without a service, with the built-in presets (plus
//! `--policies DIR`) and no location or build-context checks.

use crate::blueprint::{Blueprint, BlueprintErrors, FieldPath, ValidationError};
use crate::policy::Presets;

/// What the checks beyond the text know.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// Policy presets that `use:` may name.
    pub presets: &'a Presets,
    /// The service's locations; `None` (no service) skips the check.
    pub locations: Option<&'a [String]>,
    /// Build contexts must be directories on this machine (the server's
    /// view; `drover deploy` resolves relative ones before sending).
    pub check_build_contexts: bool,
    /// The secret names `drover.yaml` defines; `None` (no service) skips
    /// the check.
    pub secrets: Option<&'a [String]>,
    /// `drover.yaml`'s `allowed_host_paths`: host-path volumes must lie
    /// under one of them. `None` (no service, so no drover.yaml) skips the
    /// check; an empty list refuses every host path.
    pub allowed_host_paths: Option<&'a [std::path::PathBuf]>,
    /// `drover.yaml`'s `build_roots`: a context that is a path must lie
    /// under one of them, checked before any file is touched. `None` (no
    /// `build_roots` key) is no root: every path is refused, and only
    /// uploaded contexts are built.
    pub build_roots: Option<&'a [std::path::PathBuf]>,
    /// Where the service keeps uploaded contexts: an `upload:sha256:...`
    /// context must be there.
    pub uploads: Option<&'a crate::build_context::Uploads>,
}

impl<'a> ValidationContext<'a> {
    /// `drover validate`: no service, so no locations and no build contexts.
    pub fn offline(presets: &'a Presets) -> Self {
        ValidationContext {
            presets,
            locations: None,
            check_build_contexts: false,
            secrets: None,
            allowed_host_paths: None,
            build_roots: None,
            uploads: None,
        }
    }
}

/// Parses and checks a blueprint: every error with file:line:col.
pub fn validate_blueprint(
    file: &str,
    text: &str,
    cx: &ValidationContext<'_>,
) -> Result<Blueprint, BlueprintErrors> {
    crate::blueprint::parse_blueprint_with(file, text, &|bp| context_checks(bp, cx))
}

/// The checks that need the context, with blueprint paths.
fn context_checks(bp: &Blueprint, cx: &ValidationContext<'_>) -> Vec<ValidationError> {
    let mut errs = if cx.check_build_contexts {
        build_context_checks(bp, cx.build_roots.unwrap_or(&[]), cx.uploads)
    } else {
        Vec::new()
    };
    if let Some(known) = cx.locations {
        if !known.contains(&bp.location) {
            errs.push(ValidationError::at(
                FieldPath::root().key("location"),
                format!(
                    "unknown location `{}`; known locations: {}",
                    bp.location,
                    known.join(", ")
                ),
            ));
        }
    }
    errs.extend(policy_checks(bp, cx.presets));
    if let Some(known) = cx.secrets {
        errs.extend(secret_checks(bp, known));
    }
    if let Some(roots) = cx.allowed_host_paths {
        errs.extend(crate::blueprint::volume_checks::host_path_checks(bp, roots));
    }
    errs
}

/// Every secret a container names is one `drover.yaml` defines.
fn secret_checks(bp: &Blueprint, known: &[String]) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        let spath = FieldPath::root().key("services").index(i);
        let mut lists = vec![(spath.key("secrets"), &svc.secrets)];
        if let Some(m) = &svc.member {
            lists.push((spath.key("member").key("secrets"), &m.secrets));
        }
        for (path, list) in lists {
            for (k, s) in list.iter().enumerate() {
                if !known.contains(&s.name) {
                    errs.push(ValidationError::at(
                        path.index(k).key("name"),
                        format!(
                            "unknown secret `{}`; drover.yaml's `secrets` defines {}",
                            s.name,
                            if known.is_empty() {
                                "none: add `secrets: { NAME: { file: /path } }` there".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
    }
    errs
}

/// Every policy resolves against the presets, as its kind's config, and
/// fits the service it is attached to.
fn policy_checks(bp: &Blueprint, presets: &Presets) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        for (j, spec) in svc.policies.iter().enumerate() {
            let base = FieldPath::root()
                .key("services")
                .index(i)
                .key("policies")
                .index(j);
            match crate::policy::resolve(spec, presets) {
                Ok(p) if !p.config.allowed_on(svc.kind.as_str()) => errs.push(ValidationError::at(
                    base,
                    format!(
                        "a {} policy cannot be attached to a {}",
                        p.config.kind(),
                        svc.kind.as_str()
                    ),
                )),
                Ok(_) => {}
                Err(pe) => {
                    for e in pe {
                        let path = e
                            .path
                            .split('.')
                            .filter(|k| !k.is_empty())
                            .fold(base.clone(), |p, k| p.key(k));
                        errs.push(ValidationError::at(path, e.message));
                    }
                }
            }
        }
    }
    errs
}

/// A build context is an upload the service holds, or an absolute path
/// to a directory under `build_roots` holding its Dockerfile (the service
/// cannot know what a relative path was relative to; `drover deploy`
/// uploads the directory instead).
fn build_context_checks(
    bp: &Blueprint,
    roots: &[std::path::PathBuf],
    uploads: Option<&crate::build_context::Uploads>,
) -> Vec<ValidationError> {
    use crate::build_context::UploadRef;
    let mut errs = crate::blueprint::wiring::validate_absolute_contexts(bp);
    for (path, b) in crate::blueprint::wiring::builds(bp) {
        if let Some(reference) = UploadRef::parse(&b.context) {
            match reference {
                Err(e) => errs.push(ValidationError::at(path, e.to_string())),
                Ok(r) if uploads.is_some_and(|u| !u.contains(&r)) => {
                    errs.push(ValidationError::at(
                        path,
                        crate::build_context::UploadError::Missing(r).to_string(),
                    ))
                }
                Ok(_) => {}
            }
            continue;
        }
        let dir = std::path::Path::new(&b.context);
        if !dir.is_absolute() {
            continue;
        }
        // The roots first: outside them, no file is touched (not even to
        // see whether it exists).
        if let Some(e) = super::build_roots::context_outside_roots(dir, roots) {
            errs.push(ValidationError::at(path, e));
            continue;
        }
        if !dir.is_dir() {
            errs.push(ValidationError::at(
                path,
                format!(
                    "build context `{}` is not a directory on the drover host",
                    b.context
                ),
            ));
        } else if !dir.join(b.dockerfile()).is_file() {
            errs.push(ValidationError::at(
                path,
                format!("build context `{}` has no `{}`", b.context, b.dockerfile()),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_with(policy: &str) -> String {
        format!(
            "name: shop\nservices:\n  - id: web\n    type: cluster\n    initial_size: 2\n    member:\n      image: nginx\n    policies:\n{policy}"
        )
    }

    fn offline_errors(text: &str) -> String {
        let presets = Presets::builtin();
        validate_blueprint("b.yaml", text, &ValidationContext::offline(&presets))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_unknown_policy_key_is_refused_with_its_position() {
        let e = offline_errors(&cluster_with(
            "      - type: restarter\n        bakcoff_start: 1s\n",
        ));
        assert!(e.starts_with("b.yaml:10:"), "{e}");
        assert!(e.contains("bakcoff_start"), "{e}");
    }

    #[test]
    fn an_unknown_policy_kind_is_refused() {
        let e = offline_errors(&cluster_with("      - type: teleporter\n"));
        assert!(e.starts_with("b.yaml:9:"), "{e}");
        assert!(e.contains("unknown policy type `teleporter`"), "{e}");
    }

    #[test]
    fn an_autoscaler_with_lower_above_upper_is_refused() {
        let e = offline_errors(&cluster_with(
            "      - type: autoscaler\n        metric: load\n        lower: 50\n        upper: 10\n",
        ));
        assert!(e.contains("must be at least `lower`"), "{e}");
        assert!(e.starts_with("b.yaml:12:"), "{e}");
    }

    #[test]
    fn a_built_in_preset_is_known_offline() {
        let presets = Presets::builtin();
        let text = cluster_with("      - use: resilient\n      - use: replace-failed\n");
        validate_blueprint("b.yaml", &text, &ValidationContext::offline(&presets)).unwrap();
    }

    #[test]
    fn an_unknown_secret_is_refused_with_its_position() {
        let presets = Presets::builtin();
        let text = "name: s\nservices:\n  - id: a\n    type: container\n    image: x\n    \
                    secrets:\n      - db\n      - { name: nope, target: x }\n  \
                    - id: b\n    type: cluster\n    member:\n      image: x\n      \
                    secrets: [gone]\n";
        validate_blueprint("b.yaml", text, &ValidationContext::offline(&presets)).unwrap();
        let known = ["db".to_string()];
        let cx = ValidationContext {
            secrets: Some(&known),
            ..ValidationContext::offline(&presets)
        };
        let e = validate_blueprint("b.yaml", text, &cx)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.yaml:8:17: services[0].secrets[1].name: unknown secret `nope`; drover.yaml's \
             `secrets` defines db\n\
             b.yaml:13:17: services[1].member.secrets[0].name: unknown secret `gone`; \
             drover.yaml's `secrets` defines db"
        );
    }

    #[test]
    fn host_paths_outside_the_allowed_roots_are_refused_by_the_server_only() {
        let presets = Presets::builtin();
        let text = "name: s\nservices:\n  - id: a\n    type: container\n    image: nginx\n    volumes:\n      - { host: /srv/shop, path: /srv }\n      - { host: /etc, path: /e, read_only: true }\n";
        validate_blueprint("b.yaml", text, &ValidationContext::offline(&presets)).unwrap();
        let roots = [std::path::PathBuf::from("/srv")];
        let cx = ValidationContext {
            allowed_host_paths: Some(&roots),
            ..ValidationContext::offline(&presets)
        };
        let e = validate_blueprint("b.yaml", text, &cx)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "b.yaml:8:17: services[0].volumes[1].host: host path `/etc` is outside the allowed roots; \
             allowed roots (`allowed_host_paths` in drover.yaml): /srv"
        );
        let none: [std::path::PathBuf; 0] = [];
        let cx = ValidationContext {
            allowed_host_paths: Some(&none),
            ..ValidationContext::offline(&presets)
        };
        let e = validate_blueprint("b.yaml", text, &cx).unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(
            e.to_string().contains("this drover allows no host paths"),
            "{e}"
        );
    }

    #[test]
    fn the_server_checks_its_locations_and_offline_does_not() {
        let presets = Presets::builtin();
        let text = "name: s\nlocation: mars\nservices:\n  - id: a\n    type: container\n    image: nginx\n";
        validate_blueprint("b.yaml", text, &ValidationContext::offline(&presets)).unwrap();
        let known = ["local".to_string()];
        let cx = ValidationContext {
            presets: &presets,
            locations: Some(&known),
            check_build_contexts: true,
            secrets: None,
            allowed_host_paths: None,
            build_roots: None,
            uploads: None,
        };
        let e = validate_blueprint("b.yaml", text, &cx)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown location `mars`; known locations: local"),
            "{e}"
        );
    }
}
