//! The report's plots as inline SVG strings (plotters' SVG backend, its built-in text
//! measurement — no font files, no external references): the 2-D embedding coloured by label
//! and real-vs-synthetic distributions of a column (augment); ROC and PR curves and scores over
//! time (train).

use crate::augment::group::EmbeddedShot;
use anyhow::{Result, anyhow};
use plotters::prelude::*;

const NORMAL: RGBColor = RGBColor(140, 140, 140);
const DEFECT: RGBColor = RGBColor(214, 39, 40);
const UNKNOWN: RGBColor = RGBColor(255, 160, 60);
const SYNTH: RGBColor = RGBColor(31, 119, 180);

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// Which shots a legend entry takes, by truth label.
type Pick = fn(Option<f64>) -> bool;

/// Range of `values` with a 5 % margin (a unit range when empty or flat).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (lo - pad, hi + pad)
}

/// A chart of these plots: f64 on both axes, drawn into an SVG string.
type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draws named, coloured lines (their legend entries are drawn by [`plot`]).
fn lines(
    chart: &mut Chart<'_, '_>,
    series: impl IntoIterator<Item = (String, RGBColor, Vec<(f64, f64)>)>,
) -> Result<()> {
    for (name, colour, pts) in series {
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    Ok(())
}

/// Inline SVG for the browser: without the namespace URL (not needed inside HTML).
fn inline(svg: String) -> String {
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
}

/// How one plot is laid out: its size, caption, axis ranges and axis names.
struct Layout<'t> {
    size: (u32, u32),
    title: &'t str,
    x: (f64, f64),
    y: (f64, f64),
    x_desc: &'t str,
    y_desc: &'t str,
    /// Where the legend of the labelled series goes (none: no legend).
    legend: Option<SeriesLabelPosition>,
}

/// Draws one chart into a fresh SVG — white background, caption, labelled mesh — then lets
/// `body` draw the series; returns the SVG for inlining.
fn plot(
    layout: Layout<'_>,
    body: impl for<'a, 'b> FnOnce(&mut Chart<'a, 'b>) -> Result<()>,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, layout.size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(layout.title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(52)
            .build_cartesian_2d(layout.x.0..layout.x.1, layout.y.0..layout.y.1)
            .map_err(err)?;
        chart.configure_mesh().x_desc(layout.x_desc).y_desc(layout.y_desc).draw().map_err(err)?;
        body(&mut chart)?;
        if let Some(position) = layout.legend {
            chart
                .configure_series_labels()
                .position(position)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// Scatter of the embedding: grey normal, red defect (truth), orange no truth; a black ring
/// marks the shots the weak labelling called defects.
pub fn embedding(title: &str, points: &[EmbeddedShot]) -> Result<String> {
    let x = range(points.iter().map(|p| p.xy[0]));
    let y = range(points.iter().map(|p| p.xy[1]));
    let layout = Layout {
        size: (520, 400),
        title,
        x,
        y,
        x_desc: "MDS 1",
        y_desc: "MDS 2",
        legend: Some(SeriesLabelPosition::UpperLeft),
    };
    plot(layout, |chart| {
        let classes: [(&str, RGBColor, Pick); 3] = [
            ("normal (truth)", NORMAL, |t| t.is_some_and(|v| !moldops_learn::data::is_defect(v))),
            ("defect (truth)", DEFECT, |t| t.is_some_and(moldops_learn::data::is_defect)),
            ("no truth", UNKNOWN, |t| t.is_none()),
        ];
        for (name, colour, pick) in classes {
            let pts: Vec<(f64, f64)> =
                points.iter().filter(|p| pick(p.truth)).map(|p| (p.xy[0], p.xy[1])).collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 3, colour.filled()));
        }
        let weak: Vec<(f64, f64)> =
            points.iter().filter(|p| p.weak == Some(1)).map(|p| (p.xy[0], p.xy[1])).collect();
        if !weak.is_empty() {
            chart
                .draw_series(weak.iter().map(|&p| Circle::new(p, 6, BLACK.stroke_width(1))))
                .map_err(err)?
                .label("weak label: defect")
                .legend(|(x, y)| Circle::new((x + 8, y), 6, BLACK.stroke_width(1)));
        }
        Ok(())
    })
}

/// Counts of `values` in `bins` equal bins from `lo` to `hi` (values outside go to the end bins).
fn bin_counts(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<usize> {
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for &x in values.iter().filter(|x| x.is_finite()) {
        counts[(((x - lo) / width).max(0.0) as usize).min(bins - 1)] += 1;
    }
    counts
}

/// Density histograms (as step lines) of real normal, real defect and synthetic values.
pub fn distribution(column: &str, normal: &[f64], defect: &[f64], synthetic: &[f64]) -> Result<String> {
    const BINS: usize = 30;
    let (lo, hi) = range(normal.iter().chain(defect).chain(synthetic).copied());
    let width = (hi - lo) / BINS as f64;
    let density = |v: &[f64]| -> Vec<(f64, f64)> {
        let n = v.len().max(1) as f64;
        let mut pts = Vec::with_capacity(2 * BINS + 2);
        pts.push((lo, 0.0));
        for (b, c) in bin_counts(v, lo, hi, BINS).into_iter().enumerate() {
            let d = c as f64 / (n * width);
            pts.push((lo + b as f64 * width, d));
            pts.push((lo + (b + 1) as f64 * width, d));
        }
        pts.push((hi, 0.0));
        pts
    };
    let series = [
        ("real normal", NORMAL, density(normal)),
        ("real defect", DEFECT, density(defect)),
        ("synthetic", SYNTH, density(synthetic)),
    ];
    let top = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0, f64::max).max(1e-12) * 1.1;
    let layout = Layout {
        size: (420, 280),
        title: column,
        x: (lo, hi),
        y: (0.0, top),
        x_desc: "",
        y_desc: "density",
        legend: Some(SeriesLabelPosition::UpperRight),
    };
    plot(layout, |chart| {
        let drawn = series
            .into_iter()
            .zip([normal.len(), defect.len(), synthetic.len()])
            .filter(|(_, n)| *n > 0)
            .map(|((name, colour, pts), n)| (format!("{name} ({n})"), colour, pts));
        lines(chart, drawn)
    })
}

/// Colours of the curves of several models, in order.
const SERIES: [RGBColor; 4] = [SYNTH, DEFECT, RGBColor(44, 160, 44), NORMAL];

/// Lines on the unit square, one per named series (ROC and PR curves): `(x, y)` points each.
pub fn curves(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<String> {
    let layout = Layout {
        size: (360, 300),
        title,
        x: (0.0, 1.0),
        y: (0.0, 1.02),
        x_desc,
        y_desc,
        legend: Some(SeriesLabelPosition::LowerRight),
    };
    plot(layout, |chart| {
        let drawn =
            series.iter().zip(SERIES.iter().cycle()).map(|((name, pts), c)| (name.clone(), *c, pts.clone()));
        lines(chart, drawn)
    })
}

/// A horizontal dashed line at `y` across the chart (a threshold).
fn threshold_line(chart: &mut Chart<'_, '_>, x: (f64, f64), y: f64, colour: RGBColor) -> Result<()> {
    chart
        .draw_series(DashedLineSeries::new([(x.0, y), (x.1, y)], 6, 4, colour.stroke_width(1)))
        .map_err(err)?;
    Ok(())
}

/// Scores over time (hours since the first point): grey good, red defective, orange
/// unlabelled; the threshold as a dashed line.
pub fn timeline(title: &str, points: &[(f64, f64, Option<u8>)], threshold: f64) -> Result<String> {
    let x = range(points.iter().map(|p| p.0));
    let y = range(points.iter().map(|p| p.1).chain([threshold]));
    let layout = Layout { size: (760, 260), title, x, y, x_desc: "hours", y_desc: "score", legend: None };
    plot(layout, |chart| {
        for (colour, pick) in [(NORMAL, Some(0)), (UNKNOWN, None), (DEFECT, Some(1))] {
            let dots =
                points.iter().filter(|p| p.2 == pick).map(|p| Circle::new((p.0, p.1), 2, colour.filled()));
            chart.draw_series(dots).map_err(err)?;
        }
        threshold_line(chart, x, threshold, BLACK)
    })
}

/// A feature over shots, its line in blue; the shots the edge alarmed on as red rings. `axes`
/// names the x and y axes.
pub fn trend(
    title: &str,
    axes: (&str, &str),
    points: &[(f64, f64)],
    alarms: &[(f64, f64)],
) -> Result<String> {
    let x = range(points.iter().map(|p| p.0));
    let y = range(points.iter().map(|p| p.1));
    let layout = Layout {
        size: (900, 300),
        title,
        x,
        y,
        x_desc: axes.0,
        y_desc: axes.1,
        legend: Some(SeriesLabelPosition::UpperRight),
    };
    plot(layout, |chart| {
        chart.draw_series(LineSeries::new(points.iter().copied(), SYNTH.stroke_width(1))).map_err(err)?;
        chart
            .draw_series(alarms.iter().map(|p| Circle::new(*p, 4, DEFECT.stroke_width(2))))
            .map_err(err)?
            .label("alarm")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, DEFECT.stroke_width(2)));
        Ok(())
    })
}

