//! Property-based fuzz tests of the cloud's decoders (`cloud.toml`, and the import path: CSV
//! splitting, import profiles, rows to records, time cells, quality logs, lot tables), each run
//! by plain `cargo test` for a fixed time budget.

// Inputs are arbitrary text and valid examples with fields changed to hostile values (huge,
// negative, NaN/inf, empty, over-long, Korean, MQTT wildcards, truncated TOML). Properties:
// no panic, quick answers, refusals with a non-empty reason naming the column or field, and
// every record an import row yields is one the lake's commit accepts.
// `ARBTEST_BUDGET_MS=60000 cargo test -p moldops-cloud --lib fuzz` fuzzes for longer.
// `ARBTEST_SEED=0x…` (the seed a failure prints) replays one case.

use crate::config::{CloudFile, ConfigErrors, Overrides, ingest_config, lake_path};
use crate::import::labels::{parse_lot_table, parse_quality_log};
use crate::import::profile::{MachineSpec, TimeSpec};
use crate::import::rows::{Columns, Outcome, parse_time};
use crate::import::table::{Table, read_csv};
use crate::import::{ImportProfile, TableKind};
use arbtest::arbitrary::{self, Unstructured};
use moldops_shared::codec::check_record;
use moldops_shared::{Record, limits};
use std::cell::Cell;
use std::collections::BTreeMap;
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
// cloud.toml
// ---------------------------------------------------------------------------------------------

const CLOUD_TOML: &str = r#"
[broker]
host = "mqtt"
port = 8883
username = "ingest"
password = "secret"

[lake]
path = "lake"

[ingest]
client_id = "ing-1"
max_group_records = 500
"#;

fn hostile_overrides(u: &mut Unstructured<'_>) -> Gen<Overrides> {
    Ok(Overrides {
        broker_host: if u.ratio(1, 3)? { Some(any_string(u)?) } else { None },
        broker_port: if u.ratio(1, 3)? { Some(*u.choose(&[0, 1, 1883, u16::MAX])?) } else { None },
        lake: None,
        client_id: if u.ratio(1, 3)? { Some(any_string(u)?) } else { None },
    })
}

#[test]
fn the_example_cloud_config_is_valid() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("cloud.toml");
    std::fs::write(&file, CLOUD_TOML).expect("write the config");
    let cfg = ingest_config(Some(&file), &Overrides::default()).expect("the example is valid");
    assert_eq!((cfg.broker.port, cfg.max_group_records), (8883, 500));
}

