//! The MLflow tracking API's use cases, on Trellis projects and runs.
//!
//! An MLflow experiment is a Trellis project: its id is the project's id,
//! except the `Default` experiment `0`, which is the project
//! `default/default` (created when first used). Experiment names that are
//! not valid project names get a slug as project name and keep the MLflow
//! name beside it. An MLflow run is a Trellis run: its `run_id` is the
//! run's uuid without dashes, so runs created by the mlflow client show in
//! the dashboard and runs launched by Trellis are reachable from the client.

use std::collections::BTreeMap;

use trellis_api_types as api;
use trellis_api_types::mlflow as ml;
use trellis_db::DbError;
use trellis_db::projects::{self, NewProject, ProjectRow, ViewType};
use trellis_db::runs::{self, RunRow};
use trellis_db::tracking::{self, Batch, NewPoint};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::mlflow::{self as search, MlflowStatus};
use trellis_domain::name::{DEFAULT_OWNER, Name, check_run_name};
use trellis_domain::tracking::MAX_ENTITIES_PER_BATCH;
use uuid::Uuid;

use crate::artifacts::ArtifactEntry;
use crate::runs::Origin;
use crate::{ServiceError, ServiceResult, Services};

/// The Default experiment's id, as every MLflow client knows it.
pub const DEFAULT_EXPERIMENT_ID: &str = "0";
/// The Default experiment's project name.
const DEFAULT_PROJECT: &str = "default";
/// Longest experiment name (MLflow's limit).
const MAX_EXPERIMENT_NAME_LEN: usize = 500;
/// The run tag holding dataset inputs logged with `log-inputs`.
const DATASETS_TAG: &str = "mlflow.trellis.datasetInputs";

/// MLflow use cases; see [`Services::mlflow`].
pub struct Mlflow<'a> {
    pub(crate) services: &'a Services,
}

fn missing(field: &'static str) -> ServiceError {
    ServiceError::invalid(
        field,
        format!("Missing value for required parameter '{field}'."),
    )
}

fn required<'a>(value: &'a Option<String>, field: &'static str) -> ServiceResult<&'a str> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing(field))
}

fn millis(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_millis()
}

/// The MLflow id of a project.
fn experiment_id(project_id: i64, owner: &str, name: &str) -> String {
    if owner == DEFAULT_OWNER && name == DEFAULT_PROJECT {
        DEFAULT_EXPERIMENT_ID.to_owned()
    } else {
        project_id.to_string()
    }
}

/// The MLflow name of a project.
fn experiment_name(project: &ProjectRow) -> String {
    match &project.experiment_name {
        Some(name) => name.clone(),
        None if project.owner == DEFAULT_OWNER => project.name.clone(),
        None => format!("{}/{}", project.owner, project.name),
    }
}

/// A project name made from an experiment name: lowercase, other
/// characters as `-`, at most 64 bytes.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '_');
    let out: String = out.chars().take(56).collect();
    if out.is_empty() {
        "experiment".to_owned()
    } else {
        out
    }
}

fn parse_run_id(id: &str) -> ServiceResult<Uuid> {
    id.parse::<Uuid>().map_err(|_| ServiceError::NotFound {
        entity: "run",
        id: id.to_owned(),
    })
}

fn run_id_of(run_id: &Option<String>, run_uuid: &Option<String>) -> ServiceResult<String> {
    run_id
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| run_uuid.clone().filter(|s| !s.is_empty()))
        .ok_or_else(|| missing("run_id"))
}

fn point(m: &ml::NewMetric, now_ms: i64) -> ServiceResult<NewPoint> {
    let key = required(&m.key, "key")?;
    let value = m.value.ok_or_else(|| missing("value"))?;
    let timestamp = m.timestamp.unwrap_or(now_ms);
    if timestamp < 0 {
        return Err(ServiceError::invalid(
            "timestamp",
            format!(
                "Invalid value {timestamp} for parameter 'timestamp': metric '{key}' timestamp must be a nonnegative long (64-bit integer)"
            ),
        ));
    }
    Ok(NewPoint {
        key: key.to_owned(),
        step: m.step.unwrap_or(0),
        timestamp,
        value,
    })
}

fn view_type(raw: Option<&str>) -> ServiceResult<ViewType> {
    match raw.unwrap_or("ACTIVE_ONLY") {
        "ACTIVE_ONLY" | "1" => Ok(ViewType::ActiveOnly),
        "DELETED_ONLY" | "2" => Ok(ViewType::DeletedOnly),
        "ALL" | "3" => Ok(ViewType::All),
        other => Err(ServiceError::invalid(
            "view_type",
            format!("Invalid view type '{other}'; use ACTIVE_ONLY, DELETED_ONLY or ALL"),
        )),
    }
}

