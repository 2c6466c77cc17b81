//! The `runs` and `run_conditions` tables.
//!
//! A status change is one guarded statement (`... WHERE status = $expected`)
//! plus the insert of its condition, in one transaction: two concurrent
//! changes can never both apply to the same prior status, and a condition is
//! never written without its status or lost.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Row};
use trellis_domain::lifecycle::{Durability, RunStatus, Timing};
use trellis_domain::listing::RunSort;
use trellis_domain::pql::{Field, Query};
use trellis_domain::run::RunKind;
use uuid::Uuid;

use crate::pql::{self, Bind};
use crate::{Backend, Db, DbError, DbResult, with_pool};

/// JSON object stored in `inputs` and `outputs`.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// A stored run, with its project's coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: i64,
    pub uuid: Uuid,
    pub project_id: i64,
    pub owner: String,
    pub project: String,
    pub name: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub kind: Option<RunKind>,
    pub status: RunStatus,
    pub content: String,
    /// The queue its spec asked for; `None` is the default queue.
    pub queue: Option<String>,
    pub inputs: JsonObject,
    pub outputs: JsonObject,
    pub updated_at: DateTime<Utc>,
    pub timing: Timing,
    /// Who executes it: `local:<host>` or `worker:<id>`.
    pub executor: Option<String>,
    /// Its process id on the executor's host.
    pub pid: Option<i64>,
    /// When its executor last reported it alive.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// The run this one restarts or copies.
    pub original: Option<Uuid>,
    /// `restart` or `copy`, with `original`.
    pub cloning_kind: Option<String>,
    /// When MLflow deleted it (restorable); `None` if live.
    pub deleted_at: Option<DateTime<Utc>>,
    /// The pipeline (matrix or dag controller) that created it.
    pub pipeline: Option<PipelineLink>,
}

/// Where a run sits in the pipeline that created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineLink {
    /// The controller run's row id and uuid.
    pub id: i64,
    pub uuid: Uuid,
    /// The dag operation it executes.
    pub op: Option<String>,
    /// Its position among a sweep's trials.
    pub index: Option<i64>,
}

/// The columns [`decode_run`] reads.
macro_rules! run_columns {
    () => {
        "SELECT r.id, r.uuid, r.project_id, p.owner, p.name AS project, r.name, r.description,
                r.tags, r.kind, r.status, r.content, r.queue, r.inputs, r.outputs, r.created_at,
                r.updated_at, r.started_at, r.finished_at, r.wait_time, r.duration,
                r.executor, r.pid, r.heartbeat_at, r.original_uuid, r.cloning_kind, r.deleted_at,
                r.pipeline_id, (SELECT pp.uuid FROM runs pp WHERE pp.id = r.pipeline_id) AS pipeline_uuid,
                r.pipeline_op, r.pipeline_index"
    };
}

/// The SELECT [`decode_run`] reads; every run query selects exactly this.
macro_rules! run_select {
    () => {
        concat!(
            run_columns!(),
            " FROM runs r JOIN projects p ON p.id = r.project_id"
        )
    };
}

/// [`run_select!`] as a value, for queries built elsewhere in the crate.
pub(crate) const RUN_SELECT: &str = run_select!();

fn parse_status(text: &str) -> DbResult<RunStatus> {
    text.parse().map_err(
        |e: trellis_domain::lifecycle::UnknownStatus| DbError::Corrupt {
            column: "runs.status",
            message: e.to_string(),
        },
    )
}

fn parse_kind(text: Option<String>) -> DbResult<Option<RunKind>> {
    text.map(|k| k.parse::<RunKind>())
        .transpose()
        .map_err(|e| DbError::Corrupt {
            column: "runs.kind",
            message: e.to_string(),
        })
}

fn decode_timing<R>(row: &R) -> DbResult<Timing>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Timing {
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        wait_time: row.try_get("wait_time")?,
        duration: row.try_get("duration")?,
    })
}

pub(crate) fn decode_run<R>(row: &R) -> DbResult<RunRow>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<Vec<String>>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Json<JsonObject>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status = parse_status(&row.try_get::<String, _>("status")?)?;
    let kind = parse_kind(row.try_get("kind")?)?;
    let tags: Json<Vec<String>> = row.try_get("tags")?;
    let inputs: Json<JsonObject> = row.try_get("inputs")?;
    let outputs: Json<JsonObject> = row.try_get("outputs")?;
    Ok(RunRow {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        project_id: row.try_get("project_id")?,
        owner: row.try_get("owner")?,
        project: row.try_get("project")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        tags: tags.0,
        kind,
        status,
        content: row.try_get("content")?,
        queue: row.try_get("queue")?,
        inputs: inputs.0,
        outputs: outputs.0,
        updated_at: row.try_get("updated_at")?,
        timing: decode_timing(row)?,
        executor: row.try_get("executor")?,
        pid: row.try_get("pid")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        original: row.try_get("original_uuid")?,
        cloning_kind: row.try_get("cloning_kind")?,
        deleted_at: row.try_get("deleted_at")?,
        pipeline: match (
            row.try_get::<Option<i64>, _>("pipeline_id")?,
            row.try_get::<Option<Uuid>, _>("pipeline_uuid")?,
        ) {
            (Some(id), Some(uuid)) => Some(PipelineLink {
                id,
                uuid,
                op: row.try_get("pipeline_op")?,
                index: row.try_get("pipeline_index")?,
            }),
            _ => None,
        },
    })
}

