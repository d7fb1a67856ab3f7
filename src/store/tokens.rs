//! API tokens as stored: a name, a role and the SHA-256 of the token.
//!
//! The token itself is never stored: whoever reads the store file learns
//! no token. Added within schema 1: a store without the table has no
//! token yet.

use actix::prelude::*;
use serde::{Deserialize, Serialize};

use super::{io, Op, Store, StoreActor, StoreError, Table};

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

fn decode(name: &str, v: &str) -> Result<StoredToken, StoreError> {
    serde_json::from_str(v).map_err(|e| StoreError::Decode {
        key: format!("token {name}"),
        message: e.to_string(),
    })
}

impl Store {
    /// Every stored token.
    pub fn tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.rows(Table::Tokens)?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }

    /// Adds or replaces a token (by name).
    pub fn put_token(&self, token: &StoredToken) -> Result<(), StoreError> {
        self.commit(&[put(token)?], true).map(|_| ())
    }

    /// Adds the first admin token at start-up, before any drover of the
    /// cluster leads (so unfenced); `false` when a token of that name
    /// was there already (another drover of the cluster made it).
    ///
    /// One create-if-absent transaction, never a read then a write: of
    /// drovers starting at the same instant on an empty cluster, exactly
    /// one stores its token.
    pub fn put_first_token(&self, token: &StoredToken) -> Result<bool, StoreError> {
        self.commit(
            &[Op::PutIfAbsent {
                table: Table::Tokens,
                key: token.name.clone(),
                value: serde_json::to_string(token).map_err(|e| io("encode", e))?,
            }],
            false,
        )
    }

    /// Records a token's last use; `false` (and nothing written) when it
    /// is no longer stored.
    pub fn touch_token(&self, name: &str, last_used_ms: u64) -> Result<bool, StoreError> {
        let Some(v) = self.get(Table::Tokens, name)? else {
            return Ok(false);
        };
        let mut token = decode(name, &v)?;
        token.last_used_ms = Some(last_used_ms);
        // Conditional on the token still being there: a revocation racing
        // a request is never undone.
        self.commit(
            &[Op::PutIfPresent {
                table: Table::Tokens,
                key: name.to_string(),
                value: serde_json::to_string(&token).map_err(|e| io("encode", e))?,
            }],
            true,
        )
    }

    /// Removes a token; `false` when there was none of that name.
    pub fn delete_token(&self, name: &str) -> Result<bool, StoreError> {
        if self.get(Table::Tokens, name)?.is_none() {
            return Ok(false);
        }
        self.commit(
            &[Op::Delete {
                table: Table::Tokens,
                key: name.to_string(),
            }],
            true,
        )?;
        Ok(true)
    }
}

fn put(token: &StoredToken) -> Result<Op, StoreError> {
    Ok(Op::Put {
        table: Table::Tokens,
        key: token.name.clone(),
        value: serde_json::to_string(token).map_err(|e| io("encode", e))?,
    })
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
            TokenWrite::Touch { name, last_used_ms } => {
                match self.store.touch_token(name, *last_used_ms) {
                    // A standby records no last use: only the leader writes.
                    Err(StoreError::NotLeader) => Ok(true),
                    r => r,
                }
            }
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
