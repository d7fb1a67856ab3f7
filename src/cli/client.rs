//! The REST client of the commands: every answer is decoded into its
//! [`crate::wire`] type, every error answer into [`ErrorBody`].

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::CliError;
use crate::wire::ErrorBody;

pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` (see [`super::tokens::resolve`]).
    token: Option<String>,
}

/// An answer: its status and body text.
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T` if the status is a success, else the server's error.
    pub fn decode<T: DeserializeOwned>(self) -> Result<T, CliError> {
        if !self.is_success() {
            return Err(CliError::Api(error_text(self.status, &self.text)));
        }
        // An empty body (204) reads as JSON `null` (for `()` and `Option`).
        let text = if self.text.trim().is_empty() {
            "null"
        } else {
            &self.text
        };
        serde_json::from_str(text).map_err(|e| CliError::Decode {
            status: self.status,
            message: e.to_string(),
        })
    }
}

impl Client {
    /// A client without a token, trusting the public roots for https.
    pub fn new(base: &str) -> Self {
        Self::build(base, None, ureq::tls::TlsConfig::default())
    }

    /// A client that sends `token` and, for an https service, trusts the
    /// PEM certificates in `ca_cert` (else the public roots).
    pub fn with_access(
        base: &str,
        token: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|source| CliError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(CliError::Invalid(format!(
                    "--ca-cert {}: no PEM certificate in it",
                    path.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        Ok(Self::build(base, token, tls.build()))
    }

    fn build(base: &str, token: Option<String>, tls: ureq::tls::TlsConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Effectors such as a large resize answer when done.
            .timeout_global(Some(Duration::from_secs(600)))
            // drover's server closes a connection idle for 5 s (actix-web's
            // keep-alive); reusing one idle that long races its close and
            // the request fails with "Peer disconnected".
            .max_idle_age(Duration::from_secs(2))
            .tls_config(tls)
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
            token,
        }
    }

    /// The `Authorization` header's value, if the client has a token.
    fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, CliError> {
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        };
        let mut resp = r.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(unreachable)?;
        Ok(Answer { status, text })
    }

    pub fn get(&self, path: &str) -> Result<Answer, CliError> {
        let mut r = self.agent.get(&self.url(path));
        if let Some(a) = self.authorization() {
            r = r.header("authorization", a);
        }
        self.finish(r.call())
    }

    pub fn delete(&self, path: &str) -> Result<Answer, CliError> {
        let mut r = self.agent.delete(&self.url(path));
        if let Some(a) = self.authorization() {
            r = r.header("authorization", a);
        }
        self.finish(r.call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: &str) -> Result<Answer, CliError> {
        let mut r = self
            .agent
            .post(&self.url(path))
            .header("content-type", content_type);
        if let Some(a) = self.authorization() {
            r = r.header("authorization", a);
        }
        self.finish(r.send(body))
    }

    /// POST of bytes (a build context's tar).
    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Answer, CliError> {
        let mut r = self
            .agent
            .post(&self.url(path))
            .header("content-type", content_type);
        if let Some(a) = self.authorization() {
            r = r.header("authorization", a);
        }
        self.finish(r.send(body))
    }

    pub fn put(&self, path: &str, content_type: &str, body: &str) -> Result<Answer, CliError> {
        let mut r = self
            .agent
            .put(&self.url(path))
            .header("content-type", content_type);
        if let Some(a) = self.authorization() {
            r = r.header("authorization", a);
        }
        self.finish(r.send(body))
    }

    /// GET that must succeed, decoded.
    pub fn get_ok<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.get(path)?.decode()
    }
}

/// The message of an error answer: every blueprint error on its own line,
/// else the `error` field, else (a proxy's page, say) the status and text.
pub fn error_text(status: u16, text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) if !body.errors.is_empty() => body
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(body) => body.error,
        Err(_) if text.trim().is_empty() => format!("the service answered {status}"),
        Err(_) => format!("the service answered {status}: {}", text.trim()),
    }
}

/// Percent-encodes a path segment or query value (application ids are
/// plain, but `@location`, file names and user input need it).
pub fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_lists_blueprint_errors_else_the_message() {
        let one = r#"{"error":"no application `x`"}"#;
        assert_eq!(error_text(404, one), "no application `x`");
        let bp = r#"{"error":"e","errors":[{"file":"shop.yml","line":5,"column":5,"path":"services[0]","error":"bad"},{"file":"shop.yml","line":7,"column":1,"path":"x","error":"worse"}]}"#;
        let t = error_text(400, bp);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.starts_with("shop.yml:5:5"), "{t}");
        assert_eq!(error_text(502, ""), "the service answered 502");
        assert_eq!(
            error_text(502, "<html>bad gateway</html>\n"),
            "the service answered 502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn decode_reads_success_and_reports_errors() {
        let ok = Answer {
            status: 201,
            text: r#"{"id":"shop"}"#.into(),
        };
        let c: crate::wire::Created = ok.decode().unwrap();
        assert_eq!(c.id, "shop");
        let empty = Answer {
            status: 204,
            text: String::new(),
        };
        let _: () = empty.decode().unwrap();
        let err = Answer {
            status: 400,
            text: r#"{"error":"unknown kind"}"#.into(),
        };
        let e = err.decode::<()>().unwrap_err();
        assert_eq!(e.to_string(), "unknown kind");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("@pool a/b"), "%40pool%20a%2Fb");
        assert_eq!(query_value("shop.yml"), "shop.yml");
    }
}
