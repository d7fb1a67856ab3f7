//! The volume checks that look beyond one `volumes:` list: host paths
//! against `drover.yaml`'s `allowed_host_paths` (the server's context),
//! and placement rules that would move a container away from its data.

use super::model::{Blueprint, PlacementSpec};
use super::problem::{FieldPath, ValidationError};
use super::volumes::{host_path_allowed, is_plain_absolute, named, VolumeSpec};

/// The CPU placement policy moves a container to another host; a named
/// volume stays where it was made, so its data would be left behind.
pub fn validate_no_rebalance(
    path: &FieldPath,
    placement: &PlacementSpec,
    volumes: &[VolumeSpec],
    errs: &mut Vec<ValidationError>,
) {
    if placement.rebalance.is_some() && named(volumes).next().is_some() {
        errs.push(ValidationError::at_key(
            path.key("rebalance"),
            "`rebalance` moves containers between hosts, but a named volume stays on the host              that holds it; leave out `rebalance` for containers with named volumes",
        ));
    }
}

/// The server's check of host paths against `drover.yaml`'s
/// `allowed_host_paths`: every host path of `bp` outside them, at its
/// position.
pub fn host_path_checks(bp: &Blueprint, roots: &[std::path::PathBuf]) -> Vec<ValidationError> {
    let mut errs = Vec::new();
    for (i, svc) in bp.services.iter().enumerate() {
        let spath = FieldPath::root().key("services").index(i);
        let mut containers = vec![(spath.clone(), &svc.volumes)];
        if let Some(m) = &svc.member {
            containers.push((spath.key("member"), &m.volumes));
        }
        for (cpath, volumes) in containers {
            for (k, v) in volumes.iter().enumerate() {
                let VolumeSpec::Host(h) = v else { continue };
                if !is_plain_absolute(&h.host) || host_path_allowed(&h.host, roots) {
                    continue;
                }
                let hint = if roots.is_empty() {
                    "this drover allows no host paths: list the roots it may mount in \
                     `allowed_host_paths` in drover.yaml, or use a named volume"
                        .to_string()
                } else {
                    let list: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                    format!(
                        "allowed roots (`allowed_host_paths` in drover.yaml): {}",
                        list.join(", ")
                    )
                };
                errs.push(ValidationError::at(
                    cpath.key("volumes").index(k).key("host"),
                    format!(
                        "host path `{}` is outside the allowed roots; {hint}",
                        h.host
                    ),
                ));
            }
        }
    }
    errs
}
