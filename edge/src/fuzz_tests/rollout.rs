//! Fuzz tests of the edge's rollout path: desired-state payloads, bundle chunks and fetched bundles.

use super::*;
use crate::rollout::transfer::{self, Transfer};
use moldops_shared::bundle::{self, Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey};
use moldops_shared::rollout::{
    BundleRef, DEFAULT_MAX_BUNDLE_BYTES, DesiredModels, MAX_CHUNK_BYTES, MAX_CHUNKS, MAX_DESIRED_BYTES,
};
use std::collections::BTreeMap;

/// Most memory a transfer's chunk table may take before its first chunk arrives.
const MAX_SLOT_TABLE_BYTES: u64 = 64 << 20;

/// Bytes `Transfer::new` allocates up front for `r` (one `Option<Vec<u8>>` per chunk).
fn slot_table_bytes(r: &BundleRef) -> u64 {
    u64::from(r.chunks) * std::mem::size_of::<Option<Vec<u8>>>() as u64
}

/// What `Agent::on_message` does with a desired-state payload before any I/O or allocation:
/// bound its size, parse it, check every entry. `None`: the payload is ignored.
fn desired_entries(payload: &[u8], max_bundle_bytes: u64) -> Option<Vec<(BundleRef, Result<(), String>)>> {
    if payload.is_empty() || payload.len() > MAX_DESIRED_BYTES {
        return None;
    }
    let desired: DesiredModels = serde_json::from_slice(payload).ok()?;
    Some(
        desired
            .models
            .into_iter()
            .map(|m| (m.bundle.clone(), m.check(max_bundle_bytes).map_err(|e| e.to_string())))
            .collect(),
    )
}

fn valid_desired_json(u: &mut Unstructured<'_>) -> Gen<serde_json::Value> {
    let bytes = u.int_in_range(1..=DEFAULT_MAX_BUNDLE_BYTES)?;
    let chunk_bytes = u.int_in_range(4096..=MAX_CHUNK_BYTES)?;
    Ok(serde_json::json!({
        "models": [{
            "model_key": {"machine_id": "M1", "mold": "MOLD-A"},
            "bundle": {
                "model_id": "M1/MOLD-A@3",
                "version": 3,
                "sha256": hex::encode(u.arbitrary::<[u8; 32]>()?),
                "bytes": bytes,
                "chunks": bytes.div_ceil(u64::from(chunk_bytes)),
                "chunk_bytes": chunk_bytes,
            }
        }],
        "issued_at_ms": 1_700_000_000_000i64,
    }))
}

/// Breaks one field of a desired-state document with a hostile number or text, or cuts the
/// bundle consistently into tiny chunks (1 to 64 bytes: too many of them for a large bundle).
fn mutate_desired(u: &mut Unstructured<'_>, mut doc: serde_json::Value) -> Gen<Vec<u8>> {
    if u.ratio(1, 4)? {
        let bundle = &mut doc["models"][0]["bundle"];
        let bytes = bundle["bytes"].as_u64().expect("the valid document has bytes");
        let chunk_bytes = u.int_in_range(1..=64u64)?;
        (bundle["chunk_bytes"], bundle["chunks"]) = (chunk_bytes.into(), bytes.div_ceil(chunk_bytes).into());
        return Ok(serde_json::to_vec(&doc).expect("a JSON document serialises"));
    }
    let field = *u.choose(&["bytes", "chunks", "chunk_bytes", "sha256", "version", "model_id"])?;
    let hostile = match u.int_in_range(0..=3)? {
        0 => serde_json::json!(any_u64(u)?),
        1 => serde_json::json!(any_string(u)?),
        2 => serde_json::json!(-1),
        _ => serde_json::json!(u.arbitrary::<u32>()?),
    };
    doc["models"][0]["bundle"][field] = hostile;
    if u.ratio(1, 4)? {
        doc["models"][0]["model_key"]["machine_id"] = serde_json::json!(any_string(u)?);
    }
    let mut text = serde_json::to_string(&doc).expect("a JSON document serialises");
    if u.ratio(1, 5)? {
        truncate(u, &mut text)?;
    }
    Ok(text.into_bytes())
}

