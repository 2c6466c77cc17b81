//! The Pipeline tab of a matrix or dag run: a dag's graph (left to right,
//! nodes coloured by live status, each a link to its run) and its Gantt
//! timeline; a sweep's progress, best trial, metric by trial index and
//! parallel coordinates. Both follow the project's status stream.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_api_types as wire;
use trellis_charts::{Chart, Line, XFormat, YScale};
use trellis_domain::lifecycle::RunStatus;

use super::compare::ParallelCoordinates;
use super::pages::{RunResource, follow_statuses};
use super::param;
use crate::error::AppError;
use crate::ui::{EmptyState, ErrorView, StatusBadge, format_duration, tick_label, time_ticks};

/// A pipeline with its children's metric summaries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineData {
    pub view: wire::PipelineView,
    pub metrics: Vec<wire::RunMetricSummaries>,
}

/// Loads the Pipeline tab.
#[server]
pub async fn pipeline_view(
    owner: String,
    project: String,
    uuid: String,
) -> Result<PipelineData, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let view = services.runs().pipeline(at).await?;
    let uuids: Vec<uuid::Uuid> = view.children.iter().map(|c| c.uuid).collect();
    let metrics = services
        .tracking()
        .summaries_of(&owner, &project, &uuids)
        .await?;
    Ok(PipelineData { view, metrics })
}

