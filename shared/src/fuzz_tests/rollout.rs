//! Fuzz tests of the rollout messages: desired state, bundle references, reported state and scores.

use super::*;
use crate::bundle::{self, ModelKey};
use crate::rollout::{
    BadDesired, BundleRef, DEFAULT_MAX_BUNDLE_BYTES, DesiredModel, DesiredModels, MAX_CHUNK_BYTES,
    MAX_CHUNKS, ReportedModel, ReportedModels, RolloutState, ScoreMessage,
};
use std::collections::BTreeMap;

fn valid_key(u: &mut Unstructured<'_>) -> Gen<ModelKey> {
    Ok(ModelKey {
        machine_id: valid_name(u)?,
        mold: if u.arbitrary()? { Some(valid_name(u)?) } else { None },
    })
}

/// A bundle reference that [`BundleRef::check`] accepts under `DEFAULT_MAX_BUNDLE_BYTES`.
fn valid_ref(u: &mut Unstructured<'_>) -> Gen<BundleRef> {
    let bytes = u.int_in_range(1..=DEFAULT_MAX_BUNDLE_BYTES)?;
    let chunk_bytes = u.int_in_range(4096..=MAX_CHUNK_BYTES)?;
    let sha: [u8; 32] = u.arbitrary()?;
    Ok(BundleRef {
        model_id: valid_name(u)?,
        version: u.arbitrary()?,
        sha256: hex::encode(sha),
        bytes,
        chunks: u32::try_from(bytes.div_ceil(u64::from(chunk_bytes))).expect("at most 64 Ki chunks"),
        chunk_bytes,
    })
}

fn hostile_ref(u: &mut Unstructured<'_>) -> Gen<BundleRef> {
    let mut r = valid_ref(u)?;
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=6)? {
            0 => r.model_id = any_string(u)?,
            1 => r.sha256 = if u.arbitrary()? { any_string(u)? } else { r.sha256.to_uppercase() },
            2 => r.bytes = any_u64(u)?,
            3 => r.chunks = any_u32(u)?,
            4 => r.chunk_bytes = any_u32(u)?,
            5 => {
                // Cut consistently into tiny chunks: too many of them for a large bundle.
                r.chunk_bytes = u.int_in_range(1..=64)?;
                r.chunks = u32::try_from(r.bytes.div_ceil(u64::from(r.chunk_bytes))).unwrap_or(u32::MAX);
            }
            _ => r.version = any_u32(u)?,
        }
    }
    Ok(r)
}

fn valid_desired(u: &mut Unstructured<'_>) -> Gen<DesiredModels> {
    let mut d = DesiredModels { models: Vec::new(), issued_at_ms: any_i64(u)? };
    for _ in 0..u.int_in_range(0..=3)? {
        d.set(DesiredModel::new(valid_key(u)?, valid_ref(u)?));
    }
    Ok(d)
}

