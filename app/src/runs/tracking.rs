//! The run page's Metrics and Artifacts tabs.
//!
//! Metrics: a chart per metric (`charts`), following the run live, then
//! one row per metric with its latest, min and max and a sparkline, user
//! metrics first, then the `system/*` metrics the executor sampled (CPU,
//! memory, GPUs). Artifacts: the run's files, browsable by directory, each a
//! download link to the streaming API.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use trellis_api_types as wire;
use trellis_domain::tracking::SYSTEM_METRIC_PREFIX;

use super::api::{metric_keys, run_artifacts, run_metrics};
use super::charts::{ChartControls, ChartOptions, ChartRun, MetricChart};
use super::pages::follow_project;
use super::param;
use crate::ui::{EmptyState, ErrorView};

/// A number as a table shows it: up to 6 significant digits.
pub(crate) fn number(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(0.0) => "0".to_owned(),
        Some(v) if v.abs() >= 1e6 || v.abs() < 1e-4 => format!("{v:.4e}"),
        Some(v) => {
            let text = format!("{v:.6}");
            text.trim_end_matches('0').trim_end_matches('.').to_owned()
        }
    }
}

/// The SVG path of `points` scaled into a `width` × `height` box; NaN
/// points break the line.
fn sparkline_path(points: &[wire::SeriesPoint], width: f64, height: f64) -> String {
    let values: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span_x = (last.step - first.step).max(1) as f64;
    let span_y = if high > low { high - low } else { 1.0 };
    let mut path = String::new();
    let mut pen_down = false;
    for p in points {
        let Some(v) = p.value else {
            pen_down = false;
            continue;
        };
        let x = (p.step - first.step) as f64 / span_x * width;
        let y = height - (v - low) / span_y * height;
        path.push_str(&format!(
            "{}{x:.1},{y:.1} ",
            if pen_down { "L" } else { "M" }
        ));
        pen_down = true;
    }
    path
}

#[component]
fn Sparkline(points: Vec<wire::SeriesPoint>) -> impl IntoView {
    let d = sparkline_path(&points, 160.0, 28.0);
    view! {
        <svg viewBox="-1 -1 162 30" class="h-8 w-40 text-emerald-600 dark:text-emerald-400" aria-hidden="true">
            <path d=d fill="none" stroke="currentColor" stroke-width="1.5" stroke-linejoin="round" />
        </svg>
    }
}

