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

/// How the TPE is tuned; the defaults are Optuna's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeConfig {
    /// Random suggestions before the model is used.
    pub startup: usize,
    /// Candidates drawn from the good mixture per suggestion.
    pub candidates: usize,
    /// Weight of the flat prior component of each mixture.
    pub prior_weight: f64,
    /// One joint density over all params (Scott's-rule bandwidth), rather
    /// than one density per param with bandwidths from the neighbouring
    /// points (Optuna's default, and ours).
    pub multivariate: bool,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            startup: 10,
            candidates: 24,
            prior_weight: 1.0,
            multivariate: false,
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

/// One mixture component on one axis.
#[derive(Debug, Clone)]
enum Kernel {
    /// Truncated normal on `[0, 1]`: `ln_norm` is `ln σ + ½ ln 2π` plus
    /// the log of its mass inside the box, computed once (the density is
    /// evaluated for every candidate × component × axis).
    Normal {
        mu: f64,
        sigma: f64,
        inv_sigma: f64,
        ln_norm: f64,
    },
    /// Log probabilities of each category.
    Categorical(Vec<f64>),
}

impl Kernel {
    fn normal(mu: f64, sigma: f64) -> Kernel {
        let mass = special::cdf((1.0 - mu) / sigma) - special::cdf(-mu / sigma);
        Kernel::Normal {
            mu,
            sigma,
            inv_sigma: 1.0 / sigma,
            ln_norm: sigma.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln() + mass.max(1e-300).ln(),
        }
    }

    fn ln_density(&self, x: f64) -> f64 {
        match self {
            Kernel::Normal {
                mu,
                inv_sigma,
                ln_norm,
                ..
            } => {
                let z = (x - mu) * inv_sigma;
                -0.5 * z * z - ln_norm
            }
            Kernel::Categorical(ln_p) => ln_p[(x as usize).min(ln_p.len() - 1)],
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Kernel::Normal { mu, sigma, .. } => {
                for _ in 0..64 {
                    let x = mu + sigma * rng.normal();
                    if (0.0..=1.0).contains(&x) {
                        return x;
                    }
                }
                mu.clamp(0.0, 1.0)
            }
            Kernel::Categorical(ln_p) => {
                let mut at = rng.unit();
                for (i, lp) in ln_p.iter().enumerate() {
                    let p = lp.exp();
                    if at < p {
                        return i as f64;
                    }
                    at -= p;
                }
                (ln_p.len() - 1) as f64
            }
        }
    }
}

/// A mixture over all axes: components (one kernel per axis) and their
/// log weights.
struct Mixture {
    components: Vec<Vec<Kernel>>,
    ln_weights: Vec<f64>,
}

/// `points` in unit coordinates (categorical axes hold an index).
fn mixture(
    axes: &[Axis],
    points: &[Vec<f64>],
    point_weights: &[f64],
    prior_weight: f64,
) -> Mixture {
    let n = points.len();
    let d = axes.len().max(1) as f64;
    // Scott's rule, as Optuna's multivariate TPE, clipped below so a
    // kernel never collapses onto its point.
    let sigma = (0.2 * (n.max(1) as f64).powf(-1.0 / (d + 4.0)))
        .clamp(1.0 / (100.0_f64).min(1.0 + n as f64), 1.0);
    let mut components = Vec::with_capacity(n + 1);
    for point in points {
        components.push(
            axes.iter()
                .zip(point)
                .map(|(axis, &x)| match axis {
                    Axis::Continuous { .. } => Kernel::normal(x, sigma),
                    Axis::Categorical { values, .. } => {
                        let k = values.len() as f64;
                        let spread = prior_weight / (n as f64 + prior_weight);
                        let ln_p = (0..values.len())
                            .map(|i| {
                                let own = if i == x as usize { 1.0 - spread } else { 0.0 };
                                (own + spread / k).ln()
                            })
                            .collect();
                        Kernel::Categorical(ln_p)
                    }
                })
                .collect(),
        );
    }
    // The prior: flat over the space (pchoice's own probabilities).
    components.push(
        axes.iter()
            .map(|axis| match axis {
                Axis::Continuous { .. } => Kernel::normal(0.5, 1.0),
                Axis::Categorical { prior, .. } => {
                    let total: f64 = prior.iter().sum();
                    Kernel::Categorical(prior.iter().map(|p| (p / total).max(1e-12).ln()).collect())
                }
            })
            .collect(),
    );
    let mut weights: Vec<f64> = point_weights.to_vec();
    weights.push(prior_weight);
    let total: f64 = weights.iter().sum();
    Mixture {
        components,
        ln_weights: weights.iter().map(|w| (w / total).ln()).collect(),
    }
}

impl Mixture {
    fn ln_density(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = self
            .components
            .iter()
            .zip(&self.ln_weights)
            .map(|(kernels, lw)| {
                lw + kernels
                    .iter()
                    .zip(x)
                    .map(|(k, &v)| k.ln_density(v))
                    .sum::<f64>()
            })
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }

    fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let mut at = rng.unit();
        let mut chosen = self.components.len() - 1;
        for (i, lw) in self.ln_weights.iter().enumerate() {
            let w = lw.exp();
            if at < w {
                chosen = i;
                break;
            }
            at -= w;
        }
        self.components[chosen]
            .iter()
            .map(|k| k.sample(rng))
            .collect()
    }
}

/// The density of one param's values (unit coordinates), as Optuna's
/// univariate Parzen estimator: a truncated normal on `[0, 1]` per value,
/// whose width is the larger gap to its neighbours among the values and
/// the prior's centre, clipped to `[1 / min(100, n + 2), 1]`, plus the
/// flat prior (centre 0.5, width 1); or, for a categorical param, the
/// weighted category frequencies smoothed towards the prior.
enum Density {
    Normal {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        inv_sigma: Vec<f64>,
        /// ln weight − ln normalizer (mass inside `[0, 1]` included).
        offset: Vec<f64>,
        /// Normalized weights, for sampling.
        weight: Vec<f64>,
    },
    Categorical(Vec<f64>),
}

impl Density {
    fn of(axis: &Axis, values: &[f64], point_weights: &[f64], prior_weight: f64) -> Density {
        let n = values.len();
        let total: f64 = point_weights.iter().sum::<f64>() + prior_weight;
        match axis {
            Axis::Categorical { prior, .. } => {
                let k = prior.len().max(1);
                let prior_total: f64 = prior.iter().sum();
                let spread = prior_weight / (n as f64 + prior_weight);
                let mut p = vec![0.0; k];
                for (&x, w) in values.iter().zip(point_weights) {
                    let own = (x as usize).min(k - 1);
                    for (i, p) in p.iter_mut().enumerate() {
                        let kernel = if i == own { 1.0 - spread } else { 0.0 } + spread / k as f64;
                        *p += w * kernel;
                    }
                }
                for (p, q) in p.iter_mut().zip(prior) {
                    *p += prior_weight * q / prior_total;
                }
                Density::Categorical(p.iter().map(|p| (p / total).max(1e-300).ln()).collect())
            }
            Axis::Continuous { .. } => {
                // Neighbour gaps among the values and the prior's centre,
                // with the box's ends as outer neighbours.
                let mut order: Vec<usize> = (0..=n).collect();
                let at = |i: usize| if i < n { values[i] } else { 0.5 };
                order.sort_by(|&a, &b| at(a).total_cmp(&at(b)).then(a.cmp(&b)));
                let sorted: Vec<f64> = order.iter().map(|&i| at(i)).collect();
                let mut gaps = vec![0.0; n + 1];
                for (rank, &i) in order.iter().enumerate() {
                    let left = if rank == 0 { 0.0 } else { sorted[rank - 1] };
                    let right = if rank == n { 1.0 } else { sorted[rank + 1] };
                    let mut gap = (sorted[rank] - left).max(right - sorted[rank]);
                    // Optuna leaves the box's ends out for the outermost.
                    if n + 1 >= 2 && rank == 0 {
                        gap = sorted[1] - sorted[0];
                    } else if n + 1 >= 2 && rank == n {
                        gap = sorted[n] - sorted[n - 1];
                    }
                    gaps[i] = gap;
                }
                let min_sigma = 1.0 / (100.0_f64).min(1.0 + (n + 1) as f64);
                let mut mu = Vec::with_capacity(n + 1);
                let mut sigma = Vec::with_capacity(n + 1);
                let mut weight = Vec::with_capacity(n + 1);
                for i in 0..n {
                    mu.push(values[i]);
                    sigma.push(gaps[i].clamp(min_sigma, 1.0));
                    weight.push(point_weights[i] / total);
                }
                mu.push(0.5);
                sigma.push(1.0);
                weight.push(prior_weight / total);
                let half_ln_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
                let offset = mu
                    .iter()
                    .zip(&sigma)
                    .zip(&weight)
                    .map(|((&m, &s), &w)| {
                        // A kernel 9σ inside both ends has all its mass in
                        // the box (to 1e-19): no `cdf` needed.
                        let ln_mass = if m > 9.0 * s && 1.0 - m > 9.0 * s {
                            0.0
                        } else {
                            let mass = special::cdf((1.0 - m) / s) - special::cdf(-m / s);
                            mass.max(1e-300).ln()
                        };
                        w.max(1e-300).ln() - s.ln() - half_ln_2pi - ln_mass
                    })
                    .collect();
                let inv_sigma = sigma.iter().map(|s| 1.0 / s).collect();
                Density::Normal {
                    mu,
                    sigma,
                    inv_sigma,
                    offset,
                    weight,
                }
            }
        }
    }

