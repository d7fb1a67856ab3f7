//! The read model: the management actor's view of every entity, kept up to
//! date from the entities' events, and the answers built from it (the
//! tree, summaries, the latest activity of each entity).
//!
//! Plain data with methods: no actor, no handle, no clock. The actor owns
//! one and feeds it; the REST answers are computed here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::activity::Activity;
use crate::protocol::{sensors as s, EntityKind, EntityRef, Lifecycle, SensorValue};
use crate::wire::{AppSummary, EntityView};

#[derive(Debug, Default)]
pub struct ReadModel {
    views: HashMap<EntityRef, EntityView>,
}

impl ReadModel {
    /// A new entity, in state `created`, listed among its parent's children.
    pub fn register(&mut self, me: &EntityRef, kind: EntityKind, parent: Option<&EntityRef>) {
        if let Some(p) = parent.and_then(|p| self.views.get_mut(p)) {
            if !p.children.contains(&me.entity) {
                p.children.push(me.entity.clone());
            }
        }
        self.views.insert(
            me.clone(),
            EntityView {
                id: me.entity.clone(),
                kind,
                state: Lifecycle::Created,
                parent: parent.map(|p| p.entity.clone()),
                children: Vec::new(),
                sensors: BTreeMap::new(),
            },
        );
    }

    /// An entity went away: it leaves the tree and its parent's children.
    pub fn forget(&mut self, me: &EntityRef) {
        if let Some(view) = self.views.remove(me) {
            if let Some(parent) = view.parent.as_ref() {
                if let Some(p) = self
                    .views
                    .get_mut(&EntityRef::new(me.app.clone(), parent.clone()))
                {
                    p.children.retain(|c| c != &me.entity);
                }
            }
        }
    }

    /// Every entity of an application goes (a destroy).
    pub fn forget_app(&mut self, app: &str) {
        self.views.retain(|k, _| k.app != app);
    }

    /// A sensor's new value; null removes it.
    pub fn set_sensor(&mut self, source: &EntityRef, name: String, value: SensorValue) {
        if let Some(v) = self.views.get_mut(source) {
            if value.value.is_null() {
                v.sensors.remove(&name);
            } else {
                v.sensors.insert(name, value);
            }
        }
    }

    pub fn set_state(&mut self, source: &EntityRef, state: Lifecycle) {
        if let Some(v) = self.views.get_mut(source) {
            v.state = state;
        }
    }

    pub fn get(&self, r: &EntityRef) -> Option<&EntityView> {
        self.views.get(r)
    }

    pub fn contains(&self, r: &EntityRef) -> bool {
        self.views.contains_key(r)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&EntityRef, &EntityView)> {
        self.views.iter()
    }

    /// This drover's containers on a host, as its entities report them: exact
    /// at once, where the engine's resync count lags by up to its period.
    pub fn containers_on(&self, host: &str) -> usize {
        self.views
            .values()
            .filter(|v| v.kind == EntityKind::Container)
            .filter(|v| v.sensors.contains_key(s::CONTAINER_ID))
            .filter(|v| v.sensors.get(s::HOST_NAME).and_then(|x| x.value.as_str()) == Some(host))
            .count()
    }

    /// An application's entities: parents before children, members by number.
    pub fn app_entities(&self, app: &str) -> Vec<EntityView> {
        let mut v: Vec<EntityView> = self
            .views
            .iter()
            .filter(|(r, _)| r.app == app)
            .map(|(_, view)| view.clone())
            .collect();
        v.sort_by_key(depth_key);
        v
    }

