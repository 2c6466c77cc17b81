//! The embedded scheduler and the local executor's driver.
//!
//! [`Scheduler::tick`] moves submitted jobs `created → compiled → queued`,
//! asks [`trellis_domain::scheduling::plan`] which queued runs start now,
//! and starts each on the local executor: `scheduled → starting → running →
//! succeeded | failed | stopped`, with its output stored line by line.
//! State lives in the database; [`Scheduler::recover`] runs at start-up and
//! fails the runs whose process died with a previous server.
//!
//! Two ways to dispatch: [`Dispatch::Local`] spawns the run on this host at
//! once (the embedded default); [`Dispatch::Queue`] writes a "start" message
//! into the outbox in the same transaction as `scheduled`, for the relay
//! ([`crate::worker::relay`]) to publish to RabbitMQ and a
//! [`crate::worker::Worker`] to execute. Executors send heartbeats; a run
//! whose executor has been silent for `lost_after` is queued again.
//!
//! Scope today: `job` and `service` runs (the container's image is
//! recorded, not used; a service gets free ports on 127.0.0.1 and is
//! `running` once its first port accepts connections), named queues, stop
//! (SIGTERM, then SIGKILL after a grace period), `termination.timeout` and
//! `termination.maxRetries`. Other kinds stay `created` until their
//! executors exist.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use trellis_db::runs::{OutboxMessage, RunRow};
use trellis_domain::execution::{
    self, Ending, ExecutorKind, Finish, Outcome, Retries, RunContext, ServiceAddress,
};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::logs::{LogLine, Stream};
use trellis_domain::run::RunKind;
use trellis_domain::scheduling::{Capacity, DEFAULT_QUEUE, QueueLimits, Waiting, plan};
use trellis_domain::spec::{self, Globals, InitStep, NoFiles};
use trellis_events::Event;
use trellis_executor::{Finished, ProcessSpec};
use uuid::Uuid;

use crate::{ServiceResult, Services};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Runs' working directories go under `<data_dir>/runs/<uuid>`.
    pub data_dir: PathBuf,
    /// At most this many runs at once on this host.
    pub concurrency: u32,
    /// The server's URL, given to runs as `TRELLIS_HOST` and `MLFLOW_TRACKING_URI`.
    pub base_url: String,
    /// How long a stopped process gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// How often the scheduler looks for work.
    pub every: Duration,
    /// Named queues beyond `default` (which gets `concurrency` unless
    /// defined here).
    pub queues: BTreeMap<String, QueueLimits>,
    /// Who executes, as recorded on runs: `local:<host>` or `worker:<id>`.
    pub executor_id: String,
    /// How often an executing run reports that it is alive.
    pub heartbeat: Duration,
    /// A run whose executor has been silent this long is queued again.
    pub lost_after: Duration,
    /// How often the CPU, memory and GPU use of a run's processes is
    /// recorded as `system/*` metrics; `None` records none.
    pub system_metrics: Option<Duration>,
}

impl SchedulerConfig {
    /// What this executor's going away means for its runs: a worker's are
    /// handed back to the queue, the server's fail.
    pub fn executor_kind(&self) -> ExecutorKind {
        if self.executor_id.starts_with("worker:") {
            ExecutorKind::Worker(self.executor_id.clone())
        } else {
            ExecutorKind::Server
        }
    }

    /// `default` (with the global concurrency) and the `--queue` queues.
    pub fn configured_queues(&self) -> BTreeMap<String, QueueLimits> {
        let mut queues = BTreeMap::from([(
            DEFAULT_QUEUE.to_owned(),
            QueueLimits {
                concurrency: self.concurrency,
                priority: 0,
            },
        )]);
        queues.extend(self.queues.clone());
        queues
    }

    /// The defaults for a host: 4 at once, 10 s grace, heartbeats every 5 s,
    /// lost after 30 s of silence.
    pub fn new(data_dir: PathBuf, base_url: String, executor_id: String) -> Self {
        Self {
            data_dir,
            concurrency: 4,
            base_url,
            grace: Duration::from_secs(10),
            every: Duration::from_millis(500),
            queues: BTreeMap::new(),
            executor_id,
            heartbeat: Duration::from_secs(5),
            lost_after: Duration::from_secs(30),
            system_metrics: Some(Duration::from_secs(10)),
        }
    }
}

/// How a scheduled run reaches an executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Executed on this host, by this process.
    Local,
    /// Announced through the outbox to workers.
    Queue,
}

