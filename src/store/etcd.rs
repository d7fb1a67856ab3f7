//! The distributed backend: etcd's v3 API (`--store etcd://HOST:2379,...`).
//!
//! Every key lives under `/drover/<cluster>/`: `meta/schema`,
//! `meta/instance`, then one folder per [`Table`] (`apps/shop`,
//! `clusters/shop\0web`, ...), and `leader` (see [`super::election`]).
//! A write's operations go in one etcd transaction, and every write a
//! manager makes carries the compare `create_revision(leader) == ours`: a
//! drover that lost its leadership cannot write, even one whose lease
//! expired a moment ago and which does not know it yet (fencing).
//!
//! The store's interface is synchronous (it runs on the store's own
//! thread, as redb does): a small tokio runtime of its own carries the
//! gRPC calls.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};

use super::{Op, StoreError, Table, SCHEMA_VERSION};

/// How long one etcd request may take. A store write that cannot reach etcd
/// fails after this (an error the caller records); longer than a
/// leader election, so a healthy cluster's hiccup is ridden out.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the etcd cluster is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// The cluster name: every key lives under `/drover/<cluster>/`, so
    /// one etcd holds several drover clusters.
    pub cluster: String,
    /// `--etcd-ca`: the CA that signed the members' certificates (TLS).
    pub ca: Option<PathBuf>,
    /// `--etcd-cert`/`--etcd-key`: the client certificate (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `--etcd-user`/`--etcd-password`: etcd's own authentication.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl EtcdOptions {
    /// `etcd://host:2379[,host:2379...]` as options, or `None` when the
    /// text is not an etcd URL.
    pub fn parse(text: &str, cluster: &str) -> Option<Result<EtcdOptions, StoreError>> {
        let rest = text.strip_prefix("etcd://")?;
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let bad = endpoints.iter().find(|e| {
            e.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        });
        if endpoints.is_empty() || bad.is_some() {
            return Some(Err(StoreError::EtcdOpen {
                store: text.to_string(),
                message: format!(
                    "`{}` is not host:port; write --store etcd://HOST:2379[,HOST:2379...]",
                    bad.map(String::as_str).unwrap_or("")
                ),
            }));
        }
        if cluster.is_empty() || cluster.contains('/') {
            return Some(Err(StoreError::EtcdOpen {
                store: text.to_string(),
                message: format!("--cluster-name `{cluster}` must be a non-empty name without `/`"),
            }));
        }
        Some(Ok(EtcdOptions {
            endpoints,
            cluster: cluster.to_string(),
            ca: None,
            cert: None,
            key: None,
            user: None,
            password: None,
        }))
    }

    /// How the store is named in messages: `etcd://a:2379,b:2379 (cluster c)`.
    pub fn shown(&self) -> String {
        format!(
            "etcd://{} (cluster {})",
            self.endpoints.join(","),
            self.cluster
        )
    }

    /// The key prefix of this drover cluster.
    pub fn prefix(&self) -> String {
        format!("/drover/{}/", self.cluster)
    }

    /// The leader's key.
    pub fn leader_key(&self) -> String {
        format!("{}leader", self.prefix())
    }

    fn urls(&self) -> Vec<String> {
        let scheme = if self.ca.is_some() || self.cert.is_some() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect()
    }

    /// Connects (on the current tokio runtime).
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let open = |message: String| StoreError::EtcdOpen {
            store: self.shown(),
            message,
        };
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(REQUEST_TIMEOUT)
            // Notices a dead member's connection within a lease's time.
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            opts = opts.with_user(u.clone(), p.clone());
        }
        if self.ca.is_some() || self.cert.is_some() {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| open(format!("cannot read {}: {e}", p.display())))
            };
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&self.cert, &self.key) {
                (Some(c), Some(k)) => tls = tls.identity(Identity::from_pem(read(c)?, read(k)?)),
                (None, None) => {}
                _ => return Err(open("--etcd-cert and --etcd-key go together".into())),
            }
            opts = opts.with_tls(tls);
        }
        Client::connect(self.urls(), Some(opts))
            .await
            .map_err(|e| open(explain(&e)))
    }
}

