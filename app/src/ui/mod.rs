//! Shared components: the page layout, status badges, errors, and the
//! formatting of times and durations.

mod format;
mod theme;

pub use format::{format_duration, format_time, tick_label, time_ticks};
pub use theme::ThemeToggle;

use leptos::prelude::*;
use leptos_router::components::A;
use trellis_domain::lifecycle::RunStatus;

use crate::error::AppError;

/// The frame of every page: the top bar and the content column.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="sticky top-0 z-10 border-b border-slate-200 bg-white/80 backdrop-blur dark:border-slate-800 dark:bg-slate-900/80">
            <nav class="mx-auto flex h-14 max-w-6xl items-center gap-6 px-4" aria-label="Main">
                <A href="/" attr:class="flex items-center gap-2 font-semibold tracking-tight">
                    <Logo />
                    <span>"Trellis"</span>
                </A>
                <A href="/" attr:class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">
                    "Projects"
                </A>
                <a href="/api/v1/openapi.json" class="text-sm text-slate-600 hover:text-slate-900 dark:text-slate-300 dark:hover:text-white">
                    "API"
                </a>
                <div class="ml-auto">
                    <ThemeToggle />
                </div>
            </nav>
        </header>
        <main class="mx-auto max-w-6xl px-4 py-8">{children()}</main>
    }
}

#[component]
fn Logo() -> impl IntoView {
    view! {
        <svg class="h-6 w-6 text-emerald-600 dark:text-emerald-400" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true">
            <path d="M4 20V4M12 20V4M20 20V4M4 8h16M4 14h16" stroke-linecap="round" />
        </svg>
    }
}

/// Tailwind classes of a status badge: grey while waiting, blue while active,
/// green, red or amber when done, by how it ended.
fn status_classes(status: RunStatus) -> &'static str {
    use RunStatus::*;
    match status {
        Created | Resuming | OnSchedule | Compiled | Queued | Retrying => {
            "bg-slate-100 text-slate-700 ring-slate-300 dark:bg-slate-800 dark:text-slate-200 dark:ring-slate-600"
        }
        Scheduled | Starting | Running | Processing => {
            "bg-sky-50 text-sky-700 ring-sky-300 dark:bg-sky-950 dark:text-sky-300 dark:ring-sky-700"
        }
        Succeeded => {
            "bg-emerald-50 text-emerald-700 ring-emerald-300 dark:bg-emerald-950 dark:text-emerald-300 dark:ring-emerald-700"
        }
        Failed | UpstreamFailed => {
            "bg-rose-50 text-rose-700 ring-rose-300 dark:bg-rose-950 dark:text-rose-300 dark:ring-rose-700"
        }
        Stopping | Stopped | Skipped => {
            "bg-zinc-100 text-zinc-600 ring-zinc-300 dark:bg-zinc-800 dark:text-zinc-300 dark:ring-zinc-600"
        }
        Warning | Unschedulable | Unknown => {
            "bg-amber-50 text-amber-800 ring-amber-300 dark:bg-amber-950 dark:text-amber-300 dark:ring-amber-700"
        }
    }
}

/// A run status as a coloured pill.
#[component]
pub fn StatusBadge(status: RunStatus) -> impl IntoView {
    let classes = format!(
        "inline-flex items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset {}",
        status_classes(status)
    );
    let pulse = matches!(
        status,
        RunStatus::Running | RunStatus::Starting | RunStatus::Processing
    );
    view! {
        <span class=classes data-status=status.as_str()>
            {pulse.then(|| view! { <span class="h-1.5 w-1.5 animate-pulse rounded-full bg-current"></span> })}
            {status.as_str().replace('_', " ")}
        </span>
    }
}

/// A failed load, shown in place of the content. (The server function that
/// failed has already set the response's status, e.g. 404.)
#[component]
pub fn ErrorView(error: AppError) -> impl IntoView {
    let title = match &error {
        AppError::NotFound(_) => "Not found",
        AppError::Invalid(_) => "Invalid request",
        AppError::Conflict(_) => "Conflict",
        AppError::Internal | AppError::Transport(_) => "Something went wrong",
    };
    view! {
        <div role="alert" class="rounded-lg border border-rose-200 bg-rose-50 p-6 dark:border-rose-900 dark:bg-rose-950/50">
            <h2 class="font-semibold text-rose-800 dark:text-rose-200">{title}</h2>
            <p class="mt-1 text-sm text-rose-700 dark:text-rose-300">{error.to_string()}</p>
            <A href="/" attr:class="mt-4 inline-block text-sm font-medium text-rose-800 underline dark:text-rose-200">
                "Back to projects"
            </A>
        </div>
    }
}

/// The page for URLs that match no route.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    set_not_found_status();
    view! {
        <div class="py-24 text-center">
            <p class="text-sm font-semibold text-emerald-600">"404"</p>
            <h1 class="mt-2 text-3xl font-bold tracking-tight">"Page not found"</h1>
            <p class="mt-2 text-slate-600 dark:text-slate-400">"Nothing lives at this address."</p>
            <A href="/" attr:class="mt-6 inline-block rounded-md bg-emerald-600 px-4 py-2 text-sm font-medium text-white hover:bg-emerald-500">
                "Go to projects"
            </A>
        </div>
    }
}

/// During server rendering, answer 404 instead of 200.
fn set_not_found_status() {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
}

/// A message for an empty list, with a hint of what to do.
#[component]
pub fn EmptyState(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="rounded-lg border border-dashed border-slate-300 p-10 text-center dark:border-slate-700">
            <h3 class="font-medium">{title}</h3>
            <div class="mt-2 text-sm text-slate-600 dark:text-slate-400">{children()}</div>
        </div>
    }
}

/// Previous / next links for a paginated list; `href` builds the URL of a
/// page number (1-based).
#[component]
pub fn Pager(page: u64, pages: u64, href: impl Fn(u64) -> String + 'static) -> impl IntoView {
    let link = "rounded-md border border-slate-300 px-3 py-1.5 text-sm hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800";
    let disabled = "rounded-md border border-slate-200 px-3 py-1.5 text-sm text-slate-400 dark:border-slate-800 dark:text-slate-600";
    let previous = (page > 1).then(|| href(page - 1));
    let next = (page < pages).then(|| href(page + 1));
    view! {
        <nav class="mt-4 flex items-center justify-between" aria-label="Pagination">
            <span class="text-sm text-slate-600 dark:text-slate-400">
                {format!("Page {page} of {}", pages.max(1))}
            </span>
            <div class="flex gap-2">
                {match previous {
                    Some(url) => view! { <A href=url attr:class=link attr:rel="prev">"Previous"</A> }.into_any(),
                    None => view! { <span class=disabled>"Previous"</span> }.into_any(),
                }}
                {match next {
                    Some(url) => view! { <A href=url attr:class=link attr:rel="next">"Next"</A> }.into_any(),
                    None => view! { <span class=disabled>"Next"</span> }.into_any(),
                }}
            </div>
        </nav>
    }
}
