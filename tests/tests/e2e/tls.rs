//! TLS end to end: a Mosquitto listener that only speaks TLS (certificates made here with
//! openssl), the edge and the ingest each configured with the CA file, and a shot that goes
//! through to the lake. A client without the CA is refused.

use crate::common::*;
use moldops_tests::{Mosquitto, Proc, asset, bin, free_port, python, wait_until};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs openssl in `dir` with a config that needs no prompts.
pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .env("OPENSSL_CONF", dir.join("openssl.cnf"))
        .current_dir(dir)
        .output();
    let st = st.expect("openssl");
    assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
}

/// A throw-away CA and a server certificate for 127.0.0.1, made in `dir`.
pub(crate) fn make_certs(dir: &Path) {
    let cnf = "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=moldops-test\n";
    std::fs::write(dir.join("openssl.cnf"), cnf).expect("openssl.cnf");
    let ext = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("ext.cnf"), ext).expect("ext.cnf");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days",
            "2",
        ],
    );
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"]);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A client certificate `{name}.pem` / `{name}.key` with common name `name`, signed by the CA
/// [`make_certs`] made in `dir`.
pub(crate) fn client_cert(dir: &Path, name: &str) {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").expect("ext");
    let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
    let subject = format!("/CN={name}");
    openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
    let ext = ext.display().to_string();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

#[test]
fn shots_reach_the_lake_over_tls() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    make_certs(dir);
    let broker =
        Mosquitto::start_tls(dir, &dir.join("ca.pem"), &dir.join("server.pem"), &dir.join("server.key"));

    let lake = dir.join("lake");
    std::fs::write(
        dir.join("cloud.toml"),
        format!(
            "[broker]\nhost = \"127.0.0.1\"\nport = {}\n[broker.tls]\nca_file = \"ca.pem\"\n[lake]\npath = \"{}\"\n",
            broker.port,
            lake.display()
        ),
    )
    .expect("cloud.toml");
    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.arg("ingest").arg("--config").arg(dir.join("cloud.toml"));
    let mut ingest = Proc::spawn("ingest-tls", &mut cmd, dir);
    ingest.wait_line(READY, |l| l.contains("\"subscribed\""));

    let port = free_port();
    let mut peer_cmd = Command::new(python());
    peer_cmd.arg(asset("peers/modbus_peer.py")).args(["tcp", &port.to_string()]);
    let _peer = Proc::spawn("pymodbus-tcp", &mut peer_cmd, dir);
    assert!(wait_until(READY, || moldops_tests::port_open(port)), "pymodbus did not listen");
    let edge_cfg = dir.join("edge.toml");
    std::fs::write(
        &edge_cfg,
        format!(
            "site = \"t\"\nedge_id = \"tls-edge\"\n[broker]\nhost = \"127.0.0.1\"\nport = {}\n[broker.tls]\nca_file = \"ca.pem\"\n\
             [buffer]\npath = \"buf\"\n[api]\nlisten = \"\"\n[[devices]]\nid = \"m1\"\nrole = \"machine\"\nprotocol = \"modbus-tcp\"\n\
             address = \"127.0.0.1:{port}\"\npoll_interval_ms = 100\n[devices.profile]\nname = \"p\"\nshot_counter = \"c\"\n\
             [[devices.profile.tags]]\nname = \"c\"\naddress = 0\ntype = \"u32\"\n[[devices.profile.tags]]\nname = \"v\"\naddress = 10\ntype = \"f32\"\n",
            broker.port
        ),
    )
    .expect("edge.toml");
    let edge = start_edge(dir, &edge_cfg);
    let arrived = wait_until(Duration::from_secs(60), || lake_shots(&lake) == vec![("m1".to_string(), 7)]);
    assert!(arrived, "no shot over TLS\n{}\n{}", edge.stderr_tail(), ingest.stderr_tail());

    // Without the CA the broker's certificate is not trusted: the edge says so and keeps the data.
    let untrusted = dir.join("untrusted");
    std::fs::create_dir_all(&untrusted).expect("dir");
    let text = std::fs::read_to_string(&edge_cfg)
        .expect("read")
        .replace("ca_file = \"ca.pem\"", "ca_file = \"../server.pem\"");
    std::fs::write(
        untrusted.join("edge.toml"),
        text.replace("edge_id = \"tls-edge\"", "edge_id = \"untrusted\""),
    )
    .expect("write");
    let other = start_edge(&untrusted, &untrusted.join("edge.toml"));
    let refused =
        wait_until(Duration::from_secs(30), || other.stderr_tail().contains("broker connection lost"));
    assert!(refused, "{}", other.stderr_tail());
}
