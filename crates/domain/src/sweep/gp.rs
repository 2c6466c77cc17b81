//! Gaussian-process regression and its acquisition, the `bayes` matrix's
//! model: a Matérn (ν = ½, 3/2, 5/2) or RBF kernel with one length scale
//! per param (ARD), its length scales, signal and noise fitted by
//! maximizing the marginal likelihood (with weak priors, from several
//! starts), and UCB, EI or POI maximized over the space.
//!
//! Inputs are unit coordinates (`[0, 1]` per continuous param; a
//! categorical param holds its index and contributes `1` to the distance
//! when two values differ). Outputs are standardized before fitting.

use super::lbfgs;
use super::rng::Rng;
use super::special;

/// The covariance function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    Rbf,
    /// Matérn with ν = 0.5, 1.5 or 2.5 (other values use the nearest).
    Matern(f64),
}

/// Acquisition functions, for a loss to minimize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Acquisition {
    /// Lower confidence bound `μ - κσ` (Polyaxon's `ucb`, for a loss).
    Ucb { kappa: f64 },
    /// Expected improvement over the best loss by at least `xi`.
    Ei { xi: f64 },
    /// Probability of improvement over the best loss by at least `xi`.
    Poi { xi: f64 },
}

/// Fitted kernel hyperparameters (logs).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    pub ln_lengths: Vec<f64>,
    pub ln_signal: f64,
    pub ln_noise: f64,
}

const LN_LENGTH: (f64, f64) = (-6.0, 3.0);
const LN_SIGNAL: (f64, f64) = (-3.0, 3.0);
/// Noise standard deviation between 1e-6 and 1 (standardized outputs):
/// deterministic objectives are interpolated almost exactly.
const LN_NOISE: (f64, f64) = (-13.8, 0.0);

/// A fitted GP.
#[derive(Debug, Clone)]
pub struct Gp {
    kernel: Kernel,
    categorical: Vec<bool>,
    pub hyper: Hyper,
    x: Vec<Vec<f64>>,
    /// Lower Cholesky factor of the covariance, row-major n×n.
    chol: Vec<f64>,
    alpha: Vec<f64>,
    y_mean: f64,
    y_scale: f64,
    /// The smallest observed output, standardized.
    pub best: f64,
}

/// Squared scaled distance and, per dimension, `δ²` (for gradients).
fn distance(a: &[f64], b: &[f64], categorical: &[bool], inv_l2: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .zip(categorical)
        .zip(inv_l2)
        .map(|(((x, y), cat), w)| {
            let d = if *cat {
                f64::from(u8::from(x != y))
            } else {
                x - y
            };
            d * d * w
        })
        .sum()
}

/// `k(r²)/s²` and `d(k/s²)/d(r²)`.
fn shape(kernel: Kernel, r2: f64) -> (f64, f64) {
    match kernel {
        Kernel::Rbf => {
            let k = (-0.5 * r2).exp();
            (k, -0.5 * k)
        }
        Kernel::Matern(nu) if nu < 1.0 => {
            let r = r2.sqrt();
            let k = (-r).exp();
            (k, if r > 1e-12 { -k / (2.0 * r) } else { 0.0 })
        }
        Kernel::Matern(nu) if nu < 2.0 => {
            let r = r2.sqrt();
            let e = (-(3f64.sqrt()) * r).exp();
            ((1.0 + 3f64.sqrt() * r) * e, -1.5 * e)
        }
        Kernel::Matern(_) => {
            let r = r2.sqrt();
            let s5 = 5f64.sqrt();
            let e = (-s5 * r).exp();
            (
                (1.0 + s5 * r + 5.0 * r2 / 3.0) * e,
                -(5.0 / 6.0) * (1.0 + s5 * r) * e,
            )
        }
    }
}

/// In-place Cholesky of a row-major n×n matrix; `false` if not positive
/// definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
        for k in j + 1..n {
            a[j * n + k] = 0.0;
        }
    }
    true
}

/// Solves `L z = b` (forward).
fn forward(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    z
}

/// Solves `Lᵀ z = b` (backward).
fn backward(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * z[k];
        }
        z[i] = s / l[i * n + i];
    }
    z
}

