//! One run, as executors (and the scheduler's tests) act on it.

use std::collections::BTreeMap;

use trellis_db::runs::{Claim, RunRow};
use trellis_db::tracking::NewPoint;
use trellis_domain::execution::Reason;
use trellis_domain::lifecycle::RunStatus;
use trellis_domain::logs::LogLine;
use trellis_domain::run::RunKind;
use trellis_domain::spec::StoredSpec;
use uuid::Uuid;

use crate::{ServiceError, ServiceResult, Services};

/// What an executor is given to execute: the run's identity and what it
/// asked for.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub uuid: Uuid,
    pub name: Option<String>,
    pub owner: String,
    pub project: String,
    pub project_id: i64,
    pub kind: Option<RunKind>,
    pub status: RunStatus,
    /// Who executed it last (`local:<host>`, `worker:<id>`), and its
    /// process there.
    pub executor: Option<String>,
    pub pid: Option<i64>,
}

/// A handle on one stored run: every report an executor makes goes
/// through it, so the same rules (the lifecycle's guarded changes, log
/// cursors, the events announcing each) hold whoever executes.
#[derive(Clone)]
pub struct RunHandle {
    services: Services,
    row: RunRow,
    /// The stored compiled spec, read with the row.
    compiled: Option<String>,
}

impl RunHandle {
    /// The handle of run `uuid`, if it exists (read with its compiled
    /// spec, in one query).
    pub async fn find(services: &Services, uuid: Uuid) -> ServiceResult<Option<Self>> {
        Ok(trellis_db::runs::find_with_compiled(&services.db, uuid)
            .await?
            .map(|(row, compiled)| Self {
                services: services.clone(),
                row,
                compiled,
            }))
    }

    /// The handles of runs `uuids` that exist (each read with its compiled
    /// spec), in one query.
    pub async fn find_all(services: &Services, uuids: &[Uuid]) -> ServiceResult<Vec<Self>> {
        Ok(
            trellis_db::runs::find_all_with_compiled(&services.db, uuids)
                .await?
                .into_iter()
                .map(|(row, compiled)| Self {
                    services: services.clone(),
                    row,
                    compiled,
                })
                .collect(),
        )
    }

