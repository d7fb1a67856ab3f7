//! The read model: the management actor's view of every entity, kept up to
//! date from the entities' events, and the answers built from it (the
//! tree, summaries, the latest activity of each entity).
//!
//! Plain data with methods: no actor, no handle, no clock. The actor owns
//! one and feeds it (through [`super::read_view`], which shares it with the
//! REST API); the REST answers are computed here.
//!
//! Kept per application, in the tree's order, so that a page of a
//! 10,000-member tree costs the page (a range of an ordered set), not the
//! application, and the tree needs no sort. Views are behind `Arc`s: a
//! reader copies out pointers, never entities, and a writer copies an
//! entity only if a reader still holds it ([`Arc::make_mut`]). The
//! counts a metrics scrape needs (entities by kind and state, containers
//! holding reservations on each host) are kept as entities change, so a
//! scrape walks services and hosts, not entities.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use crate::activity::Activity;
use crate::protocol::{sensors as s, EntityKind, EntityRef, Lifecycle, SensorValue};
use crate::wire::{AppSummary, EntityView};

mod host_index;
mod paging;

pub use host_index::HostIndex;
pub use paging::PageToken;

/// A view's sensor set to `value` (removed if null). The name is looked up
/// (interned) only when the view does not have the sensor yet: every
/// sensor event of every entity comes here.
fn set_or_remove(v: &mut EntityView, name: &str, value: SensorValue) {
    if value.value.is_null() {
        v.sensors.remove(name);
    } else if let Some(old) = v.sensors.get_mut(name) {
        *old = value;
    } else {
        v.sensors.insert(name.into(), value);
    }
}

#[derive(Debug, Default)]
pub struct ReadModel {
    /// Hashed with foldhash, as `views`: each sensor event looks up both.
    apps: foldhash::HashMap<String, AppTree>,
    /// Host → (application, service) → its containers on that host that
    /// hold their resources there (starting, running or on fire), for the
    /// host reservation gauges.
    reserving: HashMap<String, HashMap<(String, String), usize>>,
    /// Which entities name each host in `host.name`: a host's resync goes
    /// to its own entities only.
    by_host: HostIndex,
}

/// One application's entities.
#[derive(Debug, Default)]
struct AppTree {
    views: foldhash::HashMap<String, Arc<EntityView>>,
    /// Every entity's place in the tree: the application, then each
    /// service followed by its members, by number.
    order: BTreeSet<PageToken>,
    /// Entities by kind and state.
    counts: HashMap<(EntityKind, Lifecycle), i64>,
    /// Clusters and load balancers: the entities with gauges of their own.
    services: BTreeSet<String>,
}

impl ReadModel {
    /// A new entity, in state `created`, listed among its parent's children.
    pub fn register(&mut self, me: &EntityRef, kind: EntityKind, parent: Option<&EntityRef>) {
        let view = EntityView {
            id: me.entity.clone(),
            kind,
            state: Lifecycle::Created,
            parent: parent.map(|p| p.entity.clone()),
            children: Vec::new(),
            sensors: BTreeMap::new(),
        };
        // Registered again (rebuilt): the old view's counts go first.
        self.forget(me);
        let tree = self.apps.entry(me.app.clone()).or_default();
        if let Some(p) = parent.and_then(|p| tree.views.get_mut(&p.entity)) {
            if !p.children.contains(&me.entity) {
                Arc::make_mut(p).children.push(me.entity.clone());
            }
        }
        *tree.counts.entry((kind, view.state)).or_default() += 1;
        if matches!(kind, EntityKind::Cluster | EntityKind::LoadBalancer) {
            tree.services.insert(me.entity.clone());
        }
        tree.order.insert(PageToken::of(&me.app, &view));
        tree.views.insert(me.entity.clone(), Arc::new(view));
    }

