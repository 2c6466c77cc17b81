//! A matrix's search space: each param's generator (`choice`, `range`,
//! `uniform`, `loguniform`, ...) as a typed dimension that can be sampled
//! from a seed or enumerated for a grid, as Polyaxon v1.1 defines them.
//! The spec's checks (`spec::compile`) already refused malformed values;
//! what is left here is turning them into values.

use std::collections::BTreeMap;

use serde_json::{Number, Value as Json};
use serde_yaml::Value as Yaml;

use super::rng::Rng;
use crate::spec::raw::RawGenerator;

/// One param's generator.
#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    /// A finite list of values, equally likely: `choice`, and the numbers
    /// of `range`, `linspace`, `logspace` and `geomspace`.
    Values(Vec<Json>),
    /// `pchoice`: values with their probabilities (summing to 1).
    Weighted(Vec<(Json, f64)>),
    /// `uniform` on `[low, high)`; with `log`, the exponent is uniform
    /// (`loguniform`: `exp(uniform(low, high))`); with `q`, rounded to a
    /// multiple of `q` (`quniform`, `qloguniform`).
    Uniform {
        low: f64,
        high: f64,
        q: Option<f64>,
        log: bool,
    },
    /// `normal(loc, scale)`; with `log`, `exp` of it; with `q`, rounded.
    Normal {
        loc: f64,
        scale: f64,
        q: Option<f64>,
        log: bool,
    },
}

/// Params and their dimensions, in name order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space {
    pub params: Vec<(String, Dimension)>,
}

/// A set of param values of one trial.
pub type Suggestion = BTreeMap<String, Json>;

impl Space {
    /// The space of a matrix's `params`; an error names the param whose
    /// generator cannot be used.
    pub fn from_generators(params: &BTreeMap<String, RawGenerator>) -> Result<Space, String> {
        let mut out = Vec::new();
        for (name, generator) in params {
            let dimension = Dimension::parse(generator).map_err(|e| format!("`{name}`: {e}"))?;
            out.push((name.clone(), dimension));
        }
        Ok(Space { params: out })
    }

    /// One random point of the space.
    pub fn sample(&self, rng: &mut Rng) -> Suggestion {
        self.params
            .iter()
            .map(|(name, d)| (name.clone(), d.sample(rng)))
            .collect()
    }

    /// Every combination of the values, in order (the last param varies
    /// fastest); `None` when a dimension is continuous.
    pub fn grid(&self) -> Option<Vec<Suggestion>> {
        let mut out = vec![Suggestion::new()];
        for (name, dimension) in &self.params {
            let values: Vec<Json> = match dimension {
                Dimension::Values(values) => values.clone(),
                Dimension::Weighted(values) => values.iter().map(|(v, _)| v.clone()).collect(),
                _ => return None,
            };
            out = out
                .into_iter()
                .flat_map(|partial| {
                    values.iter().map(move |v| {
                        let mut next = partial.clone();
                        next.insert(name.clone(), v.clone());
                        next
                    })
                })
                .collect();
        }
        Some(out)
    }

    /// The number of grid points, without building them (saturating).
    pub fn grid_size(&self) -> Option<u64> {
        self.params.iter().try_fold(1u64, |n, (_, d)| match d {
            Dimension::Values(v) => Some(n.saturating_mul(v.len() as u64)),
            Dimension::Weighted(v) => Some(n.saturating_mul(v.len() as u64)),
            _ => None,
        })
    }
}

fn number(x: f64) -> Json {
    Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// An integer when every input was one, so `range: 1:5:1` gives 1, 2, 3, 4.
fn integral(x: f64, ints: bool) -> Json {
    if ints && x.fract() == 0.0 && x.abs() < 9.0e15 {
        Json::from(x as i64)
    } else {
        number(x)
    }
}

fn round_to(x: f64, q: Option<f64>) -> f64 {
    match q {
        Some(q) if q > 0.0 => (x / q).round() * q,
        _ => x,
    }
}

/// The numbers of a generator value written as a list, a mapping with
/// `keys`, or `a:b:c` text, in `keys` order; `None` for missing ones.
fn numbers(value: &Yaml, keys: &[&str]) -> Vec<Option<f64>> {
    match value {
        Yaml::Sequence(items) => keys
            .iter()
            .enumerate()
            .map(|(i, _)| items.get(i).and_then(Yaml::as_f64))
            .collect(),
        Yaml::String(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            keys.iter()
                .enumerate()
                .map(|(i, _)| parts.get(i).and_then(|p| p.trim().parse().ok()))
                .collect()
        }
        _ => keys
            .iter()
            .map(|k| value.get(*k).and_then(Yaml::as_f64))
            .collect(),
    }
}

/// Whether the values at `keys` are all written as integers.
fn all_integers(value: &Yaml, keys: &[&str]) -> bool {
    let is_int = |v: &Yaml| v.as_i64().is_some();
    match value {
        Yaml::Sequence(items) => items.iter().take(keys.len()).all(is_int),
        Yaml::String(text) => text.split(':').all(|p| p.trim().parse::<i64>().is_ok()),
        _ => keys.iter().all(|k| value.get(*k).is_some_and(is_int)),
    }
}

fn to_json(value: &Yaml) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// `num` evenly spaced numbers from `start` to `stop` inclusive.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => (0..num)
            .map(|i| start + (stop - start) * i as f64 / (num - 1) as f64)
            .collect(),
    }
}

