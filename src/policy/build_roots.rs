//! Which build contexts the server may read.
//!
//! A blueprint posted over REST names its build context as a path on the
//! drover host; without a rule, any caller could make drover read (and
//! send to an engine) any directory, and learn from the answer which paths
//! exist. `drover.yaml`'s `build_roots` lists the directories contexts may
//! lie under. The rule is decided on the text of the path first, so a
//! context outside the roots gets one answer whether it exists or not,
//! and no file outside is ever touched; a context inside is then resolved
//! (symbolic links followed) and must still be inside.

use std::path::{Component, Path, PathBuf};

/// Why a build context is refused, or `None` when it may be read.
pub fn context_outside_roots(context: &Path, roots: &[PathBuf]) -> Option<String> {
    let rule = || {
        if roots.is_empty() {
            format!(
                "build context `{}` is a path on the drover host, and drover reads no such path \
                 unless it is under `build_roots` in drover.yaml (none listed); deploy with \
                 `drover deploy FILE` or `drover apply FILE`, which upload the directory",
                context.display()
            )
        } else {
            format!(
                "build context `{}` is outside the allowed build roots; drover reads build \
                 contexts only under `build_roots` in drover.yaml ({}), or uploaded by \
                 `drover deploy FILE`",
                context.display(),
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let plain = context.is_absolute()
        && context
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let lexically = plain
        && roots
            .iter()
            .any(|r| r.is_absolute() && context.starts_with(r));
    if !lexically {
        return Some(rule());
    }
    // Inside by its text: a symbolic link must not lead out.
    let Ok(real) = context.canonicalize() else {
        // Inside the roots, a missing path may be told apart: the
        // operator allowed that directory.
        return None;
    };
    let inside = roots.iter().any(|r| {
        r.canonicalize()
            .map(|r| real.starts_with(&r))
            .unwrap_or(false)
    });
    (!inside).then(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_paths_get_one_answer_whether_they_exist_or_not() {
        let roots = [PathBuf::from("/srv/builds")];
        let a = context_outside_roots(Path::new("/etc"), &roots).unwrap();
        let b = context_outside_roots(Path::new("/no/such/dir"), &roots).unwrap();
        assert_eq!(
            a.replace("/etc", "X"),
            b.replace("/no/such/dir", "X"),
            "the same rule, whatever exists"
        );
        assert!(
            a.contains("`build_roots` in drover.yaml (/srv/builds)"),
            "{a}"
        );
        assert!(context_outside_roots(Path::new("/srv/builds/../../etc"), &roots).is_some());
        assert!(context_outside_roots(Path::new("/srv/buildsx/a"), &roots).is_some());
        assert!(context_outside_roots(Path::new("srv/builds/a"), &roots).is_some());
        assert!(context_outside_roots(Path::new("/srv/builds/a"), &roots).is_none());
        assert!(context_outside_roots(Path::new("/srv/builds/a"), &[]).is_some());
    }

    #[test]
    fn a_symbolic_link_out_of_a_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::fs::create_dir(root.join("app")).unwrap();
        let roots = [root.clone()];
        assert!(context_outside_roots(&root.join("out"), &roots).is_some());
        assert!(context_outside_roots(&root.join("app"), &roots).is_none());
    }
}
