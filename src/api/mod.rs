//! The REST API: JSON under `/v1`, plus `/healthz` and `/metrics`.
//!
//! Handlers only translate HTTP to management messages and back; every
//! decision lives in the actors.

pub mod auth;
pub mod contexts;
mod errors;
pub mod followed;
mod rollout;
pub mod standby;
pub mod tls;
pub mod tokens;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use crate::blueprint::BlueprintErrors;
use crate::management::{
    ActivityFilter, Deploy, Destroy, InvokeEffector, ListHosts, ListPresets, Management,
    ManagementError, PolicyRequest, PolicyRequestOp, ReadView,
};

use crate::management::{FaultError, InjectContainerFault, InjectEngineFault};
use crate::wire::{ChaosFault, EffectorResult, FaultKind, ACTIVITY_KINDS};
pub use crate::wire::{Created, ErrorBody};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Blueprint(BlueprintErrors),
    #[error(transparent)]
    Management(#[from] ManagementError),
    #[error("the management actor is not answering: {0}")]
    Mailbox(#[from] actix::MailboxError),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Fault(crate::management::FaultError),
    /// Serialising an answer failed (or its blocking thread did).
    #[error("the answer could not be written: {0}")]
    Answer(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use crate::protocol::EntityError as E;
        match self {
            ApiError::Blueprint(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Management(m) => match m {
                ManagementError::NoApplication(_)
                | ManagementError::NoEntity { .. }
                | ManagementError::NoPolicy(_)
                | ManagementError::NoHost(_) => StatusCode::NOT_FOUND,
                ManagementError::Exists(_)
                | ManagementError::Destroying(_)
                | ManagementError::Applying(_) => StatusCode::CONFLICT,
                ManagementError::NotApplicable(_) => StatusCode::BAD_REQUEST,
                ManagementError::UnknownLocation { .. } | ManagementError::Blueprint(_) => {
                    StatusCode::BAD_REQUEST
                }
                ManagementError::Entity(
                    E::UnknownEffector { .. } | E::BadArguments { .. } | E::NoSuchMember { .. },
                ) => StatusCode::BAD_REQUEST,
                ManagementError::Entity(E::Stopping { .. }) => StatusCode::CONFLICT,
                ManagementError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                ManagementError::Volume(crate::host::volumes::VolumeError::InUse { .. }) => {
                    StatusCode::CONFLICT
                }
                ManagementError::Volume(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ManagementError::Entity(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Mailbox(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Answer(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Fault(f) => {
                StatusCode::from_u16(f.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Blueprint(errs) => {
                let first = errs.0.first();
                ErrorBody {
                    error: errs.to_string(),
                    line: first.and_then(|e| e.line),
                    column: first.and_then(|e| e.column),
                    path: first.map(|e| e.path.clone()),
                    errors: errs.0.clone(),
                }
            }
            ApiError::Management(ManagementError::UnknownLocation { .. }) => ErrorBody {
                error: self.to_string(),
                line: None,
                column: None,
                path: Some("location".into()),
                errors: vec![],
            },
            other => ErrorBody {
                error: other.to_string(),
                line: None,
                column: None,
                path: None,
                errors: vec![],
            },
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}

type Mgmt = web::Data<Addr<Management>>;
/// The management actor's read view: applications, entities, sensors and
/// activities are read here, not asked of the actor (see
/// [`crate::management::read_view`] for why).
type View = web::Data<ReadView>;

/// Answers above this many entities are serialised on a blocking thread:
/// a whole 10,000-member tree takes tens of milliseconds to write, and the
/// HTTP worker it would run on serves every other connection meanwhile.
const SERIALISE_ASIDE: usize = 1_000;

/// A JSON answer, serialised aside when it is large.
async fn json_answer<T: serde::Serialize + Send + 'static>(
    value: T,
    entities: usize,
) -> Result<HttpResponse, ApiError> {
    let body = if entities > SERIALISE_ASIDE {
        web::block(move || serde_json::to_vec(&value))
            .await
            .map_err(|e| ApiError::Answer(e.to_string()))?
    } else {
        serde_json::to_vec(&value)
    }
    .map_err(|e| ApiError::Answer(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// Mounts every route. Every error answer is JSON `{error}`, including
/// those actix-web makes itself: an unknown route (404), a method a route
/// does not take (405), a body over the limit (413), an unreadable body.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.default_service(web::to(errors::no_route)).service(
        // One resource per path, so a wrong method is a 405, not a 404.
        web::scope("")
            .wrap(errors::json_errors())
            .default_service(web::to(errors::no_route))
            .service(web::resource("/healthz").get(healthz))
            .service(web::resource("/metrics").get(metrics))
            .service(
                web::scope("/v1")
                    .service(web::resource("/applications").post(deploy).get(list_apps))
                    .service(
                        web::resource("/applications/{app}")
                            .get(get_app)
                            .put(apply)
                            .delete(destroy),
                    )
                    .service(web::resource("/applications/{app}/entities").get(entities))
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/sensors").get(sensors),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/effectors/{effector}")
                            .post(invoke),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/rollout")
                            .get(rollout::status),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/rollout/{command}")
                            .post(rollout::control),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/policies")
                            .get(policies_list),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/policies/{policy}")
                            .get(policy_get)
                            .put(policy_put),
                    )
                    .service(
                        web::resource(
                            "/applications/{app}/entities/{entity}/policies/{policy}/start",
                        )
                        .post(policy_start),
                    )
                    .service(
                        web::resource(
                            "/applications/{app}/entities/{entity}/policies/{policy}/stop",
                        )
                        .post(policy_stop),
                    )
                    .service(
                        web::resource("/build-contexts")
                            .get(contexts::limits)
                            .post(contexts::upload),
                    )
                    .service(web::resource("/build-contexts/{hex}").get(contexts::held))
                    .service(web::resource("/presets").get(presets))
                    .service(web::resource("/hosts").get(hosts))
                    .service(web::resource("/locations").get(locations))
                    .service(
                        web::resource("/locations/{location}/hosts/{host}/drain").post(host_drain),
                    )
                    .service(
                        web::resource("/locations/{location}/hosts/{host}/uncordon")
                            .post(host_uncordon),
                    )
                    .service(
                        web::resource("/applications/{app}/entities/{entity}/faults/{kind}")
                            .post(container_fault),
                    )
                    .service(
                        web::resource("/locations/{location}/hosts/{host}/faults/{kind}")
                            .post(engine_fault),
                    )
                    .service(web::resource("/activities").get(activities))
                    .service(web::resource("/chaos/faults").post(chaos_fault))
                    .service(
                        web::resource("/tokens")
                            .post(tokens::create)
                            .get(tokens::list),
                    )
                    .service(web::resource("/tokens/{name}").delete(tokens::revoke)),
            ),
    );
}

/// `/healthz`: up, and (on an etcd store) who leads.
async fn healthz(role: Option<web::Data<crate::leader::Role>>) -> HttpResponse {
    HttpResponse::Ok().json(standby::health(role.as_ref().map(|r| r.get_ref())))
}

async fn metrics(view: View) -> Result<HttpResponse, ApiError> {
    let view = view.into_inner();
    let text = web::block(move || crate::management::scrape_metrics(&view))
        .await
        .map_err(|e| ApiError::Answer(format!("the scrape did not finish: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

/// `POST /v1/applications?file=shop.yml`: the file the blueprint came
/// from, named in its errors (`<request>` when not given).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    file: Option<String>,
}

async fn deploy(m: Mgmt, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<DeployQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad deploy query: {e}; use file=NAME")))?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    let id = m
        .send(Deploy {
            file: blueprint_file_name(query.into_inner().file),
            text: text.to_string(),
        })
        .await?
        .map_err(|e| match e {
            ManagementError::Blueprint(errs) => ApiError::Blueprint(errs),
            other => ApiError::Management(other),
        })?;
    Ok(HttpResponse::Created()
        .append_header(("Location", format!("/v1/applications/{id}")))
        .json(Created { id }))
}

/// `PUT /v1/applications/{app}?file=shop.yml&dry_run=true`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyQuery {
    file: Option<String>,
    /// Only answer the plan (`drover diff`, `drover apply --dry-run`).
    #[serde(default)]
    dry_run: bool,
}

/// Creates the application or brings it to the blueprint: 201 with the
/// plan when it was created, else 200 with the plan
/// ([`crate::wire::Plan`]); 400 with positions for bad input, and nothing
/// is touched.
async fn apply(
    m: Mgmt,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<ApplyQuery>::from_query(req.query_string()).map_err(|e| {
        ApiError::BadRequest(format!(
            "bad apply query: {e}; use file=NAME and dry_run=true|false"
        ))
    })?;
    let query = query.into_inner();
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    let plan = m
        .send(crate::management::Apply {
            file: blueprint_file_name(query.file),
            text: text.to_string(),
            app: Some(path.into_inner()),
            dry_run: query.dry_run,
        })
        .await?
        .map_err(|e| match e {
            ManagementError::Blueprint(errs) => ApiError::Blueprint(errs),
            other => ApiError::Management(other),
        })?;
    Ok(if plan.create && !query.dry_run {
        HttpResponse::Created()
            .append_header(("Location", format!("/v1/applications/{}", plan.app)))
            .json(plan)
    } else {
        HttpResponse::Ok().json(plan)
    })
}

/// What a deployed blueprint's errors call it: the client's file name,
/// else `<request>`.
fn blueprint_file_name(file: Option<String>) -> String {
    file.map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "<request>".into())
}

async fn list_apps(v: View) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(v.list_apps()))
}

/// `GET /v1/applications/{app}?limit=N&continue=TOKEN`: one page of the
/// tree (Kubernetes' list paging); without `limit`, the whole tree.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppQuery {
    limit: Option<usize>,
    #[serde(rename = "continue")]
    next: Option<String>,
    /// For a standby (a leader's answer is never stale): accepted, ignored.
    #[allow(dead_code)]
    stale: Option<bool>,
}

/// The most entities a page holds.
const PAGE_LIMIT_MAX: usize = 10_000;

async fn get_app(
    v: View,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<AppQuery>::from_query(req.query_string())
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "bad application query: {e}; use limit=N (1 to {PAGE_LIMIT_MAX}) and continue=TOKEN"
            ))
        })?
        .into_inner();
    let page = match (q.limit, q.next) {
        (None, None) => None,
        (Some(n), _) if !(1..=PAGE_LIMIT_MAX).contains(&n) => {
            return Err(ApiError::BadRequest(format!(
                "limit={n}: a page holds 1 to {PAGE_LIMIT_MAX} entities"
            )))
        }
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "continue= needs limit=N (the page size)".into(),
            ))
        }
        (Some(n), t) => Some((
            n,
            t.map(|t| t.parse())
                .transpose()
                .map_err(ApiError::BadRequest)?,
        )),
    };
    let answer = v.app(&path.into_inner(), page)?;
    let n = answer.entities.len();
    json_answer(answer, n).await
}

