//! Tests of the drift command: the summaries an edge's drift monitor closes, committed the way
//! the ingest commits them, judged once into `drift_events`, and the retraining trigger.

use super::*;
use crate::ingest::commit::tests::{T0, data_topic, payload};
use crate::ingest::commit::{Committer, Group};
use moldops_scoring::drift::{DriftMonitor, DriftSettings, JudgedShot};
use moldops_shared::bundle::{ModelKey, ScoreStats};
use moldops_shared::drift::DriftSummary;
use moldops_shared::score::ModelStamp;
use moldops_shared::{Record, RecordKind};
use moldops_testkit::normal::Normal;

/// Validation scores of a model whose scores are N(1, 0.5): quantiles, and 1 % over the
/// threshold (its p99).
fn validation() -> ScoreStats {
    ScoreStats { count: 2_000, mean: 1.0, std: 0.5, p50: 1.0, p90: 1.641, p99: 2.163, alarm_rate: 0.01 }
}

/// What the simulated shots of one machine do.
#[derive(Clone, Copy)]
enum Regime {
    /// As in validation.
    Calm,
    /// Heater zone 3 runs `0` reference standard deviations off its mean.
    HeaterShift(f64),
    /// Scores as in validation, but this share of the shots alarms besides (a second rule).
    ExtraAlarms(f64),
}

/// One edge: a drift monitor (500-shot reference, a summary every 500 shots) over two
/// machines' keys, and the seq of its buffer.
struct Edge {
    monitor: DriftMonitor,
    noise: Normal,
    shots: u64,
    seq: u64,
}

impl Edge {
    fn new() -> Edge {
        let settings = DriftSettings { every_s: 0, ..DriftSettings::default() };
        assert_eq!((settings.every_shots, settings.reference_shots), (500, 500));
        Edge { monitor: DriftMonitor::new(settings), noise: Normal::new(42), shots: 0, seq: 0 }
    }

    /// `n` shots of machine `machine` (model 2 of its key `{machine}/MOLD-A`); returns the
    /// drift records they closed, with the seqs the edge's buffer gives them.
    fn run(&mut self, machine: &str, n: u64, regime: Regime) -> Vec<Record> {
        let key = ModelKey { machine_id: machine.into(), mold: Some("MOLD-A".into()) };
        let stamp = ModelStamp {
            key: key.label(),
            id: format!("{}@2", key.label()),
            version: 2,
            bundle_sha256: "ab".repeat(32),
        };
        let v = validation();
        let mut out = Vec::new();
        for _ in 0..n {
            self.shots += 1;
            let shift = if let Regime::HeaterShift(s) = regime { s } else { 0.0 };
            let zone = 230.0 + 0.8 * (self.noise.next() + shift);
            let cycle = 30.0 + 0.2 * self.noise.next();
            let score = 1.0 + 0.5 * self.noise.next();
            let extra =
                if let Regime::ExtraAlarms(share) = regime { self.noise.uniform() < share } else { false };
            let value = move |name: &str| match name {
                "Barrel_Temp_Zone3" => Some(zone),
                "Cycle_Time" => Some(cycle),
                _ => None,
            };
            let shot = JudgedShot {
                key: &key,
                stamp: stamp.clone(),
                validation: Some(&v),
                alarm_target: Some(v.alarm_rate),
                ts_ms: T0 + 1_000 * self.shots as i64,
                score,
                alarm: score > v.p99 || extra,
                features: vec!["Cycle_Time", "Barrel_Temp_Zone3"],
                value: &value,
            };
            if let Some(summary) = self.monitor.observe(&shot) {
                self.seq += 1;
                out.push(Record { seq: self.seq, ..summary.to_record() });
            }
        }
        out
    }
}

/// Commits `records` as one batch of edge `e1`, the way the ingest does.
fn commit(c: &mut Committer, records: Vec<Record>) -> crate::ingest::commit::Outcome {
    let mut g = Group::default();
    g.add(&data_topic("e1"), &payload("e1", records), T0);
    c.commit(g).expect("commit")
}

fn levels(outcome: &Outcome) -> Vec<(String, Level)> {
    outcome.events.iter().map(|e| (e.model_key.clone(), e.assessment.level)).collect()
}

