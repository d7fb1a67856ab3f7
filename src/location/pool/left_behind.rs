//! Containers left behind on a host that was on fire (issue 18 bug (b)).
//!
//! When a host goes silent its containers start again elsewhere; the old
//! ones may still run on it (the engine was unreachable, not the
//! machine dead). When it answers again, the containers of entities that
//! were moved off it and are not placed on it again are duplicates, and
//! are removed, as Kubernetes deletes the pods of a node that comes back
//! after its pods were rescheduled.

use super::super::model::MemberKey;
use crate::host::ManagedContainer;

/// The ids of `listed` (what the returned host runs) to remove: this
/// drover's containers of entities `moved` off the host while it was away
/// that the pool has not placed on it again. For a host on fire, `moved`
/// is the set of entities moved off it; for a host whose start list never
/// came, it is "placed on another host" (the entity was found nowhere and
/// placed anew meanwhile). Containers of entities the pool has no
/// placement for (an agent, an orphan) are never removed here: the
/// orphan sweep and their owners decide those.
pub fn left_behind(
    listed: &[ManagedContainer],
    moved: impl Fn(&MemberKey) -> bool,
    placed_here: impl Fn(&MemberKey) -> bool,
    owner: Option<&str>,
) -> Vec<String> {
    listed
        .iter()
        .filter(|c| owner.is_none_or(|o| c.owner.as_deref() == Some(o)))
        .filter(|c| {
            let key = (c.app.clone(), c.entity.clone());
            moved(&key) && !placed_here(&key)
        })
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn c(id: &str, entity: &str, owner: &str) -> ManagedContainer {
        ManagedContainer {
            owner: Some(owner.into()),
            id: id.into(),
            name: format!("drover-app-{entity}"),
            app: "app".into(),
            entity: entity.into(),
            state: "running".into(),
            health: None,
            ports: Default::default(),
        }
    }

    #[test]
    fn only_moved_off_containers_not_placed_back_are_removed() {
        let listed = [
            c("1", "moved", "me"),
            c("2", "moved-and-back", "me"),
            c("3", "never-moved", "me"),
            c("4", "moved", "another-drover"),
        ];
        let key = |e: &str| ("app".to_string(), e.to_string());
        let moved_off: HashSet<MemberKey> = [key("moved"), key("moved-and-back")].into();
        let placed_here = |k: &MemberKey| *k == key("moved-and-back");
        assert_eq!(
            left_behind(&listed, |k| moved_off.contains(k), placed_here, Some("me")),
            vec!["1".to_string()]
        );
        // Without an identity (no store) every managed container is ours.
        assert_eq!(
            left_behind(&listed, |k| moved_off.contains(k), placed_here, None),
            vec!["1".to_string(), "4".to_string()]
        );
        assert!(left_behind(&listed, |_| false, |_| false, Some("me")).is_empty());
    }

    #[test]
    fn a_host_never_listed_leaves_behind_what_is_placed_elsewhere() {
        let listed = [
            c("1", "placed-elsewhere", "me"),
            c("2", "placed-here", "me"),
            c("3", "placed-nowhere", "me"),
            c("4", "placed-elsewhere", "another-drover"),
        ];
        let elsewhere = |k: &MemberKey| k.1 == "placed-elsewhere";
        let placed_here = |k: &MemberKey| k.1 == "placed-here";
        assert_eq!(
            left_behind(&listed, elsewhere, placed_here, Some("me")),
            vec!["1".to_string()]
        );
    }
}
