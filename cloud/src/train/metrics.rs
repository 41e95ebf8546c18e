//! How well scores separate defective from good windows: precision, recall and F1 at a
//! threshold (a window is flagged when `score > threshold`), PR-AUC (average precision),
//! ROC-AUC (Mann–Whitney, ties counted half), each with a seeded percentile-bootstrap 95 %
//! confidence interval; and the threshold choice on validation data.
//!
//! Windows of W consecutive shots overlap by W − 1 shots, and a fault lasts many shots, so
//! neighbouring windows are not independent: the bootstrap is a moving-block one (blocks of
//! [`block_len`] consecutive windows, in time order, drawn with replacement), which keeps that
//! correlation inside each resample instead of pretending to n independent draws.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts and rates at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct AtThreshold {
    /// True positives: defective windows flagged.
    pub tp: u64,
    /// False positives: good windows flagged.
    pub fp: u64,
    /// False negatives: defective windows not flagged.
    pub fn_: u64,
    /// True negatives: good windows not flagged.
    pub tn: u64,
    /// tp / (tp + fp), 0 when nothing is flagged.
    pub precision: f64,
    /// tp / (tp + fn), 0 without a defective window.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
}

/// Flags `score > threshold` against `labels` (1 defective).
pub fn at_threshold(scores: &[f32], labels: &[u8], threshold: f32) -> AtThreshold {
    let mut m = AtThreshold::default();
    for (&s, &l) in scores.iter().zip(labels) {
        match (s > threshold, l == 1) {
            (true, true) => m.tp += 1,
            (true, false) => m.fp += 1,
            (false, true) => m.fn_ += 1,
            (false, false) => m.tn += 1,
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    m.precision = ratio(m.tp, m.tp + m.fp);
    m.recall = ratio(m.tp, m.tp + m.fn_);
    m.f1 = if m.precision + m.recall > 0.0 {
        2.0 * m.precision * m.recall / (m.precision + m.recall)
    } else {
        0.0
    };
    m
}

/// ROC-AUC; `None` without both classes.
pub fn roc_auc(scores: &[f32], labels: &[u8]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) with ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += idx[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64 * avg;
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l == 1).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    Some((rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Average precision (area under the precision–recall curve, step-wise, tied scores taken
/// together, as scikit-learn's); `None` without a positive.
pub fn average_precision(scores: &[f32], labels: &[u8]) -> Option<f64> {
    moldops_learn::metrics::average_precision_by(scores.len(), |i| f64::from(scores[i]), |i| labels[i] == 1)
}

/// A value with its bootstrap 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The metric on all windows; `None` when undefined (AUCs without the classes they need).
    pub value: Option<f64>,
    /// 2.5th percentile of the bootstrap values; `None` without any.
    pub ci_low: Option<f64>,
    /// 97.5th percentile of the bootstrap values; `None` without any.
    pub ci_high: Option<f64>,
}

/// Everything reported for one model on one labelled set at one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Windows scoring above it are flagged.
    pub threshold: f32,
    /// Labelled windows evaluated.
    pub windows: usize,
    /// Defective windows among them (label 1).
    pub positives: usize,
    /// Confusion counts, precision, recall and F1 at the threshold.
    pub counts: AtThreshold,
    /// Precision at the threshold, with its interval.
    pub precision: Estimate,
    /// Recall at the threshold, with its interval.
    pub recall: Estimate,
    /// F1 at the threshold, with its interval.
    pub f1: Estimate,
    /// PR-AUC (average precision, independent of the threshold), with its interval.
    pub pr_auc: Estimate,
    /// ROC-AUC (independent of the threshold), with its interval.
    pub roc_auc: Estimate,
}

/// Block length of the moving-block bootstrap for `n` windows of `window` shots: at least the
/// window (what two windows share) and at least ∛n (the usual rate for block bootstraps).
pub fn block_len(n: usize, window: usize) -> usize {
    let cube_root = (n as f64).cbrt().ceil() as usize;
    window.max(cube_root).clamp(1, n.max(1))
}

impl Estimate {
    /// `value` with the 2.5th and 97.5th percentiles of its bootstrap `samples`.
    fn of(value: Option<f64>, mut samples: Vec<f64>) -> Estimate {
        samples.sort_by(f64::total_cmp);
        let q = |p: f64| {
            (!samples.is_empty()).then(|| samples[((samples.len() - 1) as f64 * p).round() as usize])
        };
        Estimate { value, ci_low: q(0.025), ci_high: q(0.975) }
    }
}

/// Calls `each` with `rounds` moving-block resamples of the indices `0..n` (blocks of `block`
/// consecutive indices drawn with replacement, cut to n), seeded; none when `n` is 0.
fn block_bootstrap(n: usize, rounds: usize, block: usize, seed: u64, mut each: impl FnMut(&[usize])) {
    if n == 0 {
        return;
    }
    let block = block.clamp(1, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = Vec::with_capacity(n + block);
    for _ in 0..rounds {
        idx.clear();
        while idx.len() < n {
            let start = rng.random_range(0..=n - block);
            idx.extend(start..start + block);
        }
        idx.truncate(n);
        each(&idx);
    }
}

/// Evaluates time-ordered `scores` against `labels` at `threshold`, with `rounds` moving-block
/// bootstrap resamples in blocks of `block` windows.
pub fn evaluate(
    scores: &[f32],
    labels: &[u8],
    threshold: f32,
    rounds: usize,
    block: usize,
    seed: u64,
) -> Evaluation {
    type Metric = fn(&[f32], &[u8], f32) -> Option<f64>;
    let metrics: [Metric; 5] = [
        |s, l, t| Some(at_threshold(s, l, t).precision),
        |s, l, t| Some(at_threshold(s, l, t).recall),
        |s, l, t| Some(at_threshold(s, l, t).f1),
        |s, l, _| average_precision(s, l),
        |s, l, _| roc_auc(s, l),
    ];
    let n = scores.len();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); metrics.len()];
    let (mut bs, mut bl) = (Vec::with_capacity(n), Vec::with_capacity(n));
    block_bootstrap(n, rounds, block, seed, |idx| {
        bs.clear();
        bl.clear();
        bs.extend(idx.iter().map(|&i| scores[i]));
        bl.extend(idx.iter().map(|&i| labels[i]));
        for (m, out) in metrics.iter().zip(&mut samples) {
            if let Some(v) = m(&bs, &bl, threshold) {
                out.push(v);
            }
        }
    });
    let est = |k: usize| Estimate::of(metrics[k](scores, labels, threshold), samples[k].clone());
    Evaluation {
        threshold,
        windows: n,
        positives: labels.iter().filter(|&&l| l == 1).count(),
        counts: at_threshold(scores, labels, threshold),
        precision: est(0),
        recall: est(1),
        f1: est(2),
        pr_auc: est(3),
        roc_auc: est(4),
    }
}

/// How the threshold was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdChoice {
    /// The chosen threshold: a window is flagged when its score is above it.
    pub threshold: f32,
    /// `conformal` (for a false-alarm rate of `1 − quantile` on good validation windows);
    /// `best_f1` (enough defective windows among those the threshold is picked on: validation
    /// and, unless `--val-only-threshold`, the training part's defective windows, and the best
    /// F1 threshold is at least the conformal one) or `best_f1_at_target` (the best-F1 threshold
    /// was lower: the conformal one is kept).
    pub method: String,
    /// F1 at the threshold on the windows it was picked on (best_f1 only).
    pub validation_f1: Option<f64>,
    /// `1 −` the false-alarm target the threshold respects.
    pub quantile: Option<f64>,
}

/// Picks a threshold for a false-alarm rate of at most `1 − quantile`: the conformal threshold
/// on `calibration`, the scores of good windows from a slice of time the model was not fitted on
/// ([`conformal_threshold`]). With at least `min_positives` defective windows among `scores` (the
/// windows the weights were not fitted on, with their `labels`), the threshold maximising F1
/// there instead (halfway between the lowest flagged score and the next lower score; ties go to
/// the higher threshold) when it is the stricter of the two; otherwise the conformal one
/// (`best_f1_at_target`): labels may raise the threshold, never lower it below the target's.
pub fn choose_threshold(
    scores: &[f32],
    labels: &[Option<u8>],
    min_positives: usize,
    quantile: f64,
    calibration: &[f32],
) -> ThresholdChoice {
    let labelled: Vec<(f32, u8)> =
        scores.iter().zip(labels).filter_map(|(&s, l)| l.map(|l| (s, l))).collect();
    let positives = labelled.iter().filter(|(_, l)| *l == 1).count();
    if positives >= min_positives && positives > 0 {
        let mut sorted: Vec<f32> = labelled.iter().map(|(s, _)| *s).collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        sorted.dedup();
        let (s, l): (Vec<f32>, Vec<u8>) = labelled.into_iter().unzip();
        let mut best = (f64::NEG_INFINITY, f32::INFINITY);
        for (k, &cut) in sorted.iter().enumerate() {
            // Flag everything >= cut: threshold just below it.
            let below = sorted.get(k + 1).copied().unwrap_or(cut - 1.0);
            let t = below + (cut - below) / 2.0;
            let f1 = at_threshold(&s, &l, t).f1;
            if f1 > best.0 {
                best = (f1, t);
            }
        }
        // Labels may make the threshold stricter than the false-alarm target, never looser.
        let floor = conformal_threshold(calibration, 1.0 - quantile);
        let (threshold, method) =
            if best.1 >= floor { (best.1, "best_f1") } else { (floor, "best_f1_at_target") };
        return ThresholdChoice {
            threshold,
            method: method.into(),
            validation_f1: Some(best.0),
            quantile: Some(quantile),
        };
    }
    ThresholdChoice {
        threshold: conformal_threshold(calibration, 1.0 - quantile),
        method: "conformal".into(),
        validation_f1: None,
        quantile: Some(quantile),
    }
}

/// Split-conformal threshold for a false-alarm rate of at most `alpha` on new good windows
/// exchangeable with `good` (the calibration scores): the ⌈(n+1)(1−α)⌉-th smallest of the n
/// scores, so a new window exceeds it with probability ≤ α. With too few scores for `alpha`
/// (n < 1/α − 1) that rank is past the largest and the largest is taken: the achieved rate may
/// then be above α (the report shows it). `f32::MAX` without any score.
pub fn conformal_threshold(good: &[f32], alpha: f64) -> f32 {
    let mut sorted: Vec<f32> = good.iter().copied().filter(|s| !s.is_nan()).collect();
    if sorted.is_empty() {
        return f32::MAX;
    }
    sorted.sort_by(f32::total_cmp);
    let n = sorted.len();
    let rank = (((n + 1) as f64) * (1.0 - alpha.clamp(0.0, 1.0))).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// False alarms of a threshold: intended, on the calibration slice, and achieved on the test
/// part's good windows with a moving-block bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalseAlarms {
    /// The rate the threshold was set for at most (`1 − quantile`): the manifest's
    /// `false_alarm_target`.
    pub target: f64,
    /// Good windows of the calibration slice (validation).
    pub calibration_windows: usize,
    /// Share of them above the threshold.
    pub calibration_rate: Option<f64>,
    /// Good (not defective-labelled) test windows.
    pub test_windows: usize,
    /// Share of them above the threshold, with its interval.
    pub test_rate: Estimate,
    /// Whether the target lies within the test rate's interval (`None` without test windows).
    pub target_within_interval: Option<bool>,
}

/// The share of `hits` that are true, with a moving-block bootstrap interval (`rounds`
/// resamples in blocks of `block`, seeded); no value for no hits at all, and no interval when
/// one block holds them all (every resample would be the sample itself: a zero-width interval
/// that would look certain).
pub fn share(hits: &[bool], rounds: usize, block: usize, seed: u64) -> Estimate {
    if hits.len() <= block {
        let value =
            (!hits.is_empty()).then(|| hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64);
        return Estimate { value, ci_low: None, ci_high: None };
    }
    let mut samples = Vec::with_capacity(rounds);
    block_bootstrap(hits.len(), rounds, block, seed, |idx| {
        samples.push(idx.iter().filter(|&&i| hits[i]).count() as f64 / idx.len() as f64);
    });
    let value = (!hits.is_empty()).then(|| hits.iter().filter(|h| **h).count() as f64 / hits.len() as f64);
    Estimate::of(value, samples)
}

/// Recall on the test windows of one defect kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRecall {
    /// Test windows whose last shot is a defect of this kind.
    pub windows: usize,
    /// Of those, the ones that alarmed.
    pub caught: usize,
    /// `caught / windows` with a moving-block bootstrap interval over those windows in time
    /// order (one episode's windows stay together).
    pub recall: Estimate,
}

