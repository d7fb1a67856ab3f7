//! Durable state: an embedded redb database.
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
//! dedicated thread (actix `SyncArbiter`), so a commit (an fsync) never
//! blocks an actor's thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix::prelude::*;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

mod tokens;
pub use tokens::{StoredToken, TokenWrite};

/// The schema this drover writes. A store with a higher one was written by
/// a newer drover: it is refused, never downgraded.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const APPS: TableDefinition<&str, &str> = TableDefinition::new("apps");
const CLUSTERS: TableDefinition<&str, &str> = TableDefinition::new("clusters");
const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");
/// Added within schema 1: a store without it has no location state yet.
const LOCATIONS: TableDefinition<&str, &str> = TableDefinition::new("locations");

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

pub struct Store {
    db: Database,
}

fn schema_of(db: &impl ReadableDatabase) -> Result<Option<u64>, StoreError> {
    let tx = db.begin_read().map_err(|e| io("read", e))?;
    let t = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io("read meta", e)),
    };
    Ok(t.get("schema")
        .map_err(|e| io("read meta", e))?
        .map(|v| v.value()))
}

fn key2(a: &str, b: &str) -> String {
    format!("{a}\u{0}{b}")
}

fn key3(a: &str, b: &str, c: &str) -> String {
    format!("{a}\u{0}{b}\u{0}{c}")
}

