//! What the lifecycle plan is made from: shots per (machine, mould) in the lake's `raw_data`,
//! the registry's keys and newest versions, the drift trigger file and the labels' evidence per
//! key ([`crate::labels::evidence`]); [`plan`] reads them all and applies
//! [`super::plan::plan_from`].

use super::plan::{Inputs, LabelTargets, Plan, Registered, Versions, plan_from};
use crate::drift::{Trigger, TriggerKey};
use crate::lake;
use crate::registry::Registry;
use crate::registry::gate::Outcome;
use anyhow::{Context, Result};
use moldops_shared::bundle::ModelKey;
use polars::prelude::{DataFrame, DataType, UnionArgs, col, concat, len};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Shots per (machine, mould) in the lake's `raw_data` (shots without a mould are not counted:
/// they have no mould key).
pub fn shots_per_mould(lake_dir: &Path) -> Result<BTreeMap<ModelKey, u64>> {
    let mut out = BTreeMap::new();
    // Only the two key columns are read (the lake's shots do not fit in memory), from a fresh
    // listing when a compaction replaced a file meanwhile.
    let count = || -> Result<Option<DataFrame>> {
        let files = lake::list_parts(lake_dir, lake::RAW_DATA)?;
        if files.is_empty() {
            return Ok(None);
        }
        let key = [col("machine_id"), col("mold").cast(DataType::String)];
        let scans = files
            .iter()
            .map(|p| lake::scan_part(p, None).map(|lf| lf.select(key.clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(
            concat(scans, UnionArgs::default())?
                .filter(col("mold").is_not_null())
                .group_by([col("machine_id"), col("mold")])
                .agg([len().alias("shots")])
                .collect()?,
        ))
    };
    let Some(counts) = lake::retry_vanished(count)? else { return Ok(out) };
    let machines = counts.column("machine_id")?.str()?.clone();
    let molds = counts.column("mold")?.str()?.clone();
    let shots = counts.column("shots")?.cast(&DataType::UInt64)?;
    let shots = shots.u64()?;
    for i in 0..counts.height() {
        if let (Some(m), Some(mold), Some(n)) = (machines.get(i), molds.get(i), shots.get(i)) {
            out.insert(ModelKey { machine_id: m.to_string(), mold: Some(mold.to_string()) }, n);
        }
    }
    Ok(out)
}

/// What the registry holds: each key with versions, its newest version and when it was built,
/// and whether its newest versions were refused — by the gate, or (`rolled_back`: key label
/// and version) by an edge's shadow or canary verdict.
pub fn registered(registry: &Registry, rolled_back: &BTreeSet<(String, u32)>) -> Result<Registered> {
    let mut out = Registered::new();
    for key in registry.keys()? {
        let mut versions = registry.versions(&key)?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.record.version));
        let label = key.label();
        let by_edge =
            |v: &crate::registry::VersionInfo| rolled_back.contains(&(label.clone(), v.record.version));
        let is_refused = |v: &crate::registry::VersionInfo| {
            v.gate.as_ref().is_some_and(|g| g.outcome == Outcome::Refused) || by_edge(v)
        };
        let refusals = versions.iter().take_while(|v| is_refused(v)).count();
        let Some(newest) = versions.first() else { continue };
        let built_ms = chrono::DateTime::parse_from_rfc3339(&newest.record.created_at)
            .map_or(i64::MIN, |t| t.timestamp_millis());
        // A production version its edges rolled back runs nowhere: the key counts as having none.
        let live_production =
            versions.iter().any(|v| v.stage == crate::registry::Stage::Production && !by_edge(v));
        out.insert(
            key,
            Versions {
                newest: newest.record.version,
                built_ms,
                refused: !live_production && refusals > 0,
                refusals: u32::try_from(refusals).unwrap_or(u32::MAX),
            },
        );
    }
    Ok(out)
}

