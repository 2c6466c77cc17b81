//! Wire types of the Trellis API: what `/api/v1` accepts and returns, and
//! what the dashboard's server functions exchange.
//!
//! Shapes follow Polyaxon's API so its users find what they know: lists are
//! `{count, results, next, previous}`, runs carry `uuid`, `status`,
//! `content`, `inputs`, `outputs` and their timings. Request bodies refuse
//! unknown fields so a typo is an error, not a silently ignored field.
//! Builds for wasm32.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::run::RunKind;
use uuid::Uuid;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ListResponse<T> {
    /// Items matching the request, over all pages.
    pub count: u64,
    /// This page's items.
    pub results: Vec<T>,
    /// The URL of the next page, if any.
    pub next: Option<String>,
    /// The URL of the previous page, if any.
    pub previous: Option<String>,
}

/// A project: a named home for runs, unique per owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Project {
    pub uuid: Uuid,
    pub owner: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /api/v1/{owner}/projects/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateProject {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Body of `PATCH /api/v1/{owner}/{project}`: only the given fields change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateProject {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Run {
    pub uuid: Uuid,
    pub name: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    /// `run.kind` of the submitted spec; absent for runs tracked from outside.
    pub kind: Option<RunKind>,
    pub status: RunStatus,
    /// The project's name.
    pub project: String,
    /// The project's owner.
    pub owner: String,
    /// The spec as submitted (YAML or JSON text).
    pub content: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub inputs: serde_json::Map<String, serde_json::Value>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub outputs: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from creation to start.
    pub wait_time: Option<f64>,
    /// Seconds from start (or creation) to finish.
    pub duration: Option<f64>,
    /// The run this one restarts or copies.
    #[serde(default)]
    pub original: Option<Uuid>,
    /// `restart` or `copy`, with `original`.
    #[serde(default)]
    pub cloning_kind: Option<String>,
    /// The matrix or dag run that created this one.
    #[serde(default)]
    pub pipeline: Option<Uuid>,
    /// The dag operation this run executes.
    #[serde(default)]
    pub pipeline_op: Option<String>,
    /// The trial's index in its sweep (0, 1, ...).
    #[serde(default)]
    pub pipeline_index: Option<i64>,
}

/// A service run seen as a workspace: where to open it and how long it has
/// been up and idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Workspace {
    pub run: Run,
    /// The component it runs (`jupyterlab`, `streamlit`, a user's own).
    pub component: Option<String>,
    /// The ports its spec declares.
    pub ports: Vec<u16>,
    /// Where a browser opens it through the proxy (its first port), once it
    /// serves.
    pub url: Option<String>,
    /// Seconds since it started serving.
    pub uptime_secs: Option<u64>,
    /// Seconds since the proxy last relayed traffic to it (or since it
    /// started, when nothing was relayed yet).
    pub idle_secs: Option<u64>,
    /// `termination.culling.timeout`: stopped when idle this long.
    pub culling_secs: Option<u64>,
}

/// A built-in component of the hub (`hubRef: name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HubComponent {
    pub name: String,
    pub version: String,
    pub summary: String,
    /// The Polyaxonfile.
    pub content: String,
}

/// Body of `POST /api/v1/{owner}/{project}/runs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateRun {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The spec as submitted, YAML or JSON text.
    #[serde(default)]
    pub content: Option<String>,
    /// Params that override the spec's (`trellis run -P name=value`),
    /// checked against the component's inputs.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /api/v1/{owner}/{project}/runs/{uuid}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateRun {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// One entry of a run's append-only status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StatusCondition {
    /// The status the run entered.
    #[serde(rename = "type")]
    pub kind: RunStatus,
    /// Always `"True"`: Kubernetes-style conditions, as Polyaxon has them.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_update_time: DateTime<Utc>,
    pub last_transition_time: DateTime<Utc>,
}

/// `GET /api/v1/{owner}/{project}/runs/{uuid}/statuses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunStatuses {
    pub uuid: Uuid,
    pub status: RunStatus,
    pub status_conditions: Vec<StatusCondition>,
}

/// The condition a client reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NewCondition {
    /// The status to move the run to.
    #[serde(rename = "type")]
    pub kind: RunStatus,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// Accepted for compatibility with Polyaxon clients; must be `"True"`.
    #[serde(default)]
    pub status: Option<String>,
    /// Accepted for compatibility; the server stamps its own time.
    #[serde(default)]
    pub last_update_time: Option<DateTime<Utc>>,
    /// Accepted for compatibility; the server stamps its own time.
    #[serde(default)]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// Body of `POST /api/v1/{owner}/{project}/runs/{uuid}/statuses`. Polyaxon
/// clients also repeat the run's coordinates; they are accepted and must
/// match the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PostStatus {
    pub condition: NewCondition,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub uuid: Option<Uuid>,
}

/// One captured line of a run's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogEntry {
    /// Pass as `after` to continue after this line.
    pub cursor: i64,
    pub at: DateTime<Utc>,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// `GET /api/v1/{owner}/{project}/runs/{uuid}/logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunLogs {
    pub logs: Vec<LogEntry>,
    /// The cursor to ask from next (unchanged when no line was returned).
    pub next_cursor: i64,
    /// The run is done: once a page comes back empty, no more lines follow.
    pub done: bool,
}

/// The one error envelope of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code: `not_found`, `invalid`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `internal`.
    pub code: String,
    /// What a person should read.
    pub message: String,
    /// Extra structured context (the field, the value, ...), if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `"ok"` when the database answers.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub version: String,
}

