//! `/api/v1/queues`: named queues, their limits and their runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use trellis_api_types::{ErrorBody, PutQueue, Queue};

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::startup::AppState;

/// Lists the queues (configured and defined here) with their waiting and
/// active runs.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses((status = 200, body = Vec<Queue>)))]
pub async fn list_queues(State(state): State<AppState>) -> ApiResult<Json<Vec<Queue>>> {
    Ok(Json(state.services.queues().list().await?))
}

/// Defines or changes a queue; the scheduler applies it at its next tick.
#[utoipa::path(put, path = "/api/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path)), request_body = PutQueue,
    responses((status = 200, body = Queue), (status = 400, body = ErrorBody)))]
pub async fn put_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<PutQueue>,
) -> ApiResult<Json<Queue>> {
    Ok(Json(state.services.queues().put(&name, input).await?))
}

/// Removes a queue defined through the API.
#[utoipa::path(delete, path = "/api/v1/queues/{name}", tag = "queues",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.queues().delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
