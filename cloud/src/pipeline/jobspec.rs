//! The Job a task attempt becomes: the task's command line in the image, its environment and
//! only its own secrets, resources (GPU tasks request `nvidia.com/gpu`), node selection and
//! tolerations for CPU or GPU nodes, the shared data volume, labels (run, task, attempt), an
//! owner reference to the run's ConfigMap (deleting it deletes every Job of the run),
//! `backoffLimit: 0` (retries are the runner's) and `ttlSecondsAfterFinished`. Pure functions;
//! [`pod_spec`] and [`task_labels`] need no Job, so `pipeline export` writes the same pod.

use super::dag::{SecretRef, TaskDef};
use super::kube_settings::{KubeSettings, Placement};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource,
    LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSecurityContext,
    PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecretEnvSource, SecretVolumeSource,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::json;
use std::collections::BTreeMap;

/// Label keys on every Job and pod.
pub const LABEL_RUN: &str = "moldops.io/run-id";
/// Label key holding the task name (on a task's Job and pod).
pub const LABEL_TASK: &str = "moldops.io/task";
/// Label key holding the attempt number (on a task's Job and pod).
pub const LABEL_ATTEMPT: &str = "moldops.io/attempt";
/// The Kubernetes extended resource of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The variable `train` and `augment` read their `--device` from.
pub const DEVICE_ENV: &str = "MOLDOPS_DEVICE";

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
    /// The definition's `[kubernetes]` settings.
    pub settings: &'a KubeSettings,
    /// Namespace of the Job.
    pub namespace: &'a str,
    /// Run the attempt belongs to.
    pub run_id: &'a str,
    /// The task, variables already substituted.
    pub task: &'a TaskDef,
    /// Attempt number (1-based; it continues across resumes).
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
    let attempt = i.attempt.to_string();
    let pod = PodInput { settings: s, task: t, run_id: i.run_id, attempt: &attempt };
    let labels = task_labels(&pod);
    let active_deadline_seconds = i
        .timeout_s
        .map(i64::try_from)
        .transpose()
        .with_context(|| format!("building the Job of task `{}`: time limit too large", t.name))?;
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(i.namespace.into()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_reference(i.owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(s.ttl_seconds_after_finished),
            active_deadline_seconds,
            // Shards: one pod per index, all at once; any pod failing fails the Job.
            completions: sharded(t).map(|n| n as i32),
            parallelism: sharded(t).map(|n| n as i32),
            completion_mode: sharded(t).map(|_| "Indexed".to_string()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(pod_spec(&pod)),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// Env variable holding a pod's index in an Indexed Job (`batch.kubernetes.io/job-completion-index`).
pub const SHARD_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The task's shard count when it has more than one.
fn sharded(t: &TaskDef) -> Option<u32> {
    t.shards.filter(|n| *n > 1)
}

/// What a task's pod is built from: no Job, owner or namespace, and the run id and attempt as
/// text, so that `pipeline export` can put its scheduler's own placeholders there.
pub struct PodInput<'a> {
    /// The definition's `[kubernetes]` settings.
    pub settings: &'a KubeSettings,
    /// The task, variables already substituted.
    pub task: &'a TaskDef,
    /// Run id (`MOLDOPS_PIPELINE_RUN` and the run label).
    pub run_id: &'a str,
    /// Attempt number (`MOLDOPS_PIPELINE_ATTEMPT` and the attempt label).
    pub attempt: &'a str,
}

/// The labels of a task's Job and pod: the run's, plus task and attempt.
pub fn task_labels(i: &PodInput<'_>) -> BTreeMap<String, String> {
    let mut labels = run_labels(i.settings, i.run_id);
    labels.insert("app.kubernetes.io/component".into(), "pipeline-task".into());
    labels.insert(LABEL_TASK.into(), i.task.name.clone());
    labels.insert(LABEL_ATTEMPT.into(), i.attempt.into());
    labels
}

/// The run's ConfigMap as owner: deleting it deletes the Job.
fn owner_reference((name, uid): (&str, &str)) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: name.into(),
        uid: uid.into(),
        block_owner_deletion: Some(true),
        controller: None,
    }
}

