//! The order of an application's tree and the token that marks where a
//! page of it ends (`?limit=N&continue=TOKEN`).

use crate::protocol::EntityKind;
use crate::wire::EntityView;

/// Where a page of the tree ends: the last entity's place in the tree's
/// order. As text (`continue=`) it is `DEPTH.N.STEM.ID`, all of it made of
/// entity ids' letters, digits and `-`, so it needs no URL encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageToken((u8, String, u64, String));

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (depth, stem, n, id) = &self.0;
        write!(f, "{depth}.{n}.{stem}.{id}")
    }
}

impl PageToken {
    /// The place of this entity in its application's tree.
    pub(super) fn of(v: &EntityView) -> Self {
        PageToken(depth_key(v))
    }

    /// The id of the entity at this place.
    pub(super) fn id(&self) -> &str {
        &self.0 .3
    }
}

impl std::str::FromStr for PageToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("`continue={s}` is not a token drover gave; use the `continue` of the last page, or leave it out to start over")
        };
        let mut parts = s.splitn(4, '.');
        let depth = parts.next().and_then(|d| d.parse().ok()).ok_or_else(bad)?;
        let n = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let stem = parts.next().ok_or_else(bad)?.to_string();
        let id = parts.next().filter(|i| !i.contains('.')).ok_or_else(bad)?;
        Ok(PageToken((depth, stem, n, id.to_string())))
    }
}

/// Sort key of the tree: the application, then services, then members;
/// `web-10` after `web-9`.
fn depth_key(v: &EntityView) -> (u8, String, u64, String) {
    let depth = match v.kind {
        EntityKind::Application => 0,
        _ if v.parent.is_some() && v.kind == EntityKind::Container && v.id.contains('-') => 2,
        _ => 1,
    };
    let (stem, n) = match v.id.rsplit_once('-') {
        Some((stem, n)) if n.chars().all(|c| c.is_ascii_digit()) => {
            (stem.to_string(), n.parse().unwrap_or(0))
        }
        _ => (v.id.clone(), 0),
    };
    (
        depth,
        v.parent.clone().unwrap_or_default() + &stem,
        n,
        v.id.clone(),
    )
}
