//! The whole loop, as README's main command runs it but small and against a real Mosquitto:
//! simulated plant → edge → broker → ingest → lake → the built-in learning DAG (import → etl →
//! augment → evaluate ∥ train → register → rollout) → the edge scoring live shots. An
//! independent client (`mosquitto_sub`) records the scores the edge publishes; the test holds
//! them against the simulator's quality log itself and checks the demo's own figures, and
//! finds every score once in the lake's `edge_scores`, stamped with its model, and the edge's
//! health snapshots in `edge_status`.

use moldops_tests::broker::Mosquitto;
use moldops_tests::{bin, test_dir};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// (machine, shot) → defective, from the simulator's quality log.
fn truth(log: &std::path::Path) -> BTreeMap<(String, u64), bool> {
    let text = std::fs::read_to_string(log).expect("quality log");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let key = (v["machine_id"].as_str()?.to_string(), v["shot_number"].as_u64()?);
            Some((key, v["label"].as_f64() == Some(1.0)))
        })
        .collect()
}

#[test]
fn the_demo_closes_the_loop_and_its_alarms_match_the_truth() {
    let dir = test_dir();
    let broker = Mosquitto::start(dir.path());
    let all = ["import", "compact", "etl", "augment", "evaluate", "train", "register", "rollout"];
    // Real training defaults: the rolled-out models must pass the edge's shadow run.
    let def = crate::pipeline::definition(dir.path(), &all, false);
    let scores_file = dir.path().join("scores.txt");
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1", "-t", "moldops/v1/+/+/scores"])
        .stdout(std::fs::File::create(&scores_file).expect("scores file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub (apt install mosquitto-clients)");
    let demo_args = ["--gate", "--duration-s", "60", "--score-s", "40", "--shadow-shots", "100"];
    let (stdout, summary) = run_demo(dir.path(), broker.port, &def, &demo_args);
    let _ = sub.kill();
    let _ = sub.wait();
    let demo = dir.path().join("demo");
    let d = &summary["detection"];
    let truth = truth(&demo.join("quality-log.jsonl"));

    // What the broker carried, judged independently of the demo's code.
    let text = std::fs::read_to_string(&scores_file).expect("scores");
    let mut seen: BTreeMap<(String, u64), bool> = BTreeMap::new();
    for m in text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if let (Some(machine), Some(shot), Some(alarm)) =
            (m["machine_id"].as_str(), m["shot_number"].as_u64(), m["alarm"].as_bool())
        {
            seen.entry((machine.to_string(), shot)).or_insert(alarm);
        }
    }
    let judged: Vec<(bool, bool)> =
        seen.iter().filter_map(|(k, alarm)| truth.get(k).map(|bad| (*alarm, *bad))).collect();
    let scored = d["scored"].as_u64().expect("scored");
    assert!(scored >= 50, "the edge scored {scored} live shots:\n{stdout}");
    assert!(judged.len() as u64 >= scored, "every shot the demo judged crossed the broker");
    let machines: std::collections::BTreeSet<&str> = seen.keys().map(|(m, _)| m.as_str()).collect();
    assert_eq!(machines.len(), 2, "both machines are scored: {machines:?}");
    let true_alarms = judged.iter().filter(|(a, b)| *a && *b).count() as u64;
    let alarms = judged.iter().filter(|(a, _)| *a).count() as u64;
    assert!(true_alarms >= d["true_alarms"].as_u64().expect("true alarms"), "{d}");
    assert!(alarms >= d["alarms"].as_u64().expect("alarms"), "{d}");
    assert!(demo.join("report.html").is_file(), "the browsable report");
    let models = d["models"].as_object().expect("models");
    assert_eq!(models.len(), 2, "one rolled-out model per machine scored: {d}");

    // The durable copy: the scores reached the lake through the edge's buffer, each shot once,
    // each agreeing with what the broker carried, stamped with the model that judged it.
    let lake_scores = scores_in_lake(&demo.join("lake"));
    assert!(
        lake_scores.len() as u64 >= scored,
        "{} scores in the lake, {scored} judged live",
        lake_scores.len()
    );
    for (shot, row) in &lake_scores {
        if let Some(alarm) = seen.get(shot) {
            assert_eq!(row.alarm, *alarm, "{shot:?}: the lake and the broker disagree");
        }
        let version = models.get(&row.model_key).and_then(|v| v.as_u64());
        let version =
            version.unwrap_or_else(|| panic!("{shot:?}: model key {} not live: {d}", row.model_key));
        assert_eq!(row.model_id, format!("{}@{version}", row.model_key), "{shot:?}");
        assert_eq!(row.bundle_sha256.len(), 64, "{shot:?}");
        assert_eq!(row.contributions > 0, row.alarm, "{shot:?}: contributions exactly on alarms");
    }
    assert!(lake_scores.values().any(|r| r.alarm), "some alarm reached the lake");

    // The edge's health reached the lake too: a snapshot at the start and every minute.
    let health = moldops_cloud::lake::read_dataset(&demo.join("lake"), "edge_status").expect("edge_status");
    assert!(health.height() >= 2, "health snapshots at the start and each minute: {health}");
    let figures = |name: &str| -> Vec<f64> {
        health.column(name).expect(name).f64().expect("f64").iter().map(|v| v.expect(name)).collect()
    };
    assert!(figures("running").iter().all(|r| *r == 1.0), "{health}");
    assert!(figures("devices").iter().all(|n| *n >= 2.0), "the demo's machines are counted: {health}");
    assert!(figures("broker_connected").contains(&1.0), "{health}");

    // The quality gates sorted every part the edge recorded, once, and the demo held the
    // sorting against the ground truth.
    let sorting: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.join("sorting.json")).expect("sorting.json"))
            .expect("json");
    let with_models = &sorting["with_models"];
    let n = |k: &str| with_models[k].as_u64().unwrap_or_else(|| panic!("{k} in {sorting}"));
    assert!(n("parts") > 0, "parts sorted with the models active: {sorting}");
    assert_eq!(n("caught") + n("missed"), n("defective"), "{sorting}");
    assert_eq!(n("passed") + n("rejected") + n("uncertain"), n("parts"), "{sorting}");
    assert!(stdout.contains("quality gates (sorting output on"), "{stdout}");
    let shots_of = |dataset: &str| -> Vec<(String, u64)> {
        let df = moldops_cloud::lake::read_dataset(&demo.join("lake"), dataset).expect(dataset);
        let machines = df.column("machine_id").expect("machine_id").str().expect("str").clone();
        let shots = df.column("shot_number").expect("shot_number").u64().expect("u64").clone();
        let mut out: Vec<(String, u64)> =
            machines.iter().zip(shots.iter()).filter_map(|(m, s)| Some((m?.to_string(), s?))).collect();
        out.sort();
        out
    };
    assert_eq!(shots_of("edge_decisions"), shots_of("raw_data"), "one decision per recorded shot");

    // The operator console over what the loop left, in a real browser.
    crate::console::check_in_browser(&demo, dir.path(), broker.port);
}

