//! The edge's health in the lake: a snapshot ([`moldops_shared::status`]) buffered when the
//! edge starts, every [`EVERY`] while it runs, and as it stops — uploaded like any record, so
//! the cloud sees the backlog, drops, broker link, devices and models of each edge over time,
//! outages included.

use crate::buffer::{Buffer, NewRecord, Writer};
use crate::health::Health;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Time between two snapshots while the edge runs.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// Buffers a snapshot now, every [`EVERY`], and a last one (`running` 0) at shutdown.
/// `devices` is how many devices the edge polls.
pub(crate) async fn run(
    writer: Writer,
    health: Arc<Health>,
    buffer: Arc<Buffer>,
    devices: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let running = tokio::select! {
            _ = tick.tick() => true,
            _ = shutdown.wait_for(|stop| *stop) => false,
        };
        let snapshot = health.snapshot(&buffer.stats(), devices, running, started.elapsed().as_secs_f64());
        let record = snapshot.to_record(chrono::Utc::now().timestamp_millis());
        if let Err(e) = writer.append(vec![NewRecord { record, shot_mark: None }]).await {
            tracing::warn!(error = %format!("{e:#}"), "health snapshot not buffered");
        }
        if !running {
            return;
        }
    }
}
