//! Property-based fuzz tests of the edge's decoders (config and profile TOML, Modbus register
//! images, shot planning, OPC UA node ids, node maps and read results, desired-state payloads,
//! bundle chunks), each run by plain `cargo test` for a fixed time budget.

// Inputs are arbitrary text or bytes and valid examples with fields changed to hostile values
// (huge, negative, NaN/inf, empty, over-long, Korean, MQTT wildcards, truncated TOML/JSON).
// Properties: no panic, quick answers, refusals with a non-empty reason, and whatever is
// accepted passes its validator again (a config re-serialised resolves again; a record made
// from a decoded snapshot passes the ingest's `check_record`).
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-edge --lib fuzz` fuzzes for longer.
// `ARBTEST_SEED=0x…` (the seed a failure prints) replays one case.

mod config;
mod modbus;
mod opcua;
mod rollout;
mod shot_plan;

use crate::shot::Snapshot;
use moldops_testkit::arbitrary::Unstructured;
use moldops_testkit::fuzz::{Gen, assert_reason, note, timed};
use moldops_testkit::hostile::{any_f64, any_u64, truncate_text as truncate};
use moldops_testkit::toml::TomlMutator;

use moldops_shared::codec::check_record;
use moldops_shared::limits;
use moldops_shared::profile::{DataType, Profile};
use moldops_shared::{Record, RecordKind};

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long each property runs (milliseconds) unless `ARBTEST_BUDGET_MS` says otherwise.
const BUDGET_MS: u64 = 700;

/// Runs one property for [`BUDGET_MS`] (see `moldops_testkit::fuzz::run`).
fn fuzz(name: &str, property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    moldops_testkit::fuzz::run(name, BUDGET_MS, property);
}

/// How this crate breaks TOML: the shared tokens plus its enum names and ranges.
const TOML: TomlMutator = TomlMutator {
    tokens: &["[nan, 1.0]", "[5.0, 1.0]", "\"little\"", "\"string\"", "\"opcua\""],
    string: any_string,
};

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

/// A string meant to break an identifier or a path: empty, blank, over-long, Korean, MQTT
/// wildcards, control characters, or anything at all.
fn any_string(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=10)? {
        0 => String::new(),
        1 => (*u.choose(&[" ", "\t", " \u{3000} "])?).to_string(),
        2 => "가".repeat(u.int_in_range(1..=200)?),
        3 => "사출성형기-1".into(),
        4 => {
            (*u.choose(&["/", "+", "#", "a/b", "s+", "#x", "../x", "host", "host:", ":1883", "[::1]:502"])?)
                .to_string()
        }
        5 => "x".repeat(u.int_in_range(limits::MAX_ID_BYTES - 2..=limits::MAX_ID_BYTES + 2)?),
        6 => format!("m{}1", char::from(u.int_in_range(0..=0x1f_u8)?)),
        7 => (*u.choose(&["\u{0}", "\u{7f}", "\u{85}", "\u{feff}M1", "🏭"])?).to_string(),
        8 => (*u.choose(&["M1", "Cycle_Time", "press-7", "tcu.flow"])?).to_string(),
        _ => u.arbitrary::<String>()?,
    })
}

const TYPES: [DataType; 8] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::F32,
    DataType::F64,
    DataType::String,
];

// ---------------------------------------------------------------------------------------------
// TOML and JSON mutation
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Snapshots: the contract of a decoded machine snapshot (Modbus and OPC UA alike)
// ---------------------------------------------------------------------------------------------

/// The record the poller makes of a machine's snapshot (as `DevicePoller::record` does).
fn shot_record(snap: &Snapshot, machine: &str) -> Record {
    Record {
        seq: 1,
        kind: RecordKind::Shot,
        machine_id: machine.into(),
        device_id: machine.into(),
        ts_ms: snap.timestamp_ms.filter(|t| *t > 0).unwrap_or(1_700_000_000_000),
        shot_number: snap.counter.or(Some(0)),
        mold: snap.mold.clone(),
        material: snap.material.clone(),
        values: snap.values.clone(),
        out_of_range: snap.flagged(),
        model: None,
    }
}

/// A snapshot's contract: values finite and named by value tags, flags explained, a counter
/// within its tag's width, a mold (if any) the ingest takes as one, and a shot record of it
/// that the ingest accepts — whatever the mold registers or node held.
fn check_snapshot(p: &Profile, snap: &Snapshot) {
    let value_tags: Vec<&str> = p.value_tags().iter().map(|t| t.name.as_str()).collect();
    for (name, v) in &snap.values {
        assert!(v.is_finite(), "{name} = {v}");
        assert!(value_tags.contains(&name.as_str()), "{name} is not a value tag");
    }
    for issue in &snap.out_of_range {
        let t = p.tag(&issue.tag).expect("a flagged value names a tag");
        assert!(!issue.value.is_finite() || t.out_of_range(issue.value), "{issue:?} flagged for nothing");
    }
    if let (Some(c), Some(t)) = (snap.counter, p.shot_counter.as_deref().and_then(|n| p.tag(n))) {
        assert!(t.registers() >= 4 || c < 1u64 << (16 * u32::from(t.registers())), "counter {c} past {t:?}");
    }
    if let Some(m) = &snap.mold {
        limits::check_name("mold", m).unwrap_or_else(|e| panic!("a mold the ingest refuses is kept: {e}"));
    }
    let r = shot_record(snap, "m1");
    if let Err(e) = check_record(&r) {
        panic!("the ingest refuses a shot decoded from a valid profile: {e}: {r:?}");
    }
}
