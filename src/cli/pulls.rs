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
    let mut by: BTreeMap<(String, String), String> = BTreeMap::new();
    for e in &app.entities {
        let Some(p) = e.sensor(IMAGE_PULL) else {
            continue;
        };
        if p["state"] != "pulling" {
            continue;
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
        by.insert((host, image), line);
    }
    by.into_values().collect()
}
