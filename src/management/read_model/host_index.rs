//! Which entities each host runs: part of the read model, kept as
//! `host.name` sensors change.

use std::collections::{HashMap, HashSet};

use crate::protocol::EntityRef;

/// Which entities each host runs, kept as their `host.name` sensors change
/// (the read model hears every sensor, and every entity that goes). Routing every host's resync
/// through every entity cost hosts × entities (10^7 lookups a second with
/// 1,000 hosts and 100,000 containers), and rebuilding an index from all
/// entities each second still cost all entities a second (at 40,000
/// containers a tenth of the actor thread); kept this way a resync costs
/// its own host's entities and a move costs two set operations.
#[derive(Debug, Default)]
pub struct HostIndex {
    by_host: HashMap<String, HashSet<EntityRef>>,
}

impl HostIndex {
    /// An entity's host changed from `was` to `now` (`None`: no host, or gone).
    pub fn moved(&mut self, key: &EntityRef, was: Option<&str>, now: Option<&str>) {
        if was == now {
            return;
        }
        if let Some(was) = was {
            if let Some(set) = self.by_host.get_mut(was) {
                set.remove(key);
                if set.is_empty() {
                    self.by_host.remove(was);
                }
            }
        }
        if let Some(now) = now {
            match self.by_host.get_mut(now) {
                Some(set) => {
                    set.insert(key.clone());
                }
                None => {
                    self.by_host
                        .insert(now.to_string(), HashSet::from([key.clone()]));
                }
            }
        }
    }

    /// An application was destroyed: none of its entities is anywhere.
    pub fn forget_app(&mut self, app: &str) {
        self.by_host.retain(|_, set| {
            set.retain(|k| k.app != app);
            !set.is_empty()
        });
    }

    pub fn on(&self, host: &str) -> impl Iterator<Item = &EntityRef> {
        self.by_host.get(host).into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_resync_reaches_only_the_entities_placed_there_now() {
        let e = |n: &str| EntityRef::new("app".to_string(), n.to_string());
        let on = |index: &HostIndex, h: &str| {
            let mut v: Vec<String> = index.on(h).map(|k| k.entity.clone()).collect();
            v.sort();
            v
        };
        let mut index = HostIndex::default();
        index.moved(&e("a"), None, Some("h1"));
        index.moved(&e("b"), None, Some("h2"));
        index.moved(&e("c"), None, Some("h1"));
        assert_eq!(on(&index, "h1"), ["a", "c"]);
        assert_eq!(on(&index, "h2"), ["b"]);
        assert!(on(&index, "h3").is_empty());
        // Replaced onto another host: it leaves the first one's list.
        index.moved(&e("a"), Some("h1"), Some("h2"));
        assert_eq!(on(&index, "h1"), ["c"]);
        assert_eq!(on(&index, "h2"), ["a", "b"]);
        // Gone: on no host's list.
        index.moved(&e("c"), Some("h1"), None);
        assert!(on(&index, "h1").is_empty());
        assert!(
            !index.by_host.contains_key("h1"),
            "an empty host is dropped"
        );
        // The same host again is no change.
        index.moved(&e("b"), Some("h2"), Some("h2"));
        assert_eq!(on(&index, "h2"), ["a", "b"]);
        // Its application destroyed: gone from every host.
        let other = EntityRef::new("other".to_string(), "x".to_string());
        index.moved(&other, None, Some("h2"));
        index.forget_app("app");
        assert_eq!(index.on("h2").cloned().collect::<Vec<_>>(), [other]);
    }
}
