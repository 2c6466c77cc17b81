//! The local executor: runs execute as processes on this host. The
//! embedded server uses it for its queues; each `trellis worker` uses it
//! for the runs it takes from the work queue.
//!
//! One execution: `scheduled → starting` (guarded, so exactly one executor
//! wins a run; one transaction with `queued → scheduled` when the
//! scheduler starts it here), the `init` steps, the process, `running` (for a service,
//! once its first port accepts connections), output stored line by line,
//! heartbeats and resource samples while it runs, and at the end the
//! domain's [`execution::conclude`] decides the final status or a retry.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use trellis_db::runs::Claim;
use trellis_domain::execution::{
    self, Ending, ExecutorKind, Finish, Outcome, Retries, RunContext, ServiceAddress,
};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::logs::LogLine;
use trellis_domain::run::RunKind;
use trellis_domain::scheduling::ExecutorName;
use trellis_domain::spec::Globals;
use trellis_events::Event;
use trellis_executor::{Finished, ProcessSpec};
use uuid::Uuid;

use super::init::prepare;
use super::{Assignment, Executor, RunHandle};
use crate::{ServiceResult, Services};

/// How the local executor runs processes.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Runs' working directories go under `<data_dir>/runs/<uuid>`.
    pub data_dir: PathBuf,
    /// The server's URL, given to runs as `TRELLIS_HOST` and `MLFLOW_TRACKING_URI`.
    pub base_url: String,
    /// Who executes, as recorded on runs: `local:<host>` or `worker:<id>`.
    pub executor_id: String,
    /// How long a stopped process gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How often an executing run reports that it is alive.
    pub heartbeat: Duration,
    /// How often the CPU, memory and GPU use of a run's processes is
    /// recorded as `system/*` metrics; `None` records none.
    pub system_metrics: Option<Duration>,
    /// The host name or address the server reaches this host's services
    /// at (a worker's `--advertise-host`). With one, services listen on
    /// every interface; without, only on 127.0.0.1, for the proxy of the
    /// server on this host.
    pub advertise_host: Option<String>,
}

impl LocalConfig {
    /// The defaults: 10 s grace, heartbeats every 5 s, usage every 10 s.
    pub fn new(data_dir: PathBuf, base_url: String, executor_id: String) -> Self {
        Self {
            data_dir,
            base_url,
            executor_id,
            grace: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            system_metrics: Some(Duration::from_secs(10)),
            advertise_host: None,
        }
    }

    /// Where a service listens (`globals.host`) and the host recorded for
    /// the proxy to dial.
    fn service_hosts(&self) -> (&str, &str) {
        match &self.advertise_host {
            Some(advertised) => ("0.0.0.0", advertised),
            None => ("127.0.0.1", "127.0.0.1"),
        }
    }

    /// What this executor's going away means for its runs: a worker's are
    /// handed back to the queue, the server's fail.
    pub fn executor_kind(&self) -> ExecutorKind {
        if self.executor_id.starts_with("worker:") {
            ExecutorKind::Worker(self.executor_id.clone())
        } else {
            ExecutorKind::Server
        }
    }
}

/// Processes on this host; see the module documentation.
#[derive(Clone)]
pub struct LocalExecutor {
    services: Services,
    config: Arc<LocalConfig>,
    /// Cancelled on shutdown; every execution watches it.
    shutdown: CancellationToken,
    /// Executions by run, so a finished one can be forgotten.
    running: Arc<Mutex<HashMap<Uuid, tokio::task::JoinHandle<()>>>>,
}

impl LocalExecutor {
    pub fn new(services: Services, config: LocalConfig, shutdown: CancellationToken) -> Self {
        Self {
            services,
            config: Arc::new(config),
            shutdown,
            running: Arc::default(),
        }
    }

    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// Executes `run`, which is `scheduled` for this executor (a worker's
    /// delivery), to its end (or until it is taken away or the executor
    /// shuts down). Nothing happens if another executor took it first or
    /// it was stopped before it started.
    pub async fn execute(&self, mut run: RunHandle) {
        match self.claim(&mut run, &[]).await {
            Ok(true) => self.execute_claimed(run).await,
            Ok(false) => {}
            Err(error) => {
                tracing::error!(error = ?error, "cannot start run {}: {error}", run.uuid());
            }
        }
    }

