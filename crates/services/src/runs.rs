//! Run use cases, including status changes along the lifecycle.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use trellis_api_types as api;
use trellis_db::runs::{
    self, Claim, ConditionRow, NewRun, OutboxMessage, PipelineLink, RunChanges, RunRow,
    SchedulingRow, StatusChange,
};
use trellis_domain::lifecycle::{
    Driver, Durability, Reporter, RunStatus, TransitionError, durability, transition_by,
};
use trellis_domain::listing::{Page, RunSort};
use trellis_domain::logs::{LogLine, Stream};
use trellis_domain::name::{check_description, check_run_name, normalize_tags};
use trellis_domain::pql::Query;
use trellis_domain::run::{RunId, RunKind};
use trellis_domain::spec::{self, Globals, NoFiles, StoredSpec};
use trellis_events::Event;

use crate::projects::load as load_project;
use crate::{ServiceError, ServiceResult, Services};
use trellis_db::projects::ProjectRow;

/// Longest accepted condition reason, in characters.
pub const MAX_REASON_LEN: usize = 256;
/// Longest accepted condition message, in characters.
pub const MAX_MESSAGE_LEN: usize = 10_000;
/// Most log lines returned by one call.
pub const MAX_LOG_PAGE: u32 = 5000;
/// How often a status change is retried when another change wins the race.
const MAX_STATUS_ATTEMPTS: usize = 32;

/// Run use cases; see [`Services::runs`].
pub struct Runs<'a> {
    pub(crate) services: &'a Services,
}

/// How a new run was made from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloning {
    /// Run the same spec and params again as a new run.
    Restart,
    /// Like a restart, also taking the original's outputs.
    Copy,
}

impl Cloning {
    /// `restart` or `copy`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloning::Restart => "restart",
            Cloning::Copy => "copy",
        }
    }
}

/// Who creates a run.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Its spec is submitted: it is compiled now and executed by Trellis.
    /// With the run it restarts or copies, and the pipeline creating it
    /// (the controller's row id, the dag operation, the trial index).
    Submitted {
        original: Option<(uuid::Uuid, Cloning)>,
        pipeline: Option<PipelineLink>,
    },
    /// A client runs it and reports (MLflow): no spec, `running` from
    /// `started_at`.
    Tracked { started_at: DateTime<Utc> },
}

impl Origin {
    pub(crate) fn submitted() -> Self {
        Origin::Submitted {
            original: None,
            pipeline: None,
        }
    }
}

/// Where a run lives: its project and its uuid as given in a path.
#[derive(Debug, Clone, Copy)]
pub struct RunRef<'a> {
    pub owner: &'a str,
    pub project: &'a str,
    pub uuid: &'a str,
}

pub(crate) fn to_dto(row: RunRow) -> api::Run {
    api::Run {
        uuid: row.uuid,
        name: row.name,
        description: row.description,
        tags: row.tags,
        kind: row.kind,
        status: row.status,
        project: row.project,
        owner: row.owner,
        content: row.content,
        inputs: row.inputs,
        outputs: row.outputs,
        created_at: row.timing.created_at,
        updated_at: row.updated_at,
        started_at: row.timing.started_at,
        finished_at: row.timing.finished_at,
        wait_time: row.timing.wait_time,
        duration: row.timing.duration,
        original: row.original,
        cloning_kind: row.cloning_kind,
        pipeline: row.pipeline.as_ref().map(|p| p.uuid),
        pipeline_op: row.pipeline.as_ref().and_then(|p| p.op.clone()),
        pipeline_index: row.pipeline.as_ref().and_then(|p| p.index),
    }
}

/// A stored log line as sent to clients.
pub(crate) fn log_entry(stored: trellis_db::logs::StoredLine) -> api::LogEntry {
    api::LogEntry {
        cursor: stored.cursor,
        at: stored.line.at,
        stream: match stored.line.stream {
            Stream::Stdout => "stdout".to_owned(),
            Stream::Stderr => "stderr".to_owned(),
        },
        text: stored.line.text,
    }
}

fn condition_dto(row: ConditionRow) -> api::StatusCondition {
    api::StatusCondition {
        kind: row.status,
        status: "True".to_owned(),
        reason: row.reason,
        message: row.message,
        last_update_time: row.created_at,
        last_transition_time: row.created_at,
    }
}

fn check_name(name: Option<&str>) -> ServiceResult<()> {
    match name {
        Some(name) => check_run_name(name).map_err(|e| ServiceError::invalid("name", e)),
        None => Ok(()),
    }
}

