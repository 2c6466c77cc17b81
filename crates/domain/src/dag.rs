//! Which operations of a DAG run start, are skipped or fail upstream, given
//! the states of their upstream operations.
//!
//! The scheduler calls [`advance`] whenever an operation of a dag changes
//! state; it returns what to do with every waiting operation that can be
//! decided now. Skips and upstream failures propagate within one call, and
//! starts respect the dag's concurrency. Trigger policies:
//!
//! | policy          | starts when                        | otherwise, once decided   |
//! |-----------------|------------------------------------|---------------------------|
//! | `all_succeeded` | every upstream succeeded           | `upstream_failed`         |
//! | `all_failed`    | every upstream failed              | skipped                   |
//! | `all_done`      | every upstream is done             | —                         |
//! | `one_succeeded` | one upstream succeeded             | `upstream_failed`         |
//! | `one_failed`    | one upstream failed                | skipped                   |
//! | `one_done`      | one upstream is done (not skipped) | skipped                   |
//!
//! "Failed" counts failed, stopped and upstream-failed operations. A
//! skipped upstream (its condition was false, or its own policy skipped
//! it) skips the operation when `skipOnUpstreamSkip` is set; otherwise it
//! is left out of the policy, so that a branch turned off by a condition
//! does not fail the join after it. An operation whose upstream are all
//! skipped is skipped. An operation whose policy is met but whose
//! condition is false is skipped.

use std::collections::BTreeMap;

/// When an operation may start, from its upstream operations' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    #[default]
    AllSucceeded,
    AllFailed,
    AllDone,
    OneSucceeded,
    OneFailed,
    OneDone,
}

impl Trigger {
    /// Every policy with its Polyaxonfile name.
    pub const ALL: [(Trigger, &'static str); 6] = [
        (Trigger::AllSucceeded, "all_succeeded"),
        (Trigger::AllFailed, "all_failed"),
        (Trigger::AllDone, "all_done"),
        (Trigger::OneSucceeded, "one_succeeded"),
        (Trigger::OneFailed, "one_failed"),
        (Trigger::OneDone, "one_done"),
    ];

    /// The policy named `name` in a Polyaxonfile (`triggerPolicy`).
    pub fn parse(name: &str) -> Option<Trigger> {
        Self::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(trigger, _)| *trigger)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("all_succeeded", |(_, name)| name)
    }
}

/// Where an operation of a dag is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    /// Not started, not decided.
    Waiting,
    /// Started (queued, scheduled or running): not done yet.
    Running,
    Succeeded,
    Failed,
    Stopped,
    Skipped,
    UpstreamFailed,
}

impl OpState {
    pub fn is_done(self) -> bool {
        !matches!(self, OpState::Waiting | OpState::Running)
    }

    fn is_failure(self) -> bool {
        matches!(
            self,
            OpState::Failed | OpState::Stopped | OpState::UpstreamFailed
        )
    }
}

/// An operation of a dag, as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Op {
    /// Indexes of its upstream operations.
    pub upstream: Vec<usize>,
    pub trigger: Trigger,
    pub skip_on_upstream_skip: bool,
}

/// What to do with a waiting operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Start,
    Skip,
    UpstreamFailed,
}

/// What an operation's trigger policy says from its upstream states:
/// a decision, or `None` to keep waiting.
pub fn trigger_decision(op: &Op, states: &[OpState]) -> Option<Decision> {
    let upstream: Vec<OpState> = op.upstream.iter().map(|&u| states[u]).collect();
    if upstream.is_empty() {
        return Some(Decision::Start);
    }
    let skipped = upstream.iter().filter(|s| **s == OpState::Skipped).count();
    if op.skip_on_upstream_skip && skipped > 0 {
        return Some(Decision::Skip);
    }
    // Skipped upstream are left out of the policy.
    let counted: Vec<OpState> = upstream
        .into_iter()
        .filter(|s| *s != OpState::Skipped)
        .collect();
    if counted.is_empty() {
        return Some(Decision::Skip);
    }
    let total = counted.len();
    let succeeded = counted.iter().filter(|s| **s == OpState::Succeeded).count();
    let failed = counted.iter().filter(|s| s.is_failure()).count();
    let done = succeeded + failed;
    let all_done = done == total;
    match op.trigger {
        Trigger::AllSucceeded if failed > 0 => Some(Decision::UpstreamFailed),
        Trigger::AllSucceeded if succeeded == total => Some(Decision::Start),
        Trigger::AllFailed if succeeded > 0 => Some(Decision::Skip),
        Trigger::AllFailed if failed == total => Some(Decision::Start),
        Trigger::AllDone if all_done => Some(Decision::Start),
        Trigger::OneSucceeded if succeeded > 0 => Some(Decision::Start),
        Trigger::OneSucceeded if all_done => Some(Decision::UpstreamFailed),
        Trigger::OneFailed if failed > 0 => Some(Decision::Start),
        Trigger::OneFailed if all_done => Some(Decision::Skip),
        Trigger::OneDone if done > 0 => Some(Decision::Start),
        _ => None,
    }
}

