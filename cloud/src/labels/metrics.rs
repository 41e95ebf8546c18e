//! Precision and recall of live alarms against labels, with 95 % intervals that respect
//! correlated shots: counts per cluster (a lot, or a production run), a seeded cluster
//! bootstrap over those clusters joined with the Wilson interval of the pooled counts; and the
//! bounds a lot's defect count alone allows.
//!
//! Shots of one lot share material, settings, operator and the fault of the hour: they are not
//! independent draws, so the Wilson interval of the shot counts alone is too narrow (the test
//! `intervals_cover_the_truth_under_lot_correlation` measures it covering about half the
//! time). Resampling whole clusters keeps that correlation in every resample. With few
//! clusters the bootstrap cannot show the uncertainty (one cluster: no spread at all), so the
//! interval reported is the union of both: never narrower than the one independent shots would
//! give, wider where lots disagree.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// z of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Bootstrap resamples per interval.
pub const ROUNDS: usize = 1000;

/// Confusion counts of labelled shots: an alarm is a positive call, a defective part a
/// positive truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Alarms on defective parts.
    pub tp: u64,
    /// Alarms on good parts.
    pub fp: u64,
    /// Defective parts without an alarm.
    pub fn_: u64,
    /// Good parts without an alarm.
    pub tn: u64,
}

impl Counts {
    /// Adds one labelled shot.
    pub fn add(&mut self, alarm: bool, defective: bool) {
        match (alarm, defective) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Adds another's counts.
    pub fn merge(&mut self, other: &Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    /// Labelled shots counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// tp / (tp + fp); `None` without an alarm.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); `None` without a defective part.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// A rate with its 95 % interval; all `None` when it is undefined (no alarm, no defect).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Rate {
    /// The rate over all labelled shots.
    pub value: Option<f64>,
    /// Lower end of the interval.
    pub low: Option<f64>,
    /// Upper end of the interval.
    pub high: Option<f64>,
}

/// The Wilson score interval of `successes` out of `trials` at 95 %; `None` without trials.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let (n, p) = (trials as f64, successes as f64 / trials as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Precision and recall with intervals, from the counts of each cluster.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Quality {
    /// Precision: the share of alarms on defective parts.
    pub precision: Rate,
    /// Recall: the share of defective parts alarmed.
    pub recall: Rate,
}

/// Precision from `precision_clusters` and recall from `recall_clusters` (per-cluster counts),
/// each the union of the Wilson interval of the pooled counts and the 2.5–97.5 percentiles of
/// `rounds` cluster-bootstrap resamples (seeded).
pub fn quality(
    precision_clusters: &[Counts],
    recall_clusters: &[Counts],
    rounds: usize,
    seed: u64,
) -> Quality {
    Quality {
        precision: rate(precision_clusters, rounds, seed, |c| (c.tp, c.tp + c.fp)),
        recall: rate(recall_clusters, rounds, seed ^ 0x5eed, |c| (c.tp, c.tp + c.fn_)),
    }
}

/// One rate (`part` gives successes and trials of a cluster) with its joined interval.
fn rate(clusters: &[Counts], rounds: usize, seed: u64, part: impl Fn(&Counts) -> (u64, u64)) -> Rate {
    let pairs: Vec<(u64, u64)> = clusters.iter().map(&part).filter(|(_, n)| *n > 0).collect();
    let (hits, trials) = pairs.iter().fold((0, 0), |(h, n), (a, b)| (h + a, n + b));
    let Some((w_low, w_high)) = wilson(hits, trials) else { return Rate::default() };
    let (b_low, b_high) = cluster_bootstrap(&pairs, rounds, seed).unwrap_or((w_low, w_high));
    Rate { value: ratio(hits, trials), low: Some(w_low.min(b_low)), high: Some(w_high.max(b_high)) }
}

/// The 2.5th and 97.5th percentiles of the pooled rate over `rounds` resamples of whole
/// clusters `(successes, trials)` drawn with replacement; `None` without clusters or rounds.
pub fn cluster_bootstrap(clusters: &[(u64, u64)], rounds: usize, seed: u64) -> Option<(f64, f64)> {
    if clusters.is_empty() || rounds == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (mut hits, mut trials) = (0u64, 0u64);
        for _ in 0..clusters.len() {
            let (h, n) = clusters[rng.random_range(0..clusters.len())];
            hits += h;
            trials += n;
        }
        if trials > 0 {
            samples.push(hits as f64 / trials as f64);
        }
    }
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples.get(((samples.len().saturating_sub(1)) as f64 * p).round() as usize).copied();
    Some((q(0.025)?, q(0.975)?))
}

