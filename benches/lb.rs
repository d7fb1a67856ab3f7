//! The load balancer's data plane against a direct connection and HAProxy,
//! same members, same run, `wrk` keep-alive.
//!
//! `cargo bench --bench lb` (no Docker needed; Debian's `wrk` and
//! `haproxy`). Two members are the project's workload program run as
//! processes on loopback; in front of them: nothing (wrk to one member),
//! drover's load balancer as it runs in production (`drover lb-agent`, http
//! mode, its pool set through its control API), and HAProxy (`mode http`,
//! round robin, keep-alive to the members). Each gets the same `wrk -t2
//! -c16 -d10s`; printed: requests/s and p99 of each, their ratios, and the
//! load balancer's RSS and CPU per 10k requests/s (from /proc, over its run).
//!
//! The machine has 2 cores shared by wrk, the proxy and the members:
//! compare the ratios, not the absolute numbers.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECONDS: u32 = 10;
const CONNECTIONS: u32 = 16;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills a process it started when dropped, however the bench ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn member(bin: &Path, port: u16) -> Proc {
    let mut p = Command::new(bin)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the workload program runs");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(s)) = p.try_wait() {
            panic!("the workload on port {port} exited: {s}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(p)
}

struct Run {
    rps: f64,
    p99: f64,
    non_ok: u64,
}

fn wrk(port: u16) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{SECONDS}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk's Requests/sec: {text}"));
    let p99 = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(seconds)
        .unwrap_or_else(|| panic!("wrk's p99: {text}"));
    let non_ok = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(0, |n| n.trim().parse().unwrap_or(0));
    Run { rps, p99, non_ok }
}

fn seconds(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap());
    let n: f64 = num.parse().unwrap();
    n * match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => 60.0,
    }
}

/// (user + system CPU seconds, RSS bytes) of a process, from /proc.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are 11 and 12 after the state.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz = 100.0; // USER_HZ on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (ticks as f64 / hz, rss_kb * 1024)
}

fn main() {
    for tool in ["wrk", "/usr/sbin/haproxy"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{tool} is needed: apt-get install wrk haproxy"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bin: PathBuf = dir.path().join("workload");
    std::fs::write(&bin, drover::host::workload::WORKLOAD_BINARY).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ports = [free_port(), free_port()];
    let _members: Vec<Proc> = ports.iter().map(|p| member(&bin, *p)).collect();

    // drover's load balancer: the program its agent container runs
    // (`drover lb-agent`; in production in a container on host networking,
    // which adds no hop: the same sockets on the same kernel).
    let lb_port = free_port();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "lb-agent",
            "--listen",
            &format!("127.0.0.1:{lb_port}"),
            "--control",
            "127.0.0.1:0",
            "--mode",
            "http",
            "--limits",
            "{}",
        ])
        .env(drover::lb::agent::SECRET_ENV, "bench-secret")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("drover lb-agent runs");
    let agent_pid = agent.id();
    let mut out = std::io::BufReader::new(agent.stdout.take().unwrap());
    let _agent = Proc(agent);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).expect("the agent's ready line");
    let ready = drover::lb::agent::AgentReady::parse(&line)
        .unwrap_or_else(|| panic!("not a ready line: {line:?}"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = drover::lb::agent::AgentClient::new(
        ready.control,
        ready.listen,
        "bench-secret".into(),
        &ready.cert_sha256,
    );
    let backends: Vec<drover::lb::proxy::Backend> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| drover::lb::proxy::Backend {
            member: format!("web-{}", i + 1),
            addr: format!("127.0.0.1:{p}").parse().unwrap(),
        })
        .collect();
    rt.block_on(client.set_backends(&backends)).unwrap();

    // HAProxy in front of the same members.
    let hap_port = free_port();
    let cfg = dir.path().join("haproxy.cfg");
    let mut f = std::fs::File::create(&cfg).unwrap();
    writeln!(
        f,
        "global\n  maxconn 4000\n\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n  http-reuse always\n\nfrontend fe\n  bind 127.0.0.1:{hap_port}\n  default_backend be\n\nbackend be\n  balance roundrobin\n  server m1 127.0.0.1:{} \n  server m2 127.0.0.1:{}",
        ports[0], ports[1]
    )
    .unwrap();
    drop(f);
    let hap = Proc(
        Command::new("/usr/sbin/haproxy")
            .args(["-db", "-f", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy runs"),
    );
    wait_listening(hap_port);

    // Warm up every path, then measure each in turn.
    for p in [ports[0], lb_port, hap_port] {
        let _ = Command::new("wrk")
            .args(["-t1", "-c4", "-d1s", &format!("http://127.0.0.1:{p}/")])
            .output();
    }
    let direct = wrk(ports[0]);
    let (cpu0, _) = usage(agent_pid);
    let lb = wrk(lb_port);
    let (cpu1, rss) = usage(agent_pid);
    let haproxy = wrk(hap_port);
    drop(hap);
    let st = rt.block_on(client.stats()).unwrap();

    let cpu_per_10k = (cpu1 - cpu0) / SECONDS as f64 / (lb.rps / 10_000.0);
    println!("lb bench: wrk -t2 -c{CONNECTIONS} -d{SECONDS}s keep-alive, 2 members (workload processes on loopback)");
    println!("| path | requests/s | p99 | non-2xx |");
    println!("| --- | --- | --- | --- |");
    for (name, r) in [
        ("direct to one member", &direct),
        ("drover lb-agent (http mode)", &lb),
        ("haproxy (mode http)", &haproxy),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {} |",
            r.rps,
            r.p99 * 1e3,
            r.non_ok
        );
    }
    println!(
        "drover/haproxy requests/s ratio {:.2}, p99 ratio {:.2}; drover/direct requests/s {:.2}",
        lb.rps / haproxy.rps,
        lb.p99 / haproxy.p99,
        lb.rps / direct.rps
    );
    println!(
        "drover lb-agent: RSS {:.1} MiB after the run, CPU {:.2} cores per 10k requests/s; its counters: {} requests, {} errors",
        rss as f64 / (1024.0 * 1024.0),
        cpu_per_10k,
        st.requests_total,
        st.errors_total
    );
}
