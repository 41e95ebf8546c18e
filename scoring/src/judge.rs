//! The shadow verdict: after a candidate model scored its shadow shots, is it fit to replace
//! the active one? It is not when it alarms too often where the active model saw nothing,
//! when it alarms clearly more often than its own false-alarm target on shots the active
//! model judged good, when its scores sit far from the distribution it showed on its
//! validation data (the bundle's `validation_scores`), or when it produced scores that are not
//! numbers.
//!
//! The edge has no labels, so it cannot tell a real alarm from a false one. What it has is the
//! active model's verdict on the same shot: an alarm both models raise (a sustained fault in
//! the process, say) does not count against the candidate; one only the candidate raises does.
//! Without an active model every alarm counts.

use moldops_shared::bundle::ScoreStats;

/// The significance at which alarms above the tolerated false-alarm rate reject a candidate.
pub const FALSE_ALARM_SIGNIFICANCE: f64 = 0.01;

/// Rollback thresholds (`[models]` config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest share of shadow shots (0 to 1) the candidate may alarm on where the active
    /// model did not (on every shot without an active model) (`models.max_alarm_rate`).
    pub max_alarm_rate: f64,
    /// In validation standard deviations.
    pub max_score_shift: f64,
    /// How many times its manifest's `false_alarm_target` a candidate may alarm on shots the
    /// active model judged good before it is rolled back (`models.false_alarm_tolerance`;
    /// 0 turns the check off).
    pub false_alarm_tolerance: f64,
}

/// One shadow shot: the candidate's score and what the active model made of the same shot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShadowShot {
    /// The candidate's score (NaN when its inference failed).
    pub score: f32,
    /// Whether the active model alarmed on the shot; `None` when none scored it.
    pub active_alarmed: Option<bool>,
}

/// What the shadow run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSummary {
    /// Number of shadow shots judged.
    pub shots: u64,
    /// Share of those shots (0 to 1) whose score was above the manifest's threshold.
    pub alarm_rate: f64,
    /// Share of those shots (0 to 1) the candidate alarmed on and the active model did not.
    pub unshared_alarm_rate: f64,
    /// Mean of their scores.
    pub mean_score: f64,
}

/// Why a candidate is rolled back; its message is the reason the edge reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The shadow run ended without a scored shot.
    #[error("no shadow shots were scored")]
    NoShots,
    /// A score was NaN or infinite.
    #[error("the candidate produced a score that is not a number ({0})")]
    NotANumber(f32),
    /// The candidate alarmed on too many shadow shots the active model passed.
    #[error(
        "alarm rate {rate:.2} over {shots} shadow shots ({unshared:.2} where the active model did not alarm) \
         exceeds max_alarm_rate {max:.2} (validation: {validation:.2})"
    )]
    AlarmRate {
        /// Share of shadow shots (0 to 1) that alarmed.
        rate: f64,
        /// Share of shadow shots (0 to 1) that alarmed where the active model did not (all
        /// alarms without an active model): what is judged.
        unshared: f64,
        /// Number of shadow shots judged.
        shots: u64,
        /// The limit it exceeds, [`Limits::max_alarm_rate`].
        max: f64,
        /// The model's alarm rate on its validation data (the bundle's `validation_scores`),
        /// for comparison.
        validation: f64,
    },
    /// On shots the active model judged good, the candidate alarmed clearly more often than
    /// its false-alarm target, times the tolerance, allows.
    #[error(
        "alarmed on {alarms} of {good} shadow shots the active model judged good ({rate:.3}): above \
         {tolerance} × its false-alarm target {target:.3} (p = {p:.4})"
    )]
    FalseAlarms {
        /// The candidate's alarms on those shots.
        alarms: u64,
        /// Shadow shots the active model scored without alarm.
        good: u64,
        /// `alarms / good`.
        rate: f64,
        /// The manifest's `false_alarm_target`.
        target: f64,
        /// [`Limits::false_alarm_tolerance`].
        tolerance: f64,
        /// Chance of that many alarms or more if the candidate alarmed at `tolerance × target`.
        p: f64,
    },
    /// The candidate's scores sit far from its validation distribution.
    #[error(
        "mean shadow score {mean:.4} is {shift:.1} validation standard deviations from the validation mean {validation_mean:.4} (limit {max:.1})"
    )]
    ScoreShift {
        /// Mean of the shadow scores.
        mean: f64,
        /// Its distance from `validation_mean`, in validation standard deviations.
        shift: f64,
        /// Mean score on the validation data (the bundle's `validation_scores.mean`).
        validation_mean: f64,
        /// The limit `shift` exceeds, [`Limits::max_score_shift`].
        max: f64,
    },
}

