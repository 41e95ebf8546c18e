//! The edge against an independent Modbus implementation (pymodbus) serving floats in both
//! word orders, over TCP and over RTU through a socat pty pair. What the edge publishes is
//! read back by a plain MQTT client and parsed as generic JSON, as any consumer would.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, free_port, python, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PROFILE: &str = r#"
[devices.profile]
name = "pymodbus-peer"
shot_counter = "counter"
mold_code = "mold"
material_code = "material"
[[devices.profile.tags]]
name = "counter"
address = 0
type = "u32"
[[devices.profile.tags]]
name = "f_abcd"
address = 10
type = "f32"
range = [0, 1000]
[[devices.profile.tags]]
name = "f_cdab"
address = 12
type = "f32"
word_order = "little"
range = [0, 1000]
[[devices.profile.tags]]
name = "f_wrong_order"
address = 12
type = "f32"
range = [0, 1000]
[[devices.profile.tags]]
name = "neg_abcd"
address = 14
type = "f32"
[[devices.profile.tags]]
name = "neg_cdab"
address = 16
type = "f32"
word_order = "little"
[[devices.profile.tags]]
name = "d_abcd"
address = 20
type = "f64"
[[devices.profile.tags]]
name = "d_cdab"
address = 24
type = "f64"
word_order = "little"
[[devices.profile.tags]]
name = "scaled"
address = 30
type = "i16"
scale = 0.1
[[devices.profile.tags]]
name = "mold"
address = 31
type = "string"
len = 4
[[devices.profile.tags]]
name = "material"
address = 35
type = "string"
len = 3
"#;

fn edge_config(dir: &Path, broker: u16, device: &str) -> std::path::PathBuf {
    edge_config_of(dir, broker, &[device])
}

/// An edge config with `devices`, each read with the peer's profile.
fn edge_config_of(dir: &Path, broker: u16, devices: &[&str]) -> std::path::PathBuf {
    let devices: String = devices.iter().map(|d| format!("[[devices]]\n{d}\n{PROFILE}\n")).collect();
    let text = format!(
        "site = \"test\"\nedge_id = \"peer-edge\"\n[broker]\nhost = \"127.0.0.1\"\nport = {broker}\n\
         [buffer]\npath = \"buffer\"\n[api]\nlisten = \"\"\n[uplink]\ndelete_after = \"puback\"\n{devices}"
    );
    let p = dir.join("edge.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// A plain MQTT client subscribed to every edge's data topic.
fn data_subscriber(port: u16, client_id: &str) -> (Client, rumqttc::Connection) {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, conn) = Client::new(opts, 10);
    client.subscribe("moldops/v1/+/+/data", QoS::AtLeastOnce).expect("subscribe");
    (client, conn)
}

/// Subscribes to every data topic and returns the first shot record as generic JSON (the
/// edge's own records, such as its health snapshot at start, are passed over).
fn first_record(port: u16, start: impl FnOnce() -> Proc) -> (serde_json::Value, Proc) {
    let (_client, mut conn) = data_subscriber(port, "peer-test-sub");
    let mut start = Some(start);
    let mut edge = None;
    let deadline = std::time::Instant::now() + READY;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(ev) = conn.recv_timeout(left) else {
            let log = edge.as_ref().map(Proc::stderr_tail).unwrap_or_default();
            panic!("no record published within {READY:?}\n{log}");
        };
        match ev {
            Ok(Event::Incoming(Packet::SubAck(_))) => edge = start.take().map(|f| f()),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let batch: serde_json::Value = serde_json::from_slice(&p.payload).expect("batch is JSON");
                let records = batch["records"].as_array().cloned().unwrap_or_default();
                if let Some(rec) = records.into_iter().find(|r| r["kind"] == "shot") {
                    return (rec, edge.expect("edge started"));
                }
            }
            Ok(_) => {}
            Err(e) => panic!("test subscriber lost the broker: {e}"),
        }
    }
}

fn check_values(rec: &serde_json::Value) {
    let v = &rec["values"];
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("missing {k} in {rec}"));
    let want = f64::from(123.456f32);
    assert_eq!(f("f_abcd"), want, "f32 ABCD");
    assert_eq!(f("f_cdab"), want, "f32 CDAB");
    assert_eq!(f("neg_abcd"), -0.5);
    assert_eq!(f("neg_cdab"), -0.5);
    assert_eq!(f("d_abcd"), 1234.5678, "f64 ABCD");
    assert_eq!(f("d_cdab"), 1234.5678, "f64 little word order");
    assert!((f("scaled") - -1.0).abs() < 1e-9, "i16 -10 × 0.1");
    assert_eq!(rec["mold"], "MOLD-X+PA6-GF", "the mould key: mould and material");
    assert_eq!(rec["shot_number"], 7);
    assert_eq!(rec["kind"], "shot");
    assert_eq!(
        rec["out_of_range"],
        serde_json::json!(["f_wrong_order"]),
        "only the misconfigured tag is flagged"
    );
}

#[test]
fn pymodbus_tcp_floats_in_both_word_orders() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/modbus_peer.py")).args(["tcp", &port.to_string()]);
    let _peer = Proc::spawn("pymodbus-tcp", &mut cmd, dir);
    assert!(wait_until(READY, || moldops_tests::port_open(port)), "pymodbus did not listen");
    let device = format!(
        "id = \"m1\"\nrole = \"machine\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:{port}\"\npoll_interval_ms = 100"
    );
    let cfg = edge_config(dir, broker.port, &device);
    let (rec, edge) = first_record(broker.port, || start_edge(dir, &cfg));
    check_values(&rec);
    let log = edge.stderr_tail();
    assert!(
        log.contains("f_wrong_order") && log.contains("word_order = little"),
        "the log suggests the order:\n{log}"
    );
}