/// Node selection of a task: the GPU placement for GPU tasks, else the CPU one.
fn placement<'a>(s: &'a KubeSettings, t: &TaskDef) -> &'a Placement {
    if t.gpu { &s.gpu_placement } else { &s.cpu_placement }
}

/// The pod: never restarted, non-root with the default seccomp profile, no API token.
pub fn pod_spec(i: &PodInput<'_>) -> PodSpec {
    let (s, t) = (i.settings, i.task);
    let placement = placement(s, t);
    let image_pull_secrets = (!s.image_pull_secrets.is_empty())
        .then(|| s.image_pull_secrets.iter().map(|n| LocalObjectReference { name: n.clone() }).collect());
    PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(s.run_as_user),
            fs_group: Some(s.run_as_user),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container(i)],
        volumes: Some(volumes(s, t)),
        node_selector: Some(placement.node_selector.clone()),
        tolerations: Some(placement.tolerations.iter().map(toleration).collect()),
        service_account_name: s.service_account.clone(),
        image_pull_secrets,
        ..PodSpec::default()
    }
}

/// A toleration of the settings as Kubernetes has it.
fn toleration(t: &super::kube_settings::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone(),
        operator: t.operator.clone(),
        value: t.value.clone(),
        effect: t.effect.clone(),
        toleration_seconds: None,
    }
}

