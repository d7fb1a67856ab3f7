//! The client commands. They reach the service over REST only
//! (`DROVER_URL`, default `http://127.0.0.1:7780`), and read its answers as
//! the [`crate::wire`] types.

pub mod apply;
pub mod chaos;
mod client;
pub mod contexts;
pub mod import;
pub mod output;
mod pulls;
pub mod rollout;
pub mod status;
pub mod tables;
pub mod tokens;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::outln;
use crate::protocol::Lifecycle;
use crate::wire::{
    Activity, AppDetail, AppSummary, Created, EffectorResult, HostOpAnswer, HostView, PolicyStatus,
    PoolView,
};
pub use client::{error_text, query_value, Answer, Client};
use output::{print_json, text};

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
    #[error("the service's answer ({status}) is not what this drover expects: {message}; are the CLI and `drover serve` the same version?")]
    Decode { status: u16, message: String },
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

/// `drover deploy FILE [--name APP] [--wait]`.
pub fn deploy(
    c: &Client,
    file: &str,
    name: Option<&str>,
    wait: bool,
    timeout: Duration,
    out: Output,
) -> Result<(), CliError> {
    // A compose file is translated; relative build contexts made absolute.
    let prepared = import::prepare(file, name)?;
    if out == Output::Text {
        import::warn_untranslated(&prepared);
    }
    let created = send_blueprint(c, &prepared)?;
    let id = created.id.clone();
    if !wait {
        match out {
            Output::Json => print_json(&created),
            Output::Text => outln!("deployed application `{id}`"),
        }
        return Ok(());
    }
    if out == Output::Text {
        outln!("deploying application `{id}`");
    }
    let t0 = Instant::now();
    let mut last = String::new();
    let mut shown_pulls = std::collections::HashSet::new();
    loop {
        let app: AppDetail = c.get_ok(&format!("/v1/applications/{}", query_value(&id)))?;
        let progress = deploy_progress(&app);
        if progress.line != last && out == Output::Text {
            outln!("  {} ({:.1}s)", progress.line, t0.elapsed().as_secs_f64());
            last = progress.line.clone();
        }
        if out == Output::Text {
            for line in pulls::pull_lines(&app) {
                if shown_pulls.insert(line.clone()) {
                    outln!("  {line} ({:.1}s)", t0.elapsed().as_secs_f64());
                }
            }
        }
        if !progress.failed.is_empty() && !progress.starting {
            return Err(CliError::Failed(format!(
                "application `{id}` failed:\n  {}",
                progress.failed.join("\n  ")
            )));
        }
        if progress.done {
            match out {
                Output::Json => print_json(
                    &serde_json::json!({ "id": id, "state": "running", "seconds": t0.elapsed().as_secs_f64() }),
                ),
                Output::Text => outln!(
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

/// Sends a prepared blueprint, naming the user's file so the service's
/// errors point into it (`shop.yml:5:5`, not `<request>`).
pub(crate) fn send_blueprint(c: &Client, p: &import::Prepared) -> Result<Created, CliError> {
    let mut p = p.clone();
    contexts::upload_contexts(c, &mut p)?;
    c.post(
        &format!("/v1/applications?file={}", query_value(&p.file)),
        "application/yaml",
        &p.text,
    )?
    .decode()
}

/// Where a deployment is, for `drover deploy --wait`.
#[derive(Debug, PartialEq)]
struct Progress {
    line: String,
    /// `id: why` of each entity on fire.
    failed: Vec<String>,
    /// Some entity is still starting (a failure may yet be retried).
    starting: bool,
    /// The application and every entity run.
    done: bool,
}

fn deploy_progress(app: &AppDetail) -> Progress {
    let entities = &app.entities;
    let running = entities
        .iter()
        .filter(|e| e.state == Lifecycle::Running)
        .count();
    let failed = entities
        .iter()
        .filter(|e| e.state == Lifecycle::OnFire)
        .map(|e| {
            format!(
                "{}: {}",
                e.id,
                e.sensor_str("entity.error").unwrap_or("failed")
            )
        })
        .collect();
    Progress {
        line: format!("{running}/{} entities running", entities.len()),
        failed,
        starting: entities.iter().any(|e| e.state == Lifecycle::Starting),
        done: app.summary.state == Lifecycle::Running && running == entities.len(),
    }
}

/// `drover ls`.
pub fn ls(c: &Client, out: Output) -> Result<(), CliError> {
    let apps: Vec<AppSummary> = c.get_ok("/v1/applications")?;
    match out {
        Output::Json => print_json(&apps),
        Output::Text => text(&tables::render_apps(&apps)),
    }
    Ok(())
}

/// `drover status APP`.
pub fn status(c: &Client, app: &str, out: Output) -> Result<(), CliError> {
    let detail: AppDetail = c.get_ok(&format!("/v1/applications/{}", query_value(app)))?;
    match out {
        Output::Json => print_json(&detail),
        Output::Text => {
            // A drover of a cluster on etcd says who leads (`/healthz`).
            let health: Option<crate::wire::Health> = c.get_ok("/healthz").ok();
            if let Some(line) = health.as_ref().and_then(status::leader_line) {
                text(&line);
            }
            text(&status::render_status(&detail, crate::protocol::now_ms()))
        }
    }
    Ok(())
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
    let answer: EffectorResult = c
        .post(
            &format!(
                "/v1/applications/{}/entities/{}/effectors/{}",
                query_value(app),
                query_value(entity),
                query_value(effector)
            ),
            "application/json",
            &body.to_string(),
        )?
        .decode()?;
    match out {
        Output::Json => print_json(&answer),
        Output::Text => outln!("{effector} on {app}/{entity}: {}", answer.result),
    }
    Ok(())
}

/// `drover destroy APP [--volumes]`.
pub fn destroy(c: &Client, app: &str, volumes: bool, out: Output) -> Result<(), CliError> {
    let query = if volumes { "?volumes=true" } else { "" };
    let answer = c
        .delete(&format!("/v1/applications/{}{query}", query_value(app)))?
        .decode::<Option<crate::wire::DestroyAnswer>>()?
        .unwrap_or_else(|| crate::wire::DestroyAnswer {
            id: app.to_string(),
            destroyed: true,
            ..Default::default()
        });
    match out {
        Output::Json => print_json(&answer),
        Output::Text => outln!("{}", destroy_text(&answer)),
    }
    Ok(())
}

/// What `drover destroy` says: what went, and which volumes stay and how
/// to remove them.
pub fn destroy_text(a: &crate::wire::DestroyAnswer) -> String {
    let app = &a.id;
    let mut out = if a.destroyed {
        format!("destroyed application `{app}`")
    } else {
        format!("application `{app}` was gone already")
    };
    let list = |v: &[String]| {
        let noun = if v.len() == 1 { "volume" } else { "volumes" };
        format!("{} {noun}: {}", v.len(), v.join(", "))
    };
    if !a.volumes_removed.is_empty() {
        out.push_str(&format!("; removed {}", list(&a.volumes_removed)));
    }
    if !a.volumes_kept.is_empty() {
        out.push_str(&format!(
            "; kept {}; `drover destroy {app} --volumes` removes them",
            list(&a.volumes_kept)
        ));
    }
    out
}

/// `drover validate FILE`: local, no service needed. The server's own
/// validation, with the built-in presets plus `--policies DIR`.
pub fn validate(
    file: &str,
    policies: Option<&std::path::Path>,
    out: Output,
) -> Result<(), CliError> {
    let source = std::fs::read_to_string(file).map_err(|source| CliError::Read {
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
    match crate::policy::validate::validate_blueprint(file, &source, &cx) {
        Ok(bp) => {
            match out {
                Output::Json => print_json(
                    &serde_json::json!({ "valid": true, "name": bp.name, "services": bp.services.len() }),
                ),
                Output::Text => outln!("{file}: valid ({} services)", bp.services.len()),
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
    let hosts: Vec<HostView> = c.get_ok("/v1/hosts")?;
    match out {
        Output::Json => print_json(&hosts),
        Output::Text => text(&tables::render_hosts(&hosts)),
    }
    Ok(())
}

/// `drover locations`.
pub fn locations(c: &Client, out: Output) -> Result<(), CliError> {
    let pools: Vec<PoolView> = c.get_ok("/v1/locations")?;
    match out {
        Output::Json => print_json(&pools),
        Output::Text => text(&tables::render_locations(&pools)),
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
    let answer: HostOpAnswer = c
        .post(
            &format!(
                "/v1/locations/{}/hosts/{}/{op}",
                query_value(location),
                query_value(host)
            ),
            "application/json",
            "",
        )?
        .decode()?;
    match out {
        Output::Json => print_json(&answer),
        Output::Text => text(&tables::render_host_op(location, &answer)),
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
    let list: Vec<Activity> = c.get_ok(&q)?;
    match out {
        Output::Json => print_json(&list),
        Output::Text => text(&tables::render_activities(&list)),
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
    let base = format!(
        "/v1/applications/{}/entities/{}/policies",
        query_value(app),
        query_value(entity)
    );
    let need = || {
        policy
            .map(query_value)
            .ok_or_else(|| CliError::Invalid(format!("`drover policy {action}` needs a policy name; `drover policy ls {app} {entity}` lists them")))
    };
    let shown: Value = match action {
        "ls" => to_value(&c.get_ok::<Vec<PolicyStatus>>(&base)?),
        "get" => to_value(&c.get_ok::<PolicyStatus>(&format!("{base}/{}", need()?))?),
        "start" | "stop" => to_value(
            &c.post(
                &format!("{base}/{}/{action}", need()?),
                "application/json",
                "",
            )?
            .decode::<PolicyStatus>()?,
        ),
        "set" => {
            let name = need()?;
            // Either a file (YAML/JSON of the config keys) or k=v pairs.
            let body = match config {
                [one] if !one.contains('=') => {
                    std::fs::read_to_string(one).map_err(|source| CliError::Read {
                        path: one.clone(),
                        source,
                    })?
                }
                pairs => {
                    // k=v sets keys over the current config (a PUT is a full config).
                    let current: PolicyStatus = c.get_ok(&format!("{base}/{name}"))?;
                    overlay(current.config, parse_kv(pairs)?).to_string()
                }
            };
            to_value(
                &c.put(&format!("{base}/{name}"), "application/yaml", &body)?
                    .decode::<PolicyStatus>()?,
            )
        }
        other => {
            return Err(CliError::Invalid(format!(
                "unknown policy action `{other}`: use ls, get, set, start or stop"
            )))
        }
    };
    match out {
        Output::Json => print_json(&shown),
        Output::Text => outln!("{}", serde_yaml::to_string(&shown).unwrap_or_default()),
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// `new`'s keys laid over `current` (a config object).
fn overlay(mut current: Value, new: Value) -> Value {
    if let (Some(obj), Value::Object(new)) = (current.as_object_mut(), &new) {
        obj.extend(new.clone());
        return current;
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlay_sets_keys_over_the_current_config() {
        assert_eq!(
            overlay(json!({"upper": 80, "lower": 20}), json!({"upper": 50})),
            json!({"upper": 50, "lower": 20})
        );
        assert_eq!(overlay(Value::Null, json!({"a": 1})), json!({"a": 1}));
    }

    #[test]
    fn parse_kv_reads_json_values_else_strings() {
        let v = parse_kv(&["size=5".into(), "name=web".into()]).unwrap();
        assert_eq!(v, json!({"size": 5, "name": "web"}));
        assert!(parse_kv(&["oops".into()]).is_err());
    }
}