/// Recall per defect kind at `threshold`: `kinds[i]` is window i's kind when it is defective.
pub fn recall_by_kind(
    scores: &[f32],
    kinds: &[Option<String>],
    threshold: f32,
    rounds: usize,
    window: usize,
    seed: u64,
) -> BTreeMap<String, KindRecall> {
    let mut hits: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for (s, k) in scores.iter().zip(kinds) {
        if let Some(k) = k {
            hits.entry(k.as_str()).or_default().push(*s > threshold);
        }
    }
    hits.into_iter()
        .map(|(kind, h)| {
            let recall = share(&h, rounds, block_len(h.len(), window), seed);
            let caught = h.iter().filter(|x| **x).count();
            (kind.to_string(), KindRecall { windows: h.len(), caught, recall })
        })
        .collect()
}

/// [`FalseAlarms`] of `threshold` for `choice`, from the good calibration and test scores (each
/// in time order).
pub fn false_alarms(
    choice: &ThresholdChoice,
    calibration: &[f32],
    test_good: &[f32],
    rounds: usize,
    block: usize,
    seed: u64,
) -> FalseAlarms {
    let rate = |s: &[f32]| {
        (!s.is_empty()).then(|| s.iter().filter(|&&v| v > choice.threshold).count() as f64 / s.len() as f64)
    };
    let calibration_rate = rate(calibration);
    // A threshold chosen without a target (none today) is judged against what calibration showed.
    let target = choice.quantile.map_or(calibration_rate.unwrap_or(0.0), |q| 1.0 - q);
    let alarms: Vec<bool> = test_good.iter().map(|&v| v > choice.threshold).collect();
    let test_rate = share(&alarms, rounds, block, seed);
    let within = match (test_rate.ci_low, test_rate.ci_high) {
        (Some(lo), Some(hi)) => Some(lo <= target && target <= hi),
        _ => None,
    };
    FalseAlarms {
        target,
        calibration_windows: calibration.len(),
        calibration_rate,
        test_windows: test_good.len(),
        test_rate,
        target_within_interval: within,
    }
}

