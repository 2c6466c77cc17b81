//! What executing a run decides, apart from doing it: the environment a run
//! sees, and what becomes of a run once its attempt ended (its status, the
//! condition's reason and message, whether it is retried). Every executor
//! (the local process executor, a `trellis worker`, later the Kubernetes
//! agent) observes how an attempt ended and asks [`conclude`]; none decides
//! by comparing strings.

use std::collections::BTreeMap;

use crate::lifecycle::RunStatus;
use crate::logs::Exit;

/// Why a run's condition was written: the `reason` users read in a run's
/// status history and filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Succeeded,
    Failed,
    Stopped,
    Timeout,
    /// A failed attempt that `termination.maxRetries` lets run again: the
    /// only `retrying` reason that spends a retry (hand-backs have their
    /// own reasons: they are not the run's failure).
    Retrying,
    /// The server executing the run shut down.
    ServerShutdown,
    /// The worker executing the run shut down; the run is handed back.
    WorkerShutdown,
    /// The executor stopped sending heartbeats; the run is handed back.
    ExecutorLost,
    /// A service stopped for being idle (`termination.culling.timeout`).
    Culled,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Succeeded => "Succeeded",
            Reason::Failed => "Failed",
            Reason::Stopped => "Stopped",
            Reason::Timeout => "Timeout",
            Reason::Retrying => "Retrying",
            Reason::ServerShutdown => "ServerShutdown",
            Reason::WorkerShutdown => "WorkerShutdown",
            Reason::ExecutorLost => "ExecutorLost",
            Reason::Culled => "Culled",
        }
    }
}

/// How an attempt ended, as the executor observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The process exited by itself; with what it last wrote to stderr.
    Exited {
        exit: Exit,
        last_stderr: Vec<String>,
    },
    /// Stopped on request.
    Stopped,
    /// Stopped by the culler for being idle; with its message.
    Culled { message: String },
    /// Stopped after `termination.timeout` seconds.
    TimedOut { after_secs: u64 },
    /// The executor itself went away mid-run.
    Shutdown(ExecutorKind),
    /// The run was taken from this executor (queued again after late
    /// heartbeats, or deleted): it is no longer this executor's to report.
    Lost,
}

/// Who executed the attempt, which decides what its going away means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorKind {
    /// The embedded server: when it shuts down, its runs fail (a restart
    /// recovers nothing that was running).
    Server,
    /// A `trellis worker`: another worker can take the run, so it is
    /// handed back to the queue.
    Worker(String),
}

/// What becomes of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing is written: the run is not this executor's any more.
    Untouched,
    /// Back to the queue: `retrying`, then `queued` for the next free slot;
    /// if the lifecycle refuses (a stop got there first), `otherwise`.
    Requeue {
        reason: Reason,
        message: String,
        otherwise: Option<Finish>,
    },
    /// The run ends.
    Finish(Finish),
}

/// A run's final status, with its condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub status: RunStatus,
    pub reason: Reason,
    pub message: Option<String>,
}

impl Finish {
    fn new(status: RunStatus, reason: Reason, message: Option<String>) -> Self {
        Finish {
            status,
            reason,
            message,
        }
    }
}

/// How many attempts a run may still have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// `termination.maxRetries` (0: none).
    pub max: u32,
    /// How many times the run was already retried.
    pub used: u32,
}

impl Retries {
    /// Whether the history (`used`) must be read to decide: only a failed
    /// attempt of a run that may be retried at all needs it.
    pub fn matter(ending: &Ending, max: u32) -> bool {
        max > 0 && matches!(ending, Ending::Exited { exit, .. } if !exit.is_success())
    }
}

