//! Tests of group commits: round trip through Parquet, dedup, quarantine.

use super::*;
use crate::lake::FIXED_COLUMNS;
use moldops_shared::{Record, encode_batch};
use polars::prelude::*;

pub(crate) const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

pub(crate) fn shot(seq: u64, machine: &str, values: &[(&str, f64)]) -> Record {
    Record {
        seq,
        kind: RecordKind::Shot,
        machine_id: machine.into(),
        device_id: machine.into(),
        ts_ms: T0 + seq as i64 * 1000,
        shot_number: Some(1000 + seq),
        mold: Some("MOLD-A".into()),
        material: None,
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        out_of_range: vec![],
        model: None,
    }
}

pub(crate) fn peripheral(seq: u64, machine: &str, device: &str) -> Record {
    Record {
        seq,
        kind: RecordKind::Peripheral,
        machine_id: machine.into(),
        device_id: device.into(),
        ts_ms: T0 + seq as i64 * 1000,
        shot_number: None,
        mold: None,
        material: None,
        values: [("Mold_Temp".to_string(), 40.5)].into_iter().collect(),
        out_of_range: vec!["Mold_Temp".into(), "Flow".into()],
        model: None,
    }
}

pub(crate) fn payload(edge: &str, records: Vec<Record>) -> Vec<u8> {
    encode_batch(&Batch::new("plant", edge, T0, records).expect("non-empty"))
}

pub(crate) fn data_topic(edge: &str) -> String {
    topic::topic("plant", edge, Leaf::Data)
}

fn epoch_payload(site: &str, edge: &str, epoch: &str, records: Vec<Record>) -> Vec<u8> {
    encode_batch(&Batch::new(site, edge, T0, records).expect("non-empty").with_epoch(epoch))
}

fn commit(c: &mut Committer, msgs: &[(&str, Vec<u8>)]) -> Outcome {
    // `add_all` decodes on several threads; order and results must match `add`.
    let mut g = Group::default();
    let all: Vec<(&str, &[u8], i64)> = msgs.iter().map(|(t, p)| (*t, p.as_slice(), T0)).collect();
    g.add_all(&all);
    let mut one_by_one = Group::default();
    msgs.iter().for_each(|(t, p)| one_by_one.add(t, p, T0));
    assert_eq!(format!("{g:?}"), format!("{one_by_one:?}"));
    c.commit(g).expect("commit")
}

#[test]
fn round_trip_with_heterogeneous_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let mut oor = shot(2, "M1", &[("Cycle_Time", 61.5), ("Max_Pressure", 120.0)]);
    oor.out_of_range = vec!["Max_Pressure".into()];
    let first =
        payload("e1", vec![shot(1, "M1", &[("Cycle_Time", 60.0)]), oor, peripheral(3, "M1", "TCU-1")]);
    let second = payload("e1", vec![shot(4, "M1", &[("Barrel_Temp", 230.0)])]);
    let out = commit(&mut c, &[(&t, first), (&t, second)]);
    assert_eq!((out.raw_records, out.peripheral_records, out.duplicates, out.quarantined), (3, 1, 0, 0));
    assert_eq!(out.files.len(), 2, "one file per dataset/machine/date/edge: {:?}", out.files);
    assert!(out.files[0].starts_with("peripheral_data/machine=M1/date=2023-11-14/part-plant~e1~0-3-3-"));
    assert!(out.files[1].starts_with("raw_data/machine=M1/date=2023-11-14/part-plant~e1~0-1-4-"));

    let raw = lake::read_dataset(dir.path(), "raw_data").expect("read");
    let names: Vec<&str> = raw.get_column_names().into_iter().map(|c| c.as_str()).collect();
    assert_eq!(names[..10], FIXED_COLUMNS);
    assert_eq!(names[10..], ["Barrel_Temp", "Cycle_Time", "Max_Pressure"]);
    assert_eq!(
        raw.column("ts").expect("ts").dtype(),
        &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
    );
    let seq: Vec<Option<u64>> = raw.column("seq").expect("seq").u64().expect("u64").iter().collect();
    assert_eq!(seq, [Some(1), Some(2), Some(4)]);
    let cycle: Vec<Option<f64>> = raw.column("Cycle_Time").expect("c").f64().expect("f64").iter().collect();
    assert_eq!(cycle, [Some(60.0), Some(61.5), None]);
    let oor: Vec<Option<&str>> = raw.column("out_of_range").expect("o").str().expect("str").iter().collect();
    assert_eq!(oor, [None, Some("Max_Pressure"), None]);
    let ts = raw.column("ts").expect("ts").cast(&DataType::Int64).expect("cast");
    assert_eq!(ts.i64().expect("i64").get(0), Some(T0 + 1000));

    let per = lake::read_dataset(dir.path(), "peripheral_data").expect("read");
    assert_eq!(per.height(), 1);
    assert_eq!(per.column("shot_number").expect("s").null_count(), 1);
    assert_eq!(per.column("mold").expect("m").null_count(), 1);
    assert_eq!(per.column("out_of_range").expect("o").str().expect("str").get(0), Some("Mold_Temp,Flow"));
    assert_eq!(per.column("device_id").expect("d").str().expect("str").get(0), Some("TCU-1"));
    assert_eq!(lake::read_dataset(dir.path(), "nothing").expect("empty").height(), 0);
}

