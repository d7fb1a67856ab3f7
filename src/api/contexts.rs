//! `/v1/build-contexts`: build contexts uploaded by the CLI.
//!
//! `drover deploy FILE` packs each context on the user's machine and
//! uploads the tar here; blueprints then name it `upload:sha256:<hex>`.
//! The body is read as a stream and cut off at the limit, so an oversized
//! upload costs at most the limit in memory and is answered 413 with the
//! limit and what to do.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use futures_util::StreamExt;

use crate::build_context::{UploadError, UploadRef, Uploads};
use crate::wire::{BuildContextLimits, ErrorBody, UploadedContext};

/// The upload directory and its limit, shared by the handlers.
pub struct ContextService {
    pub uploads: Uploads,
    pub max_bytes: u64,
    /// On etcd, where the cluster's other drovers find uploads (see
    /// `store/uploads.rs`); an upload is answered once it is there.
    pub store: Option<actix::Addr<crate::store::StoreActor>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextApiError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("the upload was cut off: {0}; send it again")]
    Read(String),
    #[error("the build context could not be kept in the store for the cluster's other drovers: {0}; send it again")]
    Store(String),
}

impl ResponseError for ContextApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ContextApiError::Upload(e) => match e {
                UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                UploadError::Missing(_) => StatusCode::NOT_FOUND,
                UploadError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
            ContextApiError::Read(_) => StatusCode::BAD_REQUEST,
            ContextApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody::message(self.to_string()))
    }
}

fn answer(a: crate::build_context::uploads::Accepted) -> UploadedContext {
    UploadedContext {
        reference: a.reference.to_string(),
        bytes: a.bytes,
        files: Some(a.files),
    }
}

/// `GET /v1/build-contexts`: the limit, so the CLI stops packing early.
pub async fn limits(s: web::Data<ContextService>) -> HttpResponse {
    HttpResponse::Ok().json(BuildContextLimits {
        max_bytes: s.max_bytes,
    })
}

/// `POST /v1/build-contexts` (admin, `application/x-tar`): keeps the tar
/// under its digest; 201 with the reference.
pub async fn upload(
    s: web::Data<ContextService>,
    mut body: web::Payload,
) -> Result<HttpResponse, ContextApiError> {
    let max = s.max_bytes;
    let mut tar = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ContextApiError::Read(e.to_string()))?;
        if (tar.len() + chunk.len()) as u64 > max {
            return Err(UploadError::TooLarge {
                got: (tar.len() + chunk.len()) as u64,
                max,
            }
            .into());
        }
        tar.extend_from_slice(&chunk);
    }
    let uploads = s.uploads.clone();
    let tar = tar.freeze();
    let kept = tar.clone();
    let accepted = web::block(move || uploads.put(&kept))
        .await
        .map_err(|e| ContextApiError::Read(e.to_string()))??;
    if let Some(store) = &s.store {
        store
            .send(crate::store::UploadOp::Put {
                hex: accepted.reference.hex().to_string(),
                tar: tar.to_vec(),
            })
            .await
            .map_err(|e| ContextApiError::Store(e.to_string()))?
            .map_err(|e| ContextApiError::Store(e.to_string()))?;
    }
    tracing::info!(context = %accepted.reference, bytes = accepted.bytes, files = accepted.files, "build context uploaded");
    Ok(HttpResponse::Created().json(answer(accepted)))
}

/// `GET /v1/build-contexts/{hex}`: 200 if the service holds it, else 404
/// (the CLI asks before it uploads; the tar is not read again).
pub async fn held(
    s: web::Data<ContextService>,
    hex: web::Path<String>,
) -> Result<HttpResponse, ContextApiError> {
    let r = UploadRef::from_hex(&hex)?;
    let bytes = std::fs::metadata(s.uploads.path(&r))
        .map_err(|_| UploadError::Missing(r.clone()))?
        .len();
    Ok(HttpResponse::Ok().json(UploadedContext {
        reference: r.to_string(),
        bytes,
        files: None,
    }))
}
