//! The entity protocol: what every actor that manages or watches an entity
//! speaks. Entity references, sensor values and events, the effector call
//! (`Invoke`), subscriptions, lifecycle, the sensor board, effector errors
//! and the clock.
//!
//! This module is a leaf: it imports nothing of drover, so that entities,
//! policies, enrichers, load balancers, the host pool and the management
//! actor can all depend on it without depending on each other. The names
//! every message carries are in [`names`], the board every entity keeps in
//! [`board`]; the messages themselves are here.

mod board;
mod names;

pub use board::SensorBoard;
pub use names::{now_ms, EntityIds, EntityRef, SensorName, SensorValue};

use actix::prelude::*;
use serde::{Deserialize, Serialize};

/// Well-known sensor names.
pub mod sensors {
    pub const CONTAINER_ID: &str = "container.id";
    pub const CONTAINER_NAME: &str = "container.name";
    pub const HOST_ADDRESS: &str = "host.address";
    pub const HOST_NAME: &str = "host.name";
    /// `host.port.<container port>`: the published host port.
    pub const HOST_PORT_PREFIX: &str = "host.port.";
    pub const SERVICE_UP: &str = "service.up";
    /// The engine's view of the container: `created`, `running`, `paused`,
    /// `exited`, `removed`.
    pub const SERVICE_STATE: &str = "service.state";
    pub const GROUP_SIZE: &str = "group.size";
    pub const GROUP_DESIRED_SIZE: &str = "group.desired_size";
    pub const GROUP_MEMBERS: &str = "group.members";
    /// Members that are `running`, with their address and published ports:
    /// what load balancers route to.
    pub const GROUP_ENDPOINTS: &str = "group.endpoints";
    pub const ENTITY_STATE: &str = "entity.state";
    pub const ENTITY_ERROR: &str = "entity.error";
    /// CPU in use, in cores (1.0 = one whole core), from the stats stream.
    pub const CPU_USAGE: &str = "cpu.usage";
    /// Memory in use, in bytes, less reclaimable page cache.
    pub const MEMORY_USAGE: &str = "memory.usage_bytes";
    /// Notices (events, not values).
    pub const ENTITY_FAILED: &str = "entity.failed";
    pub const ENTITY_RECOVERED: &str = "entity.recovered";
    pub const ENTITY_FAILED_RESTART: &str = "entity.failed.restart";
}

/// Lifecycle of an entity, as in Brooklyn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
    OnFire,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 6] = [
        Lifecycle::Created,
        Lifecycle::Starting,
        Lifecycle::Running,
        Lifecycle::Stopping,
        Lifecycle::Stopped,
        Lifecycle::OnFire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Starting => "starting",
            Lifecycle::Running => "running",
            Lifecycle::Stopping => "stopping",
            Lifecycle::Stopped => "stopped",
            Lifecycle::OnFire => "on-fire",
        }
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kinds of entity, as shown in the API and used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityKind {
    Application,
    Cluster,
    Container,
    LoadBalancer,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [
        EntityKind::Application,
        EntityKind::Cluster,
        EntityKind::Container,
        EntityKind::LoadBalancer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Application => "application",
            EntityKind::Cluster => "cluster",
            EntityKind::Container => "container",
            EntityKind::LoadBalancer => "load-balancer",
        }
    }
}

/// What an entity tells its subscribers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum EntityEvent {
    /// A sensor changed (published only when the value differs).
    Sensor {
        source: EntityRef,
        name: SensorName,
        value: SensorValue,
    },
    /// The lifecycle state changed.
    State {
        source: EntityRef,
        kind: EntityKind,
        state: Lifecycle,
    },
    /// The entity is gone (destroyed); subscribers drop what they hold of it.
    Gone { source: EntityRef },
    /// A one-off event, not a lasting value: `entity.failed`,
    /// `entity.recovered`, `entity.failed.restart` (Brooklyn's sensor events).
    Notice {
        source: EntityRef,
        name: String,
        detail: serde_json::Value,
    },
}

