//! `models promote` as the CLI parses it, on a registry and a lake: a sane first model passes,
//! a candidate that misses the defects production catches on the same held-out shots and one
//! that alarms on every good shot stay candidates with the reasons, a good one replaces
//! production, `--force` is recorded as forced, and without a lake nothing is compared.
#![allow(clippy::unwrap_used)]

use super::super::cli::{PromoteArgs, promote};
use super::super::{Lineage, NewVersion, Registry, Stage};
use super::*;
use crate::registry::gate::{Check, GATE_FILE, HELD_OUT_METRIC};
use clap::Parser;
use moldops_shared::bundle::{FeatureSpec, MODEL_FILE, Manifest};
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const SHOTS: i64 = 600;
/// The last fifth of the shots is every candidate's held-out window.
const HELD_FROM: i64 = 480;
const SEED: [u8; 32] = [5; 32];

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: PromoteArgs,
}

fn ts(i: i64) -> i64 {
    T0 + i * 60_000
}

/// Machine m1's etl_data: a shot a minute, every 10th from the 5th on defective (cushion and
/// filling time shifted), the cycle time never affected.
fn write_etl(lake: &Path) {
    let n = SHOTS as usize;
    let wobble = |i: usize, k: usize| ((i * 7919 + k * 104_729) % 101) as f64 / 100.0 - 0.5;
    let defect: Vec<bool> = (0..n).map(|i| i % 10 == 5).collect();
    let extra = |i: usize, by: f64| if defect[i] { by } else { 0.0 };
    let cushion: Vec<f64> = (0..n).map(|i| 22.0 + 0.3 * wobble(i, 1) + extra(i, 3.0)).collect();
    let filling: Vec<f64> = (0..n).map(|i| 3.7 + 0.03 * wobble(i, 2) + extra(i, 0.4)).collect();
    let cycle: Vec<f64> = (0..n).map(|i| 60.0 + 0.4 * wobble(i, 3)).collect();
    let time = Int64Chunked::from_vec("ts".into(), (0..SHOTS).map(ts).collect())
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let label: Vec<f64> = defect.iter().map(|&d| f64::from(u8::from(d))).collect();
    let columns = vec![
        Column::new("machine_id".into(), vec!["m1"; n]),
        time.into_column(),
        Column::new("shot_number".into(), (1..=n as u64).collect::<Vec<_>>()),
        Column::new("mold".into(), vec!["9000a"; n]),
        Column::new("run_id".into(), vec!["m1-a"; n]),
        Column::new("label".into(), label),
        Column::new("label_source".into(), vec!["shot"; n]),
        Column::new("defect".into(), defect.iter().map(|&d| d.then_some("short_shot")).collect::<Vec<_>>()),
        Column::new("edge_id".into(), vec!["e1"; n]),
        Column::new("seq".into(), (1..=n as u64).collect::<Vec<_>>()),
        Column::new("Cushion_Position".into(), cushion),
        Column::new("Cycle_Time".into(), cycle),
        Column::new("Filling_Time".into(), filling),
    ];
    let mut df = DataFrame::new(n, columns).unwrap();
    let dir = lake.join("etl_data/machine=m1/date=2026-01-01");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("part.parquet")).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
}

/// What `train` would have recorded for a candidate held out on the last fifth.
fn held_out(false_alarm_rate: f64) -> HeldOut {
    HeldOut {
        from_ts_ms: ts(HELD_FROM),
        to_ts_ms: ts(SHOTS - 1),
        train_windows: 350,
        validation_windows: 120,
        good_windows: 108,
        defective_windows: 12,
        false_alarm_rate: Some(false_alarm_rate),
    }
}

/// A z-score model (window 1) over `features` (name, mean, std) at `threshold`.
fn version(key: &ModelKey, features: &[(&str, f32, f32)], threshold: f32, held: HeldOut) -> NewVersion {
    let mu: Vec<f32> = features.iter().map(|f| f.1).collect();
    let sigma: Vec<f32> = features.iter().map(|f| f.2).collect();
    let specs = features.iter().map(|f| FeatureSpec { name: f.0.into(), unit: None, fill: f.1 }).collect();
    let mut manifest = Manifest::new(key.clone(), "zscore", specs, 1, threshold);
    manifest.false_alarm_target = Some(0.01);
    let metrics = serde_json::json!({ (HELD_OUT_METRIC): held });
    manifest.metrics = metrics.clone();
    let onnx = moldops_scoring::inference::reference::zscore_onnx(1, &mu, &sigma);
    NewVersion {
        manifest,
        files: BTreeMap::from([(MODEL_FILE.to_string(), onnx)]),
        metrics,
        lineage: Lineage {
            data_snapshot: "cd".repeat(32),
            data_files: vec![],
            params: serde_json::Value::Null,
            code_version: "test".into(),
            device: None,
        },
        report: None,
    }
}

