//! What a project's runs are described by: the names of their params,
//! outputs and metrics (for the dashboard's column picker and query
//! completion), and run ids looked up by uuid in bulk.

use uuid::Uuid;

use crate::{Backend, Db, DbResult, with_pool};

/// Field names seen in a project's recent runs, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub params: Vec<String>,
    pub outputs: Vec<String>,
    pub metrics: Vec<String>,
}

/// The names of params, outputs and metrics of the `recent` newest runs
/// of project `project_id`. Bounded by `recent` so that a project of any
/// size answers from an index range, not a scan.
pub async fn project_fields(db: &Db, project_id: i64, recent: u32) -> DbResult<Fields> {
    let keys = match db.backend() {
        Backend::Sqlite => "json_each(r.{col}) j",
        Backend::Postgres => "jsonb_object_keys(r.{col}) AS j(key)",
    };
    // Newest by creation: the live-runs index gives them in order, where
    // ordering by id would sort the whole project.
    let recent_runs = "SELECT id, inputs, outputs FROM runs
         WHERE project_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC LIMIT $2";
    let sql = format!(
        "SELECT 'p', j.key FROM ({recent_runs}) r, {}
         UNION SELECT 'o', j.key FROM ({recent_runs}) r, {}
         UNION SELECT 'm', s.key FROM run_metric_summaries s
               WHERE s.run_id IN (SELECT id FROM ({recent_runs}) r)",
        keys.replace("{col}", "inputs"),
        keys.replace("{col}", "outputs"),
    );
    let rows: Vec<(String, String)> = with_pool!(db, |pool| {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(project_id)
            .bind(i64::from(recent))
            .fetch_all(pool)
            .await?
    });
    let mut fields = Fields::default();
    for (kind, key) in rows {
        match kind.as_str() {
            "p" => fields.params.push(key),
            "o" => fields.outputs.push(key),
            _ => fields.metrics.push(key),
        }
    }
    fields.params.sort();
    fields.outputs.sort();
    fields.metrics.sort();
    Ok(fields)
}

/// The ids of the runs of project `project_id` among `uuids`, as
/// (uuid, id) pairs; unknown or deleted uuids are left out.
pub async fn run_ids(db: &Db, project_id: i64, uuids: &[Uuid]) -> DbResult<Vec<(Uuid, i64)>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    // `+project_id`: the project's index must not be chosen over the uuid
    // one (SQLite without statistics did: a scan of the project's 100k
    // runs, 36 ms, instead of 50 lookups).
    let sql = format!(
        "SELECT uuid, id FROM runs WHERE +project_id = $1 AND deleted_at IS NULL AND uuid IN ({})",
        crate::runs::bind_list(uuids.len(), 2)
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(project_id);
        for uuid in uuids {
            query = query.bind(*uuid);
        }
        query.fetch_all(pool).await?
    });
    Ok(rows)
}
