//! Run and task records: `{data}/pipeline/runs/{run_id}/run.json` (the resolved definition,
//! every task's status and attempts with start, end, exit code and log path), written
//! atomically (temporary file, fsync, rename) after every change, and a lock file that the
//! runner holds while it executes the run, so a crashed runner is told apart from a live one.
//! With the records in a bucket, the runner also keeps a lease on the run
//! (`runs/{run_id}/runner-lease.json`, [`crate::storage::lease::Keeper`]): two runners on any
//! hosts never execute one run, and readers elsewhere see whether it is live.

use super::dag::PipelineDef;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use moldops_common::lock::LockFile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which executor runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Child processes on this machine.
    Local,
    /// One Kubernetes Job per task attempt.
    Kubernetes,
}

/// State of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Tasks are running (or the runner died: see [`RunStore::is_live`]).
    Running,
    /// Every task succeeded or was skipped.
    Succeeded,
    /// A task failed (its dependents were not run), or the run could not be prepared.
    Failed,
    /// Stopped by cancellation (Ctrl-C, SIGTERM) before every task was done.
    Cancelled,
}

/// State of one task in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started yet.
    Pending,
    /// An attempt is running (or waiting for its retry back-off).
    Running,
    /// An attempt succeeded.
    Succeeded,
    /// Its `when_exists` path was absent: counts as done.
    Skipped,
    /// Every attempt failed.
    Failed,
    /// Not run because a task it depends on failed.
    UpstreamFailed,
    /// Stopped by cancellation.
    Cancelled,
}

impl TaskStatus {
    /// Dependents may start.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Succeeded | Self::Skipped)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Still running (or the runner died while it ran).
    Running,
    /// Ended well: exit code 0, or the Job completed.
    Succeeded,
    /// Ended badly: non-zero exit, signal, time limit, failed or vanished Job, or it never started.
    Failed,
    /// Stopped by cancellation.
    Cancelled,
    /// The runner died while the attempt ran; `resume` stopped what was left of it.
    Interrupted,
}

/// One try of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Attempt number, 1-based; it continues across resumes.
    pub number: u32,
    /// Where the attempt stands.
    pub status: AttemptStatus,
    /// When it started (UTC).
    pub started: DateTime<Utc>,
    /// When it ended (UTC; none while running).
    pub ended: Option<DateTime<Utc>>,
    /// Exit code of the child process or the Job's container, when known.
    pub exit_code: Option<i32>,
    /// Why it failed, in words (exit code, timeout, Job condition…).
    pub error: Option<String>,
    /// Log file, relative to the run folder.
    pub log: PathBuf,
    /// Local executor: the child's process id.
    pub pid: Option<u32>,
    /// Kubernetes executor: the Job's name.
    pub job: Option<String>,
}

/// A task's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Where the task stands.
    pub status: TaskStatus,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// Why it is skipped, failed, or not run.
    pub note: Option<String>,
}

/// Everything about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (`YYYYMMDD-HHMMSS-xxxx`, UTC, unless given with `--run-id`).
    pub run_id: String,
    /// Name of the pipeline definition.
    pub pipeline: String,
    /// Executor the run uses (`resume --executor` may change it).
    pub executor: ExecutorKind,
    /// Where the run stands.
    pub status: RunStatus,
    /// When the run was created (UTC).
    pub created: DateTime<Utc>,
    /// When the run last ended (UTC; none while running).
    pub ended: Option<DateTime<Utc>>,
    /// When `resume` picked the run up again.
    pub resumed: Vec<DateTime<Utc>>,
    /// The definition with variables substituted, as it ran.
    pub definition: PipelineDef,
    /// Each task's record, by task name.
    pub tasks: BTreeMap<String, TaskRecord>,
}

