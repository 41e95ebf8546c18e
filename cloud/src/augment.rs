//! `moldops-cloud augment`: the reference's `iqr_mds_gan`, done right, per machine and mold
//! over `etl_data` — the percentile fence marks glitches ([`crate::quality::outliers`]), MDS +
//! DBSCAN give weak labels per production run ([`crate::quality::weak`]), a conditional GAN
//! ([`moldops_models::gan`]) generates defect rows, and the synthetic-data gate
//! ([`crate::quality::gate`]) decides whether they go downstream. Output: `aug_data` (real
//! rows, flagged, plus synthetic rows that passed; [`frame`]) and a JSON + HTML report
//! ([`crate::report`]).

pub mod cli;
pub mod frame;
pub mod group;
pub mod progress;

pub use frame::{AUG_DATA, read_aug};
pub use group::{GroupPlots, GroupReport};

use crate::quality::gate::GateConfig;
use crate::quality::outliers::FenceConfig;
use crate::quality::stats::Confusion;
use crate::quality::weak::{Agreement, WeakConfig};
use anyhow::{Context, Result, bail};
use moldops_models::gan::GanConfig;
use progress::Progress;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Settings of `augment` (a TOML file with these keys; every one optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Columns for the fence, the GAN and the gate (default: every numeric column without nulls).
    pub features: Option<Vec<String>>,
    /// Columns for the MDS embedding (default: the reference's 11 when present, else `features`).
    pub label_features: Option<Vec<String>>,
    /// The outlier fence (`[fence]`; default: 2.5th–97.5th percentiles, k = 1.5, not sequential).
    pub fence: FenceConfig,
    /// The weak labelling by MDS + DBSCAN per production run (`[weak]`; default: runs of ≥ 30 shots).
    pub weak: WeakConfig,
    /// The conditional GAN and its training (`[gan]`; default: 600 steps of 32 rows); its `seed`
    /// is replaced by each group's own seed.
    pub gan: GanConfig,
    /// The synthetic-data gate's thresholds (`[gate]`; default: mean KS ≤ 0.35, mean |Δr| ≤ 0.35,
    /// DCR ratio ≥ 0.5, F1 and PR-AUC drop ≤ 0.05).
    pub gate: GateConfig,
    /// Synthetic rows per group (default: as many as balance the training classes).
    pub synthetic: Option<usize>,
    /// Fewer defect rows than this in a group: no GAN.
    /// Default 6; at least 2 (one to train on, one to hold out).
    pub min_defect_rows: usize,
    /// Share of each class held out (real rows only) for the gate's DCR and efficacy checks.
    /// Default 0.3; within (0, 1).
    pub holdout_fraction: f64,
    /// Seed of everything random (each group derives its own from it).
    /// Default 42.
    pub seed: u64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            features: None,
            label_features: None,
            fence: FenceConfig::default(),
            weak: WeakConfig::default(),
            gan: GanConfig::default(),
            gate: GateConfig::default(),
            synthetic: None,
            min_defect_rows: 6,
            holdout_fraction: 0.3,
            seed: 42,
        }
    }
}

impl AugmentConfig {
    /// Every problem with the settings, at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if let Err(e) = self.fence.validate() {
            problems.push(e.to_string());
        }
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            problems.push(format!("holdout_fraction must be within (0, 1), not {}", self.holdout_fraction));
        }
        if self.min_defect_rows < 2 {
            problems.push("min_defect_rows must be at least 2 (one to train on, one to hold out)".into());
        }
        if self.weak.min_run_shots < 3 {
            problems.push("weak.min_run_shots must be at least 3".into());
        }
        if self.gan.steps == 0 || self.gan.batch <= self.gan.positives_per_batch {
            problems.push("gan: steps must be > 0 and batch > positives_per_batch".into());
        }
        if !(0.0..1.0).contains(&self.gan.dropout) {
            problems.push(format!("gan.dropout must be within [0, 1), not {}", self.gan.dropout));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("invalid augment settings:\n  {}", problems.join("\n  "))
        }
    }
}

/// Totals over all groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// (machine, mold) groups processed.
    pub groups: usize,
    /// Real `etl_data` rows read.
    pub rows: usize,
    /// Rows the fence marked as outliers (kept in the data).
    pub outliers: usize,
    /// Rows that got a weak label (0 or 1).
    pub weak_labelled: usize,
    /// Rows whose label came from the weak labelling (no truth).
    pub weak_filled: usize,
    /// Groups in which the GAN was trained.
    pub gan_trained: usize,
    /// Groups whose synthetic rows passed the gate.
    pub gate_passed: usize,
    /// Synthetic rows written to `aug_data`.
    pub synthetic_written: usize,
}

/// The JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentReport {
    /// When the run finished (RFC 3339, UTC, whole seconds).
    pub created_at: String,
    /// The lake folder the run read and wrote.
    pub lake: String,
    /// Wall-clock duration of the run, in seconds.
    pub seconds: f64,
    /// The settings the run used, after command-line overrides.
    pub settings: AugmentConfig,
    /// Where the GANs trained: `cpu`, or the GPU's description (`--device`); empty in reports
    /// written before it was recorded.
    #[serde(default)]
    pub device: String,
    /// Totals over all groups.
    pub totals: Totals,
    /// Weak labels against truth over every group.
    pub agreement: Option<Agreement>,
    /// One report per (machine, mold) group, ordered by machine, then mold.
    pub groups: Vec<GroupReport>,
}

