//! Which model keys need a model trained now, by three rules over what the lake, the registry,
//! the drift trigger and the labels say ([`super::sources`]): a (machine, mould) with at least
//! `min_shots` shots and no version in the registry is new and due; a key whose model drifted
//! (the `drift --trigger` file) or whose labels show it clearly below its precision or recall
//! target is due again unless a newer version exists. The plan is what `train --keys-from`
//! reads.

use crate::drift::TriggerKey;
use crate::labels::KeyEvidence;
use anyhow::{Context, Result};
use moldops_shared::bundle::ModelKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Why a key is in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// A (machine, mould) with enough shots and no model in the registry.
    NewKey {
        /// Its shots in the lake.
        shots: u64,
    },
    /// A key whose judge drifted (`moldops-cloud drift`) and has no version built since.
    Drift {
        /// The model (or baseline) that drifted.
        model_id: String,
        /// End of its latest drifted period (UTC ms).
        period_end_ms: i64,
        /// What drifted, in words.
        reasons: Vec<String>,
    },
    /// A key whose newest version's labels put precision or recall clearly (its 95 % upper
    /// bound) below the target.
    Labels {
        /// The model the labels judged.
        model_id: String,
        /// Its labelled shots.
        labelled: u64,
        /// Upper bounds of its precision and recall (`None`: undefined so far).
        precision_high: Option<f64>,
        /// See `precision_high`.
        recall_high: Option<f64>,
    },
    /// A key whose newest version was refused — by the promotion gate (the key has no
    /// production model), or by its edges' shadow or canary verdict (rolled back: production
    /// in the registry, but no edge runs it) — at least the retry delay ago: trained again on
    /// the shots gathered since.
    Retry {
        /// The refused candidate.
        model_id: String,
        /// The key's shots in the lake now.
        shots: u64,
    },
}

/// One key to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The model key (`M1/MOLD-A`).
    pub key: String,
    /// Why.
    #[serde(flatten)]
    pub reason: Reason,
}

/// The keys to train now, and the keys seen that are not due (with their shots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Shots a new key needs before a model is trained for it.
    pub min_shots: u64,
    /// Keys due for training.
    pub train: Vec<PlanEntry>,
    /// New keys still gathering shots: key → shots so far.
    pub waiting: BTreeMap<String, u64>,
}

impl Plan {
    /// The model keys due, parsed.
    pub fn keys(&self) -> Result<Vec<ModelKey>> {
        self.train
            .iter()
            .map(|e| ModelKey::parse(&e.key).with_context(|| format!("plan key {:?}", e.key)))
            .collect()
    }

    /// Reads a plan written by [`Plan::write`] (bounded: a plan lists keys, not data).
    pub fn read(path: &Path) -> Result<Plan> {
        const MAX_BYTES: u64 = 16 << 20;
        let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        anyhow::ensure!(
            len <= MAX_BYTES,
            "{} is {len} bytes (a plan is at most {MAX_BYTES})",
            path.display()
        );
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a lifecycle plan", path.display()))
    }

    /// Writes the plan to `path` when it has keys to train, and removes `path` when it has none,
    /// so the file exists exactly while there is work (a pipeline task's `when_exists`).
    pub fn write(&self, path: &Path) -> Result<()> {
        if self.train.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        moldops_common::fs::write_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

/// What the registry holds of a key with versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Its newest version number.
    pub newest: u32,
    /// When the newest version was built (UTC ms; `i64::MIN` when its time does not read).
    pub built_ms: i64,
    /// The key has no production version that runs (none, or one its edges rolled back) and
    /// its newest version was refused, by the gate or by the edges.
    pub refused: bool,
    /// Versions in a row, newest first, that the gate refused or an edge rolled back: after
    /// [`MAX_TRIES`] the key waits for a person (or for something to change in the gate's
    /// settings or the plant).
    pub refusals: u32,
}

/// Refused candidates in a row after which no rule retrains a key on its own: a mould whose
/// data cannot pass the gate must not add a candidate every hour.
pub const MAX_TRIES: u32 = 3;

/// The registry's keys with versions.
pub type Registered = BTreeMap<ModelKey, Versions>;

/// When labels call for retraining: a key's newest version with at least `min_labelled`
/// labelled shots whose precision (or recall) upper bound is below `min_precision` (or
/// `min_recall`); a target of 0 is off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelTargets {
    /// Labelled shots before the labels are heard.
    pub min_labelled: u64,
    /// Precision target.
    pub min_precision: f64,
    /// Recall target.
    pub min_recall: f64,
}

