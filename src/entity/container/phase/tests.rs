//! The state machine's table: every phase against every observation, the
//! invariants, and random sequences.

use std::time::{Duration, Instant};

use proptest::prelude::*;

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

/// Builds a core in each phase, by walking there as the actor would.
fn in_phase(target: &str) -> Run {
    let mut r = Run::new(true, true);
    let walk: Vec<Observation> = match target {
        "created" => vec![],
        "placing" => vec![Observation::Start],
        "creating" => vec![Observation::Start, Observation::Placed],
        "waiting-healthy" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("running"))),
        ],
        "running" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("running"))),
            Observation::Probed {
                container: Some(ID.into()),
                result: Ok(()),
            },
        ],
        "failed" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("exited"))),
        ],
        "clearing" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("exited"))),
            Observation::Start,
        ],
        "restarting" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("exited"))),
            Observation::Restart,
        ],
        "stopping" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("running"))),
            Observation::Stop,
        ],
        "stopped" => vec![
            Observation::Start,
            Observation::Placed,
            Observation::Created(Ok(info("running"))),
            Observation::Stop,
            Observation::Operated(Ok(None)),
        ],
        "tearing-down" => vec![Observation::Start, Observation::Teardown],
        "gone" => vec![
            Observation::Start,
            Observation::Teardown,
            Observation::TornDown { ok: true },
        ],
        other => panic!("no walk to {other}"),
    };
    for o in walk {
        r.step(o);
    }
    r
}

const PHASES: [&str; 13] = [
    "created",
    "placing",
    "creating",
    "waiting-healthy",
    "running",
    "failed",
    "clearing",
    "restarting",
    "stopping",
    "stopped",
    "tearing-down",
    "gone",
    "recreating",
];

fn reach(target: &str) -> Run {
    if target == "recreating" {
        let mut r = in_phase("running");
        r.core.waiting_since = None;
        r.step(Observation::ReferencesChanged { stale: true });
        assert_eq!(r.core.phase, Phase::Recreating);
        return r;
    }
    in_phase(target)
}

fn observations() -> Vec<Observation> {
    let mut v = vec![
        Observation::Start,
        Observation::Stop,
        Observation::Restart,
        Observation::Teardown,
        Observation::Resync(Some((ID.into(), "running".into()))),
        Observation::Resync(Some((ID.into(), "exited".into()))),
        Observation::Resync(Some(("other".into(), "running".into()))),
        Observation::Resync(None),
        Observation::Probed {
            container: Some(ID.into()),
            result: Ok(()),
        },
        Observation::Probed {
            container: Some(ID.into()),
            result: Err("refused".into()),
        },
        Observation::Tick,
        Observation::Placed,
        Observation::PlaceFailed {
            reason: "no host".into(),
            keep: None,
        },
        Observation::Created(Ok(info("running"))),
        Observation::Created(Ok(info("exited"))),
        Observation::Created(Err("boom".into())),
        Observation::Operated(Ok(Some(info("running")))),
        Observation::Operated(Ok(None)),
        Observation::Operated(Err("boom".into())),
        Observation::Removed,
        Observation::TornDown { ok: true },
        Observation::TornDown { ok: false },
        Observation::ReferencesChanged { stale: true },
        Observation::ReferencesChanged { stale: false },
        Observation::Relocated {
            reason: "host failed".into(),
        },
        Observation::Move,
    ];
    for e in [
        EngineEvent::Start,
        EngineEvent::Unpause,
        EngineEvent::Die,
        EngineEvent::Oom,
        EngineEvent::Pause,
        EngineEvent::Destroy,
        EngineEvent::Other("exec_create".into()),
        EngineEvent::Health(EngineHealth::Healthy),
        EngineEvent::Health(EngineHealth::Unhealthy),
        EngineEvent::Health(EngineHealth::Starting),
    ] {
        v.push(Observation::Engine {
            container: ID.into(),
            event: e,
        });
    }
    v
}

/// `obs` is the outcome of what `phase` has in flight.
fn completes(phase: &Phase, obs: &Observation) -> bool {
    matches!(
        (phase, obs),
        (
            Phase::Placing,
            Observation::Placed | Observation::PlaceFailed { .. }
        ) | (Phase::Creating, Observation::Created(_))
            | (
                Phase::Restarting | Phase::Stopping,
                Observation::Operated(_)
            )
            | (Phase::Clearing | Phase::Recreating, Observation::Removed)
    )
}

