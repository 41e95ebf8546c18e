//! The Job a task attempt becomes: the task's command line in the image, its environment and
//! only its own secrets, resources (GPU tasks request `nvidia.com/gpu`), node selection and
//! tolerations for CPU or GPU nodes, the shared data volume, labels (run, task, attempt), an
//! owner reference to the run's ConfigMap (deleting it deletes every Job of the run),
//! `backoffLimit: 0` (retries are the runner's) and `ttlSecondsAfterFinished`. Pure functions.

use super::dag::TaskDef;
use super::kube_settings::KubeSettings;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Label keys on every Job and pod.
pub const LABEL_RUN: &str = "moldops.io/run-id";
pub const LABEL_TASK: &str = "moldops.io/task";
pub const LABEL_ATTEMPT: &str = "moldops.io/attempt";
/// The Kubernetes extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Name of the ConfigMap that stands for a run (owner of its Jobs).
pub fn run_object_name(run_id: &str) -> String {
    format!("moldops-run-{run_id}")
}

/// Name of the Job of one attempt (at most 63 characters, a DNS label).
pub fn job_name(run_id: &str, task: &str, attempt: u32) -> Result<String> {
    let name = format!("mo-{run_id}-{task}-{attempt}").to_ascii_lowercase();
    if name.len() > 63 {
        bail!("Job name `{name}` is longer than 63 characters: use a shorter task name or run id");
    }
    Ok(name)
}

/// The labels of a run's objects.
pub fn run_labels(settings: &KubeSettings, run_id: &str) -> BTreeMap<String, String> {
    let mut l = settings.labels.clone();
    l.insert("app.kubernetes.io/name".into(), "moldops".into());
    l.insert("app.kubernetes.io/component".into(), "pipeline".into());
    l.insert("app.kubernetes.io/managed-by".into(), "moldops-pipeline".into());
    l.insert(LABEL_RUN.into(), run_id.into());
    l
}

/// The ConfigMap standing for a run; `summary` goes into its data.
pub fn run_object(
    settings: &KubeSettings,
    namespace: &str,
    run_id: &str,
    summary: &str,
) -> Result<ConfigMap> {
    let v = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": run_object_name(run_id),
            "namespace": namespace,
            "labels": run_labels(settings, run_id),
        },
        "data": { "run.json": summary },
    });
    serde_json::from_value(v).context("building the run's ConfigMap")
}

/// What a Job is built from.
pub struct JobInput<'a> {
    pub settings: &'a KubeSettings,
    pub namespace: &'a str,
    pub run_id: &'a str,
    pub task: &'a TaskDef,
    pub attempt: u32,
    /// Name and uid of the run's ConfigMap.
    pub owner: (&'a str, &'a str),
    /// Attempt time limit → `activeDeadlineSeconds`.
    pub timeout_s: Option<u64>,
}

