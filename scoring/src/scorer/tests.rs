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

fn molded(seq: u64, mold: &str, cycle: f64) -> Record {
    let mut r = shot(seq, cycle);
    r.mold = Some(mold.into());
    r
}

fn mold_key(mold: &str) -> ModelKey {
    ModelKey { machine_id: "m1".into(), mold: Some(mold.into()) }
}

fn cold(learning_shots: u64, max_keys: usize, covers: bool) -> ColdStart {
    ColdStart { learning_shots, z_limit: 4.5, max_keys, machine_model_covers_all_molds: covers }
}

/// A normal cycle time near 10 s for shot `seq` (deterministic spread of ±0.2).
fn normal(seq: u64) -> f64 {
    10.0 + ((seq * 7) % 5) as f64 * 0.1 - 0.2
}

#[test]
fn a_mould_change_switches_to_that_moulds_model_on_its_first_shot_and_back() {
    let mut s = scorer();
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 100.0, [0.0, 0.0]));
    s.set_active(&mold_key("A"), loaded(7, 1, 100.0, [0.0, 0.0]));
    s.set_active(&mold_key("B"), loaded(9, 1, 100.0, [0.0, 0.0]));
    // Alternating runs of 1 to 3 shots, one second apart: each change is a new run.
    let molds = ["A", "B", "B", "A", "A", "A", "B", "A", "B"];
    for (i, mold) in molds.iter().enumerate() {
        let seq = i as u64 + 1;
        let out = s.observe(&molded(seq, mold, 10.0));
        assert_eq!(out.verdict, Some(Verdict::Scored { missing: 1 }), "shot {seq}");
        let keys: Vec<(&str, u32)> = out.scores.iter().map(|m| (m.model_key.as_str(), m.version)).collect();
        let want = if *mold == "A" { ("m1/A", 7) } else { ("m1/B", 9) };
        assert_eq!(keys, [want], "shot {seq} of mould {mold} is scored by its own model only");
    }
}

#[test]
fn a_material_gets_its_own_model_and_falls_back_on_its_moulds_until_then() {
    let mut s = scorer();
    s.set_cold_start(Some(cold(20, 16, false)));
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 100.0, [0.0, 0.0]));
    s.set_active(&mold_key("A"), loaded(7, 1, 100.0, [0.0, 0.0]));
    // Shots of mould `mould` in `material` (none: a mould code alone), as the edge records them.
    let judged = |s: &mut Scorer, seq: u64, mould: &str, material: Option<&str>| {
        let mut r = molded(seq, mould, 10.0);
        if let Some(m) = material {
            r.mold = Some(moldops_shared::mould::with_material(mould, m));
            r.material = Some(m.into());
        }
        let out = s.observe(&r);
        out.scores.iter().map(|m| (m.model_key.clone(), m.version)).collect::<Vec<_>>()
    };
    // A material of mould A without a model of its own: mould A's model judges it, no learning.
    assert_eq!(judged(&mut s, 1, "A", Some("PA6")), [("m1/A".to_string(), 7)]);
    // A material of a mould with no model: its own key starts cold.
    assert_eq!(judged(&mut s, 2, "B", Some("PA6")), [("m1/B+PA6".to_string(), 0)]);
    // The material's own model arrives: it judges that material from its next shot; another
    // material of the mould stays with the mould's model.
    s.set_active(&mold_key("A+PA66"), loaded(11, 1, 100.0, [0.0, 0.0]));
    assert_eq!(judged(&mut s, 3, "A", Some("PA66")), [("m1/A+PA66".to_string(), 11)]);
    assert_eq!(judged(&mut s, 4, "A", Some("PA6")), [("m1/A".to_string(), 7)]);
    // A `+` in a mould code joined with no material is just a mould: never mould A's shots.
    assert_eq!(judged(&mut s, 5, "A+PA6", None), [("m1/A+PA6".to_string(), 0)]);
}

