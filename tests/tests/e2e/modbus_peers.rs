//! The edge against an independent Modbus implementation (pymodbus) serving floats in both
//! word orders, over TCP and over RTU through a socat pty pair. What the edge publishes is
//! read back by a plain MQTT client and parsed as generic JSON, as any consumer would.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, free_port, python, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::process::Command;

const PROFILE: &str = r#"
[devices.profile]
name = "pymodbus-peer"
shot_counter = "counter"
mold_code = "mold"
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
"#;

fn edge_config(dir: &Path, broker: u16, device: &str) -> std::path::PathBuf {
    let text = format!(
        "site = \"test\"\nedge_id = \"peer-edge\"\n[broker]\nhost = \"127.0.0.1\"\nport = {broker}\n\
         [buffer]\npath = \"buffer\"\n[api]\nlisten = \"\"\n[uplink]\ndelete_after = \"puback\"\n[[devices]]\n{device}\n{PROFILE}"
    );
    let p = dir.join("edge.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// Subscribes to every data topic and returns the first shot record as generic JSON (the
/// edge's own records, such as its health snapshot at start, are passed over).
fn first_record(port: u16, start: impl FnOnce() -> Proc) -> (serde_json::Value, Proc) {
    let mut opts = MqttOptions::new("peer-test-sub", "127.0.0.1", port);
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut conn) = Client::new(opts, 10);
    client.subscribe("moldops/v1/+/+/data", QoS::AtLeastOnce).expect("subscribe");
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
    assert_eq!(rec["mold"], "MOLD-X");
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
    let (a, b) = (dir.join("ttyA"), dir.join("ttyB"));
    let mut socat = Command::new("socat");
    socat
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()));
    let _socat = Proc::spawn("socat", &mut socat, dir);
    assert!(wait_until(READY, || a.exists() && b.exists()), "socat made no pty pair");
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/modbus_peer.py")).arg("rtu").arg(&a).args(["19200", "N"]);
    let mut peer = Proc::spawn("pymodbus-rtu", &mut cmd, dir);
    peer.wait_line(READY, |l| l.contains("READY"));
    let device = format!(
        "id = \"m1\"\nrole = \"machine\"\nprotocol = \"modbus-rtu\"\npoll_interval_ms = 200\ntimeout_ms = 1000\n\
         [devices.serial]\npath = \"{}\"\nbaud = 19200\nparity = \"none\"",
        b.display()
    );
    let cfg = edge_config(dir, broker.port, &device);
    let (rec, _edge) = first_record(broker.port, || start_edge(dir, &cfg));
    check_values(&rec);
}
