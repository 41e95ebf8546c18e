//! A plant mixing protocols: one machine from the simulator over Modbus, one over OPC UA
//! (asyncua serving the same record names), through the broker and the ingest into the lake,
//! where their rows fill the same columns — nothing but the ids tells them apart.

use super::{start_peer, ua_device, write};
use crate::common::*;
use moldops_tests::{Mosquitto, Proc, bin, free_port, wait_until};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a node map serving the simulator machine profile's record names over OPC UA.
fn sim_names_map(dir: &Path) -> PathBuf {
    let p = moldops_edge::sim::machine_profile();
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
    let mut sim_cmd = Command::new(bin("moldops-edge"));
    sim_cmd
        .args(["simulate", "--machines", "1", "--no-peripherals", "--speed", "60", "--base-port", "0"])
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
    let df = moldops_cloud::lake::read_dataset(&lake, "raw_data").expect("raw_data");
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
    assert_eq!(filled.len(), 2, "{filled:?}");
    assert_eq!(filled["m1"], filled["m-ua"], "same columns filled for the Modbus and the OPC UA machine");
    assert!(filled["m-ua"].contains("Barrel_Temperature_7"));
}
