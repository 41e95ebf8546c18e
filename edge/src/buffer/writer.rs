//! The group-commit writer: device tasks append through one [`Writer`] task, which commits
//! whatever is waiting together with one flush.

use super::{AppendFailed, Buffer, NewRecord};
use anyhow::Result;
use moldops_shared::Record;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

struct Request {
    items: Vec<NewRecord>,
    submitted: Instant,
    reply: oneshot::Sender<Result<Vec<u64>, AppendFailed>>,
}

/// A record once it is on disk, with its seq, and when its append was asked for (for a shot:
/// right after the poll that found it — where a quality gate's deadline starts).
#[derive(Debug, Clone)]
pub struct Durable {
    /// The record as stored (seq assigned).
    pub record: Record,
    /// When [`Writer::append`] was called with it.
    pub submitted: Instant,
    /// True for a machine's current shot (the one that advances its shot mark); false for
    /// shots read back from the controller's history and for every other record.
    pub live: bool,
}

/// Handle through which device tasks append; commits concurrent appends in groups.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Spawns the group-commit task for `buffer`.
    pub fn spawn(buffer: Arc<Buffer>) -> Writer {
        Self::spawn_tapped(buffer, None)
    }

    /// Like [`Writer::spawn`]; every record made durable is also sent to `tap` (with its seq,
    /// in seq order) once it is on disk — live scoring reads the shots there.
    pub fn spawn_tapped(buffer: Arc<Buffer>, tap: Option<mpsc::UnboundedSender<Vec<Durable>>>) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Request>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < 256 {
                    match rx.try_recv() {
                        Ok(r) => group.push(r),
                        Err(_) => break,
                    }
                }
                let sizes: Vec<usize> = group.iter().map(|r| r.items.len()).collect();
                let tapped: Option<Vec<Durable>> = tap.as_ref().map(|_| {
                    group
                        .iter()
                        .flat_map(|r| {
                            r.items.iter().map(|n| Durable {
                                record: n.record.clone(),
                                submitted: r.submitted,
                                live: n.shot_mark.is_some(),
                            })
                        })
                        .collect()
                });
                let (items, replies): (Vec<_>, Vec<_>) =
                    group.into_iter().map(|r| (r.items, r.reply)).unzip();
                let all: Vec<NewRecord> = items.into_iter().flatten().collect();
                match buffer.append(all).await {
                    Ok(seqs) => {
                        if let (Some(tap), Some(mut records)) = (tap.as_ref(), tapped) {
                            records.iter_mut().zip(&seqs).for_each(|(d, s)| d.record.seq = *s);
                            let _ = tap.send(records);
                        }
                        let mut rest = seqs.as_slice();
                        for (n, reply) in sizes.into_iter().zip(replies) {
                            let (mine, tail) = rest.split_at(n.min(rest.len()));
                            rest = tail;
                            let _ = reply.send(Ok(mine.to_vec()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Writer { tx }
    }

    /// Appends records durably; returns their seqs once they are on disk. A failure of the
    /// buffer itself is an [`AppendFailed`] in the error (see `downcast_ref`).
    pub async fn append(&self, items: Vec<NewRecord>) -> Result<Vec<u64>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { items, submitted: Instant::now(), reply })
            .await
            .map_err(|_| anyhow::anyhow!("buffer writer stopped"))?;
        Ok(rx.await.map_err(|_| anyhow::anyhow!("buffer writer stopped"))??)
    }
}
