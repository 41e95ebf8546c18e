//! The alarms page: every alarm the edges recorded in `edge_scores`, newest first, filtered by
//! machine, mold, day, acknowledgement and the quality label when one is known (`etl_data`);
//! one alarm's page with its per-feature contributions, its shot and the shots before it; and
//! acknowledging an alarm with a comment and the operator's verdict on the part, kept in the
//! audit trail ([`super::audit`]) and the verdict as a label ([`crate::labels::operator`]).

use super::audit::{self, Action, Kind};
use super::{Failure, Page, Shared};
use crate::labels::operator::{self, Verdict};
use crate::lake::{self, columns, verdicts};
use anyhow::Result;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Most alarms listed at once.
pub const MAX_LISTED: usize = 200;

/// Shots shown before an alarm's shot.
const SHOTS_BEFORE: usize = 10;

/// Contributions shown per alarm.
const TOP_CONTRIBUTIONS: usize = 8;

/// The list's filters (`?machine=&mold=&day=&state=&label=`); empty means any.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Filter {
    /// Only this machine.
    #[serde(default)]
    pub machine: String,
    /// Only this mold.
    #[serde(default)]
    pub mold: String,
    /// Only this UTC day (`YYYY-MM-DD`).
    #[serde(default)]
    pub day: String,
    /// `open` or `acknowledged`.
    #[serde(default)]
    pub state: String,
    /// `defect`, `good` or `unknown`: the shot's quality label.
    #[serde(default)]
    pub label: String,
}

/// One acknowledgement.
#[derive(Debug, Clone, Serialize)]
pub struct Ack {
    /// Who.
    pub user: String,
    /// When (UTC ms).
    pub ts_ms: i64,
    /// Their comment.
    pub comment: String,
    /// The verdict given with it (`defect`, `false_alarm`, `unsure`), if one was.
    pub verdict: Option<String>,
}

/// One alarm in the list.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmRow {
    /// The machine.
    pub machine_id: String,
    /// Time of the shot (UTC ms); with the machine, the alarm's id.
    pub ts_ms: i64,
    /// Controller shot number.
    pub shot_number: Option<u64>,
    /// The mold.
    pub mold: Option<String>,
    /// The model that judged it.
    pub model_id: String,
    /// Score and threshold.
    pub score: f64,
    /// The threshold.
    pub threshold: f64,
    /// The features that drove it, largest first.
    pub top: Vec<Contribution>,
    /// `defect`, `good` or `unknown`.
    pub label: String,
    /// The defect kind, when the label names one.
    pub defect: Option<String>,
    /// What the machine's quality gate did with the part (none without a gate).
    pub gate: Option<String>,
    /// The operator's latest verdict on the part, if any (`defect`, `false_alarm`, `unsure`).
    pub verdict: Option<String>,
    /// Acknowledgements, oldest first.
    pub acks: Vec<Ack>,
    /// Every contribution, largest first (for the alarm's own page).
    #[serde(skip)]
    pub contributions: Vec<(String, f64)>,
}

/// One feature's share of an alarm's score.
#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    /// The feature.
    pub feature: String,
    /// Its contribution.
    pub value: f64,
    /// Its share of the largest contribution, 0–100 (the bar's width).
    pub percent: f64,
}

/// The list page.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmList {
    /// The filters applied.
    pub filter: Filter,
    /// Machines with scores, for the filter.
    pub machines: Vec<String>,
    /// Alarms matching, newest first, at most [`MAX_LISTED`].
    pub alarms: Vec<AlarmRow>,
    /// Alarms matching in all.
    pub matching: usize,
}

/// `GET /alarms`.
pub async fn list(State(c): State<Shared>, headers: HeaderMap, Query(filter): Query<Filter>) -> Page {
    let summary = c.summary.get().await?;
    let machines: Vec<String> = summary
        .datasets
        .iter()
        .filter(|d| d.dataset == moldops_shared::RecordKind::Score.dataset())
        .flat_map(|d| d.machines.iter().map(|m| m.machine_id.clone()))
        .collect();
    let lake_dir = c.folders.lake.clone();
    let view = super::blocking(move || alarm_list(&lake_dir, machines.clone(), filter.clone())).await?;
    c.render("alarms.html", "alarms", "Alarms", &headers, view)
}