/// The largest list a `range` or `*space` may expand to.
const MAX_VALUES: usize = 100_000;

impl Dimension {
    pub fn parse(generator: &RawGenerator) -> Result<Dimension, String> {
        let kind = generator.kind.as_deref().unwrap_or_default();
        let value = generator.value.as_ref().ok_or("no `value`")?;
        let bad = |what: &str| Err(format!("a `{kind}` generator takes {what}"));
        match kind {
            "choice" => match value.as_sequence() {
                Some(items) if !items.is_empty() => {
                    Ok(Dimension::Values(items.iter().map(to_json).collect()))
                }
                _ => bad("a non-empty list"),
            },
            "pchoice" => {
                let mut out = Vec::new();
                for item in value.as_sequence().into_iter().flatten() {
                    match item.as_sequence().map(Vec::as_slice) {
                        Some([v, p]) if p.as_f64().is_some() => {
                            out.push((to_json(v), p.as_f64().unwrap_or_default()));
                        }
                        _ => return bad("[value, probability] pairs"),
                    }
                }
                if out.is_empty() {
                    return bad("[value, probability] pairs");
                }
                Ok(Dimension::Weighted(out))
            }
            "range" => {
                let keys = ["start", "stop", "step"];
                let [Some(start), Some(stop), Some(step)] = numbers(value, &keys)[..] else {
                    return bad("`start`, `stop` and `step`");
                };
                if step == 0.0 || ((stop - start) / step) > MAX_VALUES as f64 {
                    return bad(&format!(
                        "a non-zero `step` and at most {MAX_VALUES} values"
                    ));
                }
                let ints = all_integers(value, &keys);
                let count = ((stop - start) / step).ceil().max(0.0) as usize;
                Ok(Dimension::Values(
                    (0..count)
                        .map(|i| integral(start + step * i as f64, ints))
                        .collect(),
                ))
            }
            "linspace" | "logspace" | "geomspace" => {
                let keys = ["start", "stop", "num", "base"];
                let parsed = numbers(value, &keys);
                let (Some(start), Some(stop), Some(num)) = (parsed[0], parsed[1], parsed[2]) else {
                    return bad("`start`, `stop` and `num`");
                };
                if !(1.0..=MAX_VALUES as f64).contains(&num) {
                    return bad(&format!("`num` between 1 and {MAX_VALUES}"));
                }
                let num = num as usize;
                let values = match kind {
                    "linspace" => linspace(start, stop, num),
                    "logspace" => {
                        let base = parsed[3].unwrap_or(10.0);
                        linspace(start, stop, num)
                            .into_iter()
                            .map(|e| base.powf(e))
                            .collect()
                    }
                    _ => {
                        if start <= 0.0 || stop <= 0.0 {
                            return bad("positive `start` and `stop`");
                        }
                        linspace(start.ln(), stop.ln(), num)
                            .into_iter()
                            .map(f64::exp)
                            .collect()
                    }
                };
                Ok(Dimension::Values(values.into_iter().map(number).collect()))
            }
            "uniform" | "quniform" | "loguniform" | "qloguniform" => {
                let [Some(low), Some(high), q] = numbers(value, &["low", "high", "q"])[..] else {
                    return bad("`low` and `high`");
                };
                if low >= high {
                    return bad("`low` < `high`");
                }
                Ok(Dimension::Uniform {
                    low,
                    high,
                    q: if kind.starts_with('q') { q } else { None },
                    log: kind.contains("log"),
                })
            }
            "normal" | "qnormal" | "lognormal" | "qlognormal" => {
                let [Some(loc), Some(scale), q] = numbers(value, &["loc", "scale", "q"])[..] else {
                    return bad("`loc` and `scale`");
                };
                if scale <= 0.0 {
                    return bad("a positive `scale`");
                }
                Ok(Dimension::Normal {
                    loc,
                    scale,
                    q: if kind.starts_with('q') { q } else { None },
                    log: kind.contains("log"),
                })
            }
            other => Err(format!("the `{other}` generator cannot be searched")),
        }
    }