#[test]
fn an_unseen_mould_learns_without_alarms_then_alarms_on_its_limits_until_its_model_arrives() {
    let mut s = scorer();
    s.set_cold_start(Some(cold(20, 16, false)));
    // The machine's model alarms on everything: it must not judge mould B.
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 0.0, [0.0, 0.0]));
    s.set_active(&mold_key("A"), loaded(7, 1, 100.0, [0.0, 0.0]));
    let mut seq = 0;
    let mut next = |mold: &str, cycle: f64| {
        seq += 1;
        molded(seq, mold, cycle)
    };
    for i in 0..20u64 {
        // Wild values among the learning shots: still no alarm.
        let cycle = if i % 7 == 3 { 1e6 } else { normal(i) };
        let out = s.observe(&next("B", cycle));
        assert_eq!(out.verdict, Some(Verdict::NoModel), "learning shot {i}: nothing judges the part");
        let m = &out.scores[0];
        assert_eq!((m.model_key.as_str(), m.model_id.as_str(), m.version), ("m1/B", "m1/B@learning", 0));
        assert!(!m.alarm, "learning shot {i} never alarms: {m:?}");
        assert_eq!(moldops_shared::score::check_record(&m.to_record()), Ok(()));
        assert_eq!(out.baseline_checkpoint.is_some(), i == 19, "learning ends at its 20th shot");
    }
    // Mould A keeps its own model meanwhile.
    let out = s.observe(&next("A", 10.0));
    assert_eq!(out.scores[0].model_key, "m1/A");
    let live = &s.metrics.status().keys["m1/B"];
    assert_eq!(live.cold_start.map(|c| (c.phase, c.shots)), Some(("baseline", 20)));
    for i in 0..10 {
        let out = s.observe(&next("B", normal(i)));
        let m = &out.scores[0];
        assert_eq!((m.model_id.as_str(), m.alarm), ("m1/B@baseline", false), "{m:?}");
        assert_eq!(out.verdict, Some(Verdict::Scored { missing: 0 }));
    }
    let out = s.observe(&next("B", 14.0));
    let m = &out.scores[0];
    assert!(m.alarm && m.score > 4.5, "an outlier after learning alarms: {m:?}");
    assert_eq!(m.threshold, 4.5);
    assert_eq!(moldops_shared::score::check_record(&m.to_record()), Ok(()));
    let label = KeyLabel { model_key: "m1/B".into() };
    assert_eq!(s.metrics.learning_shots.get_or_create(&label).get(), 20);
    assert_eq!(s.metrics.baseline_alarms.get_or_create(&label).get(), 1);
    // The mould's own model arrives: it scores the very next shot, and the baseline retires.
    s.set_active(&mold_key("B"), loaded(3, 1, 100.0, [0.0, 0.0]));
    let out = s.observe(&next("B", 14.0));
    assert_eq!((out.scores.len(), out.scores[0].model_id.as_str()), (1, "m1@3"));
    assert_eq!(out.baselines_dropped, [mold_key("B")]);
    assert!(s.baseline(&mold_key("B")).is_none());
}

#[test]
fn a_machine_model_that_covers_all_moulds_keeps_scoring_them() {
    let mut s = scorer();
    s.set_cold_start(Some(cold(20, 16, true)));
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 100.0, [0.0, 0.0]));
    let out = s.observe(&molded(1, "B", 10.0));
    assert_eq!(out.scores[0].model_key, "m1");
    assert!(s.baseline(&mold_key("B")).is_none());
    // Another machine without a model of its own learns.
    let mut other = molded(2, "B", 10.0);
    other.machine_id = "m2".into();
    let out = s.observe(&other);
    assert_eq!(out.scores[0].model_id, "m2/B@learning");
    // Without a cold start, nothing changes: the machine model scores every mould.
    let mut s = scorer();
    s.set_active(&ModelKey { machine_id: "m1".into(), mold: None }, loaded(1, 1, 100.0, [0.0, 0.0]));
    assert_eq!(s.observe(&molded(1, "B", 10.0)).scores[0].model_key, "m1");
}

