//! The gates' plumbing: the [`Shot`] each gate takes, the [`Feed`] that hands shots to their
//! machine's gate, [`start`] (one [`Gate`](super::runner::Gate) task per `[[gates]]` entry),
//! and the feeder of an edge without models.

use super::config::GateConfig;
use super::journal::Journal;
use super::metrics::GateMetrics;
use super::output::Output;
use super::runner::Gate;
use crate::buffer::{Durable, Writer};
use moldops_scoring::Verdict;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::{Record, RecordKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// A durable shot with what the active model made of it.
#[derive(Debug)]
pub(crate) struct Shot {
    /// The shot record, seq assigned.
    pub record: Record,
    /// When its poll handed it to the buffer (the deadline starts there).
    pub submitted: Instant,
    /// False for shots read back from the controller's history after an outage: their parts
    /// are long gone, so nothing is written for them.
    pub live: bool,
    /// The active model's verdict.
    pub verdict: Verdict,
    /// The active model's score message, when it scored the shot.
    pub score: Option<ScoreMessage>,
}

/// Hands shots to their machine's gate; held by whoever sees the verdicts (the rollout agent,
/// or [`feed_without_models`]). A gate ends once every feed is dropped, after deciding what was
/// queued.
#[derive(Clone, Default)]
pub(crate) struct Feed {
    gates: HashMap<String, mpsc::UnboundedSender<Shot>>,
    metrics: Option<Arc<GateMetrics>>,
}

impl Feed {
    /// True when `machine` has a gate.
    pub(crate) fn gated(&self, machine: &str) -> bool {
        self.gates.contains_key(machine)
    }

    /// Sends `shot` to its machine's gate (if any); a gate that has stopped is logged and the
    /// shot counted as undecided.
    pub(crate) fn offer(&self, shot: Shot) {
        let machine = shot.record.machine_id.clone();
        if let Some(tx) = self.gates.get(&machine)
            && tx.send(shot).is_err()
        {
            if let Some(m) = &self.metrics {
                m.undecided(&machine);
            }
            tracing::error!(machine = %machine, "the quality gate has stopped: shot not decided");
        }
    }
}

/// What the gates need from the edge around them.
pub(crate) struct Context {
    /// Appends decision records.
    pub writer: Writer,
    /// Counts and status.
    pub metrics: Arc<GateMetrics>,
    /// The journal, shared by every gate of this edge.
    pub journal: Arc<Mutex<Journal>>,
    /// Per machine, what the buffer recorded last, to find shots owed since the last run.
    pub recorded: HashMap<String, LastRecorded>,
    /// What relative paths of the config (an OPC UA output's certificates) resolve against.
    pub base: std::path::PathBuf,
}

/// The last shot the buffer recorded for a machine, with the width of its counter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastRecorded {
    /// Shot number of the shot mark; `None` before the first shot.
    pub shot: Option<u64>,
    /// Bits of the machine's shot counter.
    pub bits: u32,
}

/// Starts one task per gate. An output whose settings no longer hold (a certificate removed
/// since the config was checked) stops the start with the reason.
pub(crate) fn start(
    gates: &[GateConfig],
    ctx: Context,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<(Feed, Vec<tokio::task::JoinHandle<()>>)> {
    let ctx = Arc::new(ctx);
    let mut feed = Feed { gates: HashMap::new(), metrics: Some(ctx.metrics.clone()) };
    let mut gated = Vec::new();
    for cfg in gates {
        let deadline = Duration::from_millis(cfg.deadline_ms);
        let output = match &cfg.output {
            Some(o) => Some(
                Output::new(&cfg.machine, o, &ctx.base, deadline)
                    .map_err(|e| anyhow::anyhow!("gate of {}: {e}", cfg.machine))?,
            ),
            None => None,
        };
        ctx.metrics.gate(&cfg.machine, |s| {
            s.deadline_ms = cfg.deadline_ms;
            s.output = cfg.output.as_ref().map(|o| o.target());
        });
        gated.push(Gate::new(cfg.clone(), output, ctx.clone()));
    }
    let mut tasks = Vec::new();
    for gate in gated {
        let (tx, rx) = mpsc::unbounded_channel();
        feed.gates.insert(gate.machine().to_string(), tx);
        tasks.push(tokio::spawn(gate.run(rx, shutdown.clone())));
    }
    Ok((feed, tasks))
}

/// Feeds every durable shot to its gate with no model verdict (an edge without `[models]`).
/// Ends at shutdown, after passing on what was queued (dropping the feed ends the gates).
pub(crate) async fn feed_without_models(
    feed: Feed,
    mut records: mpsc::UnboundedReceiver<Vec<Durable>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let pass = |batch: Vec<Durable>| {
        for d in batch {
            if d.record.kind == RecordKind::Shot && feed.gated(&d.record.machine_id) {
                let (live, submitted) = (d.live, d.submitted);
                feed.offer(Shot {
                    live,
                    submitted,
                    record: d.record,
                    verdict: Verdict::NoModel,
                    score: None,
                });
            }
        }
    };
    loop {
        tokio::select! {
            batch = records.recv() => match batch {
                Some(batch) => pass(batch),
                None => return,
            },
            _ = shutdown.wait_for(|s| *s) => {
                while let Ok(batch) = records.try_recv() {
                    pass(batch);
                }
                return;
            }
        }
    }
}
