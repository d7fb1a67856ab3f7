//! Health checks the engine runs (`health_status` events and resyncs) and
//! `start_period`, for every kind of check, in virtual time.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::step::health::ENGINE_UNHEALTHY;
use super::*;
use crate::protocol::Lifecycle;

const ID: &str = "c1";

fn info() -> Info {
    Info {
        id: ID.into(),
        state: "running".into(),
        // An exec check has no port: nothing to probe.
        probeable: false,
    }
}

struct Run {
    core: Core,
    now: Instant,
}

impl Run {
    fn new(settings: Settings) -> Self {
        Run {
            core: Core::new(settings),
            now: Instant::now(),
        }
    }

    fn engine() -> Self {
        Run::new(Settings {
            health: true,
            engine_health: true,
            unhealthy_threshold: 3,
            ..Settings::default()
        })
    }

    fn probed(start_period: Option<Duration>) -> Self {
        Run::new(Settings {
            health: true,
            unhealthy_threshold: 2,
            start_period,
            ..Settings::default()
        })
    }

    fn at(&mut self, ms: u64, obs: Observation) -> Vec<Action> {
        self.now += Duration::from_millis(ms);
        self.core.step(obs, &Refs::None, self.now)
    }

    fn health(&mut self, h: EngineHealth) -> Vec<Action> {
        self.at(
            1,
            Observation::Engine {
                container: ID.into(),
                event: EngineEvent::Health(h),
            },
        )
    }

    fn created(mut self) -> Self {
        self.at(1, Observation::Start);
        let mut i = info();
        i.probeable = !self.core.settings.engine_health;
        self.at(1, Observation::Created(Ok(i)));
        self
    }

    fn probe(&mut self, ms: u64, ok: bool) -> Vec<Action> {
        self.at(
            ms,
            Observation::Probed {
                container: Some(ID.into()),
                result: if ok {
                    Ok(())
                } else {
                    Err("GET /health answered 503".into())
                },
            },
        )
    }
}

#[test]
fn docker_health_words_parse() {
    assert_eq!(
        EngineEvent::parse("health_status: healthy"),
        EngineEvent::Health(EngineHealth::Healthy)
    );
    assert_eq!(
        EngineEvent::parse("health_status: unhealthy"),
        EngineEvent::Health(EngineHealth::Unhealthy)
    );
    assert_eq!(
        EngineEvent::parse("health_status: starting"),
        EngineEvent::Health(EngineHealth::Starting)
    );
    assert_eq!(
        EngineEvent::parse("health_status"),
        EngineEvent::Other("health_status".into())
    );
}

#[test]
fn an_engine_check_is_never_probed_and_its_healthy_event_runs_the_container() {
    let mut r = Run::engine().created();
    assert_eq!(r.core.phase, Phase::WaitingHealthy);
    // Ticks probe nothing: the engine runs the check.
    for _ in 0..50 {
        let a = r.at(100, Observation::Tick);
        assert!(!a.contains(&Action::Probe), "{a:?}");
    }
    assert!(r.health(EngineHealth::Starting).is_empty());
    let a = r.health(EngineHealth::Healthy);
    assert!(a.contains(&Action::ServiceUp(true)));
    assert_eq!(r.core.phase, Phase::Running);
    // A resync that says it again changes nothing.
    assert!(r.health(EngineHealth::Healthy).is_empty());
}

#[test]
fn unhealthy_from_the_engine_puts_it_on_fire_with_the_reason() {
    let mut r = Run::engine().created();
    r.health(EngineHealth::Healthy);
    let a = r.health(EngineHealth::Unhealthy);
    assert!(a.contains(&Action::ServiceUp(false)));
    assert!(a.contains(&Action::Lifecycle(Lifecycle::OnFire)), "{a:?}");
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: ENGINE_UNHEALTHY.into()
        }
    );
    // The same verdict again (a resync) is no new failure.
    assert!(r.health(EngineHealth::Unhealthy).is_empty());
    // Healthy again: it runs again by itself.
    r.health(EngineHealth::Healthy);
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn unhealthy_before_a_first_pass_fails_the_start_at_once() {
    // The engine counted its retries after its own start period: a
    // verdict, not a slow start to wait out.
    let mut r = Run::engine().created();
    let a = r.health(EngineHealth::Unhealthy);
    assert!(a.contains(&Action::Lifecycle(Lifecycle::OnFire)), "{a:?}");
}

