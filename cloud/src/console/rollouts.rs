//! The rollouts page: per edge and model key the latest rollout state the edge reported on its
//! retained `model/reported` topic (`edge_events`) — downloading, verified, shadow, active,
//! rejected or rolled back, with the reason — against the registry's production version, and
//! the recent history of those reports.

use super::{Page, Shared};
use crate::ingest::events;
use crate::lake::{self, columns};
use crate::registry::Registry;
use anyhow::Result;
use axum::extract::State;
use axum::http::HeaderMap;
use moldops_shared::bundle::ModelKey;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Rollout reports shown in the history.
const HISTORY: usize = 100;

/// One rollout report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Site of the edge.
    pub site: String,
    /// The edge.
    pub edge_id: String,
    /// The model key.
    pub model_key: String,
    /// When the ingest received it (UTC ms).
    pub ts_ms: i64,
    /// The reported state.
    pub state: String,
    /// Version the rollout is about.
    pub target_version: Option<u32>,
    /// Version scoring live.
    pub active_version: Option<u32>,
    /// Why a target was rejected or rolled back.
    pub reason: Option<String>,
    /// Shadow progress: shots the candidate scored so far, and the shots needed.
    pub shadow: Option<(u64, u64)>,
    /// The registry's production version of the key (what a rollout ships).
    pub production: Option<u32>,
}

/// The page.
#[derive(Debug, Clone, Serialize)]
pub struct Rollouts {
    /// The latest report per edge and key.
    pub latest: Vec<Report>,
    /// Recent reports, newest first.
    pub history: Vec<Report>,
}

/// `GET /rollouts`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let (lake_dir, registry) = (c.folders.lake.clone(), c.folders.registry.clone());
    let view = super::blocking(move || rollouts(&lake_dir, &registry)).await?;
    c.render("rollouts.html", "rollouts", "Rollouts", &headers, view)
}

/// The rollout reports in the lake, with the registry's production versions.
pub fn rollouts(lake_dir: &Path, registry: &Path) -> Result<Rollouts> {
    let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, events::DATASET)?, &[])? else {
        return Ok(Rollouts { latest: Vec::new(), history: Vec::new() });
    };
    let reg = Registry::open_existing(registry).ok();
    let production =
        |key: &str| -> Option<u32> { reg.as_ref()?.state(&ModelKey::parse(key).ok()?).ok()?.production() };
    let (site, edge, ts, event, key, state) = (
        columns::text(&df, "site")?,
        columns::text(&df, "edge_id")?,
        columns::millis(&df, "ts")?,
        columns::text(&df, "event")?,
        columns::text(&df, "model_key")?,
        columns::text(&df, "rollout_state")?,
    );
    let (target, active, reason) = (
        columns::count(&df, "target_version")?,
        columns::count(&df, "active_version")?,
        columns::text(&df, "reason")?,
    );
    let (scored, needed) = (columns::count(&df, "shadow_scored")?, columns::count(&df, "shadow_needed")?);
    let version = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    let mut reports: Vec<Report> = (0..df.height())
        .filter(|&i| event[i].as_deref() == Some("rollout"))
        .filter_map(|i| {
            Some(Report {
                site: site[i].clone()?,
                edge_id: edge[i].clone()?,
                model_key: key[i].clone()?,
                ts_ms: ts[i]?,
                state: state[i].clone().unwrap_or_default(),
                target_version: version(target[i]),
                active_version: version(active[i]),
                reason: reason[i].clone(),
                shadow: scored[i].zip(needed[i]),
                production: None,
            })
        })
        .collect();
    reports.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
    let mut productions: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for r in &mut reports {
        r.production = *productions.entry(r.model_key.clone()).or_insert_with(|| production(&r.model_key));
    }
    let mut latest: BTreeMap<(String, String, String), Report> = BTreeMap::new();
    for r in &reports {
        latest.entry((r.site.clone(), r.edge_id.clone(), r.model_key.clone())).or_insert_with(|| r.clone());
    }
    reports.truncate(HISTORY);
    Ok(Rollouts { latest: latest.into_values().collect(), history: reports })
}
