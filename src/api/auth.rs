//! Who may ask what: the middleware in front of every route.
//!
//! In order, a request is refused when
//! 1. its `Host` is not an address drover serves (421: a page on another
//!    site that rebinds its DNS name to 127.0.0.1 reaches drover with its
//!    own name in `Host`);
//! 2. it is a CORS preflight (`OPTIONS`: 403; drover's API is for its CLI
//!    and scripts, never for browsers, so no `Access-Control-*` header is
//!    ever sent);
//! 3. it has a body that does not declare JSON or YAML (415: a browser form
//!    can post `text/plain` anywhere without a preflight);
//! 4. it has no valid bearer token (401), or its token's role is below the
//!    route's (403). `/healthz` is open; `/metrics` is open on a loopback
//!    listener (Prometheus on the same machine) and needs a token elsewhere.
//!
//! Every refusal is JSON `{error}`, counted in `drover_api_refused_total`
//! by reason and logged with the token's name (if known), never the token.
//! The decisions are pure functions below, tested on their own.

use std::future::{ready, Ready};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{header, Method, StatusCode};
use actix_web::HttpResponse;
use futures_util::future::LocalBoxFuture;

use super::tokens::Tokens;
use crate::wire::{ErrorBody, Role};

/// Why a request was refused: the `reason` label of
/// `drover_api_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization: Bearer` header.
    NoToken,
    /// A token drover does not know (wrong, or revoked).
    BadToken,
    /// A known token whose role is below the route's.
    Role,
    /// A `Host` that is not an address drover serves.
    Host,
    /// A body that is neither JSON nor YAML.
    MediaType,
    /// A CORS preflight.
    Cors,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::NoToken => "no_token",
            Reason::BadToken => "bad_token",
            Reason::Role => "role",
            Reason::Host => "host",
            Reason::MediaType => "media_type",
            Reason::Cors => "cors",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Reason::NoToken | Reason::BadToken => StatusCode::UNAUTHORIZED,
            Reason::Role | Reason::Cors => StatusCode::FORBIDDEN,
            Reason::Host => StatusCode::MISDIRECTED_REQUEST,
            Reason::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// A refusal: its reason and the message the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub message: String,
}

impl Refusal {
    fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    fn response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.reason.status());
        if matches!(self.reason, Reason::NoToken | Reason::BadToken) {
            r.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"drover\""));
        }
        r.json(ErrorBody::message(self.message.clone()))
    }
}

/// What a route needs: nothing, a token of at least this role, or (for
/// `/metrics`) a token unless the listener is on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Open,
    Role(Role),
    /// `/metrics`: open on a loopback listener, else a viewer token.
    Metrics,
}

/// The role a route needs. Reads need `viewer`; effectors, policy tuning,
/// host drain/uncordon and faults need `operator`; deploying, applying,
/// destroying, tokens, and any change this table does not know need
/// `admin` (a route added later is closed until it is listed here).
pub fn required(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["healthz"] => return Need::Open,
        ["metrics"] => return Need::Metrics,
        _ => {}
    }
    let rest = match segs.split_first() {
        Some((&"v1", rest)) => rest,
        // Nothing else is served: whoever asks for it still needs a token.
        _ => return Need::Role(Role::Viewer),
    };
    if rest.first() == Some(&"tokens") {
        return Need::Role(Role::Admin);
    }
    if method == Method::GET || method == Method::HEAD {
        return Need::Role(Role::Viewer);
    }
    let operator = matches!(
        rest,
        ["applications", _, "entities", _, "effectors", _]
            | ["applications", _, "entities", _, "policies", ..]
            | ["applications", _, "entities", _, "faults", _]
            | [
                "applications",
                _,
                "entities",
                _,
                "rollout",
                "pause" | "resume" | "undo"
            ]
            | ["locations", _, "hosts", _, "drain" | "uncordon"]
            | ["locations", _, "hosts", _, "faults", _]
            | ["chaos", ..]
    );
    Need::Role(if operator {
        Role::Operator
    } else {
        Role::Admin
    })
}

/// Whether a `Host` header names this listener: its own address, an IP
/// literal on its port (a rebinding page cannot put an address there, only
/// a name), `localhost`, or a name given with `--allow-host` (with or
/// without the port). The port must be the listener's (the scheme's
/// default when the header has none).
pub fn host_allowed(host: &str, local: SocketAddr, default_port: u16, allow: &[String]) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = split_host(&host);
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => return false,
        },
        None => default_port,
    };
    if port != local.port() {
        return false;
    }
    let name = name.trim_end_matches('.');
    if name == "localhost" {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip == local.ip() || ip.is_loopback() || local.ip().is_unspecified();
    }
    allow.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match split_host(&a) {
            (n, Some(p)) => n == name && p.parse::<u16>() == Ok(port),
            (n, None) => n == name,
        }
    })
}

