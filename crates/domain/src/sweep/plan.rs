//! A matrix sweep as the scheduler drives it: the `matrix:` of an
//! operation turned into an algorithm, and the pure decision of which
//! trials to create next from the trials so far.
//!
//! The controller keeps no state of its own. Trial `k` is the `k`-th run
//! the sweep created; everything it needs (random draws, hyperband's
//! bracket and rung) follows from `k`, the seed and the earlier trials'
//! params and metrics. A restarted server therefore continues a sweep
//! exactly where it stopped, and the same seed with the same observed
//! metrics gives the same suggestions.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::Trial;
use super::axes::Axes;
use super::bayes::{self, BayesConfig};
use super::gp::{Acquisition, Kernel};
use super::hyperband;
use super::rng::Rng;
use super::space::{Dimension, Space, Suggestion};
use super::stopping::{Goal, Policy, PolicyKind, Rule};
use super::tpe::{self, TpeConfig};
use crate::spec::raw::{RawEarlyStopping, RawMatrix};

/// What the sweep optimizes: a tracked metric (or an output) of each trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: String,
    pub goal: Goal,
}

impl Objective {
    /// The value as a loss to minimize.
    pub fn loss(&self, value: f64) -> f64 {
        match self.goal {
            Goal::Minimize => value,
            Goal::Maximize => -value,
        }
    }
}

/// One trial of hyperband's schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Index of the bracket in [`hyperband::brackets`] order (s_max first).
    pub bracket: usize,
    pub rung: usize,
    /// Position within the rung: for rungs after the first, the rank of the
    /// promoted trial of the previous rung.
    pub position: usize,
    pub resource: f64,
}

/// How suggestions are made.
#[derive(Debug, Clone, PartialEq)]
pub enum Algorithm {
    /// Every combination of the params' values, in order.
    Grid,
    /// The listed param sets, in order.
    Mapping(Vec<Suggestion>),
    /// Independent draws.
    Random,
    /// A Gaussian process and an acquisition function.
    Bayes(BayesConfig),
    /// Tree-structured Parzen estimators.
    Hyperopt(TpeConfig),
    /// Successive halving over brackets; the resource is passed as the
    /// param `resource`, rounded when `integer`.
    Hyperband {
        resource: String,
        integer: bool,
        slots: Vec<Slot>,
        /// Trials per rung, by bracket.
        rungs: Vec<Vec<usize>>,
    },
}

/// A trial as the decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialView {
    pub params: Suggestion,
    /// Finished (succeeded, failed, stopped, skipped).
    pub done: bool,
    /// The objective's value, once known.
    pub value: Option<f64>,
}

/// A sweep: its algorithm, space and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub algorithm: Algorithm,
    pub space: Space,
    pub axes: Axes,
    /// How many trials the sweep creates in all.
    pub total: usize,
    /// How many run at once.
    pub concurrency: usize,
    pub seed: u64,
    pub objective: Option<Objective>,
    pub early_stopping: Vec<Rule>,
}

fn goal(optimization: Option<&str>) -> Goal {
    match optimization {
        Some("maximize") => Goal::Maximize,
        _ => Goal::Minimize,
    }
}

