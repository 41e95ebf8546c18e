//! The bucket commit protocol against a folder standing in for the bucket (the storage
//! layer's same calls; against a real S3 API server in the e2e test `ingest_replicas`).

use super::super::commit::tests::{data_topic, payload, shot};
use super::*;
use crate::ingest::{Committer, Group};
use crate::lake::StreamId;
use crate::storage::lease::Lease;
use std::time::Instant;

fn commit(c: &mut Committer, topic: &str, seqs: std::ops::RangeInclusive<u64>) -> crate::ingest::Outcome {
    let mut g = Group::default();
    g.add(topic, &payload("e1", seqs.map(|s| shot(s, "M1", &[])).collect()), 0);
    c.commit(g).expect("commit")
}

/// Rows of raw_data in the bucket, read through a copy.
fn bucket_rows(bucket: &Path) -> usize {
    crate::lake::read_dataset(bucket, "raw_data").map(|d| d.height()).unwrap_or(0)
}

#[test]
fn two_writers_take_turns_on_one_bucket_and_each_record_lands_once() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let url = bucket.path().display().to_string();
    let (mut a, _) = Committer::open_bucket(&url, &cache.path().join("a"), "a").expect("a");
    let (mut b, _) = Committer::open_bucket(&url, &cache.path().join("b"), "b").expect("b");
    let t = data_topic("e1");
    assert_eq!(commit(&mut a, &t, 1..=5).raw_records, 5);
    assert_eq!(commit(&mut b, &t, 6..=10).raw_records, 5);
    let out = commit(&mut a, &t, 4..=12);
    assert_eq!((out.raw_records, out.duplicates), (2, 7), "a sees what b committed");
    assert_eq!(bucket_rows(bucket.path()), 12);
    assert!(bucket.path().join("_ingest/state.json").is_file());
    assert!(!bucket.path().join(PENDING_KEY).exists(), "the marker is removed after each turn");
    let lease: Lease =
        serde_json::from_slice(&std::fs::read(bucket.path().join(LEASE_KEY)).expect("lease")).expect("json");
    assert_eq!((lease.owner.as_str(), lease.expires_ms), ("", 0), "the lease is free between turns");
    assert!(std::fs::read_dir(cache.path().join("a")).expect("scratch").next().is_none(), "scratch emptied");

    // A writer that stopped half-way: its parts are in the bucket, the state does not cover
    // them, the marker is left. The next turn folds them in; their redelivery is dropped.
    let before = std::fs::read(bucket.path().join(STATE_KEY)).expect("state");
    assert_eq!(commit(&mut b, &t, 13..=15).raw_records, 3);
    std::fs::write(bucket.path().join(STATE_KEY), &before).expect("roll the state back");
    std::fs::write(bucket.path().join(PENDING_KEY), b"").expect("marker");
    let out = commit(&mut a, &t, 13..=16);
    assert_eq!((out.raw_records, out.duplicates), (1, 3));
    assert_eq!(bucket_rows(bucket.path()), 16, "each record once");

    // A new writer on the bucket (a restart, its scratch lost) starts from the bucket's state.
    drop((a, b));
    let (c, recovery) = Committer::open_bucket(&url, &cache.path().join("c"), "c").expect("c");
    assert!(!recovery.rebuilt);
    let e1 = StreamId::new("plant", "e1", "");
    assert_eq!(c.state().streams[&e1].iter().collect::<Vec<_>>(), vec![(1, 16)]);
}

#[test]
fn a_dead_writers_lease_is_taken_over_once_it_runs_out_and_a_stale_writer_is_fenced() {
    let (bucket, cache) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
    let url = bucket.path().display().to_string();
    let (mut a, _) = Committer::open_bucket(&url, &cache.path().join("a"), "a").expect("a");
    // A writer killed while it held the lease, by a clock far ahead: the taker waits a whole
    // lease (and the grace) by its own clock, not until the holder's `expires_ms`.
    let dead =
        Lease { owner: "killed@1".into(), expires_ms: chrono::Utc::now().timestamp_millis() + 3_600_000 };
    std::fs::write(bucket.path().join(LEASE_KEY), serde_json::to_vec(&dead).expect("json")).expect("lease");
    let short = Duration::from_millis(400);
    let started = Instant::now();
    let (_w, mut state, _) = BucketWriter::open_with_lease(&url, &cache.path().join("w"), "w", short)
        .expect("a turn after the dead lease");
    assert!(started.elapsed() >= short + TAKEOVER_GRACE, "waited for the lease to run out");
    assert_eq!(commit(&mut a, &data_topic("e1"), 1..=3).raw_records, 3);

    // A holder past its lease starts no request: its commit fails unacknowledged.
    let mut slow =
        BucketWriter::open_with_lease(&url, &cache.path().join("slow"), "slow", short).expect("slow").0;
    slow.take_turn(&mut state).expect("turn");
    std::fs::create_dir_all(slow.scratch().join("raw_data")).expect("mkdir");
    std::fs::write(slow.scratch().join("raw_data/part-late.parquet"), b"x").expect("part");
    std::thread::sleep(short);
    let err = format!("{:#}", slow.end_turn(&state).expect_err("too late"));
    assert!(err.contains("outlived its lease"), "{err}");
    assert!(!bucket.path().join("raw_data/part-late.parquet").exists(), "nothing published late");

    // A writer whose turn outlived its lease, taken over by another that committed first:
    // its state write is refused, so nothing it had is acknowledged.
    let store = Store::open(&url).expect("store");
    let mut stale = BucketWriter::open(&url, &cache.path().join("s"), "stale").expect("stale").0;
    let mut state = DedupState::default();
    stale.take_turn(&mut state).expect("turn");
    std::fs::write(bucket.path().join(LEASE_KEY), b"{\"owner\":\"\",\"expires_ms\":0}").expect("expire it");
    assert_eq!(commit(&mut a, &data_topic("e1"), 4..=6).raw_records, 3);
    std::fs::create_dir_all(stale.scratch().join("_ingest")).expect("mkdir");
    std::fs::write(DedupState::path(stale.scratch()), state.to_bytes().expect("bytes")).expect("state");
    let err = format!("{:#}", stale.end_turn(&state).expect_err("fenced"));
    assert!(err.contains("another ingest changed the dedup state"), "{err}");
    let saved = block_on(store.get(STATE_KEY)).expect("get").expect("state");
    let saved = DedupState::from_bytes(&saved.0).expect("parse");
    assert!(saved.contains(&StreamId::new("plant", "e1", ""), 6), "the newer state stands");
}
