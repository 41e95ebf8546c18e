#![allow(clippy::unwrap_used)]

use super::*;

fn held_out() -> HeldOut {
    HeldOut {
        from_ts_ms: 1_000,
        to_ts_ms: 2_000,
        train_windows: 600,
        validation_windows: 200,
        good_windows: 190,
        defective_windows: 12,
        false_alarm_rate: Some(0.01),
    }
}

fn candidate(h: HeldOut) -> Candidate {
    Candidate { version: 2, held_out: Some(h), false_alarm_target: Some(0.01) }
}

fn on(version: u32, far: f64, recall: f64) -> OnHeldOut {
    OnHeldOut { version, threshold: 1.0, false_alarm_rate: Some(far), recall: Some(recall), roc_auc: None }
}

fn measured(cand: OnHeldOut, prod: OnHeldOut) -> Versus {
    Versus::Measured(Comparison {
        from_ts_ms: 1_000,
        to_ts_ms: 2_000,
        good: 190,
        defective: 12,
        candidate: cand,
        production: prod,
    })
}

fn failed(r: &GateRecord) -> Vec<Check> {
    r.findings.iter().filter(|f| !f.passed).map(|f| f.check).collect()
}

#[test]
fn a_sane_first_model_passes() {
    let r = decide(&GateSettings::default(), &candidate(held_out()), &Versus::NoProduction);
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.findings);
    assert!(r.reasons().is_empty());
    assert_eq!((r.version, r.production, r.comparison.as_ref()), (2, None, None));
    let checks: Vec<Check> = r.findings.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        [Check::TrainingData, Check::ValidationData, Check::HeldOutData, Check::FalseAlarms],
        "no comparison without production"
    );
}

#[test]
fn too_little_data_is_refused() {
    let s = GateSettings::default();
    let mut h = held_out();
    h.train_windows = s.min_train_windows - 1;
    let r = decide(&s, &candidate(h), &Versus::NoProduction);
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(failed(&r), [Check::TrainingData]);
    assert!(r.reasons()[0].contains("99 clean training windows (need at least 100)"), "{:?}", r.reasons());

    let mut h = held_out();
    h.good_windows = 5;
    h.validation_windows = 3;
    let r = decide(&s, &candidate(h), &Versus::NoProduction);
    assert_eq!(failed(&r), [Check::ValidationData, Check::HeldOutData]);
}

#[test]
fn false_alarms_above_the_target_are_refused_within_the_tolerance_not() {
    let s = GateSettings::default();
    let mut h = held_out();
    h.false_alarm_rate = Some(0.01 + s.false_alarm_tolerance - 1e-6);
    assert_eq!(decide(&s, &candidate(h.clone()), &Versus::NoProduction).outcome, Outcome::Passed);
    h.false_alarm_rate = Some(0.4);
    let r = decide(&s, &candidate(h.clone()), &Versus::NoProduction);
    assert_eq!(failed(&r), [Check::FalseAlarms]);
    assert!(r.reasons()[0].contains("false-alarm rate 0.400"), "{:?}", r.reasons());
    h.false_alarm_rate = None;
    assert_eq!(failed(&decide(&s, &candidate(h), &Versus::NoProduction)), [Check::FalseAlarms]);
    let no_target = Candidate { false_alarm_target: None, ..candidate(held_out()) };
    assert_eq!(failed(&decide(&s, &no_target, &Versus::NoProduction)), [Check::FalseAlarms]);
}

#[test]
fn worse_than_production_on_the_same_held_out_shots_is_refused() {
    let s = GateSettings::default();
    // Catches far fewer defects than production on the same shots.
    let r = decide(&s, &candidate(held_out()), &measured(on(2, 0.01, 0.25), on(1, 0.01, 0.92)));
    assert_eq!(r.outcome, Outcome::Refused);
    assert_eq!(failed(&r), [Check::RecallVsProduction]);
    assert_eq!(r.production, Some(1));
    assert!(r.comparison.is_some(), "the measurement is kept");
    assert!(r.reasons()[0].contains("recall 0.250 vs production version 1's 0.920"), "{:?}", r.reasons());
    // Alarms on more good shots than production, beyond the margin.
    let r = decide(&s, &candidate(held_out()), &measured(on(2, 0.09, 0.9), on(1, 0.01, 0.9)));
    assert_eq!(failed(&r), [Check::FalseAlarmsVsProduction]);
    // Within the margins: passes.
    let r = decide(&s, &candidate(held_out()), &measured(on(2, 0.02, 0.85), on(1, 0.01, 0.92)));
    assert_eq!(r.outcome, Outcome::Passed, "{:?}", r.reasons());
    // Too few defects to compare recall: not compared, the false-alarm comparison still counts.
    let few = Versus::Measured(Comparison {
        defective: 3,
        ..match measured(on(2, 0.01, 0.0), on(1, 0.01, 1.0)) {
            Versus::Measured(c) => c,
            _ => unreachable!(),
        }
    });
    assert_eq!(decide(&s, &candidate(held_out()), &few).outcome, Outcome::Passed);
}

#[test]
fn an_impossible_comparison_or_missing_evidence_is_refused() {
    let s = GateSettings::default();
    let v = Versus::Unavailable { production: 1, why: "no lake".into() };
    let r = decide(&s, &candidate(held_out()), &v);
    assert_eq!(failed(&r), [Check::FalseAlarmsVsProduction]);
    assert!(r.reasons()[0].contains("cannot compare with production version 1: no lake"));
    let bare = Candidate { version: 3, held_out: None, false_alarm_target: Some(0.01) };
    let r = decide(&s, &bare, &Versus::NoProduction);
    assert_eq!(failed(&r), [Check::Evidence]);
    assert!(r.reasons()[0].contains("--force"), "{:?}", r.reasons());
}

#[test]
fn the_gate_file_overrides_defaults_per_key() {
    let text = "[defaults]\nmin_train_windows = 50\n\n[keys.\"m1/MOLD A\"]\nmax_recall_drop = 0.3\n";
    let f = GateFile::parse(text, "gate.toml").unwrap();
    let other = f.settings("m2");
    assert_eq!(other.min_train_windows, 50);
    assert_eq!(other.max_recall_drop, GateSettings::default().max_recall_drop);
    let own = f.settings("m1/MOLD A");
    assert_eq!((own.min_train_windows, own.max_recall_drop), (50, 0.3));
    assert!(GateFile::parse("[defaults]\nmin_train_window = 5\n", "g").is_err(), "typo refused");
    let err = GateFile::parse("[defaults]\nmax_recall_drop = 2.0\n", "g").unwrap_err();
    assert!(format!("{err:#}").contains("not a share"), "{err:#}");
    assert_eq!(GateFile::default().settings("m1"), GateSettings::default());
}

#[test]
fn the_held_out_summary_round_trips_through_metrics() {
    let metrics = serde_json::json!({"roc_auc": 0.9, (HELD_OUT_METRIC): held_out()});
    assert_eq!(HeldOut::from_metrics(&metrics), Some(held_out()));
    assert_eq!(HeldOut::from_metrics(&serde_json::json!({"roc_auc": 0.9})), None);
}
