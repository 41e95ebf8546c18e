//! Faults a plant will produce: a config with many mistakes, a device that is not there, and
//! garbage on the data topic. Each gives a clear message, and nothing crashes.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, bin, free_port, python, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::process::Command;
use std::time::Duration;

#[test]
fn bad_config_lists_every_problem_at_once() {
    let tmp = moldops_tests::test_dir();
    let cfg = tmp.path().join("edge.toml");
    std::fs::write(
        &cfg,
        r#"
site = "plant/a"
edge_id = ""
[broker]
host = "127.0.0.1"
[[devices]]
id = "m1"
role = "machine"
protocol = "modbus-tcp"
[devices.profile]
name = "p"
shot_counter = "missing"
[[devices.profile.tags]]
name = "x"
address = 65535
type = "f32"
[[devices]]
id = "m1"
role = "peripheral"
protocol = "modbus-rtu"
profile_file = "nowhere.toml"
"#,
    )
    .expect("write");
    let check = || Command::new(bin("moldops-edge")).arg("check-config").arg("--config").arg(&cfg).output();
    let out = check().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in
        ["site", "edge_id", "address", "missing", "65535", "defined twice", "serial", "nowhere.toml"]
    {
        assert!(err.contains(needle), "message names {needle:?}:\n{err}");
    }
    // `run` refuses the same config with the same list and does not start.
    let out = Command::new(bin("moldops-edge")).arg("run").arg("--config").arg(&cfg).output().expect("run");
    assert_eq!(out.status.code(), Some(2));

    std::fs::write(&cfg, "site = \"a\"\nedge_id = [oops\n").expect("write");
    let out = check().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("edge.toml") && err.contains("line 2"), "points at the line:\n{err}");
}

#[test]
fn unreachable_device_does_not_stop_the_others() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let port = free_port();
    let dead = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(asset("peers/modbus_peer.py")).args(["tcp", &port.to_string()]);
    let _peer = Proc::spawn("pymodbus-tcp", &mut cmd, dir);
    assert!(wait_until(READY, || moldops_tests::port_open(port)), "pymodbus did not listen");
    let api = free_port();
    let profile = "[devices.profile]\nname = \"p\"\nshot_counter = \"c\"\n[[devices.profile.tags]]\nname = \"c\"\naddress = 0\ntype = \"u32\"\n[[devices.profile.tags]]\nname = \"v\"\naddress = 10\ntype = \"f32\"\n";
    let text = format!(
        "site = \"t\"\nedge_id = \"e\"\n[broker]\nhost = \"127.0.0.1\"\nport = {}\n[buffer]\npath = \"buf\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n[uplink]\ndelete_after = \"puback\"\n\
         [[devices]]\nid = \"dead\"\nrole = \"machine\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:{dead}\"\npoll_interval_ms = 100\ntimeout_ms = 300\n{profile}\
         [[devices]]\nid = \"alive\"\nrole = \"machine\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:{port}\"\npoll_interval_ms = 100\n{profile}",
        broker.port
    );
    let cfg = dir.join("edge.toml");
    std::fs::write(&cfg, text).expect("write");
    // Logs as a collector takes them: one JSON object per line.
    let mut cmd = Command::new(bin("moldops-edge"));
    cmd.arg("run").arg("--config").arg(&cfg).env("MOLDOPS_LOG_FORMAT", "json");
    let mut edge = Proc::spawn("edge", &mut cmd, dir);
    let status = || -> Option<serde_json::Value> {
        let body = http_get(api, "/status")?;
        serde_json::from_str(&body).ok()
    };
    let ok = wait_until(Duration::from_secs(60), || {
        status().is_some_and(|s| {
            s["devices"]["alive"]["shots"].as_u64() == Some(1)
                && s["devices"]["dead"]["errors"].as_u64().unwrap_or(0) >= 2
                && s["mqtt"]["records_sent"].as_u64().is_some_and(|n| n >= 2) // the shot and a health snapshot
        })
    });
    let s = status().unwrap_or_default();
    assert!(ok, "status: {s:#}\n{}", edge.stderr_tail());
    assert_eq!(s["devices"]["dead"]["connected"], false);
    let why = s["devices"]["dead"]["last_error"].as_str().unwrap_or_default();
    assert!(why.contains(&dead.to_string()), "error names the device address: {why}");
    let metrics = http_get(api, "/metrics").unwrap_or_default();
    assert!(metrics.contains("moldops_poll_errors_total{device=\"dead\"}"), "{metrics}");
    assert!(metrics.contains("moldops_device_up{device=\"alive\"} 1"), "{metrics}");
    assert!(metrics.contains("# TYPE moldops_buffer_dropped_records counter"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text: {metrics}");
    assert!(edge.wait_exit(Duration::from_millis(10)).is_none(), "edge is still running");
    let log = edge.stderr_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}")))
        .collect();
    let failed =
        lines.iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("poll failed")));
    let failed = failed.unwrap_or_else(|| panic!("the log says why: {log}"));
    assert_eq!(failed["level"], "WARN", "{failed}");
}