/// `K⁻¹` from its factor `L`, column by column: `L z = e_j`, then
/// `Lᵀ col = z`. The hyperparameter fit computes it on every step, so
/// this is the fit's inner loop; it does exactly the arithmetic of
/// [`forward`] and [`backward`] on a unit vector, minus the products
/// with the leading zeros of `z`, and reads `Lᵀ` from a transposed copy
/// so both solves walk rows.
fn inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut upper = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..=i {
            upper[k * n + i] = l[i * n + k];
        }
    }
    let mut inv = vec![0.0; n * n];
    let mut z = vec![0.0; n];
    for j in 0..n {
        z[..j].fill(0.0);
        for i in j..n {
            let mut s = if i == j { 1.0 } else { 0.0 };
            for k in j..i {
                s -= l[i * n + k] * z[k];
            }
            z[i] = s / l[i * n + i];
        }
        for i in (0..n).rev() {
            let mut s = z[i];
            for k in i + 1..n {
                s -= upper[i * n + k] * z[k];
            }
            z[i] = s / upper[i * n + i];
            inv[i * n + j] = z[i];
        }
    }
    inv
}

/// The covariance matrix (noise on the diagonal) and the factor, with
/// growing jitter if rounding makes it indefinite.
fn factor(
    kernel: Kernel,
    categorical: &[bool],
    hyper: &Hyper,
    x: &[Vec<f64>],
) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = x.len();
    let inv_l2: Vec<f64> = hyper.ln_lengths.iter().map(|l| (-2.0 * l).exp()).collect();
    let s2 = (2.0 * hyper.ln_signal).exp();
    let noise2 = (2.0 * hyper.ln_noise).exp();
    let mut k = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v = s2 * shape(kernel, distance(&x[i], &x[j], categorical, &inv_l2)).0;
            k[i * n + j] = v;
            k[j * n + i] = v;
        }
    }
    let mut jitter = 0.0;
    for _ in 0..8 {
        let mut l = k.clone();
        for i in 0..n {
            l[i * n + i] += noise2 + jitter;
        }
        if cholesky(&mut l, n) {
            return Some((k, l));
        }
        jitter = if jitter == 0.0 {
            1e-10 * s2
        } else {
            jitter * 100.0
        };
    }
    None
}

/// Log prior of the hyperparameters (weak; keeps the fit away from
/// degenerate length scales on a handful of points).
fn ln_prior(h: &Hyper) -> (f64, Vec<f64>, f64, f64) {
    let (mu_l, sd_l) = (-0.7, 1.5);
    let (mu_n, sd_n) = (-6.0, 3.0);
    let sd_s = 1.5;
    let mut value = 0.0;
    let mut grad_l = Vec::with_capacity(h.ln_lengths.len());
    for l in &h.ln_lengths {
        value -= 0.5 * ((l - mu_l) / sd_l).powi(2);
        grad_l.push(-(l - mu_l) / (sd_l * sd_l));
    }
    value -= 0.5 * (h.ln_signal / sd_s).powi(2);
    value -= 0.5 * ((h.ln_noise - mu_n) / sd_n).powi(2);
    (
        value,
        grad_l,
        -h.ln_signal / (sd_s * sd_s),
        -(h.ln_noise - mu_n) / (sd_n * sd_n),
    )
}

/// Negative log posterior of the hyperparameters and its gradient.
fn objective(
    kernel: Kernel,
    categorical: &[bool],
    x: &[Vec<f64>],
    y: &[f64],
    h: &Hyper,
) -> (f64, Vec<f64>) {
    let n = x.len();
    let d = h.ln_lengths.len();
    let Some((k, l)) = factor(kernel, categorical, h, x) else {
        return (f64::INFINITY, vec![0.0; d + 2]);
    };
    let alpha = backward(&l, n, &forward(&l, n, y));
    let ln_det: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
    let fit: f64 = y.iter().zip(&alpha).map(|(a, b)| a * b).sum();
    let lml = -0.5 * fit - ln_det - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    // W = ααᵀ - K⁻¹; ∂LML/∂θ = ½ tr(W ∂K/∂θ).
    let inv = inverse(&l, n);
    let inv_l2: Vec<f64> = h.ln_lengths.iter().map(|v| (-2.0 * v).exp()).collect();
    let s2 = (2.0 * h.ln_signal).exp();
    let noise2 = (2.0 * h.ln_noise).exp();
    let mut grad = vec![0.0; d + 2];
    for i in 0..n {
        for j in 0..n {
            let w = alpha[i] * alpha[j] - inv[i * n + j];
            if w == 0.0 {
                continue;
            }
            let kij = k[i * n + j];
            // Signal: ∂K/∂ln s = 2K (without noise).
            grad[d] += 0.5 * w * 2.0 * kij;
            if i == j {
                grad[d + 1] += 0.5 * w * 2.0 * noise2;
                continue;
            }
            let r2 = distance(&x[i], &x[j], categorical, &inv_l2);
            let dk_dr2 = s2 * shape(kernel, r2).1;
            for m in 0..d {
                let delta = if categorical[m] {
                    f64::from(u8::from(x[i][m] != x[j][m]))
                } else {
                    x[i][m] - x[j][m]
                };
                let dr2 = -2.0 * delta * delta * inv_l2[m];
                grad[m] += 0.5 * w * dk_dr2 * dr2;
            }
        }
    }
    let (prior, grad_l, grad_s, grad_n) = ln_prior(h);
    for m in 0..d {
        grad[m] += grad_l[m];
    }
    grad[d] += grad_s;
    grad[d + 1] += grad_n;
    (-(lml + prior), grad.iter().map(|g| -g).collect())
}

