//! `/api/v1/{owner}/{project}/runs/{uuid}/{metrics,params,outputs,tags,artifacts}`
//! and metric comparison across runs.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use trellis_api_types::{
    ArtifactTree, ArtifactUploaded, ErrorBody, LogMetrics, LogOutputs, LogParams, LogTags,
    MetricComparison, MetricSeries, Run, RunMetrics,
};
use trellis_services::runs::RunRef;

use super::error::ApiResult;
use super::extract::{ApiJson, ApiQuery};
use crate::startup::AppState;

type RunPath = Path<(String, String, String)>;
type FilePath = Path<(String, String, String, String)>;

fn run_ref((owner, project, uuid): &(String, String, String)) -> RunRef<'_> {
    RunRef {
        owner,
        project,
        uuid,
    }
}

/// Logs a batch of metric points (at most 1000) in one transaction.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/metrics", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = LogMetrics,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log_metrics(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<LogMetrics>,
) -> ApiResult<StatusCode> {
    state
        .services
        .tracking()
        .log_metrics(run_ref(&path), input)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The latest, min and max of each of a run's metrics.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/metrics", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = RunMetrics), (status = 404, body = ErrorBody)))]
pub async fn get_metrics(
    State(state): State<AppState>,
    Path(path): RunPath,
) -> ApiResult<Json<RunMetrics>> {
    Ok(Json(
        state.services.tracking().summaries(run_ref(&path)).await?,
    ))
}

/// Query of a metric series.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// The metric.
    pub key: String,
    /// About this many points (default 1000, at most 10000); each bucket
    /// keeps its min and max.
    pub points: Option<usize>,
    /// Only steps from this one.
    pub min_step: Option<i64>,
    /// Only steps up to this one.
    pub max_step: Option<i64>,
}

/// One metric of a run, downsampled server-side.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/metrics/series", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), SeriesParams),
    responses((status = 200, body = MetricSeries), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_series(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiQuery(params): ApiQuery<SeriesParams>,
) -> ApiResult<Json<MetricSeries>> {
    let steps = match (params.min_step, params.max_step) {
        (None, None) => None,
        (low, high) => Some((low.unwrap_or(i64::MIN), high.unwrap_or(i64::MAX))),
    };
    Ok(Json(
        state
            .services
            .tracking()
            .series(run_ref(&path), &params.key, params.points, steps)
            .await?,
    ))
}

/// Query of a comparison.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareParams {
    /// Comma-separated run uuids (1 to 100).
    pub runs: String,
    /// The metric.
    pub key: String,
    /// About this many points per run.
    pub points: Option<usize>,
}

/// One metric of several runs of a project, downsampled.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/metrics/compare", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), CompareParams),
    responses((status = 200, body = MetricComparison), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
    ApiQuery(params): ApiQuery<CompareParams>,
) -> ApiResult<Json<MetricComparison>> {
    let runs: Vec<&str> = params
        .runs
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    Ok(Json(
        state
            .services
            .tracking()
            .compare(&owner, &project, &runs, &params.key, params.points, None)
            .await?,
    ))
}

/// Logs params; logging one again with another value is refused.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/params", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = LogParams,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log_params(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<LogParams>,
) -> ApiResult<StatusCode> {
    state
        .services
        .tracking()
        .log_params(run_ref(&path), input)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Merges values into the run's outputs.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/outputs", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = LogOutputs,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log_outputs(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<LogOutputs>,
) -> ApiResult<StatusCode> {
    state
        .services
        .tracking()
        .log_outputs(run_ref(&path), input)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds tags to the run.
#[utoipa::path(post, path = "/api/v1/{owner}/{project}/runs/{uuid}/tags", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path)), request_body = LogTags,
    responses((status = 200, body = Run), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log_tags(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiJson(input): ApiJson<LogTags>,
) -> ApiResult<Json<Run>> {
    Ok(Json(
        state
            .services
            .tracking()
            .log_tags(run_ref(&path), input)
            .await?,
    ))
}

/// Query of an artifact listing.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TreeParams {
    /// A directory relative to the run's artifacts (default: the root).
    pub path: Option<String>,
}

/// Lists the artifacts directly under a directory.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/tree", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), TreeParams),
    responses((status = 200, body = ArtifactTree), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn artifact_tree(
    State(state): State<AppState>,
    Path(path): RunPath,
    ApiQuery(params): ApiQuery<TreeParams>,
) -> ApiResult<Json<ArtifactTree>> {
    let dir = params.path.unwrap_or_default();
    Ok(Json(
        state
            .services
            .tracking()
            .list_artifacts(run_ref(&path), &dir)
            .await?,
    ))
}

/// Uploads an artifact: the body is streamed to disk, of any size.
#[utoipa::path(put, path = "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/files/{path}", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("path" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ArtifactUploaded), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_artifact(
    State(state): State<AppState>,
    Path((owner, project, uuid, file)): FilePath,
    body: Body,
) -> ApiResult<(StatusCode, Json<ArtifactUploaded>)> {
    let at = RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let uploaded = state
        .services
        .tracking()
        .put_artifact(at, &file, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(uploaded)))
}

/// Downloads an artifact, streamed.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/files/{path}", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("path" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_artifact(
    State(state): State<AppState>,
    Path((owner, project, uuid, file)): FilePath,
) -> ApiResult<Response> {
    let at = RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let (file, size) = state.services.tracking().open_artifact(at, &file).await?;
    Ok(stream_file(file, size))
}

/// A file as a streamed `application/octet-stream` response.
pub fn stream_file(file: tokio::fs::File, size: u64) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}

/// Deletes an artifact file or directory.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}/runs/{uuid}/artifacts/files/{path}", tag = "tracking",
    params(("owner" = String, Path), ("project" = String, Path), ("uuid" = String, Path), ("path" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_artifact(
    State(state): State<AppState>,
    Path((owner, project, uuid, file)): FilePath,
) -> ApiResult<StatusCode> {
    let at = RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    state.services.tracking().delete_artifact(at, &file).await?;
    Ok(StatusCode::NO_CONTENT)
}
