//! Tree-structured Parzen Estimator (Bergstra et al., 2011), the `hyperopt`
//! matrix's `tpe` algorithm, multivariate (Falkner et al., 2018): the
//! completed trials are split into the best `γ(n)` and the rest; each part
//! becomes a mixture of one kernel per trial (a truncated normal on every
//! continuous axis, a smoothed one-hot on every categorical one) plus a
//! flat prior; candidates are drawn from the good mixture and the one with
//! the largest ratio of good to bad density is suggested. Axes are
//! modelled jointly, so correlated params (Rosenbrock's valley) are
//! followed, unlike independent per-param TPE.

use super::Trial;
use super::axes::{Axes, Axis};
use super::rng::Rng;
use super::space::Suggestion;
use super::special;

/// How the TPE is tuned. The model is Optuna's; two defaults differ from
/// Optuna's, chosen on 160 seeds of Branin, Hartmann6 and Rosenbrock
/// against Optuna 5.1's TPESampler (docs/benchmarks.md): with Optuna's
/// (24 candidates, unnarrowed widths) the median regret matched Optuna's
/// within 0.68–1.10×; with these it is 0.39–0.83× in every cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Random suggestions before the model is used.
    pub startup: usize,
    /// Candidates drawn from the good mixture per suggestion (Optuna: 24).
    /// More candidates pick a point nearer the ratio's peak; 96 cost about
    /// a third more time than 24 at 1000 trials.
    pub candidates: usize,
    /// The floor on a continuous kernel's width is Optuna's "magic clip",
    /// `1 / min(100, n + 2)` of the range, divided by this (Optuna: 1).
    /// Narrower kernels let the search settle into a basin it has found
    /// instead of resampling its surroundings; wider ones (0.75) were
    /// worse on every function.
    pub narrowing: f64,
    /// Weight of the flat prior component of each mixture.
    pub prior_weight: f64,
    /// One density over all params (Optuna 5's default for one
    /// objective, and ours), rather than one per param.
    pub multivariate: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            startup: 10,
            candidates: 96,
            narrowing: 1.5,
            prior_weight: 1.0,
            multivariate: true,
        }
    }
}

/// How many of `n` trials are the good ones: Optuna's `min(⌈0.1 n⌉, 25)`.
fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Optuna's trial weights, oldest first: older trials fade in linearly
/// once there are more than 25.
fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut out: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    out.extend(std::iter::repeat_n(1.0, 25));
    out
}

/// The smallest kernel width among `n` observations, in unit coordinates.
fn min_sigma(n: usize, narrowing: f64) -> f64 {
    1.0 / ((100.0_f64).min(2.0 + n as f64) * narrowing.max(f64::MIN_POSITIVE))
}

/// Each value's kernel width on one axis, as Optuna's Parzen estimator:
/// the larger gap to its neighbours among the values (the box's ends as
/// outer neighbours, except for the outermost values, which take their
/// inner gap), clipped to `[min_sigma, 1]` in unit coordinates.
fn gap_sigmas(values: &[f64], narrowing: f64) -> Vec<f64> {
    let n = values.len();
    let pairs = sorted_pairs(values);
    let sorted: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let min_sigma = min_sigma(n, narrowing);
    let mut out = vec![1.0; n];
    for (rank, &(_, i)) in pairs.iter().enumerate() {
        let left = if rank == 0 { 0.0 } else { sorted[rank - 1] };
        let right = if rank + 1 == n { 1.0 } else { sorted[rank + 1] };
        let mut gap = (sorted[rank] - left).max(right - sorted[rank]);
        if n >= 2 && rank == 0 {
            gap = sorted[1] - sorted[0];
        } else if n >= 2 && rank + 1 == n {
            gap = sorted[n - 1] - sorted[n - 2];
        }
        out[i] = gap.clamp(min_sigma, 1.0);
    }
    out
}

