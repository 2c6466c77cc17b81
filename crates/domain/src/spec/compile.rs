//! Stage two: check a parsed Polyaxonfile and compile an operation with its
//! component into one run spec: kinds and per-kind keys, inputs and their
//! validation, params against inputs, matrix, early stopping, schedule,
//! hooks, joins, DAG dependencies, termination, and `{{ }}` templates.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use serde_yaml::Value;

use super::SpecError;
use super::raw::*;
use super::template::{Scope, render};
use super::types::{IoType, check_value};
use crate::pql::{Query, closest};
use crate::run::RunKind;

/// What a compiled Polyaxonfile becomes: everything the scheduler and the
/// run record need, with params resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledRun {
    pub kind: RunKind,
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub component: Option<String>,
    pub queue: Option<String>,
    pub presets: Vec<String>,
    /// Resolved input values by name (params, else defaults). Params given
    /// by `ref` or left to a matrix are absent here.
    pub inputs: Map<String, Json>,
    /// Params passed by reference (`ops.prep`, `runs.<uuid>`), resolved when
    /// the upstream finishes.
    pub refs: BTreeMap<String, ParamRef>,
    /// Params the matrix generates, by name, with the matrix kind.
    pub matrix: Option<MatrixSummary>,
    /// The main container after templating, for jobs and services.
    pub container: Option<ContainerSpec>,
    /// The ports a service listens on (`run.ports`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// `run.rewritePath`: the proxy strips its prefix before forwarding
    /// (apps with no base-path setting, such as code-server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rewrite_path: bool,
    /// The operations of a DAG, in a valid execution order.
    pub dag_order: Vec<String>,
    /// Steps that prepare the working directory before the container runs.
    pub init: Vec<InitStep>,
    pub schedule: Option<String>,
    pub max_retries: Option<u32>,
    pub timeout: Option<u64>,
    pub ttl: Option<u64>,
    /// `termination.culling.timeout`: a service idle this long is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culling: Option<u64>,
}

/// One `init` step, as the local executor performs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InitStep {
    /// Clone `url` (at `revision`) into `path`, or a folder named after the repository.
    Git {
        url: String,
        revision: Option<String>,
        path: Option<String>,
    },
    /// Write `content` to `filename` in the working directory.
    File {
        filename: String,
        content: String,
        chmod: Option<String>,
    },
    /// A step this executor does not perform (artifacts, dockerfile, ...),
    /// named so the run can say so.
    Other { what: String },
}

/// A param passed by reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamRef {
    #[serde(rename = "ref")]
    pub reference: String,
    pub value: Option<String>,
}

/// The matrix of an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSummary {
    pub kind: String,
    pub params: Vec<String>,
}

/// The main container of a job or service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// Values the server fills in at submission (`{{ globals.* }}`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Globals {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub owner_name: Option<String>,
    pub project_name: Option<String>,
    pub run_outputs_path: Option<String>,
    pub artifacts_path: Option<String>,
    pub base_url: Option<String>,
    pub ports: Vec<u16>,
    /// The address a service listens on: `127.0.0.1` where only this host's
    /// proxy reaches it, `0.0.0.0` on a worker the server dials from afar.
    pub host: Option<String>,
}

const RUN_KINDS: &[&str] = &[
    "job",
    "service",
    "dag",
    "tfjob",
    "pytorchjob",
    "mpijob",
    "daskcluster",
    "raycluster",
    "daskjob",
    "rayjob",
];
const MATRIX_KINDS: &[&str] = &[
    "grid",
    "random",
    "hyperband",
    "bayes",
    "hyperopt",
    "mapping",
    "iterative",
];
const GENERATORS: &[&str] = &[
    "choice",
    "pchoice",
    "range",
    "linspace",
    "logspace",
    "geomspace",
    "uniform",
    "loguniform",
    "quniform",
    "qloguniform",
    "normal",
    "lognormal",
    "qnormal",
    "qlognormal",
    "daterange",
    "datetimerange",
];
const TRIGGERS: &[&str] = &[
    "all_succeeded",
    "all_failed",
    "all_done",
    "one_succeeded",
    "one_failed",
    "one_done",
];
const HOOK_TRIGGERS: &[&str] = &["succeeded", "failed", "stopped", "done"];

/// Parses the kind name `value` among `options`, or explains with a suggestion.
fn one_of<'a>(
    path: &str,
    what: &str,
    value: &'a str,
    options: &[&str],
) -> Result<&'a str, SpecError> {
    if options.contains(&value) {
        return Ok(value);
    }
    Err(SpecError::at(
        path,
        format!(
            "unknown {what} `{value}`; expected one of: {}",
            options.join(", ")
        ),
    )
    .suggest(closest(value, options)))
}

/// A required key: when missing, the error points at the mapping that
/// lacks it (which exists in the file and has a line).
fn required<T>(path: &str, value: Option<T>, what: &str) -> Result<T, SpecError> {
    value.ok_or_else(|| {
        let parent = path.rsplit_once('.').map_or("", |(parent, _)| parent);
        SpecError::at(parent, format!("{what} is required"))
    })
}

/// Loads `pathRef` files relative to the file being compiled.
pub trait Resolver {
    /// The text of the file at `path`, or why it cannot be read.
    fn read(&self, path: &str) -> Result<String, String>;
}

/// A resolver for text with no other files (the API's submitted content).
pub struct NoFiles;

impl Resolver for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!(
            "`{path}` cannot be read here; submit the component inline"
        ))
    }
}

/// Compiles a parsed file. `overrides` are `-P name=value` params, which
/// win over the file's.
pub fn compile_file(
    file: &RawFile,
    resolver: &dyn Resolver,
    overrides: &BTreeMap<String, Json>,
    globals: &Globals,
) -> Result<CompiledRun, SpecError> {
    check_version(file)?;
    let kind = required(
        "kind",
        file.kind.as_deref(),
        "`kind` (component or operation)",
    )?;
    match one_of("kind", "kind", kind, &["component", "operation"])? {
        "component" => {
            check_component(file, "")?;
            compile_operation(&RawFile::default(), file, "", overrides, globals)
        }
        _ => {
            let mut component = operation_component(file, resolver, "")?;
            patch_component(file, &mut component)?;
            compile_operation(file, &component, "", overrides, globals)
        }
    }
}