impl Gp {
    /// Fits a GP to inputs `x` (unit coordinates) and losses `y`, from
    /// `restarts` + 1 starting points (the first at `length_scale`).
    pub fn fit(
        kernel: Kernel,
        categorical: &[bool],
        x: &[Vec<f64>],
        y: &[f64],
        length_scale: f64,
        restarts: usize,
        rng: &mut Rng,
    ) -> Option<Gp> {
        let n = y.len();
        if n == 0 {
            return None;
        }
        let d = categorical.len();
        let y_mean = y.iter().sum::<f64>() / n as f64;
        let var = y.iter().map(|v| (v - y_mean).powi(2)).sum::<f64>() / n as f64;
        let y_scale = if var > 0.0 { var.sqrt() } else { 1.0 };
        let ys: Vec<f64> = y.iter().map(|v| (v - y_mean) / y_scale).collect();
        let pack = |h: &Hyper| {
            let mut v = h.ln_lengths.clone();
            v.push(h.ln_signal);
            v.push(h.ln_noise);
            v
        };
        let unpack = |v: &[f64]| Hyper {
            ln_lengths: v[..d].to_vec(),
            ln_signal: v[d],
            ln_noise: v[d + 1],
        };
        let mut lower = vec![LN_LENGTH.0; d];
        lower.extend([LN_SIGNAL.0, LN_NOISE.0]);
        let mut upper = vec![LN_LENGTH.1; d];
        upper.extend([LN_SIGNAL.1, LN_NOISE.1]);
        let mut best: Option<(f64, Hyper)> = None;
        for attempt in 0..=restarts {
            let start = if attempt == 0 {
                Hyper {
                    ln_lengths: vec![length_scale.max(1e-3).ln(); d],
                    ln_signal: 0.0,
                    ln_noise: -4.6,
                }
            } else {
                Hyper {
                    ln_lengths: (0..d).map(|_| rng.uniform(-3.0, 1.0)).collect(),
                    ln_signal: rng.uniform(-1.0, 1.0),
                    ln_noise: rng.uniform(-10.0, -2.0),
                }
            };
            let (v, fv) = lbfgs::minimize(
                |v| objective(kernel, categorical, x, &ys, &unpack(v)),
                &pack(&start),
                &lower,
                &upper,
                60,
            );
            if fv.is_finite() && best.as_ref().is_none_or(|(b, _)| fv < *b) {
                best = Some((fv, unpack(&v)));
            }
        }
        let (_, hyper) = best?;
        let (_, chol) = factor(kernel, categorical, &hyper, x)?;
        let alpha = backward(&chol, n, &forward(&chol, n, &ys));
        let best = ys.iter().copied().fold(f64::INFINITY, f64::min);
        Some(Gp {
            kernel,
            categorical: categorical.to_vec(),
            hyper,
            x: x.to_vec(),
            chol,
            alpha,
            y_mean,
            y_scale,
            best,
        })
    }