/// Decides every waiting operation that can be decided now. `states` are
/// the operations' current states (same indexes as `ops`); `concurrency`
/// caps how many run at once (`None`: no cap); `condition` is asked, when
/// an operation's policy is met, whether its condition holds (it is
/// skipped if not). Returns the decisions in operation order; skips and
/// upstream failures are followed through to their downstream operations.
pub fn advance(
    ops: &[Op],
    states: &[OpState],
    concurrency: Option<usize>,
    mut condition: impl FnMut(usize) -> bool,
) -> BTreeMap<usize, Decision> {
    let mut states = states.to_vec();
    let mut decided = BTreeMap::new();
    let mut running = states.iter().filter(|s| **s == OpState::Running).count();
    loop {
        let mut changed = false;
        for (i, op) in ops.iter().enumerate() {
            if states[i] != OpState::Waiting {
                continue;
            }
            let decision = match trigger_decision(op, &states) {
                Some(Decision::Start) if concurrency.is_some_and(|c| running >= c) => continue,
                Some(Decision::Start) if !condition(i) => Decision::Skip,
                Some(decision) => decision,
                None => continue,
            };
            states[i] = match decision {
                Decision::Start => {
                    running += 1;
                    OpState::Running
                }
                Decision::Skip => OpState::Skipped,
                Decision::UpstreamFailed => OpState::UpstreamFailed,
            };
            decided.insert(i, decision);
            changed = true;
        }
        if !changed {
            return decided;
        }
    }
}

/// The dag's own outcome once every operation is done: `None` while one
/// is waiting or running. Failed if an operation failed or failed
/// upstream, else stopped if one was stopped, else succeeded (skipped
/// operations are not failures).
pub fn outcome(states: &[OpState]) -> Option<OpState> {
    if !states.iter().all(|s| s.is_done()) {
        return None;
    }
    if states
        .iter()
        .any(|s| matches!(s, OpState::Failed | OpState::UpstreamFailed))
    {
        Some(OpState::Failed)
    } else if states.contains(&OpState::Stopped) {
        Some(OpState::Stopped)
    } else {
        Some(OpState::Succeeded)
    }
}

