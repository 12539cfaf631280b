"""Time to a target validation score (issue 6): the staged playbook vs TPE without pruning vs random search.

Three searches over the same declared space (the catalog's default for the family) with the same
trial budget and epochs per trial, at several seeds:

- playbook: `tunesmith tune` as shipped: staged (T53), QMC exploration then TPE, median pruning,
  prechecks (overfit a batch, LR range test, batch-size finder) counted in its time
- tpe: one flat search, Optuna's TPE with its own random start, no pruning
- random: one flat search, random sampling, no pruning

For each run, the time to a target is the wall time from the start (data loading and prechecks
included) to the end of the first trial whose validation score reaches it; a run that never
reaches it counts its whole search time, marked ">" (so the ratios are then lower bounds for the
loser). The same runs are judged at every `--target` (by default an easy one that most
configurations reach and a harder one near the best scores seen); the playbook starts each stage
from the recipe's values (its incumbent), random and TPE start where Optuna starts them.
Printed: per-seed times, the medians, and the ratios random/playbook (target >= 3x) and
tpe/playbook (target >= 1.5x). Beside them, the ceiling: an oracle that knew the answer would
train only the fastest single trial that reached the target (of any search at that seed), so
random/oracle is the largest ratio any search could show here. One tiny fit runs before the clock
starts, so no search pays PyTorch's one-time warm-up. The load average is printed: compare
numbers from a quiet machine.

    python benchmarks/tune_efficiency.py                                   # digits, 3 seeds, 20 trials
    python benchmarks/tune_efficiency.py --data wine --target 0.97 0.99 --seeds 5
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

from tunesmith.fitting import fit
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.tuning.outputs import collect
from tunesmith.tuning.storage import open_storage
from tunesmith.tuning.study import create_study
from tunesmith.tuning.worker import run_worker

STRATEGIES: dict[str, dict[str, Any]] = {
    "playbook": {},
    "tpe": {"tune.strategy": "flat", "tune.sampler": "tpe", "tune.pruner": "none", "tune.explore": 0.0},
    "random": {"tune.strategy": "flat", "tune.sampler": "random", "tune.pruner": "none", "tune.explore": 0.0},
}


Finished = list[tuple[float, float, float]]  # (seconds from the start to a trial's end, its score, its own seconds)


def search(folder: Path, overrides: dict[str, Any], *, data: str) -> tuple[Finished, float]:
    """One search: (its feasible trials in order of completion, seconds to the search's end)."""
    recipe = make_recipe(data=data, overrides=overrides)
    started = time.time()
    store = open_storage(None, run_dir=folder, workers=1, cfg=recipe.tune)
    meta = create_study(store, "bench", RunSetup.build(recipe))
    run_worker(store, "bench")
    ended = time.time()
    finished = sorted(
        (t.datetime_complete.timestamp() - started, t.value, t.user_attrs["seconds"])
        for _, _, t in collect(store, "bench", meta).feasible()
        if t.datetime_complete is not None and t.value is not None and "repeat_of" not in t.user_attrs
    )
    return finished, ended - started


def warm_up(data: str, folder: Path) -> None:
    """PyTorch's first optimizer step imports torch._dynamo (seconds): pay it before any clock starts."""
    fit(data=data, epochs=1, out=folder / "warm-up", progress=False, report=False)


def time_to(target: float, finished: Finished, total: float) -> tuple[float, bool]:
    """(seconds to the first trial reaching `target`, True), or (the whole search, False)."""
    reached = [when for when, value, _ in finished if value >= target]
    return (reached[0], True) if reached else (total, False)


def oracle(target: float, searches: list[Finished]) -> float | None:
    """The shortest single trial of any of these searches that reached `target` (None: none did)."""
    return min((own for finished in searches for _, value, own in finished if value >= target), default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument(
        "--target", type=float, nargs="+", default=[0.975, 0.985], help="validation accuracies to reach"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    print(f"{args.data}: targets {args.target} (val accuracy), {args.trials} trials x {args.epochs} epochs, seeds 0..")
    times: dict[float, dict[str, list[float]]] = {t: {name: [] for name in STRATEGIES} for t in args.target}
    oracles: dict[float, list[float]] = {t: [] for t in args.target}
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(args.data, Path(tmp))
        for seed in range(args.seeds):
            searches = []
            for name, extra in STRATEGIES.items():
                overrides = {"tune.trials": args.trials, "tune.epochs": args.epochs, "train.seed": seed, **extra}
                finished, total = search(Path(tmp) / f"{name}-{seed}", overrides, data=args.data)
                searches.append(finished)
                best = max((v for _, v, _ in finished), default=float("nan"))
                line = []
                for target in args.target:
                    seconds, reached = time_to(target, finished, total)
                    times[target][name].append(seconds)
                    line.append(f"{target}: {'' if reached else '>'}{seconds:.1f} s")
                print(f"  seed {seed} {name:8s} time to target  {'   '.join(line)}   best val {best:.4f}", flush=True)
            for target in args.target:
                shortest = oracle(target, searches)
                if shortest is not None:
                    oracles[target].append(shortest)
    for target in args.target:
        medians = {name: statistics.median(values) for name, values in times[target].items()}
        print(f"target {target}: median " + ", ".join(f"{name} {value:.1f} s" for name, value in medians.items()))
        print(f"  random / playbook: {medians['random'] / medians['playbook']:.2f}x (target >= 3x)")
        print(f"  tpe / playbook:    {medians['tpe'] / medians['playbook']:.2f}x (target >= 1.5x)")
        if oracles[target]:
            best = statistics.median(oracles[target])
            print(
                f"  ceiling: the oracle (one shortest trial that reached it, {len(oracles[target])} seeds) "
                f"{best:.1f} s: random / oracle {medians['random'] / best:.2f}x, tpe / oracle "
                f"{medians['tpe'] / best:.2f}x"
            )
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