    pub fn sample(&self, rng: &mut Rng) -> Json {
        match self {
            Dimension::Values(values) => values[rng.below(values.len())].clone(),
            Dimension::Weighted(values) => {
                let total: f64 = values.iter().map(|(_, p)| p).sum();
                let mut at = rng.unit() * total;
                for (value, p) in values {
                    if at < *p {
                        return value.clone();
                    }
                    at -= p;
                }
                values.last().map(|(v, _)| v.clone()).unwrap_or_default()
            }
            Dimension::Uniform { low, high, q, log } => {
                let x = rng.uniform(*low, *high);
                let x = if *log { x.exp() } else { x };
                number(round_to(x, *q))
            }
            Dimension::Normal { loc, scale, q, log } => {
                let x = loc + scale * rng.normal();
                let x = if *log { x.exp() } else { x };
                number(round_to(x, *q))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(kind: &str, value: &str) -> RawGenerator {
        RawGenerator {
            kind: Some(kind.to_owned()),
            value: Some(serde_yaml::from_str(value).unwrap()),
        }
    }

    fn values(kind: &str, value: &str) -> Vec<Json> {
        match Dimension::parse(&generator(kind, value)).unwrap() {
            Dimension::Values(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn discrete_generators_expand_as_polyaxon_does() {
        assert_eq!(
            values("range", "[1, 5, 1]"),
            vec![Json::from(1), 2.into(), 3.into(), 4.into()]
        );
        assert_eq!(values("range", "0:1:0.25").len(), 4);
        assert_eq!(
            values("range", "{start: 10, stop: 4, step: -3}"),
            vec![Json::from(10), 7.into()]
        );
        assert_eq!(
            values("linspace", "{start: 0, stop: 1, num: 5}")[4],
            Json::from(1.0)
        );
        let logs = values("logspace", "[0, 3, 4]");
        assert_eq!(
            logs,
            vec![Json::from(1.0), 10.0.into(), 100.0.into(), 1000.0.into()]
        );
        let geom = values("geomspace", "1:8:4");
        assert!((geom[1].as_f64().unwrap() - 2.0).abs() < 1e-12);
        assert!(Dimension::parse(&generator("range", "[0, 1, 0]")).is_err());
        assert!(Dimension::parse(&generator("range", "[0, 1e9, 1]")).is_err());
        assert!(Dimension::parse(&generator("daterange", "[a, b, c]")).is_err());
    }

    #[test]
    fn the_grid_is_the_cartesian_product() {
        let params: BTreeMap<String, RawGenerator> = [
            ("a".to_owned(), generator("choice", "[x, y]")),
            ("b".to_owned(), generator("range", "[0, 3, 1]")),
        ]
        .into_iter()
        .collect();
        let space = Space::from_generators(&params).unwrap();
        let grid = space.grid().unwrap();
        assert_eq!(space.grid_size(), Some(6));
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[1]["a"], Json::from("x"));
        assert_eq!(grid[1]["b"], Json::from(1));
        assert_eq!(grid[5]["a"], Json::from("y"));
    }

    #[test]
    fn samples_stay_in_range_and_follow_the_seed() {
        let params: BTreeMap<String, RawGenerator> = [
            ("lr".to_owned(), generator("loguniform", "[-9.2, -2.3]")),
            (
                "q".to_owned(),
                generator("quniform", "{low: 0, high: 10, q: 2}"),
            ),
            ("p".to_owned(), generator("pchoice", "[[a, 0.9], [b, 0.1]]")),
        ]
        .into_iter()
        .collect();
        let space = Space::from_generators(&params).unwrap();
        assert_eq!(space.grid(), None);
        let draws: Vec<Suggestion> = {
            let mut rng = Rng::new(3);
            (0..500).map(|_| space.sample(&mut rng)).collect()
        };
        let again: Vec<Suggestion> = {
            let mut rng = Rng::new(3);
            (0..500).map(|_| space.sample(&mut rng)).collect()
        };
        assert_eq!(draws, again);
        let a_count = draws.iter().filter(|d| d["p"] == "a").count();
        assert!((400..490).contains(&a_count), "{a_count}");
        for d in &draws {
            let lr = d["lr"].as_f64().unwrap();
            assert!((1e-4..0.1).contains(&lr), "{lr}");
            let q = d["q"].as_f64().unwrap();
            assert!((0.0..=10.0).contains(&q) && q % 2.0 == 0.0, "{q}");
        }
    }
}
