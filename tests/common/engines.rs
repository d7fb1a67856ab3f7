//! Extra Docker engines for the host-pool tests and benches: each with its
//! own data root, exec root, socket, pidfile and bridge, in an address
//! range no other test process holds; stopped (with every engine drover
//! provisioned under the same directory) on drop, even when a test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover::location::provision::LocalEngine;

/// A `10.<octet>.0.0/16` claimed for one test's bridges: no route on the
/// machine uses it, and no other test process holds it (a claim is a file
/// naming its process, taken over only if that process is gone).
pub struct Octet {
    pub octet: u8,
    claim: PathBuf,
}

impl Octet {
    pub fn claim() -> Octet {
        let dir = Path::new("/tmp/drover-test-octets");
        std::fs::create_dir_all(dir).unwrap();
        let routes = Command::new("ip")
            .args(["-4", "route"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        // 10.213/16 is drover's default subnet pool, 10.216–223 the pool
        // hosts' application networks.
        for octet in (200u8..=250).filter(|o| *o != 213 && !(216..=223).contains(o)) {
            if routes.contains(&format!("10.{octet}.")) {
                continue;
            }
            let claim = dir.join(octet.to_string());
            let mine = std::process::id().to_string();
            let taken = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&claim)
                .map(|mut f| {
                    use std::io::Write;
                    f.write_all(mine.as_bytes()).is_ok()
                })
                .unwrap_or(false);
            if taken {
                return Octet { octet, claim };
            }
            // Left by a test process that is gone: take it over.
            let holder = std::fs::read_to_string(&claim).unwrap_or_default();
            let alive = Path::new(&format!("/proc/{}", holder.trim())).exists();
            if !alive && holder.trim() != mine {
                let _ = std::fs::remove_file(&claim);
                if std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&claim)
                    .and_then(|mut f| {
                        use std::io::Write;
                        f.write_all(mine.as_bytes())
                    })
                    .is_ok()
                {
                    return Octet { octet, claim };
                }
            }
        }
        panic!("no free 10.x.0.0/16 in 10.200–250 for test bridges: remove stale claims in /tmp/drover-test-octets");
    }
}

impl Drop for Octet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.claim);
    }
}

/// Engines of one test, stopped and removed on drop.
pub struct Engines {
    pub dir: tempfile::TempDir,
    pub engines: Vec<(String, LocalEngine)>,
    /// Claimed address ranges; released after the engines stop (fields
    /// drop after `Drop::drop`).
    octets: Vec<Octet>,
}

impl Engines {
    /// Starts `n` engines `e-1..e-n`, bridges in `10.<claimed>.<i>.0/24`.
    pub fn start(n: usize) -> Engines {
        super::require_docker();
        let dir = tempfile::Builder::new()
            .prefix("drover-pool-")
            .tempdir_in("/tmp")
            .unwrap();
        let octet = Octet::claim();
        let mut me = Engines {
            dir,
            engines: Vec::new(),
            octets: Vec::new(),
        };
        let octet = {
            let o = octet.octet;
            me.octets.push(octet);
            o
        };
        for i in 1..=n {
            let name = format!("e-{i}");
            let e = LocalEngine::at(&me.dir.path().join("static"), &name);
            // Pushed first: a failed start is cleaned up too.
            me.engines.push((name, e.clone()));
            e.start(
                Path::new("dockerd"),
                (10, octet),
                i as u32,
                Duration::from_secs(30),
            )
            .unwrap_or_else(|err| panic!("dockerd {i} did not start: {err}"));
        }
        me
    }

    /// A `/16` of its own for the hosts drover provisions in this test.
    pub fn provision_subnet(&mut self) -> String {
        let o = Octet::claim();
        let s = format!("10.{}.0.0/16", o.octet);
        self.octets.push(o);
        s
    }

    pub fn socket(&self, i: usize) -> String {
        format!("unix://{}", self.engines[i].1.socket.display())
    }

    pub fn provision_dir(&self) -> PathBuf {
        self.dir.path().join("provisioned")
    }

    /// `docker` against engine `i`.
    pub fn docker(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(self.socket(i))
            .args(args)
            .output()
            .unwrap()
    }

    /// Stops engine `i`'s dockerd only (a crashed machine).
    pub fn kill_engine(&self, i: usize) {
        if let Some(pid) = self.engines[i].1.pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl Drop for Engines {
    fn drop(&mut self) {
        for (_, e) in &self.engines {
            let _ = e.stop();
        }
        // Hosts drover provisioned: DIR/provisioned/<location>/<host>.
        if let Ok(locs) = std::fs::read_dir(self.provision_dir()) {
            for loc in locs.flatten() {
                if let Ok(hosts) = std::fs::read_dir(loc.path()) {
                    for h in hosts.flatten() {
                        let name = h.file_name().to_string_lossy().to_string();
                        let _ = LocalEngine::at(&loc.path(), &name).stop();
                    }
                }
            }
        }
    }
}