#[test]
fn calm_periods_are_ok_a_drifting_heater_zone_and_excess_alarms_are_drift_and_each_is_judged_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let trigger = dir.path().join("retrain.json");
    let (mut c, _) = Committer::open(&lake).expect("open");
    let mut edge = Edge::new();
    let t = Thresholds::default();

    // 500 reference shots and two calm periods on each machine.
    let mut records = edge.run("M1", 1_500, Regime::Calm);
    records.extend(edge.run("M2", 1_500, Regime::Calm));
    assert_eq!(records.len(), 4);
    let out = commit(&mut c, records);
    assert_eq!((out.drift_records, out.quarantined), (4, 0));
    let calm = run(&lake, &t, false).expect("drift run");
    assert_eq!((calm.events.len(), calm.already_recorded, calm.files.len()), (4, 0, 2));
    for e in &calm.events {
        assert_eq!((e.assessment.level, e.shots, e.edge_id.as_str()), (Level::Ok, 500, "e1"), "{e:?}");
        assert!(e.assessment.reasons.is_empty());
        let worst = &e.assessment.worst_features[0];
        assert!(worst.psi.is_some_and(|p| p < t.warn_psi), "{worst:?}");
        assert!(e.assessment.score.psi.is_some_and(|p| p < t.warn_psi), "{:?}", e.assessment.score);
        assert!(e.assessment.alarm_p.is_some_and(|p| p > t.warn_p), "{:?}", e.assessment);
    }
    assert!(calm.events[0].event_id.starts_with("plant/e1/"), "{}", calm.events[0].event_id);
    assert!(!write_trigger(&trigger, &calm).expect("trigger"), "nothing drifted");
    assert!(!trigger.exists());

    // Heater zone 3 of M1 runs 1.5 σ hot; M2's scores stay as they were but 5 % of its shots
    // alarm besides (against a 1 % target).
    let mut records = edge.run("M1", 500, Regime::HeaterShift(1.5));
    records.extend(edge.run("M2", 500, Regime::ExtraAlarms(0.05)));
    // A forged summary in the same batch goes to quarantine alone; the others land.
    let mut forged = records[0].clone();
    forged.values.insert("shots".into(), 499.0);
    edge.seq += 1;
    forged.seq = edge.seq;
    records.push(forged);
    let out = commit(&mut c, records);
    assert_eq!((out.drift_records, out.quarantined), (2, 1), "{out:?}");

    let shifted = run(&lake, &t, false).expect("drift run");
    assert_eq!(shifted.already_recorded, 4, "the calm periods are not judged again");
    assert_eq!(
        levels(&shifted),
        [("M1/MOLD-A".to_string(), Level::Drift), ("M2/MOLD-A".to_string(), Level::Drift)]
    );
    let heater = &shifted.events[0].assessment;
    let zone = &heater.worst_features[0];
    assert_eq!(zone.name, "Barrel_Temp_Zone3");
    assert!(zone.psi.is_some_and(|p| p > t.drift_psi), "{zone:?}");
    assert!(zone.shift_std.is_some_and(|s| (1.2..1.8).contains(&s)), "{zone:?}");
    assert!(zone.ks_p.is_some_and(|p| p < 1e-6), "{zone:?}");
    assert_eq!(heater.reasons.len(), 1, "only the heater zone moved: {:?}", heater.reasons);
    assert!(heater.reasons[0].starts_with("Barrel_Temp_Zone3 PSI"), "{:?}", heater.reasons);
    let alarms = &shifted.events[1].assessment;
    assert!(alarms.alarm_rate > 0.04 && alarms.alarm_p.is_some_and(|p| p < t.drift_p), "{alarms:?}");
    assert_eq!(alarms.reasons.len(), 1, "only the alarm rate moved: {:?}", alarms.reasons);
    assert!(alarms.reasons[0].starts_with("alarm rate"), "{:?}", alarms.reasons);

    // The command's table names the key, the drifted zone and the reasons.
    let table = cli::table(&shifted.events);
    eprintln!("{table}");
    assert_eq!(table.lines().count(), 1 + 2 + 2, "header, two events, a reason each:\n{table}");
    assert!(table.contains("M1/MOLD-A@2") && table.contains("Barrel_Temp_Zone3 ("), "{table}");

    // The trigger names both keys; the pipeline's retraining task runs on it.
    assert!(write_trigger(&trigger, &shifted).expect("trigger"));
    let written: Trigger = serde_json::from_slice(&std::fs::read(&trigger).expect("read")).expect("json");
    let keys: Vec<&str> = written.keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["M1/MOLD-A", "M2/MOLD-A"]);
    assert_eq!(written.keys[0].model_id, "M1/MOLD-A@2");
    assert_eq!(written.keys[0].period_end_ms, shifted.events[0].period_end_ms);

    // A dry run and a re-run judge nothing twice; the trigger goes with nothing new.
    let dry = run(&lake, &t, true).expect("dry run");
    assert_eq!((dry.events.len(), dry.already_recorded, dry.files.len()), (0, 6, 0));
    let again = run(&lake, &t, false).expect("re-run");
    assert_eq!((again.events.len(), again.already_recorded, again.files.len()), (0, 6, 0));
    assert!(!write_trigger(&trigger, &again).expect("trigger"));
    assert!(!trigger.exists(), "no new drift: the trigger is removed");
    // The drift stays in the lake for the lifecycle plan, which no lost trigger can undo.
    let in_lake = crate::lifecycle::sources::drifted_in_lake(&lake).expect("drifted");
    let keys: Vec<(&str, i64)> = in_lake.iter().map(|k| (k.key.as_str(), k.period_end_ms)).collect();
    assert_eq!(
        keys,
        [("M1/MOLD-A", shifted.events[0].period_end_ms), ("M2/MOLD-A", shifted.events[1].period_end_ms)]
    );
    assert!(in_lake[0].reasons[0].starts_with("Barrel_Temp_Zone3 PSI"), "{in_lake:?}");
    let recorded = store::recorded_levels(&lake).expect("recorded");
    assert_eq!(recorded.len(), 6, "one row per summary");
    assert_eq!(recorded.values().filter(|l| **l == Level::Drift).count(), 2);
    let files = crate::lake::list_parts(&lake, store::DATASET).expect("list");
    assert_eq!(files.len(), 4, "a file per run and machine: {files:?}");
    let events = store::read_events(&lake).expect("drift_events");
    let levels: Vec<Option<&str>> =
        events.column("level").expect("level").str().expect("text").iter().collect();
    let (ok, drift) = (Some("ok"), Some("drift"));
    assert_eq!(levels, [ok, ok, ok, ok, drift, drift], "oldest period first: {events}");
}