/// The score record an edge buffers for shot `shot_seq` (see `moldops_shared::score`).
pub(crate) fn score(seq: u64, shot_seq: u64, alarm: bool) -> Record {
    let msg = moldops_shared::rollout::ScoreMessage {
        edge_id: "e1".into(),
        machine_id: "M1".into(),
        mold: Some("MOLD-A".into()),
        shot_number: Some(1000 + shot_seq),
        seq: shot_seq,
        ts_ms: T0 + shot_seq as i64 * 1000,
        model_key: "M1".into(),
        model_id: "M1@2".into(),
        version: 2,
        bundle_sha256: "c0ffee".repeat(10) + "c0ff",
        score: if alarm { 9.0 } else { 0.5 },
        threshold: 3.0,
        alarm,
        contributions: vec![("Cycle_Time".into(), 6.0), ("Max_Pressure".into(), 3.0)],
    };
    Record { seq, ..msg.to_record() }
}

#[test]
fn score_records_land_in_edge_scores_with_their_model_stamp_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let batch = payload(
        "e1",
        vec![
            shot(1, "M1", &[("Cycle_Time", 60.0)]),
            score(2, 1, false),
            shot(3, "M1", &[]),
            score(4, 3, true),
        ],
    );
    let mut forged = score(5, 3, true);
    forged.values.insert(moldops_shared::score::value::ALARM.into(), 0.5);
    let out = commit(&mut c, &[(&t, batch.clone()), (&t, payload("e1", vec![forged]))]);
    assert_eq!((out.raw_records, out.score_records, out.alarm_records, out.quarantined), (2, 2, 1, 1));
    let out = commit(&mut c, &[(&t, batch)]);
    assert_eq!((out.score_records, out.duplicates), (0, 4), "a replay writes nothing");

    let df = lake::read_dataset(dir.path(), "edge_scores").expect("read");
    let names: Vec<&str> = df.get_column_names().into_iter().map(|c| c.as_str()).collect();
    assert_eq!(names[..10], FIXED_COLUMNS);
    assert_eq!(names[10..14], lake::MODEL_COLUMNS);
    assert_eq!(
        names[14..],
        ["alarm", "contribution.Cycle_Time", "contribution.Max_Pressure", "score", "shot_seq", "threshold"]
    );
    let col = |n: &str| df.column(n).expect(n).clone();
    assert_eq!(col("model_id").str().expect("str").get(1), Some("M1@2"));
    assert_eq!(col("model_version").u32().expect("u32").get(0), Some(2));
    assert_eq!(col("device_id").str().expect("str").get(0), Some(moldops_shared::score::DEVICE_ID));
    let shot_seq: Vec<Option<f64>> = col("shot_seq").f64().expect("f64").iter().collect();
    assert_eq!(shot_seq, [Some(1.0), Some(3.0)]);
    let contribution: Vec<Option<f64>> = col("contribution.Cycle_Time").f64().expect("f64").iter().collect();
    assert_eq!(contribution, [None, Some(6.0)], "contributions on the alarm only");
    let raw = lake::read_dataset(dir.path(), "raw_data").expect("raw");
    assert!(raw.column("model_id").is_err(), "shots carry no stamp columns");

    // Read back as an auditor asks: which model judged shot 1003 of M1, and why.
    let query = |shots, alarms_only| lake::verdicts::Query { machine_id: "M1".into(), shots, alarms_only };
    let all = lake::verdicts::verdicts(dir.path(), &query(None, false)).expect("verdicts");
    assert_eq!(
        all.iter().map(|v| (v.shot_number, v.alarm)).collect::<Vec<_>>(),
        [(Some(1001), false), (Some(1003), true)]
    );
    let one = lake::verdicts::verdicts(dir.path(), &query(Some(1002..=1003), true)).expect("verdicts");
    assert_eq!(one.len(), 1);
    let v = &one[0];
    assert_eq!((v.model_id.as_str(), v.model_version, v.bundle_sha256.len()), ("M1@2", Some(2), 64));
    assert_eq!(v.contributions, [("Cycle_Time".to_string(), 6.0), ("Max_Pressure".to_string(), 3.0)]);
    let table = lake::verdicts::to_table("M1", &one);
    assert!(table.contains("ALARM (Cycle_Time 6.000, Max_Pressure 3.000)"), "{table}");
    assert!(table.contains("M1@2  bundle sha256 c0ffee"), "{table}");
    let none = lake::verdicts::verdicts(
        dir.path(),
        &lake::verdicts::Query { machine_id: "M9".into(), shots: None, alarms_only: false },
    );
    assert_eq!(none.expect("no partition is no verdict").len(), 0);
}

