//! The names of the protocol: which entity ([`EntityRef`]), which sensor
//! ([`SensorName`], interned), a sensor's value with its time
//! ([`SensorValue`]), and the clock ([`now_ms`]). Each is shared behind an
//! `Arc`, because every event carries them to every subscriber.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