#[test]
fn malformed_payloads_are_quarantined_and_ingest_goes_on() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let mut ingest = start_ingest(dir, broker.port, &lake);
    let (client, mut conn) = Client::new(MqttOptions::new("garbage-pub", "127.0.0.1", broker.port), 10);
    let topic = "moldops/v1/t/e1/data";
    let good = r#"{"schema":1,"site":"t","edge_id":"e1","first_seq":1,"last_seq":2,"sent_at_ms":0,"records":[
        {"seq":1,"kind":"shot","machine_id":"m1","device_id":"m1","ts_ms":1767600000000,"shot_number":5,"mold":"A","values":{"Cycle_Time":61.0}},
        {"seq":2,"kind":"shot","machine_id":"m1","device_id":"m1","ts_ms":1767600061000,"shot_number":6,"mold":"A","values":{"Cycle_Time":62.0}}]}"#;
    let wrong_schema = good.replace("\"schema\":1", "\"schema\":99");
    let wrong_edge = good.replace("\"edge_id\":\"e1\"", "\"edge_id\":\"intruder\"");
    for payload in [
        b"not json at all".to_vec(),
        wrong_schema.into_bytes(),
        wrong_edge.into_bytes(),
        good.as_bytes().to_vec(),
    ] {
        client.publish(topic, QoS::AtLeastOnce, false, payload).expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            acked += 1;
            if acked == 4 {
                break;
            }
        }
    }
    let quarantined = || {
        walk(&lake.join("quarantine"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
    };
    let done =
        wait_until(Duration::from_secs(60), || lake_rows(&lake, "raw_data") == 2 && quarantined() == 3);
    assert!(
        done,
        "rows {} quarantined {}\n{}",
        lake_rows(&lake, "raw_data"),
        quarantined(),
        ingest.stderr_tail()
    );
    let reasons: String =
        walk(&lake.join("quarantine")).iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect();
    assert!(reasons.contains("schema"), "reason recorded: {reasons}");
    assert!(ingest.wait_exit(Duration::from_millis(10)).is_none(), "ingest is still running");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// Minimal HTTP/1.1 GET on loopback.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// The shipped example config stays valid (with its certificate files present).
#[test]
fn the_example_edge_config_is_valid() {
    let tmp = moldops_tests::test_dir();
    let edge = tmp.path().join("edge");
    std::fs::create_dir_all(edge.join("certs")).expect("dir");
    for f in ["ca.pem", "hall1-edge01.pem", "hall1-edge01.key"] {
        std::fs::write(edge.join("certs").join(f), "placeholder").expect("cert");
    }
    // The broker password sits in a file only its owner may read.
    let pass = edge.join("secrets/mqtt.pass");
    std::fs::create_dir_all(edge.join("secrets")).expect("dir");
    std::fs::write(&pass, "change-me\n").expect("password");
    let chmod = |mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(0o644);
    let cfg = edge.join("edge.toml");
    std::fs::copy(asset("../deploy/edge/edge.example.toml"), &cfg).expect("example");
    let check = || {
        Command::new(bin("moldops-edge")).arg("check-config").arg("--config").arg(&cfg).output().expect("run")
    };
    let out = check();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        !out.status.success() && text.contains("broker.password_file"),
        "a world-readable password file is refused: {text}"
    );
    chmod(0o600);
    let profiles = tmp.path().join("profiles");
    std::fs::create_dir_all(&profiles).expect("dir");
    for p in ["moldops-sim-machine.toml", "moldops-sim-dryer.toml"] {
        std::fs::copy(asset(&format!("../deploy/profiles/{p}")), profiles.join(p)).expect("profile");
    }
    let out = check();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("hours of broker outage"), "{text}");
}

