//! The edge against an independent OPC UA server (Python asyncua, `peers/opcua_server.py`) on
//! loopback: shots assembled on cycle-counter change by subscription and by polling, a server
//! restart without a lost or doubled shot — the shipped EUROMAP 77 map by browse path, the
//! restarted server under other node ids and namespace indexes —, wrong credentials and an
//! unknown node id reported per device while the others go on, the same EUROMAP 77 map on
//! node-opcua, a mixed OPC UA + Modbus plant whose lake rows look alike, and Sign /
//! SignAndEncrypt sessions with certificates and a trust decision. Records are read back by a
//! plain MQTT client as generic JSON.

mod euromap77;
mod mixed;
mod security;

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, free_port, python, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A EUROMAP 82.1-shaped temperature control unit served next to the machine.
const TCU_MAP: &str = r#"
name = "tcu"
[[nodes]]
name = "tcu_supply_temperature"
node = "ns=2;s=TCU_1/TemperatureControl/SupplyTemperature"
[[nodes]]
name = "tcu_flow"
node = "ns=2;i=8201"
"#;

/// A machine map with numeric and string node ids in the namespace by index.
pub const NUMERIC_MAP: &str = r#"
name = "numeric"
shot_counter = "counter"
timestamp = "cycle_end"
mold_code = "mold"
[[nodes]]
name = "counter"
node = "ns=2;i=1001"
type = "u32"
[[nodes]]
name = "cycle_end"
node = "ns=2;i=1002"
[[nodes]]
name = "mold"
node = "ns=2;s=Job/Mold"
type = "string"
[[nodes]]
name = "Cycle_Time"
node = "ns=2;s=Cycle/CycleTime"
[[nodes]]
name = "Cushion_Position"
node = "ns=2;i=1010"
"#;

fn deploy_map() -> PathBuf {
    asset("../deploy/opcua/euromap77-machine.toml")
}

/// The machine object the test servers put the EUROMAP 77 tree under (from Objects).
const EUROMAP_ROOT: &str = "/di:DeviceSet/vendor:IMM_MOLDOPS_0001";
/// The test machine's instance ("vendor") namespace.
const VENDOR_NS: &str = "urn:moldops:imm-vendor";

/// `[devices.opcua]` lines of a machine read with the EUROMAP 77 map `map`.
fn euromap_opcua(map: &Path) -> String {
    format!(
        "profile_file = {map:?}\nroot = \"{EUROMAP_ROOT}\"\nnamespaces = {{ vendor = \"{VENDOR_NS}\" }}\n"
    )
}

/// Peer arguments serving the EUROMAP 77 tree under [`EUROMAP_ROOT`].
fn euromap_peer_args() -> Vec<String> {
    ["--root", EUROMAP_ROOT, "--alias", &format!("vendor={VENDOR_NS}")].map(String::from).to_vec()
}

/// The peer's `NODES` line (printed after READY): its namespace array and node ids by name.
fn peer_nodes(peer: &mut Proc) -> Value {
    let line = peer.wait_line(READY, |l| l.starts_with("NODES "));
    serde_json::from_str(&line[6..]).expect("NODES line is JSON")
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

/// Starts the asyncua peer serving `maps` and waits until it listens.
pub fn start_peer(dir: &Path, name: &str, port: u16, maps: &[&Path], args: &[&str]) -> Proc {
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/opcua_server.py")).args(["--port", &port.to_string()]);
    for m in maps {
        cmd.arg("--map").arg(m);
    }
    let mut p = Proc::spawn(name, cmd.args(args), dir);
    p.wait_line(READY, |l| l == "READY");
    p
}

/// The next `n` shots the peer reports: shot number → values.
fn peer_shots(peer: &mut Proc, n: usize) -> BTreeMap<u64, Value> {
    (0..n)
        .map(|_| {
            let line = peer.wait_line(READY, |l| l.starts_with("SHOT "));
            let v: Value = serde_json::from_str(&line[5..]).expect("SHOT line is JSON");
            (v["n"].as_u64().expect("shot number"), v["values"].clone())
        })
        .collect()
}

/// Every record published on the data topics, as generic JSON, from a plain MQTT client.
fn records(port: u16) -> Receiver<Value> {
    let mut opts = MqttOptions::new(format!("opcua-test-{}", free_port()), "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut conn) = Client::new(opts, 10);
    client.subscribe("moldops/v1/+/+/data", QoS::AtLeastOnce).expect("subscribe");
    let (tx, rx) = channel();
    let (ready_tx, ready_rx) = channel();
    std::thread::spawn(move || {
        let _client = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let batch: Value = serde_json::from_slice(&p.payload).expect("batch is JSON");
                    for r in batch["records"].as_array().cloned().unwrap_or_default() {
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    ready_rx.recv_timeout(READY).expect("test subscriber got no SUBACK");
    rx
}

/// Receives records until `done` holds for what was received (fails after `READY`).
fn collect(rx: &Receiver<Value>, got: &mut Vec<Value>, edge: &Proc, done: impl Fn(&[Value]) -> bool) {
    let end = Instant::now() + READY;
    while !done(got) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) => got.push(r),
            Err(_) => panic!("records so far: {got:#?}\n{}", edge.stderr_tail()),
        }
    }
}

fn shots_of<'a>(got: &'a [Value], machine: &str) -> Vec<&'a Value> {
    got.iter().filter(|r| r["kind"] == "shot" && r["machine_id"] == machine).collect()
}

