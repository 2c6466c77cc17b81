//! The `projects` table.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{Db, DbResult, with_pool};

/// A stored project.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: i64,
    pub uuid: Uuid,
    pub owner: String,
    pub name: String,
    pub description: String,
    pub tags: Json<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The MLflow experiment name, when it is not the project's name.
    pub experiment_name: Option<String>,
    /// When MLflow deleted the experiment (restorable); `None` if live.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A project to insert; values are already validated.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    pub uuid: Uuid,
    pub owner: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub tags: &'a [String],
    /// The MLflow experiment name, when it is not a valid project name.
    pub experiment_name: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Changes to a project; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub tags: Option<&'a [String]>,
}

/// Inserts a project. A taken `(owner, name)` is [`crate::DbError::Conflict`].
pub async fn insert(db: &Db, new: &NewProject<'_>) -> DbResult<ProjectRow> {
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(
            "INSERT INTO projects (uuid, owner, name, description, tags, created_at, updated_at,
                                   experiment_name)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
             RETURNING id, uuid, owner, name, description, tags, created_at, updated_at, experiment_name, deleted_at",
        )
        .bind(new.uuid)
        .bind(new.owner)
        .bind(new.name)
        .bind(new.description)
        .bind(Json(new.tags))
        .bind(new.now)
        .bind(new.experiment_name)
        .fetch_one(pool)
        .await?
    });
    Ok(row)
}

/// The project `owner/name`, if it exists.
pub async fn find(db: &Db, owner: &str, name: &str) -> DbResult<Option<ProjectRow>> {
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(
            "SELECT id, uuid, owner, name, description, tags, created_at, updated_at, experiment_name, deleted_at
             FROM projects WHERE owner = $1 AND name = $2",
        )
        .bind(owner)
        .bind(name)
        .fetch_optional(pool)
        .await?
    });
    Ok(row)
}

/// One page of an owner's projects, most recently updated first, and the
/// owner's project count.
pub async fn list(
    db: &Db,
    owner: &str,
    limit: u32,
    offset: u64,
) -> DbResult<(Vec<ProjectRow>, u64)> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let (rows, count) = with_pool!(db, |pool| {
        let rows = sqlx::query_as::<_, ProjectRow>(
            "SELECT id, uuid, owner, name, description, tags, created_at, updated_at, experiment_name, deleted_at
             FROM projects WHERE owner = $1 AND deleted_at IS NULL
             ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(owner)
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(pool)
        .await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM projects WHERE owner = $1 AND deleted_at IS NULL",
        )
        .bind(owner)
        .fetch_one(pool)
        .await?;
        (rows, count)
    });
    Ok((rows, u64::try_from(count).unwrap_or(0)))
}

/// Applies `changes` to project `id`; the updated row, or `None` if it is gone.
pub async fn update(
    db: &Db,
    id: i64,
    changes: &ProjectChanges<'_>,
    now: DateTime<Utc>,
) -> DbResult<Option<ProjectRow>> {
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(
            "UPDATE projects SET
                name = COALESCE($2, name),
                description = COALESCE($3, description),
                tags = COALESCE($4, tags),
                updated_at = $5
             WHERE id = $1
             RETURNING id, uuid, owner, name, description, tags, created_at, updated_at, experiment_name, deleted_at",
        )
        .bind(id)
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.tags.map(Json))
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    Ok(row)
}

/// Deletes project `id` with its runs; whether it existed.
pub async fn delete(db: &Db, id: i64) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// The SELECT list of [`ProjectRow`].
const PROJECT_COLUMNS: &str = "SELECT id, uuid, owner, name, description, tags, created_at, updated_at, experiment_name, deleted_at FROM projects";

/// Project `id`, deleted or not.
pub async fn find_by_id(db: &Db, id: i64) -> DbResult<Option<ProjectRow>> {
    let sql = format!("{PROJECT_COLUMNS} WHERE id = $1");
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row)
}

/// The project whose MLflow experiment name is `name`: one stored under
/// that name, else the project of `owner` named `name` that has no other
/// experiment name.
pub async fn find_by_experiment_name(
    db: &Db,
    owner: &str,
    name: &str,
) -> DbResult<Option<ProjectRow>> {
    let sql = format!(
        "{PROJECT_COLUMNS} WHERE experiment_name = $1
            OR (experiment_name IS NULL AND owner = $2 AND name = $1)
         ORDER BY (experiment_name IS NULL) ASC LIMIT 1"
    );
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(name)
            .bind(owner)
            .fetch_optional(pool)
            .await?
    });
    Ok(row)
}

/// Which projects an experiment search looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    /// The SQL condition on `deleted_at` (of alias `prefix`).
    pub(crate) fn condition(self, prefix: &str) -> String {
        match self {
            ViewType::ActiveOnly => format!("{prefix}deleted_at IS NULL"),
            ViewType::DeletedOnly => format!("{prefix}deleted_at IS NOT NULL"),
            ViewType::All => "TRUE".to_owned(),
        }
    }
}

/// Every project of any owner in `view`, oldest first, from `offset`.
pub async fn list_all(
    db: &Db,
    view: ViewType,
    limit: u32,
    offset: u64,
) -> DbResult<Vec<ProjectRow>> {
    let sql = format!(
        "{PROJECT_COLUMNS} WHERE {} ORDER BY id LIMIT $1 OFFSET $2",
        view.condition("")
    );
    let rows = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

/// Marks project `id` deleted (`Some(now)`) or restores it (`None`).
pub async fn set_deleted(db: &Db, id: i64, at: Option<DateTime<Utc>>) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("UPDATE projects SET deleted_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// Renames project `id` for MLflow: its slug `name` and the experiment
/// name, if it differs.
pub async fn rename_experiment(
    db: &Db,
    id: i64,
    name: &str,
    experiment_name: Option<&str>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query(
            "UPDATE projects SET name = $2, experiment_name = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(experiment_name)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Sets a key-value tag of project `id`.
pub async fn set_tag(db: &Db, id: i64, key: &str, value: &str) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO project_tags (project_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (project_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// Removes a key-value tag of project `id`; `false` if it had none.
pub async fn delete_tag(db: &Db, id: i64, key: &str) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM project_tags WHERE project_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// The key-value tags of project `id`, by key.
pub async fn tags(db: &Db, id: i64) -> DbResult<Vec<(String, String)>> {
    let rows = with_pool!(db, |pool| {
        sqlx::query_as("SELECT key, value FROM project_tags WHERE project_id = $1 ORDER BY key")
            .bind(id)
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}
