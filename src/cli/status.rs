//! `drover status APP` in text: the entity tree with key sensors and each
//! entity's latest activity. Pure: the rendering is tested without a server.

use std::time::Duration;

use crate::wire::{Activity, AppDetail, EntityView};

/// Sensors shown in text form (besides `host.port.*` and the container id).
const KEY_SENSORS: &[&str] = &[
    "service.up",
    "group.size",
    "group.desired_size",
    "host.address",
    "lb.port",
    "lb.backends",
    "entity.error",
];

/// Wide enough for the longest type, `load-balancer`.
const TYPE_WIDTH: usize = 14;

/// `leader: URL` for a drover of a cluster on etcd (none on redb).
pub fn leader_line(h: &crate::wire::Health) -> Option<String> {
    h.role.as_ref()?;
    Some(format!(
        "leader: {}\n",
        h.leader
            .as_deref()
            .unwrap_or("none (an election is under way)")
    ))
}

/// The status table: each entity under its parent (depth-first, in the
/// answer's order among siblings), so members sit under their cluster
/// whatever was listed before them.
pub fn render_status(detail: &AppDetail, now_ms: u64) -> String {
    let mut out = format!(
        "{:<28} {:<TYPE_WIDTH$} {:<10} {:<40} SENSORS\n",
        "ENTITY", "TYPE", "STATE", "LAST ACTIVITY"
    );
    for (depth, e) in tree_order(&detail.entities) {
        let name = format!("{}{}", "  ".repeat(depth), e.id);
        let activity = latest_activity_text(detail.latest_activities.get(&e.id), now_ms);
        out.push_str(
            format!(
                "{:<28} {:<TYPE_WIDTH$} {:<10} {:<40} {}",
                name,
                e.kind.as_str(),
                e.state.as_str(),
                activity,
                key_sensors(e).join(" ")
            )
            .trim_end(),
        );
        out.push('\n');
    }
    out
}

/// The entities depth-first from the roots (no parent, or a parent not in
/// the list), with their depth. Every entity appears exactly once.
pub fn tree_order(entities: &[EntityView]) -> Vec<(usize, &EntityView)> {
    let known = |id: &str| entities.iter().any(|e| e.id == id);
    let mut out = Vec::with_capacity(entities.len());
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(usize, &EntityView)> = entities
        .iter()
        .filter(|e| e.parent.as_deref().is_none_or(|p| !known(p)))
        .rev()
        .map(|e| (0, e))
        .collect();
    while let Some((depth, e)) = stack.pop() {
        if !seen.insert(e.id.as_str()) {
            continue;
        }
        out.push((depth, e));
        let children = entities
            .iter()
            .filter(|c| c.parent.as_deref() == Some(e.id.as_str()) && c.id != e.id);
        stack.extend(children.rev().map(|c| (depth + 1, c)));
    }
    // A parent cycle has no root: show what is left flat rather than hide it.
    for e in entities {
        if !seen.contains(e.id.as_str()) {
            out.push((0, e));
        }
    }
    out
}

/// `name=value` for the sensors worth a glance; the container id first.
fn key_sensors(e: &EntityView) -> Vec<String> {
    let mut shown: Vec<String> = e
        .sensors
        .iter()
        .filter(|(name, _)| KEY_SENSORS.contains(&name.as_str()) || name.starts_with("host.port."))
        .map(|(name, s)| format!("{name}={}", sensor_text(&s.value)))
        .collect();
    if let Some(id) = e.sensor_str("container.id") {
        shown.insert(0, format!("container={}", &id[..id.len().min(12)]));
    }
    shown
}

/// A sensor's value without JSON quotes; a list comma-separated.
fn sensor_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            items.iter().map(sensor_text).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

