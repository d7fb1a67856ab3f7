//! Durable state: an embedded redb database, or etcd for a cluster of
//! drovers (one leads, the others stand by).
//!
//! What drover needs to come back after a crash without losing or
//! duplicating anything: every application (its blueprint text), every
//! cluster's membership (desired size, member numbers, replacements under
//! way), and every policy's memory (the autoscaler's recommendations, the
//! restarter's failures and backoff, the replacer's failures), and every
//! host pool's provisioned hosts (to adopt them again) with its placement
//! policy's memory.
//!
//! Writes are *intents*: a cluster records a new member before creating its
//! container and forgets a member before removing it, so a crash between the
//! store write and the engine call is finished on restart, never doubled
//! (container names are deterministic, so a retried create adopts the first).
//!
//! Only this module touches the database. [`StoreActor`] runs it on a
//! dedicated thread (actix `SyncArbiter`), so a commit (an fsync, or an
//! etcd round trip) never blocks an actor's thread.
//!
//! | file | concern |
//! | --- | --- |
//! | `mod.rs` | the records, the writes as operations ([`ops_of`], pure), the backend switch, the actor |
//! | `redb.rs` | the embedded backend (the default) |
//! | [`etcd`] | the etcd backend: keys under `/drover/<cluster>/`, transactions fenced by the leader key |
//! | [`election`] | leadership on etcd: lease, campaign, keep-alive, the leader's address |
//! | `tokens.rs` | API tokens as stored |
//! | `uploads.rs` | uploaded build contexts in etcd, so that any drover of the cluster can build from them |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

pub mod election;
pub mod etcd;
mod redb;
#[cfg(test)]
pub(crate) mod test_etcd;
mod tokens;
mod uploads;
pub use etcd::{EtcdOptions, Fence};
pub use tokens::{StoredToken, TokenWrite};
pub use uploads::{UploadOp, ETCD_UPLOAD_MAX};

/// The schema this drover writes. A store with a higher one was written by
/// a newer drover: it is refused, never downgraded.
pub const SCHEMA_VERSION: u64 = 1;

/// The kinds of record, each a table (redb) or a key folder (etcd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Apps,
    Clusters,
    Policies,
    Locations,
    Tokens,
    /// Uploaded build contexts, in chunks (etcd only: see `uploads.rs`).
    Uploads,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Apps => "apps",
            Table::Clusters => "clusters",
            Table::Policies => "policies",
            Table::Locations => "locations",
            Table::Tokens => "tokens",
            Table::Uploads => "uploads",
        }
    }
}

/// One step of a write; a write's steps commit together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put {
        table: Table,
        key: String,
        value: String,
    },
    /// A put only if the key exists (else the whole write is skipped).
    PutIfPresent {
        table: Table,
        key: String,
        value: String,
    },
    /// A put only if the key is absent (else the whole write is skipped):
    /// of two writers racing, exactly one creates it.
    PutIfAbsent {
        table: Table,
        key: String,
        value: String,
    },
    Delete {
        table: Table,
        key: String,
    },
    DeletePrefix {
        table: Table,
        prefix: String,
    },
}

impl Op {
    pub fn table(&self) -> Table {
        match self {
            Op::Put { table, .. }
            | Op::PutIfPresent { table, .. }
            | Op::PutIfAbsent { table, .. }
            | Op::Delete { table, .. }
            | Op::DeletePrefix { table, .. } => *table,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. }
            | Op::PutIfPresent { key, .. }
            | Op::PutIfAbsent { key, .. }
            | Op::Delete { key, .. } => key,
            Op::DeletePrefix { prefix, .. } => prefix,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {message}. The file is left as it is; move it aside to start with an empty store, or point --store elsewhere")]
    Open { path: String, message: String },
    #[error("the store {path} was written by a newer drover (schema {found}, this drover reads {SCHEMA_VERSION}); upgrade drover. The file is left as it is")]
    Newer { path: String, found: u64 },
    #[error("store {operation} failed: {message}")]
    Io { operation: String, message: String },
    #[error("the store holds a record drover cannot read ({key}): {message}")]
    Decode { key: String, message: String },
    #[error("cannot use the etcd store {store}: {message}")]
    EtcdOpen { store: String, message: String },
    /// A write of a drover that does not lead (any more): refused, by
    /// etcd itself when the leader key changed under it.
    #[error("this drover does not lead the cluster (any more): the write is refused; the leader makes it (`drover status` names it)")]
    NotLeader,
}

fn io(operation: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        operation: operation.to_string(),
        message: e.to_string(),
    }
}