/// `(value, index)` pairs in order of value, ties by index. Values are
/// unit coordinates, spread over `[0, 1]`: a bucket sort (n buckets, each
/// sorted on its own) takes a fraction of a comparison sort's time, and
/// a crowded bucket (trials converging on one point) is still sorted in
/// `n log n`.
fn sorted_pairs(values: &[f64]) -> Vec<(f64, usize)> {
    let by_value = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let n = values.len();
    let mut out: Vec<(f64, usize)> = values.iter().copied().zip(0..).collect();
    if n < 32 || values.iter().any(|v| !(0.0..=1.0).contains(v)) {
        out.sort_unstable_by(by_value);
        return out;
    }
    let bucket_of = |v: f64| ((v * n as f64) as usize).min(n - 1);
    let mut starts = vec![0_usize; n + 1];
    for &v in values {
        starts[bucket_of(v) + 1] += 1;
    }
    for b in 0..n {
        starts[b + 1] += starts[b];
    }
    let mut next = starts.clone();
    for (i, &v) in values.iter().enumerate() {
        let b = bucket_of(v);
        out[next[b]] = (v, i);
        next[b] += 1;
    }
    for b in 0..n {
        let bucket = &mut out[starts[b]..starts[b + 1]];
        if bucket.len() > 1 {
            bucket.sort_unstable_by(by_value);
        }
    }
    out
}

/// ln of a normal kernel's normalizer on `[0, 1]`: `ln σ + ½ ln 2π` plus
/// the log of its mass inside the box (1 for a kernel 9σ inside both
/// ends, to 1e-19, with no `cdf` needed).
fn ln_norm(mu: f64, sigma: f64, ln_sigma: f64) -> f64 {
    let ln_mass = if mu > 9.0 * sigma && 1.0 - mu > 9.0 * sigma {
        0.0
    } else {
        let mass = special::cdf((1.0 - mu) / sigma) - special::cdf(-mu / sigma);
        mass.max(1e-300).ln()
    };
    ln_sigma + 0.5 * (2.0 * std::f64::consts::PI).ln() + ln_mass
}

/// Categorical kernels: each observed index keeps `1 − s` of its mass and
/// spreads `s = prior_weight / (n + prior_weight)` over every category
/// (sharper than Optuna's `prior_weight / (n + 1)` per category, which
/// converged on the best category in about half the trials in our test);
/// the prior's own kernel is the param's prior (pchoice weights, or
/// uniform).
fn categorical_kernels(values: &[f64], prior: &[f64], prior_weight: f64) -> Vec<Vec<f64>> {
    let k = prior.len().max(1);
    let spread = prior_weight / (values.len() as f64 + prior_weight);
    let mut out: Vec<Vec<f64>> = values
        .iter()
        .map(|&x| {
            let own = (x as usize).min(k - 1);
            (0..k)
                .map(|i| {
                    let kept = if i == own { 1.0 - spread } else { 0.0 };
                    (kept + spread / k as f64).ln()
                })
                .collect()
        })
        .collect();
    let prior_total: f64 = prior.iter().sum();
    out.push(
        prior
            .iter()
            .map(|p| (p / prior_total).max(1e-300).ln())
            .collect(),
    );
    out
}

/// A Parzen estimator over some axes: one component per observation
/// (a product of one kernel per axis, each axis with its own widths) plus
/// the prior (flat: centre 0.5, width 1), stored axis-major so a density
/// is a tight loop.
struct Mixture {
    /// Components (observations, then the prior).
    n: usize,
    /// Per axis: for continuous axes the components' centres, widths and
    /// curvatures, for categorical ones their ln probabilities.
    axes: Vec<MixtureAxis>,
    /// ln weight − Σ ln normalizer, per component.
    konst: Vec<f64>,
    /// Normalized weights, for sampling.
    weight: Vec<f64>,
}

enum MixtureAxis {
    Continuous {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        /// `−1 / (2σ²)`: a kernel's log density is this times `(x − μ)²`.
        curvature: Vec<f64>,
    },
    Categorical(Vec<Vec<f64>>),
}

