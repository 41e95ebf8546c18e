//! Group-commit throughput without a broker: decode + check (`Group::add`) and
//! dedup + Parquet + fsync + state (`Committer::commit`), on batches shaped like a WooJin shot
//! table (45 values, 500 records per batch, 20 batches per group — Mosquitto's default
//! in-flight window). Run with `cargo bench -p moldops-cloud --bench commit`; the target is
//! well above 50 000 records/s so that the end-to-end path keeps that rate.

use moldops_cloud::ingest::{Committer, Group};
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, Record, RecordKind, encode_batch};
use std::time::{Duration, Instant};

const PER_BATCH: u64 = 500;
const PER_GROUP: usize = 20;
const GROUPS: usize = 30;

fn batch(edge: &str, first: u64) -> Vec<u8> {
    let records = (first..first + PER_BATCH)
        .map(|seq| Record {
            seq,
            kind: if seq % 10 == 0 { RecordKind::Peripheral } else { RecordKind::Shot },
            machine_id: format!("M{}", seq % 3),
            device_id: format!("M{}", seq % 3),
            ts_ms: 1_700_000_000_000 + seq as i64 * 100,
            shot_number: (seq % 10 != 0).then_some(seq),
            mold: (seq % 10 != 0).then(|| "MOLD-A".to_string()),
            material: None,
            values: (0..45).map(|i| (format!("V{i:02}"), seq as f64 * 0.5 + i as f64)).collect(),
            out_of_range: vec![],
            model: None,
        })
        .collect();
    encode_batch(&Batch::new("plant", edge, 0, records).unwrap_or_else(|| unreachable!()))
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (mut committer, _) = Committer::open(dir.path())?;
    let t = topic("plant", "bench", Leaf::Data);
    let payloads: Vec<Vec<u8>> =
        (0..GROUPS * PER_GROUP).map(|i| batch("bench", 1 + i as u64 * PER_BATCH)).collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let (mut decode, mut commit) = (Duration::ZERO, Duration::ZERO);
    let mut records = 0;
    for group_payloads in payloads.chunks(PER_GROUP) {
        let started = Instant::now();
        let mut group = Group::default();
        let msgs: Vec<(&str, &[u8], i64)> = group_payloads.iter().map(|p| (t.as_str(), &p[..], 0)).collect();
        group.add_all(&msgs);
        records += group.records();
        decode += started.elapsed();
        let started = Instant::now();
        committer.commit(group)?;
        commit += started.elapsed();
    }
    let rate = |d: Duration| records as f64 / d.as_secs_f64();
    println!(
        "{records} records ({:.1} MB JSON) in {GROUPS} groups: decode {:.0} rec/s, commit {:.0} rec/s, \
         together {:.0} rec/s",
        bytes as f64 / 1e6,
        rate(decode),
        rate(commit),
        rate(decode + commit)
    );
    Ok(())
}
