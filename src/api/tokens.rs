//! API tokens: made, checked, listed and revoked.
//!
//! A token is 256 random bits (`drover_` and 43 base64url characters),
//! shown once when made. The store keeps only its SHA-256; the tokens in
//! force are held in memory as well, so a check costs one hash and no
//! store read, and a revocation is in force for the very next request.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreActor, StoreError, StoredToken, TokenWrite};
use crate::wire::{ErrorBody, Role, TokenCreated, TokenInfo, TokenRequest};

/// The name of the admin token `drover serve` makes at first start.
pub const BOOTSTRAP_NAME: &str = "admin";

/// The file of the first admin token: beside the store file.
pub fn admin_token_path(store: &Path) -> PathBuf {
    store.with_file_name("admin.token")
}

/// Last-use times reach the store at most this often per token: a commit
/// (an fsync) per request would cost more than the request.
const LAST_USED_EVERY_MS: u64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a token is named with 1 to 64 letters, digits, `.`, `_` or `-`; `{0}` is not such a name"
    )]
    BadName(String),
    #[error("a token named `{0}` exists; revoke it first (`drover token revoke {0}`) or choose another name")]
    Exists(String),
    #[error("no token named `{0}`; `drover token ls` lists them")]
    Unknown(String),
    #[error("cannot make a random token: {0}")]
    Random(std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the store is not answering: {0}")]
    Mailbox(#[from] actix::MailboxError),
    #[error("cannot write the admin token to {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the stored token `{name}` has an unknown role `{role}`")]
    StoredRole { name: String, role: String },
}

impl ResponseError for TokenError {
    fn status_code(&self) -> StatusCode {
        match self {
            TokenError::BadName(_) => StatusCode::BAD_REQUEST,
            TokenError::Exists(_) => StatusCode::CONFLICT,
            TokenError::Unknown(_) => StatusCode::NOT_FOUND,
            TokenError::Store(_) | TokenError::Mailbox(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody::message(self.to_string()))
    }
}

/// A token in force.
struct Entry {
    name: String,
    role: Role,
    hash: [u8; 32],
    created_ms: u64,
    /// 0: never used.
    last_used_ms: AtomicU64,
    /// The last use written to the store.
    saved_used_ms: AtomicU64,
}

/// The tokens in force, and the store they are kept in.
pub struct Tokens {
    entries: RwLock<Vec<Arc<Entry>>>,
    store: Option<Addr<StoreActor>>,
}

impl Tokens {
    /// The tokens loaded from the store; changes are written through
    /// `store` (none: in memory only, for tests and benches).
    pub fn new(
        stored: Vec<StoredToken>,
        store: Option<Addr<StoreActor>>,
    ) -> Result<Tokens, TokenError> {
        let mut entries = Vec::new();
        for t in stored {
            entries.push(Arc::new(entry_of(&t)?));
        }
        Ok(Tokens {
            entries: RwLock::new(entries),
            store,
        })
    }

    /// The tokens in force from now on: those stored now (a drover of a
    /// cluster on etcd follows the tokens other drovers made or revoked).
    pub fn replace(&self, stored: &[StoredToken]) -> Result<(), TokenError> {
        let mut entries = Vec::new();
        for t in stored {
            entries.push(Arc::new(entry_of(t)?));
        }
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        Ok(())
    }

    /// The name and role of a presented token, if it is in force. Every
    /// stored hash is compared, each in constant time, so the answer's
    /// timing tells nothing about how close a guess came.
    pub fn authenticate(&self, token: &str) -> Option<(String, Role)> {
        let hash = hash_of(token);
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Option<Arc<Entry>> = None;
        for e in entries.iter() {
            if constant_time_eq(&e.hash, &hash) {
                found = Some(e.clone());
            }
        }
        drop(entries);
        let e = found?;
        self.touch(&e);
        Some((e.name.clone(), e.role))
    }

    fn touch(&self, e: &Entry) {
        let now = crate::protocol::now_ms();
        e.last_used_ms.store(now, Ordering::Relaxed);
        let saved = e.saved_used_ms.load(Ordering::Relaxed);
        if now.saturating_sub(saved) < LAST_USED_EVERY_MS {
            return;
        }
        if e.saved_used_ms
            .compare_exchange(saved, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request writes it
        }
        if let Some(store) = &self.store {
            // Touch changes only a token still stored: a revocation racing
            // this request is never undone.
            store.do_send(TokenWrite::Touch {
                name: e.name.clone(),
                last_used_ms: now,
            });
        }
    }

    /// Makes a token; the answer holds the only copy of it.
    pub async fn create(&self, req: TokenRequest) -> Result<TokenCreated, TokenError> {
        check_name(&req.name)?;
        if self.find(&req.name).is_some() {
            return Err(TokenError::Exists(req.name));
        }
        let token = new_token()?;
        let stored = StoredToken {
            name: req.name.clone(),
            role: req.role.as_str().to_string(),
            hash: hex(&hash_of(&token)),
            created_ms: crate::protocol::now_ms(),
            last_used_ms: None,
        };
        if let Some(store) = &self.store {
            store.send(TokenWrite::Put(stored.clone())).await??;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.name != req.name);
        entries.push(Arc::new(entry_of(&stored)?));
        tracing::info!(token = %req.name, role = %req.role, "token created");
        Ok(TokenCreated {
            name: req.name,
            role: req.role,
            token,
        })
    }

    /// Revokes a token: the next request with it is refused.
    pub async fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let known = self.find(name).is_some();
        let stored = match &self.store {
            Some(store) => store.send(TokenWrite::Delete(name.to_string())).await??,
            None => false,
        };
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| e.name != name);
        if !known && !stored {
            return Err(TokenError::Unknown(name.to_string()));
        }
        tracing::info!(token = %name, "token revoked");
        Ok(())
    }

    /// The tokens in force, by name.
    pub fn list(&self) -> Vec<TokenInfo> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<TokenInfo> = entries
            .iter()
            .map(|e| TokenInfo {
                name: e.name.clone(),
                role: e.role,
                created_ms: e.created_ms,
                last_used_ms: Some(e.last_used_ms.load(Ordering::Relaxed)).filter(|t| *t > 0),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn find(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|e| e.name == name)
            .cloned()
    }
}

fn entry_of(t: &StoredToken) -> Result<Entry, TokenError> {
    let role = t.role.parse::<Role>().map_err(|_| TokenError::StoredRole {
        name: t.name.clone(),
        role: t.role.clone(),
    })?;
    let hash = unhex(&t.hash).ok_or_else(|| {
        TokenError::Store(StoreError::Decode {
            key: format!("token {}", t.name),
            message: "the hash is not 64 hex digits".into(),
        })
    })?;
    let used = t.last_used_ms.unwrap_or(0);
    Ok(Entry {
        name: t.name.clone(),
        role,
        hash,
        created_ms: t.created_ms,
        last_used_ms: AtomicU64::new(used),
        saved_used_ms: AtomicU64::new(used),
    })
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadName(name.to_string()))
    }
}

