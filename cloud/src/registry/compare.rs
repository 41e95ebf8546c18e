//! Scores a candidate and its key's production version on the same held-out shots for the
//! gate: the shots of the lake's `etl_data` in the candidate's held-out window that both
//! models score, each through the batch scorer's code ([`crate::score::score_frame`], the
//! edge's windowing and tract) at its own threshold, against the shots' labels.

use super::Registry;
use super::gate::{Comparison, HeldOut, OnHeldOut, Versus};
use crate::train::{dataset, metrics};
use anyhow::{Context, Result};
use moldops_shared::bundle::{Bundle, ModelKey};
use polars::prelude::DataFrame;
use std::collections::BTreeMap;

/// One key's shots in the window: label by shot time (UTC ms); `None` unlabelled.
type Labels = BTreeMap<i64, Option<u8>>;

/// Both versions on the shots of `etl` (all of `etl_data`, as [`crate::etl::read_etl`] returns
/// it) in `held_out`'s window. [`Versus::Unavailable`] when the window holds no shot both
/// scored; an error when a bundle does not verify or cannot be scored.
pub fn measure(
    reg: &Registry,
    etl: &DataFrame,
    key: &ModelKey,
    candidate: u32,
    production: u32,
    held_out: &HeldOut,
) -> Result<Versus> {
    let (from, to) = (held_out.from_ts_ms, held_out.to_ts_ms);
    let unavailable = |why: String| Ok(Versus::Unavailable { production, why });
    if etl.height() == 0 {
        return unavailable("the lake has no etl_data".into());
    }
    let labels = labels(etl, key, from, to)?;
    if labels.is_empty() {
        return unavailable(format!(
            "the lake's etl_data has no shot of {} in the candidate's held-out window ({} to {})",
            key.label(),
            ts_text(from),
            ts_text(to)
        ));
    }
    let cand = scores(reg, etl, key, candidate, from, to)?;
    let prod = scores(reg, etl, key, production, from, to)?;
    // The shots both scored, with their labels, in time order.
    let shared: Vec<(f32, f32, Option<u8>)> =
        cand.iter().filter_map(|(ts, &c)| Some((c, *prod.get(ts)?, *labels.get(ts)?))).collect();
    if shared.is_empty() {
        return unavailable("no shot of the held-out window was scored by both versions".into());
    }
    let good = shared.iter().filter(|(_, _, l)| *l != Some(1)).count();
    let defective = shared.len() - good;
    let threshold = |v: u32| -> Result<f32> { Ok(reg.version(key, v)?.record.threshold) };
    let on = |version: u32, threshold: f32, pick: fn(&(f32, f32, Option<u8>)) -> f32| {
        on_held_out(version, threshold, shared.iter().map(|s| (pick(s), s.2)))
    };
    Ok(Versus::Measured(Comparison {
        from_ts_ms: from,
        to_ts_ms: to,
        good,
        defective,
        candidate: on(candidate, threshold(candidate)?, |s| s.0),
        production: on(production, threshold(production)?, |s| s.1),
    }))
}

/// False-alarm rate, recall and ROC-AUC of `(score, label)` pairs at `threshold`.
fn on_held_out(version: u32, threshold: f32, shots: impl Iterator<Item = (f32, Option<u8>)>) -> OnHeldOut {
    let (mut good, mut false_alarms, mut defective, mut caught) = (0usize, 0usize, 0usize, 0usize);
    let (mut labelled_scores, mut labelled) = (Vec::new(), Vec::new());
    for (score, label) in shots {
        let alarm = score > threshold;
        if label == Some(1) {
            defective += 1;
            caught += usize::from(alarm);
        } else {
            good += 1;
            false_alarms += usize::from(alarm);
        }
        if let Some(l) = label {
            labelled_scores.push(score);
            labelled.push(l);
        }
    }
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    OnHeldOut {
        version,
        threshold,
        false_alarm_rate: ratio(false_alarms, good),
        recall: ratio(caught, defective),
        roc_auc: metrics::roc_auc(&labelled_scores, &labelled),
    }
}

/// Labels of `key`'s shots between `from` and `to` (inclusive), by shot time.
fn labels(etl: &DataFrame, key: &ModelKey, from: i64, to: i64) -> Result<Labels> {
    let all = dataset::series(etl, key.mold.is_some()).context("reading the shots' labels")?;
    Ok(all
        .into_iter()
        .filter(|s| &s.key == key)
        .flat_map(|s| s.shots)
        .filter(|s| (from..=to).contains(&s.ts_ms))
        .map(|s| (s.ts_ms, s.label))
        .collect())
}

/// Scores of `version` on `key`'s shots between `from` and `to`, by shot time.
fn scores(
    reg: &Registry,
    etl: &DataFrame,
    key: &ModelKey,
    version: u32,
    from: i64,
    to: i64,
) -> Result<BTreeMap<i64, f32>> {
    let what = || format!("scoring {}@{version} on the held-out shots", key.label());
    let bytes = reg.bundle_bytes(key, version).with_context(what)?;
    let bundle = Bundle::from_bytes(&bytes).with_context(what)?;
    // The registry verified the bundle against its signer already.
    let mut model = crate::score::load_model(&bundle, None).with_context(what)?;
    let (shots, _warming) = crate::score::score_frame(etl, &mut model).with_context(what)?;
    Ok(shots.into_iter().filter(|s| (from..=to).contains(&s.ts_ms)).map(|s| (s.ts_ms, s.score)).collect())
}

fn ts_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339())
}