/// The outbox topic of "start this run" messages.
pub const START_TOPIC: &str = "run.start";

/// The body of a "start this run" message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartMessage {
    pub run: Uuid,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Submitted jobs moved to `queued`.
    pub queued: Vec<Uuid>,
    /// Runs started on the executor (or sent to the work queue).
    pub started: Vec<Uuid>,
    /// Runs whose executor went silent, queued again.
    pub requeued: Vec<Uuid>,
}

/// The scheduler: one per server.
#[derive(Clone)]
pub struct Scheduler {
    services: Services,
    config: Arc<SchedulerConfig>,
    /// Cancelled on shutdown; every executor task watches it.
    shutdown: CancellationToken,
    /// Executor tasks by run, so a finished one can be forgotten.
    running: Arc<Mutex<HashMap<Uuid, tokio::task::JoinHandle<()>>>>,
    dispatch: Dispatch,
}

impl Scheduler {
    /// A scheduler over `services`.
    pub fn new(services: Services, config: SchedulerConfig, shutdown: CancellationToken) -> Self {
        Self {
            services,
            config: Arc::new(config),
            shutdown,
            running: Arc::new(Mutex::new(HashMap::new())),
            dispatch: Dispatch::Local,
        }
    }

    /// This scheduler dispatching through the outbox to workers.
    pub fn dispatching_to_workers(mut self) -> Self {
        self.dispatch = Dispatch::Queue;
        self
    }

    /// At start-up: a run left active by a previous server has no process
    /// any more (this executor's processes die with, or outlive untracked,
    /// the server). Mark it failed, or stopped if a stop was asked, saying why.
    pub async fn recover(&self) -> ServiceResult<usize> {
        let stale: Vec<RunRow> = self
            .services
            .runs()
            .in_statuses(&RunStatus::active(), 10_000)
            .await?
            .into_iter()
            // A controller has no process: it carries on from its children.
            .filter(|run| !is_controller(run))
            .collect();
        for run in &stale {
            // A process that outlived the server writes to nobody: end it.
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
            self.services
                .runs()
                .advance(run.uuid, next, "ServerRestarted", Some(&message))
                .await?;
        }
        Ok(stale.len())
    }

