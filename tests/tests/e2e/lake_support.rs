//! Lake helpers for the parity tests: the simulator's process model as machine `M1`'s records,
//! landed in a lake through the ingest's own commit path.

use moldops_cloud::ingest::{Committer, Group};
use moldops_shared::topic::{Leaf, topic};
use moldops_shared::{Batch, Record, RecordKind, encode_batch};
use moldops_sim::process::{ProcessConfig, ProcessModel, Step};
use std::path::Path;

/// 2024-05-01T00:00:00Z.
pub const DAY0: i64 = 1_714_521_600_000;

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

/// A record of machine `M1`'s device `device`.
pub fn m1_record(kind: RecordKind, device: &str, ts_ms: i64, values: &[(&str, f64)]) -> Record {
    Record::new(kind, "M1", device, ts_ms, values.iter().copied())
}

/// The simulator's process model driven for `steps` steps as machine `M1`: per step the
/// peripheral records `readings` makes of it, then the shot (number and mold) when the step
/// made one. Time order, readings before shots at equal times; seqs follow that order.
pub fn simulate_m1(cfg: ProcessConfig, steps: usize, readings: impl Fn(&Step) -> Vec<Record>) -> Vec<Record> {
    let mut model = ProcessModel::new(cfg);
    let mut out = Vec::new();
    for _ in 0..steps {
        let s = model.next_step();
        out.extend(readings(&s));
        if let Some(shot) = s.shot {
            let values: Vec<(&str, f64)> = shot.values.named().collect();
            let mut r = m1_record(RecordKind::Shot, "M1", shot.ts_ms, &values);
            r.shot_number = Some(u64::from(shot.number));
            r.mold = Some(shot.mold.to_string());
            out.push(r);
        }
    }
    out.sort_by_key(|r| (r.ts_ms, r.kind == RecordKind::Shot));
    out.into_iter().enumerate().map(|(i, r)| Record { seq: i as u64 + 1, ..r }).collect()
}
