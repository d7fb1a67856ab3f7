//! What a standby drover serves (a cluster on an etcd store).
//!
//! Reads are answered, writes are not. As Consul's servers do by default
//! (and Nomad's), a standby forwards every `GET /v1/...` to the leader and
//! passes its answer on: the client reads what the leader sees, live
//! sensors included. It answers from its own read model (the store as it
//! last read it through etcd's watch, [`super::followed`]) when the client
//! asks `?stale=true`, when no drover leads, when the leader cannot be
//! reached, or when the request was already forwarded once (never a
//! second hop: two drovers that each think the other leads cannot bounce
//! a request between them). Data only a leader has (activities, hosts,
//! locations, presets as loaded) then gets a 503 that says so.
//!
//! Every `/v1` read a standby answers carries `X-Drover-Served-By` (the
//! drover whose view it is) and `X-Drover-Stale` (`false` from the leader,
//! `true` from the store; `X-Drover-Stale-Reason` says why).
//!
//! Writes get 503 with the leader's URL, for the client to go there (the
//! CLI prints it): a write is never forwarded, so a write sent to the
//! wrong drover is an error the caller sees, never a second hop that
//! could hide a split. `/healthz` and `/metrics` are the standby's own.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use super::followed::{self, NotStored};
use crate::leader::Role;
use crate::store::Snapshot;
use crate::wire::{ErrorBody, Health, NotLeader};

/// The stored state as the standby last read it.
pub type Followed = Arc<RwLock<Snapshot>>;

/// Whose view an answer is: the leader's URL, or this standby's.
pub const SERVED_BY: &str = "x-drover-served-by";
/// `true` when the answer comes from the standby's copy of the store.
pub const STALE: &str = "x-drover-stale";
/// Why it is stale: `asked`, `no-leader`, `leader-unreachable`, `forwarded`.
pub const STALE_REASON: &str = "x-drover-stale-reason";
/// Set on a forwarded read: its receiver answers it itself.
pub const FORWARDED: &str = "x-drover-forwarded";

/// How long a standby tries to reach the leader before answering from
/// its store: a leader that is gone shows as a refused connection at
/// once; this bounds a machine that vanished (no answer at all).
pub const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The whole forwarded read: longer than any read the leader answers.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

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

/// The 503 a standby answers to a write (pure).
pub fn not_leader(leader: Option<String>) -> NotLeader {
    let error = match &leader {
        Some(url) => format!(
            "this drover is a standby; the leader is {url}: send the request there (DROVER_URL={url})"
        ),
        None => "this drover is a standby and no drover leads right now (an election is under way); try again in a few seconds".into(),
    };
    NotLeader { error, leader }
}

/// Why a read is answered from the standby's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// `?stale=true`.
    Asked,
    NoLeader,
    LeaderUnreachable,
    /// It came from another drover: no second hop.
    Forwarded,
}

impl Stale {
    pub fn as_str(self) -> &'static str {
        match self {
            Stale::Asked => "asked",
            Stale::NoLeader => "no-leader",
            Stale::LeaderUnreachable => "leader-unreachable",
            Stale::Forwarded => "forwarded",
        }
    }
}

/// Where a read goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRoute {
    /// To this leader URL.
    Forward(String),
    Local(Stale),
}

/// Where a standby sends a read (pure).
pub fn route_read(
    asked_stale: bool,
    forwarded_in: bool,
    leader: Option<&str>,
    me: &str,
) -> ReadRoute {
    if forwarded_in {
        return ReadRoute::Local(Stale::Forwarded);
    }
    if asked_stale {
        return ReadRoute::Local(Stale::Asked);
    }
    match leader {
        Some(l) if l != me => ReadRoute::Forward(l.to_string()),
        _ => ReadRoute::Local(Stale::NoLeader),
    }
}

/// `stale`, `stale=true` or `stale=1` in a query string (pure).
pub fn asks_stale(query: &str) -> bool {
    query.split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
        k == "stale" && matches!(v, "true" | "1" | "")
    })
}

/// The leader's URL for a read: the same path and query, without
/// `stale` (the leader's own queries refuse keys they do not know).
pub fn forward_url(leader: &str, path: &str, query: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("stale"))
        .collect();
    let base = leader.trim_end_matches('/');
    if kept.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", kept.join("&"))
    }
}