/// An application as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredApp {
    pub id: String,
    /// Where the blueprint came from (a path or `<request>`), for messages.
    pub file: String,
    /// The blueprint text as deployed: parsed again on rebind.
    pub text: String,
    pub created_ms: u64,
    /// A destroy began: a rebind finishes it.
    #[serde(default)]
    pub destroying: bool,
}

/// A cluster's membership as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub desired: u32,
    pub next_index: u32,
    /// Member numbers (`web-3` is 3) that should exist.
    pub members: Vec<u32>,
    /// Replacements under way: (old, new). On rebind the new one is started
    /// and then the old one removed.
    #[serde(default)]
    pub replacing: Vec<(u32, u32)>,
    /// Rollouts: each member's revision (absent: `revision`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub member_revisions: BTreeMap<u32, u64>,
    /// The revision the cluster settled on (0: never rolled, the blueprint's spec).
    #[serde(default)]
    pub revision: u64,
    /// The member spec of each kept revision (the last 10 and those in use).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub specs: Vec<(u64, crate::blueprint::ContainerSpec)>,
    /// The rollout under way or the last one (the cluster's own JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<serde_json::Value>,
}

/// A host pool's own state: the hosts its provisioner made (to adopt them
/// again after a restart) and its policies' memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocationState {
    /// The next provisioned host's number (`<location>-<n>`).
    pub next_index: u32,
    pub hosts: Vec<SavedHost>,
    /// The CPU placement policy's memory (busy hosts, last moves).
    #[serde(default)]
    pub placement: serde_json::Value,
    /// Hosts an operator drained.
    #[serde(default)]
    pub cordoned: Vec<String>,
}

/// A provisioned host as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedHost {
    pub name: String,
    pub index: u32,
    pub endpoint: String,
    pub address: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// TLS client files (ca, cert, key), if the engine uses TLS.
    #[serde(default)]
    pub tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// Everything a rebind needs.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub apps: BTreeMap<String, StoredApp>,
    /// (app, cluster entity) → state.
    pub clusters: BTreeMap<(String, String), ClusterState>,
    /// (app, entity, policy) → the policy's own state (JSON).
    pub policies: BTreeMap<(String, String, String), serde_json::Value>,
    /// Location name → its pool's state.
    pub locations: BTreeMap<String, LocationState>,
    /// The API tokens (a standby, and a new leader, take them from here:
    /// another drover of the cluster may have made or revoked some).
    pub tokens: Vec<StoredToken>,
}

/// The default store path: `$XDG_DATA_HOME/drover/drover.redb`, else
/// `~/.local/share/drover/drover.redb`.
pub fn default_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("drover").join("drover.redb")
}

/// Where the state is: `--store PATH` or `--store etcd://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget {
    Redb(PathBuf),
    Etcd(EtcdOptions),
}

impl StoreTarget {
    /// `--store`'s text: an `etcd://` URL, else a file path.
    pub fn parse(text: &str, cluster: &str) -> Result<StoreTarget, StoreError> {
        match EtcdOptions::parse(text, cluster) {
            Some(r) => r.map(StoreTarget::Etcd),
            None => Ok(StoreTarget::Redb(PathBuf::from(text))),
        }
    }

    /// `redb` or `etcd`: the `backend` label of the store's metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreTarget::Redb(_) => "redb",
            StoreTarget::Etcd(_) => "etcd",
        }
    }

    pub fn shown(&self) -> String {
        match self {
            StoreTarget::Redb(p) => p.display().to_string(),
            StoreTarget::Etcd(o) => o.shown(),
        }
    }
}

enum Backend {
    Redb(redb::RedbStore),
    // Boxed: its client is large, and one store exists per process.
    Etcd(Box<etcd::EtcdStore>),
}

