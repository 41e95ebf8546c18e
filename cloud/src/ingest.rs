//! MQTT → lake ingest. One task drives the rumqttc event loop (persistent session, fixed
//! client id, manual acks, QoS 1 subscriptions to every edge's data topic, to its retained
//! status and reported model state, and to the desired state the rollout manager retains for it
//! — see [`events`] —, reconnecting forever
//! with capped exponential back-off) and hands publishes to the commit [`worker`] thread,
//! which writes them in groups and acknowledges each group only once it is durable. A crash
//! before the ack means the broker redelivers and the dedup state drops the replay.

pub mod bucket;
pub mod cli;
pub mod commit;
pub mod events;
pub mod http;
pub mod state;
pub mod stats;
mod worker;

pub use commit::{Committer, Group, Outcome};
pub use stats::{IngestStats, StatsSnapshot};

/// The broker section of the ingest's configuration.
pub use moldops_common::mqtt::BrokerConfig;

use crate::config::ConfigErrors;
use anyhow::{Context, Result, anyhow};
use moldops_common::backoff::Backoff;
use moldops_shared::sparkplug::{self, MessageType};
use moldops_shared::topic::{Leaf, filter_all};
use rumqttc::{
    AsyncClient, ConnectionError, Event, Outgoing, Packet, QoS, SubscribeFilter, SubscribeReasonCode,
};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use worker::{Received, Worker};

/// Default client id of the ingest (fixed, so the broker keeps its session).
pub const DEFAULT_CLIENT_ID: &str = "moldops-ingest";
/// Default upper bound of records per group commit.
pub const DEFAULT_MAX_GROUP_RECORDS: usize = 100_000;
/// Reconnect back-off: from 100 ms, doubling to 5 s, jittered.
fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}
/// How long shutdown waits for the group in hand to be committed and acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Everything [`run`] needs; every path is explicit (nothing depends on the working folder).
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The MQTT broker to subscribe at.
    pub broker: BrokerConfig,
    /// Folder that relative TLS file paths in `broker` resolve against.
    pub base_dir: PathBuf,
    /// Root folder of the lake.
    pub lake: PathBuf,
    /// MQTT client id (default [`DEFAULT_CLIENT_ID`]); fixed, so the broker keeps the session.
    pub client_id: String,
    /// Upper bound of records per group commit (default [`DEFAULT_MAX_GROUP_RECORDS`]; must be > 0).
    pub max_group_records: usize,
    /// Replicas: the MQTT share group of the ingests that write this lake together (each with
    /// its own `client_id`); `None` (default): the lake's only ingest. See [`Committer::open_replica`].
    pub share_group: Option<String>,
    /// Print `{"event":"subscribed"}` on stdout after the first SUBACK (for the CLI).
    pub announce: bool,
    /// Counters shared with the caller.
    pub stats: Arc<IngestStats>,
}

impl IngestConfig {
    /// A config with defaults for everything but the broker and the lake.
    pub fn new(broker: BrokerConfig, lake: impl Into<PathBuf>) -> IngestConfig {
        IngestConfig {
            broker,
            base_dir: PathBuf::from("."),
            lake: lake.into(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            max_group_records: DEFAULT_MAX_GROUP_RECORDS,
            share_group: None,
            announce: false,
            stats: Arc::default(),
        }
    }

    /// A config for a plain-TCP broker at `host:port` without credentials (tests, the demo).
    pub fn local(host: &str, port: u16, lake: impl Into<PathBuf>) -> IngestConfig {
        let broker = BrokerConfig::with_host(host);
        IngestConfig::new(BrokerConfig { port, ..broker }, lake)
    }

    /// Checks the config, listing every problem, each naming its field.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = self.broker.problems(&self.base_dir);
        if self.lake.as_os_str().is_empty() {
            errs.push("lake.path is empty".into());
        } else if self.lake.exists() && !self.lake.is_dir() {
            errs.push(format!("lake.path {} exists and is not a folder", self.lake.display()));
        }
        if self.client_id.trim().is_empty() {
            errs.push("ingest.client_id is empty".into());
        }
        if self.max_group_records == 0 {
            errs.push("ingest.max_group_records must be > 0".into());
        }
        if let Some(group) = &self.share_group
            && (group.is_empty() || group.contains(['/', '+', '#']))
        {
            errs.push(format!("ingest.share_group {group:?}: a name without `/`, `+` or `#`"));
        }
        if errs.is_empty() { Ok(()) } else { Err(ConfigErrors(errs)) }
    }
}

