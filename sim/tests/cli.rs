//! The `moldops-sim` binary refuses impossible plants with every problem named.

use std::process::Command;

#[test]
fn impossible_flags_are_refused_with_reasons() {
    let out = Command::new(env!("CARGO_BIN_EXE_moldops-sim"))
        .args(["--machines", "1", "--opcua-machines", "2", "--speed", "0"])
        .output()
        .expect("run moldops-sim");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--opcua-machines 2 exceeds --machines 1"), "{stderr}");
    assert!(stderr.contains("--speed 0 must be a positive number"), "every problem at once: {stderr}");
}
