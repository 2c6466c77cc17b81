//! Stage one: the Polyaxonfile as written, deserialized with every key
//! checked (`deny_unknown_fields`) so a typo is an error with its path,
//! line and column. Kind-dependent shapes are union structs with a `kind`
//! string rather than tagged enums: serde buffers tagged enums and would
//! lose the location of errors inside them. Stage two ([`mod@super::compile`])
//! checks kinds and which keys each kind allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

/// A component or an operation: the top of a Polyaxonfile.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFile {
    pub version: Option<Value>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub presets: Option<Vec<String>>,
    pub queue: Option<String>,
    pub cache: Option<RawCache>,
    pub termination: Option<RawTermination>,
    pub plugins: Option<RawPlugins>,
    pub build: Option<Value>,
    pub hooks: Option<Vec<RawHook>>,
    pub is_approved: Option<bool>,
    pub cost: Option<f64>,
    pub template: Option<Value>,
    // Component only.
    pub inputs: Option<Vec<RawIo>>,
    pub outputs: Option<Vec<RawIo>>,
    pub run: Option<RawRun>,
    // Operation only.
    pub params: Option<BTreeMap<String, RawParam>>,
    pub matrix: Option<RawMatrix>,
    pub schedule: Option<RawSchedule>,
    pub events: Option<Vec<Value>>,
    pub joins: Option<Vec<RawJoin>>,
    pub dependencies: Option<Vec<String>>,
    pub trigger: Option<String>,
    pub conditions: Option<String>,
    pub skip_on_upstream_skip: Option<bool>,
    pub run_patch: Option<Value>,
    pub patch_strategy: Option<String>,
    pub is_preset: Option<bool>,
    pub component: Option<Box<RawFile>>,
    pub hub_ref: Option<String>,
    pub path_ref: Option<String>,
    pub dag_ref: Option<String>,
    pub url_ref: Option<String>,
}

/// An input or output declaration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawIo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub description: Option<String>,
    pub value: Option<Value>,
    pub is_optional: Option<bool>,
    pub is_list: Option<bool>,
    pub is_flag: Option<bool>,
    pub arg_format: Option<String>,
    pub delay_validation: Option<bool>,
    pub options: Option<Vec<Value>>,
    pub validation: Option<RawValidation>,
    pub connection: Option<String>,
    pub to_init: Option<bool>,
    pub to_env: Option<String>,
}

/// Validation rules of an input or output.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawValidation {
    pub delay: Option<bool>,
    pub gt: Option<f64>,
    pub ge: Option<f64>,
    pub lt: Option<f64>,
    pub le: Option<f64>,
    pub multiple_of: Option<f64>,
    pub min_digits: Option<u32>,
    pub max_digits: Option<u32>,
    pub decimal_places: Option<u32>,
    pub regex: Option<String>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub contains: Option<Value>,
    pub excludes: Option<Value>,
    pub options: Option<Vec<Value>>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub keys: Option<Vec<String>>,
    pub contains_keys: Option<Vec<String>>,
    pub excludes_keys: Option<Vec<String>>,
}

/// A param given to an operation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawParam {
    pub value: Option<Value>,
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub context_only: Option<bool>,
    pub connection: Option<String>,
    pub to_init: Option<bool>,
    pub to_env: Option<String>,
}

