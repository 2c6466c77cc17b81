//! The projects page: every project of the default owner, and a form to
//! create one without leaving the page.

use leptos::html::Input;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use trellis_api_types as wire;

use super::api::{CreateProject, PAGE_SIZE, list_projects};
use crate::ui::{EmptyState, ErrorView, Pager, format_time};

/// `/`: the projects.
#[component]
pub fn ProjectsPage() -> impl IntoView {
    let query = use_query_map();
    let page = move || {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(1)
            .max(1)
    };
    let create = ServerAction::<CreateProject>::new();
    let projects = Resource::new(
        move || (page(), create.version().get()),
        |(page, _)| list_projects(page),
    );
    view! {
        <Title text="Projects" />
        <div class="flex flex-col gap-8 lg:flex-row">
            <section class="flex-1">
                <div class="mb-4 flex items-baseline justify-between">
                    <h1 class="text-2xl font-bold tracking-tight">"Projects"</h1>
                </div>
                <Transition fallback=|| view! { <ListSkeleton /> }>
                    {move || Suspend::new(async move {
                        match projects.await {
                            Ok(list) => view! { <ProjectList list page=page() /> }.into_any(),
                            Err(error) => view! { <ErrorView error /> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            <aside class="lg:w-80">
                <CreateProjectForm create />
            </aside>
        </div>
    }
}

#[component]
fn ListSkeleton() -> impl IntoView {
    view! {
        <div class="space-y-2" aria-busy="true">
            <div class="h-16 animate-pulse rounded-lg bg-slate-200 dark:bg-slate-800"></div>
            <div class="h-16 animate-pulse rounded-lg bg-slate-200 dark:bg-slate-800"></div>
        </div>
    }
}

#[component]
fn ProjectList(list: wire::ListResponse<wire::Project>, page: u64) -> impl IntoView {
    if list.count == 0 {
        return view! {
            <EmptyState title="No projects yet">
                "Create your first project with the form, or with "
                <code class="font-mono">"POST /api/v1/default/projects/create"</code>
                "."
            </EmptyState>
        }
        .into_any();
    }
    let pages = list.count.div_ceil(u64::from(PAGE_SIZE));
    let count = list.count;
    view! {
        <p class="mb-3 text-sm text-slate-600 dark:text-slate-400">
            {format!("{count} project{}", if count == 1 { "" } else { "s" })}
        </p>
        <ul class="divide-y divide-slate-200 overflow-hidden rounded-lg border border-slate-200 bg-white dark:divide-slate-800 dark:border-slate-800 dark:bg-slate-900" data-testid="project-list">
            {list.results.into_iter().map(|project| view! { <ProjectRow project /> }).collect_view()}
        </ul>
        {(pages > 1).then(|| view! { <Pager page pages href=|p| format!("/?page={p}") /> })}
    }
    .into_any()
}

#[component]
fn ProjectRow(project: wire::Project) -> impl IntoView {
    let href = format!("/{}/{}", project.owner, project.name);
    view! {
        <li>
            <A href=href attr:class="block px-4 py-3 hover:bg-slate-50 dark:hover:bg-slate-800/60">
                <div class="flex items-center justify-between gap-4">
                    <div class="min-w-0">
                        <p class="font-medium text-emerald-700 dark:text-emerald-400">
                            <span class="text-slate-500 dark:text-slate-400">{project.owner.clone()} " / "</span>
                            {project.name.clone()}
                        </p>
                        {(!project.description.is_empty()).then(|| view! {
                            <p class="mt-0.5 truncate text-sm text-slate-600 dark:text-slate-400">{project.description.clone()}</p>
                        })}
                    </div>
                    <div class="flex shrink-0 flex-col items-end gap-1">
                        <Tags tags=project.tags.clone() />
                        <span class="text-xs text-slate-500">"updated " {format_time(project.updated_at)}</span>
                    </div>
                </div>
            </A>
        </li>
    }
}

/// Tags as small chips.
#[component]
pub fn Tags(tags: Vec<String>) -> impl IntoView {
    view! {
        <span class="flex flex-wrap gap-1">
            {tags
                .into_iter()
                .map(|tag| view! {
                    <span class="rounded bg-slate-100 px-1.5 py-0.5 text-xs text-slate-700 dark:bg-slate-800 dark:text-slate-300">{tag}</span>
                })
                .collect_view()}
        </span>
    }
}

const INPUT: &str = "mt-1 block w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm focus:border-emerald-500 focus:outline-none focus:ring-1 focus:ring-emerald-500 dark:border-slate-700 dark:bg-slate-950";

#[component]
fn CreateProjectForm(create: ServerAction<CreateProject>) -> impl IntoView {
    let name_input = NodeRef::<Input>::new();
    let result = create.value();
    // Clear the name once the project exists, ready for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = result.get()
            && let Some(input) = name_input.get()
        {
            input.set_value("");
        }
    });
    let error = move || match result.get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    let created = move || match result.get() {
        Some(Ok(project)) => Some(format!("Created {}/{}", project.owner, project.name)),
        _ => None,
    };
    view! {
        <div class="rounded-lg border border-slate-200 bg-white p-5 dark:border-slate-800 dark:bg-slate-900">
            <h2 class="font-semibold">"New project"</h2>
            <ActionForm action=create>
                <div class="mt-4 space-y-3">
                    <label class="block text-sm font-medium">
                        "Name"
                        <input node_ref=name_input type="text" name="name" required placeholder="mnist" autocomplete="off" class=INPUT data-testid="project-name" />
                    </label>
                    <label class="block text-sm font-medium">
                        "Description"
                        <input type="text" name="description" placeholder="What is this project about?" class=INPUT />
                    </label>
                    <label class="block text-sm font-medium">
                        "Tags"
                        <input type="text" name="tags" placeholder="vision, baseline" class=INPUT />
                    </label>
                    <p class="text-xs text-slate-500">"Lowercase letters, digits, - and _."</p>
                    {move || error().map(|message| view! {
                        <p role="alert" class="rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300" data-testid="create-error">{message}</p>
                    })}
                    {move || created().map(|message| view! {
                        <p role="status" class="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-700 dark:bg-emerald-950 dark:text-emerald-300">{message}</p>
                    })}
                    <button
                        type="submit"
                        class="w-full rounded-md bg-emerald-600 px-4 py-2 text-sm font-medium text-white shadow-sm hover:bg-emerald-500 disabled:opacity-60"
                        disabled=move || create.pending().get()
                        data-testid="create-project"
                    >
                        {move || if create.pending().get() { "Creating…" } else { "Create project" }}
                    </button>
                </div>
            </ActionForm>
        </div>
    }
}
