//! Hyperparameter sweeps (`matrix:` of an operation): the search space,
//! a reproducible generator, and the algorithms' pure decisions.
//!
//! - [`rng`]: the seeded generator every suggestion comes from.
//! - [`space`]: generators (`choice`, `range`, `uniform`, ...) as typed
//!   dimensions; sampling and grid enumeration.
//! - [`axes`]: the space as model-based optimizers see it (coordinates).
//! - [`bayes`]: the `bayes` matrix's suggestions, batched by a constant liar.
//! - [`gp`]: the `bayes` matrix's Gaussian process and acquisition.
//! - [`lbfgs`]: the box-bounded minimizer both fit and acquisition use.
//! - [`tpe`]: the `hyperopt` matrix's Tree-structured Parzen Estimator.
//! - [`stopping`]: early stopping of sweeps and of trials that fall behind.
//! - [`special`]: normal-distribution functions in log form.
//! - [`hyperband`]: Li et al.'s brackets and rung promotions.
//! - [`plan`]: a `matrix:` as an algorithm, and which trials to create next.

pub mod axes;
pub mod bayes;
pub mod gp;
pub mod hyperband;
pub mod lbfgs;
pub mod plan;
pub mod rng;
pub mod space;
pub mod special;
pub mod stopping;
pub mod tpe;

use space::Suggestion;

/// A trial an optimizer learns from: its params and its loss (smaller is
/// better; a maximized metric is negated by the caller). `None`: the trial
/// ended without the metric (failed); TPE counts it among the bad ones,
/// the GP leaves it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub params: Suggestion,
    pub loss: Option<f64>,
}
