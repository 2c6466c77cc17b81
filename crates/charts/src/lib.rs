//! Metric charts drawn with plotters as SVG text, the same on the server
//! (the first paint) and in the browser (every change after hydration),
//! plus the geometry the dashboard needs to read a chart under the pointer.
//!
//! Axes, ticks and labels are drawn in `currentColor`, so one SVG follows
//! the page's light or dark theme through CSS; series take colours from
//! [`PALETTE`], chosen to read on both backgrounds.

pub mod parallel;

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Series colours, in order of use: readable on white and on slate-950.
pub const PALETTE: [&str; 10] = [
    "#10b981", "#3b82f6", "#f59e0b", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
    "#f97316", "#64748b",
];

/// The colour of series number `index`.
pub fn color(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// Drawn, then swapped for `currentColor` in the text: a colour no chart
/// uses on purpose.
const INK: RGBColor = RGBColor(1, 2, 3);
const INK_HEX: &str = "#010203";

/// How the y axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YScale {
    #[default]
    Linear,
    /// Base 10; values ≤ 0 are left out.
    Log,
}

/// What the x values are, for the tick labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XFormat {
    /// Steps.
    #[default]
    Step,
    /// Seconds since the run's first point.
    Seconds,
    /// Milliseconds since the epoch, shown as UTC clock time.
    WallMillis,
}

/// One series: `(x, y)` points ordered by x; a NaN y breaks the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    /// Index into [`PALETTE`].
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

/// A chart to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart<'a> {
    pub lines: &'a [Line],
    pub x_format: XFormat,
    pub y_scale: YScale,
    /// Size of the drawing in SVG units (it scales with its box).
    pub width: u32,
    pub height: u32,
}

/// Where the data sits in a drawn chart: the plot area in SVG units and
/// the data ranges it spans, to map the pointer back to data and data to
/// marks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub x: (f64, f64),
    /// In value space (not log space) for both scales.
    pub y: (f64, f64),
    pub log: bool,
}

impl Frame {
    /// The x value at horizontal SVG position `px` (clamped to the plot).
    pub fn x_at(&self, px: f64) -> f64 {
        let t = ((px - self.left) / (self.right - self.left).max(1.0)).clamp(0.0, 1.0);
        self.x.0 + t * (self.x.1 - self.x.0)
    }

    /// The horizontal SVG position of `x`.
    pub fn px(&self, x: f64) -> f64 {
        let span = self.x.1 - self.x.0;
        let t = if span > 0.0 {
            (x - self.x.0) / span
        } else {
            0.5
        };
        self.left + t * (self.right - self.left)
    }

    /// The vertical SVG position of `y`; `None` where the scale cannot
    /// show it (NaN, or ≤ 0 on a log scale).
    pub fn py(&self, y: f64) -> Option<f64> {
        let map = |v: f64| if self.log { v.log10() } else { v };
        if y.is_nan() || (self.log && y <= 0.0) {
            return None;
        }
        let (low, high) = (map(self.y.0), map(self.y.1));
        let t = if high > low {
            (map(y) - low) / (high - low)
        } else {
            0.5
        };
        Some(self.bottom - t * (self.bottom - self.top))
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartError(pub String);

impl std::fmt::Display for ChartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chart: {}", self.0)
    }
}

impl std::error::Error for ChartError {}

fn err(e: impl std::fmt::Display) -> ChartError {
    ChartError(e.to_string())
}

/// A number in at most 4 significant digits, compact for tick labels.
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// An x value as its axis shows it.
pub fn format_x(x: f64, format: XFormat) -> String {
    match format {
        XFormat::Step => {
            if x.abs() >= 1e6 {
                format!("{:.2}M", x / 1e6)
            } else if x.abs() >= 1e4 {
                format!("{:.1}k", x / 1e3)
            } else {
                format!("{}", x.round() as i64)
            }
        }
        XFormat::Seconds => {
            let s = x.round() as i64;
            match s.abs() {
                0..60 => format!("{s}s"),
                60..3600 => format!("{}m{:02}s", s / 60, (s % 60).abs()),
                _ => format!("{}h{:02}m", s / 3600, ((s % 3600) / 60).abs()),
            }
        }
        XFormat::WallMillis => chrono::DateTime::from_timestamp_millis(x as i64)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default(),
    }
}

