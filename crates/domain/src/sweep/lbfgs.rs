//! A small limited-memory BFGS minimizer with box bounds (projection in
//! the line search), for fitting the GP's kernel and for maximizing its
//! acquisition. Problems here have a handful of variables.

/// Minimizes `f` (value and gradient) from `x0` within `[lower, upper]`
/// per variable, for at most `iterations` steps. Returns the best point
/// and its value.
pub fn minimize(
    f: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    iterations: usize,
) -> (Vec<f64>, f64) {
    minimize_until(f, x0, lower, upper, iterations, 0.0)
}

/// [`minimize`], stopping early once the gradient projected on the box is
/// at most `tolerance` (its Euclidean norm).
pub fn minimize_until(
    mut f: impl FnMut(&[f64]) -> (f64, Vec<f64>),
    x0: &[f64],
    lower: &[f64],
    upper: &[f64],
    iterations: usize,
    tolerance: f64,
) -> (Vec<f64>, f64) {
    const MEMORY: usize = 6;
    let project = |x: &mut Vec<f64>| {
        for ((v, lo), hi) in x.iter_mut().zip(lower).zip(upper) {
            *v = v.clamp(*lo, *hi);
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let (mut fx, mut g) = f(&x);
    if !fx.is_finite() {
        return (x, fx);
    }
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    for _ in 0..iterations {
        // Two-loop recursion for the direction -H g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            axpy(-a, y, &mut q);
            alphas.push((a, rho));
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y), (a, rho)) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = rho * dot(y, &q);
            axpy(a - b, s, &mut q);
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        if s_hist.is_empty() || dot(&direction, &g) >= 0.0 {
            // No curvature yet, or not a descent direction: steepest
            // descent, at most a unit step (the scale of the boxes here).
            s_hist.clear();
            y_hist.clear();
            let norm = dot(&g, &g).sqrt().max(1.0);
            direction = g.iter().map(|v| -v / norm).collect();
        }
        // Backtracking (Armijo) on the projected path.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let mut candidate: Vec<f64> = x
                .iter()
                .zip(&direction)
                .map(|(a, d)| a + step * d)
                .collect();
            project(&mut candidate);
            let moved: Vec<f64> = candidate.iter().zip(&x).map(|(c, a)| c - a).collect();
            if dot(&moved, &moved) == 0.0 {
                break;
            }
            let (fc, gc) = f(&candidate);
            if fc.is_finite() && fc <= fx + 1e-4 * dot(&g, &moved) {
                accepted = Some((candidate, fc, gc, moved));
                break;
            }
            step *= 0.5;
        }
        let Some((candidate, fc, gc, moved)) = accepted else {
            break;
        };
        let y: Vec<f64> = gc.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&moved, &y) > 1e-12 {
            s_hist.push(moved);
            y_hist.push(y);
            if s_hist.len() > MEMORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        x = candidate;
        fx = fc;
        g = gc;
        // Converged when the gradient, projected on the box, vanishes.
        let projected: f64 = x
            .iter()
            .zip(&g)
            .zip(lower.iter().zip(upper))
            .map(|((xi, gi), (lo, hi))| {
                let at_bound = (*xi <= *lo && *gi > 0.0) || (*xi >= *hi && *gi < 0.0);
                if at_bound { 0.0 } else { gi * gi }
            })
            .sum();
        if projected.sqrt() <= tolerance.max(1e-9 * (1.0 + fx.abs())) {
            break;
        }
    }
    (x, fx)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum_and_respects_bounds() {
        let rosen = |x: &[f64]| {
            let (a, b) = (x[0], x[1]);
            let f = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![
                -2.0 * (1.0 - a) - 400.0 * a * (b - a * a),
                200.0 * (b - a * a),
            ];
            (f, g)
        };
        let (x, fx) = minimize(rosen, &[-1.2, 1.0], &[-5.0, -5.0], &[5.0, 5.0], 500);
        assert!(fx < 1e-8 && (x[0] - 1.0).abs() < 1e-3, "{x:?} {fx}");
        let (x, _) = minimize(rosen, &[-1.2, 1.0], &[-5.0, -5.0], &[0.5, 5.0], 500);
        assert!((x[0] - 0.5).abs() < 1e-9, "{x:?}");
    }
}