/// What the candidate's manifest says about it.
#[derive(Debug, Clone, Copy)]
pub struct Declared<'a> {
    /// Its alarm threshold.
    pub threshold: f32,
    /// The false-alarm rate it was calibrated for (`false_alarm_target`), if the bundle says.
    pub false_alarm_target: Option<f64>,
    /// Its scores on validation data.
    pub validation: &'a ScoreStats,
}

/// `Ok` with the summary when the candidate may be promoted, `Err` with the reason otherwise.
pub fn judge(
    shots: &[ShadowShot],
    declared: &Declared<'_>,
    limits: &Limits,
) -> Result<ShadowSummary, Rejection> {
    if shots.is_empty() {
        return Err(Rejection::NoShots);
    }
    if let Some(bad) = shots.iter().find(|s| !s.score.is_finite()) {
        return Err(Rejection::NotANumber(bad.score));
    }
    let n = shots.len() as f64;
    let alarmed = |s: &&ShadowShot| s.score > declared.threshold;
    let alarms = shots.iter().filter(alarmed).count() as f64;
    let unshared = shots.iter().filter(alarmed).filter(|s| s.active_alarmed != Some(true)).count() as f64;
    let (alarm_rate, unshared_alarm_rate) = (alarms / n, unshared / n);
    let mean_score = shots.iter().map(|s| f64::from(s.score)).sum::<f64>() / n;
    if unshared_alarm_rate > limits.max_alarm_rate {
        return Err(Rejection::AlarmRate {
            rate: alarm_rate,
            unshared: unshared_alarm_rate,
            shots: shots.len() as u64,
            max: limits.max_alarm_rate,
            validation: declared.validation.alarm_rate,
        });
    }
    if let Some(rejection) = false_alarms(shots, declared, limits) {
        return Err(rejection);
    }
    let validation = declared.validation;
    if validation.count > 0 && validation.std > 0.0 {
        let shift = (mean_score - validation.mean).abs() / validation.std;
        if shift > limits.max_score_shift {
            return Err(Rejection::ScoreShift {
                mean: mean_score,
                shift,
                validation_mean: validation.mean,
                max: limits.max_score_shift,
            });
        }
    }
    Ok(ShadowSummary { shots: shots.len() as u64, alarm_rate, unshared_alarm_rate, mean_score })
}

