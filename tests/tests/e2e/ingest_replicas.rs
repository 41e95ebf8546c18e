//! Ingest replicas: three `moldops-cloud ingest` processes, each with its own client id, share
//! the edges' data topics through an MQTT share group (`$share/…`) on a real Mosquitto and
//! write one lake in turns. One is SIGKILLed mid-load and restarted (as its StatefulSet would);
//! the lake then holds exactly the shots the simulator logged — none missing, none twice —
//! and more than one replica committed shots.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SHOTS_PER_MACHINE: u64 = 80;
const GROUP: &str = "moldops-ingest";

fn start_replica(dir: &Path, port: u16, lake: &Path, id: &str) -> Proc {
    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.args(["ingest", "--broker-host", "127.0.0.1", "--broker-port", &port.to_string()])
        .arg("--lake")
        .arg(lake)
        .args(["--client-id", id, "--share-group", GROUP]);
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

#[test]
fn three_replicas_share_the_load_and_a_killed_one_loses_and_doubles_nothing() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
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
        (1..=3).map(|i| start_replica(dir, broker.port, &lake, &format!("ingest-{i}"))).collect();
    let edge = start_edge(dir, &edge_cfg);
    let long = Duration::from_secs(180);
    let progress = |n: usize| {
        let lake = lake.clone();
        move || lake_shots(&lake).len() >= n
    };
    assert!(wait_until(long, progress(30)), "no shots reached the lake\n{}", edge.stderr_tail());

    // SIGKILL one replica mid-load: what the broker handed it and it had not acknowledged is
    // redelivered to its session when it comes back under the same client id.
    replicas[1].kill9();
    let before = logged_shots(&qlog).len();
    assert!(wait_until(long, || logged_shots(&qlog).len() >= before + 15), "sim stalled");
    replicas[1] = start_replica(dir, broker.port, &lake, "ingest-2");

    let total = 3 * SHOTS_PER_MACHINE as usize;
    let logs: Vec<&Proc> = replicas.iter().chain([&edge]).collect();
    assert_lake_matches_log(&lake, &qlog, total, &logs);
    let busy = replicas.iter().filter(|r| committed_shots(r) > 0).count();
    assert!(busy >= 2, "the share group spread the load: {busy} replica(s) committed shots");
    drop(sim);
}
