//! Pipeline controllers: `matrix` runs (sweeps) and `dag` runs.
//!
//! A controller run executes nothing itself. Every scheduler tick,
//! `drive` reads each active controller's children back from the
//! database (`runs.pipeline_id`), asks the pure decisions in
//! `trellis_domain` what to do (`sweep::plan::Matrix::next`,
//! `dag::advance`, `sweep::stopping::judge`), creates or stops children,
//! and moves the controller to its outcome once every child is done. The
//! children are ordinary runs that queue for slots like any other. Since
//! the controller's state is its children, a server restart loses nothing
//! and creates nothing twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use trellis_api_types as api;
use trellis_db::runs::RunRow;
use trellis_domain::dag::{self, Decision, OpState};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::run::RunKind;
use trellis_domain::spec::pipeline::{self, DagPlan, RefScope, RefTarget};
use trellis_domain::sweep::plan::{Matrix, TrialView};
use trellis_domain::sweep::stopping::{self, Progress, Rule};

use crate::{ServiceResult, Services};

/// Drives every active controller once; how many there were.
pub(crate) async fn drive(services: &Services) -> ServiceResult<usize> {
    let controllers = trellis_db::runs::controllers(&services.db, 1000).await?;
    let count = controllers.len();
    for controller in controllers {
        let result = match controller.kind {
            Some(RunKind::Matrix) => drive_matrix(services, &controller).await,
            Some(RunKind::Dag) => drive_dag(services, &controller).await,
            _ => Ok(()),
        };
        if let Err(error) = result {
            // One broken controller must not stall the others; it fails
            // with the reason on record.
            tracing::error!(run.id = %controller.uuid, error = ?error, "pipeline {} failed: {error}", controller.uuid);
            let message = format!("The pipeline controller failed: {error}");
            services
                .runs()
                .advance(
                    controller.uuid,
                    RunStatus::Failed,
                    "PipelineError",
                    Some(&message),
                )
                .await?;
        }
    }
    Ok(count)
}

/// Asks a child to stop (pending children stop at once).
async fn stop_child(
    services: &Services,
    child: &RunRow,
    reason: &str,
    message: &str,
) -> ServiceResult<()> {
    if child.status.is_done() {
        return Ok(());
    }
    let Some(target) = child.status.stop_target() else {
        return Ok(());
    };
    services
        .runs()
        .advance(child.uuid, target, reason, Some(message))
        .await?;
    Ok(())
}

/// A controller asked to stop: stop its children, then itself.
async fn wind_down(
    services: &Services,
    controller: &RunRow,
    children: &[RunRow],
) -> ServiceResult<()> {
    for child in children {
        stop_child(
            services,
            child,
            "PipelineStopped",
            "The pipeline that created it was stopped",
        )
        .await?;
    }
    let children = trellis_db::runs::children(&services.db, controller.id).await?;
    if children.iter().all(|c| c.status.is_done()) {
        services
            .runs()
            .advance(
                controller.uuid,
                RunStatus::Stopped,
                "Stopped",
                Some("Stopped on request"),
            )
            .await?;
    }
    Ok(())
}

/// The matrix and trial file of sweep `run`, as compiled at submission.
async fn sweep_of(services: &Services, run: &RunRow) -> ServiceResult<pipeline::Sweep> {
    let stored = services.runs().stored_spec(run).await?;
    stored
        .sweep
        .ok_or_else(|| crate::ServiceError::invalid("content", "the sweep's spec has no `matrix`"))
}

/// The operations of dag `run`, as compiled at submission.
async fn dag_of(services: &Services, run: &RunRow) -> ServiceResult<DagPlan> {
    let stored = services.runs().stored_spec(run).await?;
    stored
        .dag
        .ok_or_else(|| crate::ServiceError::invalid("content", "the dag's spec has no operations"))
}

/// A stable default seed per sweep: the first bytes of its uuid.
fn seed_of(run: &RunRow) -> u64 {
    let bytes = run.uuid.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default())
}

