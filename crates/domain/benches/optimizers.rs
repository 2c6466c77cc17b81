//! Sweep optimizers against Optuna, side by side on this machine in one
//! run: median regret of Trellis's `bayes` (GP) and `hyperopt` (TPE)
//! against Optuna's GPSampler and TPESampler on Branin, Hartmann6 and
//! Rosenbrock, after 50 and 100 evaluations, over `TRELLIS_BENCH_SEEDS`
//! seeds for the GPs (default 20) and `TRELLIS_BENCH_TPE_SEEDS` for the
//! TPEs (default 100); and the time of one TPE suggestion after 1000
//! trials of 8 params.
//!
//! The TPEs get more seeds because they are cheap and their medians are
//! noisy: over disjoint blocks of 20 seeds the same two samplers' ratio
//! swings by 2× or more (the bench prints that spread, for the GPs too
//! when they get 40 seeds or more).
//!
//! A second, paired table (`TRELLIS_BENCH_PAIRED=0` skips it) runs every
//! seed again with both sides starting from the same 10 random points:
//! on a multimodal function the basin those points happen to fall in
//! decides most of the regret, and pairing takes that luck out of the
//! comparison.
//!
//! Run with `scripts/dev bench-optimizers` (installs Optuna, SciPy and
//! PyTorch from PyPI into `~/.cache/trellis/optuna-venv` once, then runs
//! `cargo bench -p trellis-domain --bench optimizers`). Results print as
//! Markdown; record them in docs/benchmarks.md.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark fails loudly and prints its table"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use trellis_domain::sweep::Trial;
use trellis_domain::sweep::axes::Axes;
use trellis_domain::sweep::bayes::{self, BayesConfig};
use trellis_domain::sweep::rng::Rng;
use trellis_domain::sweep::space::{Dimension, Space, Suggestion};
use trellis_domain::sweep::tpe::{self, TpeConfig};

type Objective = fn(&[f64]) -> f64;

/// Name, objective, bounds, optimum.
type Function = (&'static str, Objective, Vec<(f64, f64)>, f64);

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];
const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

fn hartmann6(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| A[i][j] * (x[j] - P[i][j] * 1e-4).powi(2))
                .sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

/// Name, objective, bounds, optimum (the same as the Python side's).
fn functions() -> Vec<Function> {
    vec![
        (
            "branin",
            branin,
            vec![(-5.0, 10.0), (0.0, 15.0)],
            0.397_887_357_729_738,
        ),
        (
            "hartmann6",
            hartmann6,
            vec![(0.0, 1.0); 6],
            -3.322_368_011_391_339,
        ),
        ("rosenbrock", rosenbrock, vec![(-5.0, 10.0); 2], 0.0),
    ]
}

fn axes(bounds: &[(f64, f64)]) -> Axes {
    Axes::of(&Space {
        params: bounds
            .iter()
            .enumerate()
            .map(|(i, (low, high))| {
                (
                    format!("x{i}"),
                    Dimension::Uniform {
                        low: *low,
                        high: *high,
                        q: None,
                        log: false,
                    },
                )
            })
            .collect(),
    })
}

fn point(p: &Suggestion, d: usize) -> Vec<f64> {
    (0..d)
        .map(|i| p[&format!("x{i}")].as_f64().unwrap())
        .collect()
}

/// Random trials before either side's model is used (both default to 10).
const INITIAL: usize = 10;

/// The shared initial design of a paired run: `INITIAL` uniform points
/// from a stream of its own, so both sides start from the same trials.
fn initial_design(bounds: &[(f64, f64)], seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::stream(seed ^ 0x5EED_0FDE_516E, bounds.len() as u64);
    (0..INITIAL)
        .map(|_| {
            bounds
                .iter()
                .map(|(low, high)| rng.uniform(*low, *high))
                .collect()
        })
        .collect()
}

