//! The executor interface the runner drives: run one attempt of a task (writing its log to a
//! file, honouring the time limit and cancellation), prepare a run, and stop what is left of an
//! attempt a crashed runner left behind. Two implementations: [`super::local`] and
//! [`super::kubernetes`].

use super::dag::TaskDef;
use super::kubernetes::KubeExecutor;
use super::local::LocalExecutor;
use super::runner::Events;
use super::state::{Attempt, AttemptStatus, RunRecord};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One attempt to run.
#[derive(Debug)]
pub struct AttemptCtx<'a> {
    /// Run the attempt belongs to.
    pub run_id: &'a str,
    /// The task, variables already substituted.
    pub task: &'a TaskDef,
    /// Attempt number (1-based; it continues across resumes).
    pub number: u32,
    /// Absolute log file path.
    pub log: PathBuf,
    /// Time limit of the attempt (none: no limit).
    pub timeout: Option<Duration>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptEnd {
    /// Succeeded, failed or cancelled.
    pub status: AttemptStatus,
    /// Exit code of the child process or the Job's container, when known.
    pub exit_code: Option<i32>,
    /// Why it failed or was cancelled, in words (none on success).
    pub error: Option<String>,
}

impl AttemptEnd {
    /// A successful end.
    pub fn succeeded(exit_code: Option<i32>) -> Self {
        Self { status: AttemptStatus::Succeeded, exit_code, error: None }
    }
    /// A failed end with its reason.
    pub fn failed(exit_code: Option<i32>, error: impl Into<String>) -> Self {
        Self { status: AttemptStatus::Failed, exit_code, error: Some(error.into()) }
    }
    /// An end by cancellation (error `cancelled`, no exit code).
    pub fn cancelled() -> Self {
        Self { status: AttemptStatus::Cancelled, exit_code: None, error: Some("cancelled".into()) }
    }
}

/// Where tasks run.
pub enum Executor {
    /// Child processes on this machine.
    Local(LocalExecutor),
    /// One Kubernetes Job per task attempt.
    Kubernetes(Box<KubeExecutor>),
}

impl Executor {
    /// Once per run (and per resume), before any task starts.
    pub async fn prepare(&self, run: &RunRecord) -> Result<()> {
        match self {
            Self::Local(_) => Ok(()),
            Self::Kubernetes(k) => k.prepare(run).await,
        }
    }

    /// After a run succeeded: removes what stood for the run (Kubernetes: its ConfigMap, which
    /// also garbage-collects any Job left).
    pub async fn finish(&self, run: &RunRecord) {
        if let Self::Kubernetes(k) = self {
            k.finish(run).await;
        }
    }

    /// Runs one attempt to its end. Never fails: problems become a failed attempt.
    pub async fn run_attempt(
        &self,
        a: &AttemptCtx<'_>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> AttemptEnd {
        if let Some(dir) = a.log.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            return AttemptEnd::failed(None, format!("cannot create {}: {e}", dir.display()));
        }
        match self {
            Self::Local(l) => l.run_attempt(a, events, cancel).await,
            Self::Kubernetes(k) => k.run_attempt(a, events, cancel).await,
        }
    }

    /// Stops whatever is left of an attempt whose runner died (process or Job).
    pub async fn reap(&self, run_id: &str, attempt: &Attempt) -> Result<()> {
        match self {
            Self::Local(l) => l.reap(run_id, attempt).await,
            Self::Kubernetes(k) => k.reap(attempt).await,
        }
    }
}
