//! The gate's rule: a shot's values against the limits, then the active model's verdict,
//! become one [`Judgement`] — good, reject or uncertain, with the reason. No I/O.

use super::config::GateConfig;
use moldops_scoring::Verdict;
use moldops_shared::decision::{Decision, Reason};
use moldops_shared::rollout::ScoreMessage;
use std::collections::BTreeMap;

/// What the gate made of one shot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judgement {
    pub decision: Decision,
    pub reason: Reason,
    /// Limits the shot broke: value name and value.
    pub broken: Vec<(String, f64)>,
}

/// Decides one shot. In order: a broken limit rejects; a limited value the shot lacks makes
/// it uncertain; then the active model decides (`score` is its message when `verdict` is
/// [`Verdict::Scored`]) — uncertain while it warms up, when it failed, or when it filled in
/// more of the shot than `max_missing_features`; with no model the limits alone decide, and
/// with no limits either nothing can judge the part (uncertain).
pub(crate) fn decide(
    cfg: &GateConfig,
    values: &BTreeMap<String, f64>,
    verdict: Verdict,
    score: Option<&ScoreMessage>,
) -> Judgement {
    let judged = |decision, reason| Judgement { decision, reason, broken: Vec::new() };
    let broken: Vec<(String, f64)> = cfg
        .limits
        .iter()
        .filter_map(|(name, l)| {
            values.get(name).filter(|v| v.is_finite() && !l.holds(**v)).map(|v| (name.clone(), *v))
        })
        .collect();
    if !broken.is_empty() {
        return Judgement { decision: Decision::Reject, reason: Reason::LimitBroken, broken };
    }
    let lacks_limited = cfg.limits.keys().any(|name| !values.get(name).is_some_and(|v| v.is_finite()));
    if lacks_limited {
        return judged(Decision::Uncertain, Reason::FeaturesMissing);
    }
    match (verdict, score) {
        (Verdict::Scored { missing }, _) if missing > cfg.max_missing_features => {
            judged(Decision::Uncertain, Reason::FeaturesMissing)
        }
        // A score that is not a number compares false with any threshold: not a pass.
        (Verdict::Scored { .. }, Some(s)) if !s.score.is_finite() => {
            judged(Decision::Uncertain, Reason::InferenceFailed)
        }
        (Verdict::Scored { .. }, Some(s)) if s.alarm => judged(Decision::Reject, Reason::ModelAlarm),
        (Verdict::Scored { .. }, Some(_)) => judged(Decision::Good, Reason::ModelPass),
        (Verdict::Scored { .. } | Verdict::Failed, _) => judged(Decision::Uncertain, Reason::InferenceFailed),
        (Verdict::Warming, _) => judged(Decision::Uncertain, Reason::Warming),
        (Verdict::NoModel, _) if cfg.limits.is_empty() => judged(Decision::Uncertain, Reason::NoJudge),
        (Verdict::NoModel, _) => judged(Decision::Good, Reason::LimitsPass),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::config::Limit;

    fn cfg(limits: &[(&str, Limit)]) -> GateConfig {
        GateConfig {
            machine: "M1".into(),
            deadline_ms: 50,
            fail_safe: Decision::Uncertain,
            max_missing_features: 1,
            limits: limits.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
            output: None,
        }
    }

    fn score(alarm: bool) -> ScoreMessage {
        ScoreMessage {
            edge_id: "e1".into(),
            machine_id: "M1".into(),
            mold: None,
            shot_number: Some(1),
            seq: 1,
            ts_ms: 0,
            model_key: "M1".into(),
            model_id: "M1@1".into(),
            version: 1,
            bundle_sha256: "ab".repeat(32),
            score: if alarm { 9.0 } else { 1.0 },
            threshold: 3.0,
            alarm,
            contributions: vec![],
        }
    }

    fn values(cushion: f64) -> BTreeMap<String, f64> {
        [("cushion".to_string(), cushion), ("other".to_string(), 1.0)].into_iter().collect()
    }

    #[test]
    fn limits_reject_whatever_the_model_says_and_the_model_decides_within_them() {
        let c = cfg(&[("cushion", Limit { min: Some(2.0), max: Some(8.0) })]);
        let scored = Verdict::Scored { missing: 0 };
        let j = decide(&c, &values(9.0), scored, Some(&score(false)));
        assert_eq!(
            (j.decision, j.reason, j.broken),
            (Decision::Reject, Reason::LimitBroken, vec![("cushion".into(), 9.0)])
        );
        let d = |v, verdict, s: Option<&ScoreMessage>| {
            let j = decide(&c, &values(v), verdict, s);
            (j.decision, j.reason)
        };
        assert_eq!(d(5.0, scored, Some(&score(true))), (Decision::Reject, Reason::ModelAlarm));
        assert_eq!(d(5.0, scored, Some(&score(false))), (Decision::Good, Reason::ModelPass));
        assert_eq!(d(5.0, Verdict::NoModel, None), (Decision::Good, Reason::LimitsPass));
        assert_eq!(d(f64::NAN, Verdict::NoModel, None), (Decision::Uncertain, Reason::FeaturesMissing));
    }

    #[test]
    fn an_unreliable_model_makes_the_part_uncertain() {
        let c = cfg(&[]);
        let d = |verdict, s: Option<&ScoreMessage>| {
            let j = decide(&c, &values(5.0), verdict, s);
            (j.decision, j.reason)
        };
        assert_eq!(d(Verdict::Warming, None), (Decision::Uncertain, Reason::Warming));
        assert_eq!(d(Verdict::Failed, None), (Decision::Uncertain, Reason::InferenceFailed));
        assert_eq!(
            d(Verdict::Scored { missing: 2 }, Some(&score(false))),
            (Decision::Uncertain, Reason::FeaturesMissing)
        );
        assert_eq!(
            d(Verdict::Scored { missing: 1 }, Some(&score(false))),
            (Decision::Good, Reason::ModelPass)
        );
        assert_eq!(d(Verdict::NoModel, None), (Decision::Uncertain, Reason::NoJudge), "nothing judges it");
        let nan = ScoreMessage { score: f32::NAN, alarm: false, ..score(false) };
        assert_eq!(
            d(Verdict::Scored { missing: 0 }, Some(&nan)),
            (Decision::Uncertain, Reason::InferenceFailed)
        );
    }
}
