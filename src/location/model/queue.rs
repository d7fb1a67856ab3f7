//! The placement queue: placements are decided in order, one at a time,
//! so two decisions never see the same free slot.
//!
//! A placement that fits nowhere while a host is being provisioned goes
//! back to the head and *holds* the queue: the ones behind it wait too
//! (first come, first placed), until the new host is up or provisioning
//! fails. Nothing is decided before every host's capacity is known
//! (`ready`): a decision would see unknown capacities, or place again
//! what already runs.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct PlacementQueue<W> {
    waiting: VecDeque<W>,
    /// A decision is out at the placement policy.
    deciding: bool,
    /// The head fits nowhere and waits for the host being provisioned.
    held: bool,
}

impl<W> Default for PlacementQueue<W> {
    fn default() -> Self {
        PlacementQueue {
            waiting: VecDeque::new(),
            deciding: false,
            held: false,
        }
    }
}

impl<W> PlacementQueue<W> {
    pub fn push(&mut self, w: W) {
        self.waiting.push_back(w);
    }

    /// The next placement to decide: none while a decision is out, while
    /// the head is held, or while the pool is not `ready`.
    pub fn next(&mut self, ready: bool) -> Option<W> {
        if self.deciding || self.held || !ready {
            return None;
        }
        self.waiting.pop_front()
    }

    /// A decision for the placement [`next`](Self::next) gave is out.
    pub fn deciding(&mut self) {
        self.deciding = true;
    }

    /// The decision came back.
    pub fn decided(&mut self) {
        self.deciding = false;
    }

    /// Back to the head, not held (nothing could decide it yet).
    pub fn put_back(&mut self, w: W) {
        self.waiting.push_front(w);
    }

    /// Back to the head, holding the queue until [`unhold`](Self::unhold).
    pub fn hold(&mut self, w: W) {
        self.waiting.push_front(w);
        self.held = true;
    }

    /// The host the held placement waited for is up (or failed).
    pub fn unhold(&mut self) {
        self.held = false;
    }

    /// Everything waiting, in order (to fail them all at once).
    pub fn take_all(&mut self) -> Vec<W> {
        self.held = false;
        self.waiting.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    pub fn is_held(&self) -> bool {
        self.held
    }

    pub fn is_deciding(&self) -> bool {
        self.deciding
    }
}