impl LabelTargets {
    /// Targets that never call for retraining.
    pub const OFF: LabelTargets =
        LabelTargets { min_labelled: u64::MAX, min_precision: 0.0, min_recall: 0.0 };
}

/// Everything the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Shots per (machine, mould) in the lake.
    pub shots: &'a BTreeMap<ModelKey, u64>,
    /// What the registry holds.
    pub registered: &'a Registered,
    /// Keys whose judge drifted.
    pub drifted: &'a [TriggerKey],
    /// What the labels say per key.
    pub labels: &'a [KeyEvidence],
    /// When labels call for retraining.
    pub targets: LabelTargets,
    /// Shots a new key needs.
    pub min_shots: u64,
    /// Now (UTC ms), and how long after a refused candidate was built its key is tried again.
    pub now_ms: i64,
    /// See `now_ms`.
    pub retry_after_ms: i64,
}

/// A model id's version (`M1/A@3` → 3); `None` for a cold-start baseline (`…@learning`,
/// `…@baseline`) or anything else.
fn model_version(model_id: &str) -> Option<u32> {
    model_id.rsplit_once('@').and_then(|(_, v)| v.parse::<u32>().ok()).filter(|v| *v >= 1)
}

impl Plan {
    fn due(&mut self, key: &str, reason: Reason) {
        if !self.train.iter().any(|e| e.key == key) {
            self.train.push(PlanEntry { key: key.to_string(), reason });
        }
    }
}

