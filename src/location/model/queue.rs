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

    /// Back to the head, all of them, in their order.
    pub fn put_back_all(&mut self, ws: Vec<W>) {
        for w in ws.into_iter().rev() {
            self.waiting.push_front(w);
        }
    }

    /// Back right behind the head, in their order: the rest of a batch
    /// whose head now holds the queue (or, with the queue not held, back
    /// at the head).
    pub fn put_back_behind_head(&mut self, ws: Vec<W>) {
        let at = usize::from(self.held).min(self.waiting.len());
        for (k, w) in ws.into_iter().enumerate() {
            self.waiting.insert(at + k, w);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut PlacementQueue<u32>) -> Vec<u32> {
        q.take_all()
    }

    #[test]
    fn a_batch_goes_back_in_order_at_the_head_or_behind_a_held_head() {
        let mut q = PlacementQueue::default();
        for w in [1, 2, 3, 4, 5] {
            q.push(w);
        }
        let batch: Vec<u32> = std::iter::from_fn(|| q.next(true)).take(3).collect();
        assert_eq!(batch, [1, 2, 3]);
        // No policy to ask: all of it back, in order.
        q.put_back_all(batch);
        assert_eq!(drain(&mut q), [1, 2, 3, 4, 5]);

        for w in [1, 2, 3, 4, 5] {
            q.push(w);
        }
        let batch: Vec<u32> = std::iter::from_fn(|| q.next(true)).take(3).collect();
        // The first fits nowhere yet and holds the queue; the rest of its
        // batch waits behind it, before those that came later.
        q.hold(batch[0]);
        q.put_back_behind_head(batch[1..].to_vec());
        assert_eq!(q.next(true), None, "held");
        q.unhold();
        assert_eq!(drain(&mut q), [1, 2, 3, 4, 5]);

        // Not held: the rest goes back to the head.
        q.push(7);
        q.put_back_behind_head(vec![5, 6]);
        assert_eq!(drain(&mut q), [5, 6, 7]);
    }
}
