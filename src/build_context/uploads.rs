//! Uploaded build contexts, kept by the service under their digest.
//!
//! A blueprint names an uploaded context as `upload:sha256:<64 hex>` in
//! place of a directory. The tar lives in `<dir>/<hex>.tar`, written once
//! (to a temporary name, then renamed, so a reader never sees half a file)
//! and never changed: the name is the content. Nothing from the client
//! becomes a path on the service's machine except that checked digest.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// The text that marks an uploaded context in a blueprint.
pub const PREFIX: &str = "upload:sha256:";

/// A reference to an uploaded context: its SHA-256, 64 lower-case hex
/// digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadRef(String);

impl UploadRef {
    /// `upload:sha256:<hex>` as a reference; `None` for anything else
    /// (a directory). A string that starts like one but is malformed is
    /// an error, so a typo is not taken for a path.
    pub fn parse(context: &str) -> Option<Result<UploadRef, UploadError>> {
        let hex = context.strip_prefix(PREFIX)?;
        Some(UploadRef::from_hex(hex))
    }

    pub fn from_hex(hex: &str) -> Result<UploadRef, UploadError> {
        let ok = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(UploadRef(hex.to_string()))
        } else {
            Err(UploadError::BadDigest(hex.chars().take(80).collect()))
        }
    }

    pub fn hex(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}", self.0)
    }
}

/// What an upload was refused for.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("`{0}` is not a SHA-256 digest (64 lower-case hex digits); upload the context with `drover deploy FILE`, which writes the reference itself")]
    BadDigest(String),
    #[error("the build context is {got} bytes or more, over this service's limit of {max} bytes (`drover serve --max-build-context`); list what the build does not need in its .dockerignore")]
    TooLarge { got: u64, max: u64 },
    #[error("the build context is not a readable tar archive: {0}")]
    NotTar(String),
    #[error("the build context holds `{0}`, a path that leaves the context (absolute or with `..`); pack the directory with `drover deploy FILE`")]
    Escapes(String),
    #[error("the build context holds `{path}`, a {kind}; only files, directories and symbolic links are built")]
    EntryKind { path: String, kind: String },
    #[error("no uploaded build context {0} on this service; deploy with `drover deploy FILE`, which uploads it")]
    Missing(UploadRef),
    #[error("the upload directory {dir}: {source}; check that drover can write beside its store")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// What an accepted upload holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub reference: UploadRef,
    pub bytes: u64,
    pub files: usize,
}

/// The directory of uploaded contexts.
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
}

impl Uploads {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Uploads { dir: dir.into() }
    }

    /// `build-contexts/` beside the store file.
    pub fn beside_store(store: &Path) -> Self {
        let parent = store
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Uploads::new(parent.join("build-contexts"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, r: &UploadRef) -> PathBuf {
        self.dir.join(format!("{}.tar", r.hex()))
    }

    pub fn contains(&self, r: &UploadRef) -> bool {
        self.path(r).is_file()
    }

    /// The tar of an uploaded context.
    pub fn read(&self, r: &UploadRef) -> Result<Vec<u8>, UploadError> {
        std::fs::read(self.path(r)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                UploadError::Missing(r.clone())
            } else {
                self.io(e)
            }
        })
    }

    /// Checks and keeps a tar; its digest names it. Keeping the same
    /// bytes twice is a no-op.
    pub fn put(&self, tar: &[u8]) -> Result<Accepted, UploadError> {
        let files = check_tar(tar)?;
        let reference = UploadRef(super::sha256_hex(tar));
        let path = self.path(&reference);
        if !path.is_file() {
            std::fs::create_dir_all(&self.dir).map_err(|e| self.io(e))?;
            set_owner_only(&self.dir, 0o700).map_err(|e| self.io(e))?;
            let tmp = self
                .dir
                .join(format!(".{}.{}.tmp", reference.hex(), std::process::id()));
            let write = || -> std::io::Result<()> {
                let mut f = std::fs::File::create(&tmp)?;
                set_owner_only(&tmp, 0o600)?;
                f.write_all(tar)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&tmp);
                return Err(self.io(e));
            }
        }
        Ok(Accepted {
            reference,
            bytes: tar.len() as u64,
            files,
        })
    }

    /// Removes every upload not in `keep` and older than `min_age`, so an
    /// upload on its way to a deploy is never taken. Returns how many went.
    pub fn sweep(
        &self,
        keep: &std::collections::BTreeSet<String>,
        min_age: std::time::Duration,
    ) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".tar") else {
                continue;
            };
            if keep.contains(hex) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    fn io(&self, source: std::io::Error) -> UploadError {
        UploadError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }
}

