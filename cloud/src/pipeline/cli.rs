//! The `moldops-cloud pipeline …` command line: `run`, `resume`, `runs`, `show`, `schedule`,
//! `definition`, `export`. Ctrl-C or SIGTERM cancels a run (running tasks are stopped, Jobs deleted);
//! the command exits non-zero unless the run succeeded.

use super::dag::{DEFAULT_TOML, PipelineDef};
use super::executor::Executor;
use super::kubernetes::KubeExecutor;
use super::local::LocalExecutor;
use super::state::{ExecutorKind, RunRecord, RunStore, new_run_id};
use super::{export, report, runner, schedule};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Arguments of `moldops-cloud pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The `pipeline` subcommand to run.
    #[command(subcommand)]
    pub command: PipelineCommand,
}

/// The `pipeline` subcommands.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Run the DAG once: tasks in dependency order, independent ones in parallel.
    Run(RunArgs),
    /// Continue a failed, cancelled or interrupted run from the tasks that did not succeed.
    Resume(ResumeArgs),
    /// List the runs.
    Runs(ListArgs),
    /// Show one run's tasks: status, attempts, exit codes, logs.
    Show(ShowArgs),
    /// Run the DAG on a cron schedule (long-running; Ctrl-C stops it).
    Schedule(ScheduleArgs),
    /// Print the pipeline definition (the built-in one unless --config), checked.
    Definition(DefinitionArgs),
    /// Write the DAG as an Airflow DAG file and/or Argo WorkflowTemplate + CronWorkflow.
    Export(ExportArgs),
}

/// Which definition to run and its variable overrides (shared by `run` and `schedule`).
#[derive(Debug, Clone, Args)]
pub struct DefArgs {
    /// Pipeline definition (TOML); default: the built-in learning DAG.
    #[arg(long, env = "MOLDOPS_PIPELINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder or `s3://bucket/prefix` (sets the variable `data`; runs are kept under
    /// DATA/pipeline/runs, in a bucket published as the run goes).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Set a variable, e.g. `--var seed=7` (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

/// Arguments of `pipeline run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The definition and its variables.
    #[command(flatten)]
    pub def: DefArgs,
    /// Where tasks run.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Run id (default: UTC time and a short suffix).
    #[arg(long)]
    pub run_id: Option<String>,
}

/// Arguments of `pipeline resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Id of the run to continue.
    pub run_id: String,
    /// Data folder (or `s3://bucket/prefix`) holding the run.
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Executor (default: the one the run started with).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,
}

/// Arguments of `pipeline runs`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data folder (or `s3://bucket/prefix`) holding the runs (under DATA/pipeline/runs).
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Print JSON records.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `pipeline show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Id of the run to show.
    pub run_id: String,
    /// Data folder (or `s3://bucket/prefix`) holding the run.
    #[arg(long, default_value = "moldops-data")]
    pub data_dir: PathBuf,
    /// Print the JSON record.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `pipeline schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The definition and its variables.
    #[command(flatten)]
    pub def: DefArgs,
    /// Where tasks run.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Cron expression (UTC), overriding the definition's `schedule`.
    #[arg(long)]
    pub cron: Option<String>,
    /// Stop after this many runs.
    #[arg(long)]
    pub max_runs: Option<u64>,
}

/// Arguments of `pipeline definition`.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// Pipeline definition (TOML) to check and print; default: the built-in learning DAG.
    #[arg(long, env = "MOLDOPS_PIPELINE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Arguments of `pipeline export`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true).args(["airflow", "argo"]))]
pub struct ExportArgs {
    /// The definition and its variables.
    #[command(flatten)]
    pub def: DefArgs,
    /// Write the Airflow DAG (Python) to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub airflow: Option<PathBuf>,
    /// Write the Argo WorkflowTemplate and CronWorkflow (YAML) to FILE (`-`: stdout).
    #[arg(long, value_name = "FILE")]
    pub argo: Option<PathBuf>,
    /// Service account of Argo's executor containers (the task container gets no token);
    /// default: `[kubernetes] service_account`, else `default`.
    #[arg(long, value_name = "NAME")]
    pub argo_executor_service_account: Option<String>,
}