    /// The same GP (same hyperparameters) with more points: pending
    /// trials with a lie as their output (the constant liar).
    pub fn with_points(&self, x: &[Vec<f64>], y_standardized: &[f64]) -> Option<Gp> {
        let mut all_x = self.x.clone();
        all_x.extend_from_slice(x);
        let n = all_x.len();
        // Recover the standardized outputs: K α = y.
        let (k, chol) = factor(self.kernel, &self.categorical, &self.hyper, &all_x)?;
        let old = self.x.len();
        let noise2 = (2.0 * self.hyper.ln_noise).exp();
        let mut y: Vec<f64> = (0..old)
            .map(|i| {
                (0..old).map(|j| k[i * n + j] * self.alpha[j]).sum::<f64>() + noise2 * self.alpha[i]
            })
            .collect();
        y.extend_from_slice(y_standardized);
        let alpha = backward(&chol, n, &forward(&chol, n, &y));
        Some(Gp {
            x: all_x,
            chol,
            alpha,
            ..self.clone()
        })
    }

    /// `1/ℓ²` per param and the signal variance `s²`.
    fn kernel_scales(&self) -> (Vec<f64>, f64) {
        let inv_l2 = self
            .hyper
            .ln_lengths
            .iter()
            .map(|l| (-2.0 * l).exp())
            .collect();
        (inv_l2, (2.0 * self.hyper.ln_signal).exp())
    }

    /// Posterior mean and standard deviation at `x`, standardized.
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let n = self.x.len();
        let (inv_l2, s2) = self.kernel_scales();
        let ks: Vec<f64> = self
            .x
            .iter()
            .map(|xi| s2 * shape(self.kernel, distance(xi, x, &self.categorical, &inv_l2)).0)
            .collect();
        let mean: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = forward(&self.chol, n, &ks);
        let var = (s2 - v.iter().map(|a| a * a).sum::<f64>()).max(1e-18);
        (mean, var.sqrt())
    }

    /// Standardizes a loss.
    pub fn standardize(&self, y: f64) -> f64 {
        (y - self.y_mean) / self.y_scale
    }

    /// The acquisition at `x` (larger is better), in a form that keeps
    /// ranking far from the incumbent: log EI, log POI, negative LCB.
    pub fn acquisition(&self, acquisition: Acquisition, x: &[f64]) -> f64 {
        let (mu, sigma) = self.predict(x);
        match acquisition {
            Acquisition::Ucb { kappa } => -(mu - kappa * sigma),
            Acquisition::Ei { xi } => {
                let z = (self.best - xi - mu) / sigma;
                sigma.ln() + special::ln_ei(z)
            }
            Acquisition::Poi { xi } => special::ln_cdf((self.best - xi - mu) / sigma),
        }
    }

    /// The length scales, per param (unit coordinates).
    pub fn length_scales(&self) -> Vec<f64> {
        self.hyper.ln_lengths.iter().map(|l| l.exp()).collect()
    }

    /// [`Gp::acquisition`] and its gradient in `x` along the continuous
    /// axes (zero on categorical ones), in closed form: the acquisition
    /// search climbs it, and finite differences break down next to an
    /// observed point, where the posterior deviation vanishes.
    pub fn acquisition_gradient(&self, acquisition: Acquisition, x: &[f64]) -> (f64, Vec<f64>) {
        let n = self.x.len();
        let d = x.len();
        let (inv_l2, s2) = self.kernel_scales();
        let mut ks = Vec::with_capacity(n);
        let mut dk_dr2 = Vec::with_capacity(n);
        for xi in &self.x {
            let (k, dk) = shape(self.kernel, distance(xi, x, &self.categorical, &inv_l2));
            ks.push(s2 * k);
            dk_dr2.push(s2 * dk);
        }
        let mean: f64 = ks.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = forward(&self.chol, n, &ks);
        let raw_var = s2 - v.iter().map(|a| a * a).sum::<f64>();
        let var = raw_var.max(1e-18);
        let sigma = var.sqrt();
        // K⁻¹k, for the derivative of the variance: ∂var = -2 (K⁻¹k)ᵀ ∂k.
        let w = backward(&self.chol, n, &v);
        let mut d_mean = vec![0.0; d];
        let mut d_sigma = vec![0.0; d];
        for m in 0..d {
            if self.categorical[m] {
                continue;
            }
            let (mut dm, mut dv) = (0.0, 0.0);
            for i in 0..n {
                let dk = dk_dr2[i] * 2.0 * (x[m] - self.x[i][m]) * inv_l2[m];
                dm += self.alpha[i] * dk;
                dv -= 2.0 * w[i] * dk;
            }
            d_mean[m] = dm;
            d_sigma[m] = if raw_var > 1e-18 {
                dv / (2.0 * sigma)
            } else {
                0.0
            };
        }
        match acquisition {
            Acquisition::Ucb { kappa } => (
                -(mean - kappa * sigma),
                (0..d).map(|m| -d_mean[m] + kappa * d_sigma[m]).collect(),
            ),
            Acquisition::Ei { xi } => {
                let z = (self.best - xi - mean) / sigma;
                let ln_ei = special::ln_ei(z);
                // d ln ei(z)/dz = Φ(z) / ei(z).
                let slope = (special::ln_cdf(z) - ln_ei).exp();
                let grad = (0..d)
                    .map(|m| {
                        let dz = (-d_mean[m] - z * d_sigma[m]) / sigma;
                        d_sigma[m] / sigma + slope * dz
                    })
                    .collect();
                (sigma.ln() + ln_ei, grad)
            }
            Acquisition::Poi { xi } => {
                let z = (self.best - xi - mean) / sigma;
                let ln_cdf = special::ln_cdf(z);
                let slope = (-0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln() - ln_cdf).exp();
                let grad = (0..d)
                    .map(|m| slope * (-d_mean[m] - z * d_sigma[m]) / sigma)
                    .collect();
                (ln_cdf, grad)
            }
        }
    }
}

