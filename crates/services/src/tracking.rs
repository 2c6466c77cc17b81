//! Tracking use cases: metrics, params, outputs, tags and artifacts of a
//! run, for the native API (`/api/v1/.../runs/{uuid}/...`), the MLflow API
//! and the executor's system metrics.

use std::collections::BTreeMap;

use trellis_api_types as api;
use trellis_db::runs::RunRow;
use trellis_db::tracking::{self, Batch, NewPoint};
use trellis_domain::name::normalize_tags;
use trellis_domain::series::{self, Segment};
use trellis_domain::tracking::{
    self as rules, ArtifactPath, MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH,
    MAX_SERIES_POINTS, SYSTEM_METRIC_PREFIX, TrackingError,
};
use trellis_events::Event;

use crate::artifacts::{ArtifactEntry, ArtifactStore};
use crate::runs::RunRef;
use crate::{ServiceError, ServiceResult, Services};

/// Tracking use cases; see [`Services::tracking`].
pub struct Tracking<'a> {
    pub(crate) services: &'a Services,
}

fn invalid(field: &'static str) -> impl Fn(TrackingError) -> ServiceError {
    move |e| ServiceError::invalid(field, e)
}

/// Points per series when the caller does not say.
pub const DEFAULT_SERIES_POINTS: usize = 1000;

