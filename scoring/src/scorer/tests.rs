use super::*;
use crate::inference::reference::{plain, zscore_onnx};
use crate::inference::{Backend, Model};
use moldops_shared::bundle::{FeatureSpec, Manifest};

fn manifest(version: u32, window: u32, threshold: f32) -> Manifest {
    let specs = ["Cycle_Time", "tcu.flow"]
        .iter()
        .map(|n| FeatureSpec { name: n.to_string(), unit: None, fill: 5.0 })
        .collect();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    Manifest {
        model_id: format!("m1@{version}"),
        version,
        false_alarm_target: Some(0.01),
        ..Manifest::new(key, "zscore", specs, window, threshold)
    }
}

fn loaded(version: u32, window: u32, threshold: f32, mu: [f32; 2]) -> LoadedModel {
    let onnx = zscore_onnx(window as usize, &mu, &[1.0, 2.0]);
    let model = Model::load(manifest(version, window, threshold), &onnx, &Backend::tract()).expect("loads");
    let bundle = BundleRef::describe(&format!("m1@{version}"), version, &[version as u8], 1);
    LoadedModel { bundle, model }
}

fn shot(seq: u64, cycle: f64) -> Record {
    let mut r = Record::new(RecordKind::Shot, "m1", "m1", 1_000 * seq as i64, [("Cycle_Time", cycle)]);
    r.seq = seq;
    r.shot_number = Some(seq);
    r.mold = Some("A".into());
    r
}

fn scorer() -> Scorer {
    let limits = Limits { max_alarm_rate: 0.5, max_score_shift: 4.0, false_alarm_tolerance: 5.0 };
    Scorer::new("e1", limits, Arc::new(ScoringMetrics::default()))
}

#[test]
fn every_shot_is_scored_once_the_window_is_full_with_fills_for_missing_values() {
    let mut s = scorer();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    assert_eq!(s.observe(&shot(0, 11.0)).verdict, Some(Verdict::NoModel));
    s.set_active(&key, loaded(1, 2, 100.0, [10.0, 5.0]));
    // A new run (the 1 s step from shot 0 is within the run gap, so start far later).
    let mut first = shot(1, 11.0);
    first.ts_ms += 10_000_000;
    let mut second = shot(2, 13.0);
    second.ts_ms += 10_000_000;
    let out = s.observe(&first);
    assert!(out.scores.is_empty(), "window of 2 needs 2 shots");
    assert_eq!(out.verdict, Some(Verdict::Warming));
    let out = s.observe(&second);
    assert_eq!(out.scores.len(), 1);
    assert_eq!(out.verdict, Some(Verdict::Scored { missing: 1 }), "tcu.flow is filled in");
    let reading = Record::new(RecordKind::Peripheral, "m1", "m1-tcu", 0, [("flow", 1.0)]);
    assert_eq!(s.observe(&reading).verdict, None, "only shots get a verdict");
    let msg = &out.scores[0];
    // tcu.flow never arrived: the fill (5.0) is fed, which is its mean: no contribution.
    let (score, _) = plain(&[11.0, 5.0, 13.0, 5.0], &[10.0, 5.0], &[1.0, 2.0]);
    assert!((msg.score - score).abs() < 1e-5, "{} vs {score}", msg.score);
    assert_eq!((msg.seq, msg.version, msg.alarm), (2, 1, false));
    assert_eq!(msg.contributions[0].0, "Cycle_Time", "largest contribution first");
    assert_eq!(msg.model_key, "m1");
    let live = &s.metrics.status().keys["m1"];
    assert_eq!((live.scored, live.false_alarm_target), (1, Some(0.01)), "the live rate beside its target");
}

#[test]
fn a_swap_between_shots_scores_each_shot_exactly_once() {
    let mut s = scorer();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    s.set_active(&key, loaded(1, 1, 100.0, [10.0, 5.0]));
    s.start_shadow(&key, loaded(2, 3, 100.0, [10.0, 5.0]), 4);
    let mut scored = Vec::new();
    let mut promoted_at = None;
    for seq in 1..=10 {
        let out = s.observe(&shot(seq, 10.0 + seq as f64 / 10.0));
        scored.extend(out.scores.iter().map(|m| (m.seq, m.version)));
        for done in out.shadow_done {
            assert_eq!(done.verdict.as_ref().map(|v| v.shots), Ok(4), "{:?}", done.verdict);
            s.promote(&done.key);
            promoted_at = Some(seq);
        }
    }
    // The candidate (window 3) shadows from shot 3 on; 4 shadow shots end at shot 6.
    assert_eq!(promoted_at, Some(6));
    let seqs: Vec<u64> = scored.iter().map(|(q, _)| *q).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "no shot missed or doubled");
    assert!(scored.iter().all(|(q, v)| *v == if *q <= 6 { 1 } else { 2 }), "{scored:?}");
}