pub struct Store {
    backend: Backend,
}

fn key2(a: &str, b: &str) -> String {
    format!("{a}\u{0}{b}")
}

fn key3(a: &str, b: &str, c: &str) -> String {
    format!("{a}\u{0}{b}\u{0}{c}")
}

fn encode(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| io("encode", e))
}

/// A write as the operations of one transaction (pure).
pub fn ops_of(w: &StoreWrite) -> Result<Vec<Op>, StoreError> {
    // An application's membership and policy memory: `app\0...`.
    let forget = |app: &str| {
        [Table::Clusters, Table::Policies].map(|table| Op::DeletePrefix {
            table,
            prefix: format!("{app}\u{0}"),
        })
    };
    Ok(match w {
        StoreWrite::PutApp(app) => vec![Op::Put {
            table: Table::Apps,
            key: app.id.clone(),
            value: encode(app)?,
        }],
        StoreWrite::CreateApp(app) => {
            let mut ops = forget(&app.id).to_vec();
            ops.push(Op::Put {
                table: Table::Apps,
                key: app.id.clone(),
                value: encode(app)?,
            });
            ops
        }
        StoreWrite::DeleteApp(id) => {
            let mut ops = vec![Op::Delete {
                table: Table::Apps,
                key: id.clone(),
            }];
            ops.extend(forget(id));
            ops
        }
        StoreWrite::PutCluster { app, entity, state } => vec![Op::Put {
            table: Table::Clusters,
            key: key2(app, entity),
            value: encode(state)?,
        }],
        StoreWrite::PutLocation { name, state } => vec![Op::Put {
            table: Table::Locations,
            key: name.clone(),
            value: encode(state)?,
        }],
        StoreWrite::PutPolicy {
            app,
            entity,
            policy,
            state,
        } => vec![Op::Put {
            table: Table::Policies,
            key: key3(app, entity, policy),
            value: state.to_string(),
        }],
    })
}

fn decode<T: serde::de::DeserializeOwned>(table: Table, k: &str, v: &str) -> Result<T, StoreError> {
    serde_json::from_str(v).map_err(|e| StoreError::Decode {
        key: format!("{}/{}", table.name(), k.replace('\u{0}', "/")),
        message: e.to_string(),
    })
}

impl Store {
    /// Opens (or creates) the store. A damaged file, or one written by a
    /// newer drover, is an error and is left untouched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Redb(redb::RedbStore::open(path)?),
        })
    }

    /// Opens either backend. `fence` is the leadership etcd writes are
    /// conditional on (the election holds it); redb has no use for it.
    pub fn open_target(target: &StoreTarget, fence: Fence) -> Result<Store, StoreError> {
        match target {
            StoreTarget::Redb(p) => Store::open(p),
            StoreTarget::Etcd(o) => Ok(Store {
                backend: Backend::Etcd(Box::new(etcd::EtcdStore::open(o, fence)?)),
            }),
        }
    }

    /// `redb` or `etcd`.
    pub fn backend(&self) -> &'static str {
        match &self.backend {
            Backend::Redb(_) => "redb",
            Backend::Etcd(_) => "etcd",
        }
    }

    /// This drover's identity, made once and kept: the containers it
    /// creates carry it (`io.drover.owner`), so a rebind never touches the
    /// containers of another drover sharing the engine. On etcd it is the
    /// cluster's: every drover of the cluster adopts the same containers.
    pub fn instance_id(&self) -> Result<String, StoreError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let fresh = nanos ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        match &self.backend {
            Backend::Redb(s) => s.instance_id(fresh),
            Backend::Etcd(s) => s.instance_id(fresh),
        }
    }

    fn rows(&self, t: Table) -> Result<Vec<(String, String)>, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.rows(t),
            Backend::Etcd(s) => s.rows(t),
        }
    }

    fn get(&self, t: Table, key: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.get(t, key),
            Backend::Etcd(s) => s.get(t, key),
        }
    }

    /// Commits operations together; `fenced` writes are a leader's (see
    /// [`etcd`]). `Ok(false)` when an operation's condition did not hold.
    fn commit(&self, ops: &[Op], fenced: bool) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Redb(s) => s.commit(ops),
            Backend::Etcd(s) => s.commit(ops, fenced),
        }
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::default();
        for (k, v) in self.rows(Table::Apps)? {
            let app: StoredApp = decode(Table::Apps, &k, &v)?;
            snap.apps.insert(k, app);
        }
        for (k, v) in self.rows(Table::Clusters)? {
            let mut parts = k.split('\u{0}');
            let (Some(a), Some(e)) = (parts.next(), parts.next()) else {
                continue;
            };
            let st: ClusterState = decode(Table::Clusters, &k, &v)?;
            snap.clusters.insert((a.to_string(), e.to_string()), st);
        }
        for (k, v) in self.rows(Table::Policies)? {
            let mut parts = k.split('\u{0}');
            let (Some(a), Some(e), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            snap.policies.insert(
                (a.to_string(), e.to_string(), p.to_string()),
                decode(Table::Policies, &k, &v)?,
            );
        }
        for (k, v) in self.rows(Table::Locations)? {
            let st: LocationState = decode(Table::Locations, &k, &v)?;
            snap.locations.insert(k, st);
        }
        snap.tokens = self.tokens()?;
        Ok(snap)
    }

    pub fn apply(&self, w: &StoreWrite) -> Result<(), StoreError> {
        self.commit(&ops_of(w)?, true).map(|_| ())
    }
}

