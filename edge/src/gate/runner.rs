//! One gated machine's task: each shot is decided, the output driven within the deadline (or
//! given the fail-safe), and the decision handed to the [`recorder`](super::recorder) — the
//! output never waits for the buffer. Shots owed since the last run are recorded at start.

use super::config::GateConfig;
use super::decide::{Judgement, decide};
use super::output::Output;
use super::recorder::{self, Recorded};
use super::task::{Context, Shot};
use moldops_scoring::Verdict;
use moldops_shared::decision::{Decision, DecisionRecord, ModelJudgement, Outcome, Reason};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Most owed shots recorded after a restart (beyond, the log gives the count).
const MAX_OWED: u64 = 10_000;

/// Time a connection to the output may take: ahead of the first shot, and when a shot finds
/// it down (that shot is then late and gets the fail-safe; later ones are on time again).
const CONNECT_AHEAD: Duration = Duration::from_secs(2);

/// Less time than this left before the deadline: the decision is late (a write with a
/// microsecond budget would only fail and drop the connection).
const MIN_WRITE: Duration = Duration::from_millis(1);

/// One gate: its settings, its output, and the last shot it decided.
pub(crate) struct Gate {
    cfg: GateConfig,
    output: Option<Output>,
    ctx: Arc<Context>,
    /// Last shot decided (from the journal at start): a live shot equal to it was actuated.
    last: Option<u64>,
}

impl Gate {
    pub(crate) fn new(cfg: GateConfig, output: Option<Output>, ctx: Arc<Context>) -> Gate {
        let last = ctx.journal.lock().unwrap_or_else(|e| e.into_inner()).last(&cfg.machine);
        Gate { cfg, output, ctx, last }
    }

    pub(crate) fn machine(&self) -> &str {
        &self.cfg.machine
    }

