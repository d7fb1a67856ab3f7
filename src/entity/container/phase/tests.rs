//! The container's state machine under test, by theme: the table of every
//! phase against every observation with its invariants and random sequences
//! ([`table`]), starts, failures and effectors ([`lifecycle`]), host pool
//! placement and moves ([`placement`]), references ([`references`]). The
//! helpers here feed a [`Core`] as the actor would.

use std::time::{Duration, Instant};

use super::*;
use crate::protocol::Lifecycle;

const ID: &str = "c1";

fn settings(health: bool, pool: bool) -> Settings {
    Settings {
        health,
        pool,
        reference_timeout: Some(Duration::from_secs(5)),
        ..Settings::default()
    }
}

fn info(state: &str) -> Info {
    Info {
        id: ID.into(),
        state: state.into(),
        probeable: true,
    }
}

fn t0() -> Instant {
    Instant::now()
}

/// The pool's answer when no host fits and it cannot grow.
fn full_pool() -> PlaceError {
    PlaceError::InsufficientCapacity {
        location: "pool".into(),
        detail: "c1 fits on no host".into(),
    }
}

/// Feeds observations with no references, one millisecond apart.
struct Run {
    core: Core,
    now: Instant,
}

impl Run {
    fn new(health: bool, pool: bool) -> Self {
        Run {
            core: Core::new(settings(health, pool)),
            now: t0(),
        }
    }

    fn step(&mut self, obs: Observation) -> Vec<Action> {
        self.now += Duration::from_millis(1);
        self.core.step(obs, &Refs::None, self.now)
    }

    /// A container created and running (no health check: up at once).
    fn running() -> Self {
        let mut r = Run::new(false, false);
        r.step(Observation::Start);
        r.step(Observation::Created(Ok(info("running"))));
        assert_eq!(r.core.phase, Phase::Running);
        r
    }
}

fn is_engine_op(a: &Action) -> bool {
    matches!(
        a,
        Action::Place | Action::Create | Action::Operate(_) | Action::Remove(_)
    )
}

mod lifecycle;
mod placement;
mod references;
mod table;
