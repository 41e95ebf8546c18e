//! Closing the loop against real Mosquitto and the real binaries: `moldops-cloud rollout`
//! sends signed bundles to a running `moldops-edge` scoring a simulated machine. A good bundle
//! goes downloading → verified → shadow → active and scores shots; tampered bundles (bad
//! signature, wrong feature list, corrupt ONNX, wrong hash) are rejected with a reason while
//! the old model keeps scoring; a candidate that alarms on everything is rolled back; one
//! command rolls back to the previous version; a rollout interrupted by SIGKILL completes.

use crate::common::*;
use moldops_scoring::inference::reference::zscore_onnx;
use moldops_shared::bundle::{Bundle, FeatureSpec, MODEL_FILE, Manifest, ModelKey, public_key};
use moldops_shared::rollout::{ReportedModels, ScoreMessage};
use moldops_sim::features::FEATURE_NAMES;
use moldops_tests::{Mosquitto, Proc, bin, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [9; 32];
const LONG: Duration = Duration::from_secs(180);

/// Every message on the edge's scores and reported topics, in arrival order.
#[derive(Clone, Default)]
struct Watch {
    scores: Arc<Mutex<Vec<ScoreMessage>>>,
    reported: Arc<Mutex<Vec<ReportedModels>>>,
}

impl Watch {
    fn start(port: u16) -> Watch {
        let w = Watch::default();
        let (client, mut conn) = Client::new(MqttOptions::new("e2e-watch", "127.0.0.1", port), 100);
        client.subscribe("moldops/v1/+/+/scores", QoS::AtLeastOnce).expect("subscribe");
        client.subscribe("moldops/v1/+/+/model/reported", QoS::AtLeastOnce).expect("subscribe");
        let out = w.clone();
        std::thread::spawn(move || {
            let _client = client;
            for ev in conn.iter() {
                let Ok(Event::Incoming(Packet::Publish(p))) = ev else { continue };
                if p.topic.ends_with("/scores") {
                    if let Ok(m) = serde_json::from_slice(&p.payload) {
                        out.scores.lock().expect("lock").push(m);
                    }
                } else if let Ok(r) = serde_json::from_slice(&p.payload) {
                    out.reported.lock().expect("lock").push(r);
                }
            }
        });
        w
    }

    /// States reported for `version` of key `m1`, in order, without repeats.
    fn states(&self, version: u32) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.reported.lock().expect("lock").iter() {
            let Some(m) = r.models.get("m1") else { continue };
            if m.target.as_ref().is_some_and(|t| t.version == version) {
                let s = m.state.as_str().to_string();
                if out.last() != Some(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    fn scores_of(&self, version: u32) -> usize {
        self.scores.lock().expect("lock").iter().filter(|s| s.version == version).count()
    }
}

pub fn manifest(version: u32, features: &[&str], window: u32, threshold: f32) -> Manifest {
    let specs = features.iter().map(|n| FeatureSpec { name: n.to_string(), unit: None, fill: 0.0 }).collect();
    let key = ModelKey { machine_id: "m1".into(), mold: None };
    Manifest {
        model_id: format!("m1@{version}"),
        version,
        ..Manifest::new(key, "zscore", specs, window, threshold)
    }
}

/// A z-score bundle on the simulator's first features; `sigma` sets how loud it is.
pub fn bundle(version: u32, sigma: f32, seed: &[u8; 32]) -> Bundle {
    let features = &FEATURE_NAMES[..4];
    let onnx = zscore_onnx(3, &[0.0; 4], &[sigma; 4]);
    let files = BTreeMap::from([(MODEL_FILE.to_string(), onnx)]);
    Bundle::seal(manifest(version, features, 3, 1.0), files, seed).expect("seal")
}

/// Writes [`SEED`] as the registry's signing key file (hex, mode 0600) in `dir`, as `rollout
/// rollback --signing-key` reads it; returns its path.
pub fn signing_key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let key_file = dir.join("signing.key");
    let hex: String = SEED.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&key_file, format!("{hex}\n")).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    key_file
}

pub fn save(dir: &Path, name: &str, b: &Bundle) -> PathBuf {
    let p = dir.join(name);
    b.write_dir(&p).expect("write bundle");
    p
}

fn key_hex() -> String {
    public_key(&SEED).iter().map(|b| format!("{b:02x}")).collect()
}

/// Simulator (one machine) plus an edge config with `[models]`; returns (sim, config path).
pub fn plant(dir: &Path, port: u16, shadow_shots: u64) -> (Proc, PathBuf) {
    let cfg = dir.join("edge.toml");
    let mut sim_cmd = Command::new(bin("moldops-sim"));
    sim_cmd
        .args(["--machines", "1", "--speed", "150", "--seed", "3", "--base-port", "0"])
        .args(["--idle-every", "0", "--mold-change-shots", "0"])
        .arg("--quality-log")
        .arg(dir.join("quality.jsonl"))
        .arg("--write-config")
        .arg(&cfg)
        .args(["--broker-port", &port.to_string(), "--api-listen", "", "--edge-id", "e1", "--site", "t"])
        .arg("--buffer-path")
        .arg(dir.join("edge-buffer"));
    let mut sim = Proc::spawn("simulate", &mut sim_cmd, dir);
    sim.wait_line(READY, |l| l.contains("\"ready\""));
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str(&format!(
        "\n[models]\npublic_key = \"{}\"\nstore = \"models\"\nshadow_shots = {shadow_shots}\nmax_alarm_rate = 0.5\n",
        key_hex()
    ));
    std::fs::write(&cfg, text).expect("write config");
    (sim, cfg)
}

/// Runs `moldops-cloud rollout …`; returns (success, stdout).
pub fn rollout(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("moldops-cloud"))
        .arg("rollout")
        .args(args)
        .args([
            "--broker-host",
            "127.0.0.1",
            "--broker-port",
            &port.to_string(),
            "--site",
            "t",
            "--edges",
            "e1",
        ])
        .output()
        .expect("run moldops-cloud rollout");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn publish(port: u16, bundle: &Path) -> (bool, String) {
    let b = bundle.to_string_lossy().to_string();
    rollout(port, &["publish", "--bundle", &b, "--timeout-s", "120", "--chunk-kib", "1"])
}

#[test]
fn good_bundles_go_live_tampered_ones_are_refused_and_rollback_is_one_command() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let watch = Watch::start(broker.port);
    let (_sim, cfg) = plant(dir, broker.port, 4);
    let edge = start_edge(dir, &cfg);

    // A good bundle: quiet on normal shots.
    let (ok, out) = publish(broker.port, &save(dir, "v1", &bundle(1, 1e6, &SEED)));
    assert!(ok, "v1 rollout failed: {out}\n{}", edge.stderr_tail());
    assert_eq!(watch.states(1), ["downloading", "verified", "shadow", "active"], "{out}");
    assert!(wait_until(LONG, || watch.scores_of(1) >= 3), "v1 scores live shots\n{}", edge.stderr_tail());

    // Tampered bundles: each refused with its reason, v1 keeps scoring.
    let other_key = bundle(2, 1e6, &OTHER_SEED);
    let mut wrong_features = bundle(3, 1e6, &SEED);
    let m = manifest(3, &["no_such_feature"], 3, 1.0);
    wrong_features =
        Bundle::seal(m, BTreeMap::from([(MODEL_FILE.into(), zscore_onnx(3, &[0.0], &[1.0]))]), &SEED)
            .unwrap_or(wrong_features);
    let corrupt = Bundle::seal(
        manifest(4, &FEATURE_NAMES[..4], 3, 1.0),
        BTreeMap::from([(MODEL_FILE.into(), b"this is no onnx graph".to_vec())]),
        &SEED,
    )
    .expect("seal");
    let mut wrong_hash = bundle(5, 1e6, &SEED);
    if let Some(onnx) = wrong_hash.files.get_mut(MODEL_FILE) {
        onnx[10] ^= 0xff;
    }
    let cases = [
        (2, other_key, "signature"),
        (3, wrong_features, "does not compute no_such_feature"),
        (4, corrupt, "does not load"),
        (5, wrong_hash, "hash mismatch"),
    ];
    for (version, b, reason) in cases {
        let before = watch.scores_of(1);
        let (ok, out) = publish(broker.port, &save(dir, &format!("v{version}"), &b));
        assert!(!ok, "v{version} must be refused: {out}");
        assert!(out.contains("rejected") && out.contains(reason), "v{version}: reason {reason:?} in\n{out}");
        assert_eq!(watch.states(version).last().map(String::as_str), Some("rejected"));
        assert!(
            wait_until(LONG, || watch.scores_of(1) > before),
            "v1 keeps scoring after v{version} was refused\n{}",
            edge.stderr_tail()
        );
    }

    // A candidate that alarms on every shot fails its shadow run and is rolled back.
    let (ok, out) = publish(broker.port, &save(dir, "v6", &bundle(6, 1e-3, &SEED)));
    assert!(!ok && out.contains("rolled_back") && out.contains("alarm rate"), "{out}");
    assert_eq!(watch.states(6), ["downloading", "verified", "shadow", "rolled_back"]);

    // v7 replaces v1; one command brings v1 back (from the edge's store, no download).
    let (ok, out) = publish(broker.port, &save(dir, "v7", &bundle(7, 1e5, &SEED)));
    assert!(ok, "{out}");
    assert!(wait_until(LONG, || watch.scores_of(7) >= 2), "v7 scores");
    // The old v1 bundle, published again (a replay), is refused: versions only rise.
    let (ok, out) = publish(broker.port, &save(dir, "v1-again", &bundle(1, 1e6, &SEED)));
    assert!(!ok && out.contains("rejected") && out.contains("older than version 7"), "replayed v1: {out}");
    assert!(wait_until(LONG, || watch.scores_of(7) >= 3), "v7 keeps scoring\n{}", edge.stderr_tail());
    // A rollback needs the registry's signing key, which signs a statement for it.
    let (ok, out) =
        rollout(broker.port, &["rollback", "--key", "m1", "--signing-key", "/nonexistent/signing.key"]);
    assert!(!ok && out.contains("signing key"), "{out}");
    let key_arg = signing_key_file(dir).display().to_string();
    let (ok, out) = rollout(broker.port, &["rollback", "--key", "m1", "--signing-key", &key_arg, "--json"]);
    assert!(ok, "rollback: {out}");
    assert!(out.contains("\"active\""), "{out}");
    let (ok, status) = rollout(broker.port, &["status"]);
    assert!(ok && status.contains("active") && status.contains("v1"), "{status}");
    let n = watch.scores.lock().expect("lock").len();
    assert!(wait_until(LONG, || watch.scores.lock().expect("lock")[n..].iter().any(|s| s.version == 1)));

    // Every shot was scored at most once, whatever model scored it.
    let scores = watch.scores.lock().expect("lock").clone();
    let mut seqs: Vec<u64> = scores.iter().map(|s| s.seq).collect();
    seqs.sort_unstable();
    let n = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "a shot was scored twice");
}

