//! The commit worker: a dedicated thread that drains received publishes into groups (until
//! nothing more is ready or the group holds `max_group_records`), commits each group to the
//! lake, and only then acknowledges its publishes and publishes the edges' commit acks. All blocking work (JSON decoding, Parquet,
//! fsync) happens here, so the MQTT event loop is never starved.

use super::commit::{Committer, Group};
use super::stats::IngestStats;
use anyhow::{Context, Result};
use moldops_shared::ack::CommitAck;
use moldops_shared::topic::{self, Leaf};
use rumqttc::{AsyncClient, Publish, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Most publishes decoded together before checking whether the group is full.
const DECODE_ROUND: usize = 64;

/// A publish as handed from the event loop to the worker.
#[derive(Debug)]
pub(super) struct Received {
    pub publish: Publish,
    pub received_at_ms: i64,
}

/// Everything the worker needs.
pub(super) struct Worker {
    pub committer: Committer,
    pub rx: mpsc::UnboundedReceiver<Received>,
    pub client: AsyncClient,
    pub runtime: tokio::runtime::Handle,
    /// Set at shutdown: finish the group in hand, start no other.
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<IngestStats>,
    pub max_group_records: usize,
}

impl Worker {
    /// Starts the worker thread; its result arrives on the returned channel.
    pub(super) fn spawn(self) -> Result<oneshot::Receiver<Result<()>>> {
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("moldops-commit".into())
            .spawn(move || {
                let _ = done_tx.send(self.work());
            })
            .context("starting the commit thread")?;
        Ok(done_rx)
    }

    fn work(mut self) -> Result<()> {
        while let Some(first) = self.rx.blocking_recv() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let mut group = Group::default();
            let mut publishes = Vec::new();
            let mut oldest_ms = i64::MAX;
            let mut round = vec![first];
            loop {
                // Take what is ready now, decode it (on several cores), and go on while more
                // keeps coming and the group has room.
                let mut drained = false;
                while round.len() < DECODE_ROUND {
                    match self.rx.try_recv() {
                        Ok(r) => round.push(r),
                        Err(_) => {
                            drained = true;
                            break;
                        }
                    }
                }
                let msgs: Vec<(&str, &[u8], i64)> = round
                    .iter()
                    .map(|r| (r.publish.topic.as_str(), &r.publish.payload[..], r.received_at_ms))
                    .collect();
                group.add_all(&msgs);
                oldest_ms = round.iter().map(|r| r.received_at_ms).fold(oldest_ms, i64::min);
                publishes.extend(round.drain(..).map(|r| r.publish));
                if drained || group.records() >= self.max_group_records {
                    break;
                }
            }
            let started = Instant::now();
            let out = self.committer.commit(group)?;
            self.stats.commit(&out);
            let lag_ms = chrono::Utc::now().timestamp_millis().saturating_sub(oldest_ms).max(0);
            self.stats.observe_commit(started.elapsed().as_secs_f64(), lag_ms as f64 / 1e3);
            tracing::info!(
                messages = out.messages,
                raw_data = out.raw_records,
                peripheral_data = out.peripheral_records,
                edge_gaps = out.gap_records,
                edge_scores = out.score_records,
                edge_status = out.status_records,
                edge_decisions = out.decision_records,
                edge_drift = out.drift_records,
                edge_events = out.event_records,
                duplicates = out.duplicates,
                quarantined = out.quarantined,
                foreign_sparkplug = out.foreign_sparkplug,
                new_epochs = out.new_epochs,
                files = out.files.len(),
                ms = started.elapsed().as_millis() as u64,
                "committed"
            );
            for p in &publishes {
                if let Err(e) = self.runtime.block_on(self.client.ack(p)) {
                    if self.stop.load(Ordering::SeqCst) {
                        // Shutting down: unacknowledged publishes are redelivered and deduplicated.
                        return Ok(());
                    }
                    return Err(e).context("acknowledging a committed publish");
                }
            }
            // Tell the edges how far their streams are durable; they trim their buffers then.
            for a in &out.acks {
                let topic = topic::topic(&a.stream.site, &a.stream.edge_id, Leaf::Ack);
                let ack = CommitAck {
                    epoch: a.stream.epoch.clone(),
                    committed_through: a.committed_through,
                    ts_ms: chrono::Utc::now().timestamp_millis(),
                };
                let sent =
                    self.runtime.block_on(self.client.publish(topic, QoS::AtLeastOnce, true, ack.encode()));
                if let Err(e) = sent {
                    if self.stop.load(Ordering::SeqCst) {
                        // The edges re-send what is not acknowledged; the next commit acks it.
                        return Ok(());
                    }
                    return Err(e).context("publishing a commit ack");
                }
            }
        }
        Ok(())
    }
}