impl Tracking<'_> {
    fn store(&self) -> ServiceResult<&ArtifactStore> {
        self.services.artifacts.as_ref().ok_or_else(|| {
            ServiceError::Dependency("this process has no artifact store configured".into())
        })
    }

    /// Stores `batch` for `run` after checking it against MLflow's rules.
    /// A param logged before with another value refuses the whole batch.
    pub(crate) async fn log_batch(&self, run: &RunRow, mut batch: Batch) -> ServiceResult<()> {
        rules::check_batch("metrics", batch.metrics.len(), MAX_METRICS_PER_BATCH)
            .map_err(invalid("metrics"))?;
        rules::check_batch(
            "params and tags",
            batch.params.len() + batch.tags.len(),
            MAX_PARAMS_TAGS_PER_BATCH,
        )
        .map_err(invalid("params"))?;
        for p in &batch.metrics {
            rules::check_key("metric", &p.key).map_err(invalid("metrics"))?;
        }
        for (key, value) in &batch.params {
            rules::check_key("param", key).map_err(invalid("params"))?;
            rules::check_value(
                "param",
                key,
                &tracking::param_text(value),
                rules::MAX_PARAM_VALUE_LEN,
            )
            .map_err(invalid("params"))?;
        }
        // The same param twice in one batch must agree with itself too.
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (key, value) in &batch.params {
            let text = tracking::param_text(value);
            if let Some(previous) = seen.insert(key, text.clone())
                && previous != text
            {
                return Err(ServiceError::invalid(
                    "params",
                    format!(
                        "param `{key}` appears twice in the batch with different values (`{previous}`, `{text}`)"
                    ),
                ));
            }
        }
        for (key, value) in &batch.tags {
            rules::check_key("tag", key).map_err(invalid("tags"))?;
            rules::check_value("tag", key, value, rules::MAX_TAG_VALUE_LEN)
                .map_err(invalid("tags"))?;
            if key == "mlflow.runName" {
                trellis_domain::name::check_run_name(value)
                    .map_err(|e| ServiceError::invalid("tags", e))?;
                batch.name = Some(value.clone());
            }
        }
        let has_metrics = !batch.metrics.is_empty();
        match tracking::log_batch(&self.services.db, run.id, &batch, self.services.now()).await? {
            Ok(()) => {}
            Err(conflict) => {
                return Err(ServiceError::invalid(
                    "params",
                    format!(
                        "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{}'. Attempted logging new value '{}'.",
                        conflict.key,
                        conflict.old,
                        run.uuid.simple(),
                        conflict.new
                    ),
                ));
            }
        }
        if has_metrics {
            self.services
                .events
                .publish(Event::Metrics {
                    run: run.uuid,
                    project_id: run.project_id,
                })
                .await;
        }
        Ok(())
    }

    /// `POST .../metrics`: finite values only, under user keys.
    pub async fn log_metrics(&self, at: RunRef<'_>, input: api::LogMetrics) -> ServiceResult<()> {
        let run = self.services.runs().row(at).await?;
        let now = self.services.now().timestamp_millis();
        let mut metrics = Vec::with_capacity(input.metrics.len());
        for m in input.metrics {
            if !m.value.is_finite() {
                return Err(ServiceError::invalid(
                    "metrics",
                    TrackingError::NotFinite {
                        key: m.key,
                        value: m.value.to_string(),
                    },
                ));
            }
            if m.key.starts_with(SYSTEM_METRIC_PREFIX) {
                return Err(ServiceError::invalid(
                    "metrics",
                    TrackingError::ReservedKey { key: m.key },
                ));
            }
            metrics.push(NewPoint {
                key: m.key,
                step: m.step.unwrap_or(0),
                timestamp: m.timestamp.unwrap_or(now),
                value: m.value,
            });
        }
        self.log_batch(
            &run,
            Batch {
                metrics,
                ..Batch::default()
            },
        )
        .await
    }

    /// System metrics sampled by an executor for `run` (keys under
    /// [`SYSTEM_METRIC_PREFIX`]).
    pub(crate) async fn log_system_metrics(
        &self,
        run: &RunRow,
        metrics: Vec<NewPoint>,
    ) -> ServiceResult<()> {
        self.log_batch(
            run,
            Batch {
                metrics,
                ..Batch::default()
            },
        )
        .await
    }

    /// `POST .../params`: scalar values; a param may be logged again only
    /// with the same value.
    pub async fn log_params(&self, at: RunRef<'_>, input: api::LogParams) -> ServiceResult<()> {
        let run = self.services.runs().row(at).await?;
        for (key, value) in &input.params {
            if value.is_object() || value.is_array() {
                return Err(ServiceError::invalid(
                    "params",
                    format!("param `{key}` must be a string, number, boolean or null"),
                ));
            }
        }
        self.log_batch(
            &run,
            Batch {
                params: input.params.into_iter().collect(),
                ..Batch::default()
            },
        )
        .await
    }

    /// `POST .../outputs`: merged into the run's outputs.
    pub async fn log_outputs(&self, at: RunRef<'_>, input: api::LogOutputs) -> ServiceResult<()> {
        let run = self.services.runs().row(at).await?;
        for key in input.outputs.keys() {
            rules::check_key("output", key).map_err(invalid("outputs"))?;
        }
        trellis_db::runs::merge_outputs(
            &self.services.db,
            run.id,
            &input.outputs,
            self.services.now(),
        )
        .await?;
        Ok(())
    }

    /// `POST .../tags`: added to the run's tags.
    pub async fn log_tags(&self, at: RunRef<'_>, input: api::LogTags) -> ServiceResult<api::Run> {
        let run = self.services.runs().row(at).await?;
        let mut tags = run.tags.clone();
        tags.extend(input.tags);
        let tags = normalize_tags(&tags).map_err(|e| ServiceError::invalid("tags", e))?;
        self.services
            .runs()
            .update(
                at,
                api::UpdateRun {
                    name: None,
                    description: None,
                    tags: Some(tags),
                },
            )
            .await
    }

    /// `GET .../metrics`: every metric's summary.
    pub async fn summaries(&self, at: RunRef<'_>) -> ServiceResult<api::RunMetrics> {
        let run = self.services.runs().row(at).await?;
        let rows = tracking::summaries(&self.services.db, &[run.id], None).await?;
        Ok(api::RunMetrics {
            metrics: rows.into_iter().map(summary_dto).collect(),
        })
    }

    /// Every metric of the run at `at` with its series downsampled to about
    /// `points` points, for the run page.
    pub async fn overview(
        &self,
        at: RunRef<'_>,
        points: usize,
    ) -> ServiceResult<Vec<api::MetricOverview>> {
        let run = self.services.runs().row(at).await?;
        let summaries = tracking::summaries(&self.services.db, &[run.id], None).await?;
        let mut out = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let series = self
                .series_of(&run, &summary.key, Some(points), None)
                .await?;
            out.push(api::MetricOverview {
                summary: summary_dto(summary),
                series,
            });
        }
        Ok(out)
    }

    /// Param, output and metric names of the newest `recent` runs of a
    /// project.
    pub async fn fields(
        &self,
        owner: &str,
        project: &str,
        recent: u32,
    ) -> ServiceResult<api::ProjectFields> {
        let project = crate::projects::load(self.services, owner, project).await?;
        let fields =
            trellis_db::fields::project_fields(&self.services.db, project.id, recent).await?;
        Ok(api::ProjectFields {
            params: fields.params,
            outputs: fields.outputs,
            metrics: fields.metrics,
        })
    }

    /// The metric summaries of runs `uuids` of a project, in the order
    /// given; unknown runs are left out.
    pub async fn summaries_of(
        &self,
        owner: &str,
        project: &str,
        uuids: &[uuid::Uuid],
    ) -> ServiceResult<Vec<api::RunMetricSummaries>> {
        let project = crate::projects::load(self.services, owner, project).await?;
        let db = &self.services.db;
        let ids = trellis_db::fields::run_ids(db, project.id, uuids).await?;
        let id_list: Vec<i64> = ids.iter().map(|(_, id)| *id).collect();
        let mut by_run: BTreeMap<i64, Vec<api::MetricSummary>> = BTreeMap::new();
        for s in tracking::summaries(db, &id_list, None).await? {
            by_run.entry(s.run_id).or_default().push(summary_dto(s));
        }
        Ok(uuids
            .iter()
            .filter_map(|uuid| {
                let (_, id) = ids.iter().find(|(u, _)| u == uuid)?;
                Some(api::RunMetricSummaries {
                    run: *uuid,
                    metrics: by_run.remove(id).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// One metric of `run`, downsampled to about `points`, in `steps`.
    pub async fn series_of(
        &self,
        run: &RunRow,
        key: &str,
        points: Option<usize>,
        steps: Option<(i64, i64)>,
    ) -> ServiceResult<api::MetricSeries> {
        let target = points.unwrap_or(DEFAULT_SERIES_POINTS);
        if !(1..=MAX_SERIES_POINTS).contains(&target) {
            return Err(ServiceError::invalid(
                "points",
                format!("points must be between 1 and {MAX_SERIES_POINTS}, got {target}"),
            ));
        }
        if let Some((low, high)) = steps
            && low > high
        {
            return Err(ServiceError::invalid(
                "min_step",
                format!("min_step ({low}) is above max_step ({high})"),
            ));
        }
        let db = &self.services.db;
        let range = match steps {
            Some(range) => Some(range),
            None => trellis_db::series::step_range(db, run.id, key).await?,
        };
        // Read the range as planned: raw points where it is short, buckets
        // (min and max with their steps) where it is long; the segments
        // tile it, so its extremes are in what is read.
        let mut all: Vec<rules::Point> = Vec::new();
        let mut total = 0_u64;
        let mut reduced_already = false;
        for segment in range.map_or_else(Vec::new, |(low, high)| series::plan(low, high, target)) {
            match segment {
                Segment::Raw { from, to } => {
                    let raw = trellis_db::series::raw(db, run.id, key, from, to).await?;
                    total += raw.len() as u64;
                    all.extend(raw.iter().map(|p| p.point));
                }
                Segment::Buckets { level, from, to } => {
                    let buckets =
                        trellis_db::series::buckets(db, run.id, key, level, from, to).await?;
                    reduced_already |= !buckets.is_empty();
                    for bucket in buckets {
                        total += u64::try_from(bucket.count).unwrap_or(0);
                        all.extend(bucket.points());
                    }
                }
            }
        }
        let reduced = rules::downsample(&all, target);
        Ok(api::MetricSeries {
            run: run.uuid,
            key: key.to_owned(),
            total,
            downsampled: reduced_already || reduced.len() < all.len(),
            origin: run
                .timing
                .started_at
                .unwrap_or(run.timing.created_at)
                .timestamp_millis(),
            points: reduced
                .into_iter()
                .map(|p| api::SeriesPoint {
                    step: p.step,
                    timestamp: p.timestamp,
                    value: (!p.value.is_nan()).then_some(p.value),
                })
                .collect(),
        })
    }

    /// `GET .../metrics/{key}`.
    pub async fn series(
        &self,
        at: RunRef<'_>,
        key: &str,
        points: Option<usize>,
        steps: Option<(i64, i64)>,
    ) -> ServiceResult<api::MetricSeries> {
        let run = self.services.runs().row(at).await?;
        self.series_of(&run, key, points, steps).await
    }

    /// `GET /{owner}/{project}/metrics/compare?runs=a,b&key=loss`: one
    /// metric of up to 100 runs of a project.
    pub async fn compare(
        &self,
        owner: &str,
        project: &str,
        runs: &[&str],
        key: &str,
        points: Option<usize>,
        steps: Option<(i64, i64)>,
    ) -> ServiceResult<api::MetricComparison> {
        if runs.is_empty() || runs.len() > 100 {
            return Err(ServiceError::invalid(
                "runs",
                format!("compare 1 to 100 runs, got {}", runs.len()),
            ));
        }
        let mut series = Vec::with_capacity(runs.len());
        for uuid in runs {
            let run = self
                .services
                .runs()
                .row(RunRef {
                    owner,
                    project,
                    uuid,
                })
                .await?;
            series.push(self.series_of(&run, key, points, steps).await?);
        }
        Ok(api::MetricComparison {
            key: key.to_owned(),
            series,
        })
    }

    /// Streams `body` into artifact `path` of the run at `at`.
    pub async fn put_artifact<S, B, E>(
        &self,
        at: RunRef<'_>,
        path: &str,
        body: S,
    ) -> ServiceResult<api::ArtifactUploaded>
    where
        S: futures_core::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let run = self.services.runs().row(at).await?;
        let path = ArtifactPath::parse(path).map_err(|e| ServiceError::invalid("path", e))?;
        let size = self.store()?.put(run.uuid, &path, body).await?;
        Ok(api::ArtifactUploaded {
            path: path.to_string(),
            size,
        })
    }

    /// [`Tracking::put_artifact`] for a run already loaded (MLflow).
    pub(crate) async fn put_artifact_of<S, B, E>(
        &self,
        run: &RunRow,
        path: &str,
        body: S,
    ) -> ServiceResult<u64>
    where
        S: futures_core::Stream<Item = Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let path = ArtifactPath::parse(path).map_err(|e| ServiceError::invalid("path", e))?;
        self.store()?.put(run.uuid, &path, body).await
    }

    /// Opens artifact `path` of `run` for streaming, with its size.
    pub(crate) async fn open_artifact_of(
        &self,
        run: &RunRow,
        path: &str,
    ) -> ServiceResult<(tokio::fs::File, u64)> {
        let path = ArtifactPath::parse(path).map_err(|e| ServiceError::invalid("path", e))?;
        self.store()?.open(run.uuid, &path).await
    }

    /// Opens artifact `path` of the run at `at`.
    pub async fn open_artifact(
        &self,
        at: RunRef<'_>,
        path: &str,
    ) -> ServiceResult<(tokio::fs::File, u64)> {
        let run = self.services.runs().row(at).await?;
        self.open_artifact_of(&run, path).await
    }

    /// The entries directly under `dir` of `run`.
    pub(crate) async fn list_artifacts_of(
        &self,
        run: &RunRow,
        dir: &str,
    ) -> ServiceResult<Vec<ArtifactEntry>> {
        let dir = ArtifactPath::parse_dir(dir).map_err(|e| ServiceError::invalid("path", e))?;
        self.store()?.list(run.uuid, dir.as_ref()).await
    }

    /// `GET .../artifacts/tree?path=dir`.
    pub async fn list_artifacts(
        &self,
        at: RunRef<'_>,
        dir: &str,
    ) -> ServiceResult<api::ArtifactTree> {
        let run = self.services.runs().row(at).await?;
        let files = self.list_artifacts_of(&run, dir).await?;
        Ok(api::ArtifactTree {
            path: dir.trim_matches('/').to_owned(),
            files: files
                .into_iter()
                .map(|e| api::ArtifactFile {
                    path: e.path,
                    is_dir: e.is_dir,
                    size: e.size,
                })
                .collect(),
        })
    }

    /// Deletes artifact file or directory `path` of the run at `at`.
    pub async fn delete_artifact(&self, at: RunRef<'_>, path: &str) -> ServiceResult<()> {
        let run = self.services.runs().row(at).await?;
        self.delete_artifact_of(&run, path).await
    }

    /// Deletes artifact file or directory `path` of `run`.
    pub(crate) async fn delete_artifact_of(&self, run: &RunRow, path: &str) -> ServiceResult<()> {
        let parsed = ArtifactPath::parse(path).map_err(|e| ServiceError::invalid("path", e))?;
        if self.store()?.delete(run.uuid, Some(&parsed)).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                entity: "artifact",
                id: path.to_owned(),
            })
        }
    }
}

fn summary_dto(s: tracking::Summary) -> api::MetricSummary {
    api::MetricSummary {
        key: s.key,
        last: (!s.last.is_nan).then_some(s.last.value),
        step: s.last_step,
        timestamp: s.last_timestamp,
        min: s.min,
        max: s.max,
        count: s.count,
    }
}