/// 256 bits from the kernel's generator.
fn new_token() -> Result<String, TokenError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(TokenError::Random)?;
    Ok(format!(
        "drover_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn hash_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What the first start did about the admin token.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// No token file: a new admin token was written there.
    Created(PathBuf),
    /// The file holds a token in force.
    Kept(PathBuf),
    /// The file holds a token that is not in force (revoked): left alone.
    Stale(PathBuf),
    /// No file here, and another drover of the cluster (etcd) made the
    /// admin token: none is made; copy its file here.
    Elsewhere(PathBuf),
}

/// At start: when no `admin.token` is beside the store, makes an admin
/// token (named `admin`, replacing a stored one of that name) and writes
/// it there, readable by its owner only. Returns the tokens then stored.
pub fn bootstrap(
    store: &Store,
    store_path: &Path,
) -> Result<(Vec<StoredToken>, Bootstrap), TokenError> {
    let path = admin_token_path(store_path);
    let stored = store.tokens()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let hash = hex(&hash_of(text.trim()));
            let state = if stored.iter().any(|t| t.hash == hash) {
                Bootstrap::Kept(path)
            } else {
                Bootstrap::Stale(path)
            };
            return Ok((stored, state));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(TokenError::File {
                path: path.display().to_string(),
                source,
            })
        }
    }
    let token = new_token()?;
    let record = StoredToken {
        name: BOOTSTRAP_NAME.into(),
        role: Role::Admin.as_str().into(),
        hash: hex(&hash_of(&token)),
        created_ms: crate::protocol::now_ms(),
        last_used_ms: None,
    };
    let file_err = |source| TokenError::File {
        path: path.display().to_string(),
        source,
    };
    // The file first (created 0600, never over another): a token stored
    // but never written would be an admin nobody holds.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(file_err)?;
    f.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(file_err)?;
    // On etcd the first drover of the cluster makes the admin token; the
    // others are handed its file (never a second admin that replaces it).
    let stored_now = if store.backend() == "etcd" {
        store.put_first_token(&record)
    } else {
        store.put_token(&record).map(|()| true)
    };
    match stored_now {
        Ok(true) => Ok((store.tokens()?, Bootstrap::Created(path))),
        Ok(false) => {
            let _ = std::fs::remove_file(&path);
            Ok((store.tokens()?, Bootstrap::Elsewhere(path)))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e.into())
        }
    }
}

type TokensData = web::Data<Tokens>;

