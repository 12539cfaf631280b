"""On data a linear model explains, does `tunesmith tune` deliver at least what RidgeCV gets on the same split?

    python benchmarks/tune_linear.py                      # diabetes, --timeout 120
    python benchmarks/tune_linear.py --timeout 60

The tune runs as a user runs it (`tune(data="diabetes", timeout=T)`); its test r2 is its final model's,
scored once on the held-out test split. Beside it, on the very same development rows (train + val,
tunesmith's own split, the test rows removed) and the same test rows, in the same run:

- RidgeCV() as a user first writes it: standardized features, scikit-learn's default alphas (0.1, 1, 10);
- RidgeCV over tunesmith's grid (train/exact.ALPHAS: 1e-3 .. 1e3 in half decades).

Printed: the three test r2 scores, the tune's final choice (tuning/final.py) and its wall time against
the timeout (issue 14: test r2 at least RidgeCV's).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.train.exact import ALPHAS
from tunesmith.tuning.study import tune


def ridge_r2(data: str, alphas: tuple[float, ...]) -> float:
    """RidgeCV on tunesmith's development rows (all of train + val), scored on its test rows."""
    loaded = RunSetup.build(make_recipe(data=data)).loaded
    x, x_test = np.asarray(loaded.raw.x, dtype=float), np.asarray(loaded.x_test, dtype=float)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(x, loaded.raw.y)
    return float(r2_score(loaded.y_test, model.predict(x_test)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="diabetes")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    default, grid = ridge_r2(args.data, (0.1, 1.0, 10.0)), ridge_r2(args.data, ALPHAS)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        result = tune(data=args.data, timeout=args.timeout, out=Path(tmp) / "run", progress=False)
        wall = time.time() - started
    tuned = result.metrics["test"]["r2"]
    print(f"{args.data}, tune --timeout {args.timeout:.0f}: {len(result.trials)} trials, {wall:.0f} s wall")
    print(f"  final choice: {result.tuning['final'].get('reason', result.tuning['final'].get('skipped'))}")
    print(f"  test r2: tune {tuned:.4f}, RidgeCV() {default:.4f}, RidgeCV(tunesmith's alphas) {grid:.4f}")
    print(f"  tune - RidgeCV(): {tuned - default:+.4f}; tune - RidgeCV(grid): {tuned - grid:+.4f} (issue 14: >= 0)")
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