    /// Decides every shot the feed sends until every feed is dropped, then lets the recorder
    /// finish.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Shot>,
        shutdown: watch::Receiver<bool>,
    ) {
        let machine = self.cfg.machine.clone();
        let (tx, records) = mpsc::channel(recorder::QUEUED);
        let recorder = tokio::spawn(recorder::run(machine.clone(), self.ctx.clone(), records));
        if let Some(out) = self.output.as_mut()
            && let Err(e) = out.connect(CONNECT_AHEAD).await
        {
            tracing::warn!(machine = %machine, error = %e, "gate output not reachable yet; every shot tries again");
        }
        self.record_owed(&tx).await;
        tracing::info!(machine = %machine, deadline_ms = self.cfg.deadline_ms, output = ?self.output.as_ref().map(Output::target), "quality gate on");
        while let Some(shot) = rx.recv().await {
            self.handle(shot, &tx).await;
        }
        if !*shutdown.borrow() {
            tracing::error!(machine = %machine, "the quality gate's feed ended while the edge runs: no more decisions");
        }
        drop(tx);
        let _ = recorder.await;
    }

    /// Hands a decision to the recorder without waiting; a full queue counts it as lost.
    fn send(&self, tx: &mpsc::Sender<Recorded>, r: Recorded) {
        if tx.try_send(r).is_err() {
            self.ctx.metrics.record_lost(&self.cfg.machine);
            tracing::error!(machine = %self.cfg.machine, "decision record not buffered (the buffer is not keeping up): lost");
        }
    }

    /// Shots the buffer recorded after the journal's last decided one, before this start:
    /// never decided (the edge stopped between the two), each gets a record. A counter that
    /// went backwards (a controller reset: half its range or more) owes nothing.
    async fn record_owed(&mut self, tx: &mpsc::Sender<Recorded>) {
        let machine = self.cfg.machine.clone();
        let (Some(last), Some(recorded)) = (self.last, self.ctx.recorded.get(&machine).copied()) else {
            return;
        };
        let (Some(now), bits) = (recorded.shot, recorded.bits) else { return };
        let owed = owed_shots(last, now, bits);
        if owed.is_empty() {
            return;
        }
        tracing::warn!(machine = %machine, owed = owed.len(), "shots recorded before the restart were never decided: the output's watchdog took its fail-safe for them");
        let now_ms = chrono::Utc::now().timestamp_millis();
        let n = owed.len();
        for (i, shot) in owed.into_iter().enumerate() {
            let record = DecisionRecord {
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
                broken: Vec::new(),
            };
            self.ctx.metrics.decided(&machine, record.decision, record.reason, record.outcome, f64::NAN);
            // Before the first shot: waiting for room in the recorder's queue costs nothing.
            if tx.send(Recorded { record, journal: (i + 1 == n).then_some(now) }).await.is_err() {
                self.ctx.metrics.record_lost(&machine);
            }
        }
        self.last = Some(now);
    }

    async fn handle(&mut self, shot: Shot, tx: &mpsc::Sender<Recorded>) {
        let machine = self.cfg.machine.clone();
        let Some(number) = shot.record.shot_number else { return };
        if shot.live && self.last == Some(number) {
            // Met again after a corrupt buffer was replaced: actuated before, not again.
            tracing::warn!(machine = %machine, shot = number, "shot already actuated (journal): not written again");
            self.ctx.metrics.gate(&machine, |s| s.duplicates_suppressed += 1);
            let judged =
                Judgement { decision: Decision::Uncertain, reason: Reason::AlreadyActuated, broken: vec![] };
            let record = evidence(&shot, judged, self.cfg.fail_safe, Outcome::Skipped, Duration::ZERO);
            self.send(tx, Recorded { record, journal: None });
            return;
        }
        let judged = decide(&self.cfg, &shot.record.values, shot.verdict, shot.score.as_ref());
        // A dead model (its inference failed) takes the configured fail-safe, like a missed
        // deadline; every other uncertain part is diverted as `uncertain`.
        let wanted =
            if judged.reason == Reason::InferenceFailed { self.cfg.fail_safe } else { judged.decision };
        let (actuated, outcome, latency) = self.actuate(&shot, number, wanted).await;
        self.last = Some(number);
        self.ctx.metrics.decided(&machine, judged.decision, judged.reason, outcome, latency.as_secs_f64());
        let record = evidence(&shot, judged, actuated, outcome, latency);
        self.send(tx, Recorded { record, journal: Some(number) });
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
        if !out.is_connected()
            && let Err(e) = out.connect(CONNECT_AHEAD).await
        {
            tracing::debug!(machine = %self.cfg.machine, error = %e, "gate output still not reachable");
        }
        let left = deadline.saturating_sub(shot.submitted.elapsed());
        let (actuated, limit, on_time) = if left < MIN_WRITE {
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
}

/// The shot numbers after `last` up to `now` (a `bits`-wide counter, wrapping), oldest first, at
/// most [`MAX_OWED`] (the newest); none when `now` is `last` or lies half the counter's range or
/// more behind it (the controller's counter was reset: nothing is owed).
fn owed_shots(last: u64, now: u64, bits: u32) -> Vec<u64> {
    let delta = moldops_shared::profile::counter_delta(last, now, bits);
    let half = if bits >= 64 { u64::MAX / 2 } else { 1u64 << (bits - 1) };
    if delta == 0 || delta >= half {
        return Vec::new();
    }
    let wrap = |n: u64| if bits >= 64 { n } else { n & ((1u64 << bits) - 1) };
    (0..delta.min(MAX_OWED)).rev().map(|k| wrap(now.wrapping_sub(k))).collect()
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
    let model = shot.score.as_ref().map(|s| ModelJudgement {
        stamp: s.stamp(),
        score: s.score,
        threshold: s.threshold,
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
        broken: judged.broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_shots_follow_the_counter_across_wrap_and_not_across_a_reset() {
        assert_eq!(owed_shots(10, 13, 32), [11, 12, 13]);
        assert_eq!(owed_shots(10, 10, 32), Vec::<u64>::new());
        assert_eq!(owed_shots(65_534, 1, 16), [65_535, 0, 1], "a 16-bit counter wraps");
        assert!(owed_shots(500, 3, 16).is_empty(), "the counter went back: a reset owes nothing");
        assert!(owed_shots(500, 3, 32).is_empty());
        assert!(owed_shots(u64::MAX - 1, 0, 64).len() == 2);
        let many = owed_shots(0, 50_000, 32);
        assert_eq!((many.len() as u64, many.first(), many.last()), (MAX_OWED, Some(&40_001), Some(&50_000)));
    }
}