/// The topic filters of the ingest. With a share group, the data topics (native batches and
/// Sparkplug `DDATA`) are shared (`$share/{group}/…`): the broker hands each message to one
/// replica of the group. The event topics are not shared: every replica sees the edges'
/// retained states and deaths, and the dedup state keeps one row of each.
pub fn subscriptions(share_group: Option<&str>) -> Vec<String> {
    let share = |filter: String| match share_group {
        Some(group) => format!("$share/{group}/{filter}"),
        None => filter,
    };
    let mut out = vec![share(filter_all(Leaf::Data)), share(sparkplug::filter_all(MessageType::DData))];
    out.extend([Leaf::Status, Leaf::ModelReported, Leaf::ModelDesired].map(filter_all));
    out.push(sparkplug::filter_all(MessageType::NDeath));
    out
}

/// A filter without its `$share/{group}/` prefix.
fn unshared(filter: &str) -> &str {
    filter.strip_prefix("$share/").and_then(|rest| rest.split_once('/')).map_or(filter, |(_, f)| f)
}

/// Connection state, so that each change is logged once rather than on every retry.
struct Link {
    up: bool,
    last_error: Option<String>,
    backoff: Backoff,
}

impl Link {
    /// Logs a failed poll and returns how long to wait before the next attempt.
    fn failed(&mut self, e: &ConnectionError, cfg: &IngestConfig) -> Duration {
        let msg = e.to_string();
        let (host, port) = (&cfg.broker.host, cfg.broker.port);
        if self.up {
            tracing::warn!(broker = %format!("{host}:{port}"), error = %msg, "lost the broker connection; reconnecting");
        } else if self.last_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!(broker = %format!("{host}:{port}"), error = %msg, "cannot reach the broker; retrying with back-off");
        }
        self.up = false;
        self.last_error = Some(msg);
        self.backoff.next_delay()
    }
}

/// Runs the ingest until `shutdown` resolves (then the group in hand is finished or
/// abandoned, and the function returns `Ok`) or until something fails for good: the lake
/// cannot be written, or the broker refuses the subscription.
pub async fn run(cfg: IngestConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    cfg.validate()?;
    let committer = open_lake(&cfg).await?;
    let mut opts = moldops_common::mqtt::options(&cfg.broker, &cfg.client_id, &cfg.base_dir)?;
    opts.set_clean_session(false).set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut done = Worker {
        committer,
        rx,
        client: client.clone(),
        runtime: tokio::runtime::Handle::current(),
        stop: stop.clone(),
        stats: cfg.stats.clone(),
        max_group_records: cfg.max_group_records,
    }
    .spawn()?;

    let mut session = Session {
        cfg: &cfg,
        client: client.clone(),
        filters: subscriptions(cfg.share_group.as_deref()),
        link: Link { up: false, last_error: None, backoff: reconnect_backoff() },
        tx,
    };
    tokio::pin!(shutdown);
    let outcome: Result<()> = loop {
        let event = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            r = &mut done => break Err(worker_end(r)),
            ev = eventloop.poll() => ev,
        };
        match session.on_event(event) {
            Step::Next => {}
            Step::Fail(e) => break Err(e),
            Step::Wait(wait) => tokio::select! {
                _ = &mut shutdown => break Ok(()),
                r = &mut done => break Err(worker_end(r)),
                _ = tokio::time::sleep(wait) => {}
            },
        }
    };

    // Stop: the worker finishes the group in hand (its acks still need the event loop), then
    // ends; anything not yet acknowledged is redelivered to the next session.
    stop.store(true, Ordering::SeqCst);
    let up = session.link.up;
    drop(session);
    let outcome = match outcome {
        Ok(()) => drain(done, &mut eventloop, up).await,
        failed => failed,
    };
    if up && client.try_disconnect().is_ok() {
        let flush = async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
    }
    cfg.stats.set_connected(false);
    tracing::info!("ingest stopped");
    outcome
}

/// Opens the lake (recovering from an interrupted commit) on the blocking pool.
async fn open_lake(cfg: &IngestConfig) -> Result<Committer> {
    let lake = cfg.lake.clone();
    let replica = cfg.share_group.is_some();
    let (client_id, cache) = (cfg.client_id.clone(), crate::storage::mirror::cache_dir());
    let open = move || match lake.to_str().filter(|_| crate::storage::mirror::is_remote(&lake)) {
        Some(url) => {
            let name = crate::storage::hex(format!("{url} {client_id}").as_bytes());
            let scratch = cache.join("ingest").join(&name[..16]);
            Committer::open_bucket(url, &scratch, &format!("{client_id}@{}", std::process::id()))
        }
        None if replica => Committer::open_replica(&lake),
        None => Committer::open(&lake),
    };
    let (committer, recovery) =
        tokio::task::spawn_blocking(open).await.context("the lake recovery task failed")??;
    tracing::info!(
        lake = %cfg.lake.display(),
        streams = committer.state().streams.len(),
        rebuilt = recovery.rebuilt,
        orphan_files = recovery.orphan_files,
        orphan_rows = recovery.orphan_rows,
        tmp_removed = recovery.tmp_removed,
        "lake opened"
    );
    Ok(committer)
}