#[test]
fn fuzz_desired_state_payload() {
    fuzz("rollout/desired", |u| {
        let payload = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<Vec<u8>>()?,
            1 => serde_json::to_vec(&valid_desired_json(u)?).expect("serialises"),
            _ => {
                let valid = valid_desired_json(u)?;
                mutate_desired(u, valid)?
            }
        };
        let max = if u.ratio(3, 4)? { DEFAULT_MAX_BUNDLE_BYTES } else { any_u64(u)? };
        let Some(entries) = timed("desired state", || desired_entries(&payload, max)) else {
            note(false);
            return Ok(());
        };
        for (r, verdict) in entries {
            note(verdict.is_ok());
            match verdict {
                Err(reason) => assert!(!reason.trim().is_empty(), "refused without a reason: {r:?}"),
                Ok(()) => {
                    // Accepted: few enough chunks that the table `Transfer::new` sizes is small.
                    assert!(r.chunks <= MAX_CHUNKS, "{} chunks accepted: {r:?}", r.chunks);
                    assert!(slot_table_bytes(&r) <= MAX_SLOT_TABLE_BYTES, "{r:?}");
                    let mut t = timed("Transfer::new", || Transfer::new(r.clone()));
                    let index = if u.arbitrary()? { u.arbitrary()? } else { r.chunks - 1 };
                    let data: Vec<u8> = u.arbitrary()?;
                    match t.accept(index, &data) {
                        Err(e) => assert_reason(&e, &(index, data.len())),
                        Ok(()) => assert!(index < r.chunks && data.len() as u64 <= u64::from(r.chunk_bytes)),
                    }
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_bundle_chunks_assemble() {
    fuzz("rollout/chunks", |u| {
        let bytes: Vec<u8> = u.arbitrary()?;
        if bytes.is_empty() {
            return Ok(());
        }
        let chunk_bytes = u.int_in_range(1..=64u32)?;
        let r = BundleRef::describe("M1@1", 1, &bytes, chunk_bytes);
        r.check(DEFAULT_MAX_BUNDLE_BYTES).expect("describe gives a valid reference");
        let mut t = Transfer::new(r.clone());
        let mut order: Vec<u32> = (0..r.chunks).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, u.int_in_range(0..=i)?);
        }
        let chunk = |i: u32| {
            let start = i as usize * chunk_bytes as usize;
            &bytes[start..(start + chunk_bytes as usize).min(bytes.len())]
        };
        for i in order {
            if u.ratio(1, 3)? {
                // Garbage first: a chunk past the end, or the wrong length.
                let bad_index = u.int_in_range(r.chunks..=u32::MAX)?;
                let e = t.accept(bad_index, chunk(i)).expect_err("no such chunk");
                assert_reason(&e, &bad_index);
                let mut wrong = chunk(i).to_vec();
                wrong.push(0);
                assert_reason(&t.accept(i, &wrong).expect_err("a chunk one byte too long"), &i);
            }
            t.accept(i, chunk(i)).expect("a right chunk is taken");
            if u.ratio(1, 4)? {
                t.accept(i, chunk(i)).expect("a duplicate is harmless");
            }
        }
        assert_eq!(t.received(), r.chunks);
        assert_eq!(t.complete().as_deref(), Some(bytes.as_slice()), "chunks reassemble the bundle");
        Ok(())
    });
}

const SEED: [u8; 32] = [7; 32];

fn sealed_bundle() -> Vec<u8> {
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let features = vec![FeatureSpec { name: "Cycle_Time".into(), unit: None, fill: 30.0 }];
    let manifest = Manifest::new(key, "lstm_ae", features, 8, 0.5);
    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx".to_vec())]);
    Bundle::seal(manifest, files, &SEED).expect("a fresh manifest seals").to_bytes()
}

#[test]
fn fuzz_fetched_bundle_check() {
    let good = sealed_bundle();
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let public = bundle::public_key(&SEED);
    let available = vec!["Cycle_Time".to_string()];
    let desired = BundleRef::describe("M1@1", 1, &good, 64);
    transfer::check(&good, &desired, &key, &public, &available).expect("the sealed bundle passes");
    fuzz("rollout/check", |u| {
        let mut bytes = good.clone();
        match u.int_in_range(0..=3)? {
            0 => bytes = u.arbitrary()?,
            1 => {
                let at = u.choose_index(bytes.len())?;
                bytes[at] ^= u.arbitrary::<u8>()?.max(1);
            }
            2 => bytes.truncate(u.int_in_range(0..=bytes.len())?),
            _ => {}
        }
        // Half the time the desired state vouches for the bytes, so the deeper checks run.
        let desired =
            if u.arbitrary()? { BundleRef::describe("M1@1", 1, &bytes, 64) } else { desired.clone() };
        let verdict =
            timed("transfer::check", || transfer::check(&bytes, &desired, &key, &public, &available));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &bytes.len()),
            Ok((_, m)) => assert_eq!((m.model_key, m.version), (key.clone(), desired.version)),
        }
        Ok(())
    });
}

/// Found reviewing `Transfer::new` for `fuzz_desired_state_payload`, fixed: `BundleRef::check`
/// accepted `chunk_bytes = 1`, so a retained desired state naming a bundle of the default
/// 256 MiB limit in 268 435 456 one-byte chunks passed every check, and `Transfer::new`
/// (`edge/src/rollout/transfer.rs`) then allocated `vec![None; chunks]` — 6 GiB — before a
/// single chunk arrived. `check` now refuses more than `MAX_CHUNKS` chunks; the property
/// generates tiny-chunk desired states again. This test computes the size instead of
/// allocating it.
#[test]
fn regression_desired_state_with_one_byte_chunks_allocates_gigabytes() {
    let payload = format!(
        r#"{{"models":[{{"model_key":{{"machine_id":"M1"}},"bundle":{{"model_id":"M1@1","version":1,"sha256":"{}","bytes":{DEFAULT_MAX_BUNDLE_BYTES},"chunks":{DEFAULT_MAX_BUNDLE_BYTES},"chunk_bytes":1}}}}]}}"#,
        "a".repeat(64)
    );
    let entries = desired_entries(payload.as_bytes(), DEFAULT_MAX_BUNDLE_BYTES).expect("the payload parses");
    let (r, verdict) = &entries[0];
    let Err(reason) = verdict else {
        panic!("accepted: Transfer::new would allocate {} bytes up front", slot_table_bytes(r));
    };
    assert!(reason.contains("chunks (at most"), "refused for another reason: {reason}");
}