#[test]
fn a_rollout_interrupted_by_sigkill_completes_after_restart() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let watch = Watch::start(broker.port);
    let (_sim, cfg) = plant(dir, broker.port, 12);
    let mut edge = start_edge(dir, &cfg);
    let (ok, out) = publish(broker.port, &save(dir, "v1", &bundle(1, 1e6, &SEED)));
    assert!(ok, "{out}\n{}", edge.stderr_tail());

    // v2 in the background; the edge is killed in the middle of its shadow run.
    let v2 = save(dir, "v2", &bundle(2, 1e5, &SEED));
    let mut cmd = Command::new(bin("moldops-cloud"));
    cmd.args(["rollout", "publish", "--bundle"])
        .arg(&v2)
        .args(["--broker-host", "127.0.0.1", "--broker-port", &broker.port.to_string()])
        .args(["--site", "t", "--edges", "e1", "--timeout-s", "170", "--json"]);
    let mut publisher = Proc::spawn("publish-v2", &mut cmd, dir);
    assert!(wait_until(LONG, || watch.states(2).contains(&"shadow".to_string())), "v2 reached shadow");
    edge.kill9();
    let stored = std::fs::read_to_string(dir.join("models/state.json")).expect("state file");
    assert!(stored.contains("\"shadow\""), "the shadow state was persisted: {stored}");
    let edge = start_edge(dir, &cfg);
    // Rollout work never delays polling: the stored models load after the pollers started.
    let loaded = wait_until(LONG, || edge.stderr_text().contains("active model loaded"));
    assert!(loaded, "the stored v1 loads after the restart\n{}", edge.stderr_tail());
    let log = edge.stderr_text();
    let (started, model) = (log.find("edge started"), log.find("active model loaded"));
    assert!(started.is_some() && started < model, "polling starts before the models load:\n{log}");
    let line = publisher.wait_line(LONG, |l| l.contains("\"model_key\""));
    assert!(line.contains("\"active\""), "v2 completed after the restart: {line}\n{}", edge.stderr_tail());
    assert!(publisher.wait_exit(Duration::from_secs(30)).is_some_and(|s| s.success()));
    assert!(wait_until(LONG, || watch.scores_of(2) >= 2), "v2 scores after the restart");

    // No shot scored twice; versions never go back in seq order.
    let scores = watch.scores.lock().expect("lock").clone();
    let mut by_seq: Vec<(u64, u32)> = scores.iter().map(|s| (s.seq, s.version)).collect();
    by_seq.sort_unstable();
    let n = by_seq.len();
    by_seq.dedup_by_key(|(seq, _)| *seq);
    assert_eq!(by_seq.len(), n, "a shot was scored twice");
    assert!(by_seq.windows(2).all(|w| w[0].1 <= w[1].1), "v1 scored a shot after v2 took over");
}

