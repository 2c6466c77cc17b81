//! `/api/v1/{owner}/projects/...` and `/api/v1/{owner}/{project}`.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use trellis_api_types::{CreateProject, ErrorBody, ListResponse, Project, UpdateProject};

use super::error::ApiResult;
use super::extract::{ApiJson, ApiQuery};
use super::{ListParams, list_envelope};
use crate::startup::AppState;

/// Lists an owner's projects, most recently updated first.
#[utoipa::path(get, path = "/api/v1/{owner}/projects/list", tag = "projects",
    params(("owner" = String, Path), ListParams),
    responses((status = 200, body = ListResponse<Project>), (status = 400, body = ErrorBody)))]
pub async fn list_projects(
    State(state): State<AppState>,
    Path(owner): Path<String>,
    ApiQuery(params): ApiQuery<ListParams>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<ListResponse<Project>>> {
    let page = params.page()?;
    let (projects, count) = state.services.projects().list(&owner, page).await?;
    Ok(Json(list_envelope(
        uri.path(),
        &params,
        page,
        projects,
        count,
    )))
}

/// Creates a project.
#[utoipa::path(post, path = "/api/v1/{owner}/projects/create", tag = "projects",
    params(("owner" = String, Path)), request_body = CreateProject,
    responses((status = 201, body = Project), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_project(
    State(state): State<AppState>,
    Path(owner): Path<String>,
    ApiJson(input): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    let project = state.services.projects().create(&owner, input).await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// Gets a project.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}", tag = "projects",
    params(("owner" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
pub async fn get_project(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
) -> ApiResult<Json<Project>> {
    Ok(Json(state.services.projects().get(&owner, &project).await?))
}

/// Changes a project's name, description or tags.
#[utoipa::path(patch, path = "/api/v1/{owner}/{project}", tag = "projects",
    params(("owner" = String, Path), ("project" = String, Path)), request_body = UpdateProject,
    responses((status = 200, body = Project), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_project(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
    ApiJson(input): ApiJson<UpdateProject>,
) -> ApiResult<Json<Project>> {
    Ok(Json(
        state
            .services
            .projects()
            .update(&owner, &project, input)
            .await?,
    ))
}

/// Deletes a project and all its runs.
#[utoipa::path(delete, path = "/api/v1/{owner}/{project}", tag = "projects",
    params(("owner" = String, Path), ("project" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_project(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.projects().delete(&owner, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
