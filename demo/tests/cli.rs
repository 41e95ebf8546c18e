//! The `moldops-demo` binary carries the cloud's verbs (its learning pipeline runs tasks as
//! child processes of itself) beside the demo.

use std::process::Command;

fn demo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_moldops-demo"))
}

#[test]
fn help_lists_the_demo_and_every_cloud_verb() {
    let out = demo().arg("--help").output().expect("run moldops-demo");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for verb in ["demo", "ingest", "etl", "train", "pipeline", "score", "lake"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(verb)), "no {verb} in:\n{help}");
    }
}

#[test]
fn a_cloud_verb_runs_in_the_demo_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = demo().args(["lake", "summary", "--json", "--lake"]).arg(dir.path()).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("summary JSON");
    assert!(summary.is_object(), "{summary}");
}