/// An independent client of the graph contract (Python `onnx.helper`, checked by the ONNX
/// checker) builds a model; the edge's tract backend scores windows with it exactly as
/// onnxruntime does in Python.
#[test]
fn a_model_built_in_python_scores_the_same_at_the_edge() {
    use moldops_scoring::inference::{Backend, Model};
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let windows: Vec<Vec<Vec<f32>>> = (0..5)
        .map(|k| (0..3).map(|w| vec![k as f32 * 1.5 + w as f32, 10.0 - k as f32, 0.25 * w as f32]).collect())
        .collect();
    let wfile = dir.join("windows.json");
    std::fs::write(&wfile, serde_json::to_vec(&windows).expect("json")).expect("write");
    let onnx = dir.join("python.onnx");
    let out = Command::new(moldops_tests::python())
        .arg(moldops_tests::asset("peers/make_model.py"))
        .arg(&onnx)
        .args(["--mu", "1,8,0.5", "--sigma", "2,1,0.5", "--window", "3", "--windows"])
        .arg(&wfile)
        .output()
        .expect("run make_model.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("onnxruntime outputs");
    let features = ["Cycle_Time", "Cushion_Position", "Injection_Time"];
    let bytes = std::fs::read(&onnx).expect("model");
    let mut model =
        Model::load(manifest(1, &features, 3, 1.0), &bytes, &Backend::tract()).expect("tract loads it");
    for (k, w) in windows.iter().enumerate() {
        let flat: Vec<f32> = w.iter().flatten().copied().collect();
        let got = model.score(&flat).expect("score");
        let want = expected["score"][k].as_f64().expect("score") as f32;
        assert!(
            (got.score - want).abs() <= 1e-5 * want.abs().max(1.0),
            "window {k}: {} vs {want}",
            got.score
        );
        for (j, c) in got.contributions.iter().enumerate() {
            let want = expected["contributions"][k][j].as_f64().expect("contribution") as f32;
            assert!((c - want).abs() <= 1e-5 * want.abs().max(1.0), "window {k} feature {j}: {c} vs {want}");
        }
    }
}

/// A desired state naming a bundle of 4 billion chunks, or a corrupt `models/state.json`,
/// must not stop the edge: the first is refused with a reason while the active model keeps
/// scoring; the second is moved aside and the edge starts (and polls) anyway.
#[test]
fn hostile_desired_state_and_corrupt_model_state_do_not_stop_the_edge() {
    let tmp = moldops_tests::test_dir();
    let dir = tmp.path();
    let broker = Mosquitto::start(dir);
    let watch = Watch::start(broker.port);
    let (_sim, cfg) = plant(dir, broker.port, 4);
    let mut edge = start_edge(dir, &cfg);
    let (ok, out) = publish(broker.port, &save(dir, "v1", &bundle(1, 1e6, &SEED)));
    assert!(ok, "{out}\n{}", edge.stderr_tail());

    let hostile = serde_json::json!({"models": [{
        "model_key": {"machine_id": "m1"},
        "bundle": {"model_id": "m1@9", "version": 9, "sha256": "ab".repeat(32),
                   "bytes": 1u64 << 40, "chunks": u32::MAX, "chunk_bytes": 256}
    }]});
    let (client, mut conn) = Client::new(MqttOptions::new("e2e-hostile", "127.0.0.1", broker.port), 10);
    let payload = serde_json::to_vec(&hostile).expect("json");
    client.publish("moldops/v1/t/e1/model/desired", QoS::AtLeastOnce, true, payload).expect("publish");
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            break;
        }
    }
    let refused = || {
        watch.reported.lock().expect("lock").iter().any(|r| {
            r.models
                .get("m1")
                .and_then(|m| m.reason.as_deref())
                .is_some_and(|s| s.contains("desired bundle refused"))
        })
    };
    assert!(wait_until(LONG, refused), "the refusal is reported\n{}", edge.stderr_tail());
    let before = watch.scores_of(1);
    assert!(
        wait_until(LONG, || watch.scores_of(1) >= before + 2),
        "v1 keeps scoring\n{}",
        edge.stderr_tail()
    );
    assert!(edge.wait_exit(Duration::from_millis(10)).is_none(), "the edge is still running");

    edge.kill9();
    let state = dir.join("models/state.json");
    let text = std::fs::read(&state).expect("state");
    std::fs::write(&state, &text[..text.len() / 3]).expect("truncate");
    let mut edge = start_edge(dir, &cfg);
    let aside = || {
        std::fs::read_dir(dir.join("models"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("state.json.corrupt-"))
    };
    assert!(wait_until(LONG, aside), "the corrupt state is kept aside\n{}", edge.stderr_tail());
    let polled = wait_until(LONG, || edge.stderr_tail().contains("edge started"));
    assert!(polled, "the edge starts with a corrupt model state\n{}", edge.stderr_tail());
    assert!(edge.wait_exit(Duration::from_secs(2)).is_none(), "and keeps running");
}