/// `DELETE /v1/applications/{app}?volumes=true`: also remove the
/// application's named volumes (kept by default).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyQuery {
    #[serde(default)]
    volumes: bool,
}

/// 204 when the application had no volume; else 200 with
/// [`crate::wire::DestroyAnswer`] naming the volumes removed and kept.
async fn destroy(
    m: Mgmt,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<DestroyQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("bad destroy query: {e}; use volumes=true")))?
        .into_inner();
    let app = path.into_inner();
    let destroyed = match m.send(Destroy(app.clone())).await? {
        Ok(()) => true,
        // Gone already, maybe destroyed without `--volumes` before: its
        // volumes may still be there to remove.
        Err(ManagementError::NoApplication(_)) if query.volumes => false,
        Err(e) => return Err(e.into()),
    };
    let sweep = m
        .send(crate::management::SweepVolumes {
            app: app.clone(),
            all: query.volumes,
        })
        .await??;
    if !destroyed && sweep.removed.is_empty() {
        return Err(ManagementError::NoApplication(app).into());
    }
    if sweep.removed.is_empty() && sweep.kept.is_empty() {
        return Ok(HttpResponse::NoContent().finish());
    }
    Ok(HttpResponse::Ok().json(crate::wire::DestroyAnswer {
        id: app,
        destroyed,
        volumes_removed: sweep.removed,
        volumes_kept: sweep.kept,
    }))
}

