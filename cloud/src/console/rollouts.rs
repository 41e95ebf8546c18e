//! The rollouts page: per edge and model key the version the rollout manager asked for (the
//! retained `model/desired` the edge reads, kept by the ingest in `edge_events`), the latest
//! rollout state the edge reported on its retained `model/reported` topic — downloading,
//! verified, shadow, active, rejected or rolled back, with the reason — and the registry's
//! production version, then the recent history of both.

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
    /// What the rollout manager last asked of this edge for this key (latest rows only).
    pub desired: Option<Desired>,
}

/// The version the rollout manager last asked an edge to run for one key.
#[derive(Debug, Clone, Serialize)]
pub struct Desired {
    /// The version asked for.
    pub version: u32,
    /// When this version was first asked for (the ingest's receive time, UTC ms; the manager
    /// republishes every key with each rollout, and only a changed request counts).
    pub seen_at_ms: i64,
    /// Whether it came with a signed rollback statement (a version older than the edge's newest).
    pub rollback: bool,
}

/// State shown for a key the manager asked for that the edge has not reported on yet.
const NOT_REPORTED: &str = "not reported";
/// State of a history row that is the manager's request, not the edge's report.
const DESIRED: &str = "desired";

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
        .filter_map(|i| {
            let desired = match event[i].as_deref() {
                Some("rollout") => false,
                Some("desired") => true,
                _ => return None,
            };
            Some(Report {
                site: site[i].clone()?,
                edge_id: edge[i].clone()?,
                model_key: key[i].clone()?,
                ts_ms: ts[i]?,
                state: if desired { DESIRED.to_string() } else { state[i].clone().unwrap_or_default() },
                target_version: version(target[i]),
                active_version: version(active[i]),
                reason: reason[i].clone(),
                shadow: scored[i].zip(needed[i]),
                production: None,
                desired: None,
            })
        })
        .collect();
    // The manager republishes every key of an edge with each rollout: keep a request only when
    // it asks for something new, so a key's row shows when its version was first asked for.
    reports.sort_by_key(|r| r.ts_ms);
    let mut asked: BTreeMap<At, (Option<u32>, Option<String>)> = BTreeMap::new();
    reports.retain(|r| {
        if r.state != DESIRED {
            return true;
        }
        let request = (r.target_version, r.reason.clone());
        asked.insert(at(r), request.clone()) != Some(request)
    });
    reports.reverse();
    let mut productions: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for r in &mut reports {
        r.production = *productions.entry(r.model_key.clone()).or_insert_with(|| production(&r.model_key));
    }
    let latest = latest_per_key(&reports);
    reports.truncate(HISTORY);
    Ok(Rollouts { latest, history: reports })
}

/// Site, edge and model key of a row.
type At = (String, String, String);

fn at(r: &Report) -> At {
    (r.site.clone(), r.edge_id.clone(), r.model_key.clone())
}

/// Per edge and key (from `reports`, newest first): the newest report of the edge, with the
/// newest request of the manager beside it; a key only asked for shows as not reported.
fn latest_per_key(reports: &[Report]) -> Vec<Report> {
    let mut latest: BTreeMap<At, Report> = BTreeMap::new();
    let mut asked: BTreeMap<At, &Report> = BTreeMap::new();
    for r in reports {
        if r.state == DESIRED {
            asked.entry(at(r)).or_insert(r);
        } else {
            latest.entry(at(r)).or_insert_with(|| r.clone());
        }
    }
    for (at, request) in asked {
        let Some(version) = request.target_version else { continue };
        let row = latest.entry(at).or_insert_with(|| Report {
            state: NOT_REPORTED.to_string(),
            target_version: None,
            reason: None,
            ..request.clone()
        });
        row.desired = Some(Desired {
            version,
            seen_at_ms: request.ts_ms,
            rollback: request.reason.as_deref() == Some("rollback"),
        });
    }
    latest.into_values().collect()
}
