//! The project page: its runs table.
//!
//! Everything a view is made of lives in the URL
//! (`/{owner}/{project}?query=...&sort=...&columns=...&page=2`), so a view
//! can be shared as a link and works without JavaScript: the query box is
//! a GET form, sort headers and the column picker are links. After
//! hydration the query box completes field, param and metric names, and
//! rows can be selected for bulk stop, delete, tag and compare. Filtering,
//! sorting and paging happen in the database.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use trellis_api_types as wire;
use trellis_domain::columns::{self, Agg, Column};
use trellis_domain::pql::FIELD_NAMES;

use super::api::{BulkAction, BulkRuns, PAGE_SIZE, ProjectPageData, project_view};
use super::pages::follow_statuses;
use super::param;
use super::tracking::number;
use super::workspaces::WorkspacesPanel;
use crate::projects::pages::Tags;
use crate::ui::{EmptyState, ErrorView, Pager, StatusBadge, format_duration, format_time};

/// `/{owner}/{project}`: a project and its runs.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let owner = param("owner");
    let project = param("project");
    let url = use_query_map();
    let page = move || {
        url.read()
            .get("page")
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let non_empty = move |name: &str| url.read().get(name).filter(|q| !q.trim().is_empty());
    let query = move || non_empty("query");
    let sort = move || non_empty("sort");
    let columns = move || non_empty("columns");
    // Bumped when a run of the project changes status or a bulk action
    // ends, so the table follows without a reload.
    let (refresh, set_refresh) = signal(0_u32);
    let view_data = Resource::new(
        move || (owner(), project(), page(), query(), sort(), refresh.get()),
        |(o, p, page, query, sort, _)| project_view(o, p, page, query, sort),
    );
    follow_statuses(owner, project, move |_| {
        set_refresh.update(|n| *n = n.wrapping_add(1))
    });
    // Outside the table, so a live refresh keeps the selection and the
    // outcome of the last bulk action.
    let selected = RwSignal::new(Vec::<String>::new());
    let bulk = ServerAction::<BulkRuns>::new();
    let workspace_form = RwSignal::new(false);
    // When a bulk action ends: clear the selection and re-read the table.
    Effect::new(move |previous: Option<usize>| {
        let version = bulk.version().get();
        if previous.is_some_and(|p| p != version) {
            selected.set(Vec::new());
            set_refresh.update(|n| *n = n.wrapping_add(1));
        }
        version
    });
    view! {
        <Title text=move || format!("{}/{}", owner(), project()) />
        <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match view_data.await {
                    Ok(data) => {
                        let filters = Filters { page: page(), query: query(), sort: sort(), columns: columns() };
                        view! { <ProjectContent data filters selected bulk refresh workspace_form /> }.into_any()
                    }
                    Err(error) => view! { <ErrorView error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// What the runs table shows, as kept in the URL.
#[derive(Debug, Clone, PartialEq)]
struct Filters {
    page: u64,
    query: Option<String>,
    sort: Option<String>,
    columns: Option<String>,
}

impl Filters {
    /// The URL of page `page` of the same view.
    fn href(&self, base: &str, page: u64) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("query", &self.query),
            ("sort", &self.sort),
            ("columns", &self.columns),
        ] {
            if let Some(value) = value {
                params.push((name, value.clone()));
            }
        }
        if page > 1 {
            params.push(("page", page.to_string()));
        }
        if params.is_empty() {
            return base.to_owned();
        }
        let encoded: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect();
        format!("{base}?{}", encoded.join("&"))
    }

    /// The same view with `columns` shown.
    fn with_columns(&self, columns: &[Column]) -> Self {
        Self {
            columns: Some(columns::to_param(columns)),
            ..self.clone()
        }
    }
}

/// Percent-encodes a URL query value.
pub(crate) fn encode_component(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Metric summaries by run and key.
type MetricIndex = HashMap<uuid::Uuid, HashMap<String, wire::MetricSummary>>;

#[component]
fn ProjectContent(
    data: ProjectPageData,
    filters: Filters,
    selected: RwSignal<Vec<String>>,
    bulk: ServerAction<BulkRuns>,
    refresh: ReadSignal<u32>,
    workspace_form: RwSignal<bool>,
) -> impl IntoView {
    let ProjectPageData {
        project,
        runs,
        query_error,
        metrics,
        fields,
    } = data;
    let base = format!("/{}/{}", project.owner, project.name);
    let api_path = format!("/api/v1/{}/{}/runs", project.owner, project.name);
    let filtered = filters.query.is_some();
    let total = runs.as_ref().map(|r| r.count);
    let (columns, columns_error) = match Column::parse_list(filters.columns.as_deref()) {
        Ok(columns) => (columns, None),
        Err(error) => (columns::DEFAULT_COLUMNS.to_vec(), Some(error.to_string())),
    };
    let index: MetricIndex = metrics
        .into_iter()
        .map(|m| {
            let by_key = m.metrics.into_iter().map(|s| (s.key.clone(), s)).collect();
            (m.run, by_key)
        })
        .collect();
    let owner = project.owner.clone();
    let name = project.name.clone();
    view! {
        <nav class="mb-2 text-sm text-slate-500" aria-label="Breadcrumb">
            <A href="/" attr:class="hover:underline">"Projects"</A>
            " / "
            <span>{project.owner.clone()}</span>
        </nav>
        <div class="mb-6 flex flex-wrap items-start justify-between gap-4">
            <div>
                <h1 class="text-2xl font-bold tracking-tight" data-testid="project-title">{project.name.clone()}</h1>
                {(!project.description.is_empty()).then(|| view! {
                    <p class="mt-1 text-slate-600 dark:text-slate-400">{project.description.clone()}</p>
                })}
                <div class="mt-2"><Tags tags=project.tags.clone() /></div>
            </div>
            <dl class="grid grid-cols-2 gap-x-6 text-sm">
                <dt class="text-slate-500">{if filtered { "Matching runs" } else { "Runs" }}</dt>
                <dd class="font-medium" data-testid="run-count">{total.map(|t| t.to_string()).unwrap_or_else(|| "–".to_owned())}</dd>
                <dt class="text-slate-500">"Created"</dt>
                <dd>{format_time(project.created_at)}</dd>
            </dl>
        </div>
        <WorkspacesPanel owner=owner.clone() project=name.clone() refresh open_form=workspace_form />
        <div class="mb-4 flex flex-wrap items-start gap-2">
            <div class="min-w-0 flex-1">
                <QueryBox action=base.clone() filters=filters.clone() error=query_error fields=fields.clone() />
            </div>
            <ColumnPicker columns=columns.clone() fields filters=filters.clone() base=base.clone() />
        </div>
        {columns_error.map(|message| view! {
            <p role="alert" class="mb-4 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-800 dark:bg-amber-950 dark:text-amber-300" data-testid="columns-error">{message}</p>
        })}
        {match runs {
            None => ().into_any(),
            Some(runs) if runs.count == 0 && filtered => view! {
                <EmptyState title="No runs match this query">
                    <A href=base.clone() attr:class="text-emerald-700 underline dark:text-emerald-400">"Clear the query"</A>
                </EmptyState>
            }
            .into_any(),
            Some(runs) if runs.count == 0 => view! {
                <EmptyState title="No runs yet">
                    <p>"Submit a run from the command line:"</p>
                    <pre class="mx-auto mt-3 max-w-2xl overflow-x-auto rounded-md bg-slate-900 p-3 text-left text-xs text-slate-100">
                        {format!("curl -X POST http://127.0.0.1:8000{api_path} \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"name\": \"my-first-run\"}}'")}
                    </pre>
                </EmptyState>
            }
            .into_any(),
            Some(runs) => {
                let pages = runs.count.div_ceil(u64::from(PAGE_SIZE));
                let page = filters.page;
                let table_filters = filters.clone();
                let page_uuids: Vec<String> = runs.results.iter().map(|r| r.uuid.simple().to_string()).collect();
                view! {
                    <BulkBar owner=owner.clone() project=name.clone() selected action=bulk />
                    <RunsTable runs=runs.results filters=table_filters base=base.clone() columns index selected page_uuids />
                    {(pages > 1).then(move || view! { <Pager page pages href=move |p| filters.href(&base, p) /> })}
                }
                .into_any()
            }
        }}
    }
}

/// The query's last term being typed: after the last comma, unless it has
/// reached its value (a colon).
fn last_term(text: &str) -> Option<(usize, &str)> {
    let start = text.rfind(',').map_or(0, |i| i + 1);
    let term = &text[start..];
    let trimmed = term.trim_start();
    let at = start + (term.len() - trimmed.len());
    (!trimmed.is_empty() && !trimmed.contains(':')).then_some((at, trimmed))
}

/// Field names completing `term` (prefix matches first, then substring
/// matches, at most 8; a leading `~` for negation is kept).
fn completions(term: &str, fields: &wire::ProjectFields) -> Vec<String> {
    let (negation, term) = term.strip_prefix('~').map_or(("", term), |t| ("~", t));
    let needle = term.to_lowercase();
    // Run fields first; prefixes (`params.`) come with the names below.
    let all = FIELD_NAMES
        .iter()
        .filter(|f| !f.ends_with('.'))
        .map(|f| (*f).to_owned())
        .chain(fields.params.iter().map(|k| format!("params.{k}")))
        .chain(fields.metrics.iter().map(|k| format!("metrics.{k}")))
        .chain(fields.outputs.iter().map(|k| format!("outputs.{k}")));
    let (mut prefix, mut inner): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for field in all {
        let lower = field.to_lowercase();
        if lower == needle {
            continue;
        } else if lower.starts_with(&needle) {
            prefix.push(format!("{negation}{field}"));
        } else if lower.contains(&needle) {
            inner.push(format!("{negation}{field}"));
        }
    }
    prefix.append(&mut inner);
    prefix.truncate(8);
    prefix
}

/// The PQL box. A plain GET form (it works without JavaScript; the router
/// makes it a client-side navigation after hydration). While typing a
/// field, names of run fields, params, metrics and outputs are offered
/// (arrows and Enter or Tab, or a click). A refused query shows under it.
#[component]
fn QueryBox(
    action: String,
    filters: Filters,
    error: Option<String>,
    fields: wire::ProjectFields,
) -> impl IntoView {
    let has_error = error.is_some();
    let text = RwSignal::new(filters.query.clone().unwrap_or_default());
    let focused = RwSignal::new(false);
    let active = RwSignal::new(0_usize);
    let suggestions = Memo::new(move |_| {
        text.with(|t| last_term(t).map(|(_, term)| completions(term, &fields)))
            .unwrap_or_default()
    });
    let input = NodeRef::<leptos::html::Input>::new();
    let accept = move |choice: String| {
        text.update(|t| {
            if let Some((at, _)) = last_term(t) {
                t.truncate(at);
                t.push_str(&choice);
                t.push(':');
            }
        });
        active.set(0);
        if let Some(input) = input.get() {
            let _ = input.focus();
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let list = suggestions.get_untracked();
        if list.is_empty() {
            return;
        }
        match ev.key().as_str() {
            "ArrowDown" => {
                ev.prevent_default();
                active.update(|a| *a = (*a + 1) % list.len());
            }
            "ArrowUp" => {
                ev.prevent_default();
                active.update(|a| *a = (*a + list.len() - 1) % list.len());
            }
            "Enter" | "Tab" => {
                ev.prevent_default();
                let i = active.get_untracked().min(list.len() - 1);
                accept(list[i].clone());
            }
            "Escape" => focused.set(false),
            _ => {}
        }
    };
    view! {
        <Form method="GET" action=action>
            <div class="relative flex gap-2">
                <label class="sr-only" for="run-query">"Filter runs"</label>
                <input
                    id="run-query"
                    node_ref=input
                    type="search"
                    name="query"
                    value=filters.query.clone().unwrap_or_default()
                    prop:value=move || text.get()
                    on:input=move |ev| {
                        text.set(event_target_value(&ev));
                        active.set(0);
                    }
                    on:keydown=on_key
                    on:focus=move |_| focused.set(true)
                    on:blur=move |_| focused.set(false)
                    placeholder="status:running|succeeded, metrics.loss:<0.2, params.lr:>0.01"
                    autocomplete="off"
                    spellcheck="false"
                    role="combobox"
                    aria-autocomplete="list"
                    aria-controls="run-query-completions"
                    aria-expanded=move || (focused.get() && !suggestions.with(Vec::is_empty)).to_string()
                    aria-invalid=has_error.to_string()
                    class="block w-full rounded-md border border-slate-300 bg-white px-3 py-2 font-mono text-sm shadow-sm focus:border-emerald-500 focus:outline-none focus:ring-1 focus:ring-emerald-500 aria-[invalid=true]:border-rose-400 dark:border-slate-700 dark:bg-slate-900"
                    data-testid="query-input"
                />
                {filters.sort.clone().map(|sort| view! { <input type="hidden" name="sort" value=sort /> })}
                {filters.columns.clone().map(|columns| view! { <input type="hidden" name="columns" value=columns /> })}
                <button type="submit" class="rounded-md bg-emerald-600 px-4 py-2 text-sm font-medium text-white hover:bg-emerald-500" data-testid="query-submit">
                    "Filter"
                </button>
                <Show when=move || focused.get() && !suggestions.with(Vec::is_empty)>
                    <ul id="run-query-completions" role="listbox" class="absolute left-0 top-full z-20 mt-1 w-full max-w-md overflow-hidden rounded-md border border-slate-200 bg-white font-mono text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900" data-testid="query-completions">
                        {move || suggestions.get().into_iter().enumerate().map(|(i, choice)| {
                            let chosen = choice.clone();
                            view! {
                                <li
                                    role="option"
                                    aria-selected=move || (active.get() == i).to_string()
                                    class="cursor-pointer px-3 py-1.5 aria-selected:bg-emerald-50 aria-selected:text-emerald-800 dark:aria-selected:bg-emerald-950 dark:aria-selected:text-emerald-300"
                                    // mousedown, not click: it comes before the input's blur.
                                    on:mousedown=move |ev| {
                                        ev.prevent_default();
                                        accept(chosen.clone());
                                    }
                                >
                                    {choice}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </Show>
            </div>
        </Form>
        {error.map(|message| view! {
            <p role="alert" class="mt-2 rounded-md bg-rose-50 px-3 py-2 font-mono text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300" data-testid="query-error">
                {message}
            </p>
        })}
    }
}

/// The column picker: each choice is a link to the same view with that
/// column added or removed.
#[component]
fn ColumnPicker(
    columns: Vec<Column>,
    fields: wire::ProjectFields,
    filters: Filters,
    base: String,
) -> impl IntoView {
    let item = move |column: Column, label: String| {
        let shown = columns.contains(&column);
        let next: Vec<Column> = if shown {
            columns.iter().filter(|c| **c != column).cloned().collect()
        } else {
            columns.iter().cloned().chain([column.clone()]).collect()
        };
        let href = filters.with_columns(&next).href(&base, 1);
        view! {
            <A href=href attr:class="flex items-center gap-2 rounded px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800" attr:role="menuitemcheckbox" attr:aria-checked=shown.to_string() attr:data-column=column.to_string()>
                <span class="inline-flex h-3.5 w-3.5 items-center justify-center rounded border border-slate-400 text-[10px]">{shown.then_some("✓")}</span>
                <span class="font-mono">{label}</span>
            </A>
        }
    };
    let section = |title: &'static str, items: Vec<AnyView>| {
        (!items.is_empty()).then(|| view! {
            <div>
                <p class="px-2 pb-1 pt-2 text-xs font-semibold uppercase tracking-wide text-slate-500">{title}</p>
                {items}
            </div>
        })
    };
    let run_items: Vec<AnyView> = [
        Column::Kind,
        Column::CreatedAt,
        Column::StartedAt,
        Column::FinishedAt,
        Column::Duration,
        Column::WaitTime,
        Column::Tags,
    ]
    .into_iter()
    .map(|c| {
        let label = c.label();
        item.clone()(c, label).into_any()
    })
    .collect();
    let metric_items: Vec<AnyView> = fields
        .metrics
        .iter()
        .flat_map(|k| {
            [Agg::Last, Agg::Min, Agg::Max].map(|agg| {
                let column = Column::Metric(k.clone(), agg);
                let label = match agg {
                    Agg::Last => k.clone(),
                    Agg::Min => format!("{k} min"),
                    Agg::Max => format!("{k} max"),
                };
                item.clone()(column, label).into_any()
            })
        })
        .collect();
    let param_items: Vec<AnyView> = fields
        .params
        .iter()
        .map(|k| item.clone()(Column::Param(k.clone()), k.clone()).into_any())
        .collect();
    let output_items: Vec<AnyView> = fields
        .outputs
        .iter()
        .map(|k| item.clone()(Column::Output(k.clone()), k.clone()).into_any())
        .collect();
    view! {
        <details class="relative" data-testid="column-picker">
            <summary class="cursor-pointer list-none rounded-md border border-slate-300 bg-white px-3 py-2 text-sm font-medium hover:bg-slate-50 dark:border-slate-700 dark:bg-slate-900 dark:hover:bg-slate-800">
                "Columns"
            </summary>
            <div class="absolute right-0 z-20 mt-1 max-h-96 w-72 overflow-y-auto rounded-md border border-slate-200 bg-white p-1 text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900" role="menu">
                {section("Run", run_items)}
                {section("Metrics", metric_items)}
                {section("Params", param_items)}
                {section("Outputs", output_items)}
            </div>
        </details>
    }
}

const BUTTON: &str = "rounded-md border border-slate-300 bg-white px-3 py-1 text-sm hover:bg-slate-100 disabled:opacity-50 dark:border-slate-700 dark:bg-slate-900 dark:hover:bg-slate-800";

/// Actions on the selected runs: compare, stop, tag, delete (asked twice).
#[component]
fn BulkBar(
    owner: String,
    project: String,
    selected: RwSignal<Vec<String>>,
    action: ServerAction<BulkRuns>,
) -> impl IntoView {
    let tags = RwSignal::new(String::new());
    let confirming = RwSignal::new(false);
    let (o, p) = (owner.clone(), project.clone());
    let run = move |kind: BulkAction| {
        let tags = tags
            .get_untracked()
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        action.dispatch(BulkRuns {
            owner: o.clone(),
            project: p.clone(),
            runs: selected.get_untracked(),
            action: kind,
            tags,
        });
    };
    let outcome = move || match action.value().get() {
        Some(Ok(outcome)) => Some((outcome.failed.is_empty(), {
            let mut text = format!(
                "{} run{} updated",
                outcome.done,
                if outcome.done == 1 { "" } else { "s" }
            );
            for failure in outcome.failed {
                text.push_str("; ");
                text.push_str(&failure);
            }
            text
        })),
        Some(Err(error)) => Some((false, error.to_string())),
        None => None,
    };
    let compare_base = StoredValue::new(format!("/{owner}/{project}/compare?runs="));
    let compare_href = move || format!("{}{}", compare_base.get_value(), selected.get().join(","));
    let (stop, tag, delete) = (run.clone(), run.clone(), run);
    view! {
        <div class="mb-2 flex min-h-9 flex-wrap items-center gap-2 text-sm" data-testid="bulk-bar">
            <Show
                when=move || !selected.with(Vec::is_empty)
                fallback=|| view! { <span class="text-slate-500">"Select runs to compare, stop, tag or delete them."</span> }
            >
                <span class="font-medium" data-testid="selected-count">{move || format!("{} selected", selected.with(Vec::len))}</span>
                <a href=compare_href class="rounded-md bg-emerald-600 px-3 py-1 font-medium text-white hover:bg-emerald-500" data-testid="compare-selected">"Compare"</a>
                <button class=BUTTON disabled=move || action.pending().get() on:click={let stop = stop.clone(); move |_| stop(BulkAction::Stop)} data-testid="stop-selected">"Stop"</button>
                <input
                    type="text"
                    placeholder="tag, another"
                    class="w-32 rounded-md border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900"
                    prop:value=move || tags.get()
                    on:input=move |ev| tags.set(event_target_value(&ev))
                    data-testid="tag-input"
                />
                <button class=BUTTON disabled=move || action.pending().get() on:click={let tag = tag.clone(); move |_| tag(BulkAction::Tag)} data-testid="tag-selected">"Add tags"</button>
                {
                    let delete = delete.clone();
                    move || if confirming.get() {
                        let delete = delete.clone();
                        view! {
                            <button class="rounded-md bg-rose-600 px-3 py-1 font-medium text-white hover:bg-rose-500" on:click=move |_| delete(BulkAction::Delete) data-testid="confirm-delete">
                                {move || format!("Delete {} runs and their data", selected.with(Vec::len))}
                            </button>
                            <button class=BUTTON on:click=move |_| confirming.set(false)>"Cancel"</button>
                        }.into_any()
                    } else {
                        view! { <button class=BUTTON on:click=move |_| confirming.set(true) data-testid="delete-selected">"Delete"</button> }.into_any()
                    }
                }
                <button class="text-slate-500 underline" on:click=move |_| selected.set(Vec::new())>"Clear"</button>
            </Show>
            {move || outcome().map(|(ok, text)| view! {
                <span role="status" class=if ok { "text-emerald-700 dark:text-emerald-400" } else { "text-rose-700 dark:text-rose-400" } data-testid="bulk-outcome">{text}</span>
            })}
        </div>
    }
}

const TH: &str = "px-3 py-2 text-left text-xs font-semibold uppercase tracking-wide text-slate-500";
const TD: &str = "whitespace-nowrap px-3 py-2 text-sm";

#[component]
fn RunsTable(
    runs: Vec<wire::Run>,
    filters: Filters,
    base: String,
    columns: Vec<Column>,
    index: MetricIndex,
    selected: RwSignal<Vec<String>>,
    page_uuids: Vec<String>,
) -> impl IntoView {
    let header = |label: String, field: Option<String>| {
        view! { <SortHeader label field filters=filters.clone() base=base.clone() /> }
    };
    let all_selected = {
        let page_uuids = page_uuids.clone();
        move || selected.with(|s| page_uuids.iter().all(|u| s.contains(u)))
    };
    let is_all_selected = all_selected.clone();
    let toggle_all = move |_| {
        let on = !is_all_selected();
        selected.update(|s| {
            s.retain(|u| !page_uuids.contains(u));
            if on {
                s.extend(page_uuids.iter().cloned());
            }
        });
    };
    let headers: Vec<AnyView> = columns
        .iter()
        .map(|c| header(c.label(), c.sort_field()).into_any())
        .collect();
    view! {
        <div class="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
            <table class="min-w-full divide-y divide-slate-200 dark:divide-slate-800" data-testid="runs-table">
                <thead class="bg-slate-50 dark:bg-slate-900">
                    <tr>
                        <th class="w-8 px-3 py-2">
                            <input type="checkbox" aria-label="Select all runs on this page" prop:checked=all_selected on:change=toggle_all data-testid="select-all" />
                        </th>
                        {header("Status".into(), Some("status".into()))}
                        {header("Name".into(), Some("name".into()))}
                        {headers}
                    </tr>
                </thead>
                <tbody class="divide-y divide-slate-100 dark:divide-slate-800">
                    {runs.into_iter().map(|run| {
                        let metrics = index.get(&run.uuid).cloned().unwrap_or_default();
                        view! { <RunRow run columns=columns.clone() metrics selected /> }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// A column header that sorts the table by `field` (when it can): a link
/// that toggles the direction when already active.
#[component]
fn SortHeader(
    label: String,
    field: Option<String>,
    filters: Filters,
    base: String,
) -> impl IntoView {
    let Some(field) = field else {
        return view! { <th scope="col" class=TH>{label}</th> }.into_any();
    };
    let current = filters
        .sort
        .clone()
        .unwrap_or_else(|| "-created_at".to_owned());
    let current = current
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let (next, arrow, aria) = if current == field {
        (format!("-{field}"), " ↑", "ascending")
    } else if current == format!("-{field}") {
        (field.clone(), " ↓", "descending")
    } else {
        (field.clone(), "", "none")
    };
    let sorted = Filters {
        page: 1,
        sort: Some(next),
        ..filters
    };
    let href = sorted.href(&base, 1);
    view! {
        <th scope="col" class=TH aria-sort=aria>
            <A href=href attr:class="hover:text-slate-900 dark:hover:text-white" attr:data-sort=field>
                {label}
                {arrow}
            </A>
        </th>
    }
    .into_any()
}

/// A param or output value as a cell shows it (strings without quotes).
fn json_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => "–".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .map_or_else(|| n.to_string(), |v| number(Some(v))),
        Some(other) => other.to_string(),
    }
}

#[component]
fn RunRow(
    run: wire::Run,
    columns: Vec<Column>,
    metrics: HashMap<String, wire::MetricSummary>,
    selected: RwSignal<Vec<String>>,
) -> impl IntoView {
    let href = format!("/{}/{}/runs/{}", run.owner, run.project, run.uuid);
    let id = run.uuid.simple().to_string();
    let short = id[..8].to_owned();
    let name = run.name.clone().unwrap_or_else(|| short.clone());
    let checked = {
        let id = id.clone();
        move || selected.with(|s| s.contains(&id))
    };
    let toggle = {
        let id = id.clone();
        move |_| {
            selected.update(|s| match s.iter().position(|u| *u == id) {
                Some(i) => {
                    s.remove(i);
                }
                None => s.push(id.clone()),
            })
        }
    };
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(format_time).unwrap_or_else(|| "–".to_owned())
    };
    let seconds = |s: Option<f64>| s.map(format_duration).unwrap_or_else(|| "–".to_owned());
    let cells: Vec<AnyView> = columns
        .iter()
        .map(|column| {
            let text = match column {
                Column::Kind => run.kind.map(|k| k.as_str()).unwrap_or("–").to_owned(),
                Column::CreatedAt => format_time(run.created_at),
                Column::StartedAt => time(run.started_at),
                Column::FinishedAt => time(run.finished_at),
                Column::Duration => seconds(run.duration),
                Column::WaitTime => seconds(run.wait_time),
                Column::Tags => {
                    return view! { <td class=TD data-column="tags"><Tags tags=run.tags.clone() /></td> }.into_any();
                }
                Column::Param(k) => json_cell(run.inputs.get(k)),
                Column::Output(k) => json_cell(run.outputs.get(k)),
                Column::Metric(k, agg) => metrics.get(k).map_or_else(
                    || "–".to_owned(),
                    |s| match agg {
                        Agg::Last => if s.last.is_none() { "NaN".to_owned() } else { number(s.last) },
                        Agg::Min => number(s.min),
                        Agg::Max => number(s.max),
                    },
                ),
            };
            let numeric = matches!(column, Column::Metric(..) | Column::Duration | Column::WaitTime);
            view! {
                <td class=TD class:text-right=numeric class:font-mono=numeric data-column=column.to_string()>{text}</td>
            }
            .into_any()
        })
        .collect();
    view! {
        <tr class="hover:bg-slate-50 dark:hover:bg-slate-800/60" data-run=id.clone()>
            <td class="px-3 py-2">
                <input type="checkbox" aria-label=format!("Select {name}") prop:checked=checked on:change=toggle data-testid="select-run" />
            </td>
            <td class=TD><StatusBadge status=run.status /></td>
            <td class=TD>
                <A href=href attr:class="font-medium text-emerald-700 hover:underline dark:text-emerald-400">{name.clone()}</A>
                <span class="ml-2 font-mono text-xs text-slate-400">{short}</span>
            </td>
            {cells}
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_term_being_typed_is_completed() {
        assert_eq!(last_term("metr"), Some((0, "metr")));
        assert_eq!(last_term("status:running, met"), Some((16, "met")));
        assert_eq!(last_term("status:run"), None);
        assert_eq!(last_term("a:1, "), None);
        let fields = wire::ProjectFields {
            params: vec!["lr".into()],
            outputs: vec![],
            metrics: vec!["loss".into(), "val_loss".into()],
        };
        assert_eq!(
            completions("metrics.l", &fields),
            vec!["metrics.loss".to_owned()]
        );
        // Prefix matches come before substring matches; negation is kept.
        assert_eq!(
            completions("~loss", &fields),
            vec!["~metrics.loss".to_owned(), "~metrics.val_loss".to_owned()]
        );
        assert!(
            completions("st", &fields).starts_with(&["status".to_owned(), "started_at".to_owned()])
        );
    }

    #[test]
    fn view_urls_keep_query_sort_and_columns() {
        let filters = Filters {
            page: 1,
            query: Some("metrics.loss:<0.5".into()),
            sort: Some("-metrics.loss".into()),
            columns: None,
        };
        let with = filters.with_columns(&[Column::Metric("loss".into(), Agg::Min)]);
        assert_eq!(
            with.href("/a/b", 2),
            "/a/b?query=metrics.loss%3A%3C0.5&sort=-metrics.loss&columns=metrics.loss%3Amin&page=2"
        );
        assert_eq!(
            Filters {
                page: 1,
                query: None,
                sort: None,
                columns: None
            }
            .href("/a/b", 1),
            "/a/b"
        );
    }
}
