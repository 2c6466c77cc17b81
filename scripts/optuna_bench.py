"""Optuna's side of `cargo bench -p trellis-domain --bench optimizers`.

Runs Optuna's GPSampler and TPESampler on the same functions, bounds,
budgets and seeds as the Rust side, and times a TPE suggestion after 1000
trials of 8 params. Prints one JSON object per line. Standard library and
Optuna only; run it with the virtualenv the bench names.
"""

import json
import math
import random
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)


def branin(x):
    x1, x2 = x
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2 for j in range(6))
        total -= ALPHA[i] * math.exp(-inner)
    return total


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


FUNCTIONS = {
    "branin": (branin, [(-5, 10), (0, 15)]),
    "hartmann6": (hartmann6, [(0, 1)] * 6),
    "rosenbrock": (rosenbrock, [(-5, 10)] * 2),
}


def run(function, sampler_name, seed, evals, initial=None):
    """Best-so-far after each evaluation. With `initial`, the first trials
    evaluate those points (enqueued) before the sampler takes over."""
    f, bounds = FUNCTIONS[function]
    sampler = (
        optuna.samplers.GPSampler(seed=seed)
        if sampler_name == "gp"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(sampler=sampler)
    for point in initial or []:
        study.enqueue_trial({f"x{i}": v for i, v in enumerate(point)})

    def objective(trial):
        return f([trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])

    started = time.perf_counter()
    study.optimize(objective, n_trials=evals)
    elapsed = time.perf_counter() - started
    values = [t.value for t in study.trials]
    best = [min(values[: i + 1]) for i in range(len(values))]
    return best, elapsed


def suggestion_time(trials, params, repeats):
    rng = random.Random(0)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    distributions = {f"p{i}": optuna.distributions.FloatDistribution(0, 1) for i in range(params)}
    for _ in range(trials):
        values = {k: rng.random() for k in distributions}
        study.add_trial(
            optuna.trial.create_trial(params=values, distributions=distributions, value=sum(values.values()))
        )
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        trial = study.ask()
        for name, dist in distributions.items():
            trial.suggest_float(name, dist.low, dist.high)
        times.append(time.perf_counter() - started)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    times.sort()
    return times[len(times) // 2]


def main():
    gp_seeds, tpe_seeds, evals = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    functions = sys.argv[4].split(",")
    # Optional: a JSON file {function: {seed: [point, ...]}} of initial
    # designs shared with the Rust side (the paired comparison).
    designs = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else {}
    print(json.dumps({"optuna": optuna.__version__}), flush=True)
    for function in functions:
        for sampler in ("gp", "tpe"):
            for seed in range(gp_seeds if sampler == "gp" else tpe_seeds):
                best, elapsed = run(function, sampler, seed, evals)
                print(json.dumps({"function": function, "sampler": sampler, "seed": seed, "best": best, "seconds": elapsed}), flush=True)
                initial = designs.get(function, {}).get(str(seed))
                if initial:
                    best, elapsed = run(function, sampler, seed, evals, initial)
                    print(json.dumps({"function": function, "sampler": sampler, "paired": True, "seed": seed, "best": best, "seconds": elapsed}), flush=True)
    print(json.dumps({"tpe_suggest_seconds": suggestion_time(1000, 8, 20)}), flush=True)


if __name__ == "__main__":
    main()
