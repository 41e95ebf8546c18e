//! `augment` end to end on a small etl_data: real rows kept and flagged, weak labels fill
//! missing truth and are scored against it, synthetic rows only behind a passing gate, the
//! aug_data round trip, and a self-contained HTML report with its plots.

use moldops_cloud::augment::{self, AugmentConfig, progress::Progress};
use moldops_cloud::quality::gate::GateConfig;
use moldops_models::device::TrainingDevice;
use moldops_models::gan::GanConfig;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn cpu() -> TrainingDevice {
    TrainingDevice::cpu()
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// 90 shots of one run: every 9th a defect (shifted cushion and filling time); truth for the
/// first 60 shots only; shot 5 a glitch (huge cycle time) that is a normal shot.
fn write_etl(lake: &Path) {
    let n = 90;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let defect: Vec<bool> = (0..n).map(|i| i % 9 == 4).collect();
    let mut cycle = Vec::new();
    let mut cushion = Vec::new();
    let mut filling = Vec::new();
    for (i, &d) in defect.iter().enumerate() {
        cycle.push(if i == 5 { 1.0e5 } else { 60.0 + 0.3 * gauss(&mut rng) });
        cushion.push(22.0 + 0.2 * gauss(&mut rng) + if d { 2.5 } else { 0.0 });
        filling.push(3.7 + 0.02 * gauss(&mut rng) + if d { 0.3 } else { 0.0 });
    }
    let label: Vec<Option<f64>> =
        (0..n).map(|i| (i < 60).then_some(f64::from(u8::from(defect[i])))).collect();
    let source: Vec<Option<&str>> = (0..n).map(|i| (i < 60).then_some("shot")).collect();
    let ts = Int64Chunked::from_vec("ts".into(), (0..n as i64).map(|i| T0 + i * 60_000).collect())
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
    let mut df = DataFrame::new(
        n,
        vec![
            Column::new("machine_id".into(), vec!["m1"; n]),
            ts.into_column(),
            Column::new("shot_number".into(), (1..=n as u64).collect::<Vec<_>>()),
            Column::new("mold".into(), vec!["9000a"; n]),
            Column::new("run_id".into(), vec!["m1-run"; n]),
            Column::new("label".into(), label),
            Column::new("label_source".into(), source),
            Column::new("defect".into(), vec![None::<&str>; n]),
            Column::new("edge_id".into(), vec!["e1"; n]),
            Column::new("seq".into(), (1..=n as u64).collect::<Vec<_>>()),
            Column::new("Cycle_Time".into(), cycle),
            Column::new("Cushion_Position".into(), cushion),
            Column::new("Filling_Time".into(), filling),
        ],
    )
    .unwrap();
    let dir = lake.join("etl_data/machine=m1/date=2026-01-01");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("part.parquet")).unwrap();
    ParquetWriter::new(&mut f).finish(&mut df).unwrap();
}

fn small(gate: GateConfig) -> AugmentConfig {
    AugmentConfig {
        gan: GanConfig {
            latent: 8,
            generator_hidden: vec![16, 16],
            discriminator_hidden: vec![16, 16],
            steps: 40,
            ..GanConfig::default()
        },
        gate,
        synthetic: Some(15),
        ..AugmentConfig::default()
    }
}

fn bools(df: &DataFrame, name: &str) -> Vec<bool> {
    df.column(name).unwrap().bool().unwrap().iter().map(|b| b.unwrap_or(false)).collect()
}