/// A run to insert; values are already validated.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub uuid: Uuid,
    pub project_id: i64,
    /// The project's owner and name (returned with the run, not stored).
    pub owner: &'a str,
    pub project: &'a str,
    pub name: Option<&'a str>,
    pub description: &'a str,
    pub tags: &'a [String],
    pub kind: Option<RunKind>,
    pub content: &'a str,
    /// The queue its spec asked for.
    pub queue: Option<&'a str>,
    /// The params the run was compiled with.
    pub inputs: &'a JsonObject,
    /// Its compiled spec (`trellis_domain::spec::StoredSpec`, encoded);
    /// `None` for a run tracked from outside.
    pub compiled: Option<&'a str>,
    /// The run this one restarts or copies, and which of the two.
    pub original: Option<(Uuid, &'a str)>,
    /// `created`, or `running` for a run an outside client (MLflow) runs.
    pub status: RunStatus,
    pub now: DateTime<Utc>,
    /// The controller that creates it, the dag operation, the trial index.
    pub pipeline: Option<PipelineLink>,
}

/// Inserts a run in its first status together with its first condition.
pub async fn insert(db: &Db, new: &NewRun<'_>) -> DbResult<RunRow> {
    let created = new.status.as_str();
    let started_at = (new.status == RunStatus::Running).then_some(new.now);
    let id = with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO runs (uuid, project_id, name, description, tags, kind, status, content,
                               queue, inputs, outputs, created_at, updated_at,
                               original_uuid, cloning_kind, started_at,
                               pipeline_id, pipeline_op, pipeline_index, compiled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15,
                     $16, $17, $18, $19)
             RETURNING id",
        )
        .bind(new.uuid)
        .bind(new.project_id)
        .bind(new.name)
        .bind(new.description)
        .bind(Json(new.tags))
        .bind(new.kind.map(RunKind::as_str))
        .bind(created)
        .bind(new.content)
        .bind(new.queue)
        .bind(Json(new.inputs))
        .bind(Json(JsonObject::new()))
        .bind(new.now)
        .bind(new.original.map(|(uuid, _)| uuid))
        .bind(new.original.map(|(_, kind)| kind))
        .bind(started_at)
        .bind(new.pipeline.as_ref().map(|p| p.id))
        .bind(new.pipeline.as_ref().and_then(|p| p.op.as_deref()))
        .bind(new.pipeline.as_ref().and_then(|p| p.index))
        .bind(new.compiled)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO run_conditions (run_id, status, reason, message, created_at)
             VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(id)
        .bind(created)
        .bind("RunCreated")
        .bind(new.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        id
    });
    // Everything the row holds is known here: no read after the insert.
    Ok(RunRow {
        id,
        uuid: new.uuid,
        project_id: new.project_id,
        owner: new.owner.to_owned(),
        project: new.project.to_owned(),
        name: new.name.map(str::to_owned),
        description: new.description.to_owned(),
        tags: new.tags.to_vec(),
        kind: new.kind,
        status: new.status,
        content: new.content.to_owned(),
        queue: new.queue.map(str::to_owned),
        inputs: new.inputs.clone(),
        outputs: JsonObject::new(),
        updated_at: new.now,
        timing: Timing {
            created_at: new.now,
            started_at,
            finished_at: None,
            wait_time: None,
            duration: None,
        },
        executor: None,
        pid: None,
        heartbeat_at: None,
        original: new.original.map(|(uuid, _)| uuid),
        cloning_kind: new.original.map(|(_, kind)| kind.to_owned()),
        deleted_at: None,
        pipeline: new.pipeline.clone(),
    })
}

async fn find_by_id(db: &Db, uuid: Uuid) -> DbResult<RunRow> {
    let row = with_pool!(db, |pool| {
        let row = sqlx::query(concat!(run_select!(), " WHERE r.uuid = $1"))
            .bind(uuid)
            .fetch_one(pool)
            .await?;
        decode_run(&row)?
    });
    Ok(row)
}

/// Run `uuid` with its compiled spec (see [`compiled`]), in one read: what
/// an executor needs to start it.
pub async fn find_with_compiled(db: &Db, uuid: Uuid) -> DbResult<Option<(RunRow, Option<String>)>> {
    let found = with_pool!(db, |pool| {
        let row = sqlx::query(concat!(
            run_columns!(),
            ", r.compiled FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.uuid = $1"
        ))
        .bind(uuid)
        .fetch_optional(pool)
        .await?;
        match row {
            Some(row) => Some((decode_run(&row)?, row.try_get("compiled")?)),
            None => None,
        }
    });
    Ok(found)
}

/// Runs `uuids` (those that exist) with their compiled specs, in one
/// read: what an executor needs to start the runs of one tick.
pub async fn find_all_with_compiled(
    db: &Db,
    uuids: &[Uuid],
) -> DbResult<Vec<(RunRow, Option<String>)>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{} , r.compiled FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.uuid IN ({})",
        run_columns!(),
        bind_list(uuids.len(), 1)
    );
    let found = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for uuid in uuids {
            query = query.bind(*uuid);
        }
        let rows = query.fetch_all(pool).await?;
        rows.iter()
            .map(|row| Ok((decode_run(row)?, row.try_get("compiled")?)))
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(found)
}

