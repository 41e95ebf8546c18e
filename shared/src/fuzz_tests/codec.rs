//! Fuzz tests of the batch codec: whole batches, their headers and each record's check.

use super::*;
use crate::codec::{check_record, decode_batch, decode_lenient, encode_batch};
use crate::limits::{self, MAX_RECORDS};
use crate::record::{Batch, Record, RecordKind, SCHEMA_VERSION};

/// A batch that [`decode_batch`] accepts.
fn valid_batch(u: &mut Unstructured<'_>) -> Gen<Batch> {
    let mut seq = u.int_in_range(0..=u64::MAX / 2)?;
    let mut records = Vec::new();
    for _ in 0..u.int_in_range(1..=6)? {
        records.push(valid_record(u, seq)?);
        seq += u.int_in_range(1..=3)?;
    }
    let mut batch = Batch::new(&valid_name(u)?, &valid_name(u)?, any_i64(u)?, records)
        .expect("at least one record")
        .with_epoch(&any_epoch(u)?);
    if limits::check_epoch(&batch.epoch).is_err() {
        batch.epoch.clear();
    }
    batch.held_from = if u.arbitrary()? { Some(u.int_in_range(0..=batch.first_seq)?) } else { None };
    Ok(batch)
}

/// A record with any field hostile.
fn hostile_record(u: &mut Unstructured<'_>) -> Gen<Record> {
    let seq = any_u64(u)?;
    let mut r = valid_record(u, seq)?;
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=8)? {
            0 => r.machine_id = any_string(u)?,
            1 => r.device_id = any_string(u)?,
            2 => r.mold = Some(any_string(u)?),
            3 => {
                r.values.insert(any_string(u)?, any_f64(u)?);
            }
            4 => {
                let name = r.values.keys().next().cloned().unwrap_or_default();
                r.values.insert(name, any_f64(u)?);
            }
            5 => r.out_of_range.push(any_string(u)?),
            6 => r.shot_number = None,
            7 => r.kind = *u.choose(&[RecordKind::Shot, RecordKind::Peripheral, RecordKind::Gap])?,
            _ => {
                let n = *u.choose(&[limits::MAX_VALUES, limits::MAX_VALUES + 1])?;
                r.values = (0..n).map(|i| (format!("v{i}"), 1.0)).collect();
            }
        }
    }
    Ok(r)
}

/// A batch with header fields or records hostile.
fn hostile_batch(u: &mut Unstructured<'_>) -> Gen<Batch> {
    let mut b = valid_batch(u)?;
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=9)? {
            0 => b.schema = any_u32(u)?,
            1 => b.site = any_string(u)?,
            2 => b.edge_id = any_string(u)?,
            3 => b.epoch = any_epoch(u)?,
            4 => b.first_seq = any_u64(u)?,
            5 => b.last_seq = any_u64(u)?,
            6 => b.held_from = Some(any_u64(u)?),
            7 => b.records.clear(),
            8 => {
                let i = u.choose_index(b.records.len().max(1))?;
                if let Some(r) = b.records.get_mut(i) {
                    *r = hostile_record(u)?;
                }
            }
            _ => b.records.reverse(),
        }
    }
    Ok(b)
}

/// The codec's contract on one payload: no panic, quick, lenient and strict decoding agree,
/// refusals say why, kept records pass [`check_record`] and re-encode to the same batch.
fn check_codec(payload: &[u8]) {
    let lenient = timed("decode_lenient", || decode_lenient(payload));
    let strict = timed("decode_batch", || decode_batch(payload));
    note(lenient.is_ok());
    let d = match lenient {
        Err(e) => {
            assert_reason(&e, &String::from_utf8_lossy(payload));
            let strict = strict.expect_err("decode_batch accepted what decode_lenient refused");
            assert_reason(&strict, &String::from_utf8_lossy(payload));
            return;
        }
        Ok(d) => d,
    };
    let b = &d.batch;
    assert_eq!(b.schema, SCHEMA_VERSION);
    limits::check_level("site", &b.site).expect("accepted site is a valid topic level");
    limits::check_level("edge_id", &b.edge_id).expect("accepted edge_id is a valid topic level");
    limits::check_epoch(&b.epoch).expect("accepted epoch is a valid token");
    assert!(b.first_seq <= b.last_seq && b.held_from.is_none_or(|h| h <= b.first_seq), "{b:?}");
    let total = b.records.len() + d.refused.len();
    assert!((1..=MAX_RECORDS).contains(&total), "{total} records accepted");
    let mut prev = None;
    for r in &b.records {
        check_record(r).expect("a kept record passes check_record");
        assert!((b.first_seq..=b.last_seq).contains(&r.seq) && prev.is_none_or(|p| p < r.seq), "{r:?}");
        prev = Some(r.seq);
    }
    for r in &d.refused {
        assert!(!r.reason.trim().is_empty() && r.index < total, "{r:?}");
    }
    match strict {
        Ok(s) => {
            assert!(d.refused.is_empty(), "decode_batch kept a batch with refused records");
            assert_eq!(&s, b);
        }
        Err(e) => {
            assert_reason(&e, b);
            assert!(!d.refused.is_empty() || b.records.is_empty(), "decode_batch refused a clean batch: {e}");
        }
    }
    if !b.records.is_empty() {
        let again = decode_batch(&encode_batch(b)).expect("the kept records re-encode to a valid batch");
        assert_eq!(&again, b, "round trip changed the batch");
    }
}