/// A change to the store.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StoreError>")]
pub enum StoreWrite {
    PutApp(StoredApp),
    /// A new application: stored, and whatever cluster membership or policy
    /// memory an earlier application of that name left is dropped (in the
    /// same transaction), so none of it seeds the new one.
    CreateApp(StoredApp),
    DeleteApp(String),
    PutCluster {
        app: String,
        entity: String,
        state: ClusterState,
    },
    PutPolicy {
        app: String,
        entity: String,
        policy: String,
        state: serde_json::Value,
    },
    PutLocation {
        name: String,
        state: LocationState,
    },
}

/// The store on its own thread.
pub struct StoreActor {
    store: std::sync::Arc<Store>,
}

impl StoreActor {
    /// Starts the store's thread.
    pub fn start(store: Store) -> Addr<StoreActor> {
        let store = std::sync::Arc::new(store);
        SyncArbiter::start(1, move || StoreActor {
            store: store.clone(),
        })
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

impl Handler<StoreWrite> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, w: StoreWrite, _: &mut SyncContext<Self>) -> Self::Result {
        let t0 = std::time::Instant::now();
        let r = self.store.apply(&w);
        crate::metrics::STORE_WRITE_SECONDS
            .with_label_values(&[self.store.backend()])
            .observe(t0.elapsed().as_secs_f64());
        if let Err(e) = &r {
            tracing::error!(error = %e, "store write failed");
        }
        r
    }
}

/// Everything stored, read on the store's thread (a rebind; a standby
/// following the leader's writes).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Snapshot, StoreError>")]
pub struct Load;