impl Matrix {
    /// The sweep of `raw` (already checked by `spec::compile`). `seed` is
    /// used when the matrix sets none, so that an unseeded sweep is still
    /// reproducible from what its controller run records.
    pub fn from_raw(raw: &RawMatrix, seed: u64) -> Result<Matrix, String> {
        let kind = raw.kind.as_deref().unwrap_or_default();
        let space = match &raw.params {
            Some(params) => Space::from_generators(params)?,
            None => Space::default(),
        };
        let axes = Axes::of(&space);
        let objective = raw.metric.as_ref().map(|m| Objective {
            metric: m.name.clone(),
            goal: goal(m.optimization.as_deref()),
        });
        let runs = raw.num_runs.or(raw.max_iterations).map(|n| n as usize);
        let (algorithm, total) = match kind {
            "grid" => {
                let size = space
                    .grid_size()
                    .ok_or("a grid takes only finite generators (choice, range, linspace, logspace, geomspace)")?;
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                (Algorithm::Grid, runs.map_or(size, |n| n.min(size)))
            }
            "mapping" => {
                let values: Vec<Suggestion> = raw
                    .values
                    .iter()
                    .flatten()
                    .map(|row| {
                        row.iter()
                            .map(|(k, v)| {
                                (k.clone(), serde_json::to_value(v).unwrap_or(Json::Null))
                            })
                            .collect()
                    })
                    .collect();
                let total = values.len();
                (Algorithm::Mapping(values), total)
            }
            "random" => (Algorithm::Random, runs.ok_or("`numRuns` is required")?),
            "hyperopt" => {
                if raw.algorithm.as_deref().is_some_and(|a| a != "tpe") {
                    // `rand` is a random search. Trellis has no annealing
                    // search: refusing `anneal` beats silently running TPE.
                    if raw.algorithm.as_deref() == Some("rand") {
                        (Algorithm::Random, runs.ok_or("`numRuns` is required")?)
                    } else {
                        return Err(
                            "the `anneal` algorithm is not supported; use `tpe` or `rand`".into(),
                        );
                    }
                } else {
                    let config = TpeConfig {
                        startup: raw.num_initial_runs.map_or(10, |n| n as usize),
                        ..TpeConfig::default()
                    };
                    (
                        Algorithm::Hyperopt(config),
                        runs.ok_or("`numRuns` is required")?,
                    )
                }
            }
            "bayes" => {
                let mut config = BayesConfig::default();
                if let Some(n) = raw.num_initial_runs {
                    config.initial = n as usize;
                }
                if let Some(utility) = &raw.utility_function {
                    let xi = utility.eps.unwrap_or(0.0);
                    // `ucb`, or no named function, is the lower
                    // confidence bound: with `kappa` if given, else the
                    // default width (not Polyaxon's 2.576, see
                    // `DEFAULT_KAPPA`).
                    config.acquisition = match utility.acquisition_function.as_deref() {
                        Some("ei") => Acquisition::Ei { xi },
                        Some("poi") => Acquisition::Poi { xi },
                        _ => Acquisition::Ucb {
                            kappa: utility.kappa.unwrap_or(bayes::DEFAULT_KAPPA),
                        },
                    };
                    if let Some(gp) = &utility.gaussian_process {
                        config.kernel = match gp.kernel.as_deref() {
                            Some("rbf") => Kernel::Rbf,
                            _ => Kernel::Matern(gp.nu.unwrap_or(2.5)),
                        };
                        if let Some(scale) = gp.length_scale.filter(|s| *s > 0.0) {
                            config.length_scale = scale;
                        }
                        if let Some(n) = gp.num_restarts_optimizer {
                            config.restarts = n as usize;
                        }
                    }
                    if let Some(n) = utility.num_warmup {
                        config.warmup = (n as usize).max(1);
                    }
                    if let Some(n) = utility.num_iterations {
                        config.iterations = n as usize;
                    }
                }
                // Polyaxon's bayes runs `numInitialRuns` random trials, then
                // `maxIterations` model-based ones; `numRuns` is the total.
                let total = match (raw.num_runs, raw.max_iterations) {
                    (Some(n), _) => n as usize,
                    (None, Some(iterations)) => config.initial + iterations as usize,
                    (None, None) => return Err("`maxIterations` (or `numRuns`) is required".into()),
                };
                (Algorithm::Bayes(config), total)
            }
            "hyperband" => {
                let max = f64::from(raw.max_iterations.ok_or("`maxIterations` is required")?);
                if max < 1.0 {
                    return Err("`maxIterations` must be at least 1".into());
                }
                let eta = raw.eta.unwrap_or(3.0);
                let resource = raw.resource.as_ref().ok_or("`resource` is required")?;
                let brackets = hyperband::brackets(max, eta);
                let mut slots = Vec::new();
                let mut rungs = Vec::new();
                for (b, bracket) in brackets.iter().enumerate() {
                    let mut sizes = Vec::new();
                    for (r, rung) in bracket.rungs.iter().enumerate() {
                        let n = usize::try_from(rung.trials).unwrap_or(usize::MAX);
                        sizes.push(n);
                        slots.extend((0..n).map(|position| Slot {
                            bracket: b,
                            rung: r,
                            position,
                            resource: rung.resource,
                        }));
                    }
                    rungs.push(sizes);
                }
                let total = slots.len();
                let algorithm = Algorithm::Hyperband {
                    resource: resource.name.clone(),
                    integer: resource.kind.as_deref() != Some("float"),
                    slots,
                    rungs,
                };
                (algorithm, total)
            }
            other => return Err(format!("the `{other}` matrix is not supported")),
        };
        let concurrency = match (&algorithm, raw.concurrency) {
            (_, Some(c)) => (c as usize).max(1),
            // Model-based searches learn from each result: one at a time
            // unless asked otherwise.
            (Algorithm::Bayes(_) | Algorithm::Hyperopt(_), None) => 1,
            (_, None) => total.max(1),
        };
        let early_stopping = raw
            .early_stopping
            .iter()
            .flatten()
            .filter_map(rule)
            .collect();
        Ok(Matrix {
            algorithm,
            space,
            axes,
            total,
            concurrency,
            seed: raw.seed.unwrap_or(seed),
            objective,
            early_stopping,
        })
    }

