//! The entity protocol: what every actor that manages or watches an entity
//! speaks. Entity references, sensor values and events, the effector call
//! (`Invoke`), subscriptions, lifecycle, the sensor board, effector errors
//! and the clock.
//!
//! This module is a leaf: it imports nothing of drover, so that entities,
//! policies, enrichers, load balancers, the host pool and the management
//! actor can all depend on it without depending on each other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Which entity: application id plus entity id. The application entity's
/// id is the application id itself.
///
/// Shared behind an `Arc`: every event carries its source, and each copy
/// to each subscriber was two strings allocated and freed (a third of a
/// stats sample's allocations); now it is a reference count. The ids read
/// as fields (`r.app`, `r.entity`) through [`EntityIds`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef(Arc<EntityIds>);

/// The ids of an [`EntityRef`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntityIds {
    pub app: String,
    pub entity: String,
}

impl EntityRef {
    pub fn new(app: impl Into<String>, entity: impl Into<String>) -> Self {
        EntityRef(Arc::new(EntityIds {
            app: app.into(),
            entity: entity.into(),
        }))
    }
}

impl std::ops::Deref for EntityRef {
    type Target = EntityIds;
    fn deref(&self) -> &EntityIds {
        &self.0
    }
}

// As the struct of two strings it was: logs and stored records unchanged.
impl std::fmt::Debug for EntityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityRef")
            .field("app", &self.app)
            .field("entity", &self.entity)
            .finish()
    }
}

impl Serialize for EntityRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EntityIds::deserialize(d).map(|ids| EntityRef(Arc::new(ids)))
    }
}

impl std::fmt::Display for EntityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.entity)
    }
}

/// A sensor's name in events, on boards and in the read model: shared, so
/// that a copy of it is a reference count. Names are interned
/// ([`interned`]): 100,000 containers have the same dozen sensors, and
/// each board and read model view held its own copy of each name (about
/// 0.6 KiB per container). Reads and compares as a `str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorName(Arc<str>);

/// How many names each thread's interner keeps at most. Names are few (the
/// well-known ones, a blueprint's own, one per published port); past this,
/// a name is allocated on its own, as before, and still works.
const INTERNED_MAX: usize = 4096;

/// The shared copy of `name`. Per thread, so that no lock is taken: the
/// actors run on one arbiter thread, and a name interned on two threads is
/// two allocations, not a wrong answer.
fn interned(name: &str) -> Arc<str> {
    thread_local! {
        static NAMES: std::cell::RefCell<std::collections::HashSet<Arc<str>>> =
            Default::default();
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(n) = names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        if names.len() < INTERNED_MAX {
            names.insert(n.clone());
        }
        n
    })
}

impl SensorName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SensorName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SensorName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SensorName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SensorName {
    fn from(s: &str) -> Self {
        SensorName(interned(s))
    }
}

impl From<String> for SensorName {
    fn from(s: String) -> Self {
        SensorName(interned(&s))
    }
}

impl Serialize for SensorName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SensorName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SensorName::from)
    }
}

impl From<SensorName> for String {
    fn from(s: SensorName) -> Self {
        s.0.to_string()
    }
}

impl PartialEq<str> for SensorName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SensorName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SensorName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Debug for SensorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SensorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sensor value with the time it was published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorValue {
    /// Shared, not copied: the entity's board, the read model and every
    /// subscriber that hears it hold the one value (a container's
    /// `image.pull` map and `placement.decision` were kept twice per
    /// container, issue 18).
    #[serde(serialize_with = "shared_value", deserialize_with = "value_to_share")]
    pub value: Arc<serde_json::Value>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

fn shared_value<S: serde::Serializer>(v: &Arc<serde_json::Value>, s: S) -> Result<S::Ok, S::Error> {
    (**v).serialize(s)
}

fn value_to_share<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Arc<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Arc::new)
}