/// Training and validation loss per epoch: `(epoch, training, validation)`.
pub fn training(title: &str, epochs: &[(f64, f64, f64)]) -> Result<String> {
    let x = range(epochs.iter().map(|e| e.0));
    let y = range(epochs.iter().flat_map(|e| [e.1, e.2]));
    let layout = Layout {
        size: (480, 280),
        title,
        x,
        y,
        x_desc: "epoch",
        y_desc: "loss",
        legend: Some(SeriesLabelPosition::UpperRight),
    };
    plot(layout, |chart| {
        let train = epochs.iter().map(|e| (e.0, e.1)).collect();
        let validation = epochs.iter().map(|e| (e.0, e.2)).collect();
        let series = [("training".to_string(), SYNTH, train), ("validation".to_string(), DEFECT, validation)];
        lines(chart, series)
    })
}

/// A histogram of scores in `bins` equal bins, the threshold as a dashed red line.
pub fn histogram(title: &str, scores: &[f64], threshold: f64, bins: usize) -> Result<String> {
    let (x0, x1) = range(scores.iter().copied().chain([threshold]));
    let counts = bin_counts(scores, x0, x1, bins);
    let width = (x1 - x0) / counts.len() as f64;
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.05;
    let layout = Layout {
        size: (480, 280),
        title,
        x: (x0, x1),
        y: (0.0, top),
        x_desc: "score",
        y_desc: "shots",
        legend: None,
    };
    plot(layout, |chart| {
        let bars = counts.iter().enumerate().map(|(i, n)| {
            let left = x0 + i as f64 * width;
            Rectangle::new([(left, 0.0), (left + width, *n as f64)], SYNTH.mix(0.6).filled())
        });
        chart.draw_series(bars).map_err(err)?;
        let dashed =
            DashedLineSeries::new([(threshold, 0.0), (threshold, top)], 6, 4, DEFECT.stroke_width(2));
        chart.draw_series(dashed).map_err(err)?;
        Ok(())
    })
}
