//! The families' scores combined into one, measured beside the selection (not shipped).
//!
//! Each family's score is divided by its own label-free scale — the threshold that gives the
//! target false-alarm rate on the good validation windows (conformal, as a label-free
//! threshold is) — and a window's combined score is the largest of those ratios: it rises when
//! any family would alarm, so a persistence-blind family and a jump-blind one cover each other.
//! The combination then goes through exactly the threshold choice and the evaluation each
//! family gets ([`super::run`]'s `judge`), so its figures compare with theirs on the same test
//! windows. The train report shows it as `combined`; `docs/training.md` says what it measured.

use super::run::PartScores;
use moldops_models::score::Scores;

/// The combined scores of `families` (at least two) on every part, or `None` with fewer.
pub(super) fn combine(
    families: &[&PartScores],
    val_labels: &[Option<u8>],
    quantile: f64,
) -> Option<PartScores> {
    if families.len() < 2 {
        return None;
    }
    let scales: Vec<f32> = families.iter().map(|f| scale(f, val_labels, quantile)).collect();
    let part = |of: fn(&PartScores) -> &Scores| -> Scores {
        let n = of(families[0]).score.len();
        let score = (0..n)
            .map(|i| {
                families
                    .iter()
                    .zip(&scales)
                    .map(|(f, s)| of(f).score[i] / s)
                    .fold(f32::NEG_INFINITY, f32::max)
            })
            .collect();
        Scores { score, contributions: Vec::new() }
    };
    Some(PartScores {
        train: part(|p| &p.train),
        val: part(|p| &p.val),
        held: part(|p| &p.held),
        test: part(|p| &p.test),
    })
}

/// The family's threshold for `1 − quantile` false alarms on the good validation windows (the
/// clean training windows when validation has none); positive, so dividing by it keeps order.
fn scale(scores: &PartScores, val_labels: &[Option<u8>], quantile: f64) -> f32 {
    let good: Vec<f32> =
        scores.val.score.iter().zip(val_labels).filter(|(_, l)| **l != Some(1)).map(|(s, _)| *s).collect();
    let from = if good.is_empty() { &scores.train.score } else { &good };
    let t = super::metrics::conformal_threshold(from, 1.0 - quantile);
    // No good window to scale by (an empty set gives f32::MAX): the raw score.
    if t > 0.0 && t < f32::MAX { t } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(s: &[f32]) -> Scores {
        Scores { score: s.to_vec(), contributions: Vec::new() }
    }

    fn part(val: &[f32], test: &[f32]) -> PartScores {
        PartScores { train: scores(&[]), val: scores(val), held: scores(&[]), test: scores(test) }
    }

    #[test]
    fn each_family_counts_over_its_own_scale_and_the_largest_ratio_wins() {
        // Family a's good validation scores reach 10, b's reach 1: b's 3 is the larger alarm.
        let val_a: Vec<f32> = (1..=10).map(|i| i as f32).collect();
        let val_b: Vec<f32> = (1..=10).map(|i| i as f32 / 10.0).collect();
        let labels = vec![Some(0); 10];
        let (a, b) = (part(&val_a, &[5.0, 20.0, 1.0]), part(&val_b, &[0.5, 0.1, 3.0]));
        let c = combine(&[&a, &b], &labels, 0.9).expect("two families");
        assert_eq!(c.test.score, [0.5, 2.0, 3.0]);
        assert_eq!(c.val.score.len(), 10);
        // A defective validation window does not set the scale.
        let mut labelled = labels.clone();
        labelled[9] = Some(1);
        let d = combine(&[&a, &b], &labelled, 0.9).expect("two families");
        assert!((d.test.score[1] - 20.0 / 9.0).abs() < 1e-6, "{:?}", d.test.score);
        assert!(combine(&[&a], &labels, 0.9).is_none(), "one family has nothing to combine");
    }
}
