//! What the buffer does when it is full: it drops the oldest records and tallies, per
//! machine and device, how many it dropped and their time and seq ranges. The tally is kept
//! in the buffer (so it survives restarts) and turned into gap records
//! ([`moldops_shared::gap`]) that are uploaded like any record, so the cloud shows each gap.
//!
//! While the buffer keeps overflowing (a long outage) the tally becomes gap records at most
//! every [`GAP_RECORDS_EVERY`], so gaps do not crowd out data; a gap record that is itself
//! dropped goes back into the tally, so no count is lost. Each gap covers one run of drops
//! (see [`GapTally`]), so the cloud can tell exactly which dropped records arrived anyway.

use super::{Buffer, META_DROPPED, META_NEXT_SEQ, record_key, seq_of};
use anyhow::Result;
use moldops_shared::gap::GapTally;
use moldops_shared::{Record, RecordKind};
use std::time::{Duration, Instant};

/// Meta key of the tally of dropped records not yet written as gap records.
pub(super) const META_GAPS: &[u8] = b"m\0gaps";

/// While drops go on, the tally becomes gap records at most this often.
pub(super) const GAP_RECORDS_EVERY: Duration = Duration::from_secs(60);

/// The tally stored in a buffer; an unreadable one is reported and started afresh (the drop
/// count itself is stored apart and survives).
pub(super) fn load_tally(tree: &sled::Tree) -> GapTally {
    match tree.get(META_GAPS) {
        Ok(Some(v)) => serde_json::from_slice(&v).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the buffer's tally of dropped records is unreadable: starting a new one");
            GapTally::default()
        }),
        Ok(None) => GapTally::default(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the buffer's tally of dropped records failed");
            GapTally::default()
        }
    }
}

impl Buffer {
    /// Drops the oldest records while the buffer is over its size limit less `reserve`
    /// bytes, tallying them and storing the count and tally. Returns whether it dropped any.
    pub(super) fn enforce_limit(&self, tree: &sled::Tree, reserve: u64) -> Result<bool> {
        let mut seqs: Option<(u64, u64)> = None;
        let mut lost = 0u64;
        while self.state().bytes.saturating_add(reserve) > self.max_bytes {
            let Some(kv) = tree.range(record_key(0)..).next() else { break };
            let (k, _) = kv?;
            // Removed here, not by the uplink in between: only then is it ours to count.
            let Some(v) = tree.remove(&k)? else { continue };
            let record = v.get(8..).and_then(|json| serde_json::from_slice::<Record>(json).ok());
            let mut st = self.state();
            st.records = st.records.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(v.len() as u64);
            match record {
                Some(r) => {
                    // A dropped gap record loses no data: its gap goes back into the tally.
                    if r.kind != RecordKind::Gap {
                        lost += 1;
                    }
                    if st.gaps.add(&r) {
                        tracing::warn!(
                            max = moldops_shared::gap::MAX_TALLY_GAPS,
                            "too many separate gaps while the buffer is full: merged older ones per source \
                             (counts stay exact; the cloud's count of what is missing becomes a lower bound)"
                        );
                    }
                }
                None => {
                    lost += 1;
                    tracing::warn!(seq = seq_of(&k), "dropped a buffered record that does not parse");
                }
            }
            let seq = seq_of(&k).unwrap_or(0);
            seqs = Some(seqs.map_or((seq, seq), |(first, _)| (first, seq)));
        }
        let Some((first, last)) = seqs else { return Ok(false) };
        let (total, tally) = {
            let mut st = self.state();
            st.dropped += lost;
            (st.dropped, serde_json::to_vec(&st.gaps)?)
        };
        let mut batch = sled::Batch::default();
        batch.insert(META_DROPPED, &total.to_be_bytes());
        batch.insert(META_GAPS, tally);
        tree.apply_batch(batch)?;
        if lost > 0 {
            tracing::warn!(
                first_seq = first,
                last_seq = last,
                dropped = lost,
                total,
                max_bytes = self.max_bytes,
                "buffer full: dropped the oldest records (uploaded as gap records per machine and device)"
            );
        }
        Ok(true)
    }

    /// Writes the tally as gap records (one per machine and device) when it holds any and
    /// either nothing was dropped just now or the last were written [`GAP_RECORDS_EVERY`]
    /// ago, first making room for them. Returns the next seq when it wrote some.
    pub(super) fn write_gap_records(
        &self,
        tree: &sled::Tree,
        dropping: bool,
        now_ms: i64,
    ) -> Result<Option<u64>> {
        let room = {
            let st = self.state();
            let due = st.gaps_written.is_none_or(|t| t.elapsed() >= GAP_RECORDS_EVERY);
            if st.gaps.is_empty() || (dropping && !due) {
                return Ok(None);
            }
            encode(&st.gaps, 0, now_ms)?.1
        };
        self.enforce_limit(tree, room)?;
        let mut st = self.state();
        let tally = st.gaps.take();
        let (values, added) = match encode(&tally, st.next_seq, now_ms) {
            Ok(v) => v,
            Err(e) => {
                st.gaps.restore(tally);
                return Err(e);
            }
        };
        let mut batch = sled::Batch::default();
        let mut seq = st.next_seq;
        for value in values {
            batch.insert(&record_key(seq), value);
            seq += 1;
        }
        batch.insert(META_NEXT_SEQ, &seq.to_be_bytes());
        batch.remove(META_GAPS);
        if let Err(e) = tree.apply_batch(batch) {
            st.gaps.restore(tally);
            return Err(e.into());
        }
        st.next_seq = seq;
        st.records += tally.len() as u64;
        st.bytes += added;
        st.gaps_written = Some(Instant::now());
        tracing::info!(
            gaps = tally.len(),
            dropped = tally.dropped(),
            "dropped records reported as gap records for the cloud"
        );
        Ok(Some(seq))
    }
}

/// The tally's gap records as stored values (seqs from `first_seq`), and their total size.
fn encode(tally: &GapTally, first_seq: u64, now_ms: i64) -> Result<(Vec<Vec<u8>>, u64)> {
    let mut out = Vec::with_capacity(tally.len());
    let mut bytes = 0u64;
    for (seq, gap) in (first_seq..).zip(tally.gaps()) {
        let mut record = gap.to_record();
        record.seq = seq;
        let mut value = now_ms.to_be_bytes().to_vec();
        serde_json::to_writer(&mut value, &record)?;
        bytes += value.len() as u64;
        out.push(value);
    }
    Ok((out, bytes))
}
