//! The report's charts, drawn with plotters' SVG backend into strings (the
//! same SVG is written beside report.md and inlined in index.html).
//!
//! Bars are horizontal: contender labels ("rustscan -b10000 -t500") are
//! long, and read better beside a bar than slanted under it. Each bar is a
//! median with a min–max whisker; engines and peers have their own colour.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::Spread;

/// An engine's bar.
const ENGINE: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
/// A peer's bar.
const PEER: RGBColor = RGBColor(0xdd, 0x84, 0x52);
/// Width of the drawing, px.
const WIDTH: u32 = 640;

fn chart_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw a chart: {e:?}")
}

/// An SVG document `height` px high on a white ground, drawn by `draw`.
fn canvas(
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        draw(&root)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Pixels a label of `chars` characters takes at the axis font.
fn label_width(labels: impl Iterator<Item = usize>) -> u32 {
    (labels.max().unwrap_or(4) as u32 * 7 + 16).clamp(60, 260)
}

/// The contender named at a segment of the contender axis.
fn segment_name<'a>(v: &SegmentValue<usize>, name: impl Fn(usize) -> Option<&'a str>) -> String {
    match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => name(*i).unwrap_or_default().to_string(),
        SegmentValue::Last => String::new(),
    }
}

/// A horizontal bar chart of `bars` (median, min–max whisker), `unit` on
/// the value axis. `None` when there is nothing to draw.
pub fn bars(title: &str, unit: &str, bars: &[Spread]) -> anyhow::Result<Option<String>> {
    if bars.is_empty() {
        return Ok(None);
    }
    // Segment 0 is at the bottom: reversed, the first contender is on top.
    let bars: Vec<&Spread> = bars.iter().rev().collect();
    let n = bars.len();
    let top = bars.iter().map(|b| b.max.max(b.median)).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.18 } else { 1.0 };
    let height = 70 + 28 * n as u32;
    let svg = canvas(height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(label_width(bars.iter().map(|b| b.tool.chars().count())))
            .build_cartesian_2d(0.0..top, (0..n).into_segmented())
            .map_err(chart_error)?;
        let label = |v: &SegmentValue<usize>| segment_name(v, |i| bars.get(i).map(|b| b.tool.as_str()));
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_desc(unit)
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let colour = if b.peer { PEER } else { ENGINE };
                let mut bar = Rectangle::new(
                    [(0.0, SegmentValue::Exact(i)), (b.median, SegmentValue::Exact(i + 1))],
                    colour.filled(),
                );
                bar.set_margin(5, 5, 0, 0);
                bar
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().filter(|(_, b)| b.max > b.min).map(|(i, b)| {
                ErrorBar::new_horizontal(SegmentValue::CenterOf(i), b.min, b.median, b.max, BLACK.stroke_width(1), 8)
            }))
            .map_err(chart_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                EmptyElement::at((b.max.max(b.median), SegmentValue::CenterOf(i)))
                    + Text::new(short(b.median), (6, -6), ("sans-serif", 11).into_font())
            }))
            .map_err(chart_error)?;
        Ok(())
    })?;
    Ok(Some(svg))
}