/// A message of the project status stream
/// (`/streams/v1/{owner}/{project}/runs/statuses`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StatusStreamMessage {
    /// Run `uuid` is now `status`.
    Status { uuid: Uuid, status: RunStatus },
    /// Metric points were logged to run `uuid` (charts re-read it).
    Metrics { uuid: Uuid },
    /// Some changes were missed (the reader fell behind): re-read the list.
    Resync,
}

/// A named queue: `GET /api/v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Queue {
    pub name: String,
    /// At most this many of its runs at once.
    pub concurrency: u32,
    /// Higher starts first.
    pub priority: i32,
    /// Where its runs execute (`local`, `workers`, `kubernetes`); `null`:
    /// the scheduler's default executor.
    pub executor: Option<trellis_domain::scheduling::ExecutorName>,
    /// `config` (the scheduler's `--queue`) or `api` (defined here; wins).
    pub source: String,
    /// Runs waiting in it.
    pub queued: u64,
    /// Runs of it scheduled or executing.
    pub active: u64,
}

/// Body of `PUT /api/v1/queues/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PutQueue {
    pub concurrency: u32,
    #[serde(default)]
    pub priority: i32,
    /// Where its runs execute; absent: the scheduler's default executor.
    #[serde(default)]
    pub executor: Option<trellis_domain::scheduling::ExecutorName>,
}

pub mod mlflow;

/// One metric point sent to `POST .../runs/{uuid}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct NewMetric {
    pub key: String,
    /// A finite number.
    pub value: f64,
    /// Default 0.
    #[serde(default)]
    pub step: Option<i64>,
    /// Milliseconds since the epoch; default now.
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// Body of `POST .../runs/{uuid}/metrics`: up to 1000 points, stored in one
/// transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogMetrics {
    pub metrics: Vec<NewMetric>,
}

/// Body of `POST .../runs/{uuid}/params`: a param may be logged again only
/// with the same value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogParams {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// Body of `POST .../runs/{uuid}/outputs`: merged into the run's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogOutputs {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

/// Body of `POST .../runs/{uuid}/tags`: tags added to the run's tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogTags {
    pub tags: Vec<String>,
}

/// The latest, min and max of one of a run's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MetricSummary {
    pub key: String,
    /// The value at the largest step (`null` if it was NaN).
    pub last: Option<f64>,
    pub step: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Points logged.
    pub count: i64,
}

/// `GET .../runs/{uuid}/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunMetrics {
    pub metrics: Vec<MetricSummary>,
}

/// The names runs of a project are described by, from its newest runs:
/// what the dashboard offers as columns and query completions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProjectFields {
    pub params: Vec<String>,
    pub outputs: Vec<String>,
    pub metrics: Vec<String>,
}

/// The metric summaries of one run, among several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunMetricSummaries {
    pub run: Uuid,
    pub metrics: Vec<MetricSummary>,
}

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SeriesPoint {
    pub step: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// `null` for NaN.
    pub value: Option<f64>,
}

/// A metric's series, downsampled server-side to at most the points asked
/// for (each bucket keeps its min and max, so extremes survive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MetricSeries {
    pub run: Uuid,
    pub key: String,
    /// Points stored in the requested range.
    pub total: u64,
    /// Whether `points` is a reduction of them.
    pub downsampled: bool,
    /// Milliseconds since the epoch that relative time counts from: the
    /// run's start, or its creation if it never started.
    #[serde(default)]
    pub origin: i64,
    pub points: Vec<SeriesPoint>,
}

/// `GET .../metrics/compare`: one metric of several runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MetricComparison {
    pub key: String,
    pub series: Vec<MetricSeries>,
}

/// An artifact file or directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ArtifactFile {
    /// Relative to the run's artifact root.
    pub path: String,
    pub is_dir: bool,
    /// Bytes, for files.
    pub size: Option<u64>,
}

/// `GET .../runs/{uuid}/artifacts/tree?path=dir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ArtifactTree {
    pub path: String,
    pub files: Vec<ArtifactFile>,
}

/// `PUT .../runs/{uuid}/artifacts/files/{path}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ArtifactUploaded {
    pub path: String,
    pub size: u64,
}

/// A metric's summary with a downsampled series, for the run page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricOverview {
    pub summary: MetricSummary,
    pub series: MetricSeries,
}

/// `GET /api/v1/{owner}/{project}/runs/{uuid}/pipeline`: a matrix or dag
/// run with what it created, shaped for drawing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PipelineView {
    /// The runs it created: trials by index, operations as they started.
    pub children: Vec<Run>,
    /// A dag's operations, in file order; empty for a sweep.
    pub operations: Vec<PipelineOperation>,
    /// A sweep's settings; absent for a dag.
    pub sweep: Option<SweepSettings>,
}

/// One operation of a dag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PipelineOperation {
    pub name: String,
    /// Indexes (in `operations`) of the operations it waits for.
    pub upstream: Vec<usize>,
    /// Its column when drawn left to right (longest upstream path).
    pub layer: usize,
    /// Its trigger policy (`all_succeeded`, ...).
    pub trigger: String,
}

/// A sweep's algorithm and objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SweepSettings {
    /// `grid`, `random`, `bayes`, ...
    pub algorithm: String,
    /// How many trials the sweep creates in all.
    pub total: usize,
    pub concurrency: usize,
    pub seed: u64,
    /// The metric it optimizes, if any.
    pub metric: Option<String>,
    pub maximize: bool,
    /// The params the sweep sets.
    pub params: Vec<String>,
}