/// `run:` of a component; which keys are allowed depends on `kind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRun {
    pub kind: Option<String>,
    // job, service and replicas
    pub environment: Option<Value>,
    pub connections: Option<Vec<String>>,
    pub volumes: Option<Vec<Value>>,
    pub init: Option<Vec<RawInit>>,
    pub sidecars: Option<Vec<RawContainer>>,
    pub container: Option<RawContainer>,
    // service
    pub ports: Option<Vec<u16>>,
    pub rewrite_path: Option<bool>,
    pub is_external: Option<bool>,
    pub replicas: Option<u32>,
    // dag
    pub operations: Option<Vec<RawFile>>,
    pub components: Option<Vec<RawFile>>,
    pub concurrency: Option<u32>,
    pub early_stopping: Option<Vec<RawEarlyStopping>>,
    // distributed jobs
    pub clean_pod_policy: Option<String>,
    pub scheduling_policy: Option<Value>,
    pub chief: Option<RawReplica>,
    pub ps: Option<RawReplica>,
    pub worker: Option<RawReplica>,
    pub evaluator: Option<RawReplica>,
    pub master: Option<RawReplica>,
    pub launcher: Option<RawReplica>,
    pub slots_per_worker: Option<u32>,
    pub implementation: Option<String>,
    pub job: Option<RawReplica>,
    pub scheduler: Option<RawReplica>,
    pub head: Option<RawReplica>,
    pub workers: Option<BTreeMap<String, RawReplica>>,
    pub entrypoint: Option<String>,
    pub runtime_env: Option<Value>,
    pub metadata: Option<Value>,
    pub ray_version: Option<String>,
    pub threads: Option<u32>,
    pub scale: Option<u32>,
    pub adapt_min: Option<u32>,
    pub adapt_max: Option<u32>,
    pub adapt_interval: Option<u32>,
}

/// A replica of a distributed job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawReplica {
    pub replicas: Option<u32>,
    pub min_replicas: Option<u32>,
    pub max_replicas: Option<u32>,
    pub group_name: Option<String>,
    pub ray_start_params: Option<Value>,
    pub environment: Option<Value>,
    pub connections: Option<Vec<String>>,
    pub volumes: Option<Vec<Value>>,
    pub init: Option<Vec<RawInit>>,
    pub sidecars: Option<Vec<RawContainer>>,
    pub container: Option<RawContainer>,
}

/// A Kubernetes container, with the keys Kubernetes defines.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawContainer {
    pub name: Option<String>,
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub ports: Option<Vec<Value>>,
    pub env_from: Option<Vec<Value>>,
    pub env: Option<Vec<RawEnvVar>>,
    pub resources: Option<Value>,
    pub resize_policy: Option<Vec<Value>>,
    pub restart_policy: Option<String>,
    pub volume_mounts: Option<Vec<Value>>,
    pub volume_devices: Option<Vec<Value>>,
    pub liveness_probe: Option<Value>,
    pub readiness_probe: Option<Value>,
    pub startup_probe: Option<Value>,
    pub lifecycle: Option<Value>,
    pub termination_message_path: Option<String>,
    pub termination_message_policy: Option<String>,
    pub image_pull_policy: Option<String>,
    pub security_context: Option<Value>,
    pub stdin: Option<bool>,
    pub stdin_once: Option<bool>,
    pub tty: Option<bool>,
}

/// One `env` entry of a container.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEnvVar {
    pub name: String,
    /// Kubernetes takes strings only; checked in stage two so a number
    /// gets a clear error instead of a silent conversion.
    pub value: Option<Value>,
    pub value_from: Option<Value>,
}

/// One `init` step.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawInit {
    pub git: Option<RawGitInit>,
    pub file: Option<RawFileInit>,
    pub artifacts: Option<RawArtifactsInit>,
    pub paths: Option<Vec<Value>>,
    pub dockerfile: Option<Value>,
    pub tensorboard: Option<Value>,
    pub lineage_ref: Option<String>,
    pub artifact_ref: Option<String>,
    pub model_ref: Option<String>,
    pub connection: Option<String>,
    pub path: Option<String>,
    pub container: Option<RawContainer>,
}

/// `init: - git:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGitInit {
    pub url: Option<String>,
    pub revision: Option<String>,
    pub flags: Option<Vec<String>>,
}

/// `init: - file:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFileInit {
    pub content: String,
    pub filename: Option<String>,
    pub kind: Option<String>,
    pub chmod: Option<String>,
}

/// `init: - artifacts:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawArtifactsInit {
    pub files: Option<Vec<Value>>,
    pub dirs: Option<Vec<Value>>,
    pub workers: Option<u32>,
}

