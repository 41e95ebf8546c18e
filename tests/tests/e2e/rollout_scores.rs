//! Batch scoring and live scoring agree: the simulator's process model makes a few hundred
//! shots and readings; they go into a lake and through the ETL, and in time order through the
//! edge's `Scorer`. `moldops-cloud score`'s code gives every shot the score the edge gave it,
//! with the same model (a signed reference bundle) and the same windows.

use crate::lake_support::{DAY0, commit, m1_record, simulate_m1};
use moldops_cloud::etl::{self, EtlConfig, read_etl};
use moldops_cloud::score;
use moldops_scoring::inference::reference::zscore_onnx;
use moldops_scoring::judge::Limits;
use moldops_scoring::metrics::ScoringMetrics;
use moldops_scoring::{LoadedModel, Scorer};
use moldops_shared::bundle::{Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey, public_key};
use moldops_shared::rollout::BundleRef;
use moldops_shared::{Record, RecordKind};
use moldops_sim::process::ProcessConfig;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const SEED: [u8; 32] = [3; 32];

/// Shots with a tcu reading at shot time and a dryer reading 40 s before (outside the 30 s
/// tolerance: its columns are missing and take the fill), mold changes and idle stops.
fn simulate(steps: usize) -> Vec<Record> {
    let cfg = ProcessConfig {
        seed: 11,
        index: 0,
        start_ms: DAY0 + 6 * 3_600_000,
        start_shot: 1,
        defect_rate: 0.1,
        sustained_faults: 0.0,
        mold_change_shots: 90,
        idle_every: 70,
    };
    simulate_m1(cfg, steps, |s| {
        let p = &s.peripherals;
        vec![
            m1_record(RecordKind::Peripheral, "M1-tcu", s.ts_ms, &[("flow", p.flow)]),
            m1_record(RecordKind::Peripheral, "M1-dryer", s.ts_ms - 40_000, &[("dew_point", p.dew_point)]),
        ]
    })
}

/// A z-score bundle "trained" on the records themselves: each feature's mean and spread.
fn bundle(features: &[String], records: &[Record], tolerance_ms: i64) -> Bundle {
    let stats = |name: &str| {
        let (column, value) = name.split_once('.').map_or((None, name), |(d, v)| (Some(d), v));
        let xs: Vec<f64> = records
            .iter()
            .filter(|r| match column {
                None => r.kind == RecordKind::Shot,
                Some(d) => r.device_id == format!("M1-{d}"),
            })
            .filter_map(|r| r.values.get(value).copied())
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len().max(1) as f64;
        (mean as f32, var.sqrt().max(1e-3) as f32)
    };
    let (mu, sigma): (Vec<f32>, Vec<f32>) = features.iter().map(|f| stats(f)).unzip();
    let specs = features
        .iter()
        .zip(&mu)
        .map(|(n, m)| FeatureSpec { name: n.clone(), unit: None, fill: *m })
        .collect();
    let manifest = Manifest {
        tolerance_ms,
        ..Manifest::new(ModelKey { machine_id: "M1".into(), mold: None }, "zscore", specs, 4, 2.0)
    };
    let files = BTreeMap::from([(MODEL_FILE.to_string(), zscore_onnx(4, &mu, &sigma))]);
    Bundle::seal(manifest, files, &SEED).expect("seal")
}

#[test]
fn batch_and_edge_agree() {
    let records = simulate(300);
    let lake = tempfile::tempdir().expect("tempdir");
    commit(lake.path(), "edge-1", 1, records.clone());
    let summary = etl::run(lake.path(), &EtlConfig::default()).expect("etl");
    let shots = records.iter().filter(|r| r.kind == RecordKind::Shot).count() as u64;
    assert_eq!(summary.rows_out, shots, "every shot survives the drop rules: {summary:?}");

    let mut features: Vec<String> =
        ["Cycle_Time", "Cushion_Position", "Injection_Time", "Max_Injection_Pressure"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    features.extend(["tcu.flow".to_string(), "dryer.dew_point".to_string()]);
    let b = bundle(&features, &records, summary.machines[0].tolerance_ms);
    let key = public_key(&SEED);

    // Batch: the lake's etl_data, written to the scores dataset.
    let mut model = score::load_model(&b, Some(&key)).expect("load");
    let batch = score::score_lake(lake.path(), &mut model).expect("batch scoring");
    assert!(batch.file.as_ref().is_some_and(|f| f.is_file()), "{batch:?}");
    let (scored, warming) =
        score::score_frame(&read_etl(lake.path()).expect("etl_data"), &mut model).expect("score");
    assert_eq!(scored.len(), batch.scored);
    assert!(warming >= 3 && batch.alarms > 0 && batch.alarms < scored.len(), "{batch:?}");

    // Edge: the same records, in time order, through the live scorer.
    let mut scorer = Scorer::new(
        "edge-1",
        Limits { max_alarm_rate: 1.0, max_score_shift: 1.0, false_alarm_tolerance: 0.0 },
        Arc::new(ScoringMetrics::default()),
    );
    let m = score::load_model(&b, Some(&key)).expect("load");
    let bref = BundleRef::describe("M1@1", 1, &b.to_bytes(), 1 << 20);
    scorer.set_active(
        &ModelKey { machine_id: "M1".into(), mold: None },
        LoadedModel { bundle: bref, model: m },
    );
    let mut edge: HashMap<u64, f32> = HashMap::new();
    for r in &records {
        for msg in scorer.observe(r).scores {
            assert!(edge.insert(msg.seq, msg.score).is_none(), "seq {} scored twice", msg.seq);
        }
    }
    assert_eq!(edge.len(), scored.len(), "the edge and the batch score the same shots");
    for s in &scored {
        let seq = s.seq.expect("seq");
        let e = edge.get(&seq).unwrap_or_else(|| panic!("the edge did not score seq {seq}"));
        assert_eq!(e.to_bits(), s.score.to_bits(), "seq {seq}: edge {e} batch {}", s.score);
    }
}

#[test]
fn the_production_version_comes_from_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = moldops_cloud::registry::Registry::open(dir.path()).expect("registry");
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let b = bundle(&["Cycle_Time".to_string()], &simulate(20), 30_000);
    let register = |b: &Bundle| {
        let manifest = b.manifest_unverified().expect("manifest");
        let files = BTreeMap::from([(MODEL_FILE.to_string(), b.files[MODEL_FILE].clone())]);
        let new = moldops_cloud::registry::NewVersion {
            manifest,
            files,
            metrics: serde_json::json!({}),
            lineage: moldops_cloud::registry::Lineage {
                data_snapshot: "ab".repeat(32),
                data_files: vec![],
                params: serde_json::json!({}),
                code_version: "test".into(),
                device: None,
            },
            report: None,
        };
        reg.register(new, &SEED).expect("register").record.version
    };
    let (v1, v2) = (register(&b), register(&b));
    let none = moldops_cloud::rollout::cli::registry_bundle(dir.path(), &key, None);
    assert!(format!("{:#}", none.expect_err("no production yet")).contains("no production version"));
    reg.promote(&key, v2).expect("promote");
    let prod = moldops_cloud::rollout::cli::registry_bundle(dir.path(), &key, None).expect("production");
    let m = score::load_model(&prod, None).expect("the registry verified it");
    assert_eq!(m.manifest().version, v2);
    let older = moldops_cloud::rollout::cli::registry_bundle(dir.path(), &key, Some(v1)).expect("v1");
    assert_eq!(older.manifest_unverified().expect("manifest").version, v1);
}
