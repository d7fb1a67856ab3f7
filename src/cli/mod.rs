//! The client commands. They reach the service over REST only
//! (`DROVER_URL`, default `http://127.0.0.1:7780`).

pub mod chaos;
pub mod import;

use std::time::{Duration, Instant};

use serde_json::Value;

/// Output format of commands that print data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach drover at {url}: {message}; is `drover serve` running? (set DROVER_URL to point elsewhere)")]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    Api(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
}

/// An answer: status and parsed JSON body (`Null` if empty).
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Effectors such as a large resize answer when done.
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, CliError> {
        let mut resp = r.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| CliError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body })
    }

    pub fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.agent.get(&self.url(path)).call())
    }

    pub fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.finish(self.agent.delete(&self.url(path)).call())
    }

    pub fn post(&self, path: &str, content_type: &str, body: &str) -> Result<Answer, CliError> {
        self.finish(
            self.agent
                .post(&self.url(path))
                .header("content-type", content_type)
                .send(body),
        )
    }

    pub fn agent_put(&self, path: &str, body: &str) -> Result<Answer, CliError> {
        self.finish(
            self.agent
                .put(&self.url(path))
                .header("content-type", "application/yaml")
                .send(body),
        )
    }

    /// GET that must succeed.
    pub fn get_ok(&self, path: &str) -> Result<Value, CliError> {
        let a = self.get(path)?;
        ok(a)
    }
}

fn ok(a: Answer) -> Result<Value, CliError> {
    if (200..300).contains(&a.status) {
        Ok(a.body)
    } else {
        Err(CliError::Api(error_text(&a.body)))
    }
}