#[test]
fn gate_decisions_land_in_edge_decisions_and_show_beside_the_verdict() {
    use moldops_shared::decision::{Decision, DecisionRecord, ModelJudgement, Outcome, Reason};
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let alarm = score(2, 1, true);
    let stamp = alarm.model.clone().expect("stamp");
    let decided = DecisionRecord {
        machine_id: "M1".into(),
        ts_ms: alarm.ts_ms,
        shot_number: alarm.shot_number,
        mold: alarm.mold.clone(),
        shot_seq: Some(1),
        decision: Decision::Reject,
        reason: Reason::ModelAlarm,
        actuated: Decision::Reject,
        outcome: Outcome::Written,
        latency_ms: 3.25,
        model: Some(ModelJudgement { stamp, score: 9.0, threshold: 3.0 }),
        missing: Some(0),
        broken: vec![],
    };
    let mut forged = decided.to_record();
    forged.values.insert(moldops_shared::decision::value::OUTCOME.into(), 7.0);
    let batch = payload(
        "e1",
        vec![
            shot(1, "M1", &[]),
            alarm,
            Record { seq: 3, ..decided.to_record() },
            Record { seq: 4, ..forged },
        ],
    );
    let out = commit(&mut c, &[(&t, batch)]);
    assert_eq!((out.decision_records, out.quarantined), (1, 1), "an unknown outcome code is refused");
    let df = lake::read_dataset(dir.path(), "edge_decisions").expect("read");
    assert_eq!(df.height(), 1);
    assert_eq!(df.column("device_id").expect("d").str().expect("str").get(0), Some("_gate"));
    let found = lake::verdicts::verdicts(
        dir.path(),
        &lake::verdicts::Query { machine_id: "M1".into(), shots: None, alarms_only: false },
    )
    .expect("verdicts");
    let gate = found[0].gate.as_ref().expect("the gate's decision beside the model's verdict");
    assert_eq!((gate.decision, gate.outcome, gate.latency_ms), (Decision::Reject, Outcome::Written, 3.25));
    let table = lake::verdicts::to_table("M1", &found);
    assert!(table.contains("gate: reject (model_alarm), written in 3.2 ms"), "{table}");
}

