//! The pipeline's Kubernetes executor against a Kubernetes API emulator on loopback (PyPI
//! `kmock`, see [`super::kmock`]). The test plays the Job controller and kubelet: for each Job
//! the runner creates, it records the spec, creates the Job's pod (with a log) and sets the
//! Job's status through the API, as a cluster would.
//! Checked: the Job specs (node selection, GPU limits, env, labels, owner references, secrets
//! per task, backoffLimit 0, TTL), status handling, retries, failure, logs, clean-up, a sharded
//! task as one Indexed Job, and cancellation both in-process and by SIGTERM to the
//! `moldops-cloud pipeline run` process.

use super::kmock::{Fate, Kmock, NS, fake_cluster};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use moldops_cloud::pipeline::kubernetes::KubeExecutor;
use moldops_cloud::pipeline::state::{AttemptStatus, ExecutorKind};
use moldops_cloud::pipeline::{Executor, PipelineDef, RunRecord, RunStatus, RunStore, TaskStatus, runner};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The built-in learning DAG with fast retries and no `when_exists` (nothing runs for real).
fn learning_def(data: &Path, run_id: &str) -> PipelineDef {
    let mut def = PipelineDef::builtin().expect("built-in");
    def.defaults.backoff_s = 0.01;
    def.kubernetes.namespace = Some(NS.into());
    def.kubernetes.poll_s = 1;
    for t in &mut def.tasks {
        t.when_exists = None;
    }
    let vars = BTreeMap::from([("data".to_string(), data.display().to_string())]);
    def.resolve(&vars, &BTreeMap::from([("run_id".to_string(), run_id.to_string())])).expect("resolve");
    def
}

/// Runs `run` to its end with the Kubernetes executor on `client`.
async fn execute_kube(client: &kube::Client, store: &RunStore, run: &mut RunRecord) -> RunStatus {
    let exec = Arc::new(Executor::Kubernetes(Box::new(KubeExecutor::with_client(
        client.clone(),
        run.definition.kubernetes.clone(),
    ))));
    runner::execute(store, run, exec, CancellationToken::new()).await.expect("execute")
}

fn container(job: &Job) -> serde_json::Value {
    serde_json::to_value(job).expect("json")["spec"]["template"]["spec"]["containers"][0].clone()
}

