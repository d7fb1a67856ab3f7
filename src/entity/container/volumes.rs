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
    type Result = ResponseActFuture<Self, Result<(), EntityError>>;

    fn handle(&mut self, _: TeardownForGood, ctx: &mut Context<Self>) -> Self::Result {
        let names = self.unretained_volumes();
        // The host it runs on, as the teardown starts.
        let host = self.at.host.clone();
        let me = self.me.to_string();
        let teardown = Handler::<Teardown>::handle(self, Teardown, ctx);
        Box::pin(teardown.then(move |res, act, _| {
            async move {
                if res.is_ok() && !names.is_empty() {
                    match host.send(RemoveVolumes(names)).await {
                        Ok(Ok(removed)) => {
                            tracing::info!(entity = %me, volumes = ?removed, "removed the member's retain: false volumes")
                        }
                        Ok(Err(e)) => tracing::warn!(entity = %me, error = %e, "volume of a removed member kept"),
                        Err(e) => tracing::warn!(entity = %me, error = %e, "host unreachable; volume of a removed member kept"),
                    }
                }
                res
            }
            .into_actor(act)
        }))
    }
}