async fn entities(v: View, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let answer = v.entities(&path.into_inner())?;
    let n = answer.0.len();
    json_answer(answer, n).await
}

async fn sensors(v: View, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (app, entity) = path.into_inner();
    Ok(HttpResponse::Ok().json(v.sensors(&app, &entity)?))
}

async fn invoke(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, effector) = path.into_inner();
    let args: serde_json::Value = if body.iter().all(|b| b.is_ascii_whitespace()) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("effector arguments must be a JSON object of named fields, such as {{\"size\": 3}}: {e}"))
        })?
    };
    if !args.is_object() {
        return Err(ApiError::BadRequest(
            "effector arguments must be a JSON object of named fields, such as {\"size\": 3}"
                .into(),
        ));
    }
    let result = m
        .send(InvokeEffector {
            app,
            entity,
            effector,
            args,
        })
        .await??;
    Ok(HttpResponse::Ok().json(EffectorResult { result }))
}

async fn hosts(m: Mgmt) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(ListHosts).await?))
}

async fn locations(m: Mgmt) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(crate::management::ListLocations).await?))
}

async fn host_op(
    m: Mgmt,
    path: web::Path<(String, String)>,
    op: crate::location::pool::HostOpKind,
) -> Result<HttpResponse, ApiError> {
    let (location, host) = path.into_inner();
    let v = m
        .send(crate::management::PoolHostOp { location, host, op })
        .await??;
    Ok(HttpResponse::Ok().json(v))
}

async fn host_drain(m: Mgmt, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    host_op(m, path, crate::location::pool::HostOpKind::Drain).await
}

async fn host_uncordon(
    m: Mgmt,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    host_op(m, path, crate::location::pool::HostOpKind::Uncordon).await
}