impl Store {
    /// Opens (or creates) the store. A damaged file, or one written by a
    /// newer drover, is an error and is left untouched.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: shown.clone(),
            message: e.to_string(),
        };
        let exists = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let db = if exists {
            // Look read-only first: a store from a newer drover, or a
            // damaged one, must be refused without a single byte changed.
            match redb::ReadOnlyDatabase::open(path) {
                Ok(ro) => {
                    let found = schema_of(&ro)?;
                    drop(ro);
                    if let Some(v) = found.filter(|v| *v > SCHEMA_VERSION) {
                        return Err(StoreError::Newer {
                            path: shown,
                            found: v,
                        });
                    }
                }
                // Not shut down cleanly (a crash): the read-write open below
                // repairs it, which is what it is for.
                Err(redb::DatabaseError::RepairAborted) => {}
                Err(e) => return Err(open_err(&e)),
            }
            // `open` never initializes a file: a damaged one stays as it is.
            Database::open(path).map_err(|e| open_err(&e))?
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
            }
            Database::create(path).map_err(|e| open_err(&e))?
        };
        let store = Store { db };
        let found = store.schema()?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Newer {
                    path: shown,
                    found: v,
                })
            }
            Some(_) => {}
            None => store.init()?,
        }
        Ok(store)
    }

    fn schema(&self) -> Result<Option<u64>, StoreError> {
        schema_of(&self.db)
    }

    fn init(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| io("init", e))?;
            t.insert("schema", SCHEMA_VERSION)
                .map_err(|e| io("init", e))?;
            tx.open_table(APPS).map_err(|e| io("init", e))?;
            tx.open_table(CLUSTERS).map_err(|e| io("init", e))?;
            tx.open_table(POLICIES).map_err(|e| io("init", e))?;
            tx.open_table(LOCATIONS).map_err(|e| io("init", e))?;
        }
        tx.commit().map_err(|e| io("commit", e))
    }

    /// This drover's identity, made once and kept: the containers it
    /// creates carry it (`io.drover.owner`), so a rebind never touches the
    /// containers of another drover sharing the engine.
    pub fn instance_id(&self) -> Result<String, StoreError> {
        {
            let tx = self.db.begin_read().map_err(|e| io("read", e))?;
            let t = tx.open_table(META).map_err(|e| io("read meta", e))?;
            if let Some(v) = t.get("instance").map_err(|e| io("read meta", e))? {
                return Ok(format!("{:016x}", v.value()));
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let id = nanos ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        tx.open_table(META)
            .map_err(|e| io("write meta", e))?
            .insert("instance", id)
            .map_err(|e| io("write meta", e))?;
        tx.commit().map_err(|e| io("commit", e))?;
        Ok(format!("{id:016x}"))
    }

    /// Everything stored.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let tx = self.db.begin_read().map_err(|e| io("read", e))?;
        let mut snap = Snapshot::default();
        let decode = |k: &str, v: &str| -> Result<serde_json::Value, StoreError> {
            serde_json::from_str(v).map_err(|e| StoreError::Decode {
                key: k.replace('\u{0}', "/"),
                message: e.to_string(),
            })
        };
        for entry in tx
            .open_table(APPS)
            .map_err(|e| io("read apps", e))?
            .iter()
            .map_err(|e| io("read apps", e))?
        {
            let (k, v) = entry.map_err(|e| io("read apps", e))?;
            let app: StoredApp =
                serde_json::from_value(decode(k.value(), v.value())?).map_err(|e| {
                    StoreError::Decode {
                        key: k.value().to_string(),
                        message: e.to_string(),
                    }
                })?;
            snap.apps.insert(k.value().to_string(), app);
        }
        for entry in tx
            .open_table(CLUSTERS)
            .map_err(|e| io("read clusters", e))?
            .iter()
            .map_err(|e| io("read clusters", e))?
        {
            let (k, v) = entry.map_err(|e| io("read clusters", e))?;
            let mut parts = k.value().split('\u{0}');
            let (Some(a), Some(e)) = (parts.next(), parts.next()) else {
                continue;
            };
            let st: ClusterState =
                serde_json::from_value(decode(k.value(), v.value())?).map_err(|err| {
                    StoreError::Decode {
                        key: k.value().replace('\u{0}', "/"),
                        message: err.to_string(),
                    }
                })?;
            snap.clusters.insert((a.to_string(), e.to_string()), st);
        }
        for entry in tx
            .open_table(POLICIES)
            .map_err(|e| io("read policies", e))?
            .iter()
            .map_err(|e| io("read policies", e))?
        {
            let (k, v) = entry.map_err(|e| io("read policies", e))?;
            let mut parts = k.value().split('\u{0}');
            let (Some(a), Some(e), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            snap.policies.insert(
                (a.to_string(), e.to_string(), p.to_string()),
                decode(k.value(), v.value())?,
            );
        }
        match tx.open_table(LOCATIONS) {
            Ok(t) => {
                for entry in t.iter().map_err(|e| io("read locations", e))? {
                    let (k, v) = entry.map_err(|e| io("read locations", e))?;
                    let st: LocationState = serde_json::from_value(decode(k.value(), v.value())?)
                        .map_err(|e| StoreError::Decode {
                        key: format!("locations/{}", k.value()),
                        message: e.to_string(),
                    })?;
                    snap.locations.insert(k.value().to_string(), st);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(io("read locations", e)),
        }
        Ok(snap)
    }

    pub fn apply(&self, w: &StoreWrite) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        {
            match w {
                StoreWrite::PutApp(app) => {
                    let v = serde_json::to_string(app).map_err(|e| io("encode", e))?;
                    tx.open_table(APPS)
                        .map_err(|e| io("write", e))?
                        .insert(app.id.as_str(), v.as_str())
                        .map_err(|e| io("write", e))?;
                }
                StoreWrite::CreateApp(app) => {
                    forget_app_state(&tx, &app.id)?;
                    let v = serde_json::to_string(app).map_err(|e| io("encode", e))?;
                    tx.open_table(APPS)
                        .map_err(|e| io("write", e))?
                        .insert(app.id.as_str(), v.as_str())
                        .map_err(|e| io("write", e))?;
                }
                StoreWrite::DeleteApp(id) => {
                    tx.open_table(APPS)
                        .map_err(|e| io("write", e))?
                        .remove(id.as_str())
                        .map_err(|e| io("write", e))?;
                    forget_app_state(&tx, id)?;
                }
                StoreWrite::PutCluster { app, entity, state } => {
                    let v = serde_json::to_string(state).map_err(|e| io("encode", e))?;
                    tx.open_table(CLUSTERS)
                        .map_err(|e| io("write", e))?
                        .insert(key2(app, entity).as_str(), v.as_str())
                        .map_err(|e| io("write", e))?;
                }
                StoreWrite::PutLocation { name, state } => {
                    let v = serde_json::to_string(state).map_err(|e| io("encode", e))?;
                    tx.open_table(LOCATIONS)
                        .map_err(|e| io("write", e))?
                        .insert(name.as_str(), v.as_str())
                        .map_err(|e| io("write", e))?;
                }
                StoreWrite::PutPolicy {
                    app,
                    entity,
                    policy,
                    state,
                } => {
                    let v = state.to_string();
                    tx.open_table(POLICIES)
                        .map_err(|e| io("write", e))?
                        .insert(key3(app, entity, policy).as_str(), v.as_str())
                        .map_err(|e| io("write", e))?;
                }
            }
        }
        tx.commit().map_err(|e| io("commit", e))
    }
}

/// Removes an application's cluster membership and policy memory.
fn forget_app_state(tx: &redb::WriteTransaction, app: &str) -> Result<(), StoreError> {
    let prefix = format!("{app}\u{0}");
    for table in [CLUSTERS, POLICIES] {
        let mut t = tx.open_table(table).map_err(|e| io("write", e))?;
        let keys: Vec<String> = t
            .iter()
            .map_err(|e| io("write", e))?
            .filter_map(|r| r.ok().map(|(k, _)| k.value().to_string()))
            .filter(|k| k.starts_with(&prefix))
            .collect();
        for k in keys {
            t.remove(k.as_str()).map_err(|e| io("write", e))?;
        }
    }
    Ok(())
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
        crate::metrics::STORE_WRITE_SECONDS.observe(t0.elapsed().as_secs_f64());
        if let Err(e) = &r {
            tracing::error!(error = %e, "store write failed");
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let s = Store::open(&path).unwrap();
            s.apply(&StoreWrite::PutApp(StoredApp {
                id: "a".into(),
                file: "f".into(),
                text: "t".into(),
                created_ms: 1,
                destroying: false,
            }))
            .unwrap();
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
        let s = Store::open(&path).unwrap();
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
    }

    #[test]
    fn a_new_application_drops_state_an_earlier_one_of_its_name_left() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb")).unwrap();
        let app = |id: &str| StoredApp {
            id: id.into(),
            file: "f".into(),
            text: "t".into(),
            created_ms: 1,
            destroying: false,
        };
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
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema", SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let e = Store::open(&path).err().expect("refused");
        assert!(matches!(e, StoreError::Newer { .. }), "{e}");
        assert!(
            std::fs::read(&path).unwrap() == before,
            "the newer store is left unchanged"
        );
    }
}
