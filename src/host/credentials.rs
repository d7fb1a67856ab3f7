//! Registry credentials for pulls: from `drover.yaml`'s `registries:`,
//! else the docker `config.json` of the user drover runs as (what
//! `docker login` wrote), else none.
//!
//! Passwords are read when a pull needs them (a rotated `password_file` or
//! a new `docker login` counts at the next pull, without a restart) and
//! live only in [`Secret`], whose `Debug` and `Display` say `<redacted>`:
//! they never reach the store, logs, activities, API answers or metrics.
//! `credsStore` / `credHelpers` (external helper programs) are not run;
//! an error names them when they were the only source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::blueprint::image::DOCKER_HUB;

/// `drover.yaml`: `registries: { HOST: { username, password_file } }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub username: String,
    /// A file holding the password (or token) alone; a trailing newline
    /// is ignored. Read at every pull, so rotating it needs no restart.
    pub password_file: PathBuf,
}

/// Why a `registries:` key is not a registry host, if it is not.
pub fn registry_key_problem(key: &str) -> Option<String> {
    let bad = key.is_empty()
        || key.contains("://")
        || key.contains('/')
        || key
            .chars()
            .any(|c| c.is_whitespace() || c.is_ascii_uppercase());
    bad.then(|| {
        format!(
            "`{key}` must be a registry host as image names write it, such as `registry.example.com`, `localhost:5000` or `docker.io` (no scheme, no path, lower case)"
        )
    })
}

/// A password or token: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the engine's `X-Registry-Auth` only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a pull's credentials came from: said in every pull error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CredentialSource {
    /// `drover.yaml`'s `registries.HOST` (with its user).
    DroverYaml { username: String },
    /// A docker `config.json` (`auths`), with its path and user.
    ConfigJson { path: String, username: String },
    /// None found; `note` says what was looked at.
    None { note: String },
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::DroverYaml { username } => {
                write!(f, "credentials from drover.yaml (user `{username}`)")
            }
            CredentialSource::ConfigJson { path, username } => {
                write!(f, "credentials from {path} (user `{username}`)")
            }
            CredentialSource::None { note } => write!(f, "no credentials ({note})"),
        }
    }
}

/// A user and password for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: Secret,
    /// The registry host, as the engine's `serveraddress`.
    pub server: String,
}

impl RegistryAuth {
    /// For the engine's `X-Registry-Auth` header; never logged.
    pub fn to_docker(&self) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.expose().to_string()),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: CredentialSource,
    pub auth: Option<RegistryAuth>,
}

/// Why credentials could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("drover.yaml: registries.{registry}.password_file: cannot read {path}: {message}; make the file readable by drover or fix the path")]
    PasswordFile {
        registry: String,
        path: String,
        message: String,
    },
    #[error(
        "{path}: auths.{key}.auth is not base64 of `user:password`; run `docker login {key}` again"
    )]
    BadAuth { path: String, key: String },
}

/// The registries of `drover.yaml`, installed by `drover serve`.
static CONFIGURED: RwLock<BTreeMap<String, RegistryConfig>> = RwLock::new(BTreeMap::new());

/// Installs `drover.yaml`'s registries, checking that every password file
/// can be read now (a wrong path is an error at start, not at a pull).
pub fn install(registries: &BTreeMap<String, RegistryConfig>) -> Result<(), CredentialError> {
    for (host, cfg) in registries {
        read_password(host, cfg)?;
    }
    *CONFIGURED.write().unwrap_or_else(|e| e.into_inner()) = registries.clone();
    Ok(())
}

