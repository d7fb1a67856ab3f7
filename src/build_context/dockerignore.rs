//! `.dockerignore`, as Docker reads it, matched with a real glob library
//! (`globset`): one pattern a line, `#` comments, `*` and `?` within a
//! path segment, `**` across segments, `[...]` classes (`[a-c]`, `[!x]`),
//! `\` escapes, a leading `/` or `./` and a trailing `/` ignored, `!`
//! re-includes. A directory that matches excludes everything under it.
//! The last matching line wins, as in Docker. A pattern that does not
//! parse (an unclosed `[`) is an error: guessing would send files the
//! user meant to keep out, like secrets.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// The rules of one `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<(bool, GlobMatcher)>,
}

/// A line of `.dockerignore` that is not a pattern.
#[derive(Debug, thiserror::Error)]
#[error(".dockerignore line {line}: `{pattern}` is not a valid pattern ({source}); fix or escape it with `\\`")]
pub struct IgnoreError {
    pub line: usize,
    pub pattern: String,
    #[source]
    pub source: globset::Error,
}

impl IgnoreRules {
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (negate, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let mut pat = pat.trim_end_matches('/');
            loop {
                let next = pat.trim_start_matches("./").trim_start_matches('/');
                if next == pat {
                    break;
                }
                pat = next;
            }
            let pat: Vec<&str> = pat
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .collect();
            if pat.is_empty() {
                continue;
            }
            let pattern = pat.join("/");
            let glob: Glob = GlobBuilder::new(&pattern)
                // `*` stays within a segment, as Go's filepath.Match.
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| IgnoreError {
                    line: i + 1,
                    pattern: raw.trim().to_string(),
                    source,
                })?;
            rules.push((negate, glob.compile_matcher()));
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether `rel` (a `/`-separated path inside the context) is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let segs: Vec<&str> = rel.split('/').collect();
        let mut out = false;
        for (negate, m) in &self.rules {
            // The path itself, or one of its parent directories, matches.
            let hit = (1..=segs.len()).any(|n| m.is_match(segs[..n].join("/")));
            if hit {
                out = !negate;
            }
        }
        out
    }

    /// Whether some rule re-includes (`!`): then an excluded directory is
    /// still walked, for the files a later line takes back.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(t: &str) -> IgnoreRules {
        IgnoreRules::parse(t).unwrap()
    }

    #[test]
    fn classes_escapes_double_stars_and_exceptions() {
        let r = rules(
            "secret[0-9].txt\n[!a]*.key\n\\*literal\n**/*.pem\n!keep/**/ok.pem\nkeys/\\[x\\]\n",
        );
        assert!(r.excluded("secret3.txt"));
        assert!(!r.excluded("secretA.txt"));
        assert!(r.excluded("b.key"));
        assert!(!r.excluded("a.key"));
        assert!(r.excluded("*literal"));
        assert!(!r.excluded("xliteral"));
        assert!(r.excluded("deep/er/c.pem"));
        assert!(r.excluded("c.pem"));
        assert!(!r.excluded("keep/a/b/ok.pem"));
        assert!(r.excluded("keep/a/b/other.pem"));
        assert!(r.excluded("keys/[x]"));
        assert!(!r.excluded("keys/x"));
    }

    #[test]
    fn the_old_rules_still_hold() {
        let r = rules("# c\n*.log\n/target/\nsecret?\n**/tmp\ndocs\n!docs/keep.md\n");
        assert!(r.excluded("a.log"));
        assert!(!r.excluded("dir/a.log"), "`*.log` is for the top level");
        assert!(r.excluded("target/debug/x"));
        assert!(r.excluded("secret1"));
        assert!(!r.excluded("secret12"));
        assert!(r.excluded("a/b/tmp"));
        assert!(r.excluded("tmp/x"));
        assert!(r.excluded("docs/a.md"));
        assert!(!r.excluded("docs/keep.md"));
        assert!(!r.excluded("src/main.rs"));
    }

    #[test]
    fn packing_leaves_out_what_classes_and_escapes_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("Dockerfile"), "FROM scratch\n").unwrap();
        for f in ["app.rs", "secret1.env", "secret2.env", "notes[1].md"] {
            std::fs::write(p.join(f), "x").unwrap();
        }
        std::fs::create_dir_all(p.join("conf/keys")).unwrap();
        std::fs::write(p.join("conf/keys/id.pem"), "k").unwrap();
        std::fs::write(p.join("conf/keys/public.pem"), "k").unwrap();
        std::fs::write(
            p.join(".dockerignore"),
            "secret[0-9].env\nnotes\\[1\\].md\nconf\n!conf/**/public.pem\n",
        )
        .unwrap();
        let packed = super::super::pack_context(p, "Dockerfile", u64::MAX).unwrap();
        let mut names: Vec<String> = tar::Archive::new(&packed.tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app.rs",
                "conf/keys/public.pem"
            ]
        );
    }

    #[test]
    fn an_unclosed_class_is_an_error_with_its_line() {
        let e = IgnoreRules::parse("ok\nsecret[\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(
            e.to_string().starts_with(".dockerignore line 2: `secret[`"),
            "{e}"
        );
    }
}
