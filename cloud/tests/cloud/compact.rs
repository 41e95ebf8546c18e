//! Lake compaction: many committed part files per partition become one with the same rows;
//! the ingest's dedup and recovery are unaffected; files the ingest state does not cover yet
//! are left alone; an interrupted compaction is completed by the next one.

use crate::support::{DAY0, MIN, commit, good, reading};
use moldops_cloud::etl::{self, EtlConfig, read_etl};
use moldops_cloud::ingest::Committer;
use moldops_cloud::lake::{self, compact::compact};
use std::path::{Path, PathBuf};

fn parts_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    out.sort();
    out
}

/// A lake with three commits of shots and readings on one day of machine M1.
fn lake_with_commits() -> tempfile::TempDir {
    let lake = tempfile::tempdir().expect("tempdir");
    let t = DAY0 + 8 * 60 * MIN;
    for c in 0..3u64 {
        let first = 1 + c * 10;
        let records = (0..5)
            .flat_map(|i| {
                let ts = t + (c * 5 + i) as i64 * MIN;
                [reading("M1-tcu", ts - 1_000, &[("flow", i as f64)]), good(c * 5 + i + 1, ts, "A")]
            })
            .collect();
        commit(lake.path(), "e1", first, records);
    }
    lake
}

#[test]
fn partitions_become_one_file_with_the_same_rows_and_dedup_still_holds() {
    let lake = lake_with_commits();
    let raw_dir = lake::partition_dir(lake.path(), "raw_data", "M1", "2024-05-01");
    assert_eq!(parts_in(&raw_dir).len(), 3);
    let before =
        [lake::read_dataset(lake.path(), "raw_data"), lake::read_dataset(lake.path(), "peripheral_data")]
            .map(|d| d.expect("read"));
    etl::run(lake.path(), &EtlConfig::default()).expect("etl before");
    let etl_before = read_etl(lake.path()).expect("etl_data");

    let r = compact(lake.path(), 2).expect("compact");
    assert_eq!((r.partitions, r.files_in, r.rows), (2, 6, 30), "{r:?}");
    assert_eq!(parts_in(&raw_dir).len(), 1);
    let after =
        [lake::read_dataset(lake.path(), "raw_data"), lake::read_dataset(lake.path(), "peripheral_data")]
            .map(|d| d.expect("read"));
    assert!(before[0].equals_missing(&after[0]) && before[1].equals_missing(&after[1]), "{after:?}");

    // The ingest: nothing to recover, and the same records again add nothing.
    let (committer, recovery) = Committer::open(lake.path()).expect("open");
    assert_eq!((recovery.orphan_files, recovery.rebuilt), (0, false));
    drop(committer);
    commit(lake.path(), "e1", 1, vec![good(1, DAY0 + 8 * 60 * MIN, "A")]);
    assert_eq!(
        lake::read_dataset(lake.path(), "raw_data").expect("read").height(),
        15,
        "a resend is a duplicate"
    );
    // The state rebuilt from the compacted lake covers the same seqs.
    std::fs::remove_file(lake.path().join("_ingest/state.json")).expect("rm state");
    let (_, recovery) = Committer::open(lake.path()).expect("open");
    assert!(recovery.rebuilt && recovery.orphan_rows == 30, "{recovery:?}");

    // The ETL rebuilds from the new files (their fingerprints changed) to the same etl_data.
    etl::run(lake.path(), &EtlConfig::default()).expect("etl after");
    assert!(etl_before.equals_missing(&read_etl(lake.path()).expect("etl_data")));
    // Nothing left to merge.
    assert_eq!(compact(lake.path(), 2).expect("again").partitions, 0);
}

#[test]
fn files_the_ingest_state_does_not_cover_are_left_alone() {
    let lake = lake_with_commits();
    let raw_dir = lake::partition_dir(lake.path(), "raw_data", "M1", "2024-05-01");
    // A commit whose files are written but whose state is not (a crash in between): its stamp
    // is above the mark.
    let newest = parts_in(&raw_dir).pop().expect("a part");
    let stamp = lake::part_nanos(&newest.file_name().expect("name").to_string_lossy()).expect("nanos");
    let stream = moldops_cloud::ingest::state::StreamId::new("plant", "e9", "");
    let orphan = raw_dir.join(lake::part_file_name(&stream, 1, 5, stamp + 1_000));
    std::fs::copy(&newest, &orphan).expect("copy");
    compact(lake.path(), 2).expect("compact");
    let left = parts_in(&raw_dir);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&orphan));
}

#[test]
fn an_interrupted_compaction_is_completed_by_the_next() {
    let lake = lake_with_commits();
    let raw_dir = lake::partition_dir(lake.path(), "raw_data", "M1", "2024-05-01");
    let rows = lake::read_dataset(lake.path(), "raw_data").expect("read").height();
    let inputs: Vec<(PathBuf, Vec<u8>)> =
        parts_in(&raw_dir).into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("read"))).collect();
    compact(lake.path(), 2).expect("compact");
    let merged = parts_in(&raw_dir).pop().expect("merged");
    // As if it had crashed after renaming the merged file but before removing the inputs.
    for (p, bytes) in &inputs {
        std::fs::write(p, bytes).expect("restore");
    }
    let rel = |p: &Path| p.strip_prefix(lake.path()).expect("in the lake").to_string_lossy().into_owned();
    let journal = serde_json::json!({
        "output": rel(&merged),
        "inputs": inputs.iter().map(|(p, _)| rel(p)).collect::<Vec<_>>(),
    });
    let journal_path = lake.path().join("_compact/00000000000000000001-x.json");
    std::fs::write(&journal_path, journal.to_string()).expect("journal");
    assert_eq!(lake::read_dataset(lake.path(), "raw_data").expect("read").height(), 2 * rows, "the window");

    let r = compact(lake.path(), 2).expect("completes");
    assert_eq!(r.journals_completed, 1);
    assert_eq!(parts_in(&raw_dir), std::slice::from_ref(&merged));
    assert_eq!(lake::read_dataset(lake.path(), "raw_data").expect("read").height(), rows);
    assert!(!journal_path.exists());

    // A journal whose merged file never made it into place is dropped; the inputs stay.
    let journal = serde_json::json!({"output": "raw_data/machine=M1/date=2024-05-01/part-~compact-1-2-00000000000000000009.parquet", "inputs": [rel(&merged)]});
    std::fs::write(&journal_path, journal.to_string()).expect("journal");
    assert_eq!(compact(lake.path(), 2).expect("drops it").journals_completed, 1);
    assert_eq!(parts_in(&raw_dir), [merged]);
    assert!(!journal_path.exists());
}