/// A bar's value label: three significant digits, no exponent.
fn short(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// One server's latency distribution: p50, p99 and max, µs.
#[derive(Clone, Debug)]
pub struct Latency {
    /// The server.
    pub tool: String,
    /// Median latency.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst.
    pub max: f64,
}

/// The servers' latency distributions on a log axis (ms): a line from
/// p50 to max per server, marks at p50 (circle), p99 (triangle), max
/// (square).
pub fn latency(title: &str, servers: &[Latency]) -> anyhow::Result<Option<String>> {
    let servers: Vec<&Latency> = servers.iter().rev().filter(|s| s.p50 > 0.0 && s.max >= s.p50).collect();
    if servers.is_empty() {
        return Ok(None);
    }
    let n = servers.len();
    let ms = |us: f64| us / 1000.0;
    let low = servers.iter().map(|s| ms(s.p50)).fold(f64::INFINITY, f64::min) / 2.0;
    let high = servers.iter().map(|s| ms(s.max)).fold(0.0, f64::max) * 2.0;
    let height = 100 + 32 * n as u32;
    let svg = canvas(height, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(label_width(servers.iter().map(|s| s.tool.chars().count())))
            .build_cartesian_2d((low..high).log_scale(), (0..n).into_segmented())
            .map_err(chart_error)?;
        let label = |v: &SegmentValue<usize>| segment_name(v, |i| servers.get(i).map(|s| s.tool.as_str()));
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_desc("latency, ms (log scale)")
            .draw()
            .map_err(chart_error)?;
        let at = |i: usize| SegmentValue::CenterOf(i);
        for (i, s) in servers.iter().enumerate() {
            chart
                .draw_series(LineSeries::new([(ms(s.p50), at(i)), (ms(s.max), at(i))], ENGINE.stroke_width(2)))
                .map_err(chart_error)?;
        }
        chart
            .draw_series(servers.iter().enumerate().map(|(i, s)| Circle::new((ms(s.p50), at(i)), 5, ENGINE.filled())))
            .map_err(chart_error)?
            .label("p50")
            .legend(|(x, y)| Circle::new((x, y), 5, ENGINE.filled()));
        chart
            .draw_series(
                servers.iter().enumerate().map(|(i, s)| TriangleMarker::new((ms(s.p99), at(i)), 6, PEER.filled())),
            )
            .map_err(chart_error)?
            .label("p99")
            .legend(|(x, y)| TriangleMarker::new((x, y), 6, PEER.filled()));
        chart
            .draw_series(
                servers.iter().enumerate().map(|(i, s)| Cross::new((ms(s.max), at(i)), 5, BLACK.stroke_width(2))),
            )
            .map_err(chart_error)?
            .label("max")
            .legend(|(x, y)| Cross::new((x, y), 5, BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        Ok(())
    })?;
    Ok(Some(svg))
}

/// One line of a sweep chart: a contender's (x, y) points.
#[derive(Clone, Debug)]
pub struct Line {
    /// The contender.
    pub tool: String,
    /// Its points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A line's colour: the same contender has the same colour in every sweep
/// chart (engines blue, green and purple; the chapter's programs and other
/// peers warm colours; the reference grey).
fn line_colour(tool: &str, unnamed: &mut usize) -> RGBColor {
    const OTHERS: [RGBColor; 3] = [PEER, RGBColor(0xb0, 0x3a, 0x2e), RGBColor(0x7f, 0x6a, 0x00)];
    match tool {
        "trident-threads" => ENGINE,
        "trident-processes" => RGBColor(0x3b, 0x9a, 0x5a),
        "trident-async" => RGBColor(0x8e, 0x44, 0xad),
        "reference" => RGBColor(0x66, 0x66, 0x66),
        "chapter-threads" => PEER,
        "chapter-processes" => RGBColor(0xc0, 0x39, 0x2b),
        "chapter-asyncio" => RGBColor(0x8c, 0x56, 0x4b),
        _ => {
            *unnamed += 1;
            OTHERS[(*unnamed - 1) % OTHERS.len()]
        }
    }
}

/// A sweep: y against x, both on log axes (the sweeps grow by factors),
/// a line with marks per contender.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, lines: &[Line]) -> anyhow::Result<Option<String>> {
    let points = || lines.iter().flat_map(|l| l.points.iter()).filter(|(x, y)| *x > 0.0 && *y > 0.0);
    let Some(x0) = points().map(|p| p.0).reduce(f64::min) else { return Ok(None) };
    let x1 = points().map(|p| p.0).fold(x0, f64::max);
    let y0 = points().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y1 = points().map(|p| p.1).fold(y0, f64::max);
    let svg = canvas(360, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(56)
            .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), (y0 / 1.5..y1 * 1.5).log_scale())
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(10)
            .y_labels(8)
            .light_line_style(WHITE.mix(0.0))
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .draw()
            .map_err(chart_error)?;
        let mut unnamed = 0;
        for line in lines {
            let colour = line_colour(&line.tool, &mut unnamed);
            let points: Vec<(f64, f64)> = line.points.iter().copied().filter(|(x, y)| *x > 0.0 && *y > 0.0).collect();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                .map_err(chart_error)?
                .label(line.tool.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled()))).map_err(chart_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(chart_error)?;
        Ok(())
    })?;
    Ok(Some(svg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_chart_names_every_contender() {
        let bar = |tool: &str, peer| Spread { tool: tool.into(), peer, median: 2.0, min: 1.0, max: 3.0 };
        let svg = bars("wall", "s", &[bar("trident-async", false), bar("nmap -sT", true)]).unwrap().unwrap();
        assert!(svg.contains("<svg") && svg.contains("trident-async") && svg.contains("nmap -sT"));
        assert!(bars("wall", "s", &[]).unwrap().is_none());
        let l = Latency { tool: "trident-threads".into(), p50: 100.0, p99: 900.0, max: 4000.0 };
        assert!(latency("latency", &[l]).unwrap().unwrap().contains("trident-threads"));
        let line = Line { tool: "trident-async".into(), points: vec![(16.0, 2.0), (256.0, 0.5)] };
        assert!(lines("sweep", "x", "y", &[line]).unwrap().unwrap().contains("trident-async"));
        assert!(lines("sweep", "x", "y", &[]).unwrap().is_none());
    }
}