/// Each operation's column when the dag is drawn left to right: the
/// length of the longest path of upstream operations leading to it, so
/// every edge points rightwards. Operations must be acyclic (the spec
/// checks); an upstream index out of range is ignored.
pub fn layers(ops: &[Op]) -> Vec<usize> {
    let mut layer: Vec<Option<usize>> = vec![None; ops.len()];
    fn depth(i: usize, ops: &[Op], layer: &mut Vec<Option<usize>>, seen: usize) -> usize {
        if let Some(d) = layer[i] {
            return d;
        }
        // `seen` bounds the recursion should a cycle slip through.
        if seen > ops.len() {
            return 0;
        }
        let d = ops[i]
            .upstream
            .iter()
            .filter(|&&u| u < ops.len())
            .map(|&u| depth(u, ops, layer, seen + 1) + 1)
            .max()
            .unwrap_or(0);
        layer[i] = Some(d);
        d
    }
    (0..ops.len())
        .map(|i| depth(i, ops, &mut layer, 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_put_every_operation_right_of_its_upstream() {
        // a -> b -> d, a -> c -> d, e alone.
        let ops = [
            op(&[], Trigger::AllSucceeded),
            op(&[0], Trigger::AllSucceeded),
            op(&[0], Trigger::AllSucceeded),
            op(&[1, 2], Trigger::AllSucceeded),
            op(&[], Trigger::AllSucceeded),
        ];
        assert_eq!(layers(&ops), vec![0, 1, 1, 2, 0]);
    }
    use proptest::prelude::*;

    fn op(upstream: &[usize], trigger: Trigger) -> Op {
        Op {
            upstream: upstream.to_vec(),
            trigger,
            skip_on_upstream_skip: false,
        }
    }

    #[test]
    fn a_failure_fails_all_succeeded_downstream_transitively() {
        // a -> b -> c, a fails.
        let ops = [
            op(&[], Trigger::AllSucceeded),
            op(&[0], Trigger::AllSucceeded),
            op(&[1], Trigger::AllSucceeded),
        ];
        let states = [OpState::Failed, OpState::Waiting, OpState::Waiting];
        let decided = advance(&ops, &states, None, |_| true);
        assert_eq!(
            decided.into_iter().collect::<Vec<_>>(),
            vec![(1, Decision::UpstreamFailed), (2, Decision::UpstreamFailed)]
        );
    }

    #[test]
    fn each_policy_decides_as_documented() {
        use OpState::{Failed as F, Running as R, Skipped as K, Succeeded as S};
        let cases: &[(Trigger, &[OpState], Option<Decision>)] = &[
            (Trigger::AllSucceeded, &[S, R], None),
            (Trigger::AllSucceeded, &[S, S], Some(Decision::Start)),
            (
                Trigger::AllSucceeded,
                &[F, R],
                Some(Decision::UpstreamFailed),
            ),
            (Trigger::AllSucceeded, &[S, K], Some(Decision::Start)),
            (Trigger::AllFailed, &[F, F], Some(Decision::Start)),
            (Trigger::AllFailed, &[F, S], Some(Decision::Skip)),
            (Trigger::AllFailed, &[F, R], None),
            (Trigger::AllDone, &[F, S], Some(Decision::Start)),
            (Trigger::AllDone, &[F, R], None),
            (Trigger::OneSucceeded, &[S, R], Some(Decision::Start)),
            (
                Trigger::OneSucceeded,
                &[F, F],
                Some(Decision::UpstreamFailed),
            ),
            (Trigger::OneFailed, &[F, R], Some(Decision::Start)),
            (Trigger::OneFailed, &[S, S], Some(Decision::Skip)),
            (Trigger::OneFailed, &[S, R], None),
            (Trigger::OneDone, &[S, R], Some(Decision::Start)),
            (Trigger::OneDone, &[K, R], None),
            (Trigger::OneDone, &[K, K], Some(Decision::Skip)),
        ];
        for (trigger, upstream, want) in cases {
            let mut states = upstream.to_vec();
            states.push(OpState::Waiting);
            let o = op(&[0, 1], *trigger);
            assert_eq!(
                trigger_decision(&o, &states),
                *want,
                "{} with {upstream:?}",
                trigger.as_str()
            );
        }
    }

    #[test]
    fn skip_on_upstream_skip_skips_instead_of_ignoring() {
        let mut o = op(&[0, 1], Trigger::AllSucceeded);
        let states = [OpState::Skipped, OpState::Succeeded, OpState::Waiting];
        assert_eq!(trigger_decision(&o, &states), Some(Decision::Start));
        o.skip_on_upstream_skip = true;
        assert_eq!(trigger_decision(&o, &states), Some(Decision::Skip));
    }

    #[test]
    fn a_false_condition_skips_and_concurrency_holds_starts_back() {
        let ops = [
            op(&[], Trigger::AllSucceeded),
            op(&[], Trigger::AllSucceeded),
            op(&[], Trigger::AllSucceeded),
            op(&[0], Trigger::AllSucceeded),
        ];
        let states = [OpState::Waiting; 4];
        let decided = advance(&ops, &states, Some(1), |i| i != 0);
        // Op 0 is skipped by its condition (taking no slot), so op 3 is
        // skipped too; op 1 takes the one slot; op 2 waits.
        assert_eq!(
            decided.into_iter().collect::<Vec<_>>(),
            vec![
                (0, Decision::Skip),
                (1, Decision::Start),
                (3, Decision::Skip)
            ]
        );
    }

    #[test]
    fn the_dag_outcome_follows_its_ops() {
        use OpState::*;
        assert_eq!(outcome(&[Succeeded, Running]), None);
        assert_eq!(outcome(&[Succeeded, Skipped]), Some(Succeeded));
        assert_eq!(outcome(&[Succeeded, UpstreamFailed]), Some(Failed));
        assert_eq!(outcome(&[Stopped, Skipped]), Some(Stopped));
        assert_eq!(Trigger::parse("one_done"), Some(Trigger::OneDone));
        assert_eq!(Trigger::parse("sometimes"), None);
    }

    /// A random acyclic graph (edges from lower to higher index), random
    /// policies, outcomes and conditions, and a concurrency cap.
    fn dag() -> impl Strategy<Value = (Vec<Op>, Vec<OpState>, Vec<bool>, Option<usize>)> {
        (1usize..12).prop_flat_map(|n| {
            let edges = proptest::collection::vec(proptest::bool::weighted(0.3), n * n);
            let triggers = proptest::collection::vec(0usize..6, n);
            let skips = proptest::collection::vec(any::<bool>(), n);
            let outcomes = proptest::collection::vec(
                prop_oneof![
                    Just(OpState::Succeeded),
                    Just(OpState::Failed),
                    Just(OpState::Stopped)
                ],
                n,
            );
            let conditions = proptest::collection::vec(proptest::bool::weighted(0.85), n);
            let concurrency = prop_oneof![Just(None), (1usize..4).prop_map(Some)];
            (edges, triggers, skips, outcomes, conditions, concurrency).prop_map(
                move |(edges, triggers, skips, outcomes, conditions, concurrency)| {
                    let ops = (0..n)
                        .map(|i| Op {
                            upstream: (0..i).filter(|&j| edges[i * n + j]).collect(),
                            trigger: Trigger::ALL[triggers[i]].0,
                            skip_on_upstream_skip: skips[i],
                        })
                        .collect();
                    (ops, outcomes, conditions, concurrency)
                },
            )
        })
    }

    proptest! {
        /// On any acyclic graph every operation is decided exactly once,
        /// starts only when its policy allows (so never before an upstream
        /// it waits for), the cap is never exceeded, and the dag ends.
        #[test]
        fn every_op_is_decided_once_and_in_order((ops, outcomes, conditions, cap) in dag()) {
            let n = ops.len();
            let mut states = vec![OpState::Waiting; n];
            let mut decisions = vec![0usize; n];
            let mut finish_order = Vec::new();
            for _round in 0..=2 * n {
                let decided = advance(&ops, &states, cap, |i| conditions[i]);
                for (&i, &decision) in &decided {
                    prop_assert_eq!(states[i], OpState::Waiting);
                    decisions[i] += 1;
                    if decision == Decision::Start {
                        // Its policy holds on the states it started from
                        // (skips decided in the same call included).
                        let mut seen = states.clone();
                        for (&j, &d) in &decided {
                            if j != i && d != Decision::Start {
                                seen[j] = if d == Decision::Skip { OpState::Skipped } else { OpState::UpstreamFailed };
                            }
                        }
                        prop_assert_eq!(trigger_decision(&ops[i], &seen), Some(Decision::Start));
                    }
                    states[i] = match decision {
                        Decision::Start => OpState::Running,
                        Decision::Skip => OpState::Skipped,
                        Decision::UpstreamFailed => OpState::UpstreamFailed,
                    };
                }
                let running = states.iter().filter(|s| **s == OpState::Running).count();
                if let Some(cap) = cap {
                    prop_assert!(running <= cap);
                }
                // The lowest running op finishes with its outcome.
                match states.iter().position(|s| *s == OpState::Running) {
                    Some(i) => {
                        states[i] = outcomes[i];
                        finish_order.push(i);
                    }
                    None => break,
                }
            }
            prop_assert!(decisions.iter().all(|&d| d == 1), "decisions {:?} states {:?}", decisions, states);
            prop_assert!(outcome(&states).is_some());
            // An op that ran finished after every upstream that finished
            // before it was decided: all_* policies after all of them.
            for (pos, &i) in finish_order.iter().enumerate() {
                if matches!(ops[i].trigger, Trigger::AllSucceeded | Trigger::AllFailed | Trigger::AllDone) {
                    for &u in &ops[i].upstream {
                        if let Some(upos) = finish_order.iter().position(|&x| x == u) {
                            prop_assert!(upos < pos, "{} finished before its upstream {}", i, u);
                        }
                    }
                }
            }
        }
    }
}