fn is_completion(obs: &Observation) -> bool {
    matches!(
        obs,
        Observation::Placed
            | Observation::PlaceFailed { .. }
            | Observation::Created(_)
            | Observation::Operated(_)
            | Observation::Removed
    )
}

/// The invariants one step must keep.
fn check_step(before: &Core, obs: &Observation, after: &Core, actions: &[Action]) {
    let ops: Vec<&Action> = actions.iter().filter(|a| is_engine_op(a)).collect();
    // Never two engine operations in flight.
    assert!(
        ops.len() <= 1,
        "{obs:?} in {:?} started {ops:?}",
        before.phase
    );
    if !ops.is_empty() {
        assert!(
            !before.phase.is_busy() || completes(&before.phase, obs),
            "{obs:?} started {ops:?} while {:?} was in flight",
            before.phase
        );
        assert!(
            after.phase.is_busy(),
            "{ops:?} runs but {:?} is not busy",
            after.phase
        );
    }
    // An outcome of something not in flight changes nothing.
    if is_completion(obs) && !completes(&before.phase, obs) {
        assert!(
            actions.is_empty(),
            "{obs:?} in {:?}: {actions:?}",
            before.phase
        );
        assert_eq!(before.phase, after.phase);
    }
    // Teardown wins over everything.
    if before.phase.is_torn_down() {
        assert!(after.phase.is_torn_down());
        assert!(ops.is_empty(), "{obs:?} after teardown started {ops:?}");
        assert!(!after.want_running);
    }
    if *obs == Observation::Teardown {
        assert_eq!(after.phase, Phase::TearingDown);
        assert!(actions.contains(&Action::RemoveAll(before.container.clone())));
    }
    // A published lifecycle is the phase's.
    if let Some(Action::Lifecycle(l)) = actions
        .iter()
        .rev()
        .find(|a| matches!(a, Action::Lifecycle(_)))
    {
        if !after.phase.is_torn_down() {
            assert_eq!(*l, after.lifecycle(), "{obs:?} in {:?}", before.phase);
        }
    }
    // A stop is obeyed, not healed: nothing but a start or restart runs it again.
    if !before.want_running && !matches!(obs, Observation::Start | Observation::Restart) {
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Create
                    | Action::Place
                    | Action::Operate(EngineOp::Start | EngineOp::Restart)
            )),
            "{obs:?} in {:?} (stopped on purpose) started it: {actions:?}",
            before.phase
        );
    }
    // Answers only to effector calls.
    if !matches!(
        obs,
        Observation::Start | Observation::Stop | Observation::Restart
    ) {
        assert!(!actions.iter().any(|a| matches!(
            a,
            Action::AwaitStart | Action::AwaitOperation(_) | Action::Refuse(_)
        )));
    }
}

#[test]
fn every_phase_against_every_observation_keeps_the_invariants() {
    for p in PHASES {
        for obs in observations() {
            let mut r = reach(p);
            let before = r.core.clone();
            let actions = r.step(obs.clone());
            check_step(&before, &obs, &r.core, &actions);
        }
    }
}

#[test]
fn the_walks_reach_their_phases() {
    let want = [
        ("created", Phase::Created),
        ("placing", Phase::Placing),
        ("creating", Phase::Creating),
        ("waiting-healthy", Phase::WaitingHealthy),
        ("running", Phase::Running),
        ("clearing", Phase::Clearing),
        ("restarting", Phase::Restarting),
        ("stopping", Phase::Stopping),
        ("stopped", Phase::Stopped),
        ("tearing-down", Phase::TearingDown),
        ("gone", Phase::Gone),
    ];
    for (name, phase) in want {
        assert_eq!(reach(name).core.phase, phase, "{name}");
    }
    assert!(matches!(reach("failed").core.phase, Phase::Failed { .. }));
}

#[test]
fn lifecycle_of_each_phase() {
    use Lifecycle::*;
    let table = [
        (Phase::Created, Created),
        (Phase::WaitingReferences, Starting),
        (Phase::Placing, Starting),
        (Phase::Creating, Starting),
        (Phase::Clearing, OnFire),
        (Phase::Recreating, Starting),
        (Phase::Restarting, Starting),
        (Phase::Stopping, Stopping),
        (Phase::WaitingHealthy, Starting),
        (Phase::Running, Running),
        (Phase::Stopped, Stopped),
        (Phase::Failed { reason: "x".into() }, OnFire),
        (Phase::TearingDown, Stopping),
        (Phase::Gone, Stopped),
    ];
    for (p, l) in table {
        assert_eq!(p.lifecycle(), l, "{p:?}");
    }
}