async fn drive_matrix(services: &Services, controller: &RunRow) -> ServiceResult<()> {
    let children = trellis_db::runs::children(&services.db, controller.id).await?;
    if controller.status == RunStatus::Stopping {
        services.stopping_series.forget(controller.id);
        return wind_down(services, controller, &children).await;
    }
    let sweep = sweep_of(services, controller).await?;
    let matrix = Matrix::from_raw(&sweep.matrix, seed_of(controller))
        .map_err(|e| crate::ServiceError::invalid("matrix", e))?;
    let ids: Vec<i64> = children.iter().map(|c| c.id).collect();
    let metric = matrix.objective.as_ref().map(|o| o.metric.clone());
    let latest: BTreeMap<i64, f64> = match &metric {
        Some(key) if !ids.is_empty() => {
            trellis_db::tracking::summaries(&services.db, &ids, Some(key))
                .await?
                .into_iter()
                .filter(|s| !s.last.is_nan)
                .map(|s| (s.run_id, s.last.value))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    let params: Vec<&String> = matrix.space.params.iter().map(|(name, _)| name).collect();
    let trials: Vec<TrialView> = children
        .iter()
        .map(|child| TrialView {
            params: child
                .inputs
                .iter()
                .filter(|(k, _)| params.contains(k) || is_resource(&matrix, k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            done: child.status.is_done(),
            // The tracked metric, else an output of that name.
            value: metric.as_ref().and_then(|key| {
                latest
                    .get(&child.id)
                    .copied()
                    .or_else(|| child.outputs.get(key).and_then(Json::as_f64))
            }),
        })
        .collect();

    // Early stopping, judged on every tick while trials run.
    let mut stop_sweep = None;
    for rule in &matrix.early_stopping {
        let progress = progress_of(services, controller.id, rule, &children).await?;
        let verdict = stopping::judge(rule, &progress);
        for index in verdict.stop_trials {
            if let Some(child) = children.get(index) {
                stop_child(
                    services,
                    child,
                    "EarlyStopped",
                    "Stopped by the sweep's early stopping policy",
                )
                .await?;
            }
        }
        if stop_sweep.is_none() {
            stop_sweep = verdict.stop_sweep;
        }
    }
    if let Some(reason) = &stop_sweep {
        for child in &children {
            stop_child(services, child, "EarlyStopped", reason).await?;
        }
    } else {
        // A GP suggestion over hundreds of trials takes a fair part of a
        // second of CPU: off the async workers, so requests and log
        // streams are not held up behind it.
        let next = {
            let (matrix, trials) = (matrix.clone(), trials.clone());
            tokio::task::spawn_blocking(move || matrix.next(&trials, usize::MAX))
                .await
                .map_err(|e| {
                    crate::ServiceError::Dependency(format!("the sweep's optimizer failed: {e}"))
                })?
        };
        for (offset, params) in next.into_iter().enumerate() {
            let index = children.len() + offset;
            let name = format!("{}-{index}", controller.name.as_deref().unwrap_or("trial"));
            let input = api::CreateRun {
                name: Some(name),
                description: None,
                tags: Some(controller.tags.clone()),
                content: Some(sweep.trial_content.clone()),
                params: Some(params.into_iter().collect()),
            };
            services
                .runs()
                .create_child(controller, input, None, Some(index as i64))
                .await?;
        }
    }
    let children = trellis_db::runs::children(&services.db, controller.id).await?;
    let all_done = children.iter().all(|c| c.status.is_done());
    let finished = all_done && (stop_sweep.is_some() || matrix.finished(&trials));
    if !finished {
        return Ok(());
    }
    services.stopping_series.forget(controller.id);
    // The sweep's outcome: its best trial, recorded as outputs.
    let mut outputs = Map::new();
    outputs.insert("trials".into(), Json::from(children.len()));
    let best = matrix
        .best(&trials)
        .and_then(|i| Some((i, children.get(i)?)));
    let message = match (best, &metric) {
        (Some((i, child)), Some(key)) => {
            let value = trials[i].value.unwrap_or(f64::NAN);
            outputs.insert("best_run".into(), Json::from(child.uuid.to_string()));
            outputs.insert(
                "best_params".into(),
                Json::Object(trials[i].params.clone().into_iter().collect()),
            );
            outputs.insert(key.clone(), Json::from(value));
            format!(
                "{} trials; the best is {} with {key} = {value}",
                children.len(),
                child.uuid
            )
        }
        _ => format!("{} trials", children.len()),
    };
    trellis_db::runs::merge_outputs(&services.db, controller.id, &outputs, services.now()).await?;
    let message = match stop_sweep {
        Some(reason) => format!("Early stopping: {reason}. {message}"),
        None => message,
    };
    services
        .runs()
        .advance(
            controller.uuid,
            RunStatus::Succeeded,
            "Succeeded",
            Some(&message),
        )
        .await?;
    Ok(())
}

fn is_resource(matrix: &Matrix, key: &str) -> bool {
    matches!(&matrix.algorithm, trellis_domain::sweep::plan::Algorithm::Hyperband { resource, .. } if resource == key)
}

/// A sweep's trials' series of one metric, as (step, value) without NaN,
/// with the summary's point count they were read at.
type SweepSeries = BTreeMap<(i64, String), (i64, Arc<[(i64, f64)]>)>;

/// The series early stopping has read, by sweep (controller run id).
/// Judging reads every trial's series on every tick; a trial that has
/// logged nothing since (every finished trial) is served from here, so a
/// tick reads one summary row per trial and the series of the trials that
/// grew. A point's count is committed with the point, so a count that
/// did not change means a series that did not change.
#[derive(Clone, Default)]
pub(crate) struct SeriesCache(Arc<Mutex<BTreeMap<i64, SweepSeries>>>);

impl SeriesCache {
    /// The sweep's series of `metric`, removed from the cache.
    fn take(&self, sweep: i64, metric: &str) -> SweepSeries {
        let Ok(mut all) = self.0.lock() else {
            return SweepSeries::new();
        };
        let Some(series) = all.get_mut(&sweep) else {
            return SweepSeries::new();
        };
        let (taken, rest) = std::mem::take(series)
            .into_iter()
            .partition(|((_, key), _)| key == metric);
        *series = rest;
        taken
    }

    fn keep(&self, sweep: i64, series: SweepSeries) {
        if let Ok(mut all) = self.0.lock() {
            all.entry(sweep).or_default().extend(series);
        }
    }

    /// Forgets a sweep that has finished.
    fn forget(&self, sweep: i64) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(&sweep);
        }
    }
}

/// Each trial's series of the rule's metric (failure rules need none).
async fn progress_of(
    services: &Services,
    sweep: i64,
    rule: &Rule,
    children: &[RunRow],
) -> ServiceResult<Vec<Progress>> {
    let progress = |child: &RunRow, series| Progress {
        running: !child.status.is_done(),
        failed: matches!(child.status, RunStatus::Failed | RunStatus::UpstreamFailed),
        series,
    };
    let Rule::Metric { metric, .. } = rule else {
        return Ok(children
            .iter()
            .map(|c| progress(c, Arc::from([])))
            .collect());
    };
    let mut cached = services.stopping_series.take(sweep, metric);
    let mut kept = SweepSeries::new();
    let counts: BTreeMap<i64, i64> = {
        let ids: Vec<i64> = children.iter().map(|c| c.id).collect();
        trellis_db::tracking::summaries(&services.db, &ids, Some(metric))
            .await?
            .into_iter()
            .map(|s| (s.run_id, s.count))
            .collect()
    };
    let mut out = Vec::with_capacity(children.len());
    for child in children {
        let count = counts.get(&child.id).copied().unwrap_or(0);
        let slot = (child.id, metric.clone());
        let series = match cached.remove(&slot) {
            Some((seen, series)) if seen == count => series,
            _ if count == 0 => Arc::from([]),
            _ => trellis_db::tracking::series(&services.db, child.id, metric, None)
                .await?
                .into_iter()
                .filter(|p| !p.is_nan)
                .map(|p| (p.point.step, p.point.value))
                .collect(),
        };
        kept.insert(slot, (count, Arc::clone(&series)));
        out.push(progress(child, series));
    }
    services.stopping_series.keep(sweep, kept);
    Ok(out)
}

fn op_state(status: RunStatus) -> OpState {
    match status {
        RunStatus::Succeeded => OpState::Succeeded,
        RunStatus::Failed => OpState::Failed,
        RunStatus::Stopped => OpState::Stopped,
        RunStatus::Skipped => OpState::Skipped,
        RunStatus::UpstreamFailed => OpState::UpstreamFailed,
        _ => OpState::Running,
    }
}

/// Each operation's run (by name) and state; an operation without a run
/// is waiting.
fn op_states<'a>(
    plan: &DagPlan,
    children: &'a [RunRow],
) -> (BTreeMap<&'a str, &'a RunRow>, Vec<OpState>) {
    let by_op: BTreeMap<&str, &RunRow> = children
        .iter()
        .filter_map(|c| Some((c.pipeline.as_ref()?.op.as_deref()?, c)))
        .collect();
    let states = plan
        .ops
        .iter()
        .map(|op| {
            by_op
                .get(op.name.as_str())
                .map_or(OpState::Waiting, |c| op_state(c.status))
        })
        .collect();
    (by_op, states)
}

fn target(run: &RunRow) -> RefTarget {
    RefTarget {
        uuid: run.uuid.simple().to_string(),
        name: run.name.clone(),
        status: run.status.to_string(),
        inputs: run.inputs.clone(),
        outputs: run.outputs.clone(),
    }
}

/// The runs that `runs.<uuid>` references name, by the uuid as written.
/// One that is not a uuid, or names no run (or a deleted one), is left
/// out, and resolving its reference says so.
pub(crate) async fn referenced_runs<'a>(
    services: &Services,
    uuids: impl Iterator<Item = &'a str>,
) -> ServiceResult<BTreeMap<String, RefTarget>> {
    let mut out = BTreeMap::new();
    for written in uuids {
        if out.contains_key(written) {
            continue;
        }
        let Ok(uuid) = uuid::Uuid::parse_str(written) else {
            continue;
        };
        if let Some(run) = trellis_db::runs::find_any(&services.db, uuid).await?
            && run.deleted_at.is_none()
        {
            out.insert(written.to_owned(), target(&run));
        }
    }
    Ok(out)
}

