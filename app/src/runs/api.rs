//! Server functions of the project and run pages. Each calls one service
//! method (two for the run page: the run and its history load together).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_api_types as wire;

use crate::error::AppError;

/// Runs per page in a project's runs table.
pub const PAGE_SIZE: u32 = 50;

/// A project and one page (1-based) of its runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPageData {
    pub project: wire::Project,
    pub runs: wire::ListResponse<wire::Run>,
}

/// Loads the project page.
#[server]
pub async fn project_view(
    owner: String,
    project: String,
    page: u64,
) -> Result<ProjectPageData, AppError> {
    let services = crate::error::services()?;
    let found = services.projects().get(&owner, &project).await?;
    let page = crate::projects::api::page_of(page, PAGE_SIZE)?;
    let sort = trellis_domain::listing::RunSort::default();
    let (results, count) = services
        .runs()
        .list(&owner, &project, page, &sort, None)
        .await?;
    Ok(ProjectPageData {
        project: found,
        runs: wire::ListResponse {
            count,
            results,
            next: None,
            previous: None,
        },
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
