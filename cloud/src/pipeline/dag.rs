//! The pipeline definition (TOML): tasks with their command-line arguments, dependencies,
//! retries, back-off, resources, GPU flag and secrets; variables substituted into the
//! arguments; validation (unknown or cyclic dependencies, names unfit for Kubernetes — every
//! problem listed at once); and the dependency order.

use super::kube_settings::KubeSettings;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The built-in learning DAG (`moldops-cloud pipeline definition` prints it).
pub const DEFAULT_TOML: &str = include_str!("learning.toml");

/// A whole pipeline: what `pipeline.toml` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineDef {
    /// Name shown in run records.
    #[serde(default = "default_name")]
    pub name: String,
    /// How many tasks may run at the same time.
    #[serde(default = "default_parallel")]
    pub max_parallel: usize,
    /// Cron expression for `pipeline schedule` (5 fields, as a Kubernetes CronJob; or 6 with seconds).
    #[serde(default)]
    pub schedule: Option<String>,
    /// Values substituted for `{name}` in task arguments (they may refer to each other).
    /// `data` is the data folder; run state goes under `{data}/pipeline/runs`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Settings every task inherits unless it sets its own.
    #[serde(default)]
    pub defaults: TaskDefaults,
    /// How tasks become Kubernetes Jobs (used by the kubernetes executor only).
    #[serde(default)]
    pub kubernetes: KubeSettings,
    /// The tasks.
    #[serde(default, rename = "task")]
    pub tasks: Vec<TaskDef>,
}

fn default_name() -> String {
    "learning".into()
}
fn default_parallel() -> usize {
    2
}

/// Retry and timeout settings shared by every task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TaskDefaults {
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// Wait before the first retry, seconds.
    pub backoff_s: f64,
    /// Each further retry waits this many times longer.
    pub backoff_factor: f64,
    /// Cap on the wait between attempts, seconds; a first wait (`backoff_s`, the task's or
    /// these defaults') longer than this is still waited in full, and so is every later one.
    pub backoff_max_s: f64,
    /// An attempt running longer than this is stopped and counts as failed (none: no limit).
    pub timeout_s: Option<u64>,
}

impl Default for TaskDefaults {
    fn default() -> Self {
        Self { retries: 1, backoff_s: 30.0, backoff_factor: 2.0, backoff_max_s: 600.0, timeout_s: None }
    }
}

/// The `moldops-cloud` commands that take `--shard` (a task with `shards = N` runs one).
pub const SHARDED_COMMANDS: [&str; 3] = ["etl", "train", "score"];

/// One task: a command line plus how to run it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    /// Unique name: 1-30 lowercase letters, digits and `-`, starting with a letter and not
    /// ending with `-` (it becomes part of a Job name).
    pub name: String,
    /// Tasks that must succeed first.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Program to run; default: the moldops-cloud binary itself (locally the running executable,
    /// in a Job the image's `moldops-cloud`).
    #[serde(default)]
    pub program: Option<String>,
    /// Arguments, e.g. `["etl", "--lake", "{lake}"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Run the task only if this path exists; otherwise it is marked skipped (counts as done).
    #[serde(default)]
    pub when_exists: Option<String>,
    /// Extra attempts after a failed one; default: `[defaults] retries`.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry, seconds; default: `[defaults] backoff_s` (growth factor and
    /// cap always come from `[defaults]`).
    #[serde(default)]
    pub backoff_s: Option<f64>,
    /// Attempt time limit, seconds; default: `[defaults] timeout_s`.
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Needs a GPU: the Job requests `nvidia.com/gpu` and goes to the GPU nodes.
    #[serde(default)]
    pub gpu: bool,
    /// CPU/memory requests and limits for the Job.
    #[serde(default)]
    pub resources: Resources,
    /// Secrets this task (and only this task) gets in Kubernetes.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// Fan-out over the machines: the task runs as this many shards (2 to
    /// [`crate::shard::MAX_SHARDS`]), shard I with `--shard I/N` after its arguments, and
    /// succeeds when every shard does. Kubernetes runs them as one Indexed Job of N pods at
    /// once; the local executor one after another. For commands that take `--shard` (`etl`,
    /// `train`, `score`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
}

/// Requests and limits of a task's container (Kubernetes quantities).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU request, e.g. `"2"` or `"500m"` (none: no request).
    pub cpu: Option<String>,
    /// Memory request, e.g. `"8Gi"`; also the memory limit unless `memory_limit` is set.
    pub memory: Option<String>,
    /// CPU limit (none: no limit).
    pub cpu_limit: Option<String>,
    /// Memory limit; default: the memory request (ignored without one).
    pub memory_limit: Option<String>,
    /// GPUs requested when `gpu = true` (default 1).
    pub gpus: Option<u32>,
}

