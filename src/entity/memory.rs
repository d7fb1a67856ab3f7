//! Policy memory as it is now, not as it was when drover started.
//!
//! Policies write their memory (a restarter's history, a replacer's
//! count) to the store and keep acting on their own copy. When an apply
//! rebuilds a service's policies, the new ones must start from that
//! memory: the store's snapshot taken at start is older. [`MemoryTee`]
//! sits in front of the store, forwards every write, and keeps the latest
//! policy memory in [`LiveMemory`], which [`super::Saved`] consults first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use crate::store::StoreWrite;

type Key = (String, String, String);

/// The policy memory written since start, by (app, entity, policy).
///
/// A std `Mutex` is right here: it is held only to copy one value in or
/// out, never across an await, by the tee and by policy factories.
#[derive(Debug, Default, Clone)]
pub struct LiveMemory(Arc<Mutex<BTreeMap<Key, serde_json::Value>>>);

impl LiveMemory {
    pub fn get(&self, app: &str, entity: &str, policy: &str) -> Option<serde_json::Value> {
        let key = (app.to_string(), entity.to_string(), policy.to_string());
        self.0.lock().ok()?.get(&key).cloned()
    }

    pub fn put(&self, app: &str, entity: &str, policy: &str, state: serde_json::Value) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(
                (app.to_string(), entity.to_string(), policy.to_string()),
                state,
            );
        }
    }

    /// An application destroyed, or deployed anew under its name: its
    /// memory must not seed the next one.
    pub fn forget(&self, app: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|(a, _, _), _| a != app);
        }
    }
}

/// Forwards every write to the store, keeping the policy memory it carries.
pub struct MemoryTee {
    store: Recipient<StoreWrite>,
    live: LiveMemory,
}

impl MemoryTee {
    pub fn new(store: Recipient<StoreWrite>, live: LiveMemory) -> Self {
        MemoryTee { store, live }
    }
}

impl Actor for MemoryTee {
    type Context = Context<Self>;
}

impl Handler<StoreWrite> for MemoryTee {
    type Result = ResponseFuture<Result<(), crate::store::StoreError>>;

    fn handle(&mut self, w: StoreWrite, _: &mut Context<Self>) -> Self::Result {
        if let StoreWrite::PutPolicy {
            app,
            entity,
            policy,
            state,
        } = &w
        {
            self.live.put(app, entity, policy, state.clone());
        }
        let store = self.store.clone();
        Box::pin(async move {
            store.send(w).await.unwrap_or_else(|e| {
                Err(crate::store::StoreError::Io {
                    operation: "write".into(),
                    message: format!("the store is not answering: {e}"),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Stands in for the store: answers every write.
    struct Sink(Arc<Mutex<usize>>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<StoreWrite> for Sink {
        type Result = Result<(), crate::store::StoreError>;
        fn handle(&mut self, _: StoreWrite, _: &mut Context<Self>) -> Self::Result {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    /// A restarter's history written after start is what a policy rebuilt
    /// by an apply gets, not the start-time snapshot (which said 1 restart).
    #[actix::test]
    async fn rebuilt_policies_start_from_the_latest_memory_not_the_snapshot() {
        let key = (
            "shop".to_string(),
            "web-1".to_string(),
            "restarter".to_string(),
        );
        let saved = crate::entity::Saved {
            policies: [(key.clone(), json!({"restarts": 1}))].into(),
            ..Default::default()
        };
        assert_eq!(
            saved.policy("shop", "web-1", "restarter"),
            Some(json!({"restarts": 1}))
        );
        let writes = Arc::new(Mutex::new(0));
        let store = Sink(writes.clone()).start().recipient();
        let tee = MemoryTee::new(store, saved.live.clone()).start();
        tee.send(StoreWrite::PutPolicy {
            app: key.0.clone(),
            entity: key.1.clone(),
            policy: key.2.clone(),
            state: json!({"restarts": 4}),
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(*writes.lock().unwrap(), 1, "the store got the write");
        assert_eq!(
            saved.policy("shop", "web-1", "restarter"),
            Some(json!({"restarts": 4})),
            "seeded from the current memory"
        );
        // Another application's memory is its own; a destroy forgets it.
        assert_eq!(saved.policy("other", "web-1", "restarter"), None);
        saved.live.forget("shop");
        assert_eq!(
            saved.policy("shop", "web-1", "restarter"),
            Some(json!({"restarts": 1}))
        );
    }
}
