//! What a standby drover serves (a cluster on an etcd store): `/healthz`,
//! `/metrics`, and the applications as stored, which it follows through
//! etcd's watch; every other `/v1` request is answered 503 with the
//! leader's URL, for the client to go there (the CLI prints it). A
//! standby forwards nothing: a write sent to the wrong drover is an
//! error the caller sees, never a second hop that could hide a split.

use std::sync::{Arc, RwLock};

use actix_web::{web, HttpResponse};

use crate::leader::Role;
use crate::store::Snapshot;
use crate::wire::{Health, NotLeader};

/// The stored state as the standby last read it.
pub type Followed = Arc<RwLock<Snapshot>>;

/// `/healthz`'s answer for a drover in `role` (none: a redb store).
pub fn health(role: Option<&Role>) -> Health {
    match role.map(Role::get) {
        None => Health {
            status: "ok".into(),
            role: None,
            leader: None,
        },
        Some(s) => Health {
            status: "ok".into(),
            role: Some(if s.leading { "leader" } else { "standby" }.into()),
            leader: s.leader,
        },
    }
}

/// The 503 a standby answers to what only the leader serves (pure).
pub fn not_leader(leader: Option<String>) -> NotLeader {
    let error = match &leader {
        Some(url) => format!(
            "this drover is a standby; the leader is {url}: send the request there (DROVER_URL={url})"
        ),
        None => "this drover is a standby and no drover leads right now (an election is under way); try again in a few seconds".into(),
    };
    NotLeader { error, leader }
}

async fn healthz(role: web::Data<Role>) -> HttpResponse {
    HttpResponse::Ok().json(health(Some(&role)))
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}

/// `GET /v1/applications` on a standby: the stored applications' ids and
/// when they were deployed (their live state is the leader's to tell).
async fn list_apps(followed: web::Data<Followed>) -> HttpResponse {
    let snap = followed.read().unwrap_or_else(|e| e.into_inner());
    let apps: Vec<serde_json::Value> = snap
        .apps
        .values()
        .map(|a| serde_json::json!({ "id": a.id, "created_ms": a.created_ms, "destroying": a.destroying }))
        .collect();
    HttpResponse::Ok().json(apps)
}

async fn elsewhere(role: web::Data<Role>) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(not_leader(role.get().leader))
}

/// The standby's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/metrics").get(metrics))
        .service(
            web::resource("/v1/applications")
                .get(list_apps)
                .post(elsewhere),
        )
        .default_service(web::to(elsewhere));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_names_the_leader_or_says_none_leads() {
        let n = not_leader(Some("http://10.0.0.2:7780".into()));
        assert_eq!(n.leader.as_deref(), Some("http://10.0.0.2:7780"));
        assert!(
            n.error.contains("DROVER_URL=http://10.0.0.2:7780"),
            "{}",
            n.error
        );
        let n = not_leader(None);
        assert!(
            n.leader.is_none() && n.error.contains("no drover leads"),
            "{}",
            n.error
        );
        let role = Role::standby("http://me".into());
        role.saw(Some("http://other".into()));
        let h = health(Some(&role));
        assert_eq!(
            (h.role.as_deref(), h.leader.as_deref()),
            (Some("standby"), Some("http://other"))
        );
        assert!(health(None).role.is_none());
    }
}
