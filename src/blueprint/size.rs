//! Memory sizes as users write them: `128Mi`, `1Gi`, `512M`, or bytes
//! (container `resources.memory`, a tmpfs volume's `size`).

use serde::{Deserialize, Serialize};

/// A memory size in bytes, written with a unit in YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "String")]
pub struct MemorySize(pub u64);

impl From<MemorySize> for String {
    fn from(m: MemorySize) -> String {
        m.0.to_string()
    }
}

/// A memory size that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("memory must be a positive whole number of bytes, got {0}")]
    NotWhole(String),
    #[error("memory must be a size such as `128Mi`, got {0}")]
    Shape(String),
    #[error("memory `{0}` must start with a number, such as `128Mi`")]
    NoNumber(String),
    #[error("memory unit `{0}` is unknown; use one of Ki, Mi, Gi, K, M, G")]
    UnknownUnit(String),
}

impl TryFrom<serde_yaml::Value> for MemorySize {
    type Error = MemoryError;
    fn try_from(v: serde_yaml::Value) -> Result<Self, MemoryError> {
        match v {
            serde_yaml::Value::Number(n) => n
                .as_u64()
                .map(MemorySize)
                .ok_or_else(|| MemoryError::NotWhole(n.to_string())),
            serde_yaml::Value::String(s) => parse_memory(&s).map(MemorySize),
            other => Err(MemoryError::Shape(format!("{other:?}"))),
        }
    }
}

/// Parses `128Mi`, `1Gi`, `512M`, `64k`, `1000`.
pub fn parse_memory(s: &str) -> Result<u64, MemoryError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| MemoryError::NoNumber(s.to_string()))?;
    let mult: u64 = match unit {
        "" | "b" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1000,
        "Ki" | "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "Mi" | "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "Gi" | "GiB" => 1 << 30,
        other => return Err(MemoryError::UnknownUnit(other.to_string())),
    };
    Ok((num * mult as f64).round() as u64)
}
