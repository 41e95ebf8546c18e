//! One (machine, mold) group through the augment steps: fence → weak labels → GAN → gate, and
//! the group's `aug_data` frames, report and plot data.

use super::AugmentConfig;
use super::frame::{self, Group};
use super::progress::Progress;
use crate::quality::gate::{self, GateInput, GateReport};
use crate::quality::outliers::{self, ColumnFence};
use crate::quality::weak::{self, Agreement, RunOutcome};
use anyhow::{Context, Result, bail};
use moldops_models::gan;
use polars::prelude::DataFrame;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The reference's 11 labelling features (§1.1), used for MDS when all are present.
pub const REFERENCE_FEATURES: [&str; 11] = [
    "Average_Back_Pressure",
    "Average_Screw_RPM",
    "Clamp_Close_Time",
    "Clamp_Open_Position",
    "Cushion_Position",
    "Cycle_Time",
    "Filling_Time",
    "Injection_Time",
    "Plasticizing_Position",
    "Plasticizing_Time",
    "Switch_Over_Position",
];

/// Whether the GAN was trained in one group (serialised `trained` / `skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanStatus {
    /// Too few labelled rows (the report's `reason` says how many).
    #[default]
    Skipped,
    /// The GAN was trained and generated synthetic defect rows for the gate.
    Trained,
}

impl std::fmt::Display for GanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GanStatus::Skipped => "skipped",
            GanStatus::Trained => "trained",
        })
    }
}

/// What the GAN step did in one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GanOutcome {
    /// Whether the GAN was trained.
    pub status: GanStatus,
    /// Why no synthetic row was written (too few rows, or the gate failed); `None` otherwise.
    pub reason: Option<String>,
    /// Real rows the GAN trained on (labelled, finite; normal outliers left out).
    pub train_rows: usize,
    /// Defect rows among `train_rows`.
    pub train_defects: usize,
    /// Real rows held out for the gate (`holdout_fraction` of each class, at least one per class).
    pub holdout_rows: usize,
    /// Defect rows among `holdout_rows`.
    pub holdout_defects: usize,
    /// `(step, discriminator loss, generator loss)` every 50 steps and at the last step.
    pub losses: Vec<(usize, f32, f32)>,
    /// Synthetic defect rows generated (written only if the gate passed).
    pub generated: usize,
    /// The gate's measurements; `None` when the GAN was skipped.
    pub gate: Option<GateReport>,
    /// Synthetic rows written to aug_data (0 unless the gate passed).
    pub written: usize,
}

/// The report of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Machine of the group.
    pub machine_id: String,
    /// Mold / product code of the group (`None`: rows without a mold).
    pub mold: Option<String>,
    /// Real rows in the group.
    pub rows: usize,
    /// Rows with a ground-truth label.
    pub truth_labelled: usize,
    /// Rows whose ground truth is a defect (label ≥ 0.5).
    pub truth_defects: usize,
    /// Columns the fence, GAN and gate use.
    pub features: Vec<String>,
    /// Columns the MDS embedding uses.
    pub label_features: Vec<String>,
    /// The fence's fitted bounds per column of `features`.
    pub fences: Vec<ColumnFence>,
    /// Rows the fence marked as outliers (kept in the data).
    pub outliers: usize,
    /// Defect rows (truth) that the fence marked; they stay in the data.
    pub outlier_defects: usize,
    /// What the weak labelling did per production run, by ascending run id.
    pub runs: Vec<RunOutcome>,
    /// Rows that got a weak label (0 or 1).
    pub weak_labelled: usize,
    /// Rows weakly labelled 1 (presumed defect).
    pub weak_defects: usize,
    /// Rows whose label came from the weak labelling (no truth).
    pub weak_filled: usize,
    /// Weak labels against truth, over rows with both.
    pub agreement: Option<Agreement>,
    /// What the GAN step and the gate did.
    pub gan: GanOutcome,
}

/// Data behind the report's plots.
#[derive(Debug, Clone, Default)]
pub struct GroupPlots {
    /// Plot title, `machine / mold` (`(no mold)` when there is none).
    pub title: String,
    /// Every embedded row.
    pub embedding: Vec<EmbeddedShot>,
    /// The columns shown.
    pub distributions: Vec<Distribution>,
}