/// What a lot's counts alone allow when its shots carry no label of their own: with `alarms`
/// alarms and `defects` defective parts among `shots`, the alarms on defective parts number
/// at least `alarms + defects − shots` and at most `min(alarms, defects)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LotBounds {
    /// Scored shots.
    pub shots: u64,
    /// Alarms among them.
    pub alarms: u64,
    /// Defective parts among them (the lot's defect ratio times its shots, rounded).
    pub defects: u64,
    /// Fewest alarms on defective parts the counts allow.
    pub tp_low: u64,
    /// Most alarms on defective parts the counts allow.
    pub tp_high: u64,
}

impl LotBounds {
    /// The bounds of one lot (`defects` capped at `shots`).
    pub fn of(shots: u64, alarms: u64, defects: u64) -> LotBounds {
        let (alarms, defects) = (alarms.min(shots), defects.min(shots));
        LotBounds {
            shots,
            alarms,
            defects,
            tp_low: (alarms + defects).saturating_sub(shots),
            tp_high: alarms.min(defects),
        }
    }

    /// Adds another lot's counts and bounds.
    pub fn merge(&mut self, other: &LotBounds) {
        self.shots += other.shots;
        self.alarms += other.alarms;
        self.defects += other.defects;
        self.tp_low += other.tp_low;
        self.tp_high += other.tp_high;
    }

    /// The precision the counts allow, `[low, high]`; `None` without an alarm.
    pub fn precision(&self) -> Option<[f64; 2]> {
        Some([ratio(self.tp_low, self.alarms)?, ratio(self.tp_high, self.alarms)?])
    }

