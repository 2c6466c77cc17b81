//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

/// The API description served at `/api/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Trellis API", description = "Projects, runs and their lifecycle. Shaped like Polyaxon's API."),
    paths(
        super::health::health,
        super::projects::list_projects,
        super::projects::create_project,
        super::projects::get_project,
        super::projects::update_project,
        super::projects::delete_project,
        super::runs::list_runs,
        super::runs::create_run,
        super::runs::get_run,
        super::runs::update_run,
        super::runs::delete_run,
        super::runs::stop_run,
        super::runs::list_children,
        super::runs::get_pipeline,
        super::queues::list_queues,
        super::queues::put_queue,
        super::queues::delete_queue,
        super::runs::restart_run,
        super::runs::copy_run,
        super::runs::resume_run,
        super::runs::get_run_statuses,
        super::runs::create_run_status,
        super::runs::get_run_logs,
        super::tracking::log_metrics,
        super::tracking::get_metrics,
        super::tracking::get_series,
        super::tracking::compare,
        super::tracking::log_params,
        super::tracking::log_outputs,
        super::tracking::log_tags,
        super::tracking::artifact_tree,
        super::tracking::put_artifact,
        super::tracking::get_artifact,
        super::tracking::delete_artifact,
        super::workspaces::list_workspaces,
        super::workspaces::list_hub,
    ),
    tags(
        (name = "projects", description = "Projects: named homes for runs, unique per owner"),
        (name = "runs", description = "Runs and their status conditions"),
        (name = "tracking", description = "Metrics, params, outputs, tags and artifacts of runs"),
        (name = "workspaces", description = "Service runs opened through the proxy, and the built-in components that start them"),
        (name = "health", description = "Liveness of the server and its database"),
    )
)]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