    /// One pass: queue submitted jobs, then start what the plan allows.
    pub async fn tick(&self) -> ServiceResult<TickOutcome> {
        let mut outcome = TickOutcome::default();
        let runs = self.services.runs();
        outcome.requeued = self.requeue_lost().await?;
        for run in runs
            .in_statuses(&[RunStatus::Created, RunStatus::Resuming], 500)
            .await?
        {
            if is_controller(&run) && !run.content.trim().is_empty() {
                // A pipeline takes no slot: it starts at once and creates
                // runs that queue like any other.
                runs.advance_via(
                    run.uuid,
                    &[
                        (RunStatus::Compiled, "Compiled"),
                        (RunStatus::Queued, "Queued"),
                        (RunStatus::Scheduled, "Scheduled"),
                    ],
                    RunStatus::Running,
                    "Running",
                    None,
                )
                .await?;
                continue;
            }
            if !matches!(run.kind, Some(RunKind::Job | RunKind::Service))
                || run.content.trim().is_empty()
            {
                continue;
            }
            // The spec was compiled at submission; record it and queue,
            // in one transaction.
            if runs
                .advance_via(
                    run.uuid,
                    &[(RunStatus::Compiled, "Compiled")],
                    RunStatus::Queued,
                    "Queued",
                    Some("Waiting for a free slot"),
                )
                .await?
                .is_some()
            {
                outcome.queued.push(run.uuid);
            }
        }
        let queued: Vec<RunRow> = runs
            .in_statuses(&[RunStatus::Queued], 1000)
            .await?
            .into_iter()
            .filter(|run| !is_controller(run))
            .collect();
        let queue_of = |run: &RunRow| {
            run.queue
                .clone()
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned())
        };
        let mut active: BTreeMap<String, u32> = BTreeMap::new();
        for run in runs.in_statuses(&RunStatus::active(), 10_000).await? {
            if is_controller(&run) {
                continue;
            }
            *active.entry(queue_of(&run)).or_default() += 1;
        }
        let waiting: Vec<Waiting<Uuid>> = queued
            .iter()
            .map(|run| Waiting {
                id: run.uuid,
                queue: Some(queue_of(run)),
                queued_at: run.updated_at,
            })
            .collect();
        let queues = self
            .services
            .queues()
            .limits(&self.config.configured_queues())
            .await?;
        // Runs that named an unknown queue wait again once it exists (it
        // was defined through the API meanwhile); the next tick plans them.
        for run in runs.in_statuses(&[RunStatus::Unschedulable], 1000).await? {
            let queue = queue_of(&run);
            if queues.contains_key(&queue) {
                let message = format!("The queue `{queue}` is now defined");
                runs.advance(run.uuid, RunStatus::Queued, "Queued", Some(&message))
                    .await?;
            }
        }
        let capacity = Capacity {
            global: self.config.concurrency,
            active,
            queues,
        };
        let decision = plan(&waiting, &capacity);
        for uuid in decision.unknown_queue {
            let names: Vec<&str> = capacity.queues.keys().map(String::as_str).collect();
            let message = format!(
                "The run's queue is not defined on this server (queues: {}).",
                names.join(", ")
            );
            runs.advance(
                uuid,
                RunStatus::Unschedulable,
                "UnknownQueue",
                Some(&message),
            )
            .await?;
        }
        for uuid in decision.start {
            match self.dispatch {
                Dispatch::Local => {
                    let Some(run) = runs
                        .advance(uuid, RunStatus::Scheduled, "Scheduled", None)
                        .await?
                    else {
                        continue;
                    };
                    self.spawn(run);
                }
                Dispatch::Queue => {
                    let payload = serde_json::to_string(&StartMessage { run: uuid })
                        .map_err(|e| crate::ServiceError::Dependency(e.to_string()))?;
                    let outbox = OutboxMessage {
                        topic: START_TOPIC,
                        payload: &payload,
                    };
                    if runs
                        .advance_with(
                            uuid,
                            RunStatus::Scheduled,
                            "Scheduled",
                            Some("Sent to the work queue"),
                            Some(outbox),
                        )
                        .await?
                        .is_none()
                    {
                        continue;
                    }
                }
            }
            outcome.started.push(uuid);
        }
        crate::pipelines::drive(&self.services).await?;
        self.forget_finished();
        Ok(outcome)
    }

    /// Ticks every `config.every` until shutdown, then waits for the
    /// executor tasks to stop their processes.
    pub async fn run_until_stopped(self) {
        // Workers outlive a restarted scheduler; only local runs died with it.
        if self.dispatch == Dispatch::Local
            && let Err(error) = self.recover().await
        {
            tracing::error!(error = ?error, "scheduler recovery failed: {error}");
        }
        // A run created or ending frees or needs a slot: tick at once
        // rather than at the next period, so short runs do not wait.
        let mut events = self.services.events().subscribe();
        loop {
            if let Err(error) = self.tick().await {
                tracing::error!(error = ?error, "scheduler tick failed: {error}");
            }
            let woke = {
                let wake = async {
                    loop {
                        match events.recv().await {
                            Ok(Event::Status { status, .. })
                                if status == RunStatus::Created
                                    || status == RunStatus::Queued
                                    || status.is_done() =>
                            {
                                return;
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => return,
                            Err(RecvError::Closed) => std::future::pending::<()>().await,
                        }
                    }
                };
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.config.every) => false,
                    () = wake => true,
                }
            };
            if woke {
                // Gather a burst of changes into one tick.
                tokio::time::sleep(Duration::from_millis(5)).await;
                while events.try_recv().is_ok() {}
            }
        }
        let tasks: Vec<_> = self
            .running
            .lock()
            .map(|mut r| r.drain().map(|(_, t)| t).collect())
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Queues again the active runs whose executor stopped reporting.
    async fn requeue_lost(&self) -> ServiceResult<Vec<Uuid>> {
        let runs = self.services.runs();
        // `scheduled` runs wait for a worker to pick them up; silence there
        // is not a lost executor.
        let executing: Vec<RunStatus> = RunStatus::active()
            .into_iter()
            .filter(|s| *s != RunStatus::Scheduled)
            .collect();
        let mut requeued = Vec::new();
        for run in runs.silent(&executing, self.config.lost_after).await? {
            if is_controller(&run) {
                continue;
            }
            let who = run.executor.as_deref().unwrap_or("its executor");
            let message = format!(
                "No heartbeat from {who} for over {}s; the run is queued again.",
                self.config.lost_after.as_secs()
            );
            if runs.requeue(run.uuid, "ExecutorLost", &message).await? {
                tracing::warn!(run.id = %run.uuid, "run {} lost its executor; queued again", run.uuid);
                requeued.push(run.uuid);
            }
        }
        Ok(requeued)
    }

    fn spawn(&self, run: RunRow) {
        let uuid = run.uuid;
        let task = tokio::spawn(execute(
            self.services.clone(),
            self.config.clone(),
            self.shutdown.clone(),
            run,
        ));
        if let Ok(mut running) = self.running.lock() {
            running.insert(uuid, task);
        }
    }

    fn forget_finished(&self) {
        if let Ok(mut running) = self.running.lock() {
            running.retain(|_, task| !task.is_finished());
        }
    }
}

