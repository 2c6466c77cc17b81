//! The MLflow tracking REST API: `/api/2.0/mlflow/...` and the proxied
//! artifact API `/api/2.0/mlflow-artifacts/...`, so the official `mlflow`
//! client logs to Trellis unchanged.
//!
//! Handlers translate MLflow's requests (JSON bodies for writes, query
//! strings for reads) and errors (`{"error_code", "message"}` with MLflow's
//! codes and HTTP statuses); every decision is in
//! `trellis_services::mlflow`.

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use trellis_api_types::mlflow as ml;
use trellis_services::ServiceError;

use crate::api::MAX_BODY_BYTES;
use crate::startup::AppState;

/// An error as MLflow sends it.
#[derive(Debug)]
pub struct MlflowError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl MlflowError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }
}

impl From<ServiceError> for MlflowError {
    fn from(error: ServiceError) -> Self {
        let (status, code) = match &error {
            ServiceError::NotFound { .. } => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            ServiceError::Conflict(_) => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            ServiceError::Transition(_) => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            ServiceError::Unexpected(_) | ServiceError::Dependency(_) => {
                tracing::error!(error = ?error, "MLflow request failed: {error}");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL_ERROR",
                    message:
                        "the server failed to handle this request; the failure has been logged"
                            .into(),
                };
            }
        };
        let message = match error {
            ServiceError::NotFound { entity: "run", id } => format!("Run with id={id} not found"),
            ServiceError::NotFound {
                entity: "experiment",
                id,
            } => {
                format!("Could not find experiment with ID {id}")
            }
            other => other.to_string(),
        };
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error_code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

type MlResult<T> = Result<T, MlflowError>;

/// A JSON body; an empty body reads as `{}`, as MLflow's server does.
pub struct MlJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MlJson<T> {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| MlflowError {
                status: e.status(),
                code: "INVALID_PARAMETER_VALUE",
                message: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    format!("the request body is larger than {MAX_BODY_BYTES} bytes")
                } else {
                    e.body_text()
                },
            })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map(MlJson)
            .map_err(|e| MlflowError::invalid(format!("Malformed request body: {e}")))
    }
}

/// A query string.
pub struct MlQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for MlQuery<T> {
    type Rejection = MlflowError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(MlQuery)
            .map_err(|e| MlflowError::invalid(format!("Malformed query string: {e}")))
    }
}

fn int_param(raw: Option<&str>, name: &str) -> MlResult<Option<i64>> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                MlflowError::invalid(format!("Invalid value '{s}' for parameter '{name}'"))
            })
        })
        .transpose()
}

fn empty() -> Json<Value> {
    Json(json!({}))
}

/// The MLflow routes, to nest under `/api/2.0`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mlflow/experiments/create", post(create_experiment))
        .route("/mlflow/experiments/get", get(get_experiment))
        .route(
            "/mlflow/experiments/get-by-name",
            get(get_experiment_by_name),
        )
        .route(
            "/mlflow/experiments/search",
            post(search_experiments).get(search_experiments_get),
        )
        .route("/mlflow/experiments/update", post(update_experiment))
        .route("/mlflow/experiments/delete", post(delete_experiment))
        .route("/mlflow/experiments/restore", post(restore_experiment))
        .route(
            "/mlflow/experiments/set-experiment-tag",
            post(set_experiment_tag),
        )
        .route("/mlflow/runs/create", post(create_run))
        .route("/mlflow/runs/get", get(get_run))
        .route("/mlflow/runs/update", post(update_run))
        .route("/mlflow/runs/delete", post(delete_run))
        .route("/mlflow/runs/restore", post(restore_run))
        .route("/mlflow/runs/search", post(search_runs))
        .route("/mlflow/runs/log-metric", post(log_metric))
        .route("/mlflow/runs/log-parameter", post(log_param))
        .route("/mlflow/runs/set-tag", post(set_tag))
        .route("/mlflow/runs/delete-tag", post(delete_tag))
        .route("/mlflow/runs/log-batch", post(log_batch))
        .route("/mlflow/runs/log-inputs", post(log_inputs))
        .route("/mlflow/metrics/get-history", get(metric_history))
        .route("/mlflow/artifacts/list", get(list_artifacts))
        // MLflow 3 clients look for logged models when listing a run's
        // artifacts; Trellis stores none (creating one is not implemented),
        // so every search is truthfully empty.
        .route("/mlflow/logged-models/search", post(search_logged_models))
        .route("/mlflow-artifacts/artifacts", get(proxied_list))
        .route(
            "/mlflow-artifacts/artifacts/{*path}",
            get(proxied_download)
                .put(proxied_upload)
                .delete(proxied_delete)
                // Uploads stream to disk; their size is not capped here.
                .layer(DefaultBodyLimit::disable()),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn not_found(uri: Uri) -> MlflowError {
    MlflowError {
        status: StatusCode::NOT_FOUND,
        code: "ENDPOINT_NOT_FOUND",
        message: format!("this server does not implement `{}`", uri.path()),
    }
}

async fn create_experiment(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::CreateExperiment>,
) -> MlResult<Json<Value>> {
    let id = s.services.mlflow().create_experiment(input).await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Deserialize)]
