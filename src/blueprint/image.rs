//! Image references and the pull policy (pure: no Docker here).
//!
//! [`ImageRef::parse`] reads a reference as Docker's `distribution/reference`
//! does: the first path component is a registry host when it has a `.` or a
//! `:` or is `localhost` (`localhost:5000/x`, `ghcr.io/o/x`); otherwise the
//! registry is Docker Hub (`docker.io`), and a one-component name gets
//! Docker Hub's `library/` prefix (`postgres` is `docker.io/library/postgres`).
//! The registry host names the credentials a pull uses; the full repository
//! name compares an image's `RepoDigests` with the reference.

use serde::{Deserialize, Serialize};

/// Docker Hub, the registry of references that name none.
pub const DOCKER_HUB: &str = "docker.io";

/// When drover pulls a container's image (Kubernetes' `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImagePull {
    /// Pull only when the host lacks the image (the default).
    #[default]
    IfNotPresent,
    /// Ask the registry for the tag's current image at every deploy; the
    /// members of that deploy then all run the digest it resolved to.
    Always,
    /// Never pull: the image must be on the host (loaded, built, copied).
    Never,
}

impl ImagePull {
    pub fn is_default(&self) -> bool {
        *self == ImagePull::IfNotPresent
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ImagePull::IfNotPresent => "if-not-present",
            ImagePull::Always => "always",
            ImagePull::Never => "never",
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (and port): `docker.io`, `localhost:5000`.
    pub registry: String,
    /// The repository path within the registry: `library/postgres`.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

/// Why a reference is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("image reference is empty")]
    Empty,
    #[error("image `{0}` has an empty repository name; write it like `postgres:16` or `registry.example.com/team/app:1.2`")]
    EmptyName(String),
    #[error("image `{image}`: repository component `{component}` must be lower-case letters, digits and separators (`.`, `_`, `-`)")]
    Component { image: String, component: String },
    #[error("image `{image}`: tag `{tag}` must be letters, digits, `_`, `.` or `-` (at most 128, not starting with `.` or `-`)")]
    Tag { image: String, tag: String },
    #[error("image `{image}`: digest `{digest}` must be written `sha256:` and 64 hex digits")]
    Digest { image: String, digest: String },
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<ImageRef, RefError> {
        let s = image.trim();
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (s, None),
        };
        if let Some(d) = &digest {
            let ok = d
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(RefError::Digest {
                    image: s.into(),
                    digest: d.clone(),
                });
            }
        }
        // A tag is after the last `:` that follows the last `/` (a `:`
        // before it is the registry's port).
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                return Err(RefError::Tag {
                    image: s.into(),
                    tag: t.clone(),
                });
            }
        }
        if name.is_empty() {
            return Err(RefError::EmptyName(s.into()));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
            None => (DOCKER_HUB.to_string(), format!("library/{name}")),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(RefError::Component {
                    image: s.into(),
                    component: component.into(),
                });
            }
        }
        Ok(ImageRef {
            registry,
            path,
            tag,
            digest,
        })
    }

    /// `registry/path`: the repository, as `RepoDigests` name it once
    /// normalised (`postgres` and `docker.io/library/postgres` are one).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The repository as Docker writes it: Docker Hub's names short
    /// (`postgres`, `team/app`), others in full.
    pub fn familiar_repository(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        }
    }

    /// The tag a pull asks for: the written one, else `latest` (Docker's
    /// default). `None` for a reference by digest.
    pub fn pull_tag(&self) -> Option<String> {
        if self.digest.is_some() {
            return None;
        }
        Some(self.tag.clone().unwrap_or_else(|| "latest".into()))
    }

    /// The same repository at `digest`: what every member runs once a
    /// tag is pinned.
    pub fn at_digest(&self, digest: &str) -> String {
        format!("{}@{digest}", self.familiar_repository())
    }

    /// The digest of this repository among an image's `RepoDigests`.
    pub fn digest_in<'a>(&self, repo_digests: &'a [String]) -> Option<&'a str> {
        let mine = self.repository();
        repo_digests.iter().find_map(|rd| {
            let parsed = ImageRef::parse(rd).ok()?;
            (parsed.repository() == mine).then_some(())?;
            rd.split_once('@').map(|(_, d)| d)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_is_the_default_registry() {
        let p = r("postgres:16");
        assert_eq!(
            (p.registry.as_str(), p.path.as_str(), p.tag.as_deref()),
            ("docker.io", "library/postgres", Some("16"))
        );
        assert_eq!(p.repository(), "docker.io/library/postgres");
        assert_eq!(p.familiar_repository(), "postgres");
        let t = r("team/app");
        assert_eq!(
            (t.registry.as_str(), t.path.as_str()),
            ("docker.io", "team/app")
        );
        assert_eq!(t.pull_tag().as_deref(), Some("latest"));
        assert_eq!(r("docker.io/library/postgres").repository(), p.repository());
        assert_eq!(r("index.docker.io/library/postgres").registry, "docker.io");
    }

    #[test]
    fn a_host_with_a_dot_a_port_or_localhost_is_a_registry() {
        let l = r("localhost:5000/x");
        assert_eq!(
            (l.registry.as_str(), l.path.as_str(), l.tag),
            ("localhost:5000", "x", None)
        );
        let l = r("localhost/x:1");
        assert_eq!(
            (l.registry.as_str(), l.tag.as_deref()),
            ("localhost", Some("1"))
        );
        let g = r("ghcr.io/org/app:1.2.3");
        assert_eq!(
            (g.registry.as_str(), g.path.as_str()),
            ("ghcr.io", "org/app")
        );
        let p = r("127.0.0.1:5123/drover/wl:v1");
        assert_eq!(
            (p.registry.as_str(), p.path.as_str(), p.tag.as_deref()),
            ("127.0.0.1:5123", "drover/wl", Some("v1"))
        );
        assert_eq!(p.familiar_repository(), "127.0.0.1:5123/drover/wl");
        // A port is not a tag.
        assert_eq!(r("registry:5000/x").tag, None);
        assert_eq!(r("registry:5000/x").registry, "registry:5000");
    }

    #[test]
    fn digests_pin_and_are_found_among_repo_digests() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let p = r(&format!("127.0.0.1:5123/x@{d}"));
        assert_eq!(p.digest.as_deref(), Some(d.as_str()));
        assert_eq!(p.pull_tag(), None);
        let pg = r("postgres:16");
        assert_eq!(pg.at_digest(&d), format!("postgres@{d}"));
        let found = vec![
            format!("other@sha256:{}", "cd".repeat(32)),
            format!("postgres@{d}"),
        ];
        assert_eq!(pg.digest_in(&found), Some(d.as_str()));
        assert_eq!(r("mysql").digest_in(&found), None);
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        assert_eq!(ImageRef::parse(" "), Err(RefError::Empty));
        assert!(matches!(
            ImageRef::parse("Postgres"),
            Err(RefError::Component { .. })
        ));
        assert!(matches!(ImageRef::parse("x:"), Err(RefError::Tag { .. })));
        assert!(matches!(ImageRef::parse("x:-a"), Err(RefError::Tag { .. })));
        assert!(matches!(
            ImageRef::parse("x@sha256:12"),
            Err(RefError::Digest { .. })
        ));
        assert!(matches!(
            ImageRef::parse("a//b"),
            Err(RefError::Component { .. })
        ));
        assert_eq!(
            ImageRef::parse("My/App").unwrap_err().to_string(),
            "image `My/App`: repository component `My` must be lower-case letters, digits and separators (`.`, `_`, `-`)"
        );
        // Everything the tests and examples use parses.
        for ok in [
            "x",
            "drover/workload:latest",
            "drover-build/app-web:0123456789ab",
            "busybox:1.36",
        ] {
            r(ok);
        }
    }

    #[test]
    fn pull_policy_reads_as_written() {
        let p: ImagePull = serde_yaml::from_str("if-not-present").unwrap();
        assert_eq!(p, ImagePull::IfNotPresent);
        let p: ImagePull = serde_yaml::from_str("never").unwrap();
        assert_eq!(p.as_str(), "never");
        assert!(serde_yaml::from_str::<ImagePull>("sometimes").is_err());
    }
}