impl RunRecord {
    /// A fresh run of `definition` (already resolved): every task pending.
    pub fn new(run_id: String, executor: ExecutorKind, definition: PipelineDef) -> Self {
        let tasks = definition
            .tasks
            .iter()
            .map(|t| {
                (t.name.clone(), TaskRecord { status: TaskStatus::Pending, attempts: vec![], note: None })
            })
            .collect();
        Self {
            run_id,
            pipeline: definition.name.clone(),
            executor,
            status: RunStatus::Running,
            created: Utc::now(),
            ended: None,
            resumed: vec![],
            definition,
            tasks,
        }
    }

    /// Tasks in a given status, in dependency order.
    pub fn tasks_in(&self, status: TaskStatus) -> Vec<String> {
        let order = self.definition.order().unwrap_or_default();
        order.into_iter().filter(|n| self.tasks.get(n).is_some_and(|t| t.status == status)).collect()
    }
}

/// Where runs live: `{data}/pipeline/runs`, in a folder or in a bucket.
#[derive(Debug, Clone)]
pub struct RunStore {
    root: PathBuf,
    /// The `s3://…/pipeline` prefix whose local copy `root` is in: every save publishes it.
    remote: Option<PathBuf>,
}

/// An exclusive hold on a run; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _lock: LockFile,
    /// The run's lease in the bucket, for records in a bucket.
    _lease: Option<crate::storage::lease::Keeper>,
}

impl RunLock {
    /// With records in a bucket: a flag set when another runner took the run over (this one
    /// must stop).
    pub fn taken_over(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        self._lease.as_ref().map(crate::storage::lease::Keeper::lost_flag)
    }
}

/// File of a run's lease (records in a bucket), in the run's folder.
const RUNNER_LEASE: &str = "runner-lease.json";
/// How long a runner's lease on a run lasts (renewed every third of it): a runner that died
/// holds its run this long.
const RUN_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

