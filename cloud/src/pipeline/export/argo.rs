//! The Argo Workflows manifests of an [`Export`]: a `WorkflowTemplate` whose entrypoint `main`
//! is a DAG of the tasks, each a container template `task-NAME` with the executor's pod, and a
//! `CronWorkflow` starting it on the definition's schedule (none without one). Argo 3.6+.
//!
//! The run id becomes `{{workflow.name}}` and the attempt `{{retries}}` (Argo counts retries
//! from 0). Argo reads any other `{{…}}` as a template tag and has no escape for it: text that
//! would hold one is refused.

use super::{Export, ExportTask, Part, parts, yaml};
use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{Container, LocalObjectReference, PodSecurityContext, Toleration, Volume};
use serde::Serialize;
use std::collections::BTreeMap;

const API_VERSION: &str = "argoproj.io/v1alpha1";
/// Name of the DAG template (task templates are `task-NAME`, so no task can take it).
const ENTRYPOINT: &str = "main";
/// The run id in Argo: the Workflow's name.
const RUN_ID: &str = "{{workflow.name}}";
/// The attempt in Argo: the retry count of the task's node (0 first).
const ATTEMPT: &str = "{{retries}}";

/// Options of the Argo export that the definition does not hold.
#[derive(Debug, Clone, Default)]
pub struct ArgoOptions {
    /// Service account of Argo's executor (init and wait containers); default: the tasks'
    /// `service_account`, else `default`. The task container itself gets no API token.
    pub executor_service_account: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkflowSpec {
    entrypoint: &'static str,
    parallelism: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_name: Option<String>,
    automount_service_account_token: bool,
    executor: ExecutorConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_pull_secrets: Option<Vec<LocalObjectReference>>,
    templates: Vec<Template>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutorConfig {
    service_account_name: String,
}

/// A template: the DAG (`dag`) or a task's container (the rest).
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Template {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dag: Option<Dag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<TemplateMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_selector: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tolerations: Option<Vec<Toleration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<PodSecurityContext>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_strategy: Option<RetryStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_deadline_seconds: Option<u64>,
}

#[derive(Serialize)]
struct Dag {
    tasks: Vec<DagTask>,
}

#[derive(Serialize)]
struct DagTask {
    name: String,
    template: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<String>,
}

#[derive(Serialize)]
struct TemplateMetadata {
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryStrategy {
    limit: u32,
    retry_policy: &'static str,
    backoff: Backoff,
}

#[derive(Serialize)]
struct Backoff {
    duration: String,
    factor: serde_json::Value,
    cap: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CronWorkflowSpec {
    schedules: Vec<String>,
    timezone: &'static str,
    concurrency_policy: &'static str,
    workflow_spec: CronWorkflowTarget,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CronWorkflowTarget {
    workflow_template_ref: TemplateRef,
}

#[derive(Serialize)]
struct TemplateRef {
    name: String,
}

/// The YAML: the `WorkflowTemplate`, then (with a schedule) `---` and the `CronWorkflow`.
pub fn render(export: &Export, options: &ArgoOptions) -> Result<String> {
    let name = object_name(&export.name)?;
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "moldops".to_string()),
        ("app.kubernetes.io/component".to_string(), "pipeline".to_string()),
    ]);
    let metadata =
        || Metadata { name: name.clone(), namespace: export.namespace.clone(), labels: labels.clone() };
    // Pod settings every task shares come from the first task's pod.
    let first = export.tasks.first().map(|t| &t.pod);
    let task_account = first.and_then(|p| p.service_account_name.clone());
    // The task container gets no API token, as in the executor's pods; Argo's own containers
    // need one, of this account (what they would use anyway: the pods' own, else `default`).
    let executor_account =
        options.executor_service_account.clone().or(task_account.clone()).unwrap_or_else(|| "default".into());
    let mut templates = vec![Template {
        name: ENTRYPOINT.into(),
        dag: Some(Dag {
            tasks: export
                .tasks
                .iter()
                .map(|t| DagTask {
                    name: t.name.clone(),
                    template: template_name(&t.name),
                    dependencies: t.deps.clone(),
                })
                .collect(),
        }),
        ..Template::default()
    }];
    for t in &export.tasks {
        templates.push(task_template(t)?);
    }
    let template = Manifest {
        api_version: API_VERSION,
        kind: "WorkflowTemplate",
        metadata: metadata(),
        spec: WorkflowSpec {
            entrypoint: ENTRYPOINT,
            parallelism: export.max_parallel,
            service_account_name: task_account,
            automount_service_account_token: false,
            executor: ExecutorConfig { service_account_name: executor_account },
            image_pull_secrets: first.and_then(|p| p.image_pull_secrets.clone()),
            templates,
        },
    };
    let mut out = yaml::to_yaml(&serde_json::to_value(&template)?);
    if let Some(schedule) = &export.schedule {
        let cron = Manifest {
            api_version: API_VERSION,
            kind: "CronWorkflow",
            metadata: metadata(),
            spec: CronWorkflowSpec {
                schedules: vec![schedule.clone()],
                timezone: "UTC",
                concurrency_policy: "Forbid",
                workflow_spec: CronWorkflowTarget { workflow_template_ref: TemplateRef { name } },
            },
        };
        out.push_str("---\n");
        out.push_str(&yaml::to_yaml(&serde_json::to_value(&cron)?));
    }
    Ok(out)
}

/// The container template of a task: the executor's container and pod settings, labels, the
/// retry policy and time limit.
fn task_template(t: &ExportTask) -> Result<Template> {
    let pod = &t.pod;
    let Some(mut container) = pod.containers.first().cloned() else {
        bail!("task `{}`: the pod has no container", t.name)
    };
    container.name = "main".into();
    container.image = container.image.as_deref().map(|i| argo_text(&t.name, i)).transpose()?;
    container.command = container.command.map(|c| argo_texts(&t.name, &c)).transpose()?;
    container.args = container.args.map(|a| argo_texts(&t.name, &a)).transpose()?;
    for e in container.env.iter_mut().flatten() {
        if let Some(v) = &e.value {
            e.value = Some(argo_text(&t.name, v)?);
        }
    }
    let labels =
        t.labels.iter().map(|(k, v)| Ok((k.clone(), argo_text(&t.name, v)?))).collect::<Result<_>>()?;
    Ok(Template {
        name: template_name(&t.name),
        metadata: Some(TemplateMetadata { labels }),
        container: Some(container),
        volumes: pod.volumes.clone().filter(|v| !v.is_empty()),
        node_selector: pod.node_selector.clone().filter(|n| !n.is_empty()),
        tolerations: pod.tolerations.clone().filter(|n| !n.is_empty()),
        security_context: pod.security_context.clone(),
        retry_strategy: Some(RetryStrategy {
            limit: t.retries,
            // Like `pipeline run`: any failed attempt is retried, a lost pod or a time-out too.
            retry_policy: "Always",
            backoff: Backoff {
                duration: seconds(t.backoff_s),
                factor: factor(t.backoff_factor),
                cap: seconds(t.backoff_max_s),
            },
        }),
        active_deadline_seconds: t.timeout_s,
        ..Template::default()
    })
}

fn template_name(task: &str) -> String {
    format!("task-{task}")
}

/// A Go duration: `30s`, `0.5s`.
fn seconds(s: f64) -> String {
    format!("{s}s")
}

/// Argo's factor is an integer or a string: whole factors as integers.
fn factor(f: f64) -> serde_json::Value {
    if f.fract() == 0.0 && f < u32::MAX as f64 { (f as u32).into() } else { f.to_string().into() }
}

/// The Argo object name of a definition name: lowercase, other characters as `-`; at most 52
/// characters (Argo appends a timestamp to a CronWorkflow's name).
pub fn object_name(name: &str) -> Result<String> {
    let mut out = String::new();
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() || out.len() > 52 || !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "pipeline name `{name}` gives the Argo name `{out}`: it needs 1-52 letters, digits or `-`, \
             starting with a letter"
        );
    }
    Ok(out)
}

fn argo_texts(task: &str, items: &[String]) -> Result<Vec<String>> {
    items.iter().map(|s| argo_text(task, s)).collect()
}

/// The text Argo substitutes to `s`: the placeholders as Argo's variables; refused when it
/// would hold any other `{{…}}` tag (read the way Argo does: from `{{` to the next `}}`).
pub fn argo_text(task: &str, s: &str) -> Result<String> {
    let out: String = parts(s)
        .into_iter()
        .map(|p| match p {
            Part::RunId => RUN_ID,
            Part::Attempt => ATTEMPT,
            Part::Lit(l) => l,
        })
        .collect();
    let mut rest = out.as_str();
    while let Some(open) = rest.find("{{") {
        let tag_end = rest[open..].find("}}").map(|e| open + e + 2).unwrap_or(rest.len());
        let tag = &rest[open..tag_end];
        if tag != RUN_ID && tag != ATTEMPT {
            bail!(
                "task `{task}`: `{s}` holds `{tag}`, which Argo would read as a template tag (no escape exists)"
            );
        }
        rest = &rest[tag_end..];
    }
    Ok(out)
}
