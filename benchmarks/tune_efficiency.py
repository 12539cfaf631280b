"""Time to a target validation score (issue 6): the staged playbook vs TPE without pruning vs random search.

Three searches over the same declared space (the catalog's default for the family) with the same
trial budget and epochs per trial, at several seeds:

- playbook: `tunesmith tune` as shipped: staged (T53), QMC exploration then TPE, median pruning,
  prechecks (overfit a batch, LR range test, batch-size finder) counted in its time
- tpe: one flat search, Optuna's TPE with its own random start, no pruning
- random: one flat search, random sampling, no pruning

For each run, the time to target is the wall time from the start (data loading and prechecks
included) to the end of the first trial whose validation score reaches `--target`; a run that never
reaches it counts its whole search time, marked ">" (so the ratios are then lower bounds for the
loser). Printed: per-seed times, the medians, and the ratios random/playbook (target >= 3x) and
tpe/playbook (target >= 1.5x). The load average is printed: compare numbers from a quiet machine.

    python benchmarks/tune_efficiency.py                                   # digits, 3 seeds, 20 trials
    python benchmarks/tune_efficiency.py --data wine --target 0.97 --seeds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from tunesmith.fitting import make_recipe
from tunesmith.tuning.outputs import collect
from tunesmith.tuning.storage import open_storage
from tunesmith.tuning.study import create_study
from tunesmith.tuning.worker import run_worker

STRATEGIES: dict[str, dict[str, Any]] = {
    "playbook": {},
    "tpe": {"tune.strategy": "flat", "tune.sampler": "tpe", "tune.pruner": "none", "tune.explore": 0.0},
    "random": {"tune.strategy": "flat", "tune.sampler": "random", "tune.pruner": "none", "tune.explore": 0.0},
}


def time_to_target(folder: Path, overrides: dict[str, Any], *, data: str, target: float) -> tuple[float, bool, float]:
    """(seconds to the first trial reaching `target` or to the end, whether it did, best score)."""
    recipe = make_recipe(data=data, overrides=overrides)
    started = time.time()
    store = open_storage(None, run_dir=folder, workers=1, cfg=recipe.tune)
    meta = create_study(store, "bench", recipe)
    run_worker(store, "bench")
    ended = time.time()
    finished = sorted(
        (t.datetime_complete.timestamp(), t.value)
        for _, _, t in collect(store, "bench", meta).feasible()
        if t.datetime_complete is not None and t.value is not None
    )
    best = max((v for _, v in finished), default=float("nan"))
    reached = [when for when, value in finished if value >= target]
    return (reached[0] - started, True, best) if reached else (ended - started, False, best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--target", type=float, default=0.975, help="validation accuracy to reach")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    print(f"{args.data}: target val accuracy {args.target}, {args.trials} trials x {args.epochs} epochs, seeds 0..")
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, extra in STRATEGIES.items():
                overrides = {"tune.trials": args.trials, "tune.epochs": args.epochs, "train.seed": seed, **extra}
                seconds, reached, best = time_to_target(
                    Path(tmp) / f"{name}-{seed}", overrides, data=args.data, target=args.target
                )
                times[name].append(seconds)
                mark = "" if reached else ">"
                print(
                    f"  seed {seed} {name:8s} time to target {mark}{seconds:7.1f} s   best val {best:.4f}", flush=True
                )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"median {name:8s} {value:7.1f} s")
    print(f"random / playbook: {medians['random'] / medians['playbook']:.2f}x (target >= 3x)")
    print(f"tpe / playbook:    {medians['tpe'] / medians['playbook']:.2f}x (target >= 1.5x)")
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