async fn activities(v: View, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let filter = web::Query::<ActivityFilter>::from_query(req.query_string()).map_err(|e| {
        ApiError::BadRequest(format!(
            "bad activity filter: {e}; use application, entity, kind, name, limit"
        ))
    })?;
    let filter = filter.into_inner();
    if let Some(kind) = &filter.kind {
        check_activity_kind(kind)?;
    }
    Ok(HttpResponse::Ok().json(v.activities(&filter)))
}

/// An unknown kind would match nothing: say which kinds there are.
fn check_activity_kind(kind: &str) -> Result<(), ApiError> {
    if ACTIVITY_KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "unknown activity kind `{kind}`; kinds: {}",
            ACTIVITY_KINDS.join(", ")
        )))
    }
}

/// `drover chaos` reports each fault it injects, for the metrics.
async fn chaos_fault(body: web::Json<ChaosFault>) -> Result<HttpResponse, ApiError> {
    // The label stays bounded: only known fault names count.
    let kind = fault_kind(&body.fault)?;
    crate::metrics::CHAOS_FAULTS
        .with_label_values(&[kind.as_str()])
        .inc();
    tracing::info!(app = %body.application, entity = %body.entity, fault = %body.fault, "chaos fault injected");
    Ok(HttpResponse::NoContent().finish())
}

/// The fault named in a fault route.
fn fault_kind(kind: &str) -> Result<FaultKind, ApiError> {
    kind.parse::<FaultKind>()
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn fault_error(e: FaultError) -> ApiError {
    match e {
        FaultError::Management(m) => ApiError::Management(m),
        other => ApiError::Fault(other),
    }
}

/// `POST .../entities/{entity}/faults/{kind}`: a fault injected from
/// outside drover (through the container's engine, or its process's
/// machine); the entity must notice it by itself.
async fn container_fault(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, kind) = path.into_inner();
    let kind = fault_kind(&kind)?;
    let done = m
        .send(InjectContainerFault { app, entity, kind })
        .await?
        .map_err(fault_error)?;
    Ok(HttpResponse::Ok().json(done))
}

/// `POST /v1/locations/{location}/hosts/{host}/faults/engine-stop`: a
/// provisioned host's engine stops; the pool must notice by itself.
async fn engine_fault(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (location, host, kind) = path.into_inner();
    let kind = fault_kind(&kind)?;
    if kind != FaultKind::EngineStop {
        return Err(ApiError::Fault(FaultError::ContainerFault(kind)));
    }
    let done = m
        .send(InjectEngineFault { location, host })
        .await?
        .map_err(fault_error)?;
    Ok(HttpResponse::Ok().json(done))
}

async fn policy_op(
    m: Mgmt,
    app: String,
    entity: String,
    policy: String,
    op: PolicyRequestOp,
) -> Result<HttpResponse, ApiError> {
    let v = m
        .send(PolicyRequest {
            app,
            entity,
            policy,
            op,
        })
        .await?
        .map_err(|e| match e {
            ManagementError::Blueprint(errs) => ApiError::Blueprint(errs),
            other => ApiError::Management(other),
        })?;
    Ok(HttpResponse::Ok().json(v))
}

async fn policies_list(
    m: Mgmt,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity) = path.into_inner();
    let list = m
        .send(crate::management::ListPolicies { app, entity })
        .await??;
    Ok(HttpResponse::Ok().json(list))
}

async fn policy_get(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, policy) = path.into_inner();
    policy_op(m, app, entity, policy, PolicyRequestOp::Get).await
}

async fn policy_put(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, policy) = path.into_inner();
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    policy_op(
        m,
        app,
        entity,
        policy,
        PolicyRequestOp::Put(text.to_string()),
    )
    .await
}

async fn policy_start(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, policy) = path.into_inner();
    policy_op(m, app, entity, policy, PolicyRequestOp::Start).await
}

async fn policy_stop(
    m: Mgmt,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, policy) = path.into_inner();
    policy_op(m, app, entity, policy, PolicyRequestOp::Stop).await
}

async fn presets(m: Mgmt) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(ListPresets).await??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_kinds_are_checked() {
        for k in ACTIVITY_KINDS {
            assert!(check_activity_kind(k).is_ok());
        }
        let e = check_activity_kind("bogus").unwrap_err();
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_string(),
            "unknown activity kind `bogus`; kinds: effector, policy, event"
        );
    }

    #[test]
    fn deploys_name_the_client_file() {
        assert_eq!(blueprint_file_name(Some("shop.yml".into())), "shop.yml");
        assert_eq!(blueprint_file_name(Some(" ".into())), "<request>");
        assert_eq!(blueprint_file_name(None), "<request>");
    }
}
