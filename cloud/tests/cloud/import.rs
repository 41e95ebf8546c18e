//! The import: the WooJin table through its profile (time zone, repeated headers, padded mold
//! codes, machine mapping and exclusions, quarantine of bad rows, idempotent re-import), the
//! DongShin table through the second profile, the generic profile, and the quality log.

use moldops_cloud::import::{self, ImportProfile, TableKind};
use moldops_cloud::lake::{self, quarantine};
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A time column as epoch milliseconds.
fn millis(df: &polars::prelude::DataFrame, column: &str) -> Vec<i64> {
    let c = df.column(column).expect(column).cast(&polars::prelude::DataType::Int64).expect("i64");
    c.i64().expect("i64").iter().flatten().collect()
}

fn profile(name: &str) -> ImportProfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/profiles").join(name);
    ImportProfile::load(&path).expect("profile")
}

#[test]
fn woojin_table_imports_with_its_profile_and_reimports_nothing() {
    let lake = tempfile::tempdir().expect("tempdir");
    let p = profile("import-woojin.toml");
    let r = import::import_table(lake.path(), &data("woojin_shots.csv"), &p).expect("import");
    assert_eq!((r.rows, r.written, r.header_rows, r.excluded, r.quarantined), (12, 6, 1, 2, 3));
    assert_eq!(r.value_columns.len(), 23, "{:?}", r.value_columns);
    assert!(r.source.starts_with("import:"));

    let df = lake::read_dataset(lake.path(), "raw_data").expect("raw_data");
    let machines: Vec<&str> =
        df.column("machine_id").expect("m").str().expect("s").iter().flatten().collect();
    assert_eq!(machines, ["woojin-25", "woojin-6", "woojin-6", "woojin-6", "woojin-6", "woojin-6"]);
    let ts = millis(&df, "ts");
    // 2024-05-01 23:58:00 KST is 14:58:00 UTC.
    assert_eq!(ts[1], 1_714_575_480_000);
    let molds: Vec<&str> = df.column("mold").expect("mold").str().expect("s").iter().flatten().collect();
    assert_eq!(molds[0], "GURAD REF UPP   DA63");
    assert_eq!(molds[1], "9000a 09520", "padded codes are trimmed");

    let (count, recent) = quarantine::scan(lake.path(), 10).expect("quarantine");
    assert_eq!(count, 3);
    let reasons: Vec<&str> = recent.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("line 11, column \"Injection_Time\"")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("line 12, column \"TimeStamp\"")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("line 13: 3 cells")), "{reasons:?}");

    let again = import::import_table(lake.path(), &data("woojin_shots.csv"), &p).expect("re-import");
    assert_eq!((again.written, again.duplicates), (0, 6));
    assert_eq!(lake::read_dataset(lake.path(), "raw_data").expect("raw").height(), 6);
    assert_eq!(quarantine::scan(lake.path(), 0).expect("q").0, 3, "no new quarantine files");
}

#[test]
fn dongshin_and_generic_profiles_import_numeric_tables() {
    let lake = tempfile::tempdir().expect("tempdir");
    let d = import::import_table(lake.path(), &data("dongshin_shots.csv"), &profile("import-dongshin.toml"))
        .expect("dongshin");
    assert_eq!((d.written, d.quarantined), (5, 0));
    let df = lake::read_dataset(lake.path(), "raw_data").expect("raw");
    let shots: Vec<u64> = df.column("shot_number").expect("n").u64().expect("u64").iter().flatten().collect();
    assert_eq!(shots, [1200, 1201, 1202, 1203, 1204]);

    let g = ImportProfile::generic("_time", "teng-2", TableKind::Peripheral);
    assert!(g.check().is_err(), "a peripheral needs a device");
    let g = ImportProfile { device: Some("chiller".into()), ..g };
    // The identity is the site and the file's content: through another profile of the same
    // site it is still a duplicate; for another site it is that site's data.
    let same_site = ImportProfile { site: "teng".into(), ..g.clone() };
    let same = import::import_table(lake.path(), &data("dongshin_shots.csv"), &same_site).expect("generic");
    assert_eq!((same.written, same.duplicates), (0, 5));
    let other = import::import_table(lake.path(), &data("dongshin_shots.csv"), &g).expect("another site");
    assert_eq!((other.written, other.duplicates), (5, 0));
    let lake = tempfile::tempdir().expect("tempdir");
    let r = import::import_table(lake.path(), &data("dongshin_shots.csv"), &g).expect("generic");
    assert_eq!(r.written, 5);
    assert_eq!(r.value_columns.len(), 9, "every numeric column");
    let p = lake::read_dataset(lake.path(), "peripheral_data").expect("peripherals");
    let devices: Vec<&str> = p.column("device_id").expect("d").str().expect("s").iter().flatten().collect();
    assert_eq!(devices, ["teng-2-chiller"; 5]);
}