/// `matrix:` of an operation; keys depend on `kind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatrix {
    pub kind: Option<String>,
    pub params: Option<BTreeMap<String, RawGenerator>>,
    pub values: Option<Vec<BTreeMap<String, Value>>>,
    pub num_runs: Option<u32>,
    pub max_iterations: Option<u32>,
    pub num_initial_runs: Option<u32>,
    pub concurrency: Option<u32>,
    pub seed: Option<u64>,
    pub eta: Option<f64>,
    pub resource: Option<RawResource>,
    pub metric: Option<RawMetric>,
    pub resume: Option<bool>,
    pub utility_function: Option<RawUtilityFunction>,
    pub algorithm: Option<String>,
    pub tuner: Option<Value>,
    pub early_stopping: Option<Vec<RawEarlyStopping>>,
}

/// A search-space generator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGenerator {
    pub kind: Option<String>,
    pub value: Option<Value>,
}

/// Hyperband's resource.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawResource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// The metric an optimizer or early stopping reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetric {
    pub name: String,
    pub optimization: Option<String>,
}

/// Bayes' utility function.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUtilityFunction {
    pub acquisition_function: Option<String>,
    pub gaussian_process: Option<RawGaussianProcess>,
    pub kappa: Option<f64>,
    pub eps: Option<f64>,
    pub num_warmup: Option<u32>,
    pub num_iterations: Option<u32>,
}

/// Bayes' Gaussian process.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawGaussianProcess {
    pub kernel: Option<String>,
    pub length_scale: Option<f64>,
    pub nu: Option<f64>,
    pub num_restarts_optimizer: Option<u32>,
}

/// One early-stopping rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawEarlyStopping {
    pub kind: Option<String>,
    pub metric: Option<String>,
    pub value: Option<f64>,
    pub optimization: Option<String>,
    pub percent: Option<f64>,
    pub policy: Option<RawStoppingPolicy>,
}

/// The policy of a metric early-stopping rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStoppingPolicy {
    pub kind: Option<String>,
    pub evaluation_interval: Option<u32>,
    pub min_interval: Option<u32>,
    pub min_samples: Option<u32>,
    pub percent: Option<f64>,
}

/// `schedule:`; keys depend on `kind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSchedule {
    pub kind: Option<String>,
    pub cron: Option<String>,
    pub frequency: Option<Value>,
    pub start_at: Option<String>,
    pub end_at: Option<String>,
    pub max_runs: Option<u32>,
    pub depends_on_past: Option<bool>,
}

/// One hook.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHook {
    pub hub_ref: Option<String>,
    pub trigger: Option<String>,
    pub connection: Option<String>,
    pub params: Option<BTreeMap<String, RawParam>>,
    pub conditions: Option<String>,
    pub queue: Option<String>,
    pub presets: Option<Vec<String>>,
    pub disable_defaults: Option<bool>,
}

/// One join: runs selected by a query, whose values become params.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawJoin {
    pub query: String,
    pub sort: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub params: Option<BTreeMap<String, RawParam>>,
}

/// `termination:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTermination {
    pub max_retries: Option<i64>,
    pub ttl: Option<i64>,
    pub timeout: Option<i64>,
    pub culling: Option<RawCulling>,
}

/// Culling of idle services.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCulling {
    pub timeout: Option<i64>,
}

/// `cache:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCache {
    pub disable: Option<bool>,
    pub ttl: Option<i64>,
    pub io: Option<Vec<String>>,
    pub sections: Option<Vec<String>>,
}

/// `plugins:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPlugins {
    pub auth: Option<bool>,
    pub docker: Option<bool>,
    pub shm: Option<bool>,
    pub mount_artifacts_store: Option<bool>,
    pub collect_artifacts: Option<bool>,
    pub collect_logs: Option<bool>,
    pub collect_resources: Option<bool>,
    pub auto_resume: Option<bool>,
    pub sync_statuses: Option<bool>,
    pub log_level: Option<String>,
    pub external_host: Option<bool>,
    pub sidecar: Option<Value>,
    pub notifications: Option<Vec<Value>>,
}