    /// `starting` (through `via`), with this executor recorded in the same
    /// update; `false` when the run is no longer there to take.
    async fn claim(&self, run: &mut RunHandle, via: &[(RunStatus, &str)]) -> ServiceResult<bool> {
        run.advance_claiming(
            via,
            RunStatus::Starting,
            "Starting",
            None,
            &self.config.executor_id,
            None,
        )
        .await
    }

    /// Runs a `starting` run this executor claimed. A failure of the
    /// executor itself fails the run, saying so.
    async fn execute_claimed(&self, run: RunHandle) {
        let uuid = run.uuid();
        let mut fallback = run.clone();
        if let Err(error) = self.execute_inner(run).await {
            tracing::error!(run.id = %uuid, error = ?error, "executing run {uuid} failed: {error}");
            let message = format!("The executor failed: {error}");
            let _ = fallback
                .advance(RunStatus::Failed, "ExecutorError", Some(&message))
                .await;
        }
    }

    fn forget_finished(&self) {
        if let Ok(mut running) = self.running.lock() {
            running.retain(|_, task| !task.is_finished());
        }
    }

    async fn execute_inner(&self, mut run: RunHandle) -> ServiceResult<()> {
        let config = &*self.config;
        let assignment = run.assignment();
        let uuid = assignment.uuid;
        let workdir = config.data_dir.join("runs").join(uuid.simple().to_string());
        let mut globals = globals(&assignment, &workdir, &config.base_url);
        let stored = match run.spec().await {
            Ok(stored) => stored,
            Err(error) => {
                let message = format!("The run's compiled spec cannot be read: {error}");
                run.advance(RunStatus::Failed, "CompileError", Some(&message))
                    .await?;
                return Ok(());
            }
        };
        // A service gets a free host port for each port it declares; the
        // ports and the address it is served under fill its templates
        // (`globals.ports`, `globals.base_url`, the path the proxy keeps).
        let mut endpoints: BTreeMap<u16, String> = BTreeMap::new();
        let mut listening = None;
        if assignment.kind == Some(RunKind::Service) {
            let (bind, advertised) = config.service_hosts();
            let requested = stored.run.ports.clone();
            match free_ports(requested.len().max(1)) {
                Ok(ports) => {
                    let declared: Vec<u16> = if requested.is_empty() {
                        ports.clone()
                    } else {
                        requested
                    };
                    globals.base_url = Some(format!(
                        "/services/v1/{}/{}/runs/{}/{}",
                        assignment.owner,
                        assignment.project,
                        uuid.simple(),
                        declared[0]
                    ));
                    endpoints = declared
                        .iter()
                        .zip(&ports)
                        .map(|(declared, bound)| (*declared, format!("{advertised}:{bound}")))
                        .collect();
                    // Readiness is probed here, on the host that runs it.
                    listening = ports
                        .first()
                        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)));
                    globals.host = Some(bind.to_owned());
                    globals.ports = ports;
                }
                Err(error) => {
                    let message =
                        format!("Cannot reserve ports on 127.0.0.1 for the service: {error}");
                    run.advance(RunStatus::Failed, "NoFreePort", Some(&message))
                        .await?;
                    return Ok(());
                }
            }
        }
        let (compiled, container) = match stored.for_execution(&globals) {
            Ok(compiled) => match compiled.container.clone() {
                Some(container) => (compiled, container),
                None => {
                    let message = "The run has no container to execute.";
                    run.advance(RunStatus::Failed, "CompileError", Some(message))
                        .await?;
                    return Ok(());
                }
            },
            Err(error) => {
                let message = format!("The spec's templates do not render: {error}");
                run.advance(RunStatus::Failed, "CompileError", Some(&message))
                    .await?;
                return Ok(());
            }
        };
        let timeout = compiled.timeout.map(Duration::from_secs);
        if let Err(error) = std::fs::create_dir_all(workdir.join("outputs")) {
            let message = format!(
                "Cannot create the working directory {}: {error}",
                workdir.display()
            );
            run.advance(RunStatus::Failed, "WorkdirError", Some(&message))
                .await?;
            return Ok(());
        }
        let workdir_text = workdir.to_string_lossy();
        let outputs_text = workdir.join("outputs").to_string_lossy().into_owned();
        let env = execution::environment(&RunContext {
            server_url: &config.base_url,
            uuid,
            owner: &assignment.owner,
            project: &assignment.project,
            project_id: assignment.project_id,
            workdir: &workdir_text,
            outputs: &outputs_text,
            service: (!endpoints.is_empty()).then(|| ServiceAddress {
                ports: &globals.ports,
                base_url: globals.base_url.as_deref(),
            }),
            container_env: &container.env,
        });
        let command: Vec<String> = container
            .command
            .iter()
            .chain(&container.args)
            .cloned()
            .collect();
        // Beats for the whole execution, `init` steps (a slow clone)
        // included; stops when this function returns.
        let _beating = Aborting(tokio::spawn(beat(
            run.clone(),
            config.executor_id.clone(),
            config.heartbeat,
        )));
        let mut init_log = Vec::new();
        let prepared = prepare(&workdir, &compiled.init, &mut init_log).await;
        run.append_logs(&init_log).await?;
        if let Err(message) = prepared {
            run.advance(RunStatus::Failed, "InitFailed", Some(&message))
                .await?;
            return Ok(());
        }
        let (lines, mut received) = mpsc::unbounded_channel();
        let spec = ProcessSpec {
            command,
            env,
            workdir: workdir.clone(),
        };
        let mut process = match trellis_executor::start(&spec, lines) {
            Ok(process) => process,
            Err(error) => {
                run.advance(RunStatus::Failed, "StartFailed", Some(&error.to_string()))
                    .await?;
                return Ok(());
            }
        };
        let _sampling = config.system_metrics.map(|every| {
            Aborting(tokio::spawn(sample_usage(
                run.clone(),
                process.pid(),
                every,
            )))
        });
        let started_by = format!(
            "Process {} started by {}",
            process.pid(),
            config.executor_id
        );
        // A job runs as soon as its process does; a service once its first
        // port accepts connections (checked below).
        let mut ready = listening.is_none();
        if ready {
            // The pid is recorded with the change (a restarted server kills
            // an orphan by it).
            run.advance_claiming(
                &[],
                RunStatus::Running,
                "Running",
                Some(&started_by),
                &config.executor_id,
                Some(process.pid()),
            )
            .await?;
        } else {
            run.heartbeat(&config.executor_id, Some(process.pid()))
                .await?;
        }
        let mut probe = tokio::time::interval(Duration::from_millis(100));
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut batch: Vec<LogLine> = Vec::new();
        let mut flush = tokio::time::interval(Duration::from_millis(250));
        // A stop (or the run being taken away) reaches the executor as a
        // status event; reading the status is only the fallback, for a
        // worker whose events do not reach it (no Redis), a missed event,
        // or a change between the claim and this subscription (found at
        // the first read, one period in).
        let mut events = self.services.events().subscribe();
        let mut events_open = true;
        let mut check = tokio::time::interval_at(
            tokio::time::Instant::now() + STATUS_FALLBACK_PERIOD,
            STATUS_FALLBACK_PERIOD,
        );
        let ending = loop {
            tokio::select! {
                line = received.recv() => match line {
                    Some(line) => {
                        batch.push(line);
                        if batch.len() >= 500 {
                            run.append_logs(&std::mem::take(&mut batch)).await?;
                        }
                    }
                    // Both streams closed: the process is ending.
                    None => {
                        let Finished { exit, last_stderr } = process.wait().await;
                        break Ending::Exited { exit, last_stderr };
                    }
                },
                _ = flush.tick() => {
                    if !batch.is_empty() {
                        run.append_logs(&std::mem::take(&mut batch)).await?;
                    }
                }
                _ = probe.tick(), if !ready => {
                    if let Some(address) = listening
                        && accepts(address).await
                    {
                        ready = true;
                        run.record_endpoints(&endpoints).await?;
                        let message = format!("{started_by}; listening on http://{address}");
                        run.advance(RunStatus::Running, "Running", Some(&message)).await?;
                    }
                }
                event = events.recv(), if events_open => {
                    let status = match event {
                        Ok(Event::Status { run: id, status, .. }) if id == uuid => Some(status),
                        Ok(_) => None,
                        // Some events were dropped: read the status now.
                        Err(RecvError::Lagged(_)) => {
                            check.reset_immediately();
                            None
                        }
                        Err(RecvError::Closed) => {
                            events_open = false;
                            None
                        }
                    };
                    if let Some(ending) = status.and_then(|s| taken_from_executor(Some(s))) {
                        process.stop(config.grace).await;
                        break ending;
                    }
                }
                _ = check.tick() => {
                    if let Some(ending) = taken_from_executor(run.current_status().await?) {
                        process.stop(config.grace).await;
                        break ending;
                    }
                }
                () = until(deadline) => {
                    process.stop(config.grace).await;
                    break Ending::TimedOut {
                        after_secs: timeout.map(|t| t.as_secs()).unwrap_or_default(),
                    };
                }
                () = self.shutdown.cancelled() => {
                    process.stop(config.grace).await;
                    break Ending::Shutdown(config.executor_kind());
                }
            }
        };
        let ending = match ending {
            Ending::Stopped => run.stop_ending().await?,
            other => other,
        };
        // Drain what the process wrote before it ended.
        while let Ok(line) = received.try_recv() {
            batch.push(line);
        }
        run.append_logs(&batch).await?;
        if ready && !endpoints.is_empty() {
            run.record_endpoints(&BTreeMap::new()).await?;
        }
        let max_retries = compiled.max_retries.unwrap_or(0);
        let used = if Retries::matter(&ending, max_retries) {
            run.retries().await?
        } else {
            0
        };
        let retries = Retries {
            max: max_retries,
            used,
        };
        match execution::conclude(ending, retries) {
            Outcome::Untouched => {}
            Outcome::Requeue {
                reason,
                message,
                otherwise,
            } => {
                if !run.requeue(reason.as_str(), &message).await?
                    && let Some(finish) = otherwise
                {
                    finish_run(&mut run, finish).await?;
                }
            }
            Outcome::Finish(finish) => finish_run(&mut run, finish).await?,
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Executor for LocalExecutor {
    fn name(&self) -> ExecutorName {
        ExecutorName::Local
    }

    async fn start(&self, runs: &[Uuid]) -> ServiceResult<Vec<Uuid>> {
        let handles = RunHandle::find_all(&self.services, runs).await?;
        // This executor runs them at once: `scheduled` and `starting` are
        // one transaction, for every run of the tick.
        let claimed = RunHandle::advance_all(
            handles,
            &[(RunStatus::Scheduled, "Scheduled")],
            RunStatus::Starting,
            "Starting",
            None,
            Some(Claim {
                executor: &self.config.executor_id,
                pid: None,
            }),
            &[],
        )
        .await?;
        self.forget_finished();
        let mut started = Vec::with_capacity(claimed.len());
        for handle in claimed {
            let run = handle.uuid();
            let executor = self.clone();
            let task = tokio::spawn(async move { executor.execute_claimed(handle).await });
            if let Ok(mut running) = self.running.lock() {
                running.insert(run, task);
            }
            started.push(run);
        }
        Ok(started)
    }

    /// A run this executor left active has no process any more (processes
    /// die with, or outlive untracked, the server): end an orphan that
    /// outlived it, and mark the run failed, or stopped if a stop was asked,
    /// saying why.
    async fn recover(&self, left: Vec<Assignment>) -> ServiceResult<usize> {
        let mut changed = 0;
        for run in left {
            let killed = run
                .pid
                .filter(|_| run.executor.as_deref() == Some(self.config.executor_id.as_str()))
                .is_some_and(|pid| trellis_executor::kill_orphan(pid, &run.uuid.to_string()));
            if killed {
                tracing::warn!(run.id = %run.uuid, "killed the orphaned process of run {}", run.uuid);
            }
            let fate = match (killed, run.pid) {
                (true, Some(pid)) => {
                    format!(" Its process (pid {pid}) was still running and was killed.")
                }
                _ => " Its process is no longer running.".to_owned(),
            };
            let (next, message) = if run.status == RunStatus::Stopping {
                (
                    RunStatus::Stopped,
                    format!("The server restarted while the run was stopping.{fate}"),
                )
            } else {
                (
                    RunStatus::Failed,
                    format!("The server restarted while the run was active.{fate}"),
                )
            };
            if self
                .services
                .runs()
                .advance(run.uuid, next, "ServerRestarted", Some(&message))
                .await?
                .is_some()
            {
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn drain(&self) {
        let tasks: Vec<_> = self
            .running
            .lock()
            .map(|mut r| r.drain().map(|(_, t)| t).collect())
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// The globals known when the run starts on this host.
fn globals(run: &Assignment, workdir: &std::path::Path, base_url: &str) -> Globals {
    Globals {
        uuid: Some(run.uuid.simple().to_string()),
        name: run.name.clone(),
        owner_name: Some(run.owner.clone()),
        project_name: Some(run.project.clone()),
        run_outputs_path: Some(workdir.join("outputs").to_string_lossy().into_owned()),
        artifacts_path: Some(workdir.to_string_lossy().into_owned()),
        base_url: Some(base_url.to_owned()),
        ports: Vec::new(),
        host: None,
    }
}

/// Reports `run` alive every `every` until aborted or the run is done.
async fn beat(run: RunHandle, executor: String, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match run.heartbeat(&executor, None).await {
            Ok(true) => {}
            Ok(false) => return, // done
            Err(error) => {
                tracing::warn!(error = ?error, "heartbeat of run {} failed: {error}", run.uuid());
            }
        }
    }
}

/// How often an executing run's status is read when no event said it
/// changed (the fallback; stops arrive as events).
const STATUS_FALLBACK_PERIOD: Duration = Duration::from_secs(2);

/// Whether the run's `status` (as stored; `None`: deleted) ends this
/// executor's attempt: `stopping` is a stop request; a status that is not
/// active means the run was queued again (its heartbeats were late) or
/// finished by someone else, so it is no longer this executor's.
fn taken_from_executor(status: Option<RunStatus>) -> Option<Ending> {
    match status {
        Some(RunStatus::Stopping) => Some(Ending::Stopped),
        Some(status) if status.is_active() => None,
        _ => Some(Ending::Lost),
    }
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes a run's final status.
async fn finish_run(run: &mut RunHandle, finish: Finish) -> ServiceResult<()> {
    run.advance(
        finish.status,
        finish.reason.as_str(),
        finish.message.as_deref(),
    )
    .await?;
    Ok(())
}

/// `count` distinct free ports on 127.0.0.1. The listeners close before
/// the service starts; a port taken in between makes the service fail to
/// bind, which ends the run failed with its error.
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Whether something accepts connections at `address`.
async fn accepts(address: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(address),
        )
        .await,
        Ok(Ok(_))
    )
}

/// Records the CPU and memory use of process `pid` and its descendants,
/// and the host's GPUs, as `system/*` metrics of `run` every `every`, until
/// aborted or the process is gone. The names are MLflow's, so its UI and
/// clients read them too.
async fn sample_usage(run: RunHandle, pid: i32, every: Duration) {
    use trellis_db::tracking::NewPoint;
    use trellis_executor::usage;
    let Ok(pid) = u32::try_from(pid) else { return };
    // The first sample is taken after one period, not at the start: a run
    // shorter than that never walks `/proc` (a walk reads every process's
    // `stat`, which a burst of short runs would pay for each).
    let mut previous = None;
    let mut step = 0_i64;
    loop {
        tokio::time::sleep(every).await;
        let Some(now) = usage::tree_usage(pid) else {
            return;
        };
        let timestamp = chrono::Utc::now().timestamp_millis();
        let point = |key: &str, value: f64| NewPoint {
            key: format!("{}{key}", trellis_domain::tracking::SYSTEM_METRIC_PREFIX),
            step,
            timestamp,
            value,
        };
        let mut points = vec![
            point("memory_rss_megabytes", now.rss_bytes as f64 / 1_048_576.0),
            point("processes", f64::from(now.processes)),
        ];
        if let Some(before) = &previous {
            points.push(point(
                "cpu_utilization_percentage",
                usage::cpu_percent(before, &now),
            ));
        }
        for gpu in usage::gpu_usage().await {
            points.push(point(
                &format!("gpu_{}_utilization_percentage", gpu.index),
                gpu.utilization,
            ));
            points.push(point(
                &format!("gpu_{}_memory_usage_megabytes", gpu.index),
                gpu.memory_mb,
            ));
        }
        if let Err(error) = run.log_usage(points).await {
            tracing::warn!(error = ?error, "recording system metrics of run {} failed: {error}", run.uuid());
        }
        previous = Some(now);
        step += 1;
    }
}

/// Aborts a helper task (heartbeats, sampling) when the execution ends.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}
