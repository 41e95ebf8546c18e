//! The operator console in a real browser over a lake the whole loop wrote: headless Chromium
//! (Debian's, driven by Playwright from `tests/peers/console_browser.py`) visits every page,
//! acknowledges an alarm and archives and rolls back a model through the forms; the test holds
//! what the browser saw against the lake and the registry. Screenshots of every page are kept
//! under the test folder (`MOLDOPS_KEEP_TEST_DIRS`).

use moldops_cloud::console::audit::Kind;
use moldops_tests::{Proc, asset, bin, python};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Serves `moldops-cloud console` over the data folder `data`, with the broker on
/// `broker_port` for rollouts, and checks it in Chromium.
pub fn check_in_browser(data: &Path, dir: &Path, broker_port: u16) {
    let users = dir.join("console-users");
    let out = Command::new(bin("moldops-cloud"))
        .args(["console", "--add-user", "operator", "--users"])
        .arg(&users)
        .output()
        .expect("console --add-user");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(token.len(), 64, "a 32-byte hex token: {token}");

    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.args(["console", "--listen", "127.0.0.1:0", "--users"]).arg(&users).arg("--data-dir").arg(data);
    cmd.args(["--broker-host", "127.0.0.1", "--broker-port", &broker_port.to_string()]);
    // Runs started from the console: a one-task pipeline (compact the lake).
    let runs_dir = dir.join("console-pipeline");
    std::fs::create_dir_all(&runs_dir).expect("mkdir");
    cmd.arg("--pipeline-start")
        .arg("--pipeline-config")
        .arg(crate::pipeline::quick_definition(&runs_dir, &["compact"]));
    let mut console = Proc::spawn("console", &mut cmd, dir);
    let line = console.wait_line(Duration::from_secs(30), |l| l.starts_with("console: http://"));
    let url = line.trim_start_matches("console: ").trim().to_string();

    let screens = dir.join("console-screens");
    let before_ms = chrono::Utc::now().timestamp_millis();
    let out = Command::new(python())
        .arg(asset("peers/console_browser.py"))
        .args([&url, &token])
        .arg(&screens)
        .output()
        .expect("python console_browser.py (pip install playwright; apt install chromium)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser run failed:\n{stderr}\n{}", console.stderr_tail());
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("browser report JSON");

    // The pipeline run started from the console (it compacts the lake) ran to its end, and its
    // start is audited; the lake is read below once it is done.
    assert_eq!(seen["after_run_start_path"], "/pipeline", "{seen}");
    let store = moldops_cloud::pipeline::RunStore::new(data);
    let mut started_run = None;
    let finished = moldops_tests::wait_until(Duration::from_secs(120), || {
        started_run =
            store.list().unwrap_or_default().into_iter().find(|r| r.created.timestamp_millis() >= before_ms);
        started_run.as_ref().is_some_and(|r| r.status != moldops_cloud::pipeline::RunStatus::Running)
    });
    let run = started_run.expect("a run started from the console");
    assert!(
        finished && run.status == moldops_cloud::pipeline::RunStatus::Succeeded,
        "{run:?}\n{}",
        console.stderr_tail()
    );
    let started_by = moldops_cloud::console::audit::read(&data.join("lake")).expect("audit");
    assert!(
        started_by
            .iter()
            .any(|a| a.kind == Kind::PipelineRun && a.target == run.run_id && a.user == "operator"),
        "{started_by:?}"
    );

    // Every page answered and raised no error in the browser; each has its screenshot.
    let pages = seen["pages"].as_object().expect("pages");
    for name in [
        "fleet", "machine", "alarms", "alarm", "models", "version", "rollouts", "pipeline", "reports",
        "login",
    ] {
        let p = &pages[name];
        assert_eq!(p["status"], 200, "{name}: {p}");
        assert_eq!(p["errors"].as_array().map(Vec::len), Some(0), "{name}: browser errors {}", p["errors"]);
        assert!(screens.join(format!("{name}.png")).is_file(), "{name} screenshot");
    }

    // The fleet shows the machines the lake holds; the machine page its trend.
    let lake = data.join("lake");
    let summary = moldops_cloud::lake::summary(&lake).expect("summary");
    let in_lake: Vec<String> = summary
        .datasets
        .iter()
        .filter(|d| d.dataset == "raw_data")
        .flat_map(|d| d.machines.iter().map(|m| m.machine_id.clone()))
        .collect();
    let shown: Vec<String> = serde_json::from_value(seen["machines"].clone()).expect("machines");
    assert_eq!(shown, in_lake, "the fleet page lists the lake's machines");
    assert!(seen["devices"].as_u64() > Some(0), "the fleet page lists the edge's devices: {seen}");
    assert_eq!(seen["trend_svg"], 1, "the machine page plots a trend");
    assert!(seen["peripherals"].as_u64() > Some(0), "the machine page lists its peripherals: {seen}");
    let fleet_text = pages["fleet"]["text"].as_str().unwrap_or_default();
    assert!(fleet_text.contains("online") || fleet_text.contains("offline"), "edge link state: {fleet_text}");

    // The alarms are the lake's; one acknowledged through the UI, refused before signing in.
    let alarms_in_lake = moldops_cloud::lake::read_dataset(&lake, "edge_scores")
        .ok()
        .and_then(|df| {
            df.column("alarm").ok()?.f64().ok().map(|c| c.iter().filter(|a| *a == Some(1.0)).count())
        })
        .unwrap_or(0);
    let listed = seen["alarms_listed"].as_u64().expect("alarms listed") as usize;
    assert_eq!(listed, alarms_in_lake.min(200), "the alarms page lists the lake's alarms");
    assert!(listed > 0, "the loop raised alarms");
    assert!(seen["contribution_bars"].as_u64() > Some(0), "an alarm shows its contributions: {seen}");
    // The demo ran with --gate: the alarm's part has its gate decision beside the model's score.
    let gate = seen["gate"].as_str().unwrap_or_default();
    assert!(
        gate.starts_with("Quality gate: reject (model_alarm)"),
        "the gate's decision on the alarm page: {seen}"
    );
    assert_eq!(seen["ack_unsigned_status"], 401, "a write without credentials is refused");
    assert!(
        seen["signed_in_as"].as_str().unwrap_or_default().contains("operator"),
        "{}",
        seen["signed_in_as"]
    );
    assert_eq!(seen["acks_shown"], 1, "the acknowledgement shows on the alarm");
    let audit = moldops_cloud::console::audit::read(&lake).expect("audit");
    let acks: Vec<_> = audit.iter().filter(|a| a.kind == Kind::Acknowledge).collect();
    assert_eq!(acks.len(), 1, "exactly the signed-in acknowledgement is stored: {audit:?}");
    assert_eq!(acks[0].user, "operator");
    assert!(acks[0].comment.contains("short shot"), "{:?}", acks[0]);

    // The models page shows the registry's versions; archive and roll back through the UI.
    let registry = moldops_cloud::registry::Registry::open(&data.join("registry")).expect("registry");
    let mut in_registry = Vec::new();
    for key in registry.keys().expect("keys") {
        for v in registry.versions(&key).expect("versions") {
            in_registry.push((key.label(), v.record.version, v.stage.to_string()));
        }
    }
    let mut versions: Vec<(String, u32, String)> =
        serde_json::from_value(seen["versions"].clone()).expect("versions");
    versions.sort();
    in_registry.sort();
    assert_eq!(versions, in_registry, "the models page lists the registry");
    assert_eq!(seen["version_plots"], 2, "a version shows its training curve and its live scores");
    let (key, version): (String, u32) =
        serde_json::from_value(seen["changed_key"].clone()).expect("a production key");
    assert_eq!(
        (seen["after_archive"].as_str(), seen["after_rollback"].as_str()),
        (Some("archived"), Some("production"))
    );
    let key = moldops_shared::bundle::ModelKey::parse(&key).expect("key");
    let state = registry.state(&key).expect("state");
    assert_eq!(state.production(), Some(version), "rolled back to production");
    let reasons: Vec<&str> = state.history.iter().rev().take(2).map(|t| t.reason.as_str()).collect();
    assert_eq!(reasons, ["rollback: re-promoted", "archived"], "{:?}", state.history);
    let changes: Vec<_> = audit.iter().filter(|a| a.kind != Kind::Acknowledge).collect();
    let stage_changes: Vec<_> =
        changes.iter().filter(|a| matches!(a.kind, Kind::Archive | Kind::Promote)).collect();
    assert_eq!(stage_changes.len(), 2, "archive and roll back audited: {audit:?}");
    assert!(stage_changes.iter().all(|a| a.user == "operator" && a.outcome == "ok"), "{changes:?}");

    // The rollout started from the console: audited, and the edge's desired state on the broker
    // names the production bundle, issued now (the demo's own rollout issued it before).
    assert_eq!(seen["after_rollout_path"], "/rollouts", "{seen}");
    let started: Vec<_> = changes.iter().filter(|a| a.kind == Kind::Rollout).collect();
    assert!(
        started.iter().any(|a| a.outcome == "started" && a.target == format!("{}@{version}", key.label())),
        "{audit:?}"
    );
    let edge = summary.edges.first().expect("an edge in the lake");
    let topic =
        moldops_shared::topic::topic(&edge.site, &edge.edge_id, moldops_shared::topic::Leaf::ModelDesired);
    let mut desired = serde_json::Value::Null;
    let issued = moldops_tests::wait_until(Duration::from_secs(60), || {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker_port.to_string(), "-t", &topic, "-C", "1", "-W", "5"])
            .output();
        desired = out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default();
        desired["issued_at_ms"].as_i64().is_some_and(|t| t >= before_ms)
    });
    assert!(issued, "the console's rollout set the desired state on the broker: {desired}");
    assert!(desired.to_string().contains(&format!("\"version\":{version}")), "{desired}");

    let _ = console.terminate(Duration::from_secs(10));
}
