//! Hyperband's schedule (Li et al., 2018): brackets of successive halving
//! that trade many short trials against few long ones.
//!
//! With a maximum resource `R` per trial and a reduction factor `η`,
//! `s_max = ⌊log_η R⌋` and `B = (s_max + 1) R`. Bracket `s` (from `s_max`
//! down to 0) starts `n = ⌈B / R · η^s / (s + 1)⌉` trials at resource
//! `r = R η^(-s)`; its rung `i` keeps the best `⌊n η^(-i)⌋` of them and
//! runs them at `r η^i`. For `R = 81, η = 3` that is
//! s=4: 81@1, 27@3, 9@9, 3@27, 1@81; s=3: 34@3, 11@9, 3@27, 1@81;
//! s=2: 15@9, 5@27, 1@81; s=1: 8@27, 2@81; s=0: 5@81.

/// One rung of a bracket: how many trials run, at what resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rung {
    pub trials: u64,
    pub resource: f64,
}

/// A bracket: its index `s` and its rungs, first to last.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    pub s: u32,
    pub rungs: Vec<Rung>,
}

/// A relative tolerance for `η^s ≤ R`, so that `log_3 81` is 4, not
/// 3.999....
const EPS: f64 = 1e-9;

/// `s_max = ⌊log_η R⌋`, computed by multiplying so rounding cannot lose
/// a bracket.
pub fn s_max(max_resource: f64, eta: f64) -> u32 {
    let mut s = 0;
    let mut power = eta;
    while power <= max_resource * (1.0 + EPS) && s < 64 {
        s += 1;
        power *= eta;
    }
    s
}

/// Every bracket of the schedule, from `s_max` down to 0. `max_resource`
/// must be ≥ 1 and `eta` > 1 (the spec checks both).
pub fn brackets(max_resource: f64, eta: f64) -> Vec<Bracket> {
    let s_max = s_max(max_resource, eta);
    let budget = f64::from(s_max + 1) * max_resource;
    (0..=s_max)
        .rev()
        .map(|s| {
            let eta_s = eta.powi(s as i32);
            let n = (budget / max_resource * eta_s / f64::from(s + 1) - EPS).ceil();
            let r = max_resource / eta_s;
            let rungs = (0..=s)
                .map(|i| {
                    let eta_i = eta.powi(i as i32);
                    Rung {
                        trials: ((n / eta_i) + EPS).floor().max(1.0) as u64,
                        resource: r * eta_i,
                    }
                })
                .collect();
            Bracket { s, rungs }
        })
        .collect()
}

/// Total trials started over the whole schedule (each rung's promotions
/// are new runs at the larger resource, as in Polyaxon).
pub fn total_runs(brackets: &[Bracket]) -> u64 {
    brackets
        .iter()
        .flat_map(|b| b.rungs.iter().map(|r| r.trials))
        .sum()
}

/// The indexes of the `keep` best of `scores` (`None`: the trial has no
/// metric, ranked last), best first; ties go to the earlier trial.
pub fn promote(scores: &[Option<f64>], keep: usize, maximize: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| scores[i].filter(|v| !v.is_nan());
        match (key(a), key(b)) {
            (Some(x), Some(y)) => {
                let by = if maximize {
                    y.total_cmp(&x)
                } else {
                    x.total_cmp(&y)
                };
                by.then(a.cmp(&b))
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(&b),
        }
    });
    order.truncate(keep);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_resource: f64, eta: f64) -> Vec<Vec<(u64, f64)>> {
        brackets(max_resource, eta)
            .into_iter()
            .map(|b| b.rungs.iter().map(|r| (r.trials, r.resource)).collect())
            .collect()
    }

    #[test]
    fn the_paper_schedule_for_81_and_3() {
        assert_eq!(
            table(81.0, 3.0),
            vec![
                vec![(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)],
                vec![(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)],
                vec![(15, 9.0), (5, 27.0), (1, 81.0)],
                vec![(8, 27.0), (2, 81.0)],
                vec![(5, 81.0)],
            ]
        );
        assert_eq!(brackets(81.0, 3.0)[0].s, 4);
    }

    #[test]
    fn small_and_uneven_schedules() {
        assert_eq!(s_max(1.0, 3.0), 0);
        assert_eq!(table(1.0, 3.0), vec![vec![(1, 1.0)]]);
        // R = 27, η = 3: s_max = 3, B = 108.
        assert_eq!(
            table(27.0, 3.0)[0],
            vec![(27, 1.0), (9, 3.0), (3, 9.0), (1, 27.0)]
        );
        assert_eq!(table(27.0, 3.0)[1], vec![(12, 3.0), (4, 9.0), (1, 27.0)]);
        // η = 2, R = 8: s_max = 3.
        assert_eq!(
            table(8.0, 2.0)[0],
            vec![(8, 1.0), (4, 2.0), (2, 4.0), (1, 8.0)]
        );
    }

    #[test]
    fn promotion_keeps_the_best_and_ranks_missing_metrics_last() {
        let scores = [
            Some(0.3),
            None,
            Some(0.1),
            Some(f64::NAN),
            Some(0.2),
            Some(0.1),
        ];
        assert_eq!(promote(&scores, 3, false), vec![2, 5, 4]);
        assert_eq!(promote(&scores, 2, true), vec![0, 4]);
        assert_eq!(promote(&scores, 9, true).len(), 6);
    }
}