impl SensorValue {
    pub fn new(value: serde_json::Value, timestamp_ms: u64) -> Self {
        SensorValue {
            value: Arc::new(value),
            timestamp_ms,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

/// The sensors and subscribers every entity keeps; publishing only on change
/// keeps event volume proportional to real change.
#[derive(Default)]
pub struct SensorBoard {
    pub values: BTreeMap<SensorName, SensorValue>,
    subscribers: Vec<(Recipient<EntityEvent>, Interest)>,
}

impl SensorBoard {
    pub fn subscribe(
        &mut self,
        who: Recipient<EntityEvent>,
        interest: Interest,
        me: &EntityRef,
        kind: EntityKind,
        state: Lifecycle,
    ) {
        who.do_send(EntityEvent::State {
            source: me.clone(),
            kind,
            state,
        });
        for (name, value) in self.values.iter().filter(|(n, _)| interest.wants(n)) {
            who.do_send(EntityEvent::Sensor {
                source: me.clone(),
                name: name.clone(),
                value: value.clone(),
            });
        }
        self.subscribers.push((who, interest));
    }

    /// Sets a sensor; tells subscribers only if the value changed.
    pub fn set(&mut self, me: &EntityRef, name: &str, value: serde_json::Value) {
        // The name is allocated only the first time a sensor is set; the
        // events share it.
        let name = match self.values.get_key_value(name) {
            Some((_, old)) if *old.value == value => return,
            Some((key, _)) => key.clone(),
            None => SensorName::from(name),
        };
        let value = SensorValue::new(value, now_ms());
        self.values.insert(name.clone(), value.clone());
        self.emit(EntityEvent::Sensor {
            source: me.clone(),
            name,
            value,
        });
    }

    /// A lifecycle change, as every entity publishes it: the
    /// `entity.state` sensor, then the `State` event.
    pub fn publish_state(&mut self, me: &EntityRef, kind: EntityKind, state: Lifecycle) {
        self.set(me, sensors::ENTITY_STATE, serde_json::json!(state.as_str()));
        self.emit(EntityEvent::State {
            source: me.clone(),
            kind,
            state,
        });
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.values.get(name).map(|v| &*v.value)
    }

    /// Removes a sensor (published as `null`).
    pub fn clear(&mut self, me: &EntityRef, name: &str) {
        if let Some((name, _)) = self.values.remove_entry(name) {
            let value = SensorValue::new(serde_json::Value::Null, now_ms());
            self.emit(EntityEvent::Sensor {
                source: me.clone(),
                name,
                value,
            });
        }
    }

    pub fn emit(&mut self, event: EntityEvent) {
        // A subscriber whose mailbox is closed is gone for good: drop it.
        // Only those that hear this event are asked: asking every one
        // touched each subscriber's mailbox per event (a container's
        // restarter, which hears no sensor, twice per stats sample).
        self.subscribers
            .retain(|(s, i)| !i.hears(&event) || s.connected());
        let Some(last) = self.subscribers.iter().rposition(|(_, i)| i.hears(&event)) else {
            return;
        };
        for (s, _) in self.subscribers[..last]
            .iter()
            .filter(|(_, i)| i.hears(&event))
        {
            s.do_send(event.clone());
        }
        // The last one takes the event itself: one copy fewer per change.
        self.subscribers[last].0.do_send(event);
    }

    /// How many subscribers hear changes of this sensor (tests, metrics).
    pub fn listeners(&self, sensor: &str) -> usize {
        self.subscribers
            .iter()
            .filter(|(s, i)| s.connected() && i.wants(sensor))
            .count()
    }
}

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
    use std::sync::{Arc, Mutex};

    #[test]
    fn sensor_names_are_shared_and_read_back_as_written() {
        let a = SensorName::from("cpu.usage");
        let b = SensorName::from(String::from("cpu.usage"));
        let c: SensorName = serde_json::from_str("\"cpu.usage\"").unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"cpu.usage\"");
        assert!(!Arc::ptr_eq(
            &a.0,
            &SensorName::from("memory.usage_bytes").0
        ));
    }

    /// Records what it hears: sensor names, `state`, `notice`, `gone`.
    struct Ear(Arc<Mutex<Vec<String>>>);
    impl Actor for Ear {
        type Context = Context<Self>;
    }
    impl Handler<EntityEvent> for Ear {
        type Result = ();
        fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
            let heard = match ev {
                EntityEvent::Sensor { name, .. } => name.into(),
                EntityEvent::State { .. } => "state".into(),
                EntityEvent::Notice { .. } => "notice".into(),
                EntityEvent::Gone { .. } => "gone".into(),
            };
            self.0.lock().unwrap().push(heard);
        }
    }

