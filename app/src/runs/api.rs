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
    /// The metric summaries of the page's runs (for metric columns).
    pub metrics: Vec<wire::RunMetricSummaries>,
    /// Names to offer as columns and query completions.
    pub fields: wire::ProjectFields,
}

/// Runs whose param, output and metric names feed the column picker and
/// the query completion.
pub const FIELD_SAMPLE_RUNS: u32 = 1000;

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
    let tracking = services.tracking();
    let list = async {
        match trellis_domain::listing::RunSort::parse(sort.as_deref()) {
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
        }
    };
    // The query box's field names do not depend on the page: read both at
    // once, on two connections.
    let (listed, fields) =
        futures_util::future::join(list, tracking.fields(&owner, &project, FIELD_SAMPLE_RUNS))
            .await;
    let fields = fields?;
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
    let uuids: Vec<uuid::Uuid> = runs
        .iter()
        .flat_map(|r| r.results.iter().map(|run| run.uuid))
        .collect();
    let metrics = tracking.summaries_of(&owner, &project, &uuids).await?;
    Ok(ProjectPageData {
        project: found,
        runs,
        query_error,
        metrics,
        fields,
    })
}

/// A run with its status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub run: wire::Run,
    pub conditions: Vec<wire::StatusCondition>,
    /// For a service run: where it is opened, once it serves.
    pub workspace: Option<wire::Workspace>,
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
    let workspace = if run.kind == Some(trellis_domain::run::RunKind::Service) {
        services.workspaces().get(at).await?
    } else {
        None
    };
    Ok(RunPageData {
        run,
        conditions,
        workspace,
    })
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

/// The names of a run's metrics, in order.
#[server]
pub async fn metric_keys(
    owner: String,
    project: String,
    uuid: String,
) -> Result<Vec<String>, AppError> {
    let services = crate::error::services()?;
    let at = trellis_services::runs::RunRef {
        owner: &owner,
        project: &project,
        uuid: &uuid,
    };
    let summaries = services.tracking().summaries(at).await?;
    Ok(summaries.metrics.into_iter().map(|m| m.key).collect())
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

/// Points a chart asks for: about one per unit of its drawing width (a
/// chart is drawn 600 units wide and shown at about that many pixels).
pub const CHART_POINTS: usize = 600;

/// One metric of one or more runs of a project, downsampled on the server
/// to about `points`, within `steps` when zoomed.
#[server]
pub async fn metric_series(
    owner: String,
    project: String,
    runs: Vec<String>,
    key: String,
    points: usize,
    steps: Option<(i64, i64)>,
) -> Result<Vec<wire::MetricSeries>, AppError> {
    let services = crate::error::services()?;
    let runs: Vec<&str> = runs.iter().map(String::as_str).collect();
    let compared = services
        .tracking()
        .compare(&owner, &project, &runs, &key, Some(points), steps)
        .await?;
    Ok(compared.series)
}

/// What the Compare view shows of its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareData {
    pub runs: Vec<wire::Run>,
    pub metrics: Vec<wire::RunMetricSummaries>,
}

/// Runs compared at most at once.
pub const MAX_COMPARED: usize = 100;

/// Loads the Compare view of runs `runs` (uuids) of a project.
#[server]
pub async fn compare_view(
    owner: String,
    project: String,
    runs: Vec<String>,
) -> Result<CompareData, AppError> {
    let services = crate::error::services()?;
    if runs.is_empty() || runs.len() > MAX_COMPARED {
        return Err(AppError::Invalid(format!(
            "compare 1 to {MAX_COMPARED} runs, got {}",
            runs.len()
        )));
    }
    let mut found = Vec::with_capacity(runs.len());
    for uuid in &runs {
        let at = trellis_services::runs::RunRef {
            owner: &owner,
            project: &project,
            uuid,
        };
        found.push(services.runs().get(at).await?);
    }
    let uuids: Vec<uuid::Uuid> = found.iter().map(|r| r.uuid).collect();
    let metrics = services
        .tracking()
        .summaries_of(&owner, &project, &uuids)
        .await?;
    Ok(CompareData {
        runs: found,
        metrics,
    })
}

/// What a bulk action does to each selected run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BulkAction {
    Stop,
    Delete,
    /// Adds the given tags.
    Tag,
}

/// How a bulk action went: runs done, and a message per run that refused.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BulkOutcome {
    pub done: u32,
    pub failed: Vec<String>,
}

/// Applies `action` to runs `runs` (uuids) of a project, one by one; a run
/// that refuses (already done, say) does not stop the others.
#[server]
pub async fn bulk_runs(
    owner: String,
    project: String,
    runs: Vec<String>,
    action: BulkAction,
    tags: Vec<String>,
) -> Result<BulkOutcome, AppError> {
    let services = crate::error::services()?;
    if action == BulkAction::Tag && tags.iter().all(|t| t.trim().is_empty()) {
        return Err(AppError::Invalid("give at least one tag to add".into()));
    }
    let mut outcome = BulkOutcome::default();
    for uuid in &runs {
        let at = trellis_services::runs::RunRef {
            owner: &owner,
            project: &project,
            uuid,
        };
        let result = match action {
            BulkAction::Stop => services.runs().stop(at).await.map(|_| ()),
            BulkAction::Delete => services.runs().delete(at).await,
            BulkAction::Tag => {
                let tags = tags.clone();
                services
                    .tracking()
                    .log_tags(at, wire::LogTags { tags })
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => outcome.done += 1,
            Err(error) => outcome
                .failed
                .push(format!("{}: {error}", &uuid[..uuid.len().min(8)])),
        }
    }
    Ok(outcome)
}