/// Points of a curve on the unit square.
pub type Curve = Vec<(f64, f64)>;

/// The ROC curve and the precision–recall curve of `scores` against `labels` (1 defective):
/// `(false-positive rate, recall)` and `(recall, precision)` points, one per distinct score,
/// from the strictest threshold down. Empty without both classes.
pub fn curves(scores: &[f32], labels: &[u8]) -> (Curve, Curve) {
    let pos = labels.iter().filter(|l| **l == 1).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return (Vec::new(), Vec::new());
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut roc, mut pr) = (vec![(0.0, 0.0)], Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] == 1 {
            tp += 1.0
        } else {
            fp += 1.0
        }
        let last_of_tie = idx.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            roc.push((fp / neg, tp / pos));
            pr.push((tp / pos, tp / (tp + fp)));
        }
    }
    (roc, pr)
}

/// How soon faults are caught: episodes of consecutive defective windows (in time order) and,
/// for each, how many windows after its onset the first alarm came.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Onsets {
    /// Fault episodes among the labelled windows.
    pub episodes: usize,
    /// Of those, the ones with at least one alarm.
    pub detected: usize,
    /// Per detected episode, windows from its onset to the first alarm (0: at onset).
    pub delays: Vec<usize>,
    /// Median of `delays`.
    pub median_delay: Option<usize>,
    /// Share of each episode's windows that alarmed, averaged over episodes (a model that sees
    /// only the onset of a long fault scores low here even when every episode is "detected").
    pub mean_coverage: Option<f64>,
}

/// [`Onsets`] of time-ordered windows `series` (`(score, label)`) at `threshold`.
pub fn onsets(series: &[(f32, u8)], threshold: f32) -> Onsets {
    let mut out = Onsets::default();
    let mut coverage = Vec::new();
    let mut i = 0;
    while i < series.len() {
        if series[i].1 != 1 {
            i += 1;
            continue;
        }
        let start = i;
        while i < series.len() && series[i].1 == 1 {
            i += 1;
        }
        let episode = &series[start..i];
        out.episodes += 1;
        let alarms = episode.iter().filter(|(s, _)| *s > threshold).count();
        coverage.push(alarms as f64 / episode.len() as f64);
        if let Some(first) = episode.iter().position(|(s, _)| *s > threshold) {
            out.detected += 1;
            out.delays.push(first);
        }
    }
    let mut sorted = out.delays.clone();
    sorted.sort_unstable();
    out.median_delay = sorted.get(sorted.len() / 2).copied();
    out.mean_coverage = (!coverage.is_empty()).then(|| coverage.iter().sum::<f64>() / coverage.len() as f64);
    out
}
