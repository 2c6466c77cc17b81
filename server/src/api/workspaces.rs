//! Workspaces: a project's service runs with their proxied addresses, and
//! the built-in components that start them.

use axum::Json;
use axum::extract::{Path, State};
use trellis_api_types::{ErrorBody, HubComponent, Workspace};

use super::error::ApiResult;
use crate::startup::AppState;

/// A project's active service runs, newest first: where each is opened
/// through the proxy, its uptime and idle time.
#[utoipa::path(get, path = "/api/v1/{owner}/{project}/workspaces", tag = "workspaces",
    params(("owner" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = [Workspace]), (status = 404, body = ErrorBody)))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    Path((owner, project)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Workspace>>> {
    Ok(Json(
        state.services.workspaces().list(&owner, &project).await?,
    ))
}

/// The built-in components (`hubRef: jupyterlab`).
#[utoipa::path(get, path = "/api/v1/hub", tag = "workspaces",
    responses((status = 200, body = [HubComponent])))]
pub async fn list_hub() -> Json<Vec<HubComponent>> {
    Json(
        trellis_domain::spec::hub::COMPONENTS
            .iter()
            .map(|c| HubComponent {
                name: c.name.to_owned(),
                version: c.version.to_owned(),
                summary: c.summary.to_owned(),
                content: c.content.to_owned(),
            })
            .collect(),
    )
}
