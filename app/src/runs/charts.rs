//! Metric charts: one metric of one or more runs, drawn by
//! `trellis_charts` (plotters, SVG) from series the server downsampled to
//! about one point per unit of width (extremes kept).
//!
//! Shared options (x axis by step, relative or wall time; linear or log y;
//! EMA smoothing) redraw in the browser without a request. Hovering reads
//! the nearest point of every line; dragging across the plot zooms into
//! that step range, which is fetched again at full resolution when it fits;
//! each chart can also be shown as a table of its points.

use leptos::html::Div;
use leptos::prelude::*;
use trellis_api_types as wire;
use trellis_charts::{Chart, Line, XFormat, YScale};

use super::api::{CHART_POINTS, metric_series};
use super::tracking::number;
use crate::ui::ErrorView;

/// Drawing size of a chart, in SVG units (it scales to its box).
const WIDTH: u32 = 600;
const HEIGHT: u32 = 260;

/// What the x axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    Step,
    /// Seconds since the run started.
    Relative,
    /// UTC clock time.
    Wall,
}

impl XAxis {
    fn format(self) -> XFormat {
        match self {
            XAxis::Step => XFormat::Step,
            XAxis::Relative => XFormat::Seconds,
            XAxis::Wall => XFormat::WallMillis,
        }
    }

    fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Relative => "relative time",
            XAxis::Wall => "wall time (UTC)",
        }
    }
}

/// Options every chart of a page shares.
#[derive(Debug, Clone, Copy)]
pub struct ChartOptions {
    pub x: RwSignal<XAxis>,
    pub log: RwSignal<bool>,
    /// EMA weight, 0 (off) to 0.99.
    pub smoothing: RwSignal<f64>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ChartOptions {
    pub fn new() -> Self {
        Self {
            x: RwSignal::new(XAxis::Step),
            log: RwSignal::new(false),
            smoothing: RwSignal::new(0.0),
        }
    }
}

const CONTROL: &str = "rounded-md border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900";

/// The x axis, scale and smoothing controls above a page's charts.
#[component]
pub fn ChartControls(options: ChartOptions) -> impl IntoView {
    view! {
        <div class="flex flex-wrap items-center gap-4 text-sm" data-testid="chart-controls">
            <label class="flex items-center gap-2">
                "X axis"
                <select
                    class=CONTROL
                    data-testid="x-axis"
                    on:change=move |ev| {
                        options.x.set(match event_target_value(&ev).as_str() {
                            "relative" => XAxis::Relative,
                            "wall" => XAxis::Wall,
                            _ => XAxis::Step,
                        })
                    }
                >
                    <option value="step" selected=move || options.x.get() == XAxis::Step>"Step"</option>
                    <option value="relative" selected=move || options.x.get() == XAxis::Relative>"Relative time"</option>
                    <option value="wall" selected=move || options.x.get() == XAxis::Wall>"Wall time"</option>
                </select>
            </label>
            <label class="flex items-center gap-2">
                <input
                    type="checkbox"
                    data-testid="log-scale"
                    prop:checked=move || options.log.get()
                    on:change=move |ev| options.log.set(event_target_checked(&ev))
                />
                "Log scale"
            </label>
            <label class="flex items-center gap-2">
                "Smoothing"
                <input
                    type="range"
                    min="0"
                    max="0.99"
                    step="0.01"
                    data-testid="smoothing"
                    prop:value=move || options.smoothing.get().to_string()
                    on:input=move |ev| {
                        options.smoothing.set(event_target_value(&ev).parse().unwrap_or(0.0))
                    }
                />
                <span class="w-10 font-mono text-xs">{move || format!("{:.2}", options.smoothing.get())}</span>
            </label>
        </div>
    }
}

/// Where the pointer of `ev` is inside the SVG drawn in `surface`, in the
/// SVG's units (`size` is its viewBox): the drawing scales with its box.
pub(crate) fn svg_point(
    surface: NodeRef<Div>,
    ev: &leptos::ev::MouseEvent,
    size: (f64, f64),
) -> Option<(f64, f64)> {
    let rect = surface.get()?.get_bounding_client_rect();
    (rect.width() > 0.0 && rect.height() > 0.0).then(|| {
        (
            (f64::from(ev.client_x()) - rect.left()) / rect.width() * size.0,
            (f64::from(ev.client_y()) - rect.top()) / rect.height() * size.1,
        )
    })
}

/// A run drawn in a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartRun {
    pub uuid: String,
    pub label: String,
    /// Index into the chart palette.
    pub color: usize,
}

