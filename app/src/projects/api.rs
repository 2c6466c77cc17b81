//! Server functions of the projects pages. Each calls one service method.

use leptos::prelude::*;
use trellis_api_types as wire;

use crate::error::AppError;

/// Projects per page on the projects page.
pub const PAGE_SIZE: u32 = 50;

/// One page (1-based) of the default owner's projects.
#[server]
pub async fn list_projects(page: u64) -> Result<wire::ListResponse<wire::Project>, AppError> {
    let services = crate::error::services()?;
    let page = page_of(page, PAGE_SIZE)?;
    let (results, count) = services
        .projects()
        .list(trellis_domain::name::DEFAULT_OWNER, page)
        .await?;
    Ok(wire::ListResponse {
        count,
        results,
        next: None,
        previous: None,
    })
}

/// Creates a project for the default owner from the create form.
#[server]
pub async fn create_project(
    name: String,
    description: String,
    tags: String,
) -> Result<wire::Project, AppError> {
    let services = crate::error::services()?;
    let input = wire::CreateProject {
        name,
        description: Some(description),
        tags: Some(split_tags(&tags)),
    };
    Ok(services
        .projects()
        .create(trellis_domain::name::DEFAULT_OWNER, input)
        .await?)
}

/// The page request for a 1-based page number.
#[cfg(feature = "ssr")]
pub(crate) fn page_of(page: u64, size: u32) -> Result<trellis_domain::listing::Page, AppError> {
    let offset = page
        .max(1)
        .saturating_sub(1)
        .saturating_mul(u64::from(size));
    let offset = i64::try_from(offset)
        .map_err(|_| AppError::Invalid("page number is too large".to_owned()))?;
    trellis_domain::listing::Page::new(Some(i64::from(size)), Some(offset))
        .map_err(|e| AppError::Invalid(e.to_string()))
}

/// Tags typed as `a, b, c`.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}