impl Mixture {
    /// `columns[a]` holds the observations' unit coordinates on axis `a`
    /// (categorical axes hold an index).
    fn new(
        axes: &[&Axis],
        columns: &[Vec<f64>],
        point_weights: &[f64],
        config: &TpeConfig,
    ) -> Mixture {
        let prior_weight = config.prior_weight;
        let n_obs = point_weights.len();
        let n = n_obs + 1;
        let total: f64 = point_weights.iter().sum::<f64>() + prior_weight;
        let mut weight: Vec<f64> = point_weights.iter().map(|w| w / total).collect();
        weight.push(prior_weight / total);
        let mut konst: Vec<f64> = weight.iter().map(|w| w.max(1e-300).ln()).collect();
        let mixture_axes = axes
            .iter()
            .zip(columns)
            .map(|(axis, values)| match axis {
                Axis::Categorical { prior, .. } => {
                    MixtureAxis::Categorical(categorical_kernels(values, prior, prior_weight))
                }
                Axis::Continuous { .. } => {
                    let mut mu = values.clone();
                    let mut sigma = gap_sigmas(values, config.narrowing);
                    mu.push(0.5);
                    sigma.push(1.0);
                    // Most widths are the clip's floor: one `ln` for them.
                    let floor = min_sigma(n_obs, config.narrowing);
                    let ln_floor = floor.ln();
                    for c in 0..n {
                        let ln_sigma = if sigma[c] == floor {
                            ln_floor
                        } else {
                            sigma[c].ln()
                        };
                        konst[c] -= ln_norm(mu[c], sigma[c], ln_sigma);
                    }
                    let curvature = sigma.iter().map(|s| -0.5 / (s * s)).collect();
                    MixtureAxis::Continuous {
                        mu,
                        sigma,
                        curvature,
                    }
                }
            })
            .collect();
        Mixture {
            n,
            axes: mixture_axes,
            konst,
            weight,
        }
    }

    /// `ln p(x)` for every point of `xs`. Components are visited in
    /// blocks, each block scored against every point while it is in
    /// cache (1000 components × 8 axes are 125 KB, more than L1 holds;
    /// point by point, scoring 96 candidates streamed them 96 times), with
    /// a running log-sum-exp per point.
    fn ln_densities(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        const BLOCK: usize = 64;
        let mut max = vec![f64::NEG_INFINITY; xs.len()];
        let mut sum = vec![0.0; xs.len()];
        let mut terms = [0.0_f64; BLOCK];
        for start in (0..self.n).step_by(BLOCK) {
            let end = (start + BLOCK).min(self.n);
            let terms = &mut terms[..end - start];
            for ((x, max), sum) in xs.iter().zip(&mut max).zip(&mut sum) {
                terms.copy_from_slice(&self.konst[start..end]);
                for (axis, &v) in self.axes.iter().zip(x) {
                    match axis {
                        MixtureAxis::Continuous { mu, curvature, .. } => {
                            let (mu, curvature) = (&mu[start..end], &curvature[start..end]);
                            for ((t, m), c) in terms.iter_mut().zip(mu).zip(curvature) {
                                let d = v - m;
                                *t += c * d * d;
                            }
                        }
                        MixtureAxis::Categorical(ln_p) => {
                            for (t, p) in terms.iter_mut().zip(&ln_p[start..end]) {
                                *t += p[(v as usize).min(p.len() - 1)];
                            }
                        }
                    }
                }
                let block_max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // Terms more than e^36 below the largest change the sum by
                // less than a rounding error; skipping their `exp` is most
                // of the speed.
                if block_max <= *max - 36.0 {
                    continue;
                }
                let new_max = max.max(block_max);
                let floor = new_max - 36.0;
                let kept = if *sum > 0.0 {
                    *sum * (*max - new_max).exp()
                } else {
                    0.0
                };
                *sum = kept
                    + terms
                        .iter()
                        .filter(|t| **t > floor)
                        .map(|t| (t - new_max).exp())
                        .sum::<f64>();
                *max = new_max;
            }
        }
        max.iter().zip(&sum).map(|(m, s)| m + s.ln()).collect()
    }

    fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let mut at = rng.unit();
        let mut chosen = self.n - 1;
        for (i, w) in self.weight.iter().enumerate() {
            if at < *w {
                chosen = i;
                break;
            }
            at -= w;
        }
        self.axes
            .iter()
            .map(|axis| match axis {
                MixtureAxis::Continuous { mu, sigma, .. } => {
                    let (m, s) = (mu[chosen], sigma[chosen]);
                    for _ in 0..64 {
                        let x = m + s * rng.normal();
                        if (0.0..=1.0).contains(&x) {
                            return x;
                        }
                    }
                    m.clamp(0.0, 1.0)
                }
                MixtureAxis::Categorical(ln_p) => {
                    let mut at = rng.unit();
                    let p = &ln_p[chosen];
                    for (i, lp) in p.iter().enumerate() {
                        let q = lp.exp();
                        if at < q {
                            return i as f64;
                        }
                        at -= q;
                    }
                    (p.len() - 1) as f64
                }
            })
            .collect()
    }
}

