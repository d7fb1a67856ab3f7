//! A real etcd for the tests (Debian's `etcd-server`): one member on free
//! loopback ports, its data in a temp dir; killed (and the dir removed) on
//! drop, even when the test fails. Panics, never skips, without `etcd`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
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

impl Etcd {
    pub fn start() -> Etcd {
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
        let etcd = Etcd {
            child,
            port: p,
            _dir: dir,
        };
        etcd.wait_healthy(Duration::from_secs(30));
        etcd
    }

    pub fn wait_healthy(&self, deadline: Duration) {
        let t0 = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            let ok = agent
                .get(&format!("http://127.0.0.1:{}/health", self.port))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .is_some_and(|b| b.contains("true"));
            if ok {
                return;
            }
            assert!(t0.elapsed() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `--store`'s value.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: etcd answers nothing (a network cut, as its clients see it).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} etcd");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; the SIGCONT only keeps a
        // failed kill from leaving a stopped etcd behind.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