/// The alarms matching `filter` among `machines`.
pub fn alarm_list(lake_dir: &Path, machines: Vec<String>, filter: Filter) -> Result<AlarmList> {
    let acks = acks(lake_dir)?;
    let marks = marks(lake_dir)?;
    let mut alarms = Vec::new();
    for m in machines.iter().filter(|m| filter.machine.is_empty() || **m == filter.machine) {
        alarms.extend(machine_alarms(lake_dir, m, &acks, &marks)?);
    }
    alarms.retain(|a| keeps(&filter, a));
    alarms.sort_by(|a, b| b.ts_ms.cmp(&a.ts_ms).then_with(|| a.machine_id.cmp(&b.machine_id)));
    let matching = alarms.len();
    alarms.truncate(MAX_LISTED);
    Ok(AlarmList { filter, machines, alarms, matching })
}

fn keeps(f: &Filter, a: &AlarmRow) -> bool {
    let day = crate::lake::day_string(a.ts_ms.div_euclid(86_400_000));
    (f.mold.is_empty() || a.mold.as_deref() == Some(f.mold.as_str()))
        && (f.day.is_empty() || day == f.day)
        && match f.state.as_str() {
            "open" => a.acks.is_empty(),
            "acknowledged" => !a.acks.is_empty(),
            _ => true,
        }
        && (f.label.is_empty() || a.label == f.label)
}

/// The id of an alarm in the audit trail.
fn alarm_id(machine_id: &str, ts_ms: i64) -> String {
    format!("{machine_id}@{ts_ms}")
}

/// Acknowledgements by alarm id, each with the verdict recorded with it (same target, user
/// and time).
fn acks(lake_dir: &Path) -> Result<BTreeMap<String, Vec<Ack>>> {
    let actions: Vec<Action> = audit::read(lake_dir)?.into_iter().filter(|a| a.outcome == "ok").collect();
    let verdicts: BTreeMap<(&str, &str, i64), &str> = actions
        .iter()
        .filter(|a| a.kind == Kind::Label)
        .map(|a| ((a.target.as_str(), a.user.as_str(), a.ts_ms), a.comment.as_str()))
        .collect();
    let mut out: BTreeMap<String, Vec<Ack>> = BTreeMap::new();
    for a in actions.iter().filter(|a| a.kind == Kind::Acknowledge) {
        let verdict = verdicts.get(&(a.target.as_str(), a.user.as_str(), a.ts_ms)).map(|v| v.to_string());
        out.entry(a.target.clone()).or_default().push(Ack {
            user: a.user.clone(),
            ts_ms: a.ts_ms,
            comment: a.comment.clone(),
            verdict,
        });
    }
    Ok(out)
}

/// The latest operator verdict of each shot, by (machine, shot time).
fn marks(lake_dir: &Path) -> Result<BTreeMap<(String, i64), Verdict>> {
    Ok(operator::latest(operator::read(lake_dir)?).into_iter().map(|(k, m)| (k, m.verdict)).collect())
}

/// Every alarm of one machine, with labels and acknowledgements.
fn machine_alarms(
    lake_dir: &Path,
    machine_id: &str,
    acks: &BTreeMap<String, Vec<Ack>>,
    marks: &BTreeMap<(String, i64), Verdict>,
) -> Result<Vec<AlarmRow>> {
    let query = verdicts::Query { machine_id: machine_id.to_string(), shots: None, alarms_only: true };
    let found = verdicts::verdicts(lake_dir, &query)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let labels = labels(lake_dir, machine_id)?;
    Ok(found
        .into_iter()
        .map(|v| {
            let (label, defect) = match v.shot_number.and_then(|s| labels.get(&s)) {
                Some((l, d)) if *l >= 0.5 => ("defect", d.clone()),
                Some(_) => ("good", None),
                None => ("unknown", None),
            };
            AlarmRow {
                acks: acks.get(&alarm_id(machine_id, v.ts_ms)).cloned().unwrap_or_default(),
                verdict: marks.get(&(machine_id.to_string(), v.ts_ms)).map(|v| v.as_str().to_string()),
                machine_id: machine_id.to_string(),
                ts_ms: v.ts_ms,
                shot_number: v.shot_number,
                mold: v.mold,
                model_id: v.model_id,
                score: v.score,
                threshold: v.threshold,
                top: top(&v.contributions, 3),
                contributions: v.contributions,
                label: label.into(),
                defect,
                gate: v.gate.map(|g| g.describe()),
            }
        })
        .collect())
}

