//! HTTPS for `drover serve`, and the rule that a listener off the machine
//! speaks it.
//!
//! A token sent over plain HTTP on a network can be read by anyone on the
//! way; on loopback it never leaves the machine. So a non-loopback listener
//! needs `--tls-cert` and `--tls-key`, or `--insecure-http` when a trusted
//! proxy terminates TLS in front of drover.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("refusing to serve on {listen} ({addr} is not a loopback address) over plain HTTP: API tokens and blueprints would cross the network readable by anyone on the way. Give --tls-cert and --tls-key (a certificate for the name clients use), or --insecure-http if a trusted proxy terminates TLS in front of drover")]
    Insecure { listen: String, addr: SocketAddr },
    #[error("--tls-cert and --tls-key go together; give both")]
    Half,
    #[error("cannot resolve --listen {listen}: {source}")]
    Resolve {
        listen: String,
        source: std::io::Error,
    },
    #[error("cannot read the TLS {what} {path}: {message}")]
    Read {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error(
        "the TLS certificate {cert} and key {key} do not make a server configuration: {message}"
    )]
    Config {
        cert: String,
        key: String,
        message: String,
    },
}

/// The first listen address that is not loopback, if any.
pub fn non_loopback(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs.iter().copied().find(|a| !a.ip().is_loopback())
}

/// Checks the listener rule: `Ok(Some(files))` to serve HTTPS, `Ok(None)`
/// for plain HTTP.
pub fn listener_rule(
    listen: &str,
    cert: Option<&Path>,
    key: Option<&Path>,
    insecure_http: bool,
) -> Result<Option<(PathBuf, PathBuf)>, TlsError> {
    match (cert, key) {
        (Some(c), Some(k)) => return Ok(Some((c.to_path_buf(), k.to_path_buf()))),
        (None, None) => {}
        _ => return Err(TlsError::Half),
    }
    if insecure_http {
        return Ok(None);
    }
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|source| TlsError::Resolve {
            listen: listen.to_string(),
            source,
        })?
        .collect();
    match non_loopback(&addrs) {
        Some(addr) => Err(TlsError::Insecure {
            listen: listen.to_string(),
            addr,
        }),
        None => Ok(None),
    }
}

/// The server configuration of a PEM certificate chain and key, with the
/// ring provider (the one bollard and the CLI use too).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let read = |what: &'static str, path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read("certificate", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read("certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(read("certificate", cert, &"no PEM certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read("key", key, &e))?;
    let config_err = |e: rustls::Error| TlsError::Config {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        message: e.to_string(),
    };
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(config_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_may_be_plain_http() {
        assert!(listener_rule("127.0.0.1:0", None, None, false)
            .unwrap()
            .is_none());
        assert!(listener_rule("[::1]:0", None, None, false)
            .unwrap()
            .is_none());
        let e = listener_rule("0.0.0.0:0", None, None, false).unwrap_err();
        assert!(matches!(e, TlsError::Insecure { .. }), "{e}");
        assert!(e.to_string().contains("--tls-cert"), "{e}");
        assert!(listener_rule("0.0.0.0:0", None, None, true)
            .unwrap()
            .is_none());
        let p = Path::new("x.pem");
        assert!(matches!(
            listener_rule("0.0.0.0:0", Some(p), None, false),
            Err(TlsError::Half)
        ));
        assert!(listener_rule("0.0.0.0:0", Some(p), Some(p), false)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_missing_certificate_is_named() {
        let e = server_config(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
