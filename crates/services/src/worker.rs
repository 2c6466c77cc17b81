//! Distributed execution: the outbox relay (scheduler side) and the worker.
//!
//! The scheduler's work-queue executor writes "start" messages into the
//! outbox in the same transaction as `scheduled`
//! ([`crate::execution::workers::WorkQueueExecutor`]);
//! [`relay`] publishes them to RabbitMQ, waiting for each confirm before
//! deleting the row, so a crash in between publishes a message twice rather
//! than never. A [`Worker`] consumes them with a local executor
//! ([`crate::execution::local::LocalExecutor`]): it executes a run only if it is
//! still `scheduled` (the guarded `scheduled → starting` change lets exactly
//! one worker win), and acknowledges the delivery only after the run's
//! outcome is committed. A worker killed mid-run leaves its run silent; the
//! scheduler's heartbeat check queues it again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use trellis_domain::lifecycle::RunStatus;
use trellis_queue::{Delivery, WorkQueue};

use crate::execution::RunHandle;
use crate::execution::local::{LocalConfig, LocalExecutor};
use crate::execution::workers::StartMessage;
use crate::{ServiceError, ServiceResult, Services};

/// Outbox rows read per pass.
const RELAY_BATCH: u32 = 200;

/// Publishes the outbox to `queue` until `shutdown`: at once when this
/// process's work-queue executor wrote a message (`written`), and every
/// 250 ms for messages written elsewhere.
pub async fn relay(
    services: Services,
    queue: Arc<WorkQueue>,
    written: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let published = match relay_once(&services, &queue).await {
            Ok(count) => count,
            Err(error) => {
                tracing::error!(error = ?error, "outbox relay failed: {error}");
                0
            }
        };
        if published > 0 {
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = written.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// One pass of [`relay`]: how many messages were published.
pub async fn relay_once(services: &Services, queue: &WorkQueue) -> ServiceResult<usize> {
    let pending = trellis_db::outbox::pending(services.db(), RELAY_BATCH).await?;
    for message in &pending {
        queue
            .publish(message.payload.as_bytes())
            .await
            .map_err(|e| ServiceError::Dependency(e.to_string()))?;
        trellis_db::outbox::delete(services.db(), message.id).await?;
    }
    Ok(pending.len())
}

/// A worker process: executes the runs it receives from the work queue.
pub struct Worker {
    services: Services,
    executor: LocalExecutor,
    /// At most this many runs at once.
    concurrency: u32,
    queue: Arc<WorkQueue>,
    shutdown: CancellationToken,
}

impl Worker {
    /// A worker executing at most `concurrency` runs at once as `config`
    /// says.
    pub fn new(
        services: Services,
        config: LocalConfig,
        concurrency: u32,
        queue: Arc<WorkQueue>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            executor: LocalExecutor::new(services.clone(), config, shutdown.clone()),
            services,
            concurrency,
            queue,
            shutdown,
        }
    }

    /// Consumes until shutdown, then stops its runs (handing them back to
    /// the queue) and waits for them.
    pub async fn run(self) -> ServiceResult<()> {
        let id = self.executor.config().executor_id.clone();
        let prefetch = u16::try_from(self.concurrency).unwrap_or(u16::MAX);
        let mut deliveries = self
            .queue
            .consume(&id, prefetch)
            .await
            .map_err(|e| ServiceError::Dependency(e.to_string()))?;
        tracing::info!(worker = %id, "worker {id} is consuming with concurrency {prefetch}");
        let mut tasks = JoinSet::new();
        let outcome = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break Ok(()),
                // Reap finished executions.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                delivery = deliveries.next() => match delivery {
                    Some(Ok(delivery)) => {
                        tasks.spawn(handle(
                            self.services.clone(),
                            self.executor.clone(),
                            delivery,
                        ));
                    }
                    Some(Err(error)) => break Err(ServiceError::Dependency(error.to_string())),
                    None => break Err(ServiceError::Dependency(
                        "the work queue connection closed".to_owned(),
                    )),
                },
            }
        };
        // Executions watch the same shutdown token.
        self.shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        outcome
    }
}

/// Executes the run a delivery names, if it is still waiting for an
/// executor, then acknowledges the delivery.
async fn handle(services: Services, executor: LocalExecutor, delivery: Delivery) {
    match serde_json::from_slice::<StartMessage>(delivery.payload()) {
        Err(error) => {
            // A message no worker can read would come back forever.
            tracing::warn!(error = %error, "dropping an unreadable work message: {error}");
        }
        Ok(StartMessage { run }) => match RunHandle::find(&services, run).await {
            Ok(Some(run)) if run.status() == RunStatus::Scheduled => {
                executor.execute(run).await;
            }
            // Done, taken by another worker, or deleted: nothing to do.
            Ok(_) => {}
            Err(error) => {
                tracing::error!(error = ?error, "cannot read run {run}: {error}");
                // Give it back rather than lose it.
                let _ = delivery.requeue().await;
                return;
            }
        },
    }
    if let Err(error) = delivery.ack().await {
        tracing::warn!(error = %error, "cannot acknowledge a work message: {error}");
    }
}
