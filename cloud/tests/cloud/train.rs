//! `train` end to end on small synthetic etl_data: features dropped for the stated reasons,
//! the families and the baseline trained and judged on the time-ordered test part, the family
//! that catches a sustained step selected on validation, the ONNX export checked with
//! tract, and a signed bundle registered as a candidate whose tampering the registry refuses.

use clap::Parser;
use moldops_cloud::registry::{Registry, Stage, keys};
use moldops_cloud::train::{TrainArgs, run_training};
use moldops_shared::bundle::{Bundle, MODEL_FILE, ModelKey};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: TrainArgs,
}

/// `n` shots of machine m1 in two runs; every 10th shot from the 5th on is a defect (cushion
/// and filling time shifted); one feature is never measured and one is constant.
pub fn write_etl(lake: &Path, n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let defect: Vec<bool> = (0..n).map(|i| i % 10 == 5).collect();
    let mut cushion = Vec::new();
    let mut filling = Vec::new();
    let mut cycle = Vec::new();
    let mut drift = 0.0;
    for &d in &defect {
        drift += rng.random_range(-0.02..0.02);
        cycle.push(60.0 + drift + rng.random_range(-0.2..0.2));
        cushion.push(22.0 + 0.5 * drift + rng.random_range(-0.2..0.2) + if d { 3.0 } else { 0.0 });
        filling.push(3.7 + rng.random_range(-0.02..0.02) + if d { 0.4 } else { 0.0 });
    }
    let label: Vec<Option<f64>> = defect.iter().map(|&d| Some(f64::from(u8::from(d)))).collect();
    let features = vec![
        ("Cushion_Position", cushion),
        ("Cycle_Time", cycle),
        ("Filling_Time", filling),
        ("Mold_Constant", vec![7.0f64; n]),
    ];
    write_frame(lake, label, features, true);
}

/// Writes machine m1's etl_data: shots a minute apart in two runs (an hour between them), the
/// given labels and feature columns, and with `unmeasured` a feature that is never measured.
fn write_frame(lake: &Path, label: Vec<Option<f64>>, features: Vec<(&str, Vec<f64>)>, unmeasured: bool) {
    let n = label.len();
    let half = n as i64 / 2;
    let ts = Int64Chunked::from_vec(
        "ts".into(),
        (0..n as i64).map(|i| T0 + i * 60_000 + if i >= half { 3_600_000 } else { 0 }).collect(),
    )
    .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let runs: Vec<&str> = (0..n as i64).map(|i| if i < half { "m1-a" } else { "m1-b" }).collect();
    let mut columns = vec![
        Column::new("machine_id".into(), vec!["m1"; n]),
        ts.into_column(),
        Column::new("shot_number".into(), (1..=n as u64).collect::<Vec<_>>()),
        Column::new("mold".into(), vec!["9000a"; n]),
        Column::new("run_id".into(), runs),
        Column::new("label".into(), label.clone()),
        Column::new("label_source".into(), vec!["shot"; n]),
        // Two defect kinds, alternating every ten shots.
        Column::new(
            "defect".into(),
            label
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (*l == Some(1.0)).then_some(if (i / 10) % 2 == 0 { "short_shot" } else { "flash" })
                })
                .collect::<Vec<_>>(),
        ),
        Column::new("edge_id".into(), vec!["e1"; n]),
        Column::new("seq".into(), (1..=n as u64).collect::<Vec<_>>()),
    ];
    columns.extend(features.into_iter().map(|(name, v)| Column::new(name.into(), v)));
    if unmeasured {
        columns.push(Column::new("tcu.flow".into(), vec![None::<f64>; n]));
    }
    let mut df = DataFrame::new(n, columns).unwrap();
    let dir = lake.join("etl_data/machine=m1/date=2026-01-01");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("part.parquet")).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
}