/// `restarter.restart scheduled 3s ago`: an entity's latest activity (`-`
/// when it has none).
pub fn latest_activity_text(a: Option<&Activity>, now_ms: u64) -> String {
    let Some(a) = a else {
        return "-".into();
    };
    let ago = now_ms.saturating_sub(a.time_ms);
    let ago = humantime::format_duration(Duration::from_secs(ago / 1000));
    format!("{} {} {ago} ago", a.name, a.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{EntityKind, Lifecycle, SensorValue};
    use serde_json::json;

    fn entity(
        id: &str,
        kind: EntityKind,
        parent: Option<&str>,
        sensors: &[(&str, serde_json::Value)],
    ) -> EntityView {
        EntityView {
            id: id.into(),
            kind,
            state: Lifecycle::Running,
            parent: parent.map(str::to_string),
            children: vec![],
            sensors: sensors
                .iter()
                .map(|(k, v)| (k.to_string().into(), SensorValue::new(v.clone(), 0)))
                .collect(),
        }
    }

    /// What the management actor answers: parents before children, so the
    /// members of `api` come after the load balancer `front`.
    fn shop() -> AppDetail {
        let entities = vec![
            entity("shop", EntityKind::Application, None, &[]),
            entity(
                "api",
                EntityKind::Cluster,
                Some("shop"),
                &[("group.size", json!(2))],
            ),
            entity(
                "front",
                EntityKind::LoadBalancer,
                Some("shop"),
                &[
                    ("lb.port", json!(8080)),
                    ("lb.backends", json!(["api-1", "api-2"])),
                    ("lb.connections_total", json!(3)),
                ],
            ),
            entity(
                "api-1",
                EntityKind::Container,
                Some("api"),
                &[("container.id", json!("0123456789abcdef"))],
            ),
            entity("api-2", EntityKind::Container, Some("api"), &[]),
        ];
        let detail = json!({
            "id": "shop", "location": "local", "state": "running",
            "entity_count": entities.len(), "created_ms": 0,
            "entities": entities,
            "blueprint": { "name": "shop", "services": [] },
            "latest_activities": {},
        });
        serde_json::from_value(detail).expect("an AppDetail")
    }

    fn rows(text: &str) -> Vec<&str> {
        text.lines().skip(1).collect()
    }

    #[test]
    fn members_sit_under_their_cluster_not_under_the_last_service() {
        let text = render_status(&shop(), 0);
        let firsts: Vec<String> = rows(&text)
            .iter()
            .map(|r| r[..28].trim_end().to_string())
            .collect();
        assert_eq!(
            firsts,
            vec!["shop", "  api", "    api-1", "    api-2", "  front"],
            "{text}"
        );
    }

    #[test]
    fn the_type_column_fits_load_balancer() {
        let text = render_status(&shop(), 0);
        let front = rows(&text)
            .into_iter()
            .find(|r| r.trim_start().starts_with("front"))
            .unwrap();
        assert!(front.contains("load-balancer "), "{front}");
        // Every row's STATE column starts at the same place as the header's.
        let header = text.lines().next().unwrap();
        let state_at = header.find("STATE").unwrap();
        for r in rows(&text) {
            assert_eq!(&r[state_at..state_at + 7], "running", "{text}");
        }
    }

    #[test]
    fn load_balancers_show_their_port_and_backends() {
        let text = render_status(&shop(), 0);
        let front = rows(&text)
            .into_iter()
            .find(|r| r.trim_start().starts_with("front"))
            .unwrap();
        assert!(front.contains("lb.port=8080"), "{front}");
        assert!(front.contains("lb.backends=api-1,api-2"), "{front}");
        assert!(!front.contains("lb.connections_total"), "{front}");
        let api1 = rows(&text)
            .into_iter()
            .find(|r| r.trim_start().starts_with("api-1"))
            .unwrap();
        assert!(api1.ends_with("container=0123456789ab"), "{api1}");
    }

    #[test]
    fn tree_order_keeps_orphans_and_cycles_visible() {
        let list = vec![
            entity("b", EntityKind::Container, Some("gone"), &[]),
            entity("x", EntityKind::Cluster, Some("y"), &[]),
            entity("y", EntityKind::Cluster, Some("x"), &[]),
        ];
        let order: Vec<(usize, &str)> = tree_order(&list)
            .into_iter()
            .map(|(d, e)| (d, e.id.as_str()))
            .collect();
        assert_eq!(order, vec![(0, "b"), (0, "x"), (0, "y")]);
    }

    #[test]
    fn latest_activity_says_what_and_how_long_ago() {
        assert_eq!(latest_activity_text(None, 0), "-");
        let a = Activity::policy(
            "shop",
            "api-1",
            "restarter.restart",
            json!({}),
            "scheduled",
            "x",
        );
        let a = Activity {
            time_ms: 1_000,
            ..a
        };
        assert_eq!(
            latest_activity_text(Some(&a), 4_500),
            "restarter.restart scheduled 3s ago"
        );
    }
}