/// The leader's answer to a forwarded read.
struct Forwarded {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// The HTTP client a standby forwards reads with.
pub struct Forwarder {
    agent: ureq::Agent,
}

impl Forwarder {
    /// For an https leader it trusts the certificates of this drover's
    /// own `--tls-cert` file (a cluster's drovers share a CA: put it in
    /// the chain), else the public roots.
    pub fn new(tls_cert: Option<&std::path::Path>) -> Forwarder {
        let mut tls = ureq::tls::TlsConfig::builder();
        let certs: Vec<ureq::tls::Certificate<'static>> = tls_cert
            .and_then(|p| std::fs::read(p).ok())
            .map(|pem| {
                ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !certs.is_empty() {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        Forwarder {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(FORWARD_CONNECT_TIMEOUT))
                .timeout_global(Some(FORWARD_TIMEOUT))
                .tls_config(tls.build())
                .build()
                .into(),
        }
    }

    /// The leader's answer, or why it could not be had.
    fn get(&self, url: &str, authorization: Option<String>) -> Result<Forwarded, ureq::Error> {
        let mut req = self.agent.get(url).header(FORWARDED, "1");
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let mut resp = req.call()?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()?;
        Ok(Forwarded {
            status: resp.status().as_u16(),
            content_type,
            body,
        })
    }
}

fn mark(res: &mut actix_web::http::header::HeaderMap, served_by: &str, stale: Option<Stale>) {
    let pairs = [
        (SERVED_BY, served_by),
        (STALE, if stale.is_some() { "true" } else { "false" }),
    ];
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            res.insert(HeaderName::from_static(k), v);
        }
    }
    if let Some(s) = stale {
        res.insert(
            HeaderName::from_static(STALE_REASON),
            HeaderValue::from_static(s.as_str()),
        );
    }
}

/// The middleware of the standby's routes: writes get the 503, reads go
/// to the leader or to the local handlers ([`route_read`]).
pub async fn reads(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path().to_string();
    let Some(role) = req.app_data::<web::Data<Role>>().map(|r| r.get()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !path.starts_with("/v1/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let answer = HttpResponse::ServiceUnavailable().json(not_leader(role.leader));
        return Ok(req.into_response(answer));
    }
    let query = req.query_string().to_string();
    let route = route_read(
        asks_stale(&query),
        req.headers().contains_key(FORWARDED),
        role.leader.as_deref(),
        &role.me,
    );
    let why = match route {
        ReadRoute::Local(why) => why,
        ReadRoute::Forward(leader) => {
            let url = forward_url(&leader, &path, &query);
            let auth = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let fwd = req.app_data::<web::Data<Forwarder>>().cloned();
            let got = match fwd {
                Some(f) => web::block(move || f.get(&url, auth).map_err(|e| e.to_string()))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r),
                None => Err("no forwarder".into()),
            };
            match got {
                Ok(a) => {
                    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
                    let mut answer = HttpResponse::build(status);
                    if let Some(ct) = a.content_type {
                        answer.insert_header((CONTENT_TYPE, ct));
                    }
                    let mut answer = answer.body(a.body);
                    mark(answer.headers_mut(), &leader, None);
                    return Ok(req.into_response(answer));
                }
                Err(e) => {
                    tracing::debug!(%leader, error = %e, "the leader did not answer a forwarded read: answering from the store");
                    Stale::LeaderUnreachable
                }
            }
        }
    };
    let mut res = next.call(req).await?;
    mark(res.headers_mut(), &role.me, Some(why));
    Ok(res.map_into_boxed_body())
}

async fn healthz(role: web::Data<Role>) -> HttpResponse {
    HttpResponse::Ok().json(health(Some(&role)))
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}

fn answer<T: serde::Serialize>(r: Result<T, NotStored>) -> HttpResponse {
    match r {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e @ NotStored::Blueprint { .. }) => {
            HttpResponse::InternalServerError().json(ErrorBody::message(e.to_string()))
        }
        Err(e @ NotStored::NotCluster { .. }) => {
            HttpResponse::BadRequest().json(ErrorBody::message(e.to_string()))
        }
        Err(e) => HttpResponse::NotFound().json(ErrorBody::message(e.to_string())),
    }
}

type Snap = web::Data<Followed>;

fn read<T>(s: &Snap, f: impl FnOnce(&Snapshot) -> T) -> T {
    f(&s.read().unwrap_or_else(|e| e.into_inner()))
}

