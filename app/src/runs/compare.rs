//! `/{owner}/{project}/compare?runs=a,b,c`: selected runs side by side.
//!
//! Each metric's curves overlaid (one colour per run, as in the legend);
//! a params and metrics table that can hide rows where every run agrees
//! and pin a baseline run to show the others' differences; and a
//! parallel-coordinates chart from the params to a chosen metric, where
//! dragging along an axis keeps only the runs inside that range.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use trellis_api_types as wire;
use trellis_charts::parallel::{self, Axis, Value};
use trellis_domain::tracking::SYSTEM_METRIC_PREFIX;

use super::api::{CompareData, compare_view};
use super::charts::{ChartControls, ChartOptions, ChartRun, MetricChart, svg_point};
use super::pages::follow_project;
use super::param;
use super::tracking::{number, throttled};
use crate::ui::{ErrorView, StatusBadge};

/// A run's display name: its name, or the start of its uuid.
fn label(run: &wire::Run) -> String {
    run.name
        .clone()
        .unwrap_or_else(|| run.uuid.simple().to_string()[..8].to_owned())
}

#[component]
pub fn ComparePage() -> impl IntoView {
    let owner = param("owner");
    let project = param("project");
    let url = use_query_map();
    let runs = move || {
        url.read()
            .get("runs")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    };
    let data = Resource::new(
        move || (owner(), project(), runs()),
        |(o, p, runs)| compare_view(o, p, runs),
    );
    view! {
        <Title text=move || format!("Compare · {}/{}", owner(), project()) />
        <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(data) => view! { <CompareContent owner=owner() project=project() data /> }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn CompareContent(owner: String, project: String, data: CompareData) -> impl IntoView {
    let CompareData { runs, metrics } = data;
    let chart_runs: Vec<ChartRun> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| ChartRun {
            uuid: r.uuid.simple().to_string(),
            label: label(r),
            color: i,
        })
        .collect();
    let keys: BTreeSet<String> = metrics
        .iter()
        .flat_map(|m| m.metrics.iter().map(|s| s.key.clone()))
        .collect();
    let (system, user): (Vec<String>, Vec<String>) = keys
        .into_iter()
        .partition(|k| k.starts_with(SYSTEM_METRIC_PREFIX));
    let options = ChartOptions::new();
    // Charts follow the runs live while any of them logs.
    let (refresh, set_refresh) = signal(0_u32);
    let poke = throttled(set_refresh);
    let watched = StoredValue::new(runs.iter().map(|r| r.uuid).collect::<Vec<uuid::Uuid>>());
    let (o, p) = (owner.clone(), project.clone());
    follow_project(
        move || o.clone(),
        move || p.clone(),
        |_| {},
        move |run| {
            if run.is_none_or(|run| watched.with_value(|w| w.contains(&run))) {
                poke();
            }
        },
    );
    let charts = |keys: Vec<String>| {
        let (owner, project, chart_runs) = (owner.clone(), project.clone(), chart_runs.clone());
        view! {
            <div class="grid gap-4 lg:grid-cols-2" data-testid="compare-charts">
                {keys.into_iter().map(|key| view! {
                    <MetricChart owner=owner.clone() project=project.clone() runs=chart_runs.clone() key options refresh />
                }).collect_view()}
            </div>
        }
    };
    let base = format!("/{owner}/{project}");
    let chips = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (name, href, status) = (label(r), format!("{base}/runs/{}", r.uuid), r.status);
            view! {
                <li class="flex items-center gap-2 rounded-full border border-slate-200 bg-white py-1 pl-2 pr-3 text-sm dark:border-slate-800 dark:bg-slate-900">
                    <span class="inline-block h-2.5 w-2.5 rounded-full" style=format!("background:{}", trellis_charts::color(i))></span>
                    <A href=href attr:class="font-medium hover:underline">{name}</A>
                    <StatusBadge status />
                </li>
            }
        })
        .collect_view();
    let user_charts = (!user.is_empty()).then(|| charts(user.clone()));
    let system_charts = (!system.is_empty()).then(|| {
        let inner = charts(system);
        view! {
            <details class="mt-4">
                <summary class="cursor-pointer text-sm font-semibold uppercase tracking-wide text-slate-500">"System charts"</summary>
                <div class="mt-3">{inner}</div>
            </details>
        }
    });
    view! {
        <nav class="mb-2 text-sm text-slate-500" aria-label="Breadcrumb">
            <A href="/" attr:class="hover:underline">"Projects"</A>
            " / "
            <A href=base.clone() attr:class="hover:underline">{format!("{owner}/{project}")}</A>
        </nav>
        <h1 class="text-2xl font-bold tracking-tight" data-testid="compare-title">{format!("Compare {} runs", runs.len())}</h1>
        <ul class="mt-3 flex flex-wrap gap-2" data-testid="compare-runs">
            {chips}
        </ul>
        <section class="mt-8">
            <div class="mb-3 flex flex-wrap items-center justify-between gap-3">
                <h2 class="text-lg font-semibold">"Metrics"</h2>
                <ChartControls options />
            </div>
            {user_charts}
            {system_charts}
        </section>
        <section class="mt-8">
            <h2 class="mb-3 text-lg font-semibold">"Params and metrics"</h2>
            <ValuesTable runs=runs.clone() metrics=metrics.clone() />
        </section>
        <section class="mt-8">
            <h2 class="mb-3 text-lg font-semibold">"Parallel coordinates"</h2>
            <ParallelCoordinates runs metrics metric_keys=user />
        </section>
    }
}