#[test]
fn a_start_creates_then_runs_and_answers() {
    let mut r = Run::new(false, false);
    let a = r.step(Observation::Start);
    assert_eq!(
        a,
        vec![
            Action::AwaitStart,
            Action::Lifecycle(Lifecycle::Starting),
            Action::Create
        ]
    );
    let a = r.step(Observation::Created(Ok(info("running"))));
    assert_eq!(
        a,
        vec![
            Action::ServiceState("running".into()),
            Action::ServiceUp(true),
            Action::ErrorSensor(None),
            Action::Lifecycle(Lifecycle::Running),
            Action::ResolveStarts(Ok(())),
        ]
    );
    // Idempotent: a second start answers at once and does nothing else.
    let a = r.step(Observation::Start);
    assert_eq!(a, vec![Action::AwaitStart, Action::ResolveStarts(Ok(()))]);
}

#[test]
fn a_pool_container_is_placed_first() {
    let mut r = Run::new(false, true);
    assert!(r.step(Observation::Start).contains(&Action::Place));
    assert_eq!(r.core.phase, Phase::Placing);
    let a = r.step(Observation::Placed);
    assert!(r.core.placed);
    // A new attempt: `starting` again, then the create.
    assert_eq!(
        a,
        vec![Action::Lifecycle(Lifecycle::Starting), Action::Create]
    );
}

#[test]
fn with_a_health_check_it_runs_once_a_probe_passes() {
    let mut r = Run::new(true, false);
    r.step(Observation::Start);
    let a = r.step(Observation::Created(Ok(info("running"))));
    assert!(a.contains(&Action::Probe));
    assert_eq!(r.core.phase, Phase::WaitingHealthy);
    // A failing probe while starting is expected: still starting.
    r.step(Observation::Probed {
        container: Some(ID.into()),
        result: Err("refused".into()),
    });
    assert_eq!(r.core.phase, Phase::WaitingHealthy);
    assert_eq!(r.core.last_error.as_deref(), Some("health check: refused"));
    // Ticks probe again, one at a time.
    r.now += STARTING_PROBE_EVERY;
    let a = r.step(Observation::Tick);
    assert_eq!(a, vec![Action::Probe]);
    assert!(r.step(Observation::Tick).is_empty(), "a probe is in flight");
    r.step(Observation::Probed {
        container: Some(ID.into()),
        result: Ok(()),
    });
    assert_eq!(r.core.phase, Phase::Running);
    // Once running, a failing probe is a failure.
    r.step(Observation::Probed {
        container: Some(ID.into()),
        result: Err("refused".into()),
    });
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "health check: refused".into()
        }
    );
}

#[test]
fn a_start_that_never_gets_healthy_times_out() {
    let mut r = Run::new(true, false);
    r.step(Observation::Start);
    r.step(Observation::Created(Ok(info("running"))));
    r.now += DEFAULT_START_TIMEOUT + Duration::from_secs(1);
    let a = r.step(Observation::Tick);
    assert!(
        matches!(&r.core.phase, Phase::Failed { reason } if reason.starts_with("not up after 2m"))
    );
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::ResolveStarts(Err(StartError::Failed(_))))));
}

#[test]
fn a_crash_fails_and_a_restart_starts_the_exited_container() {
    let mut r = Run::running();
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Die,
    });
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "container is exited".into()
        }
    );
    let a = r.step(Observation::Restart);
    assert!(a.contains(&Action::Operate(EngineOp::Start)), "{a:?}");
    let a = r.step(Observation::Operated(Ok(Some(info("running")))));
    assert!(a.contains(&Action::Lifecycle(Lifecycle::Running)));
}

#[test]
fn a_running_container_is_restarted_in_place() {
    let mut r = Run::running();
    let a = r.step(Observation::Restart);
    assert_eq!(
        a,
        vec![
            Action::AwaitOperation(EngineOp::Restart),
            Action::Lifecycle(Lifecycle::Starting),
            Action::Operate(EngineOp::Restart)
        ]
    );
}

#[test]
fn a_start_of_a_failed_container_removes_it_first() {
    let mut r = Run::running();
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Die,
    });
    let a = r.step(Observation::Start);
    assert_eq!(a, vec![Action::AwaitStart, Action::Remove(ID.into())]);
    assert_eq!(r.core.phase, Phase::Clearing);
    assert_eq!(
        r.core.lifecycle(),
        Lifecycle::OnFire,
        "on fire until it starts again"
    );
    let a = r.step(Observation::Removed);
    assert_eq!(
        a,
        vec![Action::Lifecycle(Lifecycle::Starting), Action::Create]
    );
}