/// `/{owner}/{project}/runs/{uuid}/pipeline`.
#[component]
pub fn RunPipelineTab() -> impl IntoView {
    let owner = param("owner");
    let project = param("project");
    let uuid = param("uuid");
    let (refresh, set_refresh) = signal(0_u32);
    let data = Resource::new(
        move || (owner(), project(), uuid(), refresh.get()),
        |(o, p, u, _)| pipeline_view(o, p, u),
    );
    // Any status change in the project may be one of the children's.
    follow_statuses(owner, project, move |_| {
        set_refresh.update(|n| *n = n.wrapping_add(1));
    });
    // Changes between the page's render and the stream's opening are not
    // streamed: while the pipeline is not done, also re-read every 3 s.
    let run = use_context::<RunResource>();
    Effect::new(move |_| {
        // One more read after the pipeline is seen done, for its last
        // children's final states.
        let finished_reads = std::cell::Cell::new(0_u8);
        let poll = move || {
            let done = run
                .and_then(|r| r.get_untracked())
                .and_then(|d| d.ok())
                .is_some_and(|d| d.run.status.is_done());
            if done {
                if finished_reads.get() >= 1 {
                    return;
                }
                finished_reads.set(1);
            }
            set_refresh.update(|n| *n = n.wrapping_add(1));
        };
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_secs(3)) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <div class="mt-6">
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let base = format!("/{}/{}/runs", owner(), project());
                    match data.await {
                        Ok(data) if data.view.sweep.is_some() => view! { <SweepView data base /> }.into_any(),
                        Ok(data) => view! { <DagView data base /> }.into_any(),
                        Err(error) => view! { <ErrorView error /> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Fill and text colours of a node, by status (SVG needs plain colours).
fn node_colors(status: Option<RunStatus>) -> (&'static str, &'static str) {
    use RunStatus::*;
    match status {
        None => ("#f1f5f9", "#64748b"),
        Some(Succeeded) => ("#d1fae5", "#065f46"),
        Some(Failed | UpstreamFailed) => ("#ffe4e6", "#9f1239"),
        Some(Scheduled | Starting | Running | Processing) => ("#e0f2fe", "#075985"),
        Some(Stopping | Stopped | Skipped) => ("#e4e4e7", "#3f3f46"),
        Some(Warning | Unschedulable | Unknown) => ("#fef3c7", "#92400e"),
        Some(_) => ("#f1f5f9", "#334155"),
    }
}

const NODE_W: f64 = 168.0;
const NODE_H: f64 = 44.0;
const COL_GAP: f64 = 72.0;
const ROW_GAP: f64 = 20.0;
const PAD: f64 = 12.0;

#[component]
fn DagView(data: PipelineData, base: String) -> impl IntoView {
    let ops = data.view.operations;
    let children = data.view.children;
    if ops.is_empty() {
        return view! { <EmptyState title="No operations"><p>"This dag has no operations."</p></EmptyState> }.into_any();
    }
    let run_of = |name: &str| {
        children
            .iter()
            .find(|c| c.pipeline_op.as_deref() == Some(name))
            .cloned()
    };
    // Rows within each column, in file order.
    let mut row = vec![0usize; ops.len()];
    let mut filled: Vec<usize> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if filled.len() <= op.layer {
            filled.resize(op.layer + 1, 0);
        }
        row[i] = filled[op.layer];
        filled[op.layer] += 1;
    }
    let rows = filled.iter().copied().max().unwrap_or(1);
    let width = PAD * 2.0
        + filled.len() as f64 * NODE_W
        + (filled.len().saturating_sub(1)) as f64 * COL_GAP;
    let height = PAD * 2.0 + rows as f64 * NODE_H + (rows.saturating_sub(1)) as f64 * ROW_GAP;
    let x_of = |i: usize| PAD + ops[i].layer as f64 * (NODE_W + COL_GAP);
    let y_of = |i: usize| PAD + row[i] as f64 * (NODE_H + ROW_GAP);
    let edges = ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| op.upstream.iter().map(move |&u| (u, i)))
        .filter(|(u, _)| *u < ops.len())
        .map(|(u, i)| {
            let (x1, y1) = (x_of(u) + NODE_W, y_of(u) + NODE_H / 2.0);
            let (x2, y2) = (x_of(i), y_of(i) + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            view! {
                <path
                    d=format!("M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}")
                    fill="none" stroke="currentColor" stroke-opacity="0.45" stroke-width="1.5"
                    marker-end="url(#arrow)"
                />
            }
        })
        .collect_view();
    let nodes = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let run = run_of(&op.name);
            let status = run.as_ref().map(|r| r.status);
            let (fill, text) = node_colors(status);
            let label = status.map_or("waiting".to_owned(), |s| s.as_str().replace('_', " "));
            let href = run.as_ref().map(|r| format!("{base}/{}", r.uuid));
            let (x, y) = (x_of(i), y_of(i));
            // Nodes are HTML over the SVG of the edges: an `<a>` made in
            // the browser would be an HTML element, which SVG does not draw.
            let style = format!(
                "left:{x:.0}px;top:{y:.0}px;width:{NODE_W:.0}px;height:{NODE_H:.0}px;background:{fill};color:{text};border-color:{text}"
            );
            let title = format!("{} ({})", op.name, op.trigger);
            let class = "absolute flex flex-col justify-center rounded-lg border border-opacity-50 px-2.5 text-left no-underline hover:ring-2 hover:ring-emerald-500";
            let inner = view! {
                <span class="truncate text-[13px] font-semibold">{op.name.clone()}</span>
                <span class="text-[11px]">{label.clone()}</span>
            };
            match href {
                Some(href) => view! {
                    <a href=href class=class style=style title=title data-testid="dag-node" data-op=op.name.clone() data-status=label.clone()>{inner}</a>
                }.into_any(),
                None => view! {
                    <div class=class style=style title=title data-testid="dag-node" data-op=op.name.clone() data-status=label.clone()>{inner}</div>
                }.into_any(),
            }
        })
        .collect_view();
    view! {
        <section class="space-y-8">
            <div>
                <h2 class="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">"Graph"</h2>
                <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white p-2 text-slate-500 dark:border-slate-800 dark:bg-slate-900">
                    <div class="relative" style=format!("width:{width:.0}px;height:{height:.0}px") role="group" aria-label="The dag's operations, left to right" data-testid="dag-graph">
                        <svg class="absolute inset-0" viewBox=format!("0 0 {width:.0} {height:.0}") width=format!("{width:.0}") height=format!("{height:.0}") aria-hidden="true">
                            <defs>
                                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                                    <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" />
                                </marker>
                            </defs>
                            {edges}
                        </svg>
                        {nodes}
                    </div>
                </div>
            </div>
            <Gantt children=children.clone() base=base.clone() />
        </section>
    }
    .into_any()
}

/// When each child ran, on one time axis.
#[component]
fn Gantt(children: Vec<wire::Run>, base: String) -> impl IntoView {
    let started: Vec<&wire::Run> = children.iter().filter(|c| c.started_at.is_some()).collect();
    let Some(t0) = started.iter().filter_map(|c| c.started_at).min() else {
        return view! { <p class="text-sm text-slate-500">"No operation has started yet."</p> }
            .into_any();
    };
    // Running bars end at the latest change seen: the clock is not read
    // (chrono has no clock in the browser here), and the page re-renders
    // on every status change.
    let now = children.iter().map(|c| c.updated_at).max().unwrap_or(t0);
    let end_of = |c: &wire::Run| c.finished_at.unwrap_or(now);
    let t1 = started.iter().map(|c| end_of(c)).max().unwrap_or(now);
    let span = (t1 - t0).num_milliseconds().max(1) as f64;
    // The axis: seconds since the first operation started.
    let ticks: Vec<f64> = time_ticks(span / 1000.0)
        .into_iter()
        .map(|t| t * 1000.0 / span * 100.0)
        .collect();
    let grid = {
        let ticks = ticks.clone();
        move || {
            ticks
                .iter()
                .skip(1)
                .map(|left| view! {
                    <div class="absolute inset-y-0 w-px bg-slate-200 dark:bg-slate-700" style=format!("left:{left:.2}%")></div>
                })
                .collect_view()
        }
    };
    let labels = time_ticks(span / 1000.0)
        .into_iter()
        .zip(ticks.iter().copied())
        .enumerate()
        .map(|(i, (seconds, left))| {
            // The first label starts at the axis; the others centre on their tick.
            let shift = if i == 0 { "" } else { "-translate-x-1/2" };
            view! {
                <span class=format!("absolute top-0 whitespace-nowrap {shift}") style=format!("left:{left:.2}%") data-testid="gantt-tick">{tick_label(seconds)}</span>
            }
        })
        .collect_view();
    let rows = children
        .iter()
        .map(|c| {
            let name = c.pipeline_op.clone().or_else(|| c.name.clone()).unwrap_or_default();
            let bar = c.started_at.map(|s| {
                let left = (s - t0).num_milliseconds() as f64 / span * 100.0;
                let width = ((end_of(c) - s).num_milliseconds() as f64 / span * 100.0).max(0.5);
                let (fill, _) = node_colors(Some(c.status));
                view! {
                    <div class="absolute inset-y-1 rounded ring-1 ring-slate-400/40" style=format!("left:{left:.2}%;width:{width:.2}%;background:{fill}")></div>
                }
            });
            let duration = c.duration.map(format_duration).unwrap_or_default();
            view! {
                <tr data-testid="gantt-row">
                    <td class="whitespace-nowrap py-1 pr-3 text-sm"><a class="hover:underline" href=format!("{base}/{}", c.uuid)>{name}</a></td>
                    <td class="py-1 pr-3"><StatusBadge status=c.status /></td>
                    <td class="w-full py-1"><div class="relative h-6 rounded bg-slate-50 dark:bg-slate-800">{grid()}{bar}</div></td>
                    <td class="whitespace-nowrap py-1 pl-3 text-right font-mono text-xs text-slate-500">{duration}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div>
            <h2 class="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">"Timeline"</h2>
            <table class="w-full" data-testid="gantt">
                <thead>
                    <tr>
                        <th></th>
                        <th></th>
                        <th class="py-1 font-mono text-xs font-normal text-slate-500" aria-label="Time since the first operation started">
                            <div class="relative h-4">{labels}</div>
                        </th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn metric_of(metrics: &[wire::RunMetricSummaries], run: &wire::Run, key: &str) -> Option<f64> {
    metrics
        .iter()
        .find(|m| m.run == run.uuid)
        .and_then(|m| m.metrics.iter().find(|s| s.key == key))
        .and_then(|s| s.last)
        .or_else(|| run.outputs.get(key).and_then(serde_json::Value::as_f64))
}

#[component]
fn SweepView(data: PipelineData, base: String) -> impl IntoView {
    let Some(sweep) = data.view.sweep.clone() else {
        return ().into_any();
    };
    let trials = data.view.children;
    let metrics = data.metrics;
    let done = trials.iter().filter(|t| t.status.is_done()).count();
    let running = trials
        .iter()
        .filter(|t| {
            matches!(
                t.status,
                RunStatus::Scheduled
                    | RunStatus::Starting
                    | RunStatus::Running
                    | RunStatus::Processing
            )
        })
        .count();
    let queued = trials.len() - done - running;
    let values: Vec<Option<f64>> = trials
        .iter()
        .map(|t| {
            sweep
                .metric
                .as_deref()
                .and_then(|k| metric_of(&metrics, t, k))
        })
        .collect();
    let better = |a: f64, b: f64| if sweep.maximize { a > b } else { a < b };
    let best = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .fold(None::<(usize, f64)>, |acc, (i, v)| match acc {
            Some((_, b)) if !better(v, b) => acc,
            _ => Some((i, v)),
        });
    let best_view = best.map(|(i, v)| {
        let trial = trials[i].clone();
        let params = sweep
            .params
            .iter()
            .map(|p| {
                let value = trial.inputs.get(p).map(|v| v.to_string()).unwrap_or_default();
                view! { <li><span class="text-slate-500">{p.clone()}" = "</span><span class="font-mono">{value}</span></li> }
            })
            .collect_view();
        view! {
            <div class="rounded-lg border border-emerald-200 bg-emerald-50 p-4 dark:border-emerald-900 dark:bg-emerald-950/40" data-testid="best-trial">
                <p class="text-sm">
                    "Best so far: "
                    <a class="font-semibold hover:underline" href=format!("{base}/{}", trial.uuid)>{format!("trial {i}")}</a>
                    {format!(" with {} = {}", sweep.metric.clone().unwrap_or_default(), trellis_charts::format_value(v))}
                </p>
                <ul class="mt-2 text-sm">{params}</ul>
            </div>
        }
    });
    // The metric of each trial against its index, and the best so far.
    let chart = sweep.metric.clone().map(|key| {
        let mut best_so_far: Option<f64> = None;
        let mut each = Vec::new();
        let mut running_best = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                each.push((i as f64, *v));
                if best_so_far.is_none_or(|b| better(*v, b)) {
                    best_so_far = Some(*v);
                }
            }
            if let Some(b) = best_so_far {
                running_best.push((i as f64, b));
            }
        }
        let lines = [
            Line { label: key.clone(), color: 0, points: each },
            Line { label: "best so far".to_owned(), color: 1, points: running_best },
        ];
        match trellis_charts::render(&Chart {
            lines: &lines,
            x_format: XFormat::Step,
            y_scale: YScale::Linear,
            width: 800,
            height: 260,
        }) {
            Ok((svg, _)) => view! {
                <div class="rounded-lg border border-slate-200 bg-white p-2 text-slate-600 dark:border-slate-800 dark:bg-slate-900 dark:text-slate-300" data-testid="sweep-chart">
                    <p class="px-2 text-xs text-slate-500">{format!("{key} by trial index; the second line is the best so far")}</p>
                    <div inner_html=svg></div>
                </div>
            }.into_any(),
            Err(error) => view! { <p class="text-sm text-slate-500">{error.to_string()}</p> }.into_any(),
        }
    });
    let metric_keys: Vec<String> = sweep.metric.clone().into_iter().collect();
    let rows = trials
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (t, v))| {
            let params: Vec<String> = sweep
                .params
                .iter()
                .map(|p| format!("{p}={}", t.inputs.get(p).map(|v| v.to_string()).unwrap_or_default()))
                .collect();
            view! {
                <tr>
                    <td class="px-3 py-1 font-mono text-xs"><a class="hover:underline" href=format!("{base}/{}", t.uuid)>{i}</a></td>
                    <td class="px-3 py-1"><StatusBadge status=t.status /></td>
                    <td class="px-3 py-1 font-mono text-xs">{params.join(", ")}</td>
                    <td class="px-3 py-1 text-right font-mono text-xs">{v.map(trellis_charts::format_value).unwrap_or_default()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="space-y-6">
            <div class="flex flex-wrap gap-6 text-sm" data-testid="sweep-progress">
                <span><strong>{sweep.algorithm.clone()}</strong>" sweep"</span>
                <span>{format!("{done} done")}</span>
                <span>{format!("{running} running")}</span>
                <span>{format!("{queued} queued")}</span>
                <span>{format!("of {} trials", sweep.total)}</span>
                <span class="text-slate-500">{format!("concurrency {}, seed {}", sweep.concurrency, sweep.seed)}</span>
            </div>
            <progress class="w-full" max=sweep.total.max(1).to_string() value=done.to_string()></progress>
            {best_view}
            {chart}
            {(!trials.is_empty()).then(|| view! {
                <div>
                    <h2 class="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">"Parallel coordinates"</h2>
                    <ParallelCoordinates runs=trials.clone() metrics=metrics.clone() metric_keys />
                </div>
            })}
            <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
                <table class="min-w-full text-sm" data-testid="sweep-trials">
                    <thead><tr class="text-left text-xs text-slate-500">
                        <th class="px-3 py-2">"Trial"</th><th class="px-3 py-2">"Status"</th><th class="px-3 py-2">"Params"</th>
                        <th class="px-3 py-2 text-right">{sweep.metric.clone().unwrap_or_default()}</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}