/// Run `uuid`, in whatever project, if it exists.
pub async fn find_any(db: &Db, uuid: Uuid) -> DbResult<Option<RunRow>> {
    let row = with_pool!(db, |pool| {
        let row = sqlx::query(concat!(run_select!(), " WHERE r.uuid = $1"))
            .bind(uuid)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(decode_run).transpose()?
    });
    Ok(row)
}

/// Runs of every project in one of `statuses`, least recently changed
/// first (the scheduler's work list), at most `limit`.
/// The runs `pipeline_id` created, oldest first (trials by index).
pub async fn children(db: &Db, pipeline_id: i64) -> DbResult<Vec<RunRow>> {
    let sql = concat!(
        run_select!(),
        " WHERE r.pipeline_id = $1 ORDER BY r.pipeline_index, r.id"
    );
    let rows = with_pool!(db, |pool| {
        let rows = sqlx::query(sql).bind(pipeline_id).fetch_all(pool).await?;
        rows.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// Active pipeline controllers (`matrix` and `dag` runs) and those asked
/// to stop: the runs the scheduler drives each tick.
pub async fn controllers(db: &Db, limit: u32) -> DbResult<Vec<RunRow>> {
    let sql = concat!(
        run_select!(),
        " WHERE r.kind IN ('matrix', 'dag') AND r.status IN ('running', 'stopping')
         ORDER BY r.id LIMIT $1"
    );
    let rows = with_pool!(db, |pool| {
        let rows = sqlx::query(sql)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        rows.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

pub async fn in_statuses(db: &Db, statuses: &[RunStatus], limit: u32) -> DbResult<Vec<RunRow>> {
    let sql = format!(
        "{} WHERE r.status IN ({}) ORDER BY r.updated_at, r.id LIMIT ${}",
        run_select!(),
        bind_list(statuses.len(), 1),
        statuses.len() + 1
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for status in statuses {
            query = query.bind(status.as_str());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(pool).await?;
        rows.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// What the scheduler reads of a run each tick: no spec, params or
/// outputs, so a tick over many waiting runs decodes little.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulingRow {
    pub id: i64,
    pub uuid: Uuid,
    pub project_id: i64,
    pub kind: Option<RunKind>,
    pub status: RunStatus,
    /// The queue its spec asked for; `None` is the default queue.
    pub queue: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub timing: Timing,
    /// Whether it has a spec (a run tracked from outside has none).
    pub has_spec: bool,
    /// Who executes it, as it last reported.
    pub executor: Option<String>,
}

/// The columns [`decode_scheduling`] reads.
const SCHEDULING_SELECT: &str = "SELECT id, uuid, project_id, kind, status, queue, updated_at,
        created_at, started_at, finished_at, wait_time, duration,
        CASE WHEN content = '' THEN 0 ELSE 1 END AS has_spec, executor FROM runs";

fn decode_scheduling<R>(row: &R) -> DbResult<SchedulingRow>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Uuid: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    f64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    DateTime<Utc>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status = parse_status(&row.try_get::<String, _>("status")?)?;
    let kind = parse_kind(row.try_get("kind")?)?;
    let has_spec: i32 = row.try_get("has_spec")?;
    Ok(SchedulingRow {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        project_id: row.try_get("project_id")?,
        kind,
        status,
        queue: row.try_get("queue")?,
        updated_at: row.try_get("updated_at")?,
        timing: decode_timing(row)?,
        has_spec: has_spec == 1,
        executor: row.try_get("executor")?,
    })
}

/// Up to `limit` runs in `statuses`, least recently changed first, as the
/// scheduler reads them.
pub async fn scheduling(
    db: &Db,
    statuses: &[RunStatus],
    limit: u32,
) -> DbResult<Vec<SchedulingRow>> {
    let sql = format!(
        "{SCHEDULING_SELECT} WHERE status IN ({}) ORDER BY updated_at, id LIMIT ${}",
        bind_list(statuses.len(), 1),
        statuses.len() + 1
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for status in statuses {
            query = query.bind(status.as_str());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(pool).await?;
        rows.iter()
            .map(decode_scheduling)
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// How many runs that execute (pipeline controllers do not) are in
/// `statuses`, by queue (`None`: the default queue).
pub async fn executing_by_queue(
    db: &Db,
    statuses: &[RunStatus],
) -> DbResult<Vec<(Option<String>, i64)>> {
    let sql = format!(
        "SELECT queue, COUNT(*) FROM runs WHERE status IN ({})
           AND (kind IS NULL OR kind NOT IN ('matrix', 'dag'))
         GROUP BY queue",
        bind_list(statuses.len(), 1)
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query_as(AssertSqlSafe(sql.clone()));
        for status in statuses {
            query = query.bind(status.as_str());
        }
        query.fetch_all(pool).await?
    });
    Ok(rows)
}

/// The oldest `limit` queued runs of queue `queue` (with `default`, also
/// those that named no queue), as the scheduler reads them: a tick reads
/// only the heads of the queues that have room.
pub async fn queued_in(
    db: &Db,
    queue: &str,
    default: bool,
    limit: u32,
) -> DbResult<Vec<SchedulingRow>> {
    let sql = format!(
        "{SCHEDULING_SELECT} WHERE status = 'queued' AND (queue = $1 OR ($2 AND queue IS NULL))
           AND (kind IS NULL OR kind NOT IN ('matrix', 'dag'))
         ORDER BY updated_at, id LIMIT $3"
    );
    let rows = with_pool!(db, |pool| {
        let rows = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(queue)
            .bind(default)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(decode_scheduling)
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// `$first, $first+1, …` for `count` values bound one by one: only the
/// list's length reaches the SQL text, never a value.
pub(crate) fn bind_list(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Run `uuid` of project `project_id`, if it exists there.
pub async fn find(db: &Db, project_id: i64, uuid: Uuid) -> DbResult<Option<RunRow>> {
    let row = with_pool!(db, |pool| {
        let row = sqlx::query(concat!(
            run_select!(),
            " WHERE r.project_id = $1 AND r.uuid = $2"
        ))
        .bind(project_id)
        .bind(uuid)
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(decode_run).transpose()?
    });
    Ok(row)
}

/// How a page is ordered: the sort values computed per run (`keys`, a
/// SELECT list naming them `k0`, `k1`, ...), with their placeholders from
/// `$first`, and the `ORDER BY` over those names (`order`, missing values
/// last in both directions on both databases, whose defaults differ; then
/// the id as a tie-breaker so pages never overlap).
struct Ordering {
    keys: String,
    order: String,
    binds: Vec<Bind>,
}

fn ordering(sort: &RunSort, backend: crate::Backend, first: usize) -> Ordering {
    let mut keys = Vec::with_capacity(sort.0.len());
    let mut order = Vec::with_capacity(sort.0.len() + 1);
    let mut binds = Vec::new();
    let mut last_descending = true;
    for (i, key) in sort.0.iter().enumerate() {
        let value = pql::sort_expression(&key.field, backend, first + binds.len());
        binds.extend(value.binds);
        keys.push(format!(", {} AS k{i}", value.sql));
        let direction = if key.descending { "DESC" } else { "ASC" };
        // A column that is never NULL goes without NULLS LAST, so the
        // databases can walk an index for `-created_at` instead of sorting
        // the project.
        let never_null = matches!(
            key.field,
            Field::Status | Field::Uuid | Field::Description | Field::CreatedAt | Field::UpdatedAt
        );
        let nulls = if never_null { "" } else { " NULLS LAST" };
        order.push(format!("{{t}}.k{i} {direction}{nulls}"));
        last_descending = key.descending;
    }
    order.push(format!(
        "{{t}}.id {}",
        if last_descending { "DESC" } else { "ASC" }
    ));
    Ordering {
        keys: keys.concat(),
        order: order.join(", "),
        binds,
    }
}

/// Binds a compiled filter's values, in order, onto a query.
macro_rules! bind_filter {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for value in $binds {
            query = match value {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Number(number) => query.bind(*number),
                Bind::Time(time) => query.bind(*time),
                Bind::Uuid(uuid) => query.bind(*uuid),
            };
        }
        query
    }};
}

/// One page of a project's runs matching `filter`, in `sort` order, and
/// how many runs match.
pub async fn list(
    db: &Db,
    project_id: i64,
    filter: Option<&Query>,
    sort: &RunSort,
    limit: u32,
    offset: u64,
) -> DbResult<(Vec<RunRow>, u64)> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let filter = filter.map(|query| pql::compile(query, db.backend(), "$1", 2));
    let (condition, binds) = match &filter {
        Some(filter) => (format!(" AND {}", filter.sql), filter.binds.as_slice()),
        None => (String::new(), &[][..]),
    };
    // PostgreSQL only: on SQLite the walk and a separate count measured
    // 120 ms p50 on the benchmark's filtered page, against the two-phase
    // page below.
    if db.backend() == crate::Backend::Postgres
        && let [key] = sort.0.as_slice()
        && let Field::Metric(metric) = &key.field
    {
        let by = MetricOrder {
            key: metric,
            descending: key.descending,
        };
        return list_by_metric(db, project_id, (&condition, binds), by, limit, offset).await;
    }
    let order = ordering(sort, db.backend(), 2 + binds.len());
    let limit_at = 2 + binds.len() + order.binds.len();
    let offset_at = limit_at + 1;
    let (keys, page_order, outer_order) = (
        &order.keys,
        order.order.replace("{t}", "m"),
        order.order.replace("{t}", "page"),
    );
    // Two phases: the matching runs are found and sorted as narrow rows
    // (id and sort values), and only the page's runs are read whole. With
    // a filter, the matches are kept (MATERIALIZED) and counted from there,
    // so the filter runs once; without one, the newest-first page walks
    // the live-runs index and stops, and the count is a separate index
    // count. Safe: the text is built from constant column names and
    // operators only; every user value is a bound parameter.
    let matched = format!(
        "SELECT r.id{keys} FROM runs r WHERE r.project_id = $1 AND r.deleted_at IS NULL{condition}"
    );
    let page_sql = if filter.is_some() {
        format!(
            "WITH m AS MATERIALIZED ({matched}),
             page AS MATERIALIZED (SELECT * FROM m ORDER BY {page_order} LIMIT ${limit_at} OFFSET ${offset_at})
             {}, (SELECT COUNT(*) FROM m) AS total_count
             FROM page JOIN runs r ON r.id = page.id JOIN projects p ON p.id = r.project_id
             ORDER BY {outer_order}",
            run_columns!()
        )
    } else {
        format!(
            "WITH page AS MATERIALIZED (SELECT * FROM ({matched}) m ORDER BY {page_order} LIMIT ${limit_at} OFFSET ${offset_at})
             {} FROM page JOIN runs r ON r.id = page.id JOIN projects p ON p.id = r.project_id
             ORDER BY {outer_order}",
            run_columns!()
        )
    };
    let count_sql = format!(
        "SELECT COUNT(*) FROM runs r WHERE r.project_id = $1 AND r.deleted_at IS NULL{condition}"
    );
    let (runs, count) = with_pool!(db, |pool| {
        let page = bind_filter!(
            sqlx::query(AssertSqlSafe(page_sql.clone())).bind(project_id),
            binds
        );
        let page = bind_filter!(page, &order.binds);
        let rows = page
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(pool)
            .await?;
        let runs = rows.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?;
        let counted: Option<i64> = match rows.first() {
            Some(row) if filter.is_some() => Some(row.try_get("total_count")?),
            None if filter.is_some() && offset == 0 => Some(0),
            _ => None,
        };
        let count = match counted {
            Some(count) => count,
            None => {
                bind_filter!(
                    sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql.clone())).bind(project_id),
                    binds
                )
                .fetch_one(pool)
                .await?
            }
        };
        (runs, count)
    });
    Ok((runs, u64::try_from(count).unwrap_or(0)))
}

/// A page ordered by one metric's latest value.
#[derive(Clone, Copy)]
struct MetricOrder<'a> {
    key: &'a str,
    descending: bool,
}

/// [`list`] for a page sorted by one metric, on PostgreSQL: it walks the project's
/// `(project, key, value)` index of summaries in the page's order and
/// stops after the page, checking each run against the filter on the way,
/// so a page of a 100k-run project visits a few hundred runs instead of
/// sorting every match (the planner cannot know that the best values
/// match as often as the rest). Runs without the metric (or with NaN)
/// follow, newest id first as in [`ordering`], from a second query read
/// only when the first runs out. The count is its own query, on a second
/// connection at the same time.
async fn list_by_metric(
    db: &Db,
    project_id: i64,
    (condition, binds): (&str, &[Bind]),
    by: MetricOrder<'_>,
    limit: u32,
    offset: i64,
) -> DbResult<(Vec<RunRow>, u64)> {
    let direction = if by.descending { "DESC" } else { "ASC" };
    let key_at = 2 + binds.len();
    // Safe: the text is built from constant column names and operators,
    // and integers; every user value is a bound parameter. The limit and
    // offset are written out, not bound: PostgreSQL reuses a generic plan
    // for a prepared statement after a few runs, and without knowing the
    // limit it sorted all 12,555 matches (55 ms) instead of walking the
    // index for 50 (5 ms).
    fn page(matched: &str, order: &str, outer: &str, limit: i64, offset: i64) -> String {
        format!(
            "WITH page AS MATERIALIZED ({matched} ORDER BY {order} LIMIT {limit} OFFSET {offset})
             {} FROM page JOIN runs r ON r.id = page.id JOIN projects p ON p.id = r.project_id
             ORDER BY {outer}",
            run_columns!(),
        )
    }
    let with_metric = format!(
        "SELECT s.run_id AS id, s.last_value AS k0 FROM run_metric_summaries s JOIN runs r ON r.id = s.run_id
         WHERE s.project_id = $1 AND s.key = ${key_at} AND NOT s.last_is_nan
           AND r.deleted_at IS NULL{condition}"
    );
    let without_metric = format!(
        "SELECT r.id FROM runs r WHERE r.project_id = $1 AND r.deleted_at IS NULL{condition}
           AND NOT EXISTS (SELECT 1 FROM run_metric_summaries s
                           WHERE s.run_id = r.id AND s.key = ${key_at} AND NOT s.last_is_nan)"
    );
    let head_order = format!("s.last_value {direction}, s.run_id {direction}");
    let head_outer = format!("page.k0 {direction}, page.id {direction}");
    let head_sql = |limit, offset| page(&with_metric, &head_order, &head_outer, limit, offset);
    let (tail_order, tail_outer) = (format!("r.id {direction}"), format!("page.id {direction}"));
    let tail_sql = |limit, offset| page(&without_metric, &tail_order, &tail_outer, limit, offset);
    let head_count_sql = format!(
        "SELECT COUNT(*) FROM run_metric_summaries s JOIN runs r ON r.id = s.run_id
         WHERE s.project_id = $1 AND s.key = ${key_at} AND NOT s.last_is_nan
           AND r.deleted_at IS NULL{condition}"
    );
    let count_sql = format!(
        "SELECT COUNT(*) FROM runs r WHERE r.project_id = $1 AND r.deleted_at IS NULL{condition}"
    );
    let (runs, count) = with_pool!(db, |pool| {
        let read = |sql: String| {
            let query = bind_filter!(sqlx::query(AssertSqlSafe(sql)).bind(project_id), binds);
            query.bind(by.key).fetch_all(pool)
        };
        let count = bind_filter!(
            sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql.clone())).bind(project_id),
            binds
        )
        .fetch_one(pool);
        let (rows, count) = tokio::join!(read(head_sql(i64::from(limit), offset)), count);
        let mut runs = rows?.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?;
        let count = count?;
        let got = i64::try_from(runs.len()).unwrap_or(i64::MAX);
        if got < i64::from(limit) && got.saturating_add(offset) < count {
            // The page reaches past the runs with the metric: `skipped`
            // of the rest come before it.
            let skipped = if runs.is_empty() && offset > 0 {
                let with: i64 = bind_filter!(
                    sqlx::query_scalar::<_, i64>(AssertSqlSafe(head_count_sql.clone()))
                        .bind(project_id),
                    binds
                )
                .bind(by.key)
                .fetch_one(pool)
                .await?;
                offset.saturating_sub(with)
            } else {
                0
            };
            let wanted = i64::from(limit) - got;
            for row in read(tail_sql(wanted, skipped)).await? {
                runs.push(decode_run(&row)?);
            }
        }
        (runs, count)
    });
    Ok((runs, u64::try_from(count).unwrap_or(0)))
}

/// Changes to a run's descriptive fields; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct RunChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub tags: Option<&'a [String]>,
}

/// Applies `changes` to run `id`; the updated run, or `None` if it is gone.
pub async fn update(
    db: &Db,
    id: i64,
    changes: &RunChanges<'_>,
    now: DateTime<Utc>,
) -> DbResult<Option<RunRow>> {
    let uuid: Option<Uuid> = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "UPDATE runs SET
                name = COALESCE($2, name),
                description = COALESCE($3, description),
                tags = COALESCE($4, tags),
                updated_at = $5
             WHERE id = $1 RETURNING uuid",
        )
        .bind(id)
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.tags.map(Json))
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    match uuid {
        Some(uuid) => Ok(Some(find_by_id(db, uuid).await?)),
        None => Ok(None),
    }
}

/// Merges `outputs` into run `id`'s outputs (a key given again replaces
/// its value); whether the run exists.
pub async fn merge_outputs(
    db: &Db,
    id: i64,
    outputs: &JsonObject,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let found = with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let current: Option<Json<JsonObject>> =
            sqlx::query_scalar("UPDATE runs SET updated_at = $2 WHERE id = $1 RETURNING outputs")
                .bind(id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            Some(Json(mut merged)) => {
                merged.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
                sqlx::query("UPDATE runs SET outputs = $2 WHERE id = $1")
                    .bind(id)
                    .bind(Json(&merged))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                true
            }
            None => false,
        }
    });
    Ok(found)
}