/// An etcd error with its causes (a TLS failure is only in a source) and
/// what to check, naming the flag (see [`hint`]).
pub fn explain(e: &etcd_client::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    format!("{text}; {}", hint(&text))
}

/// What to check for an etcd error's text (pure).
pub fn hint(text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if t.contains("authentication failed") || t.contains("invalid user id or password") {
        "etcd refused the user or password: check --etcd-user and --etcd-password"
    } else if t.contains("user name is empty")
        || t.contains("invalid auth token")
        || t.contains("permission denied")
        || t.contains("user name not found")
    {
        "etcd requires authentication (or denies this user the /drover/ keys): give --etcd-user and --etcd-password"
    } else if t.contains("certificate")
        || t.contains("unknownissuer")
        || t.contains("tls")
        || t.contains("handshake")
    {
        "the TLS handshake with etcd failed: check --etcd-ca (the CA that signed etcd's certificate) and --etcd-cert/--etcd-key (a client certificate etcd's --trusted-ca-file signed)"
    } else {
        "is etcd running and reachable there? (if it speaks TLS, give --etcd-ca)"
    }
}

/// The leadership a manager's writes are conditional on: the leader key's
/// create revision while this drover holds it. Shared by the election
/// (which sets and clears it) and the store (which checks it).
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Mutex<Option<i64>>>);

