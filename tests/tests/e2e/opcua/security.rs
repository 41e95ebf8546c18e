//! Secured OPC UA sessions against asyncua offering only Basic256Sha256 (Sign and
//! SignAndEncrypt) with certificates made here by openssl: the edge connects with its own
//! application certificate in either mode; a device without security gets no session; and
//! an untrusted server certificate is refused, reported, and accepted once an operator moves
//! it from the PKI's `rejected/` to its `trusted/` folder.

use super::{NUMERIC_MAP, edge_config, start_peer, status, ua_device, write};
use crate::common::*;
use moldops_tests::{Mosquitto, free_port, wait_until};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A self-signed application certificate for `urn:moldops:{who}`: `{who}.der` and its key
/// `{who}-key.pem` (asyncua reads a key as PEM by its extension).
fn application_cert(dir: &Path, who: &str) {
    let uri = format!("subjectAltName=URI:urn:moldops:{who},DNS:localhost,IP:127.0.0.1");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-keyout", &format!("{who}-key.pem"), "-out", &format!("{who}.pem")])
        .args(["-subj", &format!("/CN=moldops-{who}"), "-addext", &uri])
        .args([
            "-addext",
            "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth,clientAuth", "-addext", "basicConstraints=CA:FALSE"])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("openssl")
        .args(["x509", "-in", &format!("{who}.pem"), "-outform", "der", "-out", &format!("{who}.der")])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl x509: {}", String::from_utf8_lossy(&out.stderr));
}

fn last_error(st: &Value, device: &str) -> String {
    st["devices"][device]["last_error"].as_str().unwrap_or_default().to_string()
}

fn shots(st: &Value, device: &str) -> u64 {
    st["devices"][device]["shots"].as_u64().unwrap_or(0)
}

#[test]
fn sign_and_sign_and_encrypt_sessions_with_certificates_and_a_trust_decision() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    application_cert(dir, "peer");
    application_cert(dir, "edge");
    let broker = Mosquitto::start(dir);
    let (port, api) = (free_port(), free_port());
    let map = write(dir, "numeric.toml", NUMERIC_MAP);
    let secure = format!("{}:{}", dir.join("peer.der").display(), dir.join("peer-key.pem").display());
    let args = ["--shots", "400", "--every", "0.3", "--wait-client", "--secure", &secure];
    let _peer = start_peer(dir, "asyncua-secure", port, &[&map], &args);

    let own = "certificate_file = \"edge.der\"\nprivate_key_file = \"edge-key.pem\"\n";
    let secured = |mode: &str, pki: &str, trust: bool| {
        format!(
            "security_policy = \"basic256sha256\"\nsecurity_mode = \"{mode}\"\n{own}pki_dir = \"{pki}\"\n\
             trust_server_certs = {trust}\nprofile_file = {map:?}"
        )
    };
    let devices = [
        ua_device("m-sign", "machine", port, 100, &secured("sign", "pki-sign", true)),
        ua_device("m-encrypt", "machine", port, 100, &secured("sign_and_encrypt", "pki-encrypt", true)),
        ua_device("m-untrusted", "machine", port, 100, &secured("sign_and_encrypt", "pki-untrusted", false)),
        ua_device("m-none", "machine", port, 100, &format!("profile_file = {map:?}")),
    ];
    let edge = start_edge(dir, &edge_config(dir, broker.port, api, &devices.concat()));

    // Both secured modes make shots; no security gets nothing; the untrusted server is refused.
    let settled = wait_until(READY, || {
        let st = status(api);
        shots(&st, "m-sign") >= 2
            && shots(&st, "m-encrypt") >= 2
            && !last_error(&st, "m-none").is_empty()
            && !last_error(&st, "m-untrusted").is_empty()
    });
    let st = status(api);
    assert!(settled, "{st:#}\n{}", edge.stderr_tail());
    assert_eq!(shots(&st, "m-none"), 0, "a session without security was refused");
    assert_eq!(shots(&st, "m-untrusted"), 0, "an untrusted server certificate was refused");
    let untrusted = last_error(&st, "m-untrusted");
    assert!(untrusted.contains("trusted"), "the reason names the trust decision: {untrusted}");

    // The operator trusts the server: its certificate moves from rejected/ to trusted/.
    let rejected = dir.join("pki-untrusted/rejected");
    let found = wait_until(READY, || std::fs::read_dir(&rejected).is_ok_and(|mut d| d.next().is_some()));
    assert!(found, "the refused server certificate is kept in {}", rejected.display());
    let trusted = dir.join("pki-untrusted/trusted");
    std::fs::create_dir_all(&trusted).expect("trusted/");
    for entry in std::fs::read_dir(&rejected).expect("rejected/").flatten() {
        std::fs::rename(entry.path(), trusted.join(entry.file_name())).expect("move to trusted/");
    }
    let connected = wait_until(READY, || shots(&status(api), "m-untrusted") >= 2);
    assert!(connected, "trusted now: {:#}\n{}", status(api), edge.stderr_tail());
    eprintln!("OPC UA security: untrusted server: {untrusted}; no security: {}", last_error(&st, "m-none"));
}
