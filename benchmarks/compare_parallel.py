"""Wall time of `tunesmith compare` with worker processes (issue 5): 2 variants x 5 seeds on digits.

The same comparison runs three times in this one process and the wall times are compared:

- `workers=1` with one torch thread: the same 10 fits as the parallel run, one after another. This
  is the target's baseline (>= 1.6x with 2 workers on a machine with 2 free cores).
- `workers=1` with torch's default threads: what `--workers 1` does. Torch already spreads each
  fit over both cores, so the gain over it is bounded by how well it does that: 2 x t(2 threads) /
  t(1 thread), printed from this run's own fits (about 1.25x for digits' CNN here).
- `--workers N`: N lanes of one thread each, this process and N - 1 spawned workers.

On a shared machine the ratio says as much about the neighbours as about tunesmith, so the
benchmark also prints the machine's ceiling: how much faster N pure-Python CPU loops run in
spawned processes than one after another, measured right before and after (2.0x on 2 free cores).

    python benchmarks/compare_parallel.py                 # digits, 15 epochs, 2 workers
    python benchmarks/compare_parallel.py --epochs 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tunesmith.comparison import compare
from tunesmith.comparison.execute import available_cores


def burn(_: int) -> None:
    """Pure CPU work, no I/O and no threads: what parallel processes can gain on this machine now."""
    total = 0
    for i in range(15_000_000):
        total += i


def ceiling(workers: int) -> float:
    """Speed-up of `workers` burns in spawned processes over the same burns one after another."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(abs, range(workers)))  # start the workers before the clock does
        started = time.perf_counter()
        list(pool.map(burn, range(workers)))
        parallel = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(workers):
        burn(i)
    return (time.perf_counter() - started) / parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    variants = {"base": {}, "dropout": {"model.dropout": 0.3}}
    folder = Path(tempfile.mkdtemp(prefix="compare-parallel-"))
    runs = {  # name: (workers, train.threads)
        "one after another, 1 thread": (1, 1),
        "one after another, torch's default threads": (1, None),
        f"{args.workers} lanes, 1 thread each": (args.workers, None),
    }
    seconds, results = {}, {}
    before = ceiling(args.workers)
    for i, (name, (workers, threads)) in enumerate(runs.items()):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        results[name] = compare(
            variants,
            data=args.data,
            epochs=args.epochs,
            seeds=args.seeds,
            workers=workers,
            overrides={"train.threads": threads} if threads else None,
            check_determinism=False,
            progress=False,
            out=folder / str(i),
        )
        seconds[name] = time.perf_counter() - started
        print(
            f"{name}: {seconds[name]:.1f} s for {2 * args.seeds} fits "
            f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; {available_cores()} cores)"
        )
    one, default, lanes = seconds.values()
    print(f"{args.workers} workers, against the same fits one after another: {one / lanes:.2f}x (target >= 1.6x)")
    print(
        f"speed-up over --workers 1 with torch's default threads: {default / lanes:.2f}x "
        f"(bound by threads' own gain here: 2 x {default:.1f} / {one:.1f} = {2 * default / one:.2f}x)"
    )
    print(
        f"machine ceiling ({args.workers} CPU-bound processes vs one after another): {before:.2f}x before the "
        f"comparisons, {ceiling(args.workers):.2f}x after (an idle machine: {float(args.workers):.1f}x)"
    )
    for name, result in results.items():  # one thread vs torch's default may round differently: close, not equal
        print(f"{name}: {result.verdict('dropout', 'base')}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
