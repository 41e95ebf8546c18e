//! A mould's model without a human step, end to end against a real Mosquitto: the demo trains
//! per (machine, mould), then machine m1 changes to a mould it never ran. The lake shows the edge
//! judging that mould from its first shot on its cold-start baseline (learning shots never
//! alarm), the lifecycle pipeline (drift → plan → etl → train → gate → rollout) training,
//! gating and rolling out the mould's model, and the edge's own model taking over after its
//! shadow run — every shot of the new mould judged exactly once, none by the old mould's model.
//! The edges' drift summaries reach the lake and the pipeline's drift task judges them; a
//! heater zone that drifts under the mould's own model is flagged within two drift periods; QC
//! lot results imported after production give per-lot precision and recall for the mould's key
//! that hold the simulator's ground truth.

use moldops_cloud::pipeline::state::{RunStatus, RunStore, TaskStatus};
use moldops_cloud::registry::Registry;
use moldops_shared::bundle::ModelKey;
use moldops_tests::broker::Mosquitto;
use moldops_tests::test_dir;
use std::collections::BTreeMap;

/// One row of `edge_scores` of the new key.
#[derive(Debug)]
struct Judged {
    ts_ms: i64,
    model_id: String,
    version: u64,
    alarm: bool,
}

#[test]
fn a_new_mould_goes_from_learning_to_its_own_model_without_a_human_step() {
    let dir = test_dir();
    let broker = Mosquitto::start(dir.path());
    let all = ["import", "compact", "etl", "augment", "evaluate", "train", "register", "rollout"];
    let def = crate::pipeline::definition(dir.path(), &all, false);
    let args =
        ["--new-mould", "--machines", "1", "--duration-s", "60", "--score-s", "15", "--shadow-shots", "60"];
    let (stdout, summary) = crate::closed_loop::run_demo(dir.path(), broker.port, &def, &args);
    let demo = dir.path().join("demo");
    let m = &summary["new_mould"];
    let key = m["key"].as_str().unwrap_or_else(|| panic!("no new mould in {summary}")).to_string();
    let mold = ModelKey::parse(&key).expect("key").mold.expect("a mould key");

    // The lake: every shot of the new mould judged once, by its baseline, then its own model.
    let lake = demo.join("lake");
    let scores = moldops_cloud::lake::read_dataset(&lake, "edge_scores").expect("edge_scores");
    let text = |c: &str| scores.column(c).expect(c).str().expect(c).clone();
    let (machine, model_key, model_id) = (text("machine_id"), text("model_key"), text("model_id"));
    let molds = scores.column("mold").expect("mold").cast(&polars::prelude::DataType::String).expect("str");
    let molds = molds.str().expect("str").clone();
    let shot = scores.column("shot_number").expect("shot_number").u64().expect("u64").clone();
    let version = scores
        .column("model_version")
        .expect("model_version")
        .cast(&polars::prelude::DataType::UInt64)
        .expect("u64");
    let version = version.u64().expect("u64").clone();
    let alarm = scores.column("alarm").expect("alarm").f64().expect("f64").clone();
    let ts = scores.column("ts").expect("ts").cast(&polars::prelude::DataType::Int64).expect("i64");
    let ts = ts.i64().expect("i64").clone();
    let mut judged: BTreeMap<u64, Judged> = BTreeMap::new();
    for i in 0..scores.height() {
        if machine.get(i) != Some("m1") || molds.get(i) != Some(mold.as_str()) {
            continue;
        }
        assert_eq!(model_key.get(i), Some(key.as_str()), "a shot of the new mould judged by another key");
        let n = shot.get(i).expect("shot number");
        let row = Judged {
            ts_ms: ts.get(i).expect("ts"),
            model_id: model_id.get(i).expect("model_id").to_string(),
            version: version.get(i).expect("version"),
            alarm: alarm.get(i) == Some(1.0),
        };
        assert!(judged.insert(n, row).is_none(), "shot {n} of {key} judged twice");
    }
    let phase = |suffix: &str| judged.values().filter(|j| j.model_id.ends_with(suffix)).collect::<Vec<_>>();
    let (learning, baseline) = (phase("@learning"), phase("@baseline"));
    let own: Vec<&Judged> = judged.values().filter(|j| j.version >= 1).collect();
    assert_eq!(learning.len(), 100, "the demo's learning_shots");
    assert!(learning.iter().all(|j| !j.alarm), "learning mode raised an alarm");
    assert!(baseline.len() >= 300, "{} shots on the baseline", baseline.len());
    assert!(!own.is_empty(), "the mould's own model judged no shot in the lake");
    let last = |v: &[&Judged]| v.iter().map(|j| j.ts_ms).max().expect("rows");
    let first = |v: &[&Judged]| v.iter().map(|j| j.ts_ms).min().expect("rows");
    assert!(last(&learning) < first(&baseline), "learning, then baseline");
    assert!(last(&baseline) < first(&own), "baseline, then the own model: never back");
    // From the mould's first recorded shot on, every shot is judged: the switch to the
    // baseline is on its first shot, the swap to the own model between two shots. Only a model
    // window warming up after a stop (a new production run) leaves shots unjudged: fewer than
    // a window, right after the stop.
    let raw = moldops_cloud::lake::read_dataset(&lake, "raw_data").expect("raw_data");
    let raw_molds = raw.column("mold").expect("mold").cast(&polars::prelude::DataType::String).expect("str");
    let raw_molds = raw_molds.str().expect("str").clone();
    let raw_shot = raw.column("shot_number").expect("shot_number").u64().expect("u64").clone();
    let raw_ts = raw.column("ts").expect("ts").cast(&polars::prelude::DataType::Int64).expect("i64");
    let raw_ts = raw_ts.i64().expect("i64").clone();
    let last_judged = *judged.keys().last().expect("judged");
    let made: BTreeMap<u64, i64> = (0..raw.height())
        .filter(|&i| raw_molds.get(i) == Some(mold.as_str()))
        .filter_map(|i| Some((raw_shot.get(i)?, raw_ts.get(i)?)))
        .filter(|(n, _)| *n <= last_judged)
        .collect();
    assert!(made.len() >= judged.len(), "raw shots of the new mould: {}", made.len());
    let mut unjudged: Vec<Vec<u64>> = Vec::new();
    let mut previous: Option<(u64, i64)> = None;
    for (&n, &ts) in &made {
        if !judged.contains_key(&n) {
            let run_start = previous.is_none_or(|(_, p)| ts - p > moldops_shared::features::RUN_GAP_MS);
            match unjudged.last_mut() {
                Some(block) if !run_start && block.last() == Some(&(n - 1)) => block.push(n),
                _ if run_start => unjudged.push(vec![n]),
                _ => panic!("shot {n} of {key} unjudged in the middle of a production run"),
            }
        }
        previous = Some((n, ts));
    }
    assert!(
        unjudged.iter().all(|block| block.len() < 64 && judged.range(..block[0]).next().is_some()),
        "shots of {key} no one judged beyond a window's warm-up after a stop: {unjudged:?}"
    );

    // The registry: the mould's model promoted by the gate, no person involved.
    let registry = Registry::open(&demo.join("registry")).expect("registry");
    let k = ModelKey::parse(&key).expect("key");
    let state = registry.state(&k).expect("state");
    let production = state.production().expect("a production version of the new mould");
    assert!(
        state.history.iter().any(|t| t.version == production && t.reason.contains("gate passed")),
        "promoted by the gate: {:?}",
        state.history
    );
    assert!(own.iter().all(|j| j.model_id == format!("{key}@{production}")), "{own:?}");

    // A lifecycle run trained and registered the key: its every task ran (the plan had the
    // key), none was skipped, and the run succeeded.
    let runs = RunStore::new(&demo).list().expect("runs");
    let ran = |r: &&moldops_cloud::pipeline::state::RunRecord| {
        r.pipeline == "mould-lifecycle"
            && r.status == RunStatus::Succeeded
            && r.tasks.values().all(|t| t.status == TaskStatus::Succeeded)
    };
    let lifecycle = runs.iter().find(ran);
    assert!(lifecycle.is_some_and(|r| r.tasks.len() == 6), "no lifecycle run did every task: {runs:?}");

    // Drift: the pipeline's drift task ran the judge over the lake (there may have been no
    // summary yet: a key's first comes after its 300-shot reference and a 300-shot period);
    // the edge's summaries reached the lake, and every one was judged by the end (the demo's
    // heater phase judges them as they land).
    let store = RunStore::new(&demo);
    let lifecycle = lifecycle.expect("the lifecycle run");
    let drift_task = &lifecycle.tasks["drift"];
    let log = store.run_dir(&lifecycle.run_id).join(&drift_task.attempts.last().expect("attempt").log);
    let log = std::fs::read_to_string(&log).expect("the drift task's log");
    assert!(log.contains("new period(s) judged"), "the drift task's log: {log}");
    let drift = moldops_cloud::lake::read_dataset(&lake, "edge_drift").expect("edge_drift");
    assert!(drift.height() >= 1, "no drift summary in the lake");
    let events = moldops_cloud::drift::store::read_events(&lake).expect("drift_events");
    assert!(events.height() >= 1, "no summary judged");
    assert!(stdout.contains(&format!("new mould {key}: learning 100 shots (0 alarms)")), "{stdout}");

    // The heater zone drifting under the own model: flagged within two periods, in the lake.
    let flag = &m["drift"];
    let period = moldops_demo::heater_drift::PERIOD_SHOTS;
    let shots_to_flag = flag["shots_to_flag"].as_u64().expect("shots_to_flag");
    assert!((1..=2 * period).contains(&shots_to_flag), "flagged after {shots_to_flag} shots: {flag}");
    assert_eq!(flag["feature"], "Barrel_Temperature_3", "{flag}");
    assert!(flag["psi"].as_f64().is_some_and(|p| p > 0.25), "{flag}");
    let shift_ms = flag["shift_ms"].as_i64().expect("shift_ms");
    let flagged_id = flag["model_id"].as_str().expect("model_id");
    assert!(flagged_id == format!("{key}@{production}"), "{flag}");
    let ids = events.column("model_id").expect("model_id").str().expect("str").clone();
    let levels = events.column("level").expect("level").str().expect("str").clone();
    let ends =
        events.column("period_end").expect("period_end").cast(&polars::prelude::DataType::Int64).expect("ms");
    let ends = ends.i64().expect("i64").clone();
    let in_lake = (0..events.height()).any(|i| {
        ids.get(i) == Some(flagged_id)
            && levels.get(i) == Some("drift")
            && ends.get(i).is_some_and(|e| e > shift_ms)
    });
    assert!(in_lake, "the flagged period is not in drift_events");

    // Late QC lots: no lot row before the import, then rows whose bounds hold the truth.
    let late = &m["late_labels"];
    assert_eq!(late["rows_before"], 0, "{late}");
    assert!(late["lots"].as_u64().is_some_and(|n| n >= 3), "{late}");
    let truth = ground_truth(&demo.join("quality-log.jsonl"));
    let rows = late["rows"].as_array().expect("rows");
    let mut whole = 0;
    for row in rows {
        let (from, to) = (row["from_ms"].as_i64().expect("from"), row["to_ms"].as_i64().expect("to"));
        let version = row["model_version"].as_u64().unwrap_or(0);
        let shots: Vec<(&Judged, bool)> = judged
            .iter()
            .filter(|(_, j)| (from..=to).contains(&j.ts_ms) && j.version == version)
            .map(|(n, j)| (j, truth.get(&("m1".to_string(), *n)).copied().expect("every shot in the log")))
            .collect();
        assert_eq!(row["shots"].as_u64(), Some(shots.len() as u64), "{row}");
        assert_eq!(
            row["alarms"].as_u64(),
            Some(shots.iter().filter(|(j, _)| j.alarm).count() as u64),
            "{row}"
        );
        if shots.len() != moldops_demo::late_labels::LOT_SHOTS {
            continue; // a lot split between two judges: its ratio is the whole lot's
        }
        whole += 1;
        let defects = shots.iter().filter(|(_, d)| *d).count() as u64;
        let tp = shots.iter().filter(|(j, d)| j.alarm && *d).count() as f64;
        assert_eq!(row["defects"].as_u64(), Some(defects), "{row}");
        let holds = |range: &serde_json::Value, exact: f64| {
            range.as_array().is_some_and(|r| {
                let (lo, hi) = (r[0].as_f64().unwrap_or(f64::NAN), r[1].as_f64().unwrap_or(f64::NAN));
                lo - 1e-9 <= exact && exact <= hi + 1e-9
            })
        };
        let alarms = row["alarms"].as_u64().unwrap_or(0) as f64;
        if alarms > 0.0 {
            assert!(holds(&row["precision"], tp / alarms), "true precision {} outside {row}", tp / alarms);
        }
        if defects > 0 {
            assert!(holds(&row["recall"], tp / defects as f64), "true recall outside {row}");
        }
    }
    assert!(whole >= 1, "no lot judged by one judge throughout: {late}");

    // A worse candidate of the key — its threshold at the validation median, so it alarms on
    // half the good shots — goes through the same gate and stays a candidate, with the reason.
    let signing = dir.path().join("signing.key");
    moldops_cloud::registry::keys::keygen(&signing, true).expect("a signing key");
    let cloud = |args: &[&str]| {
        let out = std::process::Command::new(moldops_tests::bin("moldops-cloud"))
            .args(args)
            .env("MOLDOPS_SIGNING_KEY", &signing)
            .output()
            .expect("moldops-cloud");
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "moldops-cloud {args:?}: {text}");
    };
    let (lake_arg, registry_arg) = (lake.display().to_string(), demo.join("registry").display().to_string());
    let train =
        ["train", "--lake", &lake_arg, "--registry", &registry_arg, "--key", &key, "--quantile", "0.5"];
    cloud(&[&train[..], &["--seed", "9", "--bootstrap", "50", "--no-baseline"]].concat());
    cloud(&["models", "promote", "--registry", &registry_arg, "--latest", "--lake", &lake_arg]);
    let state = registry.state(&k).expect("state");
    let worse = *state.stages.keys().last().expect("versions");
    assert!(worse > production, "the worse candidate was registered: {state:?}");
    assert_eq!(state.production(), Some(production), "production stays: {state:?}");
    let gate = state.gate.get(&worse).expect("the gate judged the worse candidate");
    assert_eq!(serde_json::to_value(gate.outcome).expect("json"), "refused", "{gate:?}");
    // Held to the key's false-alarm target, not the 50 % it was calibrated to.
    let own_target =
        gate.findings.iter().find(|f| f.check == moldops_cloud::registry::gate::Check::FalseAlarms);
    assert!(
        own_target.is_some_and(|f| !f.passed && f.detail.contains("the key's")),
        "refused on the key's false-alarm target: {gate:?}"
    );
}

/// Defective or not, per (machine, shot number), from the simulator's quality log.
fn ground_truth(log: &std::path::Path) -> BTreeMap<(String, u64), bool> {
    let text = std::fs::read_to_string(log).expect("quality log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let machine = v["machine_id"].as_str().unwrap_or_default().to_string();
            ((machine, v["shot_number"].as_u64().unwrap_or_default()), v["label"].as_u64() == Some(1))
        })
        .collect()
}