/// The index of the point of `points` (ordered by x) nearest to `x`.
pub fn nearest(points: &[(f64, f64)], x: f64) -> Option<usize> {
    if points.is_empty() {
        return None;
    }
    let after = points.partition_point(|p| p.0 < x);
    let candidates = [
        after.checked_sub(1),
        (after < points.len()).then_some(after),
    ];
    candidates
        .into_iter()
        .flatten()
        .min_by(|&a, &b| (points[a].0 - x).abs().total_cmp(&(points[b].0 - x).abs()))
}

/// The ranges a chart spans: x over all points, y over the points the
/// scale can show, padded so lines do not touch the frame.
fn ranges(lines: &[Line], log: bool) -> ((f64, f64), (f64, f64)) {
    let mut x = (f64::INFINITY, f64::NEG_INFINITY);
    let mut y = (f64::INFINITY, f64::NEG_INFINITY);
    for &(px, py) in lines.iter().flat_map(|l| &l.points) {
        x = (x.0.min(px), x.1.max(px));
        if py.is_finite() && (!log || py > 0.0) {
            y = (y.0.min(py), y.1.max(py));
        }
    }
    if !x.0.is_finite() {
        x = (0.0, 1.0);
    }
    if x.0 == x.1 {
        x = (x.0 - 1.0, x.1 + 1.0);
    }
    if !y.0.is_finite() {
        y = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    let y = if log {
        let (lo, hi) = (y.0.log10(), y.1.log10());
        let pad = ((hi - lo) * 0.05).max(0.05);
        (10_f64.powf(lo - pad), 10_f64.powf(hi + pad))
    } else {
        let pad = if y.1 > y.0 {
            (y.1 - y.0) * 0.05
        } else {
            y.0.abs().max(1.0) * 0.1
        };
        (y.0 - pad, y.1 + pad)
    };
    (x, y)
}

/// Draws `chart` as SVG text and returns it with its frame.
pub fn render(chart: &Chart<'_>) -> Result<(String, Frame), ChartError> {
    let log = chart.y_scale == YScale::Log;
    let (x, y) = ranges(chart.lines, log);
    let mut svg = String::new();
    let pixels = {
        let root =
            SVGBackend::with_string(&mut svg, (chart.width, chart.height)).into_drawing_area();
        let pixels = if log {
            draw(&root, chart, x, (y.0..y.1).log_scale())?
        } else {
            draw(&root, chart, x, y.0..y.1)?
        };
        root.present().map_err(err)?;
        pixels
    };
    let (xs, ys) = pixels;
    let frame = Frame {
        width: f64::from(chart.width),
        height: f64::from(chart.height),
        left: f64::from(xs.start),
        right: f64::from(xs.end),
        top: f64::from(ys.start),
        bottom: f64::from(ys.end),
        x,
        y,
        log,
    };
    Ok((themed(&svg, chart.width, chart.height), frame))
}

/// Draws axes and lines on `root` over `y` (linear or log), returning the
/// plot area's pixel ranges.
fn draw<Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    chart: &Chart<'_>,
    x: (f64, f64),
    y: Y,
) -> Result<(Range<i32>, Range<i32>), ChartError>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let log = chart.y_scale == YScale::Log;
    let mut plot = ChartBuilder::on(root)
        .margin_top(10)
        .margin_right(16)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(x.0..x.1, y)
        .map_err(err)?;
    let x_format = chart.x_format;
    let x_labels = |v: &f64| format_x(*v, x_format);
    let y_labels = |v: &f64| format_value(*v);
    plot.configure_mesh()
        .axis_style(INK.mix(0.5))
        .bold_line_style(INK.mix(0.10))
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 15).into_font().color(&INK.mix(0.8)))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&x_labels)
        .y_label_formatter(&y_labels)
        .draw()
        .map_err(err)?;
    for line in chart.lines {
        let style = ShapeStyle {
            color: hex(color(line.color)).to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        // Each unbroken run of showable points is one path.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut flush = |run: &mut Vec<(f64, f64)>| -> Result<(), ChartError> {
            match run.len() {
                0 => {}
                1 => {
                    plot.draw_series(std::iter::once(Circle::new(run[0], 2, style.filled())))
                        .map_err(err)?;
                }
                _ => {
                    plot.draw_series(LineSeries::new(run.drain(..), style))
                        .map_err(err)?;
                }
            }
            run.clear();
            Ok(())
        };
        for &(px, py) in &line.points {
            if py.is_finite() && (!log || py > 0.0) {
                run.push((px, py));
            } else {
                flush(&mut run)?;
            }
        }
        flush(&mut run)?;
    }
    Ok(plot.plotting_area().get_pixel_range())
}

