//! A container in a location with a host pool: it asks the pool for a host
//! before its first create, releases the slot when it is removed, and
//! starts again elsewhere when its host fails ([`Relocate`]).

use std::time::Instant;

use actix::prelude::*;
use serde_json::json;

use super::ContainerEntity;
use crate::entity::pool_messages::{Move, Place, PlacedOn, Release, Relocate};
use crate::host::{ContainerOp, DockerHost, Operate};
use crate::placement::Request;
use crate::protocol::{sensors as s, Lifecycle};

/// Sensor: the placement decision that chose this container's host.
pub const PLACEMENT_DECISION: &str = "placement.decision";

/// The container a move leaves behind, removed once the new one runs.
pub struct Retiring {
    pub host: Addr<DockerHost>,
    pub host_name: String,
    pub container: String,
}

impl ContainerEntity {
    /// A pool location and no host chosen yet.
    pub(super) fn needs_place(&self) -> bool {
        self.at.pool.is_some() && !self.pool_placed
    }

    /// Asks the pool for a host, then starts there.
    pub(super) fn place_first(&mut self, ctx: &mut Context<Self>) {
        let Some(pool) = self.at.pool.clone() else {
            return;
        };
        self.busy = true;
        self.started_at = Some(Instant::now());
        self.up = None;
        self.last_error = None;
        self.set_state(Lifecycle::Starting);
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
        };
        ctx.spawn(
            async move { pool.place.send(msg).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.busy = false;
                    if act.tearing_down {
                        return;
                    }
                    match res {
                        Ok(Ok(PlacedOn {
                            host,
                            host_name,
                            host_address,
                            explanation,
                        })) => {
                            act.at.host = host;
                            act.at.host_name = host_name;
                            act.at.host_address = host_address;
                            act.pool_placed = true;
                            act.board
                                .set(&act.me, PLACEMENT_DECISION, json!(explanation));
                            // Back to Created so `start` runs its create path.
                            act.state = Lifecycle::Created;
                            act.start(ctx);
                        }
                        Ok(Err(e)) if act.retiring.is_some() => {
                            // A move that finds no cooler host: stay.
                            act.abandon_move(e.to_string(), ctx);
                        }
                        Ok(Err(e)) => act.fail(e.to_string()),
                        Err(e) => act.fail(format!("host pool unreachable: {e}")),
                    }
                }),
        );
    }

    /// Frees the slot in the pool (the container is gone).
    pub(super) fn release(&mut self) {
        if let (Some(pool), true) = (&self.at.pool, self.pool_placed) {
            pool.release.do_send(Release {
                app: self.me.app.clone(),
                entity: self.me.entity.clone(),
                host: None,
            });
        }
        self.pool_placed = false;
    }

    /// The new container of a move runs: remove the old one and free its
    /// slot on the old host.
    pub(super) fn retire_old(&mut self) {
        let Some(old) = self.retiring.take() else {
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
    fn abandon_move(&mut self, why: String, _: &mut Context<Self>) {
        let Some(old) = self.retiring.take() else {
            return;
        };
        tracing::info!(entity = %self.me, "no move: {why}");
        self.at.host = old.host;
        self.at.host_name = old.host_name;
        self.container_id = Some(old.container.clone());
        self.board
            .set(&self.me, s::CONTAINER_ID, json!(old.container));
        self.pool_placed = true;
        self.set_up(true);
        self.state = Lifecycle::Starting;
        self.set_state(Lifecycle::Running);
    }
}

impl Handler<Relocate> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: Relocate, ctx: &mut Context<Self>) {
        if self.tearing_down || self.at.pool.is_none() {
            return;
        }
        tracing::info!(entity = %self.me, host = %msg.host, "starting again on another host: {}", msg.reason);
        // The slot on the failed host is already forgotten by the pool.
        self.pool_placed = false;
        self.container_id = None;
        self.board.clear(&self.me, s::CONTAINER_ID);
        self.last_error = Some(msg.reason.clone());
        self.board.set(&self.me, s::SERVICE_STATE, json!("removed"));
        if self.want_running && !self.busy {
            self.state = Lifecycle::Created;
            self.start(ctx);
        }
    }
}

impl Handler<Move> for ContainerEntity {
    type Result = ();
    fn handle(&mut self, msg: Move, ctx: &mut Context<Self>) {
        if self.tearing_down
            || self.busy
            || self.state != Lifecycle::Running
            || self.retiring.is_some()
            || !self.want_running
        {
            return;
        }
        let Some(id) = self.container_id.clone() else {
            return;
        };
        tracing::info!(entity = %self.me, host = %self.at.host_name, "moving: {}", msg.reason);
        self.retiring = Some(Retiring {
            host: self.at.host.clone(),
            host_name: self.at.host_name.clone(),
            container: id,
        });
        // Start afresh: the pool picks another host (avoiding this one);
        // the same container name is free there (another engine).
        self.pool_placed = false;
        self.container_id = None;
        self.state = Lifecycle::Created;
        self.start(ctx);
    }
}