/// Edge e1's status message.
fn status(state: &str, ts: i64) -> Vec<u8> {
    format!(r#"{{"state":"{state}","site":"plant","edge_id":"e1","ts_ms":{ts},"version":"0.1.0"}}"#)
        .into_bytes()
}

#[test]
fn edge_events_are_recorded_once_across_redeliveries_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = topic::topic("plant", "e1", Leaf::Status);
    {
        let (mut c, _) = Committer::open(dir.path()).expect("open");
        let forged = topic::topic("plant", "e2", Leaf::Status);
        let out = commit(&mut c, &[(&t, status("online", 100)), (&forged, status("online", 100))]);
        assert_eq!((out.event_records, out.quarantined, out.messages), (1, 1, 2));
        // The broker's last will: built before the connection, so an older edge time.
        let out = commit(&mut c, &[(&t, status("online", 100)), (&t, status("offline", 99))]);
        assert_eq!(out.event_records, 1, "the retained online again is passed over");
    }
    // A restarted ingest sees the retained message once more, and knows it.
    let (mut c, _) = Committer::open(dir.path()).expect("reopen");
    let out = commit(&mut c, &[(&t, status("offline", 99))]);
    assert_eq!(out.event_records, 0);
    let df = lake::read_parts(&lake::list_parts(dir.path(), "edge_events").expect("list"), &[])
        .expect("read")
        .expect("files");
    let events: Vec<Option<&str>> = df.column("event").expect("event").str().expect("str").iter().collect();
    assert_eq!(events, [Some("online"), Some("offline")]);
}

#[test]
fn an_events_file_a_crash_left_above_the_mark_is_known_after_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = topic::topic("plant", "e1", Leaf::Status);
    let state_path = crate::ingest::state::DedupState::path(dir.path());
    {
        let (mut c, _) = Committer::open(dir.path()).expect("open");
        assert_eq!(commit(&mut c, &[(&t, status("online", 100))]).event_records, 1);
        let before = std::fs::read(&state_path).expect("state");
        assert_eq!(commit(&mut c, &[(&t, status("offline", 200))]).event_records, 1);
        drop(c);
        // The crash: the events file is in the lake, the state that knows its message is not.
        std::fs::write(&state_path, before).expect("the state of before");
    }
    let (mut c, recovery) = Committer::open(dir.path()).expect("recover");
    assert_eq!(recovery.orphan_files, 1, "the events file above the mark is folded in");
    let out = commit(&mut c, &[(&t, status("offline", 200))]);
    assert_eq!(out.event_records, 0, "the retained message it recorded is not recorded again");
    let events = lake::read_parts(&lake::list_parts(dir.path(), "edge_events").expect("list"), &[])
        .expect("read")
        .expect("files");
    assert_eq!(events.height(), 2);
}

#[test]
fn dedup_within_and_across_groups_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let b1 = payload("e1", (1..=5).map(|s| shot(s, "M1", &[("v", 1.0)])).collect());
    // Same batch twice in one group, plus an overlapping one.
    let b2 = payload("e1", (4..=8).map(|s| shot(s, "M1", &[("v", 1.0)])).collect());
    let out = commit(&mut c, &[(&t, b1.clone()), (&t, b1.clone()), (&t, b2.clone())]);
    assert_eq!((out.raw_records, out.duplicates), (8, 7));
    // A redelivery in a later group is dropped entirely and writes nothing.
    let out = commit(&mut c, &[(&t, b2.clone())]);
    assert_eq!((out.raw_records, out.duplicates, out.files.len()), (0, 5, 0));
    // Another edge with the same seqs is not a duplicate.
    let t2 = data_topic("e2");
    let out = commit(&mut c, &[(&t2, payload("e2", vec![shot(1, "M2", &[])]))]);
    assert_eq!((out.raw_records, out.duplicates), (1, 0));
    drop(c);
    // After a restart the state still knows everything.
    let (mut c, recovery) = Committer::open(dir.path()).expect("reopen");
    assert_eq!(recovery.orphan_files, 0);
    let out = commit(&mut c, &[(&t, b1), (&t, payload("e1", vec![shot(9, "M1", &[])]))]);
    assert_eq!((out.raw_records, out.duplicates), (1, 5));
    assert_eq!(lake::read_dataset(dir.path(), "raw_data").expect("read").height(), 10);
    let e1 = StreamId::new("plant", "e1", "");
    assert_eq!(c.state().streams[&e1].iter().collect::<Vec<_>>(), vec![(1, 9)]);
}

