//! A container removed for good (a cluster resized down) takes its
//! `retain: false` volumes with it; a restart, a `replace_member` or a
//! destroy (which sweeps volumes itself) never does.

use actix::prelude::*;

use super::ContainerEntity;
use crate::blueprint::volumes::{engine_volume_name, named};
use crate::host::volumes::RemoveVolumes;
use crate::protocol::{EntityError, Teardown};

/// [`Teardown`], then the removal of the container's `retain: false`
/// volumes on its host. A failed volume removal is logged, not answered:
/// the container is gone either way, and `drover destroy --volumes`
/// removes what is left.
#[derive(Message)]
#[rtype(result = "Result<(), EntityError>")]
pub struct TeardownForGood;

impl ContainerEntity {
    /// Engine names of the volumes that go with the container.
    fn unretained_volumes(&self) -> Vec<String> {
        named(&self.spec.volumes)
            .filter(|v| !v.retain)
            .map(|v| engine_volume_name(&self.me.app, &self.me.entity, &v.name))
            .collect()
    }
}

impl Handler<TeardownForGood> for ContainerEntity {
    // A plain future, not the actor's: a torn-down container entity stops,
    // and the removal of its volumes must outlive it.
    type Result = ResponseFuture<Result<(), EntityError>>;

    fn handle(&mut self, _: TeardownForGood, ctx: &mut Context<Self>) -> Self::Result {
        let names = self.unretained_volumes();
        // The host it runs on, as the teardown starts.
        let host = self.at.host.clone();
        let me = ctx.address();
        let id = self.me.to_string();
        Box::pin(async move {
            let res = me
                .send(Teardown)
                .await
                .unwrap_or_else(|e| Err(EntityError::unreachable(&id, e)));
            if res.is_ok() && !names.is_empty() {
                match host.send(RemoveVolumes(names)).await {
                    Ok(Ok(removed)) => {
                        tracing::info!(entity = %id, volumes = ?removed, "removed the member's retain: false volumes")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(entity = %id, error = %e, "volume of a removed member kept")
                    }
                    Err(e) => {
                        tracing::warn!(entity = %id, error = %e, "host unreachable; volume of a removed member kept")
                    }
                }
            }
            res
        })
    }
}