/// The poison list of a real plant, through Mosquitto: nothing stops the ingest, each bad
/// record is quarantined alone with its reason, the good records beside it are committed.
#[test]
fn poison_records_are_quarantined_alone_and_their_neighbours_land() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let lake = dir.join("lake");
    let broker = Mosquitto::start(dir);
    let mut ingest = start_ingest(dir, broker.port, &lake);
    let mut opts = MqttOptions::new("poison-pub", "127.0.0.1", broker.port);
    opts.set_max_packet_size(32 << 20, 32 << 20);
    let (client, mut conn) = Client::new(opts, 10);
    let rec = |seq: u64, machine: &str, value: &str| {
        format!(
            r#"{{"seq":{seq},"kind":"shot","machine_id":{},"device_id":"d","ts_ms":1767600000000,"shot_number":{seq},"values":{{"Cycle_Time":{value}}}}}"#,
            serde_json::Value::from(machine)
        )
    };
    let korean_ok = "사출성형기제어장치".repeat(3); // 81 bytes: fine, and 243 bytes escaped
    let korean_long = "가".repeat(50); // 150 bytes: over the limit
    let records = [
        rec(1, "m1", "61.0"),
        rec(2, &korean_long, "61.0"),
        rec(3, &korean_ok, "61.0"),
        rec(4, "m/1+#", "61.0"),
        rec(5, "m1", "null"),
        rec(6, "m1", "62.0"),
    ];
    let batch = format!(
        r#"{{"schema":1,"site":"t","edge_id":"e1","first_seq":1,"last_seq":6,"sent_at_ms":0,"records":[{}]}}"#,
        records.join(",")
    );
    let truncated = batch.as_bytes()[..batch.len() / 2].to_vec();
    // Another site whose edge has the same id: its records are its own, not duplicates.
    let other_site = batch.replace(r#""site":"t""#, r#""site":"t2""#);
    let huge = vec![b'{'; 10 << 20];
    let edge_topic = "moldops/v1/t/공장-에지/data";
    let korean_edge = format!(
        r#"{{"schema":1,"site":"t","edge_id":"공장-에지","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[{}]}}"#,
        rec(1, "m2", "60.0")
    );
    let sends: Vec<(&str, Vec<u8>)> = vec![
        ("moldops/v1/t/e1/data", batch.into_bytes()),
        ("moldops/v1/t2/e1/data", other_site.into_bytes()),
        ("moldops/v1/t/e1/data", truncated),
        ("moldops/v1/t/e1/data", huge),
        (edge_topic, korean_edge.into_bytes()),
    ];
    let n = sends.len();
    for (topic, payload) in sends {
        client.publish(topic, QoS::AtLeastOnce, false, payload).expect("publish");
    }
    let mut acked = 0;
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            acked += 1;
            if acked == n {
                break;
            }
        }
    }
    let entries = || -> Vec<serde_json::Value> {
        walk(&lake.join("quarantine"))
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    };
    let done =
        wait_until(Duration::from_secs(60), || lake_rows(&lake, "raw_data") == 9 && entries().len() == 6);
    assert!(
        done,
        "rows {} quarantined {:?}\n{}",
        lake_rows(&lake, "raw_data"),
        entries(),
        ingest.stderr_tail()
    );
    let reasons: Vec<String> =
        entries().iter().map(|e| e["reason"].as_str().unwrap_or("").to_string()).collect();
    let has = |needle: &str| reasons.iter().any(|r| r.contains(needle));
    assert!(has("(seq 2): machine_id is 150 bytes"), "{reasons:?}");
    assert!(has("(seq 5): not a valid record"), "{reasons:?}");
    assert!(has("not a valid batch"), "truncated JSON: {reasons:?}");
    assert!(has("payload is 10485760 bytes"), "10 MB payload: {reasons:?}");
    let raw = moldops_cloud::lake::read_dataset(&lake, "raw_data").expect("raw");
    let machines: Vec<String> =
        raw.column("machine_id").expect("m").str().expect("s").iter().flatten().map(String::from).collect();
    for m in ["m1", "m/1+#", korean_ok.as_str(), "m2"] {
        assert!(machines.iter().any(|x| x == m), "{m} landed: {machines:?}");
    }
    let sites: Vec<String> =
        raw.column("site").expect("site").str().expect("s").iter().flatten().map(String::from).collect();
    assert_eq!(sites.iter().filter(|s| *s == "t2").count(), 4, "the other site's edge-01 landed too");
    assert!(ingest.wait_exit(Duration::from_millis(10)).is_none(), "ingest is still running");
}