    /// An entity went away: it leaves the tree and its parent's children.
    pub fn forget(&mut self, me: &EntityRef) {
        let Some(tree) = self.apps.get_mut(&me.app) else {
            return;
        };
        let Some(view) = tree.views.remove(&me.entity) else {
            return;
        };
        tree.order.remove(&PageToken::of(&me.app, &view));
        tree.services.remove(&me.entity);
        if let Some(n) = tree.counts.get_mut(&(view.kind, view.state)) {
            *n -= 1;
        }
        if let Some(p) = view.parent.as_ref().and_then(|p| tree.views.get_mut(p)) {
            Arc::make_mut(p).children.retain(|c| c != &me.entity);
        }
        let held = reserving_host(&view).map(|h| h.to_string());
        let service = service_in(&me.app, &view).to_string();
        self.reserve(&me.app, &service, held.as_deref(), None);
        self.by_host.moved(me, host_of(&view), None);
    }

    /// Every entity of an application goes (a destroy).
    pub fn forget_app(&mut self, app: &str) {
        self.apps.remove(app);
        self.by_host.forget_app(app);
        for per_service in self.reserving.values_mut() {
            per_service.retain(|(a, _), _| a != app);
        }
        self.reserving
            .retain(|_, per_service| !per_service.is_empty());
    }

    /// A sensor's new value; null removes it.
    pub fn set_sensor(&mut self, source: &EntityRef, name: &str, value: SensorValue) {
        let Some(v) = self
            .apps
            .get_mut(&source.app)
            .and_then(|t| t.views.get_mut(&source.entity))
        else {
            return;
        };
        if name != s::HOST_NAME {
            set_or_remove(Arc::make_mut(v), name, value);
            return;
        }
        // The host changes where the container's reservation counts.
        let before = reserving_host(v).map(|h| h.to_string());
        let was = host_of(v).map(str::to_string);
        let v = Arc::make_mut(v);
        set_or_remove(v, name, value);
        let after = reserving_host(v).map(|h| h.to_string());
        let service = service_in(&source.app, v).to_string();
        self.by_host.moved(source, was.as_deref(), host_of(v));
        self.reserve(&source.app, &service, before.as_deref(), after.as_deref());
    }

    /// The entities whose `host.name` names this host.
    pub fn on_host(&self, host: &str) -> impl Iterator<Item = &EntityRef> {
        self.by_host.on(host)
    }

    pub fn set_state(&mut self, source: &EntityRef, state: Lifecycle) {
        let Some(tree) = self.apps.get_mut(&source.app) else {
            return;
        };
        let Some(v) = tree.views.get_mut(&source.entity) else {
            return;
        };
        if v.state == state {
            return;
        }
        let before = reserving_host(v).map(|h| h.to_string());
        if let Some(n) = tree.counts.get_mut(&(v.kind, v.state)) {
            *n -= 1;
        }
        *tree.counts.entry((v.kind, state)).or_default() += 1;
        let v = Arc::make_mut(v);
        v.state = state;
        let after = reserving_host(v).map(|h| h.to_string());
        if before != after {
            let service = service_in(&source.app, v).to_string();
            self.reserve(&source.app, &service, before.as_deref(), after.as_deref());
        }
    }

