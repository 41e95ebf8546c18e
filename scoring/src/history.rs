//! The recent shots of one machine within its current production run: what a model's window
//! is cut from. A new run (a gap over [`moldops_shared::features::RUN_GAP_MS`] or another mold,
//! the ETL's rule) starts an empty history, so a window never spans two runs.

use moldops_shared::bundle::FeatureSpec;
use moldops_shared::features::{starts_run, within_tolerance};
use std::collections::{HashMap, VecDeque};

/// One shot's feature values by name (NaN or absent where missing), each with its age: how
/// much older than the shot the reading it came from is (ms; 0 for the shot's own values).
pub type ShotValues = HashMap<String, (f64, i64)>;

/// The shots of one machine's current production run, oldest first, that windows are cut from;
/// the [`Scorer`](crate::Scorer) keeps one per machine.
#[derive(Debug, Default)]
pub struct History {
    shots: VecDeque<ShotValues>,
    last: Option<(i64, Option<String>)>,
}

impl History {
    /// Adds a shot at `ts_ms` with `mold`, keeping at most `keep` shots.
    pub fn push(&mut self, ts_ms: i64, mold: Option<&str>, values: ShotValues, keep: usize) {
        if let Some((prev_ts, prev_mold)) = &self.last
            && starts_run(*prev_ts, prev_mold.as_deref(), ts_ms, mold)
        {
            self.shots.clear();
        }
        self.last = Some((ts_ms, mold.map(str::to_string)));
        self.shots.push_back(values);
        while self.shots.len() > keep.max(1) {
            self.shots.pop_front();
        }
    }

    /// Number of shots held: at most the last push's `keep`, fewer early in a run.
    pub fn len(&self) -> usize {
        self.shots.len()
    }

    /// True before the first shot is pushed (a new run still holds the shot that started it).
    pub fn is_empty(&self) -> bool {
        self.shots.is_empty()
    }

    /// How many of `features` the newest shot lacks (absent, not finite, or older than
    /// `tolerance_ms`): what a window ending with it fills in for that shot.
    pub fn missing(&self, features: &[FeatureSpec], tolerance_ms: i64) -> usize {
        let Some(shot) = self.shots.back() else { return features.len() };
        features
            .iter()
            .filter(|f| {
                let value = shot.get(&f.name).filter(|(_, age)| within_tolerance(*age, tolerance_ms));
                !value.is_some_and(|(v, _)| v.is_finite())
            })
            .count()
    }

    /// The newest shot's value of `feature` when it is usable: present, finite and no older
    /// than `tolerance_ms` (what the drift monitor bins).
    pub fn newest_value(&self, feature: &str, tolerance_ms: i64) -> Option<f64> {
        let (v, age) = self.shots.back()?.get(feature)?;
        (v.is_finite() && within_tolerance(*age, tolerance_ms)).then_some(*v)
    }

    /// The last `w` shots as a `[w, F]` row-major window in `features` order, values older
    /// than `tolerance_ms` (the model's join tolerance) and missing ones replaced by each
    /// feature's fill; `None` while the run has fewer than `w` shots.
    pub fn window(&self, w: usize, features: &[FeatureSpec], tolerance_ms: i64) -> Option<Vec<f32>> {
        if w == 0 || self.shots.len() < w {
            return None;
        }
        let mut out = Vec::with_capacity(w * features.len());
        for shot in self.shots.iter().skip(self.shots.len() - w) {
            out.extend(features.iter().map(|f| {
                let value = shot
                    .get(&f.name)
                    .filter(|(_, age)| within_tolerance(*age, tolerance_ms))
                    .map(|(v, _)| *v);
                fill(value, f.fill)
            }));
        }
        Some(out)
    }
}

/// A feature value as the model sees it: the value, or `fill` when missing or not finite.
pub fn fill(value: Option<f64>, fill: f32) -> f32 {
    match value {
        Some(v) if v.is_finite() => v as f32,
        _ => fill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, fill: f32) -> FeatureSpec {
        FeatureSpec { name: name.into(), unit: None, fill }
    }

    fn shot(a: f64) -> ShotValues {
        [("a".to_string(), (a, 0)), ("b".to_string(), (f64::NAN, 0)), ("p".to_string(), (a, 500))]
            .into_iter()
            .collect()
    }

    #[test]
    fn windows_are_oldest_first_filled_and_stay_in_one_run() {
        let mut h = History::default();
        let features = [spec("a", 0.0), spec("b", 9.0), spec("c", 7.0)];
        h.push(1_000, Some("A"), shot(1.0), 3);
        assert_eq!(h.window(2, &features, 0), None, "not enough shots yet");
        h.push(2_000, Some("A"), shot(2.0), 3);
        assert_eq!(h.window(2, &features, 0), Some(vec![1.0, 9.0, 7.0, 2.0, 9.0, 7.0]));
        h.push(3_000, Some("A"), shot(3.0), 2);
        assert_eq!(h.len(), 2, "keeps at most `keep` shots");
        // Another mold starts a new run: the window must not reach into the old one.
        h.push(4_000, Some("B"), shot(4.0), 3);
        assert_eq!(h.window(2, &features, 0), None);
        assert_eq!(h.window(1, &features, 0), Some(vec![4.0, 9.0, 7.0]));
    }

    #[test]
    fn values_older_than_the_models_tolerance_are_missing() {
        let mut h = History::default();
        h.push(1_000, None, shot(1.0), 1);
        let features = [spec("a", 0.0), spec("p", 9.0)];
        assert_eq!(h.window(1, &features, 500), Some(vec![1.0, 1.0]), "the edge is inclusive");
        assert_eq!(h.window(1, &features, 499), Some(vec![1.0, 9.0]));
        assert_eq!(h.missing(&features, 500), 0);
        assert_eq!(h.missing(&features, 499), 1);
        assert_eq!(h.missing(&[spec("b", 0.0), spec("zz", 0.0)], 500), 2, "NaN and absent");
    }
}
