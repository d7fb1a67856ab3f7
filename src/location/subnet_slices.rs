//! Which slice of network addresses each pool host of this process gets.
//!
//! Engines on one machine share one kernel: two bridges with the same
//! subnet route each other's traffic, so no two live hosts may ever hold
//! the same slice. Slices used to come from a counter taken modulo 128,
//! so the 129th host repeated the first one's range while it still ran.
//! Now a table keeps which host holds which slice: a host keeps its slice
//! for as long as it lives (a rebuilt host actor for the same host gets
//! the same one back), a destroyed host's slice is freed, and a new host
//! gets the lowest free one. With every slice taken, a host gets none
//! (its network creations fail with a clear error) rather than a
//! repeated one.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use crate::host::subnets::{Ipv4Net, SubnetPool};

/// Host `n` gets `10.(216 + n/16).((n%16)·16).0/20`: 10.216.0.0 to
/// 10.255.255.255, 640 slices of sixteen /24 networks each; hosts 640 and
/// up get slices of the shared address space 100.64.0.0/10 (RFC 6598), 1,024
/// more. A pool of 1,000 hosts used to crash drover at the 641st (the
/// fallback below panicked); these ranges are used only past 640 hosts.
pub const SLICES: u32 = PRIVATE_SLICES + SHARED_SLICES;
const PRIVATE_SLICES: u32 = 640;
const SHARED_SLICES: u32 = 1024;

/// Which host holds which slice (pure; the process-wide table below
/// wraps it).
#[derive(Debug, Default, Clone)]
pub struct SliceTable {
    by_host: BTreeMap<String, u32>,
}

impl SliceTable {
    /// The slice `host` holds, or the lowest free one; `None` when all
    /// [`SLICES`] are taken.
    pub fn assign(&mut self, host: &str) -> Option<u32> {
        if let Some(n) = self.by_host.get(host) {
            return Some(*n);
        }
        let taken: std::collections::BTreeSet<u32> = self.by_host.values().copied().collect();
        let n = (0..SLICES).find(|n| !taken.contains(n))?;
        self.by_host.insert(host.to_string(), n);
        Some(n)
    }

    /// Frees the slice of a destroyed host.
    pub fn release(&mut self, host: &str) {
        self.by_host.remove(host);
    }
}

/// Slice `n`'s /20.
pub fn slice_net(n: u32) -> Ipv4Net {
    let addr = if n < PRIVATE_SLICES {
        Ipv4Addr::new(10, (216 + n / 16) as u8, ((n % 16) * 16) as u8, 0)
    } else {
        let m = n - PRIVATE_SLICES;
        Ipv4Addr::new(100, (64 + m / 16) as u8, ((m % 16) * 16) as u8, 0)
    };
    Ipv4Net::new(addr, 20).expect("a /20 is valid")
}

static TABLE: Mutex<Option<SliceTable>> = Mutex::new(None);

/// The subnet pool of host `host` (see the module doc).
pub fn host_subnet_pool(host: &str) -> SubnetPool {
    let n = TABLE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(SliceTable::default)
        .assign(host);
    match n {
        Some(n) => SubnetPool::new(slice_net(n), 24).expect("/24s fit in a /20"),
        None => {
            tracing::error!(host, slices = SLICES, "every subnet slice is held by a live pool host; this host's networks cannot be created until a host is decommissioned");
            no_slice_pool()
        }
    }
}

/// The pool of a host that got no slice: 0.0.0.0/29, nobody's network and
/// never a range another host holds. (A /32 pool is refused by
/// `SubnetPool` itself: that `expect` crashed drover at the 641st host.)
fn no_slice_pool() -> SubnetPool {
    let none = Ipv4Net::new(Ipv4Addr::new(0, 0, 0, 0), 29).expect("a /29 is valid");
    SubnetPool::new(none, 29).expect("a /29 pool of /29s is valid")
}

/// Frees a destroyed host's slice.
pub fn release_host_subnet_pool(host: &str) {
    if let Some(t) = TABLE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        t.release(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_never_repeat_among_live_hosts_and_freed_ones_are_reused() {
        let mut t = SliceTable::default();
        let mut nets = std::collections::BTreeSet::new();
        for i in 0..SLICES {
            let n = t.assign(&format!("h{i}")).unwrap();
            assert!(nets.insert(slice_net(n)), "slice {n} repeated");
        }
        let all: Vec<Ipv4Net> = nets.iter().copied().collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
        // Full: the next host gets none rather than a repeat.
        assert_eq!(t.assign("late"), None);
        // The same host keeps its slice.
        assert_eq!(t.assign("h5"), Some(5));
        t.release("h5");
        assert_eq!(t.assign("late"), Some(5));
    }

    #[test]
    fn slices_stay_inside_ten_dot_216_to_255_then_the_shared_space() {
        assert_eq!(slice_net(0).network(), Ipv4Addr::new(10, 216, 0, 0));
        assert_eq!(
            slice_net(PRIVATE_SLICES - 1).network(),
            Ipv4Addr::new(10, 255, 240, 0)
        );
        assert_eq!(
            slice_net(PRIVATE_SLICES).network(),
            Ipv4Addr::new(100, 64, 0, 0)
        );
        assert_eq!(
            slice_net(SLICES - 1).network(),
            Ipv4Addr::new(100, 127, 240, 0)
        );
    }

    #[test]
    fn a_thousand_hosts_get_a_slice_each_and_the_overflow_never_panics() {
        let mut t = SliceTable::default();
        for i in 0..1_000 {
            assert!(t.assign(&format!("h{i}")).is_some(), "host {i}");
        }
        assert_eq!(no_slice_pool().capacity(), 1);
    }
}