/// A Kubernetes Secret handed to one task: as environment variables (every key), or as files
/// under `mount` when set; `env` adds variables to the Job only (e.g. a mounted file's path).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Kubernetes Secret, in the Jobs' namespace.
    pub secret: String,
    /// Absolute path where the Secret's keys appear as read-only files (mode 0400); none: every
    /// key becomes an environment variable.
    #[serde(default)]
    pub mount: Option<String>,
    /// Extra environment variables of the task's Job only (e.g. a mounted file's path).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The pod starts without it when the Secret does not exist (e.g. the bucket's keys where
    /// the cluster gives workload identity instead).
    #[serde(default)]
    pub optional: bool,
}

/// How long to wait before attempt `next` (2, 3, …) of a task: `first × factor^(next−2)`,
/// where `first` is the task's `backoff_s`, else `[defaults] backoff_s`, and the factor
/// (`[defaults] backoff_factor`) and cap always come from `defaults`; the cap is the larger of
/// `backoff_max_s` and `first`.
pub fn backoff(defaults: &TaskDefaults, task: &TaskDef, next: u32) -> std::time::Duration {
    let first = task.backoff_s.unwrap_or(defaults.backoff_s).max(0.0);
    let exp = next.saturating_sub(2) as i32;
    let secs = (first * defaults.backoff_factor.max(1.0).powi(exp)).min(defaults.backoff_max_s.max(first));
    std::time::Duration::from_secs_f64(secs)
}

impl TaskDef {
    /// Attempts allowed in total (1 + retries).
    pub fn max_attempts(&self, defaults: &TaskDefaults) -> u32 {
        1 + self.retries.unwrap_or(defaults.retries)
    }
    /// The attempt time limit.
    pub fn timeout(&self, defaults: &TaskDefaults) -> Option<std::time::Duration> {
        self.timeout_s.or(defaults.timeout_s).map(std::time::Duration::from_secs)
    }

    /// The arguments of each process the task runs: its own, or with `shards = N` one list per
    /// shard, each ending in `--shard I/N`.
    pub fn shard_args(&self) -> Vec<Vec<String>> {
        match self.shards.filter(|n| *n > 1) {
            None => vec![self.args.clone()],
            Some(n) => (0..n)
                .map(|i| {
                    self.args.iter().cloned().chain(["--shard".to_string(), format!("{i}/{n}")]).collect()
                })
                .collect(),
        }
    }
}

impl PipelineDef {
    /// The built-in learning DAG.
    pub fn builtin() -> Result<Self> {
        Self::parse(DEFAULT_TOML, "the built-in learning DAG")
    }

