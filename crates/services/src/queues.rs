//! Named queues: those the scheduler was started with (`--queue`), and
//! those defined through the API, which win over a configured queue of the
//! same name.

use std::collections::BTreeMap;

use trellis_api_types as api;
use trellis_db::queues::{self, QueueRow};
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::scheduling::{DEFAULT_QUEUE, QueueLimits, check_queue_name};

use crate::{ServiceError, ServiceResult, Services};

/// Queue use cases; see [`Services::queues`].
pub struct Queues<'a> {
    pub(crate) services: &'a Services,
}

impl Queues<'_> {
    /// The limits in force: `configured`, overridden by the stored queues.
    pub async fn limits(
        &self,
        configured: &BTreeMap<String, QueueLimits>,
    ) -> ServiceResult<BTreeMap<String, QueueLimits>> {
        let mut limits = configured.clone();
        for row in queues::list(&self.services.db).await? {
            limits.insert(
                row.name,
                QueueLimits {
                    concurrency: row.concurrency,
                    priority: row.priority,
                    executor: row.executor,
                },
            );
        }
        Ok(limits)
    }

    /// Every queue with its runs waiting and active.
    pub async fn list(&self) -> ServiceResult<Vec<api::Queue>> {
        let configured = self.services.configured_queues.as_ref();
        let stored: Vec<QueueRow> = queues::list(&self.services.db).await?;
        let mut all: BTreeMap<String, api::Queue> = BTreeMap::new();
        let mut put = |name: &str, limits: &QueueLimits, source: &str| {
            all.insert(
                name.to_owned(),
                api::Queue {
                    name: name.to_owned(),
                    concurrency: limits.concurrency,
                    priority: limits.priority,
                    executor: limits.executor,
                    source: source.to_owned(),
                    queued: 0,
                    active: 0,
                },
            );
        };
        for (name, limits) in configured {
            put(name, limits, "config");
        }
        for row in &stored {
            let limits = QueueLimits {
                concurrency: row.concurrency,
                priority: row.priority,
                executor: row.executor,
            };
            put(&row.name, &limits, "api");
        }
        let name_of = |queue: Option<String>| queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        let mut counted = RunStatus::active();
        counted.push(RunStatus::Queued);
        for (queue, status, count) in queues::counts(&self.services.db, &counted).await? {
            if let Some(entry) = all.get_mut(&name_of(queue)) {
                let count = u64::try_from(count).unwrap_or_default();
                if status == RunStatus::Queued {
                    entry.queued += count;
                } else {
                    entry.active += count;
                }
            }
        }
        Ok(all.into_values().collect())
    }

    /// Defines or changes queue `name`; the scheduler applies it at its
    /// next tick.
    pub async fn put(&self, name: &str, input: api::PutQueue) -> ServiceResult<api::Queue> {
        check_queue_name(name).map_err(|e| ServiceError::invalid("name", e))?;
        if input.concurrency < 1 {
            return Err(ServiceError::invalid(
                "concurrency",
                "`concurrency` must be at least 1",
            ));
        }
        let row = QueueRow {
            name: name.to_owned(),
            concurrency: input.concurrency,
            priority: input.priority,
            executor: input.executor,
        };
        queues::upsert(&self.services.db, &row, self.services.now()).await?;
        self.list()
            .await?
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| ServiceError::NotFound {
                entity: "queue",
                id: name.to_owned(),
            })
    }

    /// Removes a queue defined through the API (a configured queue of the
    /// same name applies again).
    pub async fn delete(&self, name: &str) -> ServiceResult<()> {
        if queues::delete(&self.services.db, name).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound {
                entity: "queue defined through the API",
                id: name.to_owned(),
            })
        }
    }
}