#[test]
fn pymodbus_rtu_through_a_pty_pair() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (b, _line) = rtu_line(dir, "1");
    let device = format!(
        "id = \"m1\"\nrole = \"machine\"\nprotocol = \"modbus-rtu\"\npoll_interval_ms = 200\ntimeout_ms = 1000\n\
         [devices.serial]\npath = \"{}\"\nbaud = 19200\nparity = \"none\"",
        b.display()
    );
    let cfg = edge_config(dir, broker.port, &device);
    let (rec, _edge) = first_record(broker.port, || start_edge(dir, &cfg));
    check_values(&rec);
}

/// A socat pty pair in `dir`: the peer opens the first end, the edge the second.
fn pty_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Proc) {
    let (a, b) = (dir.join("ttyA"), dir.join("ttyB"));
    let mut socat = Command::new("socat");
    socat
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()));
    let socat = Proc::spawn("socat", &mut socat, dir);
    assert!(wait_until(READY, || a.exists() && b.exists()), "socat made no pty pair");
    (a, b, socat)
}

/// A pymodbus RTU server answering `units` (e.g. `1,2`) at 19 200 baud on one end of a pty
/// pair; returns the other end, for the edge, and the processes to keep alive.
fn rtu_line(dir: &Path, units: &str) -> (std::path::PathBuf, (Proc, Proc)) {
    let (a, b, socat) = pty_pair(dir);
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/modbus_peer.py")).arg("rtu").arg(&a).args(["19200", "N", units]);
    let mut peer = Proc::spawn("pymodbus-rtu", &mut cmd, dir);
    peer.wait_line(READY, |l| l.contains("READY"));
    (b, (socat, peer))
}

/// Every record the edge publishes within `window` after it connected, as generic JSON.
fn records_within(
    port: u16,
    window: Duration,
    start: impl FnOnce() -> Proc,
) -> (Vec<serde_json::Value>, Proc) {
    let (_client, mut conn) = data_subscriber(port, "peer-test-all");
    let mut start = Some(start);
    let mut edge = None;
    let mut records = Vec::new();
    let mut deadline = std::time::Instant::now() + READY;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(ev) = conn.recv_timeout(left) else { break };
        match ev {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                edge = start.take().map(|f| f());
                deadline = std::time::Instant::now() + window;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let batch: serde_json::Value = serde_json::from_slice(&p.payload).expect("batch is JSON");
                records.extend(batch["records"].as_array().cloned().unwrap_or_default());
            }
            Ok(_) => {}
            Err(e) => panic!("test subscriber lost the broker: {e}"),
        }
    }
    (records, edge.expect("the edge started"))
}

/// RS-485 multi-drop: a machine (unit 1) and its dryer (unit 2), both answered by one pymodbus
/// server on one line, and a scale on the same line that never answers (unit 9). The edge opens
/// the port once for all three; the live devices keep their pace while the dead one times out.
#[test]
fn pymodbus_rtu_multi_drop_shares_one_line_and_a_dead_unit_starves_no_one() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let (b, _line) = rtu_line(dir, "1,2");
    let serial = format!("[devices.serial]\npath = \"{}\"\nbaud = 19200\nparity = \"none\"", b.display());
    let device = |id: &str, role: &str, unit: u8| {
        format!(
            "id = \"{id}\"\nrole = \"{role}\"\nmachine_id = \"m1\"\nprotocol = \"modbus-rtu\"\nunit_id = {unit}\n\
             poll_interval_ms = 100\ntimeout_ms = 300\n{serial}"
        )
    };
    let devices = [
        device("m1", "machine", 1),
        device("m1-dryer", "peripheral", 2),
        device("m1-scale", "peripheral", 9),
    ];
    let cfg = edge_config_of(dir, broker.port, &devices.iter().map(String::as_str).collect::<Vec<_>>());
    let window = Duration::from_secs(8);
    let (records, edge) = records_within(broker.port, window, || start_edge(dir, &cfg));
    let of = |device: &str| records.iter().filter(|r| r["device_id"] == device).collect::<Vec<_>>();
    let shot =
        of("m1").into_iter().find(|r| r["kind"] == "shot").expect("the machine's shot over the shared line");
    check_values(shot);
    let dryer = of("m1-dryer");
    assert!(dryer.first().is_some_and(|r| r["values"]["f_abcd"] == f64::from(123.456f32)), "{dryer:?}");
    // Polled every 100 ms for 8 s: about 80 samples. Had the dead unit's 300 ms timeouts taken
    // the line at every cycle (no back-off, no turns), at most 8 s / 0.4 s = 20 would come.
    assert!(dryer.len() >= 30, "the dryer was starved: {} samples in {window:?}", dryer.len());
    eprintln!("multi-drop: {} dryer samples in {window:?} beside a dead unit", dryer.len());
    assert!(of("m1-scale").is_empty(), "nothing answers unit 9");
    let log = edge.stderr_tail();
    assert!(log.contains("m1-scale") && log.contains("timeout"), "the dead unit is reported:\n{log}");
    assert!(!log.contains("Device or resource busy") && !log.contains("already open"), "one open:\n{log}");
}
