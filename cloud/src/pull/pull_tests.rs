//! The page loop against a table in memory, as a property: random times (many shared), random
//! page sizes and look-back windows, late rows arriving between pulls inside the window, pulls
//! failing mid-way like a lost connection and run again — and the lake always ends up holding
//! every row exactly once.

use super::client::{Client, Memory};
use super::config::{Source, SourceConfig, SourceKind};
use super::page::{PageRow, SourceTime};
use super::{PullOptions, pull_with};
use crate::import::{ImportProfile, TableKind};
use moldops_testkit::arbitrary::Unstructured;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn source(batch_rows: usize, look_back_s: u64) -> Source {
    let mut profile = ImportProfile::generic("ts", "M1", TableKind::Shots);
    profile.time.format = "epoch_s".into();
    profile.values = vec!["v".into()];
    let config = SourceConfig {
        look_back_s,
        batch_rows,
        ..SourceConfig::for_test(SourceKind::Postgres, "postgres://u@127.0.0.1/db")
    };
    Source { config, profile }
}

fn row(t: i64, v: u32) -> PageRow {
    PageRow { time: SourceTime::Number(t), cells: vec![Some(t.to_string()), Some(v.to_string())] }
}

/// The `v` of every record in the lake, with how often each is there.
fn lake_values(lake: &std::path::Path) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    // No records yet: no dataset, or one without the value column.
    if let Ok(df) = crate::lake::read_dataset(lake, "raw_data")
        && let Ok(v) = df.column("v")
    {
        for x in v.f64().expect("f64").iter().flatten() {
            *out.entry(x as u32).or_default() += 1;
        }
    }
    out
}

#[test]
fn every_row_lands_once_whatever_the_pages_late_rows_and_failures() {
    let rt = moldops_common::runtime::build().expect("runtime");
    moldops_testkit::fuzz::run("pull/loop", 1500, |u: &mut Unstructured<'_>| {
        let dir = tempfile::tempdir().expect("tempdir");
        let look_back = u.int_in_range(0..=30)?;
        let src = source(u.int_in_range(1..=7)?, look_back);
        let rows = Arc::new(Mutex::new(Vec::new()));
        let opts = PullOptions::default();
        let (mut next_v, mut newest) = (0u32, 1_000_000_000i64);
        for _round in 0..u.int_in_range(1..=4)? {
            // New rows, and late ones inside the window behind the newest time pulled so far.
            let mut fresh = Vec::new();
            for _ in 0..u.int_in_range(0..=25)? {
                let late = u.ratio(1, 4)?;
                let t = if late && look_back > 0 {
                    newest - u.int_in_range(0..=look_back as i64)?
                } else {
                    newest + u.int_in_range(0..=3)?
                };
                fresh.push(row(t, next_v));
                next_v += 1;
            }
            rows.lock().expect("rows").extend(fresh);
            // A pull that may lose its connection after a few pages; then pulls until one ends.
            let mut pages_left = if u.ratio(1, 2)? { Some(u.int_in_range(0..=4)?) } else { None };
            loop {
                let memory =
                    Memory { columns: vec!["ts".into(), "v".into()], rows: rows.clone(), pages_left };
                let pull = pull_with(dir.path(), &src, &opts, async { Ok(Client::Memory(memory)) });
                match rt.block_on(pull) {
                    Ok(_) => break,
                    Err(e) => assert!(format!("{e:#}").contains("connection lost"), "{e:#}"),
                }
                pages_left = None;
            }
            newest = rows.lock().expect("rows").iter().map(|r| r.time.value()).max().unwrap_or(newest);
        }
        let lake = lake_values(dir.path());
        assert_eq!(lake.len(), next_v as usize, "every row is in the lake");
        assert!(lake.values().all(|n| *n == 1), "no row twice: {lake:?}");
        Ok(())
    });
}
