//! Tests of the dedup state: interval arithmetic, persistence and crash recovery.

use super::*;
use crate::lake::write::{Part, Row, write_parts};
use moldops_shared::{Record, RecordKind};

fn set(ranges: &[(u64, u64)]) -> SeqSet {
    let mut s = SeqSet::default();
    for &(a, b) in ranges {
        s.insert_range(a, b);
    }
    s
}

#[test]
fn intervals_merge_and_answer_membership() {
    let mut s = SeqSet::default();
    for seq in [5, 3, 4, 10, 12, 11, 1] {
        s.insert(seq);
    }
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![(1, 1), (3, 5), (10, 12)]);
    assert!(s.contains(4) && s.contains(12) && !s.contains(2) && !s.contains(13) && !s.contains(0));
    s.insert(2);
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![(1, 5), (10, 12)]);
    s.insert_range(6, 9);
    assert_eq!(s.iter().collect::<Vec<_>>(), vec![(1, 12)]);
    assert_eq!(s.len(), 12);
    let mut t = set(&[(20, 30), (40, 50), (60, 70)]);
    t.insert_range(25, 65);
    assert_eq!(t.iter().collect::<Vec<_>>(), vec![(20, 70)]);
    assert!(t.overlaps(0, 20) && t.overlaps(70, 80) && !t.overlaps(71, 80) && !t.overlaps(0, 19));
    let mut u = set(&[(u64::MAX - 1, u64::MAX)]);
    u.insert(0);
    assert_eq!(u.intervals(), 2);
    assert!(u.contains(u64::MAX));
}

#[test]
fn seqset_serializes_as_pairs() {
    let s = set(&[(1, 3), (7, 7)]);
    let text = serde_json::to_string(&s).expect("encode");
    assert_eq!(text, "[[1,3],[7,7]]");
    let back: SeqSet = serde_json::from_str("[[7,7],[3,1],[2,2]]").expect("decode");
    assert_eq!(back, s);
}

fn record(seq: u64) -> Record {
    Record {
        seq,
        kind: RecordKind::Shot,
        machine_id: "m1".into(),
        device_id: "m1".into(),
        ts_ms: 1_700_000_000_000 + seq as i64,
        shot_number: Some(seq),
        mold: Some("A".into()),
        material: None,
        values: [("Cycle_Time".to_string(), 1.0)].into_iter().collect(),
        out_of_range: vec![],
        model: None,
    }
}

fn write_part(lake: &Path, edge: &str, seqs: &[u64], nanos: u64) {
    write_epoch_part(lake, edge, "", seqs, nanos);
}

fn write_epoch_part(lake: &Path, edge: &str, epoch: &str, seqs: &[u64], nanos: u64) {
    let recs: Vec<Record> = seqs.iter().map(|&s| record(s)).collect();
    let rows: Vec<Row> = recs.iter().map(|r| Row { edge_id: edge, site: "s", epoch, record: r }).collect();
    let dir = lake::partition_dir(lake, "raw_data", "m1", "2023-11-14");
    let name = lake::part_file_name(&StreamId::new("s", edge, epoch), seqs[0], seqs[seqs.len() - 1], nanos);
    write_parts(lake, &[Part { dir, name, rows }]).expect("write");
}

fn stream(edge: &str) -> StreamId {
    StreamId::new("s", edge, "")
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = DedupState { mark_nanos: 5, ..Default::default() };
    state.streams.insert(stream("e1"), set(&[(1, 10)]));
    state.streams.insert(StreamId::new("s", "e1", "b2"), set(&[(0, 3)]));
    state.save(dir.path()).expect("save");
    let (back, report) = DedupState::recover(dir.path()).expect("recover");
    assert_eq!(back.streams, state.streams);
    assert_eq!(back.epochs_of("s", "e1"), 2);
    assert_eq!(back.mark_nanos, 5);
    assert_eq!(report, Recovery::default());
}

#[test]
fn recovers_orphan_part_files_and_removes_tmp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path();
    // Committed and recorded in the state.
    write_part(lake, "e1", &[1, 2, 3], 100);
    let mut state = DedupState { mark_nanos: 100, ..Default::default() };
    state.streams.insert(stream("e1"), set(&[(1, 3)]));
    state.save(lake).expect("save");
    // A crash after renaming these files but before writing the state.
    write_part(lake, "e1", &[4, 5], 200);
    write_part(lake, "e2", &[7], 201);
    // A crash before the rename: never acknowledged, must go.
    let tmp = lake::partition_dir(lake, "raw_data", "m1", "2023-11-14").join("part-x.parquet.tmp");
    std::fs::write(&tmp, b"half").expect("tmp");

    let (state, report) = DedupState::recover(lake).expect("recover");
    assert_eq!(report, Recovery { rebuilt: false, orphan_files: 2, orphan_rows: 3, tmp_removed: 1 });
    assert!(!tmp.exists());
    assert_eq!(state.mark_nanos, 201);
    assert_eq!(state.streams[&stream("e1")].iter().collect::<Vec<_>>(), vec![(1, 5)]);
    assert!(state.contains(&stream("e2"), 7) && !state.contains(&stream("e2"), 6));
    // The recovered state was saved: a second start finds nothing new.
    let (again, report) = DedupState::recover(lake).expect("recover again");
    assert_eq!(again, state);
    assert_eq!(report, Recovery::default());
}

#[test]
fn rebuilds_from_lake_when_state_is_missing_or_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path();
    write_part(lake, "e1", &[1, 2], 100);
    let (state, report) = DedupState::recover(lake).expect("recover");
    assert!(report.rebuilt);
    assert_eq!(report.orphan_files, 1);
    assert!(state.contains(&stream("e1"), 2));

    std::fs::write(DedupState::path(lake), b"{not json").expect("corrupt");
    let (state, report) = DedupState::recover(lake).expect("recover corrupt");
    assert!(report.rebuilt);
    assert!(state.contains(&stream("e1"), 1));
    let aside = std::fs::read_dir(lake.join(lake::INGEST_DIR))
        .expect("ls")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("state.json.corrupt-"));
    assert!(aside, "the corrupt state is kept aside");
}

#[test]
fn an_old_state_file_is_rebuilt_with_epochs_from_the_lake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path();
    write_part(lake, "e1", &[1, 2], 100);
    write_epoch_part(lake, "e1", "b2", &[0, 1], 101);
    std::fs::create_dir_all(lake.join(lake::INGEST_DIR)).expect("mkdir");
    let v1 = r#"{"version":1,"mark_nanos":101,"edges":{"e1":[[1,2]]},"last_commit_files":[]}"#;
    std::fs::write(DedupState::path(lake), v1).expect("v1");
    let (state, report) = DedupState::recover(lake).expect("recover");
    assert!(report.rebuilt && report.orphan_files == 2, "{report:?}");
    assert!(state.contains(&stream("e1"), 2) && !state.contains(&stream("e1"), 0));
    let b2 = StreamId::new("s", "e1", "b2");
    assert!(state.contains(&b2, 0) && state.contains(&b2, 1));
    assert_eq!(state.epochs_of("s", "e1"), 2);
}
