//! Error answers actix-web makes itself (no route, wrong method, a body
//! over the limit, an unreadable body) get the API's JSON `{error}` body
//! like every other error answer.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse};

use crate::wire::ErrorBody;

/// The default service: a path no route serves.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    let status = StatusCode::NOT_FOUND;
    HttpResponse::build(status).json(ErrorBody::message(message(
        status,
        req.method(),
        req.path(),
        None,
    )))
}

/// Rewrites every error answer that is not JSON into `{error}`.
pub fn json_errors<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(to_json)
}

fn to_json<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let detail = res.response().error().map(|e| e.to_string());
    let (req, _) = res.into_parts();
    let body = ErrorBody::message(message(status, req.method(), req.path(), detail));
    let res = ServiceResponse::new(req, HttpResponse::build(status).json(body));
    Ok(ErrorHandlerResponse::Response(
        res.map_body(|_, b| EitherBody::right(b)),
    ))
}

/// What went wrong, for the user: the route for 404 and 405, the limit
/// for 413, else actix-web's own message (or the status's reason).
pub fn message(status: StatusCode, method: &Method, path: &str, detail: Option<String>) -> String {
    let detail = detail.filter(|d| !d.trim().is_empty());
    match status {
        StatusCode::NOT_FOUND => format!(
            "no route {method} {path}; the API is under /v1 (applications, hosts, locations, activities, presets), plus /healthz and /metrics"
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{path} does not take {method}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is too large{}",
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        ),
        _ => detail.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as atest, App};

    #[test]
    fn messages_name_the_route_or_the_limit() {
        let m = message(StatusCode::NOT_FOUND, &Method::GET, "/v2/x", None);
        assert!(m.starts_with("no route GET /v2/x;"), "{m}");
        let m = message(
            StatusCode::METHOD_NOT_ALLOWED,
            &Method::PUT,
            "/healthz",
            None,
        );
        assert_eq!(m, "/healthz does not take PUT");
        let m = message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &Method::POST,
            "/v1/applications",
            Some("A payload reached size limit.".into()),
        );
        assert_eq!(
            m,
            "the request body is too large: A payload reached size limit."
        );
        let m = message(
            StatusCode::BAD_REQUEST,
            &Method::POST,
            "/",
            Some(" ".into()),
        );
        assert_eq!(m, "Bad Request");
    }

    /// The status and `{error}` body of a request (the body must be JSON).
    macro_rules! error_of {
        ($app:expr, $req:expr $(,)?) => {{
            let res = atest::call_service($app, $req.to_request()).await;
            let status = res.status();
            let ct = res
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("").to_string());
            assert_eq!(ct.as_deref(), Some("application/json"), "{status}");
            let body: ErrorBody = atest::read_body_json(res).await;
            (status, body)
        }};
    }

    #[actix_web::test]
    async fn actix_errors_answer_json() {
        let app = atest::init_service(App::new().configure(crate::api::routes)).await;
        let (s, b) = error_of!(&app, atest::TestRequest::get().uri("/nope"));
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(b.error.contains("no route GET /nope"), "{}", b.error);
        let (s, _) = error_of!(&app, atest::TestRequest::get().uri("/v1/nope"));
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, b) = error_of!(&app, atest::TestRequest::put().uri("/healthz"));
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(b.error, "/healthz does not take PUT");
        // A body over the JSON limit (2 MiB), before any handler runs.
        let big = format!("{{\"application\":\"{}\"}}", "x".repeat(3 << 20));
        let (s, b) = error_of!(
            &app,
            atest::TestRequest::post()
                .uri("/v1/chaos/faults")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(big),
        );
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            b.error.starts_with("the request body is too large"),
            "{}",
            b.error
        );
        let (s, b) = error_of!(
            &app,
            atest::TestRequest::post()
                .uri("/v1/chaos/faults")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload("{not json"),
        );
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(!b.error.is_empty());
    }
}
