//! Fuzz tests of gap records (the drops a batch reports) and the gap tally that merges them.

use super::*;
use crate::codec::check_record;
use crate::gap::{self, DropGap, GapTally, MAX_TALLY_GAPS};
use crate::record::{Record, RecordKind};

const GAP_VALUES: [&str; 5] = [
    gap::value::DROPPED,
    gap::value::FIRST_TS_MS,
    gap::value::LAST_TS_MS,
    gap::value::FIRST_SEQ,
    gap::value::LAST_SEQ,
];

/// A gap record with each figure valid, hostile or missing.
fn hostile_gap_record(u: &mut Unstructured<'_>) -> Gen<Record> {
    let seq = any_u64(u)?;
    let mut r = valid_record(u, seq)?;
    r.kind = RecordKind::Gap;
    if r.values.is_empty() || u.ratio(1, 2)? {
        r.values.clear();
        for name in GAP_VALUES {
            match u.int_in_range(0..=3)? {
                0 => {}
                1 => {
                    r.values.insert(name.into(), any_f64(u)?);
                }
                _ => {
                    r.values.insert(name.into(), f64::from(u.int_in_range(0..=1000u32)?));
                }
            }
        }
    }
    Ok(r)
}

#[test]
fn fuzz_gap_records() {
    fuzz("gap/from_record", |u| {
        let r = hostile_gap_record(u)?;
        let verdict = DropGap::from_record(&r);
        note(verdict.is_ok());
        match verdict {
            Err(e) => {
                assert_reason(&e, &r);
                assert!(check_record(&r).is_err(), "check_record took a gap from_record refuses");
            }
            Ok(g) => {
                assert!(
                    g.dropped >= 1 && g.first_seq <= g.last_seq && g.first_ts_ms <= g.last_ts_ms,
                    "{g:?}"
                );
                let back = DropGap::from_record(&g.to_record()).expect("a gap's own record reads back");
                assert_eq!(back, g, "gap round trip");
                assert_eq!(DropGap::of(&r), g, "dropping a gap record keeps its gap");
            }
        }
        Ok(())
    });
}

/// A gap record of the most drops one carries (2^53): 2 048 of them pass `u64::MAX` in total.
fn biggest_gap_record(u: &mut Unstructured<'_>) -> Gen<Record> {
    let first_seq = u.int_in_range(0..=1000)?;
    let gap = DropGap {
        machine_id: String::new(),
        device_id: String::new(),
        dropped: 1 << 53,
        first_ts_ms: 0,
        last_ts_ms: 0,
        first_seq,
        last_seq: first_seq,
    };
    Ok(gap.to_record())
}

#[test]
fn fuzz_gap_tally_keeps_counts_and_stays_bounded() {
    fuzz("gap/tally", |u| {
        let mut tally = GapTally::default();
        let mut expected = 0u64;
        // Some cases first pile up enough of the biggest gaps for the total to saturate.
        let piled = if u.ratio(1, 8)? { 2_048 } else { 0 };
        for i in 0..piled + u.int_in_range(0..=300)? {
            let mut r = if i < piled {
                biggest_gap_record(u)?
            } else if u.ratio(1, 4)? {
                hostile_gap_record(u)?
            } else {
                valid_record(u, 0)?
            };
            // Few sources, so compaction keeps the tally within its bound.
            r.machine_id = (*u.choose(&["m1", "m2", "사출1"])?).to_string();
            r.device_id = r.machine_id.clone();
            let next = tally.gaps().map(|g| g.last_seq).max().unwrap_or(0).saturating_add(1);
            r.seq = if u.ratio(3, 4)? { next } else { any_u64(u)? };
            expected = expected.saturating_add(DropGap::of(&r).dropped);
            tally.add(&r);
            assert!(tally.len() <= MAX_TALLY_GAPS + 1, "tally grew to {}", tally.len());
        }
        // Exact below `u64::MAX`, saturated at it, in whatever order gaps were merged.
        assert_eq!(tally.dropped(), expected, "merging lost a count");
        let json = serde_json::to_string(&tally).expect("a tally serialises");
        assert_eq!(serde_json::from_str::<GapTally>(&json).expect("a tally parses back"), tally);
        Ok(())
    });
}

/// Found while writing `fuzz_gap_tally_keeps_counts_and_stays_bounded`, fixed: gaps merged with
/// `saturating_add` reach `u64::MAX`, and `GapTally::dropped` summed them with a plain `sum()`,
/// which overflowed (a panic in debug builds, a wrong total in release). The total now
/// saturates; the property piles up enough of the biggest gaps to reach it.
#[test]
fn regression_gap_tally_dropped_overflows() {
    let huge = |machine: &str, seq: u64| {
        let gap = DropGap {
            machine_id: machine.into(),
            device_id: machine.into(),
            dropped: 1 << 53,
            first_ts_ms: 0,
            last_ts_ms: 0,
            first_seq: 0,
            last_seq: 0,
        };
        let mut r = gap.to_record();
        r.seq = seq;
        r
    };
    let mut tally = GapTally::default();
    for i in 0..2100 {
        tally.add(&huge("m1", i * 2));
    }
    tally.add(&huge("m2", 10_000));
    assert_eq!(tally.dropped(), u64::MAX, "the total saturates instead of overflowing");
}