    /// The recall the counts allow, `[low, high]`; `None` without a defective part.
    pub fn recall(&self) -> Option<[f64; 2]> {
        Some([ratio(self.tp_low, self.defects)?, ratio(self.tp_high, self.defects)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_give_precision_and_recall_by_hand() {
        let mut c = Counts::default();
        for (alarm, defective, n) in [(true, true, 3), (true, false, 1), (false, true, 2), (false, false, 10)]
        {
            (0..n).for_each(|_| c.add(alarm, defective));
        }
        assert_eq!(c, Counts { tp: 3, fp: 1, fn_: 2, tn: 10 });
        assert_eq!(c.precision(), Some(0.75));
        assert_eq!(c.recall(), Some(0.6));
        assert_eq!(Counts { tn: 5, ..Default::default() }.precision(), None, "no alarm: undefined");
    }

    #[test]
    fn wilson_matches_the_textbook_values() {
        // 8 of 10 at 95 %: [0.4902, 0.9433] (Wilson 1927; e.g. Newcombe 1998, table I).
        let (low, high) = wilson(8, 10).expect("interval");
        assert!((low - 0.4902).abs() < 1e-4 && (high - 0.9433).abs() < 1e-4, "{low} {high}");
        let (low, high) = wilson(0, 5).expect("interval");
        assert!(low == 0.0 && (high - 0.4345).abs() < 1e-4, "{low} {high}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn one_cluster_falls_back_to_wilson_and_disagreeing_lots_widen_the_interval() {
        let one = [Counts { tp: 8, fp: 2, ..Default::default() }];
        let q = quality(&one, &one, ROUNDS, 1);
        let (low, high) = wilson(8, 10).expect("wilson");
        assert_eq!((q.precision.low, q.precision.high), (Some(low), Some(high)));
        // Same pooled counts (40 of 50), but lots all-right or all-wrong: much wider.
        let lots: Vec<Counts> = (0..5)
            .map(|i| {
                if i < 4 {
                    Counts { tp: 10, ..Default::default() }
                } else {
                    Counts { fp: 10, ..Default::default() }
                }
            })
            .collect();
        let even: Vec<Counts> = (0..5).map(|_| Counts { tp: 8, fp: 2, ..Default::default() }).collect();
        let (q_lots, q_even) = (quality(&lots, &lots, ROUNDS, 1), quality(&even, &even, ROUNDS, 1));
        assert_eq!(q_lots.precision.value, Some(0.8));
        assert_eq!(q_even.precision.value, Some(0.8));
        let width = |r: Rate| r.high.unwrap_or(0.0) - r.low.unwrap_or(1.0);
        assert!(
            width(q_lots.precision) > 1.5 * width(q_even.precision),
            "{:?} vs {:?}",
            q_lots.precision,
            q_even.precision
        );
        assert_eq!(q_lots.recall.value, Some(1.0), "no defect missed");
    }

    /// Simulated plants whose lots differ (a lot's alarms are right 20 % or 80 % of the time,
    /// half the lots each; true precision 0.5): the reported interval covers 0.5 in most
    /// plants, the Wilson interval of the shot counts alone in few.
    #[test]
    fn intervals_cover_the_truth_under_lot_correlation() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (plants, lots, alarms_per_lot) = (200, 20, 30);
        let (mut covered, mut wilson_covered) = (0, 0);
        for plant in 0..plants {
            let clusters: Vec<Counts> = (0..lots)
                .map(|_| {
                    let right = if rng.random_bool(0.5) { 0.2 } else { 0.8 };
                    let tp = (0..alarms_per_lot).filter(|_| rng.random_bool(right)).count() as u64;
                    Counts { tp, fp: alarms_per_lot - tp, ..Default::default() }
                })
                .collect();
            let q = quality(&clusters, &clusters, 400, plant);
            let (Some(low), Some(high)) = (q.precision.low, q.precision.high) else { panic!("defined") };
            covered += usize::from(low <= 0.5 && 0.5 <= high);
            let pooled = clusters.iter().fold(Counts::default(), |mut a, c| {
                a.merge(c);
                a
            });
            let (wl, wh) = wilson(pooled.tp, pooled.tp + pooled.fp).expect("wilson");
            wilson_covered += usize::from(wl <= 0.5 && 0.5 <= wh);
        }
        let (rate, wilson_rate) = (covered as f64 / plants as f64, wilson_covered as f64 / plants as f64);
        eprintln!("coverage: reported {rate:.3}, Wilson on shots alone {wilson_rate:.3}");
        assert!(rate >= 0.88, "the reported interval covers the truth in {rate}");
        assert!(wilson_rate < 0.7, "the shots-alone interval should under-cover here: {wilson_rate}");
    }

    #[test]
    fn lot_bounds_follow_from_the_counts() {
        // 10 shots, 3 alarms, 4 defective: at least 0 and at most 3 alarms were right.
        let b = LotBounds::of(10, 3, 4);
        assert_eq!((b.tp_low, b.tp_high), (0, 3));
        assert_eq!(b.precision(), Some([0.0, 1.0]));
        assert_eq!(b.recall(), Some([0.0, 0.75]));
        // 10 shots, 8 alarms, 6 defective: at least 4 alarms hit defects.
        let b = LotBounds::of(10, 8, 6);
        assert_eq!((b.tp_low, b.tp_high), (4, 6));
        assert_eq!(b.precision(), Some([0.5, 0.75]));
        // A clean lot: every alarm was false.
        let clean = LotBounds::of(10, 2, 0);
        assert_eq!(clean.precision(), Some([0.0, 0.0]));
        assert_eq!(clean.recall(), None);
    }
}
