//! The id rule: application names, service ids and network names.

/// Pattern of the application name and of every service id.
pub const ID_PATTERN: &str = "^[a-z][a-z0-9-]{0,39}$";

/// Whether `s` matches [`ID_PATTERN`].
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= 40
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}