impl Handler<Load> for StoreActor {
    type Result = Result<Snapshot, StoreError>;
    fn handle(&mut self, _: Load, _: &mut SyncContext<Self>) -> Self::Result {
        self.store.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_etcd::{leading_store, TestEtcd};

    fn app(id: &str) -> StoredApp {
        StoredApp {
            id: id.into(),
            file: "f".into(),
            text: "t".into(),
            created_ms: 1,
            destroying: false,
        }
    }

    /// Writes, then reads them back through a second store opened on the
    /// same state (a restart, or another drover of the cluster).
    fn writes_survive_reopening(open: &dyn Fn() -> Store) {
        {
            let s = open();
            s.apply(&StoreWrite::PutApp(app("a"))).unwrap();
            s.apply(&StoreWrite::PutCluster {
                app: "a".into(),
                entity: "web".into(),
                state: ClusterState {
                    desired: 3,
                    next_index: 4,
                    members: vec![1, 2, 3],
                    replacing: vec![],
                    ..Default::default()
                },
            })
            .unwrap();
            s.apply(&StoreWrite::PutPolicy {
                app: "a".into(),
                entity: "web".into(),
                policy: "p".into(),
                state: serde_json::json!({"x": 1}),
            })
            .unwrap();
        }
        let s = open();
        let snap = s.load().unwrap();
        assert_eq!(snap.apps["a"].text, "t");
        assert_eq!(
            snap.clusters[&("a".into(), "web".into())].members,
            vec![1, 2, 3]
        );
        assert_eq!(
            snap.policies[&("a".into(), "web".into(), "p".into())]["x"],
            1
        );
        s.apply(&StoreWrite::DeleteApp("a".into())).unwrap();
        let loc = LocationState {
            next_index: 4,
            hosts: vec![SavedHost {
                name: "pool-3".into(),
                index: 3,
                endpoint: "unix:///tmp/x.sock".into(),
                address: "127.0.0.1".into(),
                ..Default::default()
            }],
            placement: serde_json::json!({ "last_move": { "a/web": 5 } }),
            cordoned: vec!["pool-3".into()],
        };
        s.apply(&StoreWrite::PutLocation {
            name: "pool".into(),
            state: loc.clone(),
        })
        .unwrap();
        assert_eq!(s.load().unwrap().locations.get("pool"), Some(&loc));
        let snap = s.load().unwrap();
        assert!(snap.apps.is_empty() && snap.clusters.is_empty() && snap.policies.is_empty());
        let id = s.instance_id().unwrap();
        drop(s);
        assert_eq!(open().instance_id().unwrap(), id, "the identity is kept");
    }

    fn a_new_application_drops_state_an_earlier_one_of_its_name_left(s: &Store) {
        // A late write after a destroy: membership of an application gone.
        for id in ["shop", "shopping"] {
            s.apply(&StoreWrite::PutCluster {
                app: id.into(),
                entity: "web".into(),
                state: ClusterState {
                    desired: 2,
                    next_index: 10,
                    members: vec![8, 9],
                    replacing: vec![],
                    ..Default::default()
                },
            })
            .unwrap();
            s.apply(&StoreWrite::PutPolicy {
                app: id.into(),
                entity: "web".into(),
                policy: "resilient".into(),
                state: serde_json::json!({ "failures": [1] }),
            })
            .unwrap();
        }
        s.apply(&StoreWrite::CreateApp(app("shop"))).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.apps["shop"], app("shop"));
        assert_eq!(
            snap.clusters.keys().collect::<Vec<_>>(),
            [&("shopping".to_string(), "web".to_string())],
            "only the new application's own state went"
        );
        assert_eq!(snap.policies.len(), 1);
    }