impl Runs<'_> {
    /// The stored run at `at`, for executors and streams.
    pub(crate) async fn row(&self, at: RunRef<'_>) -> ServiceResult<RunRow> {
        self.load(at).await
    }

    async fn load(&self, at: RunRef<'_>) -> ServiceResult<RunRow> {
        let project = load_project(self.services, at.owner, at.project).await?;
        let uuid: RunId = at
            .uuid
            .parse()
            .map_err(|e| ServiceError::invalid("uuid", e))?;
        runs::find(&self.services.db, project.id, uuid.0)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                entity: "run",
                id: at.uuid.to_owned(),
            })
    }

    /// One page of a project's runs matching `query` (the Polyaxon query
    /// language) in `sort` order, and how many runs match.
    pub async fn list(
        &self,
        owner: &str,
        project: &str,
        page: Page,
        sort: &RunSort,
        query: Option<&str>,
    ) -> ServiceResult<(Vec<api::Run>, u64)> {
        let filter = match query {
            Some(text) => Query::parse(text).map_err(|e| ServiceError::invalid("query", e))?,
            None => None,
        };
        let project = load_project(self.services, owner, project).await?;
        let (rows, count) = runs::list(
            &self.services.db,
            project.id,
            filter.as_ref(),
            sort,
            page.limit,
            page.offset,
        )
        .await?;
        Ok((rows.into_iter().map(to_dto).collect(), count))
    }

    /// Creates a run in `owner/project` with status `created`.
    pub async fn create(
        &self,
        owner: &str,
        project: &str,
        input: api::CreateRun,
    ) -> ServiceResult<api::Run> {
        let project = load_project(self.services, owner, project).await?;
        let row = self.create_in(&project, input, Origin::submitted()).await?;
        Ok(to_dto(row))
    }

    /// Creates a run a pipeline controller asks for: a trial of a sweep
    /// (`index`) or an operation of a dag (`op`).
    pub(crate) async fn create_child(
        &self,
        controller: &RunRow,
        input: api::CreateRun,
        op: Option<&str>,
        index: Option<i64>,
    ) -> ServiceResult<RunRow> {
        let project = load_project(self.services, &controller.owner, &controller.project).await?;
        let origin = Origin::Submitted {
            original: None,
            pipeline: Some(PipelineLink {
                id: controller.id,
                uuid: controller.uuid,
                op: op.map(str::to_owned),
                index,
            }),
        };
        self.create_in(&project, input, origin).await
    }

    /// A new run with the spec, params, name, description and tags of the
    /// run at `at` (Polyaxon's restart and copy), pointing back at it.
    /// `copy` also takes the original's outputs.
    pub async fn clone_run(&self, at: RunRef<'_>, kind: Cloning) -> ServiceResult<api::Run> {
        let original = self.load(at).await?;
        if original.content.trim().is_empty() {
            return Err(ServiceError::invalid(
                "uuid",
                "this run has no spec to run again (it was tracked from outside)",
            ));
        }
        let input = api::CreateRun {
            name: original.name.clone(),
            description: Some(original.description.clone()),
            tags: Some(original.tags.clone()),
            content: Some(original.content.clone()),
            params: Some(original.inputs.clone()),
        };
        let project = load_project(self.services, at.owner, at.project).await?;
        let origin = Origin::Submitted {
            original: Some((original.uuid, kind)),
            pipeline: None,
        };
        let created = self.create_in(&project, input, origin).await?;
        if kind == Cloning::Copy && !original.outputs.is_empty() {
            let row = &created;
            runs::merge_outputs(
                &self.services.db,
                row.id,
                &original.outputs,
                self.services.now(),
            )
            .await?;
            let copied = runs::find_any(&self.services.db, created.uuid)
                .await?
                .ok_or_else(contended)?;
            return Ok(to_dto(copied));
        }
        Ok(to_dto(created))
    }

    /// Runs a done run again as itself (Polyaxon's resume): `resuming`,
    /// then the scheduler queues it like a new submission.
    pub async fn resume(&self, at: RunRef<'_>) -> ServiceResult<api::Run> {
        let mut row = self.load(at).await?;
        if row.content.trim().is_empty() {
            return Err(ServiceError::invalid(
                "uuid",
                "this run has no spec to resume (it was tracked from outside)",
            ));
        }
        for _ in 0..MAX_STATUS_ATTEMPTS {
            if !row.status.is_done() {
                return Err(ServiceError::Conflict(format!(
                    "only a done run can be resumed; this one is `{}`",
                    row.status
                )));
            }
            match self
                .try_change(
                    &row,
                    RunStatus::Resuming,
                    Some("Resumed"),
                    Some("Resumed by the user"),
                )
                .await?
            {
                Some(updated) => return Ok(to_dto(updated)),
                None => row = self.load(at).await?,
            }
        }
        Err(contended())
    }

    /// Every run is created here: submitted through the API or the CLI, by
    /// a pipeline, as a restart or copy, or tracked from outside (MLflow's
    /// `runs/create`), so the same checks and the same announcement apply.
    pub(crate) async fn create_in(
        &self,
        project: &ProjectRow,
        input: api::CreateRun,
        origin: Origin,
    ) -> ServiceResult<RunRow> {
        let owner = project.owner.as_str();
        let content = input.content.unwrap_or_default();
        let (original, pipeline, status, created_at) = match origin {
            Origin::Submitted { original, pipeline } => {
                (original, pipeline, RunStatus::Created, self.services.now())
            }
            Origin::Tracked { started_at } => {
                if !content.trim().is_empty() {
                    return Err(ServiceError::invalid(
                        "content",
                        "a run tracked from outside has no spec",
                    ));
                }
                (None, None, RunStatus::Running, started_at)
            }
        };
        let uuid = uuid::Uuid::new_v4();
        // A run tracked from outside has no spec; a submitted spec is
        // compiled now, so a broken file is refused with its location and
        // the run records its kind and resolved inputs.
        let stored = if content.trim().is_empty() {
            if input.params.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(ServiceError::invalid(
                    "params",
                    "`params` need a spec (`content`) with inputs to check them against",
                ));
            }
            None
        } else {
            let globals = Globals {
                uuid: Some(uuid.simple().to_string()),
                name: input.name.clone(),
                owner_name: Some(owner.to_owned()),
                project_name: Some(project.name.clone()),
                ..Globals::default()
            };
            let mut overrides: BTreeMap<String, serde_json::Value> = input
                .params
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            let mut compiled = spec::compile(&content, None, &NoFiles, &overrides, &globals)
                .map_err(|e| ServiceError::invalid("content", e))?;
            // Params given by reference to another run (`runs.<uuid>`) take
            // that run's values now, as Polyaxon does; they are then
            // checked like given params. (A dag resolves its operations'
            // references before it creates them.)
            if !compiled.refs.is_empty() {
                let uuids = compiled
                    .refs
                    .values()
                    .filter_map(|r| spec::pipeline::referenced_run(&r.reference));
                let runs = crate::pipelines::referenced_runs(self.services, uuids).await?;
                let no_ops = BTreeMap::new();
                let scope = spec::pipeline::RefScope {
                    ops: &no_ops,
                    runs: &runs,
                    dag: None,
                };
                let values = spec::pipeline::resolve_refs(&compiled.refs, scope)
                    .map_err(|e| ServiceError::invalid("content", e))?;
                overrides.extend(values);
                compiled = spec::compile(&content, None, &NoFiles, &overrides, &globals)
                    .map_err(|e| ServiceError::invalid("content", e))?;
            }
            // Compiled once: the executor, a sweep and a dag read this.
            let stored = StoredSpec::new(compiled, &content)
                .map_err(|e| ServiceError::invalid("content", e))?;
            // A valid sweep this server cannot drive (`iterative`,
            // `anneal`) is refused now rather than failed once started.
            if let Some(sweep) = &stored.sweep {
                trellis_domain::sweep::plan::Matrix::from_raw(&sweep.matrix, 0)
                    .map_err(|e| ServiceError::invalid("content", format!("matrix: {e}")))?;
            }
            Some(stored)
        };
        let encoded = stored
            .as_ref()
            .map(StoredSpec::encode)
            .transpose()
            .map_err(|e| ServiceError::invalid("content", e))?;
        let compiled = stored.as_ref().map(|s| &s.run);
        let inputs = compiled.map(|c| c.inputs.clone()).unwrap_or_default();
        // The request's description and tags win; the spec's fill in.
        let description = input
            .description
            .or_else(|| compiled.and_then(|c| c.description.clone()))
            .unwrap_or_default();
        check_description(&description).map_err(|e| ServiceError::invalid("description", e))?;
        let tags = input
            .tags
            .or_else(|| compiled.map(|c| c.tags.clone()))
            .unwrap_or_default();
        let tags = normalize_tags(&tags).map_err(|e| ServiceError::invalid("tags", e))?;
        let name = input
            .name
            .as_deref()
            .map(str::trim)
            .or(compiled.and_then(|c| c.name.as_deref()));
        check_name(name)?;
        let new = NewRun {
            uuid,
            project_id: project.id,
            owner: &project.owner,
            project: &project.name,
            name,
            description: &description,
            tags: &tags,
            // An operation with a matrix is a sweep: its run is the
            // controller that creates the trials.
            kind: compiled.map(|c| {
                if c.matrix.is_some() {
                    RunKind::Matrix
                } else {
                    c.kind
                }
            }),
            content: &content,
            queue: compiled.and_then(|c| c.queue.as_deref()),
            inputs: &inputs,
            compiled: encoded.as_deref(),
            original: original.map(|(uuid, kind)| (uuid, kind.as_str())),
            status,
            now: created_at,
            pipeline,
        };
        let row = runs::insert(&self.services.db, &new).await?;
        tracing::info!(run.id = %row.uuid, project.name = %project.name, "created run {}", row.uuid);
        self.announce(&row).await;
        Ok(row)
    }

    /// Compiles and stores the spec of the runs submitted before specs were
    /// stored (a database migrated from an earlier Trellis), so execution
    /// and pipelines read one compiled value. A spec that no longer
    /// compiles is left without one: its run fails with the compiler's
    /// message if it is ever executed. How many were stored.
    pub async fn store_missing_specs(&self) -> ServiceResult<usize> {
        let mut after = 0;
        let mut stored = 0;
        loop {
            let batch = runs::missing_compiled(&self.services.db, after, 200).await?;
            let Some(last) = batch.last() else {
                return Ok(stored);
            };
            after = last.id;
            for row in &batch {
                match compile_stored(row) {
                    Ok(text) => {
                        runs::set_compiled(&self.services.db, row.id, &text).await?;
                        stored += 1;
                    }
                    Err(error) => {
                        tracing::warn!(run.id = %row.uuid, "the spec of run {} no longer compiles: {error}", row.uuid);
                    }
                }
            }
        }
    }

    /// Run `row`'s compiled spec, as stored at submission.
    pub(crate) async fn stored_spec(&self, row: &RunRow) -> ServiceResult<StoredSpec> {
        let text = runs::compiled(&self.services.db, row.id)
            .await?
            .ok_or_else(|| {
                ServiceError::invalid("content", "the run has no compiled spec stored")
            })?;
        decode_spec(&text)
    }

    /// Announces a new run's first status to live streams and the scheduler.
    pub(crate) async fn announce(&self, row: &RunRow) {
        self.services
            .events
            .publish(Event::Status {
                run: row.uuid,
                project_id: row.project_id,
                status: row.status,
            })
            .await;
    }

    /// The runs the pipeline at `at` (a matrix or dag run) created, in
    /// order: trials by index, operations as they started.
    pub async fn children(&self, at: RunRef<'_>) -> ServiceResult<Vec<api::Run>> {
        let row = self.load(at).await?;
        Ok(runs::children(&self.services.db, row.id)
            .await?
            .into_iter()
            .map(to_dto)
            .collect())
    }

    /// The run at `at`.
    pub async fn get(&self, at: RunRef<'_>) -> ServiceResult<api::Run> {
        self.load(at).await.map(to_dto)
    }

    /// Changes the given descriptive fields of a run.
    pub async fn update(&self, at: RunRef<'_>, input: api::UpdateRun) -> ServiceResult<api::Run> {
        let row = self.load(at).await?;
        check_name(input.name.as_deref())?;
        if let Some(description) = &input.description {
            check_description(description).map_err(|e| ServiceError::invalid("description", e))?;
        }
        let tags = input
            .tags
            .as_deref()
            .map(|t| normalize_tags(t).map_err(|e| ServiceError::invalid("tags", e)))
            .transpose()?;
        let changes = RunChanges {
            name: input.name.as_deref().map(str::trim),
            description: input.description.as_deref(),
            tags: tags.as_deref(),
        };
        runs::update(&self.services.db, row.id, &changes, self.services.now())
            .await?
            .map(to_dto)
            .ok_or_else(|| ServiceError::NotFound {
                entity: "run",
                id: at.uuid.to_owned(),
            })
    }

    /// Deletes a run and its history.
    pub async fn delete(&self, at: RunRef<'_>) -> ServiceResult<()> {
        let row = self.load(at).await?;
        runs::delete(&self.services.db, row.id).await?;
        tracing::info!(run.id = %row.uuid, "deleted run {}", row.uuid);
        // Its artifacts go with it; the run is already gone, so a failure
        // here is logged rather than reported.
        if let Some(store) = &self.services.artifacts
            && let Err(error) = store.delete(row.uuid, None).await
        {
            tracing::warn!(run.id = %row.uuid, error = ?error, "could not delete the artifacts of run {}: {error}", row.uuid);
        }
        Ok(())
    }

    /// Asks a run to stop: a run with nothing started is stopped at once, an
    /// active one moves to `stopping` for its executor to finish.
    pub async fn stop(&self, at: RunRef<'_>) -> ServiceResult<api::Run> {
        let mut row = self.load(at).await?;
        for _ in 0..MAX_STATUS_ATTEMPTS {
            let Some(target) = row.status.stop_target() else {
                return Err(ServiceError::Invalid {
                    field: None,
                    message: format!("the run is `{}`; there is nothing to stop", row.status),
                });
            };
            match self
                .try_change(
                    &row,
                    target,
                    Some("StopRequested"),
                    Some("Stop requested by the user"),
                )
                .await?
            {
                Some(updated) => return Ok(to_dto(updated)),
                None => row = self.load(at).await?,
            }
        }
        Err(contended())
    }

    /// Asks run `uuid` to stop for `reason` (a culler, not a user): its
    /// `stopping` condition carries the reason and message, which the
    /// executor repeats on `stopped`. `false` when it had nothing to stop.
    pub async fn stop_as(
        &self,
        uuid: uuid::Uuid,
        reason: trellis_domain::execution::Reason,
        message: &str,
    ) -> ServiceResult<bool> {
        for _ in 0..MAX_STATUS_ATTEMPTS {
            let Some(row) = runs::find_any(&self.services.db, uuid).await? else {
                return Ok(false);
            };
            let Some(target) = row.status.stop_target() else {
                return Ok(false);
            };
            if self
                .try_change(&row, target, Some(reason.as_str()), Some(message))
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
        Err(contended())
    }

    /// Lines of a run's output after cursor `after` (0: from the start).
    pub async fn logs(
        &self,
        at: RunRef<'_>,
        after: i64,
        limit: u32,
    ) -> ServiceResult<api::RunLogs> {
        if after < 0 {
            return Err(ServiceError::invalid(
                "after",
                "`after` must not be negative",
            ));
        }
        if !(1..=MAX_LOG_PAGE).contains(&limit) {
            return Err(ServiceError::invalid(
                "limit",
                format!("`limit` must be between 1 and {MAX_LOG_PAGE}"),
            ));
        }
        let row = self.load(at).await?;
        let lines = trellis_db::logs::after(&self.services.db, row.id, after, limit).await?;
        let next_cursor = lines.last().map_or(after, |l| l.cursor);
        let logs = lines.into_iter().map(log_entry).collect();
        Ok(api::RunLogs {
            logs,
            next_cursor,
            done: row.status.is_done(),
        })
    }

    /// Appends captured output lines to a run (its executor's call).
    pub async fn append_logs(&self, at: RunRef<'_>, lines: &[LogLine]) -> ServiceResult<()> {
        let row = self.load(at).await?;
        self.append_logs_to(&row, lines).await
    }

    /// A run's status and its conditions, oldest first.
    pub async fn statuses(&self, at: RunRef<'_>) -> ServiceResult<api::RunStatuses> {
        let row = self.load(at).await?;
        let conditions = runs::conditions(&self.services.db, row.id).await?;
        Ok(api::RunStatuses {
            uuid: row.uuid,
            status: row.status,
            status_conditions: conditions.into_iter().map(condition_dto).collect(),
        })
    }

    /// Moves a run to the reported status if the lifecycle allows it, and
    /// appends the condition.
    pub async fn add_status(
        &self,
        at: RunRef<'_>,
        input: api::PostStatus,
    ) -> ServiceResult<api::RunStatuses> {
        check_coordinates(at, &input)?;
        let condition = input.condition;
        if condition
            .status
            .as_deref()
            .is_some_and(|s| !s.eq_ignore_ascii_case("true"))
        {
            return Err(ServiceError::invalid(
                "condition.status",
                "condition status must be \"True\" (the run enters `type`)",
            ));
        }
        let reason = condition.reason.as_deref().filter(|r| !r.is_empty());
        let message = condition.message.as_deref().filter(|m| !m.is_empty());
        if reason.is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
            return Err(ServiceError::invalid(
                "condition.reason",
                format!("reason is longer than {MAX_REASON_LEN} characters"),
            ));
        }
        if message.is_some_and(|m| m.chars().count() > MAX_MESSAGE_LEN) {
            return Err(ServiceError::invalid(
                "condition.message",
                format!("message is longer than {MAX_MESSAGE_LEN} characters"),
            ));
        }
        let mut row = self.load(at).await?;
        for _ in 0..MAX_STATUS_ATTEMPTS {
            match self
                .try_change(&row, condition.kind, reason, message)
                .await?
            {
                Some(_) => return self.statuses(at).await,
                None => row = self.load(at).await?,
            }
        }
        Err(contended())
    }

    /// Moves run `uuid` to `next` if the lifecycle allows it from wherever
    /// it is now (retrying when another change wins the race). `Ok(None)`
    /// when it does not: the run is gone, or it moved somewhere `next`
    /// cannot follow (a stop got there first, say). For the scheduler and
    /// executors, which act on runs they found rather than on a request.
    pub(crate) async fn advance(
        &self,
        uuid: uuid::Uuid,
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
    ) -> ServiceResult<Option<RunRow>> {
        self.advance_with(uuid, next, reason, message, None).await
    }

    /// [`Runs::advance`], with the run's timing taken at `at` rather than
    /// now: a client that reports when its run really ended (MLflow's
    /// `set_terminated(end_time=...)`, an importer of historical runs). The
    /// status history still records when Trellis learnt of the change.
    pub(crate) async fn advance_at(
        &self,
        uuid: uuid::Uuid,
        next: RunStatus,
        reason: &str,
        at: DateTime<Utc>,
    ) -> ServiceResult<Option<RunRow>> {
        let change = Change {
            at: Some(at),
            ..Change::to(next, Some(reason), None)
        };
        self.advance_inner(uuid, change).await
    }

    /// [`Runs::advance`], writing `outbox` for the work queue in the same
    /// transaction as the change.
    pub(crate) async fn advance_with(
        &self,
        uuid: uuid::Uuid,
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
        outbox: Option<OutboxMessage<'_>>,
    ) -> ServiceResult<Option<RunRow>> {
        let change = Change {
            outbox,
            ..Change::to(next, Some(reason), message)
        };
        self.advance_inner(uuid, change).await
    }

    /// Moves run `uuid` through `via` to `next` in one transaction,
    /// recording that `claim`'s executor takes it (its id, pid and a
    /// heartbeat) in the same update: what an executor writes as it starts
    /// a run.
    pub(crate) async fn advance_claiming(
        &self,
        known: &RunRow,
        via: &[(RunStatus, &str)],
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
        claim: Claim<'_>,
    ) -> ServiceResult<Option<RunRow>> {
        let change = Change {
            via,
            claim: Some(claim),
            by: Reporter::Trellis,
            ..Change::to(next, Some(reason), message)
        };
        self.advance_known(known.uuid, Some(known), change).await
    }

    /// [`Runs::advance`] trying first from `known`, the row as the caller
    /// last read or changed it.
    pub(crate) async fn advance_from(
        &self,
        known: &RunRow,
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
    ) -> ServiceResult<Option<RunRow>> {
        let change = Change {
            by: Reporter::Trellis,
            ..Change::to(next, Some(reason), message)
        };
        self.advance_known(known.uuid, Some(known), change).await
    }

    /// The same change for several runs the scheduler read, in one
    /// transaction: the runs it applied to. A run that moved meanwhile, or
    /// from where the lifecycle refuses the change, is left for the next
    /// read.
    pub(crate) async fn advance_all(
        &self,
        rows: &[SchedulingRow],
        via: &[(RunStatus, &str)],
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
    ) -> ServiceResult<Vec<uuid::Uuid>> {
        let now = self.services.now();
        let change = Change {
            via,
            by: Reporter::Trellis,
            ..Change::to(next, Some(reason), message)
        };
        let mut planned = Vec::new();
        let mut stored = Vec::new();
        for row in rows {
            let Ok(timing) = change.apply(Driver::of(row.kind), row.status, row.timing, now) else {
                continue;
            };
            planned.push(row);
            stored.push(change.stored(row.id, row.status, timing, now));
        }
        let applied =
            runs::set_statuses_with(&self.services.db, &stored, change.durability()).await?;
        let mut moved = Vec::new();
        for (row, applied) in planned.into_iter().zip(applied) {
            if !applied {
                continue;
            }
            self.announce_change(row.uuid, row.project_id, next).await;
            moved.push(row.uuid);
        }
        Ok(moved)
    }

    /// The same change for several runs an executor read (`rows`), each
    /// with its own outbox message (`outbox[i]` goes with `rows[i]`; the
    /// slice may be empty), in one transaction: each run's row after the
    /// change, or `None` where it moved meanwhile or the lifecycle refuses
    /// it from where it is. What an executor writes as it takes the runs of
    /// one tick.
    #[allow(
        clippy::too_many_arguments,
        reason = "one change, spelt out as the single-run variants spell it"
    )]
    pub(crate) async fn advance_rows(
        &self,
        rows: &[RunRow],
        via: &[(RunStatus, &str)],
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
        claim: Option<Claim<'_>>,
        outbox: &[OutboxMessage<'_>],
    ) -> ServiceResult<Vec<Option<RunRow>>> {
        let now = self.services.now();
        let mut planned = Vec::new();
        let mut stored = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let change = Change {
                via,
                claim,
                outbox: outbox.get(i).copied(),
                by: Reporter::Trellis,
                ..Change::to(next, Some(reason), message)
            };
            let Ok(timing) = change.apply(Driver::of(row.kind), row.status, row.timing, now) else {
                continue;
            };
            planned.push((i, timing));
            stored.push(change.stored(row.id, row.status, timing, now));
        }
        let applied = runs::set_statuses_with(
            &self.services.db,
            &stored,
            durability(next, Reporter::Trellis),
        )
        .await?;
        let mut changed = vec![None; rows.len()];
        for ((i, timing), applied) in planned.into_iter().zip(applied) {
            if !applied {
                continue;
            }
            let row = &rows[i];
            self.announce_change(row.uuid, row.project_id, next).await;
            changed[i] = Some(changed_row(row, next, timing, now, claim));
        }
        Ok(changed)
    }

    async fn advance_inner(
        &self,
        uuid: uuid::Uuid,
        change: Change<'_>,
    ) -> ServiceResult<Option<RunRow>> {
        self.advance_known(uuid, None, change).await
    }

    /// [`Runs::advance_inner`], trying first from `known` (the row as the
    /// caller last read or changed it) and reading again only after a lost
    /// race: an executor's handle saves a read per transition.
    async fn advance_known(
        &self,
        uuid: uuid::Uuid,
        mut known: Option<&RunRow>,
        change: Change<'_>,
    ) -> ServiceResult<Option<RunRow>> {
        for _ in 0..MAX_STATUS_ATTEMPTS {
            let read;
            let (row, fresh) = match known.take() {
                Some(row) => (row, false),
                None => match runs::find_any(&self.services.db, uuid).await? {
                    Some(row) => {
                        read = row;
                        (&read, true)
                    }
                    None => return Ok(None),
                },
            };
            match self.try_change_with(row, change).await {
                Ok(Some(updated)) => return Ok(Some(updated)),
                // Lost a race: read again and decide again.
                Ok(None) => {}
                // Not from where the run is now (a stop got there first);
                // a row the caller kept may be stale: decide on a fresh one.
                Err(ServiceError::Transition(_)) if fresh => return Ok(None),
                Err(ServiceError::Transition(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Err(contended())
    }

    /// Sends run `uuid` back to wait for a slot: `retrying` (with `reason`
    /// and `message`), then `queued`. `false` if the lifecycle refused (the
    /// run moved on meanwhile, a stop say).
    pub(crate) async fn requeue(
        &self,
        uuid: uuid::Uuid,
        reason: &str,
        message: &str,
    ) -> ServiceResult<bool> {
        if self
            .advance(uuid, RunStatus::Retrying, reason, Some(message))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        Ok(self
            .advance(
                uuid,
                RunStatus::Queued,
                "Queued",
                Some("Waiting for a free slot"),
            )
            .await?
            .is_some())
    }

    /// The handle executors report through, for run `uuid` if it exists.
    pub async fn handle(
        &self,
        uuid: uuid::Uuid,
    ) -> ServiceResult<Option<crate::execution::RunHandle>> {
        crate::execution::RunHandle::find(self.services, uuid).await
    }

    /// The current status of run `uuid`, if it exists.
    pub(crate) async fn status_of(&self, uuid: uuid::Uuid) -> ServiceResult<Option<RunStatus>> {
        Ok(runs::find_any(&self.services.db, uuid)
            .await?
            .map(|r| r.status))
    }

    /// The runs in `statuses`, least recently changed first.
    pub(crate) async fn in_statuses(
        &self,
        statuses: &[RunStatus],
        limit: u32,
    ) -> ServiceResult<Vec<RunRow>> {
        Ok(runs::in_statuses(&self.services.db, statuses, limit).await?)
    }

    /// Appends captured output to `run` (an executor's call) and announces
    /// the new end of its log.
    pub(crate) async fn append_logs_to(
        &self,
        run: &RunRow,
        lines: &[LogLine],
    ) -> ServiceResult<()> {
        if let Some(last) = trellis_db::logs::append(&self.services.db, run.id, lines).await? {
            self.services
                .events
                .publish(Event::Logs {
                    run: run.uuid,
                    last,
                })
                .await;
        }
        Ok(())
    }

    /// Logs and announces that run `uuid` is now `next`.
    async fn announce_change(&self, uuid: uuid::Uuid, project_id: i64, next: RunStatus) {
        tracing::info!(run.id = %uuid, run.status = %next, "run {uuid} is now {next}");
        self.services
            .events
            .publish(Event::Status {
                run: uuid,
                project_id,
                status: next,
            })
            .await;
    }

    /// One attempt at a guarded status change from the status in `row`:
    /// `Ok(None)` when another change got there first.
    async fn try_change(
        &self,
        row: &RunRow,
        next: RunStatus,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> ServiceResult<Option<RunRow>> {
        self.try_change_with(row, Change::to(next, reason, message))
            .await
    }

    async fn try_change_with(
        &self,
        row: &RunRow,
        change: Change<'_>,
    ) -> ServiceResult<Option<RunRow>> {
        let now = self.services.now();
        let timing = change.apply(Driver::of(row.kind), row.status, row.timing, now)?;
        let next = change.next;
        let stored = change.stored(row.id, row.status, timing, now);
        let applied =
            runs::set_statuses_with(&self.services.db, &[stored], change.durability()).await?;
        if applied.first() != Some(&true) {
            return Ok(None);
        }
        self.announce_change(row.uuid, row.project_id, next).await;
        Ok(Some(changed_row(row, next, timing, now, change.claim)))
    }
}

/// `row` after a guarded update to `next` applied: it changed exactly these
/// columns, so no second read per transition.
fn changed_row(
    row: &RunRow,
    next: RunStatus,
    timing: trellis_domain::lifecycle::Timing,
    now: DateTime<Utc>,
    claim: Option<Claim<'_>>,
) -> RunRow {
    let mut changed = RunRow {
        status: next,
        timing,
        updated_at: now,
        ..row.clone()
    };
    if let Some(claim) = claim {
        changed.executor = Some(claim.executor.to_owned());
        changed.pid = claim.pid.or(changed.pid);
        changed.heartbeat_at = Some(now);
    }
    changed
}

/// A status change as the `advance*` variants ask for it.
#[derive(Clone, Copy)]
struct Change<'a> {
    /// Statuses passed through on the way to `next`, in the same
    /// transaction, each with its reason.
    via: &'a [(RunStatus, &'a str)],
    next: RunStatus,
    reason: Option<&'a str>,
    message: Option<&'a str>,
    /// For the work queue, written in the same transaction.
    outbox: Option<OutboxMessage<'a>>,
    /// When it happened, if a client says so; else now.
    at: Option<DateTime<Utc>>,
    /// The executor taking the run, recorded in the same update.
    claim: Option<Claim<'a>>,
    /// Who makes it, which decides how it is committed.
    by: Reporter,
}

impl<'a> Change<'a> {
    fn to(next: RunStatus, reason: Option<&'a str>, message: Option<&'a str>) -> Self {
        Change {
            via: &[],
            next,
            reason,
            message,
            outbox: None,
            at: None,
            claim: None,
            by: Reporter::Client,
        }
    }

    /// How this change is committed.
    fn durability(&self) -> Durability {
        durability(self.next, self.by)
    }

    /// This change of run `run_id`, guarded on `expected`, as stored.
    fn stored(
        &self,
        run_id: i64,
        expected: RunStatus,
        timing: trellis_domain::lifecycle::Timing,
        now: DateTime<Utc>,
    ) -> StatusChange<'a> {
        StatusChange {
            run_id,
            expected,
            next: self.next,
            timing,
            reason: self.reason,
            message: self.message,
            now,
            outbox: self.outbox,
            passing: self.via,
            claim: self.claim,
        }
    }

    /// The timing after this change of a run in `from`, if the lifecycle
    /// allows every step of it.
    fn apply(
        &self,
        driver: Driver,
        mut from: RunStatus,
        mut timing: trellis_domain::lifecycle::Timing,
        now: DateTime<Utc>,
    ) -> Result<trellis_domain::lifecycle::Timing, TransitionError> {
        let at = self.at.unwrap_or(now);
        for status in self
            .via
            .iter()
            .map(|(status, _)| *status)
            .chain([self.next])
        {
            transition_by(driver, from, status)?;
            timing = timing.apply(status, at);
            from = status;
        }
        Ok(timing)
    }
}