fn hex(text: &str) -> RGBColor {
    let byte = |i: usize| u8::from_str_radix(text.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    RGBColor(byte(1), byte(3), byte(5))
}

/// Makes the SVG follow its box and the page's theme: ink becomes
/// `currentColor`, the fixed size becomes a viewBox.
fn themed(svg: &str, width: u32, height: u32) -> String {
    svg.replace(INK_HEX, "currentColor").replace(
        &format!("<svg width=\"{width}\" height=\"{height}\""),
        "<svg width=\"100%\" preserveAspectRatio=\"none\" role=\"img\"",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(points: Vec<(f64, f64)>) -> Line {
        Line {
            label: "loss".into(),
            color: 0,
            points,
        }
    }

    #[test]
    fn charts_draw_axes_in_the_theme_colour_and_lines_in_the_palette() {
        let lines = [line(
            (0..100).map(|i| (i as f64, (i as f64).sin())).collect(),
        )];
        let (svg, frame) = render(&Chart {
            lines: &lines,
            x_format: XFormat::Step,
            y_scale: YScale::Linear,
            width: 600,
            height: 240,
        })
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("viewBox=\"0 0 600 240\""), "{svg}");
        assert!(svg.contains("currentColor"));
        assert!(!svg.contains(INK_HEX));
        assert!(svg.to_lowercase().contains("#10b981"));
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(frame.left > 0.0 && frame.right < 600.0 && frame.top < frame.bottom);
        assert_eq!(frame.x, (0.0, 99.0));
        // The pointer maps back to data and data to the plot.
        assert!((frame.x_at(frame.px(42.0)) - 42.0).abs() < 1e-9);
        let top = frame.py(frame.y.1).unwrap();
        assert!((top - frame.top).abs() < 1e-9);
    }

    #[test]
    fn log_scales_leave_out_values_at_or_below_zero() {
        let lines = [line(vec![(0.0, 0.0), (1.0, 10.0), (2.0, 1000.0)])];
        let (svg, frame) = render(&Chart {
            lines: &lines,
            x_format: XFormat::Step,
            y_scale: YScale::Log,
            width: 400,
            height: 200,
        })
        .unwrap();
        assert!(frame.log);
        assert!(frame.y.0 > 0.0 && frame.y.0 < 10.0 && frame.y.1 > 1000.0);
        assert_eq!(frame.py(0.0), None);
        let (a, b) = (frame.py(10.0).unwrap(), frame.py(1000.0).unwrap());
        let mid = frame.py(100.0).unwrap();
        assert!(
            ((a + b) / 2.0 - mid).abs() < 1e-6,
            "100 halfway between 10 and 1000"
        );
        assert!(svg.contains("currentColor"));
    }

    #[test]
    fn empty_and_flat_series_still_draw() {
        let empty: [Line; 0] = [];
        assert!(
            render(&Chart {
                lines: &empty,
                x_format: XFormat::Seconds,
                y_scale: YScale::Linear,
                width: 300,
                height: 150
            })
            .is_ok()
        );
        let flat = [line(vec![(5.0, 2.0)])];
        let (_, frame) = render(&Chart {
            lines: &flat,
            x_format: XFormat::Step,
            y_scale: YScale::Linear,
            width: 300,
            height: 150,
        })
        .unwrap();
        assert!(frame.y.0 < 2.0 && frame.y.1 > 2.0);
        assert!(frame.x.0 < 5.0 && frame.x.1 > 5.0);
    }

    #[test]
    fn the_nearest_point_is_found_on_either_side() {
        let points = [(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)];
        assert_eq!(nearest(&points, -5.0), Some(0));
        assert_eq!(nearest(&points, 4.9), Some(0));
        assert_eq!(nearest(&points, 5.1), Some(1));
        assert_eq!(nearest(&points, 100.0), Some(2));
        assert_eq!(nearest(&[], 1.0), None);
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(format_value(0.123456), "0.1235");
        assert_eq!(format_value(1234.56), "1235");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(1.5e-7), "1.50e-7");
        assert_eq!(format_x(12_345.0, XFormat::Step), "12.3k");
        assert_eq!(format_x(95.0, XFormat::Seconds), "1m35s");
        assert_eq!(format_x(0.0, XFormat::WallMillis), "00:00:00");
    }
}
