//! The printed form of a training report: one line per key and model (each family at its
//! chosen threshold, the selected one starred, the baseline at its own, LSTM-AE at the
//! original's fixed 0.1, the families' combination as measured), the selection's reason,
//! values with their bootstrap 95 % intervals.

use super::metrics::{Estimate, Evaluation};
use super::run::TrainReport;
use std::fmt::Write;

fn est(e: &Estimate) -> String {
    match (e.value, e.ci_low, e.ci_high) {
        (Some(v), Some(l), Some(h)) => format!("{v:.3} [{l:.2},{h:.2}]"),
        (Some(v), _, _) => format!("{v:.3}"),
        _ => "-".into(),
    }
}

fn line(out: &mut String, key: &str, model: &str, e: Option<&Evaluation>) {
    match e {
        Some(e) => {
            let _ = writeln!(
                out,
                "{key:<16} {model:<18} {:>9.4} {:>5}/{:<5} {:<20} {:<20} {:<20} {:<20} {:<20}",
                e.threshold,
                e.positives,
                e.windows,
                est(&e.precision),
                est(&e.recall),
                est(&e.f1),
                est(&e.pr_auc),
                est(&e.roc_auc)
            );
        }
        None => {
            let _ = writeln!(out, "{key:<16} {model:<18} (no labelled test windows)");
        }
    }
}

/// The table printed by `moldops-cloud train`.
pub fn table(r: &TrainReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<18} {:>9} {:>11} {:<20} {:<20} {:<20} {:<20} {:<20}",
        "key", "model", "threshold", "defect/all", "precision", "recall", "f1", "pr_auc", "roc_auc"
    );
    for k in &r.keys {
        let label = k.key.label();
        if let Some(why) = &k.skipped {
            let _ = writeln!(out, "{label:<16} skipped: {why}");
            continue;
        }
        let chosen = k.selection.as_ref().map_or("", |s| s.kind.as_str());
        for m in [&k.pca, &k.lstm_ae].into_iter().flatten() {
            let star = if m.kind == chosen { " *" } else { "" };
            line(&mut out, &label, &format!("{}{star}", m.kind), m.test.as_ref());
        }
        if let Some(m) = &k.baseline {
            line(&mut out, &label, "dense_ae (baseline)", m.test.as_ref());
        }
        if let Some(m) = &k.combined {
            line(&mut out, &label, "combined (measured)", m.test.as_ref());
        }
        if let Some(m) = &k.lstm_ae {
            line(&mut out, &label, "lstm_ae @ fixed 0.1", m.test_fixed_0_1.as_ref());
        }
        if let Some(m) = k.selected() {
            let fa = &m.false_alarms;
            let _ = writeln!(
                out,
                "{label:<16} false alarms ({}): target {:.3}, calibration {}, test {} on {} good windows",
                m.threshold.method,
                fa.target,
                fa.calibration_rate.map_or("-".into(), |r| format!("{r:.3}")),
                est(&fa.test_rate),
                fa.test_windows
            );
        }
        if let Some(o) = k.selected().map(|m| &m.onsets).filter(|o| o.episodes > 0) {
            let _ = writeln!(
                out,
                "{label:<16} fault episodes on test: {} of {} caught, median {} windows after onset, {:.0} % of their windows alarmed",
                o.detected,
                o.episodes,
                o.median_delay.map_or("-".into(), |d| d.to_string()),
                100.0 * o.mean_coverage.unwrap_or(0.0)
            );
        }
        if let Some(m) = k.selected().filter(|m| !m.test_by_kind.is_empty()) {
            let kinds: Vec<String> = m
                .test_by_kind
                .iter()
                .map(|(kind, r)| format!("{kind} {} ({}/{})", est(&r.recall), r.caught, r.windows))
                .collect();
            let _ = writeln!(out, "{label:<16} recall by defect kind: {}", kinds.join(", "));
        }
        if let Some(s) = &k.selection {
            let _ = writeln!(out, "{label:<16} selected {}: {}", s.kind, s.reason);
        }
        let targets: Vec<String> =
            k.targets.iter().map(|(n, ok)| format!("{n}: {}", if *ok { "yes" } else { "NO" })).collect();
        let _ = writeln!(out, "{label:<16} targets: {}", targets.join(", "));
        if let Some((v, dir)) = &k.registered {
            let _ = writeln!(out, "{label:<16} registered as candidate version {v} ({})", dir.display());
        }
    }
    if r.keys.iter().filter(|k| k.skipped.is_none()).count() > 1 {
        line(&mut out, "all keys", "selected (pooled)", r.pooled.selected.as_ref());
        if r.pooled.baseline.is_some() {
            line(&mut out, "all keys", "dense_ae (pooled)", r.pooled.baseline.as_ref());
        }
    }
    let _ = writeln!(out, "({:.1} s on {}; {})", r.seconds, r.device, r.code_version);
    out
}