impl RunStore {
    /// The store under a data folder.
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.join("pipeline").join("runs"), remote: None }
    }

    /// The store under a data location: a folder ([`RunStore::new`]), or an `s3://` URL whose
    /// `pipeline/` prefix this process copies ([`crate::storage::mirror::local`], pulled now)
    /// and publishes after every save, so that the console, the API and `pipeline show` follow
    /// a run in the bucket while it runs.
    pub fn open(data: &Path) -> Result<Self> {
        if !crate::storage::mirror::is_remote(data) {
            return Ok(Self::new(data));
        }
        let url = PathBuf::from(format!("{}/pipeline", data.to_string_lossy().trim_end_matches('/')));
        let local = crate::storage::mirror::local(&url)?;
        Ok(Self { root: local.join("runs"), remote: Some(url) })
    }

    /// The runs folder, `{data}/pipeline/runs`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Folder of one run.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id)
    }

    /// Writes the record atomically.
    pub fn save(&self, run: &RunRecord) -> Result<()> {
        let dir = self.run_dir(&run.run_id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        moldops_common::fs::write_atomic(&dir.join("run.json"), &serde_json::to_vec_pretty(run)?)?;
        if let Some(url) = &self.remote {
            // Not fatal: the run goes on, the next save (or the process's end) publishes it.
            if let Err(e) = crate::storage::mirror::push_one(url) {
                tracing::warn!("run {}: publishing its record to {}: {e:#}", run.run_id, url.display());
            }
        }
        Ok(())
    }

    /// Publishes the records once more (records in a bucket), up to three tries: when a run
    /// ends, whatever its outcome, so that the bucket does not keep an earlier state of it
    /// after a save's publication failed. Failures are logged.
    pub fn publish(&self) {
        let Some(url) = &self.remote else { return };
        for (n, wait_s) in [0, 2, 10].into_iter().enumerate() {
            std::thread::sleep(std::time::Duration::from_secs(wait_s));
            match crate::storage::mirror::push_one(url) {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!("publishing the run records to {} (try {}): {e:#}", url.display(), n + 1)
                }
            }
        }
    }

    /// Reads one run.
    pub fn load(&self, run_id: &str) -> Result<RunRecord> {
        if run_id.is_empty() || run_id.contains(['/', '\\']) || run_id.starts_with('.') {
            bail!("`{run_id}` is not a run id");
        }
        let path = self.run_dir(run_id).join("run.json");
        let text = std::fs::read(&path)
            .with_context(|| format!("no run `{run_id}` (reading {})", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Every run, oldest first (unreadable folders are reported, not fatal).
    pub fn list(&self) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", self.root.display())),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().join("run.json").is_file() {
                match self.load(&name) {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!("skipping run {name}: {e:#}"),
                }
            }
        }
        out.sort_by(|a, b| (a.created, &a.run_id).cmp(&(b.created, &b.run_id)));
        Ok(out)
    }

    /// Takes the run's lock; fails if another runner holds it (with records in a bucket, a
    /// runner on any host: this waits up to a lease's length for one that died to lose it).
    pub fn lock(&self, run_id: &str) -> Result<RunLock> {
        self.lock_for(run_id, RUN_LEASE)
    }

    /// [`RunStore::lock`] with a lease of `lease_for` (shorter ones for tests).
    fn lock_for(&self, run_id: &str, lease_for: std::time::Duration) -> Result<RunLock> {
        let path = self.run_dir(run_id).join("runner.lock");
        let what = format!("run `{run_id}` (being executed by another runner)");
        let lock = LockFile::try_acquire(&path, &what)?;
        let lease = match &self.remote {
            None => None,
            Some(url) => {
                use crate::storage::lease;
                let store = crate::storage::Store::open(&url.to_string_lossy())?;
                let owner = lease::owner("runner");
                let key = format!("runs/{run_id}/{RUNNER_LEASE}");
                let wait = lease_for + 2 * lease::TAKEOVER_GRACE;
                Some(
                    lease::Keeper::take(store, &key, &owner, lease_for, wait)
                        .with_context(|| what.clone())?,
                )
            }
        };
        Ok(RunLock { _lock: lock, _lease: lease })
    }

    /// True when a runner holds the run's lock right now: here (the lock file), or on any host
    /// by the run's lease as last pulled (records in a bucket).
    pub fn is_live(&self, run_id: &str) -> bool {
        let dir = self.run_dir(run_id);
        moldops_common::lock::is_held(&dir.join("runner.lock"))
            || std::fs::read(dir.join(RUNNER_LEASE)).is_ok_and(|b| crate::storage::lease::held_now(&b))
    }
}

/// A new run id: UTC time plus a short suffix, usable in Kubernetes names.
pub fn new_run_id() -> String {
    let now = Utc::now();
    let nanos = now.timestamp_subsec_nanos() as u64 ^ ((std::process::id() as u64) << 20);
    format!("{}-{:04x}", now.format("%Y%m%d-%H%M%S"), (nanos ^ (nanos >> 16)) & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_in_a_bucket_is_held_by_one_runner_on_any_host_and_seen_live_elsewhere() {
        let (bucket, copy) = (tempfile::tempdir().expect("bucket"), tempfile::tempdir().expect("copy"));
        let remote = Some(bucket.path().to_path_buf());
        // Runner a works on its copy; b reads the bucket as a fresh copy on another host would.
        let a = RunStore { root: copy.path().join("runs"), remote: remote.clone() };
        let b = RunStore { root: bucket.path().join("runs"), remote };
        let short = std::time::Duration::from_millis(300);
        let held = a.lock_for("r1", short).expect("a takes the run");
        assert!(b.is_live("r1"), "the lease in the bucket says the run is live");
        let err = b.lock_for("r1", short).expect_err("a keeps renewing its lease");
        assert!(format!("{err:#}").contains("held by runner@"), "{err:#}");
        drop(held);
        assert!(!b.is_live("r1"), "freed when a lets go");
        b.lock_for("r1", short).expect("free: b takes it at once");
    }
}
