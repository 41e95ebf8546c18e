//! The demo's closing page (`demo/report.html`): one self-contained HTML file a person opens in
//! a browser — what arrived in the lake, the models the pipeline trained (version, threshold,
//! test metrics), how the edge's live alarms compared with the simulator's truth, and links to
//! the augment report and the pipeline's task logs.

use crate::live::Detection;
use anyhow::Result;
use moldops_cloud::registry::Registry;
use std::fmt::Write as _;
use std::path::Path;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What the page shows.
pub struct PageInput<'a> {
    pub dir: &'a Path,
    pub lake_table: &'a str,
    pub exactly_once: &'a str,
    pub detection: &'a Detection,
}

/// The models section: every key's production version with its threshold and metrics.
fn models(registry: &Path) -> String {
    let mut out = String::new();
    let Ok(reg) = Registry::open(registry) else { return "<p>no registry</p>".into() };
    for key in reg.keys().unwrap_or_default() {
        let Ok(Some(p)) = reg.production(&key) else { continue };
        let Ok(v) = reg.version(&key, p.version) else { continue };
        let metrics = serde_json::to_string_pretty(&v.record.metrics).unwrap_or_default();
        let _ = write!(
            out,
            "<h3>{} · version {} ({}) · threshold {:.4}</h3><pre>{}</pre>",
            esc(&key.label()),
            p.version,
            esc(&v.record.kind),
            v.record.threshold,
            esc(&metrics)
        );
    }
    if out.is_empty() { "<p>no production model</p>".into() } else { out }
}

/// Renders the page.
pub fn render(i: &PageInput<'_>) -> String {
    let d = i.detection;
    let mut defects = String::new();
    for (kind, (caught, total)) in &d.by_defect {
        let _ = write!(defects, "<tr><td>{}</td><td>{caught}</td><td>{total}</td></tr>", esc(kind));
    }
    let augment = i.dir.join("lake/_augment/report.html");
    let augment_link = if augment.exists() {
        "<a href=\"lake/_augment/report.html\">augment report (weak labels, GAN, gate)</a>".to_string()
    } else {
        "no augment report".to_string()
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>moldops demo</title>\
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}}\
pre{{background:#f6f6f6;padding:.6em;overflow-x:auto}}td,th{{padding:.2em .8em;text-align:right}}\
.big{{font-size:1.3em}}</style></head><body>\
<h1>moldops demo</h1>\
<p class=\"big\">Live scoring: <b>{scored}</b> shots scored, <b>{alarms}</b> alarms · precision <b>{p:.2}</b> · recall <b>{r:.2}</b> · F1 <b>{f1:.2}</b></p>\
<table><tr><th>defect</th><th>caught</th><th>of</th></tr>{defects}\
<tr><td>false alarms</td><td>{fa}</td><td>{good}</td></tr></table>\
<h2>Data path</h2><p>{once}</p><pre>{lake}</pre>\
<h2>Models in production</h2>{models}\
<h2>More</h2><ul><li>{augment_link}</li>\
<li>pipeline runs and task logs: <code>pipeline/runs/</code> (<code>moldops-cloud pipeline runs --data-dir {dir}</code>)</li>\
<li>registry: <code>moldops-cloud models list --registry {dir}/registry</code></li></ul>\
</body></html>\n",
        scored = d.scored,
        alarms = d.alarms,
        p = d.precision,
        r = d.recall,
        f1 = d.f1,
        fa = d.false_alarms,
        good = d.scored - d.defective,
        once = esc(i.exactly_once),
        lake = esc(i.lake_table),
        models = models(&i.dir.join("registry")),
        dir = esc(&i.dir.display().to_string()),
    )
}

/// Writes the page atomically; returns its path.
pub fn write(i: &PageInput<'_>) -> Result<std::path::PathBuf> {
    let path = i.dir.join("report.html");
    moldops_common::fs::write_atomic(&path, render(i).as_bytes())?;
    Ok(path)
}
