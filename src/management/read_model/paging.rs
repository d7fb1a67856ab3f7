//! The order of an application's tree and the token that marks where a
//! page of it ends (`?limit=N&continue=TOKEN`).

use crate::protocol::EntityKind;
use crate::wire::EntityView;

/// Where a page of the tree ends: the last entity's place in the tree's
/// order. As text (`continue=`) it is
/// `DEPTH.SERVICE_N.SERVICE_STEM.SERVICE.RANK.N.STEM.ID`, all of it made of
/// entity ids' letters, digits and `-`, so it needs no URL encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageToken(Key);

/// (depth, the service's stem, number and id, 0 for the service itself or
/// 1 for a member, the member's stem, number and id).
type Key = (u8, String, u64, String, u8, String, u64, String);

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (depth, s_stem, s_n, service, rank, stem, n, id) = &self.0;
        write!(f, "{depth}.{s_n}.{s_stem}.{service}.{rank}.{n}.{stem}.{id}")
    }
}

impl PageToken {
    /// The place of this entity in its application's tree.
    pub(super) fn of(app: &str, v: &EntityView) -> Self {
        PageToken(tree_key(app, v))
    }

    /// The id of the entity at this place.
    pub(super) fn id(&self) -> &str {
        &self.0 .7
    }
}

impl std::str::FromStr for PageToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`continue={s}` is not a token drover gave; use the `continue` of the last page, or leave it out to start over")
        };
        let parts: Vec<&str> = s.splitn(8, '.').collect();
        let [depth, s_n, s_stem, service, rank, n, stem, id] = parts[..] else {
            return Err(bad());
        };
        if id.contains('.') {
            return Err(bad());
        }
        let number = |x: &str| x.parse::<u64>().map_err(|_| bad());
        let small = |x: &str| x.parse::<u8>().map_err(|_| bad());
        Ok(PageToken((
            small(depth)?,
            s_stem.to_string(),
            number(s_n)?,
            service.to_string(),
            small(rank)?,
            stem.to_string(),
            number(n)?,
            id.to_string(),
        )))
    }
}

/// An id as (stem, number) for the natural order: `web-10` after `web-9`.
fn natural(id: &str) -> (String, u64) {
    match id.rsplit_once('-') {
        Some((stem, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (stem.to_string(), n.parse().unwrap_or(u64::MAX))
        }
        _ => (id.to_string(), 0),
    }
}

/// Sort key of the tree, in pre-order: the application, then each service
/// followed by its members, services and members in natural order. Each
/// service comes with its own members rather than all services first: a
/// service's node names every member (`children`, `group.members`,
/// `group.endpoints`, 71 KB for 1,000 members), and with ten such services
/// at the head of the tree the first page of a 10,000-member application
/// weighed twice any other (issue 18).
fn tree_key(app: &str, v: &EntityView) -> Key {
    let (stem, n) = natural(&v.id);
    match v.parent.as_deref() {
        None if v.kind == EntityKind::Application => (
            0,
            String::new(),
            0,
            String::new(),
            0,
            String::new(),
            0,
            v.id.clone(),
        ),
        // A member: after its service, with the service's other members.
        Some(parent) if parent != app => {
            let (s_stem, s_n) = natural(parent);
            (1, s_stem, s_n, parent.to_string(), 1, stem, n, v.id.clone())
        }
        // A service of the application (or an entity without a parent).
        _ => (1, stem, n, v.id.clone(), 0, String::new(), 0, v.id.clone()),
    }
}