#[test]
fn a_candidate_that_alarms_too_often_is_judged_unfit() {
    let mut s = scorer();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    s.start_shadow(&key, loaded(2, 1, 0.5, [0.0, 0.0]), 3);
    let mut verdicts = Vec::new();
    for seq in 1..=3 {
        let out = s.observe(&shot(seq, 10.0));
        assert!(out.scores.is_empty(), "a shadow model never publishes scores");
        verdicts.extend(out.shadow_done.into_iter().map(|d| d.verdict));
    }
    assert_eq!(verdicts.len(), 1);
    let reason = verdicts[0].clone().expect_err("rolled back").to_string();
    assert!(reason.contains("alarm rate 1.00"), "{reason}");
}

#[test]
fn alarms_the_active_model_raises_on_the_same_shots_are_not_held_against_the_candidate() {
    // A process fault: every shot is far off, the active model and the candidate both alarm.
    let mut s = scorer();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    s.set_active(&key, loaded(1, 1, 0.5, [0.0, 0.0]));
    s.start_shadow(&key, loaded(2, 1, 0.5, [0.0, 0.0]), 3);
    let mut verdicts = Vec::new();
    for seq in 1..=3 {
        let out = s.observe(&shot(seq, 10.0));
        assert!(out.scores.iter().all(|m| m.alarm && m.version == 1), "{:?}", out.scores);
        verdicts.extend(out.shadow_done.into_iter().map(|d| d.verdict));
    }
    let summary = verdicts[0].clone().expect("shared alarms pass");
    assert_eq!((summary.alarm_rate, summary.unshared_alarm_rate), (1.0, 0.0));
    // The same candidate beside an active model that stays quiet is rolled back.
    let mut s = scorer();
    s.set_active(&key, loaded(1, 1, 1e6, [0.0, 0.0]));
    s.start_shadow(&key, loaded(2, 1, 0.5, [0.0, 0.0]), 3);
    let done: Vec<_> = (1..=3).flat_map(|seq| s.observe(&shot(seq, 10.0)).shadow_done).collect();
    let reason = done[0].verdict.clone().expect_err("unshared alarms").to_string();
    assert!(reason.contains("1.00 where the active model did not alarm"), "{reason}");
}

#[test]
fn a_mold_model_wins_over_the_machine_model() {
    let mut s = scorer();
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 100.0, [0.0, 0.0]));
    s.set_active(
        &ModelKey { machine_id: "m1".into(), mold: Some("A".into()) },
        loaded(7, 1, 100.0, [0.0, 0.0]),
    );
    let out = s.observe(&shot(1, 1.0));
    assert_eq!(out.scores[0].model_key, "m1/A");
    let mut other = shot(2, 1.0);
    other.mold = Some("B".into());
    let out = s.observe(&other);
    assert_eq!(out.scores[0].model_key, "m1", "another mold falls back to the machine's model");
}

#[test]
fn each_model_joins_peripherals_with_its_own_training_tolerance() {
    let reading = {
        let mut r = Record::new(RecordKind::Peripheral, "m1", "m1-tcu", 1_000, [("flow", 9.0)]);
        r.seq = 1;
        r
    };
    let score_with = |tolerance_ms: i64| {
        let mut s = scorer();
        let key = ModelKey { machine_id: "m1".into(), mold: None };
        let mut m = loaded(1, 1, 100.0, [10.0, 5.0]);
        let manifest = Manifest { tolerance_ms, ..m.model.manifest().clone() };
        m.model =
            Model::load(manifest, &zscore_onnx(1, &[10.0, 5.0], &[1.0, 2.0]), &Backend::tract()).unwrap();
        s.set_active(&key, m);
        assert!(s.observe(&reading).scores.is_empty());
        s.observe(&shot(3, 10.0)).scores[0].score
    };
    // The reading is 2 s older than the shot (ts 3 000).
    let (fresh, _) = plain(&[10.0, 9.0], &[10.0, 5.0], &[1.0, 2.0]);
    let (stale, _) = plain(&[10.0, 5.0], &[10.0, 5.0], &[1.0, 2.0]);
    assert!((score_with(2_000) - fresh).abs() < 1e-5, "within tolerance (edge inclusive)");
    assert!((score_with(1_999) - stale).abs() < 1e-5, "too old for this model: its fill");
    assert!((fresh - stale).abs() > 0.1, "the two cases differ");
}