struct ExperimentQuery {
    experiment_id: Option<String>,
    experiment_name: Option<String>,
}

async fn get_experiment(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<ExperimentQuery>,
) -> MlResult<Json<Value>> {
    let id = q.experiment_id.ok_or_else(|| {
        MlflowError::invalid("Missing value for required parameter 'experiment_id'.")
    })?;
    let experiment = s.services.mlflow().get_experiment(&id).await?;
    Ok(Json(json!({ "experiment": experiment })))
}

async fn get_experiment_by_name(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<ExperimentQuery>,
) -> MlResult<Json<Value>> {
    let name = q.experiment_name.ok_or_else(|| {
        MlflowError::invalid("Missing value for required parameter 'experiment_name'.")
    })?;
    let experiment = s
        .services
        .mlflow()
        .get_experiment_by_name(&name)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound { .. } => MlflowError {
                status: StatusCode::NOT_FOUND,
                code: "RESOURCE_DOES_NOT_EXIST",
                message: format!("Could not find experiment with name '{name}'"),
            },
            other => other.into(),
        })?;
    Ok(Json(json!({ "experiment": experiment })))
}

/// `{"<key>": [...], "next_page_token": "..."}`, serialized once, straight
/// from the items (a page can hold thousands of runs).
struct Page<T> {
    key: &'static str,
    items: Vec<T>,
    next: Option<String>,
}

impl<T: serde::Serialize> serde::Serialize for Page<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.key, &self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry("next_page_token", next)?;
        }
        map.end()
    }
}

fn page<T: serde::Serialize>(
    key: &'static str,
    items: Vec<T>,
    next: Option<String>,
) -> Json<Page<T>> {
    Json(Page { key, items, next })
}

async fn search_experiments(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::SearchExperiments>,
) -> MlResult<Json<Page<ml::Experiment>>> {
    let (experiments, next) = s.services.mlflow().search_experiments(input).await?;
    Ok(page("experiments", experiments, next))
}

#[derive(Deserialize)]
struct SearchExperimentsQuery {
    max_results: Option<String>,
    page_token: Option<String>,
    filter: Option<String>,
    view_type: Option<String>,
}

async fn search_experiments_get(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<SearchExperimentsQuery>,
) -> MlResult<Json<Page<ml::Experiment>>> {
    let input = ml::SearchExperiments {
        max_results: int_param(q.max_results.as_deref(), "max_results")?,
        page_token: q.page_token,
        filter: q.filter,
        order_by: Vec::new(),
        view_type: q.view_type,
    };
    let (experiments, next) = s.services.mlflow().search_experiments(input).await?;
    Ok(page("experiments", experiments, next))
}

async fn update_experiment(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::UpdateExperiment>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().update_experiment(input).await?;
    Ok(empty())
}

async fn delete_experiment(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::ExperimentId>,
) -> MlResult<Json<Value>> {
    s.services
        .mlflow()
        .set_experiment_deleted(input.experiment_id.as_deref(), true)
        .await?;
    Ok(empty())
}

async fn restore_experiment(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::ExperimentId>,
) -> MlResult<Json<Value>> {
    s.services
        .mlflow()
        .set_experiment_deleted(input.experiment_id.as_deref(), false)
        .await?;
    Ok(empty())
}

async fn set_experiment_tag(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::SetExperimentTag>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().set_experiment_tag(input).await?;
    Ok(empty())
}

async fn create_run(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::CreateRun>,
) -> MlResult<Json<Value>> {
    let run = s.services.mlflow().create_run(input).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct RunQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    max_results: Option<String>,
    page_token: Option<String>,
    path: Option<String>,
}

impl RunQuery {
    fn run_id(&self) -> MlResult<&str> {
        self.run_id
            .as_deref()
            .or(self.run_uuid.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MlflowError::invalid("Missing value for required parameter 'run_id'."))
    }
}