/// Best-so-far after each evaluation of one optimizer run; with
/// `initial`, those points are evaluated first.
fn run(
    optimizer: &str,
    f: Objective,
    bounds: &[(f64, f64)],
    seed: u64,
    evals: usize,
    initial: &[Vec<f64>],
) -> Vec<f64> {
    let axes = axes(bounds);
    let mut trials: Vec<Trial> = Vec::with_capacity(evals);
    let mut best = Vec::with_capacity(evals);
    for x in initial {
        let loss = f(x);
        best.push(best.last().map_or(loss, |b: &f64| b.min(loss)));
        trials.push(Trial {
            params: axes.suggestion(x),
            loss: Some(loss),
        });
    }
    while trials.len() < evals {
        let mut rng = Rng::stream(seed, trials.len() as u64);
        let params = match optimizer {
            "bayes" => bayes::suggest(
                &axes,
                &trials,
                &[],
                1,
                &BayesConfig::default(),
                seed,
                &mut rng,
            )
            .pop()
            .unwrap(),
            _ => tpe::suggest(&axes, &trials, &TpeConfig::default(), &mut rng),
        };
        let loss = f(&point(&params, bounds.len()));
        best.push(best.last().map_or(loss, |b: &f64| b.min(loss)));
        trials.push(Trial {
            params,
            loss: Some(loss),
        });
    }
    best
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median seconds of one TPE suggestion after 1000 random trials of 8
/// uniform params.
fn tpe_suggestion_seconds() -> f64 {
    let bounds = vec![(0.0, 1.0); 8];
    let axes = axes(&bounds);
    let mut rng = Rng::new(0);
    let trials: Vec<Trial> = (0..1000)
        .map(|_| {
            let x: Vec<f64> = (0..8).map(|_| rng.unit()).collect();
            Trial {
                params: axes.suggestion(&x),
                loss: Some(x.iter().sum()),
            }
        })
        .collect();
    let mut times: Vec<f64> = (0..20)
        .map(|i| {
            let started = Instant::now();
            let s = tpe::suggest(
                &axes,
                &trials,
                &TpeConfig::default(),
                &mut Rng::stream(1, i),
            );
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(s.len(), 8);
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let gp_seeds = env_number("TRELLIS_BENCH_SEEDS", 20);
    let tpe_seeds = env_number("TRELLIS_BENCH_TPE_SEEDS", 100);
    let seeds_of = |optimizer: &str| {
        if optimizer.contains("tpe") {
            tpe_seeds
        } else {
            gp_seeds
        }
    };
    let evals = env_number("TRELLIS_BENCH_EVALS", 100).max(50);
    let venv = std::env::var_os("TRELLIS_OPTUNA_VENV").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/trellis/optuna-venv")
        },
        std::path::PathBuf::from,
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/optuna_bench.py");
    let names: Vec<&str> = functions().iter().map(|f| f.0).collect();
    // best-so-far per (optimizer, function, seed)
    let mut runs: BTreeMap<(String, String, u64), Vec<f64>> = BTreeMap::new();
    let mut seconds: BTreeMap<(String, String), f64> = BTreeMap::new();
    let paired = env_number("TRELLIS_BENCH_PAIRED", 1) == 1;
    let mut designs = serde_json::Map::new();
    for (name, f, bounds, _) in functions() {
        let mut by_seed = serde_json::Map::new();
        for optimizer in ["bayes", "tpe"] {
            for seed in 0..seeds_of(optimizer) as u64 {
                let started = Instant::now();
                let best = run(optimizer, f, &bounds, seed, evals, &[]);
                *seconds
                    .entry((optimizer.to_owned(), name.to_owned()))
                    .or_default() += started.elapsed().as_secs_f64();
                runs.insert((optimizer.to_owned(), name.to_owned(), seed), best);
                if paired {
                    let design = initial_design(&bounds, seed);
                    let best = run(optimizer, f, &bounds, seed, evals, &design);
                    runs.insert((format!("{optimizer}-paired"), name.to_owned(), seed), best);
                    by_seed.insert(seed.to_string(), serde_json::json!(design));
                }
            }
            eprintln!("trellis {optimizer} on {name}: done");
        }
        designs.insert(name.to_owned(), Value::Object(by_seed));
    }
    let designs_file =
        std::env::temp_dir().join(format!("trellis-designs-{}.json", std::process::id()));
    std::fs::write(&designs_file, Value::Object(designs).to_string()).unwrap();
    let ours = tpe_suggestion_seconds();
    eprintln!("running Optuna ({}), this takes a while", venv.display());
    let mut child = Command::new(venv.join("bin/python"))
        .args([
            script,
            &gp_seeds.to_string(),
            &tpe_seeds.to_string(),
            &evals.to_string(),
            &names.join(","),
            designs_file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python of the Optuna virtualenv (run scripts/dev bench-optimizers)");
    let mut optuna_version = String::new();
    let mut theirs = f64::NAN;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if let Some(version) = v["optuna"].as_str() {
            optuna_version = version.to_owned();
        } else if let Some(t) = v["tpe_suggest_seconds"].as_f64() {
            theirs = t;
        } else {
            let mut optimizer = match v["sampler"].as_str().unwrap() {
                "gp" => "optuna-gp",
                _ => "optuna-tpe",
            }
            .to_owned();
            let is_paired = v["paired"].as_bool() == Some(true);
            if is_paired {
                optimizer.push_str("-paired");
            }
            let name = v["function"].as_str().unwrap().to_owned();
            let best: Vec<f64> = v["best"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_f64().unwrap())
                .collect();
            if !is_paired {
                *seconds
                    .entry((optimizer.clone(), name.clone()))
                    .or_default() += v["seconds"].as_f64().unwrap();
            }
            runs.insert((optimizer, name, v["seed"].as_u64().unwrap()), best);
            eprint!(".");
        }
    }
    assert!(child.wait().unwrap().success(), "the Optuna side failed");
    let _ = std::fs::remove_file(&designs_file);
    eprintln!();
    println!(
        "Optuna {optuna_version}; {gp_seeds} seeds for the GPs, {tpe_seeds} for the TPEs; median regret (best found − optimum), lower is better\n"
    );
    // Median regret of `optimizer` (with `suffix`) on `name` after
    // `budget` evaluations, over `seeds`.
    let regret = |optimizer: &str,
                  suffix: &str,
                  name: &str,
                  optimum: f64,
                  budget: usize,
                  seeds: std::ops::Range<u64>| {
        median(
            seeds
                .filter_map(|s| runs.get(&(format!("{optimizer}{suffix}"), name.to_owned(), s)))
                .map(|best| best[budget - 1] - optimum)
                .collect(),
        )
    };
    let table = |suffix: &str| {
        println!(
            "| function | evals | Trellis bayes | Optuna GPSampler | ratio | Trellis TPE | Optuna TPESampler | ratio |"
        );
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (name, _, _, optimum) in functions() {
            for budget in [50, evals] {
                let of = |optimizer: &str| {
                    let seeds = 0..seeds_of(optimizer) as u64;
                    regret(optimizer, suffix, name, optimum, budget, seeds)
                };
                let (b, g, t, o) = (of("bayes"), of("optuna-gp"), of("tpe"), of("optuna-tpe"));
                println!(
                    "| {name} | {budget} | {b:.3e} | {g:.3e} | {:.2} | {t:.3e} | {o:.3e} | {:.2} |",
                    b / g,
                    t / o
                );
            }
        }
    };
    table("");
    if paired {
        println!(
            "\nPaired: every run of seed s starts from the same {INITIAL} random points on both sides (Optuna's enqueued), so the table compares the models, not the luck of the initial draws\n"
        );
        table("-paired");
    }
    // How far a 20-seed median moves: each side's ratio per block of 20
    // seeds, for the optimizers given 40 seeds or more.
    let spread = [
        ("bayes", "optuna-gp", "GP", gp_seeds),
        ("tpe", "optuna-tpe", "TPE", tpe_seeds),
    ];
    if spread.iter().any(|s| s.3 >= 40) {
        println!(
            "\nRatio (Trellis ÷ Optuna) over each block of 20 seeds, lowest to highest: the noise of a 20-seed median\n"
        );
        println!("| optimizer | function | evals | blocks | lowest | highest |");
        println!("| --- | --- | ---: | ---: | ---: | ---: |");
    }
    for (ours, theirs, label, seeds) in spread.into_iter().filter(|s| s.3 >= 40) {
        for (name, _, _, optimum) in functions() {
            for budget in [50, evals] {
                let mut ratios: Vec<f64> = (0..seeds as u64 / 20)
                    .map(|b| {
                        let block = || 20 * b..20 * (b + 1);
                        regret(ours, "", name, optimum, budget, block())
                            / regret(theirs, "", name, optimum, budget, block())
                    })
                    .collect();
                ratios.sort_by(f64::total_cmp);
                println!(
                    "| {label} | {name} | {budget} | {} | {:.2} | {:.2} |",
                    ratios.len(),
                    ratios[0],
                    ratios[ratios.len() - 1]
                );
            }
        }
    }
    let under = |optimizer: &str| {
        (0..gp_seeds as u64)
            .filter(|s| {
                runs.get(&(optimizer.to_owned(), "branin".to_owned(), *s))
                    .is_some_and(|best| best[49] - 0.397_887_357_729_738 < 1e-3)
            })
            .count()
    };
    println!(
        "\nBranin regret < 1e-3 within 50 evaluations: Trellis bayes in {} of {gp_seeds} seeds, Optuna GPSampler in {} of {gp_seeds}.",
        under("bayes"),
        under("optuna-gp")
    );
    println!(
        "\n| wall time of all runs (s) | Trellis bayes | Optuna GP | Trellis TPE | Optuna TPE |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for name in &names {
        let s = |o: &str| {
            seconds
                .get(&(o.to_owned(), (*name).to_owned()))
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s("bayes"),
            s("optuna-gp"),
            s("tpe"),
            s("optuna-tpe")
        );
    }
    println!(
        "\nTPE suggestion after 1000 trials of 8 params (median of 20): Trellis {:.3} ms, Optuna {:.3} ms: {:.1}× faster.",
        ours * 1000.0,
        theirs * 1000.0,
        theirs / ours
    );
}