const BATCH_KEYS: &[&str] = &[
    "schema",
    "site",
    "edge_id",
    "epoch",
    "first_seq",
    "last_seq",
    "held_from",
    "sent_at_ms",
    "records",
    "seq",
    "kind",
    "shot",
    "gap",
    "machine_id",
    "device_id",
    "ts_ms",
    "values",
    "shot_number",
    "mold",
];

#[test]
fn fuzz_codec_arbitrary_bytes() {
    fuzz("codec/bytes", |u| {
        let payload = if u.arbitrary()? { u.arbitrary::<Vec<u8>>()? } else { json_soup(u, BATCH_KEYS)? };
        check_codec(&payload);
        Ok(())
    });
}

#[test]
fn fuzz_codec_mutated_batches() {
    fuzz("codec/mutated", |u| {
        let valid = valid_batch(u)?;
        assert_eq!(decode_batch(&encode_batch(&valid)).expect("a valid batch decodes"), valid);
        check_codec(&mutate_json(u, &to_json(&valid))?);
        check_codec(&encode_batch(&hostile_batch(u)?));
        Ok(())
    });
}

#[test]
fn fuzz_check_record() {
    fuzz("codec/check_record", |u| {
        let r = hostile_record(u)?;
        let verdict = timed("check_record", || check_record(&r));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &r),
            Ok(()) => {
                for name in [&r.machine_id, &r.device_id].into_iter().chain(r.values.keys()) {
                    limits::check_name("name", name).expect("accepted names are valid");
                }
                assert!(r.values.values().all(|v| v.is_finite()), "{r:?}");
                assert!(r.values.len() <= limits::MAX_VALUES);
                assert!(r.kind != RecordKind::Shot || r.shot_number.is_some());
                let json = serde_json::to_string(&r).expect("a record serialises");
                let back: Record = serde_json::from_str(&json).expect("an accepted record parses back");
                assert_eq!(back, r);
                check_record(&back).expect("a round-tripped record is still valid");
            }
        }
        Ok(())
    });
}

#[test]
fn codec_refuses_more_than_max_records_quickly() {
    let record = r#"{"seq":1,"kind":"peripheral","machine_id":"m","device_id":"d","ts_ms":0,"values":{}}"#;
    let records = vec![record; MAX_RECORDS + 1].join(",");
    let payload = format!(
        r#"{{"schema":1,"site":"s","edge_id":"e","first_seq":0,"last_seq":18446744073709551615,"sent_at_ms":0,"records":[{records}]}}"#
    );
    let err = timed("decode", || decode_lenient(payload.as_bytes())).expect_err("too many records");
    assert!(err.to_string().contains("10001 records"), "{err}");
}

#[test]
fn codec_refuses_hostile_headers_with_reasons() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":18446744073709551616,"last_seq":1,"sent_at_ms":0,"records":[{}]}"#,
            "expected u64 at line 1 column",
        ),
        (
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":-1,"last_seq":1,"sent_at_ms":0,"records":[{}]}"#,
            "invalid value: integer `-1`, expected u64",
        ),
        (
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":5,"last_seq":1,"sent_at_ms":0,"records":[{}]}"#,
            "first_seq 5 > last_seq 1",
        ),
        (
            r#"{"schema":1,"site":"공장/1","edge_id":"e","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[{}]}"#,
            "site",
        ),
        (
            r##"{"schema":1,"site":"s","edge_id":"#","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[{}]}"##,
            "edge_id",
        ),
        (
            r#"{"schema":4294967296,"site":"s","edge_id":"e","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[]}"#,
            "expected u32",
        ),
        (
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":1,"last_seq":1,"sent_at_ms":1e400,"records":[]}"#,
            "number out of range",
        ),
        (
            r#"{"schema":1,"site":"s","edge_id":"e","first_seq":1,"last_seq":1,"held_from":2,"sent_at_ms":0,"records":[{}]}"#,
            "held_from",
        ),
    ];
    for (payload, needle) in cases {
        let err = decode_lenient(payload.as_bytes()).expect_err(payload);
        assert!(err.to_string().contains(needle), "{payload}: {err}");
    }
    for deep in [
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!(
            r#"{{"schema":1,"site":"s","edge_id":"e","first_seq":1,"last_seq":1,"sent_at_ms":0,"records":[{}{}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    ] {
        check_codec(deep.as_bytes());
        assert!(decode_batch(deep.as_bytes()).is_err(), "deep nesting is no batch");
    }
}

#[test]
fn codec_refuses_non_finite_and_overflowing_values_per_record() {
    let payload = r#"{"schema":1,"site":"s","edge_id":"e","first_seq":1,"last_seq":3,"sent_at_ms":0,"records":[
        {"seq":1,"kind":"peripheral","machine_id":"m","device_id":"d","ts_ms":0,"values":{"v":1e400}},
        {"seq":2,"kind":"peripheral","machine_id":"m","device_id":"d","ts_ms":0,"values":{"v":null}},
        {"seq":3,"kind":"shot","machine_id":"m","device_id":"m","ts_ms":0,"shot_number":-1,"values":{}}]}"#;
    let d = decode_lenient(payload.as_bytes()).expect("the header is fine");
    assert!(d.batch.records.is_empty());
    let reasons: Vec<&str> = d.refused.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().all(|r| r.contains("not a valid record")), "{reasons:?}");
}
