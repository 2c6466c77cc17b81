//! The scheduler: which queued runs start, and on which executor.
//!
//! [`Scheduler::tick`] moves submitted jobs `created → compiled → queued`,
//! asks [`trellis_domain::scheduling::plan`] which queued runs start now
//! and where (the executor each run's queue is bound to, among those this
//! scheduler hosts), and hands each to its [`Executor`](crate::execution::Executor)
//! ([`crate::execution`]). It also queues again the runs whose executor
//! stopped sending heartbeats, and drives pipelines. State lives in the
//! database; [`Scheduler::recover`] runs at start-up and lets each executor
//! settle the runs a previous process left active.
//!
//! Runs of a queue bound to an executor this scheduler does not host are
//! left to the process that hosts it (a `trellis scheduler` for the
//! workers, a Kubernetes agent).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use trellis_db::runs::SchedulingRow;
use trellis_domain::execution::{self, Outcome};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::run::RunKind;
use trellis_domain::scheduling::{
    Capacity, DEFAULT_QUEUE, ExecutorName, QueueLimits, Waiting, plan,
};
use trellis_events::Event;
use uuid::Uuid;

use crate::execution::{Assignment, Executors};
use crate::{ServiceResult, Services};

/// How the scheduler plans.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// At most this many runs at once through this scheduler.
    pub concurrency: u32,
    /// How often the scheduler looks for work.
    pub every: Duration,
    /// Named queues beyond `default` (which gets `concurrency` unless
    /// defined here).
    pub queues: BTreeMap<String, QueueLimits>,
    /// A run whose executor has been silent this long is queued again.
    pub lost_after: Duration,
}

impl Default for SchedulerConfig {
    /// 4 at once, a tick every 500 ms, lost after 30 s of silence.
    fn default() -> Self {
        Self {
            concurrency: 4,
            every: Duration::from_millis(500),
            queues: BTreeMap::new(),
            lost_after: Duration::from_secs(30),
        }
    }
}

impl SchedulerConfig {
    /// `default` (with the global concurrency) and the `--queue` queues.
    pub fn configured_queues(&self) -> BTreeMap<String, QueueLimits> {
        let mut queues = BTreeMap::from([(
            DEFAULT_QUEUE.to_owned(),
            QueueLimits {
                concurrency: self.concurrency,
                priority: 0,
                executor: None,
            },
        )]);
        queues.extend(self.queues.clone());
        queues
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Submitted jobs moved to `queued`.
    pub queued: Vec<Uuid>,
    /// Runs handed to an executor, with its name.
    pub started: Vec<(Uuid, ExecutorName)>,
    /// Runs whose executor went silent, queued again.
    pub requeued: Vec<Uuid>,
}

/// The scheduler: one per server (or `trellis scheduler`).
#[derive(Clone)]
pub struct Scheduler {
    services: Services,
    config: Arc<SchedulerConfig>,
    executors: Executors,
    /// Cancelled on shutdown.
    shutdown: CancellationToken,
    /// Whether pipelines may be active: the last drive found controllers,
    /// or a tick just started one. Other ticks skip reading them (a burst
    /// of short jobs ticks hundreds of times a second); housekeeping ticks
    /// always drive.
    pipelines_active: Arc<AtomicBool>,
    /// The queues' limits as last read: read again on housekeeping ticks,
    /// so a queue defined or changed through the API is in force within
    /// one period.
    limits: Arc<Mutex<Option<BTreeMap<String, QueueLimits>>>>,
}

impl Scheduler {
    /// A scheduler over `services` starting runs on `executors`.
    pub fn new(
        services: Services,
        config: SchedulerConfig,
        executors: Executors,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            services,
            config: Arc::new(config),
            executors,
            shutdown,
            pipelines_active: Arc::default(),
            limits: Arc::default(),
        }
    }

    /// The queues in force, with the executors this scheduler hosts; the
    /// limits read again when `fresh`, else as last read.
    async fn capacity(
        &self,
        active: BTreeMap<String, u32>,
        fresh: bool,
    ) -> ServiceResult<Capacity> {
        let cached = if fresh {
            None
        } else {
            self.limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        };
        let queues = match cached {
            Some(queues) => queues,
            None => {
                let queues = self
                    .services
                    .queues()
                    .limits(&self.config.configured_queues())
                    .await?;
                *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = Some(queues.clone());
                queues
            }
        };
        Ok(Capacity {
            global: self.config.concurrency,
            active,
            queues,
            hosted: self.executors.names(),
            default_executor: self.executors.default_name(),
        })
    }

