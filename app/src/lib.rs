//! The Trellis dashboard: server-rendered Leptos pages that hydrate in the
//! browser.
//!
//! Layout: [`shell`] (the HTML document) and [`App`] (the router) live here;
//! [`projects`] and [`runs`] hold each feature's pages and its thin server
//! functions (`api.rs`); [`ui`] holds shared components (layout, status
//! badges, errors); [`live`] follows the server's WebSocket streams;
//! [`error::AppError`] is the server functions' error.
//!
//! URLs are stable and shareable: `/` lists projects, `/{owner}/{project}`
//! shows a project and its runs, `/{owner}/{project}/runs/{uuid}` a run with
//! its tabs as sub-paths.

// Without erased components (see `disable-erase-components` in Cargo.toml),
// nested views make deep types; the default limit of 128 is too small.
#![recursion_limit = "512"]

pub mod error;
pub mod live;
pub mod projects;
pub mod runs;
pub mod ui;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{ParentRoute, Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// Applied before first paint so a dark-mode user never sees a white flash:
/// an explicit choice (saved by the toggle) wins, otherwise the system's.
/// Without a saved choice, the page also follows the system when it changes.
const THEME_SCRIPT: &str = "(function(){try{var m=window.matchMedia('(prefers-color-scheme: dark)');\
var apply=function(){var t=localStorage.getItem('trellis-theme');\
document.documentElement.classList.toggle('dark',t?t==='dark':m.matches);};\
apply();m.addEventListener('change',apply);}catch(e){}})();";

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <script>{THEME_SCRIPT}</script>
                <link rel="stylesheet" id="leptos" href=format!("/pkg/{}.css", options.output_name) />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased dark:bg-slate-950 dark:text-slate-100">
                <App />
            </body>
        </html>
    }
}

/// The dashboard's routes. Pages render in `Async` mode: the server waits
/// for their data and sends complete HTML, so they read without JavaScript
/// (streamed fallbacks would need scripts to be replaced).
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| if page.is_empty() { "Trellis".to_owned() } else { format!("{page} · Trellis") } />
        <Router>
            <ui::Layout>
                <Routes fallback=ui::NotFoundPage>
                    <Route path=path!("/") view=projects::pages::ProjectsPage ssr=SsrMode::Async />
                    <Route path=path!("/:owner/:project") view=runs::table::ProjectPage ssr=SsrMode::Async />
                    <Route path=path!("/:owner/:project/compare") view=runs::compare::ComparePage ssr=SsrMode::Async />
                    <ParentRoute path=path!("/:owner/:project/runs/:uuid") view=runs::pages::RunPage ssr=SsrMode::Async>
                        <Route path=path!("") view=runs::pages::RunOverview ssr=SsrMode::Async />
                        <Route path=path!("logs") view=runs::pages::RunLogsTab ssr=SsrMode::Async />
                        <Route path=path!("metrics") view=runs::tracking::RunMetricsTab ssr=SsrMode::Async />
                        <Route path=path!("artifacts") view=runs::tracking::RunArtifactsTab ssr=SsrMode::Async />
                        <Route path=path!("spec") view=runs::pages::RunSpec ssr=SsrMode::Async />
                        <Route path=path!("pipeline") view=runs::pipeline::RunPipelineTab ssr=SsrMode::Async />
                    </ParentRoute>
                </Routes>
            </ui::Layout>
        </Router>
    }
}
