//! The cluster entity: a resizable group of identical container members.
//!
//! `resize` is level-triggered: it sets the desired size and reconciles the
//! members toward it, so calling it twice, or while a previous resize is in
//! flight, converges on the last size asked for. Growth starts members in
//! parallel; shrinking removes the newest first (Brooklyn's default
//! removal strategy), so the longest-lived members stay.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use actix::prelude::*;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::container::{ContainerEntity, HEALTH_FAILING, PLACEMENT_FAILURE};
use super::policies::{MemberPolicies, PolicyTarget};
use super::pool_messages::PlaceErrorKind;
use super::{ChildAdded, EntityHandle, Links, Placement};
use crate::blueprint::ContainerSpec;
use crate::protocol::{
    entity_handlers, parse_args, sensors as s, teardown_all, EmitNotice, EntityError, EntityEvent,
    EntityKind, EntityRef, Interest, Invoke, Lifecycle, MarkProblem, Observable, SensorBoard,
    Subscribe, SubscribeMembers, Teardown,
};

mod durable;
mod published;
use published::AfterBurst;
mod rolling;
pub mod rollout;
mod verdict;
pub use rolling::{Revisions, ROLLOUT_REVISION, ROLLOUT_STATE};
pub use verdict::{resize_verdict, FailedMember};
#[path = "member_identity.rs"]
mod member_identity;

/// Upper bound on a cluster's size, so a typo (`resize 100000`) cannot
/// exhaust the engine.
pub const MAX_CLUSTER_SIZE: u32 = 1000;

struct Member {
    id: String,
    addr: Addr<ContainerEntity>,
    state: Lifecycle,
    error: Option<String>,
    /// Why its last placement failed (sensor `placement.failure`).
    place_failure: Option<PlaceErrorKind>,
    address: Option<String>,
    ports: BTreeMap<u16, u16>,
    /// The revision of the member spec it runs.
    revision: u64,
    /// Running since (ms since the epoch), for the rollout's `min_ready`.
    ready_since_ms: Option<u64>,
    /// Out of the load balancer since (ms): a rollout removes it soon.
    draining_since_ms: Option<u64>,
    /// Its health check fails since (ms), with the latest reason
    /// (`health.failing`): a rollout's verdict on a new member.
    failing: Option<(u64, String)>,
    /// When it last left `running` (ms, the latest few): that many in one
    /// leg of a rollout is a restart loop.
    left_running_ms: Vec<u64>,
}

