// TEMPORARY STUB (being replaced by the real parser)
pub mod model;
pub use model::*;
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlueprintError { pub file: String, pub line: Option<usize>, pub column: Option<usize>, pub path: String, pub error: String }
impl std::fmt::Display for BlueprintError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}:{:?}:{:?}: {}: {}", self.file, self.line, self.column, self.path, self.error) } }
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?}")]
pub struct BlueprintErrors(pub Vec<BlueprintError>);
pub fn parse_blueprint(file: &str, text: &str) -> Result<Blueprint, BlueprintErrors> {
    serde_yaml::from_str(text).map_err(|e| BlueprintErrors(vec![BlueprintError{file: file.into(), line: None, column: None, path: String::new(), error: e.to_string()}]))
}
