//! Fuzz tests of the label imports: quality logs (JSON lines) and lot tables.

use super::*;
use crate::import::labels::{parse_lot_table, parse_quality_log};
use crate::import::table::{Row, RowError, Table};

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
            let cells = if u.ratio(1, 10)? {
                Err(RowError { reason: "2 cells where the header has 5".into(), text: "a,b".into() })
            } else {
                Ok(cells)
            };
            rows.push(Row { line, cells });
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