/// A point as drawn, with what the read-out and zoom need.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drawn {
    x: f64,
    raw: f64,
    smoothed: f64,
    step: i64,
    timestamp: i64,
}

/// The points of each series on the chosen axis, ordered by x, smoothed.
fn drawn(series: &[wire::MetricSeries], axis: XAxis, smoothing: f64) -> Vec<Vec<Drawn>> {
    series
        .iter()
        .map(|s| {
            let raw: Vec<f64> = s
                .points
                .iter()
                .map(|p| p.value.unwrap_or(f64::NAN))
                .collect();
            let smooth = trellis_domain::series::smooth(&raw, smoothing);
            let mut points: Vec<Drawn> = s
                .points
                .iter()
                .zip(raw.iter().zip(smooth))
                .map(|(p, (&raw, smoothed))| Drawn {
                    x: match axis {
                        XAxis::Step => p.step as f64,
                        XAxis::Relative => (p.timestamp - s.origin) as f64 / 1000.0,
                        XAxis::Wall => p.timestamp as f64,
                    },
                    raw,
                    smoothed,
                    step: p.step,
                    timestamp: p.timestamp,
                })
                .collect();
            // Times need not grow with steps; the read-out searches by x.
            if axis != XAxis::Step {
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
            }
            points
        })
        .collect()
}

/// The chart of metric `key` of `runs`. `refresh` re-reads the series
/// (live updates); the zoom is the chart's own.
#[component]
pub fn MetricChart(
    owner: String,
    project: String,
    runs: Vec<ChartRun>,
    key: String,
    options: ChartOptions,
    #[prop(into)] refresh: Signal<u32>,
) -> impl IntoView {
    let zoom = RwSignal::new(None::<(i64, i64)>);
    let uuids: Vec<String> = runs.iter().map(|r| r.uuid.clone()).collect();
    let fetch_key = key.clone();
    let data = Resource::new(
        move || (zoom.get(), refresh.get()),
        move |(steps, _)| {
            metric_series(
                owner.clone(),
                project.clone(),
                uuids.clone(),
                fetch_key.clone(),
                CHART_POINTS,
                steps,
            )
        },
    );
    let show_table = RwSignal::new(false);
    let title = key.clone();
    view! {
        <figure class="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900" data-testid="metric-chart" data-key=key.clone()>
            <figcaption class="mb-2 flex flex-wrap items-center justify-between gap-2">
                <span class="font-mono text-sm font-semibold">{title}</span>
                <span class="flex items-center gap-2 text-xs">
                    {move || zoom.get().map(|(a, b)| view! {
                        <span class="text-slate-500" data-testid="zoom-range">{format!("steps {a}–{b}")}</span>
                        <button class="rounded border border-slate-300 px-2 py-0.5 hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800" on:click=move |_| zoom.set(None) data-testid="reset-zoom">"Reset zoom"</button>
                    })}
                    <button
                        class="rounded border border-slate-300 px-2 py-0.5 hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800"
                        aria-pressed=move || show_table.get().to_string()
                        on:click=move |_| show_table.update(|s| *s = !*s)
                        data-testid="chart-table-toggle"
                    >
                        {move || if show_table.get() { "Chart" } else { "Table" }}
                    </button>
                </span>
            </figcaption>
            <Transition fallback=|| view! { <div class="aspect-[600/260] animate-pulse rounded bg-slate-100 dark:bg-slate-800"></div> }>
                {move || {
                    let runs = runs.clone();
                    Suspend::new(async move {
                        match data.await {
                            Ok(series) => view! { <ChartBody series runs options zoom show_table /> }.into_any(),
                            Err(error) => view! { <ErrorView error /> }.into_any(),
                        }
                    })
                }}
            </Transition>
        </figure>
    }
}

