//! The read-only answers of the REST API that are asked of the management
//! actor: hosts, locations, and the metrics scrape. Applications, entities,
//! sensors and activities are read from the shared view
//! ([`super::read_view`]) without a message.

use actix::prelude::*;

use super::{HostView, Management, ManagementError};

/// Filters of `GET /v1/activities`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityFilter {
    pub application: Option<String>,
    pub entity: Option<String>,
    /// `effector`, `policy` or `event`.
    pub kind: Option<String>,
    /// Activities whose name starts with this: `restarter.`, `replace`.
    pub name: Option<String>,
    /// At most this many (default 100, capped at [`super::ACTIVITY_LIMIT_MAX`]).
    pub limit: Option<usize>,
}

#[derive(Message)]
#[rtype(result = "Vec<HostView>")]
pub struct ListHosts;

impl Handler<ListHosts> for Management {
    type Result = Vec<HostView>;
    fn handle(&mut self, _: ListHosts, _: &mut Context<Self>) -> Vec<HostView> {
        let mut seen = std::collections::BTreeSet::new();
        self.locations
            .values()
            .filter(|p| seen.insert(p.host_name.clone()))
            .map(|p| HostView {
                name: p.host_name.clone(),
                address: p.host_address.clone(),
                containers: self.view.model().containers_on(&p.host_name),
                machine: self.host_machine.get(&p.host_name).cloned(),
            })
            .collect()
    }
}

/// The locations with host pools, each with its hosts (and their
/// sensors), headroom, recent placement decisions and pool events
/// (`GET /v1/locations`).
#[derive(Message)]
#[rtype(result = "Vec<crate::location::pool::PoolView>")]
pub struct ListLocations;

impl Handler<ListLocations> for Management {
    type Result = ResponseFuture<Vec<crate::location::pool::PoolView>>;
    fn handle(&mut self, _: ListLocations, _: &mut Context<Self>) -> Self::Result {
        let pools: Vec<_> = self.pools.values().cloned().collect();
        Box::pin(async move {
            let views = futures_util::future::join_all(
                pools.iter().map(|p| p.send(crate::location::pool::GetPool)),
            )
            .await;
            views.into_iter().filter_map(Result::ok).collect()
        })
    }
}

/// An operator's drain or uncordon of one pool host.
#[derive(Message)]
#[rtype(result = "Result<crate::wire::HostOpAnswer, ManagementError>")]
pub struct PoolHostOp {
    pub location: String,
    pub host: String,
    pub op: crate::location::pool::HostOpKind,
}

impl Handler<PoolHostOp> for Management {
    type Result = ResponseFuture<Result<crate::wire::HostOpAnswer, ManagementError>>;
    fn handle(&mut self, msg: PoolHostOp, _: &mut Context<Self>) -> Self::Result {
        let Some(pool) = self.pools.get(&msg.location).cloned() else {
            let known: Vec<&str> = self.pools.keys().map(String::as_str).collect();
            let e = ManagementError::NoHost(format!(
                "no host pool `{}`; pools (drover.yaml): {}",
                msg.location,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
            return Box::pin(async move { Err(e) });
        };
        Box::pin(async move {
            pool.send(crate::location::pool::HostOp {
                host: msg.host,
                op: msg.op,
            })
            .await
            .map_err(|e| ManagementError::NoHost(format!("the host pool did not answer: {e}")))?
            .map_err(|e| ManagementError::NoHost(e.to_string()))
        })
    }
}