/// Matrix and dag runs execute nothing: [`crate::pipelines`] drives them.
fn is_controller(run: &RunRow) -> bool {
    matches!(run.kind, Some(RunKind::Matrix | RunKind::Dag))
}

fn globals(run: &RunRow, paths: Option<(&PathBuf, &str)>) -> Globals {
    Globals {
        uuid: Some(run.uuid.simple().to_string()),
        name: run.name.clone(),
        owner_name: Some(run.owner.clone()),
        project_name: Some(run.project.clone()),
        run_outputs_path: paths.map(|(dir, _)| dir.join("outputs").to_string_lossy().into_owned()),
        artifacts_path: paths.map(|(dir, _)| dir.to_string_lossy().into_owned()),
        base_url: paths.map(|(_, url)| url.to_owned()),
        ports: Vec::new(),
    }
}

/// Runs one scheduled job to its end (or until it is lost or shut down).
pub(crate) async fn execute(
    services: Services,
    config: Arc<SchedulerConfig>,
    shutdown: CancellationToken,
    run: RunRow,
) {
    let uuid = run.uuid;
    if let Err(error) = execute_inner(&services, &config, &shutdown, &run).await {
        tracing::error!(run.id = %uuid, error = ?error, "executing run {uuid} failed: {error}");
        let message = format!("The executor failed: {error}");
        let _ = services
            .runs()
            .advance(uuid, RunStatus::Failed, "ExecutorError", Some(&message))
            .await;
    }
}

