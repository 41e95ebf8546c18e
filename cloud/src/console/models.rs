//! The models page: per registry key its versions with stage, family, threshold, test metrics
//! with their intervals, lineage (data snapshot, code version, parameters) and the history of
//! stage changes; promoting or archiving a version after a confirmation page (re-promoting an
//! archived version is the rollback). Every change is done as the signed-in user and audited.
//! Sending the production version to edges is [`super::rollout_start`].

use super::audit::{self, Action, Kind};
use super::{Failure, Page, Shared};
use crate::registry::{Registry, Stage, Transition, VersionInfo};
use anyhow::Result;
use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use moldops_shared::bundle::ModelKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A metric with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Its name.
    pub name: &'static str,
    /// The value on the test windows.
    pub value: Option<f64>,
    /// The interval's low end.
    pub low: Option<f64>,
    /// The interval's high end.
    pub high: Option<f64>,
}

/// One version as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// The version number.
    pub version: u32,
    /// Its stage.
    pub stage: Stage,
    /// The model family (`lstm_ae`, `pca`, …).
    pub kind: String,
    /// When it was built.
    pub created_at: String,
    /// Its alarm threshold.
    pub threshold: f32,
    /// Test metrics with intervals.
    pub metrics: Vec<Metric>,
    /// Labelled test windows the metrics come from, and the defective ones among them.
    pub test_windows: Option<u64>,
    /// Defective test windows.
    pub test_positives: Option<u64>,
    /// Short data snapshot id.
    pub data_snapshot: String,
    /// Data files it was trained on.
    pub data_files: usize,
    /// Code version.
    pub code_version: String,
    /// Training parameters as JSON text.
    pub params: String,
}

/// The test metrics shown per version, in their column order.
pub const METRICS: [&str; 5] = ["f1", "precision", "recall", "pr_auc", "roc_auc"];

/// One key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    /// The key's label (`machine` or `machine/mold`).
    pub key: String,
    /// The production version.
    pub production: Option<u32>,
    /// Versions, newest first.
    pub versions: Vec<VersionView>,
    /// Stage changes, newest first.
    pub history: Vec<Transition>,
    /// Why the key's versions could not be read (the other keys are still shown).
    pub error: Option<String>,
}

/// The models page.
#[derive(Debug, Clone, Serialize)]
pub struct ModelsView {
    /// The metric column names.
    pub metrics: [&'static str; 5],
    /// Every key.
    pub keys: Vec<KeyView>,
}

/// `GET /models`.
pub async fn page(State(c): State<Shared>, headers: HeaderMap) -> Page {
    let registry = c.folders.registry.clone();
    let keys = super::blocking(move || keys(&registry)).await?;
    c.render("models.html", "models", "Models", &headers, ModelsView { metrics: METRICS, keys })
}

/// Every key of the registry at `dir` (none when it does not exist).
pub fn keys(dir: &Path) -> Result<Vec<KeyView>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let reg = Registry::open_existing(dir)?;
    let mut out = Vec::new();
    for key in reg.keys()? {
        let read = reg.state(&key).and_then(|state| Ok((reg.versions(&key)?, state)));
        let view = match read {
            Ok((versions, state)) => KeyView {
                key: key.label(),
                production: state.production(),
                versions: versions.iter().rev().map(version_view).collect(),
                history: state.history.into_iter().rev().collect(),
                error: None,
            },
            Err(e) => KeyView {
                key: key.label(),
                production: None,
                versions: Vec::new(),
                history: Vec::new(),
                error: Some(format!("{e:#}")),
            },
        };
        out.push(view);
    }
    Ok(out)
}

/// A version as the models and version pages show it.
pub(super) fn version_view(v: &VersionInfo) -> VersionView {
    let r = &v.record;
    let test = &r.metrics["test"];
    let metric = |name: &'static str| Metric {
        name,
        value: test[name]["value"].as_f64().or_else(|| r.metrics[name].as_f64()),
        low: test[name]["ci_low"].as_f64(),
        high: test[name]["ci_high"].as_f64(),
    };
    VersionView {
        version: r.version,
        stage: v.stage,
        kind: r.kind.clone(),
        created_at: r.created_at.clone(),
        threshold: r.threshold,
        metrics: METRICS.map(metric).to_vec(),
        test_windows: test["windows"].as_u64(),
        test_positives: test["positives"].as_u64(),
        data_snapshot: r.lineage.data_snapshot.chars().take(12).collect(),
        data_files: r.lineage.data_files.len(),
        code_version: r.lineage.code_version.clone(),
        params: serde_json::to_string(&r.lineage.params).unwrap_or_default(),
    }
}

