//! The `[kubernetes]` table of a pipeline definition: namespace, images, the service account
//! tasks run as, Job clean-up, the shared data volume, and where CPU and GPU tasks are placed.

use moldops_models::device::DeviceRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the kubernetes executor turns tasks into Jobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// Namespace of the Jobs (and of the per-run ConfigMap that owns them); default: the
    /// runner's own namespace in a cluster, else the kubeconfig context's.
    pub namespace: Option<String>,
    /// Image of CPU tasks; the runner's `MOLDOPS_TASK_IMAGE`, when set, replaces it.
    pub image: String,
    /// Image of GPU tasks (built with the GPU backend, `cloud-gpu.Containerfile`); default: `image`;
    /// the runner's `MOLDOPS_TASK_GPU_IMAGE`, when set, replaces it.
    pub gpu_image: Option<String>,
    /// `MOLDOPS_DEVICE` of GPU tasks (`--device` of `train` and `augment`): `gpu:0` (default) fails
    /// the task when its pod has no usable GPU; `auto` lets it fall back to the CPU (logged and
    /// recorded in the report and lineage); `cuda:N` / `gpu:N` pick one.
    pub gpu_device: DeviceRequest,
    /// `imagePullPolicy` of the task containers (`Always`, `IfNotPresent`, `Never`); default:
    /// Kubernetes' own.
    pub image_pull_policy: Option<String>,
    /// Secrets used to pull the images (`imagePullSecrets`); default: none.
    pub image_pull_secrets: Vec<String>,
    /// Program inside the image that takes the task's arguments.
    pub program: String,
    /// Service account of the task pods (they need no API access; its token is not mounted).
    pub service_account: Option<String>,
    /// Kubernetes deletes finished Jobs (and their pods) after this many seconds.
    pub ttl_seconds_after_finished: i32,
    /// The runner deletes each Job as soon as it has its logs (TTL is the fallback).
    pub delete_finished_jobs: bool,
    /// PersistentVolumeClaim holding the lake and registry, mounted in every task at `data_mount_path`.
    pub data_volume_claim: Option<String>,
    /// Where the data volume is mounted in every task; default `/var/lib/moldops`.
    pub data_mount_path: String,
    /// Environment of every task.
    pub env: BTreeMap<String, String>,
    /// Secrets of every task, before its own (`secrets` of a task): e.g. the bucket's
    /// credentials, `{ secret = "moldops-object-store", optional = true }`.
    pub secrets: Vec<super::dag::SecretRef>,
    /// Placement of tasks without `gpu = true`.
    pub cpu_placement: Placement,
    /// Placement of tasks with `gpu = true`.
    pub gpu_placement: Placement,
    /// Extra labels on every Job and pod.
    pub labels: BTreeMap<String, String>,
    /// User (and fsGroup) the task containers run as; the images' user is 10001.
    pub run_as_user: i64,
    /// Seconds between checks of a Job's status when the watch stream is quiet.
    pub poll_s: u64,
}

impl Default for KubeSettings {
    fn default() -> Self {
        Self {
            namespace: None,
            image: "ghcr.io/moldops/moldops-cloud:latest".into(),
            gpu_image: None,
            gpu_device: DeviceRequest::Gpu(0),
            image_pull_policy: None,
            image_pull_secrets: vec![],
            program: "moldops-cloud".into(),
            service_account: None,
            ttl_seconds_after_finished: 86_400,
            delete_finished_jobs: true,
            data_volume_claim: None,
            data_mount_path: "/var/lib/moldops".into(),
            env: BTreeMap::new(),
            secrets: vec![],
            cpu_placement: Placement::default(),
            gpu_placement: Placement::default(),
            labels: BTreeMap::new(),
            run_as_user: 10_001,
            poll_s: 10,
        }
    }
}

/// Environment variable whose value, when set, replaces [`KubeSettings::image`] in the runner:
/// the deployment's manifests set it on the runner container, so one kustomize `images:`
/// override moves the runner and every task Job alike (deploy/k8s).
pub const TASK_IMAGE_ENV: &str = "MOLDOPS_TASK_IMAGE";
/// … and [`KubeSettings::gpu_image`].
pub const TASK_GPU_IMAGE_ENV: &str = "MOLDOPS_TASK_GPU_IMAGE";
/// Environment variable whose value, when set, replaces [`KubeSettings::data_volume_claim`]
/// (`none`: no claim): the deployment's shared-volume option sets it on the runner, so that
/// one pipeline definition serves a bucket install and a single-node one.
pub const TASK_DATA_CLAIM_ENV: &str = "MOLDOPS_TASK_DATA_CLAIM";

impl KubeSettings {
    /// The settings with what the runner's environment (`var`) gives for [`TASK_IMAGE_ENV`],
    /// [`TASK_GPU_IMAGE_ENV`] and [`TASK_DATA_CLAIM_ENV`] (blank values are ignored) in place
    /// of the definition's.
    pub fn with_runner_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let given = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(image) = given(TASK_IMAGE_ENV) {
            self.image = image;
        }
        if let Some(image) = given(TASK_GPU_IMAGE_ENV) {
            self.gpu_image = Some(image);
        }
        if let Some(claim) = given(TASK_DATA_CLAIM_ENV) {
            self.data_volume_claim = (claim != "none").then_some(claim);
        }
        self
    }
}

/// Node selection for a class of tasks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// Node labels the pods must match (`nodeSelector`); default: none.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate; default: none.
    pub tolerations: Vec<Toleration>,
}

/// A pod toleration (the Kubernetes fields).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Toleration {
    /// Taint key (none with operator `Exists`: every taint).
    pub key: Option<String>,
    /// `Exists` or `Equal` (none: Kubernetes' default, `Equal`).
    pub operator: Option<String>,
    /// Taint value to match with operator `Equal`.
    pub value: Option<String>,
    /// Taint effect: `NoSchedule`, `PreferNoSchedule` or `NoExecute` (none: every effect).
    pub effect: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runners_environment_moves_both_task_images() {
        let s = KubeSettings {
            gpu_image: Some("ghcr.io/moldops/moldops-cloud-gpu:0.1.0".into()),
            ..Default::default()
        };
        let env = |name: &str| match name {
            TASK_IMAGE_ENV => Some("mirror.example/moldops-cloud:0.2.0".to_string()),
            TASK_GPU_IMAGE_ENV => Some("  ".to_string()),
            _ => None,
        };
        let moved = s.clone().with_runner_env(env);
        assert_eq!(moved.image, "mirror.example/moldops-cloud:0.2.0");
        assert_eq!(moved.gpu_image, s.gpu_image, "a blank value changes nothing");
        assert_eq!(s.clone().with_runner_env(|_| None), s, "no variable: the definition's images");
    }

    #[test]
    fn the_runners_environment_sets_or_clears_the_data_claim() {
        let s = KubeSettings { data_volume_claim: Some("moldops-data".into()), ..Default::default() };
        let claim =
            |value: &'static str| move |name: &str| (name == TASK_DATA_CLAIM_ENV).then(|| value.to_string());
        assert_eq!(s.clone().with_runner_env(claim("none")).data_volume_claim, None, "`none`: a bucket");
        let other = KubeSettings::default().with_runner_env(claim("plant-nfs"));
        assert_eq!(other.data_volume_claim.as_deref(), Some("plant-nfs"));
        assert_eq!(s.clone().with_runner_env(claim(" ")), s, "a blank value changes nothing");
    }
}