fn check_version(file: &RawFile) -> Result<(), SpecError> {
    match &file.version {
        None => Ok(()),
        Some(Value::Number(n)) if n.as_f64() == Some(1.1) => Ok(()),
        Some(Value::String(s)) if s == "1.1" => Ok(()),
        Some(other) => Err(SpecError::at(
            "version",
            format!(
                "version {} is not supported; Trellis reads Polyaxonfile version 1.1",
                yaml_text(other)
            ),
        )),
    }
}

fn yaml_text(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Applies the operation's `runPatch` (by its `patchStrategy`) to the
/// run of the component it runs, and checks the result as a run.
fn patch_component(op: &RawFile, component: &mut RawFile) -> Result<(), SpecError> {
    let strategy = super::patch::Strategy::parse(op.patch_strategy.as_deref())
        .map_err(|e| SpecError::at("patchStrategy", e))?;
    let Some(patch) = &op.run_patch else {
        if op.patch_strategy.is_some() {
            return Err(SpecError::at(
                "patchStrategy",
                "`patchStrategy` says how `runPatch` applies; there is no `runPatch`",
            ));
        }
        return Ok(());
    };
    let run = required("run", component.run.as_ref(), "`run`")?;
    let patched = super::patch::patch_run(run, patch, strategy, "runPatch")?;
    check_run(&patched, "runPatch")?;
    component.run = Some(patched);
    Ok(())
}

/// The component an operation runs: inline, or from `pathRef`.
fn operation_component(
    op: &RawFile,
    resolver: &dyn Resolver,
    at: &str,
) -> Result<RawFile, SpecError> {
    if op.run.is_some() || op.inputs.is_some() || op.outputs.is_some() {
        return Err(SpecError::at(
            join(at, "run"),
            "an operation does not take `run`, `inputs` or `outputs`; put them in its `component`",
        ));
    }
    let sources = [
        op.component.is_some(),
        op.path_ref.is_some(),
        op.hub_ref.is_some(),
        op.url_ref.is_some(),
        op.dag_ref.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => {
            return Err(SpecError::at(
                at,
                "an operation needs its component: `component` (inline), `pathRef`, `hubRef` or `dagRef`",
            ));
        }
        1 => {}
        _ => {
            return Err(SpecError::at(
                at,
                "give only one of `component`, `pathRef`, `hubRef`, `urlRef`, `dagRef`",
            ));
        }
    }
    if let Some(component) = &op.component {
        let path = join(at, "component");
        if let Some(kind) = component.kind.as_deref() {
            one_of(&join(&path, "kind"), "kind", kind, &["component"])?;
        }
        check_component(component, &path)?;
        return Ok((**component).clone());
    }
    if let Some(path_ref) = &op.path_ref {
        let text = resolver
            .read(path_ref)
            .map_err(|e| SpecError::at(join(at, "pathRef"), e))?;
        let component = super::parse_raw(&text).map_err(|mut e| {
            e.file = Some(path_ref.clone());
            e
        })?;
        check_version(&component)?;
        if component.kind.as_deref() != Some("component") {
            return Err(SpecError::at(
                join(at, "pathRef"),
                format!("`{path_ref}` must hold a `kind: component`"),
            ));
        }
        check_component(&component, "").map_err(|mut e| {
            e.file = Some(path_ref.clone());
            e
        })?;
        return Ok(component);
    }
    if let Some(hub_ref) = &op.hub_ref {
        let found = super::hub::find(hub_ref).map_err(|e| SpecError::at(join(at, "hubRef"), e))?;
        let component = super::parse_raw(found.content).map_err(|mut e| {
            e.file = Some(format!("hub:{}", found.name));
            e
        })?;
        check_component(&component, "").map_err(|mut e| {
            e.file = Some(format!("hub:{}", found.name));
            e
        })?;
        return Ok(component);
    }
    Err(SpecError::at(
        join(at, "urlRef"),
        "`urlRef` is not supported; use `pathRef` or an inline `component`",
    ))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else if key.is_empty() {
        at.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// Checks a component's own declarations.
fn check_component(component: &RawFile, at: &str) -> Result<(), SpecError> {
    for key in [
        ("params", component.params.is_some()),
        ("matrix", component.matrix.is_some()),
        ("schedule", component.schedule.is_some()),
        ("joins", component.joins.is_some()),
        ("dependencies", component.dependencies.is_some()),
    ] {
        if key.1 {
            return Err(SpecError::at(
                join(at, key.0),
                format!("`{}` belongs to an operation, not a component", key.0),
            ));
        }
    }
    let mut names = BTreeSet::new();
    for (list, ios) in [
        ("inputs", &component.inputs),
        ("outputs", &component.outputs),
    ] {
        for (i, io) in ios.iter().flatten().enumerate() {
            let path = format!("{}[{i}]", join(at, list));
            if !names.insert(io.name.clone()) {
                return Err(SpecError::at(
                    join(&path, "name"),
                    format!("`{}` is declared twice", io.name),
                ));
            }
            let io_type = io_type(io, &path)?;
            if let Some(default) = &io.value {
                check_value(io_type, io, &to_json(default))
                    .map_err(|e| SpecError::at(join(&path, "value"), e))?;
            }
            if let Some(regex) = io.validation.as_ref().and_then(|v| v.regex.as_ref()) {
                super::types::check_pattern(regex)
                    .map_err(|e| SpecError::at(join(&path, "validation.regex"), e))?;
            }
        }
    }
    check_common(component, at)?;
    let run = required(&join(at, "run"), component.run.as_ref(), "`run`")?;
    check_run(run, &join(at, "run"))
}

fn io_type(io: &RawIo, path: &str) -> Result<IoType, SpecError> {
    match io.kind.as_deref() {
        None => Ok(IoType::Any),
        Some(name) => IoType::parse(name).ok_or_else(|| {
            SpecError::at(
                join(path, "type"),
                format!(
                    "unknown type `{name}`; expected one of: {}",
                    IoType::NAMES.join(", ")
                ),
            )
            .suggest(closest(name, IoType::NAMES))
        }),
    }
}

/// Keys both components and operations have.
fn check_common(file: &RawFile, at: &str) -> Result<(), SpecError> {
    if let Some(termination) = &file.termination {
        let path = join(at, "termination");
        for (key, value) in [
            ("maxRetries", termination.max_retries),
            ("timeout", termination.timeout),
            ("ttl", termination.ttl),
            (
                "culling.timeout",
                termination.culling.as_ref().and_then(|c| c.timeout),
            ),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(SpecError::at(
                    join(&path, key),
                    format!("`{key}` must not be negative"),
                ));
            }
        }
    }
    for (i, hook) in file.hooks.iter().flatten().enumerate() {
        let path = format!("{}[{i}]", join(at, "hooks"));
        if let Some(trigger) = &hook.trigger {
            one_of(
                &join(&path, "trigger"),
                "hook trigger",
                trigger,
                HOOK_TRIGGERS,
            )?;
        }
        required(
            &join(&path, "hubRef"),
            hook.hub_ref.as_ref(),
            "`hubRef` (the hook's component)",
        )?;
    }
    Ok(())
}

/// Which `run` keys each kind allows, beyond `kind`.
fn allowed_run_keys(kind: &str) -> &'static [&'static str] {
    const POD: &[&str] = &[
        "environment",
        "connections",
        "volumes",
        "init",
        "sidecars",
        "container",
    ];
    match kind {
        "job" => POD,
        "service" => &[
            "environment",
            "connections",
            "volumes",
            "init",
            "sidecars",
            "container",
            "ports",
            "rewritePath",
            "isExternal",
            "replicas",
        ],
        "dag" => &[
            "operations",
            "components",
            "concurrency",
            "earlyStopping",
            "environment",
            "connections",
            "volumes",
        ],
        "tfjob" => &[
            "cleanPodPolicy",
            "schedulingPolicy",
            "chief",
            "ps",
            "worker",
            "evaluator",
        ],
        "pytorchjob" => &["cleanPodPolicy", "schedulingPolicy", "master", "worker"],
        "mpijob" => &[
            "cleanPodPolicy",
            "schedulingPolicy",
            "launcher",
            "worker",
            "slotsPerWorker",
            "implementation",
        ],
        "daskcluster" => &[
            "job",
            "worker",
            "scheduler",
            "threads",
            "scale",
            "adaptMin",
            "adaptMax",
            "adaptInterval",
        ],
        _ => &[
            "head",
            "workers",
            "entrypoint",
            "runtimeEnv",
            "metadata",
            "rayVersion",
        ],
    }
}

/// The `run` keys present, in camelCase.
fn present_run_keys(run: &RawRun) -> Vec<&'static str> {
    let checks: [(&str, bool); 38] = [
        ("environment", run.environment.is_some()),
        ("connections", run.connections.is_some()),
        ("volumes", run.volumes.is_some()),
        ("init", run.init.is_some()),
        ("sidecars", run.sidecars.is_some()),
        ("container", run.container.is_some()),
        ("ports", run.ports.is_some()),
        ("rewritePath", run.rewrite_path.is_some()),
        ("isExternal", run.is_external.is_some()),
        ("replicas", run.replicas.is_some()),
        ("operations", run.operations.is_some()),
        ("components", run.components.is_some()),
        ("concurrency", run.concurrency.is_some()),
        ("earlyStopping", run.early_stopping.is_some()),
        ("cleanPodPolicy", run.clean_pod_policy.is_some()),
        ("schedulingPolicy", run.scheduling_policy.is_some()),
        ("chief", run.chief.is_some()),
        ("ps", run.ps.is_some()),
        ("worker", run.worker.is_some()),
        ("evaluator", run.evaluator.is_some()),
        ("master", run.master.is_some()),
        ("launcher", run.launcher.is_some()),
        ("slotsPerWorker", run.slots_per_worker.is_some()),
        ("implementation", run.implementation.is_some()),
        ("job", run.job.is_some()),
        ("scheduler", run.scheduler.is_some()),
        ("head", run.head.is_some()),
        ("workers", run.workers.is_some()),
        ("entrypoint", run.entrypoint.is_some()),
        ("runtimeEnv", run.runtime_env.is_some()),
        ("metadata", run.metadata.is_some()),
        ("rayVersion", run.ray_version.is_some()),
        ("threads", run.threads.is_some()),
        ("scale", run.scale.is_some()),
        ("adaptMin", run.adapt_min.is_some()),
        ("adaptMax", run.adapt_max.is_some()),
        ("adaptInterval", run.adapt_interval.is_some()),
        ("kind", false),
    ];
    checks
        .iter()
        .filter(|(_, present)| *present)
        .map(|(key, _)| *key)
        .collect()
}

