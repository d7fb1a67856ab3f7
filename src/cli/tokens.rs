//! `drover token create|ls|revoke`, and which token the commands send.

use std::path::Path;

use super::client::query_value;
use super::output::{print_json, text};
use super::{CliError, Client, Output};
use crate::outln;
use crate::wire::{Role, TokenCreated, TokenInfo, TokenRequest};

/// The token the commands send: `--token`/`DROVER_TOKEN`, else the admin
/// token `drover serve` wrote beside the default store (on this machine),
/// else none (the service answers 401 saying what to do).
pub fn resolve(explicit: Option<String>, admin_file: &Path) -> Option<String> {
    explicit
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| {
            std::fs::read_to_string(admin_file)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
}

/// `drover token create --role R --name N`: prints the token, once.
pub fn create(c: &Client, name: &str, role: Role, out: Output) -> Result<(), CliError> {
    let body = serde_json::to_string(&TokenRequest {
        name: name.to_string(),
        role,
    })
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    let created: TokenCreated = c.post("/v1/tokens", "application/json", &body)?.decode()?;
    match out {
        Output::Json => print_json(&created),
        Output::Text => {
            eprintln!(
                "token `{}` ({}) made; it is shown only now, keep it (DROVER_TOKEN or --token):",
                created.name, created.role
            );
            outln!("{}", created.token);
        }
    }
    Ok(())
}

/// `drover token ls`: names, roles, creation and last use; never a token.
pub fn ls(c: &Client, out: Output) -> Result<(), CliError> {
    let list: Vec<TokenInfo> = c.get_ok("/v1/tokens")?;
    match out {
        Output::Json => print_json(&list),
        Output::Text => text(&render(&list)),
    }
    Ok(())
}

/// `drover token revoke NAME`: refused from the next request on.
pub fn revoke(c: &Client, name: &str, out: Output) -> Result<(), CliError> {
    c.delete(&format!("/v1/tokens/{}", query_value(name)))?
        .decode::<()>()?;
    match out {
        Output::Json => print_json(&serde_json::json!({ "revoked": name })),
        Output::Text => outln!("token `{name}` revoked"),
    }
    Ok(())
}

fn render(list: &[TokenInfo]) -> String {
    let time = |ms: u64| super::tables::activity_time(ms);
    let mut s = format!(
        "{:<24} {:<9} {:<21} {}\n",
        "NAME", "ROLE", "CREATED", "LAST USED"
    );
    for t in list {
        s.push_str(&format!(
            "{:<24} {:<9} {:<21} {}\n",
            t.name,
            t.role.as_str(),
            time(t.created_ms),
            t.last_used_ms.map(time).unwrap_or_else(|| "never".into())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explicit_token_wins_else_the_admin_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.token");
        assert_eq!(resolve(None, &file), None);
        std::fs::write(&file, "drover_abc\n").unwrap();
        assert_eq!(resolve(None, &file).as_deref(), Some("drover_abc"));
        assert_eq!(resolve(Some("x".into()), &file).as_deref(), Some("x"));
        assert_eq!(
            resolve(Some(" ".into()), &file).as_deref(),
            Some("drover_abc")
        );
    }

    #[test]
    fn the_list_shows_no_token() {
        let t = render(&[TokenInfo {
            name: "ci".into(),
            role: Role::Operator,
            created_ms: 0,
            last_used_ms: None,
        }]);
        assert!(
            t.contains("ci") && t.contains("operator") && t.contains("never"),
            "{t}"
        );
    }
}
