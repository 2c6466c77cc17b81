//! What starts next: the scheduler's pure decision.
//!
//! Runs wait in named queues. Each queue has a concurrency limit and a
//! priority; the whole server has a global limit. [`plan`] takes the
//! waiting runs and what is running now, and returns the runs to start, in
//! order: higher-priority queues first, then first in, first out. A full
//! queue never blocks the runs of another queue.

use std::collections::BTreeMap;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The queue a run without `queue:` goes to.
pub const DEFAULT_QUEUE: &str = "default";

/// Where a queue's runs execute. A scheduler hosts some executors and
/// plans only the queues bound to them; the others are another process's
/// (a `trellis scheduler` dispatching to workers, a Kubernetes agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ExecutorName {
    /// Processes on the scheduling host (the embedded default).
    Local,
    /// `trellis worker`s, through RabbitMQ.
    Workers,
    /// Pods on a cluster, through a Kubernetes agent.
    Kubernetes,
}

impl ExecutorName {
    pub const ALL: [ExecutorName; 3] = [Self::Local, Self::Workers, Self::Kubernetes];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Workers => "workers",
            Self::Kubernetes => "kubernetes",
        }
    }

    /// Parses a name, or explains which names exist.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == text)
            .ok_or_else(|| {
                format!("unknown executor `{text}`; executors are local, workers, kubernetes")
            })
    }
}

impl std::fmt::Display for ExecutorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue's limits, and where its runs execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimits {
    /// At most this many of the queue's runs at once.
    pub concurrency: u32,
    /// Higher starts first.
    pub priority: i32,
    /// The executor its runs go to; `None`: the scheduler's default.
    pub executor: Option<ExecutorName>,
}

/// Checks a queue name: letters, digits, `-` and `_`, at most 64.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "queue name `{name}` must be 1 to 64 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

/// Parses a queue definition `name=concurrency[:priority][@executor]`
/// (`gpu=2:10@workers`).
pub fn parse_queue(text: &str) -> Result<(String, QueueLimits), String> {
    let (name, limits) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `name=concurrency[:priority][@executor]`"))?;
    let name = name.trim();
    check_queue_name(name)?;
    let (limits, executor) = match limits.split_once('@') {
        Some((limits, executor)) => (limits, Some(ExecutorName::parse(executor.trim())?)),
        None => (limits, None),
    };
    let (concurrency, priority) = limits
        .split_once(':')
        .map_or((limits, None), |(c, p)| (c, Some(p)));
    let concurrency: u32 = concurrency
        .trim()
        .parse()
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(|| {
            format!("the concurrency of queue `{name}` must be a whole number of at least 1")
        })?;
    let priority: i32 = match priority {
        Some(p) => p
            .trim()
            .parse()
            .map_err(|_| format!("the priority of queue `{name}` must be a whole number"))?,
        None => 0,
    };
    Ok((
        name.to_owned(),
        QueueLimits {
            concurrency,
            priority,
            executor,
        },
    ))
}

/// A run waiting to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting<Id> {
    pub id: Id,
    /// The queue it asked for; `None` is [`DEFAULT_QUEUE`].
    pub queue: Option<String>,
    /// When it entered `queued`: first in, first out within a priority.
    pub queued_at: DateTime<Utc>,
}

/// What is running now, the limits, and the executors this scheduler hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// At most this many runs at once through this scheduler.
    pub global: u32,
    /// Runs active now, by queue.
    pub active: BTreeMap<String, u32>,
    /// Known queues; a run naming another queue waits as unschedulable.
    pub queues: BTreeMap<String, QueueLimits>,
    /// The executors this scheduler starts runs on.
    pub hosted: BTreeSet<ExecutorName>,
    /// Where the runs of a queue bound to no executor go.
    pub default_executor: ExecutorName,
}

impl Capacity {
    /// The executor queue `limits` sends its runs to.
    pub fn executor_of(&self, limits: &QueueLimits) -> ExecutorName {
        limits.executor.unwrap_or(self.default_executor)
    }

    /// How many more runs of `queue` this scheduler could start now: its
    /// own limit and the global one, less what is active; 0 for a queue it
    /// does not host or does not know. The plan never starts more of a
    /// queue than this, so reading that many of its oldest runs is enough.
    pub fn room(&self, queue: &str) -> u32 {
        let Some(limits) = self.queues.get(queue) else {
            return 0;
        };
        if !self.hosted.contains(&self.executor_of(limits)) {
            return 0;
        }
        let total: u32 = self
            .active
            .iter()
            .filter(|(name, _)| self.hosts(name))
            .map(|(_, count)| count)
            .sum();
        let in_queue = self.active.get(queue).copied().unwrap_or(0);
        limits
            .concurrency
            .saturating_sub(in_queue)
            .min(self.global.saturating_sub(total))
    }

