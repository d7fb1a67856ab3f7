//! Who leads a cluster of drovers sharing an etcd store, and what a
//! drover does about it.
//!
//! A drover on etcd starts as a *standby*: it serves `/healthz`,
//! `/metrics` and the stored applications, and answers every other `/v1`
//! request 503 with the leader's URL (the CLI prints it). It campaigns
//! ([`crate::store::election`]); once it leads, `drover serve` builds the
//! management actors from the store exactly as a restart's rebind does,
//! adopting every running container, restarting none.
//!
//! A leader that cannot renew its lease stops acting at once: the fence
//! is released (the store refuses its writes) and the process exits with
//! [`EXIT_LOST_LEADERSHIP`], as kube-controller-manager exits when it
//! loses its lease. Its containers keep running for the new leader; a
//! supervisor (systemd `Restart=always`) brings it back as a standby.
//! Exiting, rather than tearing every actor down in place, is what makes
//! "stops at once" certain: no policy timer or effector future of the old
//! leadership survives it.

use std::sync::{Arc, RwLock};

use crate::store::election::{Election, Leadership};

/// The exit code of a drover that lost its leadership (EX_TEMPFAIL: run
/// it again and it stands by).
pub const EXIT_LOST_LEADERSHIP: i32 = 75;

/// This drover's role, as `/healthz` and the standby's answers show it.
#[derive(Debug, Clone)]
pub struct Role(Arc<RwLock<RoleState>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleState {
    /// This drover leads (always, with a redb store).
    pub leading: bool,
    /// The leader's advertised URL, when known.
    pub leader: Option<String>,
    /// This drover's advertised URL.
    pub me: String,
}

impl Role {
    pub fn standby(me: String) -> Role {
        Role(Arc::new(RwLock::new(RoleState {
            leading: false,
            leader: None,
            me,
        })))
    }

    pub fn get(&self) -> RoleState {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut RoleState)) {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// The leader a standby saw (its hint to clients).
    pub fn saw(&self, leader: Option<String>) {
        self.update(|s| s.leader = leader);
    }

    /// This drover leads from now on.
    pub fn lead(&self) {
        self.update(|s| {
            if !s.leading {
                crate::metrics::LEADER_CHANGES.inc();
            }
            s.leading = true;
            s.leader = Some(s.me.clone());
        });
        crate::metrics::LEADER.set(1);
    }

    fn lost(&self) {
        self.update(|s| {
            if s.leading {
                crate::metrics::LEADER_CHANGES.inc();
            }
            s.leading = false;
            s.leader = None;
        });
        crate::metrics::LEADER.set(0);
    }
}

/// Stands by until this drover leads. The caller says so ([`Role::lead`])
/// once it serves as the leader: until then `/healthz` says standby.
pub async fn stand_by(election: &Election, role: &Role) -> Leadership {
    crate::metrics::LEADER.set(0);
    let l = election.campaign(|seen| role.saw(seen)).await;
    tracing::info!(revision = l.revision, "this drover leads the cluster");
    l
}

/// Keeps the leadership; when it is lost, stops acting at once: the
/// store already refuses this drover's writes, and the process exits.
pub fn guard(election: Arc<Election>, l: Leadership, role: Role) {
    tokio::spawn(async move {
        let reason = election.keep(l).await;
        role.lost();
        if election.resigned() {
            return; // a graceful stop gave it up
        }
        tracing::error!(%reason, "lost the leadership: stopping at once (the containers keep running for the new leader); run drover again to stand by");
        eprintln!("drover: lost the leadership ({reason}); exiting");
        std::process::exit(EXIT_LOST_LEADERSHIP);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_counts_each_change_of_leadership_once() {
        let role = Role::standby("http://me".into());
        let before = crate::metrics::LEADER_CHANGES.get();
        role.saw(Some("http://other".into()));
        assert_eq!(role.get().leader.as_deref(), Some("http://other"));
        role.lead();
        role.lead();
        let s = role.get();
        assert!(s.leading);
        assert_eq!(s.leader.as_deref(), Some("http://me"));
        role.lost();
        role.lost();
        assert_eq!(
            role.get(),
            RoleState {
                leading: false,
                leader: None,
                me: "http://me".into()
            }
        );
        // Became leader once, lost it once: the repeats count nothing.
        assert_eq!(crate::metrics::LEADER_CHANGES.get(), before + 2);
    }
}
