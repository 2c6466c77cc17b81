//! Live streams: a run's logs from a cursor, and a project's status changes.
//!
//! Both read the database and use [`trellis_events`] only as a wake-up
//! call, so a missed, late or repeated event never loses or repeats a line:
//! the log cursor is the `run_logs` id, advanced only past lines returned.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use trellis_api_types as api;
use trellis_db::runs::RunRow;
use trellis_events::Event;

use crate::runs::{RunRef, log_entry};
use crate::{ServiceError, ServiceResult, Services};

/// Lines sent per message at most.
const LINES_PER_MESSAGE: u32 = 1000;
/// How long a reader waits for an event before looking anyway.
const POLL: Duration = Duration::from_secs(1);

/// Follows a run's logs from a cursor until the run is done.
pub struct LogFollower {
    services: Services,
    run: RunRow,
    cursor: i64,
    events: broadcast::Receiver<Event>,
    finished: bool,
}

impl LogFollower {
    /// Starts after cursor `after` (0: from the first line).
    pub async fn new(services: &Services, at: RunRef<'_>, after: i64) -> ServiceResult<Self> {
        if after < 0 {
            return Err(ServiceError::invalid(
                "cursor",
                "`cursor` must not be negative",
            ));
        }
        // Subscribe before the first read: a line appended in between is
        // then both read and announced, never neither.
        let events = services.events().subscribe();
        let run = services.runs().row(at).await?;
        Ok(Self {
            services: services.clone(),
            run,
            cursor: after,
            events,
            finished: false,
        })
    }

    /// The next lines, then one message with `done: true` once the run is
    /// done and every line was sent; `None` after that.
    pub async fn next(&mut self) -> ServiceResult<Option<api::RunLogs>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            // Status before lines: an executor stores all of a run's lines
            // before its final status, so a run seen done here has nothing
            // left that the read below could miss.
            let done = self
                .services
                .runs()
                .status_of(self.run.uuid)
                .await?
                .is_none_or(|s| s.is_done());
            let lines = trellis_db::logs::after(
                self.services.db(),
                self.run.id,
                self.cursor,
                LINES_PER_MESSAGE,
            )
            .await?;
            if let Some(last) = lines.last() {
                self.cursor = last.cursor;
                return Ok(Some(api::RunLogs {
                    logs: lines.into_iter().map(log_entry).collect(),
                    next_cursor: self.cursor,
                    done: false,
                }));
            }
            if done {
                self.finished = true;
                return Ok(Some(api::RunLogs {
                    logs: Vec::new(),
                    next_cursor: self.cursor,
                    done: true,
                }));
            }
            self.wait().await;
        }
    }

    /// Until an event about this run, or [`POLL`].
    async fn wait(&mut self) {
        let uuid = self.run.uuid;
        let _ = tokio::time::timeout(POLL, async {
            loop {
                match self.events.recv().await {
                    Ok(Event::Logs { run, .. } | Event::Status { run, .. }) if run == uuid => {
                        return;
                    }
                    Ok(_) => {}
                    // Fell behind: look at the database now.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        })
        .await;
    }
}

/// Follows the status changes of a project's runs.
pub struct StatusFollower {
    project_id: i64,
    events: broadcast::Receiver<Event>,
}

impl StatusFollower {
    /// From now on, for project `owner/project`.
    pub async fn new(services: &Services, owner: &str, project: &str) -> ServiceResult<Self> {
        let events = services.events().subscribe();
        let project = crate::projects::load(services, owner, project).await?;
        Ok(Self {
            project_id: project.id,
            events,
        })
    }

    /// The next change.
    pub async fn next(&mut self) -> Option<api::StatusStreamMessage> {
        loop {
            match self.events.recv().await {
                Ok(Event::Status {
                    run,
                    project_id,
                    status,
                }) if project_id == self.project_id => {
                    return Some(api::StatusStreamMessage::Status { uuid: run, status });
                }
                Ok(Event::Metrics { run, project_id }) if project_id == self.project_id => {
                    return Some(api::StatusStreamMessage::Metrics { uuid: run });
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return Some(api::StatusStreamMessage::Resync),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
