//! drover's HTTP workload: a tiny, dependency-free HTTP/1.1 server that runs as
//! PID 1 in a `FROM scratch` image. It is compiled by `build.rs` as a static
//! binary and is deliberately std-only (no external crates).
//!
//! Endpoints:
//! - `GET /health`        → 200 `ok` (503 `unhealthy` when `HEALTH_FAIL=1`)
//! - `GET /`              → 200, the container id (hostname) and a newline
//! - `GET /work?cpu_ms=N` → burns N ms of CPU time (capped at 10000), 200 `worked N ms`
//! - `GET /crash`         → 200 `crashing`, then the process exits with code 1
//! - `PUT /files/NAME`    → stores the body as `$DATA_DIR/NAME` (default `/data`), 200 `stored N bytes`
//! - `GET /files/NAME`    → 200 with the stored body, 404 if there is none
//! - `GET /env/NAME`      → 200 with the environment variable's value, 404 if unset
//! - anything else        → 404
//!
//! NAME is one path segment: `/`, `..` and empty names are refused (400), so a
//! request can never reach outside the data directory.
//!
//! Environment: `PORT` (default 8080), `CRASH_AT_START=1` (exit 1 at once),
//! `HEALTH_FAIL=1` (failing health checks), `DATA_DIR` (default `/data`).
//!
//! `workload --check URL` is a health check command instead of a server (the
//! image has no other program to exec): GET `http://IP:PORT/PATH`, exit 0 on a
//! 2xx or 3xx answer, 1 otherwise.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for `/work?cpu_ms=N`.
const MAX_CPU_MS: u64 = 10_000;
/// Longest accepted request line or header line, in bytes.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body that is read (stored by `PUT /files/NAME`, else discarded).
const MAX_BODY: u64 = 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn _exit(status: i32) -> !;
    fn clock_gettime(clock_id: i32, tp: *mut Timespec) -> i32;
}

/// As PID 1 the default action of SIGTERM/SIGINT is "ignore", so `docker stop`
/// would wait for its timeout and then SIGKILL. Exit at once instead.
/// `_exit` is async-signal-safe; nothing else is done here.
extern "C" fn on_term(_signum: i32) {
    unsafe { _exit(0) }
}

struct Config {
    container_id: String,
    health_fail: bool,
    /// Where `PUT /files/NAME` stores bodies.
    data_dir: std::path::PathBuf,
}

fn main() {
    if let Some(code) = check_mode() {
        std::process::exit(code);
    }
    if env_flag("CRASH_AT_START") {
        eprintln!("workload: CRASH_AT_START=1, exiting with code 1");
        std::process::exit(1);
    }

    let handler = on_term as extern "C" fn(i32) as usize;
    unsafe {
        signal(SIGTERM, handler);
        signal(SIGINT, handler);
    }

    let port: u16 = match std::env::var("PORT") {
        Ok(s) if !s.trim().is_empty() => match s.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("workload: PORT={s:?} is not a valid port number (0-65535)");
                std::process::exit(2);
            }
        },
        _ => 8080,
    };

    let config = Arc::new(Config {
        container_id: container_id(),
        health_fail: env_flag("HEALTH_FAIL"),
        data_dir: match std::env::var("DATA_DIR") {
            Ok(d) if !d.trim().is_empty() => d.trim().into(),
            _ => "/data".into(),
        },
    });

    // Built from parts: no name resolution (getaddrinfo misbehaves in static glibc).
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("workload: cannot listen on {addr}: {e}");
            std::process::exit(2);
        }
    };

    println!("workload listening on {addr}");
    let _ = io::stdout().flush();

    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let config = Arc::clone(&config);
                let spawned = thread::Builder::new()
                    .name("conn".into())
                    .spawn(move || serve_connection(stream, &config));
                if let Err(e) = spawned {
                    eprintln!("workload: cannot spawn connection thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("workload: accept failed: {e}");
                // E.g. out of file descriptors: back off instead of spinning.
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref().map(str::trim),
        Ok("1" | "true" | "yes")
    )
}

/// Docker sets the hostname to the short container id.
fn container_id() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if !from_file.is_empty() {
        return from_file;
    }
    match std::env::var("HOSTNAME") {
        Ok(h) if !h.trim().is_empty() => h.trim().to_string(),
        _ => "unknown".to_string(),
    }
}

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    body: Vec<u8>,
}

enum ReadOutcome {
    Request(Request),
    /// The peer closed the connection (or went idle) between requests.
    Closed,
    /// Malformed or unsupported request: answer with this status, then close.
    Bad(u16, &'static str),
}

fn serve_connection(stream: TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);

