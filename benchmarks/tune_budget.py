"""Is --timeout the budget? Wall time from the start of `tune` to metrics.json, against the timeout.

    python benchmarks/tune_budget.py                      # two data sizes, --timeout 60 each
    python benchmarks/tune_budget.py --timeout 120 --seeds 2

Two tables of cheap trials (a small MLP regression on 400 and on 20,000 synthetic rows, so an
epoch costs about 0.01 s and about 0.3 s here), tuned without --trials: the stages run trials
until their share of the time is spent, and the refit is priced from the trials' measured cost.
Printed per run: wall seconds to metrics.json over the timeout (issue 14: at most 1.10), the share of
the timeout used (at least 0.80 when trials are cheap), the trials run and the refit's epochs. The
baseline is the timeout itself, so the ratios compare across machines; absolute seconds do not.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.tuning.study import tune


def table(rows: int, folder: Path, seed: int = 0) -> Path:
    """A regression CSV: a smooth nonlinear function of 8 features plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8))
    y = x[:, 0] + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] * x[:, 3] + 0.3 * rng.normal(size=rows)
    path = folder / f"table_{rows}.csv"
    pd.DataFrame(np.column_stack([x, y]), columns=[*(f"f{i}" for i in range(8)), "y"]).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rows", type=int, nargs="+", default=[400, 20_000])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; timeout {args.timeout:.0f} s")
    print(f"{'rows':>7s} {'seed':>4s} {'wall/timeout':>12s} {'used':>6s} {'trials':>7s} {'refit epochs':>12s}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for rows in args.rows:
            path = table(rows, folder)
            for seed in range(args.seeds):
                out = folder / f"run_{rows}_{seed}"
                started = time.time()
                result = tune(
                    out=out,
                    data=str(path),
                    target="y",
                    timeout=args.timeout,
                    progress=False,
                    overrides={"train.seed": seed},
                )
                wall = (out / "metrics.json").stat().st_mtime - started
                refit = json.loads((out / "tuning.json").read_text())["refit"]["epochs"]
                ratio = wall / args.timeout
                print(f"{rows:7d} {seed:4d} {ratio:12.3f} {min(ratio, 1.0):6.0%} {len(result.trials):7d} {refit:12d}")


if __name__ == "__main__":
    main()