    /// At start-up: each hosted executor settles the active runs bound to
    /// it that a previous process left (the local executor fails them: their
    /// processes died with it; workers' runs carry on). How many changed.
    pub async fn recover(&self) -> ServiceResult<usize> {
        let capacity = self.capacity(BTreeMap::new(), true).await?;
        let mut left: BTreeMap<ExecutorName, Vec<Assignment>> = BTreeMap::new();
        for run in self
            .services
            .runs()
            .in_statuses(&RunStatus::active(), 10_000)
            .await?
        {
            // A controller has no process: it carries on from its children.
            if is_controller(run.kind) {
                continue;
            }
            let executor = capacity
                .queues
                .get(&queue_of(run.queue.as_deref()))
                .map_or(capacity.default_executor, |limits| {
                    capacity.executor_of(limits)
                });
            left.entry(executor)
                .or_default()
                .push(crate::execution::assignment_of(&run));
        }
        let mut changed = 0;
        for (name, runs) in left {
            if let Some(executor) = self.executors.get(name) {
                changed += executor.recover(runs).await?;
            }
        }
        Ok(changed)
    }

    /// One pass: queue submitted jobs, then start what the plan allows.
    pub async fn tick(&self) -> ServiceResult<TickOutcome> {
        self.tick_with(true, true).await
    }

