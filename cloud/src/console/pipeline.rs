//! The pipeline page: the learning pipeline's runs, newest first, each task's state, attempts,
//! duration and error, a task's log (its tail), and — on a console started with
//! `--pipeline-start` — starting a run: `pipeline run` as a child process of the console
//! (the same binary), its output in `pipeline/console-starts/{run}.log`, audited.

use super::audit::{self, Action, Kind};
use super::{Failure, Page, Shared};
use crate::pipeline::RunStore;
use crate::pipeline::state::{ExecutorKind, RunRecord, RunStatus, TaskStatus};
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use std::path::PathBuf;

/// Runs listed.
const RUNS: usize = 30;

/// Tail of a log shown.
const LOG_TAIL: u64 = 64 << 10;

/// One task of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// The task's name.
    pub name: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// Attempts made.
    pub attempts: usize,
    /// Seconds the last attempt ran (so far, while running).
    pub seconds: Option<f64>,
    /// The last attempt's error, or why the task was skipped or not run.
    pub note: Option<String>,
    /// Whether a log can be shown.
    pub has_log: bool,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// Its id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Where it stands.
    pub status: RunStatus,
    /// When it was created.
    pub created: String,
    /// Seconds from creation to its end (or now).
    pub seconds: f64,
    /// Its tasks in dependency order.
    pub tasks: Vec<TaskView>,
}

/// How the console starts runs.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The definition (`None`: the built-in learning DAG).
    pub config: Option<PathBuf>,
    /// Where the tasks run.
    pub executor: ExecutorKind,
    /// The data location the runs are given (`--data-dir`): the console's own folder, or the
    /// `s3://` URL its copy follows, so that a run writes the bucket, not the copy.
    pub data: PathBuf,
    /// Folder of the runs' console output (`{run}.log`): `pipeline/console-starts` in a data
    /// folder; with a bucket, one beside the copy (output the runner writes as it goes, which
    /// the copy's pulls would replace).
    pub logs: PathBuf,
}

/// The page.
#[derive(Debug, Clone, Serialize)]
struct PipelineView {
    /// Whether this console may start runs.
    can_start: bool,
    runs: Vec<RunView>,
}

/// `GET /pipeline`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let data = c.folders.data.clone();
    let mut runs = super::blocking(move || RunStore::new(&data).list()).await?;
    runs.sort_by_key(|r| std::cmp::Reverse(r.created));
    runs.truncate(RUNS);
    let view = PipelineView { can_start: c.pipeline.is_some(), runs: runs.iter().map(run_view).collect() };
    c.render("pipeline.html", "pipeline", "Pipeline", &headers, view)
}

/// The start form.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    /// Why (audited).
    #[serde(default)]
    pub comment: String,
}

/// `POST /pipeline/start`: signed in only, on a console started with `--pipeline-start`.
pub async fn start(
    State(c): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<StartForm>,
) -> Result<Response, Failure> {
    let user = c.writer(&headers)?;
    let Some(launch) = c.pipeline.clone() else {
        return Err(Failure::bad_request("this console does not start runs: start it with --pipeline-start"));
    };
    let comment = audit::comment(&form.comment)?;
    let run_id = crate::pipeline::state::new_run_id();
    let data = launch.data.clone();
    let log_path = launch.logs.join(format!("{run_id}.log"));
    let path = log_path.clone();
    let log = c
        .writing(move || {
            use anyhow::Context as _;
            let dir = path.parent().context("the log's folder")?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))
        })
        .await?;
    let exe = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding this program: {e}"))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["pipeline", "run", "--run-id", &run_id, "--data-dir"]).arg(&data);
    cmd.args([
        "--executor",
        if launch.executor == ExecutorKind::Kubernetes { "kubernetes" } else { "local" },
    ]);
    if let Some(config) = &launch.config {
        cmd.arg("--config").arg(config);
    }
    let err = log.try_clone().map_err(|e| anyhow::anyhow!("{e}"))?;
    cmd.stdin(std::process::Stdio::null()).stdout(log).stderr(err);
    let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("starting `pipeline run`: {e}"))?;
    let action = Action {
        ts_ms: chrono::Utc::now().timestamp_millis(),
        user: user.clone(),
        kind: Kind::PipelineRun,
        target: run_id.clone(),
        comment,
        outcome: "started".into(),
    };
    let lake_dir = c.folders.lake.clone();
    c.writing(move || audit::record(&lake_dir, &action)).await?;
    c.metrics.action(Kind::PipelineRun.as_str(), true);
    tracing::info!(user, run_id, log = %log_path.display(), "pipeline run started from the console");
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(run_id, %status, "pipeline run started from the console ended"),
            Err(e) => tracing::warn!(run_id, error = %e, "waiting for a pipeline run"),
        }
    });
    Ok(Redirect::to(&c.link("/pipeline")).into_response())
}

fn run_view(r: &RunRecord) -> RunView {
    let now = chrono::Utc::now();
    let order = r.definition.order().unwrap_or_else(|_| r.tasks.keys().cloned().collect());
    let tasks = order
        .iter()
        .filter_map(|name| {
            let t = r.tasks.get(name)?;
            let last = t.attempts.last();
            Some(TaskView {
                name: name.clone(),
                status: t.status,
                attempts: t.attempts.len(),
                seconds: last
                    .map(|a| (a.ended.unwrap_or(now) - a.started).num_milliseconds() as f64 / 1000.0),
                note: last.and_then(|a| a.error.clone()).or_else(|| t.note.clone()),
                has_log: last.is_some(),
            })
        })
        .collect();
    RunView {
        run_id: r.run_id.clone(),
        pipeline: r.pipeline.clone(),
        status: r.status,
        created: r.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        seconds: seconds(r.created, r.ended, now),
        tasks,
    }
}

/// Seconds from `start` to `end`, or to `now` while it runs.
pub fn seconds(start: DateTime<Utc>, end: Option<DateTime<Utc>>, now: DateTime<Utc>) -> f64 {
    (end.unwrap_or(now) - start).num_milliseconds() as f64 / 1000.0
}

/// `GET /pipeline/{run}/{task}/log`: the tail of the task's last attempt's log, as text.
pub async fn log(
    State(c): State<Shared>,
    UrlPath((run, task)): UrlPath<(String, String)>,
) -> Result<String, Failure> {
    let ok = |s: &str| {
        !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !ok(&run) || run.starts_with('.') {
        return Err(Failure::bad_request(format!("run id {run:?}")));
    }
    let data = c.folders.data.clone();
    let store = RunStore::new(&data);
    if !store.run_dir(&run).is_dir() {
        return Err(Failure::not_found(format!("no pipeline run {run:?}")));
    }
    super::blocking(move || {
        let record = store.load(&run)?;
        let attempt = record
            .tasks
            .get(&task)
            .and_then(|t| t.attempts.last())
            .ok_or_else(|| anyhow::anyhow!("run {run} has no attempt of task {task:?}"))?;
        // The log path comes from the run's own record; it must stay inside the run folder.
        let rel = &attempt.log;
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            anyhow::bail!("log path {} leaves the run folder", rel.display());
        }
        tail(&store.run_dir(&run).join(rel))
    })
    .await
}

/// The last [`LOG_TAIL`] bytes of a file, as text.
fn tail(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)))?;
    let mut bytes = Vec::new();
    f.take(LOG_TAIL).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