/// Unit coordinates of a trial (continuous axes scaled to `[0, 1]`).
pub(crate) fn to_unit(axes: &[Axis], x: &[f64]) -> Vec<f64> {
    axes.iter()
        .zip(x)
        .map(|(axis, &x)| match axis {
            Axis::Continuous { low, high, .. } => ((x - low) / (high - low)).clamp(0.0, 1.0),
            Axis::Categorical { .. } => x,
        })
        .collect()
}

pub(crate) fn from_unit(axes: &[Axis], u: &[f64]) -> Vec<f64> {
    axes.iter()
        .zip(u)
        .map(|(axis, &u)| match axis {
            Axis::Continuous { low, high, .. } => low + u * (high - low),
            Axis::Categorical { .. } => u,
        })
        .collect()
}

/// A random point of the space (the prior), as coordinates.
pub fn random_coordinates(axes: &Axes, rng: &mut Rng) -> Vec<f64> {
    axes.axes
        .iter()
        .map(|axis| match axis {
            Axis::Continuous { low, high, .. } => rng.uniform(*low, *high),
            Axis::Categorical { prior, .. } => choice_at(prior, rng.unit()),
        })
        .collect()
}

/// The index of the choice at quantile `u` of the categorical `prior`
/// (weights, not necessarily normalized), as a coordinate.
pub(crate) fn choice_at(prior: &[f64], u: f64) -> f64 {
    let total: f64 = prior.iter().sum();
    let mut at = u * total;
    for (i, p) in prior.iter().enumerate() {
        if at < *p {
            return i as f64;
        }
        at -= p;
    }
    prior.len().saturating_sub(1) as f64
}

