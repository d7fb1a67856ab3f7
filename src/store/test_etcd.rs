//! A real etcd for the store's unit tests (Debian's `etcd-server`): one
//! member on free loopback ports, data in a temp dir, killed and removed
//! on drop. Panics (never skips) when `etcd` is missing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestEtcd {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestEtcd {
    pub fn start() -> TestEtcd {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let (p, q) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{p}");
        let peer = format!("http://127.0.0.1:{q}");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=t={peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts (Debian's etcd-server: apt-get install etcd-server)");
        let etcd = TestEtcd {
            child,
            port: p,
            _dir: dir,
        };
        let t0 = Instant::now();
        loop {
            let ok = ureq::get(&format!("{client}/health"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|b| b.contains("true"));
            if ok {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "etcd did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