/// Deletes run `id` with its conditions; whether it existed.
pub async fn delete(db: &Db, id: i64) -> DbResult<bool> {
    let affected = with_pool!(db, |pool| {
        sqlx::query("DELETE FROM runs WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(affected > 0)
}

/// A status change to store.
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    pub run_id: i64,
    /// The status the caller read; the change applies only if it still holds.
    pub expected: RunStatus,
    pub next: RunStatus,
    /// The timing after the change, computed by the domain.
    pub timing: Timing,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// A message for the work queue, written in the same transaction.
    pub outbox: Option<OutboxMessage<'a>>,
    /// Statuses the run passes through on its way to `next` in this same
    /// change (`compiled` on the way to `queued`), each with its reason:
    /// their conditions are written before `next`'s, in one transaction.
    pub passing: &'a [(RunStatus, &'a str)],
    /// The executor taking the run with this change, recorded with it (as
    /// a heartbeat would) in the same update.
    pub claim: Option<Claim<'a>>,
}

/// An executor recording that it runs a run (as process `pid`, once known).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub executor: &'a str,
    pub pid: Option<i64>,
}

/// A message to publish once the change that produced it is committed.
#[derive(Debug, Clone, Copy)]
pub struct OutboxMessage<'a> {
    pub topic: &'a str,
    pub payload: &'a str,
}

