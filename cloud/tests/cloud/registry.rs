//! Registry rules: versions enter as candidates; one production per key; promote archives the
//! previous production; re-promoting an archived version rolls back; the rollout's reads
//! return the production bundle, verified; keys are generated 0600 and never inside a checkout.

use moldops_cloud::registry::{Lineage, NewVersion, Registry, Stage, keys};
use moldops_shared::bundle::{Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey, ScoreStats};
use std::collections::BTreeMap;

pub(crate) fn new_version(key: &ModelKey, tag: &str) -> NewVersion {
    let manifest = Manifest {
        schema: 1,
        model_id: String::new(),
        version: 0,
        model_key: key.clone(),
        kind: "lstm_ae".into(),
        features: vec![FeatureSpec { name: "Cycle_Time".into(), unit: None, fill: 60.0 }],
        window: 16,
        tolerance_ms: 30_000,
        threshold: 0.5,
        false_alarm_target: None,
        validation_scores: ScoreStats::default(),
        data_snapshot: "ab".repeat(32),
        code_version: "test".into(),
        params: serde_json::json!({}),
        metrics: serde_json::json!({"roc_auc": 0.9}),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        files: vec![],
    };
    NewVersion {
        manifest,
        files: BTreeMap::from([(MODEL_FILE.to_string(), format!("onnx {tag}").into_bytes())]),
        metrics: serde_json::json!({"roc_auc": 0.9}),
        lineage: Lineage {
            data_snapshot: "ab".repeat(32),
            data_files: vec![],
            params: serde_json::json!({}),
            code_version: "test".into(),
            device: None,
        },
        report: None,
    }
}

fn stages(reg: &Registry, key: &ModelKey) -> Vec<(u32, Stage)> {
    reg.state(key).unwrap().stages.into_iter().collect()
}

#[test]
fn promotion_rules_and_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::open(&tmp.path().join("registry")).unwrap();
    let seed = [7u8; 32];
    let public = moldops_shared::bundle::public_key(&seed);
    let key = ModelKey { machine_id: "M 1".into(), mold: Some("09520 9000R".into()) };
    let other = ModelKey { machine_id: "M 1".into(), mold: None };
    for tag in ["a", "b", "c"] {
        reg.register(new_version(&key, tag), &seed).unwrap();
    }
    assert_eq!(
        reg.register(new_version(&other, "x"), &seed).unwrap().record.version,
        1,
        "versions count per key"
    );
    assert_eq!(reg.keys().unwrap(), vec![other.clone(), key.clone()]);
    use Stage::*;
    assert_eq!(stages(&reg, &key), [(1, Candidate), (2, Candidate), (3, Candidate)]);
    assert!(reg.production(&key).unwrap().is_none());

    reg.promote(&key, 1).unwrap();
    let t = reg.promote(&key, 2).unwrap();
    assert_eq!(t.len(), 2, "the previous production is archived");
    assert_eq!((t[0].version, t[0].to, t[1].version, t[1].to), (1, Archived, 2, Production));
    assert_eq!(stages(&reg, &key), [(1, Archived), (2, Production), (3, Candidate)]);
    assert!(reg.promote(&key, 2).is_err(), "already production");
    assert!(reg.promote(&key, 9).is_err(), "no such version");
    reg.archive(&key, 3).unwrap();
    assert!(reg.archive(&key, 3).is_err(), "already archived");

    // Rollback: the archived version 1 comes back, 2 is archived.
    let t = reg.promote(&key, 1).unwrap();
    assert!(t[1].reason.contains("rollback"));
    assert_eq!(stages(&reg, &key), [(1, Production), (2, Archived), (3, Archived)]);
    assert_eq!(stages(&reg, &key).iter().filter(|(_, s)| *s == Production).count(), 1);
    assert_eq!(stages(&reg, &other), [(1, Candidate)], "other keys untouched");

    // What the rollout reads.
    let p = reg.production(&key).unwrap().unwrap();
    assert_eq!((p.version, p.manifest.model_id.as_str()), (1, "M 1/09520 9000R@1"));
    let bytes = reg.bundle_bytes(&key, p.version).unwrap();
    let bundle = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(bundle.verify(&public).unwrap().version, 1);
    assert_eq!(bundle.files[MODEL_FILE], b"onnx a");
    assert_eq!(Bundle::read_dir(&p.bundle_dir).unwrap(), bundle);
    assert!(bundle.verify(&[1u8; 32]).is_err(), "another key does not verify it");

    // Archiving production leaves the key without one; history keeps every transition.
    reg.archive(&key, 1).unwrap();
    assert!(reg.production(&key).unwrap().is_none());
    assert_eq!(reg.state(&key).unwrap().history.len(), 3 + 1 + 2 + 1 + 2 + 1);
    // Reopening reads the same state.
    let again = Registry::open(reg.root()).unwrap();
    assert_eq!(stages(&again, &key), [(1, Archived), (2, Archived), (3, Archived)]);
}

#[test]
fn a_stale_lock_of_a_dead_process_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::open(tmp.path()).unwrap();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    reg.register(new_version(&key, "a"), &[3u8; 32]).unwrap();
    let lock = tmp.path().join("m1/all/.lock");
    assert!(!lock.exists(), "released after use");
    std::fs::write(&lock, "4000000000").unwrap(); // no such pid
    reg.promote(&key, 1).unwrap();
    assert!(!lock.exists());
}

#[test]
fn keygen_writes_a_private_file_and_refuses_checkouts_and_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("k/signing.key");
    let public = keys::keygen(&path, false).unwrap();
    let seed = keys::load_signing_key(&path).unwrap();
    assert_eq!(hex::encode(moldops_shared::bundle::public_key(&seed)), public);
    assert_eq!(std::fs::read_to_string(keys::public_path(&path)).unwrap().trim(), public);
    assert!(keys::keygen(&path, false).is_err(), "no silent overwrite");
    assert_ne!(keys::keygen(&path, true).unwrap(), public, "--force makes a new key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let err = keys::keygen(&repo.join("secrets/signing.key"), false).unwrap_err();
    assert!(err.to_string().contains("git checkout"), "{err}");
}
