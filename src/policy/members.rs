//! The restarters of a cluster's members, answered for as one policy:
//! one config, one start/stop, applied to every member's restarter and to
//! the restarters of members yet to come.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde_json::json;

use super::restarter::{Restarter, RestarterConfig};
use super::{PolicyConfig, PolicyControl, PolicyError, PolicyOp, PolicyStatus};
use crate::activity::RecordActivity;
use crate::protocol::{EmitNotice, EntityRef, Invoke, Subscribe};

/// What a member restarter needs of the member.
pub struct Join {
    pub member: EntityRef,
    pub subscribe: Recipient<Subscribe>,
    pub invoke: Recipient<Invoke>,
    pub notice: Recipient<EmitNotice>,
    /// What the store held for this member's restarter, on a rebind.
    pub saved: Option<serde_json::Value>,
}

impl Message for Join {
    type Result = ();
}

/// A member left the cluster: its restarter stops with it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave(pub EntityRef);

pub struct MemberRestarters {
    name: String,
    cfg: RestarterConfig,
    running: bool,
    activities: Recipient<RecordActivity>,
    store: Option<Recipient<crate::store::StoreWrite>>,
    restarters: BTreeMap<EntityRef, Addr<Restarter>>,
}

impl MemberRestarters {
    pub fn new(
        name: String,
        cfg: RestarterConfig,
        activities: Recipient<RecordActivity>,
        store: Option<Recipient<crate::store::StoreWrite>>,
    ) -> Self {
        MemberRestarters {
            name,
            cfg,
            running: true,
            activities,
            store,
            restarters: BTreeMap::new(),
        }
    }
}

impl Actor for MemberRestarters {
    type Context = Context<Self>;
}

impl Handler<Join> for MemberRestarters {
    type Result = ();
    fn handle(&mut self, j: Join, _: &mut Context<Self>) {
        let r = Restarter::new(
            j.member.clone(),
            j.subscribe,
            j.invoke,
            j.notice,
            self.activities.clone(),
            self.cfg.clone(),
        )
        .named(self.name.clone())
        .persisted(self.store.clone(), j.saved)
        .start();
        if !self.running {
            r.do_send(PolicyControl {
                policy: self.name.clone(),
                op: PolicyOp::Stop,
            });
        }
        self.restarters.insert(j.member, r);
    }
}

impl Handler<Leave> for MemberRestarters {
    type Result = ();
    fn handle(&mut self, Leave(member): Leave, _: &mut Context<Self>) {
        self.restarters.remove(&member);
    }
}

impl Handler<PolicyControl> for MemberRestarters {
    type Result = Result<PolicyStatus, PolicyError>;
    fn handle(&mut self, msg: PolicyControl, _: &mut Context<Self>) -> Self::Result {
        match &msg.op {
            PolicyOp::Get => {}
            PolicyOp::Set(PolicyConfig::Restarter(c)) => self.cfg = c.clone(),
            PolicyOp::Set(other) => return Err(PolicyError::wrong_kind("restarter", other)),
            PolicyOp::Start => self.running = true,
            PolicyOp::Stop => self.running = false,
        }
        if !matches!(msg.op, PolicyOp::Get) {
            for r in self.restarters.values() {
                r.do_send(msg.clone());
            }
        }
        Ok(PolicyStatus::of(
            &self.name,
            &PolicyConfig::Restarter(self.cfg.clone()),
            self.running,
            json!({ "members": self.restarters.len() }),
        ))
    }
}