/// Stores a status change if the run is still in `change.expected`.
/// Returns whether it applied; `false` means another change won the race and
/// the caller should re-read and decide again.
pub async fn set_status(db: &Db, change: &StatusChange<'_>) -> DbResult<bool> {
    let applied = set_statuses(db, std::slice::from_ref(change)).await?;
    Ok(applied.first().copied().unwrap_or(false))
}

/// The transaction of [`set_statuses_with`] on one connection.
macro_rules! apply_statuses_body {
    ($conn:ident, $changes:ident, $async_commit:ident) => {{
        let changes = $changes;
        let mut tx = sqlx::Acquire::begin(&mut *$conn).await?;
        if $async_commit {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        // The guarded UPDATE is the transaction's first statement so that
        // SQLite takes its write lock at once instead of failing to upgrade a
        // read lock later.
        let mut applied = Vec::with_capacity(changes.len());
        for change in changes {
            let affected = sqlx::query(
                "UPDATE runs SET status = $2, updated_at = $3, started_at = $4, finished_at = $5,
                                 wait_time = $6, duration = $7,
                                 executor = COALESCE($9, executor), pid = COALESCE($10, pid),
                                 heartbeat_at = CASE WHEN $9 IS NULL THEN heartbeat_at ELSE $3 END
                 WHERE id = $1 AND status = $8",
            )
            .bind(change.run_id)
            .bind(change.next.as_str())
            .bind(change.now)
            .bind(change.timing.started_at)
            .bind(change.timing.finished_at)
            .bind(change.timing.wait_time)
            .bind(change.timing.duration)
            .bind(change.expected.as_str())
            .bind(change.claim.map(|c| c.executor))
            .bind(change.claim.and_then(|c| c.pid))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected != 1 {
                applied.push(false);
                continue;
            }
            // Every condition of the change in one statement, in order.
            let conditions = change
                .passing
                .iter()
                .map(|(status, reason)| (*status, Some(*reason), None))
                .chain([(change.next, change.reason, change.message)]);
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO run_conditions (run_id, status, reason, message, created_at) ",
            );
            insert.push_values(conditions, |mut row, (status, reason, message)| {
                row.push_bind(change.run_id)
                    .push_bind(status.as_str())
                    .push_bind(reason)
                    .push_bind(message)
                    .push_bind(change.now);
            });
            insert.build().execute(&mut *tx).await?;
            if let Some(message) = change.outbox {
                sqlx::query("INSERT INTO outbox (topic, payload, created_at) VALUES ($1, $2, $3)")
                    .bind(message.topic)
                    .bind(message.payload)
                    .bind(change.now)
                    .execute(&mut *tx)
                    .await?;
            }
            applied.push(true);
        }
        if applied.iter().any(|a| *a) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok::<Vec<bool>, crate::DbError>(applied)
    }};
}