/// The largest contributions with their bar widths.
fn top(contributions: &[(String, f64)], n: usize) -> Vec<Contribution> {
    let largest = contributions.iter().map(|c| c.1.abs()).fold(0.0, f64::max);
    contributions
        .iter()
        .take(n)
        .map(|(f, v)| Contribution {
            feature: f.clone(),
            value: *v,
            percent: if largest > 0.0 { 100.0 * v.abs() / largest } else { 0.0 },
        })
        .collect()
}

/// Quality labels of a machine's shots from `etl_data`: shot → (label, defect kind).
fn labels(lake_dir: &Path, machine_id: &str) -> Result<BTreeMap<u64, (f64, Option<String>)>> {
    let files = lake::list_machine_parts(lake_dir, crate::etl::ETL_DATA, machine_id)?;
    let Some(df) = lake::read_parts(&files, &[])? else { return Ok(BTreeMap::new()) };
    let (shot, label, defect) =
        (columns::count(&df, "shot_number")?, columns::number(&df, "label")?, columns::text(&df, "defect")?);
    Ok((0..df.height()).filter_map(|i| Some((shot[i]?, (label[i]?, defect[i].clone())))).collect())
}

/// One shot's values, for the alarm page.
#[derive(Debug, Clone, Serialize)]
pub struct ShotValues {
    /// Controller shot number.
    pub shot_number: Option<u64>,
    /// Its time (UTC ms).
    pub ts_ms: i64,
    /// Whether this is the alarm's shot.
    pub alarmed: bool,
    /// The values of the alarm's top features, in their order (`None` where missing).
    pub values: Vec<Option<f64>>,
}

/// One alarm's page.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmDetail {
    /// The alarm as listed.
    pub alarm: AlarmRow,
    /// Every contribution (up to [`TOP_CONTRIBUTIONS`]) with bar widths.
    pub contributions: Vec<Contribution>,
    /// The features of the shot table.
    pub features: Vec<String>,
    /// The alarm's shot and the shots before it, oldest first.
    pub shots: Vec<ShotValues>,
}

/// `GET /alarms/{machine}/{ts_ms}`.
pub async fn one(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath((machine, ts_ms)): UrlPath<(String, i64)>,
) -> Page {
    let lake_dir = c.folders.lake.clone();
    let m = machine.clone();
    let view = super::blocking(move || alarm_detail(&lake_dir, &m, ts_ms)).await?;
    let Some(view) = view else {
        return Err(Failure::not_found(format!("no alarm of {machine:?} at {ts_ms}")));
    };
    c.render("alarm.html", "alarms", &format!("Alarm on {machine}"), &headers, view)
}

/// The page of the alarm of `machine_id` at `ts_ms`; `None` when there is none.
pub fn alarm_detail(lake_dir: &Path, machine_id: &str, ts_ms: i64) -> Result<Option<AlarmDetail>> {
    let acks = acks(lake_dir)?;
    let marks = marks(lake_dir)?;
    let Some(alarm) =
        machine_alarms(lake_dir, machine_id, &acks, &marks)?.into_iter().find(|a| a.ts_ms == ts_ms)
    else {
        return Ok(None);
    };
    let contributions = top(&alarm.contributions, TOP_CONTRIBUTIONS);
    let features: Vec<String> = contributions.iter().take(5).map(|c| c.feature.clone()).collect();
    let shots = shots_before(lake_dir, machine_id, ts_ms, &features)?;
    Ok(Some(AlarmDetail { alarm, contributions, features, shots }))
}

