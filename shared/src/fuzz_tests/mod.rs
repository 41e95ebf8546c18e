//! Property-based fuzz tests of this crate's decoders (batch codec, gap records, commit acks,
//! identifier limits, rollout messages, bundles, register profiles), each run by plain
//! `cargo test` for a fixed time budget.

// Every property feeds a decoder (a) arbitrary bytes or text and (b) valid examples with
// fields changed to hostile values (huge, negative, NaN/inf, empty, over-long, Korean, MQTT
// wildcards, truncated JSON) and checks that it never panics, answers quickly, refuses with a
// non-empty reason, and that whatever it accepts passes its validator again and round-trips.
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-shared --lib fuzz` fuzzes for longer;
// `ARBTEST_SEED=0x…` replays the seed a failure printed.

mod ack;
mod bundle;
mod codec;
mod gap;
mod profile;
mod rollout;

use crate::gap::DropGap;
use crate::limits::{MAX_EPOCH_BYTES, MAX_ID_BYTES};
use crate::record::{Record, RecordKind};
use crate::rollout::MAX_CHUNK_BYTES;
use moldops_testkit::arbitrary::Unstructured;
use moldops_testkit::fuzz::{Gen, assert_reason, note, timed};
use moldops_testkit::hostile::{any_f64, any_u64, truncate_bytes as truncate};

use serde_json::Value as Json;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long each property runs (milliseconds) unless `ARBTEST_BUDGET_MS` says otherwise.
const BUDGET_MS: u64 = 500;

/// Runs one property for [`BUDGET_MS`] (see `moldops_testkit::fuzz::run`).
fn fuzz(name: &str, property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    moldops_testkit::fuzz::run(name, BUDGET_MS, property);
}

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

/// A string meant to break an identifier: empty, blank, over-long, Korean, MQTT wildcards,
/// path tricks, control characters, bidi marks, emoji, or anything at all.
fn any_string(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=12)? {
        0 => String::new(),
        1 => (*u.choose(&[" ", "\t", " \u{3000} "])?).to_string(),
        2 => "가".repeat(u.int_in_range(1..=200)?),
        3 => "사출성형기-1".into(),
        4 => (*u.choose(&["/", "+", "#", "a/b", "s+", "#x", "../x", "a\\b", ".hidden", "moldops/v1/+/#"])?)
            .to_string(),
        5 => "x".repeat(u.int_in_range(MAX_ID_BYTES - 2..=MAX_ID_BYTES + 2)?),
        6 => "y".repeat(u.int_in_range(1..=5000)?),
        7 => format!("m{}1", char::from(u.int_in_range(0..=0x1f_u8)?)),
        8 => (*u.choose(&["\u{0}", "\u{7f}", "\u{85}", "\u{feff}M1", "M\u{202e}1", "🏭", "\u{fffd}"])?)
            .to_string(),
        9 => valid_name(u)?,
        _ => u.arbitrary::<String>()?,
    })
}

/// A valid identifier (within [`limits::check_level`]), sometimes Korean or at the length limit.
fn valid_name(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => (*u.choose(&["M1", "m1", "press-7", "Cycle_Time", "tcu.flow", "MOLD-A"])?).to_string(),
        1 => "사출성형기".repeat(u.int_in_range(1..=8)?),
        2 => "z".repeat(MAX_ID_BYTES),
        _ => {
            let len = u.int_in_range(1..=16)?;
            (0..len)
                .map(|_| {
                    Ok(char::from(
                        *u.choose(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")?,
                    ))
                })
                .collect::<Gen<String>>()?
        }
    })
}

/// A buffer epoch: a valid token or a hostile string.
fn any_epoch(u: &mut Unstructured<'_>) -> Gen<String> {
    if u.ratio(1, 3)? {
        return any_string(u);
    }
    let len = u.int_in_range(0..=MAX_EPOCH_BYTES)?;
    (0..len).map(|_| Ok(char::from(*u.choose(b"0123456789abcdef-_")?))).collect()
}

fn any_i64(u: &mut Unstructured<'_>) -> Gen<i64> {
    const SPECIAL: [i64; 8] = [0, -1, 1, i64::MIN, i64::MAX, 1 << 53, -(1 << 53), 1_700_000_000_000];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

fn any_u32(u: &mut Unstructured<'_>) -> Gen<u32> {
    const SPECIAL: [u32; 7] = [0, 1, 2, 4096, u32::MAX, u32::MAX - 1, MAX_CHUNK_BYTES + 1];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
}

// ---------------------------------------------------------------------------------------------
// JSON mutation: valid documents with one to three nodes broken
// ---------------------------------------------------------------------------------------------

/// Placeholder put into a JSON tree, later replaced by a raw token a `serde_json::Value`
/// cannot hold (`1e400`, `NaN`, `18446744073709551616`, deep nesting …).
const RAW: &str = "@@raw@@";

/// Raw JSON text meant to break whatever field it lands in.
fn hostile_json(u: &mut Unstructured<'_>) -> Gen<String> {
    const TOKENS: &[&str] = &[
        "null",
        "true",
        "0",
        "-0",
        "-1",
        "1.5",
        "1e400",
        "-1e400",
        "18446744073709551615",
        "18446744073709551616",
        "4294967296",
        "-9223372036854775809",
        "9007199254740993",
        "NaN",
        "Infinity",
        "\"\"",
        "[]",
        "{}",
        "[null]",
        "{\"\":null}",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"가나다\"",
        "\"a/b+c#\"",
    ];
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => (*u.choose(TOKENS)?).to_string(),
        3 => serde_json::to_string(&any_string(u)?).expect("a string always serialises"),
        4 => {
            let depth = u.int_in_range(1..=300)?;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        _ => format!("[{}]", vec!["0"; u.int_in_range(0..=2000)?].join(",")),
    })
}

/// Breaks one node of `value`: replaces it, drops it, or adds an unknown or duplicate entry.
fn mutate_node(u: &mut Unstructured<'_>, value: &mut Json) -> Gen<()> {
    let descend = u.ratio(3, 4)?;
    match value {
        Json::Object(map) if descend && !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the map");
            return mutate_node(u, map.get_mut(&key).expect("key just read"));
        }
        Json::Array(items) if descend && !items.is_empty() => {
            let i = u.choose_index(items.len())?;
            return mutate_node(u, &mut items[i]);
        }
        _ => {}
    }
    match (u.int_in_range(0..=3)?, value) {
        (0, Json::Object(map)) if !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the map");
            map.remove(&key);
        }
        (1, Json::Object(map)) => {
            map.insert(any_string(u)?, Json::String(RAW.into()));
        }
        (0, Json::Array(items)) if !items.is_empty() => {
            items.remove(u.choose_index(items.len())?);
        }
        (1, Json::Array(items)) if !items.is_empty() => {
            let copy = items[u.choose_index(items.len())?].clone();
            items.push(copy);
        }
        (_, node) => *node = Json::String(RAW.into()),
    }
    Ok(())
}

/// `valid` serialised with one to three nodes broken and, sometimes, cut short.
fn mutate_json(u: &mut Unstructured<'_>, valid: &Json) -> Gen<Vec<u8>> {
    let mut tree = valid.clone();
    for _ in 0..u.int_in_range(1..=3)? {
        mutate_node(u, &mut tree)?;
    }
    let quoted = format!("\"{RAW}\"");
    let mut text = serde_json::to_string(&tree).expect("a JSON tree always serialises");
    while let Some(at) = text.find(&quoted) {
        text.replace_range(at..at + quoted.len(), &hostile_json(u)?);
    }
    let mut bytes = text.into_bytes();
    if u.ratio(1, 5)? {
        truncate(u, &mut bytes)?;
    }
    Ok(bytes)
}

/// Random JSON-looking text built from the keys a decoder expects, to get past the parser.
fn json_soup(u: &mut Unstructured<'_>, keys: &[&str]) -> Gen<Vec<u8>> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=64)? {
        match u.int_in_range(0..=6)? {
            0 => out.push_str(u.choose(&["{", "}", "[", "]", ",", ":"])?),
            1 | 2 => out.push_str(&format!("\"{}\"", u.choose(keys)?)),
            3 => out.push_str(&hostile_json(u)?),
            _ => out.push_str(&u.int_in_range(0..=10u32)?.to_string()),
        }
    }
    Ok(out.into_bytes())
}

fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).expect("plain data serialises to JSON")
}

// ---------------------------------------------------------------------------------------------
// Records, for the batch codec and the gap records
// ---------------------------------------------------------------------------------------------

/// A record that passes [`check_record`].
fn valid_record(u: &mut Unstructured<'_>, seq: u64) -> Gen<Record> {
    let kind = *u.choose(&[RecordKind::Shot, RecordKind::Peripheral, RecordKind::Gap])?;
    let machine_id = valid_name(u)?;
    let device_id = if kind == RecordKind::Shot { machine_id.clone() } else { valid_name(u)? };
    let ts_ms = u.int_in_range(-62_135_596_800_000..=253_402_300_799_999_i64)?;
    if kind == RecordKind::Gap {
        // Gap figures travel as f64 and must stay within 2^53.
        let first_seq = u.int_in_range(0..=1u64 << 52)?;
        let first_ts_ms = u.int_in_range(-(1i64 << 52)..=1 << 52)?;
        let gap = DropGap {
            machine_id,
            device_id,
            dropped: u.int_in_range(1..=1 << 53)?,
            first_ts_ms,
            last_ts_ms: first_ts_ms + u.int_in_range(0..=1 << 40)?,
            first_seq,
            last_seq: first_seq + u.int_in_range(0..=1000)?,
        };
        let mut r = gap.to_record();
        r.seq = seq;
        return Ok(r);
    }
    let mut values = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=5)? {
        let v = any_f64(u)?;
        values.insert(valid_name(u)?, if v.is_finite() { v } else { 1.0 });
    }
    Ok(Record {
        seq,
        kind,
        machine_id,
        device_id,
        ts_ms,
        shot_number: if kind == RecordKind::Shot { Some(any_u64(u)?) } else { None },
        mold: if u.arbitrary()? { Some(valid_name(u)?) } else { None },
        material: None,
        values,
        out_of_range: if u.ratio(1, 4)? { vec![valid_name(u)?] } else { Vec::new() },
        model: None,
    })
}
