//! Policy presets at run time: the preset directory is polled, and a valid
//! edit reconfigures every running policy built from the preset; an invalid
//! one is refused whole (the previous version stays in force). Which files
//! changed is decided by [`PresetStamps`], a pure record of what was seen.
//! Also `GET /v1/presets`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use actix::prelude::*;

use crate::metrics;
use crate::protocol::now_ms;
use crate::wire::{PresetList, PresetView};

use super::{Activity, Management, ManagementError};

/// How often preset files are checked for edits.
pub const PRESET_POLL: std::time::Duration = std::time::Duration::from_secs(1);

type PresetFile = (PathBuf, SystemTime, u64, String);

/// Preset files as last seen (modification time, length): a file is read
/// into the presets again only when its stamp changes.
#[derive(Debug, Default)]
pub struct PresetStamps(BTreeMap<PathBuf, (SystemTime, u64)>);

impl PresetStamps {
    /// True when `path` is new or its stamp differs from the last one seen
    /// (which it then becomes).
    pub fn changed(&mut self, path: &std::path::Path, mtime: SystemTime, len: u64) -> bool {
        if self.0.get(path) == Some(&(mtime, len)) {
            return false;
        }
        self.0.insert(path.to_path_buf(), (mtime, len));
        true
    }
}

/// Reads every preset file (on a blocking thread: it is disk I/O).
fn scan_presets(dir: &std::path::Path) -> Vec<PresetFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        out.push((
            path,
            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            meta.len(),
            text,
        ));
    }
    out
}

impl Management {
    pub(super) fn check_presets(&mut self, ctx: &mut Context<Self>) {
        let Some(dir) = self.presets.dir().map(|d| d.to_path_buf()) else {
            return;
        };
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || scan_presets(&dir))
                    .await
                    .unwrap_or_default()
            }
            .into_actor(self)
            .map(|files, act, _| act.apply_preset_files(files)),
        );
    }

    /// Applies edited preset files: a valid edit reconfigures every policy
    /// built from it; an invalid one is refused whole and the old version
    /// stays in force, with the error in the log, the API and a metric.
    fn apply_preset_files(&mut self, files: Vec<PresetFile>) {
        for (path, mtime, len, text) in files {
            if !self.preset_stamps.changed(&path, mtime, len) {
                continue;
            }
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            match crate::policy::Presets::parse(&path.display().to_string(), &text) {
                Ok(preset) => {
                    let was_invalid = self.preset_errors.remove(&name).is_some();
                    if self.presets.get(&name) == Some(&preset) {
                        continue;
                    }
                    self.presets.insert(name.clone(), preset);
                    tracing::info!(preset = %name, "preset reloaded");
                    let mut updates = Vec::new();
                    for (app, entity, policy, entry, config) in
                        self.policies.using_preset(&name, &self.presets)
                    {
                        match config {
                            Ok(c) => updates.push((app, entity, policy, entry.control.clone(), c)),
                            Err(e) => {
                                tracing::warn!(preset = %name, %app, %entity, error = ?e, "preset no longer fits a policy's overrides; old config kept")
                            }
                        }
                    }
                    for (app, entity, policy, control, config) in updates {
                        control.do_send(crate::policy::PolicyControl {
                            policy: policy.clone(),
                            op: crate::policy::PolicyOp::Set(config),
                        });
                        self.record(Activity::policy(
                            &app,
                            &entity,
                            "preset.reload",
                            serde_json::json!({ "preset": name, "policy": policy }),
                            "ok",
                            format!("preset `{name}` changed: policy `{policy}` reconfigured"),
                        ));
                    }
                    let _ = was_invalid;
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.preset_errors.get(&name) != Some(&message) {
                        tracing::warn!(preset = %name, error = %message, "invalid preset edit refused; the previous version stays in force");
                        self.record(Activity {
                            id: 0,
                            time_ms: now_ms(),
                            application: String::new(),
                            entity: String::new(),
                            kind: "event".into(),
                            name: "preset.invalid".into(),
                            args: serde_json::json!({ "preset": name, "line": e.line, "column": e.column, "path": e.path }),
                            outcome: "refused".into(),
                            message: Some(message.clone()),
                            duration_seconds: 0.0,
                        });
                        self.preset_errors.insert(name.clone(), message);
                    }
                }
            }
        }
        metrics::PRESET_ERRORS.set(self.preset_errors.len() as i64);
    }
}

/// Presets and their state, for `GET /v1/presets`.
#[derive(Message)]
#[rtype(result = "Result<PresetList, ManagementError>")]
pub struct ListPresets;

impl Handler<ListPresets> for Management {
    type Result = Result<PresetList, ManagementError>;
    fn handle(&mut self, _: ListPresets, _: &mut Context<Self>) -> Self::Result {
        let presets = self
            .presets
            .names()
            .into_iter()
            .map(|n| {
                let p = self.presets.get(&n);
                PresetView {
                    kind: p.map(|p| p.kind.clone()),
                    description: p.and_then(|p| p.description.clone()),
                    config: p.map(|p| serde_json::to_value(&p.config).unwrap_or_default()),
                    error: self.preset_errors.get(&n).cloned(),
                    name: n,
                }
            })
            .collect();
        Ok(PresetList {
            dir: self.presets.dir_display(),
            presets,
            errors: self.preset_errors.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn a_file_is_changed_when_first_seen_and_when_its_stamp_moves() {
        let mut s = PresetStamps::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let p = Path::new("policies/resilient.yaml");
        assert!(s.changed(p, t0, 100), "first sight");
        assert!(!s.changed(p, t0, 100), "same stamp");
        assert!(s.changed(p, t0, 101), "same time, new length");
        assert!(s.changed(p, t0 + Duration::from_secs(1), 101), "new time");
        assert!(
            s.changed(Path::new("policies/other.yaml"), t0, 100),
            "another file"
        );
    }
}
