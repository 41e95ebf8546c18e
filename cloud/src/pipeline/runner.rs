//! The DAG runner: starts every task whose dependencies are done (up to `max_parallel` at a
//! time), retries failed attempts after an exponential back-off, marks the dependents of a
//! failed task as not run, saves the run record after every change, and stops everything on
//! cancellation. `prepare_resume` turns a failed, cancelled or crashed run back into one
//! that can continue from where it stopped.

use super::dag::{TaskDef, TaskDefaults, backoff};
use super::executor::{AttemptCtx, AttemptEnd, Executor};
use super::state::{Attempt, AttemptStatus, RunRecord, RunStatus, RunStore, TaskStatus};
use anyhow::{Result, bail};
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a running task reports to the runner (the runner is the only writer of the record).
#[derive(Debug)]
pub enum Event {
    /// An attempt began.
    Started {
        /// Task the attempt belongs to.
        task: String,
        /// The attempt's record as it starts (status `running`).
        attempt: Attempt,
    },
    /// The attempt's process id or Job name is known.
    Handle {
        /// Task the attempt belongs to.
        task: String,
        /// Attempt number.
        number: u32,
        /// Local executor: the child's process id.
        pid: Option<u32>,
        /// Kubernetes executor: the Job's name.
        job: Option<String>,
    },
    /// An attempt ended (at `at`).
    Ended {
        /// Task the attempt belongs to.
        task: String,
        /// Attempt number.
        number: u32,
        /// How it ended.
        end: AttemptEnd,
        /// When it ended (UTC).
        at: chrono::DateTime<Utc>,
    },
}

/// Sender half handed to executors.
pub type Events = mpsc::UnboundedSender<Event>;

/// Runs (or continues) `run` to its end and returns its final status. The record is saved
/// after every change; the caller holds the run's lock.
pub async fn execute(
    store: &RunStore,
    run: &mut RunRecord,
    exec: Arc<Executor>,
    cancel: CancellationToken,
) -> Result<RunStatus> {
    let run_dir = store.run_dir(&run.run_id);
    std::fs::create_dir_all(run_dir.join("logs"))?;
    store.save(run)?;
    if let Err(e) = exec.prepare(run).await {
        run.status = RunStatus::Failed;
        run.ended = Some(Utc::now());
        store.save(run)?;
        return Err(e.context(format!("preparing run {}", run.run_id)));
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut set: JoinSet<(String, TaskStatus, Option<String>)> = JoinSet::new();
    let order = run.definition.order()?;
    let max_parallel = run.definition.max_parallel.max(1);
    loop {
        let mut changed = true;
        while changed {
            changed = propagate_failures(run);
            if cancel.is_cancelled() {
                break;
            }
            for name in &order {
                if set.len() >= max_parallel {
                    break;
                }
                let Some(task) = run.definition.task(name).cloned() else { continue };
                let ready = run.tasks[name].status == TaskStatus::Pending
                    && task.deps.iter().all(|d| run.tasks.get(d).is_some_and(|t| t.status.is_done()));
                if !ready {
                    continue;
                }
                let rec = run.tasks.get_mut(name).expect("task record exists for every task");
                let found =
                    task.when_exists.as_ref().map(|p| (p, crate::storage::object::exists(Path::new(p))));
                match found {
                    Some((path, Ok(false))) => {
                        rec.status = TaskStatus::Skipped;
                        rec.note = Some(format!("{path} does not exist"));
                        tracing::info!(task = %name, "skipped: {path} does not exist");
                        changed = true;
                        continue;
                    }
                    // Unknown (the bucket unreachable, the keys refused): failed, not skipped.
                    Some((path, Err(e))) => {
                        rec.status = TaskStatus::Failed;
                        rec.note = Some(format!("checking whether {path} exists: {e:#}"));
                        tracing::error!(task = %name, "checking whether {path} exists: {e:#}");
                        changed = true;
                        continue;
                    }
                    _ => {}
                }
                rec.status = TaskStatus::Running;
                rec.note = None;
                let ctx = TaskCtx {
                    run_id: run.run_id.clone(),
                    run_dir: run_dir.clone(),
                    first_number: rec.attempts.len() as u32 + 1,
                    defaults: run.definition.defaults.clone(),
                    task,
                };
                set.spawn(run_task(exec.clone(), ctx, tx.clone(), cancel.clone()));
            }
        }
        store.save(run)?;
        if set.is_empty() {
            break;
        }
        tokio::select! {
            Some(ev) = rx.recv() => apply(run, ev),
            Some(joined) = set.join_next() => {
                while let Ok(ev) = rx.try_recv() {
                    apply(run, ev);
                }
                let (name, status, note) = match joined {
                    Ok(r) => r,
                    Err(e) => bail!("a task of run {} panicked: {e}", run.run_id),
                };
                let rec = run.tasks.get_mut(&name).expect("task record exists for every task");
                rec.status = status;
                rec.note = note;
                match status {
                    TaskStatus::Succeeded => tracing::info!(task = %name, "succeeded"),
                    TaskStatus::Cancelled => tracing::warn!(task = %name, "cancelled"),
                    _ => tracing::error!(task = %name, "failed: {}", rec.note.as_deref().unwrap_or("")),
                }
            }
        }
        store.save(run)?;
    }
    propagate_failures(run);
    let all_done = run.tasks.values().all(|t| t.status.is_done());
    let any_failed =
        run.tasks.values().any(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::UpstreamFailed));
    run.status = if all_done {
        RunStatus::Succeeded
    } else if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if any_failed {
        RunStatus::Failed
    } else {
        bail!("run {} stopped with tasks neither done nor failed (a bug)", run.run_id)
    };
    run.ended = Some(Utc::now());
    store.save(run)?;
    if run.status == RunStatus::Succeeded {
        exec.finish(run).await;
    }
    Ok(run.status)
}