/// The canonical run kind (aliases resolved).
fn run_kind(run: &RawRun, at: &str) -> Result<RunKind, SpecError> {
    let path = join(at, "kind");
    let kind = required(
        &path,
        run.kind.as_deref(),
        "`run.kind` (job, service, dag, ...)",
    )?;
    one_of(&path, "run kind", kind, RUN_KINDS)?;
    kind.parse()
        .map_err(|_| SpecError::at(path, format!("unknown run kind `{kind}`")))
}

fn check_run(run: &RawRun, at: &str) -> Result<(), SpecError> {
    let kind = run_kind(run, at)?;
    let allowed = allowed_run_keys(kind.as_str());
    for key in present_run_keys(run) {
        if !allowed.contains(&key) {
            return Err(SpecError::at(
                join(at, key),
                format!(
                    "a `{}` run does not take `{key}`; it takes: kind, {}",
                    kind,
                    allowed.join(", ")
                ),
            ));
        }
    }
    if matches!(kind, RunKind::Job | RunKind::Service) {
        let container = required(
            &join(at, "container"),
            run.container.as_ref(),
            "`container`",
        )?;
        required(
            &join(at, "container.image"),
            container.image.as_ref(),
            "`image`",
        )?;
    }
    if let Some(environment) = &run.environment
        && !environment.is_mapping()
    {
        return Err(SpecError::at(
            join(at, "environment"),
            "`environment` must be a mapping (nodeSelector, tolerations, ...)",
        ));
    }
    for (i, init) in run.init.iter().flatten().enumerate() {
        let path = format!("{}[{i}]", join(at, "init"));
        if let Some(git) = &init.git
            && git.url.is_none()
            && init.connection.is_none()
        {
            return Err(SpecError::at(
                join(&path, "git.url"),
                "a git init step needs `url` (or a `connection`)",
            ));
        }
    }
    for (i, rule) in run.early_stopping.iter().flatten().enumerate() {
        check_early_stopping(rule, &format!("{}[{i}]", join(at, "earlyStopping")))?;
    }
    for (name, replica) in distributed_replicas(run) {
        if let Some(container) = &replica.container {
            let path = format!("{}.container", join(at, &name));
            required(&join(&path, "image"), container.image.as_ref(), "`image`")?;
            check_env(container, &path)?;
        }
    }
    if let Some(container) = &run.container {
        check_env(container, &join(at, "container"))?;
    }
    for (i, sidecar) in run.sidecars.iter().flatten().enumerate() {
        check_env(sidecar, &format!("{}[{i}]", join(at, "sidecars")))?;
    }
    if kind == RunKind::Dag {
        check_dag(run, at)?;
    }
    Ok(())
}

