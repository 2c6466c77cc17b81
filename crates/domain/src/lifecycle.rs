//! The run lifecycle: one status enum, one transition function.
//!
//! Statuses follow Polyaxon's. A run is created, optionally waits for a
//! schedule, is compiled, queued, scheduled, started and runs until a done
//! status. A done status is final unless the user resumes the run (the
//! `resuming` status). Every change the store makes goes through
//! [`transition`], and the timing fields of a run follow from the transitions
//! through [`Timing::apply`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Every status a run can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunStatus {
    Created,
    Resuming,
    OnSchedule,
    Compiled,
    Queued,
    Scheduled,
    Starting,
    Running,
    Processing,
    Stopping,
    Failed,
    Stopped,
    Succeeded,
    Skipped,
    Warning,
    Unschedulable,
    UpstreamFailed,
    Retrying,
    Unknown,
}

use RunStatus::*;

impl RunStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [RunStatus; 19] = [
        Created,
        Resuming,
        OnSchedule,
        Compiled,
        Queued,
        Scheduled,
        Starting,
        Running,
        Processing,
        Stopping,
        Failed,
        Stopped,
        Succeeded,
        Skipped,
        Warning,
        Unschedulable,
        UpstreamFailed,
        Retrying,
        Unknown,
    ];

    /// The wire and storage spelling (`upstream_failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Created => "created",
            Resuming => "resuming",
            OnSchedule => "on_schedule",
            Compiled => "compiled",
            Queued => "queued",
            Scheduled => "scheduled",
            Starting => "starting",
            Running => "running",
            Processing => "processing",
            Stopping => "stopping",
            Failed => "failed",
            Stopped => "stopped",
            Succeeded => "succeeded",
            Skipped => "skipped",
            Warning => "warning",
            Unschedulable => "unschedulable",
            UpstreamFailed => "upstream_failed",
            Retrying => "retrying",
            Unknown => "unknown",
        }
    }

    /// Done statuses are final: nothing but a resume leaves them. They match
    /// the pseudo status `done` of hooks.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Failed | Stopped | Succeeded | Skipped | UpstreamFailed
        )
    }

    /// Waiting to start: no process has been started for the current attempt.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Created | Resuming | OnSchedule | Compiled | Queued | Retrying | Unschedulable
        )
    }

    /// Placed on an executor, or running there (including degraded states).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Scheduled | Starting | Running | Processing | Warning | Unknown | Stopping
        )
    }

    /// Every status [`RunStatus::is_active`] accepts: the runs that hold an
    /// executor slot.
    pub fn active() -> Vec<RunStatus> {
        RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect()
    }

    /// The status a stop request leads to: a run with nothing started stops at
    /// once; a run on an executor first goes through `stopping`, and the
    /// executor reports `stopped` when its process is gone. `None` for a done
    /// run (there is nothing to stop) and for a run already stopping.
    pub fn stop_target(self) -> Option<RunStatus> {
        if self.is_pending() {
            Some(Stopped)
        } else if self == Stopping || self.is_done() {
            None
        } else {
            Some(Stopping)
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status `{0}`; expected one of: created, resuming, on_schedule, compiled, queued, scheduled, starting, running, processing, stopping, failed, stopped, succeeded, skipped, warning, unschedulable, upstream_failed, retrying, unknown"
)]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A refused transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the run is already `{0}`")]
    Unchanged(RunStatus),
    #[error("the run is `{from}`, which is final; resume it before setting `{to}`")]
    FromDone { from: RunStatus, to: RunStatus },
    #[error("a run cannot go from `{from}` to `{to}`")]
    Illegal { from: RunStatus, to: RunStatus },
}