const GOOD: &[(&str, f32, f32)] = &[("Cushion_Position", 22.0, 0.3), ("Filling_Time", 3.7, 0.03)];
const BLIND: &[(&str, f32, f32)] = &[("Cycle_Time", 60.0, 0.4)];

fn run(registry: &Path, extra: &[&str]) -> PromoteReport {
    let mut argv = vec!["promote".to_string(), "--registry".into(), registry.display().to_string()];
    argv.extend(extra.iter().map(|s| s.to_string()));
    promote(&Cli::parse_from(argv).args).unwrap()
}

fn stage(reg: &Registry, key: &ModelKey, v: u32) -> Stage {
    reg.state(key).unwrap().stages[&v]
}

#[test]
fn the_gate_promotes_good_candidates_and_keeps_worse_ones_candidates_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, root) = (tmp.path().join("lake"), tmp.path().join("registry"));
    write_etl(&lake);
    let reg = Registry::open(&root).unwrap();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    let lake_arg = lake.display().to_string();
    let latest = ["--latest", "--lake", lake_arg.as_str()];

    // A sane first model: nothing to compare with, promoted.
    reg.register(version(&key, GOOD, 10.0, held_out(0.0)), &SEED).unwrap();
    let r = run(&root, &latest);
    assert_eq!(r.decisions.len(), 1);
    assert_eq!((r.decisions[0].gate, r.decisions[0].promoted), (Some(Outcome::Passed), true));
    assert_eq!(r.transitions()[0].reason, "promoted (gate passed)");
    assert_eq!(stage(&reg, &key, 1), Stage::Production);

    // Blind to the defects (cycle time only): no false alarm, but it misses what production
    // catches on the same held-out shots.
    reg.register(version(&key, BLIND, 5.0, held_out(0.0)), &SEED).unwrap();
    let r = run(&root, &latest);
    let d = &r.decisions[0];
    assert_eq!((d.version, d.gate, d.promoted), (2, Some(Outcome::Refused), false));
    assert!(d.transitions.is_empty());
    assert_eq!(d.reasons.len(), 1, "{:?}", d.reasons);
    assert!(d.reasons[0].contains("recall 0.000 vs production version 1's 1.000"), "{:?}", d.reasons);
    assert_eq!((stage(&reg, &key, 1), stage(&reg, &key, 2)), (Stage::Production, Stage::Candidate));
    let info = reg.version(&key, 2).unwrap();
    let record = info.gate.as_ref().expect("the refusal is recorded with the version");
    assert_eq!(record.outcome, Outcome::Refused);
    let c = record.comparison.as_ref().expect("measured on the lake");
    assert_eq!((c.good, c.defective), (108, 12), "both scored every held-out shot");
    assert_eq!((c.candidate.recall, c.production.recall), (Some(0.0), Some(1.0)));
    assert_eq!(c.production.false_alarm_rate, Some(0.0));
    let listed = serde_json::to_value(reg.versions(&key).unwrap()).unwrap();
    assert_eq!(listed[1]["gate"]["outcome"], "refused", "models list --json shows it");

    // Alarms on every good shot (threshold below any score): refused on its own figures and
    // against production on the same shots.
    reg.register(version(&key, GOOD, -1.0, held_out(1.0)), &SEED).unwrap();
    let d = &run(&root, &latest).decisions[0];
    assert_eq!((d.version, d.promoted), (3, false));
    let failed: Vec<Check> = reg
        .version(&key, 3)
        .unwrap()
        .gate
        .unwrap()
        .findings
        .iter()
        .filter(|f| !f.passed)
        .map(|f| f.check)
        .collect();
    assert_eq!(failed, [Check::FalseAlarms, Check::FalseAlarmsVsProduction]);

    // As good as production: replaces it.
    reg.register(
        version(&key, &[("Cushion_Position", 22.0, 0.25), ("Filling_Time", 3.7, 0.03)], 12.0, held_out(0.0)),
        &SEED,
    )
    .unwrap();
    let r = run(&root, &latest);
    assert_eq!((r.decisions[0].version, r.decisions[0].promoted), (4, true));
    let moves: Vec<(u32, Stage)> = r.transitions().iter().map(|t| (t.version, t.to)).collect();
    assert_eq!(moves, [(1, Stage::Archived), (4, Stage::Production)]);
    assert_eq!(reg.version(&key, 4).unwrap().gate.unwrap().production, Some(1));
    assert_eq!(stage(&reg, &key, 2), Stage::Candidate, "the refused one stays a candidate");

    // Without a lake production cannot be compared with: refused, nothing changes.
    reg.register(version(&key, GOOD, 10.0, held_out(0.0)), &SEED).unwrap();
    let d = &run(&root, &["--latest"]).decisions[0];
    assert_eq!((d.version, d.promoted), (5, false));
    assert!(d.reasons[0].contains("no lake"), "{:?}", d.reasons);
    assert_eq!(stage(&reg, &key, 4), Stage::Production);

    // A person's explicit choice: promoted without the gate, recorded as forced.
    let r = run(&root, &["--key", "m1", "--version", "2", "--force"]);
    assert_eq!((r.decisions[0].gate, r.decisions[0].promoted), (Some(Outcome::Forced), true));
    assert!(r.transitions()[1].reason.contains("--force"), "{:?}", r.transitions());
    let g = reg.version(&key, 2).unwrap().gate.unwrap();
    assert_eq!((g.outcome, g.production), (Outcome::Forced, Some(4)));
    assert_eq!(stage(&reg, &key, 2), Stage::Production);

    // Re-promoting an archived version is the rollback: not gated.
    let r = run(&root, &["--key", "m1", "--version", "1"]);
    assert_eq!((r.decisions[0].gate, r.decisions[0].promoted), (None, true));
    assert_eq!(r.transitions()[1].reason, "rollback: re-promoted");
    let history = reg.state(&key).unwrap().history;
    assert!(history.iter().all(|t| t.from != Some(Stage::Candidate) || t.to != Stage::Candidate));
}