    /// A tick; `housekeeping` also queues again the runs of silent
    /// executors and the unschedulable runs whose queue now exists, which
    /// the loop does once per period rather than on every event-driven
    /// tick (a burst of short runs wakes it hundreds of times a second).
    /// `submitted` says whether runs may have been created or resumed
    /// since the last tick (an event said so, or events were missed); the
    /// submitted runs are read only then, or on housekeeping ticks.
    async fn tick_with(&self, housekeeping: bool, submitted: bool) -> ServiceResult<TickOutcome> {
        let mut outcome = TickOutcome::default();
        let runs = self.services.runs();
        let db = &self.services.db;
        if housekeeping {
            outcome.requeued = self.requeue_lost().await?;
        }
        let created = if housekeeping || submitted {
            trellis_db::runs::scheduling(db, &[RunStatus::Created, RunStatus::Resuming], 500)
                .await?
        } else {
            Vec::new()
        };
        // A pipeline takes no slot: it starts at once and creates runs that
        // queue like any other.
        let controllers: Vec<SchedulingRow> = created
            .iter()
            .filter(|run| is_controller(run.kind) && run.has_spec)
            .cloned()
            .collect();
        runs.advance_all(
            &controllers,
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
        // The spec was compiled at submission: record it and queue, every
        // submitted job of this tick in one transaction.
        let jobs: Vec<SchedulingRow> = created
            .into_iter()
            .filter(|run| matches!(run.kind, Some(RunKind::Job | RunKind::Service)) && run.has_spec)
            .collect();
        outcome.queued = runs
            .advance_all(
                &jobs,
                &[(RunStatus::Compiled, "Compiled")],
                RunStatus::Queued,
                "Queued",
                Some("Waiting for a free slot"),
            )
            .await?;
        // Runs queued just now compete with those already waiting: a
        // higher-priority queue's new run goes first.
        self.start_waiting(housekeeping, &mut outcome).await?;
        if housekeeping || !controllers.is_empty() || self.pipelines_active.load(Ordering::Relaxed)
        {
            let active = crate::pipelines::drive(&self.services).await?;
            self.pipelines_active.store(active > 0, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    /// Plans the queued runs and starts what the plan allows, marking runs
    /// of undefined queues unschedulable; with `housekeeping`, also queues
    /// again the unschedulable runs whose queue now exists.
    async fn start_waiting(
        &self,
        housekeeping: bool,
        outcome: &mut TickOutcome,
    ) -> ServiceResult<()> {
        let runs = self.services.runs();
        let db = &self.services.db;
        let active: BTreeMap<String, u32> =
            trellis_db::runs::executing_by_queue(db, &RunStatus::active())
                .await?
                .into_iter()
                .fold(BTreeMap::new(), |mut active, (queue, count)| {
                    *active.entry(queue_of(queue.as_deref())).or_default() +=
                        u32::try_from(count).unwrap_or(u32::MAX);
                    active
                });
        let capacity = self.capacity(active, housekeeping).await?;
        // Only the heads of the queues with room are read: the plan starts
        // no more of a queue than its room, oldest first. Runs of a queue
        // that is not defined are read to be marked unschedulable.
        let present: std::collections::BTreeSet<String> =
            trellis_db::queues::counts(db, &[RunStatus::Queued])
                .await?
                .into_iter()
                .map(|(queue, _, _)| queue_of(queue.as_deref()))
                .collect();
        let mut queued = Vec::new();
        for queue in &present {
            let limit = if capacity.queues.contains_key(queue) {
                capacity.room(queue)
            } else {
                1000
            };
            if limit > 0 {
                let default = queue == DEFAULT_QUEUE;
                queued.extend(trellis_db::runs::queued_in(db, queue, default, limit).await?);
            }
        }
        queued.sort_by_key(|run| (run.updated_at, run.id));
        let waiting: Vec<Waiting<Uuid>> = queued
            .iter()
            .map(|run| Waiting {
                id: run.uuid,
                queue: Some(queue_of(run.queue.as_deref())),
                queued_at: run.updated_at,
            })
            .collect();
        // Runs that named an unknown queue wait again once it exists (it
        // was defined through the API meanwhile); the next tick plans them.
        let unschedulable = if housekeeping {
            trellis_db::runs::scheduling(db, &[RunStatus::Unschedulable], 1000).await?
        } else {
            Vec::new()
        };
        for run in unschedulable {
            let queue = queue_of(run.queue.as_deref());
            if capacity.queues.contains_key(&queue) {
                let message = format!("The queue `{queue}` is now defined");
                runs.advance(run.uuid, RunStatus::Queued, "Queued", Some(&message))
                    .await?;
            }
        }
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
        // Each executor takes its runs of this tick in one transaction.
        let mut by_executor: BTreeMap<ExecutorName, Vec<Uuid>> = BTreeMap::new();
        for (uuid, name) in &decision.start {
            by_executor.entry(*name).or_default().push(*uuid);
        }
        let mut started = std::collections::HashSet::new();
        for (name, planned) in by_executor {
            let Some(executor) = self.executors.get(name) else {
                continue; // the plan only starts runs on hosted executors
            };
            started.extend(executor.start(&planned).await?);
        }
        // Reported in the plan's order.
        outcome.started = decision
            .start
            .into_iter()
            .filter(|(uuid, _)| started.contains(uuid))
            .collect();
        Ok(())
    }

    /// Ticks every `config.every` until shutdown, then waits for the
    /// executor tasks to stop their processes.
    pub async fn run_until_stopped(self) {
        if let Err(error) = self.recover().await {
            tracing::error!(error = ?error, "scheduler recovery failed: {error}");
        }
        // A run created or ending frees or needs a slot: tick at once
        // rather than at the next period, so short runs do not wait.
        let mut events = self.services.events().subscribe();
        let mut housekept = tokio::time::Instant::now();
        let mut first = true;
        // Whether runs may have been submitted since the last tick.
        let mut submitted = true;
        loop {
            let housekeeping = first || housekept.elapsed() >= self.config.every;
            if housekeeping {
                housekept = tokio::time::Instant::now();
                first = false;
            }
            let begun = std::time::Instant::now();
            match self.tick_with(housekeeping, submitted).await {
                Ok(outcome) => tracing::debug!(
                    micros = begun.elapsed().as_micros() as u64,
                    queued = outcome.queued.len(),
                    started = outcome.started.len(),
                    housekeeping,
                    "tick"
                ),
                Err(error) => tracing::error!(error = ?error, "scheduler tick failed: {error}"),
            }
            submitted = false;
            let woke = {
                let wake = async {
                    loop {
                        match events.recv().await {
                            Ok(event) => {
                                if let Some(submits) = wake_for(&event) {
                                    return submits;
                                }
                            }
                            // Missed events may have announced anything.
                            Err(RecvError::Lagged(_)) => return true,
                            Err(RecvError::Closed) => std::future::pending::<()>().await,
                        }
                    }
                };
                tokio::select! {
                    () = self.shutdown.cancelled() => break,
                    () = tokio::time::sleep(self.config.every) => None,
                    submits = wake => Some(submits),
                }
            };
            if let Some(submits) = woke {
                submitted = submits;
                // Let the tasks that are ready (other executions ending,
                // requests being answered) publish, and gather what they
                // announced into this tick; sleeping here would leave the
                // freed slot idle that long.
                tokio::task::yield_now().await;
                loop {
                    match events.try_recv() {
                        Ok(event) => submitted |= wake_for(&event).unwrap_or(false),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                            submitted = true;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        for executor in self.executors.iter() {
            executor.drain().await;
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
        let capacity = self.capacity(BTreeMap::new(), true).await?;
        let mut requeued = Vec::new();
        for run in runs.silent(&executing, self.config.lost_after).await? {
            // Another process's executor watches its own runs.
            if is_controller(run.kind) || !capacity.hosts(&queue_of(run.queue.as_deref())) {
                continue;
            }
            let outcome = execution::executor_went_silent(
                run.executor.as_deref(),
                self.config.lost_after.as_secs(),
            );
            // A silent executor only ever hands the run back.
            let Outcome::Requeue {
                reason, message, ..
            } = outcome
            else {
                continue;
            };
            if runs.requeue(run.uuid, reason.as_str(), &message).await? {
                tracing::warn!(run.id = %run.uuid, "run {} lost its executor; queued again", run.uuid);
                requeued.push(run.uuid);
            }
        }
        Ok(requeued)
    }
}

/// What an event means to the scheduler's loop. `None`: nothing to plan.
/// `Some(submits)`: tick now; `submits` when a run was created or resumed
/// (the tick reads those), otherwise a run was queued or a slot freed.
fn wake_for(event: &Event) -> Option<bool> {
    match event {
        Event::Status { status, .. } => match status {
            RunStatus::Created | RunStatus::Resuming => Some(true),
            RunStatus::Queued => Some(false),
            status if status.is_done() => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The queue a run asked for (`None`: the default queue).
fn queue_of(queue: Option<&str>) -> String {
    queue.unwrap_or(DEFAULT_QUEUE).to_owned()
}

/// Matrix and dag runs execute nothing: [`crate::pipelines`] drives them.
fn is_controller(kind: Option<RunKind>) -> bool {
    matches!(kind, Some(RunKind::Matrix | RunKind::Dag))
}