async fn list_apps(s: Snap) -> HttpResponse {
    HttpResponse::Ok().json(read(&s, followed::apps))
}

async fn get_app(s: Snap, p: web::Path<String>) -> HttpResponse {
    answer(read(&s, |s| followed::app(s, &p)))
}

async fn entities(s: Snap, p: web::Path<String>) -> HttpResponse {
    answer(read(&s, |s| followed::entities(s, &p)))
}

async fn sensors(s: Snap, p: web::Path<(String, String)>) -> HttpResponse {
    answer(read(&s, |s| followed::sensors(s, &p.0, &p.1)))
}

async fn rollout(s: Snap, p: web::Path<(String, String)>) -> HttpResponse {
    answer(read(&s, |s| followed::rollout(s, &p.0, &p.1)))
}

async fn policies(s: Snap, p: web::Path<(String, String)>) -> HttpResponse {
    answer(read(&s, |s| followed::policies(s, &p.0, &p.1)))
}

async fn policy(s: Snap, p: web::Path<(String, String, String)>) -> HttpResponse {
    answer(read(&s, |s| followed::policy(s, &p.0, &p.1, &p.2)))
}

/// A read of what only the leader observes, when it cannot be asked.
async fn leader_only(role: web::Data<Role>) -> HttpResponse {
    let leader = role.get().leader;
    let error = match &leader {
        Some(url) => format!("only the leader has this (it is not in the store), and the leader {url} did not answer; try again, or ask it (DROVER_URL={url})"),
        None => "only the leader has this (it is not in the store), and no drover leads right now; try again in a few seconds".into(),
    };
    HttpResponse::ServiceUnavailable().json(NotLeader { error, leader })
}

/// The standby's routes: its own `/healthz` and `/metrics`, and the local
/// answers of every `GET /v1/...` route (behind [`reads`]).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let apps = "/v1/applications/{app}";
    let entity = "/v1/applications/{app}/entities/{entity}";
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/metrics").get(metrics))
        .service(web::resource("/v1/applications").get(list_apps))
        .service(web::resource(apps).get(get_app))
        .service(web::resource(format!("{apps}/entities")).get(entities))
        .service(web::resource(format!("{entity}/sensors")).get(sensors))
        .service(web::resource(format!("{entity}/rollout")).get(rollout))
        .service(web::resource(format!("{entity}/policies")).get(policies))
        .service(web::resource(format!("{entity}/policies/{{policy}}")).get(policy))
        .service(web::resource("/v1/tokens").get(super::tokens::list))
        .service(web::resource("/v1/build-contexts").get(super::contexts::limits))
        .service(web::resource("/v1/build-contexts/{hex}").get(super::contexts::held))
        .default_service(web::to(leader_only));
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

    #[test]
    fn reads_go_to_the_leader_unless_stale_is_asked_or_none_can_answer() {
        let l = Some("http://l:1");
        assert_eq!(
            route_read(false, false, l, "http://me"),
            ReadRoute::Forward("http://l:1".into())
        );
        assert_eq!(
            route_read(true, false, l, "http://me"),
            ReadRoute::Local(Stale::Asked)
        );
        assert_eq!(
            route_read(false, true, l, "http://me"),
            ReadRoute::Local(Stale::Forwarded),
            "never a second hop"
        );
        assert_eq!(
            route_read(false, false, None, "http://me"),
            ReadRoute::Local(Stale::NoLeader)
        );
        assert_eq!(
            route_read(false, false, Some("http://me"), "http://me"),
            ReadRoute::Local(Stale::NoLeader)
        );
    }

    #[test]
    fn stale_is_read_from_the_query_and_not_forwarded() {
        assert!(asks_stale("stale=true"));
        assert!(asks_stale("limit=5&stale"));
        assert!(asks_stale("stale=1"));
        assert!(!asks_stale("stale=false"));
        assert!(!asks_stale("stalemate=true"));
        assert!(!asks_stale(""));
        assert_eq!(
            forward_url("http://l:1/", "/v1/activities", "stale=false&limit=5"),
            "http://l:1/v1/activities?limit=5"
        );
        assert_eq!(
            forward_url("http://l:1", "/v1/applications", "stale=false"),
            "http://l:1/v1/applications"
        );
    }
}