/// The next trial's params from `trials` (oldest first). `rng` should be
/// the trial's own stream (`Rng::stream(seed, index)`) so the suggestion
/// is reproducible.
pub fn suggest(axes: &Axes, trials: &[Trial], config: &TpeConfig, rng: &mut Rng) -> Suggestion {
    let observed: Vec<(Vec<f64>, Option<f64>)> = trials
        .iter()
        .filter_map(|t| {
            Some((
                axes.coordinates(&t.params)?,
                t.loss.filter(|l| l.is_finite()),
            ))
        })
        .collect();
    let completed = observed.iter().filter(|(_, l)| l.is_some()).count();
    if completed < config.startup.max(1) {
        return axes.suggestion(&random_coordinates(axes, rng));
    }
    // Good: the γ(n) smallest losses; bad: the rest and the failed.
    let mut ranked: Vec<usize> = (0..observed.len())
        .filter(|&i| observed[i].1.is_some())
        .collect();
    ranked.sort_unstable_by(|&a, &b| {
        let (x, y) = (
            observed[a].1.unwrap_or_default(),
            observed[b].1.unwrap_or_default(),
        );
        x.total_cmp(&y).then(a.cmp(&b))
    });
    let n_good = gamma(completed);
    let mut is_good = vec![false; observed.len()];
    for &i in &ranked[..n_good] {
        is_good[i] = true;
    }
    let (good, bad): (Vec<usize>, Vec<usize>) = (0..observed.len()).partition(|&i| is_good[i]);
    let units: Vec<Vec<f64>> = observed
        .iter()
        .map(|(x, _)| to_unit(&axes.axes, x))
        .collect();
    // Multivariate: one estimator over all axes. Independent: one per axis,
    // each axis's value chosen on its own.
    let groups: Vec<Vec<usize>> = if config.multivariate {
        vec![(0..axes.axes.len()).collect()]
    } else {
        (0..axes.axes.len()).map(|a| vec![a]).collect()
    };
    let mut u = vec![0.5; axes.axes.len()];
    for group in groups {
        let group_axes: Vec<&Axis> = group.iter().map(|&a| &axes.axes[a]).collect();
        let columns = |ids: &[usize]| -> Vec<Vec<f64>> {
            group
                .iter()
                .map(|&a| ids.iter().map(|&i| units[i][a]).collect())
                .collect()
        };
        let l = Mixture::new(&group_axes, &columns(&good), &weights(good.len()), config);
        let g = Mixture::new(&group_axes, &columns(&bad), &weights(bad.len()), config);
        // Drawn first, then scored together (the draws alone use `rng`).
        let candidates: Vec<Vec<f64>> = (0..config.candidates.max(1))
            .map(|_| l.sample(rng))
            .collect();
        let (good_density, bad_density) =
            (l.ln_densities(&candidates), g.ln_densities(&candidates));
        let mut best: Option<(f64, Vec<f64>)> = None;
        for ((x, lg), lb) in candidates.into_iter().zip(good_density).zip(bad_density) {
            let score = lg - lb;
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, x));
            }
        }
        if let Some((_, x)) = best {
            for (&a, v) in group.iter().zip(x) {
                u[a] = v;
            }
        }
    }
    axes.suggestion(&from_unit(&axes.axes, &u))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::space::{Dimension, Space};

    fn space2() -> Axes {
        Axes::of(&Space {
            params: vec![
                (
                    "x".into(),
                    Dimension::Uniform {
                        low: -5.0,
                        high: 10.0,
                        q: None,
                        log: false,
                    },
                ),
                (
                    "y".into(),
                    Dimension::Uniform {
                        low: 0.0,
                        high: 15.0,
                        q: None,
                        log: false,
                    },
                ),
            ],
        })
    }

    fn run(axes: &Axes, f: impl Fn(&Suggestion) -> f64, n: usize, seed: u64) -> f64 {
        let mut trials = Vec::new();
        for i in 0..n {
            let mut rng = Rng::stream(seed, i as u64);
            let params = suggest(axes, &trials, &TpeConfig::default(), &mut rng);
            let loss = f(&params);
            trials.push(Trial {
                params,
                loss: Some(loss),
            });
        }
        trials
            .iter()
            .filter_map(|t| t.loss)
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn beats_random_search_on_a_bowl() {
        let axes = space2();
        let bowl = |p: &Suggestion| {
            let (x, y) = (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap());
            (x - 2.0).powi(2) + (y - 7.0).powi(2)
        };
        let mut tpe_wins = 0;
        for seed in 0..10 {
            let tpe = run(&axes, bowl, 60, seed);
            let mut rng = Rng::new(seed + 1000);
            let random = (0..60)
                .map(|_| bowl(&axes.suggestion(&random_coordinates(&axes, &mut rng))))
                .fold(f64::INFINITY, f64::min);
            tpe_wins += usize::from(tpe < random);
        }
        assert!(
            tpe_wins >= 8,
            "TPE beat random search in {tpe_wins} of 10 seeds"
        );
    }

    #[test]
    fn reproducible_from_the_seed_and_categoricals_converge() {
        let axes = Axes::of(&Space {
            params: vec![
                (
                    "c".into(),
                    Dimension::Values(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
                ),
                (
                    "x".into(),
                    Dimension::Uniform {
                        low: 0.0,
                        high: 1.0,
                        q: None,
                        log: false,
                    },
                ),
            ],
        });
        let f = |p: &Suggestion| {
            let penalty = if p["c"] == "c" { 0.0 } else { 1.0 };
            penalty + (p["x"].as_f64().unwrap() - 0.3).abs()
        };
        assert_eq!(run(&axes, f, 30, 5), run(&axes, f, 30, 5));
        // Over 10 seeds, as one seed's share swings by ±5 of 20. A random
        // search picks the best of 4 categories 5 times in 20.
        let mut late_c = 0;
        for seed in 0..10 {
            let mut trials = Vec::new();
            for i in 0..60 {
                let params = suggest(
                    &axes,
                    &trials,
                    &TpeConfig::default(),
                    &mut Rng::stream(seed, i),
                );
                let loss = f(&params);
                trials.push(Trial {
                    params,
                    loss: Some(loss),
                });
            }
            late_c += trials[40..].iter().filter(|t| t.params["c"] == "c").count();
        }
        assert!(
            late_c >= 100,
            "{late_c} of the last 20 trials of 10 seeds picked the best category"
        );
    }

    #[test]
    fn the_good_set_and_weights_follow_optuna() {
        assert_eq!(gamma(10), 1);
        assert_eq!(gamma(11), 2);
        assert_eq!(gamma(1000), 25);
        assert_eq!(weights(3), vec![1.0; 3]);
        let w = weights(100);
        assert_eq!(w.len(), 100);
        assert!((w[0] - 0.01).abs() < 1e-12 && (w[74] - 1.0).abs() < 1e-12 && w[99] == 1.0);
    }
}