/// What the edge does with one desired entry before it allocates anything: `check` refuses
/// with a reason (too many chunks among them), or the entry is bounded, well formed and
/// survives a JSON round trip.
fn check_desired_model(m: &DesiredModel, max: u64) {
    let verdict = timed("DesiredModel::check", || m.check(max));
    note(verdict.is_ok());
    match verdict {
        Err(e) => {
            assert_reason(&e, m);
            let b = &m.bundle;
            if let BadDesired::TooManyChunks(n) = &e {
                assert!(*n == b.chunks && *n > MAX_CHUNKS, "{e} for {b:?}");
            }
        }
        Ok(()) => {
            let b = &m.bundle;
            assert!(b.sha256.len() == 64 && b.sha256.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
            assert!((1..=max).contains(&b.bytes), "{b:?}");
            assert!((1..=MAX_CHUNK_BYTES).contains(&b.chunk_bytes), "{b:?}");
            assert_eq!(u64::from(b.chunks), b.bytes.div_ceil(u64::from(b.chunk_bytes)));
            // The edge sizes its chunk table from `chunks` before any chunk arrives.
            assert!(b.chunks <= MAX_CHUNKS, "{} chunks accepted: {b:?}", b.chunks);
            let json = serde_json::to_vec(m).expect("a desired model serialises");
            let back: DesiredModel =
                serde_json::from_slice(&json).expect("an accepted desired model parses back");
            assert_eq!(&back, m);
            back.check(max).expect("a round-tripped desired model is still valid");
        }
    }
}

#[test]
fn fuzz_desired_state() {
    fuzz("rollout/desired", |u| {
        let valid = valid_desired(u)?;
        for m in &valid.models {
            m.check(DEFAULT_MAX_BUNDLE_BYTES).expect("a valid desired model passes check");
        }
        let payload = match u.int_in_range(0..=3)? {
            0 => u.arbitrary::<Vec<u8>>()?,
            1 => json_soup(
                u,
                &[
                    "models",
                    "model_key",
                    "machine_id",
                    "mold",
                    "bundle",
                    "sha256",
                    "bytes",
                    "chunks",
                    "chunk_bytes",
                    "version",
                    "model_id",
                ],
            )?,
            2 => serde_json::to_vec(&DesiredModels {
                models: vec![DesiredModel::new(valid_key(u)?, hostile_ref(u)?)],
                issued_at_ms: 0,
            })
            .expect("serialises"),
            _ => mutate_json(u, &to_json(&valid))?,
        };
        let max = if u.arbitrary()? { DEFAULT_MAX_BUNDLE_BYTES } else { any_u64(u)? };
        match timed("parse desired", || serde_json::from_slice::<DesiredModels>(&payload)) {
            Err(e) => assert_reason(&e, &String::from_utf8_lossy(&payload)),
            Ok(d) => d.models.iter().for_each(|m| check_desired_model(m, max)),
        }
        let mut key = valid_key(u)?;
        match u.int_in_range(0..=2)? {
            0 => key.machine_id = any_string(u)?,
            1 => key.mold = Some(any_string(u)?),
            _ => {}
        }
        check_desired_model(&DesiredModel::new(key, hostile_ref(u)?), max);
        Ok(())
    });
}

#[test]
fn fuzz_bundle_ref_describe_is_accepted() {
    fuzz("rollout/describe", |u| {
        // Sometimes a bundle big enough that 1-byte chunks are more than `MAX_CHUNKS`.
        let bytes: Vec<u8> =
            if u.ratio(1, 8)? { vec![7; u.int_in_range(60_000..=140_000)?] } else { u.arbitrary()? };
        let chunk = if u.arbitrary()? { any_u32(u)? } else { u.int_in_range(1..=64)? };
        let r = BundleRef::describe(&valid_name(u)?, u.arbitrary()?, &bytes, chunk);
        let verdict = r.check(bytes.len() as u64);
        if r.chunks > MAX_CHUNKS && r.chunk_bytes <= MAX_CHUNK_BYTES {
            assert_eq!(verdict, Err(BadDesired::TooManyChunks(r.chunks)), "{r:?}");
        } else if bytes.is_empty() || chunk > MAX_CHUNK_BYTES {
            assert_reason(&verdict.expect_err("an empty bundle or a chunk over the limit is refused"), &r);
        } else {
            verdict.expect("describe yields a reference check accepts");
            assert_eq!(r.sha256, bundle::sha256_hex(&bytes));
        }
        Ok(())
    });
}

#[test]
fn desired_state_with_huge_counts_is_refused_before_allocating() {
    let sha = "0".repeat(64);
    let cases = [
        (u64::MAX, u32::MAX, 1u32),
        (DEFAULT_MAX_BUNDLE_BYTES + 1, 1, MAX_CHUNK_BYTES),
        (1000, u32::MAX, 256),
        (1000, 4, 0),
        (1000, 4, u32::MAX),
        (DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_BUNDLE_BYTES as u32, 1),
    ];
    for (bytes, chunks, chunk_bytes) in cases {
        let r =
            BundleRef { model_id: "m@1".into(), version: 1, sha256: sha.clone(), bytes, chunks, chunk_bytes };
        let err = timed("check", || r.check(DEFAULT_MAX_BUNDLE_BYTES)).expect_err("refused");
        assert!(!err.to_string().is_empty());
    }
}

fn valid_reported(u: &mut Unstructured<'_>) -> Gen<ReportedModels> {
    let mut models = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let key = valid_key(u)?;
        let state = *u.choose(&[
            RolloutState::Downloading,
            RolloutState::Verified,
            RolloutState::Shadow,
            RolloutState::Active,
            RolloutState::Rejected,
            RolloutState::RolledBack,
        ])?;
        let model = ReportedModel {
            model_key: key.clone(),
            state,
            target: Some(valid_ref(u)?),
            active: if u.arbitrary()? { Some(valid_ref(u)?) } else { None },
            previous: None,
            reason: if state.is_final() { Some(any_string(u)?) } else { None },
            shadow: if u.arbitrary()? { Some((any_u64(u)?, any_u64(u)?)) } else { None },
            newest: any_u32(u)?,
            desired_at_ms: any_i64(u)?,
            ts_ms: any_i64(u)?,
        };
        models.insert(key.label(), model);
    }
    Ok(ReportedModels { site: valid_name(u)?, edge_id: valid_name(u)?, models, ts_ms: any_i64(u)? })
}

/// Parses `payload` as `T`; anything accepted must serialise and parse back unchanged.
fn check_json_round_trip<T>(payload: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let verdict = timed("parse", || serde_json::from_slice::<T>(payload));
    note(verdict.is_ok());
    match verdict {
        Err(e) => assert_reason(&e, &String::from_utf8_lossy(payload)),
        Ok(v) => {
            let json = serde_json::to_vec(&v).expect("an accepted value serialises");
            let back: T = serde_json::from_slice(&json).expect("an accepted value parses back");
            assert_eq!(back, v);
        }
    }
}

#[test]
fn fuzz_reported_state_and_scores() {
    fuzz("rollout/reported", |u| {
        let reported = valid_reported(u)?;
        check_json_round_trip::<ReportedModels>(&mutate_json(u, &to_json(&reported))?);
        let score = ScoreMessage {
            edge_id: valid_name(u)?,
            machine_id: valid_name(u)?,
            mold: None,
            shot_number: Some(any_u64(u)?),
            seq: any_u64(u)?,
            ts_ms: any_i64(u)?,
            model_key: valid_name(u)?,
            model_id: valid_name(u)?,
            version: any_u32(u)?,
            bundle_sha256: "0".repeat(64),
            score: Some(u.arbitrary::<f32>()?).filter(|s| s.is_finite()).unwrap_or(0.0),
            threshold: 0.5,
            alarm: u.arbitrary()?,
            contributions: vec![(valid_name(u)?, 0.25)],
        };
        check_json_round_trip::<ScoreMessage>(&mutate_json(u, &to_json(&score))?);
        check_json_round_trip::<ReportedModels>(&u.arbitrary::<Vec<u8>>()?);
        Ok(())
    });
}