#[test]
fn the_quality_log_imports_as_shot_labels_once() {
    let lake = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("quality.jsonl");
    let text = concat!(
        r#"{"machine_id":"M1","shot_number":1,"ts_ms":1714521600000,"mold":"A","label":0,"defect":"none"}"#,
        "\n",
        r#"{"machine_id":"M1","shot_number":2,"ts_ms":1714521660000,"mold":"A","label":1,"defect":"short_shot"}"#,
        "\n",
        "not json\n",
    );
    std::fs::write(&log, text).expect("write log");
    let r = import::import_quality_log(lake.path(), &log).expect("labels");
    assert_eq!((r.written, r.quarantined), (2, 1));
    let again = import::import_quality_log(lake.path(), &log).expect("again");
    assert_eq!((again.written, again.duplicates), (0, 2));
    assert_eq!(lake::list_parts(lake.path(), "labels").expect("parts").len(), 1);
    assert_eq!(quarantine::scan(lake.path(), 0).expect("q").0, 1);
}

/// The DongShin table as a typed Parquet file (numbers as f64/i64, text as strings), the way
/// a historian or pandas export writes it.
fn as_parquet(csv: &Path, out: &Path) {
    use polars::prelude::{Column, DataFrame, ParquetWriter};
    let text = std::fs::read_to_string(csv).expect("csv");
    let table = import::table::read_csv(&text).expect("table");
    let rows: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| r.cells.as_ref().expect("row").iter().map(|c| c.clone().unwrap_or_default()).collect())
        .collect();
    let columns = table
        .header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let cells: Vec<&str> = rows.iter().map(|r| r[i].as_str()).collect();
            let numbers: Option<Vec<f64>> = cells.iter().map(|c| c.trim().parse().ok()).collect();
            match numbers {
                Some(v) if v.iter().all(|x| x.fract() == 0.0) => {
                    Column::new(name.into(), v.iter().map(|x| *x as i64).collect::<Vec<_>>())
                }
                Some(v) => Column::new(name.into(), v),
                None => Column::new(name.into(), cells),
            }
        })
        .collect();
    let mut df = DataFrame::new(rows.len(), columns).expect("frame");
    let file = std::fs::File::create(out).expect("create parquet");
    ParquetWriter::new(file).finish(&mut df).expect("write parquet");
}

#[test]
fn a_typed_parquet_table_imports_like_its_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parquet = dir.path().join("dongshin.parquet");
    as_parquet(&data("dongshin_shots.csv"), &parquet);
    let p = profile("import-dongshin.toml");
    let (from_csv, from_parquet) = (tempfile::tempdir().expect("t"), tempfile::tempdir().expect("t"));
    let c = import::import_table(from_csv.path(), &data("dongshin_shots.csv"), &p).expect("csv");
    let q = import::import_table(from_parquet.path(), &parquet, &p).expect("parquet");
    assert_eq!((q.rows, q.written, q.quarantined), (c.rows, c.written, 0));
    assert_eq!(q.value_columns, c.value_columns);
    let drop_identity = |lake: &Path| {
        let df = lake::read_dataset(lake, "raw_data").expect("raw");
        df.drop_many(["edge_id", "seq"])
    };
    assert_eq!(drop_identity(from_parquet.path()), drop_identity(from_csv.path()));
    let again = import::import_table(from_parquet.path(), &parquet, &p).expect("again");
    assert_eq!((again.written, again.duplicates), (0, q.written));
}