#[component]
fn ChartBody(
    series: Vec<wire::MetricSeries>,
    runs: Vec<ChartRun>,
    options: ChartOptions,
    zoom: RwSignal<Option<(i64, i64)>>,
    show_table: RwSignal<bool>,
) -> impl IntoView {
    let total: u64 = series.iter().map(|s| s.total).sum();
    let shown: usize = series.iter().map(|s| s.points.len()).sum();
    let downsampled = series.iter().any(|s| s.downsampled);
    // Runs in the order the server answered, with their colours.
    let runs: Vec<ChartRun> = series
        .iter()
        .map(|s| {
            let uuid = s.run.simple().to_string();
            runs.iter()
                .find(|r| r.uuid.replace('-', "") == uuid)
                .cloned()
                .unwrap_or(ChartRun {
                    uuid,
                    label: s.run.to_string(),
                    color: 0,
                })
        })
        .collect();
    let points = Memo::new(move |_| drawn(&series, options.x.get(), options.smoothing.get()));
    let colors: Vec<usize> = runs.iter().map(|r| r.color).collect();
    let mark_colors = StoredValue::new(colors.clone());
    let table_runs = runs.clone();
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    let rendered = Memo::new(move |_| {
        let smoothing = options.smoothing.get() > 0.0;
        let lines: Vec<Line> = points.with(|all| {
            all.iter()
                .zip(&colors)
                .zip(&labels)
                .map(|((pts, &color), label)| Line {
                    label: label.clone(),
                    color,
                    points: pts
                        .iter()
                        .map(|p| (p.x, if smoothing { p.smoothed } else { p.raw }))
                        .collect(),
                })
                .collect()
        });
        trellis_charts::render(&Chart {
            lines: &lines,
            x_format: options.x.get().format(),
            y_scale: if options.log.get() {
                YScale::Log
            } else {
                YScale::Linear
            },
            width: WIDTH,
            height: HEIGHT,
        })
        .map_err(|e| e.to_string())
    });
    let frame = move || rendered.with(|r| r.as_ref().ok().map(|(_, f)| *f));
    let hover = RwSignal::new(None::<f64>);
    let drag = RwSignal::new(None::<(f64, f64)>);
    let surface = NodeRef::<Div>::new();
    let size = (f64::from(WIDTH), f64::from(HEIGHT));
    let pointer_x = move |ev: &leptos::ev::MouseEvent| svg_point(surface, ev, size).map(|p| p.0);
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let (Some(px), Some(frame)) = (pointer_x(&ev), frame()) else {
            return;
        };
        hover.set(Some(frame.x_at(px)));
        if let Some((start, _)) = drag.get_untracked() {
            drag.set(Some((start, px)));
        }
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        if let Some(px) = pointer_x(&ev) {
            drag.set(Some((px, px)));
        }
    };
    let on_up = move |_| {
        let (Some((a, b)), Some(frame)) = (drag.get_untracked(), frame()) else {
            return;
        };
        drag.set(None);
        if (a - b).abs() < 4.0 {
            return;
        }
        let (x0, x1) = (frame.x_at(a.min(b)), frame.x_at(a.max(b)));
        // Steps of the points inside the selection, on any axis.
        let steps = points.with_untracked(|all| {
            let inside = all.iter().flatten().filter(|p| p.x >= x0 && p.x <= x1);
            inside.fold(None, |acc: Option<(i64, i64)>, p| {
                Some(acc.map_or((p.step, p.step), |(lo, hi)| {
                    (lo.min(p.step), hi.max(p.step))
                }))
            })
        });
        if let Some((lo, hi)) = steps {
            zoom.set(Some((lo, hi.max(lo + 1))));
        }
    };
    let on_leave = move |_| {
        hover.set(None);
        drag.set(None);
    };
    let legend = (runs.len() > 1).then(|| {
        view! {
            <ul class="mb-2 flex flex-wrap gap-x-4 gap-y-1 text-xs" data-testid="chart-legend">
                {runs.iter().map(|r| view! {
                    <li class="flex items-center gap-1.5">
                        <span class="inline-block h-2 w-4 rounded-sm" style=format!("background:{}", trellis_charts::color(r.color))></span>
                        <span class="font-mono">{r.label.clone()}</span>
                    </li>
                }).collect_view()}
            </ul>
        }
    });
    let runs_for_readout = runs.clone();
    let readout = move || {
        let x = hover.get()?;
        let axis = options.x.get();
        let smoothing = options.smoothing.get() > 0.0;
        points.with(|all| {
            let rows: Vec<_> = all
                .iter()
                .zip(&runs_for_readout)
                .filter_map(|(pts, run)| {
                    let xs: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.raw)).collect();
                    let p = pts[trellis_charts::nearest(&xs, x)?];
                    Some((run.clone(), p))
                })
                .collect();
            let first = rows.first()?.1;
            let at = match axis {
                XAxis::Step => format!("step {}", first.step),
                other => format!(
                    "{} {} · step {}",
                    other.label(),
                    trellis_charts::format_x(first.x, other.format()),
                    first.step
                ),
            };
            Some(view! {
                <span class="font-mono text-slate-500" data-testid="readout-at">{at}</span>
                {rows.into_iter().map(|(run, p)| view! {
                    <span class="flex items-center gap-1.5 font-mono">
                        <span class="inline-block h-2 w-2 rounded-full" style=format!("background:{}", trellis_charts::color(run.color))></span>
                        <span data-testid="readout-value">{number(p.raw.is_finite().then_some(p.raw))}</span>
                        {smoothing.then(|| view! { <span class="text-slate-500">{format!("(smoothed {})", number(Some(p.smoothed).filter(|v| v.is_finite())))}</span> })}
                        {(all.len() > 1).then(|| view! { <span class="text-slate-500">{run.label.clone()}</span> })}
                    </span>
                }).collect_view()}
            })
        })
    };
    let marks = move || {
        let frame = frame()?;
        let x = hover.get()?;
        let smoothing = options.smoothing.get() > 0.0;
        let dots = points.with(|all| {
            all.iter()
                .zip(mark_colors.get_value())
                .filter_map(|(pts, color)| {
                    let xs: Vec<(f64, f64)> = pts.iter().map(|p| (p.x, p.raw)).collect();
                    let p = pts[trellis_charts::nearest(&xs, x)?];
                    let y = frame.py(if smoothing { p.smoothed } else { p.raw })?;
                    Some((frame.px(p.x), y, color))
                })
                .collect::<Vec<_>>()
        });
        let line_x = dots.first().map(|d| d.0).unwrap_or_else(|| frame.px(x));
        Some(view! {
            <line x1=line_x x2=line_x y1=frame.top y2=frame.bottom stroke="currentColor" stroke-opacity="0.35" stroke-dasharray="3 3" />
            {dots.into_iter().map(|(cx, cy, color)| view! {
                <circle cx=cx cy=cy r="4" fill=trellis_charts::color(color) stroke="white" stroke-width="1.5" />
            }).collect_view()}
        })
    };
    let selection = move || {
        let (a, b) = drag.get()?;
        let frame = frame()?;
        ((a - b).abs() >= 1.0).then(|| view! {
            <rect x=a.min(b) y=frame.top width=(a - b).abs() height=frame.bottom - frame.top fill="currentColor" fill-opacity="0.12" />
        })
    };
    let status = format!(
        "{shown} of {total} points{}",
        if downsampled {
            " (downsampled on the server; extremes kept; drag to zoom)"
        } else {
            ""
        }
    );
    view! {
        {legend}
        <Show when=move || !show_table.get() fallback=move || view! { <PointsTable points runs=table_runs.clone() /> }>
            {move || match rendered.get() {
                Err(message) => view! { <p class="text-sm text-rose-600">{message}</p> }.into_any(),
                Ok((svg, _)) => view! {
                    <div
                        node_ref=surface
                        class="relative cursor-crosshair select-none text-slate-600 dark:text-slate-300"
                        on:mousemove=on_move
                        on:mousedown=on_down
                        on:mouseup=on_up
                        on:mouseleave=on_leave
                        data-testid="chart-surface"
                    >
                        <div inner_html=svg></div>
                        <svg class="pointer-events-none absolute inset-0 h-full w-full" viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" aria-hidden="true">
                            {marks}
                            {selection}
                        </svg>
                    </div>
                }.into_any(),
            }}
        </Show>
        <div class="mt-2 flex min-h-6 flex-wrap items-center gap-x-4 gap-y-1 text-xs" data-testid="chart-readout" aria-live="polite">
            {move || readout().map(|v| v.into_any()).unwrap_or_else(|| view! { <span class="text-slate-500">{status.clone()}</span> }.into_any())}
        </div>
    }
}