#[test]
fn a_stop_is_obeyed_and_not_healed() {
    let mut r = Run::running();
    let a = r.step(Observation::Stop);
    assert!(a.contains(&Action::Operate(EngineOp::Stop)));
    r.step(Observation::Operated(Ok(None)));
    assert_eq!(r.core.phase, Phase::Stopped);
    for obs in [
        Observation::Engine {
            container: ID.into(),
            event: EngineEvent::Die,
        },
        Observation::Resync(None),
        Observation::Tick,
        Observation::ReferencesChanged { stale: true },
    ] {
        let a = r.step(obs);
        assert!(!a.iter().any(is_engine_op), "{a:?}");
        assert_eq!(r.core.lifecycle(), Lifecycle::Stopped);
    }
}

#[test]
fn a_container_removed_behind_drovers_back_fails_and_a_restart_recreates_it() {
    let mut r = Run::running();
    r.step(Observation::Resync(None));
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "container is removed".into()
        }
    );
    assert_eq!(r.core.container, None);
    let a = r.step(Observation::Restart);
    assert!(a.contains(&Action::AwaitStart));
    assert!(a.contains(&Action::Create), "{a:?}");
}

#[test]
fn effectors_during_an_operation_are_refused_or_joined() {
    let mut r = Run::running();
    r.step(Observation::Restart);
    assert_eq!(r.core.phase, Phase::Restarting);
    for obs in [Observation::Stop, Observation::Restart] {
        let a = r.step(obs);
        assert!(matches!(a.as_slice(), [Action::Refuse(_)]), "{a:?}");
    }
    // A start joins the one in flight.
    assert_eq!(r.step(Observation::Start), vec![Action::AwaitStart]);
}

#[test]
fn events_during_an_operation_are_replayed_from_the_last_start() {
    let mut r = Run::new(false, false);
    r.step(Observation::Start);
    for e in [EngineEvent::Die, EngineEvent::Start, EngineEvent::Die] {
        assert!(r
            .step(Observation::Engine {
                container: ID.into(),
                event: e
            })
            .is_empty());
    }
    let a = r.step(Observation::Created(Ok(info("running"))));
    // Running first (the start is answered), then the crash after it.
    let lifecycles: Vec<_> = a
        .iter()
        .filter_map(|a| match a {
            Action::Lifecycle(l) => Some(*l),
            _ => None,
        })
        .collect();
    assert_eq!(lifecycles, vec![Lifecycle::Running, Lifecycle::OnFire]);
}

#[test]
fn teardown_wins_over_an_operation_in_flight() {
    let mut r = Run::new(false, false);
    r.step(Observation::Start);
    let a = r.step(Observation::Teardown);
    assert_eq!(
        a,
        vec![
            Action::Announce(Lifecycle::Stopping),
            Action::ResolveStarts(Err(StartError::Stopping)),
            Action::RemoveAll(None)
        ]
    );
    // The create's late answer changes nothing.
    assert!(r.step(Observation::Created(Ok(info("running")))).is_empty());
    assert_eq!(r.core.phase, Phase::TearingDown);
    let a = r.step(Observation::TornDown { ok: true });
    assert_eq!(a, vec![Action::Announce(Lifecycle::Stopped), Action::Gone]);
}

#[test]
fn a_placed_container_releases_its_slot_when_torn_down() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Teardown);
    let a = r.step(Observation::TornDown { ok: true });
    assert_eq!(a[0], Action::Release);
}

#[test]
fn events_of_an_earlier_container_are_history() {
    let mut r = Run::running();
    let a = r.step(Observation::Engine {
        container: "old".into(),
        event: EngineEvent::Die,
    });
    assert!(a.is_empty());
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn pause_fails_and_unpause_recovers() {
    let mut r = Run::running();
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Pause,
    });
    assert_eq!(r.core.lifecycle(), Lifecycle::OnFire);
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Unpause,
    });
    assert_eq!(r.core.phase, Phase::Running);
}

#[test]
fn an_oom_kill_gives_the_reason_of_the_failure() {
    let mut r = Run::running();
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Oom,
    });
    assert_eq!(r.core.phase, Phase::Running);
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Die,
    });
    // `die` gives its own reason; the OOM was published as the error.
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "container is exited".into()
        }
    );
}

