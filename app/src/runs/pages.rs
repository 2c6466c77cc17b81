//! The run page: its header and tabs, the overview, logs and spec.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Outlet};
use trellis_api_types as wire;

use super::api::{RunPageData, run_logs, run_view};
use super::param;
use crate::error::AppError;
use crate::projects::pages::Tags;
use crate::ui::{EmptyState, ErrorView, StatusBadge, format_duration, format_time};

/// `/{owner}/{project}/runs/{uuid}/...`: the run's header and tabs; the
/// active tab renders in the outlet.
#[component]
pub fn RunPage() -> impl IntoView {
    let owner = param("owner");
    let project = param("project");
    let uuid = param("uuid");
    // Bumped when the run's status changes (and, as a safety net, every
    // 10 s while it is not done), so its status, timings and history follow
    // the run without a reload.
    let (refresh, set_refresh) = signal(0_u32);
    let data = Resource::new(
        move || (owner(), project(), uuid(), refresh.get()),
        |(o, p, u, _)| run_view(o, p, u),
    );
    provide_context(data);
    follow_statuses(owner, project, move |changed| {
        let this_run =
            changed.is_none_or(|changed| changed.simple().to_string() == uuid().replace('-', ""));
        if this_run {
            set_refresh.update(|n| *n = n.wrapping_add(1));
        }
    });
    Effect::new(move |_| {
        let poll = move || {
            let done = data
                .get_untracked()
                .and_then(|d| d.ok())
                .is_some_and(|d| d.run.status.is_done());
            if !done {
                set_refresh.update(|n| *n = n.wrapping_add(1));
            }
        };
        if let Ok(handle) = set_interval_with_handle(poll, std::time::Duration::from_secs(10)) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(view_data) => view! { <RunHeader run=view_data.run workspace=view_data.workspace /> }.into_any(),
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
        // Outside the transition: a refresh re-renders the header, not the
        // open tab (the logs keep their scroll position).
        <Outlet />
    }
}

pub(crate) type RunResource = Resource<Result<RunPageData, AppError>>;

/// Calls `changed` with the run whose status changed in the project's
/// status stream, or `None` when changes may have been missed and
/// everything should be re-read: when the stream opens (a status can
/// change between the server's render and the browser's connection,
/// which for a big page can be seconds), reconnects or falls behind.
pub(crate) fn follow_statuses(
    owner: impl Fn() -> String + 'static,
    project: impl Fn() -> String + 'static,
    changed: impl Fn(Option<uuid::Uuid>) + Copy + 'static,
) {
    subscribe_project(owner, project, changed, |_| {}, true);
}

/// [`follow_statuses`], and `logged` with the run that logged metric
/// points (or `None` after missed messages). The first connection does
/// not re-read: charts would redraw under the pointer just after load,
/// and a running run's next points re-read its chart anyway.
pub(crate) fn follow_project(
    owner: impl Fn() -> String + 'static,
    project: impl Fn() -> String + 'static,
    changed: impl Fn(Option<uuid::Uuid>) + Copy + 'static,
    logged: impl Fn(Option<uuid::Uuid>) + Copy + 'static,
) {
    subscribe_project(owner, project, changed, logged, false);
}

fn subscribe_project(
    owner: impl Fn() -> String + 'static,
    project: impl Fn() -> String + 'static,
    changed: impl Fn(Option<uuid::Uuid>) + Copy + 'static,
    logged: impl Fn(Option<uuid::Uuid>) + Copy + 'static,
    resync_on_first_open: bool,
) {
    let opened = std::cell::Cell::new(false);
    crate::live::subscribe(crate::live::Handlers {
        path: Box::new(move || {
            Some(format!(
                "/streams/v1/{}/{}/runs/statuses",
                owner(),
                project()
            ))
        }),
        on_message: Box::new(move |text| {
            match serde_json::from_str::<wire::StatusStreamMessage>(&text) {
                Ok(wire::StatusStreamMessage::Status { uuid, .. }) => changed(Some(uuid)),
                Ok(wire::StatusStreamMessage::Metrics { uuid }) => logged(Some(uuid)),
                Ok(wire::StatusStreamMessage::Resync) | Err(_) => {
                    changed(None);
                    logged(None);
                }
            }
        }),
        // A reconnection may have missed changes; so may the first
        // connection, since the page's load.
        on_open: Box::new(move || {
            if opened.replace(true) || resync_on_first_open {
                changed(None);
                logged(None);
            }
        }),
    });
}

#[component]
fn RunHeader(run: wire::Run, workspace: Option<wire::Workspace>) -> impl IntoView {
    let project_href = format!("/{}/{}", run.owner, run.project);
    let base = format!("{project_href}/runs/{}", run.uuid);
    let title = run.name.clone().unwrap_or_else(|| run.uuid.to_string());
    let is_pipeline = matches!(
        run.kind,
        Some(trellis_domain::run::RunKind::Matrix | trellis_domain::run::RunKind::Dag)
    );
    view! {
        <Title text=title.clone() />
        <nav class="mb-2 text-sm text-slate-500" aria-label="Breadcrumb">
            <A href="/" attr:class="hover:underline">"Projects"</A>
            " / "
            <A href=project_href attr:class="hover:underline">{format!("{}/{}", run.owner, run.project)}</A>
        </nav>
        <div class="flex flex-wrap items-center gap-3">
            <h1 class="text-2xl font-bold tracking-tight" data-testid="run-title">{title}</h1>
            <StatusBadge status=run.status />
            {workspace.map(|workspace| view! { <OpenWorkspace workspace /> })}
        </div>
        <p class="mt-1 font-mono text-xs text-slate-500">{run.uuid.to_string()}</p>
        {run.pipeline.map(|pipeline| {
            let what = match (&run.pipeline_op, run.pipeline_index) {
                (Some(op), _) => format!("operation `{op}` of "),
                (None, Some(index)) => format!("trial {index} of "),
                _ => String::new(),
            };
            view! {
                <p class="mt-1 text-sm text-slate-500" data-testid="pipeline-link">
                    {what}
                    <A href=format!("/{}/{}/runs/{pipeline}/pipeline", run.owner, run.project) attr:class="hover:underline">"its pipeline"</A>
                </p>
            }
        })}
        <div class="mt-6 border-b border-slate-200 dark:border-slate-800">
            <nav class="-mb-px flex gap-6" aria-label="Run tabs">
                <Tab href=base.clone() label="Overview" />
                <Tab href=format!("{base}/logs") label="Logs" />
                <Tab href=format!("{base}/metrics") label="Metrics" />
                <Tab href=format!("{base}/artifacts") label="Artifacts" />
                <Tab href=format!("{base}/spec") label="Spec" />
                {is_pipeline.then(|| view! { <Tab href=format!("{base}/pipeline") label="Pipeline" /> })}
            </nav>
        </div>
    }
}

/// A service run's "Open" button (the proxied address, in a new tab), or
/// what it waits for before it can be opened.
#[component]
fn OpenWorkspace(workspace: wire::Workspace) -> impl IntoView {
    match workspace.url {
        Some(url) => view! {
            <a
                href=url
                target="_blank"
                rel="noopener"
                data-testid="open-workspace"
                class="rounded-md bg-emerald-600 px-3 py-1 text-sm font-medium text-white hover:bg-emerald-700"
            >
                "Open ↗"
            </a>
        }
        .into_any(),
        None if !workspace.run.status.is_done() => view! {
            <span class="text-sm text-slate-500" data-testid="workspace-starting">
                "Starting: it opens here once the app answers…"
            </span>
        }
        .into_any(),
        None => ().into_any(),
    }
}

#[component]
fn Tab(href: String, label: &'static str) -> impl IntoView {
    view! {
        <A
            href=href
            exact=true
            attr:class="border-b-2 border-transparent px-1 pb-2 text-sm font-medium text-slate-600 hover:text-slate-900 aria-[current=page]:border-emerald-600 aria-[current=page]:text-emerald-700 dark:text-slate-400 dark:hover:text-white dark:aria-[current=page]:text-emerald-400"
        >
            {label}
        </A>
    }
}

/// Renders `render` with the loaded run, from the context the run page set.
fn with_run<V: IntoView + 'static>(
    render: impl Fn(RunPageData) -> V + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let data = expect_context::<RunResource>();
    view! {
        <Suspense>
            {move || Suspend::new(async move { data.await.ok().map(render) })}
        </Suspense>
    }
}

