//! A real etcd for the store's unit tests: the integration tests' own
//! harness (`tests/common/etcd.rs`: Debian's `etcd-server`, one member on
//! free loopback ports, killed and removed on drop, never skipped), and a
//! store that leads on it.

use std::time::Duration;

#[allow(dead_code)]
#[path = "../../tests/common/etcd.rs"]
mod harness;

pub use harness::Etcd as TestEtcd;

/// A store on `etcd` for cluster `cluster`, leading it (its writes pass
/// the fence), and the election that leads.
pub fn leading_store(
    etcd: &TestEtcd,
    cluster: &str,
) -> (super::Store, super::Fence, super::election::Leadership) {
    let opts = match super::StoreTarget::parse(&etcd.url(), cluster).unwrap() {
        super::StoreTarget::Etcd(o) => o,
        other => panic!("not etcd: {other:?}"),
    };
    let fence = super::Fence::default();
    let store = super::Store::open_target(&super::StoreTarget::Etcd(opts.clone()), fence.clone())
        .expect("the etcd store opens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = rt.block_on(async {
        let e = super::election::Election::connect(
            &opts,
            // Longer than any test: leadership ends only when a test ends it.
            Duration::from_secs(60),
            "http://test".into(),
            fence.clone(),
        )
        .await
        .unwrap();
        e.campaign(|_| {}).await
    });
    (store, fence, l)
}
