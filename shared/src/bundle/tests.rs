use super::*;

const SEED: [u8; 32] = [7; 32];

fn manifest() -> Manifest {
    Manifest {
        schema: 0,
        model_id: "M1@1".into(),
        version: 1,
        model_key: ModelKey { machine_id: "M1".into(), mold: None },
        kind: "lstm_ae".into(),
        features: vec![
            FeatureSpec { name: "cycle_time".into(), unit: Some("s".into()), fill: 30.0 },
            FeatureSpec { name: "tcu.flow".into(), unit: None, fill: 1.0 },
        ],
        window: 16,
        tolerance_ms: 30_000,
        threshold: 0.5,
        false_alarm_target: None,
        validation_scores: ScoreStats::default(),
        data_snapshot: "abc".into(),
        code_version: "test".into(),
        params: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
        created_at: "2026-11-26T00:00:00Z".into(),
        files: vec![],
    }
}

fn sealed() -> Bundle {
    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx-bytes".to_vec())]);
    Bundle::seal(manifest(), files, &SEED).expect("seal")
}

#[test]
fn a_sealed_bundle_verifies_and_survives_transport() {
    let bundle = sealed();
    let back = Bundle::from_bytes(&bundle.to_bytes()).expect("parse");
    assert_eq!(back, bundle);
    let m = back.verify(&public_key(&SEED)).expect("verify");
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].sha256, sha256_hex(b"onnx-bytes"));
}

#[test]
fn tampering_is_refused_with_a_reason() {
    let key = public_key(&SEED);
    let mut b = sealed();
    b.files.insert(MODEL_FILE.into(), b"evil".to_vec());
    assert!(matches!(b.verify(&key), Err(BundleError::Hash { .. })));

    let mut b = sealed();
    let text = String::from_utf8(b.files[MANIFEST_FILE].clone()).unwrap();
    b.files.insert(MANIFEST_FILE.into(), text.replace("0.5", "9.5").into_bytes());
    assert!(matches!(b.verify(&key), Err(BundleError::Signature(_))));

    let mut b = sealed();
    b.files.insert("extra.bin".into(), vec![1]);
    assert_eq!(b.verify(&key), Err(BundleError::UnlistedFile("extra.bin".into())));

    let other = public_key(&[9; 32]);
    assert!(matches!(sealed().verify(&other), Err(BundleError::Signature(_))));

    let mut b = sealed();
    b.files.remove(MODEL_FILE);
    assert_eq!(b.verify(&key), Err(BundleError::MissingFile(MODEL_FILE.into())));
}

#[test]
fn truncated_or_foreign_bytes_are_refused() {
    let bytes = sealed().to_bytes();
    assert!(Bundle::from_bytes(&bytes[..bytes.len() - 3]).is_err());
    assert!(Bundle::from_bytes(b"PK\x03\x04zip").is_err());
}

#[test]
fn feature_binding_names_what_is_missing() {
    let m = manifest();
    assert!(m.check_features(&["cycle_time".into(), "tcu.flow".into()]).is_ok());
    let err = m.check_features(&["cycle_time".into()]).unwrap_err();
    assert_eq!(err.to_string(), "feature binding: this edge does not compute tcu.flow");
}

#[test]
fn model_keys_round_trip() {
    for label in ["M1", "M1/MOLD-A"] {
        assert_eq!(ModelKey::parse(label).unwrap().label(), label);
    }
    assert!(ModelKey::parse("/x").is_err());
}

#[test]
fn the_join_tolerance_defaults_for_old_bundles_and_is_bounded() {
    let mut json = serde_json::to_value(manifest()).unwrap();
    json.as_object_mut().unwrap().remove("tolerance_ms");
    let old: Manifest = serde_json::from_value(json).unwrap();
    assert_eq!(old.tolerance_ms, crate::features::DEFAULT_TOLERANCE_MS);

    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx-bytes".to_vec())]);
    let negative = Manifest { tolerance_ms: -1, ..manifest() };
    let b = Bundle::seal(negative, files, &SEED).expect("seal");
    let err = b.verify(&public_key(&SEED)).unwrap_err();
    assert!(err.to_string().contains("tolerance_ms -1"), "{err}");
}

#[test]
fn the_false_alarm_target_is_optional_and_a_share() {
    let json = serde_json::to_string(&manifest()).unwrap();
    assert!(!json.contains("false_alarm_target"), "absent when unset: old edges read the same bytes");
    let files = BTreeMap::from([(MODEL_FILE.to_string(), b"onnx-bytes".to_vec())]);
    let set = Manifest { false_alarm_target: Some(0.01), ..manifest() };
    let b = Bundle::seal(set, files.clone(), &SEED).expect("seal");
    assert_eq!(b.verify(&public_key(&SEED)).unwrap().false_alarm_target, Some(0.01));
    for bad in [1.5, -0.1] {
        let m = Manifest { false_alarm_target: Some(bad), ..manifest() };
        let b = Bundle::seal(m, files.clone(), &SEED).expect("seal");
        let err = b.verify(&public_key(&SEED)).unwrap_err();
        assert!(err.to_string().contains("false_alarm_target"), "{err}");
    }
}