#[test]
fn a_start_waits_for_its_references_and_times_out() {
    let mut r = Run::new(false, false);
    let missing = Refs::Missing {
        missing: vec!["db.host".into()],
        abort: None,
    };
    r.now += Duration::from_millis(1);
    let a = r.core.step(Observation::Start, &missing, r.now);
    assert_eq!(r.core.phase, Phase::WaitingReferences);
    assert!(a.contains(&Action::WaitingFor {
        missing: vec!["db.host".into()],
        first: true
    }));
    assert!(!a.iter().any(is_engine_op));
    // Ready: the start goes on.
    let a = r.core.step(
        Observation::ReferencesChanged { stale: false },
        &Refs::Ready,
        r.now,
    );
    assert!(a.contains(&Action::Create));

    let mut r = Run::new(false, false);
    r.core.step(Observation::Start, &missing, r.now);
    let later = r.now + Duration::from_secs(6);
    r.core.step(Observation::Tick, &missing, later);
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "waited 5s (reference_timeout) for db.host".into()
        }
    );
}

#[test]
fn a_source_on_fire_aborts_the_wait_when_asked() {
    let mut r = Run::new(false, false);
    let refs = Refs::Missing {
        missing: vec!["db".into()],
        abort: Some("source `db` is on-fire".into()),
    };
    let a = r.core.step(Observation::Start, &refs, r.now);
    assert!(matches!(r.core.phase, Phase::Failed { .. }));
    assert!(a.contains(&Action::ResolveStarts(Err(StartError::Failed(
        "source `db` is on-fire".into()
    )))));
}

#[test]
fn a_stale_reference_recreates_the_running_container() {
    let mut r = Run::running();
    let a = r.step(Observation::ReferencesChanged { stale: true });
    assert_eq!(
        a,
        vec![
            Action::CountReferenceRestart,
            Action::Lifecycle(Lifecycle::Starting),
            Action::Remove(ID.into())
        ]
    );
    let a = r.step(Observation::Removed);
    assert!(a.contains(&Action::Create));
}

#[test]
fn a_move_places_anew_and_retires_the_old_container_once_running() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    let a = r.step(Observation::Move);
    assert_eq!(a[0], Action::BeginMove(ID.into()));
    assert!(a.contains(&Action::Place));
    r.step(Observation::Placed);
    let a = r.step(Observation::Created(Ok(Info {
        id: "c2".into(),
        state: "running".into(),
        probeable: false,
    })));
    assert!(a.contains(&Action::RetireOld), "{a:?}");
}

#[test]
fn a_move_without_a_cooler_host_keeps_the_old_container() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    r.step(Observation::Move);
    let a = r.step(Observation::PlaceFailed {
        reason: "no cooler host".into(),
        keep: Some(ID.into()),
    });
    assert_eq!(a[0], Action::AbandonMove("no cooler host".into()));
    assert_eq!(r.core.phase, Phase::Running);
    assert_eq!(r.core.container.as_deref(), Some(ID));
    assert!(!a.contains(&Action::RetireOld));
}

#[test]
fn a_relocated_container_starts_again_elsewhere() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    let a = r.step(Observation::Relocated {
        reason: "host failed".into(),
    });
    assert!(a.contains(&Action::Place));
    assert!(!r.core.placed);
}

fn any_observation() -> impl Strategy<Value = Observation> {
    let all = observations();
    (0..all.len()).prop_map(move |i| all[i].clone())
}

proptest! {
    #[test]
    fn random_sequences_keep_the_invariants(
        health in any::<bool>(),
        pool in any::<bool>(),
        seq in proptest::collection::vec((any_observation(), 0u64..200_000, 0usize..4), 0..60),
    ) {
        let mut core = Core::new(settings(health, pool));
        let mut now = t0();
        // Operations in flight, as the actor would track them.
        let mut in_flight = 0usize;
        let refs = [
            Refs::None,
            Refs::Ready,
            Refs::Missing { missing: vec!["db.host".into()], abort: None },
            Refs::Missing { missing: vec!["db".into()], abort: Some("db is on-fire".into()) },
        ];
        for (obs, ms, r) in seq {
            now += Duration::from_millis(ms);
            let before = core.clone();
            let actions = core.step(obs.clone(), &refs[r], now);
            check_step(&before, &obs, &core, &actions);
            if completes(&before.phase, &obs) {
                in_flight -= 1;
            }
            in_flight += actions.iter().filter(|a| is_engine_op(a)).count();
            if core.phase.is_torn_down() {
                in_flight = 0;
            }
            prop_assert!(in_flight <= 1, "{} operations in flight", in_flight);
            prop_assert_eq!(in_flight == 1, core.phase.is_busy());
        }
    }
}
