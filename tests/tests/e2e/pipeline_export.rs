//! `pipeline export` checked by the real tools: Airflow itself imports the exported DAGs (the
//! built-in learning DAG, the cluster's `deploy/k8s/base/pipeline.toml` and a hostile
//! definition) and builds each task's pod, which must be the Kubernetes executor's pod; hera's
//! models of Argo's API and `kubernetes-validate` accept the Argo manifests, which must hold the
//! same pods. Also: `moldops-cloud` skips a task whose `MOLDOPS_SKIP_UNLESS_EXISTS` is absent.

use moldops_cloud::pipeline::PipelineDef;
use moldops_cloud::pipeline::jobspec::{self, LABEL_RUN, PodInput};
use moldops_tests::{asset, bin, python, test_dir};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const RUN_ID: &str = "manual__2026-01-04T03:00:00+00:00";
const TRY_NUMBER: &str = "3";

/// A definition with text Airflow's Jinja or Python quoting would change if not escaped;
/// `jinja`: also `{{ … }}`, `{% … %}` and `{# … #}` (which Argo cannot take).
fn hostile(jinja: bool) -> String {
    let tricky =
        if jinja { r#""{{ dag_id }}", "{% if x %}y{% endif %}", "{# c #}", "{{{run_id}}}","# } else { "" };
    format!(
        r#"name = "hostile"
max_parallel = 3
[vars]
q = "it's \"quoted\" \\ back\\slash"
[defaults]
retries = 3
backoff_s = 5.0
backoff_factor = 3.0
backoff_max_s = 100.0
[kubernetes]
namespace = "plant"
image = "registry.example/moldops:1"
gpu_image = "registry.example/moldops-gpu:1"
image_pull_policy = "Always"
image_pull_secrets = ["regcred"]
env = {{ SHARED = "x'y\"z" }}
labels = {{ team = "ml" }}
[kubernetes.gpu_placement]
node_selector = {{ pool = "gpu" }}
tolerations = [{{ key = "nvidia.com/gpu", operator = "Equal", value = "yes", effect = "NoSchedule" }}]
[[task]]
name = "first"
args = ["{{q}}", "line\nbreak", "ends with newline\n", "crlf\r\nx", "tab\tx", "ümlaut €", "'''", '"""', {tricky} "--run={{run_id}}/out", "{{}}", "${{HOME}}"]
env = {{ ODD = "{{q}}\n", RUN_COPY = "{{run_id}}" }}
when_exists = "/data/in box/{{run_id}}.flag"
secrets = [{{ secret = "envsecret" }}, {{ secret = "filesecret", mount = "/etc/s", env = {{ S = "/etc/s/key" }} }}]
resources = {{ cpu = "250m", memory = "1Gi", cpu_limit = "1", memory_limit = "2Gi" }}
[[task]]
name = "gpu-task"
deps = ["first"]
args = ["train"]
gpu = true
retries = 0
backoff_s = 7.5
timeout_s = 120
resources = {{ gpus = 2 }}
[[task]]
name = "last"
deps = ["first", "gpu-task"]
program = "/bin/echo"
args = ["done"]
"#
    )
}

/// Runs `moldops-cloud pipeline export` with `args`; its output.
fn export(args: &[&str]) -> std::process::Output {
    Command::new(bin("moldops-cloud"))
        .args(["pipeline", "export"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run moldops-cloud pipeline export")
}

fn export_ok(args: &[&str]) {
    let out = export(args);
    assert!(out.status.success(), "export {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The definition with the run id `run_id` substituted, as `pipeline run` resolves it.
fn resolved(config: Option<&Path>, run_id: &str) -> PipelineDef {
    let mut def = match config {
        Some(p) => PipelineDef::load(p).expect("definition"),
        None => PipelineDef::builtin().expect("built-in"),
    };
    def.resolve(&BTreeMap::new(), &BTreeMap::from([("run_id".to_string(), run_id.to_string())]))
        .expect("resolve");
    def
}

/// The Kubernetes executor's pod and labels of `task`, as JSON.
fn executor_pod(def: &PipelineDef, task: &str, run_id: &str, attempt: &str) -> (Value, Value) {
    let t = def.task(task).expect("task");
    let input = PodInput { settings: &def.kubernetes, task: t, run_id, attempt };
    let pod = serde_json::to_value(jobspec::pod_spec(&input)).expect("json");
    (pod, serde_json::to_value(jobspec::task_labels(&input)).expect("json"))
}

/// Without nulls, empty lists and empty maps (Airflow's client writes `envFrom: []`, the
/// executor leaves it out).
fn norm(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), norm(v))).filter(|(_, v)| !is_empty(v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.is_empty()) || v.as_object().is_some_and(|m| m.is_empty())
}

/// Adds `MOLDOPS_SKIP_*` to an executor container's env as the export does.
fn with_skip_env(container: &mut Value, when_exists: Option<&str>, exit_code: Option<&str>) {
    let Some(path) = when_exists else { return };
    let env = container["env"].as_array_mut().expect("env");
    env.push(json!({ "name": "MOLDOPS_SKIP_UNLESS_EXISTS", "value": path }));
    if let Some(code) = exit_code {
        env.push(json!({ "name": "MOLDOPS_SKIP_EXIT_CODE", "value": code }));
    }
    env.sort_by_key(|e| e["name"].as_str().unwrap_or_default().to_string());
}

/// The pod's fields the export must carry over, normalised.
fn pod_fields(pod: &Value) -> Value {
    let c = &pod["containers"][0];
    let pick = |v: &Value, keys: &[&str]| -> Value {
        let field = |k: &str| Some(norm(&v[k])).filter(|v| !is_empty(v)).unwrap_or(Value::Null);
        keys.iter().map(|k| (k.to_string(), field(k))).collect::<serde_json::Map<_, _>>().into()
    };
    json!({
        "container": pick(c, &["image", "imagePullPolicy", "command", "args", "env", "envFrom", "resources",
            "volumeMounts", "securityContext"]),
        "pod": pick(pod, &["volumes", "nodeSelector", "tolerations", "securityContext", "serviceAccountName",
            "automountServiceAccountToken", "imagePullSecrets"]),
    })
}

fn run_peer(script: &str, args: &[&Path], extra: &[&str]) -> Value {
    let dir = test_dir();
    let report = dir.path().join("report.json");
    let out = Command::new(python())
        .arg(asset(&format!("peers/{script}")))
        .args(args)
        .arg(&report)
        .args(extra)
        .env("AIRFLOW_HOME", dir.path().join("airflow-home"))
        .output()
        .unwrap_or_else(|e| panic!("run {script} (pip install -r tests/requirements.txt): {e}"));
    assert!(
        out.status.success(),
        "{script} failed (Airflow, hera and kubernetes-validate come from tests/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("report JSON")
}

#[test]
fn airflow_imports_the_exported_dags_and_builds_the_executors_pods() {
    let dir = test_dir();
    let dags = dir.path().join("dags");
    std::fs::create_dir(&dags).expect("dags folder");
    let hostile_toml = dir.path().join("hostile.toml");
    std::fs::write(&hostile_toml, hostile(true)).expect("write");
    let cluster = asset("../deploy/k8s/base/pipeline.toml");
    std::fs::write(dir.path().join("cluster.toml"), std::fs::read_to_string(&cluster).expect("read"))
        .expect("write");
    // The cluster's definition is also called `learning`: a DAG id must be unique in a DagBag.
    let cluster_toml = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&cluster_toml).expect("read").replacen(
        "name = \"learning\"",
        "name = \"cluster\"",
        1,
    );
    std::fs::write(&cluster_toml, text).expect("write");
    let cases: [(&str, Option<&Path>); 3] =
        [("learning", None), ("cluster", Some(&cluster_toml)), ("hostile", Some(&hostile_toml))];
    for (name, config) in cases {
        let file = dags.join(format!("{name}.py"));
        let file = file.to_str().expect("utf-8 path");
        match config {
            Some(c) => export_ok(&["--config", c.to_str().expect("utf-8"), "--airflow", file]),
            None => export_ok(&["--airflow", file]),
        }
    }
    let report = run_peer("airflow_dag_check.py", &[&dags], &[RUN_ID, TRY_NUMBER]);
    assert_eq!(report["import_errors"], json!({}), "Airflow could not import a DAG");
    for (name, config) in cases {
        let dag = &report["dags"][name];
        assert!(dag.is_object(), "no DAG `{name}` in {:#}", report["dags"]);
        let def = resolved(config, RUN_ID);
        assert_eq!(dag["max_active_tasks"], json!(def.max_parallel), "{name}");
        assert_eq!((&dag["max_active_runs"], &dag["catchup"]), (&json!(1), &json!(false)), "{name}");
        let schedule = def.schedule.clone().map(Value::from).unwrap_or(Value::Null);
        assert_eq!(dag["timetable"]["expression"], schedule, "{name}: schedule");
        if def.schedule.is_some() {
            assert_eq!(dag["timetable"]["timezone"], json!("UTC"), "{name}: cron times are UTC");
        }
        let names: Vec<&str> = def.tasks.iter().map(|t| t.name.as_str()).collect();
        let mut ids: Vec<&str> =
            dag["tasks"].as_object().expect("tasks").keys().map(String::as_str).collect();
        ids.sort_unstable();
        let mut expected = names.clone();
        expected.sort_unstable();
        assert_eq!(ids, expected, "{name}: task ids");
        for t in &def.tasks {
            let got = &dag["tasks"][&t.name];
            let what = format!("{name}/{}", t.name);
            assert_eq!(got["operator"], json!("KubernetesPodOperator"), "{what}");
            let mut deps = t.deps.clone();
            deps.sort();
            assert_eq!(got["upstream"], json!(deps), "{what}: dependencies");
            let rule = if t.deps.is_empty() { "all_success" } else { "none_failed" };
            assert_eq!(got["trigger_rule"], json!(rule), "{what}");
            assert_eq!(got["retries"], json!(t.retries.unwrap_or(def.defaults.retries)), "{what}");
            let first = t.backoff_s.unwrap_or(def.defaults.backoff_s);
            assert_eq!(got["retry_delay_s"], json!(first), "{what}: first retry wait");
            assert_eq!(got["retry_exponential_backoff"], json!(def.defaults.backoff_factor), "{what}");
            assert_eq!(got["max_retry_delay_s"], json!(def.defaults.backoff_max_s.max(first)), "{what}");
            let timeout = t.timeout(&def.defaults).map(|d| d.as_secs_f64());
            assert_eq!(got["execution_timeout_s"], json!(timeout), "{what}");
            let skip = if t.when_exists.is_some() { json!([99]) } else { json!([]) };
            assert_eq!(got["skip_on_exit_code"], skip, "{what}");

            let (mut want, labels) = executor_pod(&def, &t.name, RUN_ID, TRY_NUMBER);
            with_skip_env(&mut want["containers"][0], t.when_exists.as_deref(), Some("99"));
            let pod = &got["pod"];
            assert_eq!(
                pod_fields(&pod["spec"]),
                pod_fields(&want),
                "{what}: the pod differs from the executor's"
            );
            let got_labels = pod["metadata"]["labels"].as_object().expect("labels");
            for (k, v) in labels.as_object().expect("labels") {
                if k != LABEL_RUN {
                    assert_eq!(got_labels.get(k), Some(v), "{what}: label {k}");
                }
            }
            let namespace = def.kubernetes.namespace.clone().unwrap_or_else(|| "default".into());
            assert_eq!(pod["metadata"]["namespace"], json!(namespace), "{what}");
        }
    }
    // What the hostile text became, spelled out (the comparison above would also pass if the
    // executor's pod were wrong in the same way).
    let args = &report["dags"]["hostile"]["tasks"]["first"]["pod"]["spec"]["containers"][0]["args"];
    for literal in [
        "it's \"quoted\" \\ back\\slash",
        "ends with newline\n",
        "crlf\r\nx",
        "{{ dag_id }}",
        "{% if x %}y{% endif %}",
        "{# c #}",
        &format!("{{{{{RUN_ID}}}}}"),
        &format!("--run={RUN_ID}/out"),
        "'''",
        "\"\"\"",
    ] {
        assert!(args.as_array().expect("args").contains(&json!(literal)), "{literal:?} not in {args:#}");
    }
}

#[test]
fn argo_manifests_pass_argos_models_and_the_kubernetes_schema() {
    let dir = test_dir();
    let hostile_toml = dir.path().join("hostile.toml");
    std::fs::write(&hostile_toml, hostile(false)).expect("write");
    let cluster = asset("../deploy/k8s/base/pipeline.toml");
    for (name, config) in [("cluster", &cluster), ("hostile", &hostile_toml)] {
        let file = dir.path().join(format!("{name}.yaml"));
        export_ok(&["--config", config.to_str().expect("utf-8"), "--argo", file.to_str().expect("utf-8")]);
        let report = run_peer("argo_check.py", &[&file], &[]);
        let def = resolved(Some(config), "{{workflow.name}}");
        let kinds: Vec<&Value> =
            report["documents"].as_array().expect("documents").iter().map(|d| &d["kind"]).collect();
        let want_kinds = if def.schedule.is_some() {
            vec!["WorkflowTemplate", "CronWorkflow"]
        } else {
            vec!["WorkflowTemplate"]
        };
        assert_eq!(kinds, want_kinds, "{name}");
        for d in report["documents"].as_array().expect("documents") {
            assert_eq!(
                (&d["error"], &d["dropped"], &d["changed"]),
                (&Value::Null, &json!([]), &json!([])),
                "{name}: {} refused or altered by Argo's model",
                d["kind"]
            );
        }
        let pods = report["pods"].as_array().expect("pods");
        assert_eq!(pods.len(), def.tasks.len(), "{name}: one container template per task");
        for p in pods {
            assert_eq!(p["errors"], json!([]), "{name}: {} fails the Kubernetes schema", p["template"]);
        }
        let template = &report["parsed"][0];
        let dag = template["spec"]["templates"].as_array().expect("templates");
        for t in &def.tasks {
            let what = format!("{name}/{}", t.name);
            let entry =
                dag[0]["dag"]["tasks"].as_array().expect("dag").iter().find(|x| x["name"] == json!(t.name));
            let entry = entry.unwrap_or_else(|| panic!("{what}: not in the DAG"));
            let deps = entry["dependencies"].as_array().cloned().unwrap_or_default();
            assert_eq!(Value::from(deps), json!(t.deps), "{what}: dependencies");
            let tmpl = dag.iter().find(|x| x["name"] == json!(format!("task-{}", t.name))).expect("template");
            let (mut want, labels) = executor_pod(&def, &t.name, "{{workflow.name}}", "{{retries}}");
            with_skip_env(&mut want["containers"][0], t.when_exists.as_deref(), None);
            let mut got = json!({ "containers": [tmpl["container"]] });
            for k in ["volumes", "nodeSelector", "tolerations", "securityContext"] {
                got[k] = tmpl[k].clone();
            }
            for k in ["serviceAccountName", "automountServiceAccountToken", "imagePullSecrets"] {
                got[k] = template["spec"][k].clone();
            }
            assert_eq!(pod_fields(&got), pod_fields(&want), "{what}: the pod differs from the executor's");
            assert_eq!(tmpl["metadata"]["labels"], labels, "{what}: labels");
            let retries = t.retries.unwrap_or(def.defaults.retries);
            assert_eq!(tmpl["retryStrategy"]["limit"], json!(retries), "{what}");
            assert_eq!(
                tmpl["activeDeadlineSeconds"],
                json!(t.timeout_s.or(def.defaults.timeout_s)),
                "{what}"
            );
        }
    }
    // The checks do refuse: unknown keys (one in a container), and a value of the wrong type.
    let good = std::fs::read_to_string(dir.path().join("hostile.yaml")).expect("read");
    let check = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        run_peer("argo_check.py", &[&file], &[])
    };
    let report = check(
        "typo.yaml",
        good.replacen("retryStrategy:", "retryStrategyy:", 1).replacen("command:", "commandd:", 1),
    );
    let dropped = report["documents"][0]["dropped"].to_string();
    assert!(
        dropped.contains("retryStrategyy") && dropped.contains("commandd"),
        "unknown keys went unnoticed: {report:#}"
    );
    assert!(report["pods"].as_array().expect("pods").iter().any(|p| p["errors"] != json!([])), "{report:#}");
    let report = check("type.yaml", good.replacen("runAsUser: 10001", "runAsUser: \"me\"", 1));
    assert!(
        report["documents"][0]["error"].to_string().contains("runAsUser"),
        "a wrong type went unnoticed: {report:#}"
    );
    // Text Argo would read as a template tag is refused, naming the task.
    let jinja = dir.path().join("jinja.toml");
    std::fs::write(&jinja, hostile(true)).expect("write");
    let out = export(&["--config", jinja.to_str().expect("utf-8"), "--argo", "-"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("task `first`") && err.contains("template tag"), "{err}");
}

#[test]
fn a_task_whose_path_is_absent_is_skipped_with_the_exit_code_asked_for() {
    let dir = test_dir();
    let run = |path: &Path, code: Option<&str>| {
        let mut cmd = Command::new(bin("moldops-cloud"));
        cmd.args(["pipeline", "definition"]).env("MOLDOPS_SKIP_UNLESS_EXISTS", path);
        if let Some(c) = code {
            cmd.env("MOLDOPS_SKIP_EXIT_CODE", c);
        }
        cmd.output().expect("run moldops-cloud")
    };
    let absent = dir.path().join("absent.flag");
    let out = run(&absent, Some("99"));
    assert_eq!(out.status.code(), Some(99));
    assert!(out.stdout.is_empty(), "nothing ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"), "the skip is logged");
    assert_eq!(run(&absent, None).status.code(), Some(0), "default exit code 0");
    let out = run(dir.path(), Some("99"));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("[[task]]"),
        "present: runs"
    );
    assert_eq!(run(&absent, Some("many")).status.code(), Some(1), "a bad exit code is an error");
}
