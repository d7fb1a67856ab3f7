//! What an engine's refusal means, as far as drover acts on it.
//!
//! Docker answers errors with an HTTP status and a message. Drover decides
//! on the status wherever it is enough (304, 404, 409). Three cases it acts
//! on share a status with unrelated refusals, and the engine's API has
//! nothing but the message to tell them apart; [`classify`] is the one
//! place that reads engine message text, so an engine upgrade that rewords
//! one of them is caught by its unit test here, not by a silent change of
//! behaviour somewhere else. Callers match on [`EngineFault`].

use serde::Serialize;

/// An engine refusal drover acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EngineFault {
    /// 304: the object is already in the requested state (start of a
    /// running container, stop of a stopped one).
    NotModified,
    /// 404: no such container, network or image.
    NotFound,
    /// 409: the name is taken, or a removal is already in progress.
    Conflict,
    /// 403 on a network connect: the (running) container already has an
    /// endpoint on that network.
    AlreadyConnected,
    /// 403 on a network create: the subnet overlaps another network's pool
    /// (or a bridge of another engine on the machine).
    SubnetOverlap,
    /// 500 on a container start: a published host port is taken, typically
    /// by another engine on the same machine allocating from the same range.
    AddressInUse,
    /// Anything else: reported, never acted on.
    Other,
}

/// Classifies an engine error by its HTTP status (`None`: no answer from
/// the engine, a transport error) and, only where the status is shared with
/// unrelated refusals, its message.
///
/// The messages, as dockerd 20.10 (API 1.41) words them:
/// - 403 `endpoint with name <c> already exists in network <n>` (connect)
/// - 403 `Pool overlaps with other one on this address space` (network
///   create), or `... conflicts with network ...: networks have overlapping
///   IPv4` (bridge driver)
/// - 500 `driver failed programming external connectivity on endpoint ...:
///   Error starting userland proxy: listen tcp4 0.0.0.0:<p>: bind: address
///   already in use` (start)
pub fn classify(status: Option<u16>, message: &str) -> EngineFault {
    match status {
        Some(304) => EngineFault::NotModified,
        Some(404) => EngineFault::NotFound,
        Some(409) => EngineFault::Conflict,
        Some(403) if message.contains("already exists in network") => EngineFault::AlreadyConnected,
        Some(403) if message.to_ascii_lowercase().contains("overlap") => EngineFault::SubnetOverlap,
        Some(500) if message.contains("address already in use") => EngineFault::AddressInUse,
        _ => EngineFault::Other,
    }
}

/// The status and message of a bollard error: the engine's own for an
/// answer, bollard's description (and no status) for a transport error.
pub fn status_and_message(e: &bollard::errors::Error) -> (Option<u16>, String) {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => (Some(*status_code), message.clone()),
        other => (None, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_alone_decides_where_it_can() {
        assert_eq!(classify(Some(304), ""), EngineFault::NotModified);
        assert_eq!(
            classify(Some(404), "No such container: x"),
            EngineFault::NotFound
        );
        // Whatever the wording: the status is the contract.
        assert_eq!(
            classify(Some(404), "network x not found"),
            EngineFault::NotFound
        );
        assert_eq!(
            classify(Some(409), "network with name x already exists"),
            EngineFault::Conflict
        );
        assert_eq!(classify(None, "connection refused"), EngineFault::Other);
        assert_eq!(classify(Some(500), "boom"), EngineFault::Other);
    }

    /// The messages below are what dockerd 20.10 answered on this machine.
    #[test]
    fn shared_statuses_are_told_apart_by_the_engine_message() {
        assert_eq!(
            classify(
                Some(403),
                "endpoint with name drover-a-web already exists in network drover-a-extra"
            ),
            EngineFault::AlreadyConnected
        );
        assert_eq!(
            classify(
                Some(403),
                "Pool overlaps with other one on this address space"
            ),
            EngineFault::SubnetOverlap
        );
        assert_eq!(
            classify(
                Some(403),
                "cannot create network x (br-1): conflicts with network y (br-2): networks have overlapping IPv4"
            ),
            EngineFault::SubnetOverlap
        );
        assert_eq!(
            classify(
                Some(500),
                "driver failed programming external connectivity on endpoint e (id): Error starting \
                 userland proxy: listen tcp4 0.0.0.0:38517: bind: address already in use"
            ),
            EngineFault::AddressInUse
        );
        // Other refusals under the same statuses are not mistaken for them.
        assert_eq!(
            classify(
                Some(403),
                "operation is not permitted on predefined bridge network"
            ),
            EngineFault::Other
        );
        assert_eq!(
            classify(Some(500), "OCI runtime create failed"),
            EngineFault::Other
        );
        // The same words under another status are not acted on.
        assert_eq!(
            classify(
                Some(400),
                "Pool overlaps with other one on this address space"
            ),
            EngineFault::Other
        );
        assert_eq!(classify(None, "address already in use"), EngineFault::Other);
    }

    #[test]
    fn keeps_the_engine_status_and_message() {
        let e = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        assert_eq!(
            status_and_message(&e),
            (Some(404), "No such container: x".to_string())
        );
    }
}