#[test]
fn a_period_without_enough_shots_is_judged_by_its_alarm_rate_only_and_forged_figures_stay_bounded() {
    // A period whose heater zone moved 3 σ; with min_shots above its 500 shots it is too thin
    // for PSI, and only its alarm rate is judged.
    let mut edge = Edge::new();
    edge.run("M1", 500, Regime::Calm);
    let mut records = edge.run("M1", 500, Regime::HeaterShift(3.0));
    let mut s = DriftSummary::from_record(&records.remove(0)).expect("valid");
    let t = Thresholds::default();
    assert_eq!(assess::assess(&s, &t).level, Level::Drift);
    let thin = Thresholds { min_shots: 501, ..t };
    let a = assess::assess(&s, &thin);
    assert_eq!((a.level, a.reasons.len()), (Level::Ok, 0), "{a:?}");
    assert!(a.worst_features[0].psi.is_some_and(|p| p > 1.0), "the figures are still there");
    // A target of 0 is no target: one alarm is not infinitely surprising.
    s.alarm_target = Some(0.0);
    s.alarms = 1;
    let a = assess::assess(&s, &thin);
    assert_eq!((a.alarm_p, a.level), (None, Level::Ok));
    // A reference with (almost) no spread gives no shift figure, not an infinite one.
    s.features[1].histogram.ref_std = f64::from_bits(1);
    let a = assess::assess(&s, &t);
    let zone = a.worst_features.iter().find(|f| f.name == "Barrel_Temp_Zone3").expect("zone 3");
    assert_eq!(zone.shift_std, None, "{zone:?}");
    assert!(serde_json::to_string(&a).is_ok());
}

#[test]
fn a_second_run_at_once_is_refused_and_an_empty_lake_judges_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &Thresholds::default(), false).expect("empty lake");
    assert_eq!((out.events.len(), out.already_recorded), (0, 0));
    let _held = moldops_common::lock::LockFile::try_acquire(&dir.path().join(DRIFT_DIR).join("lock"), "test")
        .expect("lock");
    assert!(run(dir.path(), &Thresholds::default(), false).is_err(), "one run at a time");
    assert_eq!(RecordKind::Drift.dataset(), "edge_drift");
}
