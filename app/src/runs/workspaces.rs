//! The project page's workspaces: the service runs it has open (with an
//! "Open" link through the proxy, uptime and idle time) and the form that
//! starts a built-in one (JupyterLab, VS Code, Streamlit, ...).

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use trellis_api_types as wire;

use crate::error::AppError;
use crate::ui::{StatusBadge, format_duration};

/// A project's active service runs.
#[server]
pub async fn project_workspaces(
    owner: String,
    project: String,
) -> Result<Vec<wire::Workspace>, AppError> {
    let services = crate::error::services()?;
    Ok(services.workspaces().list(&owner, &project).await?)
}

/// Starts built-in component `hub` in project `at` (`owner/project`) from
/// the New workspace form; empty fields keep the component's defaults.
#[server]
pub async fn start_workspace(
    at: String,
    hub: String,
    name: String,
    python: String,
    requirements: String,
    app: String,
    logdir: String,
) -> Result<wire::Run, AppError> {
    let services = crate::error::services()?;
    let (owner, project) = at
        .split_once('/')
        .ok_or_else(|| AppError::Invalid(format!("`{at}` is not owner/project")))?;
    let mut params = serde_json::Map::new();
    for (key, value) in [
        ("python", python),
        ("requirements", requirements),
        ("app", app),
        ("logdir", logdir),
    ] {
        let value = value.trim();
        if !value.is_empty() && takes(&hub, key) {
            params.insert(key.to_owned(), serde_json::Value::String(value.to_owned()));
        }
    }
    let name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
    Ok(services
        .workspaces()
        .start(owner, project, &hub, name, params)
        .await?)
}

/// Which form fields a built-in component takes.
fn takes(hub: &str, field: &str) -> bool {
    match field {
        "python" | "requirements" => hub != "vscode",
        "app" => hub == "streamlit",
        "logdir" => hub == "tensorboard",
        _ => false,
    }
}

const INPUT: &str = "mt-1 block w-full rounded-md border border-slate-300 bg-white px-3 py-2 text-sm shadow-sm focus:border-emerald-500 focus:outline-none focus:ring-1 focus:ring-emerald-500 dark:border-slate-700 dark:bg-slate-950";

