//! Early stopping of a sweep while its trials run (Polyaxon's
//! `earlyStopping`): a metric threshold or a failure percentage stops the
//! whole sweep; the median, truncation and diff policies stop running
//! trials that fall behind, judged at every `evaluationInterval` steps
//! once `minInterval` steps are reached and `minSamples` trials can be
//! compared.
//!
//! - median (Golovin et al., Vizier): a trial whose best value up to step
//!   S is worse than the median of the other trials' running averages up
//!   to S.
//! - truncation: the worst `percent` of the trials that reached S, by
//!   their value at S.
//! - diff: a trial whose value at S is worse than the best value at S by
//!   more than `percent` of it.

use std::collections::BTreeSet;
use std::sync::Arc;

/// Which way the metric improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Minimize,
    Maximize,
}

impl Goal {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Minimize => a < b,
            Goal::Maximize => a > b,
        }
    }

    fn best(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        values.fold(None, |acc, v| match acc {
            Some(b) if !self.better(v, b) => Some(b),
            _ => Some(v),
        })
    }
}

/// How running trials are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    Median,
    Truncation { percent: f64 },
    Diff { percent: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub evaluation_interval: i64,
    pub min_interval: i64,
    pub min_samples: usize,
}

/// One `earlyStopping` rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `metric_early_stopping`: the sweep stops once a trial's `metric`
    /// reaches `value` (if set); `policy` stops trials that fall behind.
    Metric {
        metric: String,
        goal: Goal,
        value: Option<f64>,
        policy: Option<Policy>,
    },
    /// `failure_early_stopping`: the sweep stops once `percent` of its
    /// finished trials failed.
    Failure { percent: f64 },
}

/// What a trial has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub running: bool,
    pub failed: bool,
    /// The rule's metric as (step, value), in step order. Shared: the
    /// caller keeps the same series between judgements.
    pub series: Arc<[(i64, f64)]>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Why the whole sweep should stop, if it should.
    pub stop_sweep: Option<String>,
    /// Indexes of running trials to stop.
    pub stop_trials: BTreeSet<usize>,
}

/// The value of a series at step `s`: the last point at or before it.
fn value_at(series: &[(i64, f64)], s: i64) -> Option<f64> {
    series
        .iter()
        .rev()
        .find(|(step, _)| *step <= s)
        .map(|(_, v)| *v)
}

fn reached(series: &[(i64, f64)], s: i64) -> bool {
    series.last().is_some_and(|(step, _)| *step >= s)
}

/// Judges `trials` against `rules` (each rule's `metric` is the one in
/// the trials' `series`; callers pass one rule's metric at a time).
pub fn judge(rule: &Rule, trials: &[Progress]) -> Verdict {
    let mut verdict = Verdict::default();
    match rule {
        Rule::Failure { percent } => {
            let done = trials.iter().filter(|t| !t.running).count();
            let failed = trials.iter().filter(|t| t.failed).count();
            if done > 0 && failed as f64 * 100.0 >= percent * done as f64 {
                verdict.stop_sweep = Some(format!(
                    "{failed} of {done} finished trials failed (the limit is {percent}%)"
                ));
            }
        }
        Rule::Metric {
            metric,
            goal,
            value,
            policy,
        } => {
            if let Some(threshold) = value {
                let reached_goal = trials
                    .iter()
                    .flat_map(|t| t.series.iter().map(|(_, v)| *v))
                    .find(|v| !goal.better(*threshold, *v));
                if let Some(v) = reached_goal {
                    verdict.stop_sweep =
                        Some(format!("`{metric}` reached {v}, the goal was {threshold}"));
                    return verdict;
                }
            }
            if let Some(policy) = policy {
                verdict.stop_trials = stop_behind(*goal, policy, trials);
            }
        }
    }
    verdict
}

/// The evaluation step of a trial at its latest step: the last multiple
/// of the interval, if past `min_interval`.
fn evaluation_step(policy: &Policy, series: &[(i64, f64)]) -> Option<i64> {
    let last = series.last()?.0;
    let interval = policy.evaluation_interval.max(1);
    let s = last.div_euclid(interval) * interval;
    (s >= policy.min_interval && s >= series.first()?.0).then_some(s)
}

