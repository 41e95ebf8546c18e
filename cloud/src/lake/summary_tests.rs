//! Tests of the lake summary numbers and its table.

use super::*;
use crate::ingest::commit::tests::{T0, data_topic, payload, peripheral, shot};
use crate::ingest::commit::{Committer, Group};
use moldops_shared::gap::DropGap;

#[test]
fn summary_counts_rows_edges_files_shots_and_quarantine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = summary(dir.path()).expect("empty summary");
    assert_eq!(empty.datasets.len(), crate::lake::DATASETS.len());
    assert!(empty.dropped_at_edge.is_empty());
    assert!(empty.datasets.iter().all(|d| d.rows == 0 && d.machines.is_empty()));
    assert_eq!(empty.quarantine.count, 0);

    let (mut c, _) = Committer::open(dir.path()).expect("open");
    let mut g = Group::default();
    g.add(&data_topic("e1"), &payload("e1", (1..=3).map(|s| shot(s, "M1", &[("a", 1.0)])).collect()), T0);
    g.add(
        &data_topic("e2"),
        &payload("e2", vec![shot(1, "M2", &[("b", 1.0)]), peripheral(2, "M2", "TCU")]),
        T0,
    );
    g.add(&data_topic("e1"), b"nope", T0);
    c.commit(g).expect("commit 1");
    let mut g = Group::default();
    // A second file for M1, repeating shot number 1003 under a new seq (a counter reset).
    let mut again = shot(4, "M1", &[("a", 2.0)]);
    again.shot_number = Some(1003);
    // Edge e1 reports, in two gap records, records of M1 it dropped with its buffer full.
    // The third covers seqs 1..=3, which are in the lake: sent before they were dropped.
    let gap = |seq: u64, dropped: u64, from: i64, to: i64| {
        let first_seq = if dropped == 3 { 1 } else { 100 };
        let mut r = DropGap {
            machine_id: "M1".into(),
            device_id: "M1".into(),
            dropped,
            first_ts_ms: from,
            last_ts_ms: to,
            first_seq,
            last_seq: first_seq + dropped - 1,
        }
        .to_record();
        r.seq = seq;
        r
    };
    g.add(
        &data_topic("e1"),
        &payload(
            "e1",
            vec![again, gap(5, 30, T0 - 9000, T0 - 5000), gap(6, 12, T0 - 4000, T0), gap(7, 3, T0, T0)],
        ),
        T0,
    );
    let out = c.commit(g).expect("commit 2");
    assert_eq!((out.raw_records, out.gap_records, out.dropped_at_edge), (1, 3, 45));

    let s = summary(dir.path()).expect("summary");
    let raw = &s.datasets[0];
    assert_eq!((raw.dataset.as_str(), raw.rows, raw.files), ("raw_data", 5, 3));
    let m1 = &raw.machines[0];
    assert_eq!(m1.machine_id, "M1");
    assert_eq!((m1.rows, m1.files, m1.distinct_shots), (4, 2, 3));
    assert_eq!(m1.edges, ["e1"]);
    assert_eq!((m1.first_ts_ms, m1.last_ts_ms), (T0 + 1000, T0 + 4000));
    assert_eq!(m1.first_ts, "2023-11-14T22:13:21.000Z");
    assert_eq!(raw.machines[1].edges, ["e2"]);
    let per = &s.datasets[1];
    assert_eq!((per.rows, per.machines[0].distinct_shots, per.machines[0].machine_id.as_str()), (1, 0, "M2"));
    assert_eq!(s.quarantine.count, 1);
    assert!(s.quarantine.recent[0].reason.contains("not a valid batch"));

    let edges: Vec<(&str, u64, u64)> = s
        .edges
        .iter()
        .flat_map(|e| e.epochs.iter().map(|p| (e.edge_id.as_str(), p.records, p.gaps)))
        .collect();
    assert_eq!(edges, [("e1", 7, 0), ("e2", 2, 0)]);
    assert_eq!(s.datasets[2].rows, 3, "edge_gaps holds the gap records");
    let d = &s.dropped_at_edge[0];
    assert_eq!(
        (d.machine_id.as_str(), d.device_id.as_str(), d.dropped, d.missing, d.gaps),
        ("M1", "M1", 45, 42, 3)
    );
    assert_eq!(
        (d.first_ts.as_str(), d.last_ts.as_str()),
        ("2023-11-14T22:13:11.000Z", "2023-11-14T22:13:20.000Z")
    );

    let json: LakeSummary = serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
    assert_eq!(json, s);
    let table = s.to_table();
    assert!(table.contains("raw_data         M1"), "{table}");
    assert!(table.contains("quarantine: 1 payload(s)"), "{table}");
    assert!(table.contains("plant/e1  epoch -  seq 1..=7  7 record(s)  0 gap(s), 0 missing"), "{table}");
    assert!(
        table.contains(
            "M1/M1  45 dropped, 42 missing  2023-11-14T22:13:11.000Z .. 2023-11-14T22:13:20.000Z  edges e1"
        ),
        "{table}"
    );
}
