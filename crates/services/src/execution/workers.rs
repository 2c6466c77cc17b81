//! The work-queue executor: runs go to `trellis worker`s. Starting a run
//! writes a "start" message into the outbox in the same transaction as
//! `scheduled`; the relay ([`crate::worker::relay`]) publishes it to
//! RabbitMQ and a [`crate::worker::Worker`] executes it with its own
//! [`super::local::LocalExecutor`].

use std::sync::Arc;

use tokio::sync::Notify;
use trellis_db::runs::OutboxMessage;
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::scheduling::ExecutorName;
use uuid::Uuid;

use super::{Assignment, Executor, RunHandle};
use crate::{ServiceError, ServiceResult, Services};

/// The outbox topic of "start this run" messages.
pub const START_TOPIC: &str = "run.start";

/// The body of a "start this run" message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartMessage {
    pub run: Uuid,
}

/// Hands runs to the workers; see the module documentation.
#[derive(Clone)]
pub struct WorkQueueExecutor {
    services: Services,
    /// Wakes the relay in this process as soon as a message is written.
    written: Arc<Notify>,
}

impl WorkQueueExecutor {
    /// An executor writing to the outbox; `written` is notified after each
    /// message commits (the relay in this process waits on it).
    pub fn new(services: Services, written: Arc<Notify>) -> Self {
        Self { services, written }
    }
}

#[async_trait::async_trait]
impl Executor for WorkQueueExecutor {
    fn name(&self) -> ExecutorName {
        ExecutorName::Workers
    }

    async fn start(&self, runs: &[Uuid]) -> ServiceResult<Vec<Uuid>> {
        let handles = RunHandle::find_all(&self.services, runs).await?;
        let payloads = handles
            .iter()
            .map(|handle| serde_json::to_string(&StartMessage { run: handle.uuid() }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::Dependency(e.to_string()))?;
        let outbox: Vec<OutboxMessage<'_>> = payloads
            .iter()
            .map(|payload| OutboxMessage {
                topic: START_TOPIC,
                payload,
            })
            .collect();
        let sent = RunHandle::advance_all(
            handles,
            &[],
            RunStatus::Scheduled,
            "Scheduled",
            Some("Sent to the work queue"),
            None,
            &outbox,
        )
        .await?;
        if !sent.is_empty() {
            self.written.notify_one();
        }
        Ok(sent.iter().map(RunHandle::uuid).collect())
    }

    /// Workers outlive a restarted scheduler: their runs carry on, and a
    /// run whose worker died is found by its missing heartbeats.
    async fn recover(&self, _left: Vec<Assignment>) -> ServiceResult<usize> {
        Ok(0)
    }

    /// Nothing executes in this process.
    async fn drain(&self) {}
}
