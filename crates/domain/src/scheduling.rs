//! What starts next: the scheduler's pure decision.
//!
//! Runs wait in named queues. Each queue has a concurrency limit and a
//! priority; the whole server has a global limit. [`plan`] takes the
//! waiting runs and what is running now, and returns the runs to start, in
//! order: higher-priority queues first, then first in, first out. A full
//! queue never blocks the runs of another queue.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

/// The queue a run without `queue:` goes to.
pub const DEFAULT_QUEUE: &str = "default";

/// A queue's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLimits {
    /// At most this many of the queue's runs at once.
    pub concurrency: u32,
    /// Higher starts first.
    pub priority: i32,
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

/// Parses a queue definition `name=concurrency[:priority]` (`gpu=2:10`).
pub fn parse_queue(text: &str) -> Result<(String, QueueLimits), String> {
    let (name, limits) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `name=concurrency[:priority]`"))?;
    let name = name.trim();
    check_queue_name(name)?;
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

/// What is running now, and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// At most this many runs at once on this server.
    pub global: u32,
    /// Runs active now, by queue.
    pub active: BTreeMap<String, u32>,
    /// Known queues; a run naming another queue waits as unschedulable.
    pub queues: BTreeMap<String, QueueLimits>,
}

/// The decision for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<Id> {
    /// Start these, in this order.
    pub start: Vec<Id>,
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
    let mut total: u32 = active.values().sum();
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
        if total >= capacity.global {
            // Keep scanning for unknown queues only; nothing else can start.
            continue;
        }
        let running = active.entry(queue).or_insert(0);
        if *running < limits.concurrency {
            *running += 1;
            total += 1;
            plan.start.push(run.id.clone());
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
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn queue_definitions_parse_with_an_optional_priority() {
        assert_eq!(
            parse_queue("gpu=2:10"),
            Ok((
                "gpu".into(),
                QueueLimits {
                    concurrency: 2,
                    priority: 10
                }
            ))
        );
        assert_eq!(
            parse_queue("cpu=8"),
            Ok((
                "cpu".into(),
                QueueLimits {
                    concurrency: 8,
                    priority: 0
                }
            ))
        );
        assert!(parse_queue("gpu").is_err());
        assert!(parse_queue("gpu=0").unwrap_err().contains("at least 1"));
        assert!(parse_queue("g pu=1").is_err());
        assert!(parse_queue("gpu=1:high").unwrap_err().contains("priority"));
    }

    #[test]
    fn runs_start_first_in_first_out_up_to_the_queue_limit() {
        let queue = [
            waiting(3, None, 30),
            waiting(1, None, 10),
            waiting(2, None, 20),
        ];
        let plan = plan(&queue, &capacity(10, &[("default", 2, 0)], &[]));
        assert_eq!(plan.start, vec![1, 2]);
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
        assert_eq!(plan.start, vec![2, 3]);
    }

    #[test]
    fn a_full_queue_does_not_block_another() {
        let queue = [waiting(1, Some("gpu"), 10), waiting(2, None, 20)];
        let plan = plan(
            &queue,
            &capacity(10, &[("default", 1, 0), ("gpu", 1, 10)], &[("gpu", 1)]),
        );
        assert_eq!(plan.start, vec![2]);
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
        assert_eq!(plan.start, vec![1]);
    }

    #[test]
    fn unknown_queues_are_reported_not_started() {
        let queue = [waiting(1, Some("tpu"), 10), waiting(2, None, 20)];
        let plan = plan(&queue, &capacity(0, &[("default", 5, 0)], &[]));
        assert_eq!(plan.start, Vec::<u32>::new());
        assert_eq!(plan.unknown_queue, vec![1]);
    }

    #[test]
    fn slots_freed_step_by_step_start_the_next_in_line() {
        let queue: Vec<Waiting<u32>> = (1..=5).map(|i| waiting(i, None, i64::from(i))).collect();
        let limits = [("default", 2, 0)];
        let mut started = Vec::new();
        let mut remaining = queue.clone();
        // Each tick: one active run finished, so one slot is free.
        for active in [0, 1, 1, 1, 1] {
            let step = plan(&remaining, &capacity(10, &limits, &[("default", active)]));
            remaining.retain(|w| !step.start.contains(&w.id));
            started.push(step.start);
        }
        assert_eq!(started, vec![vec![1, 2], vec![3], vec![4], vec![5], vec![]]);
    }
}
