//! The search space as the model-based optimizers (GP, TPE) see it: each
//! param an axis, continuous (a coordinate in `[low, high]`, for a log
//! param its exponent) or categorical (an index into its values), and the
//! maps between param values and coordinates.

use serde_json::{Number, Value as Json};

use super::space::{Dimension, Space, Suggestion};

/// How far a normal's tails are searched, in standard deviations.
const NORMAL_SPAN: f64 = 4.0;

/// One param as an optimizer sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Axis {
    /// A coordinate in `[low, high]`; the value is `exp(coordinate)` when
    /// `log`, rounded to a multiple of `q` when set.
    Continuous {
        low: f64,
        high: f64,
        log: bool,
        q: Option<f64>,
    },
    /// One of `values`; `prior` weights (pchoice) or equal ones.
    Categorical { values: Vec<Json>, prior: Vec<f64> },
}

impl Axis {
    pub fn of(dimension: &Dimension) -> Axis {
        match dimension {
            Dimension::Values(values) => Axis::Categorical {
                values: values.clone(),
                prior: vec![1.0 / values.len() as f64; values.len()],
            },
            Dimension::Weighted(values) => Axis::Categorical {
                values: values.iter().map(|(v, _)| v.clone()).collect(),
                prior: values.iter().map(|(_, p)| *p).collect(),
            },
            Dimension::Uniform { low, high, q, log } => Axis::Continuous {
                low: *low,
                high: *high,
                log: *log,
                q: *q,
            },
            Dimension::Normal { loc, scale, q, log } => Axis::Continuous {
                low: loc - NORMAL_SPAN * scale,
                high: loc + NORMAL_SPAN * scale,
                log: *log,
                q: *q,
            },
        }
    }

    /// The param value at coordinate `x` (an index for a categorical axis).
    pub fn value(&self, x: f64) -> Json {
        match self {
            Axis::Continuous { low, high, log, q } => {
                let x = x.clamp(*low, *high);
                let v = if *log { x.exp() } else { x };
                match q {
                    Some(q) if *q > 0.0 => {
                        let v = (v / q).round() * q;
                        if q.fract() == 0.0 && v.abs() < 9.0e15 {
                            Json::from(v as i64)
                        } else {
                            number(v)
                        }
                    }
                    _ => number(v),
                }
            }
            Axis::Categorical { values, .. } => {
                values[(x.max(0.0) as usize).min(values.len() - 1)].clone()
            }
        }
    }

    /// The coordinate of param value `value`, if it is one of this axis.
    pub fn coordinate(&self, value: &Json) -> Option<f64> {
        match self {
            Axis::Continuous { low, high, log, .. } => {
                let v = value.as_f64()?;
                let x = if *log {
                    if v <= 0.0 {
                        return None;
                    }
                    v.ln()
                } else {
                    v
                };
                Some(x.clamp(*low, *high))
            }
            Axis::Categorical { values, .. } => {
                values.iter().position(|v| v == value).map(|i| i as f64)
            }
        }
    }

    /// The categorical axis's number of values.
    pub fn choices(&self) -> Option<usize> {
        match self {
            Axis::Categorical { values, .. } => Some(values.len()),
            Axis::Continuous { .. } => None,
        }
    }
}

fn number(x: f64) -> Json {
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// The axes of a space, in its param order.
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    pub names: Vec<String>,
    pub axes: Vec<Axis>,
}

impl Axes {
    pub fn of(space: &Space) -> Axes {
        Axes {
            names: space.params.iter().map(|(n, _)| n.clone()).collect(),
            axes: space.params.iter().map(|(_, d)| Axis::of(d)).collect(),
        }
    }

    /// The coordinates of a trial's params; `None` if one is missing or
    /// outside the space (a trial of an edited sweep, say).
    pub fn coordinates(&self, params: &Suggestion) -> Option<Vec<f64>> {
        self.names
            .iter()
            .zip(&self.axes)
            .map(|(name, axis)| axis.coordinate(params.get(name)?))
            .collect()
    }

    /// The params at coordinates `x`.
    pub fn suggestion(&self, x: &[f64]) -> Suggestion {
        self.names
            .iter()
            .zip(&self.axes)
            .zip(x)
            .map(|((name, axis), &x)| (name.clone(), axis.value(x)))
            .collect()
    }

    /// Coordinates snapped to what a suggestion can hold (a categorical
    /// index, a multiple of `q`), so an optimizer models what was run.
    pub fn snap(&self, x: &[f64]) -> Vec<f64> {
        self.axes
            .iter()
            .zip(x)
            .map(|(axis, &x)| axis.coordinate(&axis.value(x)).unwrap_or(x))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_coordinates_round_trip() {
        let log = Axis::Continuous {
            low: -9.0,
            high: -2.0,
            log: true,
            q: None,
        };
        let v = log.value(-4.0);
        assert!((v.as_f64().unwrap() - (-4.0f64).exp()).abs() < 1e-15);
        assert!((log.coordinate(&v).unwrap() + 4.0).abs() < 1e-12);
        assert_eq!(log.value(5.0).as_f64(), Some((-2.0f64).exp()));
        let int = Axis::Continuous {
            low: 1.0,
            high: 64.0,
            log: false,
            q: Some(1.0),
        };
        assert_eq!(int.value(7.4), Json::from(7));
        let cat = Axis::Categorical {
            values: vec!["a".into(), "b".into()],
            prior: vec![0.5, 0.5],
        };
        assert_eq!(cat.value(1.0), Json::from("b"));
        assert_eq!(cat.coordinate(&Json::from("a")), Some(0.0));
        assert_eq!(cat.coordinate(&Json::from("z")), None);
    }
}
