//! Every phase against every observation: the invariants one step keeps,
//! the walks that reach each phase, and random sequences.

use proptest::prelude::*;

use super::*;

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
        fresh_list(Some((ID.into(), "running".into()))),
        fresh_list(Some((ID.into(), "exited".into()))),
        fresh_list(Some(("other".into(), "running".into()))),
        fresh_list(None),
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
            error: PlaceError::HostNotReady("no host".into()),
            keep: None,
        },
        Observation::PlaceFailed {
            error: full_pool(),
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

/// A core that wants no ticks does nothing on one, however late it
/// comes: the actor sets no timer for it (`ContainerEntity::arm_tick`).
fn check_no_tick_is_missed(core: &Core, now: Instant) {
    if core.wants_ticks() {
        return;
    }
    let mut late = core.clone();
    let actions = late.step(
        Observation::Tick,
        &Refs::None,
        now + Duration::from_secs(3600),
    );
    assert!(
        actions.is_empty(),
        "{:?} wants no ticks, but a tick did {actions:?}",
        core.phase
    );
    assert_eq!(late.phase, core.phase);
}

#[test]
fn every_phase_against_every_observation_keeps_the_invariants() {
    for p in PHASES {
        for obs in observations() {
            let mut r = reach(p);
            let before = r.core.clone();
            let actions = r.step(obs.clone());
            check_step(&before, &obs, &r.core, &actions);
            check_no_tick_is_missed(&r.core, r.now);
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
            check_no_tick_is_missed(&core, now);
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
