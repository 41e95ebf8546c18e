//! Plants mixing protocols, through the broker and the ingest into the lake, where their rows
//! fill the same columns — nothing but the ids tells them apart: one machine from the
//! simulator over Modbus and one over OPC UA from asyncua serving the same record names; and
//! the simulator alone serving one machine over OPC UA and one over Modbus
//! (`--opcua-machines 1`), every shot of both in the lake exactly once.

use super::{start_peer, ua_device, write};
use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, free_port, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a node map serving the simulator machine profile's record names over OPC UA.
fn sim_names_map(dir: &Path) -> PathBuf {
    let p = moldops_sim::machine_profile();
    let mut text = String::from(
        "name = \"sim-names\"\nshot_counter = \"shot_counter\"\nmold_code = \"mold_code\"\ntimestamp = \"shot_time_ms\"\n",
    );
    text += &format!("shot_values = {:?}\n", p.shot_values);
    let roles = [("shot_counter", "u32"), ("mold_code", "string"), ("shot_time_ms", "")];
    for (name, ty) in roles {
        let ty = if ty.is_empty() { String::new() } else { format!("type = \"{ty}\"\n") };
        text += &format!("[[nodes]]\nname = \"{name}\"\nnode = \"ns=2;s=Sim/{name}\"\n{ty}");
    }
    for v in &p.shot_values {
        text += &format!("[[nodes]]\nname = \"{v}\"\nnode = \"ns=2;s=Sim/{v}\"\n");
    }
    write(dir, "sim-names.toml", &text)
}

#[test]
fn mixed_plant_rows_differ_only_by_machine() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let sim_cfg = dir.join("sim-edge.toml");
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "1", "--no-peripherals", "--speed", "60", "--base-port", "0"])
        .args(["--shots", "3", "--quality-log"])
        .arg(dir.join("quality.jsonl"))
        .arg("--write-config")
        .arg(&sim_cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", ""]);
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));
    let port = free_port();
    let map = sim_names_map(dir);
    let _peer =
        start_peer(dir, "asyncua", port, &[&map], &["--shots", "3", "--every", "0.4", "--wait-client"]);
    let mut cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(&sim_cfg).expect("sim config")).expect("toml");
    let ua: toml::Value =
        toml::from_str(&ua_device("m-ua", "machine", port, 100, &format!("profile_file = {map:?}")))
            .expect("device toml");
    let devices = cfg.get_mut("devices").and_then(|d| d.as_array_mut()).expect("devices");
    devices.extend(ua["devices"].as_array().cloned().unwrap_or_default());
    cfg["buffer"]["path"] = toml::Value::String("buffer".into());
    let edge_cfg = write(dir, "edge.toml", &toml::to_string(&cfg).expect("toml"));
    let _ingest = start_ingest(dir, broker.port, &lake);
    let edge = start_edge(dir, &edge_cfg);
    let both = wait_until(READY, || {
        let shots = lake_shots(&lake);
        ["m1", "m-ua"].iter().all(|m| shots.iter().filter(|(id, _)| id == m).count() >= 3)
    });
    assert!(both, "{:?}\n{}", lake_shots(&lake), edge.stderr_tail());
    let filled = filled_columns(&lake);
    assert_eq!(filled.len(), 2, "{filled:?}");
    assert_eq!(filled["m1"], filled["m-ua"], "same columns filled for the Modbus and the OPC UA machine");
    assert!(filled["m-ua"].contains("Barrel_Temperature_7"));
}

/// Per machine, the raw_data columns that hold a value in any of its rows.
fn filled_columns(lake: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let df = moldops_cloud::lake::read_dataset(lake, "raw_data").expect("raw_data");
    let machines = df.column("machine_id").and_then(|c| c.str().cloned()).expect("machine_id");
    let mut filled: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for col in df.columns() {
        for (i, m) in machines.iter().enumerate() {
            let set = filled.entry(m.unwrap_or_default().to_string()).or_default();
            if col.get(i).is_ok_and(|v| !v.is_null()) {
                set.insert(col.name().to_string());
            }
        }
    }
    filled
}

/// Shots per machine; a cycle takes about 1.7 s real time at ×40, well above the edge's
/// reaction to a counter change (OPC UA has no history ring: a shot must be read before the
/// next one replaces it).
const SIM_UA_SHOTS: u64 = 14;

#[test]
fn simulated_opcua_and_modbus_machines_every_shot_exactly_once() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let qlog = dir.join("quality.jsonl");
    let edge_cfg = dir.join("edge.toml");
    let broker = Mosquitto::start(dir);
    // The ingest first and the edge right after the simulator's ready line: the OPC UA machine's
    // first shot is read before its second one.
    let ingest = start_ingest(dir, broker.port, &lake);
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "2", "--opcua-machines", "1", "--base-port", "0"])
        .args(["--speed", "40", "--seed", "5", "--mold-change-shots", "0", "--idle-every", "0"])
        .args(["--shots", &SIM_UA_SHOTS.to_string(), "--start-shot", "4294967290"])
        .arg("--quality-log")
        .arg(&qlog)
        .arg("--write-config")
        .arg(&edge_cfg)
        .args(["--broker-port", &broker.port.to_string(), "--api-listen", ""])
        .arg("--buffer-path")
        .arg(dir.join("edge-buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    let ready = sim.wait_line(READY, |l| l.contains("\"ready\""));
    let edge = start_edge(dir, &edge_cfg);
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("ready line is JSON");
    let m1 = &ready["devices"][0];
    assert_eq!((m1["id"].as_str(), m1["protocol"].as_str()), (Some("m1"), Some("opcua")), "{ready}");
    assert!(m1["endpoint"].as_str().is_some_and(|e| e.starts_with("opc.tcp://127.0.0.1:")), "{ready}");
    assert_eq!(ready["devices"][4]["protocol"].as_str(), Some("modbus-tcp"), "{ready}");
    let cfg = std::fs::read_to_string(&edge_cfg).expect("edge config");
    assert_eq!(cfg.matches("protocol = \"opcua\"").count(), 1, "{cfg}");

    let total = 2 * SIM_UA_SHOTS as usize;
    let got = assert_lake_matches_log(&lake, &qlog, total, &[&edge, &ingest]);
    assert!(got.iter().any(|(m, s)| m == "m1" && *s < 100), "the OPC UA machine's u32 counter wrapped");
    let filled = filled_columns(&lake);
    assert_eq!(filled.len(), 2, "{filled:?}");
    assert_eq!(filled["m1"], filled["m2"], "same columns filled for the OPC UA and the Modbus machine");
    assert!(
        lake_rows(&lake, "peripheral_data") > 0,
        "the OPC UA machine's peripherals (Modbus) reached the lake"
    );
    drop(sim);
}