/// Marks pending tasks below a failed (or not-run) task as not run. True if anything changed.
fn propagate_failures(run: &mut RunRecord) -> bool {
    let mut changed = false;
    loop {
        let mut again = false;
        for t in &run.definition.tasks {
            if run.tasks[&t.name].status != TaskStatus::Pending {
                continue;
            }
            let failed: Vec<&String> = t
                .deps
                .iter()
                .filter(|d| {
                    run.tasks
                        .get(*d)
                        .is_some_and(|r| matches!(r.status, TaskStatus::Failed | TaskStatus::UpstreamFailed))
                })
                .collect();
            if let Some(first) = failed.first() {
                let rec = run.tasks.get_mut(&t.name).expect("task record exists for every task");
                rec.status = TaskStatus::UpstreamFailed;
                rec.note = Some(format!("not run: `{first}` failed"));
                tracing::warn!(task = %t.name, "not run: {first} failed");
                again = true;
                changed = true;
            }
        }
        if !again {
            return changed;
        }
    }
}

fn apply(run: &mut RunRecord, ev: Event) {
    match ev {
        Event::Started { task, attempt } => {
            if let Some(t) = run.tasks.get_mut(&task) {
                tracing::info!(task = %task, attempt = attempt.number, log = %attempt.log.display(), "started");
                t.attempts.push(attempt);
            }
        }
        Event::Handle { task, number, pid, job } => {
            if let Some(a) = attempt_mut(run, &task, number) {
                a.pid = pid.or(a.pid);
                a.job = job.or(a.job.take());
            }
        }
        Event::Ended { task, number, end, at } => {
            if let Some(a) = attempt_mut(run, &task, number) {
                a.status = end.status;
                a.exit_code = end.exit_code;
                a.error = end.error;
                a.ended = Some(at);
                if a.status == AttemptStatus::Failed {
                    tracing::warn!(task = %task, attempt = number, "attempt failed: {}", a.error.as_deref().unwrap_or(""));
                }
            }
        }
    }
}

fn attempt_mut<'a>(run: &'a mut RunRecord, task: &str, number: u32) -> Option<&'a mut Attempt> {
    run.tasks.get_mut(task)?.attempts.iter_mut().find(|a| a.number == number)
}

struct TaskCtx {
    run_id: String,
    run_dir: PathBuf,
    first_number: u32,
    defaults: TaskDefaults,
    task: TaskDef,
}

