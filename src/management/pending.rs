//! An apply's steps survive a `kill -9` of drover: intent before action.
//!
//! Before the new blueprint is stored, the steps its plan asks for that a
//! rebind would not redo by itself (resizes, rollouts, policy overrides
//! reset) are stored with the blueprint's text, as the application's
//! memory under [`PENDING`]. They are cleared once the application entity
//! has carried them out. At start, an application whose stored blueprint
//! is the one the pending apply was for gets them again: its clusters
//! restore the new size and roll to the blueprint's member spec, and the
//! overrides go. Added services are made by the rebind itself (it builds
//! every service of the stored blueprint), and the containers of removed
//! ones are the orphan sweep's. Every step is idempotent: replaying a
//! finished apply changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::wire::{Plan, PlanAction};

/// The key of a pending apply among the application's memory.
pub const PENDING: &str = "apply.pending";

/// The steps of an apply a rebind must finish.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingApply {
    /// The blueprint it was for: a pending apply of another text (the
    /// crash came before the blueprint was stored) is dropped.
    pub text: String,
    /// Cluster → the size the blueprint asks for.
    #[serde(default)]
    pub resize: BTreeMap<String, u32>,
    /// Clusters rolled to the blueprint's member spec.
    #[serde(default)]
    pub roll: BTreeSet<String>,
    /// Policy overrides the apply resets: (entity, policy).
    #[serde(default)]
    pub reset: Vec<(String, String)>,
}

impl PendingApply {
    /// What of `plan` a rebind must redo (pure).
    pub fn of(plan: &Plan, text: &str) -> PendingApply {
        let kept = |a: PlanAction| matches!(a, PlanAction::InPlace | PlanAction::Rolled);
        PendingApply {
            text: text.to_string(),
            resize: plan
                .services
                .iter()
                .filter(|s| kept(s.action))
                .filter_map(|s| {
                    let c = s.changes.iter().find(|c| c.path == "initial_size")?;
                    Some((s.id.clone(), c.to.as_u64()? as u32))
                })
                .collect(),
            roll: plan
                .services
                .iter()
                .filter(|s| s.action == PlanAction::Rolled)
                .map(|s| s.id.clone())
                .collect(),
            reset: plan
                .overrides_reset
                .iter()
                .map(|o| (o.entity.clone(), o.policy.clone()))
                .collect(),
        }
    }

    /// The pending apply stored for an application, if it is for `text`.
    pub fn stored_for(saved: Option<&serde_json::Value>, text: &str) -> Option<PendingApply> {
        let p: PendingApply = serde_json::from_value(saved?.clone()).ok()?;
        (p.text == text).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PlanChange, PolicyOverrideRef, ServicePlan};
    use serde_json::json;

    fn service(id: &str, action: PlanAction, changes: Vec<PlanChange>) -> ServicePlan {
        ServicePlan {
            id: id.into(),
            action,
            changes,
            reason: None,
        }
    }

    #[test]
    fn resizes_rollouts_and_resets_are_kept_for_a_rebind() {
        let plan = Plan {
            app: "shop".into(),
            create: false,
            services: vec![
                service(
                    "web",
                    PlanAction::InPlace,
                    vec![PlanChange {
                        path: "initial_size".into(),
                        from: json!(2),
                        to: json!(3),
                    }],
                ),
                service("api", PlanAction::Rolled, vec![]),
                service("cache", PlanAction::Added, vec![]),
                service("old", PlanAction::Removed, vec![]),
            ],
            overrides_reset: vec![PolicyOverrideRef {
                entity: "web".into(),
                policy: "autoscaler".into(),
            }],
            noop: false,
        };
        let p = PendingApply::of(&plan, "text");
        assert_eq!(p.resize, BTreeMap::from([("web".to_string(), 3)]));
        assert_eq!(p.roll, BTreeSet::from(["api".to_string()]));
        assert_eq!(p.reset, [("web".to_string(), "autoscaler".to_string())]);
        let stored = serde_json::to_value(&p).unwrap();
        assert_eq!(PendingApply::stored_for(Some(&stored), "text"), Some(p));
        // Stored for another blueprint (the crash came before it was
        // stored), or cleared: nothing to finish.
        assert_eq!(PendingApply::stored_for(Some(&stored), "other"), None);
        assert_eq!(
            PendingApply::stored_for(Some(&serde_json::Value::Null), "text"),
            None
        );
    }
}