    /// Moves one container's reservation from host `from` to host `to`.
    fn reserve(&mut self, app: &str, service: &str, from: Option<&str>, to: Option<&str>) {
        if from == to {
            return;
        }
        if let Some(host) = from {
            if let Some(per_service) = self.reserving.get_mut(host) {
                let key = (app.to_string(), service.to_string());
                if let Some(n) = per_service.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        per_service.remove(&key);
                    }
                }
                if per_service.is_empty() {
                    self.reserving.remove(host);
                }
            }
        }
        if let Some(host) = to {
            *self
                .reserving
                .entry(host.to_string())
                .or_default()
                .entry((app.to_string(), service.to_string()))
                .or_default() += 1;
        }
    }

    pub fn get(&self, r: &EntityRef) -> Option<&EntityView> {
        self.shared(r).map(|v| &**v)
    }

    /// An entity's view, to keep after the model is unlocked.
    pub fn shared(&self, r: &EntityRef) -> Option<&Arc<EntityView>> {
        self.apps.get(&r.app)?.views.get(&r.entity)
    }

    pub fn contains(&self, r: &EntityRef) -> bool {
        self.shared(r).is_some()
    }

    /// Every entity, with its application.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &EntityView)> {
        self.apps
            .iter()
            .flat_map(|(app, t)| t.views.values().map(move |v| (app.as_str(), &**v)))
    }

    /// This drover's containers on a host, as its entities report them: exact
    /// at once, where the engine's resync count lags by up to its period.
    pub fn containers_on(&self, host: &str) -> usize {
        self.iter()
            .map(|(_, v)| v)
            .filter(|v| v.kind == EntityKind::Container)
            .filter(|v| v.sensors.contains_key(s::CONTAINER_ID))
            .filter(|v| v.sensors.get(s::HOST_NAME).and_then(|x| x.value.as_str()) == Some(host))
            .count()
    }

    /// An application's entities: parents before children, members by number.
    pub fn app_entities(&self, app: &str) -> Vec<Arc<EntityView>> {
        let Some(tree) = self.apps.get(app) else {
            return Vec::new();
        };
        tree.order
            .iter()
            .filter_map(|k| tree.views.get(k.id()).cloned())
            .collect()
    }

    /// One page of the tree: at most `limit` entities after the one a
    /// `continue` token names, and the token of the next page if there is
    /// more. It costs the page, not the application: the order is kept.
    pub fn app_page(
        &self,
        app: &str,
        limit: usize,
        after: Option<&PageToken>,
    ) -> (Vec<Arc<EntityView>>, Option<PageToken>) {
        let Some(tree) = self.apps.get(app) else {
            return (Vec::new(), None);
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut keys = tree.order.range((from, Bound::Unbounded));
        let page: Vec<&PageToken> = keys.by_ref().take(limit).collect();
        let next = match (keys.next(), page.last()) {
            (Some(_), Some(last)) => Some((*last).clone()),
            _ => None,
        };
        let views = page
            .into_iter()
            .filter_map(|k| tree.views.get(k.id()).cloned())
            .collect();
        (views, next)
    }

    /// The row of `GET /v1/applications`.
    pub fn summary(&self, app: &str, location: &str, created_ms: u64) -> AppSummary {
        AppSummary {
            id: app.to_string(),
            location: location.to_string(),
            state: self.app_state(app),
            entity_count: self.entity_count(app),
            created_ms,
        }
    }

    /// How many entities an application has.
    pub fn entity_count(&self, app: &str) -> usize {
        self.apps.get(app).map_or(0, |t| t.views.len())
    }

    /// The application entity's state (`stopped` once it is gone).
    pub fn app_state(&self, app: &str) -> Lifecycle {
        self.apps
            .get(app)
            .and_then(|t| t.views.get(app))
            .map_or(Lifecycle::Stopped, |v| v.state)
    }

    /// The applications that have entities.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// An application's entities of each kind, by state (states with none
    /// may be absent or zero).
    pub fn counts(&self, app: &str) -> impl Iterator<Item = (EntityKind, Lifecycle, i64)> + '_ {
        self.apps
            .get(app)
            .into_iter()
            .flat_map(|t| t.counts.iter().map(|(&(k, st), &n)| (k, st, n)))
    }

    /// An application's clusters and load balancers.
    pub fn services(&self, app: &str) -> impl Iterator<Item = &EntityView> + '_ {
        self.apps
            .get(app)
            .into_iter()
            .flat_map(|t| t.services.iter().filter_map(|id| t.views.get(id)))
            .map(|v| &**v)
    }

    /// Per host, how many containers of each (application, service) hold
    /// their resources there.
    pub fn reserving(&self) -> &HashMap<String, HashMap<(String, String), usize>> {
        &self.reserving
    }

    /// The blueprint service an entity belongs to: a cluster member's
    /// cluster, or the entity itself. Metric labels use it, never a member
    /// id: members are numbered without bound as they are replaced.
    pub fn service_of(&self, r: &EntityRef) -> String {
        match self.get(r) {
            Some(v) => service_in(&r.app, v).to_string(),
            None => r.entity.clone(),
        }
    }
}

