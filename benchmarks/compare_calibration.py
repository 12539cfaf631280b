"""Calibration of `tunesmith compare` (issue 5, catalog T50): does the verdict say what it should?

Two rates over `--reps` repetitions of a comparison at `--seeds` seeds each:

- A/A: both variants are the same recipe, but B's runs are drawn at other seeds than A's (paired by
  position). Nothing differs, so the verdict should be "no detectable difference" in >= 95% of them
  (the 95% interval misses zero 5% of the time by design: with 40 repetitions and a perfectly
  calibrated test, 38/40 or better happens with probability 0.68 only).
- A clearly harmful change (1 epoch instead of `--epochs`) at the same seeds: it should be called
  "worse" in >= 95% of them.

Every run is a real `fit` run directory, trained through the comparison's own executor; each
repetition is judged by `CompareResult.verdict`, the code behind `tunesmith compare`.

    python benchmarks/compare_calibration.py                  # iris, 40 repetitions x 5 seeds, 15 epochs
    python benchmarks/compare_calibration.py --data wine --reps 20
    python benchmarks/compare_calibration.py --out runs/calibration   # keep the runs; a rerun re-judges them
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tunesmith.comparison.execute import Job, available_cores, run_jobs
from tunesmith.comparison.result import CompareResult, SeedRun
from tunesmith.recipe import make_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="iris")
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=available_cores())
    parser.add_argument("--out", type=Path, default=None, help="Keep the runs here; a rerun reads them back.")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="compare-calibration-"))
    n, reps = args.seeds, args.reps
    base = make_recipe(data=args.data, epochs=args.epochs)
    harmful = base.with_overrides({"train.epochs": 1})
    # repetition r: A = base at seeds [2rn, 2rn + n), B = base at [2rn + n, 2rn + 2n), harmful at A's seeds
    a_seeds = [[2 * r * n + i for i in range(n)] for r in range(reps)]
    b_seeds = [[2 * r * n + n + i for i in range(n)] for r in range(reps)]
    keep = args.out is not None  # finished runs in --out are read back (resume), so a rerun only re-judges
    jobs = [
        Job("base", s, base.with_overrides({"train.seed": s}), out / f"base-{s}", keep) for s in range(2 * reps * n)
    ]
    jobs += [
        Job("harmful", s, harmful.with_overrides({"train.seed": s}), out / f"harmful-{s}", keep)
        for a in a_seeds
        for s in a
    ]
    load = os.getloadavg()
    started = time.perf_counter()
    records = run_jobs(jobs, workers=args.workers, progress=True)
    seconds = time.perf_counter() - started
    runs = {(r.variant, r.seed): r for r in records}

    same, worse, smallest = 0, 0, []
    for a, b in zip(a_seeds, b_seeds, strict=True):
        # B: the same recipe drawing other seeds, paired with A's runs by position
        aa = [runs["base", s] for s in a] + [
            SeedRun("B", s_a, runs["base", s_b].path, runs["base", s_b].metrics) for s_a, s_b in zip(a, b, strict=True)
        ]
        verdict = CompareResult(aa).verdict("B", "base")
        same += verdict.verdict == "no detectable difference"
        if verdict.smallest_effect is not None:
            smallest.append(verdict.smallest_effect)
        worse += (
            CompareResult([runs[v, s] for v in ("base", "harmful") for s in a]).verdict("harmful", "base").verdict
            == "worse"
        )
    print(
        f"data {args.data}, {reps} repetitions x {n} seeds, {args.epochs} epochs vs 1; {len(jobs)} runs in "
        f"{seconds:.0f} s on {args.workers} workers (load average before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}"
        f", {available_cores()} cores)"
    )
    print(f"A/A 'no detectable difference': {same}/{reps} = {same / reps:.1%} (target >= 95%)")
    print(f"harmful change (1 epoch) called 'worse': {worse}/{reps} = {worse / reps:.1%} (target >= 95%)")
    print(f"A/A median smallest detectable effect at {n} seeds: {statistics.median(smallest or [0.0]):.4f} accuracy")
    if not keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