    #[test]
    fn redb_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        writes_survive_reopening(&|| Store::open(&path).unwrap());
    }

    #[test]
    fn etcd_writes_survive_reopening() {
        let etcd = TestEtcd::start();
        let (_leader, fence, _) = leading_store(&etcd, "c1");
        let opts = StoreTarget::parse(&etcd.url(), "c1").unwrap();
        // Each "reopened" store shares the leader's fence: it is the same
        // drover after a restart, still leading.
        writes_survive_reopening(&|| Store::open_target(&opts, fence.clone()).unwrap());
    }

    #[test]
    fn redb_a_new_application_drops_state_an_earlier_one_of_its_name_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb")).unwrap();
        a_new_application_drops_state_an_earlier_one_of_its_name_left(&s);
    }

    #[test]
    fn etcd_a_new_application_drops_state_an_earlier_one_of_its_name_left() {
        let etcd = TestEtcd::start();
        let (s, _, _) = leading_store(&etcd, "c2");
        a_new_application_drops_state_an_earlier_one_of_its_name_left(&s);
        // Clusters of one etcd do not see each other's records.
        let (other, _, _) = leading_store(&etcd, "c3");
        assert!(other.load().unwrap().apps.is_empty());
    }

    #[test]
    fn etcd_writes_of_a_drover_that_no_longer_leads_are_refused_and_change_nothing() {
        let etcd = TestEtcd::start();
        let (s, fence, l) = leading_store(&etcd, "c4");
        s.apply(&StoreWrite::PutApp(app("kept"))).unwrap();
        // Its lease is revoked behind its back (as when it expired while
        // the drover was paused), and another drover campaigns and leads.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = match StoreTarget::parse(&etcd.url(), "c4").unwrap() {
            StoreTarget::Etcd(o) => o,
            _ => unreachable!(),
        };
        rt.block_on(async {
            let mut c = opts.connect().await.unwrap();
            c.lease_revoke(l.lease).await.unwrap();
        });
        let (_s2, _, l2) = leading_store(&etcd, "c4");
        assert_ne!(l2.revision, l.revision);
        assert_eq!(fence.revision(), Some(l.revision), "it does not know yet");
        let e = s.apply(&StoreWrite::PutApp(app("late"))).unwrap_err();
        assert!(matches!(e, StoreError::NotLeader), "{e}");
        assert_eq!(fence.revision(), None, "the refusal drops its leadership");
        let e = s.apply(&StoreWrite::DeleteApp("kept".into())).unwrap_err();
        assert!(matches!(e, StoreError::NotLeader), "{e}");
        let snap = s.load().unwrap();
        assert_eq!(snap.apps.keys().collect::<Vec<_>>(), ["kept"]);
    }

    #[test]
    fn etcd_errors_name_the_flag_to_check() {
        let h = etcd::hint("grpc-status: InvalidArgument, message: \"etcdserver: authentication failed, invalid user ID or password\"");
        assert!(h.contains("--etcd-password"), "{h}");
        let h = etcd::hint("etcdserver: user name is empty");
        assert!(h.contains("--etcd-user"), "{h}");
        let h = etcd::hint("transport error: invalid peer certificate: UnknownIssuer");
        assert!(h.contains("--etcd-ca"), "{h}");
        let h = etcd::hint("transport error: connection refused");
        assert!(h.contains("reachable"), "{h}");
    }

    #[test]
    fn etcd_an_unknown_endpoint_is_a_clear_error() {
        let e = StoreTarget::parse("etcd://127.0.0.1", "c").unwrap_err();
        assert!(e.to_string().contains("not host:port"), "{e}");
        let e = StoreTarget::parse("etcd://127.0.0.1:2379", "a/b").unwrap_err();
        assert!(e.to_string().contains("--cluster-name"), "{e}");
        assert!(matches!(
            StoreTarget::parse("/tmp/x.redb", "c").unwrap(),
            StoreTarget::Redb(_)
        ));
    }

    #[test]
    fn etcd_a_cluster_from_a_newer_drover_is_refused() {
        let etcd = TestEtcd::start();
        let opts = match StoreTarget::parse(&etcd.url(), "c5").unwrap() {
            StoreTarget::Etcd(o) => o,
            _ => unreachable!(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = opts.connect().await.unwrap();
            c.put(
                format!("{}meta/schema", opts.prefix()),
                (SCHEMA_VERSION + 1).to_string(),
                None,
            )
            .await
            .unwrap();
        });
        let e = Store::open_target(&StoreTarget::Etcd(opts), Fence::default())
            .err()
            .expect("refused");
        assert!(matches!(e, StoreError::Newer { .. }), "{e}");
    }

    #[test]
    fn writes_are_operations_of_one_transaction() {
        let ops = ops_of(&StoreWrite::DeleteApp("shop".into())).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Delete {
                    table: Table::Apps,
                    key: "shop".into()
                },
                Op::DeletePrefix {
                    table: Table::Clusters,
                    prefix: "shop\u{0}".into()
                },
                Op::DeletePrefix {
                    table: Table::Policies,
                    prefix: "shop\u{0}".into()
                },
            ]
        );
    }

    #[test]
    fn a_damaged_file_is_refused_and_left_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let e = Store::open(&path).err().expect("refused");
        assert!(e.to_string().contains("cannot open the store"), "{e}");
        assert!(
            std::fs::read(&path).unwrap() == garbage,
            "the damaged file is left unchanged"
        );
    }

    #[test]
    fn a_store_from_a_newer_drover_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        redb::tests::write_newer_schema(&path);
        let before = std::fs::read(&path).unwrap();
        let e = Store::open(&path).err().expect("refused");
        assert!(matches!(e, StoreError::Newer { .. }), "{e}");
        assert!(
            std::fs::read(&path).unwrap() == before,
            "the newer store is left unchanged"
        );
    }
}
