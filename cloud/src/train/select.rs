//! Which family becomes a key's candidate, decided on data the models were not fitted on.
//!
//! - **Labelled** (at least `--min-val-defects` defective windows among those the threshold is
//!   picked on): the higher PR-AUC (average precision) there.
//! - **Label-free**: false-alarm stability. The validation part's good windows, in time order,
//!   are cut in halves; each family's threshold is set for `1 − quantile` false alarms on the
//!   first half (conformal, as the threshold itself) and the family whose false-alarm rate on
//!   the second half lands nearer that intended rate wins: its threshold will hold on new shots.
//!
//! Within [`PR_AUC_TIE`] or [`FALSE_ALARM_TIE`] the simpler family wins (candidates are given
//! simplest first), as it does when there are too few windows to tell.

use serde::Serialize;
use std::collections::BTreeMap;

/// PR-AUC differences up to this count as a tie.
pub const PR_AUC_TIE: f64 = 0.01;
/// Differences in |false-alarm rate − intended| up to this count as a tie.
pub const FALSE_ALARM_TIE: f64 = 0.005;
/// Fewest good validation windows per half for the label-free comparison.
pub const MIN_HALF: usize = 20;

/// What a family's scores on unseen windows look like.
pub struct Scored<'a> {
    /// The family (`pca`, `lstm_ae`).
    pub kind: &'a str,
    /// Scores of the windows the threshold is picked on (validation, then held-out training
    /// windows with a defect), with their labels.
    pub pick: (&'a [f32], &'a [Option<u8>]),
    /// Scores of the validation windows in time order, with their labels.
    pub val: (&'a [f32], &'a [Option<u8>]),
}

/// How the choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// One family was fitted.
    OnlyCandidate,
    /// Highest PR-AUC on labelled windows.
    PrAuc,
    /// False-alarm rate nearest the intended one on the later half of validation.
    FalseAlarmStability,
    /// Too few windows to compare: the simplest family.
    Simplest,
}

/// The choice for one key, with each family's figure under the criterion.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// The family chosen.
    pub kind: String,
    /// How.
    pub criterion: Criterion,
    /// The figure per family: PR-AUC, or |false-alarm rate − intended| (lower is better).
    pub figures: BTreeMap<String, f64>,
    /// The choice in words, for the report.
    pub reason: String,
}

/// Chooses among `candidates` (simplest first; at least one).
pub fn select(candidates: &[Scored<'_>], min_positives: usize, quantile: f64) -> Selection {
    let first = candidates.first().map_or("", |c| c.kind).to_string();
    if candidates.len() < 2 {
        return Selection {
            kind: first.clone(),
            criterion: Criterion::OnlyCandidate,
            figures: BTreeMap::new(),
            reason: format!("{first} was the only family fitted"),
        };
    }
    let labelled = |c: &Scored<'_>| -> (Vec<f32>, Vec<u8>) {
        c.pick.0.iter().zip(c.pick.1).filter_map(|(s, l)| l.map(|l| (*s, l))).unzip()
    };
    let (_, labels) = labelled(&candidates[0]);
    let positives = labels.iter().filter(|l| **l == 1).count();
    if positives >= min_positives.max(1) && positives < labels.len() {
        let figures: Vec<f64> = candidates
            .iter()
            .map(|c| {
                let (s, l) = labelled(c);
                super::metrics::average_precision(&s, &l).unwrap_or(0.0)
            })
            .collect();
        return pick(
            candidates,
            &figures,
            Criterion::PrAuc,
            |a, b| a > b + PR_AUC_TIE,
            |k, v| {
                format!(
                    "{k} has the highest PR-AUC ({v:.3}) on {positives} defective of {} unseen windows",
                    labels.len()
                )
            },
        );
    }
    let intended = 1.0 - quantile;
    let drift: Option<Vec<f64>> = candidates.iter().map(|c| false_alarm_drift(c.val, quantile)).collect();
    match drift {
        Some(figures) => pick(
            candidates,
            &figures,
            Criterion::FalseAlarmStability,
            |a, b| a + FALSE_ALARM_TIE < b,
            |k, v| {
                format!(
                    "no labelled defects to compare on: {k}'s threshold holds best on later good windows \
                     (false-alarm rate off the intended {intended:.3} by {v:.3})"
                )
            },
        ),
        None => Selection {
            kind: first.clone(),
            criterion: Criterion::Simplest,
            figures: BTreeMap::new(),
            reason: format!(
                "too few labelled defects and under {} good validation windows to compare: the simplest \
                 family, {first}",
                2 * MIN_HALF
            ),
        },
    }
}

