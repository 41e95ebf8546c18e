//! Property-based fuzz tests of the cloud's decoders (`cloud.toml`, the import path: CSV
//! splitting, import profiles, rows to records, time cells, quality logs, lot tables; and the
//! database answers a pull reads), each run by plain `cargo test` for a fixed time budget.

// Inputs are arbitrary text and valid examples with fields changed to hostile values (huge,
// negative, NaN/inf, empty, over-long, Korean, MQTT wildcards, truncated TOML). Properties:
// no panic, quick answers, refusals with a non-empty reason naming the column or field, and
// every record an import row yields is one the lake's commit accepts.
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-cloud --lib fuzz` fuzzes for longer.
// `ARBTEST_SEED=0x…` (the seed a failure prints) replays one case.

mod config;
mod import;
mod labels;
mod pull;

use moldops_testkit::arbitrary::Unstructured;
use moldops_testkit::fuzz::{Gen, assert_reason, note, timed};
use moldops_testkit::hostile::truncate_text as truncate;
use moldops_testkit::toml::TomlMutator;

use moldops_shared::limits;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// How long each property runs (milliseconds) unless `ARBTEST_BUDGET_MS` says otherwise.
const BUDGET_MS: u64 = 700;

/// Runs one property for [`BUDGET_MS`] (see `moldops_testkit::fuzz::run`).
fn fuzz(name: &str, property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    moldops_testkit::fuzz::run(name, BUDGET_MS, property);
}

/// How this crate breaks TOML: the shared tokens plus its time formats and zones.
const TOML: TomlMutator =
    TomlMutator { tokens: &["\"%Y\"", "\"%\"", "\"Mars/Olympus\"", "\"epoch_ms\""], string: any_string };

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

// ---------------------------------------------------------------------------------------------
// TOML mutation
// ---------------------------------------------------------------------------------------------

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
