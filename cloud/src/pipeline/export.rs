//! `pipeline export`: the definition as an Airflow DAG ([`airflow`]) or an Argo
//! `WorkflowTemplate` + `CronWorkflow` ([`argo`]), every task the very pod the Kubernetes
//! executor runs ([`jobspec::pod_spec`]), with the scheduler's own run id and attempt number.
//!
//! The run id and attempt travel as placeholders: variables are resolved with the built-in
//! `run_id` set to the text `{run_id}` (so it stays exactly where the executor would put the id)
//! and the pod is built with run id `{run_id}` and attempt `{attempt}`; each exporter then turns
//! them into its own template expressions ([`Part`]). A definition where either text appears
//! literally is refused, so a placeholder always means what the executor would substitute.
//! `when_exists` becomes the environment variable [`SKIP_UNLESS_EXISTS_ENV`]: `moldops-cloud`
//! checks it before running any subcommand (see [`skip_unless_exists`]).

pub mod airflow;
pub mod argo;
mod yaml;

use super::dag::{PipelineDef, TaskDefaults};
use super::jobspec::{self, PodInput};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{EnvVar, PodSpec};
use std::collections::BTreeMap;
use std::path::Path;

/// Environment variable holding a task's `when_exists` path in exported pods.
pub const SKIP_UNLESS_EXISTS_ENV: &str = "MOLDOPS_SKIP_UNLESS_EXISTS";
/// Exit code `moldops-cloud` ends with when that path is absent (default 0).
pub const SKIP_EXIT_CODE_ENV: &str = "MOLDOPS_SKIP_EXIT_CODE";

/// Placeholder of the run id in exported strings.
const RUN_ID: &str = "{run_id}";
/// Placeholder of the attempt number in exported strings.
const ATTEMPT: &str = "{attempt}";

/// A definition ready to export: variables resolved, each task's pod built.
#[derive(Debug, Clone)]
pub struct Export {
    /// The definition's `name`.
    pub name: String,
    /// Cron expression (5 fields, UTC), if the definition has one.
    pub schedule: Option<String>,
    /// How many tasks may run at the same time.
    pub max_parallel: usize,
    /// Namespace of the pods (`[kubernetes] namespace`); none: the scheduler's default.
    pub namespace: Option<String>,
    /// The tasks in dependency order.
    pub tasks: Vec<ExportTask>,
}

/// One task: its place in the DAG, its retry policy and its pod.
#[derive(Debug, Clone)]
pub struct ExportTask {
    /// Task name.
    pub name: String,
    /// Tasks that must be done first.
    pub deps: Vec<String>,
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// Wait before the first retry, seconds.
    pub backoff_s: f64,
    /// Growth of the wait per retry.
    pub backoff_factor: f64,
    /// Cap on the wait (the larger of `backoff_max_s` and the first wait), seconds.
    pub backoff_max_s: f64,
    /// Attempt time limit, seconds.
    pub timeout_s: Option<u64>,
    /// Skipped when this path (inside the pod) is absent.
    pub when_exists: Option<String>,
    /// The labels of the executor's pod (run id and attempt as placeholders).
    pub labels: BTreeMap<String, String>,
    /// The executor's pod (run id and attempt as placeholders), plus [`SKIP_UNLESS_EXISTS_ENV`].
    pub pod: PodSpec,
}

/// Piece of an exported string: literal text or a value the scheduler fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text as it is.
    Lit(&'a str),
    /// The run id.
    RunId,
    /// The attempt number.
    Attempt,
}

/// Splits `s` at the run id and attempt placeholders.
pub fn parts(s: &str) -> Vec<Part<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let next = [(RUN_ID, Part::RunId), (ATTEMPT, Part::Attempt)]
            .into_iter()
            .filter_map(|(p, part)| rest.find(p).map(|at| (at, p.len(), part)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, len, part)) = next else { break };
        if at > 0 {
            out.push(Part::Lit(&rest[..at]));
        }
        out.push(part);
        rest = &rest[at + len..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(Part::Lit(rest));
    }
    out
}

