//! Helpers shared by the ETL, import and compaction tests: records, and landing them in a lake
//! through the ingest's own commit path.

use moldops_cloud::ingest::{Committer, Group};
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, Record, RecordKind, encode_batch};
use std::path::Path;

/// The Python with the test peers installed (`MOLDOPS_PYTHON`, else the venv `.ci/run` makes).
pub fn python() -> String {
    std::env::var("MOLDOPS_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/moldops-venv/bin/python")
    })
}

pub const MIN: i64 = 60_000;
/// 2024-05-01T00:00:00Z.
pub const DAY0: i64 = 1_714_521_600_000;
pub const DAY: i64 = 86_400_000;

/// A shot of machine `M1` with the given values.
pub fn shot(n: u64, ts_ms: i64, mold: &str, values: &[(&str, f64)]) -> Record {
    Record {
        seq: 0,
        kind: RecordKind::Shot,
        machine_id: "M1".into(),
        device_id: "M1".into(),
        ts_ms,
        shot_number: Some(n),
        mold: Some(mold.into()),
        material: None,
        values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        out_of_range: vec![],
        model: None,
    }
}

/// A plain good shot: cycle 60 s, cushion 22 mm.
pub fn good(n: u64, ts_ms: i64, mold: &str) -> Record {
    shot(n, ts_ms, mold, &[("Cycle_Time", 60.0), ("Cushion_Position", 22.0)])
}

/// A reading of peripheral `device` of machine `M1`.
pub fn reading(device: &str, ts_ms: i64, values: &[(&str, f64)]) -> Record {
    Record {
        kind: RecordKind::Peripheral,
        device_id: device.into(),
        shot_number: None,
        mold: None,
        ..shot(0, ts_ms, "", values)
    }
}

/// Commits `records` (seqs assigned from `first_seq` in the given order) as edge `edge`.
pub fn commit(lake: &Path, edge: &str, first_seq: u64, records: Vec<Record>) {
    let records: Vec<Record> =
        records.into_iter().enumerate().map(|(i, r)| Record { seq: first_seq + i as u64, ..r }).collect();
    let batch = Batch::new("site", edge, 0, records).expect("records to commit");
    let (mut committer, _) = Committer::open(lake).expect("open the lake");
    let mut group = Group::default();
    group.add(&topic("site", edge, Leaf::Data), &encode_batch(&batch), 0);
    let out = committer.commit(group).expect("commit");
    assert_eq!(out.quarantined, 0, "test records were refused");
}
