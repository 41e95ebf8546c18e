//! The Kubernetes executor (kube): one Job per task attempt (built by [`super::jobspec`]),
//! owned by a ConfigMap standing for the run. It watches the Job's status (a watch stream,
//! with a periodic `get` as a safety net when the stream is quiet or broken), copies the logs
//! of the Job's pods into the attempt's log file, deletes finished Jobs (their TTL is the
//! fallback), and on cancellation deletes running Jobs with propagation `Background`.

use super::executor::{AttemptCtx, AttemptEnd};
use super::jobspec::{self, JobInput, JobState};
use super::kube_settings::KubeSettings;
use super::runner::{Event, Events};
use super::state::{Attempt, RunRecord};
use anyhow::{Context, Result, anyhow};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs tasks as Jobs in one namespace.
pub struct KubeExecutor {
    client: kube::Client,
    settings: KubeSettings,
    namespace: String,
    /// Name and uid of the run's ConfigMap, once `prepare` made sure it exists.
    owner: OnceLock<(String, String)>,
}

/// How waiting for a Job ended.
enum Waited {
    Done(JobState),
    Gone,
    Cancelled,
}

impl KubeExecutor {
    /// Connects with the usual discovery (in-cluster service account, else `KUBECONFIG` or
    /// `~/.kube/config`).
    pub async fn connect(settings: KubeSettings) -> Result<Self> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)")?;
        Ok(Self::with_client(client, settings))
    }

    /// With a client built elsewhere.
    pub fn with_client(client: kube::Client, settings: KubeSettings) -> Self {
        let namespace = settings.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
        Self { client, settings, namespace, owner: OnceLock::new() }
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Makes sure the run's ConfigMap exists and remembers its uid for owner references.
    pub(super) async fn prepare(&self, run: &RunRecord) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = jobspec::run_object_name(&run.run_id);
        let summary = serde_json::to_string(&serde_json::json!({
            "run_id": run.run_id, "pipeline": run.pipeline, "created": run.created,
        }))?;
        let cm = jobspec::run_object(&self.settings, &self.namespace, &run.run_id, &summary)?;
        let created = match api.create(&PostParams::default(), &cm).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                api.get(&name).await.with_context(|| format!("reading ConfigMap {name}"))?
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating ConfigMap {name} in namespace {}", self.namespace));
            }
        };
        let uid = created.metadata.uid.ok_or_else(|| anyhow!("ConfigMap {name} has no uid"))?;
        let _ = self.owner.set((name, uid));
        Ok(())
    }

    /// Deletes the run's ConfigMap (Background propagation: Jobs still owned by it go too).
    pub(super) async fn finish(&self, run: &RunRecord) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = jobspec::run_object_name(&run.run_id);
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!("cannot delete ConfigMap {name}: {e}"),
        }
    }

    pub(super) async fn run_attempt(
        &self,
        a: &AttemptCtx<'_>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> AttemptEnd {
        match self.try_attempt(a, events, cancel).await {
            Ok(end) => end,
            Err(e) => AttemptEnd::failed(None, format!("{e:#}")),
        }
    }

    async fn try_attempt(
        &self,
        a: &AttemptCtx<'_>,
        events: &Events,
        cancel: &CancellationToken,
    ) -> Result<AttemptEnd> {
        let (owner, uid) = self.owner.get().ok_or_else(|| anyhow!("the run's ConfigMap was not created"))?;
        let job = jobspec::build_job(&JobInput {
            settings: &self.settings,
            namespace: &self.namespace,
            run_id: a.run_id,
            task: a.task,
            attempt: a.number,
            owner: (owner, uid),
            timeout_s: a.timeout.map(|t| t.as_secs().max(1)),
        })?;
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut log =
            std::fs::File::create(&a.log).with_context(|| format!("creating {}", a.log.display()))?;
        writeln!(log, "# moldops pipeline: task {} attempt {} as Job {name}", a.task.name, a.number)?;
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .with_context(|| format!("creating Job {name} in namespace {}", self.namespace))?;
        let _ = events.send(Event::Handle {
            task: a.task.name.clone(),
            number: a.number,
            pid: None,
            job: Some(name.clone()),
        });
        tracing::info!(task = %a.task.name, job = %name, "Job created");
        let waited = self.wait(&name, cancel).await;
        if let Waited::Cancelled = waited {
            self.delete(&name).await;
            writeln!(log, "# cancelled: Job {name} deleted")?;
            return Ok(AttemptEnd::cancelled());
        }
        let exit_code = self.collect_logs(&name, &mut log).await;
        let end = match waited {
            Waited::Done(JobState::Succeeded) => AttemptEnd::succeeded(exit_code),
            Waited::Done(JobState::Failed(why)) => {
                let code = exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default();
                AttemptEnd::failed(exit_code, format!("Job {name} failed: {why}{code}"))
            }
            Waited::Done(JobState::Running) | Waited::Cancelled => {
                unreachable!("wait returns finished states")
            }
            Waited::Gone => {
                AttemptEnd::failed(exit_code, format!("Job {name} disappeared before it finished"))
            }
        };
        if self.settings.delete_finished_jobs {
            self.delete(&name).await;
        }
        Ok(end)
    }

    /// Waits until the Job finishes, disappears, or the run is cancelled.
    async fn wait(&self, name: &str, cancel: &CancellationToken) -> Waited {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = std::pin::pin!(watcher(self.jobs(), cfg).default_backoff());
        let mut stream_open = true;
        let mut poll = tokio::time::interval(Duration::from_secs(self.settings.poll_s.max(1)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Waited::Cancelled,
                ev = stream.next(), if stream_open => match ev {
                    Some(Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)))
                        if j.metadata.name.as_deref() == Some(name) =>
                    {
                        let s = jobspec::job_state(&j);
                        if s != JobState::Running {
                            return Waited::Done(s);
                        }
                    }
                    Some(Ok(watcher::Event::Delete(j))) if j.metadata.name.as_deref() == Some(name) => {
                        return Waited::Gone;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => tracing::warn!(job = %name, "watching the Job: {e}; retrying"),
                    None => stream_open = false,
                },
                _ = poll.tick() => match self.jobs().get_opt(name).await {
                    Ok(None) => return Waited::Gone,
                    Ok(Some(j)) => {
                        let s = jobspec::job_state(&j);
                        if s != JobState::Running {
                            return Waited::Done(s);
                        }
                    }
                    Err(e) => tracing::warn!(job = %name, "reading the Job: {e}"),
                },
            }
        }
    }

    /// Appends the logs of the Job's pods to the log file (every shard's, for a sharded task);
    /// returns the container's exit code (a failing pod's, of several).
    async fn collect_logs(&self, job: &str, log: &mut std::fs::File) -> Option<i32> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = match pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(log, "# cannot list the pods of Job {job}: {e}");
                return None;
            }
        };
        let mut exit_code = None;
        // Selectors may be ignored by test servers: keep only this Job's pods.
        let mine = list.items.into_iter().filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("job-name").or(l.get("batch.kubernetes.io/job-name")))
                .map(String::as_str)
                == Some(job)
        });
        for pod in mine {
            let pname = pod.metadata.name.clone().unwrap_or_default();
            let _ = writeln!(log, "# pod {pname}");
            match pods.logs(&pname, &LogParams::default()).await {
                Ok(text) => {
                    let _ = log.write_all(text.as_bytes());
                    if !text.ends_with('\n') && !text.is_empty() {
                        let _ = writeln!(log);
                    }
                }
                Err(e) => {
                    let _ = writeln!(log, "# cannot read the log of pod {pname}: {e}");
                }
            }
            let code = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == "task"))
                .and_then(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code));
            // Of several pods (a sharded task's), a failing one's code.
            exit_code = match (exit_code, code) {
                (Some(c), _) if c != 0 => Some(c),
                (previous, code) => code.or(previous),
            };
        }
        exit_code
    }

    /// Deletes a Job and (in the background) its pods; a Job already gone is fine.
    async fn delete(&self, name: &str) {
        match self.jobs().delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(job = %name, "Job deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(job = %name, "cannot delete Job: {e}"),
        }
    }

    /// Deletes the Job of an attempt a crashed runner left behind.
    pub(super) async fn reap(&self, attempt: &Attempt) -> Result<()> {
        if let Some(job) = &attempt.job {
            self.delete(job).await;
        }
        Ok(())
    }
}