#[test]
fn lot_tables_import_as_lot_labels_with_bad_rows_quarantined() {
    let lake = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let lots = dir.path().join("lots.csv");
    let text = "machine_id,from_ts,to_ts,defect_ratio,lot\n\
                M1,2024-05-01T09:00:00+09:00,2024-05-01T12:00:00+09:00,0.02,L-1\n\
                M1,1714536000000,1714546800000,0.5,\n\
                M2,2024-05-01T09:00:00,2024-05-01T10:00:00Z,0.1,L-3\n\
                M2,2024-05-01T10:00:00Z,2024-05-01T09:00:00Z,0.1,L-4\n\
                M2,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z,1.5,L-5\n";
    std::fs::write(&lots, text).expect("write lots");
    let r = import::import_lot_labels(lake.path(), &lots, &Default::default()).expect("lots");
    assert_eq!((r.rows, r.written, r.quarantined), (5, 2, 3));
    let parts = lake::list_parts(lake.path(), "lot_labels").expect("parts");
    let df = moldops_cloud::lake::read_parts(&parts, &[]).expect("read").expect("lot_labels");
    let from = millis(&df, "from_ts");
    // 09:00 KST is 00:00 UTC.
    assert_eq!(from, [1_714_521_600_000, 1_714_536_000_000]);
    let (_, recent) = quarantine::scan(lake.path(), 10).expect("quarantine");
    let reasons: Vec<&str> = recent.iter().map(|e| e.reason.as_str()).collect();
    for expected in
        ["line 4, column \"from_ts\"", "line 5, column \"to_ts\"", "line 6, column \"defect_ratio\""]
    {
        assert!(reasons.iter().any(|r| r.contains(expected)), "{expected} in {reasons:?}");
    }
    let again = import::import_lot_labels(lake.path(), &lots, &Default::default()).expect("again");
    assert_eq!((again.written, again.duplicates), (0, 2));

    let missing = dir.path().join("bad.csv");
    std::fs::write(&missing, "machine_id,from_ts\nM1,0\n").expect("write");
    let err = import::import_lot_labels(lake.path(), &missing, &Default::default()).unwrap_err();
    assert!(format!("{err:#}").contains("to_ts, defect_ratio"), "{err:#}");
}