/// Kubernetes env values are strings: a bare `5` or `true` must be quoted.
fn check_env(container: &RawContainer, at: &str) -> Result<(), SpecError> {
    for (i, var) in container.env.iter().flatten().enumerate() {
        if let Some(value) = &var.value
            && !value.is_string()
        {
            return Err(SpecError::at(
                format!("{at}.env[{i}].value"),
                format!(
                    "the value of `{}` must be a string; quote it: \"{}\"",
                    var.name,
                    yaml_text(value)
                ),
            ));
        }
    }
    Ok(())
}

fn distributed_replicas(run: &RawRun) -> Vec<(String, &RawReplica)> {
    let mut replicas: Vec<(String, &RawReplica)> = [
        ("chief", &run.chief),
        ("ps", &run.ps),
        ("worker", &run.worker),
        ("evaluator", &run.evaluator),
        ("master", &run.master),
        ("launcher", &run.launcher),
        ("job", &run.job),
        ("scheduler", &run.scheduler),
        ("head", &run.head),
    ]
    .into_iter()
    .filter_map(|(name, replica)| replica.as_ref().map(|r| (name.to_owned(), r)))
    .collect();
    for (name, replica) in run.workers.iter().flatten() {
        replicas.push((format!("workers.{name}"), replica));
    }
    replicas
}

fn check_early_stopping(rule: &RawEarlyStopping, at: &str) -> Result<(), SpecError> {
    let kind = required(&join(at, "kind"), rule.kind.as_deref(), "`kind`")?;
    match one_of(
        &join(at, "kind"),
        "early stopping kind",
        kind,
        &["metric_early_stopping", "failure_early_stopping"],
    )? {
        "metric_early_stopping" => {
            required(&join(at, "metric"), rule.metric.as_ref(), "`metric`")?;
            if let Some(optimization) = &rule.optimization {
                one_of(
                    &join(at, "optimization"),
                    "optimization",
                    optimization,
                    &["maximize", "minimize"],
                )?;
            }
            if let Some(policy) = &rule.policy {
                let kind = required(&join(at, "policy.kind"), policy.kind.as_deref(), "`kind`")?;
                one_of(
                    &join(at, "policy.kind"),
                    "early stopping policy",
                    kind,
                    &["median", "truncation", "diff"],
                )?;
            } else {
                required(&join(at, "value"), rule.value, "`value` (or a `policy`)")?;
            }
        }
        _ => {
            let percent = required(&join(at, "percent"), rule.percent, "`percent`")?;
            if !(0.0..=100.0).contains(&percent) {
                return Err(SpecError::at(
                    join(at, "percent"),
                    "`percent` must be between 0 and 100",
                ));
            }
        }
    }
    Ok(())
}