/// `name:port`, `[v6]:port`, `[v6]`, or `name` into its name and port.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((n, p)) if !n.contains(':') => (n, Some(p)),
        _ => (host, None),
    }
}

/// Whether a declared body type is JSON or YAML (parameters such as
/// `charset` allowed; `+json`/`+yaml` suffixes too).
pub fn body_type_allowed(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json"
            | "application/yaml"
            | "application/x-yaml"
            | "text/yaml"
            | "text/x-yaml"
    ) || (essence.starts_with("application/")
        && (essence.ends_with("+json") || essence.ends_with("+yaml")))
}

/// The one route whose body is not JSON or YAML: build context uploads.
fn is_upload(path: &str) -> bool {
    path.trim_end_matches('/') == "/v1/build-contexts"
}

/// `application/x-tar`, the only body an upload takes (not a type a
/// browser form can send, like JSON and YAML).
pub fn tar_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/x-tar"))
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The middleware's settings.
pub struct AuthConfig {
    pub tokens: Arc<Tokens>,
    /// `--allow-host` values.
    pub allow_hosts: Vec<String>,
}

/// The middleware: wrap the whole App with it.
#[derive(Clone)]
pub struct Guard(Arc<AuthConfig>);

impl Guard {
    pub fn new(config: Arc<AuthConfig>) -> Guard {
        Guard(config)
    }
}

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type InitError = ();
    type Transform = GuardService<S>;
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
            config: self.0.clone(),
        }))
    }
}

pub struct GuardService<S> {
    service: Rc<S>,
    config: Arc<AuthConfig>,
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match check(&self.config, &req) {
            Ok(()) => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Err((refusal, who)) => {
                crate::metrics::API_REFUSED
                    .with_label_values(&[refusal.reason.label()])
                    .inc();
                // The path, never the query (it may carry anything) nor
                // the token: only the token's name, when it is known.
                tracing::warn!(
                    method = %req.method(),
                    path = %req.path(),
                    peer = ?req.peer_addr(),
                    token = who.as_deref().unwrap_or("-"),
                    reason = refusal.reason.label(),
                    "request refused: {}", refusal.message
                );
                let res = req.into_response(refusal.response()).map_into_right_body();
                Box::pin(ready(Ok(res)))
            }
        }
    }
}

/// Refused requests: the refusal and the name of the token, if known.
fn check(config: &AuthConfig, req: &ServiceRequest) -> Result<(), (Refusal, Option<String>)> {
    let app = req.app_config();
    let local = app.local_addr();
    let default_port = if app.secure() { 443 } else { 80 };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let host_ok = host
        .as_deref()
        .is_some_and(|h| host_allowed(h, local, default_port, &config.allow_hosts));
    if !host_ok {
        return Err((
            Refusal::new(
                Reason::Host,
                format!(
                    "this drover does not serve the host `{}`; use its address ({local}), localhost, or start it with --allow-host NAME",
                    host.as_deref().unwrap_or("")
                ),
            ),
            None,
        ));
    }
    if req.method() == Method::OPTIONS {
        return Err((
            Refusal::new(
                Reason::Cors,
                "cross-origin requests are refused: drover's API is for its CLI and scripts, not browsers",
            ),
            None,
        ));
    }
    if has_body(req) {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|h| h.to_str().ok());
        let got = || {
            ct.map(|c| format!("`{c}`"))
                .unwrap_or_else(|| "none".into())
        };
        if is_upload(req.path()) {
            if !tar_type(ct) {
                return Err((
                    Refusal::new(
                        Reason::MediaType,
                        format!(
                            "a build context is a tar archive: send Content-Type application/x-tar (got {})",
                            got()
                        ),
                    ),
                    None,
                ));
            }
        } else if !body_type_allowed(ct) {
            return Err((
                Refusal::new(
                    Reason::MediaType,
                    format!(
                        "a request body must be JSON or YAML: send Content-Type application/json or application/yaml (got {})",
                        got()
                    ),
                ),
                None,
            ));
        }
    }
    let role = match required(req.method(), req.path()) {
        Need::Open => return Ok(()),
        Need::Metrics if local.ip().is_loopback() => return Ok(()),
        Need::Metrics => Role::Viewer,
        Need::Role(r) => r,
    };
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(token) = bearer(auth) else {
        return Err((
            Refusal::new(
                Reason::NoToken,
                "this needs a token: send `Authorization: Bearer TOKEN` (the CLI reads DROVER_TOKEN, --token, or admin.token beside the default store)",
            ),
            None,
        ));
    };
    let Some((name, has)) = config.tokens.authenticate(token) else {
        return Err((
            Refusal::new(
                Reason::BadToken,
                "the token is not valid (unknown or revoked); ask an admin for one (`drover token create`)",
            ),
            None,
        ));
    };
    if has < role {
        return Err((
            Refusal::new(
                Reason::Role,
                format!(
                    "token `{name}` has the role {has}; {} {} needs {role}",
                    req.method(),
                    req.path()
                ),
            ),
            Some(name),
        ));
    }
    Ok(())
}

