//! Starts, health checks, failures, restarts, stops and effectors during an
//! operation.

use super::*;

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

/// `docker rm -f`: the container dies, the restart's start is refused
/// (the engine is removing it) and its `destroy` event came while the start
/// was in flight. The removal must not be lost with the failed start: the
/// next restart makes a new container instead of starting the removed one
/// until a resync says it is gone (a restarter gave up on those "No such
/// container" answers in a test run).
#[test]
fn a_removal_seen_during_a_failed_restart_makes_the_next_restart_create() {
    let mut r = Run::running();
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Die,
    });
    let a = r.step(Observation::Restart);
    assert!(a.contains(&Action::Operate(EngineOp::Start)), "{a:?}");
    r.step(Observation::Engine {
        container: ID.into(),
        event: EngineEvent::Destroy,
    });
    let a = r.step(Observation::Operated(Err(
        "container is marked for removal and cannot be started (HTTP 409)".into(),
    )));
    assert!(a.contains(&Action::ClearContainerId), "{a:?}");
    assert_eq!(r.core.container, None);
    let a = r.step(Observation::Restart);
    assert!(a.contains(&Action::Create), "{a:?}");
    assert!(!a.contains(&Action::Operate(EngineOp::Start)), "{a:?}");
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
        fresh_list(None),
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
    r.step(fresh_list(None));
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
fn a_list_taken_before_what_the_entity_knows_is_not_believed() {
    // Issue 18 bug (a): the host listed its containers, then the entity
    // created and started its container, then the list arrived saying it
    // has none (or a `created` one). Believed, the entity would fail and
    // replace (or restart) a healthy container.
    let listed_before = Instant::now();
    let mut r = Run::running();
    for seen in [None, Some((ID.to_string(), "created".to_string()))] {
        let a = r.step(Observation::Resync {
            seen,
            listed_at: listed_before,
        });
        assert!(a.is_empty(), "a stale list changes nothing: {a:?}");
        assert_eq!(r.core.phase, Phase::Running);
        assert_eq!(r.core.container.as_deref(), Some(ID));
    }
    // A list asked for after the last thing learned is the truth.
    let listed_after = r.now + Duration::from_millis(1);
    r.step(Observation::Resync {
        seen: None,
        listed_at: listed_after,
    });
    assert_eq!(
        r.core.phase,
        Phase::Failed {
            reason: "container is removed".into()
        }
    );
}

#[test]
fn ticks_are_wanted_only_while_something_is_due_on_them() {
    // Running, no health check, waiting for nothing: nothing to tick for.
    let r = Run::running();
    assert!(!r.core.wants_ticks());
    // Starting (a start's timeout runs), or stopped: ticks.
    let mut r = Run::new(false, false);
    assert!(r.core.wants_ticks(), "created");
    r.step(Observation::Start);
    assert!(r.core.wants_ticks(), "creating");
    // A health-checked container is probed while it runs.
    let mut r = Run::new(true, false);
    r.step(Observation::Start);
    r.step(Observation::Created(Ok(info("running"))));
    r.step(Observation::Probed {
        container: Some(ID.into()),
        result: Ok(()),
    });
    assert_eq!(r.core.phase, Phase::Running);
    assert!(r.core.wants_ticks());
}