#[test]
fn baselines_are_capped_by_dropping_the_least_recently_used() {
    let mut s = scorer();
    s.set_cold_start(Some(cold(5, 3, false)));
    let mut dropped = Vec::new();
    for (i, mold) in ["M0", "M1", "M2", "M0", "M3"].iter().enumerate() {
        dropped.extend(s.observe(&molded(i as u64 + 1, mold, 10.0)).baselines_dropped);
    }
    assert_eq!(dropped, [mold_key("M1")], "M0 was used again, M1 is the oldest");
    for i in 0..100u64 {
        dropped.extend(s.observe(&molded(10 + i, &format!("X{i}"), 10.0)).baselines_dropped);
    }
    assert_eq!(s.baselines.len(), 3);
    assert_eq!(dropped.len(), 101);
    assert_eq!(s.metrics.baselines_dropped.get(), 101);
    assert_eq!(s.metrics.baselines_held.get(), 3);
    assert!(s.metrics.status().keys.get("m1/M0").is_none_or(|k| k.cold_start.is_none()), "M0 was dropped");
}

#[test]
fn a_restored_baseline_carries_on_where_it_stopped() {
    let mut s = scorer();
    s.set_cold_start(Some(cold(10, 4, false)));
    let mut saved = None;
    for i in 1..=5 {
        let out = s.observe(&molded(i, "B", normal(i)));
        saved = out.baseline_checkpoint.or(saved);
    }
    let b = s.baseline(&mold_key("B")).cloned().expect("held");
    let mut restarted = scorer();
    restarted.set_cold_start(Some(cold(10, 4, false)));
    assert!(restarted.restore_baseline(mold_key("B"), b).is_empty());
    let ids: Vec<String> =
        (6..=11).map(|i| restarted.observe(&molded(i, "B", normal(i))).scores[0].model_id.clone()).collect();
    assert_eq!(ids[..5], ["m1/B@learning"; 5], "shots 6 to 10 end the learning");
    assert_eq!(ids[5], "m1/B@baseline");
    assert!(saved.is_none(), "no checkpoint before shot 25 nor the end of learning in 5 shots");
}

#[test]
fn judged_shots_feed_the_drift_monitor_and_each_period_comes_out_once() {
    let mut s = scorer();
    let settings = DriftSettings { every_shots: 40, every_s: 0, reference_shots: 50, ..Default::default() };
    s.set_drift(Some(settings));
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    s.set_active(&key, loaded(1, 1, 100.0, [10.0, 5.0]));
    let mut summaries = Vec::new();
    // 50 reference shots, then 80 more whose last 40 run 1 s hotter: a heater-zone step.
    for seq in 1..=130 {
        let cycle = normal(seq) + if seq > 90 { 1.0 } else { 0.0 };
        summaries.extend(s.observe(&shot(seq, cycle)).drift);
    }
    assert_eq!(summaries.len(), 2, "one summary per 40 judged shots after the 50-shot reference");
    let (calm, hot) = (&summaries[0], &summaries[1]);
    assert_eq!((calm.stamp.id.as_str(), calm.shots, calm.mold.as_deref()), ("m1@1", 40, None));
    assert_eq!(calm.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["Cycle_Time", "tcu.flow"]);
    assert_eq!(calm.features[1].histogram.missing, 40, "tcu.flow never arrived: missing, not its fill");
    let psi = |s: &DriftSummary| s.features[0].histogram.psi().unwrap_or(f64::NAN);
    assert!(psi(calm) < 0.1 && psi(hot) > 0.25, "{} {}", psi(calm), psi(hot));
    assert_eq!(s.metrics.status().keys["m1"].drift_psi, hot.max_psi());
    for summary in &summaries {
        let r = summary.to_record();
        assert_eq!(moldops_shared::codec::check_record(&r), Ok(()));
        assert!(r.values.len() < 100, "{} values", r.values.len());
    }
    // A watching cold-start baseline is monitored under its own stamp; learning shots are not.
    s.set_cold_start(Some(cold(20, 16, false)));
    let mut baseline = Vec::new();
    for i in 0..(20 + 50 + 40) {
        baseline.extend(s.observe(&molded(1_000 + i, "B", normal(i))).drift);
    }
    assert_eq!(baseline.len(), 1);
    assert_eq!((baseline[0].stamp.id.as_str(), baseline[0].alarm_target), ("m1/B@baseline", None));
    // Off: nothing is summarised.
    s.set_drift(None);
    assert!((0..200).all(|i| s.observe(&shot(2_000 + i, 10.0)).drift.is_empty()));
}
