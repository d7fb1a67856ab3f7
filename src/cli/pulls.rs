//! `drover deploy --wait`'s image pull lines: one per host and image being
//! pulled, from the members' `image.pull` sensors (members on one host
//! share one pull, so they are shown once).

use std::collections::BTreeMap;

use crate::wire::AppDetail;

/// The sensor the lines are read from (the container's `image.pull`).
const IMAGE_PULL: &str = "image.pull";

/// `pulling IMAGE on HOST: 2/5 layers, 3.1/10.2 MB`, one per pull in
/// progress, in host and image order.
pub fn pull_lines(app: &AppDetail) -> Vec<String> {
    let by: BTreeMap<(String, String), String> = app
        .entities
        .iter()
        .filter_map(|e| e.sensor(IMAGE_PULL).and_then(line_of))
        .collect();
    by.into_values().collect()
}

/// The line of one `image.pull` value, keyed by host and image; `None`
/// unless a pull is in progress.
fn line_of(p: &serde_json::Value) -> Option<((String, String), String)> {
    if p["state"] != "pulling" {
        return None;
    }
    let (host, image) = (
        p["host"].as_str().unwrap_or("?").to_string(),
        p["image"].as_str().unwrap_or("?").to_string(),
    );
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    let mb = |b: u64| b as f64 / 1e6;
    let mut line = format!(
        "pulling {image} on {host}: {}/{} layers, {:.1}/{:.1} MB",
        n("layers_done"),
        n("layers"),
        mb(n("bytes")),
        mb(n("total_bytes"))
    );
    if n("attempt") > 1 {
        line.push_str(&format!(" (attempt {})", n("attempt")));
    }
    Some(((host, image), line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pull_in_progress_shows_layers_and_bytes() {
        let p = json!({ "state": "pulling", "host": "a", "image": "r:5000/x:1", "layers_done": 1,
                        "layers": 3, "bytes": 2_500_000, "total_bytes": 10_000_000, "attempt": 2 });
        let ((host, image), line) = line_of(&p).unwrap();
        assert_eq!((host.as_str(), image.as_str()), ("a", "r:5000/x:1"));
        assert_eq!(
            line,
            "pulling r:5000/x:1 on a: 1/3 layers, 2.5/10.0 MB (attempt 2)"
        );
        assert_eq!(line_of(&json!({ "state": "pulled", "host": "a" })), None);
    }
}
