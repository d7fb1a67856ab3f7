//! An application's image pins: each tag its containers name, resolved
//! to one digest per deploy (as Swarm pins a service's image), so every
//! member on every host runs the same image whatever the tag does later.
//!
//! The first pull of a tag pins it (first writer wins); later members
//! create from the pinned `repo@sha256:...`. Pins are saved with the
//! application (its policy memory, under [`PINS`]), so a rebind keeps
//! them; a new deploy of the application starts without any.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::host::pull::Pin;

/// The key the pins are saved under (application, application, this).
pub const PINS: &str = "image-pins";

/// Shared by every container of one application.
#[derive(Clone, Default)]
pub struct ImagePins {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    app: String,
    pins: BTreeMap<String, Pin>,
    store: Option<actix::Recipient<crate::store::StoreWrite>>,
}

impl ImagePins {
    /// The pins of `app`, from what the store held (a rebind) or none.
    pub fn restore(
        app: &str,
        saved: Option<serde_json::Value>,
        store: Option<actix::Recipient<crate::store::StoreWrite>>,
    ) -> Self {
        let pins = saved
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        ImagePins {
            inner: Arc::new(Mutex::new(Inner {
                app: app.to_string(),
                pins,
                store,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pin of `image`, if it has one.
    pub fn get(&self, image: &str) -> Option<Pin> {
        self.lock().pins.get(image).cloned()
    }

    /// Pins `image` unless it is pinned already; answers the pin that holds.
    pub fn pin(&self, image: &str, pin: Pin) -> Pin {
        let mut inner = self.lock();
        if let Some(p) = inner.pins.get(image) {
            return p.clone();
        }
        inner.pins.insert(image.to_string(), pin.clone());
        if let Some(s) = &inner.store {
            s.do_send(crate::store::StoreWrite::PutPolicy {
                app: inner.app.clone(),
                entity: inner.app.clone(),
                policy: PINS.to_string(),
                state: serde_json::to_value(&inner.pins).unwrap_or_default(),
            });
        }
        pin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(d: &str) -> Pin {
        Pin {
            reference: format!("x@{d}"),
            digest: d.into(),
            id: "sha256:i".into(),
        }
    }

    #[test]
    fn the_first_pin_holds_and_survives_a_restore() {
        let pins = ImagePins::restore("app", None, None);
        assert_eq!(pins.get("x:1"), None);
        assert_eq!(pins.pin("x:1", pin("sha256:a")).digest, "sha256:a");
        // A tag moved meanwhile: the first digest still holds.
        assert_eq!(pins.pin("x:1", pin("sha256:b")).digest, "sha256:a");
        let saved =
            serde_json::to_value(BTreeMap::from([("x:1".to_string(), pin("sha256:a"))])).unwrap();
        let back = ImagePins::restore("app", Some(saved), None);
        assert_eq!(back.get("x:1").unwrap().digest, "sha256:a");
    }
}
