//! The Kubernetes API emulator for the pipeline tests: PyPI `kmock` started on a loopback port
//! (`kmock_server.py`, with `$MOLDOPS_PYTHON`), a kube client and a kubeconfig pointing at it,
//! and a fake cluster that plays Job controller and kubelet through the API.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NS: &str = "moldops-test";

/// The emulator process; killed on drop.
pub struct Kmock {
    child: Child,
    port: u16,
}

impl Kmock {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let python = std::env::var("MOLDOPS_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cloud/kmock_server.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {}: {e}", script.display()));
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("read kmock");
        assert_eq!(
            line.trim(),
            format!("listening {port}"),
            "kmock did not start (is it installed for {python}?)"
        );
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> kube::Client {
        let mut cfg = kube::Config::new(self.url().parse().expect("url"));
        cfg.default_namespace = NS.into();
        kube::Client::try_from(cfg).expect("client")
    }

    /// A kubeconfig file for the binary.
    pub fn kubeconfig(&self, dir: &Path) -> std::path::PathBuf {
        let p = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kmock\n  cluster:\n    server: {}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: kmock\n  context:\n    cluster: kmock\n    user: test\n    namespace: {NS}\ncurrent-context: kmock\n",
            self.url()
        );
        std::fs::write(&p, text).expect("kubeconfig");
        p
    }
}

impl Drop for Kmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake cluster does with a task's attempt: succeed, fail, or never finish.
#[derive(Clone, Copy, PartialEq)]
pub enum Fate {
    Succeed,
    Fail,
    Hang,
}

/// Plays Job controller + kubelet: every new Job gets a pod with a log (an Indexed Job one per
/// index) and then the status `fate(task, attempt)` gives. Returns every Job it saw, in creation order.
pub fn fake_cluster(
    client: kube::Client,
    fate: impl Fn(&str, u32) -> Fate + Send + 'static,
    stop: CancellationToken,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<Vec<Job>>>) {
    let seen = Arc::new(Mutex::new(Vec::<Job>::new()));
    let out = seen.clone();
    let handle = tokio::spawn(async move {
        let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client, NS);
        let mut known = BTreeSet::new();
        while !stop.is_cancelled() {
            let list = jobs.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
            for job in list {
                let name = job.metadata.name.clone().unwrap_or_default();
                if !known.insert(name.clone()) {
                    continue;
                }
                let labels = job.metadata.labels.clone().unwrap_or_default();
                let task = labels.get("moldops.io/task").cloned().unwrap_or_default();
                let attempt: u32 = labels.get("moldops.io/attempt").and_then(|a| a.parse().ok()).unwrap_or(0);
                seen.lock().expect("lock").push(job.clone());
                let f = fate(&task, attempt);
                if f == Fate::Hang {
                    continue;
                }
                let code = if f == Fate::Succeed { 0 } else { 3 };
                // An Indexed Job gets one pod per index, each with its index annotation.
                let spec = job.spec.clone().unwrap_or_default();
                let indexed = spec.completion_mode.as_deref() == Some("Indexed");
                let pods_of_job = if indexed { spec.completions.unwrap_or(1).max(1) } else { 1 };
                for index in 0..pods_of_job {
                    let (pod_name, log, mut annotations) = if indexed {
                        (
                            format!("{name}-{index}-pod"),
                            format!("log line of {task} attempt {attempt} shard {index}\n"),
                            json!({ "batch.kubernetes.io/job-completion-index": index.to_string() }),
                        )
                    } else {
                        (format!("{name}-pod"), format!("log line of {task} attempt {attempt}\n"), json!({}))
                    };
                    annotations["test/log"] = json!(log);
                    let pod: Pod = serde_json::from_value(json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {
                            "name": pod_name, "namespace": NS,
                            "labels": { "job-name": name, "batch.kubernetes.io/job-name": name },
                            "annotations": annotations,
                        },
                        "status": { "containerStatuses": [{
                            "name": "task", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                            "state": { "terminated": { "exitCode": code } },
                        }]},
                    }))
                    .expect("pod");
                    pods.create(&PostParams::default(), &pod).await.expect("create pod");
                    // Shards finish one at a time: the Job is not done while one still runs.
                    if indexed && f == Fate::Succeed && index + 1 < pods_of_job {
                        let so_far = json!({ "status": { "succeeded": index + 1, "active": pods_of_job - index - 1 } });
                        jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&so_far))
                            .await
                            .expect("patch status");
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                }
                let status = if f == Fate::Succeed {
                    json!({ "status": { "succeeded": pods_of_job, "conditions": [{ "type": "Complete", "status": "True" }] } })
                } else {
                    json!({ "status": { "failed": 1, "conditions": [{
                        "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit" }] } })
                };
                jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .expect("patch status");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (handle, out)
}
