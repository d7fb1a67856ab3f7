//! Leadership on etcd: one drover of a cluster manages, the others stand by.
//!
//! The campaign is a transaction on `/drover/<cluster>/leader`: put our
//! advertised URL with our lease if the key does not exist, the way
//! etcd's own election recipe starts. The key lives as long as the lease:
//! a leader renews it every third of the TTL; a leader that dies stops
//! renewing, etcd deletes the key when the TTL runs out, and a standby
//! watching the key campaigns at once (the takeover: TTL + a little).
//!
//! The leader key's create revision is the *fence*: every write a leader
//! makes compares it ([`super::etcd`]), so a drover that lost its key
//! writes nothing, and [`Election::keep`] returns (after releasing the
//! fence) *before* its lease can expire on etcd's side: renewals are
//! counted from when they were sent, not when etcd answered.

use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};

use super::etcd::{EtcdOptions, Fence};
use super::StoreError;

/// The lease's TTL when `--leader-ttl` is not given: a takeover within
/// 6 s, and a leader that stops for 5 s (a long GC-free pause, a
/// network blip) keeps its role. Kubernetes' leader lease is 15 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// A leader stops acting this long before its lease could expire on
/// etcd's side, to cover the time between noticing and stopping.
pub const SAFETY: Duration = Duration::from_millis(500);

/// How often a standby looks at the leader key when its watch is quiet
/// (the watch is what makes a takeover fast; this only covers a watch
/// that broke without saying so).
const RECHECK: Duration = Duration::from_secs(1);

/// What a leader holds.
#[derive(Debug, Clone, Copy)]
pub struct Leadership {
    pub lease: i64,
    /// The leader key's create revision: the fence of every write.
    pub revision: i64,
    /// When the lease could expire at the earliest, as far as we know.
    pub valid_until: Instant,
}

pub struct Election {
    client: Client,
    opts: EtcdOptions,
    ttl: Duration,
    me: String,
    fence: Fence,
    /// Set by [`Election::resign`]: the lease's end is ours, not a loss.
    resigned: std::sync::atomic::AtomicBool,
}

fn etcd_err(operation: &str, e: etcd_client::Error) -> StoreError {
    StoreError::Io {
        operation: format!("{operation} (etcd)"),
        message: super::etcd::explain(&e),
    }
}

/// When to renew next: a third of the TTL after the last renewal was
/// sent, and never later than the safety margin before expiry (pure).
pub fn next_renewal(sent: Instant, ttl: Duration, valid_until: Instant) -> Instant {
    (sent + ttl / 3).min(valid_until.checked_sub(SAFETY).unwrap_or(valid_until))
}

