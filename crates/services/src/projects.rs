//! Project use cases.

use trellis_api_types as api;
use trellis_db::DbError;
use trellis_db::projects::{self, NewProject, ProjectChanges, ProjectRow};
use trellis_domain::listing::Page;
use trellis_domain::name::{Name, check_description, normalize_tags};
use uuid::Uuid;

use crate::{ServiceError, ServiceResult, Services};

/// Project use cases; see [`Services::projects`].
pub struct Projects<'a> {
    pub(crate) services: &'a Services,
}

pub(crate) fn to_dto(row: ProjectRow) -> api::Project {
    api::Project {
        uuid: row.uuid,
        owner: row.owner,
        name: row.name,
        description: row.description,
        tags: row.tags.0,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Validates an owner from a path.
pub(crate) fn owner_name(owner: &str) -> ServiceResult<Name> {
    Name::parse(owner).map_err(|e| ServiceError::invalid("owner", e))
}

/// Loads `owner/name`, or a not-found error naming it.
pub(crate) async fn load(
    services: &Services,
    owner: &str,
    name: &str,
) -> ServiceResult<ProjectRow> {
    owner_name(owner)?;
    projects::find(&services.db, owner, name)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            entity: "project",
            id: format!("{owner}/{name}"),
        })
}

fn taken(owner: &str, name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "a project named `{name}` already exists for `{owner}`"
    ))
}

impl Projects<'_> {
    /// One page of `owner`'s projects and their count.
    pub async fn list(&self, owner: &str, page: Page) -> ServiceResult<(Vec<api::Project>, u64)> {
        owner_name(owner)?;
        let (rows, count) =
            projects::list(&self.services.db, owner, page.limit, page.offset).await?;
        Ok((rows.into_iter().map(to_dto).collect(), count))
    }

    /// Creates a project for `owner`.
    pub async fn create(
        &self,
        owner: &str,
        input: api::CreateProject,
    ) -> ServiceResult<api::Project> {
        let owner = owner_name(owner)?;
        let name = Name::parse(input.name.trim()).map_err(|e| ServiceError::invalid("name", e))?;
        let description = input.description.unwrap_or_default();
        check_description(&description).map_err(|e| ServiceError::invalid("description", e))?;
        let tags = normalize_tags(&input.tags.unwrap_or_default())
            .map_err(|e| ServiceError::invalid("tags", e))?;
        let new = NewProject {
            uuid: Uuid::new_v4(),
            owner: owner.as_str(),
            name: name.as_str(),
            description: &description,
            tags: &tags,
            experiment_name: None,
            now: self.services.now(),
        };
        match projects::insert(&self.services.db, &new).await {
            Ok(row) => {
                tracing::info!(project.owner = %owner, project.name = %name, "created project {owner}/{name}");
                Ok(to_dto(row))
            }
            Err(DbError::Conflict) => Err(taken(owner.as_str(), name.as_str())),
            Err(other) => Err(other.into()),
        }
    }

    /// Project `owner/name`.
    pub async fn get(&self, owner: &str, name: &str) -> ServiceResult<api::Project> {
        load(self.services, owner, name).await.map(to_dto)
    }

    /// Changes the given fields of `owner/name`.
    pub async fn update(
        &self,
        owner: &str,
        name: &str,
        input: api::UpdateProject,
    ) -> ServiceResult<api::Project> {
        let row = load(self.services, owner, name).await?;
        let new_name = input
            .name
            .as_deref()
            .map(|n| Name::parse(n.trim()).map_err(|e| ServiceError::invalid("name", e)))
            .transpose()?;
        if let Some(description) = &input.description {
            check_description(description).map_err(|e| ServiceError::invalid("description", e))?;
        }
        let tags = input
            .tags
            .as_deref()
            .map(|t| normalize_tags(t).map_err(|e| ServiceError::invalid("tags", e)))
            .transpose()?;
        let changes = ProjectChanges {
            name: new_name.as_ref().map(Name::as_str),
            description: input.description.as_deref(),
            tags: tags.as_deref(),
        };
        match projects::update(&self.services.db, row.id, &changes, self.services.now()).await {
            Ok(Some(row)) => Ok(to_dto(row)),
            Ok(None) => Err(ServiceError::NotFound {
                entity: "project",
                id: format!("{owner}/{name}"),
            }),
            Err(DbError::Conflict) => {
                Err(taken(owner, new_name.as_ref().map_or(name, Name::as_str)))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Deletes `owner/name` and all its runs.
    pub async fn delete(&self, owner: &str, name: &str) -> ServiceResult<()> {
        let row = load(self.services, owner, name).await?;
        projects::delete(&self.services.db, row.id).await?;
        tracing::info!(project.owner = %owner, project.name = %name, "deleted project {owner}/{name}");
        Ok(())
    }
}