/// Attempts of one task until one succeeds, the attempts run out, or the run is cancelled.
async fn run_task(
    exec: Arc<Executor>,
    ctx: TaskCtx,
    tx: Events,
    cancel: CancellationToken,
) -> (String, TaskStatus, Option<String>) {
    let name = ctx.task.name.clone();
    let max = ctx.task.max_attempts(&ctx.defaults);
    let mut last_error = String::new();
    for i in 0..max {
        let number = ctx.first_number + i;
        let log = PathBuf::from("logs").join(format!("{name}.{number}.log"));
        let attempt = Attempt {
            number,
            status: AttemptStatus::Running,
            started: Utc::now(),
            ended: None,
            exit_code: None,
            error: None,
            log: log.clone(),
            pid: None,
            job: None,
        };
        let _ = tx.send(Event::Started { task: name.clone(), attempt });
        let a = AttemptCtx {
            run_id: &ctx.run_id,
            task: &ctx.task,
            number,
            log: ctx.run_dir.join(&log),
            timeout: ctx.task.timeout(&ctx.defaults),
        };
        let end = exec.run_attempt(&a, &tx, &cancel).await;
        let status = end.status;
        last_error = end.error.clone().unwrap_or_default();
        let _ = tx.send(Event::Ended { task: name.clone(), number, end, at: Utc::now() });
        match status {
            AttemptStatus::Succeeded => return (name, TaskStatus::Succeeded, None),
            AttemptStatus::Cancelled => return (name, TaskStatus::Cancelled, Some("cancelled".into())),
            _ if cancel.is_cancelled() => return (name, TaskStatus::Cancelled, Some("cancelled".into())),
            _ => {}
        }
        if i + 1 < max {
            let wait = backoff(&ctx.defaults, &ctx.task, i + 2);
            tracing::info!(task = %name, "retrying in {:.1} s ({} of {} attempts used)", wait.as_secs_f64(), i + 1, max);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return (name, TaskStatus::Cancelled, Some("cancelled".into())),
            }
        }
    }
    (name, TaskStatus::Failed, Some(format!("failed after {max} attempt(s): {last_error}")))
}

/// Makes a failed, cancelled or crashed run runnable again: what is left of interrupted
/// attempts is stopped, and every task not done goes back to pending (succeeded tasks are
/// kept). Fails for a run that already succeeded.
pub async fn prepare_resume(run: &mut RunRecord, exec: &Executor) -> Result<()> {
    if run.status == RunStatus::Succeeded {
        bail!("run {} already succeeded: nothing to resume", run.run_id);
    }
    for (name, t) in run.tasks.iter_mut() {
        for a in t.attempts.iter_mut().filter(|a| a.status == AttemptStatus::Running) {
            tracing::warn!(task = %name, attempt = a.number, "attempt was interrupted by a runner crash; stopping what is left of it");
            exec.reap(&run.run_id, a).await?;
            a.status = AttemptStatus::Interrupted;
            a.ended = Some(Utc::now());
            a.error = Some("the runner stopped while this attempt ran".into());
        }
        if !t.status.is_done() {
            t.status = TaskStatus::Pending;
            t.note = None;
        }
    }
    run.status = RunStatus::Running;
    run.ended = None;
    run.resumed.push(Utc::now());
    Ok(())
}

/// Final words on a run for the command line (error when it did not succeed).
pub fn outcome(run: &RunRecord) -> Result<()> {
    let list = |s: TaskStatus| run.tasks_in(s).join(", ");
    match run.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Cancelled => {
            bail!("run {} cancelled; resume with `moldops-cloud pipeline resume {}`", run.run_id, run.run_id)
        }
        _ => bail!(
            "run {} failed: failed: [{}]; not run: [{}]; see `moldops-cloud pipeline show {}`, resume with `moldops-cloud pipeline resume {}`",
            run.run_id,
            list(TaskStatus::Failed),
            list(TaskStatus::UpstreamFailed),
            run.run_id,
            run.run_id
        ),
    }
}

/// Waits `d` or until cancelled; true when cancelled.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = cancel.cancelled() => true,
    }
}