    /// `ln p(x)`; `scratch` is reused between calls.
    fn ln_density(&self, x: f64, scratch: &mut Vec<f64>) -> f64 {
        match self {
            Density::Categorical(ln_p) => ln_p[(x as usize).min(ln_p.len() - 1)],
            Density::Normal {
                mu,
                inv_sigma,
                offset,
                ..
            } => {
                scratch.clear();
                scratch.extend(mu.iter().zip(inv_sigma).zip(offset).map(|((m, is), o)| {
                    let z = (x - m) * is;
                    o - 0.5 * z * z
                }));
                let max = scratch.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // Terms more than e^36 below the largest change the sum by
                // less than a rounding error; most kernels are narrow, so
                // skipping their `exp` is most of the speed.
                let floor = max - 36.0;
                let sum: f64 = scratch
                    .iter()
                    .filter(|t| **t > floor)
                    .map(|t| (t - max).exp())
                    .sum();
                max + sum.ln()
            }
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Density::Categorical(ln_p) => Kernel::Categorical(ln_p.clone()).sample(rng),
            Density::Normal {
                mu, sigma, weight, ..
            } => {
                let mut at = rng.unit();
                let mut chosen = mu.len() - 1;
                for (i, w) in weight.iter().enumerate() {
                    if at < *w {
                        chosen = i;
                        break;
                    }
                    at -= w;
                }
                for _ in 0..64 {
                    let x = mu[chosen] + sigma[chosen] * rng.normal();
                    if (0.0..=1.0).contains(&x) {
                        return x;
                    }
                }
                mu[chosen].clamp(0.0, 1.0)
            }
        }
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
            Axis::Categorical { prior, .. } => {
                let total: f64 = prior.iter().sum();
                let mut at = rng.unit() * total;
                for (i, p) in prior.iter().enumerate() {
                    if at < *p {
                        return i as f64;
                    }
                    at -= p;
                }
                (prior.len() - 1) as f64
            }
        })
        .collect()
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
    ranked.sort_by(|&a, &b| {
        let (x, y) = (
            observed[a].1.unwrap_or_default(),
            observed[b].1.unwrap_or_default(),
        );
        x.total_cmp(&y).then(a.cmp(&b))
    });
    let n_good = gamma(completed);
    let mut good: Vec<usize> = ranked[..n_good].to_vec();
    let mut bad: Vec<usize> = (0..observed.len()).filter(|i| !good.contains(i)).collect();
    good.sort_unstable();
    bad.sort_unstable();
    let units: Vec<Vec<f64>> = observed
        .iter()
        .map(|(x, _)| to_unit(&axes.axes, x))
        .collect();
    if !config.multivariate {
        // Each param on its own: a density of the good and of the bad
        // values of that param, candidates drawn from the good one.
        let u: Vec<f64> = axes
            .axes
            .iter()
            .enumerate()
            .map(|(a, axis)| {
                let column = |ids: &[usize]| ids.iter().map(|&i| units[i][a]).collect::<Vec<f64>>();
                let l = Density::of(
                    axis,
                    &column(&good),
                    &weights(good.len()),
                    config.prior_weight,
                );
                let g = Density::of(
                    axis,
                    &column(&bad),
                    &weights(bad.len()),
                    config.prior_weight,
                );
                let mut scratch = Vec::new();
                let mut best = (f64::NEG_INFINITY, 0.5);
                for _ in 0..config.candidates.max(1) {
                    let x = l.sample(rng);
                    let score = l.ln_density(x, &mut scratch) - g.ln_density(x, &mut scratch);
                    if score > best.0 {
                        best = (score, x);
                    }
                }
                best.1
            })
            .collect();
        return axes.suggestion(&from_unit(&axes.axes, &u));
    }
    let pick = |ids: &[usize]| ids.iter().map(|&i| units[i].clone()).collect::<Vec<_>>();
    let l = mixture(
        &axes.axes,
        &pick(&good),
        &weights(good.len()),
        config.prior_weight,
    );
    let g = mixture(
        &axes.axes,
        &pick(&bad),
        &weights(bad.len()),
        config.prior_weight,
    );
    let mut best: Option<(f64, Vec<f64>)> = None;
    for _ in 0..config.candidates.max(1) {
        let u = l.sample(rng);
        let score = l.ln_density(&u) - g.ln_density(&u);
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, u));
        }
    }
    let u = best.map(|(_, u)| u).unwrap_or_default();
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
        let mut trials = Vec::new();
        for i in 0..60 {
            let params = suggest(
                &axes,
                &trials,
                &TpeConfig::default(),
                &mut Rng::stream(9, i),
            );
            let loss = f(&params);
            trials.push(Trial {
                params,
                loss: Some(loss),
            });
        }
        let late_c = trials[40..].iter().filter(|t| t.params["c"] == "c").count();
        assert!(
            late_c >= 14,
            "{late_c} of the last 20 picked the best category"
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