/// Every (model key, version) an edge rolled back in its shadow run or canary, from the lake's
/// `edge_events` (`rollout` rows in state `rolled_back`).
pub fn rolled_back_in_lake(lake_dir: &Path) -> Result<BTreeSet<(String, u32)>> {
    let files = crate::lake::list_parts(lake_dir, crate::ingest::events::DATASET)?;
    let Some(df) = crate::lake::read_parts(&files, &[])? else { return Ok(BTreeSet::new()) };
    use crate::lake::columns::{count, text};
    let (events, keys, states) = (text(&df, "event")?, text(&df, "model_key")?, text(&df, "rollout_state")?);
    let versions = count(&df, "target_version")?;
    let mut out = BTreeSet::new();
    for i in 0..df.height() {
        let rollout = events[i].as_deref() == Some("rollout") && states[i].as_deref() == Some("rolled_back");
        let version = versions[i].and_then(|v| u32::try_from(v).ok());
        if let (true, Some(key), Some(version)) = (rollout, keys[i].clone(), version) {
            out.insert((key, version));
        }
    }
    Ok(out)
}

/// Reads the drift trigger at `path` (`moldops-cloud drift --trigger`); an absent file means no
/// key drifted.
pub fn read_drift_trigger(path: &Path) -> Result<Vec<TriggerKey>> {
    const MAX_BYTES: u64 = 16 << 20;
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    anyhow::ensure!(
        len <= MAX_BYTES,
        "{} is {len} bytes (a drift trigger is at most {MAX_BYTES})",
        path.display()
    );
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let trigger: Trigger = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a drift trigger", path.display()))?;
    Ok(trigger.keys)
}

/// Each model key's latest period judged `drift` in the lake's `drift_events`.
pub fn drifted_in_lake(lake_dir: &Path) -> Result<Vec<TriggerKey>> {
    let events = crate::drift::store::read_events(lake_dir)?;
    if events.height() == 0 {
        return Ok(Vec::new());
    }
    let text = |name: &str| crate::lake::columns::text(&events, name);
    let (keys, ids, levels, reasons) =
        (text("model_key")?, text("model_id")?, text("level")?, text("reasons")?);
    let ends = events.column("period_end")?.cast(&DataType::Int64)?;
    let ends = ends.i64()?;
    let mut latest: BTreeMap<String, TriggerKey> = BTreeMap::new();
    // Rows come oldest period first: the last drifted one of a key wins.
    for i in 0..events.height() {
        let (Some(key), Some(model_id), Some(end)) = (keys[i].clone(), ids[i].clone(), ends.get(i)) else {
            continue;
        };
        if levels[i].as_deref() != Some(crate::drift::assess::Level::Drift.as_str()) {
            continue;
        }
        let reasons = reasons[i].as_deref().unwrap_or_default().split("; ").filter(|r| !r.is_empty());
        let reasons = reasons.map(str::to_string).collect();
        latest.insert(key.clone(), TriggerKey { key, model_id, period_end_ms: end, reasons });
    }
    Ok(latest.into_values().collect())
}

/// What the plan is made from besides the lake and the registry.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// The drift trigger (`moldops-cloud drift --trigger`), if any.
    pub drift_trigger: Option<&'a Path>,
    /// When labels call for retraining (`None`: labels are not read).
    pub targets: Option<LabelTargets>,
    /// Shots a new key needs.
    pub min_shots: u64,
    /// How long after a refused candidate was built its key is tried again (ms).
    pub retry_after_ms: i64,
}

