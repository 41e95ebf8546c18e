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
use arbtest::arbitrary::{self, Unstructured};
use moldops_shared::codec::check_record;
use moldops_shared::limits;
use moldops_shared::profile::{DataType, Profile};
use moldops_shared::{Record, RecordKind};
use std::cell::Cell;
use std::fmt::Display;
use std::time::{Duration, Instant};

type Gen<T> = arbitrary::Result<T>;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long each property runs (milliseconds) unless `ARBTEST_BUDGET_MS` says otherwise.
const BUDGET_MS: u64 = 700;
/// Longest one decoder call may take on these small inputs before it counts as unbounded work.
const SLOW: Duration = Duration::from_secs(2);

thread_local! {
    /// Inputs the running property saw accepted and refused (each test runs on its own thread).
    static VERDICTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Counts one decoder verdict, for the summary [`fuzz`] prints.
fn note(accepted: bool) {
    VERDICTS.with(|v| {
        let (yes, no) = v.get();
        v.set(if accepted { (yes + 1, no) } else { (yes, no + 1) });
    });
}

/// Runs `property` on fresh random input until the time budget is spent; prints how many
/// cases ran and how many inputs were accepted and refused.
fn fuzz(name: &str, mut property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    let mut cases = 0u64;
    let started = Instant::now();
    VERDICTS.with(|v| v.set((0, 0)));
    let test = arbtest::arbtest(|u: &mut Unstructured<'_>| {
        cases += 1;
        property(u)
    })
    .size_max(1 << 14);
    match std::env::var_os("ARBTEST_BUDGET_MS") {
        Some(_) => test.run(),
        None => test.budget_ms(BUDGET_MS).run(),
    }
    let verdicts = match VERDICTS.with(Cell::get) {
        (0, 0) => String::new(),
        (accepted, refused) => format!(", {accepted} accepted, {refused} refused"),
    };
    eprintln!("fuzz {name}: {cases} cases in {:?}{verdicts}", started.elapsed());
    assert!(cases > 0, "{name}: no case ran");
}

/// Runs `call`, failing when it takes longer than [`SLOW`] (a sign of unbounded work).
fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = call();
    let took = started.elapsed();
    assert!(took < SLOW, "{what} took {took:?}");
    out
}

/// A refusal must say why.
fn assert_reason(err: &impl Display, input: &dyn std::fmt::Debug) {
    assert!(!err.to_string().trim().is_empty(), "refusal without a reason for {input:?}");
}

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

fn any_f64(u: &mut Unstructured<'_>) -> Gen<f64> {
    const SPECIAL: [f64; 12] = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MAX,
        f64::MIN,
        5e-324,
        1e300,
        -1.0,
        0.1,
        1.0,
    ];
    if u.ratio(2, 3)? { Ok(*u.choose(&SPECIAL)?) } else { Ok(f64::from_bits(u.arbitrary()?)) }
}