#[test]
fn a_first_model_calibrated_to_a_lax_target_of_its_own_is_held_to_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let reg = Registry::open(&root).unwrap();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    // Trained with --quantile 0.5: it declares 50 % false alarms and meets that.
    let mut lax = version(&key, GOOD, 10.0, held_out(0.45));
    lax.manifest.false_alarm_target = Some(0.5);
    reg.register(lax, &SEED).unwrap();
    let d = &run(&root, &["--latest"]).decisions[0];
    assert_eq!((d.gate, d.promoted), (Some(Outcome::Refused), false));
    assert!(d.reasons[0].contains("target 0.010 (the key's"), "{:?}", d.reasons);
    // A candidate trained at the default quantile (target 1 − 0.99, a hair above 0.01) is held
    // to its own target, and nothing says otherwise.
    let m2 = ModelKey { machine_id: "m2".into(), mold: None };
    let mut default = version(&m2, GOOD, 10.0, held_out(0.0));
    default.manifest.false_alarm_target = Some(1.0 - 0.99);
    reg.register(default, &SEED).unwrap();
    let d = run(&root, &["--key", "m2", "--version", "1"]).decisions[0].clone();
    assert_eq!((d.gate, d.promoted), (Some(Outcome::Passed), true), "{:?}", d.reasons);
    let findings = reg.version(&m2, 1).unwrap().gate.unwrap().findings;
    assert!(findings.iter().all(|f| !f.detail.contains("the key's")), "{findings:?}");
    // A gate file that allows 50 % for this key lets it through.
    std::fs::write(root.join(GATE_FILE), "[keys.\"m1\"]\nmax_false_alarm_target = 0.5\n").unwrap();
    let d = &run(&root, &["--latest"]).decisions[0];
    assert_eq!((d.gate, d.promoted), (Some(Outcome::Passed), true), "{:?}", d.reasons);
}

#[test]
fn a_named_lake_that_does_not_exist_fails_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let reg = Registry::open(&root).unwrap();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    reg.register(version(&key, GOOD, 10.0, held_out(0.0)), &SEED).unwrap();
    reg.promote(&key, 1).unwrap();
    reg.register(version(&key, GOOD, 10.0, held_out(0.0)), &SEED).unwrap();
    let missing = tmp.path().join("nowhere").display().to_string();
    let argv = ["promote", "--registry", &root.display().to_string(), "--latest", "--lake", &missing];
    let err = promote(&Cli::parse_from(argv).args).unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    assert_eq!(stage(&reg, &key, 2), Stage::Candidate);
}
