//! Policy presets: named, reviewed tunings in `policies/*.yaml`.
//!
//! A preset file holds one policy kind and its config:
//!
//! ```yaml
//! kind: restarter
//! description: restart at once, back off on crash loops
//! config:
//!   backoff_start: 100ms
//! ```
//!
//! The file name (without `.yaml`) is the preset's name.
//!
//! The presets of the repository's `policies/` are built into the binary
//! ([`Presets::builtin`]), so `drover serve` and `drover validate` know them
//! wherever they run; a preset directory (`--policies DIR`) adds presets or
//! overrides built-in ones by name, and its files are reloaded when edited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub config: serde_yaml::Mapping,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {path}: {message}")]
pub struct PresetError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

/// The shipped presets: `policies/*.yaml`, built in. A test checks that
/// every file of `policies/` is listed here.
const BUILTIN: &[(&str, &str)] = &[
    (
        "cpu-rebalance",
        include_str!("../../policies/cpu-rebalance.yaml"),
    ),
    (
        "replace-failed",
        include_str!("../../policies/replace-failed.yaml"),
    ),
    ("resilient", include_str!("../../policies/resilient.yaml")),
    (
        "web-autoscaler",
        include_str!("../../policies/web-autoscaler.yaml"),
    ),
];

#[derive(Debug, Clone, Default)]
pub struct Presets {
    dir: Option<PathBuf>,
    presets: BTreeMap<String, Preset>,
}

impl Presets {
    pub fn empty() -> Self {
        Presets::default()
    }

    /// The presets shipped with drover (`policies/*.yaml`, built in).
    pub fn builtin() -> Self {
        let mut presets = BTreeMap::new();
        for (name, text) in BUILTIN {
            // Every shipped preset parses (tested); a broken one is left out
            // rather than stopping the service.
            match Self::parse(&format!("policies/{name}.yaml (built in)"), text) {
                Ok(p) => {
                    presets.insert(name.to_string(), p);
                }
                Err(e) => tracing::error!(error = %e, "a built-in preset does not parse"),
            }
        }
        Presets { dir: None, presets }
    }

    /// These presets with every preset of `dir` added, a file overriding
    /// the preset of its name. `dir` is then the directory reloaded on edits.
    pub fn with_dir(mut self, dir: &Path) -> Result<Presets, Vec<PresetError>> {
        let loaded = Self::load(dir)?;
        self.presets.extend(loaded.presets);
        self.dir = loaded.dir;
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.presets.get(name)
    }

    pub fn insert(&mut self, name: String, preset: Preset) {
        self.presets.insert(name, preset);
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn names(&self) -> Vec<String> {
        self.presets.keys().cloned().collect()
    }

    pub fn dir_display(&self) -> String {
        match &self.dir {
            Some(d) => format!("{} (and the built-in presets)", d.display()),
            None => "the built-in presets".into(),
        }
    }

    /// Parses and checks one preset file's text.
    pub fn parse(file: &str, text: &str) -> Result<Preset, PresetError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let preset: Preset = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (line, column) = inner
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            PresetError {
                file: file.to_string(),
                line,
                column,
                path,
                message: strip_location(&inner.to_string()),
            }
        })?;
        // The config must be valid for its kind: a bad preset is refused
        // whole, never half-applied.
        super::parse_config(
            &preset.kind,
            serde_yaml::Value::Mapping(preset.config.clone()),
        )
        .map_err(|errs| {
            let e = &errs[0];
            let (line, column) = locate_key(text, e.path.split('.').next().unwrap_or(""));
            let path = if e.path.is_empty() || e.path == "type" {
                "kind".to_string()
            } else {
                format!("config.{}", e.path)
            };
            PresetError {
                file: file.to_string(),
                line,
                column,
                path,
                message: e.message.clone(),
            }
        })?;
        Ok(preset)
    }

    /// Loads every `*.yaml` of a directory. All files are checked; every
    /// error is returned.
    pub fn load(dir: &Path) -> Result<Presets, Vec<PresetError>> {
        let mut presets = BTreeMap::new();
        let mut errors = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                return Err(vec![PresetError {
                    file: dir.display().to_string(),
                    line: 0,
                    column: 0,
                    path: String::new(),
                    message: format!("cannot read the preset directory: {e}"),
                }])
            }
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for path in files {
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let file = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => match Self::parse(&file, &text) {
                    Ok(p) => {
                        presets.insert(name, p);
                    }
                    Err(e) => errors.push(e),
                },
                Err(e) => errors.push(PresetError {
                    file,
                    line: 0,
                    column: 0,
                    path: String::new(),
                    message: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Presets {
                dir: Some(dir.to_path_buf()),
                presets,
            })
        } else {
            Err(errors)
        }
    }
}

/// serde_yaml appends " at line L column C"; the position is reported apart.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Line and column (1-based) of `key:` under `config:`, or of `config:`.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    let mut in_config = false;
    let mut fallback = (1, 1);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if line.starts_with("config:") {
            in_config = true;
            fallback = (i + 1, 1);
            continue;
        }
        if in_config && !key.is_empty() && trimmed.starts_with(&format!("{key}:")) {
            return (i + 1, line.len() - trimmed.len() + 1);
        }
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_in_a_preset_is_reported_with_its_line() {
        let text = "kind: restarter\nconfig:\n  backoff_start: 100ms\n  bakcoff_cap: 5s\n";
        let e = Presets::parse("p.yaml", text).unwrap_err();
        assert_eq!((e.line, e.column), (4, 3), "{e}");
        assert!(e.message.contains("unknown field `bakcoff_cap`"), "{e}");
        assert_eq!(e.path, "config.bakcoff_cap");
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let e = Presets::parse("p.yaml", "kind: teleporter\n").unwrap_err();
        assert!(
            e.message.contains("unknown policy type `teleporter`"),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_has_its_position() {
        let e = Presets::parse("p.yaml", "kind: restarter\nconfig: [\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
    }

    #[test]
    fn every_shipped_preset_is_built_in_as_written() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let on_disk = Presets::load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        let builtin = Presets::builtin();
        assert_eq!(
            builtin.names(),
            on_disk.names(),
            "BUILTIN lists every file of policies/"
        );
        for n in on_disk.names() {
            assert_eq!(builtin.get(&n), on_disk.get(&n), "{n}");
        }
        assert_eq!(builtin.dir(), None);
    }

    #[test]
    fn a_directory_adds_presets_and_overrides_built_in_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("resilient.yaml"),
            "kind: restarter\ndescription: mine\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("extra.yaml"), "kind: replacer\n").unwrap();
        let p = Presets::builtin().with_dir(dir.path()).unwrap();
        assert_eq!(
            p.get("resilient").unwrap().description.as_deref(),
            Some("mine")
        );
        assert_eq!(p.get("extra").unwrap().kind, "replacer");
        assert!(p.get("web-autoscaler").is_some(), "built-in ones stay");
        assert_eq!(p.dir(), Some(dir.path()));
    }

    #[test]
    fn every_shipped_preset_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let presets = Presets::load(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            presets.get("resilient").is_some(),
            "policies/resilient.yaml ships"
        );
        match presets.get("cpu-rebalance").map(|p| p.kind.as_str()) {
            Some("cpu-placement") => {}
            other => panic!("policies/cpu-rebalance.yaml ships as cpu-placement: {other:?}"),
        }
    }
}
