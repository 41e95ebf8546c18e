//! The gate's recorder: decision records go to the buffer off the gate's task (the output
//! never waits for a flush), then the journal notes the shot as decided — in that order, so a
//! crash between the two can give a shot a second record (`owed_after_restart`), never lose
//! its only one.

use super::task::Context;
use crate::buffer::NewRecord;
use moldops_shared::decision::DecisionRecord;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Decision records waiting for the buffer per gate; a stalled buffer fills it and further
/// records are counted as lost (the output is still driven).
pub(crate) const QUEUED: usize = 4096;

/// One decision on its way to the lake.
pub(crate) struct Recorded {
    /// The evidence.
    pub record: DecisionRecord,
    /// The shot to journal as decided once the record is durable (none for a duplicate).
    pub journal: Option<u64>,
}

/// Appends each decision record, then journals its shot; ends when the gate drops its sender.
pub(crate) async fn run(machine: String, ctx: Arc<Context>, mut rx: mpsc::Receiver<Recorded>) {
    while let Some(r) = rx.recv().await {
        let item = NewRecord { record: r.record.to_record(), shot_mark: None };
        if let Err(e) = ctx.writer.append(vec![item]).await {
            ctx.metrics.record_lost(&machine);
            tracing::error!(machine = %machine, error = %format!("{e:#}"), "decision record not buffered: lost");
            // Not journaled: after a restart the shot is owed and gets a record then.
            continue;
        }
        let Some(shot) = r.journal else { continue };
        let (journal, m) = (ctx.journal.clone(), machine.clone());
        let written = tokio::task::spawn_blocking(move || {
            journal.lock().unwrap_or_else(|e| e.into_inner()).set(&m, shot)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = written.map_err(anyhow::Error::from) {
            tracing::error!(machine = %machine, error = %format!("{e:#}"), "gate journal not written: a restart may record this shot again as owed");
        }
    }
}
