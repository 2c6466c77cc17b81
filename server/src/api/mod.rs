//! The REST API under `/api/v1`, shaped like Polyaxon's.
//!
//! Handlers are thin: extract, call one service method, wrap the result.
//! Every failure, including malformed bodies and queries, leaves as the one
//! error envelope of [`error::ApiError`]. The OpenAPI document is generated
//! from the handlers' annotations ([`openapi`]).

pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod projects;
pub mod queues;
pub mod runs;
pub mod tracking;
pub mod workspaces;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use trellis_api_types::ListResponse;
use trellis_domain::listing::Page;

use crate::startup::AppState;

/// Largest accepted request body. Specs are at most 1 MiB
/// (`trellis_domain::spec::MAX_SPEC_LEN`); JSON escaping can grow them.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/queues", get(queues::list_queues))
        .route("/hub", get(workspaces::list_hub))
        .route(
            "/queues/{name}",
            axum::routing::put(queues::put_queue).delete(queues::delete_queue),
        )
        .route("/{owner}/projects/list", get(projects::list_projects))
        .route("/{owner}/projects/create", post(projects::create_project))
        .route(
            "/{owner}/{project}",
            get(projects::get_project)
                .patch(projects::update_project)
                .delete(projects::delete_project),
        )
        .route(
            "/{owner}/{project}/runs",
            get(runs::list_runs).post(runs::create_run),
        )
        .route(
            "/{owner}/{project}/workspaces",
            get(workspaces::list_workspaces),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}",
            get(runs::get_run)
                .patch(runs::update_run)
                .delete(runs::delete_run),
        )
        .route("/{owner}/{project}/runs/{uuid}/stop", post(runs::stop_run))
        .route(
            "/{owner}/{project}/runs/{uuid}/children",
            get(runs::list_children),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/pipeline",
            get(runs::get_pipeline),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/restart",
            post(runs::restart_run),
        )
        .route("/{owner}/{project}/runs/{uuid}/copy", post(runs::copy_run))
        .route(
            "/{owner}/{project}/runs/{uuid}/resume",
            post(runs::resume_run),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/statuses",
            get(runs::get_run_statuses).post(runs::create_run_status),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/logs",
            get(runs::get_run_logs),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/metrics",
            get(tracking::get_metrics).post(tracking::log_metrics),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/metrics/series",
            get(tracking::get_series),
        )
        .route("/{owner}/{project}/metrics/compare", get(tracking::compare))
        .route(
            "/{owner}/{project}/runs/{uuid}/params",
            post(tracking::log_params),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/outputs",
            post(tracking::log_outputs),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/tags",
            post(tracking::log_tags),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/artifacts/tree",
            get(tracking::artifact_tree),
        )
        .route(
            "/{owner}/{project}/runs/{uuid}/artifacts/files/{*path}",
            get(tracking::get_artifact)
                .put(tracking::put_artifact)
                .delete(tracking::delete_artifact)
                // Uploads stream to disk; their size is not capped here.
                .layer(DefaultBodyLimit::disable()),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Query parameters of list routes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000 (default 20).
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    pub offset: Option<i64>,
    /// Sort expression, e.g. `-created_at, name`.
    pub sort: Option<String>,
    /// Filter in the Polyaxon query language.
    pub query: Option<String>,
}

impl ListParams {
    /// The validated page.
    pub fn page(&self) -> Result<Page, error::ApiError> {
        Page::new(self.limit, self.offset)
            .map_err(|e| error::ApiError::invalid(Some("limit/offset"), e))
    }
}

/// Wraps a page of results in Polyaxon's list envelope, with `next` and
/// `previous` URLs that keep the caller's other parameters.
pub fn list_envelope<T>(
    path: &str,
    params: &ListParams,
    page: Page,
    results: Vec<T>,
    count: u64,
) -> ListResponse<T> {
    let url = |offset: u64| {
        let mut next = params.clone();
        next.limit = Some(i64::from(page.limit));
        next.offset = Some(i64::try_from(offset).unwrap_or(i64::MAX));
        match serde_urlencoded::to_string(&next) {
            Ok(query) => format!("{path}?{query}"),
            Err(_) => path.to_owned(),
        }
    };
    ListResponse {
        count,
        results,
        next: page.next_offset(count).map(url),
        previous: page.previous_offset().map(url),
    }
}