/// The overview tab: timings, the status timeline, inputs and outputs.
#[component]
pub fn RunOverview() -> impl IntoView {
    with_run(|view_data| {
        let RunPageData {
            run, conditions, ..
        } = view_data;
        let description = run.description.clone();
        let (inputs, outputs) = (run.inputs.clone(), run.outputs.clone());
        view! {
            <div class="mt-6 grid gap-6 lg:grid-cols-3">
                <div class="space-y-6 lg:col-span-2">
                    {(!description.is_empty()).then(|| view! {
                        <p class="text-slate-700 dark:text-slate-300">{description}</p>
                    })}
                    <Card title="Inputs"><KeyValues values=inputs empty="No inputs." /></Card>
                    <Card title="Outputs"><KeyValues values=outputs empty="No outputs yet." /></Card>
                </div>
                <div class="space-y-6">
                    <Card title="Details"><Timings run /></Card>
                    <Card title="Status history"><Timeline conditions /></Card>
                </div>
            </div>
        }
    })
}

/// The spec tab: the content as submitted.
#[component]
pub fn RunSpec() -> impl IntoView {
    with_run(|view_data| {
        let content = view_data.run.content;
        view! {
            <div class="mt-6">
                {if content.trim().is_empty() {
                    view! {
                        <EmptyState title="No spec">"This run was created without a Polyaxonfile (for example, tracked from a script)."</EmptyState>
                    }
                    .into_any()
                } else {
                    view! {
                        <pre class="overflow-x-auto rounded-lg border border-slate-200 bg-white p-4 font-mono text-sm dark:border-slate-800 dark:bg-slate-900" data-testid="run-spec">{content}</pre>
                    }
                    .into_any()
                }}
            </div>
        }
    })
}

