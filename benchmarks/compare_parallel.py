"""Wall time of `tunesmith compare` with worker processes (issue 5): 2 variants x 5 seeds on digits.

The same comparison runs twice in this one process, first with `workers=1` (the 10 fits one after
another, torch using its default threads, as ten `tunesmith fit` calls would) and then with
`--workers` spawned worker processes (one thread each), and the ratio of the wall times is
printed. Target: >= 1.6x with 2 workers on a machine with 2 free cores. `--baseline-threads 1`
makes the sequential baseline single-threaded too (the stricter comparison; on a loaded machine
torch's default threads oversubscribe the cores and the default baseline slows down many times).
On a shared machine the ratio says as much about the neighbours as about tunesmith, so the
benchmark also prints the machine's ceiling: how much faster `--workers` pure-Python CPU loops run
in spawned processes than one after another, measured right before and after (2.0x on 2 free cores).

    python benchmarks/compare_parallel.py                 # digits, 5 epochs, 2 workers
    python benchmarks/compare_parallel.py --baseline-threads 1 --epochs 10
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
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-threads", type=int, default=None, help="torch threads of the sequential run")
    args = parser.parse_args()
    variants = {"base": {}, "dropout": {"model.dropout": 0.3}}
    folder = Path(tempfile.mkdtemp(prefix="compare-parallel-"))
    seconds, results = {}, {}
    before = ceiling(args.workers)
    for workers in (1, args.workers):
        load = os.getloadavg()[0]
        started = time.perf_counter()
        results[workers] = compare(
            variants,
            data=args.data,
            epochs=args.epochs,
            seeds=args.seeds,
            workers=workers,
            overrides={"train.threads": args.baseline_threads} if workers == 1 and args.baseline_threads else None,
            check_determinism=False,
            progress=False,
            out=folder / f"workers-{workers}",
        )
        seconds[workers] = time.perf_counter() - started
        threads = (args.baseline_threads or "default") if workers == 1 else 1
        print(
            f"workers={workers} (torch threads: {threads}): {seconds[workers]:.1f} s for {2 * args.seeds} fits "
            f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; {available_cores()} cores)"
        )
    print(f"speed-up with {args.workers} workers: {seconds[1] / seconds[args.workers]:.2f}x (target >= 1.6x)")
    print(
        f"machine ceiling ({args.workers} CPU-bound processes vs one after another): {before:.2f}x before the "
        f"comparisons, {ceiling(args.workers):.2f}x after (an idle machine: {float(args.workers):.1f}x)"
    )
    for workers, result in results.items():  # one thread vs torch's default may round differently: close, not equal
        print(f"workers={workers}: {result.verdict('dropout', 'base')}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
