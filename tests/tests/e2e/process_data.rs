//! Models on real process data, not only our simulator: two public real data sets shipped in
//! PyPI packages (a plant's 108 tags from bibmon, a train's 24 HVAC temperatures from NN4MSP),
//! with sustained faults injected (sensor bias, drift, stuck sensor; `tests/peers/process_data.py`),
//! taken through the CLI as a user would — generic import, lot labels, ETL, train with its
//! defaults — and judged against scikit-learn's PCA with Hotelling's T² at equal false alarms.

use moldops_tests::{bin, python, test_dir};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn peer(cmd: &mut Command) -> Value {
    let out = run("process_data.py", cmd);
    serde_json::from_str(&out).expect("JSON from process_data.py")
}

/// `process_data.py prepare DIR`: the CSV tables, lot labels and arrays; the machine ids.
fn prepare(dir: &Path) -> Value {
    peer(Command::new(python()).arg(moldops_tests::asset("peers/process_data.py")).arg("prepare").arg(dir))
}

/// `process_data.py baseline DIR REPORT`: per machine our detection and false alarms beside
/// PCA T²'s at equal false alarms.
fn peer_baseline(dir: &Path, report: &Path) -> Value {
    let script = moldops_tests::asset("peers/process_data.py");
    peer(Command::new(python()).arg(script).arg("baseline").arg(dir).arg(report))
}

#[test]
fn on_real_process_data_the_selected_model_detects_at_least_as_much_as_pca_t2_at_equal_false_alarms() {
    let tmp = test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let machines: Vec<String> = serde_json::from_value(prepare(dir)).expect("machine list");
    assert_eq!(machines.len(), 6, "{machines:?}");
    let cloud = |args: &[&str]| {
        let mut c = Command::new(bin("moldops-cloud"));
        c.args(args).arg("--lake").arg(&lake);
        c
    };
    for m in &machines {
        let csv = dir.join(format!("{m}.csv"));
        run("import", cloud(&["import", "--time-column", "_time", "--machine", m]).arg(&csv));
    }
    run("import lots", cloud(&["import", "--lot-labels"]).arg(dir.join("lots.csv")));
    run("etl", &mut cloud(&["etl"]));
    let report = dir.join("train.json");
    // Defaults but for fewer epochs and resamples: the test runs on two cores.
    run(
        "train",
        cloud(&["train", "--no-register", "--epochs", "10", "--bootstrap", "200"])
            .arg("--report")
            .arg(&report),
    );
    let judged = peer_baseline(dir, &report);

    let train: Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report JSON");
    for k in train["keys"].as_array().expect("keys") {
        assert!(k["skipped"].is_null(), "every machine trains: {k}");
        assert!(k["pca"].is_object() && k["lstm_ae"].is_object(), "both families fitted: {k}");
        assert!(k["selection"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "the choice says why");
    }
    for dataset in ["bibmon", "hvac"] {
        let rows: Vec<&Value> =
            machines.iter().filter(|m| m.starts_with(dataset)).map(|m| &judged[m.as_str()]).collect();
        let mean = |f: &dyn Fn(&Value) -> f64| rows.iter().map(|r| f(r)).sum::<f64>() / rows.len() as f64;
        let ours = mean(&|r| r["ours_detection"].as_f64().expect("detection"));
        let t2 = mean(&|r| r["pca_t2"]["detection"].as_f64().expect("T² detection"));
        assert!(
            ours >= t2,
            "{dataset}: mean detection {ours:.3} vs PCA T² {t2:.3} at equal false alarms: {judged:#}"
        );
        for r in &rows {
            let (fa, target) =
                (r["ours_false_alarm"].as_f64().expect("fa"), r["target"].as_f64().expect("target"));
            assert!(
                r["pca_t2"]["false_alarm"].as_f64().expect("T² fa") <= fa + 1e-9,
                "equal false alarms: {r}"
            );
            // The conformal guarantee is an upper bound on new good data like the calibration slice.
            assert!(
                fa <= target + 0.02,
                "{dataset}: false alarms {fa:.3} on new good windows, target {target}: {r}"
            );
            // The combination is calibrated the same way, so the same bound holds for it.
            let c = &r["combined"];
            let cfa = c["false_alarm"].as_f64().expect("the combination is measured for every key");
            assert!(cfa <= target + 0.02, "{dataset}: combined false alarms {cfa:.3}: {r}");
        }
        // Selection against combination (docs/training.md quotes these lines).
        let combined = mean(&|r| r["combined"]["detection"].as_f64().expect("combined detection"));
        let t2_there = mean(&|r| r["combined"]["pca_t2"]["detection"].as_f64().expect("T² detection"));
        eprintln!(
            "{dataset}: selected {ours:.3} at {:.3} false alarms (PCA T² {t2:.3}); combined {combined:.3} at {:.3} \
             (PCA T² {t2_there:.3})",
            mean(&|r| r["ours_false_alarm"].as_f64().unwrap_or(f64::NAN)),
            mean(&|r| r["combined"]["false_alarm"].as_f64().unwrap_or(f64::NAN)),
        );
    }
}