/// A chart's points as a table, for screen readers and copy-paste.
#[component]
fn PointsTable(points: Memo<Vec<Vec<Drawn>>>, runs: Vec<ChartRun>) -> impl IntoView {
    let rows = move || {
        points.with(|all| {
            all.iter()
                .zip(&runs)
                .flat_map(|(pts, run)| {
                    pts.iter().map(move |p| {
                        let time = chrono::DateTime::from_timestamp_millis(p.timestamp)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                            .unwrap_or_default();
                        view! {
                            <tr>
                                <td class="px-2 py-0.5 font-mono">{run.label.clone()}</td>
                                <td class="px-2 py-0.5 text-right font-mono">{p.step}</td>
                                <td class="px-2 py-0.5 font-mono">{time}</td>
                                <td class="px-2 py-0.5 text-right font-mono">{number(p.raw.is_finite().then_some(p.raw))}</td>
                            </tr>
                        }
                    })
                })
                .collect_view()
        })
    };
    view! {
        <div class="max-h-72 overflow-auto rounded border border-slate-200 dark:border-slate-800">
            <table class="min-w-full text-xs" data-testid="chart-table">
                <thead class="sticky top-0 bg-slate-50 text-left dark:bg-slate-900">
                    <tr>
                        <th class="px-2 py-1">"Run"</th>
                        <th class="px-2 py-1 text-right">"Step"</th>
                        <th class="px-2 py-1">"Time (UTC)"</th>
                        <th class="px-2 py-1 text-right">"Value"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, i64, Option<f64>)]) -> wire::MetricSeries {
        wire::MetricSeries {
            run: uuid::Uuid::nil(),
            key: "loss".into(),
            total: points.len() as u64,
            downsampled: false,
            origin: 1_000,
            points: points
                .iter()
                .map(|&(step, timestamp, value)| wire::SeriesPoint {
                    step,
                    timestamp,
                    value,
                })
                .collect(),
        }
    }

    #[test]
    fn axes_place_points_by_step_or_time_since_the_start() {
        let s = [series(&[
            (0, 3_000, Some(1.0)),
            (1, 2_000, None),
            (2, 5_000, Some(3.0)),
        ])];
        let by_step = drawn(&s, XAxis::Step, 0.0);
        assert_eq!(
            by_step[0].iter().map(|p| p.x).collect::<Vec<_>>(),
            [0.0, 1.0, 2.0]
        );
        let relative = drawn(&s, XAxis::Relative, 0.0);
        // Sorted by time: step 1 was logged first.
        assert_eq!(
            relative[0].iter().map(|p| p.x).collect::<Vec<_>>(),
            [1.0, 2.0, 4.0]
        );
        assert_eq!(relative[0][0].step, 1);
        assert!(relative[0][0].raw.is_nan());
        let smoothed = drawn(&s, XAxis::Step, 0.5);
        assert!((smoothed[0][2].smoothed - (0.25 + 1.5) / 0.75).abs() < 1e-12);
    }
}