impl Fence {
    pub fn hold(&self, revision: i64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(revision);
    }
    pub fn release(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub fn revision(&self) -> Option<i64> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct EtcdStore {
    rt: Option<tokio::runtime::Runtime>,
    client: Client,
    opts: EtcdOptions,
    pub(super) fence: Fence,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside another one (the store
        // can be dropped from a task); nothing of ours is left to finish.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn etcd_err(operation: &str, e: etcd_client::Error) -> StoreError {
    StoreError::Io {
        operation: format!("{operation} (etcd)"),
        message: explain(&e),
    }
}

impl EtcdStore {
    /// Connects, checks the schema (and writes it into an empty cluster).
    pub fn open(opts: &EtcdOptions, fence: Fence) -> Result<EtcdStore, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("drover-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::EtcdOpen {
                store: opts.shown(),
                message: e.to_string(),
            })?;
        let client = rt.block_on(opts.connect())?;
        let store = EtcdStore {
            rt: Some(rt),
            client,
            opts: opts.clone(),
            fence,
        };
        let schema_key = store.meta_key("schema");
        // The first request: an etcd that is not there fails here.
        let found = store
            .get_raw(&schema_key)
            .map_err(|e| StoreError::EtcdOpen {
                store: opts.shown(),
                message: e.to_string(),
            })?;
        match found {
            Some(v) => {
                let found: u64 = v.trim().parse().map_err(|_| StoreError::Decode {
                    key: schema_key.clone(),
                    message: format!("`{v}` is not a schema number"),
                })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Newer {
                        path: opts.shown(),
                        found,
                    });
                }
            }
            None => {
                // Create-only: two drovers starting on an empty cluster
                // write it once.
                store.create_if_absent(&schema_key, &SCHEMA_VERSION.to_string())?;
            }
        }
        Ok(store)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt
            .as_ref()
            .expect("runtime kept until drop")
            .block_on(f)
    }

    fn meta_key(&self, name: &str) -> String {
        format!("{}meta/{name}", self.opts.prefix())
    }

    fn key(&self, t: Table, key: &str) -> String {
        format!("{}{}/{key}", self.opts.prefix(), t.name())
    }

    fn get_raw(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.client.clone();
        let r = self
            .block_on(c.get(key, None))
            .map_err(|e| etcd_err("read", e))?;
        Ok(r.kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    fn create_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let mut c = self.client.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let r = self
            .block_on(c.txn(txn))
            .map_err(|e| etcd_err("write", e))?;
        Ok(r.succeeded())
    }

    /// The cluster's identity, shared by every drover of the cluster: the
    /// containers one leader made are another's to adopt.
    pub fn instance_id(&self, fresh: u64) -> Result<String, StoreError> {
        let key = self.meta_key("instance");
        self.create_if_absent(&key, &format!("{fresh:016x}"))?;
        self.get_raw(&key)?.ok_or_else(|| StoreError::Io {
            operation: "read meta (etcd)".into(),
            message: format!("{key} vanished right after it was written"),
        })
    }

    pub fn rows(&self, t: Table) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = self.key(t, "");
        let mut c = self.client.clone();
        let r = self
            .block_on(c.get(prefix.as_str(), Some(GetOptions::new().with_prefix())))
            .map_err(|e| etcd_err(&format!("read {}", t.name()), e))?;
        Ok(r.kvs()
            .iter()
            .map(|kv| {
                let k = String::from_utf8_lossy(kv.key());
                (
                    k.strip_prefix(prefix.as_str()).unwrap_or(&k).to_string(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                )
            })
            .collect())
    }

    /// The keys of a table, without their values (a table of large ones).
    pub fn keys(&self, t: Table) -> Result<Vec<String>, StoreError> {
        let prefix = self.key(t, "");
        let mut c = self.client.clone();
        let r = self
            .block_on(c.get(
                prefix.as_str(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ))
            .map_err(|e| etcd_err(&format!("read {}", t.name()), e))?;
        Ok(r.kvs()
            .iter()
            .map(|kv| {
                let k = String::from_utf8_lossy(kv.key());
                k.strip_prefix(prefix.as_str()).unwrap_or(&k).to_string()
            })
            .collect())
    }

    pub fn get(&self, t: Table, key: &str) -> Result<Option<String>, StoreError> {
        self.get_raw(&self.key(t, key))
    }

    /// Every operation in one transaction. With `fenced`, only while this
    /// drover leads (else [`StoreError::NotLeader`], and the fence is
    /// dropped when etcd says another leads). `Ok(false)`, nothing
    /// written, when an operation's own condition does not hold.
    pub fn commit(&self, ops: &[Op], fenced: bool) -> Result<bool, StoreError> {
        let leader_key = self.opts.leader_key();
        let mut when = Vec::new();
        if fenced {
            let rev = self.fence.revision().ok_or(StoreError::NotLeader)?;
            when.push(Compare::create_revision(
                leader_key.as_str(),
                CompareOp::Equal,
                rev,
            ));
        }
        let mut then = Vec::new();
        for op in ops {
            let key = self.key(op.table(), op.key());
            match op {
                Op::Put { value, .. } => then.push(TxnOp::put(key, value.as_str(), None)),
                Op::PutIfPresent { value, .. } => {
                    when.push(Compare::version(key.as_str(), CompareOp::Greater, 0));
                    then.push(TxnOp::put(key, value.as_str(), None));
                }
                Op::PutIfAbsent { value, .. } => {
                    when.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
                    then.push(TxnOp::put(key, value.as_str(), None));
                }
                Op::Delete { .. } => then.push(TxnOp::delete(key, None)),
                Op::DeletePrefix { .. } => {
                    then.push(TxnOp::delete(key, Some(DeleteOptions::new().with_prefix())))
                }
            }
        }
        let txn = Txn::new()
            .when(when)
            .and_then(then)
            .or_else([TxnOp::get(leader_key.as_str(), None)]);
        let mut c = self.client.clone();
        let r = self
            .block_on(c.txn(txn))
            .map_err(|e| etcd_err("write", e))?;
        if r.succeeded() {
            return Ok(true);
        }
        if let Some(ours) = self.fence.revision().filter(|_| fenced) {
            let theirs = r.op_responses().into_iter().find_map(|o| match o {
                TxnOpResponse::Get(g) => Some(g.kvs().first().map(|kv| kv.create_revision())),
                _ => None,
            });
            if theirs != Some(Some(ours)) {
                // Another drover leads (or nobody): this one must not act.
                self.fence.release();
                return Err(StoreError::NotLeader);
            }
        }
        Ok(false)
    }
}
