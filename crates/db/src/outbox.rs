//! The outbox: messages for the work queue, written in the transaction of
//! the change they announce ([`crate::runs::set_status`]) and deleted by the
//! relay once the broker has confirmed them.

use crate::{Db, DbResult, with_pool};

/// A message waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub topic: String,
    pub payload: String,
}

/// The oldest `limit` messages waiting, oldest first.
pub async fn pending(db: &Db, limit: u32) -> DbResult<Vec<OutboxRow>> {
    let rows: Vec<(i64, String, String)> = with_pool!(db, |pool| {
        sqlx::query_as("SELECT id, topic, payload FROM outbox ORDER BY id LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, topic, payload)| OutboxRow { id, topic, payload })
        .collect())
}

/// Forgets message `id`, once published.
pub async fn delete(db: &Db, id: i64) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}
