//! The machine drover runs on: CPU, memory and load from sysinfo.
//!
//! For engines on this machine (the `local` location, local dockerd
//! hosts) this is the engine's machine too. Refreshing sysinfo reads /proc:
//! it runs on a blocking thread, never on an actor's.

use std::sync::Mutex;

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

pub use crate::wire::MachineStats;

static SYSTEM: Mutex<Option<System>> = Mutex::new(None);

/// Samples the machine (blocking: call from `spawn_blocking`). CPU usage
/// is measured since the previous call, as sysinfo needs two refreshes.
pub fn sample() -> MachineStats {
    // A std Mutex is right here: it is only ever held on a blocking thread,
    // for the length of a refresh.
    let mut guard = SYSTEM.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let kinds = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        match System::new_with_specifics(kinds) {
            Ok(s) => *guard = Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this machine's stats");
                return MachineStats::default();
            }
        }
    }
    let Some(sys) = guard.as_mut() else {
        return MachineStats::default();
    };
    sys.refresh_cpu_usage();
    sys.refresh_memory();
    let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
        one: 0.0,
        five: 0.0,
        fifteen: 0.0,
    });
    MachineStats {
        cpus: sys.cpus().len(),
        cpu_usage: (sys.global_cpu_usage() as f64 / 100.0).clamp(0.0, 1.0),
        memory_total_bytes: sys.total_memory(),
        memory_used_bytes: sys.used_memory(),
        load_1m: load.one,
        load_5m: load.five,
        load_15m: load.fifteen,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_this_machine() {
        let s = super::sample();
        assert!(s.cpus >= 1);
        assert!(s.memory_total_bytes > s.memory_used_bytes && s.memory_used_bytes > 0);
        assert!((0.0..=1.0).contains(&s.cpu_usage));
    }
}
