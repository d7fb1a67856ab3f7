//! The REST API: JSON under `/v1`, plus `/healthz` and `/metrics`.
//!
//! Handlers only translate HTTP to management messages and back; every
//! decision lives in the actors.

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};

use crate::blueprint::BlueprintErrors;
use crate::management::{
    ActivityFilter, CollectMetrics, Deploy, Destroy, GetApp, GetEntities, GetSensors,
    InvokeEffector, ListActivities, ListApps, ListHosts, ListPresets, Management, ManagementError,
    PolicyRequest, PolicyRequestOp,
};

pub use crate::wire::ErrorBody;

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
                ManagementError::Exists(_) | ManagementError::Destroying(_) => StatusCode::CONFLICT,
                ManagementError::UnknownLocation { .. } | ManagementError::Blueprint(_) => {
                    StatusCode::BAD_REQUEST
                }
                ManagementError::Entity(
                    E::UnknownEffector { .. } | E::BadArguments { .. } | E::NoSuchMember { .. },
                ) => StatusCode::BAD_REQUEST,
                ManagementError::Entity(E::Stopping { .. }) => StatusCode::CONFLICT,
                ManagementError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
                ManagementError::Entity(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Mailbox(_) => StatusCode::SERVICE_UNAVAILABLE,
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

/// Mounts every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .service(
            web::scope("/v1")
                .route("/applications", web::post().to(deploy))
                .route("/applications", web::get().to(list_apps))
                .route("/applications/{app}", web::get().to(get_app))
                .route("/applications/{app}", web::delete().to(destroy))
                .route("/applications/{app}/entities", web::get().to(entities))
                .route(
                    "/applications/{app}/entities/{entity}/sensors",
                    web::get().to(sensors),
                )
                .route(
                    "/applications/{app}/entities/{entity}/effectors/{effector}",
                    web::post().to(invoke),
                )
                .route(
                    "/applications/{app}/entities/{entity}/policies",
                    web::get().to(policies_list),
                )
                .route(
                    "/applications/{app}/entities/{entity}/policies/{policy}",
                    web::get().to(policy_get),
                )
                .route(
                    "/applications/{app}/entities/{entity}/policies/{policy}",
                    web::put().to(policy_put),
                )
                .route(
                    "/applications/{app}/entities/{entity}/policies/{policy}/start",
                    web::post().to(policy_start),
                )
                .route(
                    "/applications/{app}/entities/{entity}/policies/{policy}/stop",
                    web::post().to(policy_stop),
                )
                .route("/presets", web::get().to(presets))
                .route("/hosts", web::get().to(hosts))
                .route("/locations", web::get().to(locations))
                .route(
                    "/locations/{location}/hosts/{host}/drain",
                    web::post().to(host_drain),
                )
                .route(
                    "/locations/{location}/hosts/{host}/uncordon",
                    web::post().to(host_uncordon),
                )
                .route("/activities", web::get().to(activities))
                .route("/chaos/faults", web::post().to(chaos_fault)),
        );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(m: Mgmt) -> Result<HttpResponse, ApiError> {
    let text = m.send(CollectMetrics).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

async fn deploy(m: Mgmt, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    let id = m
        .send(Deploy {
            file: "<request>".into(),
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

async fn list_apps(m: Mgmt) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(ListApps).await?))
}

async fn get_app(m: Mgmt, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(GetApp(path.into_inner())).await??))
}

async fn destroy(m: Mgmt, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    m.send(Destroy(path.into_inner())).await??;
    Ok(HttpResponse::NoContent().finish())
}

async fn entities(m: Mgmt, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(m.send(GetEntities(path.into_inner())).await??))
}

async fn sensors(m: Mgmt, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (app, entity) = path.into_inner();
    Ok(HttpResponse::Ok().json(m.send(GetSensors { app, entity }).await??))
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "result": result })))
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

async fn activities(m: Mgmt, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let filter = web::Query::<ActivityFilter>::from_query(req.query_string()).map_err(|e| {
        ApiError::BadRequest(format!(
            "bad activity filter: {e}; use application, entity, kind, name, limit"
        ))
    })?;
    Ok(HttpResponse::Ok().json(m.send(ListActivities(filter.into_inner())).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChaosFault {
    application: String,
    entity: String,
    fault: String,
}

/// `drover chaos` reports each fault it injects, for the metrics.
async fn chaos_fault(body: web::Json<ChaosFault>) -> Result<HttpResponse, ApiError> {
    if !matches!(body.fault.as_str(), "kill" | "stop" | "pause") {
        return Err(ApiError::BadRequest(format!(
            "unknown fault `{}`; expected kill, stop or pause",
            body.fault
        )));
    }
    crate::metrics::CHAOS_FAULTS
        .with_label_values(&[body.fault.as_str()])
        .inc();
    tracing::info!(app = %body.application, entity = %body.entity, fault = %body.fault, "chaos fault injected");
    Ok(HttpResponse::NoContent().finish())
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
    policy_op(m, app, entity, String::new(), PolicyRequestOp::List).await
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