#[test]
fn aug_data_round_trip_with_flags_weak_labels_and_gated_synthetic_rows() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    write_etl(lake);
    // A gate that accepts anything but copies: synthetic rows are written.
    let lenient = GateConfig {
        ks_max_mean: 1.0,
        corr_max_mean_abs_diff: 2.0,
        dcr_min_ratio: 0.0,
        efficacy_tolerance: 1.0,
        ..GateConfig::default()
    };
    let (report, plots) = augment::run(lake, &small(lenient), &cpu(), &Progress::new(true)).unwrap();
    assert_eq!(report.device, "cpu", "the report names where the GAN trained");
    let g = &report.groups[0];
    assert_eq!((g.rows, g.truth_labelled, g.truth_defects), (90, 60, 7));
    assert_eq!(g.outliers, 1, "the glitch, and only it: {:?}", g.fences);
    assert_eq!(g.weak_labelled, 90);
    assert_eq!(g.weak_filled, 30);
    let a = g.agreement.as_ref().unwrap();
    assert_eq!(a.rows, 60);
    assert_eq!(a.confusion.tp + a.confusion.fn_, 7);
    let gate = g.gan.gate.as_ref().unwrap();
    assert!(gate.passed, "{:#?}", gate.checks);
    assert_eq!(g.gan.written, 15);

    let aug = augment::read_aug(lake).unwrap();
    assert_eq!(aug.height(), 105);
    let synthetic = bools(&aug, "synthetic");
    assert_eq!(synthetic.iter().filter(|&&s| s).count(), 15);
    let outlier = bools(&aug, "outlier");
    assert_eq!(outlier.iter().filter(|&&o| o).count(), 1);
    assert!(outlier[5], "the glitch row is marked, not dropped");
    let sources: Vec<Option<String>> =
        aug.column("label_source").unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect();
    let labels: Vec<Option<f64>> = aug.column("label").unwrap().f64().unwrap().iter().collect();
    for i in 0..105 {
        match i {
            0..60 => assert_eq!(sources[i].as_deref(), Some("shot")),
            60..90 => {
                assert_eq!(sources[i].as_deref(), Some("weak"));
                assert!(labels[i].is_some());
            }
            _ => {
                assert!(synthetic[i]);
                assert_eq!((sources[i].as_deref(), labels[i]), (Some("synthetic"), Some(1.0)));
            }
        }
    }
    // Every etl_data column is still there, in order, with the new ones.
    let names: Vec<String> = aug.get_column_names().iter().map(|c| c.to_string()).collect();
    for c in moldops_cloud::etl::ID_COLUMNS.iter().chain(&[
        "synthetic",
        "outlier",
        "weak_defect",
        "Cushion_Position",
    ]) {
        assert!(names.iter().any(|n| n == c), "missing {c}");
    }
    // The weak label is a boolean column (never mistaken for a numeric feature), and it is the
    // label of the rows without truth.
    let weak = aug.column("weak_defect").unwrap().bool().unwrap();
    assert!((0..90).all(|i| weak.get(i).is_some()) && (90..105).all(|i| weak.get(i).is_none()));
    assert!((60..90).all(|i| labels[i] == weak.get(i).map(|w| f64::from(u8::from(w)))));
    // The synthetic rows carry every feature.
    let cushion = aug.column("Cushion_Position").unwrap().f64().unwrap();
    assert!((90..105).all(|i| cushion.get(i).is_some_and(f64::is_finite)));

    // The HTML report: self-contained, with the embedding and distribution plots.
    let html = moldops_cloud::report::html(&report, &plots).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    assert!(html.matches("<svg").count() >= 4, "embedding + distributions");
    assert!(html.contains("2-D embedding") && html.contains("Cushion_Position"));
    assert!(html.contains("Weak labels vs ground truth"));
    let out = dir.path().join("report");
    augment::write_reports(&out, &report, &plots).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["totals"]["synthetic_written"], 15);
    assert!(out.join("report.html").is_file());
}

#[test]
fn a_failed_gate_writes_no_synthetic_row_and_a_rerun_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    write_etl(lake);
    // Any synthetic row counts as a copy: the gate fails.
    let strict = GateConfig { copy_distance: 1e9, ..GateConfig::default() };
    let (report, _) = augment::run(lake, &small(strict.clone()), &cpu(), &Progress::new(true)).unwrap();
    let g = &report.groups[0];
    assert!(!g.gan.gate.as_ref().unwrap().passed);
    assert_eq!(g.gan.written, 0);
    let first = augment::read_aug(lake).unwrap();
    assert_eq!(first.height(), 90);
    assert!(bools(&first, "synthetic").iter().all(|s| !s));
    // Seeded: the same settings give the same report numbers and the same data.
    let (again, _) = augment::run(lake, &small(strict), &cpu(), &Progress::new(true)).unwrap();
    assert_eq!(again.groups[0].gan.losses, g.gan.losses);
    assert_eq!(again.groups[0].runs, g.runs);
    assert!(augment::read_aug(lake).unwrap().equals_missing(&first));
}

#[test]
fn no_etl_data_is_an_error_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = augment::run(dir.path(), &AugmentConfig::default(), &cpu(), &Progress::new(true)).unwrap_err();
    assert!(err.to_string().contains("moldops-cloud etl"), "{err}");
}