#[component]
fn MetricsTable(metrics: Vec<wire::MetricOverview>, testid: &'static str) -> impl IntoView {
    view! {
        <div class="overflow-x-auto rounded-lg border border-slate-200 dark:border-slate-800">
            <table class="min-w-full divide-y divide-slate-200 text-sm dark:divide-slate-800" data-testid=testid>
                <thead class="bg-slate-50 text-left text-xs font-semibold uppercase tracking-wide text-slate-500 dark:bg-slate-900">
                    <tr>
                        <th class="px-3 py-2">"Metric"</th>
                        <th class="px-3 py-2 text-right">"Last"</th>
                        <th class="px-3 py-2 text-right">"Min"</th>
                        <th class="px-3 py-2 text-right">"Max"</th>
                        <th class="px-3 py-2 text-right">"Step"</th>
                        <th class="px-3 py-2 text-right">"Points"</th>
                        <th class="px-3 py-2">"Series"</th>
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100 bg-white dark:divide-slate-800 dark:bg-slate-950">
                    {metrics
                        .into_iter()
                        .map(|m| {
                            let s = m.summary;
                            view! {
                                <tr>
                                    <td class="px-3 py-2 font-mono">{s.key}</td>
                                    <td class="px-3 py-2 text-right font-mono">{if s.last.is_none() { "NaN".to_owned() } else { number(s.last) }}</td>
                                    <td class="px-3 py-2 text-right font-mono">{number(s.min)}</td>
                                    <td class="px-3 py-2 text-right font-mono">{number(s.max)}</td>
                                    <td class="px-3 py-2 text-right font-mono">{s.step}</td>
                                    <td class="px-3 py-2 text-right font-mono">{s.count}</td>
                                    <td class="px-3 py-1"><Sparkline points=m.series.points /></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// A signal bump at most once a second however often `poke` is called:
/// live charts re-read after a burst of logged points, not for each.
pub(crate) fn throttled(set: WriteSignal<u32>) -> impl Fn() + Copy + 'static {
    let pending = StoredValue::new(false);
    move || {
        if pending.get_value() {
            return;
        }
        pending.set_value(true);
        set_timeout(
            move || {
                pending.set_value(false);
                set.update(|n| *n = n.wrapping_add(1));
            },
            std::time::Duration::from_secs(1),
        );
    }
}

/// A chart per metric, user metrics then system ones.
#[component]
fn MetricCharts(
    keys: Vec<String>,
    options: ChartOptions,
    refresh: ReadSignal<u32>,
) -> impl IntoView {
    let (owner, project, uuid) = (param("owner"), param("project"), param("uuid"));
    view! {
        <div class="grid gap-4 lg:grid-cols-2" data-testid="metric-charts">
            {keys.into_iter().map(|key| {
                let runs = vec![ChartRun { uuid: uuid(), label: key.clone(), color: 0 }];
                view! { <MetricChart owner=owner() project=project() runs key options refresh /> }
            }).collect_view()}
        </div>
    }
}

/// `/{owner}/{project}/runs/{uuid}/metrics`: a chart per metric (live while
/// the run logs), then the summaries as tables.
#[component]
pub fn RunMetricsTab() -> impl IntoView {
    let (owner, project, uuid) = (param("owner"), param("project"), param("uuid"));
    let (refresh, set_refresh) = signal(0_u32);
    let metrics = Resource::new(
        move || (owner(), project(), uuid(), refresh.get()),
        |(o, p, u, _)| run_metrics(o, p, u),
    );
    let options = ChartOptions::new();
    let poke = throttled(set_refresh);
    follow_project(
        owner,
        project,
        |_| {},
        move |run| {
            if run.is_none_or(|run| run.simple().to_string() == uuid().replace('-', "")) {
                poke();
            }
        },
    );
    // The chart grid is built once per set of keys: new points re-read
    // each chart through `refresh`; only a new key rebuilds the grid (the
    // summaries below notice it and bump `keys_version`).
    let keys_version = RwSignal::new(0_u32);
    let keys = Resource::new(
        move || (owner(), project(), uuid(), keys_version.get()),
        |(o, p, u, _)| metric_keys(o, p, u),
    );
    Effect::new(move |_| {
        let Some(Ok(now)) = metrics.get() else { return };
        let shown = keys
            .get_untracked()
            .and_then(Result::ok)
            .unwrap_or_default();
        if now.len() != shown.len() || now.iter().zip(&shown).any(|(m, k)| m.summary.key != *k) {
            keys_version.update(|v| *v = v.wrapping_add(1));
        }
    });
    view! {
        <div class="mt-6 space-y-6">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let keys = keys.await.unwrap_or_default();
                    if keys.is_empty() {
                        return ().into_any();
                    }
                    let (system, user): (Vec<String>, Vec<String>) =
                        keys.into_iter().partition(|k| k.starts_with(SYSTEM_METRIC_PREFIX));
                    view! {
                        <ChartControls options />
                        <MetricCharts keys=user options refresh />
                        {(!system.is_empty()).then(|| view! {
                            <details class="group">
                                <summary class="cursor-pointer text-sm font-semibold uppercase tracking-wide text-slate-500">"System charts"</summary>
                                <div class="mt-3"><MetricCharts keys=system options refresh /></div>
                            </details>
                        })}
                    }
                    .into_any()
                })}
            </Transition>
            <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading metrics…"</p> }>
                {move || Suspend::new(async move {
                    match metrics.await {
                        Ok(all) if all.is_empty() => view! {
                            <EmptyState title="No metrics yet">
                                "Log metrics with mlflow.log_metric, the Python helper (trellis_sdk.log_metrics) or POST /api/v1/…/runs/{uuid}/metrics."
                            </EmptyState>
                        }
                        .into_any(),
                        Ok(all) => {
                            let (system, user): (Vec<_>, Vec<_>) = all
                                .into_iter()
                                .partition(|m| m.summary.key.starts_with(SYSTEM_METRIC_PREFIX));
                            view! {
                                {(!user.is_empty()).then(|| view! {
                                    <section>
                                        <h2 class="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">"Metrics"</h2>
                                        <MetricsTable metrics=user testid="metrics-table" />
                                    </section>
                                })}
                                {(!system.is_empty()).then(|| view! {
                                    <section>
                                        <h2 class="mb-2 text-sm font-semibold uppercase tracking-wide text-slate-500">"System"</h2>
                                        <MetricsTable metrics=system testid="system-metrics-table" />
                                    </section>
                                })}
                            }
                            .into_any()
                        }
                        Err(error) => view! { <ErrorView error /> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Bytes as people read them.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `/{owner}/{project}/runs/{uuid}/artifacts?path=dir`.
#[component]
pub fn RunArtifactsTab() -> impl IntoView {
    let (owner, project, uuid) = (param("owner"), param("project"), param("uuid"));
    let url = use_query_map();
    let path = move || url.read().get("path").unwrap_or_default();
    let tree = Resource::new(
        move || (owner(), project(), uuid(), path()),
        |(o, p, u, path)| run_artifacts(o, p, u, path),
    );
    view! {
        <div class="mt-6">
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading artifacts…"</p> }>
                {move || Suspend::new(async move {
                    let page = format!("/{}/{}/runs/{}/artifacts", owner(), project(), uuid());
                    let files = format!("/api/v1/{}/{}/runs/{}/artifacts/files", owner(), project(), uuid());
                    match tree.await {
                        Ok(tree) if tree.files.is_empty() && tree.path.is_empty() => view! {
                            <EmptyState title="No artifacts">
                                "Upload files with mlflow.log_artifact, trellis_sdk.log_artifact or PUT /api/v1/…/artifacts/files/{path}."
                            </EmptyState>
                        }
                        .into_any(),
                        Ok(tree) => {
                            let parent = tree.path.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap_or_default();
                            let up = (!tree.path.is_empty()).then(|| {
                                let href = if parent.is_empty() { page.clone() } else { format!("{page}?path={parent}") };
                                view! { <li class="py-1.5"><A href=href attr:class="font-mono text-emerald-700 hover:underline dark:text-emerald-400">"../"</A></li> }
                            });
                            view! {
                                <p class="mb-2 font-mono text-sm text-slate-500" data-testid="artifacts-path">{format!("/{}", tree.path)}</p>
                                <ul class="divide-y divide-slate-100 rounded-lg border border-slate-200 bg-white px-4 text-sm dark:divide-slate-800 dark:border-slate-800 dark:bg-slate-900" data-testid="artifacts-list">
                                    {up}
                                    {tree.files.into_iter().map(|f| {
                                        let name = f.path.rsplit('/').next().unwrap_or_default().to_owned();
                                        if f.is_dir {
                                            view! {
                                                <li class="py-1.5">
                                                    <A href=format!("{page}?path={}", f.path) attr:class="font-mono text-emerald-700 hover:underline dark:text-emerald-400">{format!("{name}/")}</A>
                                                </li>
                                            }.into_any()
                                        } else {
                                            view! {
                                                <li class="flex justify-between py-1.5">
                                                    <a href=format!("{files}/{}", f.path) rel="external" download=name.clone() class="font-mono text-emerald-700 hover:underline dark:text-emerald-400">{name.clone()}</a>
                                                    <span class="text-slate-500">{size(f.size.unwrap_or(0))}</span>
                                                </li>
                                            }.into_any()
                                        }
                                    }).collect_view()}
                                </ul>
                            }
                            .into_any()
                        }
                        Err(error) => view! { <ErrorView error /> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_sizes_read_well() {
        assert_eq!(number(Some(0.25)), "0.25");
        assert_eq!(number(Some(1.0)), "1");
        assert_eq!(number(Some(1.5e-7)), "1.5000e-7");
        assert_eq!(number(None), "–");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(7000), "6.8 KiB");
    }

    #[test]
    fn sparklines_span_the_box_and_break_at_nan() {
        let p = |step, value| wire::SeriesPoint {
            step,
            timestamp: 0,
            value,
        };
        let path = sparkline_path(
            &[p(0, Some(0.0)), p(5, None), p(10, Some(1.0))],
            100.0,
            10.0,
        );
        assert_eq!(path, "M0.0,10.0 M100.0,0.0 ");
    }
}
