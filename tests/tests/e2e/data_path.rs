//! The acceptance path: simulator (2 machines + peripherals, accelerated) → edge → real
//! Mosquitto → ingest → lake holds exactly the shots the simulator logged, with no gap and no
//! duplicate, while the broker is restarted and the edge and the ingest are SIGKILLed; the
//! edge's link events (online, offline by its last will) land in `edge_events` once each.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, wait_until};
use std::process::Command;
use std::time::Duration;

const SHOTS_PER_MACHINE: u64 = 60;

#[test]
fn exactly_once_through_broker_restart_and_kills() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let qlog = dir.join("quality.jsonl");
    let edge_cfg = dir.join("edge.toml");
    let mut broker = Mosquitto::start(dir);

    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "2", "--speed", "150", "--seed", "11", "--base-port", "0"])
        .args(["--shots", &SHOTS_PER_MACHINE.to_string(), "--start-shot", "4294967270"])
        .arg("--quality-log")
        .arg(&qlog)
        .arg("--write-config")
        .arg(&edge_cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", "127.0.0.1:0"])
        .arg("--buffer-path")
        .arg(dir.join("edge-buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));

    let mut ingest = start_ingest(dir, broker.port, &lake);
    let mut edge = start_edge(dir, &edge_cfg);
    let progress = |n: usize| {
        let lake = lake.clone();
        move || lake_shots(&lake).len() >= n
    };
    let long = Duration::from_secs(180);
    assert!(wait_until(long, progress(10)), "no shots reached the lake\n{}", edge.stderr_tail());

    // Broker outage: the edge keeps buffering; the sim keeps producing.
    broker.stop();
    let before = logged_shots(&qlog).len();
    assert!(wait_until(long, || logged_shots(&qlog).len() >= before + 8), "sim stalled during outage");
    broker.restart();
    assert!(
        wait_until(long, progress(before + 8)),
        "backlog not uploaded after broker restart\n{}",
        edge.stderr_tail()
    );

    // SIGKILL the edge mid-run and restart it: no lost and no doubled shot.
    edge.kill9();
    let before = logged_shots(&qlog).len();
    assert!(wait_until(long, || logged_shots(&qlog).len() >= before + 4), "sim stalled");
    edge = start_edge(dir, &edge_cfg);
    assert!(wait_until(long, progress(before + 4)), "no progress after edge restart\n{}", edge.stderr_tail());

    // SIGKILL the ingest mid-run and restart it.
    ingest.kill9();
    let before = logged_shots(&qlog).len();
    assert!(wait_until(long, || logged_shots(&qlog).len() >= before + 4), "sim stalled");
    ingest = start_ingest(dir, broker.port, &lake);

    let total = 2 * SHOTS_PER_MACHINE as usize;
    let got = assert_lake_matches_log(&lake, &qlog, total, &[&edge, &ingest]);
    assert!(got.iter().any(|(_, s)| *s < 100), "the u32 shot counter wrapped during the run");
    assert!(lake_rows(&lake, "peripheral_data") > 0, "peripheral samples reached the lake");

    // The edge's link in edge_events: online on each connection, offline by the broker's last
    // will when the edge was killed; each once, though the ingest was killed and restarted and
    // saw the retained status again.
    let files = moldops_cloud::lake::list_parts(&lake, "edge_events").expect("list");
    let events = moldops_cloud::lake::read_parts(&files, &[]).expect("read").expect("edge_events");
    let kind = events.column("event").expect("event").str().expect("str").clone();
    let edge_ts =
        events.column("edge_ts").expect("edge_ts").cast(&polars::prelude::DataType::Int64).expect("i64");
    let edge_ts = edge_ts.i64().expect("i64").clone();
    let rows: Vec<(String, i64)> = (0..events.height())
        .map(|i| (kind.get(i).unwrap_or_default().to_string(), edge_ts.get(i).unwrap_or_default()))
        .collect();
    let count = |e: &str| rows.iter().filter(|(k, _)| k == e).count();
    assert!(count("online") >= 2 && count("offline") >= 1, "link events: {rows:?}");
    let distinct: std::collections::BTreeSet<_> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "no link event twice: {rows:?}");
    drop(sim);
}

/// README's main command, short: the demo must finish with every shot in the lake.
#[test]
fn the_demo_runs_end_to_end() {
    let tmp = moldops_tests::test_dir();
    let out = Command::new(bin("moldops-demo"))
        .args(["demo", "--exit", "--data-only", "--duration-s", "4", "--speed", "200", "--data-dir"])
        .arg(tmp.path())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("every shot, exactly once"), "{stdout}");
    assert!(lake_shots(&tmp.path().join("demo/lake")).len() > 3, "{stdout}");
}