fn args(lake: &Path, registry: &Path, key: &Path, extra: &[&str]) -> TrainArgs {
    let mut argv: Vec<String> =
        ["train", "--lake", &lake.display().to_string(), "--registry", &registry.display().to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    argv.extend(["--signing-key".into(), key.display().to_string()]);
    argv.extend(
        ["--window", "4", "--hidden", "8,3", "--epochs", "6", "--batch-size", "16", "--bootstrap", "50"]
            .map(String::from),
    );
    argv.extend(extra.iter().map(|s| s.to_string()));
    Cli::parse_from(argv).args
}

#[test]
fn trains_judges_exports_and_registers_a_signed_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("keys/signing.key"));
    write_etl(&lake, 240);
    let public = keys::keygen(&key, false).unwrap();
    let report = run_training(&args(&lake, &registry, &key, &[])).unwrap();
    assert_eq!(report.keys.len(), 1);
    let k = &report.keys[0];
    assert!(k.skipped.is_none(), "{:?}", k.skipped);
    assert_eq!(k.features, ["Cushion_Position", "Cycle_Time", "Filling_Time"]);
    let dropped: Vec<(&str, &str)> =
        k.dropped_features.iter().map(|d| (d.feature.as_str(), d.reason.as_str())).collect();
    assert!(dropped.iter().any(|(f, r)| *f == "Mold_Constant" && r.starts_with("constant")), "{dropped:?}");
    assert!(dropped.iter().any(|(f, r)| *f == "tcu.flow" && r.starts_with("missing")), "{dropped:?}");
    // Time-ordered split: 60 % train, 20 % validation, 20 % test (windows end in their part).
    assert!(k.windows["test"] > 0 && k.windows["test_defective"] > 0);
    let lstm = k.lstm_ae.as_ref().unwrap();
    let test = lstm.test.as_ref().unwrap();
    let pca = k.pca.as_ref().unwrap();
    assert!(pca.test.as_ref().is_some_and(|e| e.windows == k.windows["test"]));
    let selection = k.selection.as_ref().unwrap();
    let chosen = k.selected().unwrap();
    assert_eq!(chosen.kind, selection.kind, "{selection:?}");
    assert_eq!(test.windows, k.windows["test"]);
    // Recall per defect kind, each with its interval, over exactly the defective test windows.
    let by_kind = &chosen.test_by_kind;
    assert_eq!(
        by_kind.keys().map(String::as_str).collect::<Vec<_>>(),
        ["flash", "short_shot"],
        "{by_kind:?}"
    );
    assert_eq!(by_kind.values().map(|r| r.windows).sum::<usize>(), k.windows["test_defective"]);
    for r in by_kind.values() {
        let v = r.recall.value.unwrap();
        assert!(r.caught <= r.windows && (v - r.caught as f64 / r.windows as f64).abs() < 1e-12);
        // An interval when the kind's windows span more than one bootstrap block (window 4).
        match (r.recall.ci_low, r.recall.ci_high) {
            (Some(lo), Some(hi)) => assert!(r.windows > 4 && lo <= v && v <= hi, "{r:?}"),
            _ => assert!(r.windows <= 4, "{r:?}"),
        }
    }
    assert!(moldops_cloud::train::report::table(&report).contains("recall by defect kind: flash"));
    // The console's version page shows them, and where it trained.
    let page = moldops_cloud::console::version::detail(&registry, &lake, "m1", 1).unwrap();
    let kinds: Vec<(&str, u64)> = page.by_kind.iter().map(|k| (k.kind.as_str(), k.windows)).collect();
    let expected: Vec<(&str, u64)> = by_kind.iter().map(|(k, r)| (k.as_str(), r.windows as u64)).collect();
    assert_eq!(kinds, expected);
    assert_eq!(page.device.as_deref(), Some(report.device.as_str()));
    assert!(test.roc_auc.value.unwrap() > 0.5, "a strong defect signature is ranked above chance");
    assert!(k.baseline.as_ref().unwrap().test.is_some());
    assert!(lstm.test_fixed_0_1.as_ref().is_some_and(|e| e.threshold == 0.1));
    assert!(k.onnx_parity_max_diff.unwrap() <= 1e-4);

    // Registered as candidate 1, signed, with lineage.
    let (version, bundle_dir) = k.registered.clone().unwrap();
    assert_eq!(version, 1);
    let reg = Registry::open(&registry).unwrap();
    let key_m1 = ModelKey { machine_id: "m1".into(), mold: None };
    let info = reg.version(&key_m1, 1).unwrap();
    assert_eq!(info.stage, Stage::Candidate);
    assert_eq!(info.bundle_dir, bundle_dir);
    assert_eq!(info.record.signed_by, public);
    assert_eq!(info.record.lineage.data_files, ["etl_data/machine=m1/date=2026-01-01/part.parquet"]);
    assert_eq!(info.record.lineage.data_snapshot.len(), 64);
    assert!(!report.device.is_empty());
    assert_eq!(
        info.record.lineage.device.as_deref(),
        Some(report.device.as_str()),
        "lineage names the device"
    );
    let bundle = Bundle::read_dir(&bundle_dir).unwrap();
    let manifest = bundle.verify(&moldops_shared::bundle::parse_key_hex(&public).unwrap()).unwrap();
    assert_eq!(manifest.model_id, "m1@1");
    assert_eq!(manifest.window, 4);
    assert_eq!(manifest.threshold, chosen.threshold.threshold);
    assert_eq!(manifest.kind, selection.kind);
    assert_eq!(manifest.feature_names(), k.features);
    assert!(!bundle.files.keys().any(|f| f.contains("key")), "no key material in the bundle");
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(bundle.files.values().all(|d| !d.windows(64).any(|w| w == private.trim().as_bytes())));
    assert!(reg.state(&key_m1).unwrap().production().is_none());

    // The same seed gives the same model.
    let again = run_training(&args(&lake, &registry, &key, &["--no-baseline"])).unwrap();
    let (v2, dir2) = again.keys[0].registered.clone().unwrap();
    assert_eq!(v2, 2);
    assert_eq!(
        std::fs::read(dir2.join(MODEL_FILE)).unwrap(),
        std::fs::read(bundle_dir.join(MODEL_FILE)).unwrap()
    );

    // A tampered model file or manifest is refused by promote and by the rollout's reads.
    let mut onnx = std::fs::read(bundle_dir.join(MODEL_FILE)).unwrap();
    let last = onnx.len() - 1;
    onnx[last] ^= 1;
    std::fs::write(bundle_dir.join(MODEL_FILE), &onnx).unwrap();
    let err = reg.promote(&key_m1, 1).unwrap_err();
    assert!(format!("{err:#}").contains("hash mismatch"), "{err:#}");
    assert!(reg.bundle_bytes(&key_m1, 1).is_err());
    let manifest_path = dir2.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap().replacen("\"window\": 4", "\"window\": 5", 1);
    std::fs::write(&manifest_path, text).unwrap();
    let err = reg.promote(&key_m1, 2).unwrap_err();
    assert!(format!("{err:#}").contains("signature"), "{err:#}");
    assert!(reg.state(&key_m1).unwrap().production().is_none());
}

