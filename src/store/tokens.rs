//! API tokens as stored: a name, a role and the SHA-256 of the token.
//!
//! The token itself is never stored: whoever reads the store file learns
//! no token. Added within schema 1: a store without the table has no
//! token yet.

use actix::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{io, Store, StoreActor, StoreError};

/// Token name → [`StoredToken`] as JSON.
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Lowercase hex of the SHA-256 of the token.
    pub hash: String,
    pub created_ms: u64,
    #[serde(default)]
    pub last_used_ms: Option<u64>,
}

impl Store {
    /// Every stored token.
    pub fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| io("read", e))?;
        let t = match tx.open_table(TOKENS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(io("read tokens", e)),
        };
        let mut out = Vec::new();
        for r in t.iter().map_err(|e| io("read tokens", e))? {
            let (k, v) = r.map_err(|e| io("read tokens", e))?;
            let token = serde_json::from_str(v.value()).map_err(|e| StoreError::Decode {
                key: format!("token {}", k.value()),
                message: e.to_string(),
            })?;
            out.push(token);
        }
        Ok(out)
    }

    /// Adds or replaces a token (by name).
    pub fn put_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        let v = serde_json::to_string(token).map_err(|e| io("encode", e))?;
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        tx.open_table(TOKENS)
            .map_err(|e| io("write tokens", e))?
            .insert(token.name.as_str(), v.as_str())
            .map_err(|e| io("write tokens", e))?;
        tx.commit().map_err(|e| io("commit", e))
    }

    /// Records a token's last use; `false` (and nothing written) when it
    /// is no longer stored.
    pub fn touch_token(&self, name: &str, last_used_ms: u64) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        let found = {
            let mut t = tx.open_table(TOKENS).map_err(|e| io("write tokens", e))?;
            let current = t
                .get(name)
                .map_err(|e| io("write tokens", e))?
                .map(|v| v.value().to_string());
            match current {
                Some(v) => {
                    let mut token: StoredToken =
                        serde_json::from_str(&v).map_err(|e| StoreError::Decode {
                            key: format!("token {name}"),
                            message: e.to_string(),
                        })?;
                    token.last_used_ms = Some(last_used_ms);
                    let v = serde_json::to_string(&token).map_err(|e| io("encode", e))?;
                    t.insert(name, v.as_str())
                        .map_err(|e| io("write tokens", e))?;
                    true
                }
                None => false,
            }
        };
        tx.commit().map_err(|e| io("commit", e))?;
        Ok(found)
    }

    /// Removes a token; `false` when there was none of that name.
    pub fn delete_token(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(|e| io("write", e))?;
        let existed = tx
            .open_table(TOKENS)
            .map_err(|e| io("write tokens", e))?
            .remove(name)
            .map_err(|e| io("write tokens", e))?
            .is_some();
        tx.commit().map_err(|e| io("commit", e))?;
        Ok(existed)
    }
}

/// A change to the stored tokens, on the store's thread. Answers whether a
/// token of that name existed before.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub enum TokenWrite {
    Put(StoredToken),
    Delete(String),
    /// A token's last use, written only if the token is still stored (a
    /// revocation racing a request is never undone).
    Touch {
        name: String,
        last_used_ms: u64,
    },
}

impl Handler<TokenWrite> for StoreActor {
    type Result = Result<bool, StoreError>;
    fn handle(&mut self, w: TokenWrite, _: &mut SyncContext<Self>) -> Self::Result {
        let r = match &w {
            TokenWrite::Put(t) => self.store.put_token(t).map(|()| true),
            TokenWrite::Delete(name) => self.store.delete_token(name),
            TokenWrite::Touch { name, last_used_ms } => self.store.touch_token(name, *last_used_ms),
        };
        if let Err(e) = &r {
            tracing::error!(error = %e, "token write failed");
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_survive_reopening_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let t = StoredToken {
            name: "ci".into(),
            role: "operator".into(),
            hash: "ab".repeat(32),
            created_ms: 5,
            last_used_ms: None,
        };
        {
            let s = Store::open(&path).unwrap();
            assert!(s.tokens().unwrap().is_empty());
            s.put_token(&t).unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.tokens().unwrap(), vec![t]);
        assert!(s.touch_token("ci", 9).unwrap());
        assert_eq!(s.tokens().unwrap()[0].last_used_ms, Some(9));
        assert!(s.delete_token("ci").unwrap());
        assert!(!s.touch_token("ci", 10).unwrap());
        assert!(!s.delete_token("ci").unwrap());
        assert!(s.tokens().unwrap().is_empty());
    }
}
