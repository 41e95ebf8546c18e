//! Fuzz tests of model bundles: the transport form, the signed manifest, model keys and hex keys.

use super::*;
use crate::bundle::{
    self, Bundle, FeatureSpec, MANIFEST_FILE, MODEL_FILE, Manifest, ModelKey, SIGNATURE_FILE,
};
use std::collections::BTreeMap;

const SEED: [u8; 32] = [7; 32];

fn manifest() -> Manifest {
    let key = ModelKey { machine_id: "M1".into(), mold: None };
    let features = vec![
        FeatureSpec { name: "cycle_time".into(), unit: Some("s".into()), fill: 30.0 },
        FeatureSpec { name: "tcu.flow".into(), unit: None, fill: 1.0 },
    ];
    Manifest::new(key, "lstm_ae", features, 16, 0.5)
}

fn sealed() -> Bundle {
    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx-bytes".to_vec())]);
    Bundle::seal(manifest(), files, &SEED).expect("a fresh manifest seals")
}

/// `manifest_bytes` signed with [`SEED`], as a bundle with `files`.
fn signed_bundle(manifest_bytes: Vec<u8>, files: BTreeMap<String, Vec<u8>>) -> Bundle {
    use ed25519_dalek::Signer;
    let signature = ed25519_dalek::SigningKey::from_bytes(&SEED).sign(&manifest_bytes);
    let mut all = files;
    all.insert(SIGNATURE_FILE.into(), hex::encode(signature.to_bytes()).into_bytes());
    all.insert(MANIFEST_FILE.into(), manifest_bytes);
    Bundle { files: all }
}

/// A sealed bundle's transport bytes with a length field, a byte or the end broken.
fn mutated_transport(u: &mut Unstructured<'_>) -> Gen<Vec<u8>> {
    let mut bytes = sealed().to_bytes();
    for _ in 0..u.int_in_range(1..=3)? {
        let at = u.int_in_range(0..=bytes.len())?;
        match u.int_in_range(0..=4)? {
            0 => {
                let field: &[u8] = match u.int_in_range(0..=3)? {
                    0 => &u64::MAX.to_le_bytes(),
                    1 => &u32::MAX.to_le_bytes(),
                    2 => &(1u64 << 40).to_le_bytes(),
                    _ => &[0; 8],
                };
                let end = (at + field.len()).min(bytes.len());
                bytes[at..end].copy_from_slice(&field[..end - at]);
            }
            1 if at < bytes.len() => bytes[at] ^= u.arbitrary::<u8>()?.max(1),
            2 => bytes.truncate(at),
            3 => {
                let more: Vec<u8> = u.arbitrary()?;
                bytes.splice(at..at, more);
            }
            _ => bytes.extend_from_slice(&sealed().to_bytes()[8..]),
        }
    }
    Ok(bytes)
}

#[test]
fn fuzz_bundle_transport_bytes() {
    fuzz("bundle/from_bytes", |u| {
        let bytes = match u.int_in_range(0..=2)? {
            0 => u.arbitrary::<Vec<u8>>()?,
            1 => [b"MOLDBND1".as_slice(), &u.arbitrary::<Vec<u8>>()?].concat(),
            _ => mutated_transport(u)?,
        };
        let verdict = timed("Bundle::from_bytes", || Bundle::from_bytes(&bytes));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &bytes),
            Ok(b) => {
                for name in b.files.keys() {
                    assert!(
                        !name.is_empty() && !name.contains(['/', '\\']) && !name.starts_with('.'),
                        "{name:?}"
                    );
                }
                assert_eq!(Bundle::from_bytes(&b.to_bytes()).expect("a parsed bundle round-trips"), b);
                if let Err(e) = timed("Bundle::verify", || b.verify(&bundle::public_key(&SEED))) {
                    assert_reason(&e, &b.files.keys().collect::<Vec<_>>());
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_bundle_verify_with_a_mutated_signed_manifest() {
    let public = bundle::public_key(&SEED);
    let good = sealed();
    fuzz("bundle/verify", |u| {
        let valid: Json =
            serde_json::from_slice(&good.files[MANIFEST_FILE]).expect("a sealed manifest is JSON");
        let manifest_bytes = mutate_json(u, &valid)?;
        let mut files = BTreeMap::from([(MODEL_FILE.to_string(), good.files[MODEL_FILE].clone())]);
        match u.int_in_range(0..=5)? {
            0 => {
                files.remove(MODEL_FILE);
            }
            1 => {
                files.insert(any_string(u)?, u.arbitrary()?);
            }
            2 => {
                files.insert(MODEL_FILE.into(), u.arbitrary()?);
            }
            _ => {}
        }
        let b = signed_bundle(manifest_bytes, files);
        let _ = b.manifest_unverified();
        let verdict = timed("Bundle::verify", || b.verify(&public));
        note(verdict.is_ok());
        match verdict {
            Err(e) => assert_reason(&e, &String::from_utf8_lossy(&b.files[MANIFEST_FILE])),
            Ok(m) => {
                assert_eq!(m.schema, bundle::MANIFEST_SCHEMA);
                assert!(!m.features.is_empty() && m.window > 0 && m.threshold.is_finite(), "{m:?}");
                assert!((0..=crate::features::MAX_TOLERANCE_MS).contains(&m.tolerance_ms), "{m:?}");
                assert!(m.files.iter().any(|f| f.path == MODEL_FILE));
                for f in &m.files {
                    let data = &b.files[&f.path];
                    assert_eq!((bundle::sha256_hex(data), data.len() as u64), (f.sha256.clone(), f.bytes));
                }
                assert!(b.verify(&bundle::public_key(&[9; 32])).is_err(), "another key must not verify");
                let names: Vec<String> = u.arbitrary()?;
                if let Err(e) = m.check_features(&names) {
                    assert!(e.to_string().contains("does not compute"), "{e}");
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_model_keys_and_hex_keys() {
    fuzz("bundle/keys", |u| {
        let label = any_string(u)?;
        match ModelKey::parse(&label) {
            Err(e) => assert!(e.to_string().contains("bad model key"), "{e}"),
            Ok(key) => assert_eq!(key.label(), label, "a parsed label prints back the same"),
        }
        let text = if u.arbitrary()? {
            any_string(u)?
        } else {
            format!(" {} ", hex::encode(u.arbitrary::<[u8; 32]>()?))
        };
        match bundle::parse_key_hex(&text) {
            Err(e) => assert_reason(&e, &text),
            Ok(key) => {
                assert_eq!(bundle::parse_key_hex(&hex::encode(key)).expect("re-encoded key parses"), key)
            }
        }
        Ok(())
    });
}

#[test]
fn bundle_refuses_huge_declared_lengths_without_allocating() {
    for len in [u64::MAX, u64::from(u32::MAX), 1 << 40] {
        let mut bytes = b"MOLDBND1".to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.push(b'a');
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(b"short");
        let err =
            timed("from_bytes", || Bundle::from_bytes(&bytes)).expect_err("declared length past the end");
        assert!(err.to_string().contains("truncated") || err.to_string().contains("length"), "{err}");
    }
    let mut name_len = b"MOLDBND1".to_vec();
    name_len.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Bundle::from_bytes(&name_len).is_err());
}