/// DAG checks: unique names, known dependencies, triggers, no cycle. Each
/// operation's component is inline, from `components` by `dagRef`, or by
/// `pathRef` (checked when the operation is compiled).
fn check_dag(run: &RawRun, at: &str) -> Result<(), SpecError> {
    let operations = required(
        &join(at, "operations"),
        run.operations.as_ref(),
        "`operations`",
    )?;
    let components: BTreeSet<String> = run
        .components
        .iter()
        .flatten()
        .filter_map(|c| c.name.clone())
        .collect();
    for (i, component) in run.components.iter().flatten().enumerate() {
        check_component(component, &format!("{}[{i}]", join(at, "components")))?;
    }
    let mut names: Vec<String> = Vec::new();
    for (i, op) in operations.iter().enumerate() {
        let path = format!("{}[{i}]", join(at, "operations"));
        let name = required(&join(&path, "name"), op.name.clone(), "`name`")?;
        if names.contains(&name) {
            return Err(SpecError::at(
                join(&path, "name"),
                format!("two operations are named `{name}`"),
            ));
        }
        names.push(name);
        if let Some(dag_ref) = &op.dag_ref
            && !components.contains(dag_ref)
        {
            let options: Vec<&str> = components.iter().map(String::as_str).collect();
            return Err(SpecError::at(
                join(&path, "dagRef"),
                format!("no component named `{dag_ref}` in `run.components`"),
            )
            .suggest(closest(dag_ref, &options)));
        }
        if let Some(trigger) = &op.trigger {
            one_of(&join(&path, "trigger"), "trigger", trigger, TRIGGERS)?;
        }
        let has_source = op.component.is_some()
            || op.dag_ref.is_some()
            || op.path_ref.is_some()
            || op.hub_ref.is_some();
        if !has_source {
            return Err(SpecError::at(
                path,
                "an operation needs its component: `dagRef` (a name in `run.components`), `component`, `pathRef` or `hubRef`",
            ));
        }
        if let Some(component) = &op.component {
            check_component(component, &join(&path, "component"))?;
        }
        // Each operation's params are checked against its component's
        // inputs, as for a single operation. (`pathRef` components are
        // inlined before submission by the CLI.)
        let component = op.component.as_deref().or_else(|| {
            let name = op.dag_ref.as_deref()?;
            run.components
                .iter()
                .flatten()
                .find(|c| c.name.as_deref() == Some(name))
        });
        if let Some(component) = component {
            compile_operation(op, component, &path, &BTreeMap::new(), &Globals::default())?;
        }
    }
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (i, op) in operations.iter().enumerate() {
        let path = format!("{}[{i}].dependencies", join(at, "operations"));
        let name = names[i].as_str();
        let upstream = upstream_of(op);
        for dependency in &upstream {
            if !names.iter().any(|n| n == dependency) {
                let options: Vec<&str> = names.iter().map(String::as_str).collect();
                return Err(SpecError::at(
                    path,
                    format!(
                        "`{name}` depends on `{dependency}`, which is not an operation of this dag"
                    ),
                )
                .suggest(closest(dependency, &options)));
            }
        }
        edges.insert(name, upstream);
    }
    if let Err(cycle) = topological_order(&edges) {
        // Point at the last operation of the cycle in file order: its
        // dependency is the one that closes the loop.
        let index = names.iter().rposition(|n| cycle.contains(n)).unwrap_or(0);
        return Err(SpecError::at(
            format!("{}[{index}].dependencies", join(at, "operations")),
            format!("the dag has a cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(())
}

/// The operations `op` waits for: its `dependencies`, and the operations
/// its params take by `ref: ops.<name>`.
pub(crate) fn upstream_of(op: &RawFile) -> Vec<&str> {
    let declared = op.dependencies.iter().flatten().map(String::as_str);
    let referenced = op
        .params
        .iter()
        .flat_map(|p| p.values())
        .filter_map(|param| param.reference.as_deref()?.strip_prefix("ops."));
    declared.chain(referenced).collect()
}

/// Kahn's order of a dependency graph (`node -> its upstream`), or a cycle.
pub fn topological_order(edges: &BTreeMap<&str, Vec<&str>>) -> Result<Vec<String>, Vec<String>> {
    let mut order = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < edges.len() {
        let ready: Vec<&str> = edges
            .iter()
            .filter(|(node, upstream)| {
                !done.contains(*node) && upstream.iter().all(|u| done.contains(u))
            })
            .map(|(node, _)| *node)
            .collect();
        if ready.is_empty() {
            // Follow upstream edges among the remaining nodes until one repeats.
            let mut path: Vec<&str> = Vec::new();
            let mut node = edges
                .keys()
                .copied()
                .find(|n| !done.contains(n))
                .unwrap_or_default();
            while !path.contains(&node) {
                path.push(node);
                node = edges[node]
                    .iter()
                    .copied()
                    .find(|u| !done.contains(u))
                    .unwrap_or(node);
            }
            let start = path.iter().position(|n| *n == node).unwrap_or(0);
            let mut cycle: Vec<String> = path[start..]
                .iter()
                .rev()
                .map(|s| (*s).to_owned())
                .collect();
            cycle.push(cycle[0].clone());
            return Err(cycle);
        }
        for node in ready {
            done.insert(node);
            order.push(node.to_owned());
        }
    }
    Ok(order)
}

fn to_json(value: &Value) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// Checks an operation's own keys and compiles it with its component.
fn compile_operation(
    op: &RawFile,
    component: &RawFile,
    at: &str,
    overrides: &BTreeMap<String, Json>,
    globals: &Globals,
) -> Result<CompiledRun, SpecError> {
    check_common(op, at)?;
    let run = required(&join(at, "run"), component.run.as_ref(), "`run`")?;
    let kind = run_kind(run, "run")?;
    let ios: Vec<&RawIo> = component
        .inputs
        .iter()
        .flatten()
        .chain(component.outputs.iter().flatten())
        .collect();
    let io_names: Vec<&str> = ios.iter().map(|io| io.name.as_str()).collect();

    let matrix = match &op.matrix {
        Some(matrix) => Some(check_matrix(matrix, &join(at, "matrix"), &io_names)?),
        None => None,
    };
    let matrix_params: BTreeSet<&str> = matrix
        .iter()
        .flat_map(|m| m.params.iter().map(String::as_str))
        .collect();
    if let Some(resource) = op.matrix.as_ref().and_then(|m| m.resource.as_ref())
        && let Some(io) = ios.iter().find(|io| io.name == resource.name)
    {
        check_resource_type(resource, io, &join(at, "matrix.resource.type"))?;
    }

    let mut inputs = Map::new();
    let mut refs = BTreeMap::new();
    let mut params: BTreeMap<String, RawParam> = op.params.clone().unwrap_or_default();
    for (name, value) in overrides {
        params.insert(
            name.clone(),
            RawParam {
                value: serde_yaml::to_value(value).ok(),
                reference: None,
                context_only: None,
                connection: None,
                to_init: None,
                to_env: None,
            },
        );
    }
    for (name, param) in &params {
        let path = format!("{}.{name}", join(at, "params"));
        let context_only = param.context_only.unwrap_or(false);
        let Some(io) = ios.iter().find(|io| io.name == *name) else {
            if context_only {
                continue;
            }
            return Err(SpecError::at(
                path,
                format!("`{name}` is not an input or output of the component; declare it, or mark the param `contextOnly: true`"),
            )
            .suggest(closest(name, &io_names)));
        };
        if matrix_params.contains(name.as_str()) {
            return Err(SpecError::at(
                path,
                format!("`{name}` is set both by a param and by the matrix"),
            ));
        }
        if let Some(reference) = &param.reference {
            check_reference(reference, &join(&path, "ref"))?;
            if param.value.as_ref().is_some_and(|v| !v.is_string()) {
                return Err(SpecError::at(
                    path,
                    format!(
                        "with `ref`, the `value` of `{name}` names what to take from it (a string such as `outputs.loss`)"
                    ),
                ));
            }
            let value = param
                .value
                .as_ref()
                .and_then(|v| v.as_str().map(str::to_owned));
            refs.insert(
                name.clone(),
                ParamRef {
                    reference: reference.clone(),
                    value,
                },
            );
            continue;
        }
        let value = to_json(param.value.as_ref().unwrap_or(&Value::Null));
        let io_type = io_type(io, "inputs")?;
        if value.is_null() && !io.is_optional.unwrap_or(false) {
            return Err(SpecError::at(
                path,
                format!("param `{name}` needs a `value` (or a `ref`)"),
            ));
        }
        if !value.is_null() {
            check_value(io_type, io, &value)
                .map_err(|e| SpecError::at(path.clone(), format!("param `{name}`: {e}")))?;
        }
        inputs.insert(name.clone(), value);
    }
    // Joins fill params from the runs they select, when the run starts.
    let joined: BTreeSet<&str> = op
        .joins
        .iter()
        .flatten()
        .flat_map(|j| j.params.iter().flat_map(|p| p.keys().map(String::as_str)))
        .collect();
    for io in component.inputs.iter().flatten() {
        let given = inputs.contains_key(&io.name)
            || refs.contains_key(&io.name)
            || matrix_params.contains(io.name.as_str())
            || joined.contains(io.name.as_str());
        if given {
            continue;
        }
        match &io.value {
            Some(default) => {
                inputs.insert(io.name.clone(), to_json(default));
            }
            None if io.is_optional.unwrap_or(false) => {
                inputs.insert(io.name.clone(), Json::Null);
            }
            None => {
                return Err(SpecError::at(
                    join(at, "params"),
                    format!(
                        "input `{}` is required: give it a param, a default `value`, or mark it `isOptional: true`",
                        io.name
                    ),
                ));
            }
        }
    }

    if let Some(schedule) = &op.schedule {
        check_schedule(schedule, &join(at, "schedule"))?;
    }
    for (i, join_spec) in op.joins.iter().flatten().enumerate() {
        let path = format!("{}[{i}]", join(at, "joins"));
        Query::parse(&join_spec.query)
            .map_err(|e| SpecError::at(join(&path, "query"), e.message))?;
        if let Some(sort) = &join_spec.sort {
            crate::listing::RunSort::parse(Some(sort))
                .map_err(|e| SpecError::at(join(&path, "sort"), e.to_string()))?;
        }
    }
    if let Some(trigger) = &op.trigger {
        one_of(&join(at, "trigger"), "trigger", trigger, TRIGGERS)?;
    }

    // Templates: params known now are rendered; params a matrix, a ref or
    // the server fills later stay as written.
    let mut deferred: BTreeSet<String> = matrix_params.iter().map(|s| (*s).to_owned()).collect();
    deferred.extend(refs.keys().cloned());
    deferred.extend(joined.iter().map(|s| (*s).to_owned()));
    for (name, param) in &params {
        if param.context_only.unwrap_or(false)
            && !inputs.contains_key(name)
            && let Some(value) = &param.value
        {
            inputs.insert(name.clone(), to_json(value));
        }
    }
    let scope = Scope {
        values: &inputs,
        deferred: &deferred,
        globals,
    };
    let container = match (&run.container, kind) {
        (Some(container), RunKind::Job | RunKind::Service) => {
            Some(render_container(container, &scope)?)
        }
        _ => None,
    };
    let mut init = Vec::new();
    for (i, step) in run.init.iter().flatten().enumerate() {
        let at = format!("run.init[{i}]");
        let rendered = |text: &str, key: &str| {
            render(text, &scope).map_err(|e| SpecError::at(format!("{at}.{key}"), e))
        };
        if let Some(git) = &step.git {
            let url = git
                .url
                .as_deref()
                .map(|u| rendered(u, "git.url"))
                .transpose()?;
            match url {
                Some(url) => init.push(InitStep::Git {
                    url,
                    revision: git.revision.clone(),
                    path: step.path.clone(),
                }),
                None => init.push(InitStep::Other {
                    what: "git from a connection".to_owned(),
                }),
            }
        } else if let Some(file) = &step.file {
            let filename = file.filename.clone().unwrap_or_else(|| "file".to_owned());
            if filename.starts_with('/') || filename.split('/').any(|part| part == "..") {
                return Err(SpecError::at(
                    format!("{at}.file.filename"),
                    format!("`{filename}` must be a relative path inside the run's directory"),
                ));
            }
            init.push(InitStep::File {
                filename,
                content: rendered(&file.content, "file.content")?,
                chmod: file.chmod.clone(),
            });
        } else {
            let what = if step.artifacts.is_some() {
                "artifacts"
            } else if step.dockerfile.is_some() {
                "dockerfile"
            } else if step.paths.is_some() {
                "paths"
            } else {
                "a custom init container"
            };
            init.push(InitStep::Other {
                what: what.to_owned(),
            });
        }
    }
    let dag_order = match kind {
        RunKind::Dag => dag_order(run),
        _ => Vec::new(),
    };
    let termination = op.termination.as_ref().or(component.termination.as_ref());
    let as_u = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(CompiledRun {
        kind,
        name: op.name.clone().or_else(|| component.name.clone()),
        description: op
            .description
            .clone()
            .or_else(|| component.description.clone()),
        tags: op
            .tags
            .clone()
            .or_else(|| component.tags.clone())
            .unwrap_or_default(),
        component: component.name.clone(),
        queue: op.queue.clone().or_else(|| component.queue.clone()),
        presets: op
            .presets
            .clone()
            .or_else(|| component.presets.clone())
            .unwrap_or_default(),
        inputs,
        refs,
        matrix,
        container,
        ports: run.ports.clone().unwrap_or_default(),
        rewrite_path: run.rewrite_path.unwrap_or(false),
        dag_order,
        init,
        schedule: op.schedule.as_ref().and_then(|s| s.kind.clone()),
        max_retries: as_u(termination.and_then(|t| t.max_retries))
            .and_then(|v| u32::try_from(v).ok()),
        timeout: as_u(termination.and_then(|t| t.timeout)),
        ttl: as_u(termination.and_then(|t| t.ttl)),
        culling: as_u(
            termination
                .and_then(|t| t.culling.as_ref())
                .and_then(|c| c.timeout),
        ),
    })
}

fn dag_order(run: &RawRun) -> Vec<String> {
    let operations = run.operations.as_deref().unwrap_or_default();
    let names: Vec<&str> = operations
        .iter()
        .filter_map(|op| op.name.as_deref())
        .collect();
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, op) in names.iter().zip(operations) {
        let upstream = upstream_of(op);
        edges.insert(name, upstream);
    }
    topological_order(&edges).unwrap_or_default()
}

fn check_reference(reference: &str, path: &str) -> Result<(), SpecError> {
    let valid = ["ops.", "runs.", "dag", "globals"]
        .iter()
        .any(|prefix| reference.starts_with(prefix));
    if valid {
        Ok(())
    } else {
        Err(SpecError::at(
            path,
            format!(
                "`{reference}` is not a reference; use `ops.<operation>`, `runs.<uuid>`, `dag` or `globals`"
            ),
        ))
    }
}

fn render_container(
    container: &RawContainer,
    scope: &Scope<'_>,
) -> Result<ContainerSpec, SpecError> {
    let render_all = |key: &str, items: &Option<Vec<String>>| -> Result<Vec<String>, SpecError> {
        items
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, item)| {
                render(item, scope)
                    .map_err(|e| SpecError::at(format!("run.container.{key}[{i}]"), e))
            })
            .collect()
    };
    let mut env = BTreeMap::new();
    for (i, var) in container.env.iter().flatten().enumerate() {
        let value = match var.value.as_ref().and_then(Value::as_str) {
            Some(value) => render(value, scope)
                .map_err(|e| SpecError::at(format!("run.container.env[{i}].value"), e))?,
            None => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    Ok(ContainerSpec {
        image: match &container.image {
            Some(image) => {
                Some(render(image, scope).map_err(|e| SpecError::at("run.container.image", e))?)
            }
            None => None,
        },
        command: render_all("command", &container.command)?,
        args: render_all("args", &container.args)?,
        env,
    })
}

fn check_matrix(matrix: &RawMatrix, at: &str, inputs: &[&str]) -> Result<MatrixSummary, SpecError> {
    let kind = required(&join(at, "kind"), matrix.kind.as_deref(), "`kind`")?;
    let kind = one_of(&join(at, "kind"), "matrix kind", kind, MATRIX_KINDS)?;
    let mut params: Vec<String> = Vec::new();
    if kind == "mapping" {
        let values = required(
            &join(at, "values"),
            matrix.values.as_ref(),
            "`values` (a list of param mappings)",
        )?;
        for (i, row) in values.iter().enumerate() {
            for name in row.keys() {
                if !inputs.contains(&name.as_str()) {
                    return Err(SpecError::at(
                        format!("{}[{i}].{name}", join(at, "values")),
                        format!("`{name}` is not an input of the component"),
                    )
                    .suggest(closest(name, inputs)));
                }
                if !params.contains(name) {
                    params.push(name.clone());
                }
            }
        }
    } else {
        let generators = required(&join(at, "params"), matrix.params.as_ref(), "`params`")?;
        for (name, generator) in generators {
            let path = format!("{}.{name}", join(at, "params"));
            if !inputs.contains(&name.as_str()) {
                return Err(SpecError::at(
                    path,
                    format!("`{name}` is not an input of the component"),
                )
                .suggest(closest(name, inputs)));
            }
            check_generator(generator, &path, kind)?;
            params.push(name.clone());
        }
    }
    let needs_metric = matches!(kind, "hyperband" | "bayes" | "hyperopt");
    if needs_metric {
        let metric = required(
            &join(at, "metric"),
            matrix.metric.as_ref(),
            "`metric` (name and optimization)",
        )?;
        if let Some(optimization) = &metric.optimization {
            one_of(
                &join(at, "metric.optimization"),
                "optimization",
                optimization,
                &["maximize", "minimize"],
            )?;
        }
    }
    match kind {
        "random" | "hyperopt" => {
            required(
                &join(at, "numRuns"),
                matrix.num_runs.or(matrix.max_iterations),
                "`numRuns`",
            )?;
        }
        "hyperband" => {
            required(
                &join(at, "maxIterations"),
                matrix.max_iterations,
                "`maxIterations`",
            )?;
            let resource = required(
                &join(at, "resource"),
                matrix.resource.as_ref(),
                "`resource` (name and type)",
            )?;
            if let Some(kind) = &resource.kind {
                one_of(
                    &join(at, "resource.type"),
                    "resource type",
                    kind,
                    &["int", "float"],
                )?;
            }
            // The sweep gives every trial its budget as this param, so it
            // must be an input, and one the user does not have to give.
            if !inputs.contains(&resource.name.as_str()) {
                return Err(SpecError::at(
                    join(at, "resource.name"),
                    format!(
                        "the resource `{}` is passed to every trial as a param, so it must be an input of the component",
                        resource.name
                    ),
                )
                .suggest(closest(&resource.name, inputs)));
            }
            if !params.contains(&resource.name) {
                params.push(resource.name.clone());
            }
            if matrix.eta.is_some_and(|eta| eta <= 1.0) {
                return Err(SpecError::at(
                    join(at, "eta"),
                    "`eta` must be greater than 1",
                ));
            }
        }
        "bayes" => {
            if let Some(utility) = &matrix.utility_function {
                let path = join(at, "utilityFunction");
                if let Some(acquisition) = &utility.acquisition_function {
                    one_of(
                        &join(&path, "acquisitionFunction"),
                        "acquisition function",
                        acquisition,
                        &["ucb", "ei", "poi"],
                    )?;
                }
                if let Some(kernel) = utility
                    .gaussian_process
                    .as_ref()
                    .and_then(|g| g.kernel.as_ref())
                {
                    one_of(
                        &join(&path, "gaussianProcess.kernel"),
                        "kernel",
                        kernel,
                        &["rbf", "matern"],
                    )?;
                }
            }
        }
        _ => {}
    }
    if let Some(algorithm) = &matrix.algorithm {
        one_of(
            &join(at, "algorithm"),
            "algorithm",
            algorithm,
            &["tpe", "rand", "anneal"],
        )?;
    }
    for (i, rule) in matrix.early_stopping.iter().flatten().enumerate() {
        check_early_stopping(rule, &format!("{}[{i}]", join(at, "earlyStopping")))?;
    }
    Ok(MatrixSummary {
        kind: kind.to_owned(),
        params,
    })
}

/// Hyperband's resource fills an input: their types must agree (a float
/// budget such as 0.33 epochs in an `int` input would be refused per trial).
fn check_resource_type(resource: &RawResource, io: &RawIo, at: &str) -> Result<(), SpecError> {
    let wanted = match resource.kind.as_deref() {
        Some("float") => IoType::Float,
        _ => IoType::Int,
    };
    let declared = io_type(io, "inputs")?;
    if declared == IoType::Any || declared == wanted {
        return Ok(());
    }
    Err(SpecError::at(
        at.to_owned(),
        format!(
            "the resource `{}` is of type `{}` but the input `{}` is declared `{}`; make them the same",
            resource.name,
            resource.kind.as_deref().unwrap_or("int"),
            io.name,
            io.kind.as_deref().unwrap_or("any"),
        ),
    ))
}

fn check_generator(generator: &RawGenerator, at: &str, matrix: &str) -> Result<(), SpecError> {
    let kind = required(&join(at, "kind"), generator.kind.as_deref(), "`kind`")?;
    let kind = one_of(&join(at, "kind"), "param generator", kind, GENERATORS)?;
    let value = required(&join(at, "value"), generator.value.as_ref(), "`value`")?;
    let path = join(at, "value");
    let number = |key: &str| value.get(key).and_then(Value::as_f64);
    let fail = |expected: &str| {
        Err(SpecError::at(
            path.clone(),
            format!("a `{kind}` generator takes {expected}"),
        ))
    };
    match kind {
        "choice" => {
            if value.as_sequence().is_none_or(|s| s.is_empty()) {
                return fail("a non-empty list of values");
            }
        }
        "pchoice" => {
            let Some(items) = value.as_sequence() else {
                return fail("a list of [value, probability] pairs");
            };
            let mut total = 0.0;
            for item in items {
                let p = item
                    .as_sequence()
                    .filter(|pair| pair.len() == 2)
                    .and_then(|pair| pair[1].as_f64());
                match p {
                    Some(p) if (0.0..=1.0).contains(&p) => total += p,
                    _ => {
                        return fail(
                            "a list of [value, probability] pairs with probabilities between 0 and 1",
                        );
                    }
                }
            }
            if (total - 1.0).abs() > 1e-6 {
                return Err(SpecError::at(
                    path,
                    format!("`pchoice` probabilities must add up to 1, they add up to {total}"),
                ));
            }
        }
        "range" => {
            let ok = match value {
                Value::Sequence(items) => {
                    items.len() == 3 && items.iter().all(|v| v.as_f64().is_some())
                }
                Value::Mapping(_) => {
                    number("start").is_some()
                        && number("stop").is_some()
                        && number("step").is_some_and(|s| s != 0.0)
                }
                Value::String(text) => {
                    text.split(':').count() == 3
                        && text.split(':').all(|p| p.trim().parse::<f64>().is_ok())
                }
                _ => false,
            };
            if !ok {
                return fail(
                    "`start`, `stop` and a non-zero `step` (a mapping, a list, or `start:stop:step`)",
                );
            }
        }
        "linspace" | "logspace" | "geomspace" => {
            let listed = value
                .as_sequence()
                .is_some_and(|s| (3..=4).contains(&s.len()));
            let text = value.as_str().is_some_and(|t| {
                let parts: Vec<&str> = t.split(':').collect();
                (3..=4).contains(&parts.len())
                    && parts.iter().all(|p| p.trim().parse::<f64>().is_ok())
            });
            if !(listed
                || text
                || (number("start").is_some()
                    && number("stop").is_some()
                    && number("num").is_some()))
            {
                return fail("`start`, `stop` and `num`");
            }
        }
        "uniform" | "loguniform" | "quniform" | "qloguniform" => {
            let (low, high) = match value {
                Value::Sequence(items) if items.len() >= 2 => {
                    (items[0].as_f64(), items[1].as_f64())
                }
                _ => (number("low"), number("high")),
            };
            match (low, high) {
                (Some(low), Some(high)) if low < high => {
                    if kind.starts_with("log") || kind.starts_with("qlog") {
                        // Polyaxon's log-uniform bounds are exponents; any order-checked pair is valid.
                    }
                }
                _ => return fail("`low` < `high`"),
            }
            if kind.starts_with('q')
                && number("q").is_none()
                && value.as_sequence().is_none_or(|s| s.len() < 3)
            {
                return fail("`low`, `high` and `q`");
            }
        }
        "normal" | "lognormal" | "qnormal" | "qlognormal" => {
            let (loc, scale, q) = match value {
                Value::Sequence(items) => (
                    items.first().and_then(Value::as_f64),
                    items.get(1).and_then(Value::as_f64),
                    items.get(2).and_then(Value::as_f64),
                ),
                _ => (number("loc"), number("scale"), number("q")),
            };
            if loc.is_none() || scale.is_none_or(|s| s <= 0.0) {
                return fail("`loc` and a positive `scale`");
            }
            if kind.starts_with('q') && q.is_none() {
                return fail("`loc`, `scale` and `q`");
            }
        }
        _ => {
            // daterange, datetimerange: a mapping, a list, or `start:stop:step`.
            let ok = match value {
                Value::Mapping(_) => {
                    value.get("start").is_some()
                        && value.get("stop").is_some()
                        && value.get("step").is_some()
                }
                Value::Sequence(items) => items.len() == 3,
                Value::String(text) => text.split(':').count() >= 3,
                _ => false,
            };
            if !ok {
                return fail("`start`, `stop` and `step`");
            }
        }
    }
    let continuous = matches!(
        kind,
        "uniform"
            | "loguniform"
            | "quniform"
            | "qloguniform"
            | "normal"
            | "lognormal"
            | "qnormal"
            | "qlognormal"
    );
    if matrix == "grid" && continuous {
        return Err(SpecError::at(
            join(at, "kind"),
            format!(
                "a grid search needs discrete values; `{kind}` is continuous (use choice, range, linspace, ...)"
            ),
        ));
    }
    Ok(())
}

fn check_schedule(schedule: &RawSchedule, at: &str) -> Result<(), SpecError> {
    let kind = required(&join(at, "kind"), schedule.kind.as_deref(), "`kind`")?;
    match one_of(
        &join(at, "kind"),
        "schedule kind",
        kind,
        &["cron", "interval", "datetime"],
    )? {
        "cron" => {
            let cron = required(&join(at, "cron"), schedule.cron.as_deref(), "`cron`")?;
            super::types::check_cron(cron).map_err(|e| SpecError::at(join(at, "cron"), e))?;
        }
        "interval" => {
            required(
                &join(at, "frequency"),
                schedule.frequency.as_ref(),
                "`frequency` (seconds)",
            )?;
        }
        _ => {
            required(
                &join(at, "startAt"),
                schedule.start_at.as_ref(),
                "`startAt`",
            )?;
        }
    }
    for (key, value) in [("startAt", &schedule.start_at), ("endAt", &schedule.end_at)] {
        if let Some(value) = value
            && chrono::DateTime::parse_from_rfc3339(value).is_err()
            && chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M").is_err()
            && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err()
        {
            return Err(SpecError::at(
                join(at, key),
                format!("`{value}` is not a date or time"),
            ));
        }
    }
    Ok(())
}
