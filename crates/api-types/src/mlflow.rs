//! Wire types of the MLflow tracking REST API (`/api/2.0/mlflow`), as the
//! official client sends and reads them (protobuf's JSON mapping: int64 as
//! numbers or strings, enums as names). Request types accept unknown
//! fields, because newer clients send fields older servers ignore.

use serde::{Deserialize, Deserializer, Serialize};

/// Reads an int64 sent as a number or as a string.
pub fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
        Float(f64),
    }
    match Option::<Int>::deserialize(d)? {
        None => Ok(None),
        Some(Int::Number(n)) => Ok(Some(n)),
        Some(Int::Float(f)) if f.fract() == 0.0 => Ok(Some(f as i64)),
        Some(Int::Float(f)) => Err(serde::de::Error::custom(format!("{f} is not an integer"))),
        Some(Int::Text(t)) => t
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("`{t}` is not an integer"))),
    }
}

/// Reads a double sent as a number or as "NaN", "Infinity", "-Infinity".
pub fn double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Double {
        Number(f64),
        Text(String),
    }
    match Option::<Double>::deserialize(d)? {
        None => Ok(None),
        Some(Double::Number(n)) => Ok(Some(n)),
        Some(Double::Text(t)) => match t.as_str() {
            "NaN" | "nan" => Ok(Some(f64::NAN)),
            "Infinity" | "inf" => Ok(Some(f64::INFINITY)),
            "-Infinity" | "-inf" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("`{t}` is not a number"))),
        },
    }
}

/// A double as protobuf's JSON writes it: NaN and infinities as strings.
pub fn double_json(value: f64) -> serde_json::Value {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "Infinity".into()
    } else if value == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        serde_json::json!(value)
    }
}

/// A key and a value (tags, params).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// An experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    pub tags: Vec<KeyValue>,
}

/// A metric value at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    /// A number, or "NaN" / "Infinity".
    pub value: serde_json::Value,
    pub timestamp: i64,
    pub step: i64,
}

/// A run's identity and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

/// What a run logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: serde_json::Value,
}

/// `experiments/create`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateExperiment {
    pub name: Option<String>,
    pub artifact_location: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// `experiments/search`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchExperiments {
    #[serde(default, deserialize_with = "int64")]
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
    pub filter: Option<String>,
    #[serde(default)]
    pub order_by: Vec<String>,
    pub view_type: Option<String>,
}

/// `experiments/update`.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdateExperiment {
    pub experiment_id: Option<String>,
    pub new_name: Option<String>,
}

/// Bodies naming one experiment (`delete`, `restore`).
#[derive(Debug, Clone, Deserialize)]
pub struct ExperimentId {
    pub experiment_id: Option<String>,
}

/// `experiments/set-experiment-tag`.
#[derive(Debug, Clone, Deserialize)]
pub struct SetExperimentTag {
    pub experiment_id: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// `runs/create`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateRun {
    pub experiment_id: Option<String>,
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    pub run_name: Option<String>,
}

/// `runs/update`.
#[derive(Debug, Clone, Deserialize)]
pub struct UpdateRun {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub status: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    pub end_time: Option<i64>,
    pub run_name: Option<String>,
}

/// Bodies naming one run (`delete`, `restore`).
#[derive(Debug, Clone, Deserialize)]
pub struct RunId {
    pub run_id: Option<String>,
}

/// A metric in a request.
#[derive(Debug, Clone, Deserialize)]
pub struct NewMetric {
    pub key: Option<String>,
    #[serde(default, deserialize_with = "double")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "int64")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "int64")]
    pub step: Option<i64>,
}

/// `runs/log-metric`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogMetric {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    #[serde(flatten)]
    pub metric: NewMetric,
}

/// `runs/log-parameter`, `runs/set-tag`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogKeyValue {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// `runs/delete-tag`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeleteTag {
    pub run_id: Option<String>,
    pub key: Option<String>,
}

/// `runs/log-batch`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogBatch {
    pub run_id: Option<String>,
    #[serde(default)]
    pub metrics: Vec<NewMetric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

/// `runs/log-inputs`.
#[derive(Debug, Clone, Deserialize)]
pub struct LogInputs {
    pub run_id: Option<String>,
    #[serde(default)]
    pub datasets: Vec<serde_json::Value>,
}

/// `runs/search`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchRuns {
    #[serde(default)]
    pub experiment_ids: Vec<String>,
    pub filter: Option<String>,
    pub run_view_type: Option<String>,
    #[serde(default, deserialize_with = "int64")]
    pub max_results: Option<i64>,
    #[serde(default)]
    pub order_by: Vec<String>,
    pub page_token: Option<String>,
}
