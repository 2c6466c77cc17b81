//! Parallel coordinates: one vertical axis per param (and one for the
//! chosen metric), one line per run. Numeric axes span their values;
//! anything else is categorical, its values spread evenly in sorted order.
//! Positions are 0 (bottom) to 1 (top); a brush is a position range.

/// A run's value on an axis.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Missing,
}

/// How an axis places values.
#[derive(Debug, Clone, PartialEq)]
pub enum Scale {
    Numeric { min: f64, max: f64 },
    Categorical(Vec<String>),
}

/// One axis: its name and scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub name: String,
    pub scale: Scale,
}

impl Axis {
    /// Builds the axis for `values` (one per run): numeric when every
    /// present value is a finite number.
    pub fn of(name: impl Into<String>, values: &[Value]) -> Self {
        let numbers: Option<Vec<f64>> = values
            .iter()
            .filter(|v| **v != Value::Missing)
            .map(|v| match v {
                Value::Number(n) if n.is_finite() => Some(*n),
                _ => None,
            })
            .collect();
        let scale = match numbers {
            Some(numbers) if !numbers.is_empty() => {
                let min = numbers.iter().copied().fold(f64::INFINITY, f64::min);
                let max = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                Scale::Numeric { min, max }
            }
            _ => {
                let mut categories: Vec<String> = values
                    .iter()
                    .filter_map(|v| match v {
                        Value::Number(n) => Some(n.to_string()),
                        Value::Text(t) => Some(t.clone()),
                        Value::Missing => None,
                    })
                    .collect();
                categories.sort();
                categories.dedup();
                Scale::Categorical(categories)
            }
        };
        Self {
            name: name.into(),
            scale,
        }
    }

    /// Where `value` sits on the axis, 0 (bottom) to 1 (top); `None` when
    /// missing.
    pub fn position(&self, value: &Value) -> Option<f64> {
        match (&self.scale, value) {
            (_, Value::Missing) => None,
            (Scale::Numeric { min, max }, Value::Number(n)) => Some(if max > min {
                (n - min) / (max - min)
            } else {
                0.5
            }),
            (Scale::Numeric { .. }, Value::Text(_)) => None,
            (Scale::Categorical(categories), value) => {
                let text = match value {
                    Value::Number(n) => n.to_string(),
                    Value::Text(t) => t.clone(),
                    Value::Missing => return None,
                };
                let i = categories.iter().position(|c| *c == text)?;
                Some(if categories.len() > 1 {
                    i as f64 / (categories.len() - 1) as f64
                } else {
                    0.5
                })
            }
        }
    }

    /// Labels along the axis: (position, text).
    pub fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            Scale::Numeric { min, max } if max > min => (0..=4)
                .map(|i| {
                    let t = f64::from(i) / 4.0;
                    (t, crate::format_value(min + t * (max - min)))
                })
                .collect(),
            Scale::Numeric { min, .. } => vec![(0.5, crate::format_value(*min))],
            Scale::Categorical(categories) => categories
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let t = if categories.len() > 1 {
                        i as f64 / (categories.len() - 1) as f64
                    } else {
                        0.5
                    };
                    (t, c.clone())
                })
                .collect(),
        }
    }
}

/// Whether a run with `positions` (one per axis) passes every brush:
/// `brushes[i]` is the (low, high) position range kept on axis `i`. A run
/// missing a value on a brushed axis is out.
pub fn passes(positions: &[Option<f64>], brushes: &[(usize, (f64, f64))]) -> bool {
    brushes.iter().all(|&(axis, (low, high))| {
        positions
            .get(axis)
            .copied()
            .flatten()
            .is_some_and(|p| p >= low.min(high) && p <= low.max(high))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_categorical_axes_place_values() {
        let lr = Axis::of(
            "lr",
            &[Value::Number(0.1), Value::Number(0.3), Value::Missing],
        );
        assert_eq!(lr.scale, Scale::Numeric { min: 0.1, max: 0.3 });
        assert_eq!(
            lr.position(&Value::Number(0.2))
                .map(|p| (p * 100.0).round()),
            Some(50.0)
        );
        assert_eq!(lr.position(&Value::Missing), None);
        let model = Axis::of(
            "model",
            &[
                Value::Text("rnn".into()),
                Value::Text("cnn".into()),
                Value::Number(3.0),
            ],
        );
        assert_eq!(
            model.scale,
            Scale::Categorical(vec!["3".into(), "cnn".into(), "rnn".into()])
        );
        assert_eq!(model.position(&Value::Text("rnn".into())), Some(1.0));
        assert_eq!(model.ticks().len(), 3);
        let flat = Axis::of("x", &[Value::Number(2.0), Value::Number(2.0)]);
        assert_eq!(flat.position(&Value::Number(2.0)), Some(0.5));
    }

    #[test]
    fn brushes_keep_runs_inside_every_brushed_axis() {
        let run = [Some(0.2), Some(0.9), None];
        assert!(passes(&run, &[]));
        assert!(passes(&run, &[(0, (0.0, 0.5))]));
        assert!(passes(&run, &[(0, (0.5, 0.0)), (1, (0.8, 1.0))]));
        assert!(!passes(&run, &[(1, (0.0, 0.5))]));
        assert!(
            !passes(&run, &[(2, (0.0, 1.0))]),
            "missing on a brushed axis"
        );
    }
}