/// One row of the values table: a param or a metric, one cell per run.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    group: &'static str,
    key: String,
    cells: Vec<Value>,
}

impl Row {
    /// Every run has the same value (missing counts as a value).
    fn identical(&self) -> bool {
        self.cells.windows(2).all(|w| w[0] == w[1])
    }
}

fn json_value(value: Option<&serde_json::Value>) -> Value {
    match value {
        None | Some(serde_json::Value::Null) => Value::Missing,
        Some(serde_json::Value::Number(n)) => n.as_f64().map_or(Value::Missing, Value::Number),
        Some(serde_json::Value::String(s)) => Value::Text(s.clone()),
        Some(other) => Value::Text(other.to_string()),
    }
}

fn metric_value(metrics: &[wire::RunMetricSummaries], run: uuid::Uuid, key: &str) -> Value {
    metrics
        .iter()
        .find(|m| m.run == run)
        .and_then(|m| m.metrics.iter().find(|s| s.key == key))
        .and_then(|s| s.last)
        .map_or(Value::Missing, Value::Number)
}

/// The table's rows: params, then outputs, then latest metrics.
fn rows(runs: &[wire::Run], metrics: &[wire::RunMetricSummaries]) -> Vec<Row> {
    let mut out = Vec::new();
    let params: BTreeSet<&String> = runs.iter().flat_map(|r| r.inputs.keys()).collect();
    for key in params {
        out.push(Row {
            group: "param",
            key: key.clone(),
            cells: runs.iter().map(|r| json_value(r.inputs.get(key))).collect(),
        });
    }
    let outputs: BTreeSet<&String> = runs.iter().flat_map(|r| r.outputs.keys()).collect();
    for key in outputs {
        out.push(Row {
            group: "output",
            key: key.clone(),
            cells: runs
                .iter()
                .map(|r| json_value(r.outputs.get(key)))
                .collect(),
        });
    }
    let keys: BTreeSet<&String> = metrics
        .iter()
        .flat_map(|m| m.metrics.iter().map(|s| &s.key))
        .filter(|k| !k.starts_with(SYSTEM_METRIC_PREFIX))
        .collect();
    for key in keys {
        out.push(Row {
            group: "metric",
            key: key.clone(),
            cells: runs
                .iter()
                .map(|r| metric_value(metrics, r.uuid, key))
                .collect(),
        });
    }
    out
}

fn show(value: &Value) -> String {
    match value {
        Value::Number(n) => number(Some(*n)),
        Value::Text(t) => t.clone(),
        Value::Missing => "–".to_owned(),
    }
}