fn stop_behind(goal: Goal, policy: &Policy, trials: &[Progress]) -> BTreeSet<usize> {
    let mut stop = BTreeSet::new();
    for (i, trial) in trials.iter().enumerate() {
        if !trial.running {
            continue;
        }
        let Some(s) = evaluation_step(policy, &trial.series) else {
            continue;
        };
        let Some(own) = value_at(&trial.series, s) else {
            continue;
        };
        // The others that reached step S (finished trials included).
        let others: Vec<&Progress> = trials
            .iter()
            .enumerate()
            .filter(|(j, t)| *j != i && reached(&t.series, s))
            .map(|(_, t)| t)
            .collect();
        if others.len() < policy.min_samples.max(1) {
            continue;
        }
        let behind = match policy.kind {
            PolicyKind::Median => {
                let best = goal
                    .best(
                        trial
                            .series
                            .iter()
                            .filter(|(st, _)| *st <= s)
                            .map(|(_, v)| *v),
                    )
                    .unwrap_or(own);
                let mut averages: Vec<f64> = others
                    .iter()
                    .map(|t| {
                        let upto: Vec<f64> = t
                            .series
                            .iter()
                            .filter(|(st, _)| *st <= s)
                            .map(|(_, v)| *v)
                            .collect();
                        upto.iter().sum::<f64>() / upto.len().max(1) as f64
                    })
                    .collect();
                averages.sort_by(f64::total_cmp);
                let m = averages.len();
                let median = if m % 2 == 1 {
                    averages[m / 2]
                } else {
                    (averages[m / 2 - 1] + averages[m / 2]) / 2.0
                };
                goal.better(median, best)
            }
            PolicyKind::Truncation { percent } => {
                let values: Vec<f64> = others
                    .iter()
                    .filter_map(|t| value_at(&t.series, s))
                    .collect();
                // In the worst `percent` of all of them (itself included)
                // when fewer than that many are strictly worse.
                let cut = ((percent / 100.0) * (values.len() + 1) as f64).floor() as usize;
                let worse = values.iter().filter(|v| goal.better(own, **v)).count();
                worse < cut
            }
            PolicyKind::Diff { percent } => {
                let best = goal
                    .best(
                        others
                            .iter()
                            .filter_map(|t| value_at(&t.series, s))
                            .chain([own]),
                    )
                    .unwrap_or(own);
                let gap = match goal {
                    Goal::Minimize => own - best,
                    Goal::Maximize => best - own,
                };
                gap > percent / 100.0 * best.abs()
            }
        };
        if behind {
            stop.insert(i);
        }
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(running: bool, values: &[f64]) -> Progress {
        Progress {
            running,
            failed: false,
            series: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as i64 + 1, *v))
                .collect::<Vec<_>>()
                .into(),
        }
    }

    fn policy(kind: PolicyKind) -> Policy {
        Policy {
            kind,
            evaluation_interval: 1,
            min_interval: 2,
            min_samples: 2,
        }
    }

    #[test]
    fn the_median_rule_stops_a_trial_behind_the_others_running_averages() {
        let rule = Rule::Metric {
            metric: "loss".into(),
            goal: Goal::Minimize,
            value: None,
            policy: Some(policy(PolicyKind::Median)),
        };
        let trials = [
            trial(false, &[1.0, 0.8, 0.6, 0.5]),
            trial(false, &[1.0, 0.7, 0.5, 0.4]),
            trial(true, &[1.2, 1.1, 1.0]),
            trial(true, &[0.9, 0.6, 0.5]),
        ];
        let verdict = judge(&rule, &trials);
        assert_eq!(verdict.stop_trials.into_iter().collect::<Vec<_>>(), vec![2]);
        assert_eq!(verdict.stop_sweep, None);
        // Before minInterval nothing is judged.
        let early = [trials[0].clone(), trials[1].clone(), trial(true, &[5.0])];
        assert!(judge(&rule, &early).stop_trials.is_empty());
        // Too few samples: nothing either.
        let alone = [trials[0].clone(), trial(true, &[5.0, 5.0, 5.0])];
        assert!(judge(&rule, &alone).stop_trials.is_empty());
    }

    #[test]
    fn truncation_and_diff_stop_the_laggards() {
        let trials = [
            trial(true, &[0.1, 0.9]),
            trial(true, &[0.1, 0.8]),
            trial(true, &[0.1, 0.5]),
            trial(true, &[0.1, 0.2]),
        ];
        let truncation = Rule::Metric {
            metric: "acc".into(),
            goal: Goal::Maximize,
            value: None,
            policy: Some(policy(PolicyKind::Truncation { percent: 50.0 })),
        };
        assert_eq!(
            judge(&truncation, &trials)
                .stop_trials
                .into_iter()
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        let diff = Rule::Metric {
            metric: "acc".into(),
            goal: Goal::Maximize,
            value: None,
            policy: Some(policy(PolicyKind::Diff { percent: 20.0 })),
        };
        // Best 0.9: 0.8 is within 20% (0.72), 0.5 and 0.2 are not.
        assert_eq!(
            judge(&diff, &trials)
                .stop_trials
                .into_iter()
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn thresholds_and_failures_stop_the_sweep() {
        let goal = Rule::Metric {
            metric: "acc".into(),
            goal: Goal::Maximize,
            value: Some(0.95),
            policy: None,
        };
        assert!(
            judge(&goal, &[trial(true, &[0.5, 0.9])])
                .stop_sweep
                .is_none()
        );
        assert!(
            judge(&goal, &[trial(true, &[0.5, 0.96])])
                .stop_sweep
                .is_some()
        );
        let failures = Rule::Failure { percent: 50.0 };
        let mut failed = trial(false, &[]);
        failed.failed = true;
        let ok = trial(false, &[1.0]);
        assert!(
            judge(&failures, &[failed.clone(), ok.clone(), ok.clone()])
                .stop_sweep
                .is_none()
        );
        assert!(
            judge(&failures, &[failed.clone(), failed, ok])
                .stop_sweep
                .is_some()
        );
    }
}
