//! Self-contained HTML reports: one page, inline CSS and inline SVG plots ([`plots`]), no
//! scripts, fonts, images or links to fetch. [`html`] renders the augment report.

pub mod plots;

use crate::augment::{AugmentReport, GroupPlots, GroupReport};
use anyhow::Result;
use std::fmt::Write;

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.pass{color:#11772d;font-weight:bold}\
.fail{color:#b00020;font-weight:bold}.plots svg{margin:4px;border:1px solid #eee}h2{border-bottom:2px solid #ddd}";

fn verdict(passed: bool) -> &'static str {
    if passed { "<span class=\"pass\">passed</span>" } else { "<span class=\"fail\">failed</span>" }
}

/// The augment report as one HTML page.
pub fn html(report: &AugmentReport, plots: &[GroupPlots]) -> Result<String> {
    let mut h = String::new();
    let t = &report.totals;
    write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>moldops augment report</title>\
         <style>{STYLE}</style></head><body><h1>moldops augment report</h1>\
         <p>Lake <code>{}</code>, {} · seed {} · GAN trained on {} · {:.1} s</p>",
        escape(&report.lake),
        escape(&report.created_at),
        report.settings.seed,
        escape(&report.device),
        report.seconds
    )?;
    write!(
        h,
        "<table><tr><th>groups</th><th>rows</th><th>outliers marked</th><th>weak-labelled</th>\
         <th>labels filled by weak</th><th>GAN trained</th><th>gate passed</th><th>synthetic rows written</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        t.groups,
        t.rows,
        t.outliers,
        t.weak_labelled,
        t.weak_filled,
        t.gan_trained,
        t.gate_passed,
        t.synthetic_written
    )?;
    match &report.agreement {
        Some(a) => write!(
            h,
            "<p><b>Weak labels vs ground truth</b> over {} shots: precision {:.3}, recall {:.3}, F1 {:.3}, \
             accuracy {:.3} (tp {}, fp {}, fn {}, tn {}).</p>",
            a.rows,
            a.precision,
            a.recall,
            a.f1,
            a.accuracy,
            a.confusion.tp,
            a.confusion.fp,
            a.confusion.fn_,
            a.confusion.tn
        )?,
        None => h.push_str("<p>No shot has both a weak label and ground truth.</p>"),
    }
    for (g, p) in report.groups.iter().zip(plots) {
        group(&mut h, g, p)?;
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn group(h: &mut String, g: &GroupReport, p: &GroupPlots) -> Result<()> {
    write!(
        h,
        "<h2>{}</h2><p>{} rows, {} with ground truth ({} defects). Fence marked {} rows as outliers \
         ({} of them true defects, kept). Features: {}.</p>",
        escape(&p.title),
        g.rows,
        g.truth_labelled,
        g.truth_defects,
        g.outliers,
        g.outlier_defects,
        g.features.len()
    )?;
    h.push_str(
        "<h3>Weak labels (MDS + DBSCAN per run)</h3><table><tr><th>run</th><th>shots</th><th>status</th>\
                <th>eps</th><th>min_samples</th><th>weak defects</th><th>landmark MDS</th></tr>",
    );
    for r in &g.runs {
        let (eps, ms) = r
            .choice
            .as_ref()
            .map_or(("-".into(), "-".into()), |c| (format!("{}", c.eps), c.min_samples.to_string()));
        write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{eps}</td><td>{ms}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.run_id),
            r.shots,
            escape(&r.status),
            r.weak_defects,
            r.landmark_mds
        )?;
    }
    h.push_str("</table>");
    if let Some(a) = &g.agreement {
        write!(
            h,
            "<p>Against truth ({} shots): precision {:.3}, recall {:.3}, F1 {:.3} (tp {}, fp {}, fn {}, tn {}).</p>",
            a.rows,
            a.precision,
            a.recall,
            a.f1,
            a.confusion.tp,
            a.confusion.fp,
            a.confusion.fn_,
            a.confusion.tn
        )?;
    }
    h.push_str("<h3>GAN and synthetic-data gate</h3>");
    let gan = &g.gan;
    write!(
        h,
        "<p>GAN {}: trained on {} rows ({} defects), holdout {} rows ({} defects); {} generated, {} written.{}</p>",
        escape(&gan.status.to_string()),
        gan.train_rows,
        gan.train_defects,
        gan.holdout_rows,
        gan.holdout_defects,
        gan.generated,
        gan.written,
        gan.reason.as_deref().map(|r| format!(" {}", escape(r))).unwrap_or_default()
    )?;
    if let Some(gate) = &gan.gate {
        write!(
            h,
            "<p>Gate: {}</p><table><tr><th>check</th><th>result</th><th>value</th><th>threshold</th><th>detail</th></tr>",
            verdict(gate.passed)
        )?;
        for c in &gate.checks {
            write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
                escape(&c.name),
                verdict(c.passed),
                c.value,
                c.threshold,
                escape(&c.detail)
            )?;
        }
        h.push_str("</table><details><summary>KS per column</summary><table><tr><th>column</th><th>D</th><th>p</th></tr>");
        for c in &gate.columns {
            write!(
                h,
                "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                escape(&c.column),
                c.statistic,
                c.p_value
            )?;
        }
        h.push_str("</table></details>");
    }
    h.push_str("<div class=\"plots\">");
    if !p.embedding.is_empty() {
        h.push_str(&plots::embedding(&format!("2-D embedding, {}", p.title), &p.embedding)?);
    }
    for d in &p.distributions {
        h.push_str(&plots::distribution(&d.column, &d.normal, &d.defect, &d.synthetic)?);
    }
    h.push_str("</div>");
    Ok(())
}
