//! `train` end to end on a small synthetic etl_data: features dropped for the stated reasons,
//! both models trained and judged on the time-ordered test part, the ONNX export checked with
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
    let half = n as i64 / 2;
    let ts = Int64Chunked::from_vec(
        "ts".into(),
        (0..n as i64).map(|i| T0 + i * 60_000 + if i >= half { 3_600_000 } else { 0 }).collect(),
    )
    .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let runs: Vec<&str> = (0..n as i64).map(|i| if i < half { "m1-a" } else { "m1-b" }).collect();
    let label: Vec<Option<f64>> = defect.iter().map(|&d| Some(f64::from(u8::from(d)))).collect();
    let df = DataFrame::new(
        n,
        vec![
            Column::new("machine_id".into(), vec!["m1"; n]),
            ts.into_column(),
            Column::new("shot_number".into(), (1..=n as u64).collect::<Vec<_>>()),
            Column::new("mold".into(), vec!["9000a"; n]),
            Column::new("run_id".into(), runs),
            Column::new("label".into(), label),
            Column::new("label_source".into(), vec!["shot"; n]),
            Column::new("defect".into(), vec![None::<&str>; n]),
            Column::new("edge_id".into(), vec!["e1"; n]),
            Column::new("seq".into(), (1..=n as u64).collect::<Vec<_>>()),
            Column::new("Cushion_Position".into(), cushion),
            Column::new("Cycle_Time".into(), cycle),
            Column::new("Filling_Time".into(), filling),
            Column::new("Mold_Constant".into(), vec![7.0f64; n]),
            Column::new("tcu.flow".into(), vec![None::<f64>; n]),
        ],
    )
    .unwrap();
    let dir = lake.join("etl_data/machine=m1/date=2026-01-01");
    std::fs::create_dir_all(&dir).unwrap();
    let mut df = df;
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
    assert_eq!(test.windows, k.windows["test"]);
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
    let bundle = Bundle::read_dir(&bundle_dir).unwrap();
    let manifest = bundle.verify(&moldops_shared::bundle::parse_key_hex(&public).unwrap()).unwrap();
    assert_eq!(manifest.model_id, "m1@1");
    assert_eq!(manifest.window, 4);
    assert_eq!(manifest.threshold, lstm.threshold.threshold);
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