    /// One page of the tree: at most `limit` entities after the one a
    /// `continue` token names, and the token of the next page if there is
    /// more. Only the page is copied: a 10,000-member tree took a second
    /// to copy and send whole.
    pub fn app_page(
        &self,
        app: &str,
        limit: usize,
        after: Option<&PageToken>,
    ) -> (Vec<EntityView>, Option<PageToken>) {
        let mut keyed: Vec<(PageToken, &EntityView)> = self
            .views
            .iter()
            .filter(|(r, _)| r.app == app)
            .map(|(_, view)| (PageToken(depth_key(view)), view))
            .filter(|(k, _)| after.is_none_or(|a| k > a))
            .collect();
        let more = keyed.len() > limit;
        if more {
            keyed.select_nth_unstable_by(limit, |a, b| a.0.cmp(&b.0));
            keyed.truncate(limit);
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let next = more.then(|| keyed.last().map(|(k, _)| k.clone())).flatten();
        (keyed.into_iter().map(|(_, v)| v.clone()).collect(), next)
    }

    /// The row of `GET /v1/applications`.
    pub fn summary(&self, app: &str, location: &str, created_ms: u64) -> AppSummary {
        let root = self.views.get(&EntityRef::new(app, app));
        AppSummary {
            id: app.to_string(),
            location: location.to_string(),
            state: root.map(|r| r.state).unwrap_or(Lifecycle::Stopped),
            entity_count: self.views.keys().filter(|r| r.app == app).count(),
            created_ms,
        }
    }

    /// The blueprint service an entity belongs to: a cluster member's
    /// cluster, or the entity itself. Metric labels use it, never a member
    /// id: members are numbered without bound as they are replaced.
    pub fn service_of(&self, r: &EntityRef) -> String {
        match self.views.get(r).and_then(|e| e.parent.as_ref()) {
            Some(parent) if parent != &r.app => parent.clone(),
            _ => r.entity.clone(),
        }
    }
}

/// The newest activity of each of `entities` (ids of one application's
/// current entities), from a record ordered newest first. Activities older
/// than `since_ms` belong to an earlier incarnation of the application (one
/// destroyed and deployed again under the same name) and are not shown as
/// the new entities' latest.
///
/// Only entities still in the tree count towards stopping early: removed
/// members keep activities in the record, and counting them would end the
/// search before a long-lived entity's last activity is reached.
pub fn latest_activities<'a>(
    newest_first: impl IntoIterator<Item = &'a Activity>,
    app: &str,
    entities: &BTreeSet<&str>,
    since_ms: u64,
) -> BTreeMap<String, Activity> {
    let mut latest = BTreeMap::new();
    if entities.is_empty() {
        return latest;
    }
    for a in newest_first {
        if a.application != app || a.time_ms < since_ms || !entities.contains(a.entity.as_str()) {
            continue;
        }
        latest.entry(a.entity.clone()).or_insert_with(|| a.clone());
        if latest.len() == entities.len() {
            break;
        }
    }
    latest
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_the_tree_in_order_and_tokens_read_back() {
        let mut m = ReadModel::default();
        let root = r("shop", "shop");
        m.register(&root, EntityKind::Application, None);
        let web = r("shop", "web");
        m.register(&web, EntityKind::Cluster, Some(&root));
        for i in 1..=12 {
            m.register(
                &r("shop", &format!("web-{i}")),
                EntityKind::Container,
                Some(&web),
            );
        }
        m.register(&r("blog", "blog"), EntityKind::Application, None);
        let whole: Vec<String> = m.app_entities("shop").into_iter().map(|v| v.id).collect();
        let mut paged = Vec::new();
        let mut after: Option<PageToken> = None;
        loop {
            let (page, next) = m.app_page("shop", 5, after.as_ref());
            assert!(page.len() <= 5);
            paged.extend(page.into_iter().map(|v| v.id));
            let Some(t) = next else { break };
            let text = t.to_string();
            assert!(text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
            after = Some(text.parse().expect("a token reads back"));
        }
        assert_eq!(paged, whole, "pages in order, none twice, none missed");
        assert_eq!(whole.len(), 14);
        assert_eq!(m.app_page("shop", 14, None).1, None, "no next page");
        assert!("x".parse::<PageToken>().is_err());
        assert!("2.1.web.web-1.x".parse::<PageToken>().is_err());
    }

    fn r(app: &str, e: &str) -> EntityRef {
        EntityRef::new(app, e)
    }

    fn activity(id: u64, time_ms: u64, app: &str, entity: &str, name: &str) -> Activity {
        Activity {
            id,
            time_ms,
            application: app.into(),
            entity: entity.into(),
            kind: "event".into(),
            name: name.into(),
            args: serde_json::json!({}),
            outcome: "ok".into(),
            message: None,
            duration_seconds: 0.0,
        }
    }

    fn shop() -> ReadModel {
        let mut m = ReadModel::default();
        m.register(&r("shop", "shop"), EntityKind::Application, None);
        m.register(
            &r("shop", "web"),
            EntityKind::Cluster,
            Some(&r("shop", "shop")),
        );
        for i in [10, 9, 2] {
            m.register(
                &r("shop", &format!("web-{i}")),
                EntityKind::Container,
                Some(&r("shop", "web")),
            );
        }
        m
    }

    #[test]
    fn containers_on_counts_members_with_a_container_on_that_host() {
        let mut m = shop();
        let sv = |v: serde_json::Value| SensorValue {
            value: v,
            timestamp_ms: 1,
        };
        for (e, host, id) in [
            ("web-2", "local", Some("c2")),
            ("web-9", "local", None),
            ("web-10", "pool-1", Some("c10")),
        ] {
            m.set_sensor(&r("shop", e), s::HOST_NAME.into(), sv(host.into()));
            if let Some(id) = id {
                m.set_sensor(&r("shop", e), s::CONTAINER_ID.into(), sv(id.into()));
            }
        }
        // The cluster itself names no host; web-9 has no container yet.
        assert_eq!(m.containers_on("local"), 1);
        assert_eq!(m.containers_on("pool-1"), 1);
        assert_eq!(m.containers_on("pool-2"), 0);
    }

    #[test]
    fn the_tree_lists_parents_first_and_members_by_number() {
        let ids: Vec<String> = shop()
            .app_entities("shop")
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, ["shop", "web", "web-2", "web-9", "web-10"]);
    }

    #[test]
    fn a_forgotten_member_leaves_its_parents_children() {
        let mut m = shop();
        m.forget(&r("shop", "web-9"));
        let web = m.get(&r("shop", "web")).unwrap();
        assert_eq!(web.children, ["web-10", "web-2"]);
        assert!(!m.contains(&r("shop", "web-9")));
    }

    #[test]
    fn the_summary_counts_entities_and_takes_the_roots_state() {
        let mut m = shop();
        m.register(&r("other", "other"), EntityKind::Application, None);
        m.set_state(&r("shop", "shop"), Lifecycle::Running);
        let s = m.summary("shop", "local", 7);
        assert_eq!(
            (s.entity_count, s.state, s.created_ms),
            (5, Lifecycle::Running, 7)
        );
        assert_eq!(m.summary("gone", "local", 0).state, Lifecycle::Stopped);
    }

    #[test]
    fn a_null_sensor_value_removes_the_sensor() {
        let mut m = shop();
        let at = r("shop", "web-2");
        let v = |x: serde_json::Value| SensorValue {
            value: x,
            timestamp_ms: 1,
        };
        m.set_sensor(&at, "host.name".into(), v(serde_json::json!("local")));
        assert!(m.get(&at).unwrap().sensors.contains_key("host.name"));
        m.set_sensor(&at, "host.name".into(), v(serde_json::Value::Null));
        assert!(m.get(&at).unwrap().sensors.is_empty());
    }

    #[test]
    fn members_belong_to_their_cluster_and_services_to_themselves() {
        let m = shop();
        assert_eq!(m.service_of(&r("shop", "web-10")), "web");
        assert_eq!(m.service_of(&r("shop", "web")), "web");
        assert_eq!(m.service_of(&r("shop", "unknown")), "unknown");
    }

    #[test]
    fn a_long_lived_entity_keeps_its_latest_activity_behind_removed_members() {
        // Newest first: many replaced members' activities, then the
        // cluster's own, older one.
        let mut record: Vec<Activity> = (0..20)
            .map(|i| {
                activity(
                    100 - i,
                    1000 - i,
                    "shop",
                    &format!("web-{}", 30 + i),
                    "entity.failed",
                )
            })
            .collect();
        record.push(activity(5, 500, "shop", "web", "resize"));
        let current = BTreeSet::from(["shop", "web", "web-30"]);
        let latest = latest_activities(&record, "shop", &current, 0);
        assert_eq!(latest["web"].name, "resize");
        assert_eq!(latest["web-30"].id, 100);
        assert!(
            !latest.contains_key("web-31"),
            "removed members are not in the tree"
        );
        assert!(!latest.contains_key("shop"));
    }

    #[test]
    fn the_latest_activity_is_the_newest_of_this_application() {
        let record = [
            activity(3, 30, "other", "web", "resize"),
            activity(2, 20, "shop", "web", "resize"),
            activity(1, 10, "shop", "web", "start"),
        ];
        let latest = latest_activities(&record, "shop", &BTreeSet::from(["web"]), 0);
        assert_eq!(latest["web"].id, 2);
    }

    #[test]
    fn a_redeployed_application_shows_none_of_its_predecessors_activities() {
        let record = [
            activity(3, 300, "shop", "shop", "start"),
            activity(2, 150, "shop", "shop", "destroy"),
            activity(1, 100, "shop", "web-1", "entity.failed"),
        ];
        let latest = latest_activities(&record, "shop", &BTreeSet::from(["shop", "web-1"]), 200);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest["shop"].id, 3);
    }
}