/// The service of an entity of application `app`: its parent if the
/// parent is not the application, else the entity itself.
fn service_in<'a>(app: &str, v: &'a EntityView) -> &'a str {
    match v.parent.as_deref() {
        Some(p) if p != app => p,
        _ => v.id.as_str(),
    }
}

/// The host a container holds its resources on, if it holds them now.
/// The host an entity's `host.name` names.
fn host_of(v: &EntityView) -> Option<&str> {
    v.sensors.get(s::HOST_NAME)?.value.as_str()
}

fn reserving_host(v: &EntityView) -> Option<&str> {
    let holds = v.kind == EntityKind::Container
        && matches!(
            v.state,
            Lifecycle::Starting | Lifecycle::Running | Lifecycle::OnFire
        );
    if !holds {
        return None;
    }
    host_of(v)
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
    entities: &HashSet<&str>,
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
        let db = r("shop", "db");
        m.register(&db, EntityKind::Cluster, Some(&root));
        for i in [2, 1] {
            m.register(
                &r("shop", &format!("db-{i}")),
                EntityKind::Container,
                Some(&db),
            );
        }
        m.register(&r("shop", "cache"), EntityKind::Container, Some(&root));
        m.register(&r("blog", "blog"), EntityKind::Application, None);
        let whole: Vec<String> = m
            .app_entities("shop")
            .into_iter()
            .map(|v| v.id.clone())
            .collect();
        let mut paged = Vec::new();
        let mut after: Option<PageToken> = None;
        loop {
            let (page, next) = m.app_page("shop", 5, after.as_ref());
            assert!(page.len() <= 5);
            paged.extend(page.into_iter().map(|v| v.id.clone()));
            let Some(t) = next else { break };
            let text = t.to_string();
            assert!(text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'));
            after = Some(text.parse().expect("a token reads back"));
        }
        assert_eq!(paged, whole, "pages in order, none twice, none missed");
        // Each service followed by its own members, in natural order.
        let web: Vec<String> = (1..=12).map(|i| format!("web-{i}")).collect();
        let mut want = vec!["shop", "cache", "db", "db-1", "db-2", "web"];
        want.extend(web.iter().map(String::as_str));
        assert_eq!(whole, want);
        assert_eq!(m.app_page("shop", 18, None).1, None, "no next page");
        assert!("x".parse::<PageToken>().is_err());
        assert!("2.1.web.web-1.x".parse::<PageToken>().is_err());
    }

    fn ids(views: &[Arc<EntityView>]) -> Vec<&str> {
        views.iter().map(|v| v.id.as_str()).collect()
    }

    #[test]
    fn a_page_continues_after_its_last_entity_even_once_that_one_is_gone() {
        let mut m = shop();
        let (page, next) = m.app_page("shop", 3, None);
        assert_eq!(ids(&page), ["shop", "web", "web-2"]);
        let next = next.expect("more to come");
        // The page's last member goes and a new one joins before the next
        // page is asked for: nothing is served twice, the newcomer is seen.
        m.forget(&r("shop", "web-2"));
        m.register(
            &r("shop", "web-11"),
            EntityKind::Container,
            Some(&r("shop", "web")),
        );
        let (page, next) = m.app_page("shop", 3, Some(&next));
        assert_eq!(ids(&page), ["web-9", "web-10", "web-11"]);
        assert_eq!(next, None, "the last page names no next");
        let (page, next) = m.app_page("shop", 100, None);
        assert_eq!(page.len(), 5);
        assert_eq!(next, None);
        assert!(m.app_page("gone", 10, None).0.is_empty());
    }

    #[test]
    fn a_view_handed_out_does_not_change_under_its_reader() {
        let mut m = shop();
        let at = r("shop", "web-2");
        let held = m.shared(&at).unwrap().clone();
        m.set_state(&at, Lifecycle::Running);
        assert_eq!(held.state, Lifecycle::Created, "the reader's copy");
        assert_eq!(m.get(&at).unwrap().state, Lifecycle::Running);
    }

    #[test]
    fn counts_follow_states_and_entities() {
        let mut m = shop();
        let count = |m: &ReadModel, kind, state| {
            m.counts("shop")
                .find(|&(k, st, _)| (k, st) == (kind, state))
                .map_or(0, |(_, _, n)| n)
        };
        assert_eq!(count(&m, EntityKind::Container, Lifecycle::Created), 3);
        m.set_state(&r("shop", "web-2"), Lifecycle::Running);
        m.set_state(&r("shop", "web-2"), Lifecycle::Running);
        assert_eq!(count(&m, EntityKind::Container, Lifecycle::Created), 2);
        assert_eq!(count(&m, EntityKind::Container, Lifecycle::Running), 1);
        m.forget(&r("shop", "web-2"));
        assert_eq!(count(&m, EntityKind::Container, Lifecycle::Running), 0);
        assert_eq!(m.entity_count("shop"), 4);
        let services: Vec<&str> = m.services("shop").map(|v| v.id.as_str()).collect();
        assert_eq!(services, ["web"]);
        // Registered again (rebuilt): counted once.
        m.register(
            &r("shop", "web-9"),
            EntityKind::Container,
            Some(&r("shop", "web")),
        );
        assert_eq!(count(&m, EntityKind::Container, Lifecycle::Created), 2);
        assert_eq!(m.get(&r("shop", "web")).unwrap().children.len(), 2);
    }

    #[test]
    fn reservations_follow_a_containers_host_and_state() {
        let mut m = shop();
        let sv = |v: serde_json::Value| SensorValue::new(v, 1);
        let held = |m: &ReadModel, host: &str| {
            m.reserving()
                .get(host)
                .and_then(|p| p.get(&("shop".to_string(), "web".to_string())))
                .copied()
                .unwrap_or(0)
        };
        let w2 = r("shop", "web-2");
        m.set_sensor(&w2, s::HOST_NAME, sv("h1".into()));
        assert_eq!(held(&m, "h1"), 0, "created: holds nothing yet");
        m.set_state(&w2, Lifecycle::Starting);
        m.set_state(&w2, Lifecycle::Running);
        assert_eq!(held(&m, "h1"), 1);
        m.set_sensor(&w2, s::HOST_NAME, sv("h2".into()));
        assert_eq!((held(&m, "h1"), held(&m, "h2")), (0, 1), "moved");
        m.set_state(&w2, Lifecycle::Stopped);
        assert_eq!(held(&m, "h2"), 0);
        m.set_state(&w2, Lifecycle::Running);
        let w9 = r("shop", "web-9");
        m.set_sensor(&w9, s::HOST_NAME, sv("h2".into()));
        m.set_state(&w9, Lifecycle::OnFire);
        assert_eq!(held(&m, "h2"), 2);
        m.forget(&w9);
        assert_eq!(held(&m, "h2"), 1);
        m.forget_app("shop");
        assert!(m.reserving().is_empty());
        assert_eq!(m.entity_count("shop"), 0);
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
        let sv = |v: serde_json::Value| SensorValue::new(v, 1);
        for (e, host, id) in [
            ("web-2", "local", Some("c2")),
            ("web-9", "local", None),
            ("web-10", "pool-1", Some("c10")),
        ] {
            m.set_sensor(&r("shop", e), s::HOST_NAME, sv(host.into()));
            if let Some(id) = id {
                m.set_sensor(&r("shop", e), s::CONTAINER_ID, sv(id.into()));
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
            .map(|v| v.id.clone())
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
        let v = |x: serde_json::Value| SensorValue::new(x, 1);
        m.set_sensor(&at, "host.name", v(serde_json::json!("local")));
        assert!(m.get(&at).unwrap().sensors.contains_key("host.name"));
        m.set_sensor(&at, "host.name", v(serde_json::Value::Null));
        assert!(m.get(&at).unwrap().sensors.is_empty());
    }

    #[test]
    fn a_sensor_set_again_holds_its_latest_value_and_time() {
        let mut m = shop();
        let at = r("shop", "web-2");
        let v = |x: f64, t: u64| SensorValue::new(serde_json::json!(x), t);
        m.set_sensor(&at, s::CPU_USAGE, v(0.5, 1));
        m.set_sensor(&at, s::CPU_USAGE, v(0.25, 2));
        m.set_sensor(&at, s::MEMORY_USAGE, v(1024.0, 2));
        let sensors = &m.get(&at).unwrap().sensors;
        assert_eq!(sensors.len(), 2);
        assert_eq!(sensors[s::CPU_USAGE], v(0.25, 2));
        m.set_sensor(
            &at,
            s::CPU_USAGE,
            SensorValue::new(serde_json::Value::Null, 3),
        );
        let sensors = &m.get(&at).unwrap().sensors;
        assert_eq!(sensors.keys().collect::<Vec<_>>(), [s::MEMORY_USAGE]);
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
        let current = HashSet::from(["shop", "web", "web-30"]);
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
        let latest = latest_activities(&record, "shop", &HashSet::from(["web"]), 0);
        assert_eq!(latest["web"].id, 2);
    }

    #[test]
    fn a_redeployed_application_shows_none_of_its_predecessors_activities() {
        let record = [
            activity(3, 300, "shop", "shop", "start"),
            activity(2, 150, "shop", "shop", "destroy"),
            activity(1, 100, "shop", "web-1", "entity.failed"),
        ];
        let latest = latest_activities(&record, "shop", &HashSet::from(["shop", "web-1"]), 200);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest["shop"].id, 3);
    }
    #[test]
    fn on_host_follows_host_name_through_moves_forgets_and_destroys() {
        let mut m = shop();
        let sv = |v: serde_json::Value| SensorValue::new(v, 1);
        let on = |m: &ReadModel, h: &str| {
            let mut v: Vec<String> = m.on_host(h).map(|k| k.entity.to_string()).collect();
            v.sort();
            v
        };
        m.set_sensor(&r("shop", "web-2"), s::HOST_NAME, sv("h1".into()));
        m.set_sensor(&r("shop", "web-9"), s::HOST_NAME, sv("h1".into()));
        m.set_sensor(&r("shop", "web-10"), s::HOST_NAME, sv("h2".into()));
        assert_eq!(on(&m, "h1"), ["web-2", "web-9"]);
        m.set_sensor(&r("shop", "web-2"), s::HOST_NAME, sv("h2".into()));
        assert_eq!(
            (on(&m, "h1"), on(&m, "h2")),
            (
                vec!["web-9".to_string()],
                vec!["web-10".to_string(), "web-2".to_string()]
            )
        );
        m.set_sensor(
            &r("shop", "web-9"),
            s::HOST_NAME,
            sv(serde_json::Value::Null),
        );
        assert!(on(&m, "h1").is_empty(), "cleared");
        // Registered again (rebuilt): its old sensors, host among them, go.
        m.register(
            &r("shop", "web-10"),
            EntityKind::Container,
            Some(&r("shop", "web")),
        );
        assert_eq!(on(&m, "h2"), ["web-2"]);
        m.forget(&r("shop", "web-2"));
        assert!(on(&m, "h2").is_empty(), "gone");
        m.set_sensor(&r("shop", "web-10"), s::HOST_NAME, sv("h3".into()));
        m.forget_app("shop");
        assert!(on(&m, "h3").is_empty(), "destroyed");
    }
}
