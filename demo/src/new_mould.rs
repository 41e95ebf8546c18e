//! The demo's new mould (`--new-mould`): machine `m1` changes to a mould it never ran, and the
//! demo follows that (machine, mould) from its first shot to its own model without a human
//! step. The edge judges the mould on a cold-start baseline (learning: no alarms; then robust
//! limits), the lifecycle pipeline (`deploy/pipelines/mould-lifecycle.toml`) trains, gates and
//! rolls out the mould's model once the lake holds enough of its shots, and the edge shadows
//! that model and makes it active (docs/mould-lifecycle.md).

use crate::follow::Follower;
use crate::heater_drift::{self, DriftFlag};
use crate::late_labels::LateLabels;
use crate::learn::Learning;
use anyhow::{Context, Result};
use moldops_cloud::registry::Registry;
use moldops_common::mqtt::BrokerConfig;
use moldops_shared::bundle::ModelKey;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::score::{ColdStartPhase, Judge};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The machine that gets the new mould.
pub const MACHINE: &str = "m1";
/// Shots the edge learns a new mould from before its baseline alarms (the demo's
/// `[models.cold_start] learning_shots`).
pub const LEARNING_SHOTS: u64 = 100;
/// Shots of the new mould the lake must hold before the lifecycle plan trains it.
pub const MIN_SHOTS: u64 = 400;
/// Runs of the lifecycle pipeline while the gate refuses the mould's candidate or the edge rolls
/// it back.
const ATTEMPTS: u32 = 3;
/// Shots of the new mould gathered between two runs.
const RETRY_SHOTS: u64 = 150;

/// How the new mould went, from the edge's score messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewMould {
    /// The new model key (`m1/{mould}`).
    pub key: String,
    /// Shots judged in learning mode, and how many of them alarmed (always 0).
    pub learning_shots: u64,
    pub learning_alarms: u64,
    /// Shots judged by the learned baseline, and its alarms.
    pub baseline_shots: u64,
    pub baseline_alarms: u64,
    /// The mould's own model, once it judged a shot.
    pub model_id: Option<String>,
    /// Shots the own model judged, and its alarms.
    pub model_shots: u64,
    pub model_alarms: u64,
    /// Shots of the new mould judged by another key's model (the machine's or the previous
    /// mould's): 0 when the switch happens on the mould's first shot.
    pub judged_by_other_keys: u64,
    /// Shot numbers of the key between its first and last judged shot that no one judged
    /// (model windows warm up only at the mould's start; a swap skips none).
    pub unjudged_between: u64,
    /// Seconds from the first lifecycle pipeline run to a production model (all runs).
    pub pipeline_s: f64,
    /// The heater-zone drift on the own model, as flagged ([`heater_drift`]).
    pub drift: Option<DriftFlag>,
    /// The QC lot results that came back after production ([`crate::late_labels`]).
    pub late_labels: Option<LateLabels>,
}

impl NewMould {
    fn from_messages(key: &str, messages: &[ScoreMessage]) -> NewMould {
        let mut out = NewMould { key: key.to_string(), ..Default::default() };
        let mold = ModelKey::parse(key).ok().and_then(|k| k.mold);
        let mut judged: BTreeMap<u64, ()> = BTreeMap::new();
        for m in messages.iter().filter(|m| m.machine_id == MACHINE && m.mold == mold) {
            if m.model_key != key {
                out.judged_by_other_keys += 1;
                continue;
            }
            if let Some(n) = m.shot_number {
                judged.insert(n, ());
            }
            let alarm = u64::from(m.alarm);
            match m.stamp().judge() {
                Judge::ColdStart(ColdStartPhase::Learning) => {
                    out.learning_shots += 1;
                    out.learning_alarms += alarm;
                }
                Judge::ColdStart(ColdStartPhase::Baseline) => {
                    out.baseline_shots += 1;
                    out.baseline_alarms += alarm;
                }
                Judge::Model => {
                    out.model_id.get_or_insert_with(|| m.model_id.clone());
                    out.model_shots += 1;
                    out.model_alarms += alarm;
                }
            }
        }
        if let (Some((first, _)), Some((last, _))) = (judged.first_key_value(), judged.last_key_value()) {
            out.unjudged_between = (last - first + 1).saturating_sub(judged.len() as u64);
        }
        out
    }

    /// One line per phase, for the demo's output.
    pub fn to_text(&self) -> String {
        let model = match &self.model_id {
            Some(id) => format!("own model {id}: {} shots, {} alarms", self.model_shots, self.model_alarms),
            None => "no own model yet".into(),
        };
        format!(
            "new mould {}: learning {} shots ({} alarms) → baseline {} shots ({} alarms) → {model}; \
             lifecycle pipeline {:.0} s, no human step",
            self.key,
            self.learning_shots,
            self.learning_alarms,
            self.baseline_shots,
            self.baseline_alarms,
            self.pipeline_s
        )
    }
}

/// The key of the first of machine [`MACHINE`]'s messages in another mould than `old`.
fn new_key(messages: &[ScoreMessage], old: &Option<String>) -> Option<String> {
    messages.iter().find(|m| m.mold.is_some() && m.mold != *old).map(|m| m.model_key.clone())
}

