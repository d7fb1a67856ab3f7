//! Measures the compose translation over a directory of compose files
//! people publish (a corpus kept OUTSIDE the repository: fetched example
//! collections are never committed).
//!
//! ```text
//! cargo run --example compose_corpus -- /tmp/compose-corpus [-v]
//! ```
//!
//! Every `compose*.yml` / `docker-compose*.yaml` under the directory goes
//! through what `drover deploy FILE` does on the CLI side
//! (`cli::import::prepare`: `.env`, interpolation, translation, and the
//! blueprint check). It prints the files refused outright (with the
//! error), the untranslated keys per file, and the untranslated keys
//! grouped by their last path segment, most frequent first. `-v` lists
//! every untranslated key with its reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn compose_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            compose_files(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
            let n = n.to_lowercase();
            if (n.starts_with("compose") || n.starts_with("docker-compose"))
                && (n.ends_with(".yml") || n.ends_with(".yaml"))
            {
                out.push(p);
            }
        }
    }
}

/// The key an untranslated path names, without list indexes:
/// `services.web.ports[1]` -> `ports`.
fn last_key(path: &str) -> String {
    let seg = path.rsplit('.').next().unwrap_or(path);
    seg.split('[').next().unwrap_or(seg).to_string()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .or_else(|| std::env::var("DROVER_COMPOSE_CORPUS").ok())
        .expect("usage: compose_corpus DIR [-v] (or DROVER_COMPOSE_CORPUS=DIR)");
    let verbose = args.any(|a| a == "-v");
    let mut files = Vec::new();
    compose_files(Path::new(&dir), &mut files);
    let mut refused = Vec::new();
    let mut keys = 0usize;
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut max = (0usize, String::new());
    for f in &files {
        let name = f.display().to_string();
        match drover::cli::import::prepare(&name, None) {
            Err(e) => refused.push((name, e.to_string())),
            Ok(p) => {
                keys += p.untranslated.len();
                if p.untranslated.len() > max.0 {
                    max = (p.untranslated.len(), name.clone());
                }
                for u in &p.untranslated {
                    *by_key.entry(last_key(&u.path)).or_default() += 1;
                    if verbose {
                        println!("{name}: {}: {}", u.path, u.reason);
                    }
                }
            }
        }
    }
    for (f, e) in &refused {
        let first = e.lines().next().unwrap_or("");
        println!("REFUSED {f}: {first}");
    }
    let mut freq: Vec<_> = by_key.into_iter().collect();
    freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("untranslated keys by name:");
    for (k, n) in &freq {
        println!("  {n:5} {k}");
    }
    println!(
        "files: {}  refused: {}  untranslated keys: {}  per file: {:.2}  most: {} ({})",
        files.len(),
        refused.len(),
        keys,
        keys as f64 / files.len().max(1) as f64,
        max.0,
        max.1
    );
}
