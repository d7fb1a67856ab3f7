//! A real etcd for the tests (Debian's `etcd-server`): one member on free
//! loopback ports, its data in a temp dir; killed (and the dir removed) on
//! drop, even when the test fails. Panics, never skips, without `etcd`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    /// Client TLS, when started with [`Etcd::start_tls`].
    pub tls: Option<EtcdTls>,
}

/// The files of an etcd that speaks TLS and checks client certificates
/// (`--client-cert-auth`): its own certificate and key, the CA it trusts
/// for clients (which also signed its certificate), and a client
/// certificate and key that CA signed.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::start_with(None)
    }

    /// An etcd on https that accepts only clients with a certificate
    /// `tls.ca` signed.
    pub fn start_tls(tls: EtcdTls) -> Etcd {
        Etcd::start_with(Some(tls))
    }

    fn start_with(tls: Option<EtcdTls>) -> Etcd {
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let (p, q) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{p}");
        let peer = format!("http://127.0.0.1:{q}");
        let mut cmd = Command::new("etcd");
        if let Some(t) = &tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
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
            tls,
        };
        etcd.wait_healthy(Duration::from_secs(30));
        etcd
    }

    pub fn wait_healthy(&self, deadline: Duration) {
        let t0 = Instant::now();
        if self.tls.is_some() {
            // Its /health wants a client certificate: etcdctl's check.
            while !self.etcdctl(&["endpoint", "health"]).status.success() {
                assert!(t0.elapsed() < deadline, "etcd did not become healthy");
                std::thread::sleep(Duration::from_millis(100));
            }
            return;
        }
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

    /// Runs Debian's `etcdctl` (package `etcd-client`) against this etcd,
    /// with its client certificate when it speaks TLS.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={scheme}://127.0.0.1:{}", self.port));
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        cmd.args(args)
            .output()
            .expect("etcdctl runs (Debian's etcd-client: apt-get install etcd-client)")
    }

    /// Turns etcd's authentication on with user `root` and `password`.
    pub fn enable_auth(&self, password: &str) {
        for args in [
            vec!["user", "add", &format!("root:{password}")],
            vec!["auth", "enable"],
        ] {
            let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
            let out = self.etcdctl(&args);
            assert!(
                out.status.success(),
                "etcdctl {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
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