/// The WooJin table as a Korean plant has it: Korean mold names and a two-line note (in a
/// column the profile ignores) — then its twins as Korean Windows software, Excel's "Unicode
/// text", a ';' locale's "CSV UTF-8" and an Excel workbook write them (`tests/peers/
/// export_twins.py`, Python's own codecs and openpyxl). Each twin imports to the same rows as
/// the UTF-8 original, with the same refusals, and the report says how it was read.
#[test]
fn korean_exports_in_cp949_utf16_semicolons_and_xlsx_import_like_their_utf8_twin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(data("woojin_shots.csv")).expect("woojin table");
    let korean = text
        .replacen("\"9000a 09520   \",,", "\"범퍼 커버 9000a   \",\"메모: 금형 교체\n확인 필요\",", 1)
        .replace("9000a 09520", "범퍼 커버 9000a")
        .replace("GURAD REF UPP   DA63", "가드 레프 어퍼   DA63");
    assert_ne!(korean, text);
    let original = dir.path().join("utf8.csv");
    std::fs::write(&original, &korean).expect("write");
    let out = std::process::Command::new(crate::support::python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/peers/export_twins.py"))
        .arg(&original)
        .arg(dir.path())
        .output()
        .expect("run export_twins.py");
    assert!(out.status.success(), "export_twins.py: {}", String::from_utf8_lossy(&out.stderr));

    let p = profile("import-woojin.toml");
    let import = |name: &str| {
        let lake = tempfile::tempdir().expect("tempdir");
        let r = import::import_table(lake.path(), &dir.path().join(name), &p).expect(name);
        let df = lake::read_dataset(lake.path(), "raw_data").expect("raw_data").drop_many(["edge_id", "seq"]);
        let df = df.sort(["machine_id", "ts", "shot_number"], Default::default()).expect("sort");
        (r, df, lake)
    };
    let (want, want_rows, _lake) = import("utf8.csv");
    assert_eq!((want.written, want.quarantined, want.excluded, want.header_rows), (6, 3, 2, 1), "{want:?}");
    let molds: Vec<&str> =
        want_rows.column("mold").expect("mold").str().expect("s").iter().flatten().collect();
    assert!(molds.contains(&"범퍼 커버 9000a") && molds.contains(&"가드 레프 어퍼   DA63"), "{molds:?}");
    for (name, decoding) in [
        ("cp949.csv", "EUC-KR (detected), delimiter ','"),
        ("unicode.txt", "UTF-16LE, delimiter '\\t'"),
        ("semicolon.csv", "UTF-8, delimiter ';'"),
        ("book.xlsx", "workbook sheet \"shot_data\""),
    ] {
        let (r, rows, _lake) = import(name);
        assert_eq!(r.decoding, decoding, "{name}");
        assert_eq!(
            (r.written, r.quarantined, r.excluded),
            (want.written, want.quarantined, want.excluded),
            "{name}"
        );
        assert_eq!(r.value_columns, want.value_columns, "{name}");
        assert!(rows.equals_missing(&want_rows), "{name}: rows differ\n{rows}\n{want_rows}");
    }
}

/// A table of many commit groups, its import killed (`kill -9`) after the first group is in the
/// lake, then run again: every row is in the lake exactly once, the refused row quarantined once.
#[test]
fn an_import_killed_half_way_finishes_on_the_next_run_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let path = dir.path().join("long.csv");
    const ROWS: i64 = 300_000;
    let mut text = String::from("ts,pressure,temp\n");
    for i in 0..ROWS {
        let ts = chrono::DateTime::from_timestamp_millis(1_714_521_600_000 + i * 1000).expect("ts");
        text.push_str(&format!("{},{}.5,{}\n", ts.to_rfc3339(), i % 97, 200 + i % 13));
    }
    text.push_str("2024-05-05T00:00:00Z,not a number,1\n");
    std::fs::write(&path, &text).expect("write");
    let import = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_moldops-cloud"))
            .args(["import", "--json", "--time-column", "ts", "--machine", "m1", "--lake"])
            .arg(&lake)
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the import")
    };
    let mut child = import();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while lake::list_parts(&lake, "raw_data").map(|p| p.is_empty()).unwrap_or(true) {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the import ended before its first group was seen"
        );
        assert!(std::time::Instant::now() < deadline, "no group committed in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("kill -9 the import");
    let killed = child.wait().expect("wait");
    assert!(!killed.success(), "the import was killed, not finished");
    let partial = lake::read_dataset(&lake, "raw_data").expect("raw").height() as i64;
    assert!(partial > 0 && partial < ROWS, "{partial} rows after the kill");

    let out = import().wait_with_output().expect("second run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(
        r["written"].as_i64().expect("written") + r["duplicates"].as_i64().expect("dups"),
        ROWS,
        "{r}"
    );
    assert!(r["duplicates"].as_i64().expect("dups") >= partial, "{r}");
    assert_eq!(r["quarantined"], 1);
    assert_eq!(lake::read_dataset(&lake, "raw_data").expect("raw").height() as i64, ROWS);
    assert_eq!(quarantine::scan(&lake, 0).expect("q").0, 1);
}