/// The task's container: its image, command line, environment, resources and mounts, with
/// no privilege escalation and every capability dropped.
fn container(i: &PodInput<'_>) -> Container {
    let (s, t) = (i.settings, i.task);
    let image = if t.gpu { s.gpu_image.as_ref().unwrap_or(&s.image) } else { &s.image };
    let program = t.program.as_ref().unwrap_or(&s.program);
    let env_from: Vec<EnvFromSource> = secrets(s, t)
        .filter(|r| r.mount.is_none())
        .map(|r| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: r.secret.clone(),
                optional: r.optional.then_some(true),
            }),
            ..EnvFromSource::default()
        })
        .collect();
    Container {
        name: "task".into(),
        image: Some(image.clone()),
        image_pull_policy: s.image_pull_policy.clone(),
        command: Some(vec![program.clone()]),
        args: Some(args(t)),
        env: Some(env(i)),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: Some(resources(t)),
        volume_mounts: Some(volume_mounts(s, t)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { add: None, drop: Some(vec!["ALL".into()]) }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// The task's arguments; a sharded one's end in `--shard $(JOB_COMPLETION_INDEX)/N`, which
/// Kubernetes expands from the pod's index.
fn args(t: &TaskDef) -> Vec<String> {
    let mut args = t.args.clone();
    if let Some(n) = sharded(t) {
        args.extend(["--shard".to_string(), format!("$({SHARD_INDEX_ENV})/{n}")]);
    }
    args
}

/// The environment: the settings', a GPU task's `MOLDOPS_DEVICE`, the task's, its secrets'
/// extra variables, then the run, task and attempt (later ones win), sorted by name; a sharded
/// task's pod index last (from its annotation, so that its arguments can name it).
fn env(i: &PodInput<'_>) -> Vec<EnvVar> {
    let (s, t) = (i.settings, i.task);
    let mut env: BTreeMap<String, String> = s.env.clone();
    if t.gpu {
        env.insert(DEVICE_ENV.into(), s.gpu_device.to_string());
    }
    env.extend(t.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for r in secrets(s, t) {
        env.extend(r.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env.insert(crate::storage::mirror::CACHE_ENV.into(), CACHE_MOUNT.into());
    env.insert("MOLDOPS_PIPELINE_RUN".into(), i.run_id.into());
    env.insert("MOLDOPS_PIPELINE_TASK".into(), t.name.clone());
    env.insert("MOLDOPS_PIPELINE_ATTEMPT".into(), i.attempt.into());
    env.remove(SHARD_INDEX_ENV);
    let mut out: Vec<EnvVar> =
        env.into_iter().map(|(name, value)| EnvVar { name, value: Some(value), value_from: None }).collect();
    if sharded(t).is_some() {
        out.push(EnvVar {
            name: SHARD_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.annotations['batch.kubernetes.io/job-completion-index']".into(),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    out
}

/// Requests and limits: memory's limit defaults to its request; GPU tasks get a
/// `nvidia.com/gpu` limit (at least 1).
fn resources(t: &TaskDef) -> ResourceRequirements {
    let r = &t.resources;
    let q = |v: &String| Quantity(v.clone());
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    if let Some(c) = &r.cpu {
        requests.insert("cpu".to_string(), q(c));
    }
    if let Some(m) = &r.memory {
        requests.insert("memory".to_string(), q(m));
        limits.insert("memory".to_string(), q(r.memory_limit.as_ref().unwrap_or(m)));
    }
    if let Some(c) = &r.cpu_limit {
        limits.insert("cpu".to_string(), q(c));
    }
    if t.gpu {
        let n = r.gpus.unwrap_or(1).max(1);
        limits.insert(GPU_RESOURCE.to_string(), Quantity(n.to_string()));
    }
    ResourceRequirements { requests: Some(requests), limits: Some(limits), claims: None }
}

/// The Secrets of a task's pod: every task's ([`KubeSettings::secrets`]), then its own.
fn secrets<'a>(s: &'a KubeSettings, t: &'a TaskDef) -> impl Iterator<Item = &'a SecretRef> {
    s.secrets.iter().chain(&t.secrets)
}

/// Name of the volume of the task's `n`-th mounted secret.
fn secret_volume_name(n: usize) -> String {
    format!("secret-{n}")
}

/// Where every task's scratch volume is mounted: the local copies of an `s3://` lake and
/// registry ([`crate::storage::mirror`], `MOLDOPS_CACHE_DIR`), gone with the pod.
pub const CACHE_MOUNT: &str = "/var/cache/moldops";

/// The shared data volume (when a claim is set), the scratch volume (an `emptyDir` at
/// [`CACHE_MOUNT`]) and one volume per mounted secret, files readable by the owner only
/// (mode 0400).
fn volumes(s: &KubeSettings, t: &TaskDef) -> Vec<Volume> {
    let data = s.data_volume_claim.iter().map(|claim| Volume {
        name: "data".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.clone(),
            read_only: None,
        }),
        ..Volume::default()
    });
    let secrets = secrets(s, t).filter(|r| r.mount.is_some()).enumerate().map(|(n, r)| Volume {
        name: secret_volume_name(n),
        secret: Some(SecretVolumeSource {
            secret_name: Some(r.secret.clone()),
            default_mode: Some(0o400),
            optional: r.optional.then_some(true),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    let cache = Volume {
        name: "cache".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    data.chain(std::iter::once(cache)).chain(secrets).collect()
}

/// Where [`volumes`] are mounted: the data volume at `data_mount_path`, the scratch volume at
/// [`CACHE_MOUNT`], secrets read-only at their `mount`.
fn volume_mounts(s: &KubeSettings, t: &TaskDef) -> Vec<VolumeMount> {
    let data = s.data_volume_claim.iter().map(|_| VolumeMount {
        name: "data".into(),
        mount_path: s.data_mount_path.clone(),
        ..VolumeMount::default()
    });
    let secrets = secrets(s, t).filter_map(|r| r.mount.as_ref()).enumerate().map(|(n, path)| VolumeMount {
        name: secret_volume_name(n),
        mount_path: path.clone(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    let cache =
        VolumeMount { name: "cache".into(), mount_path: CACHE_MOUNT.into(), ..VolumeMount::default() };
    data.chain(std::iter::once(cache)).chain(secrets).collect()
}

/// How a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not finished yet: no finishing condition, and no pod succeeded or failed.
    Running,
    /// Finished well: condition `Complete` or `SuccessCriteriaMet`, or every completion's pod
    /// succeeded (one pod, or an Indexed Job's N).
    Succeeded,
    /// Failed, with the reason and message of its `Failed` condition.
    Failed(String),
}

/// Reads a Job's status: `Complete`/`Failed` conditions first, pod counts as a fallback
/// (`backoffLimit` is 0, so one failed pod fails the Job; it succeeds when as many pods
/// succeeded as it has completions — every shard of an Indexed Job, not the first one).
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
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1).max(1);
    if st.failed.unwrap_or(0) > 0 {
        JobState::Failed("a pod of the Job failed".into())
    } else if st.succeeded.unwrap_or(0) >= completions {
        JobState::Succeeded
    } else {
        JobState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::dag::{Resources, SecretRef};
    use crate::pipeline::kube_settings::Toleration as SettingsToleration;
    use serde_json::Value;

    fn settings() -> KubeSettings {
        let mut s = KubeSettings {
            gpu_image: Some("img-gpu:1".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            image_pull_secrets: vec!["regcred".into()],
            service_account: Some("runner".into()),
            data_volume_claim: Some("moldops-data".into()),
            env: BTreeMap::from([("SHARED".into(), "settings".into())]),
            labels: BTreeMap::from([("team".into(), "ml".into())]),
            ..KubeSettings::default()
        };
        s.gpu_placement.node_selector.insert("pool".into(), "gpu".into());
        s.gpu_placement.tolerations.push(SettingsToleration {
            key: Some(GPU_RESOURCE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            value: None,
        });
        s.cpu_placement.node_selector.insert("pool".into(), "highmem".into());
        s
    }

    fn task(name: &str, gpu: bool) -> TaskDef {
        TaskDef {
            name: name.into(),
            deps: vec![],
            program: None,
            args: vec!["train".into(), "--lake".into(), "/lake".into()],
            env: BTreeMap::from([("SHARED".into(), "task".into())]),
            when_exists: None,
            retries: None,
            backoff_s: None,
            timeout_s: None,
            gpu,
            resources: Resources {
                cpu: Some("2".into()),
                memory: Some("8Gi".into()),
                cpu_limit: None,
                memory_limit: None,
                gpus: Some(2),
            },
            secrets: vec![
                SecretRef { secret: "s3-creds".into(), mount: None, env: BTreeMap::new(), optional: false },
                SecretRef {
                    secret: "gcp-key".into(),
                    mount: Some("/secrets/gcp".into()),
                    env: BTreeMap::from([("KEY_FILE".into(), "/secrets/gcp/key.json".into())]),
                    optional: false,
                },
            ],
            shards: None,
        }
    }

    fn job_json(s: &KubeSettings, t: &TaskDef, timeout_s: Option<u64>) -> Value {
        let job = build_job(&JobInput {
            settings: s,
            namespace: "ns",
            run_id: "r1",
            task: t,
            attempt: 2,
            owner: ("moldops-run-r1", "uid-1"),
            timeout_s,
        })
        .expect("job");
        serde_json::to_value(&job).expect("json")
    }

    /// What `deploy/k8s/base/admission.yaml` admits: the shipped pipeline's Jobs must pass it.
    #[test]
    fn the_shipped_pipeline_jobs_pass_the_admission_policy() {
        let text = include_str!("../../../deploy/k8s/base/pipeline.toml");
        let def = crate::pipeline::dag::PipelineDef::parse(text, "pipeline.toml").expect("shipped pipeline");
        let mut signing = Vec::new();
        for t in &def.tasks {
            let j = job_json(&def.kubernetes, t, None);
            let pod = &j["spec"]["template"]["spec"];
            let c = &pod["containers"][0];
            let image = c["image"].as_str().unwrap_or_default();
            assert!(
                ["ghcr.io/moldops/moldops-cloud:", "ghcr.io/moldops/moldops-cloud-gpu:"]
                    .iter()
                    .any(|p| image.starts_with(p)),
                "{}: image {image}",
                t.name
            );
            assert_eq!(c["command"], json!(["moldops-cloud"]), "{}", t.name);
            assert!(pod.get("initContainers").is_none(), "{}", t.name);
            let text = serde_json::to_string(pod).unwrap_or_default();
            let secrets: Vec<&str> = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["secret"]["secretName"].as_str())
                .chain(
                    c["envFrom"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["secretRef"]["name"].as_str()),
                )
                .collect();
            assert!(!text.contains("secretKeyRef") && !text.contains("hostPath"), "{}", t.name);
            if secrets.contains(&"moldops-signing-key") {
                assert_eq!(j["metadata"]["labels"][LABEL_TASK], json!("train"));
                assert_eq!(c["args"][0], json!("train"));
                signing.push(t.name.clone());
            }
            assert!(
                secrets
                    .iter()
                    .all(|s| ["moldops-signing-key", "moldops-mqtt", "moldops-object-store"].contains(s)),
                "{}: {secrets:?}",
                t.name
            );
        }
        assert_eq!(signing, ["train"], "only train reads the signing key");
    }

    #[test]
    fn gpu_job_has_image_command_resources_secrets_and_labels() {
        let j = job_json(&settings(), &task("train", true), Some(600));
        assert_eq!((&j["apiVersion"], &j["kind"]), (&json!("batch/v1"), &json!("Job")));
        assert_eq!(j["metadata"]["name"], json!("mo-r1-train-2"));
        assert_eq!(j["metadata"]["namespace"], json!("ns"));
        let owner = &j["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], json!("ConfigMap"));
        assert_eq!((&owner["uid"], &owner["blockOwnerDeletion"]), (&json!("uid-1"), &json!(true)));
        let spec = &j["spec"];
        assert_eq!(spec["backoffLimit"], json!(0));
        assert_eq!(spec["activeDeadlineSeconds"], json!(600));
        assert_eq!(spec["ttlSecondsAfterFinished"], json!(86_400));
        for labels in [&j["metadata"]["labels"], &spec["template"]["metadata"]["labels"]] {
            assert_eq!(labels[LABEL_RUN], json!("r1"));
            assert_eq!(labels[LABEL_TASK], json!("train"));
            assert_eq!(labels[LABEL_ATTEMPT], json!("2"));
            assert_eq!(labels["app.kubernetes.io/component"], json!("pipeline-task"));
            assert_eq!(labels["team"], json!("ml"));
        }
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], json!("Never"));
        assert_eq!(pod["automountServiceAccountToken"], json!(false));
        assert_eq!(pod["serviceAccountName"], json!("runner"));
        assert_eq!(pod["imagePullSecrets"], json!([{ "name": "regcred" }]));
        assert_eq!(pod["nodeSelector"], json!({ "pool": "gpu" }));
        assert_eq!(
            pod["tolerations"],
            json!([{ "key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule" }])
        );
        assert_eq!(pod["securityContext"]["runAsUser"], json!(10_001));
        let c = &pod["containers"][0];
        assert_eq!(c["image"], json!("img-gpu:1"));
        assert_eq!(c["imagePullPolicy"], json!("IfNotPresent"));
        assert_eq!(c["command"], json!(["moldops-cloud"]));
        assert_eq!(c["args"], json!(["train", "--lake", "/lake"]));
        assert_eq!(c["resources"]["requests"], json!({ "cpu": "2", "memory": "8Gi" }));
        assert_eq!(c["resources"]["limits"], json!({ "memory": "8Gi", GPU_RESOURCE: "2" }));
        assert_eq!(c["envFrom"], json!([{ "secretRef": { "name": "s3-creds" } }]));
        let env = c["env"].as_array().expect("env");
        let var = |n: &str| env.iter().find(|e| e["name"] == json!(n)).map(|e| e["value"].clone());
        assert_eq!(var("SHARED"), Some(json!("task")), "the task's env wins over the settings'");
        assert_eq!(var("KEY_FILE"), Some(json!("/secrets/gcp/key.json")));
        assert_eq!(var("MOLDOPS_PIPELINE_ATTEMPT"), Some(json!("2")));
        assert_eq!(var(DEVICE_ENV), Some(json!("gpu:0")), "a GPU task must get its GPU, not the CPU");
        assert_eq!(var("MOLDOPS_CACHE_DIR"), Some(json!(CACHE_MOUNT)), "copies of a bucket go to scratch");
        assert_eq!(
            pod["volumes"],
            json!([
                { "name": "data", "persistentVolumeClaim": { "claimName": "moldops-data" } },
                { "name": "cache", "emptyDir": {} },
                { "name": "secret-0", "secret": { "secretName": "gcp-key", "defaultMode": 0o400 } },
            ])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([
                { "name": "data", "mountPath": "/var/lib/moldops" },
                { "name": "cache", "mountPath": CACHE_MOUNT },
                { "name": "secret-0", "mountPath": "/secrets/gcp", "readOnly": true },
            ])
        );
    }

    #[test]
    fn a_sharded_task_is_one_indexed_job_whose_pods_take_their_shard() {
        let mut t = task("etl", false);
        t.shards = Some(4);
        t.env.insert(SHARD_INDEX_ENV.into(), "7".into());
        let j = job_json(&settings(), &t, None);
        let spec = &j["spec"];
        assert_eq!((&spec["completions"], &spec["parallelism"]), (&json!(4), &json!(4)));
        assert_eq!((&spec["completionMode"], &spec["backoffLimit"]), (&json!("Indexed"), &json!(0)));
        let c = &spec["template"]["spec"]["containers"][0];
        let args: Vec<&str> = c["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
        assert_eq!(args[args.len() - 2..], ["--shard", "$(JOB_COMPLETION_INDEX)/4"]);
        let index: Vec<&Value> =
            c["env"].as_array().expect("env").iter().filter(|e| e["name"] == SHARD_INDEX_ENV).collect();
        assert_eq!(index.len(), 1, "the task's own value gives way: {index:?}");
        assert_eq!(
            index[0]["valueFrom"]["fieldRef"]["fieldPath"],
            json!("metadata.annotations['batch.kubernetes.io/job-completion-index']")
        );
        // One shard is no fan-out: a plain Job.
        t.shards = Some(1);
        let j = job_json(&settings(), &t, None);
        assert!(j["spec"].get("completionMode").is_none() && j["spec"].get("completions").is_none());
        assert_eq!(t.shard_args(), [t.args.clone()]);
        t.shards = Some(3);
        assert_eq!(t.shard_args()[2][t.args.len()..], ["--shard", "2/3"]);
    }

    #[test]
    fn an_indexed_job_is_done_when_every_shard_is_and_failed_when_any_is() {
        let mut t = task("etl", false);
        t.shards = Some(3);
        let mut job = build_job(&JobInput {
            settings: &settings(),
            namespace: "ns",
            run_id: "r1",
            task: &t,
            attempt: 1,
            owner: ("moldops-run-r1", "uid-1"),
            timeout_s: None,
        })
        .expect("job");
        let with = |job: &mut Job, status: Value| {
            job.status = Some(serde_json::from_value(status).expect("status"));
            job_state(job)
        };
        assert_eq!(
            with(&mut job, json!({ "succeeded": 2, "active": 1 })),
            JobState::Running,
            "a shard still runs"
        );
        assert!(matches!(with(&mut job, json!({ "succeeded": 2, "failed": 1 })), JobState::Failed(_)));
        assert_eq!(with(&mut job, json!({ "succeeded": 3 })), JobState::Succeeded);
        t.shards = None;
        job.spec.as_mut().expect("spec").completions = None;
        assert_eq!(
            with(&mut job, json!({ "succeeded": 1 })),
            JobState::Succeeded,
            "a plain Job: its one pod"
        );
    }

    #[test]
    fn every_tasks_secrets_come_first_and_an_optional_one_may_be_absent() {
        let s = KubeSettings {
            secrets: vec![SecretRef {
                secret: "moldops-object-store".into(),
                mount: None,
                env: BTreeMap::new(),
                optional: true,
            }],
            ..Default::default()
        };
        let j = job_json(&s, &task("etl", false), None);
        let pod = &j["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["envFrom"],
            json!([
                { "secretRef": { "name": "moldops-object-store", "optional": true } },
                { "secretRef": { "name": "s3-creds" } },
            ])
        );
        let def = |secret: &str| {
            let toml = format!(
                "name = \"p\"\n[kubernetes]\nsecrets = [{{ secret = \"{secret}\", mount = \"relative\" }}]\n[[task]]\nname = \"a\"\nargs = [\"etl\"]\n"
            );
            super::super::dag::PipelineDef::parse(&toml, "test").map(drop)
        };
        let err = def("keys").expect_err("a relative mount is refused");
        assert!(format!("{err:#}").contains("secret `keys` mount must be an absolute path"), "{err:#}");
    }

    #[test]
    fn cpu_job_gets_no_gpu_and_optional_fields_stay_absent() {
        let mut t = task("etl", false);
        t.resources.memory_limit = Some("16Gi".into());
        t.secrets.clear();
        let j = job_json(
            &KubeSettings { cpu_placement: settings().cpu_placement, ..Default::default() },
            &t,
            None,
        );
        let pod = &j["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["image"], json!(KubeSettings::default().image));
        assert_eq!(c["resources"]["limits"], json!({ "memory": "16Gi" }));
        assert_eq!(pod["nodeSelector"], json!({ "pool": "highmem" }));
        // No data volume without a claim (a lake in a bucket): only the scratch volume.
        assert_eq!(
            (&pod["tolerations"], &pod["volumes"], &c["volumeMounts"]),
            (
                &json!([]),
                &json!([{ "name": "cache", "emptyDir": {} }]),
                &json!([{ "name": "cache", "mountPath": CACHE_MOUNT }])
            )
        );
        for absent in
            [&j["spec"]["activeDeadlineSeconds"], &pod["serviceAccountName"], &pod["imagePullSecrets"]]
        {
            assert!(absent.is_null(), "{j:#}");
        }
        assert!(c.get("envFrom").is_none() && c.get("imagePullPolicy").is_none(), "{c:#}");
        let env = c["env"].as_array().expect("env");
        assert!(env.iter().all(|e| e["name"] != json!(DEVICE_ENV)), "a CPU task gets no device: {env:?}");
    }

    #[test]
    fn gpu_device_setting_reaches_gpu_tasks_and_bad_values_are_refused() {
        let s: KubeSettings = toml::from_str("gpu_device = \"auto\"").expect("settings");
        let j = job_json(&s, &task("augment", true), None);
        let env = j["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().expect("env");
        assert!(env.contains(&json!({ "name": DEVICE_ENV, "value": "auto" })), "{env:?}");
        let e = toml::from_str::<KubeSettings>("gpu_device = \"tpu\"").expect_err("refused");
        assert!(e.to_string().contains("unknown device"), "{e}");
    }

    #[test]
    fn a_gpu_task_gets_at_least_one_gpu_and_bad_limits_are_errors() {
        let mut t = task("train", true);
        t.resources.gpus = Some(0);
        let j = job_json(&KubeSettings::default(), &t, None);
        let c = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["resources"]["limits"][GPU_RESOURCE], json!("1"));
        assert_eq!(c["image"], json!(KubeSettings::default().image), "no gpu_image: the CPU image");
        let s = KubeSettings::default();
        let long = TaskDef { name: "x".repeat(60), ..t.clone() };
        for (task, timeout_s) in [(&t, Some(u64::MAX)), (&long, None)] {
            let input = JobInput {
                settings: &s,
                namespace: "ns",
                run_id: "r1",
                task,
                attempt: 1,
                owner: ("o", "u"),
                timeout_s,
            };
            assert!(build_job(&input).is_err(), "too long a time limit or Job name is an error");
        }
    }
}
