//! The classifier zoo against scikit-learn, and the `evaluate` run end to end.
//!
//! Parity: `tests/peers/sklearn_reference.py` (run with `$MOLDOPS_PYTHON`, default the venv at
//! `~/.cache/moldops-venv`) exports breast-cancer and wine (class 0 vs rest), the test indices
//! of its folds and sklearn's per-fold scores for fixed parameters; we fit ours on the same
//! folds and compare the mean over folds of F1, PR-AUC and balanced accuracy. Tolerances
//! (largest |Δ| seen against sklearn 1.9.1 in brackets):
//! - KNN, naive Bayes, QDA: 1e-9 — same algorithm, deterministic [0].
//! - SVM: 0.01 — our SMO follows libsvm but without its shrinking heuristic, so it can stop
//!   at another point within libsvm's 1e-3 tolerance [0].
//! - AdaBoost: 0.01 — stumps can tie between features; sklearn breaks ties in a random
//!   feature order, we take the first [0].
//! - MLP: 0.01 — other initial weights and another L-BFGS line search; with alpha = 1 the
//!   loss is nearly convex, so the fitted nets agree closely [8.7e-4].
//! - decision tree, random forest: 0.03 — tie-breaking as for the stumps (a different split
//!   changes a few held-out predictions of a single tree) and, for the forest, other bootstrap
//!   samples and feature draws [1.3e-2 tree, 7.6e-3 forest].

use crate::support::python;
use moldops_cloud::evaluate::classifiers::{Kind, Params};
use moldops_cloud::evaluate::data::Matrix;
use moldops_cloud::evaluate::grid::{GridName, Split, run_fold};
use moldops_cloud::evaluate::load::Source;
use moldops_cloud::evaluate::{EvaluateConfig, cv, metrics};
use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Deserialize)]
struct Reference {
    sklearn: String,
    datasets: Vec<RefDataset>,
}

#[derive(Deserialize)]
struct RefDataset {
    name: String,
    x: Vec<Vec<f64>>,
    y: Vec<u8>,
    folds: Vec<Vec<usize>>,
    results: Vec<RefResult>,
}

#[derive(Deserialize)]
struct RefResult {
    params: Params,
    f1: Vec<f64>,
    pr_auc: Vec<f64>,
    balanced_accuracy: Vec<f64>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers/sklearn_reference.py");
        let out =
            std::process::Command::new(python()).arg(script).output().expect("run the sklearn reference");
        assert!(out.status.success(), "sklearn reference failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("reference JSON")
    })
}

fn tolerance(kind: Kind) -> f64 {
    match kind {
        Kind::Knn | Kind::Nb | Kind::Qda => 1e-9,
        Kind::Svm | Kind::Adaboost | Kind::Mlp => 0.01,
        Kind::Tree | Kind::Forest => 0.03,
    }
}