#[test]
fn fuzz_cloud_config() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("cloud.toml");
    fuzz("cloud/config", |u| {
        let text = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<String>()?,
            _ => mutate_toml(u, CLOUD_TOML)?,
        };
        if let Err(e) = timed("parse cloud.toml", || toml::from_str::<CloudFile>(&text)) {
            assert_reason(&e, &text);
        }
        std::fs::write(&file, &text).expect("write the config");
        let over = hostile_overrides(u)?;
        let verdict = timed("ingest_config", || ingest_config(Some(&file), &over));
        note(verdict.is_ok());
        match verdict {
            Err(ConfigErrors(problems)) => {
                assert!(!problems.is_empty(), "refused without a problem");
                assert!(problems.iter().all(|p| !p.trim().is_empty()), "an empty problem line");
            }
            Ok(cfg) => {
                cfg.validate().expect("an accepted config validates again");
                assert!(!cfg.client_id.trim().is_empty() && cfg.max_group_records > 0);
                assert!(!cfg.broker.host.trim().is_empty() && cfg.broker.port > 0);
                assert!(cfg.lake.is_absolute(), "{}", cfg.lake.display());
            }
        }
        if let Ok(lake) = lake_path(Some(&file), None) {
            assert!(lake.is_absolute() || lake.as_os_str().is_empty(), "{}", lake.display());
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Import: CSV, profiles, rows and time cells
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_csv_split() {
    fuzz("import/csv", |u| {
        let text = if u.arbitrary()? {
            u.arbitrary::<String>()?
        } else {
            let cells = ["a", "\"b, c\"", "\"\"\"q\"\"\"", "\"open", "", " 1.5 ", "가", "\u{feff}h"];
            let mut out = String::new();
            for _ in 0..u.int_in_range(0..=40)? {
                out.push_str(u.choose(&cells)?);
                out.push_str(u.choose(&[",", ",", "\n", "\r\n", "\""])?);
            }
            out
        };
        let verdict = timed("read_csv", || read_csv(&text));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert!(text.lines().next().is_none() || format!("{e:#}").contains("line 1"), "{e:#}"),
            Ok(t) => {
                assert!(t.header.iter().all(|h| h.trim() == h), "{:?}", t.header);
                let mut prev = 1;
                for (line, row) in &t.rows {
                    assert!(*line > prev, "lines out of order");
                    prev = *line;
                    match row {
                        Ok(cells) => assert_eq!(cells.len(), t.header.len()),
                        Err(reason) => assert!(!reason.trim().is_empty()),
                    }
                }
            }
        }
        Ok(())
    });
}

/// The WooJin-like header: time, machine label, shot counter, mold, three values.
const HEADER: [&str; 7] = [
    "TimeStamp",
    "Machine_Name",
    "Shot_Number",
    "Additional_Info_1",
    "Injection_Time",
    "Screw_Position",
    "사출_압력",
];

/// A valid import profile of [`HEADER`], with a random time format and zone, and a machine from
/// the label column or fixed.
fn any_profile(u: &mut Unstructured<'_>) -> Gen<ImportProfile> {
    let format = (*u.choose(&[
        "%Y-%m-%d %H:%M:%S",
        "auto",
        "auto",
        "rfc3339",
        "epoch_ms",
        "epoch_s",
        "%Y/%m/%d %H:%M",
        "%s",
        "%",
        "%Q%Y",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ])?)
    .to_string();
    let time_zone = u
        .choose(&[
            None,
            Some("Asia/Seoul"),
            Some("America/New_York"),
            Some("Pacific/Kiritimati"),
            Some("Etc/GMT+12"),
        ])?
        .map(str::to_string);
    let by_column: bool = u.arbitrary()?;
    let machine = MachineSpec {
        id: (!by_column).then(|| "woojin-25".to_string()),
        column: by_column.then(|| "Machine_Name".to_string()),
        map: BTreeMap::from([(String::new(), "woojin-25".to_string()), ("6".into(), "woojin-6".into())]),
        default: if u.arbitrary()? { Some("woojin-6".into()) } else { None },
        exclude: vec!["7".into(), "6i".into()],
    };
    let kind = *u.choose(&[TableKind::Shots, TableKind::Peripheral])?;
    let explicit = u.ratio(1, 3)?;
    let mut nulls = vec![String::new(), "NaN".into(), "nan".into(), "NULL".into(), "null".into()];
    if u.ratio(1, 4)? {
        nulls.remove(u.choose_index(nulls.len())?);
    }
    Ok(ImportProfile {
        name: "fuzz".into(),
        kind,
        site: "NewSeoGwang".into(),
        time: TimeSpec { column: "TimeStamp".into(), format, time_zone },
        machine,
        shot_number: if u.arbitrary()? { Some("Shot_Number".into()) } else { None },
        mold: if u.arbitrary()? { Some("Additional_Info_1".into()) } else { None },
        device: (kind == TableKind::Peripheral).then(|| "tcu".to_string()),
        values: if explicit { vec!["Injection_Time".into(), "사출_압력".into()] } else { Vec::new() },
        ignore: if u.arbitrary()? { vec!["Screw_Position".into()] } else { Vec::new() },
        null_values: nulls,
    })
}

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
            "inf",
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

/// A table of [`HEADER`] (sometimes with extra hostile columns) and a few rows of hostile
/// cells, repeated headers, short rows and unsplittable lines.
fn any_table(u: &mut Unstructured<'_>) -> Gen<Table> {
    let mut header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    if u.ratio(1, 4)? {
        header.push(match u.int_in_range(0..=2)? {
            0 => "seq".into(),
            1 => "Injection_Time".into(),
            _ => any_string(u)?.trim().to_string(),
        });
    }
    let mut rows = Vec::new();
    for line in 2..u.int_in_range(2..=10)? {
        let row = match u.int_in_range(0..=9)? {
            0 => Err("unterminated quote".to_string()),
            1 => Ok(header.iter().map(|h| Some(h.clone())).collect()),
            2 => Ok(vec![Some(time_cell(u)?)]),
            _ => {
                let mut cells = vec![
                    Some(time_cell(u)?),
                    Some((*u.choose(&["", "6", "7", "6i", "25", " 6 "])?).to_string()),
                    Some(number_cell(u)?),
                    Some(if u.arbitrary()? { "9000a 09520".to_string() } else { any_string(u)? }),
                ];
                for _ in 4..header.len() {
                    cells.push(if u.ratio(1, 10)? { None } else { Some(number_cell(u)?) });
                }
                Ok(cells)
            }
        };
        rows.push((line, row));
    }
    Ok(Table { header, rows })
}

/// Whether the lake's commit takes `r` (what `Committer::commit` checks): `check_record`, a time
/// in years 1..=9999 and no value named like a lake column.
fn lake_takes(r: &Record) -> Result<(), String> {
    check_record(r).map_err(|e| e.to_string())?;
    if !(-62_135_596_800_000..=253_402_300_799_999).contains(&r.ts_ms) {
        return Err(format!("ts_ms {} is outside years 1..=9999", r.ts_ms));
    }
    match r.values.keys().find(|k| crate::lake::FIXED_COLUMNS.contains(&k.as_str())) {
        Some(name) => Err(format!("value name {name:?} collides with a lake column")),
        None => Ok(()),
    }
}

/// Records the lake refuses for a known, reported reason: a mold cell
/// (`bug_import_accepts_a_mold_cell_the_lake_refuses`) or a column name
/// (`bug_import_accepts_a_column_name_the_lake_refuses`) the rows never check.
fn known_import_bug(r: &Record) -> bool {
    let bad_mold = r.mold.as_deref().is_some_and(|m| limits::check_name("mold", m).is_err());
    let bad_name = r.values.keys().any(|k| {
        limits::check_name("value name", k).is_err() || crate::lake::FIXED_COLUMNS.contains(&k.as_str())
    });
    bad_mold || bad_name
}

/// One row's contract: no panic; a refusal names a column of the table and a reason; a
/// record is one the lake takes.
fn check_row(p: &ImportProfile, t: &Table, columns: &Columns, line: usize, cells: &[Option<String>]) {
    match timed("Columns::row", || columns.row(p, t, line, cells)) {
        Outcome::Bad { column, reason } => {
            note(false);
            assert!(!reason.trim().is_empty(), "a row refused without a reason: {cells:?}");
            if let Some(c) = column {
                assert!(t.header.contains(&c), "refusal blames {c:?}, not a column");
            }
        }
        Outcome::Header => assert_eq!(
            cells.first().cloned().flatten().map(|c| c.trim().to_string()),
            Some(p.time.column.clone())
        ),
        Outcome::Excluded => assert!(p.machine.column.is_some(), "excluded without a label column"),
        Outcome::Record(r) => {
            note(true);
            assert_eq!(r.seq, line as u64);
            assert_eq!(r.kind == moldops_shared::RecordKind::Shot, p.kind == TableKind::Shots);
            assert!(r.values.values().all(|v| v.is_finite()), "{r:?}");
            if !known_import_bug(&r)
                && let Err(e) = lake_takes(&r)
            {
                panic!("an imported row yields a record the lake refuses ({e}): {cells:?} -> {r:?}");
            }
        }
    }
}

#[test]
fn fuzz_import_rows() {
    fuzz("import/rows", |u| {
        let p = any_profile(u)?;
        p.check().expect("the generated profile is valid");
        let t = any_table(u)?;
        let columns = match timed("Columns::resolve", || Columns::resolve(&p, &t)) {
            Err(e) => {
                assert!(format!("{e:#}").contains("no column"), "{e:#}");
                return Ok(());
            }
            Ok(c) => c,
        };
        for (line, row) in &t.rows {
            if let Ok(cells) = row {
                check_row(&p, &t, &columns, *line, cells);
            }
        }
        Ok(())
    });
}

const PROFILE_TOML: &str = r#"
name = "woojin"
kind = "shots"
site = "NewSeoGwang"
time = { column = "TimeStamp", format = "%Y-%m-%d %H:%M:%S", time_zone = "Asia/Seoul" }
shot_number = "Shot_Number"
mold = "Additional_Info_1"
ignore = ["idx"]
[machine]
column = "Machine_Name"
map = { "" = "woojin-25" }
default = "woojin-6"
exclude = ["7", "6i"]
"#;

#[test]
fn fuzz_import_profile_toml() {
    fuzz("import/profile", |u| {
        let text = if u.ratio(1, 4)? { u.arbitrary::<String>()? } else { mutate_toml(u, PROFILE_TOML)? };
        let p = match timed("parse profile", || toml::from_str::<ImportProfile>(&text)) {
            Err(e) => {
                note(false);
                assert_reason(&e, &text);
                return Ok(());
            }
            Ok(p) => p,
        };
        let verdict = p.check();
        note(verdict.is_ok());
        if let Err(e) = verdict {
            assert_reason(&e, &p);
            return Ok(());
        }
        // Whatever the profile says, a row through it never panics.
        let t = any_table(u)?;
        if let Ok(columns) = Columns::resolve(&p, &t) {
            for (line, row) in &t.rows {
                if let Ok(cells) = row {
                    let _ = timed("Columns::row", || columns.row(&p, &t, *line, cells));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_time_cells() {
    fuzz("import/time", |u| {
        let mut p = any_profile(u)?;
        if u.ratio(1, 4)? {
            p.time.format = any_string(u)?;
        }
        let text = time_cell(u)?;
        let verdict = timed("parse_time", || parse_time(&p, &text));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert!(e.to_string().contains(&format!("{text:?}")), "{e} does not quote the cell"),
            Ok(ms) => match p.time.format.as_str() {
                format @ ("epoch_ms" | "epoch_s") => {
                    let v: f64 = text.parse().expect("an accepted epoch cell is a number");
                    // A NaN cell is accepted as 0 (`bug_import_reads_nan_as_1970`): left out.
                    if !v.is_nan() {
                        let want = if format == "epoch_ms" { v as i64 } else { (v * 1000.0).round() as i64 };
                        assert_eq!(ms, want, "{text:?}");
                    }
                }
                "rfc3339" => {
                    let t = chrono::DateTime::parse_from_rfc3339(&text).expect("accepted as RFC 3339");
                    assert_eq!(t.timestamp_millis(), ms);
                }
                _ => {}
            },
        }
        Ok(())
    });
}

/// Found by `fuzz_time_cells` (which now leaves NaN cells out): with `format = "epoch_ms"` or
/// `"epoch_s"`, a cell Rust parses as NaN (`NAN`, `+nan`, `-NaN`, `Nan` — only `NaN` and `nan`
/// are default null values) is read as `NaN as i64` = 0, i.e. 1970-01-01, and imported as a
/// shot at that time instead of being refused (`cloud/src/import/rows.rs`, `parse_time`).
#[test]
fn bug_import_reads_nan_as_1970() {
    let mut p = ImportProfile::generic("t", "m1", TableKind::Shots);
    for (format, cell) in [("epoch_ms", "NAN"), ("epoch_ms", "+nan"), ("epoch_s", "-NaN")] {
        p.time.format = format.into();
        assert!(parse_time(&p, cell).is_err(), "{format} {cell:?} read as {:?}", parse_time(&p, cell));
    }
}

fn one_row_table(header: &[&str], cells: &[&str]) -> Table {
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows: vec![(2, Ok(cells.iter().map(|c| Some(c.to_string())).collect()))],
    }
}

/// Why the lake refuses the record the one row of `t` becomes through `p`; `None` when the
/// lake takes it or the import refuses the row (or the table) itself, with a reason.
fn lake_refuses_the_row(p: &ImportProfile, t: &Table) -> Option<String> {
    let columns = Columns::resolve(p, t).ok()?;
    let Ok(cells) = &t.rows[0].1 else { return None };
    match columns.row(p, t, 2, cells) {
        Outcome::Record(r) => lake_takes(&r).err(),
        _ => None,
    }
}

/// Found by `fuzz_import_rows` (which now leaves such records out): the mold cell is only
/// trimmed, so a mold over 128 bytes (a 43-syllable Korean description) or one with a control
/// character becomes a record the lake's commit refuses; `import_table` then fails the whole
/// import ("the lake refused a batch") instead of quarantining the row
/// (`cloud/src/import/rows.rs`, `Columns::row`).
#[test]
fn bug_import_accepts_a_mold_cell_the_lake_refuses() {
    let p =
        ImportProfile { mold: Some("mold".into()), ..ImportProfile::generic("t", "m1", TableKind::Shots) };
    let refused: Vec<(String, String)> = ["가".repeat(43), "A\u{1}B".to_string()]
        .into_iter()
        .filter_map(|mold| {
            let t = one_row_table(&["t", "mold", "v"], &["2024-05-01 23:58:00", &mold, "1.5"]);
            Some((mold.clone(), lake_refuses_the_row(&p, &t)?))
        })
        .collect();
    assert!(refused.is_empty(), "molds the import accepts and the lake refuses: {refused:?}");
}

/// Found by `fuzz_import_rows` (which now leaves such records out): value column names come
/// from the header unchecked, so a numeric column named over 128 bytes, with a control
/// character, not at all (pandas' unnamed index column) or (listed in the profile's `values`)
/// like a lake column (`seq`, `site`, …) yields records the lake refuses, failing the whole
/// import (`cloud/src/import/rows.rs`, `Columns::resolve`).
#[test]
fn bug_import_accepts_a_column_name_the_lake_refuses() {
    let generic = ImportProfile::generic("t", "m1", TableKind::Shots);
    let explicit = ImportProfile { values: vec!["seq".into()], ..generic.clone() };
    let long = "x".repeat(129);
    let cases: [(&str, &ImportProfile, &[&str], &[&str]); 4] = [
        ("a 129-byte column name", &generic, &["t", &long], &["2024-05-01 23:58:00", "1.5"]),
        ("a control character", &generic, &["t", "a\u{1}b"], &["2024-05-01 23:58:00", "1.5"]),
        // pandas' `to_csv` writes its index as a first column without a name.
        ("an unnamed index column", &generic, &["", "t", "v"], &["0", "2024-05-01 23:58:00", "1.5"]),
        ("values = [\"seq\"]", &explicit, &["t", "seq"], &["2024-05-01 23:58:00", "1.5"]),
    ];
    let refused: Vec<(&str, String)> = cases
        .into_iter()
        .filter_map(|(case, p, header, cells)| {
            Some((case, lake_refuses_the_row(p, &one_row_table(header, cells))?))
        })
        .collect();
    assert!(refused.is_empty(), "rows the import accepts and the lake refuses: {refused:?}");
}

/// Found reading `import_table` for `fuzz_import_rows`: records are committed in groups of
/// `GROUP_RECORDS` = 20 000 as one batch each, but the commit refuses any batch of more than
/// `limits::MAX_RECORDS` = 10 000 records (or over 4 MiB), so importing a CSV of more than
/// 10 000 data rows fails ("the lake refused a batch") (`cloud/src/import.rs`, `import_table`).
#[test]
fn bug_import_of_more_than_max_records_rows_fails() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let csv = dir.path().join("big.csv");
    let mut text = String::from("t,v\n");
    for i in 0..=limits::MAX_RECORDS {
        text.push_str(&format!("{},1.5\n", 1_714_575_480_000i64 + i as i64 * 1000));
    }
    std::fs::write(&csv, text).expect("write the table");
    let mut p = ImportProfile::generic("t", "m1", TableKind::Shots);
    p.time.format = "epoch_ms".into();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).expect("create the lake");
    let report = crate::import::import_table(&lake, &csv, &p);
    let report = report.map_err(|e| format!("{e:#}")).expect("a 10 001-row table imports");
    assert_eq!(report.written, limits::MAX_RECORDS as u64 + 1);
}

// ---------------------------------------------------------------------------------------------
// Import: quality logs and lot tables
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_quality_log() {
    fuzz("import/quality_log", |u| {
        let mut text = String::new();
        for _ in 0..u.int_in_range(0..=8)? {
            let line = match u.int_in_range(0..=4)? {
                0 => any_string(u)?,
                1 => {
                    let mut line = serde_json::json!({
                        "machine_id": "M1", "shot_number": 7, "ts_ms": 1_714_575_480_000i64, "label": 1.0, "defect": "short",
                    });
                    let field = *u.choose(&["machine_id", "shot_number", "ts_ms", "label", "defect"])?;
                    line[field] = match u.int_in_range(0..=3)? {
                        0 => serde_json::json!(any_string(u)?),
                        1 => serde_json::json!(-1),
                        2 => serde_json::json!(u64::MAX),
                        _ => serde_json::Value::Null,
                    };
                    line.to_string()
                }
                2 => r#"{"machine_id":"M1","shot_number":7,"ts_ms":0,"label":1e400}"#.into(),
                3 => {
                    let mut s = r#"{"machine_id":"M1","shot_number":7,"ts_ms":0,"label":0}"#.to_string();
                    truncate(u, &mut s)?;
                    s
                }
                _ => r#"{"machine_id":"사출1","shot_number":18446744073709551615,"ts_ms":-9223372036854775808,"label":0.5}"#.into(),
            };
            text.push_str(&line);
            text.push('\n');
        }
        let (labels, refused) = timed("parse_quality_log", || parse_quality_log(&text));
        let lines = text.lines().count();
        for l in &labels {
            note(true);
            assert!(l.label.is_finite(), "{l:?}");
            assert!(l.defect.as_deref() != Some(""), "an empty defect is kept as none");
        }
        for (line, reason) in &refused {
            note(false);
            assert!((1..=lines).contains(line) && !reason.trim().is_empty(), "{line}: {reason:?}");
        }
        assert!(labels.len() + refused.len() <= lines);
        Ok(())
    });
}

const LOT_COLUMNS: [&str; 4] = ["machine_id", "from_ts", "to_ts", "defect_ratio"];

#[test]
fn fuzz_lot_table() {
    fuzz("import/lots", |u| {
        let mut header: Vec<String> = LOT_COLUMNS.iter().map(|c| c.to_uppercase()).collect();
        header.push("lot".into());
        if u.ratio(1, 10)? {
            header.remove(u.choose_index(4)?);
        }
        let mut rows = Vec::new();
        for line in 2..u.int_in_range(2..=8)? {
            let mut cells = vec![
                Some((*u.choose(&["M1", "M1", "", " ", "사출1"])?).to_string()),
                Some(if u.arbitrary()? { "1714575480000".into() } else { time_cell(u)? }),
                Some(if u.arbitrary()? { "2024-05-01T23:58:00+09:00".into() } else { time_cell(u)? }),
                Some(if u.arbitrary()? { "0.05".into() } else { number_cell(u)? }),
                Some(any_string(u)?),
            ];
            cells.truncate(u.int_in_range(0..=header.len())?);
            rows.push((
                line,
                if u.ratio(1, 10)? { Err("2 cells where the header has 5".into()) } else { Ok(cells) },
            ));
        }
        let table = Table { header, rows };
        let (lots, refused) = match timed("parse_lot_table", || parse_lot_table(&table)) {
            Err(e) => {
                assert!(format!("{e:#}").contains("needs the column"), "{e:#}");
                return Ok(());
            }
            Ok(parsed) => parsed,
        };
        for l in &lots {
            note(true);
            assert!(!l.machine_id.is_empty() && l.from_ms <= l.to_ms, "{l:?}");
            assert!((0.0..=1.0).contains(&l.defect_ratio), "{l:?}");
        }
        for (line, column, reason) in &refused {
            note(false);
            assert!(!reason.trim().is_empty(), "line {line} refused without a reason");
            if let Some(c) = column {
                assert!(LOT_COLUMNS.contains(&c.as_str()), "refusal blames {c:?}");
            }
        }
        assert_eq!(lots.len() + refused.len(), table.rows.len());
        Ok(())
    });
}

#[test]
fn import_refuses_hostile_cells_with_reasons() {
    let p = ImportProfile {
        shot_number: Some("n".into()),
        ..ImportProfile::generic("t", "m1", TableKind::Shots)
    };
    let cases: &[(&str, &str, &str, &str)] = &[
        ("+262142-12-31 23:59:59", "1", "1.5", "outside years"),
        ("2024-02-30 00:00:00", "1", "1.5", "is not a timestamp"),
        ("2024-05-01 23:58:00", "-1", "1.5", "shot number"),
        ("2024-05-01 23:58:00", "1.8e19", "1.5", "shot number"),
        ("2024-05-01 23:58:00", "1", "1e400", "not a finite number"),
        ("2024-05-01 23:58:00", "1", "inf", "not a finite number"),
    ];
    for (time, shot, value, needle) in cases {
        let t = one_row_table(&["t", "n", "v"], &[time, shot, value]);
        let columns = Columns::resolve(&p, &t).expect("the header has every column");
        let Ok(cells) = &t.rows[0].1 else { panic!("the row splits") };
        match columns.row(&p, &t, 2, cells) {
            Outcome::Bad { column, reason } => {
                assert!(reason.contains(needle), "{time} {shot} {value}: {reason}");
                assert!(column.is_some(), "{reason} names no column");
            }
            other => panic!("{time} {shot} {value} accepted: {other:?}"),
        }
    }
}

#[test]
fn a_deeply_nested_cloud_toml_is_refused_quickly() {
    let text = format!("[lake]\npath = {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let err = timed("parse", || toml::from_str::<CloudFile>(&text)).expect_err("deep nesting");
    assert!(!err.to_string().is_empty());
}
