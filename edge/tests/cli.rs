//! The `moldops-edge` binary as an operator meets it: the config checker reports every problem
//! with exit code 2, and the daemon carries no simulator.

use std::process::Command;

fn edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_moldops-edge"))
}

#[test]
fn check_config_lists_every_problem_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("edge.toml");
    std::fs::write(&cfg, "site = \"s\"\nedge_id = \"e/1\"\n[broker]\nhost = \" \"\nport = 0\n")
        .expect("write");
    let out = edge().args(["check-config", "--config"]).arg(&cfg).output().expect("run moldops-edge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in ["problem(s) in the configuration", "broker.host", "broker.port", "edge_id"] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn the_daemon_has_no_simulator() {
    let out = edge().arg("--help").output().expect("run moldops-edge");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && help.contains("check-config"), "{help}");
    assert!(!help.contains("simulate"), "the simulator is moldops-sim now:\n{help}");
}