/// The false-alarm check: on the shots the active model scored without alarm, are the
/// candidate's alarms more than a binomial at `tolerance × target` gives with probability
/// [`FALSE_ALARM_SIGNIFICANCE`]? Consecutive shots are not independent (an episode the active
/// model misses alarms many in a row), so this rejects somewhat more readily than the nominal
/// 1 %; a tolerance of several times the target leaves room for that.
fn false_alarms(shots: &[ShadowShot], declared: &Declared<'_>, limits: &Limits) -> Option<Rejection> {
    // A target of 0 promises no false alarm at all: nothing a finite shadow run could test.
    let target = declared.false_alarm_target.filter(|t| *t > 0.0)?;
    // Off at 0 (and at NaN, which the config refuses).
    if limits.false_alarm_tolerance.is_nan() || limits.false_alarm_tolerance <= 0.0 {
        return None;
    }
    let judged: Vec<&ShadowShot> = shots.iter().filter(|s| s.active_alarmed == Some(false)).collect();
    let good = judged.len() as u64;
    let alarms = judged.iter().filter(|s| s.score > declared.threshold).count() as u64;
    let allowed = (target * limits.false_alarm_tolerance).min(1.0);
    let p = binomial_tail(good, alarms, allowed);
    (alarms > 0 && p < FALSE_ALARM_SIGNIFICANCE).then(|| Rejection::FalseAlarms {
        alarms,
        good,
        rate: alarms as f64 / good as f64,
        target,
        tolerance: limits.false_alarm_tolerance,
        p,
    })
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space (no overflow for large n).
fn binomial_tail(n: u64, k: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    // ln P(X = i), from i = 0 upwards: ln C(n, i+1) = ln C(n, i) + ln((n − i) / (i + 1)).
    let mut ln_pmf = n as f64 * ln_q;
    let mut tail = 0.0;
    for i in 0..=n {
        if i >= k {
            tail += ln_pmf.exp();
        }
        if i < n {
            ln_pmf += ((n - i) as f64 / (i + 1) as f64).ln() + ln_p - ln_q;
        }
    }
    tail.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_alarm_rate: 0.25, max_score_shift: 4.0, false_alarm_tolerance: 5.0 };

    fn validation() -> ScoreStats {
        ScoreStats { count: 500, mean: 1.0, std: 0.5, p50: 1.0, p90: 1.6, p99: 2.2, alarm_rate: 0.02 }
    }

    fn alone(scores: &[f32]) -> Vec<ShadowShot> {
        scores.iter().map(|&score| ShadowShot { score, active_alarmed: None }).collect()
    }

    fn declared(threshold: f32, target: Option<f64>, validation: &ScoreStats) -> Declared<'_> {
        Declared { threshold, false_alarm_target: target, validation }
    }

    #[test]
    fn a_model_that_behaves_like_its_validation_passes() {
        let v = validation();
        let s = judge(&alone(&[0.8, 1.2, 1.0, 0.9, 1.1, 3.0]), &declared(2.5, None, &v), &LIMITS)
            .expect("passes");
        assert_eq!(s.shots, 6);
        assert!((s.alarm_rate - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn too_many_alarms_or_a_shifted_distribution_roll_back() {
        let v = validation();
        let alarms = judge(&alone(&[3.0, 3.0, 1.0]), &declared(2.5, None, &v), &LIMITS).expect_err("alarms");
        assert!(alarms.to_string().contains("alarm rate 0.67"), "{alarms}");
        let shifted =
            judge(&alone(&[3.5; 10]), &declared(4.0, None, &v), &LIMITS).expect_err("shift").to_string();
        assert!(shifted.contains("5.0 validation standard deviations"), "{shifted}");
        let nan =
            judge(&alone(&[1.0, f32::NAN]), &declared(2.5, None, &v), &LIMITS).expect_err("nan").to_string();
        assert!(nan.contains("not a number"), "{nan}");
        // Without validation figures only the alarm rate is judged.
        assert!(judge(&alone(&[3.5; 10]), &declared(4.0, None, &ScoreStats::default()), &LIMITS).is_ok());
    }

    #[test]
    fn alarms_the_active_model_shares_do_not_count_against_the_candidate() {
        let v = ScoreStats::default();
        // A sustained fault: both models alarm on 40 of 100 shots.
        let shots: Vec<ShadowShot> = (0..100)
            .map(|i| ShadowShot { score: if i < 40 { 9.0 } else { 1.0 }, active_alarmed: Some(i < 40) })
            .collect();
        let s = judge(&shots, &declared(2.5, Some(0.01), &v), &LIMITS).expect("shared alarms pass");
        assert_eq!((s.alarm_rate, s.unshared_alarm_rate), (0.4, 0.0));
        // The same alarms where the active model saw nothing: rolled back.
        let alone_now: Vec<ShadowShot> =
            shots.iter().map(|s| ShadowShot { active_alarmed: Some(false), ..*s }).collect();
        let e = judge(&alone_now, &declared(2.5, None, &v), &LIMITS).expect_err("unshared").to_string();
        assert!(e.contains("0.40 where the active model did not alarm"), "{e}");
    }

    #[test]
    fn alarms_well_above_the_false_alarm_target_on_good_shots_roll_back() {
        let v = ScoreStats::default();
        let on_good = |alarms: usize, n: usize| -> Vec<ShadowShot> {
            (0..n)
                .map(|i| ShadowShot {
                    score: if i < alarms { 9.0 } else { 1.0 },
                    active_alarmed: Some(false),
                })
                .collect()
        };
        // 12 of 200 (6 %) against a 1 % target tolerated 5×: P(X ≥ 12 | 200, 0.05) ≈ 0.30.
        assert!(judge(&on_good(12, 200), &declared(2.5, Some(0.01), &v), &LIMITS).is_ok());
        // 25 of 200 (12.5 %): p ≈ 3e-5, rolled back with the figures in the reason.
        let e = judge(&on_good(25, 200), &declared(2.5, Some(0.01), &v), &LIMITS)
            .expect_err("too many")
            .to_string();
        assert!(e.contains("25 of 200") && e.contains("5 × its false-alarm target 0.010"), "{e}");
        // No target in the bundle, or the check turned off: only max_alarm_rate (25 %) applies.
        assert!(judge(&on_good(25, 200), &declared(2.5, None, &v), &LIMITS).is_ok());
        let off = Limits { false_alarm_tolerance: 0.0, ..LIMITS };
        assert!(judge(&on_good(25, 200), &declared(2.5, Some(0.01), &v), &off).is_ok());
        // A target of 0 promises nothing testable: only max_alarm_rate applies.
        assert!(judge(&on_good(1, 200), &declared(2.5, Some(0.0), &v), &LIMITS).is_ok());
        // A handful of shadow shots never proves much: 1 of 4.
        assert!(judge(&on_good(1, 4), &declared(2.5, Some(0.01), &v), &LIMITS).is_ok());
    }

    #[test]
    fn the_binomial_tail_matches_hand_computed_values() {
        assert_eq!(binomial_tail(10, 0, 0.3), 1.0);
        assert!((binomial_tail(4, 1, 0.05) - (1.0 - 0.95f64.powi(4))).abs() < 1e-12);
        assert!((binomial_tail(3, 3, 0.5) - 0.125).abs() < 1e-12);
        assert!(binomial_tail(100_000, 10_000, 0.05) < 1e-100, "no overflow on long runs");
        assert_eq!(binomial_tail(3, 4, 0.5), 0.0);
    }
}
