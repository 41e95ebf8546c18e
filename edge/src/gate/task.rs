//! One task per gated machine: takes each durable shot with its verdict, decides, drives the
//! output within the deadline (or writes the fail-safe), journals the shot and buffers the
//! decision record, the part's evidence for the lake.

use super::config::GateConfig;
use super::decide::{Judgement, decide};
use super::journal::Journal;
use super::metrics::GateMetrics;
use super::output::Output;
use crate::buffer::{NewRecord, Writer};
use moldops_scoring::Verdict;
use moldops_shared::decision::{Decision, DecisionRecord, Outcome, Reason};
use moldops_shared::profile::counter_delta;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::score::ModelStamp;
use moldops_shared::{Record, RecordKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Most owed shots recorded after a restart (a journal far behind the buffer is reported as
/// a count in the log beyond this).
const MAX_OWED: u64 = 10_000;

/// Time the first connection to an output may take before the first shot.
const CONNECT_AHEAD: Duration = Duration::from_secs(2);

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

/// Hands shots to their machine's gate; cloned into whoever sees the verdicts.
#[derive(Clone, Default)]
pub(crate) struct Feed {
    gates: HashMap<String, mpsc::UnboundedSender<Shot>>,
}

impl Feed {
    /// True when `machine` has a gate.
    pub(crate) fn gated(&self, machine: &str) -> bool {
        self.gates.contains_key(machine)
    }

    /// Sends `shot` to its machine's gate (if any).
    pub(crate) fn offer(&self, shot: Shot) {
        if let Some(tx) = self.gates.get(&shot.record.machine_id)
            && tx.send(shot).is_err()
        {
            tracing::error!("a quality gate stopped; its shot is not decided");
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
    /// Per machine: the last shot the buffer recorded and the counter's width, to find shots
    /// owed since the last run.
    pub recorded: HashMap<String, (Option<u64>, u32)>,
    /// What relative paths of the config (an OPC UA output's certificates) resolve against.
    pub base: std::path::PathBuf,
}

/// Starts one task per gate; the tasks end at shutdown, after deciding what was queued. An
/// output whose settings no longer hold (a certificate removed since the config was checked)
/// stops the start with the reason.
pub(crate) fn start(
    gates: &[GateConfig],
    ctx: Context,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<(Feed, Vec<tokio::task::JoinHandle<()>>)> {
    let ctx = Arc::new(ctx);
    let mut feed = Feed::default();
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
        gated.push(Gate { output, cfg: cfg.clone(), ctx: ctx.clone() });
    }
    let mut tasks = Vec::new();
    for gate in gated {
        let (tx, rx) = mpsc::unbounded_channel();
        feed.gates.insert(gate.cfg.machine.clone(), tx);
        tasks.push(tokio::spawn(gate.run(rx, shutdown.clone())));
    }
    Ok((feed, tasks))
}

struct Gate {
    cfg: GateConfig,
    output: Option<Output>,
    ctx: Arc<Context>,
}

impl Gate {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Shot>, mut shutdown: watch::Receiver<bool>) {
        let machine = self.cfg.machine.clone();
        if let Some(out) = self.output.as_mut()
            && let Err(e) = out.connect(CONNECT_AHEAD).await
        {
            tracing::warn!(machine = %machine, error = %e, "gate output not reachable yet; every shot tries again");
        }
        self.record_owed().await;
        tracing::info!(machine = %machine, deadline_ms = self.cfg.deadline_ms, output = ?self.output.as_ref().map(Output::target), "quality gate on");
        loop {
            let stop = tokio::select! {
                shot = rx.recv() => match shot {
                    Some(shot) => Some(shot),
                    None => return,
                },
                stopping = shutdown.wait_for(|s| *s) => {
                    drop(stopping);
                    None
                }
            };
            match stop {
                Some(shot) => self.handle(shot).await,
                None => {
                    while let Ok(shot) = rx.try_recv() {
                        self.handle(shot).await;
                    }
                    return;
                }
            }
        }
    }

    /// Shots the buffer recorded after the journal's last actuated one, before this start:
    /// never actuated (the edge stopped between the two), each gets a decision record.
    async fn record_owed(&mut self) {
        let machine = self.cfg.machine.clone();
        let last = self.ctx.journal.lock().unwrap_or_else(|e| e.into_inner()).last(&machine);
        let Some(&(Some(recorded), bits)) = self.ctx.recorded.get(&machine) else { return };
        let Some(last) = last else { return };
        let owed = counter_delta(last, recorded, bits);
        if owed == 0 || owed > u64::MAX / 2 {
            return;
        }
        tracing::warn!(machine = %machine, owed, "shots recorded before the restart were never actuated: the output's watchdog took its fail-safe for them");
        let wrap = |n: u64| if bits >= 64 { n } else { n & ((1u64 << bits) - 1) };
        let now_ms = chrono::Utc::now().timestamp_millis();
        for k in (0..owed.min(MAX_OWED)).rev() {
            let shot = wrap(recorded.wrapping_sub(k));
            let d = DecisionRecord {
                machine_id: machine.clone(),
                ts_ms: now_ms,
                shot_number: Some(shot),
                mold: None,
                shot_seq: None,
                decision: Decision::Uncertain,
                reason: Reason::OwedAfterRestart,
                actuated: self.cfg.fail_safe,
                outcome: Outcome::Skipped,
                latency_ms: f64::NAN,
                model: None,
                missing: None,
                limits: Vec::new(),
            };
            self.ctx.metrics.decided(&machine, d.decision, d.reason, d.outcome, f64::NAN);
            self.buffer(d).await;
        }
        self.journal(recorded).await;
    }

    async fn handle(&mut self, shot: Shot) {
        let machine = self.cfg.machine.clone();
        let Some(number) = shot.record.shot_number else { return };
        if shot.live
            && self.ctx.journal.lock().unwrap_or_else(|e| e.into_inner()).last(&machine) == Some(number)
        {
            tracing::warn!(machine = %machine, shot = number, "shot already actuated (journal): not written again");
            self.ctx.metrics.gate(&machine, |s| s.duplicates_suppressed += 1);
            return;
        }
        let judged = decide(&self.cfg, &shot.record.values, shot.verdict, shot.score.as_ref());
        let (actuated, outcome, latency) = self.actuate(&shot, number, judged.decision).await;
        if shot.live {
            self.journal(number).await;
        }
        self.ctx.metrics.decided(&machine, judged.decision, judged.reason, outcome, latency.as_secs_f64());
        let record = evidence(&shot, judged, actuated, outcome, latency);
        self.buffer(record).await;
    }

    /// Drives the output for one shot: what was written, how it went, and when.
    async fn actuate(
        &mut self,
        shot: &Shot,
        number: u64,
        decision: Decision,
    ) -> (Decision, Outcome, Duration) {
        let deadline = Duration::from_millis(self.cfg.deadline_ms);
        let fail_safe = self.cfg.fail_safe;
        let Some(out) = self.output.as_mut().filter(|_| shot.live) else {
            // Recorded only, or a part long gone (read back from history): nothing to write.
            let (actuated, outcome) =
                if shot.live { (decision, Outcome::NotWired) } else { (fail_safe, Outcome::Skipped) };
            return (actuated, outcome, shot.submitted.elapsed());
        };
        let left = deadline.saturating_sub(shot.submitted.elapsed());
        let (actuated, limit, on_time) = if left.is_zero() {
            (fail_safe, deadline, Outcome::Late)
        } else {
            (decision, left, Outcome::Written)
        };
        let result = out.write(actuated, number, limit).await;
        let latency = shot.submitted.elapsed();
        match result {
            Ok(()) => (actuated, on_time, latency),
            Err(e) => {
                tracing::error!(machine = %self.cfg.machine, shot = number, error = %e, "gate output write failed: the output's watchdog must take the fail-safe");
                self.ctx.metrics.gate(&self.cfg.machine, |s| s.last_error = Some(e));
                (actuated, Outcome::Failed, latency)
            }
        }
    }

    // `&mut self` here and below: the output's Modbus context is `Send` but not `Sync`.
    async fn journal(&mut self, shot: u64) {
        let (journal, machine) = (self.ctx.journal.clone(), self.cfg.machine.clone());
        let written = tokio::task::spawn_blocking(move || {
            journal.lock().unwrap_or_else(|e| e.into_inner()).set(&machine, shot)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = written.map_err(anyhow::Error::from) {
            tracing::error!(machine = %self.cfg.machine, error = %format!("{e:#}"), "gate journal not written: a restart may count this shot as owed");
        }
    }

    async fn buffer(&mut self, d: DecisionRecord) {
        let item = NewRecord { record: d.to_record(), shot_mark: None };
        if let Err(e) = self.ctx.writer.append(vec![item]).await {
            self.ctx.metrics.record_lost(&self.cfg.machine);
            tracing::error!(machine = %self.cfg.machine, error = %format!("{e:#}"), "decision record not buffered: lost");
        }
    }
}

/// The decision record of one shot.
fn evidence(
    shot: &Shot,
    judged: Judgement,
    actuated: Decision,
    outcome: Outcome,
    latency: Duration,
) -> DecisionRecord {
    let r = &shot.record;
    let model = shot.score.as_ref().map(|s| {
        let stamp = ModelStamp {
            key: s.model_key.clone(),
            id: s.model_id.clone(),
            version: s.version,
            bundle_sha256: s.bundle_sha256.clone(),
        };
        (stamp, s.score, s.threshold)
    });
    DecisionRecord {
        machine_id: r.machine_id.clone(),
        ts_ms: r.ts_ms,
        shot_number: r.shot_number,
        mold: r.mold.clone(),
        shot_seq: Some(r.seq),
        decision: judged.decision,
        reason: judged.reason,
        actuated,
        outcome,
        latency_ms: latency.as_secs_f64() * 1000.0,
        model,
        missing: match shot.verdict {
            Verdict::Scored { missing } => Some(missing),
            _ => None,
        },
        limits: judged.broken,
    }
}

/// Feeds every durable shot to its gate with no model verdict (an edge without `[models]`).
/// Ends at shutdown, after passing on what was queued.
pub(crate) async fn feed_without_models(
    feed: Feed,
    mut records: mpsc::UnboundedReceiver<Vec<crate::buffer::Durable>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let pass = |batch: Vec<crate::buffer::Durable>| {
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