/// Changes [`MACHINE`]'s mould and follows the new key until its own model judges it, then
/// lets a heater zone drift under that model until the drift is flagged (judged as `ingest`
/// lands the edge's summaries).
pub async fn run(
    learning: &Learning<'_>,
    plant: &moldops_sim::RunningPlant,
    broker: &BrokerConfig,
    status: &impl Fn() -> String,
    ingest: &moldops_cloud::ingest::IngestStats,
) -> Result<NewMould> {
    let dir = learning.dir;
    let registry = Registry::open(&dir.join("registry"))?;
    let follower = Follower::start(broker, dir, MACHINE).await?;
    let before = follower.until(&format!("shot of {MACHINE}"), |all| !all.is_empty()).await?;
    let old = before[0].mold.clone();
    plant.change_mold(0)?;
    println!(
        "\n{MACHINE} changes to a mould it never ran; the edge starts it cold (learning, then baseline) …"
    );
    let seen = follower.until("shot of a new mould", |all| new_key(all, &old).is_some()).await?;
    let key = new_key(&seen, &old).context("a new key")?;
    let parsed = ModelKey::parse(&key)?;
    anyhow::ensure!(
        registry.versions(&parsed)?.is_empty(),
        "{key} already has a model: the demo's new mould is not new (another --seed?)"
    );
    let shots_of = |all: &[ScoreMessage]| all.iter().filter(|m| m.model_key == key).count() as u64;
    // A margin over the plan's minimum: the lake lags the broker by an upload.
    follower.until("enough shots of the new mould", |all| shots_of(all) >= MIN_SHOTS + 50).await?;
    println!("{key}: {} shots judged cold · {}", shots_of(&follower.snapshot()), status());
    let definition = dir.join("mould-lifecycle.toml");
    std::fs::write(&definition, moldops_cloud::lifecycle::PIPELINE_TOML)
        .with_context(|| format!("writing {}", definition.display()))?;
    let started = Instant::now();
    for attempt in 1..=ATTEMPTS {
        let ran = learning
            .run_definition(
                "lifecycle pipeline",
                "lifecycle pipeline: drift → plan → etl → train → register (gate) → rollout",
                Some(&definition),
                // The demo does not wait an hour before trying a refused mould again.
                &[("min_shots", MIN_SHOTS.to_string()), ("retry_after_s", "0".to_string())],
            )
            .await;
        // Done when a run succeeded with a production model (rolled out, not refused by the
        // edge). A gate refusal, or a canary the edge rolled back (its shadow run met a process
        // excursion, say), gets another run on more shots: the plan retries both.
        let why = match (&ran, registry.production(&parsed)?) {
            (Ok(()), Some(_)) => break,
            (Ok(()), None) => "the gate refused its candidate".to_string(),
            (Err(e), _) => format!("the lifecycle run failed ({e:#})"),
        };
        anyhow::ensure!(
            attempt < ATTEMPTS,
            "{key} has no model of its own on the edge after {ATTEMPTS} lifecycle runs; the last: {why} (see \
             the register and rollout tasks' logs)"
        );
        let now = shots_of(&follower.snapshot());
        println!("{key}: {why}; trying again with {RETRY_SHOTS} more shots …");
        follower.until("more shots of the new mould", |all| shots_of(all) >= now + RETRY_SHOTS).await?;
    }
    let pipeline_s = started.elapsed().as_secs_f64();
    let own = |m: &ScoreMessage| m.model_key == key && m.stamp().judge() == Judge::Model;
    // Shadow shots on the edge first; then the model judges the next shot.
    follower
        .until("shot judged by the mould's own model", |all| all.iter().filter(|m| own(m)).count() >= 20)
        .await?;
    println!("{}", NewMould::from_messages(&key, &follower.snapshot()).to_text());
    let drift = heater_drift::run(&follower, plant, &dir.join("lake"), &key, ingest).await?;
    println!("{}", drift.to_text());
    let all = follower.finish().await;
    Ok(NewMould { pipeline_s, drift: Some(drift), ..NewMould::from_messages(&key, &all) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(shot: u64, mold: &str, key: &str, id: &str, version: u32, alarm: bool) -> ScoreMessage {
        ScoreMessage {
            edge_id: "edge-01".into(),
            machine_id: MACHINE.into(),
            mold: Some(mold.into()),
            shot_number: Some(shot),
            seq: shot,
            ts_ms: shot as i64 * 1000,
            model_key: key.into(),
            model_id: id.into(),
            version,
            bundle_sha256: if version == 0 { String::new() } else { "ab".repeat(32) },
            score: 1.0,
            threshold: 2.0,
            alarm,
            contributions: vec![],
        }
    }

    #[test]
    fn the_phases_of_a_new_mould_are_counted_from_its_messages() {
        let key = "m1/B";
        let mut all = vec![msg(1, "A", "m1/A", "m1/A@1", 1, true)];
        all.extend((2..5).map(|n| msg(n, "B", key, "m1/B@learning", 0, false)));
        all.extend((5..8).map(|n| msg(n, "B", key, "m1/B@baseline", 0, n == 6)));
        all.extend((9..11).map(|n| msg(n, "B", key, "m1/B@1", 1, false)));
        all.push(msg(11, "B", "m1/A", "m1/A@1", 1, false));
        let n = NewMould::from_messages(key, &all);
        assert_eq!((n.learning_shots, n.learning_alarms, n.baseline_shots, n.baseline_alarms), (3, 0, 3, 1));
        assert_eq!((n.model_id.as_deref(), n.model_shots), (Some("m1/B@1"), 2));
        assert_eq!((n.judged_by_other_keys, n.unjudged_between), (1, 1), "shot 8 unjudged, 11 by m1/A");
        assert!(n.to_text().contains("learning 3 shots (0 alarms)"), "{}", n.to_text());
        assert_eq!(new_key(&all, &Some("A".into())).as_deref(), Some("m1/B"));
        assert_eq!(new_key(&all[..1], &Some("A".into())), None);
    }
}
