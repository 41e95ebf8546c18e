//! The local executor: each attempt is a child process (by default this very binary with the
//! task's arguments — the same command a person would type), stdout and stderr going to the
//! attempt's log file. Children run in their own process group so that Ctrl-C reaches the
//! runner only; on cancellation or time-out the runner sends SIGTERM to the group, then
//! SIGKILL after a grace period. The child's environment carries the run id and task, which
//! lets `resume` recognise (and stop) a child that outlived a crashed runner. A task with
//! `shards = N` runs its N shard processes one after another within the attempt (each command
//! already uses the machine's cores).

use super::executor::{AttemptCtx, AttemptEnd};
use super::runner::{Event, Events};
use super::state::{Attempt, AttemptStatus};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs tasks as child processes.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// Program for tasks without their own `program` (default: the running executable).
    pub program: PathBuf,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl LocalExecutor {
    /// Runs tasks with this binary.
    pub fn new() -> Result<Self> {
        let program = std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find the running executable to run tasks with: {e}"))?;
        Ok(Self { program, grace: Duration::from_secs(10) })
    }

    /// Runs one attempt: the task's process, or with `shards = N` its N shard processes one
    /// after another (each `--shard I/N`; the first that fails ends the attempt), all writing
    /// to the attempt's log; the time limit covers them all.
    pub(super) async fn run_attempt(
        &self,
        a: &AttemptCtx<'_>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> AttemptEnd {
        let mut log = match std::fs::File::create(&a.log) {
            Ok(f) => f,
            Err(e) => return AttemptEnd::failed(None, format!("cannot create log {}: {e}", a.log.display())),
        };
        let deadline = a.timeout.map(|t| tokio::time::Instant::now() + t);
        let runs = a.task.shard_args();
        let count = runs.len();
        for (i, args) in runs.iter().enumerate() {
            if count > 1 {
                use std::io::Write as _;
                let _ = writeln!(log, "# moldops pipeline: shard {i}/{count}");
            }
            let end = self.run_child(a, args, &log, deadline, events, cancel).await;
            match end.status {
                AttemptStatus::Succeeded => {}
                AttemptStatus::Failed if count > 1 => {
                    return AttemptEnd { error: end.error.map(|e| format!("shard {i}/{count}: {e}")), ..end };
                }
                _ => return end,
            }
        }
        AttemptEnd::succeeded(Some(0))
    }

    /// One child process with `args`, its output appended to `log`, until it ends, the run is
    /// cancelled or `deadline` passes.
    async fn run_child(
        &self,
        a: &AttemptCtx<'_>,
        args: &[String],
        log: &std::fs::File,
        deadline: Option<tokio::time::Instant>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> AttemptEnd {
        let program = a.task.program.as_ref().map(PathBuf::from).unwrap_or_else(|| self.program.clone());
        let (out, err) = match (log.try_clone(), log.try_clone()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                return AttemptEnd::failed(None, format!("cannot share log {}: {e}", a.log.display()));
            }
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .envs(&a.task.env)
            .env("MOLDOPS_PIPELINE_RUN", a.run_id)
            .env("MOLDOPS_PIPELINE_TASK", &a.task.name)
            .env("MOLDOPS_PIPELINE_ATTEMPT", a.number.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return AttemptEnd::failed(None, format!("cannot start {}: {e}", program.display())),
        };
        let pid = child.id();
        let _ = events.send(Event::Handle { task: a.task.name.clone(), number: a.number, pid, job: None });
        let limit = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => match status {
                Ok(s) if s.success() => AttemptEnd::succeeded(Some(0)),
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    let why = match (s.code(), s.signal()) {
                        (Some(c), _) => format!("exit code {c}"),
                        (None, Some(sig)) => format!("killed by signal {sig}"),
                        _ => "ended abnormally".into(),
                    };
                    AttemptEnd::failed(s.code(), format!("{why}{}", last_line(&a.log)))
                }
                Err(e) => AttemptEnd::failed(None, format!("waiting for the child: {e}")),
            },
            _ = cancel.cancelled() => {
                self.terminate(&mut child, pid).await;
                AttemptEnd::cancelled()
            }
            _ = limit => {
                self.terminate(&mut child, pid).await;
                let secs = a.timeout.map(|t| t.as_secs_f64()).unwrap_or_default();
                AttemptEnd::failed(None, format!("timed out after {secs:.0} s"))
            }
        }
    }

    /// SIGTERM to the child's process group, SIGKILL after the grace period.
    async fn terminate(&self, child: &mut tokio::process::Child, pid: Option<u32>) {
        if let Some(pid) = pid {
            signal_group(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(self.grace, child.wait()).await.is_err() {
            if let Some(pid) = pid {
                signal_group(pid, libc::SIGKILL);
            }
            let _ = child.kill().await;
        }
    }

    /// Stops a child of a crashed runner if it still runs (recognised by its environment).
    pub(super) async fn reap(&self, run_id: &str, attempt: &Attempt) -> Result<()> {
        let Some(pid) = attempt.pid else { return Ok(()) };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let marker = format!("MOLDOPS_PIPELINE_RUN={run_id}");
        let ours = environ.split(|b| *b == 0).any(|v| v == marker.as_bytes());
        if !ours {
            return Ok(());
        }
        tracing::warn!(pid, "stopping a task process left by the crashed runner");
        signal_group(pid, libc::SIGTERM);
        let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
        let end = tokio::time::Instant::now() + self.grace;
        while alive() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive() {
            signal_group(pid, libc::SIGKILL);
        }
        Ok(())
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Sends `sig` to the process group led by `pid` (children were started as group leaders).
fn signal_group(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and has no memory effects; a stale id fails with ESRCH.
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// `; last log line: …` from a log file, for error messages.
fn last_line(log: &std::path::Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[text.len().saturating_sub(4096)..]).to_string();
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(l) => format!("; last log line: {}", l.chars().take(300).collect::<String>()),
        None => String::new(),
    }
}
