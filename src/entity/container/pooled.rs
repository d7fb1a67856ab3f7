//! A container in a location with a host pool: it asks the pool for a host
//! before its first create, releases the slot when it is removed, and
//! starts again elsewhere when its host fails ([`Relocate`]).

use actix::prelude::*;
use serde_json::json;

use super::phase::Observation;
use super::ContainerEntity;
use crate::entity::pool_messages::{
    Move, Place, PlaceError, PlaceErrorKind, PlacedOn, Release, Relocate,
};
use crate::host::{ContainerOp, DockerHost, Operate};
use crate::placement::Request;
use crate::protocol::{sensors as s, Observable};

/// Sensor: the placement decision that chose this container's host.
pub const PLACEMENT_DECISION: &str = "placement.decision";

/// Sensor: why the last placement failed ([`PlaceErrorKind`], e.g.
/// `insufficient-capacity`); absent once placed.
pub const PLACEMENT_FAILURE: &str = "placement.failure";

/// The container a move leaves behind, removed once the new one runs.
pub struct Retiring {
    pub host: Addr<DockerHost>,
    pub host_name: String,
    pub container: String,
}

impl ContainerEntity {
    /// Asks the pool for a host; the answer goes back to the phase.
    pub(super) fn place(&mut self, ctx: &mut Context<Self>) {
        let Some(pool) = self.at.pool.clone() else {
            return;
        };
        let mut request = Request::new(self.me.app.clone(), self.me.entity.clone()).resources(
            self.spec.resources.cpus.unwrap_or(0.0),
            self.spec.resources.memory.map(|m| m.0).unwrap_or(0),
        );
        if let Some(c) = &self.cluster {
            request = request.member_of(c.clone());
        }
        let msg = Place {
            request,
            rules: self.spec.placement.iter().cloned().collect(),
            image: self.spec.image.clone(),
            relocate: Some(ctx.address().recipient()),
            avoid: self.retiring.as_ref().map(|r| r.host_name.clone()),
            mover: Some(ctx.address().recipient()),
            volumes: crate::blueprint::volumes::named(&self.spec.volumes)
                .map(|v| {
                    crate::blueprint::volumes::engine_volume_name(
                        &self.me.app,
                        &self.me.entity,
                        &v.name,
                    )
                })
                .collect(),
        };
        ctx.spawn(
            async move { pool.place.send(msg).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    if act.core.phase.is_torn_down() {
                        return;
                    }
                    let obs = match res {
                        Ok(Ok(PlacedOn {
                            host,
                            host_name,
                            host_address,
                            explanation,
                            adopted,
                        })) => {
                            act.adopted = adopted.map(Box::new);
                            act.at.host = host;
                            act.at.host_name = host_name;
                            act.at.host_address = host_address;
                            act.board
                                .set(&act.me, PLACEMENT_DECISION, json!(explanation));
                            Observation::Placed
                        }
                        // A move that finds no cooler host: stay.
                        Ok(Err(error)) => Observation::PlaceFailed {
                            error,
                            keep: act.retiring.as_ref().map(|r| r.container.clone()),
                        },
                        // `send` has no timeout: the pool's mailbox closed.
                        Err(_) => Observation::PlaceFailed {
                            error: PlaceError::PoolStopped,
                            keep: None,
                        },
                    };
                    act.observe(obs, ctx);
                }),
        );
    }

    /// Publishes why the last placement failed, or clears it.
    pub(super) fn place_failure(&mut self, kind: Option<PlaceErrorKind>) {
        match kind {
            Some(k) => self.board.set(&self.me, PLACEMENT_FAILURE, json!(k)),
            None => self.board.clear(&self.me, PLACEMENT_FAILURE),
        }
    }

    /// Frees the slot in the pool (the container is gone).
    pub(super) fn release(&mut self) {
        if let Some(pool) = &self.at.pool {
            pool.release.do_send(Release {
                app: self.me.app.clone(),
                entity: self.me.entity.clone(),
                host: None,
            });
        }
    }

    /// A move begins: the current container waits aside until the new one runs.
    pub(super) fn begin_move(&mut self, container: String) {
        self.retiring = Some(Box::new(Retiring {
            host: self.at.host.clone(),
            host_name: self.at.host_name.clone(),
            container,
        }));
    }

    /// The new container of a move runs: remove the old one and free its
    /// slot on the old host.
    pub(super) fn retire_old(&mut self) {
        let Some(old) = self.retiring.take().map(|r| *r) else {
            return;
        };
        tracing::info!(entity = %self.me, from = %old.host_name, to = %self.at.host_name, "moved to a cooler host");
        old.host.do_send(Operate {
            container: old.container,
            op: ContainerOp::Remove,
        });
        if let Some(pool) = &self.at.pool {
            pool.release.do_send(Release {
                app: self.me.app.clone(),
                entity: self.me.entity.clone(),
                host: Some(old.host_name),
            });
        }
    }

    /// No host to move to: keep the old container.
    pub(super) fn abandon_move(&mut self, why: String) {
        let Some(old) = self.retiring.take().map(|r| *r) else {
            return;
        };
        tracing::info!(entity = %self.me, "no move: {why}");
        self.at.host = old.host;
        self.at.host_name = old.host_name;
        self.board
            .set(&self.me, s::CONTAINER_ID, json!(old.container));
    }
}

impl Handler<Relocate> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: Relocate, ctx: &mut Context<Self>) {
        if self.at.pool.is_none() || self.core.phase == super::phase::Phase::Gone {
            return;
        }
        if self.core.phase.is_torn_down() {
            tracing::info!(entity = %self.me, host = %msg.host, "host lost while being removed: {}", msg.reason);
        } else {
            tracing::info!(entity = %self.me, host = %msg.host, "starting again on another host: {}", msg.reason);
        }
        self.observe(Observation::Relocated { reason: msg.reason }, ctx);
    }
}

impl Handler<Move> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: Move, ctx: &mut Context<Self>) {
        if self.core.phase.is_torn_down()
            || self.core.phase.is_busy()
            || self.state() != crate::protocol::Lifecycle::Running
            || self.retiring.is_some()
            || !self.core.want_running
            || self.core.container.is_none()
            // Its named volumes stay on this host: a move would leave its
            // data behind (the blueprint refuses `rebalance` with them; a
            // location's default must not move them either).
            || crate::blueprint::volumes::named(&self.spec.volumes).next().is_some()
        {
            return;
        }
        tracing::info!(entity = %self.me, host = %self.at.host_name, "moving: {}", msg.reason);
        self.observe(Observation::Move, ctx);
    }
}
