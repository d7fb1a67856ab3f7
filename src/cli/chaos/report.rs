//! The report of `drover chaos`: a summary table in text, the report
//! itself in JSON.

use super::ChaosReport;
use crate::cli::Output;
use crate::outln;

fn seconds(v: Option<f64>) -> String {
    v.map(|s| format!("{s:.3}s"))
        .unwrap_or_else(|| "-".to_string())
}

/// Prints the report: a summary table in text, the report itself in JSON.
pub fn print_report(report: &ChaosReport, out: Output) {
    if out == Output::Json {
        outln!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    outln!(
        "chaos on `{}`: {} of {} faults injected in {:.1}s (seed {})",
        report.application,
        report.faults_injected,
        report.faults.len(),
        report.duration_seconds,
        report.seed
    );
    if !report.faults.is_empty() {
        outln!();
        outln!(
            "{:>4} {:>9} {:<11} {:<28} {:<13} HOW",
            "#",
            "AT",
            "FAULT",
            "TARGET",
            "RECOVERY"
        );
        for (i, f) in report.faults.iter().enumerate() {
            let recovery = match (&f.error, f.mttr_seconds) {
                (Some(_), _) => "not injected".to_string(),
                (None, Some(s)) => format!("{s:.3}s"),
                (None, None) => "not recovered".to_string(),
            };
            let how = match (&f.error, &f.how) {
                (Some(e), _) => format!("error: {e}"),
                (None, Some(h)) => h.clone(),
                (None, None) => "-".to_string(),
            };
            outln!(
                "{:>4} {:>8.2}s {:<11} {:<28} {:<13} {}",
                i + 1,
                f.at_seconds,
                f.fault.as_str(),
                f.target,
                recovery,
                how
            );
        }
    }
    if !report.by_fault.is_empty() {
        outln!();
        outln!(
            "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  HOW",
            "FAULT",
            "ATTEMPTED",
            "INJECTED",
            "RECOVERED",
            "MTTR P50",
            "MTTR P99",
            "MTTR MAX"
        );
        for k in &report.by_fault {
            outln!(
                "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                k.fault.as_str(),
                k.attempted,
                k.injected,
                k.recovered,
                seconds(k.mttr_p50_seconds),
                seconds(k.mttr_p99_seconds),
                seconds(k.mttr_max_seconds),
                if k.how.is_empty() {
                    "-".to_string()
                } else {
                    k.how.join("; ")
                }
            );
        }
    }
    let recovered = report
        .faults
        .iter()
        .filter(|f| f.mttr_seconds.is_some())
        .count();
    outln!();
    outln!(
        "{:<18} {recovered} of {} recovered",
        "recovery",
        report.faults_injected
    );
    outln!(
        "{:<18} p50 {}  p99 {}  max {}",
        "MTTR",
        seconds(report.mttr_p50_seconds),
        seconds(report.mttr_p99_seconds),
        seconds(report.mttr_max_seconds)
    );
    outln!(
        "{:<18} {:.3}% of {} probes succeeded ({} failed)",
        "availability",
        report.probe_success_rate * 100.0,
        report.probes_total,
        report.probes_failed
    );
    outln!(
        "{:<18} {:.3}s",
        "longest outage",
        report.longest_outage_seconds
    );
    outln!(
        "{:<18} {}: {}",
        "converged",
        if report.converged { "yes" } else { "NO" },
        report.convergence_detail
    );
    outln!("{:<18} --seed {}", "repeat with", report.seed);
}