#[test]
fn quarantines_malformed_payloads_and_keeps_going() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let mut schema99 = Batch::new("plant", "e1", T0, vec![shot(1, "M1", &[])]).expect("batch");
    schema99.schema = 99;
    let schema99 = encode_batch(&schema99);
    let mismatch = payload("e2", vec![shot(2, "M1", &[])]);
    let mut far = shot(3, "M1", &[]);
    far.ts_ms = i64::MAX;
    let collide = payload("e1", vec![shot(4, "M1", &[("seq", 1.0)])]);
    let good = payload("e1", vec![shot(5, "M1", &[("v", 2.0)])]);
    let msgs = [
        (t.as_str(), b"{not json".to_vec()),
        (t.as_str(), schema99),
        (t.as_str(), mismatch),
        (t.as_str(), payload("e1", vec![far])),
        (t.as_str(), collide),
        ("other/topic", good.clone()),
        (t.as_str(), vec![0xff, 0xfe]),
        (t.as_str(), good),
    ];
    let out = commit(&mut c, &msgs);
    assert_eq!((out.quarantined, out.raw_records), (7, 1));
    let (count, recent) = quarantine::scan(dir.path(), 10).expect("scan");
    assert_eq!(count, 7);
    let reasons: Vec<&str> = recent.iter().rev().map(|e| e.reason.as_str()).collect();
    assert!(reasons[0].contains("not a valid batch"), "{reasons:?}");
    assert!(reasons[1].contains("unsupported schema version 99"), "{reasons:?}");
    assert!(reasons[2].contains("edge \"e1\" but the batch says site \"plant\" edge \"e2\""), "{reasons:?}");
    assert!(reasons[3].contains("outside years"), "{reasons:?}");
    assert!(reasons[4].contains("collides"), "{reasons:?}");
    assert!(reasons[5].contains("not in the moldops tree"), "{reasons:?}");
    assert_eq!(recent[0].payload_encoding, "hex");
    assert_eq!(recent[6].payload, "{not json");
    assert_eq!(recent[6].topic, t);
    assert_eq!(recent[6].received_at, "2023-11-14T22:13:20.000Z");
}

#[test]
fn machine_ids_cannot_escape_their_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let out = commit(&mut c, &[(&data_topic("e1"), payload("e1", vec![shot(1, "../../evil", &[])]))]);
    assert_eq!(out.files.len(), 1);
    assert!(out.files[0].starts_with("raw_data/machine=%2E.%2F..%2Fevil/"), "{:?}", out.files);
    let raw = lake::read_dataset(dir.path(), "raw_data").expect("read");
    assert_eq!(raw.column("machine_id").expect("m").str().expect("s").get(0), Some("../../evil"));
}

#[test]
fn one_writer_per_lake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = Committer::open(dir.path()).expect("open");
    let err = Committer::open(dir.path()).expect_err("second writer");
    assert!(err.to_string().contains("another ingest"), "{err}");
    drop(first);
    Committer::open(dir.path()).expect("reopen after the first closed");
}

#[test]
fn replicas_commit_in_turns_and_keep_one_exact_dedup_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut a, _) = Committer::open_replica(dir.path()).expect("replica a");
    let (mut b, _) = Committer::open_replica(dir.path()).expect("replica b: replicas share the lake");
    let t = data_topic("e1");
    let batch =
        |seqs: std::ops::RangeInclusive<u64>| payload("e1", seqs.map(|s| shot(s, "M1", &[])).collect());
    // The broker hands batches to either replica; an edge's republished batch may reach the
    // other one: it is a duplicate there too.
    assert_eq!(commit(&mut a, &[(&t, batch(1..=5))]).raw_records, 5);
    assert_eq!(commit(&mut b, &[(&t, batch(6..=10))]).raw_records, 5);
    let out = commit(&mut a, &[(&t, batch(4..=12))]);
    assert_eq!((out.raw_records, out.duplicates), (2, 7), "a knows what b committed");
    let out = commit(&mut b, &[(&t, batch(1..=12))]);
    assert_eq!((out.raw_records, out.duplicates), (0, 12));
    let e1 = StreamId::new("plant", "e1", "");
    assert_eq!(b.state().streams[&e1].iter().collect::<Vec<_>>(), vec![(1, 12)]);
    assert_eq!(lake::read_dataset(dir.path(), "raw_data").expect("read").height(), 12);

    // A replica killed half-way through a commit: its part files are written, the state does
    // not cover them yet, and its marker is left. The next replica to commit folds them in.
    let before = std::fs::read(DedupState::path(dir.path())).expect("state");
    assert_eq!(commit(&mut a, &[(&t, batch(13..=15))]).raw_records, 3);
    std::fs::write(DedupState::path(dir.path()), &before).expect("roll the state back");
    std::fs::write(dir.path().join(lake::INGEST_DIR).join(PENDING_FILE), b"").expect("marker");
    let out = commit(&mut b, &[(&t, batch(13..=16))]);
    assert_eq!((out.raw_records, out.duplicates), (1, 3), "the redelivery of 13..=15 is dropped");
    assert!(!dir.path().join(lake::INGEST_DIR).join(PENDING_FILE).exists());
    assert_eq!(lake::read_dataset(dir.path(), "raw_data").expect("read").height(), 16, "each shot once");

    // The lake's only ingest and replicas exclude each other.
    drop((a, b));
    let (sole, _) = Committer::open(dir.path()).expect("sole");
    let err = Committer::open(dir.path()).expect_err("a second sole ingest");
    assert!(err.to_string().contains("another ingest"), "{err}");
    drop(sole);
}