/// The one transition function: may a run in `from` move to `to`?
///
/// The table is written from the target's side (which statuses may lead to
/// `to`), as Polyaxon's lifecycle is, so each arm reads as a rule.
pub fn transition(from: RunStatus, to: RunStatus) -> Result<(), TransitionError> {
    if from == to {
        return Err(TransitionError::Unchanged(from));
    }
    if from.is_done() && to != Resuming {
        return Err(TransitionError::FromDone { from, to });
    }
    let allowed = match to {
        // Created is only ever the first status.
        Created => false,
        Resuming => from.is_done(),
        OnSchedule => matches!(from, Created | Resuming),
        Compiled => matches!(from, Created | Resuming | OnSchedule),
        Queued => matches!(from, Compiled | Retrying | Unschedulable),
        Scheduled => matches!(from, Queued | Unschedulable | Warning | Unknown),
        Starting => matches!(from, Scheduled | Warning | Unknown),
        Running => matches!(from, Scheduled | Starting | Processing | Warning | Unknown),
        Processing => matches!(from, Running | Warning),
        Warning => matches!(from, Scheduled | Starting | Running | Processing | Unknown),
        Unschedulable => matches!(from, Queued | Scheduled),
        Unknown => matches!(
            from,
            Scheduled | Starting | Running | Processing | Warning | Stopping
        ),
        Retrying => matches!(
            from,
            Scheduled | Starting | Running | Processing | Warning | Unknown | Unschedulable
        ),
        Stopping => from.is_active(),
        // Pending runs stop at once; active ones are expected to pass through
        // `stopping`, but an executor may report a process gone directly.
        Stopped => !from.is_done(),
        // A compile error fails a created run; a crash fails a running one.
        Failed => !from.is_done(),
        Succeeded => matches!(
            from,
            Starting | Running | Processing | Warning | Unknown | Stopping
        ),
        Skipped | UpstreamFailed => from.is_pending(),
    };
    if allowed {
        Ok(())
    } else {
        Err(TransitionError::Illegal { from, to })
    }
}

/// Who moves a run through its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Trellis executes the run (it was submitted with a spec): the strict
    /// table of [`transition`] holds, so a report cannot skip the steps the
    /// scheduler and executor take.
    Trellis,
    /// Something outside reports the run's progress (an MLflow client, a
    /// script using the API, an external executor): it has no queue or
    /// executor steps to go through, so it may say its run is queued,
    /// scheduled, starting, running or succeeded from wherever it waits.
    External,
}

impl Driver {
    /// The driver of a run whose compiled kind is `kind`: runs without a
    /// spec (no kind) are never executed by Trellis.
    pub fn of(kind: Option<crate::run::RunKind>) -> Self {
        if kind.is_some() {
            Driver::Trellis
        } else {
            Driver::External
        }
    }
}

/// [`transition`] for a run driven by `driver`.
pub fn transition_by(
    driver: Driver,
    from: RunStatus,
    to: RunStatus,
) -> Result<(), TransitionError> {
    let strict = transition(from, to);
    match (driver, strict) {
        (Driver::External, Err(TransitionError::Illegal { .. }))
            if from.is_pending()
                && matches!(to, Queued | Scheduled | Starting | Running | Succeeded) =>
        {
            Ok(())
        }
        (_, result) => result,
    }
}

/// Who makes a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// A client of the API (a user, an SDK, an external executor reporting
    /// its own run): it is answered once the change is stored.
    Client,
    /// Trellis itself: the scheduler and its executors, acting on the runs
    /// they found.
    Trellis,
}

/// When the commit of a status change must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the change is acknowledged: not even a crash of the machine
    /// loses it.
    OnDisk,
    /// With the next commit that waits for the disk (or the database's own
    /// flush, a fraction of a second later): a crash of the server process
    /// loses nothing, a crash of the machine may lose the change.
    Deferred,
}

/// How a change to `next` made by `by` is committed.
///
/// Trellis's own steps of a run towards running (`compiled`, `queued`,
/// `scheduled`, `starting`, `running`) are deferred: nobody was answered
/// about them, and a crash of the machine that loses one also ended the
/// process it describes, so recovery settles the run from what is on disk
/// (the run is queued again, or fails as lost) just as it would have
/// without the loss. Every other change is on disk before anyone goes on:
/// what a client is answered about, a run's end (pipelines and users act on
/// it), a stop request. On a disk that takes half a millisecond to flush,
/// this takes three of a short job's five commits off the disk's queue.
pub fn durability(next: RunStatus, by: Reporter) -> Durability {
    match (by, next) {
        (Reporter::Trellis, Compiled | Queued | Scheduled | Starting | Running) => {
            Durability::Deferred
        }
        _ => Durability::OnDisk,
    }
}

/// The timing fields of a run, all derived from its transitions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When the current attempt first entered `running`.
    pub started_at: Option<DateTime<Utc>>,
    /// When the run entered a done status; cleared by a resume.
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from creation to start.
    pub wait_time: Option<f64>,
    /// Seconds from start (or creation, if it never started) to finish.
    pub duration: Option<f64>,
}

