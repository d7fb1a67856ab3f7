//! The host module's error: every engine operation names itself and, when
//! the engine refused, keeps Docker's HTTP status as data.

use serde::Serialize;

use super::fault;

/// Errors of engine operations, each naming the operation that failed.
///
/// An engine refusal keeps Docker's HTTP status as data: callers decide on
/// [`HostError::fault`] (or [`HostError::status`]), never on message text.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum HostError {
    #[error("TLS connection to the Docker engine at {endpoint} failed: {message}; check that `tls.ca` signed the engine's certificate (which must name this address) and that the engine trusts `tls.cert` (its --tlscacert signed it)")]
    TlsConnect { endpoint: String, message: String },
    #[error("cannot reach the Docker engine at {endpoint}: {message}; is dockerd running and is the socket readable?")]
    Connect { endpoint: String, message: String },
    #[error("image `{image}` is not on host {host}; pull or load it there (`docker pull {image}`, `docker load`), or let drover pull it (`image_pull: if-not-present`, the default)")]
    ImageMissing { host: String, image: String },
    /// An image pull failed (not found, unauthorized, unreachable, disk full).
    #[error(transparent)]
    Pull(Box<super::pull::PullError>),
    #[error("{0}")]
    Workload(String),
    #[error("container name `{name}` is taken by a container drover does not manage; remove it (`docker rm -f {name}`) or rename the application")]
    NameTaken { name: String },
    #[error("create network {network} failed: the subnet pool {pool} has no free /{size} left ({in_use} networks use it); destroy applications or start drover with a larger --subnet-pool")]
    SubnetsExhausted {
        network: String,
        pool: String,
        size: u8,
        in_use: usize,
    },
    #[error("host port {port} is already in use on host {host}: another process or container holds it; free it, or fix another `host` port (or none: `ports: [{container}]` takes a free one)")]
    PortInUse {
        host: String,
        port: u16,
        container: u16,
    },
    #[error("secret `{name}` is not in drover.yaml's `secrets`; add `{name}: {{ file: /path }}` there and restart drover")]
    UnknownSecret { name: String },
    /// A named volume could not be made or found (see [`super::volumes`]).
    #[error(transparent)]
    Volume(#[from] super::volumes::VolumeError),
    /// `status`: the engine's HTTP status; `None` when the engine did not
    /// answer (a transport error) or the failure is drover's own.
    #[error("{operation} failed: {message}{}", http_suffix(.status))]
    Engine {
        operation: String,
        status: Option<u16>,
        message: String,
    },
}

fn http_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl HostError {
    /// An engine call that failed, with the engine's status and message.
    pub fn engine(operation: impl Into<String>, e: bollard::errors::Error) -> Self {
        let (status, message) = fault::status_and_message(&e);
        HostError::Engine {
            operation: operation.into(),
            status,
            message,
        }
    }

    /// A failure of drover's own around an engine operation (no status).
    pub fn local(operation: impl Into<String>, message: impl Into<String>) -> Self {
        HostError::Engine {
            operation: operation.into(),
            status: None,
            message: message.into(),
        }
    }

    /// The engine's HTTP status, if the engine answered with a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            HostError::Engine { status, .. } => *status,
            _ => None,
        }
    }

    /// What the engine's refusal means (see [`fault::classify`]).
    pub fn fault(&self) -> fault::EngineFault {
        match self {
            HostError::Engine {
                status, message, ..
            } => fault::classify(*status, message),
            _ => fault::EngineFault::Other,
        }
    }

    /// The engine has no such object (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.fault() == fault::EngineFault::NotFound
    }

    /// The engine refused because of a name clash or an operation in
    /// progress (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        self.fault() == fault::EngineFault::Conflict
    }
}

/// The engine's own message and status, without bollard's wrapping (for
/// messages only: decide on [`HostError::fault`]).
pub fn docker_message(e: &bollard::errors::Error) -> String {
    match fault::status_and_message(e) {
        (Some(status), message) => format!("{message} (HTTP {status})"),
        (None, message) => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fault::EngineFault;

    #[test]
    fn engine_errors_keep_the_status_and_say_it() {
        let e = HostError::engine(
            "pause container x",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "No such container: x".into(),
            },
        );
        assert_eq!(e.status(), Some(404));
        assert!(e.is_not_found() && !e.is_conflict());
        assert_eq!(
            e.to_string(),
            "pause container x failed: No such container: x (HTTP 404)"
        );
        let local = HostError::local("copy image i", "the image is not there after the copy");
        assert_eq!(local.status(), None);
        assert_eq!(local.fault(), EngineFault::Other);
        assert_eq!(
            local.to_string(),
            "copy image i failed: the image is not there after the copy"
        );
        let conflict = HostError::Engine {
            operation: "create container c".into(),
            status: Some(409),
            message: "Conflict. The container name \"/c\" is already in use".into(),
        };
        assert!(conflict.is_conflict());
    }

    #[test]
    fn an_exhausted_pool_says_what_to_do() {
        let e = HostError::SubnetsExhausted {
            network: "drover-a".into(),
            pool: "10.9.0.0/22".into(),
            size: 24,
            in_use: 4,
        };
        assert_eq!(
            e.to_string(),
            "create network drover-a failed: the subnet pool 10.9.0.0/22 has no free /24 left \
             (4 networks use it); destroy applications or start drover with a larger --subnet-pool"
        );
    }
}
