//! The shipped broker security against a real Mosquitto: mutual TLS with the shipped
//! listener settings (no certificate, no connection; the certificate's name is the account)
//! and the shipped per-edge ACL. An edge cannot publish as another edge, read another edge's
//! desired state, write desired states or forge commit acks.

use crate::tls::{client_cert, make_certs};
use moldops_tests::{Mosquitto, asset};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The shipped listener lines that decide who may connect and as whom.
fn shipped_listener_settings() -> String {
    let text = std::fs::read_to_string(asset("../deploy/mosquitto/mosquitto.conf")).expect("mosquitto.conf");
    let keep = ["require_certificate", "use_identity_as_username", "allow_anonymous", "tls_version"];
    let lines: Vec<&str> = text.lines().filter(|l| keep.iter().any(|k| l.starts_with(k))).collect();
    assert!(
        lines.contains(&"require_certificate true") && lines.contains(&"use_identity_as_username true"),
        "the shipped broker requires client certificates: {lines:?}"
    );
    lines.join("\n") + "\n"
}

/// Arguments that connect a client as `who` (no certificate when `None`).
fn conn(dir: &Path, port: u16, who: Option<&str>) -> Vec<String> {
    let mut a = vec!["-h".into(), "127.0.0.1".into(), "-p".into(), port.to_string(), "--cafile".into()];
    a.push(dir.join("ca.pem").display().to_string());
    if let Some(who) = who {
        a.extend(["--cert".into(), dir.join(format!("{who}.pem")).display().to_string()]);
        a.extend(["--key".into(), dir.join(format!("{who}.key")).display().to_string()]);
    }
    a
}

/// Publishes one QoS 1 message; true when the broker took the connection.
fn publish(dir: &Path, port: u16, who: Option<&str>, topic: &str, msg: &str, retain: bool) -> bool {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(conn(dir, port, who)).args(["-q", "1", "-t", topic, "-m", msg]);
    if retain {
        cmd.arg("-r");
    }
    cmd.output().expect("mosquitto_pub").status.success()
}

/// A subscriber as `who` printing `topic payload` lines for `secs` seconds (or until `count`
/// messages), returned once the broker has acknowledged its subscription.
struct Subscriber {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn subscribe(dir: &Path, port: u16, who: &str, topic: &str, secs: u32, count: Option<u32>) -> Subscriber {
    // Line-buffered, so that its SUBACK line arrives while it runs, not when it exits.
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-oL", "mosquitto_sub"]).args(conn(dir, port, Some(who))).args([
        "-d",
        "-q",
        "1",
        "-v",
        "-t",
        topic,
        "-W",
        &secs.to_string(),
    ]);
    if let Some(n) = count {
        cmd.args(["-C", &n.to_string()]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("mosquitto_sub");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let subscribed = lines.iter().any(|l| l.contains("received SUBACK"));
    assert!(subscribed, "{who} never got its SUBACK");
    Subscriber { child, lines }
}

/// Everything the subscriber printed until its time ran out.
fn received(mut s: Subscriber) -> String {
    let _ = s.child.wait();
    s.lines.iter().collect::<Vec<_>>().join("\n")
}

#[test]
fn the_shipped_acl_keeps_each_edge_to_its_own_topics() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    make_certs(dir);
    for who in ["edge-a", "edge-b", "moldops-ingest", "moldops-rollout"] {
        client_cert(dir, who);
    }
    std::fs::copy(asset("../deploy/mosquitto/acl"), dir.join("acl")).expect("acl");
    let extra = format!(
        "cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n{}acl_file {d}/acl\n",
        shipped_listener_settings(),
        d = dir.display()
    );
    let broker = Mosquitto::start_with(dir, &extra);
    let port = broker.port;
    let site = "moldops/v1/plant-a";

    // No certificate: no connection.
    assert!(
        !publish(dir, port, None, &format!("{site}/edge-a/data"), "x", false),
        "anonymous client admitted"
    );

    // The rollout manager writes each edge's desired state; an edge reads its own only.
    for edge in ["edge-a", "edge-b"] {
        assert!(publish(
            dir,
            port,
            Some("moldops-rollout"),
            &format!("{site}/{edge}/model/desired"),
            &format!("{edge}-desired"),
            true
        ));
    }
    // An edge's own write to its desired state is dropped by the broker.
    publish(dir, port, Some("edge-a"), &format!("{site}/edge-a/model/desired"), "forged-desired", true);
    publish(dir, port, Some("edge-a"), &format!("{site}/edge-a/ack"), "forged-ack", true);
    let seen = received(subscribe(dir, port, "edge-a", &format!("{site}/+/model/desired"), 4, None));
    assert!(seen.contains("edge-a-desired"), "an edge reads its own desired state: {seen:?}");
    assert!(!seen.contains("edge-b-desired"), "an edge read another edge's desired state: {seen:?}");
    assert!(!seen.contains("forged-desired"), "an edge wrote a desired state: {seen:?}");
    let acks = received(subscribe(dir, port, "edge-a", &format!("{site}/edge-a/ack"), 2, None));
    assert!(!acks.contains("forged-ack"), "an edge forged a commit ack: {acks:?}");

    // The ingest sees an edge's own data, never data it publishes under another edge's name.
    // The forged message goes first: had the broker passed it on, it would be the one received.
    let ingest = subscribe(dir, port, "moldops-ingest", "moldops/v1/+/+/data", 20, Some(1));
    publish(dir, port, Some("edge-a"), &format!("{site}/edge-b/data"), "forged-data", false);
    assert!(publish(dir, port, Some("edge-a"), &format!("{site}/edge-a/data"), "own-data", false));
    let data = received(ingest);
    assert!(data.contains("edge-a/data own-data"), "the ingest gets an edge's own data: {data:?}");
    assert!(!data.contains("forged-data"), "an edge published as another edge: {data:?}");

    // The ingest also reads the edges' retained reported model state (into edge_events).
    assert!(publish(dir, port, Some("edge-a"), &format!("{site}/edge-a/model/reported"), "own-report", true));
    let reports = received(subscribe(dir, port, "moldops-ingest", "moldops/v1/+/+/model/reported", 4, None));
    assert!(reports.contains("own-report"), "the ingest reads an edge's reported state: {reports:?}");
    // And what the manager asked of each edge (the console's rollouts page), but cannot write it.
    publish(
        dir,
        port,
        Some("moldops-ingest"),
        &format!("{site}/edge-a/model/desired"),
        "ingest-desired",
        true,
    );
    let desired = received(subscribe(dir, port, "moldops-ingest", "moldops/v1/+/+/model/desired", 4, None));
    assert!(desired.contains("edge-b-desired"), "the ingest reads the desired states: {desired:?}");
    assert!(!desired.contains("ingest-desired"), "the ingest wrote a desired state: {desired:?}");
    drop(broker);
}