    /// The objective's loss of a trial, if it has one.
    fn loss(&self, trial: &TrialView) -> Option<f64> {
        let objective = self.objective.as_ref()?;
        trial
            .value
            .filter(|v| v.is_finite())
            .map(|v| objective.loss(v))
    }

    /// The best trial so far (by the objective), if any has a value.
    pub fn best(&self, trials: &[TrialView]) -> Option<usize> {
        trials
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, self.loss(t)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
    }

    /// Whether every trial has been created and has finished.
    pub fn finished(&self, trials: &[TrialView]) -> bool {
        trials.len() >= self.total && trials.iter().all(|t| t.done)
    }

    /// The params of the trials to create now (they get the indexes
    /// `trials.len()`, `trials.len() + 1`, ...): as many as the sweep's
    /// concurrency and `free` allow, fewer when the next trials wait for
    /// results (hyperband's next rung).
    pub fn next(&self, trials: &[TrialView], free: usize) -> Vec<Suggestion> {
        let running = trials.iter().filter(|t| !t.done).count();
        let room = self
            .concurrency
            .saturating_sub(running)
            .min(free)
            .min(self.total.saturating_sub(trials.len()));
        if room == 0 {
            return Vec::new();
        }
        let first = trials.len();
        match &self.algorithm {
            Algorithm::Grid => (first..first + room)
                .filter_map(|k| self.grid_point(k))
                .collect(),
            Algorithm::Mapping(values) => values.iter().skip(first).take(room).cloned().collect(),
            Algorithm::Random => (first..first + room)
                .map(|k| self.space.sample(&mut Rng::stream(self.seed, k as u64)))
                .collect(),
            Algorithm::Bayes(config) => {
                let (completed, pending) = self.observed(trials);
                let mut rng = Rng::stream(self.seed, first as u64);
                bayes::suggest(
                    &self.axes, &completed, &pending, room, config, self.seed, &mut rng,
                )
            }
            Algorithm::Hyperopt(config) => {
                let (completed, _) = self.observed(trials);
                (first..first + room)
                    .map(|k| {
                        let mut rng = Rng::stream(self.seed, k as u64);
                        tpe::suggest(&self.axes, &completed, config, &mut rng)
                    })
                    .collect()
            }
            Algorithm::Hyperband {
                resource,
                integer,
                slots,
                rungs,
            } => {
                let mut out = Vec::new();
                for (k, &slot) in slots.iter().enumerate().skip(first).take(room) {
                    let mut params = if slot.rung == 0 {
                        self.space.sample(&mut Rng::stream(self.seed, k as u64))
                    } else {
                        // The previous rung of this bracket must be done.
                        let start = rung_start(rungs, slot.bracket, slot.rung - 1);
                        let size = rungs[slot.bracket][slot.rung - 1];
                        let previous =
                            &trials[start.min(trials.len())..(start + size).min(trials.len())];
                        if previous.len() < size || !previous.iter().all(|t| t.done) {
                            break;
                        }
                        let scores: Vec<Option<f64>> =
                            previous.iter().map(|t| self.loss(t)).collect();
                        let keep = rungs[slot.bracket][slot.rung];
                        let promoted = hyperband::promote(&scores, keep, false);
                        let Some(&chosen) = promoted.get(slot.position) else {
                            break;
                        };
                        previous[chosen].params.clone()
                    };
                    let value = if *integer {
                        Json::from(slot.resource.round() as i64)
                    } else {
                        Json::from(slot.resource)
                    };
                    params.insert(resource.clone(), value);
                    out.push(params);
                }
                out
            }
        }
    }