/// Stores several status changes (of different runs) in one transaction,
/// each guarded as [`set_status`]'s: which applied, in order. A change
/// that lost its race is skipped; the others still apply.
pub async fn set_statuses(db: &Db, changes: &[StatusChange<'_>]) -> DbResult<Vec<bool>> {
    set_statuses_with(db, changes, Durability::OnDisk).await
}

/// [`set_statuses`], committed as `durability` says. A deferred commit does
/// not wait for the disk: SQLite's connection commits it with
/// `synchronous = NORMAL` (the WAL is flushed by the next full commit or
/// checkpoint) and is set back to `FULL` before it returns to the pool;
/// PostgreSQL's transaction sets `synchronous_commit = off` for itself.
/// Either way a crash of the server loses nothing, a crash of the machine
/// at most the last deferred changes, and nothing is left half-written.
pub async fn set_statuses_with(
    db: &Db,
    changes: &[StatusChange<'_>],
    durability: Durability,
) -> DbResult<Vec<bool>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let deferred = durability == Durability::Deferred;
    let backend = db.backend();
    let applied = with_pool!(db, |pool| {
        let mut conn = pool.acquire().await?;
        if deferred && backend == Backend::Sqlite {
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *conn)
                .await?;
        }
        let async_commit = deferred && backend == Backend::Postgres;
        let applied = async { apply_statuses_body!(conn, changes, async_commit) }.await;
        if deferred
            && backend == Backend::Sqlite
            && sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await
                .is_err()
        {
            // A connection that would commit without waiting for the disk
            // never goes back to the pool.
            conn.close_on_drop();
        }
        applied?
    });
    Ok(applied)
}