async fn drive_dag(services: &Services, controller: &RunRow) -> ServiceResult<()> {
    let children = trellis_db::runs::children(&services.db, controller.id).await?;
    if controller.status == RunStatus::Stopping {
        return wind_down(services, controller, &children).await;
    }
    let plan: DagPlan = dag_of(services, controller).await?;
    let (by_op, states) = op_states(&plan, &children);
    let upstream: BTreeMap<String, RefTarget> = by_op
        .iter()
        .map(|(name, run)| ((*name).to_owned(), target(run)))
        .collect();
    let dag_target = target(controller);
    // Only operations still waiting resolve their references this tick.
    let waiting = plan
        .ops
        .iter()
        .zip(&states)
        .filter(|(_, state)| matches!(state, OpState::Waiting))
        .flat_map(|(op, _)| op.referenced_runs());
    let runs = referenced_runs(services, waiting).await?;
    let scope = RefScope {
        ops: &upstream,
        runs: &runs,
        dag: Some(&dag_target),
    };
    // Each operation's params (literal and resolved), computed once: the
    // condition and the child both need them.
    let mut resolved: BTreeMap<usize, Result<Map<String, Json>, String>> = BTreeMap::new();
    let ops: Vec<dag::Op> = plan.ops.iter().map(|o| o.op.clone()).collect();
    let mut condition_errors: BTreeMap<usize, String> = BTreeMap::new();
    let decisions = dag::advance(&ops, &states, plan.concurrency, |i| {
        let op = &plan.ops[i];
        let values = op.resolve(scope);
        let holds = match (&op.conditions, &values) {
            (Some(conditions), Ok(values)) => {
                let mut all = op.literal_params();
                all.extend(values.clone());
                match pipeline::condition_holds(conditions, &all) {
                    Ok(holds) => holds,
                    Err(error) => {
                        // Started, then failed with the reason below.
                        condition_errors.insert(i, format!("`conditions`: {error}"));
                        true
                    }
                }
            }
            _ => true,
        };
        resolved.insert(i, values);
        holds
    });
    for (i, decision) in decisions {
        let op = &plan.ops[i];
        let (status, reason, message) = match decision {
            Decision::Skip => (RunStatus::Skipped, "Skipped", skip_reason(op)),
            Decision::UpstreamFailed => (
                RunStatus::UpstreamFailed,
                "UpstreamFailed",
                "An upstream operation failed, as its trigger policy forbids".to_owned(),
            ),
            Decision::Start => {
                let values = match (condition_errors.remove(&i), resolved.remove(&i)) {
                    (Some(error), _) => Err(error),
                    (None, Some(values)) => values,
                    (None, None) => op.resolve(scope),
                };
                let content = values.and_then(|v| op.content(&v).map_err(|e| e.to_string()));
                match content {
                    Ok(content) => {
                        let input = api::CreateRun {
                            name: Some(op.name.clone()),
                            description: None,
                            tags: Some(controller.tags.clone()),
                            content: Some(content),
                            params: None,
                        };
                        match services
                            .runs()
                            .create_child(controller, input, Some(&op.name), None)
                            .await
                        {
                            Ok(_) => continue,
                            Err(crate::ServiceError::Invalid { message, .. }) => {
                                (RunStatus::Failed, "CompileError", message)
                            }
                            Err(other) => return Err(other),
                        }
                    }
                    Err(message) => (RunStatus::Failed, "CompileError", message),
                }
            }
        };
        // An operation that does not run still gets its run, so the dag's
        // view shows every operation and why it did not run.
        let input = api::CreateRun {
            name: Some(op.name.clone()),
            ..api::CreateRun::default()
        };
        let child = services
            .runs()
            .create_child(controller, input, Some(&op.name), None)
            .await?;
        services
            .runs()
            .advance(child.uuid, status, reason, Some(&message))
            .await?;
    }
    let children = trellis_db::runs::children(&services.db, controller.id).await?;
    let (_, states) = op_states(&plan, &children);
    let Some(outcome) = dag::outcome(&states) else {
        return Ok(());
    };
    let count = |s: OpState| states.iter().filter(|x| **x == s).count();
    let summary = format!(
        "{} operations: {} succeeded, {} failed, {} upstream failed, {} skipped, {} stopped",
        states.len(),
        count(OpState::Succeeded),
        count(OpState::Failed),
        count(OpState::UpstreamFailed),
        count(OpState::Skipped),
        count(OpState::Stopped)
    );
    let (status, reason) = match outcome {
        OpState::Failed => (RunStatus::Failed, "OperationFailed"),
        OpState::Stopped => (RunStatus::Stopped, "OperationStopped"),
        _ => (RunStatus::Succeeded, "Succeeded"),
    };
    services
        .runs()
        .advance(controller.uuid, status, reason, Some(&summary))
        .await?;
    Ok(())
}