#[component]
fn Card(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <section class="rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900">
            <h2 class="mb-3 text-sm font-semibold uppercase tracking-wide text-slate-500">{title}</h2>
            {children()}
        </section>
    }
}

#[component]
fn Timings(run: wire::Run) -> impl IntoView {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(format_time).unwrap_or_else(|| "–".to_owned())
    };
    let seconds = |s: Option<f64>| s.map(format_duration).unwrap_or_else(|| "–".to_owned());
    let rows = [
        (
            "Kind",
            run.kind
                .map(|k| k.as_str().to_owned())
                .unwrap_or_else(|| "–".to_owned()),
        ),
        ("Created", format_time(run.created_at)),
        ("Started", time(run.started_at)),
        ("Finished", time(run.finished_at)),
        ("Wait time", seconds(run.wait_time)),
        ("Duration", seconds(run.duration)),
        ("Updated", format_time(run.updated_at)),
    ];
    view! {
        <dl class="space-y-1.5 text-sm" data-testid="run-timings">
            {rows
                .into_iter()
                .map(|(label, value)| view! {
                    <div class="flex justify-between gap-4">
                        <dt class="text-slate-500">{label}</dt>
                        <dd class="text-right">{value}</dd>
                    </div>
                })
                .collect_view()}
            <div class="flex justify-between gap-4">
                <dt class="text-slate-500">"Tags"</dt>
                <dd><Tags tags=run.tags.clone() /></dd>
            </div>
        </dl>
    }
}

#[component]
fn Timeline(conditions: Vec<wire::StatusCondition>) -> impl IntoView {
    view! {
        <ol class="relative ml-2 border-l border-slate-200 dark:border-slate-700" data-testid="status-timeline">
            {conditions
                .into_iter()
                .rev()
                .map(|condition| view! {
                    <li class="mb-4 ml-4">
                        <span class="absolute -left-1.5 mt-1.5 h-3 w-3 rounded-full border border-white bg-slate-300 dark:border-slate-900 dark:bg-slate-600"></span>
                        <div class="flex items-center gap-2">
                            <StatusBadge status=condition.kind />
                            <time class="text-xs text-slate-500">{format_time(condition.last_transition_time)}</time>
                        </div>
                        {condition.reason.map(|reason| view! { <p class="mt-1 text-xs font-medium text-slate-600 dark:text-slate-300">{reason}</p> })}
                        {condition.message.map(|message| view! { <p class="mt-0.5 text-xs text-slate-500 dark:text-slate-400">{message}</p> })}
                    </li>
                })
                .collect_view()}
        </ol>
    }
}

