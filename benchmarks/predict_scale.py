"""Benchmark (issue 4): `tunesmith predict` on 100k rows x 50 features, seconds and peak memory.

Setup, not timed: a table of 45 numeric features (1% of cells missing) and 5 categorical ones (12
levels each) with a 3-class target; `tunesmith.fitting` trains on 5,000 of its rows for 2 epochs; 100k
new rows are written to a CSV file.

Measured:
1. the command line end to end in a fresh process, `tunesmith predict RUN --data new.csv --out p.csv`
   (start-up and imports, read the CSV, check the schema, preprocess, forward, write the CSV): wall
   seconds and the process's peak RSS (getrusage of the child);
2. `predict(run, frame)` in this process on the DataFrame already in memory (schema check,
   preprocessing, batched forward, output frame), best of 3;
3. the baseline: one bare `model(x)` over the same preprocessed (100k, F) float32 tensor in inference
   mode, best of 3.
(1) and (2) are printed with their ratio over (3). Targets: (1) under 10 s and under 1 GB peak RSS.
The load average is printed too: on a shared machine the seconds say as much about the neighbours.

    python benchmarks/predict_scale.py
    python benchmarks/predict_scale.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tunesmith.fitting import fit
from tunesmith.prediction import load_run, predict

NUMERIC, CATEGORICAL, LEVELS = 45, 5, 12


def make_table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    numbers = rng.standard_normal((rows, NUMERIC)).astype(np.float32)
    codes = rng.integers(0, LEVELS, (rows, CATEGORICAL))
    score = numbers[:, :5].sum(axis=1) + (codes[:, 0] % 3 - 1)
    numbers[rng.random(numbers.shape) < 0.01] = np.nan  # imputed with the training medians (T01)
    frame = pd.DataFrame(numbers, columns=[f"n{i}" for i in range(NUMERIC)])
    for j in range(CATEGORICAL):
        frame[f"c{j}"] = np.char.add("level", codes[:, j].astype(str))
    frame["label"] = np.digitize(score, [-1.0, 1.0])
    return frame


def best_of(n: int, call: object) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_table(5000, seed=0).to_csv(folder / "train.csv", index=False)
        fit(data=str(folder / "train.csv"), target="label", epochs=2, out=folder / "run", progress=False)
        new = make_table(args.rows, seed=1).drop(columns="label")
        new.to_csv(folder / "new.csv", index=False)

        command = [sys.executable, "-m", "tunesmith", "predict", str(folder / "run")]
        started = time.perf_counter()
        subprocess.run([*command, "--data", str(folder / "new.csv"), "--out", str(folder / "p.csv")], check=True)
        cli_seconds = time.perf_counter() - started
        cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
        assert len(pd.read_csv(folder / "p.csv")) == args.rows

        run = load_run(folder / "run")
        api_seconds = best_of(3, lambda: predict(run, new, device="cpu"))
        x = torch.from_numpy(run.preprocessor.transform_x(new))  # (rows, F) float32, F = 45 + 5 x 12

        def bare() -> None:
            with torch.inference_mode():
                run.model(x)

        bare_seconds = best_of(3, bare)

    print(f"rows {args.rows:,} x {NUMERIC + CATEGORICAL} columns -> model input {tuple(x.shape)}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"baseline bare model(x):           {bare_seconds:7.3f} s")
    print(f"predict() on a DataFrame:         {api_seconds:7.3f} s  ({api_seconds / bare_seconds:5.1f}x the baseline)")
    print(
        f"tunesmith predict CSV -> CSV:     {cli_seconds:7.3f} s  ({cli_seconds / bare_seconds:5.1f}x the baseline), "
        f"peak RSS {cli_peak / 2**20:.0f} MiB (targets: < 10 s, < 1024 MiB)"
    )


if __name__ == "__main__":
    main()