impl Timing {
    /// The timing of a run created at `now`.
    pub fn new(created_at: DateTime<Utc>) -> Self {
        Self {
            created_at,
            started_at: None,
            finished_at: None,
            wait_time: None,
            duration: None,
        }
    }

    /// The timing after a legal transition to `to` at `now`.
    pub fn apply(self, to: RunStatus, now: DateTime<Utc>) -> Self {
        let mut next = self;
        match to {
            Running if self.started_at.is_none() => {
                next.started_at = Some(now);
                next.wait_time = Some(seconds_between(self.created_at, now));
            }
            Resuming => {
                next.finished_at = None;
                next.duration = None;
            }
            done if done.is_done() => {
                next.finished_at = Some(now);
                let from = self.started_at.unwrap_or(self.created_at);
                next.duration = Some(seconds_between(from, now));
            }
            _ => {}
        }
        next
    }
}

/// Seconds from `from` to `to`, never negative (clocks of different hosts may
/// disagree a little).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let micros = (to - from).num_microseconds().unwrap_or(i64::MAX).max(0);
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn only_trellis_steps_towards_running_are_deferred() {
        for status in RunStatus::ALL {
            let deferred = matches!(status, Compiled | Queued | Scheduled | Starting | Running);
            assert_eq!(
                durability(status, Reporter::Trellis),
                if deferred {
                    Durability::Deferred
                } else {
                    Durability::OnDisk
                },
                "Trellis → {status}"
            );
            // A client is answered about its change: always on disk first.
            assert_eq!(
                durability(status, Reporter::Client),
                Durability::OnDisk,
                "client → {status}"
            );
        }
    }

    /// The expected table, written independently of `transition` as the set
    /// of legal (from, to) pairs, so that every one of the 19 × 19 pairs is
    /// checked against it.
    fn expected_legal() -> Vec<(RunStatus, RunStatus)> {
        let mut legal = Vec::new();
        let mut add = |to: RunStatus, froms: &[RunStatus]| {
            for &from in froms {
                legal.push((from, to));
            }
        };
        let done = [Failed, Stopped, Succeeded, Skipped, UpstreamFailed];
        let pending = [
            Created,
            Resuming,
            OnSchedule,
            Compiled,
            Queued,
            Retrying,
            Unschedulable,
        ];
        let active = [
            Scheduled, Starting, Running, Processing, Warning, Unknown, Stopping,
        ];
        add(Resuming, &done);
        add(OnSchedule, &[Created, Resuming]);
        add(Compiled, &[Created, Resuming, OnSchedule]);
        add(Queued, &[Compiled, Retrying, Unschedulable]);
        add(Scheduled, &[Queued, Unschedulable, Warning, Unknown]);
        add(Starting, &[Scheduled, Warning, Unknown]);
        add(
            Running,
            &[Scheduled, Starting, Processing, Warning, Unknown],
        );
        add(Processing, &[Running, Warning]);
        add(
            Warning,
            &[Scheduled, Starting, Running, Processing, Unknown],
        );
        add(Unschedulable, &[Queued, Scheduled]);
        add(
            Unknown,
            &[Scheduled, Starting, Running, Processing, Warning, Stopping],
        );
        add(
            Retrying,
            &[
                Scheduled,
                Starting,
                Running,
                Processing,
                Warning,
                Unknown,
                Unschedulable,
            ],
        );
        add(
            Stopping,
            &[Scheduled, Starting, Running, Processing, Warning, Unknown],
        );
        let not_done: Vec<RunStatus> = pending.iter().chain(active.iter()).copied().collect();
        add(Stopped, &not_done);
        add(Failed, &not_done);
        add(
            Succeeded,
            &[Starting, Running, Processing, Warning, Unknown, Stopping],
        );
        add(Skipped, &pending);
        add(UpstreamFailed, &pending);
        legal
    }

    #[test]
    fn every_pair_of_statuses_follows_the_table() {
        let legal = expected_legal();
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(
                    transition(from, to).is_ok(),
                    expected,
                    "{from} -> {to} should be {}",
                    if expected { "legal" } else { "refused" }
                );
            }
        }
    }

    #[test]
    fn an_external_reporter_may_also_start_or_finish_a_waiting_run() {
        let mut legal = expected_legal();
        let pending = RunStatus::ALL.into_iter().filter(|s| s.is_pending());
        for from in pending {
            for to in [Queued, Scheduled, Starting, Running, Succeeded] {
                if from != to && !legal.contains(&(from, to)) {
                    legal.push((from, to));
                }
            }
        }
        for from in RunStatus::ALL {
            for to in RunStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(
                    transition_by(Driver::External, from, to).is_ok(),
                    expected,
                    "external: {from} -> {to}"
                );
                assert_eq!(
                    transition_by(Driver::Trellis, from, to),
                    transition(from, to),
                    "managed: {from} -> {to}"
                );
            }
        }
        assert!(transition_by(Driver::External, Created, Running).is_ok());
        assert!(transition(Created, Running).is_err());
        assert_eq!(Driver::of(Some(crate::run::RunKind::Job)), Driver::Trellis);
        assert_eq!(Driver::of(None), Driver::External);
    }

    #[test]
    fn groups_partition_the_statuses() {
        for status in RunStatus::ALL {
            let groups = [status.is_done(), status.is_pending(), status.is_active()];
            assert_eq!(groups.iter().filter(|g| **g).count(), 1, "{status}");
        }
    }

    #[test]
    fn done_statuses_only_lead_to_resuming() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_done()) {
            for to in RunStatus::ALL {
                let result = transition(from, to);
                if to == Resuming {
                    assert!(result.is_ok());
                } else {
                    assert!(result.is_err(), "{from} -> {to}");
                }
            }
        }
        assert_eq!(
            transition(Succeeded, Running),
            Err(TransitionError::FromDone {
                from: Succeeded,
                to: Running
            })
        );
    }

    #[test]
    fn nothing_leads_back_to_created() {
        for from in RunStatus::ALL {
            assert!(transition(from, Created).is_err());
        }
    }

    #[test]
    fn the_happy_path_is_legal_step_by_step() {
        let path = [
            Created, Compiled, Queued, Scheduled, Starting, Running, Succeeded,
        ];
        for pair in path.windows(2) {
            assert_eq!(
                transition(pair[0], pair[1]),
                Ok(()),
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn setting_the_same_status_is_refused() {
        assert_eq!(
            transition(Running, Running),
            Err(TransitionError::Unchanged(Running))
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            let json = serde_json_like(status);
            assert_eq!(json, status.as_str());
        }
        assert!("done".parse::<RunStatus>().is_err());
    }

    fn serde_json_like(status: RunStatus) -> String {
        // serde_yaml is already a dependency; a YAML scalar is the bare name.
        serde_yaml::to_string(&status).unwrap().trim().to_owned()
    }

    #[test]
    fn stop_targets_depend_on_whether_anything_runs() {
        assert_eq!(Queued.stop_target(), Some(Stopped));
        assert_eq!(Created.stop_target(), Some(Stopped));
        assert_eq!(Running.stop_target(), Some(Stopping));
        assert_eq!(Stopping.stop_target(), None);
        assert_eq!(Succeeded.stop_target(), None);
        for status in RunStatus::ALL {
            if let Some(target) = status.stop_target() {
                assert_eq!(transition(status, target), Ok(()), "{status} -> {target}");
            }
        }
    }

    #[test]
    fn timing_follows_start_and_finish() {
        let timing = Timing::new(t(0))
            .apply(Queued, t(1))
            .apply(Running, t(10))
            .apply(Warning, t(12))
            .apply(Running, t(15))
            .apply(Succeeded, t(70));
        assert_eq!(timing.started_at, Some(t(10)));
        assert_eq!(timing.wait_time, Some(10.0));
        assert_eq!(timing.finished_at, Some(t(70)));
        assert_eq!(timing.duration, Some(60.0));
    }

    #[test]
    fn a_run_that_never_started_has_no_wait_time_and_a_duration_from_creation() {
        let timing = Timing::new(t(0)).apply(Stopped, t(5));
        assert_eq!(timing.started_at, None);
        assert_eq!(timing.wait_time, None);
        assert_eq!(timing.duration, Some(5.0));
    }

    #[test]
    fn resuming_clears_the_finish() {
        let timing = Timing::new(t(0))
            .apply(Running, t(1))
            .apply(Failed, t(2))
            .apply(Resuming, t(3));
        assert_eq!(timing.finished_at, None);
        assert_eq!(timing.duration, None);
        assert_eq!(timing.started_at, Some(t(1)));
    }

    #[test]
    fn clock_skew_never_gives_negative_durations() {
        let timing = Timing::new(t(10)).apply(Running, t(5));
        assert_eq!(timing.wait_time, Some(0.0));
    }
}
