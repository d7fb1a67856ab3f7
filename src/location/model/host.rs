//! One host of a pool, as the pool's bookkeeping sees it.
//!
//! `H` is how the pool reaches the host's engine (the host actor's
//! address; `()` in tests), `M` how it reaches a container placed there
//! (the recipients of `Relocate` and `Move`): the model never looks into
//! either, so it has no actors in it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::placement::HostState;
use crate::store::SavedHost;

/// A container by (application, entity).
pub type MemberKey = (String, String);

/// A container the pool placed on a host: what it reserved there.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<M> {
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Told to start again elsewhere, or to move.
    pub contact: M,
}

/// A host's state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPhase {
    Running,
    OnFire,
    Decommissioning,
    /// Cordoned by an operator, containers still there (moving away).
    Draining,
    /// Cordoned by an operator, empty.
    Cordoned,
}

impl HostPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            HostPhase::Running => "running",
            HostPhase::OnFire => "on-fire",
            HostPhase::Decommissioning => "decommissioning",
            HostPhase::Draining => "draining",
            HostPhase::Cordoned => "cordoned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolHost<H, M> {
    /// What placement sees (capacity, reservations, `available`). Shared
    /// with the decision in flight, so a snapshot of the pool is a pointer
    /// per host rather than a copy of every reservation; changed through
    /// [`PoolHost::state_mut`], which copies only a host the decision still
    /// reads.
    pub state: Arc<HostState>,
    pub handle: H,
    /// Where its published ports are reached.
    pub address: String,
    /// Made by the provisioner (and so may be decommissioned), with how
    /// to reach it again after a restart.
    pub provisioned: Option<SavedHost>,
    /// When its engine last answered, as time since the pool's epoch.
    pub last_ok: Duration,
    pub on_fire: bool,
    pub decommissioning: bool,
    pub members: HashMap<MemberKey, Member<M>>,
    /// A ping is out.
    pub pinging: bool,
    /// Has had an answer (or a timeout) to a ping: its capacity is known.
    pub pinged_once: bool,
    /// Its containers have been listed (or the list failed): what runs
    /// there is adopted rather than placed again.
    pub listed: bool,
    /// Drained by an operator: takes no new containers (stored).
    pub cordoned: bool,
}

impl<H, M> PoolHost<H, M> {
    pub fn state_mut(&mut self) -> &mut HostState {
        Arc::make_mut(&mut self.state)
    }

    /// A host whose capacity is not known yet: not placeable until its
    /// first ping answers.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        labels: BTreeMap<String, String>,
        handle: H,
        provisioned: Option<SavedHost>,
        now: Duration,
    ) -> Self {
        let mut state = HostState::new(name, 0.0, 0);
        state.labels = labels;
        state.available = false;
        PoolHost {
            state: Arc::new(state),
            handle,
            address: address.into(),
            provisioned,
            last_ok: now,
            on_fire: false,
            decommissioning: false,
            members: HashMap::new(),
            pinging: false,
            pinged_once: false,
            listed: false,
            cordoned: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn phase(&self) -> HostPhase {
        if self.decommissioning {
            HostPhase::Decommissioning
        } else if self.on_fire {
            HostPhase::OnFire
        } else if self.cordoned && !self.members.is_empty() {
            HostPhase::Draining
        } else if self.cordoned {
            HostPhase::Cordoned
        } else {
            HostPhase::Running
        }
    }

    /// Neither on fire nor going: counts in the pool's size.
    pub fn is_running(&self) -> bool {
        !self.decommissioning && !self.on_fire
    }

    /// May be decommissioned now: drover made it, it runs, and no
    /// container of drover's is placed there.
    pub fn may_go(&self) -> bool {
        self.provisioned.is_some() && self.is_running() && self.state.placed.is_empty()
    }

    /// Counts in the pool's size but cannot be removed: the operator's
    /// (static) hosts, and hosts with containers.
    pub fn must_stay(&self) -> bool {
        self.is_running() && (self.provisioned.is_none() || !self.state.placed.is_empty())
    }

    /// May take containers: capacity known, answering, not cordoned, not
    /// going.
    pub fn placeable(&self) -> bool {
        self.pinged_once && !self.on_fire && !self.decommissioning && !self.cordoned
    }
}