    /// Whether the runs of `queue` execute on an executor hosted here (an
    /// unknown queue's runs go to the default executor).
    pub fn hosts(&self, queue: &str) -> bool {
        let executor = self
            .queues
            .get(queue)
            .map_or(self.default_executor, |limits| self.executor_of(limits));
        self.hosted.contains(&executor)
    }
}

/// The decision for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<Id> {
    /// Start these on these executors, in this order.
    pub start: Vec<(Id, ExecutorName)>,
    /// These name a queue that does not exist.
    pub unknown_queue: Vec<Id>,
}

/// Decides which waiting runs start now.
pub fn plan<Id: Clone>(waiting: &[Waiting<Id>], capacity: &Capacity) -> Plan<Id> {
    let queue_of = |w: &Waiting<Id>| w.queue.clone().unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
    let mut order: Vec<&Waiting<Id>> = waiting.iter().collect();
    // Stable sort: equal keys keep the caller's order (its tie-breaker).
    order.sort_by(|a, b| {
        let priority = |w: &Waiting<Id>| {
            capacity
                .queues
                .get(&queue_of(w))
                .map_or(i32::MIN, |q| q.priority)
        };
        priority(b)
            .cmp(&priority(a))
            .then(a.queued_at.cmp(&b.queued_at))
    });
    let mut active = capacity.active.clone();
    // The global limit counts this scheduler's runs only: a queue on
    // another process's executor does not take its slots.
    let mut total: u32 = active
        .iter()
        .filter(|(queue, _)| capacity.hosts(queue))
        .map(|(_, count)| count)
        .sum();
    let mut plan = Plan {
        start: Vec::new(),
        unknown_queue: Vec::new(),
    };
    for run in order {
        let queue = queue_of(run);
        let Some(limits) = capacity.queues.get(&queue) else {
            plan.unknown_queue.push(run.id.clone());
            continue;
        };
        let executor = capacity.executor_of(limits);
        if !capacity.hosted.contains(&executor) {
            // Another process's executor plans it.
            continue;
        }
        if total >= capacity.global {
            // Keep scanning for unknown queues only; nothing else can start.
            continue;
        }
        let running = active.entry(queue).or_insert(0);
        if *running < limits.concurrency {
            *running += 1;
            total += 1;
            plan.start.push((run.id.clone(), executor));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::seconds(seconds)
    }

    fn waiting(id: u32, queue: Option<&str>, seconds: i64) -> Waiting<u32> {
        Waiting {
            id,
            queue: queue.map(str::to_owned),
            queued_at: at(seconds),
        }
    }

    fn capacity(global: u32, queues: &[(&str, u32, i32)], active: &[(&str, u32)]) -> Capacity {
        Capacity {
            global,
            active: active.iter().map(|(q, n)| ((*q).to_owned(), *n)).collect(),
            queues: queues
                .iter()
                .map(|(q, c, p)| {
                    (
                        (*q).to_owned(),
                        QueueLimits {
                            concurrency: *c,
                            priority: *p,
                            executor: None,
                        },
                    )
                })
                .collect(),
            hosted: BTreeSet::from([ExecutorName::Local]),
            default_executor: ExecutorName::Local,
        }
    }

    /// The runs a plan starts, without their executors.
    fn started(plan: &Plan<u32>) -> Vec<u32> {
        plan.start.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn queue_definitions_parse_with_an_optional_priority() {
        assert_eq!(
            parse_queue("gpu=2:10"),
            Ok((
                "gpu".into(),
                QueueLimits {
                    concurrency: 2,
                    priority: 10,
                    executor: None,
                }
            ))
        );
        assert_eq!(
            parse_queue("cpu=8"),
            Ok((
                "cpu".into(),
                QueueLimits {
                    concurrency: 8,
                    priority: 0,
                    executor: None,
                }
            ))
        );
        assert!(parse_queue("gpu").is_err());
        assert!(parse_queue("gpu=0").unwrap_err().contains("at least 1"));
        assert!(parse_queue("g pu=1").is_err());
        assert!(parse_queue("gpu=1:high").unwrap_err().contains("priority"));
        assert_eq!(
            parse_queue("gpu=2:10@workers").map(|(_, limits)| limits.executor),
            Ok(Some(ExecutorName::Workers))
        );
        assert_eq!(
            parse_queue("gpu=2@kubernetes")
                .map(|(_, limits)| (limits.concurrency, limits.executor)),
            Ok((2, Some(ExecutorName::Kubernetes)))
        );
        assert!(
            parse_queue("gpu=2@cloud")
                .unwrap_err()
                .contains("unknown executor `cloud`")
        );
    }

    #[test]
    fn runs_go_to_their_queue_s_executor_and_other_processes_executors_are_left_alone() {
        let mut capacity = capacity(
            2,
            &[("default", 5, 0), ("remote", 5, 0), ("k8s", 5, 9)],
            &[],
        );
        capacity.hosted = BTreeSet::from([ExecutorName::Local, ExecutorName::Workers]);
        capacity.queues.get_mut("remote").unwrap().executor = Some(ExecutorName::Workers);
        capacity.queues.get_mut("k8s").unwrap().executor = Some(ExecutorName::Kubernetes);
        // Active runs of the agent's queue do not take this scheduler's slots.
        capacity.active = BTreeMap::from([("k8s".to_owned(), 7)]);
        let queue = [
            waiting(1, Some("k8s"), 10),
            waiting(2, Some("remote"), 20),
            waiting(3, None, 30),
            waiting(4, None, 40),
        ];
        let plan = plan(&queue, &capacity);
        assert_eq!(
            plan.start,
            vec![(2, ExecutorName::Workers), (3, ExecutorName::Local)]
        );
        assert!(plan.unknown_queue.is_empty());
    }

    #[test]
    fn room_is_the_smaller_of_the_queue_s_and_the_global_room() {
        let mut capacity = capacity(
            5,
            &[("default", 4, 0), ("gpu", 2, 0), ("k8s", 9, 0)],
            &[("default", 1), ("gpu", 1), ("k8s", 3)],
        );
        capacity.queues.get_mut("k8s").unwrap().executor = Some(ExecutorName::Kubernetes);
        // Global: 5 - (1 + 1) hosted active = 3; the agent's 3 do not count.
        assert_eq!(capacity.room("default"), 3);
        assert_eq!(capacity.room("gpu"), 1);
        assert_eq!(capacity.room("k8s"), 0, "not hosted here");
        assert_eq!(capacity.room("tpu"), 0, "unknown");
        capacity.active.insert("default".to_owned(), 4);
        assert_eq!(capacity.room("default"), 0);
        assert_eq!(capacity.room("gpu"), 0, "the global limit is reached");
    }

    #[test]
    fn runs_start_first_in_first_out_up_to_the_queue_limit() {
        let queue = [
            waiting(3, None, 30),
            waiting(1, None, 10),
            waiting(2, None, 20),
        ];
        let plan = plan(&queue, &capacity(10, &[("default", 2, 0)], &[]));
        assert_eq!(started(&plan), vec![1, 2]);
    }

    #[test]
    fn higher_priority_queues_start_first() {
        let queue = [
            waiting(1, None, 10),
            waiting(2, Some("gpu"), 20),
            waiting(3, Some("gpu"), 30),
        ];
        let plan = plan(
            &queue,
            &capacity(2, &[("default", 5, 0), ("gpu", 5, 10)], &[]),
        );
        assert_eq!(started(&plan), vec![2, 3]);
    }

    #[test]
    fn a_full_queue_does_not_block_another() {
        let queue = [waiting(1, Some("gpu"), 10), waiting(2, None, 20)];
        let plan = plan(
            &queue,
            &capacity(10, &[("default", 1, 0), ("gpu", 1, 10)], &[("gpu", 1)]),
        );
        assert_eq!(started(&plan), vec![2]);
    }

    #[test]
    fn the_global_limit_counts_runs_of_every_queue() {
        let queue = [waiting(1, None, 10), waiting(2, Some("cpu"), 20)];
        let plan = plan(
            &queue,
            &capacity(
                3,
                &[("default", 5, 0), ("cpu", 5, 0)],
                &[("default", 1), ("cpu", 1)],
            ),
        );
        assert_eq!(started(&plan), vec![1]);
    }

    #[test]
    fn unknown_queues_are_reported_not_started() {
        let queue = [waiting(1, Some("tpu"), 10), waiting(2, None, 20)];
        let plan = plan(&queue, &capacity(0, &[("default", 5, 0)], &[]));
        assert_eq!(started(&plan), Vec::<u32>::new());
        assert_eq!(plan.unknown_queue, vec![1]);
    }

    #[test]
    fn slots_freed_step_by_step_start_the_next_in_line() {
        let queue: Vec<Waiting<u32>> = (1..=5).map(|i| waiting(i, None, i64::from(i))).collect();
        let limits = [("default", 2, 0)];
        let mut done = Vec::new();
        let mut remaining = queue.clone();
        // Each tick: one active run finished, so one slot is free.
        for active in [0, 1, 1, 1, 1] {
            let step = plan(&remaining, &capacity(10, &limits, &[("default", active)]));
            let ids = started(&step);
            remaining.retain(|w| !ids.contains(&w.id));
            done.push(ids);
        }
        assert_eq!(done, vec![vec![1, 2], vec![3], vec![4], vec![5], vec![]]);
    }
}
