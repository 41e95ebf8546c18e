//! The promotion gate on what `train` really registers: the held-out summary it records, a
//! first model promoted by `models promote --latest`, a second one scored beside production on
//! the lake's held-out shots (the measurement agreeing with what `train` recorded), and a
//! deliberately worse copy — its threshold lowered so it alarms on most good shots — refused.

use clap::Parser;
use moldops_cloud::registry::cli::{PromoteArgs, promote};
use moldops_cloud::registry::gate::{Check, HeldOut, Outcome};
use moldops_cloud::registry::{Lineage, NewVersion, Registry, Stage, keys};
use moldops_cloud::train::{TrainArgs, run_training};
use moldops_shared::bundle::{Bundle, MODEL_FILE, ModelKey};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Parser)]
struct Train {
    #[command(flatten)]
    args: TrainArgs,
}

#[derive(Parser)]
struct Promote {
    #[command(flatten)]
    args: PromoteArgs,
}

fn train(lake: &Path, registry: &Path, key: &Path, seed: &str) {
    let argv = [
        "train",
        "--lake",
        &lake.display().to_string(),
        "--registry",
        &registry.display().to_string(),
        "--signing-key",
        &key.display().to_string(),
        "--window",
        "4",
        "--hidden",
        "8,3",
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--bootstrap",
        "50",
        "--no-baseline",
        "--seed",
        seed,
    ]
    .map(String::from);
    let report = run_training(&Train::parse_from(argv).args).unwrap();
    assert!(report.keys[0].registered.is_some(), "{:?}", report.keys[0].skipped);
}

fn promote_latest(registry: &Path, lake: &Path) -> moldops_cloud::registry::promote::PromoteReport {
    let (registry, lake) = (registry.display().to_string(), lake.display().to_string());
    let argv = ["promote", "--registry", &registry, "--latest", "--lake", &lake];
    promote(&Promote::parse_from(argv).args).unwrap()
}

#[test]
fn trained_candidates_go_through_the_gate_and_a_worse_copy_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("keys/signing.key"));
    crate::train::write_etl(&lake, 600);
    keys::keygen(&key, false).unwrap();
    let m1 = ModelKey { machine_id: "m1".into(), mold: None };
    let reg = Registry::open(&registry).unwrap();

    // What train records for the gate.
    train(&lake, &registry, &key, "1");
    let v1 = reg.version(&m1, 1).unwrap();
    let held = HeldOut::from_metrics(&v1.record.metrics).expect("train records the held-out summary");
    assert!(held.from_ts_ms < held.to_ts_ms && held.good_windows > 0 && held.defective_windows > 0);
    assert!(held.train_windows > held.validation_windows, "{held:?}");

    // A sane first model: no production to compare with, promoted.
    let r = promote_latest(&registry, &lake);
    let d = &r.decisions[0];
    assert_eq!((d.version, d.gate, d.promoted), (1, Some(Outcome::Passed), true), "{:?}", d.reasons);

    // A second one is scored beside production on its own held-out shots; the lake measurement
    // of the candidate agrees with what train recorded for the same windows.
    train(&lake, &registry, &key, "2");
    let r = promote_latest(&registry, &lake);
    let d = &r.decisions[0];
    assert_eq!((d.version, d.gate, d.promoted), (2, Some(Outcome::Passed), true), "{:?}", d.reasons);
    let g = reg.version(&m1, 2).unwrap().gate.expect("gate record");
    let c = g.comparison.as_ref().expect("measured on the lake");
    let held2 = HeldOut::from_metrics(&reg.version(&m1, 2).unwrap().record.metrics).unwrap();
    assert_eq!((c.good, c.defective), (held2.good_windows, held2.defective_windows), "the same windows");
    let (lake_rate, train_rate) = (c.candidate.false_alarm_rate.unwrap(), held2.false_alarm_rate.unwrap());
    assert!((lake_rate - train_rate).abs() <= 1.0 / c.good as f64, "{lake_rate} vs {train_rate}");
    assert_eq!(c.production.version, 1);

    // A worse copy of the production model: the same graph, its threshold so low that it alarms
    // on almost every good shot (train would have recorded that rate too).
    let prod = reg.production(&m1).unwrap().unwrap();
    let bundle = Bundle::read_dir(&prod.bundle_dir).unwrap();
    let mut manifest = prod.manifest.clone();
    manifest.threshold = 0.0;
    let info = reg.version(&m1, prod.version).unwrap();
    let mut metrics = info.record.metrics.clone();
    let mut worse_held = HeldOut::from_metrics(&metrics).unwrap();
    worse_held.false_alarm_rate = Some(1.0);
    metrics["held_out"] = serde_json::to_value(&worse_held).unwrap();
    let lineage: Lineage = info.record.lineage.clone();
    let seed = keys::load_signing_key(&key).unwrap();
    let new = NewVersion {
        manifest,
        files: BTreeMap::from([(MODEL_FILE.to_string(), bundle.files[MODEL_FILE].clone())]),
        metrics,
        lineage,
        report: None,
    };
    let worse = reg.register(new, &seed).unwrap().record.version;
    let r = promote_latest(&registry, &lake);
    let d = &r.decisions[0];
    assert_eq!((d.version, d.gate, d.promoted), (worse, Some(Outcome::Refused), false));
    let g = reg.version(&m1, worse).unwrap().gate.unwrap();
    let failed: Vec<Check> = g.findings.iter().filter(|f| !f.passed).map(|f| f.check).collect();
    assert!(failed.contains(&Check::FalseAlarms), "{failed:?}");
    assert!(failed.contains(&Check::FalseAlarmsVsProduction), "measured on the same shots: {failed:?}");
    let c = g.comparison.unwrap();
    assert!(c.candidate.false_alarm_rate.unwrap() > 0.5, "{c:?}");
    assert_eq!(reg.version(&m1, worse).unwrap().stage, Stage::Candidate);
    assert_eq!(reg.state(&m1).unwrap().production(), Some(prod.version), "production unchanged");
}