/// Where to look: the point of the unit box (categorical axes: indexes
/// below their count) that maximizes `gp`'s acquisition, searched as
/// Optuna's GPSampler does. `warmup` random points are scored; local
/// searches start from the best of them, from up to eight more drawn
/// with probability proportional to their acquisition (a roulette, so
/// that promising regions away from the best also get refined), and from
/// the best observed point (`incumbents[0]`). Each climbs the closed-form
/// gradient with L-BFGS for at most `iterations` steps, in coordinates
/// divided by the length scales (so every axis is equally curved), and
/// then tries every other value of each categorical axis.
#[allow(clippy::too_many_arguments)]
pub fn maximize_acquisition(
    gp: &Gp,
    acquisition: Acquisition,
    choices: &[Option<usize>],
    incumbents: &[Vec<f64>],
    warmup: usize,
    iterations: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    const ROULETTE: usize = 8;
    let random_point = |rng: &mut Rng| -> Vec<f64> {
        choices
            .iter()
            .map(|c| match c {
                Some(k) => rng.below(*k) as f64,
                None => rng.unit(),
            })
            .collect()
    };
    let scored: Vec<(f64, Vec<f64>)> = (0..warmup.max(1))
        .map(|_| {
            let c = random_point(rng);
            (gp.acquisition(acquisition, &c), c)
        })
        .filter(|(s, _)| s.is_finite())
        .collect();
    let mut starts: Vec<Vec<f64>> = Vec::with_capacity(ROULETTE + 2);
    if let Some(top) = (0..scored.len()).max_by(|&a, &b| scored[a].0.total_cmp(&scored[b].0)) {
        let best = scored[top].0;
        let mut weights: Vec<f64> = scored.iter().map(|(s, _)| (s - best).exp()).collect();
        weights[top] = 0.0;
        starts.push(scored[top].1.clone());
        for _ in 0..ROULETTE {
            let total: f64 = weights.iter().sum();
            if total.is_nan() || total <= 0.0 {
                break;
            }
            let mut u = rng.unit() * total;
            let mut chosen = None;
            for (i, w) in weights.iter().enumerate() {
                if *w > 0.0 {
                    chosen = Some(i);
                    if u < *w {
                        break;
                    }
                    u -= w;
                }
            }
            let Some(chosen) = chosen else { break };
            weights[chosen] = 0.0;
            starts.push(scored[chosen].1.clone());
        }
    }
    starts.extend(incumbents.iter().take(1).cloned());
    let mut best: Option<(f64, Vec<f64>)> = None;
    for start in starts {
        let (value, point) = local_search(gp, acquisition, choices, start, iterations);
        if value.is_finite() && best.as_ref().is_none_or(|(b, _)| value > *b) {
            best = Some((value, point));
        }
    }
    best.map_or_else(|| random_point(rng), |(_, p)| p)
}