/// Whether a request carries a body: a non-zero length, or chunked.
fn has_body(req: &ServiceRequest) -> bool {
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(m: Method, p: &str) -> Need {
        required(&m, p)
    }

    #[test]
    fn routes_need_their_roles() {
        use Role::*;
        assert_eq!(need(Method::GET, "/healthz"), Need::Open);
        assert_eq!(need(Method::GET, "/metrics"), Need::Metrics);
        assert_eq!(need(Method::GET, "/v1/applications"), Need::Role(Viewer));
        assert_eq!(
            need(Method::GET, "/v1/applications/a/entities/web/policies"),
            Need::Role(Viewer)
        );
        assert_eq!(need(Method::GET, "/v1/tokens"), Need::Role(Admin));
        assert_eq!(need(Method::POST, "/v1/tokens"), Need::Role(Admin));
        assert_eq!(need(Method::DELETE, "/v1/tokens/ci"), Need::Role(Admin));
        assert_eq!(need(Method::POST, "/v1/applications"), Need::Role(Admin));
        assert_eq!(need(Method::PUT, "/v1/applications/a"), Need::Role(Admin));
        assert_eq!(
            need(Method::DELETE, "/v1/applications/a"),
            Need::Role(Admin)
        );
        for p in [
            "/v1/applications/a/entities/web/effectors/resize",
            "/v1/applications/a/entities/web/policies/web-autoscaler",
            "/v1/applications/a/entities/web/policies/web-autoscaler/stop",
            "/v1/applications/a/entities/web-1/faults/kill",
            "/v1/applications/a/entities/web/rollout/pause",
            "/v1/applications/a/entities/web/rollout/undo",
            "/v1/locations/pool/hosts/h1/drain",
            "/v1/locations/pool/hosts/h1/uncordon",
            "/v1/locations/pool/hosts/h1/faults/engine-stop",
            "/v1/chaos/faults",
        ] {
            let m = if p.contains("/policies/web-autoscaler") && !p.ends_with("stop") {
                Method::PUT
            } else {
                Method::POST
            };
            assert_eq!(need(m, p), Need::Role(Operator), "{p}");
        }
        // Unknown changes are closed to all but admins; unknown paths
        // still need a token.
        assert_eq!(need(Method::POST, "/v1/something/new"), Need::Role(Admin));
        assert_eq!(need(Method::GET, "/elsewhere"), Need::Role(Viewer));
    }

    #[test]
    fn hosts_are_the_listener_localhost_or_allowed() {
        let lo: SocketAddr = "127.0.0.1:7780".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:7780".parse().unwrap();
        let one: SocketAddr = "10.0.0.5:7780".parse().unwrap();
        let allow = vec!["drover.example".to_string(), "ops.example:9000".to_string()];
        assert!(host_allowed("127.0.0.1:7780", lo, 80, &[]));
        assert!(host_allowed("localhost:7780", lo, 80, &[]));
        assert!(host_allowed("LOCALHOST.:7780", lo, 80, &[]));
        assert!(host_allowed("[::1]:7780", lo, 80, &[]));
        assert!(!host_allowed("127.0.0.1:7781", lo, 80, &[]), "another port");
        assert!(!host_allowed("127.0.0.1", lo, 80, &[]), "default port 80");
        assert!(!host_allowed("evil.example:7780", lo, 80, &[]), "rebinding");
        assert!(!host_allowed("", lo, 80, &[]));
        assert!(host_allowed("drover.example:7780", lo, 80, &allow));
        assert!(
            !host_allowed("ops.example:7780", lo, 80, &allow),
            "allowed on 9000 only"
        );
        assert!(host_allowed("10.0.0.5:7780", one, 80, &[]));
        assert!(!host_allowed("10.0.0.6:7780", one, 80, &[]));
        assert!(
            host_allowed("192.168.1.9:7780", any, 80, &[]),
            "a wildcard listener"
        );
        assert!(!host_allowed("name.example:7780", any, 80, &[]));
        let https: SocketAddr = "127.0.0.1:443".parse().unwrap();
        assert!(host_allowed("localhost", https, 443, &[]));
    }

    #[test]
    fn bodies_must_be_json_or_yaml() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/YAML",
            "application/x-yaml",
            "text/yaml",
            "application/merge-patch+json",
        ] {
            assert!(body_type_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!body_type_allowed(Some(bad)), "{bad}");
        }
        assert!(!body_type_allowed(None));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