pub struct ClusterEntity {
    me: EntityRef,
    member_spec: Arc<ContainerSpec>,
    at: Placement,
    links: Links,
    /// Policies attached to every member (restarters), told of each member.
    member_policies: Option<Box<dyn MemberPolicies>>,
    /// Set by a policy that gave up (the replacer): the cluster is on fire
    /// for this reason until an operator resizes or restarts it.
    problem: Option<String>,
    state: Lifecycle,
    board: SensorBoard,
    desired: u32,
    next_index: u32,
    members: BTreeMap<u32, Member>,
    /// Members made but not started: they start once the store holds them.
    unstarted: Vec<Addr<ContainerEntity>>,
    /// Members to tear down once the store no longer holds them.
    to_teardown: Vec<(String, Addr<ContainerEntity>)>,
    /// Replacements under way: (old, new) member numbers.
    replacing: Vec<(u32, u32)>,
    /// The saved membership was applied (once, at the first start).
    restored: bool,
    /// Who follows the members' sensors (aggregating enrichers).
    member_subscribers: Vec<(Recipient<EntityEvent>, Interest)>,
    /// New members of a replacement: not counted toward the size until the
    /// member they replace is gone, so reconcile does not shrink them away.
    surge: BTreeSet<u32>,
    /// Members being torn down, by id.
    removing: BTreeSet<String>,
    /// Members removed by an in-place rollout, by id: their container goes,
    /// their volumes stay for the member started under the same number.
    keep_volumes: BTreeSet<String>,
    waiters: Vec<oneshot::Sender<Result<serde_json::Value, EntityError>>>,
    started: bool,
    tearing_down: bool,
    /// Sources of the member spec's references, given to every member.
    wiring: Option<super::references::WireReferences>,
    /// The member spec's revisions and the rollout.
    revs: Revisions,
    /// What is due at the end of this burst of member events.
    due: AfterBurst,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeArgs {
    size: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceArgs {
    member: String,
}

/// The number in a member's id, `<cluster>-<number>` as
/// `ClusterEntity::member_id` makes it; `None` for any other id. The caller
/// still compares the whole id: `web-01` is not member 1.
fn member_index(cluster: &str, member: &str) -> Option<u32> {
    member
        .strip_prefix(cluster)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// Members of this spec own named volumes (per-member data).
fn owns_named_volumes(spec: &ContainerSpec) -> bool {
    crate::blueprint::volumes::named(&spec.volumes)
        .next()
        .is_some()
}

/// The cluster's lifecycle from its members' (pure).
pub fn cluster_state(desired: u32, counted: &[Lifecycle], removing: usize) -> Lifecycle {
    if counted.contains(&Lifecycle::OnFire) {
        Lifecycle::OnFire
    } else if counted.len() as u32 != desired
        || removing > 0
        || counted.iter().any(|s| *s != Lifecycle::Running)
    {
        Lifecycle::Starting
    } else {
        Lifecycle::Running
    }
}

impl ClusterEntity {
    pub fn new(
        me: EntityRef,
        member_spec: ContainerSpec,
        initial_size: u32,
        at: Placement,
        links: Links,
        member_policies: Option<Box<dyn MemberPolicies>>,
    ) -> Self {
        let member_spec = Arc::new(member_spec);
        ClusterEntity {
            revs: Revisions::new(&member_spec, None),
            me,
            member_spec,
            at,
            links,
            member_policies,
            problem: None,
            state: Lifecycle::Created,
            board: SensorBoard::default(),
            desired: initial_size,
            next_index: 1,
            members: BTreeMap::new(),
            member_subscribers: Vec::new(),
            unstarted: Vec::new(),
            to_teardown: Vec::new(),
            replacing: Vec::new(),
            restored: false,
            surge: BTreeSet::new(),
            removing: BTreeSet::new(),
            keep_volumes: BTreeSet::new(),
            waiters: Vec::new(),
            started: false,
            tearing_down: false,
            wiring: None,
            due: AfterBurst::default(),
        }
    }

    /// The blueprint's `update:` block.
    pub fn with_update(mut self, update: Option<crate::blueprint::update::UpdateSpec>) -> Self {
        self.revs.update = update.unwrap_or_default();
        self
    }

    pub fn handle(addr: &Addr<ClusterEntity>) -> EntityHandle {
        EntityHandle {
            kind: EntityKind::Cluster,
            invoke: addr.clone().recipient(),
            subscribe: addr.clone().recipient(),
            teardown: addr.clone().recipient(),
            container: None,
            publish: Some(addr.clone().recipient()),
        }
    }

    fn counted(&self) -> impl DoubleEndedIterator<Item = (&u32, &Member)> {
        self.members.iter().filter(|(i, _)| !self.surge.contains(i))
    }

    fn add_member(&mut self, ctx: &mut Context<Self>) -> u32 {
        if self.stateful() {
            // A StatefulSet's ordinals: a cluster grown again gets back
            // the members (and so the volumes) it shrank away.
            let index = member_identity::lowest_free_index(self.members.keys().copied(), |i| {
                self.removing.contains(&self.member_id(i))
            });
            return self.add_member_at(index, ctx);
        }
        let index = self.next_index;
        self.next_index += 1;
        self.add_member_at(index, ctx)
    }

    /// Members own named volumes: each keeps its identity (its number)
    /// through restarts, replacements and resizes.
    fn stateful(&self) -> bool {
        owns_named_volumes(&self.member_spec)
    }

    fn member_id(&self, index: u32) -> String {
        format!("{}-{index}", self.me.entity)
    }

    /// The member whose entity id this is. Found from the number in the
    /// id rather than by scanning the members: every member event comes
    /// here, and a scan made them cost the cluster's size each (members²
    /// per cluster; 11% of the actor thread at 30,000 containers).
    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        let index = member_index(&self.me.entity, id)?;
        self.members.get_mut(&index).filter(|m| m.id == id)
    }

    fn add_member_at(&mut self, index: u32, ctx: &mut Context<Self>) -> u32 {
        self.add_member_rev(index, self.revs.for_new_member(), ctx)
    }

    /// A member of the member spec's `revision`.
    fn add_member_rev(&mut self, index: u32, revision: u64, ctx: &mut Context<Self>) -> u32 {
        self.next_index = self.next_index.max(index + 1);
        let id = self.member_id(index);
        let child = EntityRef::new(self.me.app.clone(), id.clone());
        let spec = self
            .revs
            .specs
            .get(&revision)
            .cloned()
            .unwrap_or_else(|| self.member_spec.clone());
        let addr = ContainerEntity::new(child.clone(), spec, self.at.clone())
            .member_of(&self.me.entity)
            .with_activities(self.links.activities.clone())
            .with_images(self.links.images.clone())
            .start();
        // Register with management before the first engine call, so engine
        // events for the new container always find their entity.
        self.links.children.do_send(ChildAdded {
            parent: self.me.clone(),
            child: child.clone(),
            handle: ContainerEntity::handle(&addr),
        });
        addr.do_send(Subscribe(
            ctx.address().recipient(),
            Interest::Matching(member_sensor_wanted),
        ));
        self.member_subscribers.retain(|(s, _)| s.connected());
        for (s, i) in &self.member_subscribers {
            addr.do_send(Subscribe(s.clone(), i.clone()));
        }
        if let Some(p) = &mut self.member_policies {
            p.joined(PolicyTarget {
                entity: child.clone(),
                subscribe: addr.clone().recipient(),
                invoke: addr.clone().recipient(),
                notice: addr.clone().recipient(),
                problem: None,
            });
        }
        self.members.insert(
            index,
            Member {
                id,
                addr: addr.clone(),
                state: Lifecycle::Created,
                error: None,
                place_failure: None,
                address: None,
                ports: BTreeMap::new(),
                revision,
                ready_since_ms: None,
                draining_since_ms: None,
                failing: None,
                left_running_ms: Vec::new(),
            },
        );
        // References resolve per member: each subscribes to the sources
        // itself, before its first start.
        if let Some(w) = &self.wiring {
            addr.do_send(w.clone());
        }
        // Started by `commit`, once the store holds the new member.
        self.unstarted.push(addr.clone());
        index
    }

    fn remove_member(&mut self, index: u32, _ctx: &mut Context<Self>) {
        let Some(m) = self.members.remove(&index) else {
            return;
        };
        if let Some(p) = &mut self.member_policies {
            p.left(&EntityRef::new(self.me.app.clone(), m.id.clone()));
        }
        self.surge.remove(&index);
        self.removing.insert(m.id.clone());
        // Torn down by `commit`, once the store no longer holds it.
        self.to_teardown.push((m.id, m.addr));
    }

    /// Moves the members toward the desired size.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.tearing_down {
            return;
        }
        // A rollout owns the membership: it grows and shrinks to the size
        // with members of its target revision.
        if self.revs.active() {
            self.drive(ctx);
            self.commit(ctx);
            self.publish();
            self.update_state();
            return;
        }
        let mut count = self.counted().count() as u32;
        while count < self.desired {
            self.add_member(ctx);
            count += 1;
        }
        while count > self.desired {
            let newest = self.counted().map(|(i, _)| *i).next_back();
            match newest {
                Some(i) => self.remove_member(i, ctx),
                None => break,
            }
            count -= 1;
        }
        self.commit(ctx);
        self.publish();
        self.update_state();
    }