/// Resolves the definition's variables (`overrides` as `--var`) and builds every task's pod.
/// Refuses what no scheduler could run the same way: a cron schedule with seconds, a literal
/// `{run_id}` or `{attempt}`, a `when_exists` on a program other than `moldops-cloud`.
pub fn prepare(mut def: PipelineDef, overrides: &BTreeMap<String, String>) -> Result<Export> {
    let builtins = BTreeMap::from([("run_id".to_string(), RUN_ID.to_string())]);
    let mut check = def.clone();
    def.resolve(overrides, &builtins)?;
    // The same definition resolved with a sample run id: the placeholders must be the only
    // difference, else one of them is literal text that an exporter would wrongly replace.
    let sample = ("run-1", "1");
    let sample_builtins = BTreeMap::from([("run_id".to_string(), sample.0.to_string())]);
    check.resolve(overrides, &sample_builtins)?;
    let mut errs = Vec::new();
    if let Some(s) = &def.schedule
        && s.split_whitespace().count() != 5
    {
        errs.push(format!("schedule `{s}`: Airflow and Argo take 5-field cron expressions (no seconds)"));
    }
    let mut tasks = Vec::new();
    for name in def.order()? {
        let (Some(t), Some(c)) = (def.task(&name), check.task(&name)) else { continue };
        let s = &def.kubernetes;
        let pod = PodInput { settings: s, task: t, run_id: RUN_ID, attempt: ATTEMPT };
        let with_sample = PodInput { settings: s, task: c, run_id: sample.0, attempt: sample.1 };
        let built = (jobspec::pod_spec(&pod), jobspec::task_labels(&pod));
        let expected = (jobspec::pod_spec(&with_sample), jobspec::task_labels(&with_sample));
        let text = serde_json::to_string(&built)?.replace(RUN_ID, sample.0).replace(ATTEMPT, sample.1);
        if text != serde_json::to_string(&expected)? {
            errs.push(format!(
                "task `{name}`: the text `{RUN_ID}` or `{ATTEMPT}` appears literally, but an export uses \
                 it for the run id or attempt number"
            ));
        }
        if let Some(n) = t.shards.filter(|n| *n > 1) {
            errs.push(format!(
                "task `{name}`: shards = {n} runs as a Kubernetes Indexed Job, which an exported task \
                 (one pod) is not; export a definition without shards"
            ));
        }
        let program = t.program.as_deref().unwrap_or(&s.program);
        if t.when_exists.is_some() && Path::new(program).file_name() != Some("moldops-cloud".as_ref()) {
            errs.push(format!(
                "task `{name}`: when_exists is checked by moldops-cloud itself, not by `{program}`"
            ));
        }
        let (mut pod, labels) = built;
        if let (Some(path), Some(c)) = (&t.when_exists, pod.containers.first_mut()) {
            add_env(c.env.get_or_insert_default(), SKIP_UNLESS_EXISTS_ENV, path);
        }
        let d: &TaskDefaults = &def.defaults;
        let backoff_s = t.backoff_s.unwrap_or(d.backoff_s).max(0.0);
        tasks.push(ExportTask {
            name: name.clone(),
            deps: t.deps.clone(),
            retries: t.retries.unwrap_or(d.retries),
            backoff_s,
            backoff_factor: d.backoff_factor.max(1.0),
            backoff_max_s: d.backoff_max_s.max(backoff_s),
            timeout_s: t.timeout_s.or(d.timeout_s),
            when_exists: t.when_exists.clone(),
            labels,
            pod,
        });
    }
    if !errs.is_empty() {
        bail!("the definition `{}` cannot be exported:\n  {}", def.name, errs.join("\n  "));
    }
    Ok(Export {
        name: def.name,
        schedule: def.schedule,
        max_parallel: def.max_parallel,
        namespace: def.kubernetes.namespace,
        tasks,
    })
}

/// Sets `name` in a container's environment, keeping it sorted by name as the executor's is.
pub(crate) fn add_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    env.retain(|e| e.name != name);
    env.push(EnvVar { name: name.into(), value: Some(value.into()), value_from: None });
    env.sort_by(|a, b| a.name.cmp(&b.name));
}

/// What `moldops-cloud` does first: when [`SKIP_UNLESS_EXISTS_ENV`] names a path that does not
/// exist, logs `skipped: PATH does not exist` and returns the exit code to end with
/// ([`SKIP_EXIT_CODE_ENV`], default 0); otherwise (or without the variable) `None`.
pub fn skip_unless_exists(
    var: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> Result<bool>,
) -> Result<Option<u8>> {
    let Some(path) = var(SKIP_UNLESS_EXISTS_ENV).filter(|p| !p.is_empty()) else { return Ok(None) };
    if exists(Path::new(&path)).with_context(|| format!("checking whether {path} exists"))? {
        return Ok(None);
    }
    let code = match var(SKIP_EXIT_CODE_ENV) {
        Some(c) => {
            c.trim().parse::<u8>().with_context(|| format!("{SKIP_EXIT_CODE_ENV}=`{c}`: not 0-255"))?
        }
        None => 0,
    };
    tracing::info!(exit_code = code, "skipped: {path} does not exist");
    Ok(Some(code))
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
