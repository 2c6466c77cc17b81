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
}

/// A project to insert; values are already validated.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    pub uuid: Uuid,
    pub owner: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub tags: &'a [String],
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
            "INSERT INTO projects (uuid, owner, name, description, tags, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING id, uuid, owner, name, description, tags, created_at, updated_at",
        )
        .bind(new.uuid)
        .bind(new.owner)
        .bind(new.name)
        .bind(new.description)
        .bind(Json(new.tags))
        .bind(new.now)
        .fetch_one(pool)
        .await?
    });
    Ok(row)
}

/// The project `owner/name`, if it exists.
pub async fn find(db: &Db, owner: &str, name: &str) -> DbResult<Option<ProjectRow>> {
    let row = with_pool!(db, |pool| {
        sqlx::query_as::<_, ProjectRow>(
            "SELECT id, uuid, owner, name, description, tags, created_at, updated_at
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
            "SELECT id, uuid, owner, name, description, tags, created_at, updated_at
             FROM projects WHERE owner = $1
             ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(owner)
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(pool)
        .await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE owner = $1")
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
             RETURNING id, uuid, owner, name, description, tags, created_at, updated_at",
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
