//! Container stats feeds: CPU and memory from the engine's stats stream.
//!
//! The engine sends a frame about every second with cumulative CPU
//! counters; CPU usage is the difference of two consecutive frames, as
//! `docker stats` computes it. A feed ends when its container goes or its
//! subscriber's mailbox closes (the entity stopped).

use actix::prelude::*;
use bollard::query_parameters::StatsOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;

/// One sample of a container's usage.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "()")]
pub struct StatsSample {
    pub container_id: String,
    /// Fraction of one core (1.0 = a whole core); `None` when it cannot be
    /// computed from this frame (the first one, or a counter reset).
    pub cpu: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// Cumulative CPU counters of one frame: (container total, system total, online cpus).
pub type CpuCounters = (u64, u64, u32);

/// CPU use in cores between two frames. Counters that went backwards (a
/// restarted container, a reset) give `None` rather than a huge number.
pub fn cpu_fraction(prev: CpuCounters, cur: CpuCounters) -> Option<f64> {
    let (p_total, p_sys, _) = prev;
    let (c_total, c_sys, cpus) = cur;
    if c_total < p_total || c_sys <= p_sys {
        return None;
    }
    let cpu_delta = (c_total - p_total) as f64;
    let sys_delta = (c_sys - p_sys) as f64;
    Some(cpu_delta / sys_delta * cpus.max(1) as f64)
}

fn counters(s: &bollard::models::ContainerCpuStats) -> Option<CpuCounters> {
    Some((
        s.cpu_usage.as_ref()?.total_usage?,
        s.system_cpu_usage?,
        s.online_cpus.unwrap_or(1),
    ))
}

/// Follows a container's stats until it goes or `to` closes.
pub async fn follow(docker: Docker, container_id: String, to: Recipient<StatsSample>) {
    let opts = StatsOptionsBuilder::default().stream(true).build();
    let mut stream = Box::pin(docker.stats(&container_id, Some(opts)));
    let mut prev: Option<CpuCounters> = None;
    while let Some(frame) = stream.next().await {
        if !to.connected() {
            return;
        }
        let Ok(frame) = frame else { return };
        let cur = frame.cpu_stats.as_ref().and_then(counters);
        // The engine's own `precpu_stats` is the previous frame; ours is a
        // fallback for engines that leave it empty.
        let before = frame
            .precpu_stats
            .as_ref()
            .and_then(counters)
            .filter(|c| c.1 > 0)
            .or(prev);
        let cpu = match (before, cur) {
            (Some(p), Some(c)) => cpu_fraction(p, c),
            _ => None,
        };
        prev = cur;
        let mem = frame.memory_stats.as_ref();
        // Page cache is reclaimable; `docker stats` subtracts it too.
        let cache = mem
            .and_then(|m| m.stats.as_ref())
            .and_then(|s| s.get("inactive_file").or(s.get("cache")).copied())
            .unwrap_or(0);
        let sample = StatsSample {
            container_id: container_id.clone(),
            cpu,
            memory_bytes: mem.and_then(|m| m.usage).map(|u| u.saturating_sub(cache)),
            memory_limit_bytes: mem.and_then(|m| m.limit),
        };
        if to.try_send(sample).is_err() && !to.connected() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_share_of_system_time_times_cpus() {
        // Used 0.5 s of CPU while the system (2 cpus) advanced 2 s: a quarter
        // of the machine, half a core.
        assert_eq!(
            cpu_fraction((0, 0, 2), (500_000_000, 2_000_000_000, 2)),
            Some(0.5)
        );
    }

    #[test]
    fn resets_and_idle_frames_give_nothing() {
        assert_eq!(
            cpu_fraction((900, 100, 2), (100, 200, 2)),
            None,
            "counter went back"
        );
        assert_eq!(
            cpu_fraction((100, 200, 2), (100, 200, 2)),
            None,
            "no system time passed"
        );
        assert_eq!(cpu_fraction((100, 200, 2), (100, 300, 2)), Some(0.0));
    }
}