fn delta_class(d: f64) -> &'static str {
    if d > 0.0 {
        "ml-2 text-xs text-emerald-600 dark:text-emerald-400"
    } else {
        "ml-2 text-xs text-rose-600 dark:text-rose-400"
    }
}

/// `value` against the baseline's, when both are numbers and differ.
fn delta(value: &Value, baseline: &Value) -> Option<f64> {
    match (value, baseline) {
        (Value::Number(a), Value::Number(b)) if a != b => Some(a - b),
        _ => None,
    }
}

#[component]
fn ValuesTable(runs: Vec<wire::Run>, metrics: Vec<wire::RunMetricSummaries>) -> impl IntoView {
    let all_rows = rows(&runs, &metrics);
    let hide_identical = RwSignal::new(false);
    let baseline = RwSignal::new(None::<usize>);
    let names: Vec<String> = runs.iter().map(label).collect();
    let header_names = names.clone();
    let body = move || {
        let hide = hide_identical.get();
        let pinned = baseline.get();
        all_rows
            .iter()
            .filter(|row| !(hide && row.identical()))
            .map(|row| {
                let cells = row.cells.iter().enumerate().map(|(i, value)| {
                    let diff = pinned
                        .filter(|&b| b != i)
                        .and_then(|b| delta(value, &row.cells[b]));
                    view! {
                        <td class=if pinned == Some(i) { "whitespace-nowrap bg-emerald-50 px-3 py-1.5 text-right font-mono dark:bg-emerald-950" } else { "whitespace-nowrap px-3 py-1.5 text-right font-mono" }>
                            {show(value)}
                            {diff.map(|d| view! {
                                <span class=delta_class(d) data-testid="delta">
                                    {format!("{}{}", if d > 0.0 { "+" } else { "" }, number(Some(d)))}
                                </span>
                            })}
                        </td>
                    }
                }).collect_view();
                view! {
                    <tr data-row=format!("{}.{}", row.group, row.key)>
                        <th scope="row" class="whitespace-nowrap px-3 py-1.5 text-left font-mono font-normal">
                            <span class="mr-2 text-xs text-slate-400">{row.group}</span>{row.key.clone()}
                        </th>
                        {cells}
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <div class="mb-2 flex flex-wrap items-center gap-4 text-sm">
            <label class="flex items-center gap-2">
                <input type="checkbox" prop:checked=move || hide_identical.get() on:change=move |ev| hide_identical.set(event_target_checked(&ev)) data-testid="hide-identical" />
                "Hide identical values"
            </label>
            <label class="flex items-center gap-2">
                "Baseline"
                <select
                    class="rounded-md border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900"
                    on:change=move |ev| baseline.set(event_target_value(&ev).parse().ok())
                    data-testid="baseline"
                >
                    <option value="">"none"</option>
                    {names.iter().enumerate().map(|(i, n)| view! { <option value=i.to_string()>{n.clone()}</option> }).collect_view()}
                </select>
            </label>
        </div>
        <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table class="min-w-full divide-y divide-slate-200 text-sm dark:divide-slate-800" data-testid="compare-table">
                <thead class="bg-slate-50 dark:bg-slate-900">
                    <tr>
                        <th class="px-3 py-2"></th>
                        {header_names.into_iter().enumerate().map(|(i, n)| view! {
                            <th scope="col" class="whitespace-nowrap px-3 py-2 text-right text-xs font-semibold">
                                <span class="mr-1.5 inline-block h-2 w-2 rounded-full" style=format!("background:{}", trellis_charts::color(i))></span>
                                {n}
                            </th>
                        }).collect_view()}
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">{body}</tbody>
            </table>
        </div>
    }
}

const PC_WIDTH: f64 = 800.0;
const PC_HEIGHT: f64 = 320.0;
const PC_TOP: f64 = 24.0;
const PC_BOTTOM: f64 = 290.0;

#[component]
pub(crate) fn ParallelCoordinates(
    runs: Vec<wire::Run>,
    metrics: Vec<wire::RunMetricSummaries>,
    metric_keys: Vec<String>,
) -> impl IntoView {
    if metric_keys.is_empty() && runs.iter().all(|r| r.inputs.is_empty()) {
        return view! { <p class="text-sm text-slate-500">"These runs have no params or metrics to plot."</p> }.into_any();
    }
    let chosen = RwSignal::new(metric_keys.first().cloned());
    let brushes = RwSignal::new(Vec::<(usize, (f64, f64))>::new());
    let dragging = RwSignal::new(None::<(usize, f64, f64)>);
    let surface = NodeRef::<leptos::html::Div>::new();
    let param_keys: Vec<String> = runs
        .iter()
        .flat_map(|r| r.inputs.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names: Vec<String> = runs.iter().map(label).collect();
    // Axes and each run's positions, for the chosen metric.
    let layout = Memo::new(move |_| {
        let mut axes: Vec<Axis> = Vec::new();
        let mut columns: Vec<Vec<Value>> = Vec::new();
        for key in &param_keys {
            let values: Vec<Value> = runs.iter().map(|r| json_value(r.inputs.get(key))).collect();
            axes.push(Axis::of(key.clone(), &values));
            columns.push(values);
        }
        if let Some(key) = chosen.get() {
            let values: Vec<Value> = runs
                .iter()
                .map(|r| metric_value(&metrics, r.uuid, &key))
                .collect();
            axes.push(Axis::of(format!("metrics.{key}"), &values));
            columns.push(values);
        }
        let positions: Vec<Vec<Option<f64>>> = (0..runs.len())
            .map(|run| {
                axes.iter()
                    .zip(&columns)
                    .map(|(a, c)| a.position(&c[run]))
                    .collect()
            })
            .collect();
        (axes, positions)
    });
    let axis_x = move |i: usize, count: usize| {
        let margin = 60.0;
        if count <= 1 {
            PC_WIDTH / 2.0
        } else {
            margin + i as f64 * (PC_WIDTH - 2.0 * margin) / (count - 1) as f64
        }
    };
    let y_of = |p: f64| PC_BOTTOM - p * (PC_BOTTOM - PC_TOP);
    let p_of = |y: f64| ((PC_BOTTOM - y) / (PC_BOTTOM - PC_TOP)).clamp(0.0, 1.0);
    let pointer = move |ev: &leptos::ev::MouseEvent| svg_point(surface, ev, (PC_WIDTH, PC_HEIGHT));
    let on_down = move |ev: leptos::ev::MouseEvent| {
        let Some((x, y)) = pointer(&ev) else { return };
        let count = layout.with_untracked(|(axes, _)| axes.len());
        if let Some(axis) = (0..count).find(|&i| (axis_x(i, count) - x).abs() < 14.0) {
            ev.prevent_default();
            dragging.set(Some((axis, p_of(y), p_of(y))));
        }
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        if let (Some((axis, start, _)), Some((_, y))) = (dragging.get_untracked(), pointer(&ev)) {
            dragging.set(Some((axis, start, p_of(y))));
        }
    };
    let on_up = move |_| {
        let Some((axis, start, end)) = dragging.get_untracked() else {
            return;
        };
        dragging.set(None);
        brushes.update(|b| {
            b.retain(|(a, _)| *a != axis);
            // A click without a drag clears the axis's brush.
            if (start - end).abs() > 0.01 {
                b.push((axis, (start.min(end), start.max(end))));
            }
        });
    };
    let kept = move || {
        let brushes = brushes.get();
        layout.with(|(_, positions)| {
            positions
                .iter()
                .map(|p| parallel::passes(p, &brushes))
                .collect::<Vec<bool>>()
        })
    };
    let names_for_list = names.clone();
    let svg = move || {
        let keep = kept();
        let active = dragging.get();
        let brushes = brushes.get();
        layout.with(|(axes, positions)| {
            let count = axes.len();
            let lines = positions.iter().enumerate().map(|(run, pos)| {
                let points: Vec<String> = pos
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.map(|p| format!("{:.1},{:.1}", axis_x(i, count), y_of(p))))
                    .collect();
                let on = keep[run];
                view! {
                    <polyline
                        points=points.join(" ")
                        fill="none"
                        stroke=trellis_charts::color(run)
                        stroke-width=if on { "2" } else { "1" }
                        stroke-opacity=if on { "0.9" } else { "0.12" }
                        data-kept=on.to_string()
                    >
                        <title>{names[run].clone()}</title>
                    </polyline>
                }
            }).collect_view();
            let axis_views = axes.iter().enumerate().map(|(i, axis)| {
                let x = axis_x(i, count);
                let brush = active
                    .filter(|(a, _, _)| *a == i)
                    .map(|(_, s, e)| (s.min(e), s.max(e)))
                    .or_else(|| brushes.iter().find(|(a, _)| *a == i).map(|(_, r)| *r));
                view! {
                    <g>
                        <line x1=x x2=x y1=PC_TOP y2=PC_BOTTOM stroke="currentColor" stroke-opacity="0.5" />
                        <text x=x y=PC_TOP - 8.0 text-anchor="middle" font-size="12" fill="currentColor" font-family="ui-monospace, monospace">{axis.name.clone()}</text>
                        {axis.ticks().into_iter().map(|(t, label)| view! {
                            <text x=x + 5.0 y=y_of(t) + 4.0 font-size="10" fill="currentColor" fill-opacity="0.7">{label}</text>
                        }).collect_view()}
                        {brush.map(|(lo, hi)| view! {
                            <rect x=x - 7.0 y=y_of(hi) width="14" height=(y_of(lo) - y_of(hi)).max(1.0) fill="currentColor" fill-opacity="0.2" stroke="currentColor" stroke-opacity="0.6" data-testid="brush" />
                        })}
                    </g>
                }
            }).collect_view();
            view! { {lines} {axis_views} }
        })
    };
    let metric_names = metric_keys.clone();
    view! {
        <div class="mb-2 flex flex-wrap items-center gap-4 text-sm">
            <label class="flex items-center gap-2">
                "Metric"
                <select
                    class="rounded-md border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900"
                    on:change=move |ev| {
                        let value = event_target_value(&ev);
                        chosen.set((!value.is_empty()).then_some(value));
                        brushes.set(Vec::new());
                    }
                    data-testid="pc-metric"
                >
                    {metric_names.into_iter().map(|k| {
                        let selected = chosen.get_untracked().as_deref() == Some(k.as_str());
                        view! { <option value=k.clone() selected=selected>{k.clone()}</option> }
                    }).collect_view()}
                    <option value="">"(params only)"</option>
                </select>
            </label>
            <span class="text-slate-500">"Drag along an axis to keep the runs in a range; click an axis to clear it."</span>
            <button class="rounded border border-slate-300 px-2 py-0.5 text-xs hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800" on:click=move |_| brushes.set(Vec::new())>"Clear brushes"</button>
        </div>
        <div
            node_ref=surface
            class="relative select-none rounded-lg border border-slate-200 bg-white text-slate-600 dark:border-slate-800 dark:bg-slate-900 dark:text-slate-300"
            on:mousedown=on_down
            on:mousemove=on_move
            on:mouseup=on_up
            on:mouseleave=on_up
            data-testid="parallel-coordinates"
        >
            <svg viewBox=format!("0 0 {PC_WIDTH} {PC_HEIGHT}") width="100%" role="img" aria-label="Parallel coordinates of params and the chosen metric">
                {svg}
            </svg>
        </div>
        <p class="mt-2 text-sm" data-testid="pc-kept">
            {move || {
                let keep = kept();
                let names: Vec<&str> = keep.iter().zip(&names_for_list).filter(|(k, _)| **k).map(|(_, n)| n.as_str()).collect();
                format!("{} of {} runs in the brush: {}", names.len(), keep.len(), names.join(", "))
            }}
        </p>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_rows_and_deltas() {
        let row = Row {
            group: "param",
            key: "lr".into(),
            cells: vec![Value::Number(0.1), Value::Number(0.1)],
        };
        assert!(row.identical());
        assert_eq!(
            delta(&Value::Number(0.3), &Value::Number(0.1)).map(|d| (d * 10.0).round()),
            Some(2.0)
        );
        assert_eq!(delta(&Value::Number(0.1), &Value::Number(0.1)), None);
        assert_eq!(delta(&Value::Text("a".into()), &Value::Number(0.1)), None);
    }
}