/// Runs the command.
pub fn run(args: PipelineArgs) -> Result<()> {
    match args.command {
        PipelineCommand::Runs(a) => {
            let store = RunStore::open(&a.data_dir)?;
            let runs = store.list()?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", report::runs_table(&store, &runs));
            }
            Ok(())
        }
        PipelineCommand::Show(a) => {
            let store = RunStore::open(&a.data_dir)?;
            let run = store.load(&a.run_id)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", report::run_table(&store, &run));
            }
            Ok(())
        }
        PipelineCommand::Definition(a) => {
            match &a.config {
                Some(p) => {
                    PipelineDef::load(p)?;
                    print!("{}", std::fs::read_to_string(p)?);
                }
                None => {
                    PipelineDef::builtin()?;
                    print!("{DEFAULT_TOML}");
                }
            }
            Ok(())
        }
        PipelineCommand::Export(a) => export(&a),
        PipelineCommand::Run(a) => block_on(async move {
            let cancel = cancel_on_signal();
            let run = start(&a.def, a.executor, a.run_id, &cancel).await?;
            runner::outcome(&run)
        }),
        PipelineCommand::Resume(a) => block_on(async move {
            let cancel = cancel_on_signal();
            let store = RunStore::open(&a.data_dir)?;
            let lock = store.lock(&a.run_id)?;
            stop_when_taken_over(&lock, &cancel);
            let mut run = store.load(&a.run_id)?;
            if let Some(e) = a.executor {
                run.executor = e;
            }
            let exec = Arc::new(executor(run.executor, &run).await?);
            runner::prepare_resume(&mut run, &exec).await?;
            tracing::info!(run = %run.run_id, "resuming");
            let done = runner::execute(&store, &mut run, exec, cancel).await;
            store.publish();
            done?;
            print!("{}", report::run_table(&store, &run));
            runner::outcome(&run)
        }),
        PipelineCommand::Schedule(a) => block_on(async move {
            let cancel = cancel_on_signal();
            let def = load_def(&a.def)?;
            let expr = a.cron.clone().or(def.schedule.clone());
            let Some(expr) = expr else {
                bail!("no schedule: give --cron or set `schedule` in the definition")
            };
            let cron = schedule::parse_cron(&expr)?;
            tracing::info!(cron = %expr, "pipeline schedule started");
            let runs = schedule::run_schedule(&cron, a.max_runs, &cancel, || async {
                let run = start(&a.def, a.executor, None, &cancel).await?;
                runner::outcome(&run)
            })
            .await?;
            tracing::info!(runs, "pipeline schedule stopped");
            Ok(())
        }),
    }
}

/// `pipeline export`: renders every requested file before writing any.
fn export(a: &ExportArgs) -> Result<()> {
    let prepared = export::prepare(load_def(&a.def)?, &overrides(&a.def)?)?;
    let mut files = Vec::new();
    if let Some(path) = &a.airflow {
        files.push((path, export::airflow::render(&prepared)?));
    }
    if let Some(path) = &a.argo {
        let options =
            export::argo::ArgoOptions { executor_service_account: a.argo_executor_service_account.clone() };
        files.push((path, export::argo::render(&prepared, &options)?));
    }
    for (path, text) in files {
        if path.as_os_str() == "-" {
            print!("{text}");
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(file = %path.display(), "written");
        }
    }
    Ok(())
}

fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    moldops_common::runtime::block_on(f)?
}

/// Loads the definition (file or built-in) without resolving variables.
fn load_def(d: &DefArgs) -> Result<PipelineDef> {
    match &d.config {
        Some(p) => PipelineDef::load(p),
        None => PipelineDef::builtin(),
    }
}

fn overrides(d: &DefArgs) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for v in &d.vars {
        let Some((k, val)) = v.split_once('=') else { bail!("--var `{v}`: expected NAME=VALUE") };
        out.insert(k.trim().to_string(), val.to_string());
    }
    if let Some(dir) = &d.data_dir {
        out.insert("data".into(), dir.display().to_string());
    }
    Ok(out)
}

/// Starts a new run and runs it to its end; prints its table.
async fn start(
    d: &DefArgs,
    kind: ExecutorKind,
    run_id: Option<String>,
    cancel: &CancellationToken,
) -> Result<RunRecord> {
    let mut def = load_def(d)?;
    let run_id = run_id.unwrap_or_else(new_run_id);
    if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("run id `{run_id}`: use lowercase letters, digits and `-`");
    }
    let builtins = BTreeMap::from([("run_id".to_string(), run_id.clone())]);
    def.resolve(&overrides(d)?, &builtins)?;
    let store = RunStore::open(&def.data_dir())?;
    if store.run_dir(&run_id).join("run.json").exists() {
        bail!("run {run_id} already exists under {}", store.root().display());
    }
    let lock = store.lock(&run_id)?;
    stop_when_taken_over(&lock, cancel);
    let mut run = RunRecord::new(run_id, kind, def);
    let exec = Arc::new(executor(kind, &run).await?);
    tracing::info!(run = %run.run_id, dir = %store.run_dir(&run.run_id).display(), "pipeline run started");
    let done = runner::execute(&store, &mut run, exec, cancel.clone()).await;
    store.publish();
    done?;
    print!("{}", report::run_table(&store, &run));
    Ok(run)
}

async fn executor(kind: ExecutorKind, run: &RunRecord) -> Result<Executor> {
    Ok(match kind {
        ExecutorKind::Local => Executor::Local(LocalExecutor::new()?),
        ExecutorKind::Kubernetes => Executor::Kubernetes(Box::new(
            KubeExecutor::connect(
                run.definition.kubernetes.clone().with_runner_env(|v| std::env::var(v).ok()),
            )
            .await
            .context("kubernetes executor")?,
        )),
    })
}

/// Cancels the run when another runner took it over (records in a bucket: this runner's lease
/// could not be renewed in time), so that two runners never drive one run for long; this one's
/// later records are refused by the bucket (the other's replaced them).
fn stop_when_taken_over(lock: &super::state::RunLock, cancel: &CancellationToken) {
    let Some(flag) = lock.taken_over() else { return };
    let cancel = cancel.clone();
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!("another runner took this run over: stopping it here");
                cancel.cancel();
            }
        }
    });
}

/// A token cancelled on Ctrl-C or SIGTERM, which stops the run's running tasks.
fn cancel_on_signal() -> CancellationToken {
    let token = moldops_common::shutdown::on_signal();
    let watched = token.clone();
    tokio::spawn(async move {
        watched.cancelled().await;
        tracing::warn!("cancelling the run: stopping running tasks");
    });
    token
}
