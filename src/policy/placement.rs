//! The CPU placement policy: one actor per location, beside the
//! autoscaling and resilience policies.
//!
//! - It answers the host pool's placement requests ([`Decide`]) with its
//!   chain: the location's defaults under the entity's `placement:` layers,
//!   through the pure [`decide`](crate::placement::decide()).
//! - It subscribes to the hosts' CPU sensors ([`HostSensors`]).
//! - For containers whose placement enables `rebalance` (in the blueprint,
//!   or with a `cpu-placement` policy or preset on their cluster) it moves
//!   one off a host whose CPU stays above the threshold for the window:
//!   the container is told to [`Move`]; it starts its new container on a
//!   cooler host first and removes the old one after. The decision is the
//!   pure [`plan`]: one move per cluster at a time, then the cooldown.
//!
//! The pool keeps the reservations (and so serializes decisions: one
//! [`Decide`] in flight per pool); the policy keeps only what it needs to
//! move containers, and its memory (busy hosts, last moves) is saved in
//! the store with the location's state.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::blueprint::{PlacementSpec, RebalanceSpec};
use crate::host::usage::HostSensors;
use crate::placement::rebalance::{plan, HostCpu, RebalanceMemory, Watched};
use crate::placement::{decide, HostState, Request, Rules};
use crate::protocol::Move;

/// How often the policy looks for busy hosts.
const EVERY: Duration = Duration::from_secs(1);
/// Recent moves kept for the location's view.
const KEEP_MOVES: usize = 20;

/// The `cpu-placement` policy's config on a cluster (or a preset): the
/// same keys as `placement.rebalance` in a blueprint, which it sets for
/// every member.
pub type CpuPlacementConfig = RebalanceSpec;

/// Placement requests from the pool, decided in order: the hosts as the
/// pool sees them (reservations included) and, for each, the request and
/// the entity's layers. Each decision sees the ones before it placed, as
/// the pool will place them. One message for many: a decision's round trip
/// through the pool's and the policy's mailboxes waits behind every other
/// actor of the thread, and one at a time this capped a deploy of 100,000
/// containers at about 35 placements a second.
#[derive(Message)]
#[rtype(result = "Vec<Decided>")]
pub struct Decide {
    /// The pool's hosts, shared with the pool (see `PoolHost::state`).
    pub states: Vec<Arc<HostState>>,
    pub asks: Vec<Ask>,
}

/// One placement to decide.
pub struct Ask {
    pub request: Request,
    /// The entity's `placement:` layers (cluster, then member).
    pub layers: Vec<PlacementSpec>,
    /// A host not to choose (the one a move leaves).
    pub avoid: Option<String>,
    /// The move is a CPU move (not a drain): only hosts below the
    /// threshold qualify.
    pub cpu_move: bool,
    /// Where a move is sent, if the layers enable `rebalance`.
    pub mover: Option<Recipient<Move>>,
}

/// The answer: the index of the chosen host in `states`, and the decision
/// explained host by host.
#[derive(Debug, Clone, MessageResponse)]
pub struct Decided {
    pub chosen: Option<usize>,
    pub summary: String,
}

/// The container left its host (removed, or its host failed).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Forget {
    pub app: String,
    pub entity: String,
    /// Only if it is on this host; `None`: wherever.
    pub host: Option<String>,
}

/// A host can take no containers (on fire or decommissioned): its
/// containers are placed again elsewhere, each with a new [`Decide`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct HostDown {
    pub host: String,
    /// Gone for good (decommissioned), not just silent.
    pub removed: bool,
}

/// What the policy knows, for `GET /v1/locations`.
#[derive(Message)]
#[rtype(result = "PlacementView")]
pub struct GetPlacement;

pub use crate::wire::PlacementView;

/// Where the policy's memory is saved.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PlacementMemory(pub RebalanceMemory);