    /// Grid point `k`: mixed-radix digits over the params' values, the
    /// last param varying fastest.
    fn grid_point(&self, k: usize) -> Option<Suggestion> {
        let mut rest = k;
        let mut out = BTreeMap::new();
        for (name, dimension) in self.space.params.iter().rev() {
            let values: Vec<&Json> = match dimension {
                Dimension::Values(values) => values.iter().collect(),
                Dimension::Weighted(values) => values.iter().map(|(v, _)| v).collect(),
                _ => return None,
            };
            if values.is_empty() {
                return None;
            }
            out.insert(name.clone(), values[rest % values.len()].clone());
            rest /= values.len();
        }
        (rest == 0).then_some(out)
    }

    /// Finished trials as the model-based optimizers learn from them, and
    /// the params of running ones.
    fn observed(&self, trials: &[TrialView]) -> (Vec<Trial>, Vec<Suggestion>) {
        let mut completed = Vec::new();
        let mut pending = Vec::new();
        for trial in trials {
            if trial.done {
                completed.push(Trial {
                    params: trial.params.clone(),
                    loss: self.loss(trial),
                });
            } else {
                pending.push(trial.params.clone());
            }
        }
        (completed, pending)
    }
}

/// The index of the first trial of `rung` in `bracket`.
fn rung_start(rungs: &[Vec<usize>], bracket: usize, rung: usize) -> usize {
    let before: usize = rungs[..bracket].iter().flatten().sum();
    before + rungs[bracket][..rung].iter().sum::<usize>()
}

