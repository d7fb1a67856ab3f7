//! Injecting the faults through the service's fault routes, and tracking
//! their recovery: one poller marks the faults whose victims are back, and
//! the settle phase waits for full health.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::tree::{full_health, summarise, victim_back};
use super::{sleep_until, FaultKind, FaultRecord, POLL_EVERY};
use crate::cli::{error_text, query_value, Answer, Client};
use crate::wire::{AppDetail, ChaosFault, FaultInjected};

/// A fault whose recovery is awaited.
pub(super) struct Pending {
    pub index: usize,
    /// The members that must be back: the victim, or every member on a
    /// stopped engine.
    pub members: Vec<String>,
    /// The host an engine-stop stopped: its members are back only once
    /// they run elsewhere.
    pub off_host: Option<String>,
    pub injected: Instant,
    pub injected_ms: u64,
}

#[derive(Default)]
pub(super) struct Shared {
    pub records: Vec<FaultRecord>,
    pub pending: Vec<Pending>,
    /// Fault requests not answered yet.
    pub in_flight: usize,
}

pub(super) fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The error of a non-2xx answer.
fn answer_error(a: &Answer) -> String {
    if a.text.trim().is_empty() {
        format!("HTTP {}", a.status)
    } else {
        format!("HTTP {}: {}", a.status, error_text(a.status, &a.text))
    }
}

/// Polls the application while faults are pending and marks those that
/// recovered. One poller serves every outstanding fault.
pub(super) fn poll_loop(
    client: &Client,
    app_path: &str,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if !lock(shared).pending.is_empty() {
            if let Ok(app) = client.get_ok::<AppDetail>(app_path) {
                let app = app.entities;
                let seen = Instant::now();
                if full_health(&app).is_ok() {
                    let mut guard = lock(shared);
                    let s = &mut *guard;
                    s.pending.retain(|p| {
                        // A state read before the fault says nothing about it.
                        if p.injected >= sent
                            || !p
                                .members
                                .iter()
                                .all(|m| victim_back(&app, m, p.injected_ms, p.off_host.as_deref()))
                        {
                            return true;
                        }
                        if let Some(r) = s.records.get_mut(p.index) {
                            r.mttr_seconds = Some(seen.duration_since(p.injected).as_secs_f64());
                        }
                        false
                    });
                }
            }
        }
        sleep_until(sent + POLL_EVERY);
    }
}

/// One fault to inject.
pub(super) struct Injection<'a> {
    pub app: &'a str,
    /// The member (container faults) or the host (engine-stop).
    pub victim: String,
    /// The application's location (engine-stop).
    pub location: &'a str,
    pub kind: FaultKind,
    pub index: usize,
}

impl Injection<'_> {
    /// The fault route that injects it.
    fn path(&self) -> String {
        if self.kind.is_container_fault() {
            format!(
                "/v1/applications/{}/entities/{}/faults/{}",
                query_value(self.app),
                query_value(&self.victim),
                self.kind
            )
        } else {
            format!(
                "/v1/locations/{}/hosts/{}/faults/{}",
                query_value(self.location),
                query_value(&self.victim),
                self.kind
            )
        }
    }
}

/// Asks the service to inject the fault from outside drover (through the
/// engine, the machine or the provisioner) and records how, or why not.
pub(super) fn inject(
    client: &Client,
    job: Injection<'_>,
    shared: &Mutex<Shared>,
    warned: &AtomicBool,
) {
    let outcome = match client.post(&job.path(), "application/json", "{}") {
        Ok(a) if (200..300).contains(&a.status) => serde_json::from_str::<FaultInjected>(&a.text)
            .map(|done| done.how)
            .map_err(|e| {
                format!(
                    "{} fault: the service's answer is not a fault report: {e}",
                    job.kind
                )
            }),
        Ok(a) => Err(format!(
            "{} fault not injected: {}",
            job.kind,
            answer_error(&a)
        )),
        Err(e) => Err(format!("{} fault not injected: {e}", job.kind)),
    };
    {
        let mut s = lock(shared);
        s.in_flight = s.in_flight.saturating_sub(1);
        match &outcome {
            Ok(how) => {
                if let Some(r) = s.records.get_mut(job.index) {
                    r.how = Some(how.clone());
                }
            }
            Err(e) => {
                s.pending.retain(|p| p.index != job.index);
                if let Some(r) = s.records.get_mut(job.index) {
                    r.error = Some(e.clone());
                    r.mttr_seconds = None;
                }
            }
        }
    }
    if outcome.is_err() {
        return;
    }
    // Count the fault in the service's metrics; older services lack the endpoint.
    let body = serde_json::to_string(&ChaosFault {
        application: job.app.to_string(),
        entity: job.victim.clone(),
        fault: job.kind.as_str().to_string(),
    })
    .unwrap_or_default();
    let problem = match client.post("/v1/chaos/faults", "application/json", &body) {
        Ok(a) if (200..300).contains(&a.status) || a.status == 404 => None,
        Ok(a) => Some(answer_error(&a)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(p) = problem {
        if !warned.swap(true, Ordering::Relaxed) {
            eprintln!("warning: cannot record chaos faults in the service's metrics: {p}");
        }
    }
}

/// Waits up to `limit` (checking at least once) for full health with every
/// fault recovered and every fault request answered.
pub(super) fn settle(
    client: &Client,
    app_path: &str,
    shared: &Mutex<Shared>,
    limit: Duration,
) -> (bool, String) {
    let start = Instant::now();
    let deadline = start + limit;
    loop {
        let tick = Instant::now();
        let (in_flight, pending) = {
            let s = lock(shared);
            (s.in_flight, s.pending.len())
        };
        let health = client
            .get_ok::<AppDetail>(app_path)
            .map_err(|e| format!("cannot read the application: {e}"))
            .and_then(|app| full_health(&app.entities));
        // Faults may recover between the two reads: look again.
        let pending = pending.min(lock(shared).pending.len());
        if in_flight == 0 && pending == 0 && health.is_ok() {
            return (
                true,
                format!(
                    "converged {:.1}s after the fault window: every entity running, every cluster at its desired size, every fault recovered",
                    start.elapsed().as_secs_f64()
                ),
            );
        }
        if tick >= deadline {
            let s = lock(shared);
            let mut wrong = Vec::new();
            if let Err(e) = health {
                wrong.push(e);
            }
            if !s.pending.is_empty() {
                let faults: Vec<String> = s
                    .pending
                    .iter()
                    .map(|p| match s.records.get(p.index) {
                        Some(r) => format!("{} of {} at {:.1}s", r.fault, r.target, r.at_seconds),
                        None => p.members.join("+"),
                    })
                    .collect();
                wrong.push(format!(
                    "{} fault(s) not recovered: {}",
                    faults.len(),
                    summarise(&faults, 5)
                ));
            }
            if s.in_flight > 0 {
                wrong.push(format!("{} fault request(s) not answered", s.in_flight));
            }
            if wrong.is_empty() {
                wrong.push("the state changed while it was checked".to_string());
            }
            return (
                false,
                format!(
                    "not converged within {}: {}",
                    humantime::format_duration(limit),
                    wrong.join("; ")
                ),
            );
        }
        sleep_until((tick + POLL_EVERY).min(deadline));
    }
}