impl Election {
    /// Connects on the current runtime. `me` is this drover's advertised URL.
    pub async fn connect(
        opts: &EtcdOptions,
        ttl: Duration,
        me: String,
        fence: Fence,
    ) -> Result<Election, StoreError> {
        Ok(Election {
            client: opts.connect().await?,
            opts: opts.clone(),
            ttl: ttl.max(Duration::from_secs(2)),
            me,
            fence,
            resigned: Default::default(),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// This drover gave its leadership up (a graceful stop).
    pub fn resigned(&self) -> bool {
        self.resigned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The leader's advertised URL and its key's create revision, if any
    /// drover leads.
    pub async fn leader(&self) -> Result<Option<(String, i64)>, StoreError> {
        let mut c = self.client.clone();
        let r = c
            .get(self.opts.leader_key(), None)
            .await
            .map_err(|e| etcd_err("read the leader", e))?;
        Ok(r.kvs().first().map(|kv| {
            (
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.create_revision(),
            )
        }))
    }

    /// Campaigns until this drover leads; `seen` hears of every leader
    /// met on the way (a standby's hint to clients). Errors of etcd are
    /// ridden out: a standby waits for etcd as long as it takes.
    pub async fn campaign(&self, seen: impl Fn(Option<String>)) -> Leadership {
        loop {
            match self.try_lead().await {
                Ok(Ok(l)) => return l,
                Ok(Err((leader, rev))) => {
                    seen(Some(leader));
                    self.wait_gone(rev).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "campaign for leadership failed; trying again");
                    seen(None);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// One campaign: leadership, or who leads (URL, key revision).
    async fn try_lead(&self) -> Result<Result<Leadership, (String, i64)>, StoreError> {
        if let Some(found) = self.leader().await? {
            return Ok(Err(found));
        }
        let mut c = self.client.clone();
        let sent = Instant::now();
        let lease = c
            .lease_grant(self.ttl.as_secs() as i64, None)
            .await
            .map_err(|e| etcd_err("grant a lease", e))?
            .id();
        let key = self.opts.leader_key();
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                self.me.as_str(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let r = c.txn(txn).await.map_err(|e| etcd_err("campaign", e))?;
        if r.succeeded() {
            let revision = r.header().map(|h| h.revision()).unwrap_or(0);
            self.fence.hold(revision);
            return Ok(Ok(Leadership {
                lease,
                revision,
                valid_until: sent + self.ttl,
            }));
        }
        let _ = c.lease_revoke(lease).await;
        let other = r.op_responses().into_iter().find_map(|o| match o {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| {
                (
                    String::from_utf8_lossy(kv.value()).into_owned(),
                    kv.create_revision(),
                )
            }),
            _ => None,
        });
        Ok(Err(other.unwrap_or_default()))
    }

    /// Returns when the leader key of revision `rev` is gone (or changed).
    async fn wait_gone(&self, rev: i64) {
        let mut c = self.client.clone();
        let key = self.opts.leader_key();
        let watch = c
            .watch(
                key.as_str(),
                Some(WatchOptions::new().with_start_revision(rev.max(1))),
            )
            .await;
        let mut stream = watch.ok();
        loop {
            let next = async {
                match stream.as_mut() {
                    Some(s) => s.message().await.ok().flatten(),
                    None => std::future::pending().await,
                }
            };
            match tokio::time::timeout(RECHECK, next).await {
                Ok(Some(resp)) => {
                    if resp.canceled() {
                        stream = None;
                    }
                    if resp
                        .events()
                        .iter()
                        .any(|e| e.event_type() == EventType::Delete)
                    {
                        return;
                    }
                }
                Ok(None) => stream = None,
                Err(_) => {}
            }
            // The watch is the fast path; a plain read makes sure.
            match self.leader().await {
                Ok(Some((_, r))) if r == rev => {}
                Ok(_) => return,
                Err(_) => {}
            }
        }
    }

    /// Keeps the lease alive; returns the reason when leadership is lost:
    /// a renewal could not be confirmed before the lease could expire,
    /// or etcd says it expired. The fence is released before returning,
    /// so no write of this drover goes through from then on.
    pub async fn keep(&self, l: Leadership) -> String {
        let reason = self.keep_inner(l).await;
        self.fence.release();
        reason
    }

    async fn keep_inner(&self, l: Leadership) -> String {
        let mut valid_until = l.valid_until;
        let mut c = self.client.clone();
        let mut keeper = None;
        loop {
            // A write etcd refused because the leader key is another's
            // dropped the fence: the lease may live, the leadership does not.
            if self.fence.revision() != Some(l.revision) {
                return "etcd refused a write: another drover holds the leader key".into();
            }
            let deadline = valid_until.checked_sub(SAFETY).unwrap_or(valid_until);
            let sent = Instant::now();
            if sent >= deadline {
                return "the lease could not be renewed before it could expire".into();
            }
            let renew = async {
                if keeper.is_none() {
                    keeper = Some(c.lease_keep_alive(l.lease).await?);
                }
                let (k, s) = keeper.as_mut().expect("set above");
                k.keep_alive().await?;
                s.message().await
            };
            match tokio::time::timeout_at(deadline.into(), renew).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => valid_until = sent + self.ttl,
                Ok(Ok(Some(_))) => return "etcd says the lease expired".into(),
                Ok(Ok(None)) | Ok(Err(_)) => {
                    // The stream broke: a new one on the next round.
                    keeper = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => return "the lease could not be renewed before it could expire".into(),
            }
            tokio::time::sleep_until(next_renewal(sent, self.ttl, valid_until).into()).await;
        }
    }

    /// Gives leadership up at once (a graceful stop): a standby takes over
    /// without waiting for the TTL.
    pub async fn resign(&self, l: Leadership) {
        self.resigned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.fence.release();
        let mut c = self.client.clone();
        let _ = c.lease_revoke(l.lease).await;
    }

    /// Calls `changed` whenever a record of the cluster changes (a
    /// standby's read model follows etcd); returns only if the watch
    /// cannot be made.
    pub async fn follow(&self, changed: impl Fn()) -> Result<(), StoreError> {
        let mut c = self.client.clone();
        loop {
            let mut s = c
                .watch(self.opts.prefix(), Some(WatchOptions::new().with_prefix()))
                .await
                .map_err(|e| etcd_err("watch", e))?;
            while let Ok(Some(resp)) = s.message().await {
                if !resp.events().is_empty() {
                    changed();
                }
            }
            // Broken (etcd restarted?): once more, after a full reload.
            changed();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_every_third_of_the_ttl_and_before_the_safety_margin() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(6);
        assert_eq!(next_renewal(t0, ttl, t0 + ttl), t0 + Duration::from_secs(2));
        // A renewal that came late leaves little time: renew before the margin.
        let until = t0 + Duration::from_secs(1);
        assert_eq!(next_renewal(t0, ttl, until), until - SAFETY);
    }
}
