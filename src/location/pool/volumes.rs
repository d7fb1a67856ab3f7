//! Placing a container with named volumes: every host is asked which of
//! the volumes it holds, and the container is required on the one that
//! holds them ([`crate::placement::volumes`]) before it joins the queue.

use actix::prelude::*;

use super::{Answer, HostPool, Place};
use crate::host::volumes::ListVolumes;

impl HostPool {
    pub(super) fn place_with_volumes(
        &mut self,
        mut msg: Place,
        tx: Answer,
        ctx: &mut Context<Self>,
    ) {
        let hosts: Vec<_> = self
            .model
            .hosts()
            .iter()
            .map(|h| (h.name().to_string(), h.handle.clone()))
            .collect();
        let app = msg.request.app.clone();
        let fut = async move {
            let mut held = Vec::new();
            for (name, host) in hosts {
                // A host that does not answer holds nothing we can use now.
                if let Ok(Ok(vols)) = host
                    .send(ListVolumes {
                        app: Some(app.clone()),
                    })
                    .await
                {
                    held.push((name, vols.into_iter().map(|v| v.name).collect()));
                }
            }
            held
        };
        ctx.spawn(fut.into_actor(self).map(move |held, act, ctx| {
            if let Some(rule) = crate::placement::volumes::volume_rule(&msg.volumes, &held) {
                tracing::info!(entity = %msg.request.entity, host = ?rule.hostname, "placed with its volumes");
                msg.rules.push(rule);
            }
            act.queue.push((msg, tx));
            act.pump(ctx);
        }));
    }
}
