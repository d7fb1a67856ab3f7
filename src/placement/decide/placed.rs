//! The containers drover placed on one host, indexed for the questions
//! placement asks of every host on every decision: how many run here, does
//! this application run here, how many of this cluster (or this container)
//! run here.
//!
//! A list answered those by scanning it: with 100 containers a host and
//! 1,000 hosts, breadth-first scoring alone read 100,000 entries per
//! decision, and a 100,000-container deploy made 10^10 comparisons. Here
//! each answer is one or two hash lookups.

use std::collections::HashMap;

use super::{Placed, Request};

/// One application's containers on the host.
#[derive(Debug, Clone, Default, PartialEq)]
struct AppPlaced {
    /// Entity → the cluster it is a member of, if any.
    entities: HashMap<String, Option<String>>,
    /// Cluster → how many of its members run here.
    groups: HashMap<String, u32>,
}

/// The containers drover placed on one host. An entity is placed at most
/// once: placing it again replaces its entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placements {
    apps: HashMap<String, AppPlaced>,
    len: usize,
}

impl Placements {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.apps.clear();
        self.len = 0;
    }

    /// Records `req`'s container here (again: its entry is replaced).
    pub fn insert(&mut self, req: &Request) {
        self.remove(&req.app, &req.entity);
        let app = self.apps.entry(req.app.clone()).or_default();
        if let Some(g) = &req.group {
            *app.groups.entry(g.clone()).or_default() += 1;
        }
        app.entities.insert(req.entity.clone(), req.group.clone());
        self.len += 1;
    }

    /// Forgets an entity's container; false if it was not here.
    pub fn remove(&mut self, app: &str, entity: &str) -> bool {
        let Some(a) = self.apps.get_mut(app) else {
            return false;
        };
        let Some(group) = a.entities.remove(entity) else {
            return false;
        };
        if let Some(g) = group {
            if let Some(n) = a.groups.get_mut(&g) {
                *n -= 1;
                if *n == 0 {
                    a.groups.remove(&g);
                }
            }
        }
        if a.entities.is_empty() {
            self.apps.remove(app);
        }
        self.len -= 1;
        true
    }

    /// Does any container of `app` run here?
    pub fn runs_app(&self, app: &str) -> bool {
        self.apps.contains_key(app)
    }

    /// Containers of the request's own entity here: members of its cluster,
    /// or the container itself.
    pub fn same_entity(&self, req: &Request) -> u32 {
        let Some(a) = self.apps.get(&req.app) else {
            return 0;
        };
        match &req.group {
            Some(g) => a.groups.get(g).copied().unwrap_or(0),
            None => a.entities.contains_key(&req.entity) as u32,
        }
    }

    /// Does the entity `name` of `app` (a container, or a cluster's member)
    /// run here?
    pub fn runs_entity(&self, app: &str, name: &str) -> bool {
        self.apps
            .get(app)
            .is_some_and(|a| a.entities.contains_key(name) || a.groups.contains_key(name))
    }

    /// Every container here, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Placed> + '_ {
        self.apps.iter().flat_map(|(app, a)| {
            a.entities.iter().map(move |(entity, group)| Placed {
                app: app.clone(),
                entity: entity.clone(),
                group: group.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(app: &str, entity: &str, group: &str) -> Request {
        Request::new(app, entity).member_of(group)
    }

    #[test]
    fn counts_follow_inserts_and_removes() {
        let mut p = Placements::default();
        p.insert(&member("shop", "web-1", "web"));
        p.insert(&member("shop", "web-2", "web"));
        p.insert(&Request::new("shop", "db"));
        p.insert(&member("blog", "web-1", "web"));
        assert_eq!(p.len(), 4);
        assert_eq!(p.same_entity(&member("shop", "web-9", "web")), 2);
        assert_eq!(p.same_entity(&member("blog", "web-9", "web")), 1);
        assert_eq!(p.same_entity(&Request::new("shop", "db")), 1);
        assert_eq!(p.same_entity(&Request::new("shop", "cache")), 0);
        assert!(p.runs_entity("shop", "web") && p.runs_entity("shop", "web-2"));
        assert!(p.runs_entity("shop", "db") && !p.runs_entity("blog", "db"));

        assert!(p.remove("shop", "web-1"));
        assert!(!p.remove("shop", "web-1"), "removed once");
        assert_eq!(p.same_entity(&member("shop", "web-9", "web")), 1);
        assert!(p.remove("shop", "web-2"));
        assert!(!p.runs_entity("shop", "web"), "the last member gone");
        assert!(p.remove("shop", "db"));
        assert!(!p.runs_app("shop") && p.runs_app("blog"));
        assert_eq!(p.len(), 1);
        assert_eq!(p.iter().count(), 1);
    }

    #[test]
    fn placing_an_entity_again_replaces_its_entry() {
        let mut p = Placements::default();
        p.insert(&member("shop", "web-1", "web"));
        p.insert(&member("shop", "web-1", "web"));
        assert_eq!(p.len(), 1);
        assert_eq!(p.same_entity(&member("shop", "x", "web")), 1);
        // Same entity, now outside the cluster: the group count follows.
        p.insert(&Request::new("shop", "web-1"));
        assert_eq!(p.len(), 1);
        assert_eq!(p.same_entity(&member("shop", "x", "web")), 0);
        p.clear();
        assert!(p.is_empty() && !p.runs_app("shop"));
    }
}