#[test]
/// (In a build with `moldops-models/wgpu` on a machine with a GPU this request would succeed;
/// the workspace tests run without the feature.)
fn a_required_gpu_that_is_not_there_fails_the_run_instead_of_using_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("signing.key"));
    write_etl(&lake, 60);
    keys::keygen(&key, false).unwrap();
    for device in ["gpu", "cuda:0"] {
        let err = run_training(&args(&lake, &registry, &key, &["--device", device])).unwrap_err();
        assert!(format!("{err:#}").contains("needs a GPU"), "{device}: {err:#}");
    }
    assert!(!registry.exists(), "nothing trained or registered");
    let err = Cli::try_parse_from(["train", "--device", "tpu"]).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("unknown device"), "{err}");
}

#[test]
fn train_refuses_a_missing_or_world_readable_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("signing.key"));
    write_etl(&lake, 60);
    let err = run_training(&args(&lake, &registry, &key, &[])).unwrap_err();
    assert!(format!("{err:#}").contains("keygen"), "{err:#}");
    keys::keygen(&key, false).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = run_training(&args(&lake, &registry, &key, &[])).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    }
}

/// 600 shots of five features driven by two slow process factors; from shot 400 to 419
/// (validation) and 520 to 569 (test) the third feature sits 0.5 above its relation to the
/// others — a sustained step, small against the feature's own range. Those shots are labelled
/// defective.
fn write_step_fault(lake: &Path) {
    let n = 600;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut u1, mut u2) = (0.0f64, 0.0f64);
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 5];
    let mut label = Vec::with_capacity(n);
    for i in 0..n {
        u1 = 0.9 * u1 + rng.random_range(-0.5..0.5);
        u2 = 0.9 * u2 + rng.random_range(-0.5..0.5);
        let fault = (400..420).contains(&i) || (520..570).contains(&i);
        let mut noise = || rng.random_range(-0.05..0.05);
        let x = [u1, u1 + u2, u2 + if fault { 0.5 } else { 0.0 }, u1 - u2, 2.0 * u1];
        for (c, v) in cols.iter_mut().zip(x) {
            c.push(10.0 + v + noise());
        }
        label.push(Some(f64::from(u8::from(fault))));
    }
    let names = ["p1", "p2", "p3", "p4", "p5"];
    write_frame(lake, label, names.into_iter().zip(cols).collect(), false);
}