    fn resize(
        &mut self,
        size: u32,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        if size > MAX_CLUSTER_SIZE {
            return Box::pin(fut::ready(Err(EntityError::BadArguments {
                effector: "resize".into(),
                message: format!("size {size} is above the limit of {MAX_CLUSTER_SIZE}"),
            })));
        }
        self.started = true;
        self.desired = size;
        // An operator's resize is the answer to a policy's problem.
        if self.problem.take().is_some() {
            self.board.clear(&self.me, s::ENTITY_ERROR);
        }
        if self.revs.active() {
            // Answered at once: the rollout settles the size with it.
            self.reconcile(ctx);
            return Box::pin(fut::ready(Ok(
                json!({ "size": size, "rollout": self.revs.state().as_str() }),
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.reconcile(ctx);
        let me = self.me.to_string();
        Box::pin(
            async move {
                rx.await.unwrap_or_else(|_| {
                    Err(EntityError::Unreachable {
                        entity: me,
                        message: "resize was abandoned".into(),
                    })
                })
            }
            .into_actor(self),
        )
    }

    fn replace(
        &mut self,
        member: String,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<serde_json::Value, EntityError>> {
        let Some(old_index) = self
            .members
            .iter()
            .find(|(i, m)| m.id == member && !self.surge.contains(i))
            .map(|(i, _)| *i)
        else {
            let known = self
                .counted()
                .map(|(_, m)| m.id.clone())
                .collect::<Vec<_>>()
                .join(", ");
            return Box::pin(fut::ready(Err(EntityError::NoSuchMember {
                entity: self.me.to_string(),
                member,
                known,
            })));
        };
        if self.stateful() {
            return self.replace_in_place(old_index, member, ctx);
        }
        // The replacement runs the spec the member belongs to (a rollout
        // may be under way).
        let revision = self.members[&old_index].revision;
        let new_index = self.next_index;
        self.add_member_rev(new_index, revision, ctx);
        self.surge.insert(new_index);
        // Started below, after the store holds the replacement.
        self.unstarted
            .retain(|a| a != &self.members[&new_index].addr);
        self.replacing.push((old_index, new_index));
        let new_addr = self.members[&new_index].addr.clone();
        let new_id = self.members[&new_index].id.clone();
        let write = self.persist();
        // The new member starts before the old one is removed (Brooklyn's
        // replaceMember), so capacity never dips.
        Box::pin(
            async move {
                write.await;
                new_addr.send(Invoke::new("start")).await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                let res = res.unwrap_or_else(|e| Err(EntityError::unreachable(&new_id, e)));
                act.replacing.retain(|p| *p != (old_index, new_index));
                match res {
                    Ok(_) => {
                        act.surge.remove(&new_index);
                        if act.members.contains_key(&old_index) {
                            act.remove_member(old_index, ctx);
                        }
                        act.commit(ctx);
                        act.publish();
                        act.update_state();
                        Ok(json!({ "old": member, "new": new_id }))
                    }
                    Err(e) => {
                        act.remove_member(new_index, ctx);
                        act.commit(ctx);
                        act.publish();
                        Err(EntityError::Failed {
                            entity: act.me.to_string(),
                            message: format!(
                                "replacement {new_id} for {member} failed: {e}; {member} is kept"
                            ),
                        })
                    }
                }
            }),
        )
    }
}

impl Actor for ClusterEntity {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // See `crate::protocol::UNBOUNDED_MAILBOX`.
        ctx.set_mailbox_capacity(crate::protocol::UNBOUNDED_MAILBOX);
        self.board
            .set(&self.me, s::ENTITY_STATE, json!(self.state.as_str()));
        self.publish();
        self.publish_rollout();
        ctx.run_interval(rolling::TICK, |act, ctx| {
            if act.started && act.revs.active() {
                act.drive(ctx);
            }
        });
    }
}

impl Observable for ClusterEntity {
    fn me(&self) -> &EntityRef {
        &self.me
    }
    fn kind(&self) -> EntityKind {
        EntityKind::Cluster
    }
    fn state(&self) -> Lifecycle {
        self.state
    }
    fn board(&mut self) -> &mut SensorBoard {
        &mut self.board
    }
}

entity_handlers!(ClusterEntity);

/// The members' sensors a cluster acts on (its `EntityEvent` handler):
/// addresses and ports for its endpoints, errors, failing health checks and
/// placement failures. Their CPU and memory, which change every second, are
/// the enrichers' and the read model's, not the cluster's.
pub fn member_sensor_wanted(name: &str) -> bool {
    name == s::HOST_ADDRESS
        || name.starts_with(s::HOST_PORT_PREFIX)
        || name == s::ENTITY_ERROR
        || name == HEALTH_FAILING
        || name == PLACEMENT_FAILURE
}

impl Handler<EntityEvent> for ClusterEntity {
    type Result = ();
    fn handle(&mut self, ev: EntityEvent, ctx: &mut Context<Self>) {
        match ev {
            EntityEvent::State { source, state, .. } => {
                if let Some(m) = self.member_mut(&source.entity) {
                    if m.state == Lifecycle::Running && state != Lifecycle::Running {
                        m.left_running_ms.push(rolling::now_ms());
                        let extra = m
                            .left_running_ms
                            .len()
                            .saturating_sub(rollout::RESTART_LOOP as usize);
                        m.left_running_ms.drain(..extra);
                    }
                    m.state = state;
                    if state != Lifecycle::Running {
                        m.ready_since_ms = None;
                    } else if m.ready_since_ms.is_none() {
                        m.ready_since_ms = Some(rolling::now_ms());
                    }
                }
                self.endpoints_soon(ctx);
                if self.revs.active() && self.started {
                    // A rollout's steps read the cluster's state: keep it
                    // exact for them (rollouts are rare and step by step).
                    self.update_state();
                    self.drive(ctx);
                } else {
                    self.state_soon(ctx);
                }
            }
            EntityEvent::Sensor {
                source,
                name,
                value,
            } if name == s::HOST_ADDRESS || name.starts_with(s::HOST_PORT_PREFIX) => {
                if let Some(m) = self.member_mut(&source.entity) {
                    if name == s::HOST_ADDRESS {
                        m.address = value.value.as_str().map(str::to_string);
                    } else if let (Ok(c), Some(h)) = (
                        name[s::HOST_PORT_PREFIX.len()..].parse::<u16>(),
                        value.value.as_u64(),
                    ) {
                        m.ports.insert(c, h as u16);
                    }
                }
                self.endpoints_soon(ctx);
            }
            // Members' failures are the cluster's policies' business: pass
            // them on to the cluster's subscribers (the replacer).
            ev @ EntityEvent::Notice { .. } => self.board.emit(ev),
            EntityEvent::Sensor {
                source,
                name,
                value,
            } if name == s::ENTITY_ERROR => {
                if let Some(m) = self.member_mut(&source.entity) {
                    m.error = value.value.as_str().map(str::to_string);
                }
            }
            EntityEvent::Sensor {
                source,
                name,
                value,
            } if name == HEALTH_FAILING => {
                let mut changed = false;
                if let Some(m) = self.member_mut(&source.entity) {
                    m.failing = match value.value.as_str() {
                        // The first failure since the last pass or start counts.
                        Some(why) => Some((
                            m.failing.as_ref().map_or_else(rolling::now_ms, |f| f.0),
                            why.to_string(),
                        )),
                        None => None,
                    };
                    changed = true;
                }
                if changed && self.revs.active() && self.started {
                    self.drive(ctx);
                }
            }
            EntityEvent::Sensor {
                source,
                name,
                value,
            } if name == PLACEMENT_FAILURE => {
                if let Some(m) = self.member_mut(&source.entity) {
                    m.place_failure = serde::Deserialize::deserialize(&*value.value).ok();
                }
            }
            _ => {}
        }
    }
}

impl Handler<super::references::WireReferences> for ClusterEntity {
    type Result = ();
    fn handle(&mut self, msg: super::references::WireReferences, _: &mut Context<Self>) {
        for m in self.members.values() {
            m.addr.do_send(msg.clone());
        }
        self.wiring = Some(msg);
    }
}

impl Handler<EmitNotice> for ClusterEntity {
    type Result = ();
    fn handle(&mut self, msg: EmitNotice, _: &mut Context<Self>) {
        self.board.emit(EntityEvent::Notice {
            source: self.me.clone(),
            name: msg.name,
            detail: msg.detail,
        });
    }
}

impl Handler<MarkProblem> for ClusterEntity {
    type Result = ();
    fn handle(&mut self, MarkProblem(problem): MarkProblem, _: &mut Context<Self>) {
        match &problem {
            Some(p) => self.board.set(&self.me, s::ENTITY_ERROR, json!(p)),
            None => self.board.clear(&self.me, s::ENTITY_ERROR),
        }
        self.problem = problem;
        self.update_state();
    }
}

impl Handler<Invoke> for ClusterEntity {
    type Result = ResponseActFuture<Self, Result<serde_json::Value, EntityError>>;

    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        if self.tearing_down {
            return Box::pin(fut::ready(Err(EntityError::Stopping {
                entity: self.me.to_string(),
            })));
        }
        match msg.effector.as_str() {
            // Start: reconcile to the current desired size (initially the
            // blueprint's `initial_size`).
            "start" => {
                self.restore(ctx);
                self.resize(self.desired, ctx)
            }
            "resize" => match parse_args::<ResizeArgs>("resize", &msg.args) {
                Ok(a) => self.resize(a.size, ctx),
                Err(e) => Box::pin(fut::ready(Err(e))),
            },
            "replace_member" => match parse_args::<ReplaceArgs>("replace_member", &msg.args) {
                Ok(a) => self.replace(a.member, ctx),
                Err(e) => Box::pin(fut::ready(Err(e))),
            },
            "rollout" => {
                let res = parse_args::<rolling::RolloutArgs>("rollout", &msg.args)
                    .and_then(|a| self.start_rollout(a, ctx));
                Box::pin(fut::ready(res))
            }
            "rollout_status" => Box::pin(fut::ready(Ok(self.rollout_status()))),
            "rollout_pause" | "rollout_resume" | "rollout_undo" => {
                let what = msg.effector["rollout_".len()..].to_string();
                let res = self.rollout_control(&what, ctx);
                Box::pin(fut::ready(res))
            }
            other => Box::pin(fut::ready(Err(EntityError::unknown_effector(
                &self.me,
                other,
                &[
                    "start",
                    "resize(size)",
                    "replace_member(member)",
                    "rollout(member, update)",
                    "rollout_status",
                    "rollout_pause",
                    "rollout_resume",
                    "rollout_undo",
                ],
            )))),
        }
    }
}

impl Handler<Teardown> for ClusterEntity {
    type Result = ResponseActFuture<Self, Result<(), EntityError>>;

    fn handle(&mut self, _: Teardown, _: &mut Context<Self>) -> Self::Result {
        self.tearing_down = true;
        self.state = Lifecycle::Stopping;
        self.board.emit(EntityEvent::State {
            source: self.me.clone(),
            kind: EntityKind::Cluster,
            state: Lifecycle::Stopping,
        });
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(EntityError::Stopping {
                entity: self.me.to_string(),
            }));
        }
        let members: Vec<Recipient<Teardown>> = std::mem::take(&mut self.members)
            .into_values()
            .map(|m| m.addr.recipient())
            .collect();
        let fut = teardown_all(self.me.to_string(), "members not removed: ", members);
        Box::pin(fut.into_actor(self).map(|res, act, ctx| {
            act.state = Lifecycle::Stopped;
            act.board.emit(EntityEvent::State {
                source: act.me.clone(),
                kind: EntityKind::Cluster,
                state: Lifecycle::Stopped,
            });
            act.board.emit(EntityEvent::Gone {
                source: act.me.clone(),
            });
            ctx.stop();
            res
        }))
    }
}