/// Subscribe to an entity's events. The subscriber first receives the
/// current state and every current sensor it is interested in, so nothing
/// is missed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<EntityEvent>, pub Interest);

/// Which sensor changes a subscriber hears. State changes, notices and
/// `Gone` reach every subscriber. A container's CPU and memory change every
/// second; a restarter that only acts on notices, or a cluster that only
/// needs its members' addresses, would otherwise get a message for each
/// (five subscribers per container made a stats sample five messages).
#[derive(Debug, Clone)]
pub enum Interest {
    /// Every sensor (the management actor's read model, load balancers).
    All,
    /// No sensor: policies that act on state and notices.
    NoSensors,
    /// The sensors whose name this accepts.
    Matching(fn(&str) -> bool),
    /// One sensor by name (an enricher's input).
    Named(std::sync::Arc<str>),
}

impl Interest {
    pub fn wants(&self, sensor: &str) -> bool {
        match self {
            Interest::All => true,
            Interest::NoSensors => false,
            Interest::Matching(f) => f(sensor),
            Interest::Named(n) => &**n == sensor,
        }
    }

    /// Whether this event is for a subscriber with this interest.
    pub fn hears(&self, event: &EntityEvent) -> bool {
        match event {
            EntityEvent::Sensor { name, .. } => self.wants(name),
            _ => true,
        }
    }
}

/// Mailbox capacity (0: no bound) of the actors that hear a stream of
/// events from many senders (`do_send`, which ignores the bound) and also
/// answer requests (`send`): the management actor, host pools, clusters.
/// With actix's default of 16, a `send` to a mailbox that the event stream
/// keeps above 16 parks its sender, and the sender's next `send` waits
/// until the mailbox drains below 16, which under steady sensor traffic it
/// never does: at 20,000 containers a `DELETE` waited 3 minutes on a
/// keep-alive connection while a new connection's went through at once.
/// The requests are bounded elsewhere (connections, entities).
pub const UNBOUNDED_MAILBOX: usize = 0;

/// An effector call: a named operation with named JSON arguments.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<serde_json::Value, EntityError>")]
pub struct Invoke {
    pub effector: String,
    pub args: serde_json::Value,
}

impl Invoke {
    pub fn new(effector: &str) -> Self {
        Invoke {
            effector: effector.to_string(),
            args: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn with_args(effector: &str, args: serde_json::Value) -> Self {
        Invoke {
            effector: effector.to_string(),
            args,
        }
    }
}

/// Errors of effector calls.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum EntityError {
    #[error("entity {entity} has no effector `{effector}`; it has: {known}")]
    UnknownEffector {
        entity: String,
        effector: String,
        known: String,
    },
    #[error("bad arguments for effector `{effector}`: {message}")]
    BadArguments { effector: String, message: String },
    #[error("{entity} failed to start: {message}")]
    StartFailed { entity: String, message: String },
    #[error("{entity}: {operation} failed on the engine: {message}")]
    Engine {
        entity: String,
        operation: String,
        message: String,
    },
    #[error("{entity}: no member `{member}`; members are: {known}")]
    NoSuchMember {
        entity: String,
        member: String,
        known: String,
    },
    #[error("{entity}: {message}")]
    Failed { entity: String, message: String },
    #[error("{entity} is stopping and takes no more effector calls")]
    Stopping { entity: String },
    #[error("{entity} did not answer: {message}")]
    Unreachable { entity: String, message: String },
    /// No host can take what was asked (a pool at `max_hosts`, or whose
    /// provisioner failed): autoscalers hold their size below it for a while.
    #[error("{entity}: insufficient capacity: {message}")]
    InsufficientCapacity { entity: String, message: String },
}

impl EntityError {
    /// The answer to an effector an entity does not have, listing those it has.
    pub fn unknown_effector(entity: &EntityRef, effector: &str, known: &[&str]) -> EntityError {
        EntityError::UnknownEffector {
            entity: entity.to_string(),
            effector: effector.to_string(),
            known: known.join(", "),
        }
    }