/// A stage change asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Make the version production.
    Promote,
    /// Archive the version.
    Archive,
}

impl Change {
    /// The audit trail's name for it.
    pub fn kind(self) -> Kind {
        match self {
            Change::Promote => Kind::Promote,
            Change::Archive => Kind::Archive,
        }
    }
}

/// `?key=&version=&change=` of the confirmation page, and the form it posts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// The key's label.
    pub key: String,
    /// The version.
    pub version: u32,
    /// What to do.
    pub change: Change,
    /// Why (kept in the audit trail).
    #[serde(default)]
    pub comment: String,
}

/// What the confirmation page shows.
#[derive(Debug, Clone, Serialize)]
struct Confirm {
    request: ChangeRequest,
    stage: Stage,
    production: Option<u32>,
}

/// `GET /models/confirm`: what the change will do, with the button that does it.
pub async fn confirm(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(request): Query<ChangeRequest>,
) -> Page {
    let registry = c.folders.registry.clone();
    let r = request.clone();
    let (stage, production) = super::blocking(move || {
        let reg = Registry::open_existing(&registry)?;
        let key = ModelKey::parse(&r.key)?;
        let state = reg.state(&key)?;
        let stage = *state
            .stages
            .get(&r.version)
            .ok_or_else(|| anyhow::anyhow!("{} has no version {}", r.key, r.version))?;
        Ok((stage, state.production()))
    })
    .await
    .map_err(|e| Failure::bad_request(e.reason))?;
    c.render("confirm.html", "models", "Confirm", &headers, Confirm { request, stage, production })
}

/// `POST /models/change`: signed in only; the registry's own checks apply (a promoted bundle is
/// verified first); done or refused, the attempt is audited.
pub async fn change(
    State(c): State<Shared>,
    headers: HeaderMap,
    Form(request): Form<ChangeRequest>,
) -> Result<Response, Failure> {
    let user = c.writer(&headers)?;
    let comment = audit::comment(&request.comment)?;
    let key = ModelKey::parse(&request.key)
        .map_err(|e| Failure::bad_request(format!("key {:?}: {e}", request.key)))?;
    let (registry, lake_dir) = (c.folders.registry.clone(), c.folders.lake.clone());
    let r = request.clone();
    let changed = c
        .writing(move || {
            let reg = Registry::open_existing(&registry)?;
            let done = match r.change {
                Change::Promote => reg.promote(&key, r.version).map(|_| ()),
                Change::Archive => reg.archive(&key, r.version).map(|_| ()),
            };
            Ok(done.err().map(|e| format!("{e:#}")))
        })
        .await;
    // The trail records what happened — made, refused by the registry, or not made (with the
    // data in a bucket: another writer changed the key first) — in a change of its own, so a
    // change that is not made is never audited as made.
    let (outcome, failure) = match changed {
        Ok(None) => ("ok".to_string(), None),
        Ok(Some(refused)) => (refused.clone(), Some(Failure::new(axum::http::StatusCode::CONFLICT, refused))),
        Err(f) => (format!("not made: {}", f.reason), Some(f)),
    };
    let action = Action {
        ts_ms: chrono::Utc::now().timestamp_millis(),
        user: user.clone(),
        kind: request.change.kind(),
        target: format!("{}@{}", request.key, request.version),
        comment,
        outcome: outcome.clone(),
    };
    if let Err(e) = c.writing(move || audit::record(&lake_dir, &action)).await {
        // Said loudly: the trail lacks this change (or refusal).
        tracing::error!(reason = e.reason, outcome, "a model change was not audited");
        if failure.is_none() {
            return Err(Failure::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the change was made but could not be audited: {}", e.reason),
            ));
        }
    }
    c.metrics.action(request.change.kind().as_str(), failure.is_none());
    if let Some(f) = failure {
        tracing::warn!(user, key = request.key, version = request.version, outcome, "model change refused");
        return Err(f);
    }
    tracing::info!(user, key = request.key, version = request.version, change = ?request.change, "model stage changed");
    Ok(Redirect::to(&c.link("/models")).into_response())
}