/// The winner under `better` (ties keep the earlier, simpler candidate).
fn pick(
    candidates: &[Scored<'_>],
    figures: &[f64],
    criterion: Criterion,
    better: impl Fn(f64, f64) -> bool,
    reason: impl Fn(&str, f64) -> String,
) -> Selection {
    let mut best = 0;
    for i in 1..candidates.len() {
        if better(figures[i], figures[best]) {
            best = i;
        }
    }
    Selection {
        kind: candidates[best].kind.to_string(),
        criterion,
        figures: candidates.iter().zip(figures).map(|(c, v)| (c.kind.to_string(), *v)).collect(),
        reason: reason(candidates[best].kind, figures[best]),
    }
}

/// |false-alarm rate on the later half − (1 − quantile)| with the threshold set on the earlier
/// half of the good validation windows; `None` with fewer than [`MIN_HALF`] in a half.
fn false_alarm_drift(val: (&[f32], &[Option<u8>]), quantile: f64) -> Option<f64> {
    let good: Vec<f32> = val.0.iter().zip(val.1).filter(|(_, l)| **l != Some(1)).map(|(s, _)| *s).collect();
    let half = good.len() / 2;
    if half < MIN_HALF {
        return None;
    }
    let t = super::metrics::conformal_threshold(&good[..half], 1.0 - quantile);
    let late = &good[half..];
    let rate = late.iter().filter(|&&s| s > t).count() as f64 / late.len() as f64;
    Some((rate - (1.0 - quantile)).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored<'a>(kind: &'a str, s: &'a [f32], l: &'a [Option<u8>]) -> Scored<'a> {
        Scored { kind, pick: (s, l), val: (s, l) }
    }

    #[test]
    fn labelled_defects_pick_the_better_ranking_and_ties_go_to_the_simpler() {
        let labels: Vec<Option<u8>> = (0..40).map(|i| Some(u8::from(i % 10 == 0))).collect();
        let good: Vec<f32> = (0..40).map(|i| if i % 10 == 0 { 5.0 } else { i as f32 / 40.0 }).collect();
        let poor: Vec<f32> = (0..40).map(|i| (i * 7 % 40) as f32).collect();
        let s = select(&[scored("pca", &poor, &labels), scored("lstm_ae", &good, &labels)], 3, 0.99);
        assert_eq!((s.kind.as_str(), s.criterion), ("lstm_ae", Criterion::PrAuc), "{s:?}");
        let tie = select(&[scored("pca", &good, &labels), scored("lstm_ae", &good, &labels)], 3, 0.99);
        assert_eq!(tie.kind, "pca");
    }

    #[test]
    fn without_labels_the_threshold_that_holds_wins() {
        let none = vec![None; 200];
        // Steady scores: the early quantile holds. Drifting upward: the late half alarms all.
        let steady: Vec<f32> = (0..200).map(|i| ((i * 37) % 100) as f32).collect();
        let drifting: Vec<f32> = (0..200).map(|i| i as f32).collect();
        let s = select(&[scored("pca", &drifting, &none), scored("lstm_ae", &steady, &none)], 3, 0.9);
        assert_eq!((s.kind.as_str(), s.criterion), ("lstm_ae", Criterion::FalseAlarmStability), "{s:?}");
        assert!(s.figures["pca"] > 0.8 && s.figures["lstm_ae"] < 0.05, "{s:?}");
        let few = select(
            &[scored("pca", &drifting[..30], &none[..30]), scored("x", &steady[..30], &none[..30])],
            3,
            0.9,
        );
        assert_eq!((few.kind.as_str(), few.criterion), ("pca", Criterion::Simplest));
    }
}
