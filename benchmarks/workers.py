"""Trials per minute of local workers (issue 6): 2 worker processes x 1 torch thread vs 1 process x 2 threads.

The same flat study (a small CNN on digits, a fixed space, no pruning, random sampler: every trial
the same amount of work) runs twice with the same trial budget: once in this process with two
torch threads (`workers=1`, as `tunesmith tune` runs by default on 2 cores), once as `--workers 2`
spawned processes with one thread each. Throughput is counted over the search, from the first trial's
start to the last trial's end (trial timestamps in the study; process start-up and the refit are
left out and printed apart). Target: >= 1.4x trials per minute with 2 processes on a 2-core machine
(small models use a second thread poorly: processes beat threads). The load average is printed: on
a shared machine the ratio says as much about the neighbours as about tunesmith.

    python benchmarks/workers.py                    # 12 trials of 3 epochs each
    python benchmarks/workers.py --trials 20 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
import torch

from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.tuning.storage import JOURNAL, open_storage
from tunesmith.tuning.study import create_study, run_workers
from tunesmith.tuning.worker import graceful_stop, stage_study

SPACE = {
    "train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
    "train.batch_size": {"type": "categorical", "choices": [64]},
}


def search(folder: Path, *, workers: int, trials: int, epochs: int) -> tuple[float, float]:
    """(trials per minute over the search, wall seconds including worker start-up)."""
    recipe = make_recipe(
        data="digits",
        overrides={
            "model.width": 16,
            "model.depth": 2,
            "train.early_stopping.patience": None,
            "tune.space": SPACE,
            "tune.strategy": "flat",
            "tune.sampler": "random",
            "tune.pruner": "none",
            "tune.trials": trials,
            "tune.epochs": epochs,
        },
    )
    store = open_storage(None, run_dir=folder, workers=workers, cfg=recipe.tune)
    meta = create_study(store, "bench", RunSetup.build(recipe))
    started = time.time()
    with graceful_stop() as stop:
        run_workers(store, "bench", url=str(folder / JOURNAL), workers=workers, budget=None, stop=stop)
    wall = time.time() - started
    done = stage_study(store, "bench", meta.stages[0], meta).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    first = min(t.datetime_start for t in done if t.datetime_start)
    last = max(t.datetime_complete for t in done if t.datetime_complete)
    return len(done) / ((last - first).total_seconds() / 60), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.trials} trials x {args.epochs} epochs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        torch.set_num_threads(2)
        threads, threads_wall = search(Path(tmp) / "threads", workers=1, trials=args.trials, epochs=args.epochs)
        print(f"1 process x 2 threads: {threads:6.1f} trials/min (wall {threads_wall:.1f} s)")
        procs, procs_wall = search(Path(tmp) / "procs", workers=2, trials=args.trials, epochs=args.epochs)
        print(f"2 processes x 1 thread: {procs:6.1f} trials/min (wall {procs_wall:.1f} s, start-up included)")
    print(f"ratio {procs / threads:.2f}x trials per minute (target >= 1.4x); load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