#[test]
fn a_new_buffer_epoch_is_a_new_stream_not_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let first = epoch_payload("plant", "e1", "a1", (0..=4).map(|s| shot(s, "M1", &[])).collect());
    let out = commit(&mut c, &[(&t, first.clone())]);
    assert_eq!((out.raw_records, out.new_epochs), (5, 0));
    // The buffer was wiped: seqs start at 0 again under a new epoch.
    let wiped = epoch_payload("plant", "e1", "b2", (0..=2).map(|s| shot(s, "M1", &[("v", 2.0)])).collect());
    let out = commit(&mut c, &[(&t, wiped.clone()), (&t, first)]);
    assert_eq!((out.raw_records, out.duplicates, out.new_epochs), (3, 5, 1));
    // A replay of the new epoch is a duplicate; it is no longer new.
    let out = commit(&mut c, &[(&t, wiped)]);
    assert_eq!((out.raw_records, out.duplicates, out.new_epochs), (0, 3, 0));
    assert_eq!(c.state().epochs_of("plant", "e1"), 2);
    assert_eq!(lake::read_dataset(dir.path(), "raw_data").expect("read").height(), 8);
}

#[test]
fn two_sites_with_the_same_edge_id_both_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let a = epoch_payload("north", "edge-01", "x", (0..=3).map(|s| shot(s, "M1", &[])).collect());
    let b = epoch_payload("south", "edge-01", "y", (0..=3).map(|s| shot(s, "M1", &[])).collect());
    let out = commit(
        &mut c,
        &[
            (&topic::topic("north", "edge-01", Leaf::Data), a),
            (&topic::topic("south", "edge-01", Leaf::Data), b),
        ],
    );
    assert_eq!((out.raw_records, out.duplicates, out.files.len()), (8, 0, 2));
    let raw = lake::read_dataset(dir.path(), "raw_data").expect("read");
    let sites = raw.column("site").expect("site").str().expect("str").clone();
    assert_eq!(sites.iter().filter(|s| *s == Some("north")).count(), 4);
    assert_eq!(sites.iter().filter(|s| *s == Some("south")).count(), 4);
}

#[test]
fn one_bad_record_is_quarantined_alone_and_a_long_korean_name_lands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let korean = "사출성형기제어장치".repeat(3); // 27 syllables, 81 bytes, 243 escaped
    let mut far = shot(3, "M1", &[]);
    far.ts_ms = i64::MAX;
    let mut too_long = shot(4, "M1", &[]);
    too_long.machine_id = "가".repeat(50);
    let records = vec![shot(1, "M1", &[]), shot(2, &korean, &[]), far, too_long, shot(5, "M1", &[])];
    let p = payload("e1", records);
    let out = commit(&mut c, &[(&t, p.clone())]);
    assert_eq!((out.raw_records, out.quarantined), (3, 2), "{out:?}");
    let raw = lake::read_dataset(dir.path(), "raw_data").expect("read");
    let machines: Vec<Option<&str>> = raw.column("machine_id").expect("m").str().expect("s").iter().collect();
    assert!(machines.contains(&Some(korean.as_str())), "{machines:?}");
    assert!(out.files.iter().all(|f| f.split('/').all(|seg| seg.len() < 255)), "{:?}", out.files);
    let (count, recent) = quarantine::scan(dir.path(), 10).expect("scan");
    assert_eq!(count, 2);
    let reasons: Vec<&str> = recent.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("(seq 3)") && r.contains("outside years")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("(seq 4)") && r.contains("150 bytes")), "{reasons:?}");
    // A redelivery neither writes nor quarantines again.
    let out = commit(&mut c, &[(&t, p)]);
    assert_eq!((out.raw_records, out.quarantined, out.duplicates), (0, 0, 5));
}

