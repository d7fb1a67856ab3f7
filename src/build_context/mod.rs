//! Build contexts: a directory with a Dockerfile, packed into the tar an
//! engine builds from.
//!
//! The client packs (`drover deploy|apply|diff` on the user's machine, with
//! the user's `.dockerignore`) and uploads the tar; the service keeps it
//! under its content digest ([`uploads`]) and never reads a path a client
//! named, except under `drover.yaml`'s `build_roots`. Packing is
//! deterministic (sorted names, mtime 0, owner 0, modes 0644/0755), so the
//! same files always make the same bytes, the same digest and the same
//! image tag: an unchanged context is neither uploaded nor built again.
//!
//! A leaf: it knows files, tar and hashes, nothing of drover.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod dockerignore;
pub mod rewrite;
pub mod uploads;

pub use dockerignore::{IgnoreError, IgnoreRules};
pub use uploads::{UploadError, UploadRef, Uploads};

/// The most a build context may weigh unless the service is told
/// otherwise (`drover serve --max-build-context`): larger than any sane
/// source tree, small enough that a stray `node_modules` or data directory
/// is caught with a clear message rather than filling the disk.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A packed build context.
#[derive(Debug, Clone)]
pub struct PackedContext {
    pub tar: Vec<u8>,
    /// Names the image: SHA-256 (hex) of the Dockerfile path and the tar.
    pub hash: String,
    pub files: usize,
}

/// Why a context could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("build context {dir}: {source}")]
    Ignore {
        dir: String,
        #[source]
        source: IgnoreError,
    },
    #[error("build context {dir} has no `{dockerfile}`; add it, or name another with `build: {{ context, dockerfile }}`")]
    NoDockerfile { dir: String, dockerfile: String },
    #[error("build context {dir} holds more than {max} bytes of files (the limit); list what the build does not need (data, dependencies, build output) in its .dockerignore")]
    TooLarge { dir: String, max: u64 },
}

/// The image-naming hash of a context: its Dockerfile path and its tar.
pub fn context_hash(dockerfile: &str, tar: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(dockerfile.as_bytes());
    h.update([0]);
    h.update(tar);
    hex(&h.finalize())
}

/// SHA-256 of bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Packs `dir` (honouring its `.dockerignore`) deterministically; stops
/// with [`ContextError::TooLarge`] as soon as the files it would send
/// weigh more than `max_bytes`, before reading them.
pub fn pack_context(
    dir: &Path,
    dockerfile: &str,
    max_bytes: u64,
) -> Result<PackedContext, ContextError> {
    let shown = dir.display().to_string();
    let io = |source| ContextError::Io {
        dir: shown.clone(),
        source,
    };
    if !dir.join(dockerfile).is_file() {
        return Err(ContextError::NoDockerfile {
            dir: shown.clone(),
            dockerfile: dockerfile.to_string(),
        });
    }
    let rules = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => IgnoreRules::parse(&t).map_err(|source| ContextError::Ignore {
            dir: shown.clone(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(e) => return Err(io(e)),
    };
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    walk(dir, "", &rules, dockerfile, &mut files).map_err(io)?;
    files.sort();
    let mut total = 0u64;
    for (_, path) in &files {
        total += std::fs::symlink_metadata(path).map_err(io)?.len();
        if total > max_bytes {
            return Err(ContextError::TooLarge {
                dir: shown,
                max: max_bytes,
            });
        }
    }
    let tar = write_tar(&files).map_err(io)?;
    Ok(PackedContext {
        hash: context_hash(dockerfile, &tar),
        tar,
        files: files.len(),
    })
}

fn write_tar(files: &[(String, PathBuf)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for (rel, path) in files {
        let meta = std::fs::symlink_metadata(path)?;
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        if meta.file_type().is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            let target = std::fs::read_link(path)?;
            builder.append_link(&mut header, rel, target)?;
        } else if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(0o755);
            builder.append_data(&mut header, format!("{rel}/"), std::io::empty())?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let exec = meta.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if exec { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            builder.append_data(&mut header, rel, std::fs::File::open(path)?)?;
        }
    }
    builder.into_inner()
}

fn walk(
    dir: &Path,
    prefix: &str,
    rules: &IgnoreRules,
    dockerfile: &str,
    out: &mut Vec<(String, PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        // Docker sends the Dockerfile and .dockerignore even when ignored.
        let always = rel == dockerfile || rel == ".dockerignore";
        let ft = entry.file_type()?;
        let excluded = !always && rules.excluded(&rel);
        // An excluded directory is still walked when a `!` line may take
        // a file inside it back (as Docker does).
        if excluded && !(ft.is_dir() && rules.has_exceptions()) {
            continue;
        }
        if !excluded {
            out.push((rel.clone(), entry.path()));
        }
        if ft.is_dir() {
            walk(&entry.path(), &rel, rules, dockerfile, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_is_stable_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").unwrap();
        std::fs::write(p.join("a"), "one").unwrap();
        std::fs::create_dir(p.join("logs")).unwrap();
        std::fs::write(p.join("logs/x.log"), "noise").unwrap();
        std::fs::write(p.join(".dockerignore"), "logs\n").unwrap();
        let one = pack_context(p, "Dockerfile", u64::MAX).unwrap();
        let two = pack_context(p, "Dockerfile", u64::MAX).unwrap();
        assert_eq!(one.hash, two.hash);
        assert_eq!(one.tar, two.tar);
        assert_eq!(one.files, 3, ".dockerignore, Dockerfile, a");
        // Ignored files do not change the hash; others do.
        std::fs::write(p.join("logs/x.log"), "more noise").unwrap();
        assert_eq!(
            pack_context(p, "Dockerfile", u64::MAX).unwrap().hash,
            one.hash
        );
        std::fs::write(p.join("a"), "two").unwrap();
        assert_ne!(
            pack_context(p, "Dockerfile", u64::MAX).unwrap().hash,
            one.hash
        );
        // The hash is the Dockerfile's path and the tar, nothing else.
        assert_eq!(one.hash, context_hash("Dockerfile", &one.tar));
    }

    #[test]
    fn a_context_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(p.join("big"), vec![0u8; 4096]).unwrap();
        let e = pack_context(p, "Dockerfile", 1000).unwrap_err();
        assert!(matches!(e, ContextError::TooLarge { max: 1000, .. }), "{e}");
        assert!(e.to_string().contains(".dockerignore"), "{e}");
        std::fs::write(p.join(".dockerignore"), "big\n").unwrap();
        assert!(pack_context(p, "Dockerfile", 1000).is_ok());
    }

    #[test]
    fn a_missing_dockerfile_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let e = pack_context(dir.path(), "Dockerfile.dev", u64::MAX).unwrap_err();
        assert!(e.to_string().contains("has no `Dockerfile.dev`"), "{e}");
    }
}
