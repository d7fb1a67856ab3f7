//! `drover rollout status|pause|resume|undo APP CLUSTER`.

use super::output::{print_json, text};
use super::{query_value, CliError, Client, Output};
use crate::wire::RolloutStatus;

/// Runs one rollout command and prints the rollout's status.
pub fn rollout(
    c: &Client,
    command: &str,
    app: &str,
    cluster: &str,
    out: Output,
) -> Result<(), CliError> {
    let base = format!(
        "/v1/applications/{}/entities/{}/rollout",
        query_value(app),
        query_value(cluster)
    );
    let st: RolloutStatus = match command {
        "status" => c.get_ok(&base)?,
        "pause" | "resume" | "undo" => c
            .post(&format!("{base}/{command}"), "application/json", "{}")?
            .decode()?,
        other => {
            return Err(CliError::Api(format!(
                "unknown rollout command `{other}`: use status, pause, resume or undo"
            )))
        }
    };
    match out {
        Output::Json => print_json(&st),
        Output::Text => text(&render(&st)),
    }
    Ok(())
}

/// The text form of a rollout's status.
pub fn render(st: &RolloutStatus) -> String {
    let mut s = format!(
        "state: {}\nrevision: {}{}\nprogress: {}/{} members updated, {} draining\n",
        st.state,
        st.revision,
        if st.rolling_back {
            " (rolling back)"
        } else {
            ""
        },
        st.updated,
        st.size,
        st.draining
    );
    if let Some(r) = &st.reason {
        s.push_str(&format!("reason: {r}\n"));
    }
    s.push_str("history:\n");
    for h in &st.history {
        s.push_str(&format!(
            "  {}{} {}\n",
            h.revision,
            if h.current { "*" } else { " " },
            h.image.as_deref().unwrap_or("-")
        ));
    }
    s
}
