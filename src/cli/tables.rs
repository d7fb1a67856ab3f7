//! The text tables of `drover ls`, `hosts`, `activities`, `locations` and
//! `drain`/`uncordon`. Pure: each renders wire types to a string.

use std::time::{Duration, UNIX_EPOCH};

use crate::wire::{Activity, AppSummary, HostOpAnswer, HostView, MachineStats, PoolView};

/// `drover ls`.
pub fn render_apps(apps: &[AppSummary]) -> String {
    let mut out = format!(
        "{:<24} {:<10} {:<10} {:>8}\n",
        "APPLICATION", "LOCATION", "STATE", "ENTITIES"
    );
    for a in apps {
        out.push_str(&format!(
            "{:<24} {:<10} {:<10} {:>8}\n",
            a.id,
            a.location,
            a.state.as_str(),
            a.entity_count
        ));
    }
    out
}

/// `drover hosts`: each engine with its machine's CPUs, CPU use, memory
/// and load (`-` where drover does not run on that machine).
pub fn render_hosts(hosts: &[HostView]) -> String {
    let mut out = format!(
        "{:<16} {:<16} {:>10} {:>5} {:>5} {:>17} {:>16}\n",
        "HOST", "ADDRESS", "CONTAINERS", "CPUS", "CPU%", "MEMORY", "LOAD 1/5/15M"
    );
    for h in hosts {
        let (cpus, cpu, memory, load) = match &h.machine {
            Some(m) => machine_columns(m),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "{:<16} {:<16} {:>10} {:>5} {:>5} {:>17} {:>16}\n",
            h.name, h.address, h.containers, cpus, cpu, memory, load
        ));
    }
    out
}

fn machine_columns(m: &MachineStats) -> (String, String, String, String) {
    (
        m.cpus.to_string(),
        format!("{:.0}", m.cpu_usage * 100.0),
        format!(
            "{}/{}",
            gib(m.memory_used_bytes),
            gib(m.memory_total_bytes) + " GiB"
        ),
        format!("{:.2} {:.2} {:.2}", m.load_1m, m.load_5m, m.load_15m),
    )
}

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// An activity's time: RFC 3339 in UTC to the second, the same on every
/// machine and sortable.
pub fn activity_time(time_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(time_ms)).to_string()
}

/// `drover activities`, one line each, newest first as the server answers.
pub fn render_activities(list: &[Activity]) -> String {
    let mut out = String::new();
    for a in list {
        let msg = a
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} #{} {}/{} {} {} {} {:.3}s{msg}\n",
            activity_time(a.time_ms),
            a.id,
            a.application,
            a.entity,
            a.kind,
            a.name,
            a.outcome,
            a.duration_seconds
        ));
    }
    out
}

/// `drover locations`.
pub fn render_locations(pools: &[PoolView]) -> String {
    if pools.is_empty() {
        return "no host pools: only `local` (add locations in drover.yaml, `drover serve --config`)\n".into();
    }
    let mut out = String::new();
    for l in pools {
        let hr = &l.headroom;
        out.push_str(&format!(
            "LOCATION {}: {} hosts, {} of {} slots used, {} free (headroom wants {}): {}{}\n",
            l.location,
            hr.hosts,
            hr.used,
            hr.possible,
            hr.free,
            hr.wanted,
            hr.verdict.as_str(),
            if l.provisioning {
                ", provisioning a host"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "  {:<14} {:<15} {:<11} {:>10} {:>6} {:>13}\n",
            "HOST", "STATE", "PROVISIONED", "CONTAINERS", "CPU%", "RESERVED-CPUS"
        ));
        for h in &l.hosts {
            let num = |k: &str| h.sensors.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            out.push_str(&format!(
                "  {:<14} {:<15} {:<11} {:>10} {:>6.0} {:>13.2}\n",
                h.name,
                h.state,
                if h.provisioned { "yes" } else { "no" },
                num("host.containers"),
                num("host.cpu.usage") * 100.0,
                num("host.reserved.cpus")
            ));
        }
        for (title, items) in [("events", &l.events), ("decisions", &l.decisions)] {
            if !items.is_empty() {
                out.push_str(&format!("  {title}:\n"));
                for e in &items[items.len().saturating_sub(5)..] {
                    out.push_str(&format!("    {e}\n"));
                }
            }
        }
        if !l.placement.recent_moves.is_empty() {
            out.push_str("  CPU moves:\n");
            for m in &l.placement.recent_moves {
                out.push_str(&format!("    {m}\n"));
            }
        }
    }
    out
}

/// `drover drain|uncordon`.
pub fn render_host_op(location: &str, a: &HostOpAnswer) -> String {
    format!(
        "{location}/{}: {} ({} containers there)\n",
        a.host, a.state, a.containers
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts_show_cpu_memory_and_load() {
        let hosts = vec![
            HostView {
                name: "local".into(),
                address: "unix:///var/run/docker.sock".into(),
                containers: 3,
                machine: Some(MachineStats {
                    cpus: 2,
                    cpu_usage: 0.25,
                    memory_total_bytes: 8 << 30,
                    memory_used_bytes: 3 << 30,
                    load_1m: 0.5,
                    load_5m: 0.25,
                    load_15m: 0.125,
                }),
            },
            HostView {
                name: "remote".into(),
                address: "tcp://10.0.0.2:2375".into(),
                containers: 0,
                machine: None,
            },
        ];
        let text = render_hosts(&hosts);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("CPUS") && lines[0].contains("MEMORY") && lines[0].contains("LOAD"),
            "{text}"
        );
        assert!(lines[1].contains(" 2 "), "{text}");
        assert!(lines[1].contains(" 25 "), "{text}");
        assert!(lines[1].contains("3.0/8.0 GiB"), "{text}");
        assert!(lines[1].contains("0.50 0.25 0.12"), "{text}");
        assert!(lines[2].ends_with('-'), "{text}");
    }

    #[test]
    fn activities_start_with_their_time() {
        let a = Activity {
            time_ms: 1_700_000_000_500,
            ..Activity::policy(
                "shop",
                "web-1",
                "restarter.restart",
                json!({}),
                "ok",
                "died",
            )
        };
        let text = render_activities(&[a]);
        assert_eq!(
            text,
            "2023-11-14T22:13:20Z #0 shop/web-1 policy restarter.restart ok 0.000s (died)\n"
        );
    }

    #[test]
    fn ls_shows_the_entity_count() {
        let apps: Vec<AppSummary> = serde_json::from_value(json!([
            { "id": "shop", "location": "local", "state": "running", "entity_count": 4, "created_ms": 0 }
        ]))
        .unwrap();
        let text = render_apps(&apps);
        assert!(text.lines().nth(1).unwrap().ends_with("       4"), "{text}");
    }

    #[test]
    fn no_pools_says_how_to_add_one() {
        assert!(render_locations(&[]).contains("drover.yaml"));
    }
}