fn skip_reason(op: &pipeline::DagOp) -> String {
    match &op.conditions {
        Some(conditions) => {
            format!("Its trigger policy or its conditions (`{conditions}`) are not met")
        }
        None => "Its trigger policy is not met".to_owned(),
    }
}

impl crate::runs::Runs<'_> {
    /// A matrix or dag run with its children, shaped for drawing.
    pub async fn pipeline(&self, at: crate::runs::RunRef<'_>) -> ServiceResult<api::PipelineView> {
        let run = self.row(at).await?;
        let children = self.children(at).await?;
        let mut view = api::PipelineView {
            children,
            operations: Vec::new(),
            sweep: None,
        };
        match run.kind {
            Some(RunKind::Dag) => {
                let plan = dag_of(self.services, &run).await?;
                let ops: Vec<dag::Op> = plan.ops.iter().map(|o| o.op.clone()).collect();
                let layers = dag::layers(&ops);
                view.operations = plan
                    .ops
                    .iter()
                    .zip(layers)
                    .map(|(op, layer)| api::PipelineOperation {
                        name: op.name.clone(),
                        upstream: op.op.upstream.clone(),
                        layer,
                        trigger: op.op.trigger.as_str().to_owned(),
                    })
                    .collect();
            }
            Some(RunKind::Matrix) => {
                let sweep = sweep_of(self.services, &run).await?;
                let matrix = Matrix::from_raw(&sweep.matrix, seed_of(&run))
                    .map_err(|e| crate::ServiceError::invalid("matrix", e))?;
                view.sweep = Some(api::SweepSettings {
                    algorithm: sweep.matrix.kind.clone().unwrap_or_default(),
                    total: matrix.total,
                    concurrency: matrix.concurrency,
                    seed: matrix.seed,
                    metric: matrix.objective.as_ref().map(|o| o.metric.clone()),
                    maximize: matrix
                        .objective
                        .as_ref()
                        .is_some_and(|o| o.goal == trellis_domain::sweep::stopping::Goal::Maximize),
                    // A mapping lists its params in its rows.
                    params: if matrix.space.params.is_empty() {
                        sweep
                            .matrix
                            .values
                            .iter()
                            .flatten()
                            .flat_map(|row| row.keys().cloned())
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect()
                    } else {
                        matrix
                            .space
                            .params
                            .iter()
                            .map(|(name, _)| name.clone())
                            .collect()
                    },
                });
            }
            _ => {
                return Err(crate::ServiceError::invalid(
                    "uuid",
                    format!(
                        "run {} is a {}, not a matrix or dag run",
                        run.uuid,
                        run.kind.map_or("tracked run", |k| k.as_str())
                    ),
                ));
            }
        }
        Ok(view)
    }
}
