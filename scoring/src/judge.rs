//! The shadow verdict: after a candidate model scored its shadow shots, is it fit to replace
//! the active one? It is not when it alarms too often, when its scores sit far from the
//! distribution it showed on its validation data (the bundle's `validation_scores`), or when
//! it produced scores that are not numbers.

use moldops_shared::bundle::ScoreStats;

/// Rollback thresholds (`[models]` config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest share of shadow shots (0 to 1) the candidate may alarm on
    /// (`models.max_alarm_rate`).
    pub max_alarm_rate: f64,
    /// In validation standard deviations.
    pub max_score_shift: f64,
}

/// What the shadow run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSummary {
    /// Number of shadow shots judged.
    pub shots: u64,
    /// Share of those shots (0 to 1) whose score was above the manifest's threshold.
    pub alarm_rate: f64,
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
    /// The candidate alarmed on too many shadow shots.
    #[error(
        "alarm rate {rate:.2} over {shots} shadow shots exceeds max_alarm_rate {max:.2} (validation: {validation:.2})"
    )]
    AlarmRate {
        /// Share of shadow shots (0 to 1) that alarmed.
        rate: f64,
        /// Number of shadow shots judged.
        shots: u64,
        /// The limit it exceeds, [`Limits::max_alarm_rate`].
        max: f64,
        /// The model's alarm rate on its validation data (the bundle's `validation_scores`),
        /// for comparison.
        validation: f64,
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

/// `Ok` with the summary when the candidate may be promoted, `Err` with the reason otherwise.
pub fn judge(
    scores: &[f32],
    threshold: f32,
    validation: &ScoreStats,
    limits: &Limits,
) -> Result<ShadowSummary, Rejection> {
    if scores.is_empty() {
        return Err(Rejection::NoShots);
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Rejection::NotANumber(*bad));
    }
    let n = scores.len() as f64;
    let alarms = scores.iter().filter(|s| **s > threshold).count() as f64;
    let alarm_rate = alarms / n;
    let mean_score = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / n;
    if alarm_rate > limits.max_alarm_rate {
        return Err(Rejection::AlarmRate {
            rate: alarm_rate,
            shots: scores.len() as u64,
            max: limits.max_alarm_rate,
            validation: validation.alarm_rate,
        });
    }
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
    Ok(ShadowSummary { shots: scores.len() as u64, alarm_rate, mean_score })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_alarm_rate: 0.25, max_score_shift: 4.0 };

    fn validation() -> ScoreStats {
        ScoreStats { count: 500, mean: 1.0, std: 0.5, p50: 1.0, p90: 1.6, p99: 2.2, alarm_rate: 0.02 }
    }

    #[test]
    fn a_model_that_behaves_like_its_validation_passes() {
        let scores = [0.8f32, 1.2, 1.0, 0.9, 1.1, 3.0];
        let s = judge(&scores, 2.5, &validation(), &LIMITS).expect("passes");
        assert_eq!(s.shots, 6);
        assert!((s.alarm_rate - 1.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn too_many_alarms_or_a_shifted_distribution_roll_back() {
        let alarms = judge(&[3.0f32, 3.0, 1.0], 2.5, &validation(), &LIMITS).expect_err("alarms").to_string();
        assert!(alarms.contains("alarm rate 0.67"), "{alarms}");
        let shifted = judge(&[3.5f32; 10], 4.0, &validation(), &LIMITS).expect_err("shift").to_string();
        assert!(shifted.contains("5.0 validation standard deviations"), "{shifted}");
        let nan = judge(&[1.0f32, f32::NAN], 2.5, &validation(), &LIMITS).expect_err("nan").to_string();
        assert!(nan.contains("not a number"), "{nan}");
        // Without validation figures only the alarm rate is judged.
        assert!(judge(&[3.5f32; 10], 4.0, &ScoreStats::default(), &LIMITS).is_ok());
    }
}
