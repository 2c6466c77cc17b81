//! `/api/v1/{owner}/{project}/runs/...`.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use trellis_api_types::{
    CreateRun, ErrorBody, ListResponse, PostStatus, Run, RunLogs, RunStatuses, UpdateRun,
};
use trellis_domain::listing::RunSort;
use trellis_services::runs::{Cloning, RunRef};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::{ListParams, list_envelope};
use crate::startup::AppState;

/// Path of a single run.
type RunPath = Path<(String, String, String)>;

fn run_ref((owner, project, uuid): &(String, String, String)) -> RunRef<'_> {
    RunRef {
        owner,
        project,
        uuid,
    }
}

/// Lists a project's runs.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ListParams),
    responses((status = 200, body = ListResponse<Run>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<ListParams>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<ListResponse<Run>>> {
    let page = params.page()?;
    let sort =
        RunSort::parse(params.sort.as_deref()).map_err(|e| ApiError::invalid(Some("sort"), e))?;
    let (runs, count) = state
        .services
        .runs()
        .list(&owner, &project, page, &sort, params.query.as_deref())
        .await?;
    Ok(Json(list_envelope(uri.path(), &params, page, runs, count)))
}

/// Creates a run from a submitted spec (or none, for runs tracked from outside).
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path)), request_body = CreateRun,
    responses((status = 201, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn create_run(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
    ApiJson(input): ApiJson<CreateRun>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let run = state
        .services
        .runs()
        .create(&owner, &project, input)
        .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Gets a run.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_run(State(state): State<AppState>, Path(path): RunPath) -> ApiResult<Json<Run>> {
    Ok(Json(state.services.runs().get(run_ref(&path)).await?))
}

/// Changes a run's name, description or tags.
#[utoipa::path(patch, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = UpdateRun,
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_run(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<UpdateRun>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        state.services.runs().update(run_ref(&path), input).await?,
    ))
}

/// Deletes a run and its history.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}/runs/{uuid}", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_run(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<StatusCode> {
    state.services.runs().delete(run_ref(&path)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops a run: at once if nothing started, else through `stopping`.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/stop", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stop_run(State(state): State<AppState>, Path(path): RunPath) -> ApiResult<Json<Run>> {
    Ok(Json(state.services.runs().stop(run_ref(&path)).await?))
}

/// The runs a matrix or dag run created: trials by index, operations in
/// the order they started (stopped, skipped and upstream-failed ones too).
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/children", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = [Run]), (status = 404, body = ErrorBody)))]
pub async fn list_children(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<Json<Vec<Run>>> {
    Ok(Json(state.services.runs().children(run_ref(&path)).await?))
}

/// A matrix or dag run with its children, its dag's operations (with
/// their layout columns) or its sweep's settings.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/pipeline", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = trellis_api_types::PipelineView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_pipeline(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<Json<trellis_api_types::PipelineView>> {
    Ok(Json(state.services.runs().pipeline(run_ref(&path)).await?))
}

/// Restarts a run: a new run with the same spec and params, pointing back
/// at this one.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/restart", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 201, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn restart_run(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<(StatusCode, Json<Run>)> {
    clone_run(&state, &path, Cloning::Restart).await
}

/// Copies a run: like a restart, also taking its outputs.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/copy", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 201, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn copy_run(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<(StatusCode, Json<Run>)> {
    clone_run(&state, &path, Cloning::Copy).await
}

/// A restart or copy of the run at `path`, answered 201.
async fn clone_run(
    state: &AppState,
    path: &(String, String, String),
    kind: Cloning,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let run = state.services.runs().clone_run(run_ref(path), kind).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

/// Resumes a done run as itself: it is queued again and keeps its history
/// and logs.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/resume", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume_run(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<Json<Run>> {
    Ok(Json(state.services.runs().resume(run_ref(&path)).await?))
}

/// Lists a run's status conditions, oldest first.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/statuses", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = RunStatuses), (status = 404, body = ErrorBody)))]
pub async fn get_run_statuses(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<Json<RunStatuses>> {
    Ok(Json(state.services.runs().statuses(run_ref(&path)).await?))
}

/// Moves a run to a new status, if the lifecycle allows it.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/statuses", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = PostStatus,
    responses((status = 200, body = RunStatuses), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_run_status(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<PostStatus>,
) -> ApiResult<Json<RunStatuses>> {
    Ok(Json(
        state
            .services
            .runs()
            .add_status(run_ref(&path), input)
            .await?,
    ))
}

/// Query of `GET .../logs`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Return lines after this cursor (0 or absent: from the start).
    pub after: Option<i64>,
    /// At most this many lines (default 1000, at most 5000).
    pub limit: Option<u32>,
}

/// A run's captured output, resumable from a cursor.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/logs", tag = "runs",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), LogsParams),
    responses((status = 200, body = RunLogs), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_run_logs(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiQuery(params): ApiQuery<LogsParams>,
) -> ApiResult<Json<RunLogs>> {
    let (after, limit) = (params.after.unwrap_or(0), params.limit.unwrap_or(1000));
    Ok(Json(
        state
            .services
            .runs()
            .logs(run_ref(&path), after, limit)
            .await?,
    ))
}