/// `POST /v1/tokens` `{name, role}`: 201 with the token, once.
pub async fn create(
    tokens: TokensData,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, TokenError> {
    let created = tokens.create(body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

/// `GET /v1/tokens`: names, roles, creation and last use.
pub async fn list(tokens: TokensData) -> HttpResponse {
    HttpResponse::Ok().json(tokens.list())
}

/// `DELETE /v1/tokens/{name}`: 204.
pub async fn revoke(
    tokens: TokensData,
    name: web::Path<String>,
) -> Result<HttpResponse, TokenError> {
    tokens.revoke(&name.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_etcd_the_first_drover_makes_the_admin_token_and_no_other_replaces_it() {
        let etcd = crate::store::test_etcd::TestEtcd::start();
        let target = crate::store::StoreTarget::parse(&etcd.url(), "tok").unwrap();
        let open = || Store::open_target(&target, crate::store::Fence::default()).unwrap();
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (tokens, b) = bootstrap(&open(), &one.path().join("drover.redb")).unwrap();
        assert!(matches!(b, Bootstrap::Created(_)), "{b:?}");
        assert_eq!(tokens.len(), 1);
        // A second drover of the cluster, on another machine (state dir).
        let (tokens2, b) = bootstrap(&open(), &two.path().join("drover.redb")).unwrap();
        assert!(matches!(b, Bootstrap::Elsewhere(_)), "{b:?}");
        assert_eq!(
            tokens2, tokens,
            "the first admin token stays the one in force"
        );
        assert!(
            !two.path().join("admin.token").exists(),
            "no file of a token nobody stored"
        );
        // Handed the first one's file, it keeps it.
        std::fs::copy(
            one.path().join("admin.token"),
            two.path().join("admin.token"),
        )
        .unwrap();
        let (_, b) = bootstrap(&open(), &two.path().join("drover.redb")).unwrap();
        assert!(matches!(b, Bootstrap::Kept(_)), "{b:?}");
    }

    #[test]
    fn drovers_starting_at_once_on_an_empty_cluster_make_exactly_one_admin_token() {
        let etcd = crate::store::test_etcd::TestEtcd::start();
        let target = crate::store::StoreTarget::parse(&etcd.url(), "race").unwrap();
        const N: usize = 6;
        // Opened first, so that only the bootstraps race.
        let stores: Vec<Store> = (0..N)
            .map(|_| Store::open_target(&target, crate::store::Fence::default()).unwrap())
            .collect();
        let dirs: Vec<tempfile::TempDir> = (0..N).map(|_| tempfile::tempdir().unwrap()).collect();
        let start = std::sync::Barrier::new(N);
        let outcomes: Vec<Bootstrap> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .zip(&dirs)
                .map(|(store, dir)| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        bootstrap(store, &dir.path().join("drover.redb")).unwrap().1
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created: Vec<usize> = (0..N)
            .filter(|&i| matches!(outcomes[i], Bootstrap::Created(_)))
            .collect();
        assert_eq!(created.len(), 1, "exactly one made it: {outcomes:?}");
        let files: Vec<usize> = (0..N)
            .filter(|&i| dirs[i].path().join("admin.token").exists())
            .collect();
        assert_eq!(files, created, "only the maker keeps a token file");
        let stored = stores[0].tokens().unwrap();
        assert_eq!(stored.len(), 1, "{stored:?}");
        let token = std::fs::read_to_string(dirs[created[0]].path().join("admin.token")).unwrap();
        assert_eq!(
            stored[0].hash,
            hex(&hash_of(token.trim())),
            "the stored token is the one in the file"
        );
    }

    #[test]
    fn tokens_are_random_and_checked_by_hash() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), "drover_".len() + 43);
        let h = hash_of(&a);
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert!(constant_time_eq(&h, &hash_of(&a)));
        assert!(!constant_time_eq(&h, &hash_of(&b)));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("ci-deploy_1.x").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[actix_rt::test]
    async fn made_tokens_authenticate_until_revoked() {
        let t = Tokens::new(vec![], None).unwrap();
        let c = t
            .create(TokenRequest {
                name: "ci".into(),
                role: Role::Operator,
            })
            .await
            .unwrap();
        assert_eq!(
            t.authenticate(&c.token),
            Some(("ci".into(), Role::Operator))
        );
        assert_eq!(t.authenticate("drover_guess"), None);
        assert!(t.list()[0].last_used_ms.is_some());
        assert!(matches!(
            t.create(TokenRequest {
                name: "ci".into(),
                role: Role::Admin
            })
            .await,
            Err(TokenError::Exists(_))
        ));
        t.revoke("ci").await.unwrap();
        assert_eq!(t.authenticate(&c.token), None);
        assert!(matches!(t.revoke("ci").await, Err(TokenError::Unknown(_))));
    }

    #[test]
    fn the_first_start_writes_an_admin_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.redb");
        let store = Store::open(&path).unwrap();
        let (stored, b) = bootstrap(&store, &path).unwrap();
        assert_eq!(b, Bootstrap::Created(dir.path().join("admin.token")));
        assert_eq!(stored.len(), 1);
        let file = dir.path().join("admin.token");
        let mode = std::fs::metadata(&file).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        let token = std::fs::read_to_string(&file).unwrap();
        let t = Tokens::new(stored, None).unwrap();
        assert_eq!(
            t.authenticate(token.trim()),
            Some(("admin".into(), Role::Admin))
        );
        let (again, b) = bootstrap(&store, &path).unwrap();
        assert_eq!(b, Bootstrap::Kept(file.clone()));
        assert_eq!(again.len(), 1);
        store.delete_token("admin").unwrap();
        assert_eq!(bootstrap(&store, &path).unwrap().1, Bootstrap::Stale(file));
    }
}