/// Our scores on the reference's folds for every parameter set of `kind`; asserts each mean
/// is within the tolerance and reports all deviations at once.
fn check(kind: Kind) {
    let r = reference();
    let tol = tolerance(kind);
    let mut problems = Vec::new();
    let mut compared = 0;
    for ds in &r.datasets {
        let x = Matrix::from_rows(&ds.x).expect("reference rows");
        for res in ds.results.iter().filter(|res| res.params.kind() == kind) {
            let (mut f1, mut ap, mut ba) = (Vec::new(), Vec::new(), Vec::new());
            for (f, test) in ds.folds.iter().enumerate() {
                let split = Split { train: cv::train_indices(ds.y.len(), test), test: test.clone() };
                let s = run_fold(&res.params, &x, &ds.y, &split, 7 + f as u64).expect("fit");
                f1.push(s.f1);
                ap.push(s.pr_auc);
                ba.push(s.balanced_accuracy);
            }
            let pairs = [
                ("F1", &f1, &res.f1),
                ("PR-AUC", &ap, &res.pr_auc),
                ("bal. acc.", &ba, &res.balanced_accuracy),
            ];
            for (metric, ours, theirs) in pairs {
                let (o, t) = (metrics::mean_std(ours).0, metrics::mean_std(theirs).0);
                eprintln!(
                    "{} {} {metric}: ours {o:.5} sklearn {t:.5} (|Δ| {:.2e})",
                    ds.name,
                    res.params.to_json(),
                    (o - t).abs()
                );
                if (o - t).abs() > tol {
                    problems.push(format!(
                        "{} {} {metric}: ours {o:.5} vs sklearn {t:.5}",
                        ds.name,
                        res.params.to_json()
                    ));
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 6, "too few comparisons for {kind:?}: {compared}");
    assert!(problems.is_empty(), "beyond ±{tol} of sklearn {}:\n{}", r.sklearn, problems.join("\n"));
}

#[test]
fn knn_matches_sklearn() {
    check(Kind::Knn);
}

#[test]
fn svm_matches_sklearn() {
    check(Kind::Svm);
}

#[test]
fn tree_matches_sklearn() {
    check(Kind::Tree);
}

#[test]
fn forest_matches_sklearn() {
    check(Kind::Forest);
}

#[test]
fn mlp_matches_sklearn() {
    check(Kind::Mlp);
}

#[test]
fn adaboost_matches_sklearn() {
    check(Kind::Adaboost);
}

#[test]
fn naive_bayes_matches_sklearn() {
    check(Kind::Nb);
}

#[test]
fn qda_matches_sklearn() {
    check(Kind::Qda);
}

#[test]
fn average_precision_as_sklearn() {
    // sklearn: average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) == 0.8333…;
    // with a tie: average_precision_score([1,0,1,0], [0.5,0.5,0.2,0.1]) == 0.58333….
    assert!((metrics::average_precision(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]) - 5.0 / 6.0).abs() < 1e-12);
    assert!((metrics::average_precision(&[1, 0, 1, 0], &[0.5, 0.5, 0.2, 0.1]) - 7.0 / 12.0).abs() < 1e-12);
    assert!((metrics::f1(&[1, 1, 0, 0], &[1, 0, 1, 0]) - 0.5).abs() < 1e-12);
    assert!((metrics::balanced_accuracy(&[1, 1, 0, 0, 0, 0], &[1, 0, 0, 0, 0, 1]) - 0.625).abs() < 1e-12);
}

#[test]
fn folds_are_stratified_seeded_and_cover_every_row() {
    let y: Vec<u8> = (0..103).map(|i| u8::from(i % 10 == 0)).collect(); // 11 positives
    let a = cv::stratified_folds(&y, 5, 3).expect("folds");
    assert_eq!(a, cv::stratified_folds(&y, 5, 3).expect("folds"), "same seed, same folds");
    assert_ne!(a, cv::stratified_folds(&y, 5, 4).expect("folds"), "another seed shuffles differently");
    let mut all: Vec<usize> = a.concat();
    all.sort_unstable();
    assert_eq!(all, (0..103).collect::<Vec<_>>());
    for f in &a {
        let pos = f.iter().filter(|&&i| y[i] == 1).count();
        assert!((2..=3).contains(&pos), "positives per fold {pos}");
        assert!((20..=21).contains(&f.len()), "fold size {}", f.len());
    }
    assert_eq!(cv::effective_folds(5, 3).expect("3 folds"), 3);
    assert!(cv::effective_folds(5, 1).is_err());
}

/// A small aug_data lake: two machines, one with synthetic defect rows, one with two molds.
fn write_aug_lake(lake: &std::path::Path) {
    use polars::prelude::*;
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let (mut machine, mut mold, mut label, mut source, mut synthetic, mut a, mut b, mut c) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut push = |m: &str, md: &str, defect: bool, syn: bool, rng: &mut rand_chacha::ChaCha8Rng| {
        let shift = if defect { 1.5 } else { 0.0 };
        machine.push(m.to_string());
        mold.push(md.to_string());
        label.push(Some(f64::from(u8::from(defect))));
        source.push(if syn { "synthetic" } else { "shot" }.to_string());
        synthetic.push(syn);
        a.push(rng.random_range(0.0..1.0) + shift);
        b.push(rng.random_range(0.0..1.0) * 2.0 - shift);
        c.push(rng.random_range(0.0..1.0));
    };
    for i in 0..60 {
        push("m1", "A", i % 6 == 0, false, &mut rng);
    }
    for _ in 0..12 {
        push("m1", "A", true, true, &mut rng);
    }
    for i in 0..40 {
        push("m2", if i % 2 == 0 { "B" } else { "C" }, i % 5 == 0, false, &mut rng);
    }
    // An unlabelled row is left out.
    machine.push("m1".into());
    mold.push("A".into());
    label.push(None);
    source.push("shot".into());
    synthetic.push(false);
    a.push(0.5);
    b.push(0.5);
    c.push(0.5);
    let mut df = df!(
        "machine_id" => machine, "mold" => mold, "label" => label, "label_source" => source,
        "synthetic" => synthetic, "f_a" => a, "f_b" => b, "f_c" => c,
    )
    .expect("frame");
    let dir = lake.join("aug_data").join("machine=all");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = std::fs::File::create(dir.join("part.parquet")).expect("create");
    ParquetWriter::new(file).finish(&mut df).expect("write parquet");
}

#[test]
fn evaluate_writes_a_record_for_all_eight_with_synthetic_training() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = tmp.path().join("lake");
    write_aug_lake(&lake);
    let cfg = EvaluateConfig {
        lake: lake.clone(),
        source: Source::Auto,
        folds: 5,
        seed: 9,
        classifiers: Kind::ALL.to_vec(),
        grid: GridName::Small,
    };
    let records = moldops_cloud::evaluate::run(&cfg).expect("evaluate");
    assert_eq!(records.len(), 2, "one record per machine");
    let m1 = &records[0];
    assert_eq!(m1.machine_id, "m1");
    assert_eq!(m1.source, "aug_data");
    let g = &m1.groups[0];
    assert_eq!((g.real_rows, g.defective, g.synthetic_rows, g.folds), (60, 10, 12, 5));
    assert_eq!(g.classifiers.len(), 8);
    for c in &g.classifiers {
        assert!(c.error.is_none(), "{}: {:?}", c.name, c.error);
        let real = c.real.as_ref().expect("real-only result");
        assert!(c.real_plus_synthetic.is_some(), "{}: no real+synthetic result", c.name);
        assert_eq!(real.per_fold.f1.len(), 5);
        assert!(real.f1.mean > 0.5, "{}: F1 {} on separable data", c.name, real.f1.mean);
        // Beside the best of the grid, its choice judged on folds the choice did not see.
        let held = real.held_out_selection.as_ref().expect("held-out estimate with 5 folds");
        assert_eq!(held.per_fold_f1.len(), 5);
        assert!(held.folds_agreeing_with_best <= 5);
        let best_candidate = real.candidates.iter().filter_map(|c| c.mean_f1).fold(f64::MIN, f64::max);
        assert!((real.f1.mean - best_candidate).abs() < 1e-12, "{}: F1 is the best of grid", c.name);
        assert!(held.per_fold_f1.iter().all(|v| (0.0..=1.0).contains(v)), "{}: {held:?}", c.name);
        if held.folds_agreeing_with_best == 5 {
            assert_eq!(held.per_fold_f1, real.per_fold.f1, "{}: a stable choice is judged as itself", c.name);
        }
    }
    // m2 has two molds: one group each, 4 defective shots per mold → 4 folds.
    let m2 = &records[1];
    assert_eq!(m2.groups.len(), 2);
    assert!(
        m2.groups.iter().all(|g| g.folds == 4 && g.mold.is_some()),
        "{:?}",
        m2.groups.iter().map(|g| g.folds).collect::<Vec<_>>()
    );
    // Deterministic with the seed (fit times aside).
    let again = moldops_cloud::evaluate::run(&cfg).expect("evaluate again");
    let f1s = |r: &moldops_cloud::evaluate::record::EvaluationRecord| -> Vec<f64> {
        r.groups[0].classifiers.iter().map(|c| c.real.as_ref().map_or(f64::NAN, |m| m.f1.mean)).collect()
    };
    assert_eq!(f1s(m1), f1s(&again[0]));
    // Written atomically where asked.
    let out = tmp.path().join("evaluations");
    let path = m1.write(&out, "20260101T000000.000Z").expect("write");
    let text = std::fs::read_to_string(&path).expect("read back");
    let v: serde_json::Value = serde_json::from_str(&text).expect("record JSON");
    assert_eq!(v["groups"][0]["classifiers"].as_array().map(Vec::len), Some(8));
    assert!(m1.to_table().contains("Random Forest") && m1.to_table().contains("F1 (held out)"));
    // Its page beside it: every classifier, both training modes, the grid.
    let page = std::fs::read_to_string(path.with_extension("html")).expect("the record's page");
    assert_eq!(
        page.matches("<tr class=\"classifier\">").count(),
        16,
        "8 classifiers × real, real + synthetic"
    );
    assert!(
        page.contains("Random Forest") && page.contains("real + synthetic") && page.contains("<b>best</b>")
    );
}

#[test]
fn synthetic_rows_train_but_are_never_scored() {
    use moldops_cloud::evaluate::grid::splits;
    // Rows 0..10 real, 10..14 synthetic.
    let real: Vec<usize> = (0..10).collect();
    let synthetic: Vec<usize> = (10..14).collect();
    let y: Vec<u8> = (0..10).map(|i| u8::from(i % 3 == 0)).collect();
    let folds = cv::stratified_folds(&y, 3, 1).expect("folds");
    for s in splits(&real, &folds, &synthetic) {
        assert!(s.test.iter().all(|i| *i < 10), "a synthetic row in a test fold: {:?}", s.test);
        assert!(synthetic.iter().all(|i| s.train.contains(i)), "synthetic rows missing from training");
        assert!(s.test.iter().all(|i| !s.train.contains(i)), "a test row in training");
    }
}

#[test]
fn cli_writes_records_prints_json_and_fails_without_labels() {
    let bin = env!("CARGO_BIN_EXE_moldops-cloud");
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = tmp.path().join("lake");
    write_aug_lake(&lake);
    let out = tmp.path().join("records");
    let run = std::process::Command::new(bin)
        .args(["evaluate", "--grid", "small", "--classifiers", "nb,qda", "--json", "--seed", "3"])
        .arg("--lake")
        .arg(&lake)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run moldops-cloud evaluate");
    assert!(run.status.success(), "evaluate failed: {}", String::from_utf8_lossy(&run.stderr));
    let records: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON on stdout");
    assert_eq!(records.as_array().map(Vec::len), Some(2));
    assert_eq!(records[0]["groups"][0]["classifiers"].as_array().map(Vec::len), Some(2));
    for m in ["m1", "m2"] {
        let mut files: Vec<String> = std::fs::read_dir(out.join(m))
            .expect("record folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "one record for {m} and its page: {files:?}");
        assert!(files[0].ends_with(".html") && files[1].ends_with(".json"), "{files:?}");
    }
    // A lake without labelled rows is an error, not an empty success.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let run = std::process::Command::new(bin)
        .args(["evaluate", "--grid", "small"])
        .arg("--lake")
        .arg(&empty)
        .output()
        .expect("run moldops-cloud evaluate");
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no labelled rows"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}
