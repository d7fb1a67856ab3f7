//! TLS of a load-balancer agent's control API.
//!
//! Each agent makes a self-signed certificate when it starts (rcgen, an
//! ECDSA P-256 key that never leaves its memory) and prints the SHA-256 of
//! the certificate on its ready line. drover reads that line from the
//! container's log through the engine's API, a channel it already trusts,
//! and accepts exactly that certificate (pinning): no CA, no names, and
//! the bearer secret and the pool never cross the network in clear.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sha2::Digest;

/// The name in the agent's certificate (not checked: the pin is).
const CERT_NAME: &str = "drover-lb-agent";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate's DER, hex (pure).
pub fn fingerprint(der: &[u8]) -> String {
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh self-signed certificate: the server side's config and the
/// certificate's fingerprint.
pub fn server() -> Result<(Arc<rustls::ServerConfig>, String), String> {
    let ck = rcgen::generate_simple_self_signed(vec![CERT_NAME.to_string()])
        .map_err(|e| format!("making the control API's certificate: {e}"))?;
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let pin = fingerprint(&cert);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| format!("the control API's certificate: {e}"))?;
    Ok((Arc::new(cfg), pin))
}

/// drover's side: trusts the one certificate whose fingerprint is `pin`.
pub fn client(pin: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let p = provider();
    let verifier = Pinned {
        pin: pin.to_ascii_lowercase(),
        algs: p.signature_verification_algorithms,
    };
    let cfg = rustls::ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The server name a client sends (any: the pin decides).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(CERT_NAME)
        .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
}

/// Accepts the pinned certificate, and checks the handshake's signatures
/// with it as usual (so only the holder of its key passes).
#[derive(Debug)]
struct Pinned {
    pin: String,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the load balancer agent's certificate is not the one its ready line names".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