#[component]
fn KeyValues(
    values: serde_json::Map<String, serde_json::Value>,
    empty: &'static str,
) -> impl IntoView {
    if values.is_empty() {
        return view! { <p class="text-sm text-slate-500">{empty}</p> }.into_any();
    }
    view! {
        <table class="min-w-full text-sm">
            <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                {values
                    .into_iter()
                    .map(|(key, value)| {
                        let text = match value {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        };
                        view! {
                            <tr>
                                <td class="py-1.5 pr-4 font-mono text-slate-600 dark:text-slate-300">{key}</td>
                                <td class="py-1.5 font-mono">{text}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The logs tab: the run's captured output, as a terminal shows it
/// (progress bars collapsed, ANSI colours kept). The server renders the
/// lines stored so far; in the browser the tab then follows the run live
/// over the log stream, from the cursor the page ended at.
#[component]
pub fn RunLogsTab() -> impl IntoView {
    let owner = param("owner");
    let project = param("project");
    let uuid = param("uuid");
    let logs = Resource::new(
        move || (owner(), project(), uuid()),
        |(o, p, u)| run_logs(o, p, u),
    );
    view! {
        <div class="mt-6">
            <Suspense fallback=|| view! { <p class="text-sm text-slate-500">"Loading logs…"</p> }>
                {move || Suspend::new(async move {
                    match logs.await {
                        Ok(logs) => {
                            let stream = format!(
                                "/streams/v1/{}/{}/runs/{}/logs",
                                owner(),
                                project(),
                                uuid(),
                            );
                            view! { <LiveLogs initial=logs stream /> }.into_any()
                        }
                        Err(error) => view! { <ErrorView error /> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}

/// Most lines the tab keeps; older ones leave the view (the CLI and API
/// page through all of them).
const MAX_LIVE_LINES: usize = 20_000;

#[component]
fn LiveLogs(initial: wire::RunLogs, stream: String) -> impl IntoView {
    let lines = RwSignal::new(initial.logs);
    let cursor = RwSignal::new(initial.next_cursor);
    let done = RwSignal::new(initial.done);
    let dropped = RwSignal::new(0_usize);
    // Follow the end while the reader is at the bottom; scrolling up
    // pauses it, "Jump to latest" (or scrolling back down) resumes it.
    let follow = RwSignal::new(true);
    let search = RwSignal::new(String::new());
    let pane = NodeRef::<leptos::html::Pre>::new();
    let to_bottom = move || {
        if let Some(pane) = pane.get_untracked() {
            pane.set_scroll_top(pane.scroll_height());
        }
    };
    crate::live::subscribe(crate::live::Handlers {
        path: Box::new(move || {
            (!done.get_untracked()).then(|| format!("{stream}?cursor={}", cursor.get_untracked()))
        }),
        on_message: Box::new(move |text| {
            let Ok(page) = serde_json::from_str::<wire::RunLogs>(&text) else {
                return;
            };
            if !page.logs.is_empty() {
                lines.update(|all| {
                    all.extend(page.logs);
                    if all.len() > MAX_LIVE_LINES {
                        let excess = all.len() - MAX_LIVE_LINES;
                        all.drain(..excess);
                        dropped.update(|d| *d += excess);
                    }
                });
                if follow.get_untracked() {
                    request_animation_frame(to_bottom);
                }
            }
            cursor.set(page.next_cursor);
            if page.done {
                done.set(true);
            }
        }),
        on_open: Box::new(|| {}),
    });
    Effect::new(move |_| {
        if follow.get_untracked() {
            request_animation_frame(to_bottom);
        }
    });
    let on_scroll = move |_| {
        if let Some(pane) = pane.get_untracked() {
            let from_bottom = pane.scroll_height() - pane.scroll_top() - pane.client_height();
            follow.set(from_bottom < 24);
        }
    };
    let shown = move || {
        let needle = search.get().to_lowercase();
        lines.with(|all| {
            all.iter()
                .filter(|entry| needle.is_empty() || entry.text.to_lowercase().contains(&needle))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let summary = move || {
        let total = lines.with(Vec::len);
        let needle = search.get();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut text = if needle.is_empty() {
            format!("{total} line{}", plural(total))
        } else {
            let matching = lines.with(|all| {
                let needle = needle.to_lowercase();
                all.iter()
                    .filter(|e| e.text.to_lowercase().contains(&needle))
                    .count()
            });
            format!("{matching} of {total} line{} match", plural(total))
        };
        let dropped = dropped.get();
        if dropped > 0 {
            text.push_str(&format!(" (the first {dropped} left the view)"));
        }
        text
    };
    view! {
        <div class="mb-2 flex flex-wrap items-center gap-3 text-xs text-slate-500">
            <span data-testid="log-summary">{summary}</span>
            <span data-testid="log-state">
                {move || {
                    if done.get() {
                        view! { <span>"Complete"</span> }.into_any()
                    } else {
                        view! {
                            <span class="inline-flex items-center gap-1 text-emerald-600 dark:text-emerald-400">
                                <span class="h-2 w-2 animate-pulse rounded-full bg-emerald-500"></span>
                                "Live"
                            </span>
                        }
                            .into_any()
                    }
                }}
            </span>
            <input
                type="search"
                placeholder="Search the logs"
                aria-label="Search the logs"
                data-testid="log-search"
                class="ml-auto w-56 rounded-md border border-slate-300 bg-white px-2 py-1 text-xs text-slate-900 dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100"
                prop:value=search
                on:input=move |ev| search.set(event_target_value(&ev))
            />
            <Show when=move || !follow.get()>
                <button
                    type="button"
                    data-testid="log-jump"
                    class="rounded-md bg-emerald-600 px-2 py-1 text-white hover:bg-emerald-700"
                    on:click=move |_| {
                        follow.set(true);
                        to_bottom();
                    }
                >
                    "Jump to latest"
                </button>
            </Show>
        </div>
        <pre
            node_ref=pane
            on:scroll=on_scroll
            class="max-h-[70vh] min-h-24 overflow-auto rounded-lg bg-slate-950 p-4 font-mono text-xs leading-5 text-slate-100"
            data-testid="run-logs"
        >
            <Show when=move || lines.with(Vec::is_empty)>
                <span class="text-slate-500">
                    {move || if done.get() { "The run printed nothing." } else { "No output yet: lines appear here as the run prints them." }}
                </span>
            </Show>
            <For each=shown key=|entry| entry.cursor let:entry>
                <LogLine entry />
            </For>
        </pre>
    }
}

#[component]
fn LogLine(entry: wire::LogEntry) -> impl IntoView {
    let stderr = entry.stream == "stderr";
    let pieces = trellis_domain::logs::display_line(&entry.text);
    view! {
        <div class="border-l-2 pl-2" class:border-rose-500=stderr class:border-transparent=!stderr data-stream=entry.stream>
            {pieces
                .into_iter()
                .map(|piece| {
                    let classes = format!("{}{}", ansi_class(piece.color), if piece.bold { " font-bold" } else { "" });
                    view! { <span class=classes>{piece.text}</span> }
                })
                .collect_view()}
        </div>
    }
}

/// Tailwind classes of the 16 ANSI colours (written out so Tailwind keeps them).
fn ansi_class(color: Option<u8>) -> &'static str {
    match color {
        Some(0) => "text-slate-500",
        Some(1) => "text-red-400",
        Some(2) => "text-green-400",
        Some(3) => "text-yellow-300",
        Some(4) => "text-blue-400",
        Some(5) => "text-fuchsia-400",
        Some(6) => "text-cyan-300",
        Some(7) => "text-slate-200",
        Some(8) => "text-slate-400",
        Some(9) => "text-red-300",
        Some(10) => "text-green-300",
        Some(11) => "text-yellow-200",
        Some(12) => "text-blue-300",
        Some(13) => "text-fuchsia-300",
        Some(14) => "text-cyan-200",
        Some(15) => "text-white",
        _ => "",
    }
}