/// One shot in the 2-D embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddedShot {
    /// The shot's 2-D MDS coordinates (within its production run's embedding).
    pub xy: [f64; 2],
    /// Ground-truth label where known (≥ 0.5 is a defect).
    pub truth: Option<f64>,
    /// Weak label: 1 presumed defect, 0 normal.
    pub weak: Option<u8>,
}

/// The values of one column: real normal, real defect and synthetic rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Distribution {
    /// Column name.
    pub column: String,
    /// Values of real normal rows (truth, else weak label), outliers left out.
    pub normal: Vec<f64>,
    /// Values of real defect rows (truth, else weak label), outliers included.
    pub defect: Vec<f64>,
    /// Values of the generated synthetic rows (empty when the GAN was skipped).
    pub synthetic: Vec<f64>,
}

/// Everything one group produced.
pub struct GroupOutcome {
    /// The group's report.
    pub report: GroupReport,
    /// Data behind the group's plots.
    pub plots: GroupPlots,
    /// The group's `aug_data` frames: the real rows, then the synthetic rows if the gate passed.
    pub frames: Vec<DataFrame>,
}

/// A seed for this group derived from the run's seed and the group's key (FNV-1a).
pub fn group_seed(seed: u64, machine: &str, mold: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in machine.bytes().chain([0xff]).chain(mold.unwrap_or("").bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn pick_features(group: &Group, cfg: &AugmentConfig) -> Result<(Vec<String>, Vec<String>)> {
    let all = frame::feature_columns(&group.frame);
    let complete = frame::complete(&group.frame, &all)?;
    let check = |wanted: &[String], what: &str| -> Result<()> {
        let missing: Vec<&str> =
            wanted.iter().filter(|w| !complete.contains(w)).map(String::as_str).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            bail!(
                "{what}: columns missing or with nulls in machine {}: {}",
                group.machine_id,
                missing.join(", ")
            )
        }
    };
    let features = match &cfg.features {
        Some(f) => {
            check(f, "features")?;
            f.clone()
        }
        None => complete.clone(),
    };
    let label_features = match &cfg.label_features {
        Some(f) => {
            check(f, "label_features")?;
            f.clone()
        }
        None if REFERENCE_FEATURES.iter().all(|r| complete.iter().any(|c| c == r)) => {
            REFERENCE_FEATURES.iter().map(|s| s.to_string()).collect()
        }
        None => features.clone(),
    };
    if features.is_empty() {
        bail!("machine {}: no complete numeric feature column", group.machine_id);
    }
    Ok((features, label_features))
}

/// Runs the steps on one group: label the rows, report them, then (when there are enough
/// labelled rows) train the GAN and gate its synthetic rows.
pub fn process(
    group: &Group,
    cfg: &AugmentConfig,
    seed: u64,
    device: &gan::Device,
    progress: &Progress,
) -> Result<GroupOutcome> {
    let title = format!("{} / {}", group.machine_id, group.mold.as_deref().unwrap_or("(no mold)"));
    let l = label(group, cfg, seed).with_context(|| title.clone())?;
    let mut report = l.report(group);
    let mut plots = GroupPlots { title: title.clone(), ..Default::default() };
    for (i, c) in l.weak.coords.iter().enumerate() {
        if let Some(c) = c {
            plots.embedding.push(EmbeddedShot { xy: *c, truth: l.truth[i], weak: l.weak.labels[i] });
        }
    }
    let mut frames = vec![frame::real_rows(group, &l.weak.labels, &l.outlier)?];
    let split = match Split::new(&l, cfg, seed) {
        Ok(split) => split,
        Err(reason) => {
            report.gan.reason = Some(reason);
            distributions(&mut plots, &l.features, &l.rows, &l.effective, &l.outlier, &[], None);
            return Ok(GroupOutcome { report, plots, frames });
        }
    };
    report.gan.train_rows = split.train_rows.len();
    report.gan.train_defects = split.train_labels.iter().filter(|&&d| d).count();
    report.gan.holdout_rows = split.hold_rows.len();
    report.gan.holdout_defects = split.hold_labels.iter().filter(|&&d| d).count();

    let gan_cfg = gan::GanConfig { seed, ..cfg.gan.clone() };
    let y: Vec<usize> = split.train_labels.iter().map(|&l| usize::from(l)).collect();
    let mut bar = progress.bar(&format!("GAN {title}"), gan_cfg.steps as u64);
    let (model, log) = gan::train(&split.train_rows, &y, &gan_cfg, device, &mut |s, _| bar.set(s as u64))
        .with_context(|| format!("{title}: GAN training"))?;
    bar.finish();
    let normal = report.gan.train_rows - report.gan.train_defects;
    let count = cfg.synthetic.unwrap_or_else(|| normal.saturating_sub(report.gan.train_defects).max(1));
    let synthetic = model.generate(count, 1, seed ^ 0x5eed)?;
    let gate = gate::evaluate(
        &GateInput {
            train: &split.train_rows,
            train_labels: &split.train_labels,
            holdout: &split.hold_rows,
            holdout_labels: &split.hold_labels,
            synthetic: &synthetic,
            columns: &l.features,
        },
        &cfg.gate,
    );
    report.gan.status = GanStatus::Trained;
    report.gan.losses = log.losses;
    report.gan.generated = synthetic.len();
    if gate.passed {
        frames.push(frame::synthetic_rows(group, &l.features, &synthetic)?);
        report.gan.written = synthetic.len();
    } else {
        report.gan.reason = Some("the synthetic-data gate failed; no synthetic row written".into());
    }
    distributions(&mut plots, &l.features, &l.rows, &l.effective, &l.outlier, &synthetic, Some(&gate));
    report.gan.gate = Some(gate);
    Ok(GroupOutcome { report, plots, frames })
}

/// One group's rows with their fence, ground truth and weak labels.
struct Labelled {
    features: Vec<String>,
    label_features: Vec<String>,
    /// Feature values per row, in `features` order.
    rows: Vec<Vec<f64>>,
    outlier: Vec<bool>,
    fences: Vec<ColumnFence>,
    /// Ground truth where the lake has it (≥ 0.5 is a defect).
    truth: Vec<Option<f64>>,
    weak: weak::WeakLabels,
    /// Ground truth where known, else the weak label.
    effective: Vec<Option<u8>>,
}

/// Picks the features, fences outliers and weak-labels the rows of one group.
fn label(group: &Group, cfg: &AugmentConfig, seed: u64) -> Result<Labelled> {
    let (features, label_features) = pick_features(group, cfg)?;
    let cols = frame::columns(&group.frame, &features)?;
    let rows = frame::rows(&cols);
    let (outlier, fences) = outliers::fence(&cols, &features, &cfg.fence);
    let truth = frame::truth(&group.frame)?;
    let run_ids: Vec<String> =
        frame::strings(&group.frame, "run_id")?.into_iter().map(Option::unwrap_or_default).collect();
    let label_rows = frame::rows(&frame::columns(&group.frame, &label_features)?);
    let weak = weak::label(&label_rows, &run_ids, &cfg.weak, seed).context("weak labels")?;
    let effective: Vec<Option<u8>> = truth
        .iter()
        .zip(&weak.labels)
        .map(|(t, w)| t.map(|v| u8::from(moldops_learn::data::is_defect(v))).or(*w))
        .collect();
    Ok(Labelled { features, label_features, rows, outlier, fences, truth, weak, effective })
}

impl Labelled {
    /// The group's report before the GAN step (which fills `gan`).
    fn report(&self, group: &Group) -> GroupReport {
        let is_defect = |t: &Option<f64>| t.is_some_and(moldops_learn::data::is_defect);
        let (truth, weak) = (&self.truth, &self.weak);
        GroupReport {
            machine_id: group.machine_id.clone(),
            mold: group.mold.clone(),
            rows: self.rows.len(),
            truth_labelled: truth.iter().filter(|t| t.is_some()).count(),
            truth_defects: truth.iter().filter(|t| is_defect(t)).count(),
            features: self.features.clone(),
            label_features: self.label_features.clone(),
            fences: self.fences.clone(),
            outliers: self.outlier.iter().filter(|&&o| o).count(),
            outlier_defects: truth.iter().zip(&self.outlier).filter(|(t, o)| **o && is_defect(t)).count(),
            runs: weak.runs.clone(),
            weak_labelled: weak.labels.iter().filter(|w| w.is_some()).count(),
            weak_defects: weak.labels.iter().filter(|w| **w == Some(1)).count(),
            weak_filled: truth.iter().zip(&weak.labels).filter(|(t, w)| t.is_none() && w.is_some()).count(),
            agreement: weak::agreement(&weak.labels, truth),
            gan: GanOutcome {
                status: GanStatus::Skipped,
                reason: None,
                train_rows: 0,
                train_defects: 0,
                holdout_rows: 0,
                holdout_defects: 0,
                losses: Vec::new(),
                generated: 0,
                gate: None,
                written: 0,
            },
        }
    }
}

/// The GAN's training and hold-out rows, stratified by label.
struct Split {
    train_rows: Vec<Vec<f64>>,
    train_labels: Vec<bool>,
    hold_rows: Vec<Vec<f64>>,
    hold_labels: Vec<bool>,
}

impl Split {
    /// Labelled, finite rows (outliers only kept out of the normal class), shuffled and split
    /// per class; the error is why the group has too few rows for the GAN.
    fn new(l: &Labelled, cfg: &AugmentConfig, seed: u64) -> std::result::Result<Split, String> {
        let effective = &l.effective;
        let pool: Vec<usize> = (0..l.rows.len())
            .filter(|&i| effective[i].is_some() && l.rows[i].iter().all(|v| v.is_finite()))
            .filter(|&i| effective[i] == Some(1) || !l.outlier[i])
            .collect();
        let (mut pos, mut neg): (Vec<usize>, Vec<usize>) =
            pool.iter().partition(|&&i| effective[i] == Some(1));
        if pos.len() < cfg.min_defect_rows || neg.len() < 2 {
            return Err(format!(
                "{} defect and {} normal rows; the GAN needs at least {} defect and 2 normal rows",
                pos.len(),
                neg.len(),
                cfg.min_defect_rows
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        pos.shuffle(&mut rng);
        neg.shuffle(&mut rng);
        let hold = |n: usize| ((n as f64 * cfg.holdout_fraction).round() as usize).clamp(1, n - 1);
        let (hp, hn) = (hold(pos.len()), hold(neg.len()));
        let holdout: Vec<usize> = pos[..hp].iter().chain(&neg[..hn]).copied().collect();
        let train: Vec<usize> = pos[hp..].iter().chain(&neg[hn..]).copied().collect();
        let take = |idx: &[usize]| -> Vec<Vec<f64>> { idx.iter().map(|&i| l.rows[i].clone()).collect() };
        let labels = |idx: &[usize]| -> Vec<bool> { idx.iter().map(|&i| effective[i] == Some(1)).collect() };
        Ok(Split {
            train_rows: take(&train),
            train_labels: labels(&train),
            hold_rows: take(&holdout),
            hold_labels: labels(&holdout),
        })
    }
}

/// Up to `MAX_PLOTTED` columns for the distribution plots: the gate's worst KS columns first.
const MAX_PLOTTED: usize = 6;

fn distributions(
    plots: &mut GroupPlots,
    features: &[String],
    rows: &[Vec<f64>],
    effective: &[Option<u8>],
    outlier: &[bool],
    synthetic: &[Vec<f64>],
    gate: Option<&GateReport>,
) {
    let mut order: Vec<usize> = (0..features.len()).collect();
    if let Some(g) = gate {
        order.sort_by(|&a, &b| g.columns[b].statistic.total_cmp(&g.columns[a].statistic).then(a.cmp(&b)));
    }
    for &j in order.iter().take(MAX_PLOTTED) {
        let pick = |want: u8| -> Vec<f64> {
            (0..rows.len())
                .filter(|&i| effective[i] == Some(want) && (want == 1 || !outlier[i]))
                .map(|i| rows[i][j])
                .collect()
        };
        let synth = synthetic.iter().map(|r| r[j]).collect();
        plots.distributions.push(Distribution {
            column: features[j].clone(),
            normal: pick(0),
            defect: pick(1),
            synthetic: synth,
        });
    }
}
