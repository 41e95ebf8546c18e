//! Ingest replicas: three `moldops-cloud ingest` processes, each with its own client id, share
//! the edges' data topics through an MQTT share group (`$share/…`) on a real Mosquitto and
//! write one lake in turns — a folder, or a bucket of an S3 API server (moto) through the
//! lease protocol. One replica is SIGKILLed mid-load and restarted (as its StatefulSet would);
//! the lake then holds exactly the shots the simulator logged — none missing, none twice —
//! and more than one replica committed shots.

use crate::common::*;
use moldops_cloud::storage::Store;
use moldops_cloud::storage::mirror::Mirror;
use moldops_tests::{Mosquitto, Proc, S3Server, bin, wait_until};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SHOTS_PER_MACHINE: u64 = 80;
const GROUP: &str = "moldops-ingest";

fn start_replica(dir: &Path, port: u16, lake: &str, id: &str, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.args(["ingest", "--broker-host", "127.0.0.1", "--broker-port", &port.to_string()])
        .args(["--lake", lake, "--client-id", id, "--share-group", GROUP])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MOLDOPS_CACHE_DIR", dir.join("cache"));
    let mut p = Proc::spawn(id, &mut cmd, dir);
    p.wait_line(READY, |l| l.contains("\"subscribed\""));
    p
}

/// Shots a replica's log says it committed (`committed … raw_data=N`).
fn committed_shots(p: &Proc) -> u64 {
    p.stderr_text()
        .lines()
        .filter(|l| l.contains("committed"))
        .filter_map(|l| l.split("raw_data=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Runs the plant, three replicas writing `lake` and the kill; `shots` reads the lake's
/// `(machine, shot)` rows, duplicates kept.
fn three_replicas_and_a_kill(
    dir: &Path,
    lake: &str,
    env: &[(&str, String)],
    shots: &dyn Fn() -> Vec<(String, u64)>,
) {
    let qlog = dir.join("quality.jsonl");
    let edge_cfg = dir.join("edge.toml");
    let broker = Mosquitto::start(dir);
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "3", "--speed", "150", "--seed", "23", "--base-port", "0"])
        .args(["--shots", &SHOTS_PER_MACHINE.to_string()])
        .arg("--quality-log")
        .arg(&qlog)
        .arg("--write-config")
        .arg(&edge_cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", "127.0.0.1:0"])
        .arg("--buffer-path")
        .arg(dir.join("edge-buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));

    let mut replicas: Vec<Proc> =
        (1..=3).map(|i| start_replica(dir, broker.port, lake, &format!("ingest-{i}"), env)).collect();
    let edge = start_edge(dir, &edge_cfg);
    let long = Duration::from_secs(180);
    assert!(wait_until(long, || shots().len() >= 30), "no shots reached the lake\n{}", edge.stderr_tail());

    // SIGKILL one replica mid-load: what the broker handed it and it had not acknowledged is
    // redelivered to its session when it comes back under the same client id.
    replicas[1].kill9();
    let before = logged_shots(&qlog).len();
    assert!(wait_until(long, || logged_shots(&qlog).len() >= before + 15), "sim stalled");
    replicas[1] = start_replica(dir, broker.port, lake, "ingest-2", env);

    let total = 3 * SHOTS_PER_MACHINE as usize;
    let long = Duration::from_secs(300);
    assert!(wait_until(long, || logged_shots(&qlog).len() >= total), "simulator did not finish");
    let truth = logged_shots(&qlog);
    let complete = wait_until(long, || shots().len() >= total);
    let rows = shots();
    let got: BTreeSet<(String, u64)> = rows.iter().cloned().collect();
    let tails: Vec<String> = replicas.iter().chain([&edge]).map(|p| p.stderr_tail()).collect();
    let missing: Vec<_> = truth.difference(&got).collect();
    assert!(complete && missing.is_empty(), "missing shots {missing:?}\n{}", tails.join("\n"));
    assert!(got.difference(&truth).next().is_none(), "shots the simulator never made");
    assert_eq!(rows.len(), got.len(), "duplicate shots in the lake");
    let busy = replicas.iter().filter(|r| committed_shots(r) > 0).count();
    assert!(busy >= 2, "the share group spread the load: {busy} replica(s) committed shots");
    drop(sim);
}

#[test]
fn three_replicas_share_the_load_and_a_killed_one_loses_and_doubles_nothing() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    three_replicas_and_a_kill(dir, &lake.display().to_string(), &[], &|| lake_shots(&lake));
}

#[test]
fn three_replicas_on_an_s3_bucket_keep_exactly_once_through_a_kill() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let s3 = S3Server::start();
    s3.create_bucket("moldops");
    let owned = s3.settings();
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = Store::open_with("s3://moldops/plant-a/lake", &settings).expect("bucket");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mirror = std::sync::Mutex::new(rt.block_on(Mirror::open(store, &dir.join("check"))).expect("copy").0);
    // The lake as another reader sees it: a copy of the bucket, pulled again at each look.
    let shots = || {
        let mut m = mirror.lock().expect("mirror");
        rt.block_on(m.pull()).expect("pull");
        lake_shots(m.folder())
    };
    three_replicas_and_a_kill(dir, "s3://moldops/plant-a/lake", &s3.env(), &shots);
    let m = mirror.lock().expect("mirror");
    assert!(m.folder().join("_ingest/state.json").is_file(), "the dedup state lives in the bucket");
    assert!(!m.folder().join("_ingest/commit-pending").exists(), "no commit left half-way");
}