/// What becomes of a run whose attempt ended as `ending`. A process that
/// failed by itself is retried while `retries` allow (a stop, a timeout or
/// a shutdown is not the run's failure to retry); a worker going away hands
/// the run back.
pub fn conclude(ending: Ending, retries: Retries) -> Outcome {
    let finish = |status, reason, message: Option<&str>| {
        Outcome::Finish(Finish::new(status, reason, message.map(str::to_owned)))
    };
    match ending {
        Ending::Lost => Outcome::Untouched,
        Ending::Shutdown(ExecutorKind::Worker(worker)) => Outcome::Requeue {
            reason: Reason::WorkerShutdown,
            message: format!(
                "{worker} shut down while the run was active; the run is queued again."
            ),
            otherwise: None,
        },
        Ending::Shutdown(ExecutorKind::Server) => finish(
            RunStatus::Failed,
            Reason::ServerShutdown,
            Some("The server shut down while the run was active"),
        ),
        Ending::Exited { exit, .. } if exit.is_success() => {
            finish(RunStatus::Succeeded, Reason::Succeeded, None)
        }
        Ending::Exited { exit, last_stderr } => {
            let failed = Finish::new(
                RunStatus::Failed,
                Reason::Failed,
                Some(exit.failure_message(&last_stderr)),
            );
            if retries.used < retries.max {
                Outcome::Requeue {
                    reason: Reason::Retrying,
                    message: format!(
                        "Attempt {} of {} failed; retrying. {}",
                        retries.used + 1,
                        retries.max.saturating_add(1),
                        failed.message.as_deref().unwrap_or_default()
                    ),
                    otherwise: Some(failed),
                }
            } else {
                Outcome::Finish(failed)
            }
        }
        Ending::Stopped => finish(
            RunStatus::Stopped,
            Reason::Stopped,
            Some("Stopped on request"),
        ),
        Ending::Culled { message } => Outcome::Finish(Finish::new(
            RunStatus::Stopped,
            Reason::Culled,
            Some(message),
        )),
        Ending::TimedOut { after_secs } => Outcome::Finish(Finish::new(
            RunStatus::Failed,
            Reason::Timeout,
            Some(format!(
                "Stopped after the termination timeout of {after_secs}s"
            )),
        )),
    }
}

/// How a run that was asked to stop ended, from the `stopping`
/// condition's reason and message: a culled service says so, any other
/// stop is a stop on request.
pub fn stopped_for(reason: &str, message: Option<&str>) -> Ending {
    if reason == Reason::Culled.as_str() {
        Ending::Culled {
            message: message.unwrap_or("Stopped for being idle").to_owned(),
        }
    } else {
        Ending::Stopped
    }
}

/// What becomes of an active run whose executor (`who`, if known) has sent
/// no heartbeat for `silent_secs`: it is handed back to the queue, without
/// spending a retry; if the lifecycle refuses (a stop got there first),
/// nothing else is written.
pub fn executor_went_silent(who: Option<&str>, silent_secs: u64) -> Outcome {
    let who = who.unwrap_or("its executor");
    Outcome::Requeue {
        reason: Reason::ExecutorLost,
        message: format!(
            "No heartbeat from {who} for over {silent_secs}s; the run is queued again."
        ),
        otherwise: None,
    }
}

/// What a run's process is told about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext<'a> {
    /// The server's URL as runs reach it.
    pub server_url: &'a str,
    pub uuid: uuid::Uuid,
    pub owner: &'a str,
    pub project: &'a str,
    /// The project's id, which is its MLflow experiment id.
    pub project_id: i64,
    /// The run's working directory (its artifacts), and `outputs/` in it.
    pub workdir: &'a str,
    pub outputs: &'a str,
    /// Where a service listens, if the run is one.
    pub service: Option<ServiceAddress<'a>>,
    /// The container's own `env`, which wins over everything above.
    pub container_env: &'a BTreeMap<String, String>,
}

/// Where a service was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddress<'a> {
    /// The host ports it was given, in the order of the spec's `ports`.
    pub ports: &'a [u16],
    /// The path the service proxy serves it under, if known.
    pub base_url: Option<&'a str>,
}

