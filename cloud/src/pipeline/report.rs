//! What `pipeline runs` and `pipeline show` print: one line per run, and a run's tasks with
//! status, attempts, duration, exit code and log path (or why they did not run).

use super::state::{RunRecord, RunStatus, RunStore, TaskStatus};
use chrono::{DateTime, Utc};
use std::fmt::Write;

fn words<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn duration(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> String {
    let Some(end) = end else { return "-".into() };
    let s = (end - start).num_milliseconds() as f64 / 1000.0;
    if s < 120.0 { format!("{s:.1}s") } else { format!("{:.1}m", s / 60.0) }
}

/// Status in words; a run marked running whose runner is gone reads `interrupted`.
pub fn run_status(store: &RunStore, run: &RunRecord) -> String {
    if run.status == RunStatus::Running && !store.is_live(&run.run_id) {
        "interrupted".into()
    } else {
        words(&run.status)
    }
}

/// One line per run.
pub fn runs_table(store: &RunStore, runs: &[RunRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<10} {:<10} {:<12} {:<20} {:>8}  failed",
        "run", "pipeline", "executor", "status", "created", "took"
    );
    for r in runs {
        let failed = r.tasks_in(TaskStatus::Failed).join(",");
        let _ = writeln!(
            out,
            "{:<22} {:<10} {:<10} {:<12} {:<20} {:>8}  {}",
            r.run_id,
            r.pipeline,
            words(&r.executor),
            run_status(store, r),
            r.created.format("%Y-%m-%d %H:%M:%S"),
            duration(r.created, r.ended),
            failed
        );
    }
    out
}

/// A run's tasks.
pub fn run_table(store: &RunStore, run: &RunRecord) -> String {
    let mut out = String::new();
    let dir = store.run_dir(&run.run_id);
    let _ = writeln!(
        out,
        "run {} ({}, {} executor): {}, created {}, took {}",
        run.run_id,
        run.pipeline,
        words(&run.executor),
        run_status(store, run),
        run.created.format("%Y-%m-%d %H:%M:%S UTC"),
        duration(run.created, run.ended)
    );
    let _ = writeln!(
        out,
        "{:<12} {:<16} {:>8} {:>8} {:>5}  log / note",
        "task", "status", "attempts", "took", "exit"
    );
    for name in run.definition.order().unwrap_or_default() {
        let Some(t) = run.tasks.get(&name) else { continue };
        let last = t.attempts.last();
        let took = last.map(|a| duration(a.started, a.ended)).unwrap_or_else(|| "-".into());
        let exit = last.and_then(|a| a.exit_code).map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        let mut detail = last.map(|a| dir.join(&a.log).display().to_string()).unwrap_or_default();
        if let Some(note) = &t.note {
            detail = if detail.is_empty() { note.clone() } else { format!("{detail}  ({note})") };
        }
        let _ = writeln!(
            out,
            "{:<12} {:<16} {:>8} {:>8} {:>5}  {}",
            name,
            words(&t.status),
            t.attempts.len(),
            took,
            exit,
            detail
        );
    }
    out
}