#[test]
fn an_oversized_payload_is_quarantined_by_its_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let t = data_topic("e1");
    let huge = vec![b'x'; 10 << 20];
    let out = commit(&mut c, &[(&t, huge), (&t, payload("e1", vec![shot(1, "M1", &[])]))]);
    assert_eq!((out.raw_records, out.quarantined), (1, 1));
    let (_, recent) = quarantine::scan(dir.path(), 10).expect("scan");
    assert!(recent[0].reason.contains("at most"), "{}", recent[0].reason);
    assert_eq!(recent[0].bytes, 10 << 20);
    assert!(recent[0].payload.len() <= quarantine::MAX_STORED_BYTES, "{}", recent[0].payload.len());
}

#[test]
fn sparkplug_ddata_joins_the_streams_of_native_batches_and_foreign_nodes_are_passed_over() {
    use moldops_shared::sparkplug::{self as spb, MessageType};
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let native =
        epoch_payload("plant", "e1", "ep", vec![shot(1, "M1", &[("Cycle_Time", 60.0)]), shot(2, "M1", &[])]);
    let ddata = |r: &Record| spb::ddata(r, "ep", Some(1), 0, 5).encode();
    let dtopic = |device: &str| spb::topic("plant", MessageType::DData, "e1", Some(device));
    let third = shot(3, "M1", &[("Cycle_Time", 61.0)]);
    let foreign = spb::Payload {
        uuid: None,
        body: None,
        ..spb::Payload::decode_bounded(&ddata(&third), 1 << 20).expect("pb")
    };
    let death = spb::ndeath(7, 1_000).encode();
    let foreign_death = spb::Payload { uuid: None, ..spb::ndeath(3, 1_000) }.encode();
    let msgs = [
        (data_topic("e1"), native),
        (dtopic("M1"), ddata(&shot(2, "M1", &[]))),
        (dtopic("M1"), ddata(&third)),
        (spb::topic("plant", MessageType::DData, "ignition", Some("PLC1")), foreign.encode()),
        (dtopic("M1"), b"\xff\xfe garbage".to_vec()),
        (spb::topic("plant", MessageType::NDeath, "e1", None), death.clone()),
        (spb::topic("plant", MessageType::NDeath, "ignition", None), foreign_death),
        (spb::topic("plant", MessageType::NBirth, "e1", None), spb::nbirth(7, 1_000).encode()),
    ];
    let refs: Vec<(&str, Vec<u8>)> = msgs.iter().map(|(t, p)| (t.as_str(), p.clone())).collect();
    let out = commit(&mut c, &refs);
    assert_eq!((out.raw_records, out.duplicates), (3, 1), "a record sent both ways is stored once");
    assert_eq!(
        (out.foreign_sparkplug, out.quarantined),
        (2, 2),
        "another node's DDATA and NDEATH are counted; garbage and an NBIRTH are refused with a reason"
    );
    assert_eq!(out.event_records, 1, "the node's death is its offline event");
    let ack = out.acks.iter().find(|a| a.stream.epoch == "ep").expect("an ack for the stream");
    assert_eq!(ack.committed_through, 3, "the DDATA's held_from earns the edge its commit ack");
    let df = lake::read_dataset(dir.path(), "raw_data").expect("read");
    let cycle = df.column("Cycle_Time").expect("col").f64().expect("f64").clone();
    let mut got: Vec<f64> = cycle.iter().flatten().collect();
    got.sort_by(f64::total_cmp);
    assert_eq!(got, vec![60.0, 61.0]);
    // The death comes again (a redelivery): recorded once.
    let again = spb::topic("plant", MessageType::NDeath, "e1", None);
    assert_eq!(commit(&mut c, &[(&again, death)]).event_records, 0);
}
