//! One drift summary judged: the PSI and binned KS of the score and of every feature against
//! their references, the period's alarm rate against the judge's target (one-sided exact
//! binomial test), and a verdict `ok` / `warn` / `drift` by [`Thresholds`].

use moldops_shared::drift::{DriftSummary, Histogram, stats};
use serde::{Deserialize, Serialize};

/// Where the verdicts change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// PSI above this (score or any feature) is at least `warn`.
    pub warn_psi: f64,
    /// PSI above this is `drift`.
    pub drift_psi: f64,
    /// An alarm rate above its target with a binomial p-value below this is at least `warn`.
    pub warn_p: f64,
    /// … below this, `drift`.
    pub drift_p: f64,
    /// A period with fewer shots is judged by its alarm rate only (its histograms are too thin).
    pub min_shots: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { warn_psi: 0.1, drift_psi: 0.25, warn_p: 0.01, drift_p: 0.001, min_shots: 100 }
    }
}

/// The verdict on one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Scores, features and alarm rate look like their references.
    Ok,
    /// A moderate shift (PSI between the thresholds) or an alarm rate somewhat above target.
    Warn,
    /// A large shift, or an alarm rate far above target: the model no longer sees what it was
    /// validated on.
    Drift,
}

impl Level {
    /// `ok`, `warn` or `drift`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Drift => "drift",
        }
    }

    /// Reads [`Level::as_str`]'s form.
    pub fn parse(text: &str) -> Option<Level> {
        [Level::Ok, Level::Warn, Level::Drift].into_iter().find(|l| l.as_str() == text)
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One histogram's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// `score` or the feature's name.
    pub name: String,
    /// PSI against the reference (`None` when either side is empty).
    pub psi: Option<f64>,
    /// Binned KS distance against the reference.
    pub ks: Option<f64>,
    /// Asymptotic p-value of that distance (conservative for binned data).
    pub ks_p: Option<f64>,
    /// Shift of the mean, in reference standard deviations.
    pub shift_std: Option<f64>,
}

impl Figures {
    /// The figures of one histogram.
    pub fn of(name: &str, h: &Histogram) -> Figures {
        let ks = h.ks();
        let (n, m) = (h.total() as f64, h.reference.iter().sum::<f64>());
        Figures {
            name: name.to_string(),
            psi: h.psi(),
            ks,
            ks_p: ks.map(|d| stats::ks_p_value(d, n, m)),
            shift_std: h.shift_in_std(),
        }
    }
}

/// Most features an assessment lists as the worst.
pub const WORST_FEATURES: usize = 3;

/// The judgement of one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The score's figures (its reference: validation when `score_from_validation`).
    pub score: Figures,
    /// The features with the largest PSI, largest first (at most [`WORST_FEATURES`]).
    pub worst_features: Vec<Figures>,
    /// `alarms / shots`.
    pub alarm_rate: f64,
    /// `P(X ≥ alarms)` for `X ~ Binomial(shots, target)`; `None` without a target (or with a
    /// target of 0).
    pub alarm_p: Option<f64>,
    /// The verdict.
    pub level: Level,
    /// Why, one phrase per finding (empty when `ok`).
    pub reasons: Vec<String>,
}

/// Judges one summary.
pub fn assess(s: &DriftSummary, t: &Thresholds) -> Assessment {
    let score = Figures::of("score", &s.score);
    let mut features: Vec<Figures> = s.features.iter().map(|f| Figures::of(&f.name, &f.histogram)).collect();
    features.sort_by(|a, b| b.psi.unwrap_or(-1.0).total_cmp(&a.psi.unwrap_or(-1.0)));
    let alarm_rate = if s.shots > 0 { s.alarms as f64 / s.shots as f64 } else { 0.0 };
    // A target of 0 (no alarm expected at all) would make one alarm infinitely surprising.
    let target = s.alarm_target.filter(|t| *t > 0.0);
    let alarm_p = target.map(|p| stats::binomial_upper_tail(s.alarms, s.shots, p));
    let mut level = Level::Ok;
    let mut reasons = Vec::new();
    let mut raise = |to: Level, why: String| {
        level = level.max(to);
        reasons.push(why);
    };
    if s.shots >= t.min_shots {
        for f in std::iter::once(&score).chain(&features) {
            let Some(psi) = f.psi else { continue };
            let to = if psi > t.drift_psi {
                Level::Drift
            } else if psi > t.warn_psi {
                Level::Warn
            } else {
                continue;
            };
            let shift = f.shift_std.map(|s| format!(", mean {s:+.2} σ")).unwrap_or_default();
            raise(to, format!("{} PSI {psi:.3}{shift}", f.name));
        }
    }
    if let (Some(p), Some(target)) = (alarm_p, target) {
        let to = if p < t.drift_p {
            Level::Drift
        } else if p < t.warn_p {
            Level::Warn
        } else {
            Level::Ok
        };
        if to > Level::Ok {
            raise(
                to,
                format!(
                    "alarm rate {:.2} % against a target of {:.2} % (p = {p:.1e})",
                    100.0 * alarm_rate,
                    100.0 * target
                ),
            );
        }
    }
    features.truncate(WORST_FEATURES);
    Assessment { score, worst_features: features, alarm_rate, alarm_p, level, reasons }
}