/// Runs `moldops-demo demo --exit` with `args` in `dir` against the broker on `broker_port`,
/// the learning half from the pipeline definition `def`; fails the test when the demo fails or
/// its lake is not every shot exactly once. Returns its output and its `summary.json`.
pub(crate) fn run_demo(
    dir: &Path,
    broker_port: u16,
    def: &Path,
    args: &[&str],
) -> (String, serde_json::Value) {
    let out = Command::new(bin("moldops-demo"))
        .args(["demo", "--exit"])
        .args(args)
        .args(["--broker-port", &broker_port.to_string()])
        .arg("--pipeline-config")
        .arg(def)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("every shot, exactly once"), "{stdout}");
    let summary = std::fs::read(dir.join("demo").join("summary.json")).expect("summary.json");
    (stdout, serde_json::from_slice(&summary).expect("summary json"))
}

/// One row of `edge_scores`.
struct LakeScore {
    alarm: bool,
    model_key: String,
    model_id: String,
    bundle_sha256: String,
    /// Non-null `contribution.*` values.
    contributions: usize,
}

/// `edge_scores` by (machine, shot); a shot twice fails the test.
fn scores_in_lake(lake: &std::path::Path) -> BTreeMap<(String, u64), LakeScore> {
    let df = moldops_cloud::lake::read_dataset(lake, "edge_scores").expect("edge_scores");
    let strings = |name: &str| df.column(name).expect(name).str().expect(name).clone();
    let (machine, model_key) = (strings("machine_id"), strings("model_key"));
    let (model_id, sha) = (strings("model_id"), strings("bundle_sha256"));
    let shot = df.column("shot_number").expect("shot_number").u64().expect("u64").clone();
    let alarm = df.column("alarm").expect("alarm").f64().expect("f64").clone();
    let contribution_columns: Vec<_> = df
        .columns()
        .iter()
        .filter(|c| c.name().starts_with("contribution."))
        .map(|c| c.f64().expect("f64").clone())
        .collect();
    let mut out = BTreeMap::new();
    for i in 0..df.height() {
        let key = (machine.get(i).expect("machine").to_string(), shot.get(i).expect("shot number"));
        let row = LakeScore {
            alarm: alarm.get(i) == Some(1.0),
            model_key: model_key.get(i).expect("model_key").to_string(),
            model_id: model_id.get(i).expect("model_id").to_string(),
            bundle_sha256: sha.get(i).expect("bundle_sha256").to_string(),
            contributions: contribution_columns.iter().filter(|c| c.get(i).is_some()).count(),
        };
        assert!(out.insert(key.clone(), row).is_none(), "{key:?} is in edge_scores twice");
    }
    out
}