/// What the receive loop does after one event.
enum Step {
    Next,
    /// The link failed: wait this long before polling again.
    Wait(Duration),
    /// Stop with this error.
    Fail(anyhow::Error),
}

/// The receiving side of one ingest run: hands publishes to the worker, subscribes on every
/// CONNACK, tracks the link.
struct Session<'a> {
    cfg: &'a IngestConfig,
    client: AsyncClient,
    filters: Vec<String>,
    link: Link,
    tx: mpsc::UnboundedSender<Received>,
}

impl Session<'_> {
    fn on_event(&mut self, event: Result<Event, ConnectionError>) -> Step {
        let cfg = self.cfg;
        match event {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let native = moldops_shared::topic::parse(&publish.topic)
                    .is_some_and(|(_, _, l)| l == Leaf::Data.as_str());
                let sparkplug =
                    sparkplug::parse_topic(&publish.topic).is_some_and(|t| t.kind == MessageType::DData);
                if native || sparkplug {
                    cfg.stats.message();
                }
                let received_at_ms = chrono::Utc::now().timestamp_millis();
                // Only fails once the worker is gone; its result then arrives on `done`.
                let _ = self.tx.send(Received { publish, received_at_ms });
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(broker = %format!("{}:{}", cfg.broker.host, cfg.broker.port),
                    session_present = ack.session_present, "connected to the broker");
                self.link = Link { up: true, last_error: None, backoff: reconnect_backoff() };
                cfg.stats.set_connected(true);
                let filters: Vec<SubscribeFilter> =
                    self.filters.iter().map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)).collect();
                if self.client.try_subscribe_many(filters.clone()).is_err() {
                    let client = self.client.clone();
                    tokio::spawn(async move { client.subscribe_many(filters).await });
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .zip(&self.filters)
                    .filter(|(c, _)| matches!(c, SubscribeReasonCode::Failure))
                    .map(|(_, f)| f);
                let (sparkplug, refused): (Vec<&String>, Vec<&String>) =
                    refused.partition(|f| unshared(f).starts_with(sparkplug::NAMESPACE));
                let (optional, required): (Vec<&String>, Vec<&String>) =
                    refused.into_iter().partition(|f| **f == filter_all(Leaf::ModelDesired));
                if !required.is_empty() {
                    return Step::Fail(anyhow!("the broker refused the subscription to {required:?}"));
                }
                if !sparkplug.is_empty() {
                    // Native edges need none of it; Sparkplug edges keep their records buffered
                    // (no commit ack) until it is allowed.
                    tracing::warn!(filters = ?sparkplug, "the broker refused the subscription to \
                        Sparkplug B data (give the ingest read access to spBv1.0/+/DDATA/+/+ and \
                        spBv1.0/+/NDEATH/+): edges with uplink.format = \"sparkplug-b\" are not ingested");
                }
                if !optional.is_empty() {
                    // Only the console's rollouts page reads it: run without, and say so.
                    tracing::warn!(filters = ?optional, "the broker refused the subscription to the \
                        desired model states (give the ingest read access to them): the console shows \
                        no `asked for` versions");
                }
                tracing::info!(filters = ?self.filters, "subscribed");
                if cfg.stats.set_subscribed() && cfg.announce {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", serde_json::json!({"event": "subscribed"}));
                    let _ = out.flush();
                }
            }
            Ok(_) => {}
            Err(e) => {
                cfg.stats.set_connected(false);
                return Step::Wait(self.link.failed(&e, cfg));
            }
        }
        Step::Next
    }
}

/// After a requested stop: lets the worker finish the group in hand (polling so its acks go
/// out) within [`SHUTDOWN_GRACE`]; a commit failure still surfaces.
async fn drain(
    done: tokio::sync::oneshot::Receiver<Result<()>>,
    eventloop: &mut rumqttc::EventLoop,
    mut polling: bool,
) -> Result<()> {
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace, done);
    loop {
        tokio::select! {
            r = &mut done => {
                if let Ok(Err(e)) = r {
                    return Err(e);
                }
                return Ok(());
            }
            _ = &mut grace => {
                tracing::warn!("the group in hand was not committed in time; abandoning it (it will be redelivered)");
                return Ok(());
            }
            ev = eventloop.poll(), if polling => polling = ev.is_ok(),
        }
    }
}

/// The error to report when the worker ended while the ingest was running.
fn worker_end(r: Result<Result<()>, tokio::sync::oneshot::error::RecvError>) -> anyhow::Error {
    match r {
        Ok(Err(e)) => e.context("committing to the lake failed"),
        Ok(Ok(())) => anyhow!("the commit worker stopped unexpectedly"),
        Err(_) => anyhow!("the commit worker panicked"),
    }
}