    #[actix::test]
    async fn a_subscriber_hears_only_the_sensors_it_asked_for_and_every_state_and_notice() {
        let me = EntityRef::new("shop", "web-1");
        let mut board = SensorBoard::default();
        board.set(&me, sensors::HOST_ADDRESS, serde_json::json!("10.0.0.1"));
        let ears: Vec<Arc<Mutex<Vec<String>>>> = (0..4).map(|_| Default::default()).collect();
        let interests = [
            Interest::All,
            Interest::NoSensors,
            Interest::Named(sensors::CPU_USAGE.into()),
            Interest::Matching(|n| n == sensors::HOST_ADDRESS),
        ];
        for (ear, interest) in ears.iter().zip(interests) {
            let addr = Ear(ear.clone()).start();
            board.subscribe(
                addr.recipient(),
                interest,
                &me,
                EntityKind::Container,
                Lifecycle::Created,
            );
        }
        assert_eq!(board.listeners(sensors::CPU_USAGE), 2);
        assert_eq!(board.listeners(sensors::MEMORY_USAGE), 1);
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        // Unchanged: nobody hears it again.
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        board.set(&me, sensors::MEMORY_USAGE, serde_json::json!(1024));
        board.emit(EntityEvent::Notice {
            source: me.clone(),
            name: sensors::ENTITY_FAILED.into(),
            detail: serde_json::json!({}),
        });
        board.emit(EntityEvent::Gone { source: me.clone() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let heard: Vec<Vec<String>> = ears.iter().map(|e| e.lock().unwrap().clone()).collect();
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            heard,
            [
                v(&[
                    "state",
                    "host.address",
                    "cpu.usage",
                    "memory.usage_bytes",
                    "notice",
                    "gone"
                ]),
                v(&["state", "notice", "gone"]),
                v(&["state", "cpu.usage", "notice", "gone"]),
                v(&["state", "host.address", "notice", "gone"]),
            ]
        );
    }

    #[test]
    fn an_entity_ref_reads_prints_and_stores_as_its_two_ids() {
        let r = EntityRef::new("shop", "web-1");
        assert_eq!((r.app.as_str(), r.entity.as_str()), ("shop", "web-1"));
        assert_eq!(r.to_string(), "shop/web-1");
        assert_eq!(
            format!("{r:?}"),
            r#"EntityRef { app: "shop", entity: "web-1" }"#
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json, serde_json::json!({"app": "shop", "entity": "web-1"}));
        let back: EntityRef = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        // A copy is the same ids, not new strings.
        let copy = r.clone();
        assert!(std::ptr::eq(copy.entity.as_ptr(), r.entity.as_ptr()));
        assert!(EntityRef::new("shop", "web-1") < EntityRef::new("shop", "web-2"));
    }

    #[actix::test]
    async fn events_share_the_boards_sensor_name() {
        let me = EntityRef::new("shop", "web-1");
        let heard: Arc<Mutex<Vec<EntityEvent>>> = Default::default();
        struct Keep(Arc<Mutex<Vec<EntityEvent>>>);
        impl Actor for Keep {
            type Context = Context<Self>;
        }
        impl Handler<EntityEvent> for Keep {
            type Result = ();
            fn handle(&mut self, ev: EntityEvent, _: &mut Context<Self>) {
                self.0.lock().unwrap().push(ev);
            }
        }
        let mut board = SensorBoard::default();
        board.subscribe(
            Keep(heard.clone()).start().recipient(),
            Interest::All,
            &me,
            EntityKind::Container,
            Lifecycle::Running,
        );
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.25));
        board.clear(&me, sensors::CPU_USAGE);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let heard = heard.lock().unwrap();
        let names: Vec<(&str, *const u8)> = heard
            .iter()
            .filter_map(|e| match e {
                EntityEvent::Sensor { name, .. } => Some((name.as_str(), name.as_ptr())),
                _ => None,
            })
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|(n, _)| *n == sensors::CPU_USAGE));
        assert!(
            names.iter().all(|(_, p)| *p == names[0].1),
            "one allocation of the name for every event"
        );
        assert!(board.get(sensors::CPU_USAGE).is_none());
    }

    #[actix::test]
    async fn a_gone_subscriber_is_dropped_at_the_first_event_it_would_hear() {
        let me = EntityRef::new("shop", "web-1");
        let mut board = SensorBoard::default();
        for interest in [Interest::NoSensors, Interest::All] {
            let ear = Ear(Default::default()).start();
            board.subscribe(
                ear.clone().recipient(),
                interest,
                &me,
                EntityKind::Container,
                Lifecycle::Running,
            );
            // Stopped: its mailbox closes.
            ear.do_send(StopEar);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(board.listeners(sensors::CPU_USAGE), 0);
        board.set(&me, sensors::CPU_USAGE, serde_json::json!(0.5));
        // The one that hears sensors went; the other stays until a state
        // change or notice, which it would hear.
        assert_eq!(board.subscribers.len(), 1);
        board.emit(EntityEvent::Gone { source: me.clone() });
        assert!(board.subscribers.is_empty());
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct StopEar;
    impl Handler<StopEar> for Ear {
        type Result = ();
        fn handle(&mut self, _: StopEar, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

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