/// One `earlyStopping` rule (already checked by `spec::compile`).
fn rule(raw: &RawEarlyStopping) -> Option<Rule> {
    match raw.kind.as_deref()? {
        "failure_early_stopping" => Some(Rule::Failure {
            percent: raw.percent?,
        }),
        "metric_early_stopping" => {
            let policy = raw.policy.as_ref().and_then(|p| {
                let percent = p.percent.unwrap_or(10.0);
                let kind = match p.kind.as_deref()? {
                    "median" => PolicyKind::Median,
                    "truncation" => PolicyKind::Truncation { percent },
                    "diff" => PolicyKind::Diff { percent },
                    _ => return None,
                };
                Some(Policy {
                    kind,
                    evaluation_interval: i64::from(p.evaluation_interval.unwrap_or(1).max(1)),
                    min_interval: i64::from(p.min_interval.unwrap_or(0)),
                    min_samples: p.min_samples.unwrap_or(1) as usize,
                })
            });
            Some(Rule::Metric {
                metric: raw.metric.clone()?,
                goal: goal(raw.optimization.as_deref()),
                value: raw.value,
                policy,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(yaml: &str) -> Matrix {
        let raw: RawMatrix = serde_yaml::from_str(yaml).unwrap();
        Matrix::from_raw(&raw, 7).unwrap()
    }

    fn done(params: Suggestion, value: f64) -> TrialView {
        TrialView {
            params,
            done: true,
            value: Some(value),
        }
    }

    #[test]
    fn a_grid_enumerates_every_combination_once_within_concurrency() {
        let m = matrix(
            "kind: grid\nconcurrency: 2\nparams:\n  a: {kind: choice, value: [1, 2]}\n  b: {kind: choice, value: [x, y, z]}\n",
        );
        assert_eq!(m.total, 6);
        let first = m.next(&[], 10);
        assert_eq!(first.len(), 2);
        let mut trials: Vec<TrialView> = first.into_iter().map(|p| done(p, 0.0)).collect();
        while !m.finished(&trials) {
            let next = m.next(&trials, 10);
            assert!(!next.is_empty());
            trials.extend(next.into_iter().map(|p| done(p, 0.0)));
        }
        let mut seen: Vec<String> = trials
            .iter()
            .map(|t| format!("{}{}", t.params["a"], t.params["b"]))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn random_suggestions_follow_the_seed_and_the_index() {
        let m = matrix(
            "kind: random\nnumRuns: 5\nseed: 3\nparams:\n  lr: {kind: loguniform, value: [-5, 0]}\n",
        );
        let all = m.next(&[], 5);
        assert_eq!(all.len(), 5);
        // Trial 3 is the same whether made in a batch or alone.
        let before: Vec<TrialView> = all[..3].iter().cloned().map(|p| done(p, 1.0)).collect();
        assert_eq!(m.next(&before, 1)[0], all[3]);
        let other = matrix(
            "kind: random\nnumRuns: 5\nseed: 4\nparams:\n  lr: {kind: loguniform, value: [-5, 0]}\n",
        );
        assert_ne!(other.next(&[], 5), all);
    }

    #[test]
    fn hyperband_promotes_the_best_of_each_rung_with_the_larger_resource() {
        let m = matrix(
            "kind: hyperband\nmaxIterations: 9\neta: 3\nresource: {name: epochs, type: int}\nmetric: {name: loss, optimization: minimize}\nseed: 1\nparams:\n  x: {kind: uniform, value: [0, 1]}\n",
        );
        // R=9, η=3: s=2: 9@1, 3@3, 1@9; s=1: 5@3, 1@9 (rounded); s=0: 3@9.
        let Algorithm::Hyperband { rungs, .. } = &m.algorithm else {
            panic!()
        };
        assert_eq!(rungs[0], vec![9, 3, 1]);
        let first = m.next(&[], 100);
        assert_eq!(first.len(), 9, "the first rung, then wait");
        assert!(first.iter().all(|p| p["epochs"] == 1));
        // Loss = x: the three smallest x are promoted, best first.
        let mut trials: Vec<TrialView> = first
            .into_iter()
            .map(|p| {
                let x = p["x"].as_f64().unwrap();
                done(p, x)
            })
            .collect();
        let mut xs: Vec<f64> = trials
            .iter()
            .map(|t| t.params["x"].as_f64().unwrap())
            .collect();
        xs.sort_by(f64::total_cmp);
        let second = m.next(&trials, 100);
        assert_eq!(second.len(), 3);
        for (i, p) in second.iter().enumerate() {
            assert_eq!(p["x"].as_f64().unwrap(), xs[i]);
            assert_eq!(p["epochs"], Json::from(3));
        }
        // While one of rung 1 runs, rung 2 waits.
        trials.extend(second.into_iter().map(|p| TrialView {
            params: p,
            done: false,
            value: None,
        }));
        assert!(m.next(&trials, 100).is_empty());
    }

    #[test]
    fn bayes_takes_the_named_acquisition_and_otherwise_a_bound_of_kappa() {
        let acquisition = |utility: &str| {
            let m = matrix(&format!(
                "kind: bayes\nnumRuns: 5\nmetric: {{name: loss}}\n{utility}params:\n  x: {{kind: uniform, value: [0, 1]}}\n"
            ));
            match m.algorithm {
                Algorithm::Bayes(config) => config.acquisition,
                other => panic!("{other:?}"),
            }
        };
        let default = Acquisition::Ucb {
            kappa: bayes::DEFAULT_KAPPA,
        };
        assert_eq!(acquisition(""), default);
        assert_eq!(acquisition("utilityFunction: {numWarmup: 10}\n"), default);
        assert_eq!(
            acquisition("utilityFunction: {kappa: 2.5}\n"),
            Acquisition::Ucb { kappa: 2.5 }
        );
        assert_eq!(
            acquisition("utilityFunction: {acquisitionFunction: ei, eps: 0.1}\n"),
            Acquisition::Ei { xi: 0.1 }
        );
        assert_eq!(
            acquisition("utilityFunction: {acquisitionFunction: poi}\n"),
            Acquisition::Poi { xi: 0.0 }
        );
    }

    #[test]
    fn bayes_defaults_to_one_trial_at_a_time_and_a_batch_when_asked() {
        let m = matrix(
            "kind: bayes\nmaxIterations: 10\nnumInitialRuns: 3\nmetric: {name: loss, optimization: maximize}\nparams:\n  x: {kind: uniform, value: [0, 1]}\n",
        );
        assert_eq!((m.total, m.concurrency), (13, 1));
        assert_eq!(m.next(&[], 8).len(), 1);
        let batch = matrix(
            "kind: bayes\nnumRuns: 10\nconcurrency: 4\nmetric: {name: loss}\nparams:\n  x: {kind: uniform, value: [0, 1]}\n",
        );
        let trials: Vec<TrialView> = batch
            .next(&[], 8)
            .into_iter()
            .map(|p| done(p.clone(), p["x"].as_f64().unwrap()))
            .collect();
        let more = batch.next(&trials, 8);
        assert_eq!(more.len(), 4);
        // Maximizing: the best is the largest value.
        let best = m.best(&[done(Suggestion::new(), 1.0), done(Suggestion::new(), 3.0)]);
        assert_eq!(best, Some(1));
    }
}
