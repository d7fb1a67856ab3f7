//! What an engine was seen to have lately: its networks and images, by
//! name, each with when it was last seen.
//!
//! A deploy asks every engine, for every container, whether the
//! application's network and the image are there (a network inspect, and
//! image inspects by the pool, the pull and the create: 2.6 per container
//! at 30,000 on 1,000 simulated engines, a third of the engine calls). The
//! answer rarely changes within seconds, so a yes is believed for
//! [`BELIEVED_FOR`]. drover forgets a network it removes; a create that
//! the engine answers 404 (the image or a network gone behind drover's
//! back) makes the host forget all it believed, so the next attempt asks
//! again. Only presence is remembered: an absence is always asked again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a network or image seen on an engine is taken to be there
/// without asking again.
pub const BELIEVED_FOR: Duration = Duration::from_secs(10);

/// A host's memory of what it saw, shared by its actor and the calls it
/// makes off the actor (creates run as futures of their own).
#[derive(Clone, Default)]
pub struct Recent(Arc<Mutex<HashMap<Seen, Instant>>>);

/// What was seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// A network, by its Docker name.
    Network(String),
    /// An image, by the reference it was asked for.
    Image(String),
}

impl Recent {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Seen, Instant>> {
        // Only a map of instants: a panic elsewhere leaves nothing half-done.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `what` was seen within [`BELIEVED_FOR`] of `now`.
    pub fn believed(&self, what: &Seen, now: Instant) -> bool {
        let mut map = self.map();
        match map.get(what) {
            Some(at) if now.saturating_duration_since(*at) < BELIEVED_FOR => true,
            Some(_) => {
                map.remove(what);
                false
            }
            None => false,
        }
    }

    /// `what` is there, as of `now`.
    pub fn saw(&self, what: Seen, now: Instant) {
        let mut map = self.map();
        // Bounded by what is deployed, but old entries of destroyed
        // applications would stay: drop the stale ones now and then.
        if map.len() >= 1024 {
            map.retain(|_, at| now.saturating_duration_since(*at) < BELIEVED_FOR);
        }
        map.insert(what, now);
    }

    /// `what` is gone (drover removed it).
    pub fn forget(&self, what: &Seen) {
        self.map().remove(what);
    }

    /// Something drover believed was there was not: ask again for all.
    pub fn forget_all(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sighting_is_believed_for_a_while_then_asked_again() {
        let r = Recent::default();
        let t0 = Instant::now();
        let net = Seen::Network("drover-a".into());
        assert!(!r.believed(&net, t0), "nothing seen yet");
        r.saw(net.clone(), t0);
        assert!(r.believed(&net, t0 + BELIEVED_FOR - Duration::from_millis(1)));
        assert!(!r.believed(&net, t0 + BELIEVED_FOR));
        // Expired entries are dropped, not believed again later.
        assert!(!r.believed(&net, t0));
    }

    #[test]
    fn networks_and_images_are_apart_and_forgetting_is_at_once() {
        let r = Recent::default();
        let t0 = Instant::now();
        r.saw(Seen::Image("x".into()), t0);
        assert!(!r.believed(&Seen::Network("x".into()), t0));
        r.saw(Seen::Network("x".into()), t0);
        r.forget(&Seen::Network("x".into()));
        assert!(!r.believed(&Seen::Network("x".into()), t0));
        assert!(r.believed(&Seen::Image("x".into()), t0));
        r.forget_all();
        assert!(!r.believed(&Seen::Image("x".into()), t0));
    }

    #[test]
    fn a_full_memory_drops_only_what_expired() {
        let r = Recent::default();
        let t0 = Instant::now();
        for i in 0..1024 {
            r.saw(Seen::Image(format!("old-{i}")), t0);
        }
        let later = t0 + BELIEVED_FOR;
        r.saw(Seen::Image("fresh".into()), later);
        assert_eq!(r.map().len(), 1, "the expired ones went");
        assert!(r.believed(&Seen::Image("fresh".into()), later));
    }
}