fn page_size(raw: Option<i64>, default: u32, max: u32) -> ServiceResult<u32> {
    match raw {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(n) => Err(ServiceError::invalid(
            "max_results",
            format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be between 1 and {max}."
            ),
        )),
    }
}

fn page_offset(token: Option<&str>) -> ServiceResult<u64> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => search::parse_page_token(t).map_err(|e| ServiceError::invalid("page_token", e)),
    }
}

impl Mlflow<'_> {
    // ---- experiments ----

    async fn project_row(&self, id: &str) -> ServiceResult<ProjectRow> {
        let not_found = || ServiceError::NotFound {
            entity: "experiment",
            id: id.to_owned(),
        };
        if id == DEFAULT_EXPERIMENT_ID {
            return self.default_project().await;
        }
        let id: i64 = id.parse().map_err(|_| not_found())?;
        projects::find_by_id(&self.services.db, id)
            .await?
            .ok_or_else(not_found)
    }

    /// The Default experiment's project, created when first asked for.
    async fn default_project(&self) -> ServiceResult<ProjectRow> {
        for _ in 0..2 {
            if let Some(project) =
                projects::find(&self.services.db, DEFAULT_OWNER, DEFAULT_PROJECT).await?
            {
                return Ok(project);
            }
            let created = projects::insert(
                &self.services.db,
                &NewProject {
                    uuid: Uuid::new_v4(),
                    owner: DEFAULT_OWNER,
                    name: DEFAULT_PROJECT,
                    description: "MLflow's Default experiment",
                    tags: &[],
                    experiment_name: Some("Default"),
                    now: self.services.now(),
                },
            )
            .await;
            match created {
                Ok(project) => return Ok(project),
                // Another request created it first: read it again.
                Err(DbError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict(
            "the Default experiment could not be created".into(),
        ))
    }

    async fn experiment_dto(&self, project: &ProjectRow) -> ServiceResult<ml::Experiment> {
        let id = experiment_id(project.id, &project.owner, &project.name);
        let tags = projects::tags(&self.services.db, project.id).await?;
        Ok(ml::Experiment {
            artifact_location: format!("mlflow-artifacts:/{id}"),
            experiment_id: id,
            name: experiment_name(project),
            lifecycle_stage: if project.deleted_at.is_some() {
                "deleted"
            } else {
                "active"
            }
            .to_owned(),
            last_update_time: millis(project.updated_at),
            creation_time: millis(project.created_at),
            tags: tags
                .into_iter()
                .map(|(key, value)| ml::KeyValue {
                    key: Some(key),
                    value: Some(value),
                })
                .collect(),
        })
    }

    /// `experiments/create`: the new experiment's id.
    pub async fn create_experiment(&self, input: ml::CreateExperiment) -> ServiceResult<String> {
        let name = required(&input.name, "name")?.trim().to_owned();
        if name.is_empty() {
            return Err(missing("name"));
        }
        if name.chars().count() > MAX_EXPERIMENT_NAME_LEN {
            return Err(ServiceError::invalid(
                "name",
                format!("Experiment name exceeds the maximum length of {MAX_EXPERIMENT_NAME_LEN}"),
            ));
        }
        for tag in &input.tags {
            required(&tag.key, "tags.key")?;
        }
        if self.find_by_name(&name).await?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "Experiment(name={name}) already exists."
            )));
        }
        // `owner/project` names a project of that owner; any other name
        // lives under the default owner, as itself when it is a valid
        // project name, else as a slug.
        let (owner, base, experiment_name) = match name.split_once('/') {
            Some((o, p)) if Name::parse(o).is_ok() && Name::parse(p).is_ok() => {
                (o.to_owned(), p.to_owned(), None)
            }
            _ if Name::parse(&name).is_ok() => (DEFAULT_OWNER.to_owned(), name.clone(), None),
            _ => (DEFAULT_OWNER.to_owned(), slug(&name), Some(name.clone())),
        };
        let mut attempt = 1;
        let project = loop {
            let candidate = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            if Name::parse(&candidate).is_err() && attempt < 100 {
                attempt += 1;
                continue;
            }
            let experiment_name = experiment_name
                .clone()
                .or_else(|| (candidate != base).then(|| name.clone()));
            let created = projects::insert(
                &self.services.db,
                &NewProject {
                    uuid: Uuid::new_v4(),
                    owner: &owner,
                    name: &candidate,
                    description: "",
                    tags: &[],
                    experiment_name: experiment_name.as_deref(),
                    now: self.services.now(),
                },
            )
            .await;
            match created {
                Ok(project) => break project,
                Err(DbError::Conflict) if attempt < 100 => attempt += 1,
                Err(DbError::Conflict) => {
                    return Err(ServiceError::Conflict(format!(
                        "Experiment(name={name}) already exists."
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        };
        for tag in input.tags {
            let (Some(key), value) = (tag.key, tag.value) else {
                continue;
            };
            projects::set_tag(
                &self.services.db,
                project.id,
                &key,
                &value.unwrap_or_default(),
            )
            .await?;
        }
        Ok(experiment_id(project.id, &project.owner, &project.name))
    }

    async fn find_by_name(&self, name: &str) -> ServiceResult<Option<ProjectRow>> {
        if name == "Default" {
            return self.default_project().await.map(Some);
        }
        if let Some(project) =
            projects::find_by_experiment_name(&self.services.db, DEFAULT_OWNER, name).await?
        {
            return Ok(Some(project));
        }
        if let Some((owner, project)) = name.split_once('/')
            && let Some(row) = projects::find(&self.services.db, owner, project).await?
            && row.experiment_name.is_none()
        {
            return Ok(Some(row));
        }
        Ok(None)
    }

    /// `experiments/get`.
    pub async fn get_experiment(&self, id: &str) -> ServiceResult<ml::Experiment> {
        let project = self.project_row(id).await?;
        self.experiment_dto(&project).await
    }

    /// `experiments/get-by-name`.
    pub async fn get_experiment_by_name(&self, name: &str) -> ServiceResult<ml::Experiment> {
        let project = self
            .find_by_name(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                entity: "experiment",
                id: name.to_owned(),
            })?;
        self.experiment_dto(&project).await
    }

    /// `experiments/search`: experiments by id, paged. Filters on name
    /// (`name = 'x'`, `name LIKE '%x%'`) are applied; other filters are
    /// refused.
    pub async fn search_experiments(
        &self,
        input: ml::SearchExperiments,
    ) -> ServiceResult<(Vec<ml::Experiment>, Option<String>)> {
        let view = view_type(input.view_type.as_deref())?;
        let limit = page_size(input.max_results, 1000, 50_000)?;
        let offset = page_offset(input.page_token.as_deref())?;
        let name_filter = parse_name_filter(input.filter.as_deref().unwrap_or(""))?;
        if view != ViewType::DeletedOnly {
            // Make sure the Default experiment exists, as MLflow's does.
            self.default_project().await?;
        }
        let mut out = Vec::new();
        let mut scanned = 0_u64;
        let mut skipped = 0_u64;
        loop {
            let rows = projects::list_all(&self.services.db, view, 500, scanned).await?;
            if rows.is_empty() {
                break;
            }
            scanned += rows.len() as u64;
            for project in rows {
                let name = experiment_name(&project);
                if !name_filter.as_ref().is_none_or(|f| f(&name)) {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                if out.len() as u32 == limit {
                    return Ok((out, Some(search::page_token(offset + u64::from(limit)))));
                }
                out.push(self.experiment_dto(&project).await?);
            }
        }
        Ok((out, None))
    }

    /// `experiments/update`: renames an experiment.
    pub async fn update_experiment(&self, input: ml::UpdateExperiment) -> ServiceResult<()> {
        let id = required(&input.experiment_id, "experiment_id")?;
        let new_name = required(&input.new_name, "new_name")?.trim().to_owned();
        let project = self.project_row(id).await?;
        if let Some(other) = self.find_by_name(&new_name).await?
            && other.id != project.id
        {
            return Err(ServiceError::Conflict(format!(
                "Experiment(name={new_name}) already exists."
            )));
        }
        // The project keeps its URL; only the experiment name changes.
        let keep = Some(new_name.as_str()).filter(|n| *n != project.name);
        projects::rename_experiment(
            &self.services.db,
            project.id,
            &project.name,
            keep,
            self.services.now(),
        )
        .await?;
        Ok(())
    }

    /// `experiments/delete` (`deleted`) and `experiments/restore`.
    pub async fn set_experiment_deleted(
        &self,
        id: Option<&str>,
        deleted: bool,
    ) -> ServiceResult<()> {
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| missing("experiment_id"))?;
        if deleted && id == DEFAULT_EXPERIMENT_ID {
            return Err(ServiceError::invalid(
                "experiment_id",
                "Cannot delete the default experiment '0'.",
            ));
        }
        let project = self.project_row(id).await?;
        let at = deleted.then(|| self.services.now());
        projects::set_deleted(&self.services.db, project.id, at).await?;
        Ok(())
    }

    /// `experiments/set-experiment-tag`.
    pub async fn set_experiment_tag(&self, input: ml::SetExperimentTag) -> ServiceResult<()> {
        let id = required(&input.experiment_id, "experiment_id")?;
        let key = required(&input.key, "key")?;
        trellis_domain::tracking::check_key("tag", key)
            .map_err(|e| ServiceError::invalid("key", e))?;
        let project = self.project_row(id).await?;
        projects::set_tag(
            &self.services.db,
            project.id,
            key,
            input.value.as_deref().unwrap_or(""),
        )
        .await?;
        Ok(())
    }

    // ---- runs ----

    /// The run `id` names (32 hex digits, or a uuid).
    pub(crate) async fn run_row(&self, id: &str) -> ServiceResult<RunRow> {
        let uuid = parse_run_id(id)?;
        runs::find_any(&self.services.db, uuid)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                entity: "run",
                id: id.to_owned(),
            })
    }

    async fn run_dtos(&self, rows: Vec<RunRow>) -> ServiceResult<Vec<ml::Run>> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut summaries: BTreeMap<i64, Vec<ml::Metric>> = BTreeMap::new();
        for (run_id, latest) in tracking::latest(&self.services.db, &ids).await? {
            let metrics = latest.into_iter().map(|m| ml::Metric {
                key: m.key,
                value: ml::double_json(m.value.read()),
                timestamp: m.timestamp,
                step: m.step,
            });
            summaries.insert(run_id, metrics.collect());
        }
        let mut tags: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
        for (run_id, key, value) in tracking::tags(&self.services.db, &ids).await? {
            tags.entry(run_id).or_default().push((key, value));
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let metrics = summaries.remove(&row.id).unwrap_or_default();
                let tags = tags.remove(&row.id).unwrap_or_default();
                run_dto(row, metrics, tags)
            })
            .collect())
    }

    async fn run_dto(&self, row: RunRow) -> ServiceResult<ml::Run> {
        let mut dtos = self.run_dtos(vec![row]).await?;
        dtos.pop()
            .ok_or_else(|| ServiceError::Dependency("a run vanished while being read".into()))
    }

    /// `runs/create`: a run the client executes itself, `running` at once.
    pub async fn create_run(&self, input: ml::CreateRun) -> ServiceResult<ml::Run> {
        let experiment = input
            .experiment_id
            .as_deref()
            .filter(|e| !e.is_empty())
            .unwrap_or(DEFAULT_EXPERIMENT_ID);
        let project = self.project_row(experiment).await?;
        if project.deleted_at.is_some() {
            return Err(ServiceError::invalid(
                "experiment_id",
                format!(
                    "The experiment {experiment} must be in the 'active' state. Current state is deleted."
                ),
            ));
        }
        let mut batch_tags: Vec<(String, String)> = Vec::new();
        for tag in &input.tags {
            let key = required(&tag.key, "tags.key")?;
            batch_tags.push((key.to_owned(), tag.value.clone().unwrap_or_default()));
        }
        if let Some(user) = input.user_id.as_deref().filter(|u| !u.is_empty())
            && !batch_tags.iter().any(|(k, _)| k == "mlflow.user")
        {
            batch_tags.push(("mlflow.user".to_owned(), user.to_owned()));
        }
        let tag_name = batch_tags
            .iter()
            .find(|(k, _)| k == "mlflow.runName")
            .map(|(_, v)| v.clone());
        let name = input
            .run_name
            .clone()
            .filter(|n| !n.is_empty())
            .or(tag_name);
        let name = name.unwrap_or_else(|| generated_name(Uuid::new_v4()));
        check_run_name(&name).map_err(|e| ServiceError::invalid("run_name", e))?;
        if !batch_tags.iter().any(|(k, _)| k == "mlflow.runName") {
            batch_tags.push(("mlflow.runName".to_owned(), name.clone()));
        }
        // The client's start time, as MLflow records it.
        let started_at = input
            .start_time
            .and_then(chrono::DateTime::from_timestamp_millis)
            .unwrap_or_else(|| self.services.now());
        let row = self
            .services
            .runs()
            .create_in(
                &project,
                api::CreateRun {
                    name: Some(name),
                    ..api::CreateRun::default()
                },
                Origin::Tracked { started_at },
            )
            .await?;
        self.services
            .tracking()
            .log_batch(
                &row,
                Batch {
                    tags: batch_tags,
                    ..Batch::default()
                },
            )
            .await?;
        let row = self.run_row(&row.uuid.simple().to_string()).await?;
        self.run_dto(row).await
    }

    /// `runs/get`.
    pub async fn get_run(&self, id: &str) -> ServiceResult<ml::Run> {
        let row = self.run_row(id).await?;
        self.run_dto(row).await
    }

    /// `runs/update`: status, end time and name.
    pub async fn update_run(&self, input: ml::UpdateRun) -> ServiceResult<ml::RunInfo> {
        let id = run_id_of(&input.run_id, &input.run_uuid)?;
        let mut row = self.run_row(&id).await?;
        if let Some(name) = input.run_name.as_deref().filter(|n| !n.is_empty()) {
            self.services
                .tracking()
                .log_batch(
                    &row,
                    Batch {
                        tags: vec![("mlflow.runName".to_owned(), name.to_owned())],
                        ..Batch::default()
                    },
                )
                .await?;
        }
        // A run Trellis executes (it has a spec) has its lifecycle driven by
        // its executor: the client inside it ending its run (`end_run`) must
        // not mark it done before the process exits.
        let managed = row.kind.is_some();
        // When the client says its run ended (`set_terminated(end_time=)`,
        // an importer of old runs), that is the run's end time.
        let end_time = input
            .end_time
            .filter(|_| !managed)
            .map(|ms| {
                chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| {
                    ServiceError::invalid(
                        "end_time",
                        format!("Invalid value {ms} for parameter 'end_time': not a time in milliseconds"),
                    )
                })
            })
            .transpose()?;
        if let Some(status) = input
            .status
            .as_deref()
            .filter(|s| !s.is_empty() && !managed)
        {
            let status = MlflowStatus::parse(status).ok_or_else(|| {
                ServiceError::invalid(
                    "status",
                    format!("Invalid value '{status}' for parameter 'status'"),
                )
            })?;
            if MlflowStatus::of(row.status) != status {
                let reason = "MlflowClient";
                // A client finishing its own run: through `running` when it
                // never started, so the timings are the client's.
                if status.target().is_done() && row.status.is_pending() {
                    self.services
                        .runs()
                        .advance(row.uuid, RunStatus::Running, reason, None)
                        .await?;
                }
                let runs = self.services.runs();
                let moved = match end_time.filter(|_| status.target().is_done()) {
                    Some(at) => {
                        runs.advance_at(row.uuid, status.target(), reason, at)
                            .await?
                    }
                    None => {
                        runs.advance(row.uuid, status.target(), reason, None)
                            .await?
                    }
                };
                if moved.is_none() {
                    return Err(ServiceError::invalid(
                        "status",
                        format!(
                            "run {} is {} and cannot become {}",
                            row.uuid.simple(),
                            row.status,
                            status.as_str()
                        ),
                    ));
                }
            }
        }
        row = self.run_row(&id).await?;
        // Already finished (before this request, or by it): keep the
        // client's end time.
        if let Some(at) = end_time
            && row.status.is_done()
            && row.timing.finished_at != Some(at)
        {
            let timing = row.timing.apply(row.status, at);
            tracking::set_finished_at(&self.services.db, row.id, row.status, at, timing.duration)
                .await?;
            row = self.run_row(&id).await?;
        }
        Ok(self.run_dto(row).await?.info)
    }

    /// `runs/delete` (`deleted`) and `runs/restore`.
    pub async fn set_run_deleted(&self, id: Option<&str>, deleted: bool) -> ServiceResult<()> {
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| missing("run_id"))?;
        let row = self.run_row(id).await?;
        tracking::set_run_deleted(
            &self.services.db,
            row.id,
            deleted.then(|| self.services.now()),
        )
        .await?;
        Ok(())
    }

    /// `runs/search`.
    pub async fn search_runs(
        &self,
        input: ml::SearchRuns,
    ) -> ServiceResult<(Vec<ml::Run>, Option<String>)> {
        let view = view_type(input.run_view_type.as_deref())?;
        let limit = page_size(
            input.max_results,
            search::DEFAULT_SEARCH_RESULTS,
            search::MAX_SEARCH_RESULTS,
        )?;
        let offset = page_offset(input.page_token.as_deref())?;
        let clauses = search::parse_filter(input.filter.as_deref().unwrap_or(""))
            .map_err(|e| ServiceError::invalid("filter", e))?;
        let order = input
            .order_by
            .iter()
            .map(|o| search::parse_order_key(o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::invalid("order_by", e))?;
        let mut project_ids = Vec::with_capacity(input.experiment_ids.len());
        for id in &input.experiment_ids {
            match self.project_row(id).await {
                Ok(project) => project_ids.push(project.id),
                // MLflow returns no runs for an unknown experiment id.
                Err(ServiceError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // One more than the page tells whether another page follows.
        let mut rows = trellis_db::mlflow::search_runs(
            &self.services.db,
            &project_ids,
            view,
            &clauses,
            &order,
            limit + 1,
            offset,
        )
        .await?;
        let next =
            (rows.len() > limit as usize).then(|| search::page_token(offset + u64::from(limit)));
        rows.truncate(limit as usize);
        Ok((self.run_dtos(rows).await?, next))
    }

    /// `runs/log-metric`.
    pub async fn log_metric(&self, input: ml::LogMetric) -> ServiceResult<()> {
        let id = run_id_of(&input.run_id, &input.run_uuid)?;
        let run = self.run_row(&id).await?;
        let point = point(&input.metric, self.services.now().timestamp_millis())?;
        self.log(
            &run,
            Batch {
                metrics: vec![point],
                ..Batch::default()
            },
        )
        .await
    }

    /// `runs/log-parameter`.
    pub async fn log_param(&self, input: ml::LogKeyValue) -> ServiceResult<()> {
        let id = run_id_of(&input.run_id, &input.run_uuid)?;
        let key = required(&input.key, "key")?.to_owned();
        let value = input.value.clone().ok_or_else(|| missing("value"))?;
        let run = self.run_row(&id).await?;
        self.log(
            &run,
            Batch {
                params: vec![(key, value.into())],
                ..Batch::default()
            },
        )
        .await
    }

    /// `runs/set-tag`.
    pub async fn set_tag(&self, input: ml::LogKeyValue) -> ServiceResult<()> {
        let id = run_id_of(&input.run_id, &input.run_uuid)?;
        let key = required(&input.key, "key")?.to_owned();
        let run = self.run_row(&id).await?;
        self.log(
            &run,
            Batch {
                tags: vec![(key, input.value.unwrap_or_default())],
                ..Batch::default()
            },
        )
        .await
    }

    /// `runs/delete-tag`.
    pub async fn delete_tag(&self, input: ml::DeleteTag) -> ServiceResult<()> {
        let id = required(&input.run_id, "run_id")?;
        let key = required(&input.key, "key")?;
        let run = self.run_row(id).await?;
        if !tracking::delete_tag(&self.services.db, run.id, key).await? {
            return Err(ServiceError::NotFound {
                entity: "tag",
                id: format!("No tag with name: {key} in run with id {id}"),
            });
        }
        Ok(())
    }

    /// `runs/log-batch`: all of it or nothing.
    pub async fn log_batch(&self, input: ml::LogBatch) -> ServiceResult<()> {
        let id = required(&input.run_id, "run_id")?;
        let total = input.metrics.len() + input.params.len() + input.tags.len();
        trellis_domain::tracking::check_batch(
            "entities (metrics, params and tags)",
            total,
            MAX_ENTITIES_PER_BATCH,
        )
        .map_err(|e| ServiceError::invalid("metrics", e))?;
        let now = self.services.now().timestamp_millis();
        let metrics = input
            .metrics
            .iter()
            .map(|m| point(m, now))
            .collect::<ServiceResult<Vec<_>>>()?;
        let mut params = Vec::with_capacity(input.params.len());
        for p in &input.params {
            let key = required(&p.key, "params.key")?;
            params.push((
                key.to_owned(),
                serde_json::Value::String(p.value.clone().unwrap_or_default()),
            ));
        }
        let mut tags = Vec::with_capacity(input.tags.len());
        for t in &input.tags {
            let key = required(&t.key, "tags.key")?;
            tags.push((key.to_owned(), t.value.clone().unwrap_or_default()));
        }
        let run = self.run_row(id).await?;
        self.log(
            &run,
            Batch {
                metrics,
                params,
                tags,
                name: None,
            },
        )
        .await
    }

    /// `runs/log-inputs`: dataset inputs, kept with the run.
    pub async fn log_inputs(&self, input: ml::LogInputs) -> ServiceResult<()> {
        let id = required(&input.run_id, "run_id")?;
        let run = self.run_row(id).await?;
        if input.datasets.is_empty() {
            return Ok(());
        }
        let existing = tracking::tags(&self.services.db, &[run.id]).await?;
        let mut all: Vec<serde_json::Value> = existing
            .into_iter()
            .find(|(_, k, _)| k == DATASETS_TAG)
            .and_then(|(_, _, v)| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        all.extend(input.datasets);
        let value = serde_json::Value::Array(all).to_string();
        // Stored as a tag row, beyond the tag length limit of user tags.
        tracking::log_batch(
            &self.services.db,
            run.id,
            &Batch {
                tags: vec![(DATASETS_TAG.to_owned(), value)],
                ..Batch::default()
            },
            self.services.now(),
        )
        .await?
        .map_err(|c| ServiceError::invalid("params", c.key))?;
        Ok(())
    }

    async fn log(&self, run: &RunRow, batch: Batch) -> ServiceResult<()> {
        if run.deleted_at.is_some() {
            return Err(ServiceError::invalid(
                "run_id",
                format!(
                    "The run {} must be in the 'active' state. Current state is deleted.",
                    run.uuid.simple()
                ),
            ));
        }
        self.services.tracking().log_batch(run, batch).await
    }

    /// `metrics/get-history`: every point of a metric, in logging order,
    /// paged.
    pub async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        max_results: Option<i64>,
        page_token: Option<&str>,
    ) -> ServiceResult<(Vec<ml::Metric>, Option<String>)> {
        if key.is_empty() {
            return Err(missing("metric_key"));
        }
        let run = self.run_row(run_id).await?;
        let limit = page_size(max_results, 25_000, 25_000)?;
        let after = match page_token.filter(|t| !t.is_empty()) {
            None => 0,
            Some(t) => i64::try_from(
                search::parse_page_token(t).map_err(|e| ServiceError::invalid("page_token", e))?,
            )
            .unwrap_or(i64::MAX),
        };
        let mut out = Vec::new();
        let mut cursor = after;
        // Without max_results MLflow returns the whole history.
        loop {
            let page =
                tracking::history_page(&self.services.db, run.id, key, cursor, limit).await?;
            let full = page.len() as u32 == limit;
            for p in &page {
                cursor = p.id;
                out.push(ml::Metric {
                    key: key.to_owned(),
                    value: ml::double_json(p.point.value),
                    timestamp: p.point.timestamp,
                    step: p.point.step,
                });
            }
            if max_results.is_some() {
                let next = full.then(|| search::page_token(cursor as u64));
                return Ok((out, next));
            }
            if !full {
                return Ok((out, None));
            }
        }
    }

    /// `artifacts/list`: the run's artifact root URI and the entries under
    /// `path` relative to it.
    pub async fn list_artifacts(
        &self,
        run_id: &str,
        path: &str,
    ) -> ServiceResult<(String, Vec<ArtifactEntry>)> {
        let row = self.run_row(run_id).await?;
        let entries = self
            .services
            .tracking()
            .list_artifacts_of(&row, path)
            .await?;
        let root = self.run_dto(row).await?.info.artifact_uri;
        Ok((root, entries))
    }

    /// The proxied listing (`mlflow-artifacts/artifacts?path=...`).
    pub async fn proxied_list(&self, full: &str) -> ServiceResult<Vec<ArtifactEntry>> {
        let (row, inside) = self.proxied_artifact(full).await?;
        self.services
            .tracking()
            .list_artifacts_of(&row, &inside)
            .await
    }

    /// A proxied download: the file and its size.
    pub async fn proxied_open(&self, full: &str) -> ServiceResult<(tokio::fs::File, u64)> {
        let (row, inside) = self.proxied_artifact(full).await?;
        self.services
            .tracking()
            .open_artifact_of(&row, &inside)
            .await
    }

    /// A proxied upload, streamed to the store: the bytes written.
    pub async fn proxied_put<S, B, E>(&self, full: &str, body: S) -> ServiceResult<u64>
    where
        S: futures_core::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let (row, inside) = self.proxied_artifact(full).await?;
        self.services
            .tracking()
            .put_artifact_of(&row, &inside, body)
            .await
    }

    /// A proxied delete.
    pub async fn proxied_delete(&self, full: &str) -> ServiceResult<()> {
        let (row, inside) = self.proxied_artifact(full).await?;
        self.services
            .tracking()
            .delete_artifact_of(&row, &inside)
            .await
    }

    /// The run and the path inside its artifacts that a proxied artifact
    /// path (`{experiment}/{run}/artifacts/{path}`) names.
    async fn proxied_artifact(&self, full: &str) -> ServiceResult<(RunRow, String)> {
        let mut parts = full.trim_start_matches('/').splitn(4, '/');
        let (_experiment, run, artifacts, rest) =
            (parts.next(), parts.next(), parts.next(), parts.next());
        let (Some(run), Some("artifacts")) = (run, artifacts) else {
            return Err(ServiceError::invalid(
                "path",
                format!("artifact path `{full}` is not `<experiment>/<run>/artifacts/<path>`"),
            ));
        };
        let row = self.run_row(run).await?;
        Ok((row, rest.unwrap_or("").to_owned()))
    }
}

/// A name for a run created without one, as MLflow gives them.
fn generated_name(seed: Uuid) -> String {
    const ADJECTIVES: &[&str] = &[
        "brave", "calm", "eager", "gentle", "keen", "lucky", "quick", "bold", "bright", "clever",
    ];
    const NOUNS: &[&str] = &[
        "otter", "falcon", "lynx", "heron", "panda", "fox", "whale", "crane", "moth", "owl",
    ];
    let bytes = seed.as_bytes();
    format!(
        "{}-{}-{}",
        ADJECTIVES[usize::from(bytes[0]) % ADJECTIVES.len()],
        NOUNS[usize::from(bytes[1]) % NOUNS.len()],
        u16::from_be_bytes([bytes[2], bytes[3]]) % 1000
    )
}

fn run_dto(row: RunRow, metrics: Vec<ml::Metric>, tags: Vec<(String, String)>) -> ml::Run {
    let experiment = experiment_id(row.project_id, &row.owner, &row.project);
    let run_id = row.uuid.simple().to_string();
    let user = tags
        .iter()
        .find(|(k, _)| k == "mlflow.user")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let datasets: serde_json::Value = tags
        .iter()
        .find(|(k, _)| k == DATASETS_TAG)
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or_else(|| serde_json::json!([]));
    let name = row.name.clone().unwrap_or_default();
    let mut tags: Vec<ml::KeyValue> = tags
        .into_iter()
        .filter(|(k, _)| k != DATASETS_TAG && k != "mlflow.runName")
        .map(|(key, value)| ml::KeyValue {
            key: Some(key),
            value: Some(value),
        })
        .collect();
    if !name.is_empty() {
        tags.push(ml::KeyValue {
            key: Some("mlflow.runName".into()),
            value: Some(name.clone()),
        });
    }
    let params = row
        .inputs
        .iter()
        .map(|(k, v)| ml::KeyValue {
            key: Some(k.clone()),
            value: Some(tracking::param_text(v)),
        })
        .collect();
    ml::Run {
        info: ml::RunInfo {
            run_uuid: run_id.clone(),
            artifact_uri: format!("mlflow-artifacts:/{experiment}/{run_id}/artifacts"),
            run_id,
            run_name: name,
            experiment_id: experiment,
            user_id: user,
            status: MlflowStatus::of(row.status).as_str().to_owned(),
            start_time: millis(row.timing.started_at.unwrap_or(row.timing.created_at)),
            end_time: row.timing.finished_at.map(millis),
            lifecycle_stage: if row.deleted_at.is_some() {
                "deleted"
            } else {
                "active"
            }
            .to_owned(),
        },
        data: ml::RunData {
            metrics,
            params,
            tags,
        },
        inputs: serde_json::json!({ "dataset_inputs": datasets }),
    }
}

type NameFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// `name = 'x'`, `name != 'x'`, `name LIKE 'p'`, `name ILIKE 'p'` (or
/// `attribute.name`); the only experiment filters supported.
fn parse_name_filter(filter: &str) -> ServiceResult<Option<NameFilter>> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(None);
    }
    let refuse = || {
        ServiceError::invalid(
            "filter",
            format!(
                "Unsupported experiment filter '{filter}': only `name = '...'`, `name != '...'`, `name LIKE '...'` and `name ILIKE '...'` are supported"
            ),
        )
    };
    let rest = filter
        .strip_prefix("attribute.")
        .or_else(|| filter.strip_prefix("attributes."))
        .unwrap_or(filter);
    let rest = rest.strip_prefix("name").ok_or_else(refuse)?.trim_start();
    let (op, value) = if let Some(v) = rest.strip_prefix("!=") {
        ("!=", v)
    } else if let Some(v) = rest.strip_prefix('=') {
        ("=", v)
    } else if rest.len() > 5 && rest[..5].eq_ignore_ascii_case("ilike") {
        ("ilike", &rest[5..])
    } else if rest.len() > 4 && rest[..4].eq_ignore_ascii_case("like") {
        ("like", &rest[4..])
    } else {
        return Err(refuse());
    };
    let value = value.trim();
    let quoted = (value.starts_with('\'') && value.ends_with('\''))
        || (value.starts_with('"') && value.ends_with('"'));
    if !quoted || value.len() < 2 {
        return Err(refuse());
    }
    let value = value[1..value.len() - 1].to_owned();
    Ok(Some(match op {
        "=" => Box::new(move |n: &str| n == value),
        "!=" => Box::new(move |n: &str| n != value),
        "like" => Box::new(move |n: &str| search::like_matches(&value, n, false)),
        _ => Box::new(move |n: &str| search::like_matches(&value, n, true)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_project_names() {
        assert_eq!(slug("My Experiment #1"), "my-experiment-1");
        assert_eq!(slug("///"), "experiment");
        assert!(Name::parse(&slug("Ünïcode name")).is_ok());
    }

    #[test]
    fn name_filters_follow_sql_like() {
        let Ok(Some(f)) = parse_name_filter("name LIKE 'exp-%'") else {
            panic!("parse")
        };
        assert!(f("exp-1") && !f("other"));
        let Ok(Some(f)) = parse_name_filter("name ILIKE 'EXP%'") else {
            panic!("parse")
        };
        assert!(f("exp-1"));
        assert!(parse_name_filter("tags.x = 'y'").is_err());
    }
}