fn read_password(registry: &str, cfg: &RegistryConfig) -> Result<Secret, CredentialError> {
    let text =
        std::fs::read_to_string(&cfg.password_file).map_err(|e| CredentialError::PasswordFile {
            registry: registry.to_string(),
            path: cfg.password_file.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(Secret(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// The docker `config.json` drover reads: `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credentials for `registry` (a host, `docker.io` for Docker Hub).
pub fn lookup(registry: &str) -> Result<Found, CredentialError> {
    let configured = CONFIGURED
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(registry)
        .cloned();
    if let Some(cfg) = configured {
        let password = read_password(registry, &cfg)?;
        return Ok(Found {
            source: CredentialSource::DroverYaml {
                username: cfg.username.clone(),
            },
            auth: Some(RegistryAuth {
                username: cfg.username,
                password,
                server: registry.to_string(),
            }),
        });
    }
    let Some(path) = docker_config_path() else {
        return Ok(none(
            "not in drover.yaml; no HOME or DOCKER_CONFIG for a config.json",
        ));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => from_config_json(&path, &text, registry),
        Err(_) => Ok(none(&format!(
            "not in drover.yaml; {} does not exist",
            path.display()
        ))),
    }
}

fn none(note: &str) -> Found {
    Found {
        source: CredentialSource::None {
            note: note.to_string(),
        },
        auth: None,
    }
}

#[derive(Deserialize, Default)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// The host a `config.json` key names: `docker login` writes
/// `https://index.docker.io/v1/` for Docker Hub and the bare host (or
/// `https://host`) for others.
pub fn config_key_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// Decodes `auths.KEY.auth`: base64 of `user:password`.
pub fn decode_auth(auth: &str) -> Option<(String, Secret)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some((user.to_string(), Secret(pass.to_string())))
}

/// The credentials of `registry` in a `config.json`'s text (pure).
pub fn from_config_json(path: &Path, text: &str, registry: &str) -> Result<Found, CredentialError> {
    let shown = path.display().to_string();
    let cfg: ConfigJson = serde_json::from_str(text).unwrap_or_default();
    for (key, entry) in &cfg.auths {
        if config_key_host(key) != registry {
            continue;
        }
        let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
            continue;
        };
        let (username, password) = decode_auth(auth).ok_or_else(|| CredentialError::BadAuth {
            path: shown.clone(),
            key: key.clone(),
        })?;
        return Ok(Found {
            source: CredentialSource::ConfigJson {
                path: shown,
                username: username.clone(),
            },
            auth: Some(RegistryAuth {
                username,
                password,
                server: registry.to_string(),
            }),
        });
    }
    let helper = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| config_key_host(k) == registry)
        .map(|(_, v)| v.clone())
        .or(cfg.creds_store);
    Ok(none(&match helper {
        Some(h) => format!(
            "not in drover.yaml; {shown} delegates to the credential helper `{h}`, which drover does not run: add the registry to drover.yaml's `registries:`"
        ),
        None => format!("not in drover.yaml nor in {shown}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn config_json_auth_decodes_user_and_password() {
        let (u, p) = decode_auth(&b64("alice:pa:ss")).unwrap();
        assert_eq!((u.as_str(), p.expose()), ("alice", "pa:ss"));
        assert_eq!(decode_auth("!!!"), None);
        assert_eq!(decode_auth(&b64("no-colon")), None);
        assert_eq!(decode_auth(&b64(":nouser")), None);
    }

    #[test]
    fn config_json_keys_name_hosts() {
        assert_eq!(config_key_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(config_key_host("localhost:5000"), "localhost:5000");
        assert_eq!(config_key_host("https://ghcr.io"), "ghcr.io");
        assert_eq!(
            config_key_host("http://127.0.0.1:5123/v2/"),
            "127.0.0.1:5123"
        );
    }

    #[test]
    fn credentials_come_from_the_matching_auths_entry() {
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}, "127.0.0.1:5123": {{"auth": "{}"}}}}}}"#,
            b64("hub:h"),
            b64("bob:secret-b")
        );
        let path = Path::new("/home/u/.docker/config.json");
        let f = from_config_json(path, &text, "127.0.0.1:5123").unwrap();
        let auth = f.auth.unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.expose()),
            ("bob", "secret-b")
        );
        assert_eq!(
            f.source.to_string(),
            "credentials from /home/u/.docker/config.json (user `bob`)"
        );
        let hub = from_config_json(path, &text, "docker.io").unwrap();
        assert_eq!(hub.auth.unwrap().username, "hub");
        let other = from_config_json(path, &text, "ghcr.io").unwrap();
        assert_eq!(other.auth, None);
        assert_eq!(
            other.source.to_string(),
            "no credentials (not in drover.yaml nor in /home/u/.docker/config.json)"
        );
        let helper = from_config_json(path, r#"{"credsStore": "desktop"}"#, "ghcr.io").unwrap();
        assert!(helper
            .source
            .to_string()
            .contains("credential helper `desktop`"));
        let bad = from_config_json(path, r#"{"auths": {"ghcr.io": {"auth": "%%"}}}"#, "ghcr.io");
        assert!(matches!(bad, Err(CredentialError::BadAuth { .. })));
    }

    #[test]
    fn registry_keys_are_hosts() {
        assert_eq!(registry_key_problem("localhost:5000"), None);
        assert_eq!(registry_key_problem("docker.io"), None);
        assert!(registry_key_problem("https://ghcr.io").is_some());
        assert!(registry_key_problem("ghcr.io/team").is_some());
    }

    #[test]
    fn passwords_never_print() {
        let auth = RegistryAuth {
            username: "alice".into(),
            password: Secret::new("hunter2"),
            server: "r".into(),
        };
        let shown = format!("{auth:?} {}", auth.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let found = Found {
            source: CredentialSource::DroverYaml {
                username: "alice".into(),
            },
            auth: Some(auth),
        };
        assert!(!format!("{found:?}").contains("hunter2"));
    }

    #[test]
    fn drover_yaml_wins_and_reads_the_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let host = "drover-yaml-test.example:5000";
        let cfg = RegistryConfig {
            username: "carol".into(),
            password_file: file.clone(),
        };
        install(&BTreeMap::from([(host.to_string(), cfg.clone())])).unwrap();
        let f = lookup(host).unwrap();
        assert_eq!(f.auth.unwrap().password.expose(), "from-file");
        assert_eq!(
            f.source.to_string(),
            "credentials from drover.yaml (user `carol`)"
        );
        let missing = RegistryConfig {
            username: "carol".into(),
            password_file: dir.path().join("nope"),
        };
        let e = install(&BTreeMap::from([(host.to_string(), missing)])).unwrap_err();
        assert!(e.to_string().starts_with(&format!(
            "drover.yaml: registries.{host}.password_file: cannot read"
        )));
    }
}
