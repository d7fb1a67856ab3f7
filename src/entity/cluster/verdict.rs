//! The answer to a resize once the cluster has settled (pure).

use serde_json::json;

use crate::protocol::{EntityError, EntityRef};

/// A member on fire when a resize settles.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedMember<'a> {
    pub id: &'a str,
    /// Its `entity.error`.
    pub error: Option<&'a str>,
    /// Its placement failed for want of a host (the pool is full and
    /// cannot grow).
    pub no_capacity: bool,
}

/// The size reached, or which members failed and why. If any member failed
/// for want of a host, the answer is insufficient capacity: the cluster
/// autoscaler then holds its size below this one for a while instead of
/// asking the full pool again and again.
pub fn resize_verdict(
    cluster: &EntityRef,
    size: usize,
    failed: &[FailedMember],
) -> Result<serde_json::Value, EntityError> {
    if failed.is_empty() {
        return Ok(json!({ "size": size }));
    }
    let listed: Vec<String> = failed
        .iter()
        .map(|m| format!("{} ({})", m.id, m.error.unwrap_or("failed")))
        .collect();
    let message = format!("members failed: {}", listed.join(", "));
    let entity = cluster.to_string();
    if failed.iter().any(|m| m.no_capacity) {
        Err(EntityError::InsufficientCapacity { entity, message })
    } else {
        Err(EntityError::Failed { entity, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> EntityRef {
        EntityRef::new("shop", "web")
    }

    #[test]
    fn a_settled_resize_answers_its_size() {
        assert_eq!(
            resize_verdict(&web(), 3, &[]).unwrap(),
            json!({ "size": 3 })
        );
    }

    #[test]
    fn members_that_crashed_fail_the_resize() {
        let failed = [FailedMember {
            id: "web-2",
            error: Some("exited with code 1"),
            no_capacity: false,
        }];
        let e = resize_verdict(&web(), 2, &failed).unwrap_err();
        assert!(matches!(e, EntityError::Failed { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "shop/web: members failed: web-2 (exited with code 1)"
        );
    }

    #[test]
    fn a_member_without_a_host_makes_it_insufficient_capacity() {
        let failed = [
            FailedMember {
                id: "web-3",
                error: None,
                no_capacity: false,
            },
            FailedMember {
                id: "web-4",
                error: Some("insufficient capacity in location pool: web-4 fits on no host"),
                no_capacity: true,
            },
        ];
        let e = resize_verdict(&web(), 4, &failed).unwrap_err();
        assert!(
            matches!(e, EntityError::InsufficientCapacity { .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "shop/web: insufficient capacity: members failed: web-3 (failed), \
             web-4 (insufficient capacity in location pool: web-4 fits on no host)"
        );
    }
}
