//! Containers left behind on a host that was on fire (issue 18 bug (b)).
//!
//! When a host goes silent its containers start again elsewhere; the old
//! ones may still run on it (the engine was unreachable, not the
//! machine dead). When it answers again, the containers of entities that
//! were moved off it and are not placed on it again are duplicates, and
//! are removed, as Kubernetes deletes the pods of a node that comes back
//! after its pods were rescheduled.

use std::collections::HashSet;

use super::super::model::MemberKey;
use crate::host::ManagedContainer;

/// The ids of `listed` (what the returned host runs) to remove: this
/// drover's containers of entities moved off the host while it was on
/// fire (`moved_off`) that the pool has not placed on it again.
/// `moved_off` is `None` for a host whose start list never came: every
/// entity found nowhere else was placed anew meanwhile, so any container
/// of this drover's there that the pool has not placed on it is a
/// duplicate (or an orphan of an application destroyed meanwhile).
pub fn left_behind(
    listed: &[ManagedContainer],
    moved_off: Option<&HashSet<MemberKey>>,
    placed_here: impl Fn(&MemberKey) -> bool,
    owner: Option<&str>,
) -> Vec<String> {
    listed
        .iter()
        .filter(|c| owner.is_none_or(|o| c.owner.as_deref() == Some(o)))
        .filter(|c| {
            let key = (c.app.clone(), c.entity.clone());
            moved_off.is_none_or(|m| m.contains(&key)) && !placed_here(&key)
        })
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            left_behind(&listed, Some(&moved_off), placed_here, Some("me")),
            vec!["1".to_string()]
        );
        // Without an identity (no store) every managed container is ours.
        assert_eq!(
            left_behind(&listed, Some(&moved_off), placed_here, None),
            vec!["1".to_string(), "4".to_string()]
        );
        assert!(left_behind(&listed, Some(&HashSet::new()), |_| false, Some("me")).is_empty());
    }

    #[test]
    fn a_host_never_listed_leaves_behind_all_of_ours_not_placed_on_it() {
        let listed = [
            c("1", "placed-elsewhere", "me"),
            c("2", "placed-here", "me"),
            c("3", "theirs", "another-drover"),
        ];
        let placed_here = |k: &MemberKey| k.1 == "placed-here";
        assert_eq!(
            left_behind(&listed, None, placed_here, Some("me")),
            vec!["1".to_string()]
        );
    }
}