/// A stored compiled spec, read back.
pub(crate) fn decode_spec(text: &str) -> ServiceResult<StoredSpec> {
    StoredSpec::decode(text).map_err(|e| ServiceError::invalid("content", e))
}

/// What submission would have stored for `row`: its spec compiled with
/// its resolved inputs and the globals known then.
fn compile_stored(row: &RunRow) -> Result<String, spec::SpecError> {
    let globals = Globals {
        uuid: Some(row.uuid.simple().to_string()),
        name: row.name.clone(),
        owner_name: Some(row.owner.clone()),
        project_name: Some(row.project.clone()),
        ..Globals::default()
    };
    let params = row.inputs.clone().into_iter().collect();
    let compiled = spec::compile(&row.content, None, &NoFiles, &params, &globals)?;
    StoredSpec::new(compiled, &row.content)?.encode()
}

fn contended() -> ServiceError {
    ServiceError::Conflict("the run's status kept changing concurrently; try again".to_owned())
}

/// Polyaxon clients repeat the run's coordinates in the body; they must
/// agree with the path so a misrouted update cannot land on another run.
fn check_coordinates(at: RunRef<'_>, input: &api::PostStatus) -> ServiceResult<()> {
    let mismatch = |field: &'static str| {
        ServiceError::invalid(
            field,
            format!("`{field}` in the body does not match the URL"),
        )
    };
    if input.owner.as_deref().is_some_and(|o| o != at.owner) {
        return Err(mismatch("owner"));
    }
    if input.project.as_deref().is_some_and(|p| p != at.project) {
        return Err(mismatch("project"));
    }
    if let Some(uuid) = input.uuid {
        let path: Result<RunId, _> = at.uuid.parse();
        if path.map(|p| p.0) != Ok(uuid) {
            return Err(mismatch("uuid"));
        }
    }
    Ok(())
}

impl Runs<'_> {
    /// Active runs whose executor has been silent for longer than `quiet`.
    pub(crate) async fn silent(
        &self,
        statuses: &[RunStatus],
        quiet: std::time::Duration,
    ) -> ServiceResult<Vec<SchedulingRow>> {
        let quiet = chrono::Duration::from_std(quiet).unwrap_or(chrono::Duration::MAX);
        let before = self.services.now() - quiet;
        Ok(runs::silent_since(&self.services.db, statuses, before, 10_000).await?)
    }
}
