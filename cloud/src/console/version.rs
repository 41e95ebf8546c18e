//! One model version's page: its metrics and lineage, why its family was chosen, each
//! family's test figures and false-alarm rates, the training and validation loss per epoch
//! (from the training report kept beside the bundle), the distribution of the scores it gave
//! live on the edges (`edge_scores`) against its threshold, and its stage history.

use super::models::{self, VersionView};
use super::{Failure, Page, Shared};
use crate::lake::verdicts;
use crate::registry::{Registry, Transition};
use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use moldops_shared::bundle::ModelKey;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// Bins of the live score histogram.
const BINS: usize = 40;

/// One model family trained for the version's key.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    /// `lstm_ae`, `pca` or `baseline`.
    pub kind: String,
    /// Whether it is the family this version ships.
    pub selected: bool,
    /// Test F1, PR-AUC and ROC-AUC.
    pub f1: Option<f64>,
    /// Test PR-AUC.
    pub pr_auc: Option<f64>,
    /// Test ROC-AUC.
    pub roc_auc: Option<f64>,
    /// The false-alarm target, its rate on the calibration windows and on the test windows.
    pub false_alarm_target: Option<f64>,
    /// Rate on the calibration windows.
    pub calibration_rate: Option<f64>,
    /// Rate on the test windows.
    pub test_rate: Option<f64>,
    /// Epochs trained.
    pub epochs: Option<u64>,
}

/// Recall on the test windows of one defect kind (the training report's `test_by_kind`).
#[derive(Debug, Clone, Serialize)]
pub struct KindRecall {
    /// The defect kind (`short_shot`, …, `unspecified`).
    pub kind: String,
    /// Test windows ending in such a defect.
    pub windows: u64,
    /// Of those, the ones that alarmed.
    pub caught: u64,
    /// Recall with its 95 % interval, in words (`0.750 [0.50, 1.00]`).
    pub recall: String,
}

/// What the edges scored with this version.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    /// Shots scored.
    pub scored: usize,
    /// Alarms among them.
    pub alarms: usize,
    /// Alarms over scored.
    pub alarm_rate: f64,
    /// The histogram, inline SVG.
    pub svg: String,
}

/// The page.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDetail {
    /// The key's label.
    pub key: String,
    /// The version as the models page shows it.
    pub version: VersionView,
    /// Why its family was chosen.
    pub selection: Option<String>,
    /// How its threshold was chosen.
    pub threshold_method: Option<String>,
    /// Every family trained.
    pub families: Vec<Family>,
    /// The shipped family's recall per defect kind on the test windows.
    pub by_kind: Vec<KindRecall>,
    /// Where it trained (`cpu` or the GPU), when the lineage records it.
    pub device: Option<String>,
    /// Training and validation loss per epoch, inline SVG (empty without a history).
    pub training_svg: String,
    /// Live scores, when edges scored with it.
    pub live: Option<Live>,
    /// The data files it was trained on.
    pub data_files: Vec<String>,
    /// The full data snapshot id.
    pub data_snapshot: String,
    /// Its stage changes, newest first.
    pub history: Vec<Transition>,
}

/// `GET /models/version?key=&version=`.
pub async fn page(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(which): Query<super::rollout_start::Which>,
) -> Page {
    let (registry, lake_dir) = (c.folders.registry.clone(), c.folders.lake.clone());
    let w = which.clone();
    let view = super::blocking(move || detail(&registry, &lake_dir, &w.key, w.version))
        .await
        .map_err(|e| Failure::not_found(e.reason))?;
    c.render("version.html", "models", &format!("{} v{}", which.key, which.version), &headers, view)
}