fn set_owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Reads every entry of a tar: each must stay inside the context and be a
/// file, directory or symbolic link. Returns the number of entries. The
/// engine reads the tar again; this is so that what drover keeps is what
/// a context can be, and a bad upload is refused with a reason at once.
pub fn check_tar(tar: &[u8]) -> Result<usize, UploadError> {
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| UploadError::NotTar(e.to_string()))?;
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| UploadError::NotTar(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| UploadError::NotTar(e.to_string()))?
            .into_owned();
        let shown = path.display().to_string();
        let inside = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(UploadError::Escapes(shown));
        }
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link
        ) && !kind.is_pax_global_extensions()
            && !kind.is_pax_local_extensions()
            && !kind.is_gnu_longname()
            && !kind.is_gnu_longlink()
        {
            return Err(UploadError::EntryKind {
                path: shown,
                kind: format!("{kind:?}").to_lowercase(),
            });
        }
        n += 1;
    }
    if n == 0 {
        return Err(UploadError::NotTar("it holds no file".into()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(1);
            h.set_mode(0o644);
            // `set_path` refuses `..`; write the raw name as a hostile
            // client would.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn references_are_exactly_64_hex_digits() {
        let good = format!("{PREFIX}{}", "a".repeat(64));
        let r = UploadRef::parse(&good).unwrap().unwrap();
        assert_eq!(r.to_string(), good);
        assert!(UploadRef::parse("/srv/builds/web").is_none());
        assert!(UploadRef::parse("upload:sha256:../../etc")
            .unwrap()
            .is_err());
        assert!(UploadRef::parse(&format!("{PREFIX}{}", "A".repeat(64)))
            .unwrap()
            .is_err());
    }

    #[test]
    fn an_upload_is_kept_by_its_digest_once() {
        let dir = tempfile::tempdir().unwrap();
        let up = Uploads::new(dir.path().join("ctx"));
        let tar = tar_of(&[("Dockerfile", tar::EntryType::Regular)]);
        let a = up.put(&tar).unwrap();
        assert_eq!(a.reference.hex(), super::super::sha256_hex(&tar));
        assert_eq!(a.files, 1);
        assert_eq!(up.read(&a.reference).unwrap(), tar);
        assert_eq!(up.put(&tar).unwrap(), a, "the same bytes again");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(up.path(&a.reference))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = UploadRef::from_hex(&"0".repeat(64)).unwrap();
        assert!(matches!(up.read(&other), Err(UploadError::Missing(_))));
    }

    #[test]
    fn entries_that_leave_the_context_or_are_devices_are_refused() {
        let up = tempfile::tempdir().unwrap();
        let up = Uploads::new(up.path());
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b"] {
            let e = up
                .put(&tar_of(&[(bad, tar::EntryType::Regular)]))
                .unwrap_err();
            assert!(matches!(e, UploadError::Escapes(_)), "{bad}: {e}");
        }
        let e = up
            .put(&tar_of(&[("dev", tar::EntryType::Char)]))
            .unwrap_err();
        assert!(matches!(e, UploadError::EntryKind { .. }), "{e}");
        assert!(matches!(
            up.put(b"not a tar at all, just some bytes").unwrap_err(),
            UploadError::NotTar(_)
        ));
        assert_eq!(
            std::fs::read_dir(up.dir()).map(|d| d.count()).unwrap_or(0),
            0,
            "nothing refused is kept"
        );
    }

    #[test]
    fn the_sweep_keeps_what_is_referenced_and_what_is_young() {
        let dir = tempfile::tempdir().unwrap();
        let up = Uploads::new(dir.path());
        let a = up.put(&tar_of(&[("a", tar::EntryType::Regular)])).unwrap();
        let b = up.put(&tar_of(&[("b", tar::EntryType::Regular)])).unwrap();
        let keep = [a.reference.hex().to_string()].into_iter().collect();
        assert_eq!(up.sweep(&keep, std::time::Duration::from_secs(3600)), 0);
        assert_eq!(up.sweep(&keep, std::time::Duration::ZERO), 1);
        assert!(up.contains(&a.reference));
        assert!(!up.contains(&b.reference));
    }
}
