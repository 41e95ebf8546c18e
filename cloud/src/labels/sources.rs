//! Reading what the label report joins from the lake: the scored shots (`edge_scores`), the
//! inspection labels (`labels`), the lot results and scrap counts (`lot_labels`) and the
//! operator verdicts (`operator_labels`). Everything is read again on every call, so labels
//! that arrived since the last report are in the next one.

use super::join::{Labels, Lot, LotSource, ScoredShot};
use super::operator;
use crate::lake::{self, columns};
use anyhow::{Context, Result};
use moldops_shared::RecordKind;
use moldops_shared::score::{ColdStartPhase, value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DAY_MS: i64 = 86_400_000;

/// Every scored shot in `edge_scores`, read one machine folder at a time. Shots a cold-start
/// baseline judged while still learning (`{key}@learning`, never an alarm) are left out: no
/// alarm could have been raised on them, so they say nothing about precision or recall.
pub fn scored_shots(lake_dir: &Path) -> Result<Vec<ScoredShot>> {
    lake::retry_vanished(|| {
        let mut by_machine: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for part in lake::list_parts(lake_dir, RecordKind::Score.dataset())? {
            // {dataset}/machine=…/date=…/part-…: the machine folder is two levels up.
            let machine = part.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
            by_machine.entry(machine).or_default().push(part);
        }
        let mut out = Vec::new();
        for (folder, files) in by_machine {
            let Some(df) = lake::read_parts(&files, &[])? else { continue };
            let mut read = || -> Result<()> {
                let (machine, ts, shot, mold, key, version, alarm, id) = (
                    columns::text(&df, "machine_id")?,
                    columns::millis(&df, "ts")?,
                    columns::count(&df, "shot_number")?,
                    columns::text(&df, "mold")?,
                    columns::text(&df, "model_key")?,
                    columns::count(&df, "model_version")?,
                    columns::number(&df, value::ALARM)?,
                    columns::text(&df, "model_id")?,
                );
                let learning = format!("@{}", ColdStartPhase::Learning.as_str());
                for i in 0..df.height() {
                    let (Some(machine_id), Some(ts_ms)) = (machine[i].clone(), ts[i]) else { continue };
                    if id[i].as_deref().is_some_and(|id| id.ends_with(&learning)) {
                        continue;
                    }
                    out.push(ScoredShot {
                        machine_id,
                        ts_ms,
                        shot_number: shot[i],
                        mold: mold[i].clone(),
                        model_key: key[i].clone().unwrap_or_default(),
                        model_version: version[i].and_then(|v| u32::try_from(v).ok()),
                        alarm: alarm[i] == Some(1.0),
                    });
                }
                Ok(())
            };
            read().with_context(|| format!("reading {}", folder.display()))?;
        }
        Ok(out)
    })
}

/// Every label: inspection labels (the last one of a shot wins, as in ETL), lot results and
/// scrap counts, and the latest operator verdict of each shot.
pub fn labels(lake_dir: &Path) -> Result<Labels> {
    lake::retry_vanished(|| {
        Ok(Labels {
            inspected: inspected(lake_dir)?,
            marks: operator::latest(operator::read(lake_dir)?)
                .into_iter()
                .map(|(key, m)| (key, m.verdict))
                .collect(),
            lots: lots(lake_dir)?,
        })
    })
}

/// Shot-level labels: (machine, shot number, UTC day) → defective (`label ≥ 0.5`).
fn inspected(lake_dir: &Path) -> Result<BTreeMap<(String, u64, i64), bool>> {
    let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, crate::etl::LABELS)?, &[])? else {
        return Ok(BTreeMap::new());
    };
    let (machine, shot, ts, label, seq) = (
        columns::text(&df, "machine_id")?,
        columns::count(&df, "shot_number")?,
        columns::millis(&df, "ts")?,
        columns::number(&df, "label")?,
        columns::count(&df, "seq")?,
    );
    let mut rows: Vec<usize> = (0..df.height()).collect();
    rows.sort_by_key(|&i| seq[i]);
    let mut out = BTreeMap::new();
    for i in rows {
        let (Some(m), Some(n), Some(t), Some(l)) = (machine[i].clone(), shot[i], ts[i], label[i]) else {
            continue;
        };
        if l.is_finite() {
            out.insert((m, n, t.div_euclid(DAY_MS)), l >= 0.5);
        }
    }
    Ok(out)
}

/// Lot results (`scrap` empty) and scrap counts (`scrap` set) from `lot_labels`.
fn lots(lake_dir: &Path) -> Result<Vec<Lot>> {
    let Some(df) = lake::read_parts(&lake::list_parts(lake_dir, crate::etl::LOT_LABELS)?, &[])? else {
        return Ok(Vec::new());
    };
    let (machine, from, to, ratio, name, scrap, parts) = (
        columns::text(&df, "machine_id")?,
        columns::millis(&df, "from_ts")?,
        columns::millis(&df, "to_ts")?,
        columns::number(&df, "defect_ratio")?,
        columns::text(&df, "lot")?,
        columns::count(&df, super::scrap::SCRAP_COLUMN)?,
        columns::count(&df, super::scrap::PARTS_COLUMN)?,
    );
    Ok((0..df.height())
        .filter_map(|i| {
            let defect_ratio = ratio[i].filter(|r| (0.0..=1.0).contains(r))?;
            Some(Lot {
                machine_id: machine[i].clone()?,
                from_ms: from[i]?,
                to_ms: to[i]?,
                name: name[i].clone(),
                defect_ratio,
                source: if scrap[i].is_some() { LotSource::Scrap } else { LotSource::Qc },
                scrap: scrap[i],
                parts: parts[i],
            })
        })
        .collect())
}
