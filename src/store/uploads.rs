//! Uploaded build contexts in etcd, so that whichever drover of the
//! cluster leads can build from them (with redb they are files beside the
//! store, and nothing is written here).
//!
//! A context is written in chunks (`uploads/<hex>/<n>`, base64, each one
//! etcd request well under etcd's default 1.5 MiB request limit), then
//! its manifest (`uploads/<hex>`): a reader trusts only a context whose
//! manifest is there, and checks the digest of what it reassembles. The
//! leader writes it (fenced) before it answers the upload, so a deploy
//! that names it can never reach a store that lacks it. The cap,
//! [`ETCD_UPLOAD_MAX`], keeps a few contexts from filling etcd's quota
//! (2 GiB by default); unreferenced ones are swept after an hour.

use std::collections::BTreeSet;

use actix::prelude::*;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{io, Backend, Op, Store, StoreActor, StoreError, Table};

/// The largest build context a drover on etcd keeps (its
/// `--max-build-context` is lowered to this).
pub const ETCD_UPLOAD_MAX: u64 = 32 << 20;

/// Bytes per chunk: 1 MiB once in base64.
const CHUNK: usize = 768 << 10;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    bytes: u64,
    chunks: u32,
    created_ms: u64,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Store {
    /// Keeps an uploaded context where the cluster's other drovers find
    /// it (etcd); a no-op on redb. Keeping the same one twice writes once.
    pub fn put_upload(&self, hex: &str, tar: &[u8]) -> Result<(), StoreError> {
        if matches!(self.backend, Backend::Redb(_)) || self.get(Table::Uploads, hex)?.is_some() {
            return Ok(());
        }
        let chunks: Vec<&[u8]> = tar.chunks(CHUNK).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let op = Op::Put {
                table: Table::Uploads,
                key: format!("{hex}/{i}"),
                value: b64().encode(chunk),
            };
            self.commit(&[op], true)?;
        }
        let manifest = Manifest {
            bytes: tar.len() as u64,
            chunks: chunks.len() as u32,
            created_ms: crate::protocol::now_ms(),
        };
        let op = Op::Put {
            table: Table::Uploads,
            key: hex.to_string(),
            value: serde_json::to_string(&manifest).map_err(|e| io("encode", e))?,
        };
        self.commit(&[op], true).map(|_| ())
    }

    /// A context kept in etcd, checked against its digest; `None` when
    /// the store has none of that digest (always, on redb).
    pub fn get_upload(&self, hex: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if matches!(self.backend, Backend::Redb(_)) {
            return Ok(None);
        }
        let Some(m) = self.get(Table::Uploads, hex)? else {
            return Ok(None);
        };
        let bad = |message: String| StoreError::Decode {
            key: format!("uploads/{hex}"),
            message,
        };
        let m: Manifest = serde_json::from_str(&m).map_err(|e| bad(e.to_string()))?;
        let mut tar = Vec::with_capacity(m.bytes as usize);
        for i in 0..m.chunks {
            let chunk = self
                .get(Table::Uploads, &format!("{hex}/{i}"))?
                .ok_or_else(|| bad(format!("chunk {i} of {} is missing", m.chunks)))?;
            let chunk = b64().decode(chunk).map_err(|e| bad(e.to_string()))?;
            tar.extend_from_slice(&chunk);
        }
        if crate::build_context::sha256_hex(&tar) != hex {
            return Err(bad("the chunks do not add up to the digest".into()));
        }
        Ok(Some(tar))
    }

    /// Removes the contexts kept in etcd that `keep` does not name and
    /// that are older than `min_age_ms` (an upload on its way to a deploy
    /// stays). Returns how many went.
    pub fn sweep_uploads(
        &self,
        keep: &BTreeSet<String>,
        min_age_ms: u64,
    ) -> Result<usize, StoreError> {
        let Backend::Etcd(e) = &self.backend else {
            return Ok(0);
        };
        let now = crate::protocol::now_ms();
        let mut removed = 0;
        let keys = e.keys(Table::Uploads)?;
        let manifests: BTreeSet<&str> = keys
            .iter()
            .filter(|k| !k.contains('/'))
            .map(String::as_str)
            .collect();
        // Chunks whose manifest never came (a leader killed mid-upload).
        let orphans: BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| k.split_once('/').map(|(h, _)| h))
            .filter(|h| !manifests.contains(h))
            .collect();
        for hex in manifests.iter().chain(orphans.iter()) {
            if keep.contains(*hex) {
                continue;
            }
            let created = match self.get(Table::Uploads, hex)? {
                Some(m) => serde_json::from_str::<Manifest>(&m)
                    .map(|m| m.created_ms)
                    .unwrap_or(0),
                // An orphan's age is unknown: only an hour-old sweep's
                // second look would tell; the chunks are small, take them.
                None => 0,
            };
            if now.saturating_sub(created) < min_age_ms {
                continue;
            }
            let ops = [
                Op::Delete {
                    table: Table::Uploads,
                    key: hex.to_string(),
                },
                Op::DeletePrefix {
                    table: Table::Uploads,
                    prefix: format!("{hex}/"),
                },
            ];
            self.commit(&ops, true)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// An uploaded context's way through the store's thread.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Vec<u8>>, StoreError>")]
pub enum UploadOp {
    /// Keep it (answers `None`).
    Put { hex: String, tar: Vec<u8> },
    /// Read it back.
    Get(String),
    /// Sweep those not named, older than an hour (answers `None`).
    Sweep(BTreeSet<String>),
}

impl Handler<UploadOp> for StoreActor {
    type Result = Result<Option<Vec<u8>>, StoreError>;
    fn handle(&mut self, op: UploadOp, _: &mut SyncContext<Self>) -> Self::Result {
        match op {
            UploadOp::Put { hex, tar } => self.store.put_upload(&hex, &tar).map(|()| None),
            UploadOp::Get(hex) => self.store.get_upload(&hex),
            UploadOp::Sweep(keep) => {
                let n = self.store.sweep_uploads(&keep, 3_600_000)?;
                if n > 0 {
                    tracing::info!(
                        removed = n,
                        "removed build contexts no application names from etcd"
                    );
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_etcd::{leading_store, TestEtcd};

    #[test]
    fn an_upload_kept_in_etcd_comes_back_whole_and_is_swept_when_unnamed() {
        let etcd = TestEtcd::start();
        let (s, _, _) = leading_store(&etcd, "up");
        // Three chunks, the last a short one.
        let tar: Vec<u8> = (0..(2 * CHUNK + 1000))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let hex = crate::build_context::sha256_hex(&tar);
        assert_eq!(s.get_upload(&hex).unwrap(), None);
        s.put_upload(&hex, &tar).unwrap();
        s.put_upload(&hex, &tar).unwrap();
        assert_eq!(s.get_upload(&hex).unwrap().as_deref(), Some(&tar[..]));
        let other = "0".repeat(64);
        // A chunk without a manifest: never read as an upload, swept.
        s.commit(
            &[Op::Put {
                table: Table::Uploads,
                key: format!("{other}/0"),
                value: "AAAA".into(),
            }],
            true,
        )
        .unwrap();
        assert_eq!(s.get_upload(&other).unwrap(), None);
        let keep = BTreeSet::from([hex.clone()]);
        assert_eq!(
            s.sweep_uploads(&keep, 0).unwrap(),
            1,
            "the orphan chunks go"
        );
        assert!(s.get_upload(&hex).unwrap().is_some(), "the named one stays");
        assert_eq!(
            s.sweep_uploads(&BTreeSet::new(), 3_600_000).unwrap(),
            0,
            "too young"
        );
        assert_eq!(s.sweep_uploads(&BTreeSet::new(), 0).unwrap(), 1);
        assert_eq!(s.get_upload(&hex).unwrap(), None);
        let e = match &s.backend {
            Backend::Etcd(e) => e,
            _ => unreachable!(),
        };
        assert!(e.keys(Table::Uploads).unwrap().is_empty(), "no chunk left");
    }

    #[test]
    fn redb_keeps_no_upload_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb")).unwrap();
        s.put_upload(&"a".repeat(64), b"tar").unwrap();
        assert_eq!(s.get_upload(&"a".repeat(64)).unwrap(), None);
    }
}