async fn get_run(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<RunQuery>,
) -> MlResult<Json<Value>> {
    let run = s.services.mlflow().get_run(q.run_id()?).await?;
    Ok(Json(json!({ "run": run })))
}

async fn update_run(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::UpdateRun>,
) -> MlResult<Json<Value>> {
    let info = s.services.mlflow().update_run(input).await?;
    Ok(Json(json!({ "run_info": info })))
}

async fn delete_run(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::RunId>,
) -> MlResult<Json<Value>> {
    s.services
        .mlflow()
        .set_run_deleted(input.run_id.as_deref(), true)
        .await?;
    Ok(empty())
}

async fn restore_run(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::RunId>,
) -> MlResult<Json<Value>> {
    s.services
        .mlflow()
        .set_run_deleted(input.run_id.as_deref(), false)
        .await?;
    Ok(empty())
}

async fn search_runs(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::SearchRuns>,
) -> MlResult<Json<Page<ml::Run>>> {
    let (runs, next) = s.services.mlflow().search_runs(input).await?;
    Ok(page("runs", runs, next))
}

async fn log_metric(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::LogMetric>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().log_metric(input).await?;
    Ok(empty())
}

async fn log_param(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::LogKeyValue>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().log_param(input).await?;
    Ok(empty())
}

async fn set_tag(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::LogKeyValue>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().set_tag(input).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::DeleteTag>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().delete_tag(input).await?;
    Ok(empty())
}

async fn log_batch(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::LogBatch>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().log_batch(input).await?;
    Ok(empty())
}

async fn log_inputs(
    State(s): State<AppState>,
    MlJson(input): MlJson<ml::LogInputs>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().log_inputs(input).await?;
    Ok(empty())
}

async fn metric_history(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<RunQuery>,
) -> MlResult<Json<Page<ml::Metric>>> {
    let max_results = int_param(q.max_results.as_deref(), "max_results")?;
    let key = q.metric_key.as_deref().ok_or_else(|| {
        MlflowError::invalid("Missing value for required parameter 'metric_key'.")
    })?;
    let (metrics, next) = s
        .services
        .mlflow()
        .metric_history(q.run_id()?, key, max_results, q.page_token.as_deref())
        .await?;
    Ok(page("metrics", metrics, next))
}

fn file_info(path: String, is_dir: bool, size: Option<u64>) -> Value {
    let mut info = json!({ "path": path, "is_dir": is_dir });
    if let Some(size) = size {
        info["file_size"] = json!(size);
    }
    info
}

async fn list_artifacts(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<RunQuery>,
) -> MlResult<Json<Value>> {
    let (root_uri, entries) = s
        .services
        .mlflow()
        .list_artifacts(q.run_id()?, q.path.as_deref().unwrap_or(""))
        .await?;
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| file_info(e.path, e.is_dir, e.size))
        .collect();
    Ok(Json(json!({ "root_uri": root_uri, "files": files })))
}

#[derive(Deserialize)]
struct ProxiedQuery {
    path: Option<String>,
}

async fn proxied_list(
    State(s): State<AppState>,
    MlQuery(q): MlQuery<ProxiedQuery>,
) -> MlResult<Json<Value>> {
    let full = q.path.unwrap_or_default();
    let entries = s.services.mlflow().proxied_list(&full).await?;
    // MLflow's proxied listing names entries by their base name.
    let files: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            let base = e.path.rsplit('/').next().unwrap_or_default().to_owned();
            file_info(base, e.is_dir, e.size)
        })
        .collect();
    Ok(Json(json!({ "files": files })))
}

async fn proxied_download(
    State(s): State<AppState>,
    Path(full): Path<String>,
) -> MlResult<Response> {
    let (file, size) = s.services.mlflow().proxied_open(&full).await?;
    Ok(crate::api::tracking::stream_file(file, size))
}

async fn proxied_upload(
    State(s): State<AppState>,
    Path(full): Path<String>,
    body: Body,
) -> MlResult<Json<Value>> {
    s.services
        .mlflow()
        .proxied_put(&full, body.into_data_stream())
        .await?;
    Ok(empty())
}

async fn proxied_delete(
    State(s): State<AppState>,
    Path(full): Path<String>,
) -> MlResult<Json<Value>> {
    s.services.mlflow().proxied_delete(&full).await?;
    Ok(empty())
}

async fn search_logged_models(MlJson(_): MlJson<Value>) -> Json<Value> {
    Json(json!({ "models": [] }))
}