pub fn edge_config(dir: &Path, broker: u16, api: u16, devices: &str) -> PathBuf {
    let text = format!(
        "site = \"test\"\nedge_id = \"ua-edge\"\n[broker]\nhost = \"127.0.0.1\"\nport = {broker}\n\
         [buffer]\npath = \"buffer\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
         [uplink]\ndelete_after = \"puback\"\n{devices}"
    );
    write(dir, "edge.toml", &text)
}

pub fn ua_device(id: &str, role: &str, port: u16, poll_ms: u64, opcua: &str) -> String {
    format!(
        "[[devices]]\nid = \"{id}\"\nrole = \"{role}\"\nmachine_id = \"m-ua\"\nprotocol = \"opcua\"\n\
         poll_interval_ms = {poll_ms}\n[devices.opcua]\nendpoint = \"opc.tcp://127.0.0.1:{port}/moldops/\"\n{opcua}\n"
    )
}

/// Body of a GET on the edge's local API.
fn http_get(api: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// `/status` of the edge's local API, as JSON.
fn status(api: u16) -> Value {
    http_get(api, "/status").and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null)
}

fn check_shots(shots: &[&Value], truth: &BTreeMap<u64, Value>, names: usize) {
    let numbers: Vec<u64> = shots.iter().filter_map(|r| r["shot_number"].as_u64()).collect();
    let want: Vec<u64> = truth.keys().copied().collect();
    assert_eq!(numbers, want, "every shot once, in order, none doubled");
    let now = now_ms();
    for r in shots {
        let n = r["shot_number"].as_u64().unwrap_or_default();
        let values = r["values"].as_object().cloned().unwrap_or_default();
        assert_eq!(values.len(), names, "one value per shot_values name: {r}");
        for (k, v) in &values {
            // As numbers: node-opcua's JSON writes 6.0 as 6.
            let (got, wrote) = (v.as_f64(), truth[&n][k].as_f64());
            assert!(
                got.is_some() && got == wrote,
                "{k} of shot {n}: {v} received, {wrote:?} written by the server"
            );
        }
        assert_eq!(r["mold"], "M-OPCUA-1");
        let ts = r["ts_ms"].as_i64().unwrap_or_default();
        assert!((now - 600_000..=now + 60_000).contains(&ts), "cycle time stamp {ts} is now-ish");
    }
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_millis() as i64
}

