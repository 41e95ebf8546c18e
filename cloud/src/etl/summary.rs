//! The summary of one ETL run: per machine the dates rebuilt and written, rows in and out, the
//! rows dropped per reason, labelled shots and runs; totals over all machines. Printed as a
//! table and saved as JSON (`_etl/last_run.json`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// One machine's part of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSummary {
    /// Machine id as in its partition folder (escaped).
    pub machine: String,
    /// Dates merged by this run (changed ones and those after them).
    pub dates_processed: u64,
    /// Dates whose output was (re)written.
    pub dates_written: u64,
    /// Shots read for the dates merged, before the drop rules.
    pub rows_in: u64,
    /// Output rows (kept shots) of the dates merged, written or unchanged.
    pub rows_out: u64,
    /// Rows dropped per reason.
    pub dropped: BTreeMap<String, u64>,
    /// Output rows with a label (shot or lot level).
    pub labelled: u64,
    /// Production runs in the merged span.
    pub runs: u64,
    /// The as-of tolerance of its peripheral joins (ms; the recorded one when nothing was
    /// merged, 0 when the machine was never built).
    pub tolerance_ms: i64,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EtlSummary {
    /// The tolerance setting (`auto` or ms); each machine's value is in its summary.
    pub tolerance: super::Tolerance,
    /// Wall-clock duration of the run, in seconds.
    pub seconds: f64,
    /// Shots read over all machines, before the drop rules.
    pub rows_in: u64,
    /// Output rows over all machines.
    pub rows_out: u64,
    /// Rows dropped per reason (`sentinel`, `idle`, `impossible`, `duplicate`) over all machines.
    pub dropped: BTreeMap<String, u64>,
    /// Dates whose output was (re)written, over all machines.
    pub dates_written: u64,
    /// One summary per machine, in folder order.
    pub machines: Vec<MachineSummary>,
}

impl EtlSummary {
    pub(crate) fn add(&mut self, m: MachineSummary) {
        self.rows_in += m.rows_in;
        self.rows_out += m.rows_out;
        self.dates_written += m.dates_written;
        for (reason, n) in &m.dropped {
            *self.dropped.entry(reason.clone()).or_default() += n;
        }
        self.machines.push(m);
    }

    /// A table for people.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let reasons: Vec<&String> = self.dropped.keys().collect();
        let _ = write!(
            out,
            "{:<20} {:>6} {:>6} {:>10} {:>10}",
            "machine", "dates", "written", "rows_in", "rows_out"
        );
        for r in &reasons {
            let _ = write!(out, " {r:>10}");
        }
        let _ = writeln!(out, " {:>9} {:>6} {:>8}", "labelled", "runs", "tol_ms");
        for m in &self.machines {
            let _ = write!(
                out,
                "{:<20} {:>6} {:>6} {:>10} {:>10}",
                m.machine, m.dates_processed, m.dates_written, m.rows_in, m.rows_out
            );
            for r in &reasons {
                let _ = write!(out, " {:>10}", m.dropped.get(*r).copied().unwrap_or(0));
            }
            let _ = writeln!(out, " {:>9} {:>6} {:>8}", m.labelled, m.runs, m.tolerance_ms);
        }
        let _ = write!(
            out,
            "{:<20} {:>6} {:>6} {:>10} {:>10}",
            "total", "", self.dates_written, self.rows_in, self.rows_out
        );
        for r in &reasons {
            let _ = write!(out, " {:>10}", self.dropped.get(*r).copied().unwrap_or(0));
        }
        let _ = writeln!(out, "\n{:.2} s, tolerance {}", self.seconds, self.tolerance);
        out
    }
}