/// The Job of one attempt.
pub fn build_job(i: &JobInput<'_>) -> Result<Job> {
    let s = i.settings;
    let t = i.task;
    let name = job_name(i.run_id, &t.name, i.attempt)?;
    let mut labels = run_labels(s, i.run_id);
    labels.insert("app.kubernetes.io/component".into(), "pipeline-task".into());
    labels.insert(LABEL_TASK.into(), t.name.clone());
    labels.insert(LABEL_ATTEMPT.into(), i.attempt.to_string());

    let mut env: BTreeMap<String, String> = s.env.clone();
    env.extend(t.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for r in &t.secrets {
        env.extend(r.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.insert("MOLDOPS_PIPELINE_RUN".into(), i.run_id.into());
    env.insert("MOLDOPS_PIPELINE_TASK".into(), t.name.clone());
    env.insert("MOLDOPS_PIPELINE_ATTEMPT".into(), i.attempt.to_string());
    let env: Vec<Value> = env.into_iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();

    let env_from: Vec<Value> = t
        .secrets
        .iter()
        .filter(|r| r.mount.is_none())
        .map(|r| json!({ "secretRef": { "name": r.secret } }))
        .collect();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(claim) = &s.data_volume_claim {
        volumes.push(json!({ "name": "data", "persistentVolumeClaim": { "claimName": claim } }));
        mounts.push(json!({ "name": "data", "mountPath": s.data_mount_path }));
    }
    for (n, r) in t.secrets.iter().filter(|r| r.mount.is_some()).enumerate() {
        let vol = format!("secret-{n}");
        volumes.push(json!({ "name": vol, "secret": { "secretName": r.secret, "defaultMode": 0o400 } }));
        mounts.push(json!({ "name": vol, "mountPath": r.mount, "readOnly": true }));
    }

    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(c) = &t.resources.cpu {
        requests.insert("cpu".into(), json!(c));
    }
    if let Some(m) = &t.resources.memory {
        requests.insert("memory".into(), json!(m));
        limits.insert("memory".into(), json!(t.resources.memory_limit.as_ref().unwrap_or(m)));
    }
    if let Some(c) = &t.resources.cpu_limit {
        limits.insert("cpu".into(), json!(c));
    }
    let placement = if t.gpu {
        let n = t.resources.gpus.unwrap_or(1).max(1);
        limits.insert(GPU_RESOURCE.into(), json!(n.to_string()));
        &s.gpu_placement
    } else {
        &s.cpu_placement
    };
    let image = if t.gpu { s.gpu_image.as_ref().unwrap_or(&s.image) } else { &s.image };
    let program = t.program.as_ref().unwrap_or(&s.program);

    let mut container = json!({
        "name": "task",
        "image": image,
        "command": [program],
        "args": t.args,
        "env": env,
        "resources": { "requests": requests, "limits": limits },
        "volumeMounts": mounts,
        "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } },
    });
    if !env_from.is_empty() {
        container["envFrom"] = json!(env_from);
    }
    if let Some(p) = &s.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    let tolerations: Vec<Value> = placement
        .tolerations
        .iter()
        .map(|t| serde_json::to_value(t).unwrap_or(Value::Null))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.retain(|_, x| !x.is_null());
            }
            v
        })
        .collect();
    let mut pod_spec = json!({
        "restartPolicy": "Never",
        "automountServiceAccountToken": false,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": s.run_as_user,
            "fsGroup": s.run_as_user,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "containers": [container],
        "volumes": volumes,
        "nodeSelector": placement.node_selector,
        "tolerations": tolerations,
    });
    if let Some(sa) = &s.service_account {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    if !s.image_pull_secrets.is_empty() {
        let secrets: Vec<Value> = s.image_pull_secrets.iter().map(|n| json!({ "name": n })).collect();
        pod_spec["imagePullSecrets"] = json!(secrets);
    }
    let mut spec = json!({
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": s.ttl_seconds_after_finished,
        "template": { "metadata": { "labels": labels }, "spec": pod_spec },
    });
    if let Some(d) = i.timeout_s {
        spec["activeDeadlineSeconds"] = json!(d);
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": i.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": i.owner.0,
                "uid": i.owner.1,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    });
    serde_json::from_value(job).with_context(|| format!("building the Job of task `{}`", t.name))
}

/// How a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// Failed, with the reason and message of its `Failed` condition.
    Failed(String),
}

/// Reads a Job's status: `Complete`/`Failed` conditions first, pod counts as a fallback
/// (`backoffLimit` is 0, so one failed pod fails the Job).
pub fn job_state(job: &Job) -> JobState {
    let Some(st) = &job.status else { return JobState::Running };
    for c in st.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return JobState::Succeeded,
            "Failed" | "FailureTarget" => {
                let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
                let msg = c.message.clone().map(|m| format!(": {m}")).unwrap_or_default();
                return JobState::Failed(format!("{reason}{msg}"));
            }
            _ => {}
        }
    }
    if st.succeeded.unwrap_or(0) > 0 {
        JobState::Succeeded
    } else if st.failed.unwrap_or(0) > 0 {
        JobState::Failed("a pod of the Job failed".into())
    } else {
        JobState::Running
    }
}