/// The error message of an error answer, with every blueprint error on its own line.
pub fn error_text(body: &Value) -> String {
    if let Some(errs) = body
        .get("errors")
        .and_then(|e| e.as_array())
        .filter(|e| !e.is_empty())
    {
        return errs
            .iter()
            .map(format_blueprint_error)
            .collect::<Vec<_>>()
            .join("\n");
    }
    body.get("error")
        .and_then(|e| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

fn format_blueprint_error(e: &Value) -> String {
    match serde_json::from_value::<crate::blueprint::BlueprintError>(e.clone()) {
        Ok(be) => be.to_string(),
        Err(_) => e.to_string(),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `drover deploy FILE [--wait]`.
pub fn deploy(
    c: &Client,
    file: &str,
    wait: bool,
    timeout: Duration,
    out: Output,
) -> Result<(), CliError> {
    // A compose file is translated; relative build contexts made absolute;
    // errors name the user's file, not `<request>`.
    let prepared = import::prepare(file, None)?;
    if out == Output::Text {
        import::warn_untranslated(&prepared.untranslated);
    }
    let a = c.post("/v1/applications", "application/yaml", &prepared.text)?;
    let body = ok(a)?;
    let id = body
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    if !wait {
        match out {
            Output::Json => print_json(&body),
            Output::Text => println!("deployed application `{id}`"),
        }
        return Ok(());
    }
    if out == Output::Text {
        println!("deploying application `{id}`");
    }
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        let app = c.get_ok(&format!("/v1/applications/{id}"))?;
        let entities = app
            .get("entities")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        let state_of = |e: &Value| {
            e.get("state")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string()
        };
        let running = entities.iter().filter(|e| state_of(e) == "running").count();
        let failed: Vec<String> = entities
            .iter()
            .filter(|e| state_of(e) == "on-fire")
            .map(|e| {
                let id = e.get("id").and_then(|v| v.as_str()).unwrap_or("?");
                let why = e
                    .pointer("/sensors/entity.error/value")
                    .and_then(|v| v.as_str())
                    .unwrap_or("failed");
                format!("{id}: {why}")
            })
            .collect();
        let line = format!("{running}/{} entities running", entities.len());
        if line != last && out == Output::Text {
            println!("  {line} ({:.1}s)", t0.elapsed().as_secs_f64());
            last = line;
        }
        let root = app.get("state").and_then(|s| s.as_str()).unwrap_or("");
        if !failed.is_empty() && entities.iter().all(|e| state_of(e) != "starting") {
            return Err(CliError::Failed(format!(
                "application `{id}` failed:\n  {}",
                failed.join("\n  ")
            )));
        }
        if root == "running" && running == entities.len() {
            match out {
                Output::Json => print_json(
                    &serde_json::json!({ "id": id, "state": "running", "seconds": t0.elapsed().as_secs_f64() }),
                ),
                Output::Text => println!(
                    "application `{id}` is running ({:.1}s)",
                    t0.elapsed().as_secs_f64()
                ),
            }
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(CliError::Failed(format!(
                "application `{id}` not running after {}",
                humantime::format_duration(timeout)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `drover ls`.
pub fn ls(c: &Client, out: Output) -> Result<(), CliError> {
    let apps = c.get_ok("/v1/applications")?;
    if out == Output::Json {
        print_json(&apps);
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:<10} {:>8}",
        "APPLICATION", "LOCATION", "STATE", "ENTITIES"
    );
    for a in apps.as_array().into_iter().flatten() {
        let s = |k: &str| {
            a.get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        println!(
            "{:<24} {:<10} {:<10} {:>8}",
            s("id"),
            s("location"),
            s("state"),
            s("entities")
        );
    }
    Ok(())
}

/// Sensors shown by `drover status` in text form.
const KEY_SENSORS: &[&str] = &[
    "service.up",
    "group.size",
    "group.desired_size",
    "host.address",
    "entity.error",
];

/// `drover status APP`.
pub fn status(c: &Client, app: &str, out: Output) -> Result<(), CliError> {
    let detail = c.get_ok(&format!("/v1/applications/{app}"))?;
    if out == Output::Json {
        print_json(&detail);
        return Ok(());
    }
    let entities = detail
        .get("entities")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    let latest = detail
        .get("latest_activities")
        .cloned()
        .unwrap_or(Value::Null);
    let now = crate::protocol::now_ms();
    println!(
        "{:<28} {:<12} {:<10} {:<40} SENSORS",
        "ENTITY", "TYPE", "STATE", "LAST ACTIVITY"
    );
    for e in &entities {
        let get = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let depth = match get("type").as_str() {
            "application" => 0,
            _ if e.get("parent").and_then(|p| p.as_str()) == Some(app) => 1,
            _ => 2,
        };
        let sensors = e
            .get("sensors")
            .and_then(|s| s.as_object())
            .cloned()
            .unwrap_or_default();
        let mut shown: Vec<String> = Vec::new();
        for (name, v) in &sensors {
            let value = v.get("value").cloned().unwrap_or(Value::Null);
            let keep = KEY_SENSORS.contains(&name.as_str()) || name.starts_with("host.port.");
            if keep {
                shown.push(format!(
                    "{name}={}",
                    value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string())
                ));
            }
        }
        if let Some(id) = sensors
            .get("container.id")
            .and_then(|v| v.get("value"))
            .and_then(|v| v.as_str())
        {
            shown.insert(0, format!("container={}", &id[..id.len().min(12)]));
        }
        let name = format!("{}{}", "  ".repeat(depth), get("id"));
        let activity = latest_activity_text(latest.get(get("id")), now);
        println!(
            "{:<28} {:<12} {:<10} {:<40} {}",
            name,
            get("type"),
            get("state"),
            activity,
            shown.join(" ")
        );
    }
    Ok(())
}

/// `restarter.restart scheduled 3s ago`: an entity's latest activity, for
/// `drover status` (`-` when it has none).
fn latest_activity_text(a: Option<&Value>, now_ms: u64) -> String {
    let Some(a) = a.filter(|a| a.is_object()) else {
        return "-".into();
    };
    let s = |k: &str| a.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let ago = now_ms.saturating_sub(a.get("time_ms").and_then(|t| t.as_u64()).unwrap_or(now_ms));
    let ago = humantime::format_duration(Duration::from_secs(ago / 1000)).to_string();
    format!("{} {} {ago} ago", s("name"), s("outcome"))
}

/// Parses `k=v` effector arguments; values are JSON where they parse as
/// JSON (`size=5` is a number), strings otherwise.
pub fn parse_kv(args: &[String]) -> Result<Value, CliError> {
    let mut map = serde_json::Map::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(CliError::Invalid(format!(
                "effector argument `{a}` must be written name=value, such as size=5"
            )));
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(Value::Object(map))
}

/// `drover invoke APP ENTITY EFFECTOR [k=v ...]`.
pub fn invoke(
    c: &Client,
    app: &str,
    entity: &str,
    effector: &str,
    args: &[String],
    out: Output,
) -> Result<(), CliError> {
    let body = parse_kv(args)?;
    let a = c.post(
        &format!("/v1/applications/{app}/entities/{entity}/effectors/{effector}"),
        "application/json",
        &body.to_string(),
    )?;
    let v = ok(a)?;
    match out {
        Output::Json => print_json(&v),
        Output::Text => println!(
            "{effector} on {app}/{entity}: {}",
            v.get("result").cloned().unwrap_or(Value::Null)
        ),
    }
    Ok(())
}

/// `drover destroy APP`.
pub fn destroy(c: &Client, app: &str, out: Output) -> Result<(), CliError> {
    let a = c.delete(&format!("/v1/applications/{app}"))?;
    ok(a)?;
    match out {
        Output::Json => print_json(&serde_json::json!({ "id": app, "destroyed": true })),
        Output::Text => println!("destroyed application `{app}`"),
    }
    Ok(())
}

/// `drover validate FILE`: local, no service needed. The server's own
/// validation, with the built-in presets plus `--policies DIR`.
pub fn validate(
    file: &str,
    policies: Option<&std::path::Path>,
    out: Output,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.to_string(),
        source,
    })?;
    let mut presets = crate::policy::Presets::builtin();
    if let Some(dir) = policies {
        presets = presets.with_dir(dir).map_err(|errs| {
            CliError::Invalid(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    }
    let cx = crate::policy::validate::ValidationContext::offline(&presets);
    match crate::policy::validate::validate_blueprint(file, &text, &cx) {
        Ok(bp) => {
            match out {
                Output::Json => print_json(
                    &serde_json::json!({ "valid": true, "name": bp.name, "services": bp.services.len() }),
                ),
                Output::Text => println!("{file}: valid ({} services)", bp.services.len()),
            }
            Ok(())
        }
        Err(errs) => {
            if out == Output::Json {
                print_json(&serde_json::json!({ "valid": false, "errors": errs.0 }));
            }
            Err(CliError::Invalid(errs.to_string()))
        }
    }
}

/// `drover hosts`.
pub fn hosts(c: &Client, out: Output) -> Result<(), CliError> {
    let v = c.get_ok("/v1/hosts")?;
    if out == Output::Json {
        print_json(&v);
        return Ok(());
    }
    println!("{:<16} {:<16} {:>10}", "HOST", "ADDRESS", "CONTAINERS");
    for h in v.as_array().into_iter().flatten() {
        let s = |k: &str| {
            h.get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        println!(
            "{:<16} {:<16} {:>10}",
            s("name"),
            s("address"),
            s("containers")
        );
    }
    Ok(())
}

/// `drover locations`.
pub fn locations(c: &Client, out: Output) -> Result<(), CliError> {
    let v = c.get_ok("/v1/locations")?;
    if out == Output::Json {
        print_json(&v);
        return Ok(());
    }
    let locs = v.as_array().cloned().unwrap_or_default();
    if locs.is_empty() {
        println!(
            "no host pools: only `local` (add locations in drover.yaml, `drover serve --config`)"
        );
    }
    for l in locs {
        let hr = &l["headroom"];
        println!(
            "LOCATION {}: {} hosts, {} of {} slots used, {} free (headroom wants {}): {}{}",
            l["location"].as_str().unwrap_or("?"),
            hr["hosts"],
            hr["used"],
            hr["possible"],
            hr["free"],
            hr["wanted"],
            hr["verdict"].as_str().unwrap_or("?"),
            if l["provisioning"] == true {
                ", provisioning a host"
            } else {
                ""
            }
        );
        println!(
            "  {:<14} {:<15} {:<11} {:>10} {:>6} {:>13}",
            "HOST", "STATE", "PROVISIONED", "CONTAINERS", "CPU%", "RESERVED-CPUS"
        );
        for h in l["hosts"].as_array().into_iter().flatten() {
            let s = &h["sensors"];
            println!(
                "  {:<14} {:<15} {:<11} {:>10} {:>6.0} {:>13.2}",
                h["name"].as_str().unwrap_or("?"),
                h["state"].as_str().unwrap_or("?"),
                if h["provisioned"] == true {
                    "yes"
                } else {
                    "no"
                },
                s["host.containers"].as_u64().unwrap_or(0),
                s["host.cpu.usage"].as_f64().unwrap_or(0.0) * 100.0,
                s["host.reserved.cpus"].as_f64().unwrap_or(0.0)
            );
        }
        let last = |key: &str, title: &str| {
            let items: Vec<&str> = l[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            if !items.is_empty() {
                println!("  {title}:");
                for e in items.iter().rev().take(5).rev() {
                    println!("    {e}");
                }
            }
        };
        last("events", "events");
        last("decisions", "decisions");
        let moves = &l["placement"]["recent_moves"];
        if moves.as_array().is_some_and(|m| !m.is_empty()) {
            println!("  CPU moves:");
            for m in moves.as_array().into_iter().flatten() {
                println!("    {}", m.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// `drover drain|uncordon LOCATION HOST`.
pub fn host_op(
    c: &Client,
    location: &str,
    host: &str,
    op: &str,
    out: Output,
) -> Result<(), CliError> {
    let v = ok(c.post(
        &format!(
            "/v1/locations/{}/hosts/{}/{op}",
            query_value(location),
            query_value(host)
        ),
        "application/json",
        "",
    )?)?;
    if out == Output::Json {
        print_json(&v);
    } else {
        println!(
            "{location}/{host}: {} ({} containers there)",
            v["state"].as_str().unwrap_or("?"),
            v["containers"]
        );
    }
    Ok(())
}

/// What `drover activities` filters on (the REST filters).
#[derive(Debug, Default)]
pub struct ActivityFilter<'a> {
    pub app: Option<&'a str>,
    pub entity: Option<&'a str>,
    pub kind: Option<&'a str>,
}

/// Percent-encodes a query value (application ids are plain, but
/// `@location` and user input need it).
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `drover activities`.
pub fn activities(
    c: &Client,
    filter: &ActivityFilter,
    limit: usize,
    out: Output,
) -> Result<(), CliError> {
    let mut q = format!("/v1/activities?limit={limit}");
    for (key, value) in [
        ("application", filter.app),
        ("entity", filter.entity),
        ("kind", filter.kind),
    ] {
        if let Some(v) = value {
            q.push_str(&format!("&{key}={}", query_value(v)));
        }
    }
    let v = c.get_ok(&q)?;
    if out == Output::Json {
        print_json(&v);
        return Ok(());
    }
    for a in v.as_array().into_iter().flatten() {
        let s = |k: &str| {
            a.get(k)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        let msg = a
            .get("message")
            .and_then(|m| m.as_str())
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        println!(
            "#{} {}/{} {} {} {} {:.3}s{msg}",
            s("id"),
            s("application"),
            s("entity"),
            s("kind"),
            s("name"),
            s("outcome"),
            a.get("duration_seconds")
                .and_then(|d| d.as_f64())
                .unwrap_or(0.0)
        );
    }
    Ok(())
}

/// `drover policy get|set|start|stop|ls APP ENTITY [POLICY]`.
pub fn policy(
    c: &Client,
    action: &str,
    app: &str,
    entity: &str,
    policy: Option<&str>,
    config: &[String],
    out: Output,
) -> Result<(), CliError> {
    let base = format!("/v1/applications/{app}/entities/{entity}/policies");
    let need = || {
        policy.ok_or_else(|| CliError::Invalid(format!("`drover policy {action}` needs a policy name; `drover policy ls {app} {entity}` lists them")))
    };
    let answer = match action {
        "ls" => c.get(&base)?,
        "get" => c.get(&format!("{base}/{}", need()?))?,
        "start" | "stop" => c.post(
            &format!("{base}/{}/{action}", need()?),
            "application/json",
            "",
        )?,
        "set" => {
            // Either a file (YAML/JSON of the config keys) or k=v pairs.
            let body = match config {
                [one] if !one.contains('=') => {
                    std::fs::read_to_string(one).map_err(|source| CliError::Read {
                        path: one.clone(),
                        source,
                    })?
                }
                pairs => parse_kv(pairs)?.to_string(),
            };
            let name = need()?;
            // k=v sets keys over the current config (a PUT is a full config).
            let body = if config.iter().all(|a| a.contains('=')) {
                let current = c.get_ok(&format!("{base}/{name}"))?;
                let mut cfg = current.get("config").cloned().unwrap_or_default();
                if let (Some(obj), Ok(serde_json::Value::Object(new))) = (
                    cfg.as_object_mut(),
                    serde_json::from_str::<serde_json::Value>(&body),
                ) {
                    obj.extend(new);
                }
                cfg.to_string()
            } else {
                body
            };
            let mut r = c.agent_put(&format!("{base}/{name}"), &body)?;
            if r.status == 400 {
                r.body = serde_json::json!({ "error": error_text(&r.body) });
            }
            r
        }
        other => {
            return Err(CliError::Invalid(format!(
                "unknown policy action `{other}`: use ls, get, set, start or stop"
            )))
        }
    };
    let v = ok(answer)?;
    match out {
        Output::Json => print_json(&v),
        Output::Text => println!("{}", serde_yaml::to_string(&v).unwrap_or_default()),
    }
    Ok(())
}
