//! Fuzz tests of what database servers answer a pull: InfluxQL JSON, Flux CSV, InfluxDB 3 JSON
//! lines and pull files, from arbitrary bytes and from valid answers with parts swapped for
//! hostile ones. Properties: no panic, quick answers, refusals with a reason, and every page
//! accepted is rectangular (each row as wide as the columns) and names a time column.

use super::*;
use crate::pull::influx::{parse_flux_csv, parse_influxql, parse_jsonl};
use crate::pull::page::Page;

const INFLUXQL: &str = r#"{"results":[{"statement_id":0,"series":[{"name":"tcu","columns":["time","machine","temp"],"values":[[1714521600000000000,"M1",55.25],[1714521601000000000,"M2",null]]}]}]}"#;
const FLUX: &str = ",result,table,_start,_stop,_time,_measurement,machine,temp\r\n\
    ,_result,0,1970-01-01T00:00:00Z,2030-01-01T00:00:00Z,2024-05-01T00:00:00Z,tcu,M1,55.5\r\n\r\n\
    ,result,table,_time,machine,flow\r\n,_result,1,2024-05-01T00:00:01Z,M2,3\r\n";
const JSONL: &str = "{\"machine\":\"M1\",\"temp\":55.5,\"time\":\"2024-05-01T00:00:00\"}\n\
    {\"flow\":3,\"time\":\"2024-05-01T00:00:01Z\"}\n";

/// A valid answer with a few of its pieces replaced by hostile ones.
fn mutated(u: &mut Unstructured<'_>, valid: &str) -> Gen<String> {
    let pieces = [
        "",
        "\"",
        ",",
        "\n",
        "\r\n\r\n",
        "null",
        "1e400",
        "-9223372036854775809",
        "9223372036854775807",
        "\"9999-12-31T00:00:00Z\"",
        "\"time\"",
        "[]",
        "{}",
        "\"partial\":true",
        "\"error\":\"x\"",
        "result",
        "table",
        "_time",
        "가",
        "\"a\r\n\r\n,b\"",
    ];
    let mut text = valid.to_string();
    for _ in 0..u.int_in_range(1..=6)? {
        let at = u.int_in_range(0..=text.len())?;
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let cut = u.int_in_range(0..=8)?.min(text.len() - at);
        let end = (at + cut..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, u.choose(&pieces)?);
    }
    Ok(text)
}

/// A page accepted must be rectangular and start with its time column.
fn check_page(page: &Page) {
    for row in &page.rows {
        assert_eq!(row.cells.len(), page.columns.len(), "a ragged row in {page:?}");
        assert!(row.cells.first().is_some_and(Option::is_some), "a row without its time cell");
    }
}

fn property(name: &str, valid: &'static str, parse: fn(&[u8]) -> anyhow::Result<Page>) {
    fuzz(name, |u| {
        let body = if u.ratio(1, 4)? { u.arbitrary::<Vec<u8>>()? } else { mutated(u, valid)?.into_bytes() };
        match timed(name, || parse(&body)) {
            Ok(page) => {
                note(true);
                check_page(&page);
            }
            Err(e) => {
                note(false);
                assert_reason(&format!("{e:#}"), &String::from_utf8_lossy(&body));
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_influxql_answers() {
    property("pull/influxql", INFLUXQL, parse_influxql);
}

#[test]
fn fuzz_flux_answers() {
    property("pull/flux", FLUX, parse_flux_csv);
}

#[test]
fn fuzz_influx_sql_answers() {
    property("pull/jsonl", JSONL, parse_jsonl);
}
