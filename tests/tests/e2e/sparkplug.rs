//! The Sparkplug B uplink against an independent host: simulator → edge (`uplink.format =
//! "sparkplug-b"`) → real Mosquitto → pysparkplug decoding every message, and the ingest writing
//! the lake from the same `DDATA`. Births carry the tag map's metrics, `seq` runs without a gap
//! per connection, a rebirth request is answered, a `kill -9` brings the broker's `NDEATH` with
//! the birth's `bdSeq` and the next connection the next `bdSeq`; the lake holds every shot once.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, python, wait_until};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SHOTS: u64 = 40;

/// The host's decoded messages, in arrival order.
fn host_log(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn of_type<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter().filter(|m| m["type"] == kind).collect()
}

fn metric<'a>(m: &'a Value, name: &str) -> Option<&'a Value> {
    m["metrics"].as_array()?.iter().find(|x| x["name"] == name).map(|x| &x["value"])
}

#[test]
fn an_independent_host_reads_births_data_deaths_and_rebirths_and_the_lake_gets_every_shot_once() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let (lake, qlog, edge_cfg, host_out) =
        (dir.join("lake"), dir.join("quality.jsonl"), dir.join("edge.toml"), dir.join("host.jsonl"));
    let broker = Mosquitto::start(dir);

    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "1", "--speed", "60", "--seed", "5", "--base-port", "0"])
        .args(["--shots", &SHOTS.to_string()])
        .arg("--quality-log")
        .arg(&qlog)
        .arg("--write-config")
        .arg(&edge_cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", "127.0.0.1:0"])
        .arg("--buffer-path")
        .arg(dir.join("edge-buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));
    let mut cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(&edge_cfg).expect("config")).expect("toml");
    let site = cfg["site"].as_str().expect("site").to_string();
    let edge_id = cfg["edge_id"].as_str().expect("edge_id").to_string();
    let uplink = cfg.entry("uplink").or_insert(toml::Value::Table(toml::Table::new()));
    uplink.as_table_mut().expect("table").insert("format".into(), "sparkplug-b".into());
    std::fs::write(&edge_cfg, toml::to_string(&cfg).expect("toml")).expect("write config");

    let mut host_cmd = Command::new(python());
    host_cmd.arg(moldops_tests::asset("peers/sparkplug_host.py")).args([
        &broker.port.to_string(),
        &site,
        &edge_id,
        host_out.to_str().expect("utf-8 path"),
        "5",
    ]);
    let mut host = Proc::spawn("sparkplug-host", &mut host_cmd, dir);
    host.wait_line(READY, |l| l.contains("\"subscribed\""));
    let ingest = start_ingest(dir, broker.port, &lake);
    let mut edge = start_edge(dir, &edge_cfg);

    // The host's rebirth request is answered with a second birth of the same connection.
    let long = Duration::from_secs(180);
    let births = |n: usize| {
        let host_out = host_out.clone();
        move || of_type(&host_log(&host_out), "NBIRTH").len() >= n
    };
    assert!(wait_until(long, births(2)), "no rebirth after the host asked\n{}", edge.stderr_tail());
    assert!(
        wait_until(long, || lake_shots(&lake).len() >= 10),
        "no shots in the lake\n{}",
        edge.stderr_tail()
    );

    // kill -9: the broker publishes the death certificate the edge registered as its will.
    edge.kill9();
    assert!(wait_until(long, || !of_type(&host_log(&host_out), "NDEATH").is_empty()), "no NDEATH");
    edge = start_edge(dir, &edge_cfg);
    assert!(wait_until(long, births(3)), "no birth after the restart\n{}", edge.stderr_tail());
    assert_lake_matches_log(&lake, &qlog, SHOTS as usize, &[&edge, &ingest]);

    let log = host_log(&host_out);
    let errors: Vec<&Value> = log.iter().filter(|m| m.get("error").is_some()).collect();
    assert!(errors.is_empty(), "pysparkplug could not decode: {errors:?}");
    let (nbirths, deaths) = (of_type(&log, "NBIRTH"), of_type(&log, "NDEATH"));
    let bd = |m: &Value| m["bdSeq"].as_u64().expect("bdSeq");
    assert_eq!(bd(nbirths[0]), bd(nbirths[1]), "a rebirth keeps the connection's bdSeq");
    assert_eq!(bd(deaths[0]), bd(nbirths[1]), "the will carries the birth's bdSeq");
    assert_eq!(bd(nbirths[2]), (bd(nbirths[1]) + 1) % 256, "the next connection the next bdSeq");
    assert!(deaths[0]["seq"].is_null(), "a death has no seq");

    // Per node session (from one NBIRTH to the next), seq counts 0, 1, 2, … mod 256, and every
    // DDATA metric was declared by its device's birth before it.
    let mut expected = None;
    let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // (The host's own NCMD comes back to it too; commands and deaths carry no seq.)
    for m in
        log.iter().filter(|m| ["NBIRTH", "DBIRTH", "DDATA"].contains(&m["type"].as_str().unwrap_or_default()))
    {
        let seq = m["seq"].as_u64().expect("seq");
        if m["type"] == "NBIRTH" {
            assert_eq!(seq, 0, "a node birth has seq 0");
            assert_eq!(metric(m, "Node Control/Rebirth"), Some(&Value::Bool(false)));
            declared.clear();
        } else {
            assert_eq!(Some(seq), expected, "seq without a gap: {m}");
        }
        expected = Some((seq + 1) % 256);
        let device = m["device"].as_str().unwrap_or_default().to_string();
        let names = m["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|x| x["name"].as_str().unwrap_or_default().to_string());
        if m["type"] == "DBIRTH" {
            declared.insert(device, names.collect());
        } else if m["type"] == "DDATA" {
            let known = declared.get(&device).unwrap_or_else(|| panic!("DDATA of {device} before its birth"));
            for n in names {
                assert!(known.contains(&n), "metric {n} of {device} not in its birth");
            }
        }
    }

    // The machine's birth declares its tag map: the shot values, counter and mould.
    let machine = of_type(&log, "DBIRTH").into_iter().find(|m| metric(m, "moldops/shot_number").is_some());
    let machine = machine.expect("a machine birth");
    let doubles =
        machine["metrics"].as_array().expect("metrics").iter().filter(|x| x["datatype"] == 10).count();
    assert!(doubles >= 5, "the shot values of the tag map: {machine}");
    // The host saw the shots the lake holds (it reads the same DDATA; replays may repeat some).
    let seen: BTreeSet<u64> =
        of_type(&log, "DDATA").iter().filter_map(|m| metric(m, "moldops/shot_number")?.as_u64()).collect();
    let stored: BTreeSet<u64> = lake_shots(&lake).into_iter().map(|(_, s)| s).collect();
    assert!(stored.is_subset(&seen), "shots in the lake the host never saw: {:?}", stored.difference(&seen));

    // The death is the edge's offline event in the lake.
    let files = moldops_cloud::lake::list_parts(&lake, "edge_events").expect("list");
    let events = moldops_cloud::lake::read_parts(&files, &[]).expect("read").expect("edge_events");
    let reasons = events.column("reason").expect("reason").str().expect("str").clone();
    assert!(
        reasons.iter().flatten().any(|r| r.starts_with("Sparkplug NDEATH")),
        "the NDEATH became an offline event"
    );
    drop(sim);
}