#[test]
fn subscription_shots_survive_a_server_restart() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let (machine_map, tcu_map) = (deploy_map(), write(dir, "tcu.toml", TCU_MAP));
    let maps = [machine_map.as_path(), tcu_map.as_path()];
    let euromap = euromap_peer_args();
    let peer_args = |start: &'static str, ids: &[&'static str]| {
        let mut args = vec!["--start", start, "--shots", "4", "--every", "0.5", "--wait-client"];
        args.extend(euromap.iter().map(String::as_str));
        args.extend(ids);
        args
    };
    let mut peer = start_peer(dir, "asyncua-1", port, &maps, &peer_args("1", &[]));
    let before = peer_nodes(&mut peer);
    let rx = records(broker.port);
    let machine = ua_device("m-ua", "machine", port, 100, &euromap_opcua(&machine_map));
    let tcu = ua_device("m-ua-tcu", "peripheral", port, 200, &format!("profile_file = {:?}", tcu_map));
    let edge = start_edge(dir, &edge_config(dir, broker.port, api, &format!("{machine}{tcu}")));

    let mut truth = peer_shots(&mut peer, 4);
    let mut got = Vec::new();
    collect(&rx, &mut got, &edge, |g| shots_of(g, "m-ua").len() >= 4);
    peer.kill9();
    let down = wait_until(READY, || status(api)["devices"]["m-ua"]["connected"] == false);
    assert!(down, "the edge noticed the server went away: {}", status(api));

    // The restarted server numbers its nodes and namespaces differently (as after a firmware
    // update): the edge resolves the browse paths again on reconnect.
    let restarted = peer_args("5", &["--id-base", "9000", "--pad-namespaces", "2"]);
    let mut peer = start_peer(dir, "asyncua-2", port, &maps, &restarted);
    let after = peer_nodes(&mut peer);
    for name in ["shot_counter", "Cycle_Time", "Mold_Temperature_1"] {
        assert_ne!(before["ids"][name], after["ids"][name], "{name} has another node id after the restart");
    }
    assert_ne!(before["namespaces"], after["namespaces"], "other namespace indexes after the restart");
    truth.extend(peer_shots(&mut peer, 4));
    collect(&rx, &mut got, &edge, |g| {
        let after = g.iter().rposition(|r| r["shot_number"] == 8);
        after.is_some_and(|i| g[i..].iter().filter(|r| r["kind"] == "peripheral").count() >= 3)
    });
    check_shots(&shots_of(&got, "m-ua"), &truth, 9);

    let samples: Vec<&Value> = got.iter().filter(|r| r["kind"] == "peripheral").collect();
    for s in &samples {
        assert_eq!((s["device_id"].as_str(), s["machine_id"].as_str()), (Some("m-ua-tcu"), Some("m-ua")));
        let v = &s["values"];
        let temp = v["tcu_supply_temperature"].as_f64().unwrap_or(-1.0);
        assert!((1.0..=2.25).contains(&temp) && v["tcu_flow"].is_f64(), "sample read by subscription: {s}");
    }
    let st = status(api);
    let m = &st["devices"]["m-ua"];
    assert!(m["errors"].as_u64() > Some(0) && m["missed_shots"] == 0, "restart seen, nothing missed: {st}");
    assert_eq!(m["last_shot"], 8);
    let metrics = http_get(api, "/metrics").unwrap_or_default();
    for line in ["moldops_shots_total{device=\"m-ua\"} 8", "moldops_device_up{device=\"m-ua\"} 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in /metrics:\n{metrics}");
    }
    assert!(metrics.contains("moldops_poll_errors_total{device=\"m-ua\"}"), "{metrics}");
}

#[test]
fn polling_reads_numeric_and_string_node_ids() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let map = write(dir, "numeric.toml", NUMERIC_MAP);
    let mut peer =
        start_peer(dir, "asyncua", port, &[&map], &["--shots", "3", "--every", "0.4", "--wait-client"]);
    let rx = records(broker.port);
    let machine =
        ua_device("m-ua", "machine", port, 100, &format!("mode = \"poll\"\nprofile_file = {map:?}"));
    let edge = start_edge(dir, &edge_config(dir, broker.port, api, &machine));
    let truth = peer_shots(&mut peer, 3);
    let mut got = Vec::new();
    collect(&rx, &mut got, &edge, |g| shots_of(g, "m-ua").len() >= 3);
    check_shots(&shots_of(&got, "m-ua"), &truth, 2);
}

#[test]
fn wrong_credentials_and_unknown_node_are_reported_per_device() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let map = write(dir, "numeric.toml", NUMERIC_MAP);
    let unknown = write(
        dir,
        "unknown.toml",
        &format!("{NUMERIC_MAP}[[nodes]]\nname = \"Ghost\"\nnode = \"ns=2;s=No/Such/Node\"\n"),
    );
    let args = ["--shots", "3", "--every", "0.4", "--wait-client", "--user", "operator:secret"];
    let _peer = start_peer(dir, "asyncua", port, &[&map], &args);
    let login = |pw: &str| format!("username = \"operator\"\npassword = \"{pw}\"\n");
    let devices = [
        ua_device("m-bad-pass", "machine", port, 200, &format!("{}profile_file = {map:?}", login("guess"))),
        ua_device("m-ghost", "machine", port, 200, &format!("{}profile_file = {unknown:?}", login("secret"))),
        ua_device("m-good", "machine", port, 100, &format!("{}profile_file = {map:?}", login("secret"))),
    ];
    let edge = start_edge(dir, &edge_config(dir, broker.port, api, &devices.concat()));
    let err = |st: &Value, d: &str| st["devices"][d]["last_error"].as_str().unwrap_or_default().to_string();
    let reported = wait_until(READY, || {
        let st = status(api);
        st["devices"]["m-good"]["last_shot"] == 3
            && !err(&st, "m-bad-pass").is_empty()
            && !err(&st, "m-ghost").is_empty()
    });
    let st = status(api);
    assert!(reported, "{st:#}\n{}", edge.stderr_tail());
    let bad = err(&st, "m-bad-pass");
    assert!(bad.contains("BadUserAccessDenied") && bad.contains("username"), "credentials: {bad}");
    let ghost = err(&st, "m-ghost");
    assert!(
        ghost.contains("ns=2;s=No/Such/Node") && ghost.contains("BadNodeIdUnknown"),
        "unknown node: {ghost}"
    );
    for d in ["m-bad-pass", "m-ghost"] {
        assert_eq!(st["devices"][d]["shots"], 0, "{d} made no shot");
    }
}