/// Climbs the acquisition from `start`: L-BFGS on the continuous axes,
/// then every choice of each categorical axis, until neither improves.
fn local_search(
    gp: &Gp,
    acquisition: Acquisition,
    choices: &[Option<usize>],
    start: Vec<f64>,
    iterations: usize,
) -> (f64, Vec<f64>) {
    let continuous: Vec<usize> = (0..choices.len())
        .filter(|&i| choices[i].is_none())
        .collect();
    let scales: Vec<f64> = {
        let all = gp.length_scales();
        continuous.iter().map(|&i| all[i].max(1e-3)).collect()
    };
    let mut point = start;
    let mut value = gp.acquisition(acquisition, &point);
    for _round in 0..3 {
        if !continuous.is_empty() && iterations > 0 {
            let z0: Vec<f64> = continuous
                .iter()
                .zip(&scales)
                .map(|(&i, l)| point[i] / l)
                .collect();
            let upper: Vec<f64> = scales.iter().map(|l| 1.0 / l).collect();
            let base = point.clone();
            let negative = |z: &[f64]| {
                let mut p = base.clone();
                for ((&i, &v), l) in continuous.iter().zip(z).zip(&scales) {
                    p[i] = (v * l).clamp(0.0, 1.0);
                }
                let (f, g) = gp.acquisition_gradient(acquisition, &p);
                let grad = continuous
                    .iter()
                    .zip(&scales)
                    .map(|(&i, l)| -g[i] * l)
                    .collect();
                (-f, grad)
            };
            let (z, fz) = lbfgs::minimize_until(
                negative,
                &z0,
                &vec![0.0; z0.len()],
                &upper,
                iterations,
                1e-2,
            );
            if -fz > value {
                value = -fz;
                for ((&i, &v), l) in continuous.iter().zip(&z).zip(&scales) {
                    point[i] = (v * l).clamp(0.0, 1.0);
                }
            }
        }
        let mut changed = false;
        for (i, c) in choices.iter().enumerate() {
            let Some(k) = c else { continue };
            for choice in 0..*k {
                let mut q = point.clone();
                q[i] = choice as f64;
                let v = gp.acquisition(acquisition, &q);
                if v > value {
                    value = v;
                    point = q;
                    changed = true;
                }
            }
        }
        // A new categorical value moves the continuous optimum: climb
        // again from there; otherwise this point is a local optimum.
        if !changed {
            break;
        }
    }
    (value, point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_fn(x: f64) -> f64 {
        (6.0 * x).sin() + 0.5 * x
    }

    #[test]
    fn interpolates_a_smooth_function_and_is_unsure_away_from_data() {
        let xs: Vec<Vec<f64>> = (0..8).map(|i| vec![f64::from(i) / 7.0]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| sample_fn(x[0])).collect();
        for kernel in [Kernel::Rbf, Kernel::Matern(2.5), Kernel::Matern(1.5)] {
            let gp = Gp::fit(kernel, &[false], &xs, &ys, 0.3, 2, &mut Rng::new(1)).unwrap();
            let (mu, sd) = gp.predict(&[0.5]);
            let predicted = mu * gp.y_scale + gp.y_mean;
            assert!(
                (predicted - sample_fn(0.5)).abs() < 0.05,
                "{kernel:?} {predicted}"
            );
            assert!(sd < 0.2, "{kernel:?} {sd}");
            let (_, far) = gp.predict(&[1.8]);
            assert!(far > 5.0 * sd, "{kernel:?} {far} {sd}");
        }
    }

    #[test]
    fn the_inverse_is_the_two_solves_bit_for_bit() {
        let xs: Vec<Vec<f64>> = (0..12)
            .map(|i| vec![f64::from(i) / 11.0, (f64::from(i) * 0.37).fract()])
            .collect();
        let h = Hyper {
            ln_lengths: vec![-1.2, -0.4],
            ln_signal: 0.2,
            ln_noise: -5.0,
        };
        let (k, l) = factor(Kernel::Matern(2.5), &[false, false], &h, &xs).unwrap();
        let n = xs.len();
        let inv = inverse(&l, n);
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            let col = backward(&l, n, &forward(&l, n, &e));
            for i in 0..n {
                assert_eq!(inv[i * n + j].to_bits(), col[i].to_bits(), "({i}, {j})");
            }
        }
        // (K + noise) K⁻¹ = I.
        let noise2 = (2.0 * h.ln_noise).exp();
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n)
                    .map(|m| (k[i * n + m] + if i == m { noise2 } else { 0.0 }) * inv[m * n + j])
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "({i}, {j}): {v}");
            }
        }
    }

    #[test]
    fn the_kernel_gradient_matches_finite_differences() {
        let xs: Vec<Vec<f64>> = vec![
            vec![0.1, 0.0],
            vec![0.4, 1.0],
            vec![0.9, 2.0],
            vec![0.6, 1.0],
        ];
        let ys = vec![0.3, -1.0, 0.8, 0.2];
        let cat = [false, true];
        for kernel in [
            Kernel::Rbf,
            Kernel::Matern(2.5),
            Kernel::Matern(1.5),
            Kernel::Matern(0.5),
        ] {
            let h = Hyper {
                ln_lengths: vec![-1.0, 0.2],
                ln_signal: 0.1,
                ln_noise: -2.0,
            };
            let (f, g) = objective(kernel, &cat, &xs, &ys, &h);
            let pack = [h.ln_lengths[0], h.ln_lengths[1], h.ln_signal, h.ln_noise];
            for m in 0..4 {
                let mut p = pack;
                p[m] += 1e-6;
                let h2 = Hyper {
                    ln_lengths: vec![p[0], p[1]],
                    ln_signal: p[2],
                    ln_noise: p[3],
                };
                let numeric = (objective(kernel, &cat, &xs, &ys, &h2).0 - f) / 1e-6;
                assert!(
                    (numeric - g[m]).abs() < 1e-3 * (1.0 + numeric.abs()),
                    "{kernel:?} {m}: {numeric} vs {}",
                    g[m]
                );
            }
        }
    }

    #[test]
    fn the_acquisition_gradient_matches_finite_differences() {
        let xs: Vec<Vec<f64>> = vec![
            vec![0.1, 0.2, 0.0],
            vec![0.4, 0.9, 1.0],
            vec![0.9, 0.5, 2.0],
            vec![0.6, 0.1, 1.0],
            vec![0.3, 0.7, 0.0],
        ];
        let ys = vec![0.3, -1.0, 0.8, 0.2, -0.4];
        let cat = [false, false, true];
        for kernel in [Kernel::Rbf, Kernel::Matern(2.5), Kernel::Matern(1.5)] {
            let gp = Gp::fit(kernel, &cat, &xs, &ys, 0.4, 1, &mut Rng::new(5)).unwrap();
            for acquisition in [
                Acquisition::Ei { xi: 0.0 },
                Acquisition::Poi { xi: 0.01 },
                Acquisition::Ucb { kappa: 2.0 },
            ] {
                for at in [[0.35, 0.45, 1.0], [0.8, 0.15, 0.0], [0.41, 0.88, 1.0]] {
                    let (f, g) = gp.acquisition_gradient(acquisition, &at);
                    assert!((f - gp.acquisition(acquisition, &at)).abs() < 1e-9);
                    assert_eq!(g[2], 0.0, "categorical axes have no gradient");
                    for m in 0..2 {
                        let h = 1e-6;
                        let mut up = at;
                        up[m] += h;
                        let mut down = at;
                        down[m] -= h;
                        let numeric = (gp.acquisition(acquisition, &up)
                            - gp.acquisition(acquisition, &down))
                            / (2.0 * h);
                        assert!(
                            (numeric - g[m]).abs() < 1e-4 * (1.0 + numeric.abs()),
                            "{kernel:?} {acquisition:?} {at:?} axis {m}: {numeric} vs {}",
                            g[m]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn expected_improvement_points_at_the_minimum() {
        let xs: Vec<Vec<f64>> = [0.0, 0.2, 0.5, 0.8, 1.0].iter().map(|&v| vec![v]).collect();
        let ys: Vec<f64> = xs.iter().map(|x| (x[0] - 0.3).powi(2)).collect();
        let gp = Gp::fit(
            Kernel::Matern(2.5),
            &[false],
            &xs,
            &ys,
            0.3,
            1,
            &mut Rng::new(2),
        )
        .unwrap();
        let at = maximize_acquisition(
            &gp,
            Acquisition::Ei { xi: 0.0 },
            &[None],
            &[vec![0.2]],
            500,
            30,
            &mut Rng::new(3),
        );
        assert!((at[0] - 0.3).abs() < 0.1, "{at:?}");
        // A lie at the suggestion pushes the next one away from it.
        let lied = gp
            .with_points(std::slice::from_ref(&at), &[gp.best])
            .unwrap();
        let next = maximize_acquisition(
            &lied,
            Acquisition::Ei { xi: 0.0 },
            &[None],
            &[vec![0.2]],
            500,
            30,
            &mut Rng::new(3),
        );
        assert!((next[0] - at[0]).abs() > 1e-3, "{next:?} {at:?}");
    }
}