/// The environment of a run's process: `TRELLIS_*` for Trellis's client,
/// `MLFLOW_*` so `mlflow.start_run()` logs into this run unconfigured,
/// `PORT` / `TRELLIS_SERVICE_*` for a service, then the container's `env`.
pub fn environment(run: &RunContext<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("TRELLIS_HOST".to_owned(), run.server_url.to_owned()),
        ("TRELLIS_RUN_UUID".to_owned(), run.uuid.to_string()),
        ("TRELLIS_OWNER".to_owned(), run.owner.to_owned()),
        ("TRELLIS_PROJECT".to_owned(), run.project.to_owned()),
        ("TRELLIS_ARTIFACTS_PATH".to_owned(), run.workdir.to_owned()),
        (
            "TRELLIS_RUN_OUTPUTS_PATH".to_owned(),
            run.outputs.to_owned(),
        ),
        ("MLFLOW_TRACKING_URI".to_owned(), run.server_url.to_owned()),
        ("MLFLOW_RUN_ID".to_owned(), run.uuid.simple().to_string()),
        (
            "MLFLOW_EXPERIMENT_ID".to_owned(),
            run.project_id.to_string(),
        ),
    ]);
    if let Some(service) = &run.service
        && let Some(first) = service.ports.first()
    {
        env.insert("PORT".to_owned(), first.to_string());
        let ports: Vec<String> = service.ports.iter().map(u16::to_string).collect();
        env.insert("TRELLIS_SERVICE_PORTS".to_owned(), ports.join(","));
        if let Some(base_url) = service.base_url {
            env.insert("TRELLIS_SERVICE_BASE_URL".to_owned(), base_url.to_owned());
        }
    }
    env.extend(run.container_env.clone());
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32) -> Ending {
        Ending::Exited {
            exit: Exit::Code(code),
            last_stderr: vec!["boom".to_owned()],
        }
    }

    fn retries(max: u32, used: u32) -> Retries {
        Retries { max, used }
    }

    fn finish(status: RunStatus, reason: Reason) -> (Option<RunStatus>, Reason) {
        (Some(status), reason)
    }

    /// The decision as (status it ends in, or `None` when requeued;
    /// reason), `None` when the run is left untouched.
    type Shape = Option<(Option<RunStatus>, Reason)>;

    fn shape(outcome: &Outcome) -> Shape {
        match outcome {
            Outcome::Untouched => None,
            Outcome::Requeue { reason, .. } => Some((None, *reason)),
            Outcome::Finish(Finish { status, reason, .. }) => Some((Some(*status), *reason)),
        }
    }

    #[test]
    fn endings_conclude_by_table() {
        let worker = || Ending::Shutdown(ExecutorKind::Worker("worker:a".to_owned()));
        let table: Vec<(Ending, Retries, Shape)> = vec![
            (
                exited(0),
                retries(0, 0),
                Some(finish(RunStatus::Succeeded, Reason::Succeeded)),
            ),
            (
                exited(0),
                retries(3, 3),
                Some(finish(RunStatus::Succeeded, Reason::Succeeded)),
            ),
            (
                exited(1),
                retries(0, 0),
                Some(finish(RunStatus::Failed, Reason::Failed)),
            ),
            (exited(1), retries(2, 0), Some((None, Reason::Retrying))),
            (exited(1), retries(2, 1), Some((None, Reason::Retrying))),
            (
                exited(1),
                retries(2, 2),
                Some(finish(RunStatus::Failed, Reason::Failed)),
            ),
            (
                Ending::Exited {
                    exit: Exit::Signal(9),
                    last_stderr: vec![],
                },
                retries(1, 0),
                Some((None, Reason::Retrying)),
            ),
            (
                Ending::Stopped,
                retries(5, 0),
                Some(finish(RunStatus::Stopped, Reason::Stopped)),
            ),
            (
                Ending::TimedOut { after_secs: 30 },
                retries(5, 0),
                Some(finish(RunStatus::Failed, Reason::Timeout)),
            ),
            (
                Ending::Shutdown(ExecutorKind::Server),
                retries(5, 0),
                Some(finish(RunStatus::Failed, Reason::ServerShutdown)),
            ),
            (
                worker(),
                retries(0, 0),
                Some((None, Reason::WorkerShutdown)),
            ),
            (Ending::Lost, retries(5, 0), None),
        ];
        for (ending, budget, expected) in table {
            let outcome = conclude(ending.clone(), budget);
            assert_eq!(shape(&outcome), expected, "{ending:?} with {budget:?}");
        }
    }

    #[test]
    fn messages_say_what_happened() {
        let Outcome::Requeue {
            message, otherwise, ..
        } = conclude(exited(2), retries(2, 1))
        else {
            panic!("a failure with retries left is requeued");
        };
        assert_eq!(
            message,
            "Attempt 2 of 3 failed; retrying. The process exited with code 2. Last lines of stderr:\nboom"
        );
        // If the lifecycle refuses the requeue (a stop came first), it failed.
        let otherwise = otherwise.expect("a failed attempt has a fallback");
        assert_eq!(
            (otherwise.status, otherwise.reason),
            (RunStatus::Failed, Reason::Failed)
        );
        let Outcome::Finish(Finish { message, .. }) =
            conclude(Ending::TimedOut { after_secs: 7 }, retries(0, 0))
        else {
            panic!("a timeout ends the run");
        };
        assert_eq!(
            message.as_deref(),
            Some("Stopped after the termination timeout of 7s")
        );
        let Outcome::Requeue { message, .. } = conclude(
            Ending::Shutdown(ExecutorKind::Worker("worker:b".to_owned())),
            retries(0, 0),
        ) else {
            panic!("a worker going away hands the run back");
        };
        assert!(message.starts_with("worker:b shut down"), "{message}");
    }

    #[test]
    fn a_silent_executor_hands_the_run_back_without_spending_a_retry() {
        let Outcome::Requeue {
            reason,
            message,
            otherwise,
        } = executor_went_silent(Some("worker:w1"), 30)
        else {
            panic!("a silent executor hands the run back");
        };
        assert_eq!(reason, Reason::ExecutorLost);
        assert_eq!(
            message,
            "No heartbeat from worker:w1 for over 30s; the run is queued again."
        );
        assert_eq!(otherwise, None);
        // A hand-back is not the run's failure: its reason is not the one
        // that spends a retry.
        let worker_gone = conclude(
            Ending::Shutdown(ExecutorKind::Worker("worker:w1".to_owned())),
            retries(1, 0),
        );
        assert!(
            matches!(worker_gone, Outcome::Requeue { reason, .. } if reason != Reason::Retrying)
        );
    }

    #[test]
    fn only_a_failed_exit_of_a_retryable_run_reads_the_history() {
        assert!(Retries::matter(&exited(1), 1));
        assert!(!Retries::matter(&exited(1), 0));
        assert!(!Retries::matter(&exited(0), 3));
        assert!(!Retries::matter(&Ending::Stopped, 3));
        assert!(!Retries::matter(&Ending::TimedOut { after_secs: 1 }, 3));
    }

    #[test]
    fn the_environment_names_the_run_and_the_container_env_wins() {
        let uuid = uuid::Uuid::from_u128(0x1234);
        let container_env = BTreeMap::from([
            (
                "MLFLOW_TRACKING_URI".to_owned(),
                "http://elsewhere".to_owned(),
            ),
            ("SEED".to_owned(), "7".to_owned()),
        ]);
        let mut run = RunContext {
            server_url: "http://127.0.0.1:8000",
            uuid,
            owner: "acme",
            project: "mnist",
            project_id: 42,
            workdir: "/data/runs/x",
            outputs: "/data/runs/x/outputs",
            service: None,
            container_env: &container_env,
        };
        let env = environment(&run);
        assert_eq!(env["TRELLIS_RUN_UUID"], uuid.to_string());
        assert_eq!(env["MLFLOW_RUN_ID"], uuid.simple().to_string());
        assert_eq!(env["MLFLOW_EXPERIMENT_ID"], "42");
        assert_eq!(env["TRELLIS_HOST"], "http://127.0.0.1:8000");
        assert_eq!(env["MLFLOW_TRACKING_URI"], "http://elsewhere");
        assert_eq!(env["SEED"], "7");
        assert!(!env.contains_key("PORT"));

        let ports = [41000, 41001];
        run.service = Some(ServiceAddress {
            ports: &ports,
            base_url: Some("/services/v1/acme/mnist/runs/x/8888"),
        });
        let env = environment(&run);
        assert_eq!(env["PORT"], "41000");
        assert_eq!(env["TRELLIS_SERVICE_PORTS"], "41000,41001");
        assert_eq!(
            env["TRELLIS_SERVICE_BASE_URL"],
            "/services/v1/acme/mnist/runs/x/8888"
        );
    }
}
