//! Helpers shared by the end-to-end modules: starting the plant, edge and ingest as the
//! user would (the real binaries), and reading what reached the lake and the quality log.

use moldops_tests::{Proc, bin};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const READY: Duration = Duration::from_secs(60);

/// Starts `moldops-cloud ingest` against the broker and waits for its subscription.
pub fn start_ingest(dir: &Path, port: u16, lake: &Path) -> Proc {
    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.args(["ingest", "--broker-host", "127.0.0.1", "--broker-port", &port.to_string()])
        .arg("--lake")
        .arg(lake)
        .args(["--client-id", "e2e-ingest"]);
    let mut p = Proc::spawn("ingest", &mut cmd, dir);
    p.wait_line(READY, |l| l.contains("\"subscribed\""));
    p
}

/// Starts `moldops-edge run` with a config file.
pub fn start_edge(dir: &Path, config: &Path) -> Proc {
    let mut cmd = Command::new(bin("moldops-edge"));
    cmd.arg("run").arg("--config").arg(config);
    Proc::spawn("edge", &mut cmd, dir)
}

/// `(machine_id, shot_number)` of every row in the lake's raw_data, duplicates kept.
pub fn lake_shots(lake: &Path) -> Vec<(String, u64)> {
    let Ok(df) = moldops_cloud::lake::read_dataset(lake, "raw_data") else { return vec![] };
    if df.height() == 0 {
        return vec![];
    }
    let machines = df.column("machine_id").and_then(|c| c.str().cloned());
    let shots = df.column("shot_number").and_then(|c| c.u64().cloned());
    let (Ok(machines), Ok(shots)) = (machines, shots) else { return vec![] };
    machines.iter().zip(shots.iter()).filter_map(|(m, s)| Some((m?.to_string(), s?))).collect()
}

/// `(machine_id, shot_number)` of every shot in the simulator's quality log.
pub fn logged_shots(log: &Path) -> BTreeSet<(String, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["machine_id"].as_str()?.to_string(), v["shot_number"].as_u64()?)))
        .collect()
}

/// Rows of a dataset in the lake (0 when none yet).
pub fn lake_rows(lake: &Path, dataset: &str) -> usize {
    moldops_cloud::lake::read_dataset(lake, dataset).map(|df| df.height()).unwrap_or(0)
}

/// Waits until the simulator has logged `total` shots and the lake holds them, then asserts
/// the lake has exactly those shots: none missing, none extra, none twice. Returns the shots.
pub fn assert_lake_matches_log(
    lake: &Path,
    qlog: &Path,
    total: usize,
    logs: &[&Proc],
) -> BTreeSet<(String, u64)> {
    let long = Duration::from_secs(300);
    assert!(
        moldops_tests::wait_until(long, || logged_shots(qlog).len() >= total),
        "simulator did not finish"
    );
    let truth = logged_shots(qlog);
    assert_eq!(truth.len(), total);
    let complete = moldops_tests::wait_until(long, || lake_shots(lake).len() >= total);
    let rows = lake_shots(lake);
    let got: BTreeSet<(String, u64)> = rows.iter().cloned().collect();
    let missing: Vec<_> = truth.difference(&got).collect();
    let extra: Vec<_> = got.difference(&truth).collect();
    let tails: Vec<String> = logs.iter().map(|p| p.stderr_tail()).collect();
    assert!(complete && missing.is_empty(), "missing shots {missing:?}\n{}", tails.join("\n"));
    assert!(extra.is_empty(), "shots the simulator never made: {extra:?}");
    assert_eq!(rows.len(), got.len(), "duplicate shots in the lake");
    got
}
