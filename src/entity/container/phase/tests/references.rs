//! A start that waits for its references, a source on fire, a stale value.

use super::*;

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
