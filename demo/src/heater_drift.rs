//! The new mould's own model meets a drifting heater zone (`--new-mould`): once the edge has
//! learned the model's drift reference, barrel zone 3 of [`MACHINE`] runs [`SHIFT_C`] °C hotter
//! for good, and the demo judges the edge's drift summaries as they land in the lake (the same
//! `moldops-cloud drift` the lifecycle pipeline runs) until one flags that zone, counting the
//! shots between the shift and the end of the flagged period (docs/drift.md).

use crate::follow::{Follower, STEP_LIMIT};
use crate::new_mould::MACHINE;
use anyhow::{Context, Result, bail};
use moldops_cloud::drift::assess::{Level, Thresholds};
use moldops_cloud::drift::store::DriftEvent;
use moldops_cloud::ingest::IngestStats;
use moldops_scoring::DriftSettings;
use moldops_shared::rollout::ScoreMessage;
use moldops_shared::score::Judge;
use moldops_sim::features::{BARREL, FEATURE_NAMES};
use serde::Serialize;
use std::path::Path;

/// The barrel zone that drifts (0-based: zone 3).
pub const ZONE: usize = 2;
/// How far it drifts, °C (its shot-to-shot spread is 0.35 °C).
pub const SHIFT_C: f64 = 3.0;
/// Judged shots in a key's drift reference and in each period: fewer than the edge's default
/// 500, so that the demo flags within a minute, and enough that a calm period's PSI stays near
/// `9 · (1/300 + 1/300) = 0.06`, far below the `drift` threshold of 0.25.
pub const PERIOD_SHOTS: u64 = 300;

/// The demo edge's `[models.drift]`: periods of [`PERIOD_SHOTS`] shots, none closed by time.
pub fn settings() -> DriftSettings {
    DriftSettings {
        every_shots: PERIOD_SHOTS,
        every_s: 0,
        reference_shots: PERIOD_SHOTS,
        ..Default::default()
    }
}

/// The drift, as flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftFlag {
    /// The feature that drifted (`Barrel_Temperature_3`).
    pub feature: String,
    /// Its shift, °C.
    pub shift_c: f64,
    /// Simulated time the shift was asked for (UTC ms).
    pub shift_ms: i64,
    /// The first shot made with the shift.
    pub first_shot: u64,
    /// The judge whose period was flagged (`{key}@{version}`).
    pub model_id: String,
    /// Shots of the key from the first shifted one up to the one that closed the flagged
    /// period.
    pub shots_to_flag: u64,
    /// The feature's PSI in that period.
    pub psi: f64,
    /// The period's verdict, with its reasons.
    pub reasons: Vec<String>,
}

impl DriftFlag {
    /// One line for the demo's output.
    pub fn to_text(&self) -> String {
        format!(
            "heater drift: {} {:+.1} °C on {MACHINE} flagged `drift` by {} after {} shots (PSI {:.2}; {})",
            self.feature,
            self.shift_c,
            self.model_id,
            self.shots_to_flag,
            self.psi,
            self.reasons.join("; ")
        )
    }
}

/// Waits until `key`'s own model has judged its drift reference, shifts the zone, and judges
/// the drift summaries as `ingest` lands them, at each commit that brings some,
/// until a period after the shift is `drift` with the zone among its worst features.
pub async fn run(
    follower: &Follower,
    plant: &moldops_sim::RunningPlant,
    lake: &Path,
    key: &str,
    ingest: &IngestStats,
) -> Result<DriftFlag> {
    let own = |m: &ScoreMessage| m.model_key == key && m.stamp().judge() == Judge::Model;
    let seen = follower
        .until("drift reference of the mould's own model", |all| {
            all.iter().filter(|m| own(m)).count() as u64 >= PERIOD_SHOTS
        })
        .await?;
    let model_id = seen.iter().rev().find(|m| own(m)).map(|m| m.model_id.clone()).context("the own model")?;
    let feature = FEATURE_NAMES[BARREL[ZONE] as usize].to_string();
    let shift_ms = plant.clock().now_ms();
    let applied = plant.shift_heater(0, ZONE, SHIFT_C)?;
    let first_shot = u64::from(
        tokio::time::timeout(STEP_LIMIT, applied)
            .await
            .context("the machine did not take the heater shift")?
            .context("the machine stopped before the heater shift")?,
    );
    println!(
        "{MACHINE}: {feature} runs {SHIFT_C:+.1} °C from now on; judging the edge's drift summaries as they land …"
    );
    let deadline = tokio::time::Instant::now() + STEP_LIMIT;
    let mut commits = ingest.watch_commits();
    let mut judged_at = None;
    let event = loop {
        // Judged again only when a commit brought drift summaries.
        let now = ingest.snapshot().drift_records;
        if judged_at != Some(now) {
            judged_at = Some(now);
            let outcome = moldops_cloud::drift::run(lake, &Thresholds::default(), false)?;
            if let Some(e) = outcome.events.into_iter().find(|e| flags(e, &model_id, shift_ms, &feature)) {
                break e;
            }
        }
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("the ingest stopped before a drift was flagged on {model_id}"),
            Err(_) => {
                bail!("no drift flagged on {model_id} within {} s of the heater shift", STEP_LIMIT.as_secs())
            }
        }
    };
    let shots_to_flag = follower
        .snapshot()
        .iter()
        .filter(|m| m.model_key == key && m.shot_number.is_some_and(|n| n >= first_shot))
        .filter(|m| m.ts_ms <= event.period_end_ms)
        .count() as u64;
    let Some(psi) = zone_psi(&event, &feature) else { bail!("{feature} left the flagged period") };
    Ok(DriftFlag {
        feature,
        shift_c: SHIFT_C,
        shift_ms,
        first_shot,
        model_id,
        shots_to_flag,
        psi,
        reasons: event.assessment.reasons,
    })
}

/// Whether `e` is a period of `model_id` ending after the shift, judged `drift`, with `feature`
/// drifted among its worst features.
fn flags(e: &DriftEvent, model_id: &str, shift_ms: i64, feature: &str) -> bool {
    e.model_id == model_id
        && e.period_end_ms > shift_ms
        && e.assessment.level == Level::Drift
        && zone_psi(e, feature).is_some_and(|psi| psi > Thresholds::default().drift_psi)
}

fn zone_psi(e: &DriftEvent, feature: &str) -> Option<f64> {
    e.assessment.worst_features.iter().find(|f| f.name == feature).and_then(|f| f.psi)
}
