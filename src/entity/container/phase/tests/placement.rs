//! A container in a host pool: placement first, a full pool, release on
//! teardown, moves and relocations.

use super::*;

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
fn a_full_pool_publishes_insufficient_capacity_before_the_failure() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    let a = r.step(Observation::PlaceFailed {
        error: full_pool(),
        keep: None,
    });
    // The kind comes first: a cluster reads it when the member turns on-fire.
    let capacity = Action::PlaceFailure(Some(PlaceErrorKind::InsufficientCapacity));
    let kind_at = a.iter().position(|x| *x == capacity);
    let fire_at = a
        .iter()
        .position(|x| *x == Action::Lifecycle(Lifecycle::OnFire));
    assert!(
        matches!((kind_at, fire_at), (Some(k), Some(f)) if k < f),
        "{a:?}"
    );
    assert!(
        a.contains(&Action::ResolveStarts(Err(StartError::Failed(
            full_pool().to_string()
        )))),
        "{a:?}"
    );
    // Published once per kind, and cleared once a later attempt is placed.
    r.step(Observation::Start);
    assert_eq!(r.core.phase, Phase::Placing);
    let a = r.step(Observation::PlaceFailed {
        error: full_pool(),
        keep: None,
    });
    assert!(!a.contains(&capacity), "{a:?}");
    r.step(Observation::Start);
    let a = r.step(Observation::Placed);
    assert_eq!(a[0], Action::PlaceFailure(None));
    assert_eq!(r.core.place_failure, None);
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
        error: PlaceError::HostNotReady("no cooler host".into()),
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

/// A removal on an engine that is gone can only fail: when the pool says
/// the host is lost, the member being torn down is gone (the pool already
/// forgot its slot), instead of `stopping` for ever.
#[test]
fn a_teardown_on_a_lost_host_ends_when_the_pool_relocates() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    r.step(Observation::Teardown);
    assert_eq!(r.core.phase, Phase::TearingDown);
    // The engine refused the removal: still tearing down.
    assert!(r.step(Observation::TornDown { ok: false }).is_empty());
    assert_eq!(r.core.phase, Phase::TearingDown);
    let a = r.step(Observation::Relocated {
        reason: "host pool-1 is on fire".into(),
    });
    assert_eq!(a, vec![Action::Announce(Lifecycle::Stopped), Action::Gone]);
    assert_eq!(r.core.phase, Phase::Gone);
    // No release: the pool dropped the slot with the host.
    assert!(!r.core.placed);
}

/// Relocated first (placement on a new host still in flight), then torn
/// down: the removal goes to the lost host and fails; the member is gone
/// all the same.
#[test]
fn a_teardown_after_a_relocation_ends_though_the_lost_host_refuses() {
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    r.step(Observation::Relocated {
        reason: "host pool-1 is on fire".into(),
    });
    r.step(Observation::Teardown);
    assert_eq!(r.core.phase, Phase::TearingDown);
    let a = r.step(Observation::TornDown { ok: false });
    assert_eq!(a, vec![Action::Announce(Lifecycle::Stopped), Action::Gone]);
    // Without a lost host, a refused removal keeps it tearing down.
    let mut r = Run::new(false, true);
    r.step(Observation::Start);
    r.step(Observation::Placed);
    r.step(Observation::Created(Ok(info("running"))));
    r.step(Observation::Teardown);
    assert!(r.step(Observation::TornDown { ok: false }).is_empty());
    assert_eq!(r.core.phase, Phase::TearingDown);
}
