//! Server functions of the project and run pages. Each calls one service
//! method (two for the run page: the run and its history load together).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_api_types as wire;

use crate::error::AppError;

/// Runs per page in a project's runs table.
pub const PAGE_SIZE: u32 = 50;

/// A project and one page (1-based) of its runs matching a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPageData {
    pub project: wire::Project,
    /// The matching runs; `None` when the query or sort does not parse.
    pub runs: Option<wire::ListResponse<wire::Run>>,
    /// Why the query or sort was refused, shown next to the query box.
    pub query_error: Option<String>,
}

/// Loads the project page: `query` in the Polyaxon query language, `sort`
/// a sort expression such as `-metrics.loss, created_at`.
#[server]
pub async fn project_view(
    owner: String,
    project: String,
    page: u64,
    query: Option<String>,
    sort: Option<String>,
) -> Result<ProjectPageData, AppError> {
    use trellis_services::ServiceError;
    let services = crate::error::services()?;
    let found = services.projects().get(&owner, &project).await?;
    let page = crate::projects::api::page_of(page, PAGE_SIZE)?;
    let listed = match trellis_domain::listing::RunSort::parse(sort.as_deref()) {
        Ok(sort) => {
            services
                .runs()
                .list(&owner, &project, page, &sort, query.as_deref())
                .await
        }
        Err(error) => Err(ServiceError::Invalid {
            field: Some("sort"),
            message: error.to_string(),
        }),
    };
    // A refused query is shown beside the query box; the page still renders.
    let (runs, query_error) = match listed {
        Ok((results, count)) => (
            Some(wire::ListResponse {
                count,
                results,
                next: None,
                previous: None,
            }),
            None,
        ),
        Err(ServiceError::Invalid { message, .. }) => (None, Some(message)),
        Err(other) => return Err(other.into()),
    };
    Ok(ProjectPageData {
        project: found,
        runs,
        query_error,
    })
}

/// A run with its status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub run: wire::Run,
    pub conditions: Vec<wire::StatusCondition>,
}

/// Loads the run page.
#[server]
pub async fn run_view(
    owner: String,
    project: String,
    uuid: String,
) -> Result<RunPageData, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let run = services.runs().get(at).await?;
    let conditions = services.runs().statuses(at).await?.status_conditions;
    Ok(RunPageData { run, conditions })
}

/// Lines shown by the logs tab at most (the CLI and API page through all).
pub const LOG_LINES: u32 = 5000;

/// The first lines of a run's captured output.
#[server]
pub async fn run_logs(
    owner: String,
    project: String,
    uuid: String,
) -> Result<wire::RunLogs, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    Ok(services.runs().logs(at, 0, LOG_LINES).await?)
}

/// Points per sparkline on the metrics tab.
pub const SPARKLINE_POINTS: usize = 120;

/// Every metric of a run, summarised, with a downsampled series each.
#[server]
pub async fn run_metrics(
    owner: String,
    project: String,
    uuid: String,
) -> Result<Vec<wire::MetricOverview>, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    Ok(services.tracking().overview(at, SPARKLINE_POINTS).await?)
}

/// The artifacts directly under `path` of a run.
#[server]
pub async fn run_artifacts(
    owner: String,
    project: String,
    uuid: String,
    path: String,
) -> Result<wire::ArtifactTree, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    Ok(services.tracking().list_artifacts(at, &path).await?)
}