pub struct PlacementPolicy {
    location: String,
    defaults: PlacementSpec,
    hosts: BTreeMap<String, HostCpu>,
    watched: BTreeMap<(String, String), (Watched, Recipient<Move>)>,
    /// Live changes by (app, group): a new rule, or `None` (stopped).
    tuned: BTreeMap<(String, String), Option<RebalanceSpec>>,
    memory: RebalanceMemory,
    moves: VecDeque<String>,
    activities: Option<Recipient<crate::activity::RecordActivity>>,
    /// Where a changed memory goes (the pool, which stores the location).
    save_to: Option<Recipient<PlacementMemory>>,
    last_saved: Option<RebalanceMemory>,
}

impl PlacementPolicy {
    pub fn new(location: &str, defaults: PlacementSpec) -> Self {
        PlacementPolicy {
            location: location.to_string(),
            defaults,
            hosts: BTreeMap::new(),
            watched: BTreeMap::new(),
            tuned: BTreeMap::new(),
            memory: RebalanceMemory::default(),
            moves: VecDeque::new(),
            activities: None,
            save_to: None,
            last_saved: None,
        }
    }

    /// Starts from the memory saved before a restart.
    pub fn with_memory(mut self, memory: RebalanceMemory) -> Self {
        self.last_saved = Some(memory.clone());
        self.memory = memory;
        self
    }

    pub fn with_activities(mut self, to: Recipient<crate::activity::RecordActivity>) -> Self {
        self.activities = Some(to);
        self
    }

    pub fn saving_to(mut self, to: Recipient<PlacementMemory>) -> Self {
        self.save_to = Some(to);
        self
    }

    fn tick(&mut self) {
        let hosts: Vec<HostCpu> = self.hosts.values().cloned().collect();
        // A tuned group's rule replaces the one it was placed with.
        let watched: Vec<Watched> = self
            .watched
            .values()
            .filter_map(
                |(w, _)| match self.tuned.get(&(w.app.clone(), w.group.clone())) {
                    Some(Some(rule)) => Some(Watched {
                        rule: rule.clone(),
                        ..w.clone()
                    }),
                    Some(None) => None,
                    None => Some(w.clone()),
                },
            )
            .collect();
        let orders = plan(
            &hosts,
            &watched,
            &mut self.memory,
            crate::protocol::now_ms(),
        );
        for o in orders {
            let Some((_, to)) = self.watched.get(&(o.app.clone(), o.entity.clone())) else {
                continue;
            };
            let text = format!("moving {}/{} off {}: {}", o.app, o.entity, o.from, o.reason);
            tracing::info!(location = %self.location, "{text}");
            if let Some(a) = &self.activities {
                a.do_send(crate::activity::RecordActivity(
                    crate::activity::Activity::policy(
                        &o.app,
                        &o.entity,
                        "placement.move",
                        serde_json::json!({ "from": o.from, "location": self.location }),
                        "decided",
                        o.reason.clone(),
                    ),
                ));
            }
            self.moves.push_back(text);
            while self.moves.len() > KEEP_MOVES {
                self.moves.pop_front();
            }
            to.do_send(Move { reason: o.reason });
        }
        if self.last_saved.as_ref() != Some(&self.memory) {
            if let Some(s) = &self.save_to {
                s.do_send(PlacementMemory(self.memory.clone()));
            }
            self.last_saved = Some(self.memory.clone());
        }
    }
}

impl Actor for PlacementPolicy {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(EVERY, |act, _| act.tick());
    }
}

/// The chain a request is decided with: the location's defaults, then the
/// entity's layers.
pub fn rules_for(defaults: &PlacementSpec, layers: &[PlacementSpec]) -> Rules {
    let layers: Vec<&PlacementSpec> = layers.iter().collect();
    Rules::resolve(defaults, &layers)
}

