//! The training report as one self-contained HTML page (`train --html FILE`): per key the
//! selection and why, each family's threshold, false alarms and test metrics, ROC and PR curves
//! of every family on the test windows, and the selected family's scores over time with the
//! labels and its threshold. Rendered with a minijinja template; plots are inline SVG.

use super::metrics::{self, Estimate};
use super::run::{KeyOutcome, ModelOutcome, TrainReport};
use crate::report::plots;
use anyhow::Result;
use serde::Serialize;

const TEMPLATE: &str = r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>moldops training report</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.chosen{font-weight:bold}.plots svg{margin:4px;border:1px solid #eee}h2{border-bottom:2px solid #ddd}</style></head><body>
<h1>moldops training report</h1>
<p>Lake <code>{{ lake }}</code> · {{ created_at }} · {{ code_version }} · trained on {{ device }} · {{ seconds }} s</p>
{% for k in keys %}<h2>{{ k.label }}</h2>
{% if k.skipped %}<p>Skipped: {{ k.skipped }}</p>{% else %}
<p>{{ k.shots }} shots, {{ k.features }} features. Selected <b>{{ k.selected }}</b>: {{ k.reason }}</p>
<table><tr><th>family</th><th>threshold</th><th>method</th><th>false-alarm target</th><th>calibration</th>
<th>test false alarms (95 % interval)</th><th>fault episodes caught · median delay · coverage</th><th>precision</th><th>recall</th><th>recall by defect kind</th><th>F1</th><th>PR-AUC</th><th>ROC-AUC</th></tr>
{% for m in k.models %}<tr{% if m.chosen %} class="chosen"{% endif %}><td>{{ m.kind }}</td><td>{{ m.threshold }}</td>
<td>{{ m.method }}</td><td>{{ m.target }}</td><td>{{ m.calibration }}</td><td>{{ m.test_false_alarms }}</td><td>{{ m.onsets }}</td>
<td>{{ m.precision }}</td><td>{{ m.recall }}</td><td>{{ m.by_kind }}</td><td>{{ m.f1 }}</td><td>{{ m.pr_auc }}</td><td>{{ m.roc_auc }}</td></tr>
{% endfor %}</table>
<div class="plots">{{ k.roc | safe }}{{ k.pr | safe }}{{ k.timeline | safe }}</div>{% endif %}
{% endfor %}</body></html>"#;

#[derive(Serialize)]
struct Page {
    lake: String,
    created_at: String,
    code_version: String,
    device: String,
    seconds: String,
    keys: Vec<KeyPage>,
}

#[derive(Serialize)]
struct KeyPage {
    label: String,
    skipped: Option<String>,
    shots: usize,
    features: usize,
    selected: String,
    reason: String,
    models: Vec<ModelRow>,
    roc: String,
    pr: String,
    timeline: String,
}

#[derive(Serialize)]
struct ModelRow {
    kind: String,
    chosen: bool,
    threshold: String,
    method: String,
    target: String,
    calibration: String,
    test_false_alarms: String,
    onsets: String,
    precision: String,
    recall: String,
    by_kind: String,
    f1: String,
    pr_auc: String,
    roc_auc: String,
}

fn est(e: Option<&Estimate>) -> String {
    match e.map(|e| (e.value, e.ci_low, e.ci_high)) {
        Some((Some(v), Some(l), Some(h))) => format!("{v:.3} [{l:.2}, {h:.2}]"),
        Some((Some(v), _, _)) => format!("{v:.3}"),
        _ => "–".into(),
    }
}

fn row(m: &ModelOutcome, chosen: &str) -> ModelRow {
    let t = m.test.as_ref();
    let fa = &m.false_alarms;
    ModelRow {
        kind: m.kind.clone(),
        chosen: m.kind == chosen,
        threshold: format!("{:.4}", m.threshold.threshold),
        method: m.threshold.method.clone(),
        target: format!("{:.3}", fa.target),
        calibration: fa
            .calibration_rate
            .map_or("–".into(), |r| format!("{r:.3} of {}", fa.calibration_windows)),
        test_false_alarms: format!("{} of {}", est(Some(&fa.test_rate)), fa.test_windows),
        onsets: match (&m.onsets.median_delay, m.onsets.mean_coverage) {
            (Some(d), Some(c)) => {
                format!("{} of {} · {d} windows · {:.0} %", m.onsets.detected, m.onsets.episodes, 100.0 * c)
            }
            _ => format!("{} of {}", m.onsets.detected, m.onsets.episodes),
        },
        precision: est(t.map(|e| &e.precision)),
        recall: est(t.map(|e| &e.recall)),
        by_kind: m
            .test_by_kind
            .iter()
            .map(|(kind, r)| format!("{kind} {} ({}/{})", est(Some(&r.recall)), r.caught, r.windows))
            .collect::<Vec<_>>()
            .join("; "),
        f1: est(t.map(|e| &e.f1)),
        pr_auc: est(t.map(|e| &e.pr_auc)),
        roc_auc: est(t.map(|e| &e.roc_auc)),
    }
}

fn key_page(k: &KeyOutcome) -> Result<KeyPage> {
    let chosen = k.selection.as_ref().map_or(String::new(), |s| s.kind.clone());
    let families: Vec<&ModelOutcome> =
        [&k.pca, &k.lstm_ae, &k.baseline, &k.combined].into_iter().flatten().collect();
    let (mut roc, mut pr) = (Vec::new(), Vec::new());
    for m in &families {
        let (s, l): (Vec<f32>, Vec<u8>) = m.test_series.iter().filter_map(|p| p.2.map(|l| (p.1, l))).unzip();
        let (r, p) = metrics::curves(&s, &l);
        if !r.is_empty() {
            roc.push((m.kind.clone(), r));
            pr.push((m.kind.clone(), p));
        }
    }
    let plot = |title: &str, x: &str, y: &str, series: &[(String, metrics::Curve)]| -> Result<String> {
        if series.is_empty() { Ok(String::new()) } else { plots::curves(title, x, y, series) }
    };
    let timeline = match k.selected() {
        Some(m) if !m.test_series.is_empty() => {
            let t0 = m.test_series[0].0;
            let pts: Vec<(f64, f64, Option<u8>)> = m
                .test_series
                .iter()
                .map(|&(t, s, l)| ((t - t0) as f64 / 3_600_000.0, f64::from(s), l))
                .collect();
            let title = format!("{}: {} scores of the test windows", k.key.label(), m.kind);
            plots::timeline(&title, &pts, f64::from(m.threshold.threshold))?
        }
        _ => String::new(),
    };
    Ok(KeyPage {
        label: k.key.label(),
        skipped: k.skipped.clone(),
        shots: k.shots,
        features: k.features.len(),
        reason: k.selection.as_ref().map_or(String::new(), |s| s.reason.clone()),
        models: families.iter().map(|m| row(m, &chosen)).collect(),
        selected: chosen,
        roc: plot("ROC on test windows", "false-positive rate", "recall", &roc)?,
        pr: plot("Precision–recall on test windows", "recall", "precision", &pr)?,
        timeline,
    })
}

/// The report as one HTML page.
pub fn render(r: &TrainReport) -> Result<String> {
    let page = Page {
        lake: r.lake.display().to_string(),
        created_at: r.created_at.clone(),
        code_version: r.code_version.clone(),
        device: r.device.clone(),
        seconds: format!("{:.1}", r.seconds),
        keys: r.keys.iter().map(key_page).collect::<Result<_>>()?,
    };
    let mut env = minijinja::Environment::new();
    env.add_template("train.html", TEMPLATE)?;
    Ok(env.get_template("train.html")?.render(&page)?)
}
