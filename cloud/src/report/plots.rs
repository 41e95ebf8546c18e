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

/// Draws named, coloured lines and their legend at `position`.
fn lines<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    series: impl IntoIterator<Item = (String, RGBColor, Vec<(f64, f64)>)>,
    position: SeriesLabelPosition,
) -> Result<()> {
    for (name, colour, pts) in series {
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Inline SVG for the browser: without the namespace URL (not needed inside HTML).
fn inline(svg: String) -> String {
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
}

/// Scatter of the embedding: grey normal, red defect (truth), orange no truth; a black ring
/// marks the shots the weak labelling called defects.
pub fn embedding(title: &str, points: &[EmbeddedShot]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 400)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (x0, x1) = range(points.iter().map(|p| p.xy[0]));
        let (y0, y1) = range(points.iter().map(|p| p.xy[1]));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("MDS 1").y_desc("MDS 2").draw().map_err(err)?;
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
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// Density histograms (as step lines) of real normal, real defect and synthetic values.
pub fn distribution(column: &str, normal: &[f64], defect: &[f64], synthetic: &[f64]) -> Result<String> {
    const BINS: usize = 30;
    let (lo, hi) = range(normal.iter().chain(defect).chain(synthetic).copied());
    let width = (hi - lo) / BINS as f64;
    let density = |v: &[f64]| -> Vec<(f64, f64)> {
        let mut counts = vec![0usize; BINS];
        for &x in v.iter().filter(|x| x.is_finite()) {
            counts[(((x - lo) / width) as usize).min(BINS - 1)] += 1;
        }
        let n = v.len().max(1) as f64;
        let mut pts = Vec::with_capacity(2 * BINS + 2);
        pts.push((lo, 0.0));
        for (b, &c) in counts.iter().enumerate() {
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (420, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(column, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(err)?;
        chart.configure_mesh().y_desc("density").draw().map_err(err)?;
        let drawn = series
            .into_iter()
            .zip([normal.len(), defect.len(), synthetic.len()])
            .filter(|(_, n)| *n > 0)
            .map(|((name, colour, pts), n)| (format!("{name} ({n})"), colour, pts));
        lines(&mut chart, drawn, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
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
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (360, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0..1.0, 0.0..1.02)
            .map_err(err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(err)?;
        let drawn =
            series.iter().zip(SERIES.iter().cycle()).map(|((name, pts), c)| (name.clone(), *c, pts.clone()));
        lines(&mut chart, drawn, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// Scores over time (hours since the first point): grey good, red defective, orange
/// unlabelled; the threshold as a dashed line.
pub fn timeline(title: &str, points: &[(f64, f64, Option<u8>)], threshold: f64) -> Result<String> {
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (y0, y1) = range(points.iter().map(|p| p.1).chain([threshold]));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("hours").y_desc("score").draw().map_err(err)?;
        for (colour, pick) in [(NORMAL, Some(0)), (UNKNOWN, None), (DEFECT, Some(1))] {
            let dots =
                points.iter().filter(|p| p.2 == pick).map(|p| Circle::new((p.0, p.1), 2, colour.filled()));
            chart.draw_series(dots).map_err(err)?;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, threshold), (x1, threshold)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}

/// A feature over shots (x: shot number), its line in blue; the shots the edge alarmed on as
/// red rings.
pub fn trend(title: &str, feature: &str, points: &[(f64, f64)], alarms: &[(f64, f64)]) -> Result<String> {
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (y0, y1) = range(points.iter().map(|p| p.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("shot").y_desc(feature).draw().map_err(err)?;
        chart.draw_series(LineSeries::new(points.iter().copied(), SYNTH.stroke_width(1))).map_err(err)?;
        chart
            .draw_series(alarms.iter().map(|p| Circle::new(*p, 4, DEFECT.stroke_width(2))))
            .map_err(err)?
            .label("alarm")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, DEFECT.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(inline(svg))
}
