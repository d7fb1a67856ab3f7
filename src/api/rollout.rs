//! The rollout routes of a cluster: `GET .../entities/{cluster}/rollout`
//! and `POST .../rollout/{pause|resume|undo}`. They call the cluster's
//! `rollout_status` and `rollout_{command}` effectors.

use actix::Addr;
use actix_web::{web, HttpResponse};

use super::ApiError;
use crate::management::{InvokeEffector, Management};

async fn call(
    m: &Addr<Management>,
    app: String,
    entity: String,
    effector: &str,
) -> Result<HttpResponse, ApiError> {
    let result = m
        .send(InvokeEffector {
            app,
            entity,
            effector: effector.into(),
            args: serde_json::json!({}),
        })
        .await??;
    let status: crate::wire::RolloutStatus = serde_json::from_value(result)
        .map_err(|e| ApiError::BadRequest(format!("not a cluster's rollout: {e}")))?;
    Ok(HttpResponse::Ok().json(status))
}

pub async fn status(
    m: web::Data<Addr<Management>>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity) = path.into_inner();
    call(&m, app, entity, "rollout_status").await
}

pub async fn control(
    m: web::Data<Addr<Management>>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (app, entity, command) = path.into_inner();
    if !matches!(command.as_str(), "pause" | "resume" | "undo") {
        return Err(ApiError::BadRequest(format!(
            "no rollout command `{command}`: use pause, resume or undo"
        )));
    }
    call(&m, app, entity, &format!("rollout_{command}")).await
}
