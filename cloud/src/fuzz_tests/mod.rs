//! Property-based fuzz tests of the cloud's decoders (`cloud.toml`, and the import path: CSV
//! splitting, import profiles, rows to records, time cells, quality logs, lot tables), each run
//! by plain `cargo test` for a fixed time budget.

// Inputs are arbitrary text and valid examples with fields changed to hostile values (huge,
// negative, NaN/inf, empty, over-long, Korean, MQTT wildcards, truncated TOML). Properties:
// no panic, quick answers, refusals with a non-empty reason naming the column or field, and
// every record an import row yields is one the lake's commit accepts.
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-cloud --lib fuzz` fuzzes for longer.
// `ARBTEST_SEED=0x…` (the seed a failure prints) replays one case.

mod config;
mod import;
mod labels;

use arbtest::arbitrary::{self, Unstructured};
use moldops_shared::limits;
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

/// A string meant to break a cell, a name or a path.
fn any_string(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=10)? {
        0 => String::new(),
        1 => (*u.choose(&[" ", "\t", " \u{3000} ", "\"", "\"\"", ","])?).to_string(),
        2 => "가".repeat(u.int_in_range(1..=60)?),
        3 => "사출성형기-1".into(),
        4 => (*u
            .choose(&["/", "+", "#", "a/b", "s+", "../x", "NaN", "NAN", "-nan", "inf", "-0", "1e400"])?)
        .to_string(),
        5 => "x".repeat(u.int_in_range(limits::MAX_ID_BYTES - 2..=limits::MAX_ID_BYTES + 2)?),
        6 => format!("m{}1", char::from(u.int_in_range(0..=0x1f_u8)?)),
        7 => (*u.choose(&["\u{0}", "\u{7f}", "\u{85}", "\u{feff}M1", "🏭"])?).to_string(),
        8 => (*u.choose(&["M1", "6", "7", "6i", "GURAD REF UPP   DA63"])?).to_string(),
        _ => u.arbitrary::<String>()?,
    })
}

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
// TOML mutation
// ---------------------------------------------------------------------------------------------

/// Placeholder put into a TOML tree, later replaced by raw text the tree cannot hold.
const RAW: &str = "@@raw@@";

/// Raw TOML value text meant to break whatever key it lands on.
fn hostile_toml(u: &mut Unstructured<'_>) -> Gen<String> {
    const TOKENS: &[&str] = &[
        "0",
        "-1",
        "65536",
        "9223372036854775807",
        "9223372036854775808",
        "1e400",
        "nan",
        "-inf",
        "true",
        "\"\"",
        "\" \"",
        "[]",
        "{}",
        "'가나다'",
        "\"a/b+c#\"",
        "\"\\u0000\"",
        "1979-05-27T07:32:00Z",
        "[1, \"a\"]",
        "\"%Y\"",
        "\"%\"",
        "\"Mars/Olympus\"",
        "\"epoch_ms\"",
    ];
    Ok(match u.int_in_range(0..=3)? {
        0..=2 => (*u.choose(TOKENS)?).to_string(),
        _ => toml::Value::String(any_string(u)?).to_string(),
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

// ---------------------------------------------------------------------------------------------
// Table cells, for the import rows and the label tables
// ---------------------------------------------------------------------------------------------

/// A time cell: valid in some format, at a range edge, in a DST gap, or hostile.
fn time_cell(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => (*u.choose(&[
            "2024-05-01 23:58:00",
            "2024-05-01T23:58:00.125",
            "2024-03-10 02:30:00",
            "2024/05/01 23:58",
            "2024-05-01T23:58:00+09:00",
            "2024-05-01T23:58:00Z",
            "  2024-05-01 23:58:00  ",
            "1714575480000",
            "1714575480.5",
        ])?)
        .to_string(),
        1 => (*u.choose(&[
            "0000-01-01 00:00:00",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "+262142-12-31 23:59:59",
            "-262143-01-01 00:00:00",
            "2024-02-30 00:00:00",
            "-62135596800001",
            "253402300800000",
            "9223372036854775807",
            "1e300",
            "-1e300",
            "NaN",
            "NAN",
            "+nan",
            "-NaN",
            "inf",
            "-infinity",
            "-0",
            "TimeStamp",
        ])?)
        .to_string(),
        2 => u.arbitrary::<i64>()?.to_string(),
        _ => any_string(u)?,
    })
}

/// A value or counter cell: a number, a hostile number, or text.
fn number_cell(u: &mut Unstructured<'_>) -> Gen<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => format!("{}", u.arbitrary::<f32>()?),
        1 => (*u.choose(&[
            "1",
            "0",
            "-1",
            "1.5",
            "1e400",
            "-1e400",
            "18446744073709551615",
            "1.8e19",
            "NaN",
            "inf",
            " 7 ",
            "",
        ])?)
        .to_string(),
        2 => u.arbitrary::<u32>()?.to_string(),
        _ => any_string(u)?,
    })
}