    /// Reads and checks a definition file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a definition; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let def: Self = toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
        def.check().with_context(|| format!("checking {origin}"))?;
        Ok(def)
    }

    /// Every problem at once: names, duplicates, unknown dependencies, cycles, bad numbers.
    pub fn check(&self) -> Result<()> {
        let mut errs = Vec::new();
        let names: BTreeSet<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
        if self.tasks.is_empty() {
            errs.push("no [[task]] defined".to_string());
        }
        if names.len() != self.tasks.len() {
            let mut seen = BTreeSet::new();
            for t in &self.tasks {
                if !seen.insert(&t.name) {
                    errs.push(format!("task `{}` is defined twice", t.name));
                }
            }
        }
        if self.max_parallel == 0 {
            errs.push("max_parallel must be at least 1".into());
        }
        let d = &self.defaults;
        if !(d.backoff_s >= 0.0 && d.backoff_factor >= 1.0 && d.backoff_max_s >= 0.0) {
            errs.push("[defaults]: backoff_s and backoff_max_s must be ≥ 0, backoff_factor ≥ 1".into());
        }
        for t in &self.tasks {
            if !valid_name(&t.name) {
                errs.push(format!(
                    "task `{}`: name must be 1-30 lowercase letters, digits or `-`, starting with a letter \
                     and not ending with `-`",
                    t.name
                ));
            }
            for dep in &t.deps {
                if !names.contains(dep.as_str()) {
                    errs.push(format!("task `{}`: unknown dependency `{dep}`", t.name));
                } else if dep == &t.name {
                    errs.push(format!("task `{}` depends on itself", t.name));
                }
            }
            if t.backoff_s.is_some_and(|b| b.is_nan() || b < 0.0) {
                errs.push(format!("task `{}`: backoff_s must be ≥ 0", t.name));
            }
            if let Some(n) = t.shards {
                if !(1..=crate::shard::MAX_SHARDS).contains(&n) {
                    errs.push(format!("task `{}`: shards must be 1 to {}", t.name, crate::shard::MAX_SHARDS));
                }
                if t.args.iter().any(|a| a == "--shard" || a.starts_with("--shard=")) {
                    errs.push(format!("task `{}`: gives --shard itself and has shards = {n}", t.name));
                }
                let takes_shard = t.program.is_none()
                    && SHARDED_COMMANDS.contains(&t.args.first().map(String::as_str).unwrap_or_default());
                if n > 1 && !takes_shard {
                    errs.push(format!(
                        "task `{}`: shards = {n} needs a moldops-cloud command that takes --shard ({})",
                        t.name,
                        SHARDED_COMMANDS.join(", ")
                    ));
                }
            }
            for s in self.kubernetes.secrets.iter().chain(&t.secrets) {
                if s.mount.as_deref().is_some_and(|m| !m.starts_with('/')) {
                    errs.push(format!(
                        "task `{}`: secret `{}` mount must be an absolute path",
                        t.name, s.secret
                    ));
                }
            }
        }
        if let Some(expr) = &self.schedule
            && let Err(e) = super::schedule::parse_cron(expr)
        {
            errs.push(format!("schedule: {e:#}"));
        }
        if errs.is_empty()
            && let Err(e) = self.order()
        {
            errs.push(format!("{e:#}"));
        }
        if errs.is_empty() { Ok(()) } else { bail!("{}", errs.join("\n  ")) }
    }

    /// Task names in an order where every task comes after its dependencies (ties in
    /// definition order). Fails naming the tasks on a cycle.
    pub fn order(&self) -> Result<Vec<String>> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::new();
        while out.len() < self.tasks.len() {
            let before = out.len();
            for t in &self.tasks {
                if !done.contains(t.name.as_str()) && t.deps.iter().all(|d| done.contains(d.as_str())) {
                    done.insert(&t.name);
                    out.push(t.name.clone());
                }
            }
            if out.len() == before {
                let left: Vec<&str> =
                    self.tasks.iter().map(|t| t.name.as_str()).filter(|n| !done.contains(n)).collect();
                bail!("dependency cycle among tasks: {}", left.join(", "));
            }
        }
        Ok(out)
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<&TaskDef> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Every task that depends on `name`, directly or not.
    pub fn dependents(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(n) = frontier.pop() {
            for t in &self.tasks {
                if t.deps.contains(&n) && out.insert(t.name.clone()) {
                    frontier.push(t.name.clone());
                }
            }
        }
        out
    }

    /// Applies `overrides` to the variables, then substitutes every `{var}` in the tasks'
    /// program, arguments, environment and `when_exists`. The variables in `builtins` are
    /// available too (`pipeline run` passes only `run_id`; there is no `{run_dir}`). Unknown
    /// lowercase `{names}` are an error (a typo would otherwise reach the command line); other
    /// braces (`${HOME}`, `{}`) are left alone.
    pub fn resolve(
        &mut self,
        overrides: &BTreeMap<String, String>,
        builtins: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.vars.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut vars = builtins.clone();
        vars.extend(self.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        // Variables may use each other; a few rounds settle any sane nesting.
        for _ in 0..8 {
            let snapshot = vars.clone();
            for v in vars.values_mut() {
                *v = substitute(v, &snapshot, false)?;
            }
        }
        let mut errs = Vec::new();
        for t in &mut self.tasks {
            let mut sub = |s: &mut String| match substitute(s, &vars, true) {
                Ok(v) => *s = v,
                Err(e) => errs.push(format!("task `{}`: {e:#}", t.name)),
            };
            t.args.iter_mut().for_each(&mut sub);
            t.env.values_mut().for_each(&mut sub);
            if let Some(p) = t.program.as_mut() {
                sub(p);
            }
            if let Some(p) = t.when_exists.as_mut() {
                sub(p);
            }
        }
        self.vars = vars.into_iter().filter(|(k, _)| !builtins.contains_key(k)).collect();
        if errs.is_empty() { Ok(()) } else { bail!("{}", errs.join("\n  ")) }
    }

    /// The data folder (`vars.data`, default `moldops-data`).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.vars.get("data").map(Into::into).unwrap_or_else(|| "moldops-data".into())
    }
}

/// 1-30 of `[a-z0-9-]`, starting with a letter, not ending with `-`.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 30
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && !n.ends_with('-')
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Replaces `{name}` (name: lowercase letters, digits, `_`) by its value.
fn substitute(s: &str, vars: &BTreeMap<String, String>, strict: bool) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let end = after.find('}');
        let name = end.map(|e| &after[..e]);
        match name {
            Some(n)
                if !n.is_empty()
                    && n.starts_with(|c: char| c.is_ascii_lowercase())
                    && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                match vars.get(n) {
                    Some(v) => out.push_str(v),
                    None if strict => bail!("unknown variable `{{{n}}}` in `{s}`"),
                    None => out.push_str(&rest[open..open + n.len() + 2]),
                }
                rest = &after[n.len() + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[path = "dag_tests.rs"]
mod tests;