/// The plan: new keys and refused ones due a retry first, then drifted keys, then keys the
/// labels fault.
pub fn plan_from(inputs: &Inputs<'_>) -> Plan {
    let mut plan = Plan { min_shots: inputs.min_shots, train: Vec::new(), waiting: BTreeMap::new() };
    for (key, &n) in inputs.shots {
        if let Some(v) = inputs.registered.get(key) {
            let waited = inputs.now_ms.saturating_sub(v.built_ms) >= inputs.retry_after_ms;
            if v.refused && v.refusals < MAX_TRIES && waited && n >= inputs.min_shots {
                plan.due(
                    &key.label(),
                    Reason::Retry { model_id: format!("{}@{}", key.label(), v.newest), shots: n },
                );
            }
            continue;
        }
        if n >= inputs.min_shots {
            plan.due(&key.label(), Reason::NewKey { shots: n });
        } else {
            plan.waiting.insert(key.label(), n);
        }
    }
    for d in inputs.drifted {
        let Ok(key) = ModelKey::parse(&d.key) else {
            tracing::warn!(key = d.key, "drift trigger names no valid model key; skipped");
            continue;
        };
        // Only a registry model's drift counts: a cold-start baseline is on its way out, and a
        // key without a model is the new-key rule's. A version built after the drifted period
        // already answers it (the gate decides whether it replaces production).
        let answered = inputs
            .registered
            .get(&key)
            .is_none_or(|v| v.built_ms > d.period_end_ms || v.refusals >= MAX_TRIES);
        if model_version(&d.model_id).is_some() && !answered {
            let reason = Reason::Drift {
                model_id: d.model_id.clone(),
                period_end_ms: d.period_end_ms,
                reasons: d.reasons.clone(),
            };
            plan.due(&d.key, reason);
        }
    }
    let t = inputs.targets;
    for e in inputs.labels {
        let Ok(key) = ModelKey::parse(&e.model_key) else { continue };
        // The labels judge the newest version that scored; a newer one answers them.
        let current = inputs
            .registered
            .get(&key)
            .is_some_and(|v| v.newest == e.model_version && v.refusals < MAX_TRIES);
        let faulted = (t.min_precision > 0.0 && e.precision_below(t.min_precision))
            || (t.min_recall > 0.0 && e.recall_below(t.min_recall));
        if e.model_version >= 1 && current && e.labelled >= t.min_labelled && faulted {
            let reason = Reason::Labels {
                model_id: format!("{}@{}", e.model_key, e.model_version),
                labelled: e.labelled,
                precision_high: e.quality.precision.high,
                recall_high: e.quality.recall.high,
            };
            plan.due(&e.model_key, reason);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::metrics::{Quality, Rate};

    fn key(label: &str) -> ModelKey {
        ModelKey::parse(label).expect("key")
    }

    fn at(newest: u32, built_ms: i64) -> Versions {
        Versions { newest, built_ms, refused: false, refusals: 0 }
    }

    fn inputs<'a>(
        shots: &'a BTreeMap<ModelKey, u64>,
        registered: &'a Registered,
        drifted: &'a [TriggerKey],
        labels: &'a [KeyEvidence],
    ) -> Inputs<'a> {
        let targets = LabelTargets { min_labelled: 50, min_precision: 0.2, min_recall: 0.5 };
        Inputs {
            shots,
            registered,
            drifted,
            labels,
            targets,
            min_shots: 300,
            now_ms: 10_000_000,
            retry_after_ms: 3_600_000,
        }
    }

    #[test]
    fn a_new_mould_with_enough_shots_is_due_and_a_known_or_young_one_is_not() {
        let shots = BTreeMap::from([(key("M1/A"), 900), (key("M1/B"), 450), (key("M1/C"), 120)]);
        let registered = Registered::from([(key("M1/A"), at(1, 0)), (key("M1"), at(1, 0))]);
        let p = plan_from(&inputs(&shots, &registered, &[], &[]));
        assert_eq!(p.train, vec![PlanEntry { key: "M1/B".into(), reason: Reason::NewKey { shots: 450 } }]);
        assert_eq!(p.waiting, BTreeMap::from([("M1/C".to_string(), 120)]));
        assert_eq!(p.keys().expect("keys"), vec![key("M1/B")]);
    }

    #[test]
    fn a_key_whose_candidate_the_gate_refused_is_tried_again_after_the_delay() {
        let refused = |built_ms, refusals| Versions { newest: refusals, built_ms, refused: true, refusals };
        let shots =
            BTreeMap::from([(key("M1/A"), 900), (key("M1/B"), 900), (key("M1/C"), 200), (key("M1/D"), 900)]);
        let registered = Registered::from([
            (key("M1/A"), refused(1_000_000, 1)),         // 2.5 h ago: due
            (key("M1/B"), refused(9_000_000, 1)),         // 17 min ago: waits
            (key("M1/C"), refused(1_000_000, 1)),         // too few shots
            (key("M1/D"), refused(1_000_000, MAX_TRIES)), // refused too often: waits for a person
        ]);
        let p = plan_from(&inputs(&shots, &registered, &[], &[]));
        assert_eq!(
            p.train,
            vec![PlanEntry {
                key: "M1/A".into(),
                reason: Reason::Retry { model_id: "M1/A@1".into(), shots: 900 }
            }]
        );
        let now = Inputs { retry_after_ms: 0, ..inputs(&shots, &registered, &[], &[]) };
        assert_eq!(plan_from(&now).keys().expect("keys"), vec![key("M1/A"), key("M1/B")]);
    }

    #[test]
    fn the_trigger_file_exists_exactly_while_there_is_work() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("plan.json");
        let (none, registered) = (BTreeMap::new(), Registered::new());
        let due = plan_from(&inputs(&BTreeMap::from([(key("M2/X"), 500)]), &registered, &[], &[]));
        due.write(&path).expect("write");
        assert_eq!(Plan::read(&path).expect("read"), due);
        plan_from(&inputs(&none, &registered, &[], &[])).write(&path).expect("write");
        assert!(!path.exists(), "no work: no trigger");
        plan_from(&inputs(&none, &registered, &[], &[])).write(&path).expect("an absent file is fine");
        std::fs::write(&path, b"{not json").expect("write");
        assert!(Plan::read(&path).is_err(), "a damaged plan is refused with the reason");
    }

    #[test]
    fn a_drifted_model_is_retrained_once_and_a_drifted_baseline_waits_for_its_shots() {
        let trigger = |k: &str, end: i64| TriggerKey {
            key: k.into(),
            model_id: format!("{k}@1"),
            period_end_ms: end,
            reasons: vec!["f0 PSI 0.61".into()],
        };
        let registered = Registered::from([
            (key("M1/A"), at(1, 1_000)),
            (key("M1/B"), at(2, 9_000)),
            (key("M1/D"), at(1, 1_000)),
        ]);
        let baseline = TriggerKey { model_id: "M1/D@baseline".into(), ..trigger("M1/D", 5_000) };
        let drifted = [
            trigger("M1/A", 5_000),
            trigger("M1/A", 6_000),
            trigger("M1/B", 5_000),
            trigger("M1/C", 5_000),
            trigger("M1/", 1),
            baseline,
        ];
        let shots = BTreeMap::from([(key("M1/C"), 100)]);
        let p = plan_from(&inputs(&shots, &registered, &drifted, &[]));
        // A: built before the drift, due (once); B: a version built since answers it; C: no
        // model yet, so the new-key rule (still short of shots) decides; a broken key is
        // skipped, and so is a cold-start baseline's drift (D).
        assert_eq!(p.keys().expect("keys"), vec![key("M1/A")]);
        assert!(
            matches!(&p.train[0].reason, Reason::Drift { period_end_ms: 5_000, reasons, .. } if reasons.len() == 1)
        );
        assert_eq!(p.waiting.get("M1/C"), Some(&100));
    }

    #[test]
    fn labels_clearly_below_a_target_retrain_the_current_version_only() {
        let evidence = |k: &str, version: u32, labelled: u64, precision: f64, recall: f64| KeyEvidence {
            model_key: k.into(),
            model_version: version,
            scored: 1_000,
            alarms: 40,
            labelled,
            blind_labelled: labelled,
            counts: Default::default(),
            recall_counts: Default::default(),
            clusters: 8,
            quality: Quality {
                precision: Rate { value: Some(precision - 0.05), low: Some(0.0), high: Some(precision) },
                recall: Rate { value: Some(recall - 0.05), low: Some(0.0), high: Some(recall) },
            },
        };
        let registered = Registered::from([
            (key("M1/A"), at(3, 0)),
            (key("M1/B"), at(2, 0)),
            (key("M1/C"), at(4, 0)),
            (key("M1/D"), at(1, 0)),
            (key("M1/E"), at(1, 0)),
        ]);
        let labels = [
            evidence("M1/A", 3, 200, 0.9, 0.3),  // misses defects, clearly: due
            evidence("M1/B", 2, 200, 0.1, 0.9),  // its alarms are mostly wrong: due
            evidence("M1/C", 3, 200, 0.1, 0.1),  // version 4 is newer: answered
            evidence("M1/D", 1, 20, 0.1, 0.1),   // too few labels to be heard
            evidence("M1/E", 1, 200, 0.25, 0.6), // upper bounds reach the targets: not clearly below
            evidence("M1/F", 0, 200, 0.0, 0.0),  // a cold-start baseline: not a model to retrain
        ];
        let none = BTreeMap::new();
        let p = plan_from(&inputs(&none, &registered, &[], &labels));
        assert_eq!(p.keys().expect("keys"), vec![key("M1/A"), key("M1/B")]);
        assert!(
            matches!(&p.train[0].reason, Reason::Labels { labelled: 200, recall_high: Some(r), .. } if *r == 0.3)
        );
        let off = Inputs { targets: LabelTargets::OFF, ..inputs(&none, &registered, &[], &labels) };
        assert!(plan_from(&off).train.is_empty(), "targets off: labels call for nothing");
    }
}