/// One stored status condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionRow {
    pub status: RunStatus,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A condition as selected: status, reason, message, time.
type ConditionTuple = (String, Option<String>, Option<String>, DateTime<Utc>);

/// How many conditions of run `run_id` entered `status` with `reason`.
pub async fn count_conditions(
    db: &Db,
    run_id: i64,
    status: RunStatus,
    reason: &str,
) -> DbResult<i64> {
    let count: i64 = with_pool!(db, |pool| {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM run_conditions WHERE run_id = $1 AND status = $2 AND reason = $3",
        )
        .bind(run_id)
        .bind(status.as_str())
        .bind(reason)
        .fetch_one(pool)
        .await?
    });
    Ok(count)
}

/// Run `run_id`'s compiled spec, as stored (`None`: tracked from outside,
/// or submitted before specs were stored).
pub async fn compiled(db: &Db, run_id: i64) -> DbResult<Option<String>> {
    let text: Option<Option<String>> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT compiled FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(text.flatten())
}

/// Stores run `run_id`'s compiled spec (for runs submitted before specs
/// were stored).
pub async fn set_compiled(db: &Db, run_id: i64, compiled: &str) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query("UPDATE runs SET compiled = $2 WHERE id = $1")
            .bind(run_id)
            .bind(compiled)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Up to `limit` runs after row id `after` with a spec but no stored