/// The `rebalance` rule in force for a request (the innermost layer that
/// sets one, else the location's default).
pub fn rebalance_of(defaults: &PlacementSpec, layers: &[PlacementSpec]) -> Option<RebalanceSpec> {
    layers
        .iter()
        .rev()
        .find_map(|l| l.rebalance.clone())
        .or_else(|| defaults.rebalance.clone())
}

impl Handler<Decide> for PlacementPolicy {
    type Result = MessageResult<Decide>;
    fn handle(&mut self, msg: Decide, _: &mut Context<Self>) -> Self::Result {
        let mut states = msg.states;
        let decided = msg
            .asks
            .into_iter()
            .map(|ask| {
                let request = ask.request.clone();
                let d = self.decide_one(&states, ask);
                // The next decision sees this one placed (copied on write:
                // the pool's own states stay as they are).
                if let Some(st) = d.chosen.and_then(|i| states.get_mut(i)) {
                    Arc::make_mut(st).place(&request);
                }
                d
            })
            .collect();
        MessageResult(decided)
    }
}

impl PlacementPolicy {
    fn decide_one(&mut self, pool: &[Arc<HostState>], msg: Ask) -> Decided {
        let rules = rules_for(&self.defaults, &msg.layers);
        let rebalance = rebalance_of(&self.defaults, &msg.layers);
        let mut avoided: Vec<Arc<HostState>>;
        let states = match &msg.avoid {
            None => pool,
            Some(avoid) => {
                avoided = pool.to_vec();
                for st in avoided.iter_mut().filter(|st| &st.name == avoid) {
                    Arc::make_mut(st).available = false;
                }
                // A CPU move goes only to a host below its threshold.
                if let (true, Some(r)) = (msg.cpu_move, &rebalance) {
                    for st in avoided.iter_mut().filter(|st| st.cpu_usage >= r.above) {
                        Arc::make_mut(st).available = false;
                    }
                }
                &avoided
            }
        };
        let t0 = std::time::Instant::now();
        let d = decide(states, &msg.request, &rules);
        crate::metrics::PLACEMENT_SECONDS
            .with_label_values(&[self.location.as_str()])
            .observe(t0.elapsed().as_secs_f64());
        let summary = d.summary(states, &msg.request, &rules);
        let key = (msg.request.app.clone(), msg.request.entity.clone());
        if msg.avoid.is_some() {
            // The move found its new host, or none: it is over either way.
            self.memory.settled(&key.0, &key.1);
        }
        match (d.chosen, rebalance, msg.mover) {
            (Some(i), Some(rule), Some(mover)) => {
                let w = Watched {
                    app: key.0.clone(),
                    entity: key.1.clone(),
                    group: msg.request.group.clone().unwrap_or_else(|| key.1.clone()),
                    host: states[i].name.clone(),
                    rule,
                };
                self.watched.insert(key, (w, mover));
            }
            (Some(_), _, _) => {
                self.watched.remove(&key);
            }
            // No host: it stays where it was (a refused move) or is not placed.
            (None, _, _) => {}
        }
        Decided {
            chosen: d.chosen,
            summary,
        }
    }
}

impl Handler<Forget> for PlacementPolicy {
    type Result = ();
    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        let key = (msg.app, msg.entity);
        if self
            .watched
            .get(&key)
            .is_some_and(|(w, _)| msg.host.as_ref().is_none_or(|h| &w.host == h))
        {
            self.watched.remove(&key);
        }
    }
}

impl Handler<HostDown> for PlacementPolicy {
    type Result = ();
    fn handle(&mut self, msg: HostDown, _: &mut Context<Self>) {
        if msg.removed {
            self.hosts.remove(&msg.host);
            self.memory.busy_since.remove(&msg.host);
        } else if let Some(h) = self.hosts.get_mut(&msg.host) {
            h.available = false;
        }
        self.watched.retain(|_, (w, _)| w.host != msg.host);
    }
}