/// The shot at `ts_ms` and the [`SHOTS_BEFORE`] before it, with the values of `features`.
fn shots_before(
    lake_dir: &Path,
    machine_id: &str,
    ts_ms: i64,
    features: &[String],
) -> Result<Vec<ShotValues>> {
    let day = ts_ms.div_euclid(86_400_000);
    let mut files: Vec<_> = lake::list_machine_parts(lake_dir, lake::RAW_DATA, machine_id)?
        .into_iter()
        .filter(|f| {
            // The alarm's day and the day before hold the window (part files are per day).
            let text = f.to_string_lossy();
            [day, day - 1].iter().any(|d| text.contains(&lake::day_folder(*d)))
        })
        .collect();
    files.sort();
    let Some(df) = lake::read_parts(&files, &[])? else { return Ok(Vec::new()) };
    let ts = columns::millis(&df, "ts")?;
    let shot = columns::count(&df, "shot_number")?;
    let values: Vec<Vec<Option<f64>>> =
        features.iter().map(|f| columns::number(&df, f)).collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..df.height()).filter(|i| ts[*i].is_some_and(|t| t <= ts_ms)).collect();
    order.sort_by_key(|i| (ts[*i], shot[*i]));
    Ok(order[order.len().saturating_sub(SHOTS_BEFORE + 1)..]
        .iter()
        .map(|&i| ShotValues {
            shot_number: shot[i],
            ts_ms: ts[i].unwrap_or_default(),
            alarmed: ts[i] == Some(ts_ms),
            values: values.iter().map(|v| v[i]).collect(),
        })
        .collect())
}

/// The acknowledgement form.
#[derive(Debug, Deserialize)]
pub struct AckForm {
    /// Why the alarm is acknowledged, what was found.
    #[serde(default)]
    pub comment: String,
    /// What was found on the part: `defect`, `false_alarm` or `unsure`; empty for none.
    #[serde(default)]
    pub verdict: String,
}

/// `POST /alarms/{machine}/{ts_ms}/acknowledge`: signed in only; stored in the audit trail, and
/// a verdict also as the shot's operator label (a later verdict on the shot replaces it).
pub async fn acknowledge(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath((machine, ts_ms)): UrlPath<(String, i64)>,
    Form(form): Form<AckForm>,
) -> Result<Response, Failure> {
    let user = c.writer(&headers)?;
    let comment = audit::comment(&form.comment)?;
    let verdict = match form.verdict.trim() {
        "" => None,
        // Not echoed back when it cannot be a verdict's name at all.
        v if v.len() > 32 => {
            return Err(Failure::bad_request("a verdict is defect, false_alarm or unsure".to_string()));
        }
        v => Some(Verdict::parse(v).map_err(Failure::bad_request)?),
    };
    let lake_dir = c.folders.lake.clone();
    let m = machine.clone();
    let alarm = super::blocking(move || {
        let query = verdicts::Query { machine_id: m.clone(), shots: None, alarms_only: true };
        Ok(verdicts::verdicts(&lake_dir, &query)?.into_iter().find(|v| v.ts_ms == ts_ms))
    })
    .await?;
    let Some(alarm) = alarm else {
        return Err(Failure::not_found(format!("no alarm of {machine:?} at {ts_ms}")));
    };
    let now = chrono::Utc::now().timestamp_millis();
    let action = |kind, comment: String| Action {
        ts_ms: now,
        user: user.clone(),
        kind,
        target: alarm_id(&machine, ts_ms),
        comment,
        outcome: "ok".into(),
    };
    let mut actions = vec![action(Kind::Acknowledge, comment)];
    let mark = verdict.map(|verdict| {
        actions.push(action(Kind::Label, verdict.as_str().to_string()));
        operator::Mark {
            machine_id: machine.clone(),
            shot_ts_ms: ts_ms,
            shot_number: alarm.shot_number,
            mold: alarm.mold.clone(),
            verdict,
            user: user.clone(),
            marked_ms: now,
            stamp: 0,
        }
    });
    let lake_dir = c.folders.lake.clone();
    c.writing(move || {
        if let Some(mark) = &mark {
            operator::record(&lake_dir, mark)?;
        }
        actions.iter().try_for_each(|a| audit::record(&lake_dir, a))
    })
    .await?;
    c.metrics.action(Kind::Acknowledge.as_str(), true);
    if let Some(v) = verdict {
        c.metrics.action(Kind::Label.as_str(), true);
        tracing::info!(user, machine, ts_ms, verdict = v.as_str(), "alarm acknowledged with a verdict");
    } else {
        tracing::info!(user, machine, ts_ms, "alarm acknowledged");
    }
    let back = format!("/alarms/{}/{ts_ms}", super::path_segment(&machine));
    Ok(Redirect::to(&c.link(&back)).into_response())
}