fn pod_spec(job: &Job) -> serde_json::Value {
    serde_json::to_value(job).expect("json")["spec"]["template"]["spec"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_specs_retries_logs_and_cleanup() {
    let kmock = Kmock::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = kmock.client();
    let stop = CancellationToken::new();
    // etl fails once, then succeeds (retries = 2); everything else succeeds.
    let (cluster, seen) = fake_cluster(
        client.clone(),
        |task, n| if task == "etl" && n == 1 { Fate::Fail } else { Fate::Succeed },
        stop.clone(),
    );
    let run_id = "k-ok";
    let store = RunStore::new(&dir.path().join("data"));
    let mut run = RunRecord::new(
        run_id.into(),
        ExecutorKind::Kubernetes,
        learning_def(&dir.path().join("data"), run_id),
    );
    let status = execute_kube(&client, &store, &mut run).await;
    stop.cancel();
    let _ = cluster.await;
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", run.tasks);

    let jobs = seen.lock().expect("lock").clone();
    let by_name: BTreeMap<String, Job> =
        jobs.iter().map(|j| (j.metadata.name.clone().unwrap_or_default(), j.clone())).collect();
    let names: Vec<&String> = by_name.keys().collect();
    assert_eq!(jobs.len(), 10, "9 tasks + one retry of etl: {names:?}");
    assert!(by_name.contains_key("mo-k-ok-etl-1") && by_name.contains_key("mo-k-ok-etl-2"), "{names:?}");
    let etl = &run.tasks["etl"].attempts;
    assert_eq!((etl[0].status, etl[1].status), (AttemptStatus::Failed, AttemptStatus::Succeeded));
    assert_eq!(etl[0].exit_code, Some(3));
    assert!(
        etl[0].error.as_deref().is_some_and(|e| e.contains("BackoffLimitExceeded")),
        "{:?}",
        etl[0].error
    );
    assert_eq!(etl[1].job.as_deref(), Some("mo-k-ok-etl-2"));

    // Dependency order: a task's Job appears only after its dependencies' Jobs.
    let pos = |t: &str| {
        jobs.iter().position(|j| j.metadata.labels.as_ref().is_some_and(|l| l["moldops.io/task"] == t))
    };
    assert!(pos("import") < pos("etl") && pos("etl") < pos("augment"));
    assert!(
        pos("train") < pos("register")
            && pos("evaluate") < pos("register")
            && pos("register") < pos("rollout")
    );

    // Owner: the run's ConfigMap, by uid.
    let owner_uid = {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
        // The ConfigMap is deleted after a successful run; its uid is on every Job.
        assert!(cms.get_opt("moldops-run-k-ok").await.expect("get").is_none(), "run ConfigMap cleaned up");
        jobs[0].metadata.owner_references.clone().expect("owner refs")[0].clone()
    };
    assert_eq!((owner_uid.kind.as_str(), owner_uid.name.as_str()), ("ConfigMap", "moldops-run-k-ok"));
    assert!(!owner_uid.uid.is_empty());
    for j in &jobs {
        let o = &j.metadata.owner_references.as_ref().expect("owner refs")[0];
        assert_eq!(o.uid, owner_uid.uid);
        let spec = j.spec.as_ref().expect("spec");
        assert_eq!(spec.backoff_limit, Some(0), "retries are the runner's");
        assert_eq!(spec.ttl_seconds_after_finished, Some(86_400));
        let labels = j.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["moldops.io/run-id"], "k-ok");
        assert_eq!(pod_spec(j)["automountServiceAccountToken"], json!(false));
        assert_eq!(pod_spec(j)["securityContext"]["runAsNonRoot"], json!(true));
        assert_eq!(pod_spec(j)["serviceAccountName"], json!("moldops-task"));
    }

    // GPU tasks: GPU image, nvidia.com/gpu limit, GPU nodes and toleration; CPU tasks: high-memory nodes.
    for t in ["augment", "train"] {
        let j = &by_name[&format!("mo-k-ok-{t}-1")];
        let c = container(j);
        assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], json!("1"), "{t}");
        assert!(c["image"].as_str().is_some_and(|i| i.contains("gpu")), "{t}");
        assert_eq!(pod_spec(j)["nodeSelector"], json!({ "moldops.io/node-pool": "gpu" }));
        assert_eq!(pod_spec(j)["tolerations"][0]["key"], json!("nvidia.com/gpu"));
        // ... and run with the GPU: `train` and `augment` read --device from MOLDOPS_DEVICE, and
        // `gpu:0` fails the task without a GPU instead of computing on the CPU.
        assert_eq!(c["args"][0], json!(t));
        let env = c["env"].as_array().expect("env");
        assert!(env.contains(&json!({ "name": "MOLDOPS_DEVICE", "value": "gpu:0" })), "{t}: {env:?}");
    }
    for t in ["etl", "evaluate", "register"] {
        let j = &by_name[&format!("mo-k-ok-{t}-1")];
        let c = container(j);
        assert!(c["resources"]["limits"].get("nvidia.com/gpu").is_none(), "{t}");
        assert_eq!(pod_spec(j)["nodeSelector"], json!({ "moldops.io/node-pool": "high-memory" }));
        assert!(!c["env"].to_string().contains("MOLDOPS_DEVICE"), "{t}");
    }
    // The task's own command line, env and the shared volume.
    let etl_c = container(&by_name["mo-k-ok-etl-1"]);
    assert_eq!(etl_c["command"], json!(["moldops-cloud"]));
    let lake = format!("{}/lake", dir.path().join("data").display());
    assert_eq!(etl_c["args"], json!(["etl", "--lake", lake]));
    assert_eq!(etl_c["resources"]["requests"], json!({ "cpu": "2", "memory": "8Gi" }));
    let env: BTreeMap<String, String> = etl_c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or("").into(), e["value"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(env["MOLDOPS_PIPELINE_RUN"], "k-ok");
    assert_eq!(env["MOLDOPS_PIPELINE_TASK"], "etl");
    assert_eq!(env["RUST_LOG"], "info");
    // No shared volume (the data is in a bucket), only the scratch volume for its copies.
    assert_eq!(pod_spec(&by_name["mo-k-ok-etl-1"])["volumes"][0], json!({ "name": "cache", "emptyDir": {} }));
    // Secrets: the bucket's for every task; the others only for the task that needs one.
    let secrets_of = |t: &str| {
        let j = &by_name[&format!("mo-k-ok-{t}-1")];
        let mut s = BTreeSet::new();
        for v in pod_spec(j)["volumes"].as_array().into_iter().flatten() {
            if let Some(n) = v["secret"]["secretName"].as_str() {
                s.insert(n.to_string());
            }
        }
        for e in container(j)["envFrom"].as_array().into_iter().flatten() {
            if let Some(n) = e["secretRef"]["name"].as_str() {
                s.insert(n.to_string());
            }
        }
        s
    };
    let bucket = "moldops-object-store".to_string();
    assert_eq!(secrets_of("train"), BTreeSet::from([bucket.clone(), "moldops-signing-key".to_string()]));
    assert_eq!(secrets_of("rollout"), BTreeSet::from([bucket.clone(), "moldops-mqtt".to_string()]));
    for t in ["import", "compact", "etl", "augment", "evaluate", "register"] {
        assert_eq!(secrets_of(t), BTreeSet::from([bucket.clone()]), "{t} must get no other secret");
    }
    let train_c = container(&by_name["mo-k-ok-train-1"]);
    let key_env =
        train_c["env"].as_array().expect("env").iter().find(|e| e["name"] == "MOLDOPS_SIGNING_KEY").cloned();
    assert_eq!(key_env.map(|e| e["value"].clone()), Some(json!("/etc/moldops/signing/signing.key")));
    let secret_mount =
        train_c["volumeMounts"].as_array().expect("mounts").iter().find(|m| m["name"] == "secret-0").cloned();
    assert_eq!(secret_mount.map(|m| m["readOnly"].clone()), Some(json!(true)));

    // Logs collected from the pods; finished Jobs deleted.
    let run_dir = store.run_dir(run_id);
    let log = std::fs::read_to_string(run_dir.join(&etl[0].log)).expect("etl log");
    assert!(log.contains("log line of etl attempt 1"), "{log}");
    let jobs_api: Api<Job> = Api::namespaced(client, NS);
    assert!(
        jobs_api.list(&Default::default()).await.expect("list").items.is_empty(),
        "finished Jobs are deleted"
    );
    assert_eq!(store.load(run_id).expect("record").status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_task_runs_as_one_indexed_job_and_keeps_every_shards_log() {
    let kmock = Kmock::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = kmock.client();
    let stop = CancellationToken::new();
    let (cluster, seen) = fake_cluster(client.clone(), |_, _| Fate::Succeed, stop.clone());
    let run_id = "k-shards";
    let mut def = learning_def(&dir.path().join("data"), run_id);
    def.tasks.retain(|t| t.name == "etl");
    def.tasks[0].deps.clear();
    def.tasks[0].shards = Some(3);
    let store = RunStore::new(&dir.path().join("data"));
    let mut run = RunRecord::new(run_id.into(), ExecutorKind::Kubernetes, def);
    let status = execute_kube(&client, &store, &mut run).await;
    stop.cancel();
    let _ = cluster.await;
    assert_eq!(status, RunStatus::Succeeded, "{:#?}", run.tasks);
    let jobs = seen.lock().expect("lock").clone();
    assert_eq!(jobs.len(), 1, "one Job for the three shards");
    let spec = serde_json::to_value(&jobs[0]).expect("json")["spec"].clone();
    assert_eq!(
        (&spec["completions"], &spec["parallelism"], &spec["completionMode"]),
        (&json!(3), &json!(3), &json!("Indexed"))
    );
    let args = container(&jobs[0])["args"].clone();
    let args: Vec<&str> = args.as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
    assert_eq!(args[args.len() - 2..], ["--shard", "$(JOB_COMPLETION_INDEX)/3"]);
    let attempt = &run.tasks["etl"].attempts[0];
    let log = std::fs::read_to_string(store.run_dir(run_id).join(&attempt.log)).expect("etl log");
    for shard in 0..3 {
        assert!(log.contains(&format!("log line of etl attempt 1 shard {shard}")), "shard {shard}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_the_run_and_cancellation_deletes_jobs() {
    let kmock = Kmock::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let client = kmock.client();
    let stop = CancellationToken::new();
    // augment always fails: its dependents are not run. In the second run, etl never finishes.
    let (cluster, seen) = fake_cluster(
        client.clone(),
        |task, _| match task {
            "augment" => Fate::Fail,
            "etl" => Fate::Hang,
            _ => Fate::Succeed,
        },
        stop.clone(),
    );
    let store = RunStore::new(&dir.path().join("data"));
    // Run 1 leaves etl (which hangs) out: augment follows import directly.
    let mut def = learning_def(&dir.path().join("data"), "k-fail");
    def.tasks.retain(|t| t.name != "etl");
    for t in &mut def.tasks {
        if t.name == "augment" {
            t.deps = vec!["import".into()];
        }
    }
    let mut run = RunRecord::new("k-fail".into(), ExecutorKind::Kubernetes, def);
    let status = execute_kube(&client, &store, &mut run).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(run.tasks["augment"].status, TaskStatus::Failed);
    assert_eq!(run.tasks["augment"].attempts.len(), 2, "1 + retries (1)");
    for t in ["evaluate", "train", "register", "rollout"] {
        assert_eq!(run.tasks[t].status, TaskStatus::UpstreamFailed, "{t}");
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    assert!(
        cms.get_opt("moldops-run-k-fail").await.expect("get").is_some(),
        "a failed run keeps its ConfigMap"
    );

    // Run 2: the etl Job hangs; cancelling the run deletes it.
    let mut run = RunRecord::new(
        "k-cancel".into(),
        ExecutorKind::Kubernetes,
        learning_def(&dir.path().join("data"), "k-cancel"),
    );
    let exec = Arc::new(Executor::Kubernetes(Box::new(KubeExecutor::with_client(
        client.clone(),
        run.definition.kubernetes.clone(),
    ))));
    let cancel = CancellationToken::new();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let watcher = {
        let (jobs, cancel, seen) = (jobs.clone(), cancel.clone(), seen.clone());
        tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(60);
            while Instant::now() < end {
                let started = seen
                    .lock()
                    .expect("lock")
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some("mo-k-cancel-etl-1"));
                if started && jobs.get_opt("mo-k-cancel-etl-1").await.ok().flatten().is_some() {
                    cancel.cancel();
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        })
    };
    let status = runner::execute(&store, &mut run, exec, cancel).await.expect("execute");
    assert!(watcher.await.expect("watcher"), "etl Job never appeared");
    stop.cancel();
    let _ = cluster.await;
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(run.tasks["etl"].status, TaskStatus::Cancelled);
    assert_eq!(run.tasks["augment"].status, TaskStatus::Pending);
    assert!(jobs.get_opt("mo-k-cancel-etl-1").await.expect("get").is_none(), "the running Job was deleted");
}

#[test]
fn sigterm_to_the_runner_deletes_its_running_job() {
    let kmock = Kmock::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kmock.kubeconfig(dir.path());
    let def = dir.path().join("pipeline.toml");
    std::fs::write(
        &def,
        format!(
            "[vars]\ndata = \"{}\"\n[kubernetes]\npoll_s = 1\n[[task]]\nname = \"hang\"\nargs = [\"etl\"]\n",
            dir.path().join("data").display()
        ),
    )
    .expect("def");
    let runner = Command::new(super::pipeline_local::bin())
        .args(["pipeline", "run", "--executor", "kubernetes", "--run-id", "k-term", "--config"])
        .arg(&def)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let _in_runtime = rt.enter();
    let jobs: Api<Job> = Api::namespaced(kmock.client(), NS);
    let appeared = rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            if jobs.get_opt("mo-k-term-hang-1").await.ok().flatten().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });
    assert!(appeared, "the runner created no Job in namespace {NS} (from the kubeconfig context)");
    let ok = Command::new("kill").args(["-TERM", &runner.id().to_string()]).status().expect("kill");
    assert!(ok.success());
    let out = runner.wait_with_output().expect("runner ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let gone = rt.block_on(jobs.get_opt("mo-k-term-hang-1")).expect("get");
    assert!(gone.is_none(), "SIGTERM deleted the running Job: {err}");
    let run = RunStore::new(&dir.path().join("data")).load("k-term").expect("record");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(run.tasks["hang"].attempts[0].job.as_deref(), Some("mo-k-term-hang-1"));
}

#[test]
fn an_unreachable_api_server_fails_the_run_visibly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: none\n  context:\n    cluster: none\n    user: u\ncurrent-context: none\n"
        ),
    )
    .expect("kubeconfig");
    let def = dir.path().join("pipeline.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &def,
        format!("[vars]\ndata = \"{}\"\n[[task]]\nname = \"etl\"\nargs = [\"etl\"]\n", data.display()),
    )
    .expect("def");
    let out = Command::new(super::pipeline_local::bin())
        .args(["pipeline", "run", "--executor", "kubernetes", "--run-id", "k-down", "--config"])
        .arg(&def)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("runner");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("preparing run k-down") && err.contains("ConfigMap moldops-run-k-down"), "{err}");
    let run = RunStore::new(&data).load("k-down").expect("record");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.tasks["etl"].status, TaskStatus::Pending, "nothing started");
}
