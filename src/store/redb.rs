//! The embedded backend: one redb file (the default, `--store PATH`).
//!
//! A table per [`Table`]; the schema and this drover's identity in `meta`.
//! A write's operations run in one write transaction, committed with an
//! fsync.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{io, Op, StoreError, Table, SCHEMA_VERSION};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const fn table(t: Table) -> TableDefinition<'static, &'static str, &'static str> {
    match t {
        Table::Apps => TableDefinition::new("apps"),
        Table::Clusters => TableDefinition::new("clusters"),
        Table::Policies => TableDefinition::new("policies"),
        // Added within schema 1: a store without it has no location state yet.
        Table::Locations => TableDefinition::new("locations"),
        // Added within schema 1: a store without it has no token yet.
        Table::Tokens => TableDefinition::new("tokens"),
        // Never written: with redb the uploads are files beside the store.
        Table::Uploads => TableDefinition::new("uploads"),
    }
}

pub struct RedbStore {
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

impl RedbStore {
    /// Opens (or creates) the store. A damaged file, or one written by a
    /// newer drover, is an error and is left untouched.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
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
        let store = RedbStore { db };
        match schema_of(&store.db)? {
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

    fn init(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        {
            let mut t = tx.open_table(META).map_err(|e| io("init", e))?;
            t.insert("schema", SCHEMA_VERSION)
                .map_err(|e| io("init", e))?;
            for t in [
                Table::Apps,
                Table::Clusters,
                Table::Policies,
                Table::Locations,
            ] {
                tx.open_table(table(t)).map_err(|e| io("init", e))?;
            }
        }
        tx.commit().map_err(|e| io("commit", e))
    }

    /// The stored identity, or a new one stored now.
    pub fn instance_id(&self, fresh: u64) -> Result<String, StoreError> {
        {
            let tx = self.db.begin_read().map_err(|e| io("read", e))?;
            let t = tx.open_table(META).map_err(|e| io("read meta", e))?;
            if let Some(v) = t.get("instance").map_err(|e| io("read meta", e))? {
                return Ok(format!("{:016x}", v.value()));
            }
        }
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        tx.open_table(META)
            .map_err(|e| io("write meta", e))?
            .insert("instance", fresh)
            .map_err(|e| io("write meta", e))?;
        tx.commit().map_err(|e| io("commit", e))?;
        Ok(format!("{fresh:016x}"))
    }

    /// Every (key, value) of a table; none when the table was never made.
    pub fn rows(&self, t: Table) -> Result<Vec<(String, String)>, StoreError> {
        let what = format!("read {}", t.name());
        let tx = self.db.begin_read().map_err(|e| io("read", e))?;
        let tbl = match tx.open_table(table(t)) {
            Ok(tbl) => tbl,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(io(&what, e)),
        };
        let mut out = Vec::new();
        for entry in tbl.iter().map_err(|e| io(&what, e))? {
            let (k, v) = entry.map_err(|e| io(&what, e))?;
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// One value.
    pub fn get(&self, t: Table, key: &str) -> Result<Option<String>, StoreError> {
        let what = format!("read {}", t.name());
        let tx = self.db.begin_read().map_err(|e| io("read", e))?;
        let tbl = match tx.open_table(table(t)) {
            Ok(tbl) => tbl,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(&what, e)),
        };
        Ok(tbl
            .get(key)
            .map_err(|e| io(&what, e))?
            .map(|v| v.value().to_string()))
    }

    /// Every operation in one transaction. `Ok(false)`, and nothing
    /// written, when an operation's condition does not hold.
    pub fn commit(&self, ops: &[Op]) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        for op in ops {
            let mut tbl = tx
                .open_table(table(op.table()))
                .map_err(|e| io("write", e))?;
            match op {
                Op::Put { key, value, .. } => {
                    tbl.insert(key.as_str(), value.as_str())
                        .map_err(|e| io("write", e))?;
                }
                Op::PutIfPresent { key, value, .. } | Op::PutIfAbsent { key, value, .. } => {
                    let present = tbl.get(key.as_str()).map_err(|e| io("write", e))?.is_some();
                    if present != matches!(op, Op::PutIfPresent { .. }) {
                        drop(tbl);
                        tx.abort().map_err(|e| io("abort", e))?;
                        return Ok(false);
                    }
                    tbl.insert(key.as_str(), value.as_str())
                        .map_err(|e| io("write", e))?;
                }
                Op::Delete { key, .. } => {
                    tbl.remove(key.as_str()).map_err(|e| io("write", e))?;
                }
                Op::DeletePrefix { prefix, .. } => {
                    let keys: Vec<String> = tbl
                        .iter()
                        .map_err(|e| io("write", e))?
                        .filter_map(|r| r.ok().map(|(k, _)| k.value().to_string()))
                        .filter(|k| k.starts_with(prefix.as_str()))
                        .collect();
                    for k in keys {
                        tbl.remove(k.as_str()).map_err(|e| io("write", e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| io("commit", e))?;
        Ok(true)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A store file whose schema is newer than this drover's.
    pub fn write_newer_schema(path: &Path) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema", SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit().unwrap();
    }
}