    loop {
        let req = match read_request(&mut reader) {
            ReadOutcome::Request(r) => r,
            ReadOutcome::Closed => return,
            ReadOutcome::Bad(status, body) => {
                let _ = respond(&mut writer, status, body, false, false);
                return;
            }
        };

        let head_only = req.method == "HEAD";
        let (path, query) = split_target(&req.target);
        let is_get = req.method == "GET" || head_only;

        if let Some(name) = path.strip_prefix("/files/") {
            let (status, body) = files(config, &req.method, name, &req.body);
            let written = respond_bytes(&mut writer, status, &body, req.keep_alive, head_only, "GET, HEAD, PUT");
            if written.is_err() || !req.keep_alive {
                return;
            }
            continue;
        }
        let (status, body, crash) = match path {
            "/health" | "/" | "/work" | "/crash" if !is_get => {
                (405, "method not allowed\n".to_string(), false)
            }
            p if p.starts_with("/env/") && !is_get => (405, "method not allowed\n".to_string(), false),
            p if p.starts_with("/env/") => {
                let name = &p["/env/".len()..];
                match std::env::var_os(name) {
                    _ if !valid_name(name) => (400, "NAME must be one path segment, without `/` or `..`\n".to_string(), false),
                    Some(v) => (200, v.to_string_lossy().into_owned(), false),
                    None => (404, format!("{name} is not set\n"), false),
                }
            }
            "/health" if config.health_fail => (503, "unhealthy".to_string(), false),
            "/health" => (200, "ok".to_string(), false),
            "/" => (200, format!("{}\n", config.container_id), false),
            "/work" => match (
                query_param(query, "cpu_ms").map(str::parse::<u64>),
                query_param(query, "sleep_ms").map(str::parse::<u64>),
            ) {
                (Some(Ok(ms)), _) => {
                    let ms = ms.min(MAX_CPU_MS);
                    burn_cpu(Duration::from_millis(ms));
                    (200, format!("worked {ms} ms"), false)
                }
                // A slow answer that costs no CPU: a backend's latency that
                // dominates the hops in front of it.
                (None, Some(Ok(ms))) => {
                    let ms = ms.min(MAX_CPU_MS);
                    thread::sleep(Duration::from_millis(ms));
                    (200, format!("slept {ms} ms"), false)
                }
                (Some(Err(_)), _) | (None, Some(Err(_))) => {
                    (400, "cpu_ms and sleep_ms must be non-negative integers\n".into(), false)
                }
                (None, None) => (400, "missing query parameter cpu_ms or sleep_ms\n".into(), false),
            },
            "/crash" => (200, "crashing".to_string(), true),
            _ => (404, "not found\n".to_string(), false),
        };

        let keep_alive = req.keep_alive && !crash;
        let written = respond(&mut writer, status, &body, keep_alive, head_only);
        if crash {
            let _ = writer.shutdown(std::net::Shutdown::Write);
            eprintln!("workload: /crash requested, exiting with code 1");
            std::process::exit(1);
        }
        if written.is_err() || !keep_alive {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> ReadOutcome {
    // Request line; tolerate empty lines before it (RFC 9112 §2.2).
    let request_line = loop {
        match read_line(reader) {
            Ok(Some(line)) if line.is_empty() => continue,
            Ok(Some(line)) => break line,
            Ok(None) => return ReadOutcome::Closed,
            Err(LineError::TooLong) => return ReadOutcome::Bad(414, "request line too long\n"),
            Err(LineError::Io) => return ReadOutcome::Closed,
        }
    };

    let mut parts = request_line.split_ascii_whitespace();
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m.to_string(), t.to_string(), v.to_string()),
        _ => return ReadOutcome::Bad(400, "malformed request line\n"),
    };
    let mut keep_alive = match version.as_str() {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return ReadOutcome::Bad(505, "HTTP version not supported\n"),
    };

    let mut content_length: u64 = 0;
    let mut headers = 0usize;
    loop {
        let line = match read_line(reader) {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Io) => return ReadOutcome::Closed,
            Err(LineError::TooLong) => return ReadOutcome::Bad(431, "header line too long\n"),
        };
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return ReadOutcome::Bad(431, "too many headers\n");
        }
        let Some((name, value)) = line.split_once(':') else {
            return ReadOutcome::Bad(400, "malformed header\n");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == "HTTP/1.0" {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(n) if n <= MAX_BODY => content_length = n,
                Ok(_) => return ReadOutcome::Bad(413, "request body too large\n"),
                Err(_) => return ReadOutcome::Bad(400, "invalid Content-Length\n"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return ReadOutcome::Bad(501, "Transfer-Encoding is not supported\n");
        }
    }

    // Read the whole body (bounded by MAX_BODY), so the next request on this
    // connection parses cleanly; `PUT /files/NAME` stores it.
    let mut body = Vec::new();
    if content_length > 0 {
        let copied = reader.by_ref().take(content_length).read_to_end(&mut body);
        if !matches!(copied, Ok(n) if n as u64 == content_length) {
            return ReadOutcome::Closed;
        }
    }

    ReadOutcome::Request(Request { method, target, keep_alive, body })
}

enum LineError {
    TooLong,
    Io,
}

/// Reads one CRLF- (or LF-) terminated line without the terminator.
/// `Ok(None)` means EOF before any byte of the line.
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Option<String>, LineError> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|_| LineError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return if buf.len() > MAX_LINE { Err(LineError::TooLong) } else { Err(LineError::Io) };
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Splits a request target into path and query; accepts absolute-form targets.
fn split_target(target: &str) -> (&str, &str) {
    let mut t = target;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = t.strip_prefix(scheme) {
            t = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    match t.split_once('?') {
        Some((p, q)) => (p, q),
        None => (t, ""),
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// CPU time consumed by the calling thread, if the clock is available.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return None;
    }
    Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Spins until this thread has consumed `amount` of CPU time (so a throttled or
/// contended container takes longer in wall-clock time, like a real service).
/// Falls back to wall-clock time if the thread CPU clock is unavailable.
fn burn_cpu(amount: Duration) {
    if amount.is_zero() {
        return;
    }
    let mut acc: u64 = 0x9e37_79b9_7f4a_7c15;
    let spin = |acc: &mut u64| {
        for _ in 0..10_000 {
            *acc = std::hint::black_box(acc.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407));
        }
    };
    match thread_cpu_time() {
        Some(start) => loop {
            spin(&mut acc);
            match thread_cpu_time() {
                Some(now) if now.saturating_sub(start) < amount => {}
                _ => break,
            }
        },
        None => {
            let start = Instant::now();
            while start.elapsed() < amount {
                spin(&mut acc);
            }
        }
    }
    std::hint::black_box(acc);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A name under `/files/` or `/env/`: one non-empty path segment without
/// `/` or `..` (nor `.` alone), so it cannot leave the data directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && !name.contains("..") && !name.contains('/') && !name.contains('\\') && !name.contains('\0')
}

/// `PUT|GET|HEAD /files/NAME`: the status and body to answer.
fn files(config: &Config, method: &str, name: &str, body: &[u8]) -> (u16, Vec<u8>) {
    if !valid_name(name) {
        return (400, b"NAME must be one path segment, without `/` or `..`\n".to_vec());
    }
    let path = config.data_dir.join(name);
    match method {
        "PUT" => {
            let stored = std::fs::create_dir_all(&config.data_dir).and_then(|_| {
                // Written aside and renamed: a reader never sees half a file.
                let tmp = config.data_dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, body)?;
                std::fs::rename(&tmp, &path)
            });
            match stored {
                Ok(()) => (200, format!("stored {} bytes\n", body.len()).into_bytes()),
                Err(e) => (500, format!("cannot store {}: {e}\n", path.display()).into_bytes()),
            }
        }
        "GET" | "HEAD" => match std::fs::read(&path) {
            Ok(data) => (200, data),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (404, format!("no file {name}\n").into_bytes()),
            Err(e) => (500, format!("cannot read {}: {e}\n", path.display()).into_bytes()),
        },
        _ => (405, b"method not allowed\n".to_vec()),
    }
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    respond_bytes(w, status, body.as_bytes(), keep_alive, head_only, "GET, HEAD")
}

fn respond_bytes(
    w: &mut TcpStream,
    status: u16,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
    allow: &str,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    if status == 405 {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    w.write_all(&out)?;
    w.flush()
}

/// `--check URL`: the exit code of one health check, or `None` to serve.
fn check_mode() -> Option<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("--check") {
        return None;
    }
    let Some(url) = args.get(1) else {
        eprintln!("workload: --check needs a URL, such as http://127.0.0.1:8080/health");
        return Some(2);
    };
    match check_url(url) {
        Ok(status) if (200..400).contains(&status) => Some(0),
        Ok(status) => {
            eprintln!("workload: {url} answered {status}");
            Some(1)
        }
        Err(e) => {
            eprintln!("workload: {url}: {e}");
            Some(1)
        }
    }
}

/// GETs `http://IP[:PORT]/PATH` (`localhost` is 127.0.0.1: no name
/// resolution in a static binary) and answers the status code.
fn check_url(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are checked")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port `{p}`"))?),
        None => (authority, 80),
    };
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse().map_err(|_| format!("`{host}` is not an IPv4 address"))?
    };
    let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}
