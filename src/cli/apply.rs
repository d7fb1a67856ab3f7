//! `drover apply FILE [--dry-run]` and `drover diff FILE`: the plan from
//! `PUT /v1/applications/{app}`, printed one service a line.

use super::output::print_json;
use super::{import, query_value, CliError, Client, Output};
use crate::wire::{Plan, PlanAction};

/// Sends the blueprint to `PUT /v1/applications/{name}`; `dry_run` only
/// asks for the plan.
pub fn apply(c: &Client, file: &str, dry_run: bool, out: Output) -> Result<(), CliError> {
    let mut prepared = import::prepare(file, None)?;
    super::contexts::upload_contexts(c, &mut prepared)?;
    let plan: Plan = c
        .put(
            &format!(
                "/v1/applications/{}?file={}&dry_run={dry_run}",
                query_value(&prepared.name),
                query_value(&prepared.file)
            ),
            "application/yaml",
            &prepared.text,
        )?
        .decode()?;
    match out {
        Output::Json => print_json(&plan),
        Output::Text => {
            let verb = if dry_run { "would" } else { "will" };
            crate::outln!("{}", render(&plan, verb));
        }
    }
    Ok(())
}

/// The plan as text: a line per service (`+` added, `-` removed, `~` in
/// place, `^` rolled, `!` replaced, `=` kept), its changes indented.
pub fn render(plan: &Plan, verb: &str) -> String {
    let mut lines = Vec::new();
    if plan.create {
        lines.push(format!(
            "application `{}` does not exist: it {verb} be deployed",
            plan.app
        ));
    } else if plan.noop {
        lines.push(format!(
            "application `{}` runs this blueprint: nothing to do",
            plan.app
        ));
    } else {
        lines.push(format!("application `{}`:", plan.app));
    }
    for s in &plan.services {
        let mark = match s.action {
            PlanAction::Added => "+",
            PlanAction::Removed => "-",
            PlanAction::Kept => "=",
            PlanAction::InPlace => "~",
            PlanAction::Rolled => "^",
            PlanAction::Replaced => "!",
        };
        let why = s
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        lines.push(format!("  {mark} {} {}{why}", s.id, s.action.as_str()));
        for c in &s.changes {
            lines.push(format!(
                "      {}: {} → {}",
                c.path,
                short(&c.from),
                short(&c.to)
            ));
        }
    }
    for o in &plan.overrides_reset {
        lines.push(format!(
            "  policy override reset: {}/{} goes back to the blueprint's config",
            o.entity, o.policy
        ));
    }
    lines.join("\n")
}

fn short(v: &serde_json::Value) -> String {
    if v.is_null() {
        return "(none)".into();
    }
    let t = v.to_string();
    if t.chars().count() > 80 {
        format!("{}…", t.chars().take(79).collect::<String>())
    } else {
        t
    }
}