#[test]
fn an_image_check_the_blueprint_did_not_ask_for_decides_nothing() {
    let mut r = Run::new(Settings::default()).created();
    assert_eq!(r.core.phase, Phase::Running);
    assert!(r.health(EngineHealth::Unhealthy).is_empty());
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn health_events_during_a_restart_are_replayed_only_after_its_start() {
    let mut r = Run::engine().created();
    r.health(EngineHealth::Healthy);
    r.at(1, Observation::Restart);
    assert_eq!(r.core.phase, Phase::Restarting);
    // The old run's verdict, then the restart's start.
    r.health(EngineHealth::Unhealthy);
    r.at(
        1,
        Observation::Engine {
            container: ID.into(),
            event: EngineEvent::Start,
        },
    );
    r.at(1, Observation::Operated(Ok(Some(info()))));
    assert_eq!(
        r.core.phase,
        Phase::WaitingHealthy,
        "the stale verdict is history"
    );
    r.health(EngineHealth::Healthy);
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn start_period_ignores_failing_probes_then_counts_them_before_a_first_pass() {
    let mut r = Run::probed(Some(Duration::from_secs(10))).created();
    // Within the start period: failures do not count, however many.
    for _ in 0..9 {
        let a = r.probe(1_000, false);
        assert!(!a.contains(&Action::ServiceUp(false)), "{a:?}");
    }
    assert_eq!(r.core.phase, Phase::WaitingHealthy);
    assert_eq!(r.core.probe_failures, 0);
    // After it: `unhealthy_threshold` (2) failures fail the start.
    // One failure is below the threshold: `health.failing` is all it says.
    let a = r.probe(1_500, false);
    assert!(
        matches!(&a[..], [Action::HealthFailing(Some(why))] if why.contains("503")),
        "{a:?}"
    );
    let a = r.probe(1_000, false);
    assert!(a.contains(&Action::Lifecycle(Lifecycle::OnFire)), "{a:?}");
    assert!(matches!(&r.core.phase, Phase::Failed { reason } if reason.contains("503")));
}

#[test]
fn a_pass_within_the_start_period_runs_it_and_later_failures_count() {
    let mut r = Run::probed(Some(Duration::from_secs(60))).created();
    r.probe(100, true);
    assert_eq!(r.core.phase, Phase::Running);
    r.probe(61_000, false);
    let a = r.probe(1_000, false);
    assert!(a.contains(&Action::Lifecycle(Lifecycle::OnFire)), "{a:?}");
}

#[test]
fn without_a_start_period_a_start_waits_for_its_first_pass() {
    // Today's behaviour, kept: failing probes while starting do not fail
    // the start before its timeout.
    let mut r = Run::probed(None).created();
    let mut failing = Vec::new();
    for _ in 0..20 {
        let a = r.probe(1_000, false);
        failing.extend(
            a.into_iter()
                .filter(|a| matches!(a, Action::HealthFailing(_))),
        );
    }
    assert_eq!(r.core.phase, Phase::WaitingHealthy);
    // `health.failing` is published once, at the first failure (a rollout
    // judges the member by it), and cleared by the first pass.
    assert_eq!(failing.len(), 1, "{failing:?}");
    let a = r.probe(1_000, true);
    assert!(a.contains(&Action::HealthFailing(None)), "{a:?}");
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn the_start_timeout_runs_from_the_end_of_the_start_period() {
    let period = Duration::from_secs(300);
    let mut r = Run::probed(Some(period)).created();
    // Past the plain timeout (2m) but within period + timeout: still starting.
    r.at(
        DEFAULT_START_TIMEOUT.as_millis() as u64 + 1_000,
        Observation::Tick,
    );
    assert_eq!(r.core.lifecycle(), Lifecycle::Starting);
    r.at(period.as_millis() as u64, Observation::Tick);
    assert_eq!(r.core.lifecycle(), Lifecycle::OnFire);
}

fn any_observation() -> impl Strategy<Value = Observation> {
    let engine = |event| Observation::Engine {
        container: ID.into(),
        event,
    };
    let all = vec![
        Observation::Start,
        Observation::Stop,
        Observation::Restart,
        Observation::Tick,
        Observation::Created(Ok(info())),
        Observation::Created(Err("boom".into())),
        Observation::Operated(Ok(Some(info()))),
        fresh_list(Some((ID.into(), "running".into()))),
        Observation::Probed {
            container: Some(ID.into()),
            result: Err("refused".into()),
        },
        engine(EngineEvent::Start),
        engine(EngineEvent::Die),
        engine(EngineEvent::Health(EngineHealth::Healthy)),
        engine(EngineEvent::Health(EngineHealth::Unhealthy)),
        engine(EngineEvent::Health(EngineHealth::Starting)),
    ];
    (0..all.len()).prop_map(move |i| all[i].clone())
}

proptest! {
    /// Engine checks and start periods keep the machine's promises: never
    /// a probe of an engine check, at most one engine operation in flight,
    /// and a published lifecycle is the phase's.
    #[test]
    fn random_sequences_with_engine_checks_and_start_periods(
        engine in any::<bool>(),
        period_ms in proptest::option::of(0u64..20_000),
        seq in proptest::collection::vec((any_observation(), 0u64..5_000), 0..60),
    ) {
        let mut r = Run::new(Settings {
            health: true,
            engine_health: engine,
            start_period: period_ms.map(Duration::from_millis),
            unhealthy_threshold: 2,
            ..Settings::default()
        });
        for (obs, ms) in seq {
            let actions = r.at(ms, obs.clone());
            if engine {
                prop_assert!(!actions.contains(&Action::Probe), "{:?}: {:?}", obs, actions);
            }
            let ops = actions.iter().filter(|a| matches!(a, Action::Create | Action::Operate(_) | Action::Remove(_) | Action::Place)).count();
            prop_assert!(ops <= 1);
            if let Some(Action::Lifecycle(l)) = actions.iter().rev().find(|a| matches!(a, Action::Lifecycle(_))) {
                prop_assert_eq!(*l, r.core.lifecycle());
            }
        }
    }
}