/// The page of `key` version `version`.
pub fn detail(registry: &Path, lake_dir: &Path, key: &str, version: u32) -> Result<VersionDetail> {
    let model_key = ModelKey::parse(key)?;
    let reg = Registry::open_existing(registry)?;
    let info = reg.version(&model_key, version)?;
    let report = reg.report(&model_key, version)?.unwrap_or(Value::Null);
    let history = reg.state(&model_key)?.history.into_iter().rev().filter(|t| t.version == version).collect();
    let selected = info.record.kind.clone();
    let families = ["lstm_ae", "pca", "baseline"]
        .into_iter()
        .filter(|k| report[k].is_object())
        .map(|k| family(k, &report[k], k == selected))
        .collect();
    let own = &report[selected.as_str()];
    let epochs: Vec<(f64, f64, f64)> = own["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|e| {
                    Some((e["epoch"].as_f64()?, e["train_loss"].as_f64()?, e["val_loss"].as_f64()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let training_svg = if epochs.is_empty() {
        String::new()
    } else {
        crate::report::plots::training(&format!("{key} v{version}: {selected}"), &epochs)?
    };
    let by_kind = own["test_by_kind"]
        .as_object()
        .map(|kinds| {
            kinds
                .iter()
                .map(|(kind, r)| KindRecall {
                    kind: kind.clone(),
                    windows: r["windows"].as_u64().unwrap_or(0),
                    caught: r["caught"].as_u64().unwrap_or(0),
                    recall: estimate(&r["recall"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(VersionDetail {
        by_kind,
        device: info.record.lineage.device.clone(),
        key: key.to_string(),
        selection: report["selection"]["reason"].as_str().map(str::to_string),
        threshold_method: own["threshold"]["method"].as_str().map(str::to_string),
        families,
        training_svg,
        live: live(lake_dir, &model_key, &format!("{key}@{version}"), f64::from(info.record.threshold))?,
        data_files: info.record.lineage.data_files.clone(),
        data_snapshot: info.record.lineage.data_snapshot.clone(),
        version: models::version_view(&info),
        history,
    })
}

/// A report's estimate (`{value, ci_low, ci_high}`) in words.
fn estimate(e: &Value) -> String {
    match (e["value"].as_f64(), e["ci_low"].as_f64(), e["ci_high"].as_f64()) {
        (Some(v), Some(lo), Some(hi)) => format!("{v:.3} [{lo:.2}, {hi:.2}]"),
        (Some(v), _, _) => format!("{v:.3}"),
        _ => "–".into(),
    }
}

fn family(kind: &str, r: &Value, selected: bool) -> Family {
    let test = &r["test"];
    let fa = &r["false_alarms"];
    Family {
        kind: kind.to_string(),
        selected,
        f1: test["f1"]["value"].as_f64(),
        pr_auc: test["pr_auc"]["value"].as_f64(),
        roc_auc: test["roc_auc"]["value"].as_f64(),
        false_alarm_target: fa["target"].as_f64(),
        calibration_rate: fa["calibration_rate"].as_f64(),
        test_rate: fa["test_rate"]["value"].as_f64(),
        epochs: r["epochs_run"].as_u64(),
    }
}

/// The live scores of `model_id` on the key's machine (and mold, when the key has one).
fn live(lake_dir: &Path, key: &ModelKey, model_id: &str, threshold: f64) -> Result<Option<Live>> {
    let query = verdicts::Query { machine_id: key.machine_id.clone(), shots: None, alarms_only: false };
    let scores: Vec<(f64, bool)> = verdicts::verdicts(lake_dir, &query)?
        .into_iter()
        .filter(|v| v.model_id == model_id)
        .map(|v| (v.score, v.alarm))
        .collect();
    if scores.is_empty() {
        return Ok(None);
    }
    let alarms = scores.iter().filter(|s| s.1).count();
    let values: Vec<f64> = scores.iter().map(|s| s.0).collect();
    let svg = crate::report::plots::histogram(&format!("{model_id}: live scores"), &values, threshold, BINS)?;
    Ok(Some(Live { scored: scores.len(), alarms, alarm_rate: alarms as f64 / scores.len() as f64, svg }))
}