/// Runs augment over a lake: reads `etl_data`, processes every (machine, mold) group, writes
/// `aug_data` per machine. Returns the report and the plot data.
pub fn run(
    lake_dir: &Path,
    cfg: &AugmentConfig,
    device: &moldops_models::device::TrainingDevice,
    progress: &Progress,
) -> Result<(AugmentReport, Vec<GroupPlots>)> {
    cfg.validate()?;
    let started = std::time::Instant::now();
    let etl = crate::etl::read_etl(lake_dir)?;
    if etl.height() == 0 {
        bail!("no etl_data in {}: run `moldops-cloud etl` first", lake_dir.display());
    }
    let groups = frame::groups(&etl)?;
    let mut reports = Vec::new();
    let mut plots = Vec::new();
    let mut per_machine: std::collections::BTreeMap<String, Vec<polars::prelude::DataFrame>> =
        Default::default();
    for g in &groups {
        tracing::info!(machine = %g.machine_id, mold = ?g.mold, rows = g.frame.height(), "augment: group");
        let seed = group::group_seed(cfg.seed, &g.machine_id, g.mold.as_deref());
        let out = group::process(g, cfg, seed, &device.device, progress)?;
        per_machine.entry(g.machine_id.clone()).or_default().extend(out.frames);
        reports.push(out.report);
        plots.push(out.plots);
    }
    for (machine, parts) in &per_machine {
        frame::write_machine(lake_dir, machine, parts)
            .with_context(|| format!("writing aug_data of {machine}"))?;
    }
    let mut totals = Totals { groups: reports.len(), ..Default::default() };
    let mut confusion = Confusion::default();
    let mut compared = 0;
    for r in &reports {
        totals.rows += r.rows;
        totals.outliers += r.outliers;
        totals.weak_labelled += r.weak_labelled;
        totals.weak_filled += r.weak_filled;
        totals.gan_trained += usize::from(r.gan.status == group::GanStatus::Trained);
        totals.gate_passed += usize::from(r.gan.gate.as_ref().is_some_and(|g| g.passed));
        totals.synthetic_written += r.gan.written;
        if let Some(a) = &r.agreement {
            compared += a.rows;
            confusion.tp += a.confusion.tp;
            confusion.fp += a.confusion.fp;
            confusion.fn_ += a.confusion.fn_;
            confusion.tn += a.confusion.tn;
        }
    }
    let agreement = (compared > 0).then(|| Agreement {
        rows: compared,
        confusion,
        precision: confusion.precision(),
        recall: confusion.recall(),
        f1: confusion.f1(),
        accuracy: (confusion.tp + confusion.tn) as f64 / compared as f64,
    });
    let report = AugmentReport {
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        lake: lake_dir.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
        settings: cfg.clone(),
        device: device.description.clone(),
        totals,
        agreement,
        groups: reports,
    };
    Ok((report, plots))
}

/// Writes `report.json` and `report.html` into `dir` (atomically each).
pub fn write_reports(dir: &Path, report: &AugmentReport, plots: &[GroupPlots]) -> Result<()> {
    let json = serde_json::to_vec_pretty(report).context("encoding the augment report")?;
    crate::lake::write::write_atomic(&dir.join("report.json"), &json)?;
    let html = crate::report::html(report, plots)?;
    crate::lake::write::write_atomic(&dir.join("report.html"), html.as_bytes())
}

/// A short table of the report.
pub fn summary_table(r: &AugmentReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<10} {:<20} {:>6} {:>8} {:>6} {:>10} {:>10} {:>8} {:>9}\n",
        "machine", "mold", "rows", "outliers", "weak=1", "precision", "recall", "gate", "synthetic"
    ));
    for g in &r.groups {
        let (p, rc) = g.agreement.as_ref().map_or(("-".into(), "-".into()), |a| {
            (format!("{:.2}", a.precision), format!("{:.2}", a.recall))
        });
        let gate = match &g.gan.gate {
            Some(x) if x.passed => "passed",
            Some(_) => "failed",
            None => "no GAN",
        };
        s.push_str(&format!(
            "{:<10} {:<20} {:>6} {:>8} {:>6} {:>10} {:>10} {:>8} {:>9}\n",
            g.machine_id,
            g.mold.as_deref().unwrap_or("-"),
            g.rows,
            g.outliers,
            g.weak_defects,
            p,
            rc,
            gate,
            g.gan.written
        ));
    }
    if let Some(a) = &r.agreement {
        s.push_str(&format!(
            "weak labels vs truth over {} shots: precision {:.2}, recall {:.2}, F1 {:.2}\n",
            a.rows, a.precision, a.recall, a.f1
        ));
    }
    s.push_str(&format!(
        "{} synthetic rows written; gate passed in {} of {} GAN groups ({:.1} s)\n",
        r.totals.synthetic_written, r.totals.gate_passed, r.totals.gan_trained, r.seconds
    ));
    s
}