fn any_u64(u: &mut Unstructured<'_>) -> Gen<u64> {
    const SPECIAL: [u64; 8] = [0, 1, 2, u64::MAX, 1 << 53, i64::MAX as u64, u32::MAX as u64, 65_536];
    if u.ratio(1, 2)? { Ok(*u.choose(&SPECIAL)?) } else { u.arbitrary() }
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

/// Cuts `text` at a random character boundary.
fn truncate(u: &mut Unstructured<'_>, text: &mut String) -> Gen<()> {
    let mut at = u.int_in_range(0..=text.len())?;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// TOML and JSON mutation
// ---------------------------------------------------------------------------------------------

/// Placeholder put into a tree, later replaced by raw text the tree cannot hold.
const RAW: &str = "@@raw@@";

/// Raw TOML value text meant to break whatever key it lands on.
fn hostile_toml(u: &mut Unstructured<'_>) -> Gen<String> {
    const TOKENS: &[&str] = &[
        "0",
        "-1",
        "1",
        "65536",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "nan",
        "-inf",
        "inf",
        "0.5",
        "true",
        "\"\"",
        "\" \"",
        "[]",
        "{}",
        "'가나다'",
        "\"a/b+c#\"",
        "\"\\u0000\"",
        "0x7FFF_FFFF",
        "1979-05-27T07:32:00Z",
        "[1, \"a\"]",
        "[nan, 1.0]",
        "[5.0, 1.0]",
        "\"little\"",
        "\"string\"",
        "\"opcua\"",
    ];
    Ok(match u.int_in_range(0..=4)? {
        0..=2 => (*u.choose(TOKENS)?).to_string(),
        3 => toml::Value::String(any_string(u)?).to_string(),
        _ => {
            let depth = u.int_in_range(1..=120)?;
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
    })
}

/// Breaks one node of a TOML tree: replaces it, drops it, or adds an unknown or duplicate entry.
fn mutate_toml_node(u: &mut Unstructured<'_>, value: &mut toml::Value) -> Gen<()> {
    let descend = u.ratio(3, 4)?;
    match value {
        toml::Value::Table(map) if descend && !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
            return mutate_toml_node(u, map.get_mut(&key).expect("key just read"));
        }
        toml::Value::Array(items) if descend && !items.is_empty() => {
            let i = u.choose_index(items.len())?;
            return mutate_toml_node(u, &mut items[i]);
        }
        _ => {}
    }
    match (u.int_in_range(0..=3)?, value) {
        (0, toml::Value::Table(map)) if !map.is_empty() => {
            let key = map.keys().nth(u.choose_index(map.len())?).cloned().expect("index within the table");
            map.remove(&key);
        }
        (1, toml::Value::Table(map)) => {
            map.insert(any_string(u)?, toml::Value::String(RAW.into()));
        }
        (0, toml::Value::Array(items)) if !items.is_empty() => {
            items.remove(u.choose_index(items.len())?);
        }
        (1, toml::Value::Array(items)) if !items.is_empty() => {
            let copy = items[u.choose_index(items.len())?].clone();
            items.push(copy);
        }
        (_, node) => *node = toml::Value::String(RAW.into()),
    }
    Ok(())
}

/// `valid` TOML with one to three nodes broken and, sometimes, cut short.
fn mutate_toml(u: &mut Unstructured<'_>, valid: &str) -> Gen<String> {
    let mut tree: toml::Value = toml::from_str(valid).expect("the valid example is TOML");
    for _ in 0..u.int_in_range(1..=3)? {
        mutate_toml_node(u, &mut tree)?;
    }
    // Some trees (a string where a table was) have no TOML text; the example itself stands in.
    let mut text = toml::to_string(&tree).unwrap_or_else(|_| valid.to_string());
    for quoted in [format!("\"{RAW}\""), format!("'{RAW}'")] {
        while let Some(at) = text.find(&quoted) {
            text.replace_range(at..at + quoted.len(), &hostile_toml(u)?);
        }
    }
    if u.ratio(1, 5)? {
        truncate(u, &mut text)?;
    }
    Ok(text)
}

/// Arbitrary text, half the time built from TOML punctuation and the keys a decoder expects.
fn toml_soup(u: &mut Unstructured<'_>, keys: &[&str]) -> Gen<String> {
    if u.arbitrary()? {
        return u.arbitrary();
    }
    let mut out = String::new();
    for _ in 0..u.int_in_range(0..=48)? {
        match u.int_in_range(0..=5)? {
            0 => out.push_str(u.choose(&["[", "]", "[[", "]]", " = ", "\n", ",", "{", "}", "."])?),
            1 | 2 => out.push_str(u.choose(keys)?),
            3 => out.push_str(&hostile_toml(u)?),
            _ => out.push_str(&u.int_in_range(0..=10u32)?.to_string()),
        }
    }
    Ok(out)
}

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
        values: snap.values.clone(),
        out_of_range: snap.flagged(),
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