async fn execute_inner(
    services: &Services,
    config: &SchedulerConfig,
    shutdown: &CancellationToken,
    run: &RunRow,
) -> ServiceResult<()> {
    let runs = services.runs();
    let uuid = run.uuid;
    let workdir = config.data_dir.join("runs").join(uuid.simple().to_string());
    let mut globals = globals(run, Some((&workdir, &config.base_url)));
    let params = run.inputs.clone().into_iter().collect();
    let mut compiled = spec::compile(&run.content, None, &NoFiles, &params, &globals);
    // A service gets a free host port for each port it asks for, and its
    // templates are rendered again with them (`globals.ports`,
    // `globals.base_url`, the path the service proxy will keep).
    let mut listening: Option<u16> = None;
    if run.kind == Some(RunKind::Service)
        && let Ok(requested) = compiled.as_ref().map(|c| c.ports.clone())
    {
        let wanted = requested.len().max(1);
        match free_ports(wanted) {
            Ok(ports) => {
                listening = ports.first().copied();
                globals.base_url = Some(format!(
                    "/services/v1/{}/{}/runs/{}/{}",
                    run.owner,
                    run.project,
                    uuid.simple(),
                    requested.first().copied().unwrap_or(ports[0])
                ));
                globals.ports = ports;
                compiled = spec::compile(&run.content, None, &NoFiles, &params, &globals);
            }
            Err(error) => {
                let message = format!("Cannot reserve ports on 127.0.0.1 for the service: {error}");
                runs.advance(uuid, RunStatus::Failed, "NoFreePort", Some(&message))
                    .await?;
                return Ok(());
            }
        }
    }
    let container = match compiled.as_ref().ok().and_then(|c| c.container.clone()) {
        Some(container) => container,
        None => {
            let message = match compiled {
                Err(error) => format!("The spec no longer compiles: {error}"),
                Ok(_) => "The run has no container to execute.".to_owned(),
            };
            runs.advance(uuid, RunStatus::Failed, "CompileError", Some(&message))
                .await?;
            return Ok(());
        }
    };
    let timeout = compiled
        .as_ref()
        .ok()
        .and_then(|c| c.timeout)
        .map(Duration::from_secs);
    if let Err(error) = std::fs::create_dir_all(workdir.join("outputs")) {
        let message = format!(
            "Cannot create the working directory {}: {error}",
            workdir.display()
        );
        runs.advance(uuid, RunStatus::Failed, "WorkdirError", Some(&message))
            .await?;
        return Ok(());
    }
    let workdir_text = workdir.to_string_lossy();
    let outputs_text = workdir.join("outputs").to_string_lossy().into_owned();
    let env = execution::environment(&RunContext {
        server_url: &config.base_url,
        uuid,
        owner: &run.owner,
        project: &run.project,
        project_id: run.project_id,
        workdir: &workdir_text,
        outputs: &outputs_text,
        service: listening.map(|_| ServiceAddress {
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
    let Some(run) = runs
        .advance(uuid, RunStatus::Starting, "Starting", None)
        .await?
    else {
        return Ok(()); // stopped before it started, or another executor took it
    };
    let run = &run;
    runs.heartbeat(run, &config.executor_id, None).await?;
    // Beats for the whole execution, `init` steps (a slow clone) included;
    // stops when this function returns.
    let _beating = Beating(tokio::spawn({
        let (services, run, executor, every) = (
            services.clone(),
            run.clone(),
            config.executor_id.clone(),
            config.heartbeat,
        );
        async move {
            loop {
                tokio::time::sleep(every).await;
                match services.runs().heartbeat(&run, &executor, None).await {
                    Ok(true) => {}
                    Ok(false) => return, // done
                    Err(error) => {
                        tracing::warn!(error = ?error, "heartbeat of run {} failed: {error}", run.uuid);
                    }
                }
            }
        }
    }));
    let steps = compiled
        .as_ref()
        .map(|c| c.init.clone())
        .unwrap_or_default();
    let mut init_log = Vec::new();
    let prepared = prepare(&workdir, &steps, &mut init_log).await;
    runs.append_logs_of(run, &init_log).await?;
    if let Err(message) = prepared {
        runs.advance(uuid, RunStatus::Failed, "InitFailed", Some(&message))
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
            runs.advance(
                uuid,
                RunStatus::Failed,
                "StartFailed",
                Some(&error.to_string()),
            )
            .await?;
            return Ok(());
        }
    };
    runs.heartbeat(run, &config.executor_id, Some(process.pid()))
        .await?;
    let _sampling = config.system_metrics.map(|every| {
        Beating(tokio::spawn(sample_usage(
            services.clone(),
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
    // A job runs as soon as its process does; a service once its port
    // accepts connections (checked below).
    let mut ready = listening.is_none();
    if ready {
        runs.advance(uuid, RunStatus::Running, "Running", Some(&started_by))
            .await?;
    }
    let mut probe = tokio::time::interval(Duration::from_millis(100));
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut batch: Vec<LogLine> = Vec::new();
    let mut flush = tokio::time::interval(Duration::from_millis(250));
    // A stop (or the run being taken away) reaches the executor as a status
    // event; reading the status is only the fallback, for a worker whose
    // events do not reach it (no Redis) or a missed event. The first read
    // is at once, covering changes from before the subscription.
    let mut events = services.events().subscribe();
    let mut events_open = true;
    let mut check = tokio::time::interval(STATUS_FALLBACK_PERIOD);
    let ending = loop {
        tokio::select! {
            line = received.recv() => match line {
                Some(line) => {
                    batch.push(line);
                    if batch.len() >= 500 {
                        runs.append_logs_of(run, &std::mem::take(&mut batch)).await?;
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
                    runs.append_logs_of(run, &std::mem::take(&mut batch)).await?;
                }
            }
            _ = probe.tick(), if !ready => {
                if let Some(port) = listening
                    && accepts(port).await
                {
                    ready = true;
                    let message = format!("{started_by}; listening on http://127.0.0.1:{port}");
                    runs.advance(uuid, RunStatus::Running, "Running", Some(&message)).await?;
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
                let status = runs.status_of(uuid).await?;
                if let Some(ending) = taken_from_executor(status) {
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
            () = shutdown.cancelled() => {
                process.stop(config.grace).await;
                break Ending::Shutdown(config.executor_kind());
            }
        }
    };
    // Drain what the process wrote before it ended.
    while let Ok(line) = received.try_recv() {
        batch.push(line);
    }
    runs.append_logs_of(run, &batch).await?;
    let max_retries = compiled
        .as_ref()
        .ok()
        .and_then(|c| c.max_retries)
        .unwrap_or(0);
    let used = if Retries::matter(&ending, max_retries) {
        runs.retries_of(run).await?
    } else {
        0
    };
    match execution::conclude(
        ending,
        Retries {
            max: max_retries,
            used,
        },
    ) {
        Outcome::Untouched => {}
        Outcome::Requeue {
            reason,
            message,
            otherwise,
        } => {
            if !runs.requeue(uuid, reason.as_str(), &message).await?
                && let Some(finish) = otherwise
            {
                finish_run(&runs, uuid, finish).await?;
            }
        }
        Outcome::Finish(finish) => finish_run(&runs, uuid, finish).await?,
    }
    Ok(())
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
async fn finish_run(runs: &crate::runs::Runs<'_>, uuid: Uuid, finish: Finish) -> ServiceResult<()> {
    runs.advance(
        uuid,
        finish.status,
        finish.reason.as_str(),
        finish.message.as_deref(),
    )
    .await?;
    Ok(())
}

/// Performs the `init` steps in `workdir`, noting each in `log`.
async fn prepare(
    workdir: &std::path::Path,
    steps: &[InitStep],
    log: &mut Vec<LogLine>,
) -> Result<(), String> {
    let mut note = |text: String| {
        log.push(LogLine {
            at: chrono::Utc::now(),
            stream: Stream::Stdout,
            text,
        })
    };
    for step in steps {
        match step {
            InitStep::File {
                filename,
                content,
                chmod,
            } => {
                let path = inside(workdir, filename)?;
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| format!("init: cannot create {}: {e}", parent.display()))?;
                }
                tokio::fs::write(&path, content)
                    .await
                    .map_err(|e| format!("init: cannot write {filename}: {e}"))?;
                if let Some(mode) = chmod {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                        .map_err(|_| format!("init: chmod `{mode}` is not an octal mode"))?;
                    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                        .await
                        .map_err(|e| format!("init: cannot chmod {filename}: {e}"))?;
                }
                note(format!("init: wrote {filename}"));
            }
            InitStep::Git {
                url,
                revision,
                path,
            } => {
                let name = path.clone().unwrap_or_else(|| repository_name(url));
                let target = inside(workdir, &name)?;
                git(
                    &["clone", "--quiet", url, &target.to_string_lossy()],
                    workdir,
                )
                .await?;
                if let Some(revision) = revision {
                    git(
                        &[
                            "-C",
                            &target.to_string_lossy(),
                            "checkout",
                            "--quiet",
                            revision,
                        ],
                        workdir,
                    )
                    .await?;
                }
                let at = revision
                    .as_deref()
                    .map(|r| format!(" at {r}"))
                    .unwrap_or_default();
                note(format!("init: cloned {url}{at} into {name}"));
            }
            InitStep::Other { what } => {
                return Err(format!(
                    "init: {what} steps are not supported by the local executor"
                ));
            }
        }
    }
    Ok(())
}

/// `relative` under `workdir`, refusing absolute paths and `..`.
fn inside(workdir: &std::path::Path, relative: &str) -> Result<PathBuf, String> {
    let path = std::path::Path::new(relative);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "init: `{relative}` must be a relative path inside the run's directory"
        ));
    }
    Ok(workdir.join(path))
}

/// `https://host/org/repo.git` → `repo`.
fn repository_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repository");
    let name = last.trim_end_matches(".git");
    if name.is_empty() {
        "repository".to_owned()
    } else {
        name.to_owned()
    }
}

async fn git(args: &[&str], workdir: &std::path::Path) -> Result<(), String> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(workdir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| format!("init: cannot run git: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "init: git {} failed: {}",
            args[0],
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
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

/// Whether something accepts connections on 127.0.0.1:`port`.
async fn accepts(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await,
        Ok(Ok(_))
    )
}

/// Records the CPU and memory use of process `pid` and its descendants,
/// and the host's GPUs, as `system/*` metrics of `run` every `every`, until
/// aborted or the process is gone. The names are MLflow's, so its UI and
/// clients read them too.
async fn sample_usage(services: Services, run: RunRow, pid: i32, every: Duration) {
    use trellis_db::tracking::NewPoint;
    use trellis_executor::usage;
    let Ok(pid) = u32::try_from(pid) else { return };
    let mut previous = usage::tree_usage(pid);
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
        if let Err(error) = services.tracking().log_system_metrics(&run, points).await {
            tracing::warn!(error = ?error, "recording system metrics of run {} failed: {error}", run.uuid);
        }
        previous = Some(now);
        step += 1;
    }
}

/// Aborts the heartbeat task when the execution ends.
struct Beating(tokio::task::JoinHandle<()>);

impl Drop for Beating {
    fn drop(&mut self) {
        self.0.abort();
    }
}