/// The Workspaces section: the list, and the New workspace form. `refresh`
/// changes when a run of the project changes status; `open_form` outlives
/// the section's re-renders.
#[component]
pub fn WorkspacesPanel(
    owner: String,
    project: String,
    refresh: ReadSignal<u32>,
    open_form: RwSignal<bool>,
) -> impl IntoView {
    let (list_owner, list_project) = (owner.clone(), project.clone());
    let workspaces = Resource::new(
        move || refresh.get(),
        move |_| project_workspaces(list_owner.clone(), list_project.clone()),
    );
    view! {
        <section class="mb-6 rounded-lg border border-slate-200 bg-white p-4 dark:border-slate-800 dark:bg-slate-900" data-testid="workspaces">
            <div class="flex items-center justify-between gap-4">
                <h2 class="font-semibold">"Workspaces"</h2>
                <button
                    type="button"
                    class="rounded-md bg-emerald-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-emerald-500"
                    data-testid="new-workspace"
                    on:click=move |_| open_form.update(|o| *o = !*o)
                >
                    "New workspace"
                </button>
            </div>
            <Show when=move || open_form.get()>
                <NewWorkspaceForm owner=owner.clone() project=project.clone() />
            </Show>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match workspaces.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="mt-2 text-sm text-slate-500">"No workspace is open. Start JupyterLab, VS Code, Streamlit or TensorBoard with New workspace."</p>
                        }.into_any(),
                        Ok(list) => view! { <WorkspaceTable list /> }.into_any(),
                        Err(error) => view! { <p role="alert" class="mt-2 text-sm text-rose-600">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn WorkspaceTable(list: Vec<wire::Workspace>) -> impl IntoView {
    view! {
        <table class="mt-3 w-full text-left text-sm">
            <thead class="text-xs uppercase text-slate-500">
                <tr>
                    <th class="py-1 pr-4">"Name"</th>
                    <th class="py-1 pr-4">"Kind"</th>
                    <th class="py-1 pr-4">"Status"</th>
                    <th class="py-1 pr-4">"Owner"</th>
                    <th class="py-1 pr-4">"Up"</th>
                    <th class="py-1 pr-4">"Idle"</th>
                    <th class="py-1"></th>
                </tr>
            </thead>
            <tbody>
                {list.into_iter().map(|w| {
                    let run = &w.run;
                    let href = format!("/{}/{}/runs/{}", run.owner, run.project, run.uuid);
                    let name = run.name.clone().unwrap_or_else(|| run.uuid.simple().to_string()[..8].to_owned());
                    let secs = |s: Option<u64>| s.map(|s| format_duration(s as f64)).unwrap_or_else(|| "–".to_owned());
                    let idle = match (w.idle_secs, w.culling_secs) {
                        (Some(idle), Some(limit)) => format!("{} of {}", secs(Some(idle)), secs(Some(limit))),
                        (idle, _) => secs(idle),
                    };
                    view! {
                        <tr class="border-t border-slate-100 dark:border-slate-800" data-testid="workspace-row">
                            <td class="py-1.5 pr-4"><A href=href attr:class="font-medium hover:underline">{name}</A></td>
                            <td class="py-1.5 pr-4">{w.component.clone().unwrap_or_else(|| "service".to_owned())}</td>
                            <td class="py-1.5 pr-4"><StatusBadge status=run.status /></td>
                            <td class="py-1.5 pr-4">{run.owner.clone()}</td>
                            <td class="py-1.5 pr-4">{secs(w.uptime_secs)}</td>
                            <td class="py-1.5 pr-4">{idle}</td>
                            <td class="py-1.5 text-right">
                                {w.url.clone().map(|url| view! {
                                    <a href=url target="_blank" rel="noopener" class="font-medium text-emerald-700 hover:underline dark:text-emerald-400" data-testid="workspace-open">"Open ↗"</a>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn NewWorkspaceForm(owner: String, project: String) -> impl IntoView {
    let start = ServerAction::<StartWorkspace>::new();
    let hub = RwSignal::new("jupyterlab".to_owned());
    let result = start.value();
    // Once started, follow its progress on the run page: it shows the
    // status and logs, and the Open button once the app answers.
    Effect::new(move |_| {
        if let Some(Ok(run)) = result.get() {
            let navigate = use_navigate();
            navigate(
                &format!("/{}/{}/runs/{}/logs", run.owner, run.project, run.uuid),
                Default::default(),
            );
        }
    });
    let error = move || match result.get() {
        Some(Err(error)) => Some(error.to_string()),
        _ => None,
    };
    let field = move |name: &'static str| move || takes(&hub.get(), name);
    view! {
        <ActionForm action=start attr:class="mt-4 grid gap-3 sm:grid-cols-2" attr:data-testid="workspace-form">
            <input type="hidden" name="at" value=format!("{owner}/{project}") />
            <label class="block text-sm font-medium">
                "Kind"
                <select name="hub" class=INPUT data-testid="workspace-kind" on:change=move |ev| hub.set(event_target_value(&ev))>
                    {trellis_domain::spec::hub::COMPONENTS.iter().map(|c| view! {
                        <option value=c.name>{format!("{} — {}", c.name, c.summary)}</option>
                    }).collect_view()}
                </select>
            </label>
            <label class="block text-sm font-medium">
                "Name"
                <input type="text" name="name" placeholder="notebook" autocomplete="off" class=INPUT data-testid="workspace-name" />
            </label>
            <label class="block text-sm font-medium" class:hidden=move || !field("python")()>
                "Python"
                <input type="text" name="python" placeholder="python3 (or a virtualenv's bin/python)" class=INPUT data-testid="workspace-python" />
            </label>
            <label class="block text-sm font-medium" class:hidden=move || !field("requirements")()>
                "Extra packages"
                <input type="text" name="requirements" placeholder="pandas scikit-learn" class=INPUT />
            </label>
            <label class="block text-sm font-medium" class:hidden=move || !field("app")()>
                "App script"
                <input type="text" name="app" placeholder="app.py" class=INPUT />
            </label>
            <label class="block text-sm font-medium" class:hidden=move || !field("logdir")()>
                "Log directories"
                <input type="text" name="logdir" placeholder="runs/ or name:path,name2:path2" class=INPUT />
            </label>
            <div class="sm:col-span-2">
                {move || error().map(|message| view! {
                    <p role="alert" class="mb-2 rounded-md bg-rose-50 px-3 py-2 text-sm text-rose-700 dark:bg-rose-950 dark:text-rose-300" data-testid="workspace-error">{message}</p>
                })}
                <button
                    type="submit"
                    class="rounded-md bg-emerald-600 px-4 py-2 text-sm font-medium text-white hover:bg-emerald-500 disabled:opacity-60"
                    disabled=move || start.pending().get()
                    data-testid="start-workspace"
                >
                    {move || if start.pending().get() { "Starting…" } else { "Start" }}
                </button>
            </div>
        </ActionForm>
    }
}