    /// Moves each of `runs` through `via` to `next`, as
    /// [`RunHandle::advance_claiming`] does one, in one transaction for all
    /// (`outbox[i]`, if given, is written with `runs[i]`'s change): the
    /// handles it applied to, changed.
    pub async fn advance_all(
        runs: Vec<Self>,
        via: &[(RunStatus, &str)],
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
        claim: Option<Claim<'_>>,
        outbox: &[trellis_db::runs::OutboxMessage<'_>],
    ) -> ServiceResult<Vec<Self>> {
        let Some(first) = runs.first() else {
            return Ok(Vec::new());
        };
        let services = first.services.clone();
        let rows: Vec<RunRow> = runs.iter().map(|r| r.row.clone()).collect();
        let changed = services
            .runs()
            .advance_rows(&rows, via, next, reason, message, claim, outbox)
            .await?;
        Ok(runs
            .into_iter()
            .zip(changed)
            .filter_map(|(mut handle, row)| {
                handle.row = row?;
                Some(handle)
            })
            .collect())
    }

    pub fn uuid(&self) -> Uuid {
        self.row.uuid
    }

    /// The run's status as last read or changed through this handle.
    pub fn status(&self) -> RunStatus {
        self.row.status
    }

    /// The run as an executor sees it.
    pub fn assignment(&self) -> Assignment {
        assignment(&self.row)
    }

    /// Its spec, compiled once at submission; what is known only at
    /// execution is filled in with [`StoredSpec::for_execution`].
    pub async fn spec(&self) -> ServiceResult<StoredSpec> {
        match &self.compiled {
            Some(text) => crate::runs::decode_spec(text),
            None => self.services.runs().stored_spec(&self.row).await,
        }
    }

    /// The status stored now; `None` once the run is deleted.
    pub async fn current_status(&self) -> ServiceResult<Option<RunStatus>> {
        Ok(trellis_db::runs::find_any(&self.services.db, self.row.uuid)
            .await?
            .map(|r| r.status))
    }

    /// How the run ends now that it was asked to stop: a stop on request,
    /// or culled for being idle, as the `stopping` condition says.
    pub async fn stop_ending(&self) -> ServiceResult<trellis_domain::execution::Ending> {
        let conditions = trellis_db::runs::conditions(&self.services.db, self.row.id).await?;
        let request = conditions
            .iter()
            .rev()
            .find(|c| c.status == RunStatus::Stopping);
        Ok(match request {
            Some(c) => trellis_domain::execution::stopped_for(
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref(),
            ),
            None => trellis_domain::execution::Ending::Stopped,
        })
    }

    /// Moves the run to `next` if the lifecycle allows it from where it is
    /// now; `false` when it does not (it was stopped meanwhile, say).
    pub async fn advance(
        &mut self,
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
    ) -> ServiceResult<bool> {
        match self
            .services
            .runs()
            .advance_from(&self.row, next, reason, message)
            .await?
        {
            Some(row) => {
                self.row = row;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Moves the run through `via` to `next` in one transaction, recording
    /// that `executor` runs it (as process `pid`, once known) with a
    /// heartbeat in the same update; `false` when the lifecycle does not
    /// allow it from where the run is now.
    pub async fn advance_claiming(
        &mut self,
        via: &[(RunStatus, &str)],
        next: RunStatus,
        reason: &str,
        message: Option<&str>,
        executor: &str,
        pid: Option<i32>,
    ) -> ServiceResult<bool> {
        let claim = Claim {
            executor,
            pid: pid.map(i64::from),
        };
        match self
            .services
            .runs()
            .advance_claiming(&self.row, via, next, reason, message, claim)
            .await?
        {
            Some(row) => {
                self.row = row;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Back to the queue: `retrying`, then `queued`; `false` if the
    /// lifecycle refused.
    pub async fn requeue(&self, reason: &str, message: &str) -> ServiceResult<bool> {
        self.services
            .runs()
            .requeue(self.row.uuid, reason, message)
            .await
    }

    /// How many of the run's `termination.maxRetries` its failed attempts
    /// spent: its `retrying` conditions with reason `Retrying` (a hand-back
    /// after a shutdown or a silent executor has its own reason and spends
    /// none).
    pub async fn retries(&self) -> ServiceResult<u32> {
        let count = trellis_db::runs::count_conditions(
            &self.services.db,
            self.row.id,
            RunStatus::Retrying,
            Reason::Retrying.as_str(),
        )
        .await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Appends captured output and announces the new end of the log.
    pub async fn append_logs(&self, lines: &[LogLine]) -> ServiceResult<()> {
        self.services.runs().append_logs_to(&self.row, lines).await
    }

    /// Records that `executor` runs it (as process `pid`) and is alive;
    /// `false` once the run is done.
    pub async fn heartbeat(&self, executor: &str, pid: Option<i32>) -> ServiceResult<bool> {
        let now = self.services.now();
        Ok(trellis_db::runs::heartbeat(
            &self.services.db,
            self.row.id,
            executor,
            pid.map(i64::from),
            now,
        )
        .await?)
    }

    /// Records resource use sampled by the executor (`system/*` metrics).
    pub async fn log_usage(&self, points: Vec<NewPoint>) -> ServiceResult<()> {
        self.services
            .tracking()
            .log_system_metrics(&self.row, points)
            .await
    }

    /// Records where the service's declared ports listen (declared port →
    /// address), for [`super::Executor::address`] and the workspace proxy.
    pub async fn record_endpoints(&self, endpoints: &BTreeMap<u16, String>) -> ServiceResult<()> {
        let text = serde_json::to_string(endpoints)
            .map_err(|e| ServiceError::Dependency(format!("encoding endpoints: {e}")))?;
        trellis_db::runs::set_endpoints(&self.services.db, self.row.id, Some(&text)).await?;
        Ok(())
    }

    /// What [`RunHandle::record_endpoints`] recorded last.
    pub async fn endpoints(&self) -> ServiceResult<BTreeMap<u16, String>> {
        match trellis_db::runs::endpoints(&self.services.db, self.row.id).await? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                ServiceError::Dependency(format!(
                    "the endpoints stored for run {} do not read: {e}",
                    self.row.uuid
                ))
            }),
            None => Ok(BTreeMap::new()),
        }
    }
}

pub(crate) fn assignment(row: &RunRow) -> Assignment {
    Assignment {
        uuid: row.uuid,
        name: row.name.clone(),
        owner: row.owner.clone(),
        project: row.project.clone(),
        project_id: row.project_id,
        kind: row.kind,
        status: row.status,
        executor: row.executor.clone(),
        pid: row.pid,
    }
}