/// compiled spec, in id order.
pub async fn missing_compiled(db: &Db, after: i64, limit: u32) -> DbResult<Vec<RunRow>> {
    let rows = with_pool!(db, |pool| {
        let rows = sqlx::query(concat!(
            run_select!(),
            " WHERE r.id > $1 AND r.compiled IS NULL AND r.content <> '' ORDER BY r.id LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
        rows.iter().map(decode_run).collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// Records where run `run_id`'s service listens (JSON: declared port →
/// address), or forgets it.
pub async fn set_endpoints(db: &Db, run_id: i64, endpoints: Option<&str>) -> DbResult<()> {
    with_pool!(db, |pool| {
        sqlx::query("UPDATE runs SET endpoints = $2 WHERE id = $1")
            .bind(run_id)
            .bind(endpoints)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// What [`set_endpoints`] recorded for run `run_id`.
pub async fn endpoints(db: &Db, run_id: i64) -> DbResult<Option<String>> {
    let text: Option<Option<String>> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT endpoints FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(text.flatten())
}

/// A run's conditions, oldest first.
pub async fn conditions(db: &Db, run_id: i64) -> DbResult<Vec<ConditionRow>> {
    let rows: Vec<ConditionTuple> = with_pool!(db, |pool| {
        sqlx::query_as(
            "SELECT status, reason, message, created_at FROM run_conditions
             WHERE run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(pool)
        .await?
    });
    rows.into_iter()
        .map(|(status, reason, message, created_at)| {
            let status =
                status
                    .parse()
                    .map_err(
                        |e: trellis_domain::lifecycle::UnknownStatus| DbError::Corrupt {
                            column: "run_conditions.status",
                            message: e.to_string(),
                        },
                    )?;
            Ok(ConditionRow {
                status,
                reason,
                message,
                created_at,
            })
        })
        .collect()
}

/// Records that `executor` runs run `run_id` (as process `pid`, when known)
/// and is alive at `now`. Only while the run is still active: a late beat
/// must not touch a finished run.
pub async fn heartbeat(
    db: &Db,
    run_id: i64,
    executor: &str,
    pid: Option<i64>,
    now: DateTime<Utc>,
) -> DbResult<bool> {
    let done: Vec<RunStatus> = RunStatus::ALL.into_iter().filter(|s| s.is_done()).collect();
    let sql = format!(
        "UPDATE runs SET executor = $2, pid = COALESCE($3, pid), heartbeat_at = $4
         WHERE id = $1 AND status NOT IN ({})",
        bind_list(done.len(), 5)
    );
    let affected = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(run_id)
            .bind(executor)
            .bind(pid)
            .bind(now);
        for status in &done {
            query = query.bind(status.as_str());
        }
        query.execute(pool).await?.rows_affected()
    });
    Ok(affected == 1)
}

/// Runs in `statuses` whose executor has not reported since `before`
/// (a run that never reported counts from its last status change), as the
/// scheduler reads them.
pub async fn silent_since(
    db: &Db,
    statuses: &[RunStatus],
    before: DateTime<Utc>,
    limit: u32,
) -> DbResult<Vec<SchedulingRow>> {
    let sql = format!(
        "{SCHEDULING_SELECT} WHERE status IN ({}) AND COALESCE(heartbeat_at, updated_at) < ${}
         ORDER BY updated_at, id LIMIT ${}",
        bind_list(statuses.len(), 1),
        statuses.len() + 1,
        statuses.len() + 2
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone()));
        for status in statuses {
            query = query.bind(status.as_str());
        }
        let rows = query
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(decode_scheduling)
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}

/// What the workspace proxy reads of run `uuid`: the run, its stored spec
/// (for the declared ports) and where its service listens, in one query.
pub async fn service_target(
    db: &Db,
    uuid: Uuid,
) -> DbResult<Option<(RunRow, Option<String>, Option<String>)>> {
    let found = with_pool!(db, |pool| {
        let row = sqlx::query(concat!(
            run_columns!(),
            ", r.compiled, r.endpoints FROM runs r JOIN projects p ON p.id = r.project_id
             WHERE r.uuid = $1 AND r.deleted_at IS NULL"
        ))
        .bind(uuid)
        .fetch_optional(pool)
        .await?;
        match row {
            Some(row) => Some((
                decode_run(&row)?,
                row.try_get("compiled")?,
                row.try_get("endpoints")?,
            )),
            None => None,
        }
    });
    Ok(found)
}

/// Service runs in `statuses`, in project `project_id` or everywhere, with
/// their stored specs and endpoints: the Workspaces view and the culler.
pub async fn services_in(
    db: &Db,
    project_id: Option<i64>,
    statuses: &[RunStatus],
    limit: u32,
) -> DbResult<Vec<(RunRow, Option<String>, Option<String>)>> {
    let sql = format!(
        "{}, r.compiled, r.endpoints FROM runs r JOIN projects p ON p.id = r.project_id
         WHERE r.kind = 'service' AND r.deleted_at IS NULL AND r.status IN ({})
           AND ($1 IS NULL OR r.project_id = $1)
         ORDER BY r.id DESC LIMIT ${}",
        run_columns!(),
        bind_list(statuses.len(), 2),
        statuses.len() + 2
    );
    let rows = with_pool!(db, |pool| {
        let mut query = sqlx::query(AssertSqlSafe(sql.clone())).bind(project_id);
        for status in statuses {
            query = query.bind(status.as_str());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    decode_run(row)?,
                    row.try_get("compiled")?,
                    row.try_get("endpoints")?,
                ))
            })
            .collect::<DbResult<Vec<_>>>()?
    });
    Ok(rows)
}