impl Handler<HostSensors> for PlacementPolicy {
    type Result = ();
    fn handle(&mut self, s: HostSensors, _: &mut Context<Self>) {
        self.hosts.insert(
            s.host.clone(),
            HostCpu {
                name: s.host,
                usage: s.cpu_usage,
                available: true,
            },
        );
    }
}

impl Handler<GetPlacement> for PlacementPolicy {
    type Result = PlacementView;
    fn handle(&mut self, _: GetPlacement, _: &mut Context<Self>) -> PlacementView {
        PlacementView {
            watched: self
                .watched
                .values()
                .map(|(w, _)| format!("{}/{}@{}", w.app, w.entity, w.host))
                .collect(),
            memory: self.memory.clone(),
            recent_moves: self.moves.iter().cloned().collect(),
        }
    }
}

/// A live change to the CPU moves of one group (cluster, or container):
/// a new rule, or `None` to stop moving it. Sent by the group's
/// [`CpuPlacement`] handle through the pool.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Tune {
    pub app: String,
    pub group: String,
    pub rule: Option<RebalanceSpec>,
    /// The handle is gone (its application destroyed): drop the change.
    pub forget: bool,
}

impl Handler<Tune> for PlacementPolicy {
    type Result = ();
    fn handle(&mut self, t: Tune, _: &mut Context<Self>) {
        if t.forget {
            self.tuned.remove(&(t.app, t.group));
        } else {
            self.tuned.insert((t.app, t.group), t.rule);
        }
    }
}

/// The `cpu-placement` policy of one cluster or container, as operators
/// see it (`GET|PUT .../policies/{name}`, `start`, `stop`, preset
/// reloads): the moves themselves are the location's [`PlacementPolicy`]'s;
/// this handle holds the group's config and sends every change there.
pub struct CpuPlacement {
    name: String,
    app: String,
    group: String,
    cfg: CpuPlacementConfig,
    running: bool,
    /// The location's pool (which hands [`Tune`] to its placement policy);
    /// `None` in a location without a pool, where nothing moves.
    pool: Option<Recipient<Tune>>,
}

impl CpuPlacement {
    pub fn new(
        name: String,
        app: String,
        group: String,
        cfg: CpuPlacementConfig,
        pool: Option<Recipient<Tune>>,
    ) -> Self {
        CpuPlacement {
            name,
            app,
            group,
            cfg,
            running: true,
            pool,
        }
    }

    fn push(&self) {
        if let Some(p) = &self.pool {
            p.do_send(Tune {
                app: self.app.clone(),
                group: self.group.clone(),
                rule: self.running.then(|| self.cfg.clone()),
                forget: false,
            });
        }
    }
}

impl Actor for CpuPlacement {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(p) = &self.pool {
            p.do_send(Tune {
                app: self.app.clone(),
                group: self.group.clone(),
                rule: None,
                forget: true,
            });
        }
    }
}

impl Handler<super::PolicyControl> for CpuPlacement {
    type Result = Result<super::PolicyStatus, super::PolicyError>;
    fn handle(&mut self, msg: super::PolicyControl, _: &mut Context<Self>) -> Self::Result {
        match msg.op {
            super::PolicyOp::Get => {}
            super::PolicyOp::Set(super::PolicyConfig::CpuPlacement(c)) => {
                c.check().map_err(|e| super::PolicyError::BadConfig {
                    key: "above".into(),
                    message: e.to_string(),
                })?;
                self.cfg = c;
                self.push();
            }
            super::PolicyOp::Set(other) => {
                return Err(super::PolicyError::wrong_kind("cpu-placement", &other))
            }
            super::PolicyOp::Start => {
                self.running = true;
                self.push();
            }
            super::PolicyOp::Stop => {
                self.running = false;
                self.push();
            }
        }
        Ok(super::PolicyStatus::of(
            &self.name,
            &super::PolicyConfig::CpuPlacement(self.cfg.clone()),
            self.running,
            serde_json::json!({ "in_a_pool": self.pool.is_some() }),
        ))
    }
}