impl Handler<SubscribeMembers> for ClusterEntity {
    type Result = ();
    fn handle(&mut self, msg: SubscribeMembers, _: &mut Context<Self>) {
        // Subscribed to each member directly (members replay their current
        // sensors); new members get the same subscribers in `add_member`.
        for m in self.members.values() {
            m.addr.do_send(Subscribe(msg.0.clone(), msg.1.clone()));
        }
        self.member_subscribers.push((msg.0, msg.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lifecycle::*;

    #[test]
    fn state_from_members() {
        assert_eq!(cluster_state(3, &[Running, Running, Running], 0), Running);
        assert_eq!(cluster_state(3, &[Running, Running], 0), Starting);
        assert_eq!(cluster_state(2, &[Running, Running], 1), Starting);
        assert_eq!(cluster_state(3, &[Running, OnFire, Starting], 0), OnFire);
        assert_eq!(cluster_state(0, &[], 0), Running);
    }

    #[test]
    fn a_member_is_found_by_the_number_in_its_id() {
        assert_eq!(member_index("web", "web-1"), Some(1));
        assert_eq!(member_index("web", "web-1000"), Some(1000));
        // Clusters whose names end in a number, or share a prefix.
        assert_eq!(member_index("web-2", "web-2-13"), Some(13));
        assert_eq!(member_index("web", "web-2-13"), None);
        assert_eq!(member_index("web-2", "web-21"), None);
        assert_eq!(member_index("web", "webx-1"), None);
        assert_eq!(member_index("web", "web-"), None);
        assert_eq!(member_index("web", "web"), None);
        assert_eq!(member_index("web", "db-1"), None);
        // Parses, but is not the id of member 1: the caller compares ids.
        assert_eq!(member_index("web", "web-01"), Some(1));
        assert_eq!(member_index("web", "web-+1"), Some(1));
    }
}