#[test]
fn a_journal_naming_files_outside_the_datasets_is_refused() {
    let lake = lake_with_commits();
    let outside = lake.path().join("_ingest/state.json");
    let journal = serde_json::json!({
        "output": "raw_data/machine=M1/date=2024-05-01/nothing.parquet",
        "inputs": ["raw_data/../_ingest/state.json"],
    });
    std::fs::create_dir_all(lake.path().join("_compact")).expect("mkdir");
    std::fs::write(lake.path().join("_compact/00000000000000000001-x.json"), journal.to_string())
        .expect("journal");
    let err = compact(lake.path(), 2).expect_err("refused");
    assert!(format!("{err:#}").contains("outside the lake's datasets"), "{err:#}");
    assert!(outside.is_file(), "nothing outside the datasets is removed");
}

/// Rows of raw_data in a folder standing in for a bucket.
fn raw_rows(bucket: &Path) -> usize {
    lake::read_dataset(bucket, "raw_data").map(|d| d.height()).unwrap_or(0)
}

#[test]
fn compaction_on_a_bucket_publishes_journal_then_merged_file_and_a_kill_in_between_is_completed() {
    use moldops_cloud::storage::{Store, block_on, mirror::Mirror};
    use std::cell::{Cell, RefCell};
    for killed_after in [1, 2] {
        let bucket = lake_with_commits();
        let url = bucket.path().display().to_string();
        let rows = raw_rows(bucket.path());
        let raw_dir = lake::partition_dir(bucket.path(), "raw_data", "M1", "2024-05-01");
        let compact_dir = bucket.path().join(lake::compact::COMPACT_DIR);
        let journals = || {
            std::fs::read_dir(&compact_dir).map_or(0, |d| {
                d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
            })
        };
        // A compaction on a copy, killed after its `killed_after`-th publication.
        let cache = tempfile::tempdir().expect("cache");
        let mirror = RefCell::new(
            block_on(Mirror::open(Store::open(&url).expect("store"), cache.path())).expect("copy").0,
        );
        let calls = Cell::new(0);
        let publish = || {
            calls.set(calls.get() + 1);
            anyhow::ensure!(calls.get() <= killed_after, "killed");
            block_on(mirror.borrow_mut().push()).map(drop)
        };
        let folder = mirror.borrow().folder().to_path_buf();
        assert!(lake::compact::compact_publishing(&folder, 2, &publish).is_err());
        assert_eq!(journals(), 1, "the journal is in the bucket before anything else");
        let expected = if killed_after == 2 { 4 } else { 3 };
        assert_eq!(parts_in(&raw_dir).len(), expected, "the merged file lands only after the journal");

        // The next compaction, on a fresh copy, completes or drops it; the rows stay.
        let cache = tempfile::tempdir().expect("cache");
        let mut next =
            block_on(Mirror::open(Store::open(&url).expect("store"), cache.path())).expect("copy").0;
        let folder = next.folder().to_path_buf();
        let r = lake::compact::compact(&folder, 2).expect("compact");
        assert_eq!(r.journals_completed, 1);
        block_on(next.push()).expect("publish");
        assert_eq!(journals(), 0);
        assert_eq!(raw_rows(bucket.path()), rows, "no row lost or doubled (killed after {killed_after})");
        assert_eq!(parts_in(&raw_dir).len(), 1);
    }
}

#[test]
fn one_compaction_of_a_bucket_at_a_time_and_a_stalled_one_is_taken_over() {
    use lake::compact::BucketLease;
    use std::time::Duration;
    let bucket = tempfile::tempdir().expect("bucket");
    let url = bucket.path().display().to_string();
    let short = Duration::from_millis(300);
    let a = BucketLease::take_as(&url, "a", Duration::from_secs(60), Duration::ZERO).expect("a takes it");
    let err = BucketLease::take_as(&url, "b", short, Duration::from_millis(200)).expect_err("a holds it");
    assert!(format!("{err:#}").contains("held by a"), "{err:#}");
    a.renew().expect("the holder renews");
    drop(a);
    let b = BucketLease::take_as(&url, "b", short, Duration::ZERO).expect("freed: b takes it at once");
    // b stalls (or was killed): once its lease and the grace have passed by c's clock, c takes
    // over, and b's next renewal — before its next publication — fails, so b stops.
    let started = std::time::Instant::now();
    let c = BucketLease::take_as(&url, "c", short, Duration::from_secs(20)).expect("c takes over");
    assert!(started.elapsed() >= short + moldops_cloud::storage::lease::TAKEOVER_GRACE);
    let err = b.renew().expect_err("b was taken over");
    assert!(format!("{err:#}").contains("taken over"), "{err:#}");
    c.renew().expect("c holds it");
}
