//! Metrics against hand-computed values, and the threshold choice.

use super::metrics::*;

#[test]
fn counts_and_rates_at_a_threshold() {
    let s = [0.1, 0.4, 0.35, 0.8, 0.9];
    let l = [0, 0, 1, 1, 1];
    let m = at_threshold(&s, &l, 0.3);
    assert_eq!((m.tp, m.fp, m.fn_, m.tn), (3, 1, 0, 1));
    assert!((m.precision - 0.75).abs() < 1e-12 && (m.recall - 1.0).abs() < 1e-12);
    assert!((m.f1 - 6.0 / 7.0).abs() < 1e-12);
    assert_eq!(at_threshold(&s, &l, 0.9).tp, 0, "flagged only above the threshold");
}

#[test]
fn roc_and_pr_auc_match_sklearn_values() {
    // sklearn: roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75,
    // average_precision_score(...) = 0.8333333.
    let s = [0.1, 0.4, 0.35, 0.8];
    let l = [0, 0, 1, 1];
    assert!((roc_auc(&s, &l).unwrap() - 0.75).abs() < 1e-12);
    assert!((average_precision(&s, &l).unwrap() - 0.8333333333).abs() < 1e-9);
    // Ties count half.
    assert!((roc_auc(&[0.5, 0.5], &[0, 1]).unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(roc_auc(&s, &[0, 0, 0, 0]), None);
    assert_eq!(average_precision(&s, &[0, 0, 0, 0]), None);
}

#[test]
fn bootstrap_is_seeded_and_brackets_the_value() {
    let s: Vec<f32> = (0..60).map(|i| (i % 10) as f32 / 10.0 + if i % 6 == 0 { 0.5 } else { 0.0 }).collect();
    let l: Vec<u8> = (0..60).map(|i| u8::from(i % 6 == 0)).collect();
    let a = evaluate(&s, &l, 0.9, 200, 4, 1);
    assert_eq!(a, evaluate(&s, &l, 0.9, 200, 4, 1));
    assert_ne!(a.roc_auc.ci_low, evaluate(&s, &l, 0.9, 200, 4, 2).roc_auc.ci_low);
    let (v, lo, hi) = (a.roc_auc.value.unwrap(), a.roc_auc.ci_low.unwrap(), a.roc_auc.ci_high.unwrap());
    assert!(lo <= v && v <= hi, "{lo} ≤ {v} ≤ {hi}");
    assert_eq!((a.windows, a.positives), (60, 10));
}

#[test]
fn block_bootstrap_widens_the_interval_of_correlated_windows() {
    // Four faults of 25 consecutive windows each, caught on their first 15: the misses come
    // in runs, as they do when a model sees a sustained fault only at its onset.
    let l: Vec<u8> = (0..400).map(|i| u8::from(i % 100 < 25)).collect();
    let s: Vec<f32> = (0..400).map(|i| if i % 100 < 15 { 2.0 } else { 0.0 }).collect();
    let width = |block| {
        let e = evaluate(&s, &l, 1.0, 400, block, 7);
        e.recall.ci_high.unwrap() - e.recall.ci_low.unwrap()
    };
    assert_eq!(block_len(400, 16), 16);
    assert_eq!(block_len(10_000, 4), 22);
    let (iid, blocks) = (width(1), width(block_len(400, 16)));
    assert!(blocks > 1.5 * iid, "blocks {blocks:.3} vs independent draws {iid:.3}");
}

#[test]
fn recall_is_counted_per_defect_kind_with_an_interval() {
    // Two short-shot episodes (one caught), one flash episode (missed), good windows between.
    let kind = |k: &str| Some(k.to_string());
    let (ss, fl) = (kind("short_shot"), kind("flash"));
    let kinds =
        [None, ss.clone(), ss.clone(), None, fl.clone(), fl.clone(), None, ss.clone(), ss.clone(), None];
    let scores = [0.1, 0.9, 0.8, 0.2, 0.3, 0.1, 0.9, 0.2, 0.4, 0.95];
    let by = recall_by_kind(&scores, &kinds, 0.5, 200, 2, 7);
    assert_eq!(by.keys().collect::<Vec<_>>(), ["flash", "short_shot"], "good windows are no kind");
    let s = &by["short_shot"];
    assert_eq!((s.windows, s.caught), (4, 2));
    assert_eq!(s.recall.value, Some(0.5));
    let (lo, hi) = (s.recall.ci_low.unwrap(), s.recall.ci_high.unwrap());
    assert!(lo < 0.5 && hi > 0.5, "episodes resampled as blocks: {lo}..{hi}");
    assert_eq!((by["flash"].caught, by["flash"].recall.value), (0, Some(0.0)));
    assert_eq!(by, recall_by_kind(&scores, &kinds, 0.5, 200, 2, 7), "seeded");
    // Windows of 8 shots: one block would hold all four short-shot windows, so no interval
    // rather than a zero-width one.
    let wide = &recall_by_kind(&scores, &kinds, 0.5, 200, 8, 7)["short_shot"];
    assert_eq!((wide.recall.value, wide.recall.ci_low, wide.recall.ci_high), (Some(0.5), None, None));
}

#[test]
fn threshold_by_best_f1_when_validation_has_defects() {
    let s = [0.1, 0.2, 0.3, 0.9, 1.0, 0.25];
    let l = [Some(0), Some(0), Some(0), Some(1), Some(1), Some(1)];
    let c = choose_threshold(&s, &l, 2, 0.99, &[0.0, 0.1]);
    assert_eq!(c.method, "best_f1");
    // Flagging {1.0, 0.9} gives F1 0.8; {1.0, 0.9, 0.3, 0.25} gives tp 3, fp 1, F1 6/7, the
    // best: the threshold lies halfway between 0.25 and the next lower score, 0.2.
    assert!((c.threshold - 0.225).abs() < 1e-6, "{}", c.threshold);
    assert!((c.validation_f1.unwrap() - 6.0 / 7.0).abs() < 1e-9);
    let m = at_threshold(&s, &[0, 0, 0, 1, 1, 1], c.threshold);
    assert_eq!((m.tp, m.fp), (3, 1));
    // Good calibration windows scoring up to 0.5: the best-F1 threshold would alarm on them
    // more often than the target allows, so the conformal one is kept.
    let calibration: Vec<f32> = (0..=50).map(|i| i as f32 / 100.0).collect();
    let c = choose_threshold(&s, &l, 2, 0.99, &calibration);
    assert_eq!((c.method.as_str(), c.threshold), ("best_f1_at_target", 0.5));
}

#[test]
fn without_defects_the_threshold_is_conformal_on_the_calibration_slice() {
    let s: Vec<f32> = (0..101).map(|i| i as f32 / 100.0).collect();
    let mut l: Vec<Option<u8>> = vec![Some(0); 101];
    l[100] = Some(1); // one defect: below min_positives
    let calibration: Vec<f32> = (0..99).map(|i| i as f32).collect();
    let c = choose_threshold(&s, &l, 3, 0.9, &calibration);
    assert_eq!(c.method, "conformal");
    // ⌈(99 + 1) · 0.9⌉ = 90th smallest of 0..98 = 89: 9 of 99 above it (≤ 10 %).
    assert_eq!(c.threshold, 89.0);
    assert_eq!(conformal_threshold(&[1.0, 2.0, 3.0], 0.5), 2.0);
    // Too few scores for 1 %: the largest, and no score at all: nothing alarms.
    assert_eq!(conformal_threshold(&[1.0, 2.0, 3.0], 0.01), 3.0);
    assert_eq!(conformal_threshold(&[], 0.01), f32::MAX);
}

#[test]
fn false_alarms_report_the_target_and_the_achieved_rate_with_an_interval() {
    let calibration: Vec<f32> = (0..200).map(|i| (i * 37 % 200) as f32).collect();
    let c = choose_threshold(&[], &[], 3, 0.95, &calibration);
    let test: Vec<f32> = (0..400).map(|i| (i * 53 % 200) as f32).collect();
    let fa = false_alarms(&c, &calibration, &test, 300, 10, 1);
    assert!((fa.target - 0.05).abs() < 1e-12);
    let rate = fa.test_rate.value.unwrap();
    assert!((rate - fa.calibration_rate.unwrap()).abs() < 0.01 && rate <= 0.05, "{fa:?}");
    assert_eq!(fa.target_within_interval, Some(true), "{fa:?}");
    // A drift upward on test: the rate and its interval leave the target behind.
    let drifted: Vec<f32> = test.iter().map(|s| s + 50.0).collect();
    let fa = false_alarms(&c, &calibration, &drifted, 300, 10, 1);
    assert_eq!(fa.target_within_interval, Some(false), "{fa:?}");
    // A best-F1 threshold's target is what the calibration slice showed.
    let f1 = ThresholdChoice {
        threshold: 189.5,
        method: "best_f1".into(),
        validation_f1: Some(1.0),
        quantile: None,
    };
    assert!((false_alarms(&f1, &calibration, &test, 10, 10, 1).target - 0.05).abs() < 1e-12);
}

#[test]
fn roc_and_pr_curves_run_from_the_strictest_threshold_down() {
    let (roc, pr) = curves(&[0.9, 0.8, 0.8, 0.1], &[1, 1, 0, 0]);
    assert_eq!(roc, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
    assert_eq!(pr, [(0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]);
    assert_eq!(curves(&[0.5], &[1]), (vec![], vec![]));
}

#[test]
fn onsets_count_episodes_delays_and_coverage() {
    // Two faults: the first caught two windows late and only then, the second never.
    let series: Vec<(f32, u8)> =
        [(0.1, 0), (0.2, 1), (0.3, 1), (2.0, 1), (0.2, 1), (0.1, 0), (0.4, 1), (0.1, 1), (3.0, 0)].to_vec();
    let o = onsets(&series, 1.0);
    assert_eq!((o.episodes, o.detected, o.delays.clone(), o.median_delay), (2, 1, vec![2], Some(2)));
    assert!((o.mean_coverage.unwrap() - (0.25 + 0.0) / 2.0).abs() < 1e-12);
    assert_eq!(onsets(&[(0.5, 0)], 1.0), Onsets::default());
}

#[test]
fn keys_asked_for_come_from_key_flags_and_a_lifecycle_plan() {
    use crate::lifecycle::plan::{Plan, PlanEntry, Reason};
    use clap::Parser;
    use moldops_shared::bundle::ModelKey;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: crate::train::cli::TrainArgs,
    }
    let dir = tempfile::tempdir().expect("tmp");
    let plan_path = dir.path().join("plan.json");
    let plan = Plan {
        min_shots: 300,
        train: vec![PlanEntry { key: "M2/MOLD-B".into(), reason: Reason::NewKey { shots: 400 } }],
        waiting: Default::default(),
    };
    plan.write(&plan_path).expect("plan");
    let args = |extra: &[&str]| {
        let mut argv = vec!["train"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("args").train
    };
    let keys =
        super::run::wanted_keys(&args(&["--key", "M1", "--keys-from", plan_path.to_str().expect("utf-8")]))
            .expect("keys");
    let expected = ["M1", "M2/MOLD-B"].map(|k| ModelKey::parse(k).expect("key"));
    assert_eq!(keys, expected);
    assert!(super::run::wanted_keys(&args(&[])).expect("none").is_empty(), "no flag: every key");
    assert!(super::run::wanted_keys(&args(&["--key", "M1/"])).is_err(), "a bad key is refused");
    std::fs::write(&plan_path, br#"{"min_shots": 300, "train": [], "waiting": {}}"#).expect("write");
    let empty = super::run::wanted_keys(&args(&["--keys-from", plan_path.to_str().expect("utf-8")]));
    assert!(empty.is_err(), "an empty plan trains nothing, not every key");
    std::fs::write(&plan_path, b"{").expect("write");
    assert!(super::run::wanted_keys(&args(&["--keys-from", plan_path.to_str().expect("utf-8")])).is_err());
}
