//! A mould's model without a human step, end to end against a real Mosquitto: the demo trains
//! per (machine, mould), then machine m1 changes to a mould it never ran. The lake shows the edge
//! judging that mould from its first shot on its cold-start baseline (learning shots never
//! alarm), the lifecycle pipeline (drift → plan → etl → train → gate → rollout) training,
//! gating and rolling out the mould's model, and the edge's own model taking over after its
//! shadow run — every shot of the new mould judged exactly once, none by the old mould's model.
//! The edges' drift summaries reach the lake and the pipeline's drift task judges them.

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
    // baseline is on its first shot, the swap to the own model between two shots.
    let raw = moldops_cloud::lake::read_dataset(&lake, "raw_data").expect("raw_data");
    let raw_molds = raw.column("mold").expect("mold").cast(&polars::prelude::DataType::String).expect("str");
    let raw_molds = raw_molds.str().expect("str").clone();
    let raw_shot = raw.column("shot_number").expect("shot_number").u64().expect("u64").clone();
    let last_judged = *judged.keys().last().expect("judged");
    let made: Vec<u64> = (0..raw.height())
        .filter(|&i| raw_molds.get(i) == Some(mold.as_str()))
        .filter_map(|i| raw_shot.get(i))
        .filter(|n| *n <= last_judged)
        .collect();
    assert!(made.len() >= judged.len(), "raw shots of the new mould: {}", made.len());
    let unjudged: Vec<u64> = made.iter().copied().filter(|n| !judged.contains_key(n)).collect();
    assert!(unjudged.is_empty(), "shots of {key} no one judged: {unjudged:?}");

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

    // Drift: the edge's summaries reached the lake and the pipeline's drift task judged them.
    let drift = moldops_cloud::lake::read_dataset(&lake, "edge_drift").expect("edge_drift");
    assert!(drift.height() >= 1, "no drift summary in the lake");
    let events = moldops_cloud::drift::store::read_events(&lake).expect("drift_events");
    assert!(events.height() >= 1, "the drift task judged no summary");
    assert!(stdout.contains(&format!("new mould {key}: learning 100 shots (0 alarms)")), "{stdout}");
}