    /// A failure of the mailbox (the entity stopped, or its mailbox is full).
    pub fn unreachable(entity: impl std::fmt::Display, e: impl std::fmt::Display) -> EntityError {
        EntityError::Unreachable {
            entity: entity.to_string(),
            message: e.to_string(),
        }
    }
}

/// Tears down every target at once; one error lists every target that failed.
pub async fn teardown_all(
    entity: String,
    what: &str,
    targets: Vec<Recipient<Teardown>>,
) -> Result<(), EntityError> {
    let results = futures_util::future::join_all(targets.iter().map(|t| t.send(Teardown))).await;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EntityError::Failed {
            entity,
            message: format!("{what}{}", errors.join("; ")),
        })
    }
}

/// Parses an effector's named arguments into a typed struct.
pub fn parse_args<T: serde::de::DeserializeOwned>(
    effector: &str,
    args: &serde_json::Value,
) -> Result<T, EntityError> {
    let args = if args.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        args.clone()
    };
    serde_json::from_value(args).map_err(|e| EntityError::BadArguments {
        effector: effector.to_string(),
        message: e.to_string(),
    })
}

/// Common tear-down: stop and remove every container, then stop the actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), EntityError>")]
pub struct Teardown;

/// Asks an entity to emit a notice to its subscribers (a policy telling the
/// world it gave up, for example).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EmitNotice {
    pub name: String,
    pub detail: serde_json::Value,
}

/// Sets a sensor on an entity from outside (an enricher's result). `null`
/// clears it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PublishSensor {
    pub name: String,
    pub value: serde_json::Value,
}

/// Follow the members' sensors of a group entity (each member's current
/// sensors first); new members get the same subscribers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeMembers(pub Recipient<EntityEvent>, pub Interest);

/// Tells a group entity it is on fire for a reason of its own (not its
/// members'): a policy gave up. `None` clears it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MarkProblem(pub Option<String>);

/// Tells a container to move to a cooler host (sent by the location's CPU
/// placement policy).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Move {
    pub reason: String,
}

/// What every entity actor exposes so the shared handlers can be written
/// once ([`entity_handlers!`]).
pub trait Observable {
    fn me(&self) -> &EntityRef;
    fn kind(&self) -> EntityKind;
    fn state(&self) -> Lifecycle;
    fn board(&mut self) -> &mut SensorBoard;

    /// Subscribes `who`: the current state and sensors first.
    fn subscribe(&mut self, who: Recipient<EntityEvent>, interest: Interest) {
        let (me, kind, state) = (self.me().clone(), self.kind(), self.state());
        self.board().subscribe(who, interest, &me, kind, state);
    }

    /// Sets (or, with `null`, clears) a sensor from outside.
    fn publish(&mut self, msg: PublishSensor) {
        let me = self.me().clone();
        if msg.value.is_null() {
            self.board().clear(&me, &msg.name);
        } else {
            self.board().set(&me, &msg.name, msg.value);
        }
    }
}

/// The `Subscribe` and `PublishSensor` handlers of an [`Observable`] actor.
/// `entity_handlers!(subscribe: T)` writes only the first.
macro_rules! entity_handlers {
    (subscribe: $actor:ty) => {
        impl ::actix::Handler<$crate::protocol::Subscribe> for $actor {
            type Result = ();
            fn handle(&mut self, msg: $crate::protocol::Subscribe, _: &mut Self::Context) {
                $crate::protocol::Observable::subscribe(self, msg.0, msg.1);
            }
        }
    };
    ($actor:ty) => {
        $crate::protocol::entity_handlers!(subscribe: $actor);

        impl ::actix::Handler<$crate::protocol::PublishSensor> for $actor {
            type Result = ();
            fn handle(&mut self, msg: $crate::protocol::PublishSensor, _: &mut Self::Context) {
                $crate::protocol::Observable::publish(self, msg);
            }
        }
    };
}
pub(crate) use entity_handlers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_effector_lists_the_known_ones() {
        let e = EntityError::unknown_effector(
            &EntityRef::new("shop", "web"),
            "fly",
            &["start", "stop"],
        );
        assert_eq!(
            e.to_string(),
            "entity shop/web has no effector `fly`; it has: start, stop"
        );
    }
}