/// The plan for a lake and a registry.
pub fn plan(lake_dir: &Path, registry: &Registry, options: &Options<'_>) -> Result<Plan> {
    // The drift events in the lake as well as the trigger: a trigger lost to a failed run (the
    // next `drift` run removes it) must not lose the drift; the plan's rules make repeats safe.
    let mut drifted = drifted_in_lake(lake_dir)?;
    if let Some(path) = options.drift_trigger {
        drifted.extend(read_drift_trigger(path)?);
    }
    let (labels, targets) = match options.targets {
        Some(t) => (crate::labels::evidence(lake_dir, t.min_labelled)?, t),
        None => (Vec::new(), LabelTargets::OFF),
    };
    let shots = shots_per_mould(lake_dir)?;
    let registered = registered(registry, &rolled_back_in_lake(lake_dir)?)?;
    Ok(plan_from(&Inputs {
        shots: &shots,
        registered: &registered,
        drifted: &drifted,
        labels: &labels,
        targets,
        min_shots: options.min_shots,
        now_ms: chrono::Utc::now().timestamp_millis(),
        retry_after_ms: options.retry_after_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(label: &str) -> ModelKey {
        ModelKey::parse(label).expect("key")
    }

    #[test]
    fn the_drift_trigger_file_is_read_bounded_and_an_absent_one_means_no_drift() {
        let drifted: Vec<TriggerKey> = ["M1/A", "M1/B"]
            .into_iter()
            .map(|k| TriggerKey {
                key: k.into(),
                model_id: format!("{k}@1"),
                period_end_ms: 1,
                reasons: vec![],
            })
            .collect();
        // The trigger file round-trips, and an absent one means no drift.
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("drift.json");
        assert_eq!(read_drift_trigger(&path).expect("absent"), vec![]);
        std::fs::write(&path, serde_json::to_vec(&Trigger { keys: drifted.to_vec() }).expect("json"))
            .expect("write");
        assert_eq!(read_drift_trigger(&path).expect("read").len(), 2);
        std::fs::write(&path, b"[1,2").expect("write");
        assert!(read_drift_trigger(&path).is_err());
    }

    #[test]
    fn versions_an_edge_rolled_back_are_read_from_edge_events() {
        use crate::ingest::events::{EdgeEvent, write};
        let dir = tempfile::tempdir().expect("tmp");
        assert!(rolled_back_in_lake(dir.path()).expect("no edge_events").is_empty());
        let row = |key: &str, state: &'static str, version: u32| EdgeEvent {
            site: "plant".into(),
            edge_id: "e1".into(),
            received_at_ms: 1_767_225_600_000,
            edge_ts_ms: 1_767_225_600_000,
            event: "rollout",
            edge_version: None,
            model_key: Some(key.into()),
            rollout_state: Some(state),
            target_version: Some(version),
            active_version: None,
            reason: Some("alarm rate 0.32 over 60 shadow shots".into()),
            shadow: None,
        };
        let online = EdgeEvent {
            event: "online",
            model_key: None,
            rollout_state: None,
            target_version: None,
            ..row("x", "active", 1)
        };
        let rows =
            [row("M1/A", "rolled_back", 1), row("M1/B", "active", 1), row("M1/A", "shadow", 2), online];
        write(dir.path(), &rows, 1).expect("write edge_events");
        assert_eq!(rolled_back_in_lake(dir.path()).expect("read"), BTreeSet::from([("M1/A".to_string(), 1)]));
    }

    #[test]
    fn shots_are_counted_per_mould_from_the_lake_as_the_ingest_wrote_them() {
        use crate::ingest::commit::tests::{T0, data_topic, payload, shot};
        use crate::ingest::commit::{Committer, Group};
        let dir = tempfile::tempdir().expect("tmp");
        let (mut c, _) = Committer::open(dir.path()).expect("open");
        assert!(shots_per_mould(dir.path()).expect("an empty lake").is_empty());
        let mut records = Vec::new();
        for seq in 1..=30 {
            let mut r = shot(seq, "M1", &[("Cycle_Time", 60.0)]);
            r.mold = match seq % 3 {
                0 => None,
                1 => Some("MOLD-A".into()),
                _ => Some("MOLD-B".into()),
            };
            records.push(r);
        }
        let mut g = Group::default();
        g.add(&data_topic("e1"), &payload("e1", records), T0);
        c.commit(g).expect("commit");
        let counts = shots_per_mould(dir.path()).expect("count");
        assert_eq!(counts, BTreeMap::from([(key("M1/MOLD-A"), 10), (key("M1/MOLD-B"), 10)]));
    }
}