#[test]
fn validation_selects_the_family_that_catches_a_sustained_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("keys/signing.key"));
    write_step_fault(&lake);
    keys::keygen(&key, false).unwrap();
    let report = run_training(&args(&lake, &registry, &key, &["--no-baseline"])).unwrap();
    let k = &report.keys[0];
    let s = k.selection.as_ref().unwrap();
    assert_eq!(s.criterion, moldops_cloud::train::select::Criterion::PrAuc, "{s:?}");
    assert!(s.figures.contains_key("pca") && s.figures.contains_key("lstm_ae"), "{s:?}");
    assert_eq!(s.kind, "pca", "the step is a broken correlation that T²/Q keep seeing: {s:?}");
    let chosen = k.selected().unwrap().test.as_ref().unwrap();
    assert!(chosen.positives >= 40, "{chosen:?}");
    assert!(chosen.recall.value.unwrap() >= 0.9, "the whole step is flagged, not its onset: {chosen:?}");
    assert!(chosen.precision.value.unwrap() >= 0.9, "{chosen:?}");
    let onsets = &k.selected().unwrap().onsets;
    assert_eq!((onsets.episodes, onsets.detected), (1, 1), "{onsets:?}");
    assert!(onsets.mean_coverage.unwrap() >= 0.9 && onsets.median_delay == Some(0), "{onsets:?}");
    let (_, dir) = k.registered.clone().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&Bundle::read_dir(&dir).unwrap().files["manifest.json"]).unwrap();
    assert_eq!(manifest["kind"], "pca");
    // The HTML page: the choice, both families' rows, ROC/PR curves and the scores over time.
    let page = moldops_cloud::train::html::render(&report).unwrap();
    assert!(page.contains("Selected <b>pca</b>") && page.contains("<td>lstm_ae</td>"), "{page:.2000}");
    assert_eq!(page.matches("<svg").count(), 3, "ROC, PR and the timeline");
    assert!(page.contains("ROC on test windows") && !page.contains("{{"));
    assert!(k.onnx_parity_max_diff.unwrap() <= 1e-4);
    // The families' combination is measured on the same test windows (never shipped).
    let combined = k.combined.as_ref().expect("two families, one combination");
    let ce = combined.test.as_ref().unwrap();
    assert_eq!(
        (combined.kind.as_str(), ce.positives, ce.windows),
        ("combined", chosen.positives, chosen.windows)
    );
    assert!(page.contains("<td>combined</td>"), "{page:.2000}");
    eprintln!(
        "sustained step: selected pca recall {:?} pr_auc {:?}; combined recall {:?} pr_auc {:?}",
        chosen.recall.value, chosen.pr_auc.value, ce.recall.value, ce.pr_auc.value
    );
}

#[test]
fn a_shard_trains_only_its_own_machines() {
    use moldops_cloud::shard::Shard;
    let tmp = tempfile::tempdir().unwrap();
    let (lake, registry, key) =
        (tmp.path().join("lake"), tmp.path().join("registry"), tmp.path().join("keys/signing.key"));
    write_etl(&lake, 120);
    keys::keygen(&key, false).unwrap();
    let owner = (0..2).find(|&index| Shard { index, count: 2 }.owns("m1")).unwrap();
    let train = |shard: u32| {
        let shard = format!("{shard}/2");
        run_training(&args(&lake, &registry, &key, &["--shard", &shard, "--no-baseline", "--no-register"]))
            .unwrap()
    };
    assert!(train(1 - owner).keys.is_empty(), "m1 is not in the other shard");
    // As the command runs it: an empty shard succeeds.
    let other = format!("{}/2", 1 - owner);
    let cli = args(&lake, &registry, &key, &["--shard", &other, "--no-baseline", "--no-register"]);
    moldops_cloud::train::cli::run(cli).expect("an empty shard's command succeeds");
    assert_eq!(train(owner).keys.iter().map(|k| k.key.label()).collect::<Vec<_>>(), ["m1"]);
}
