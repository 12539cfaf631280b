"""Benchmark (issue 7): time and memory of `tunesmith.fitting` as the rows grow (10k, 100k, 1M x 50 features).

Each size runs in a fresh subprocess, so that each peak RSS is its own, through the real pipeline:
an .npz on disk -> `tunesmith.fitting` (load, drop duplicates, split, preprocess on the training rows,
Trainer with validation every epoch, test evaluation, run directory). The batch size is fixed
(256) so that an epoch at 1M rows does the same work per row as at 100k.

Targets: seconds per epoch grow linearly with the rows (1M / 100k <= 11x); the peak RSS stays
under 3x the float32 size of the data. The interpreter with torch, pandas and scikit-learn
imported holds about 400 MiB before any data exists, and torch's first training steps add about
130 MiB more (kernels, thread pools, lazily imported modules) whatever the data. So each run
first fits a 1,000-row table, and the memory figure is the growth of the peak over the RSS after
that warm-up (the absolute peak is printed beside it).

    python benchmarks/scale.py                       # 10k, 100k, 1M rows, 2 epochs
    python benchmarks/scale.py --sizes 10000 100000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 50
MiB = 2**20


def make_npz(path: Path, rows: int, seed: int = 0) -> None:
    """A binary classification table: a noisy linear rule over 50 float32 features."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    w = rng.standard_normal(FEATURES).astype(np.float32)
    y = (x @ w + rng.standard_normal(rows, dtype=np.float32) > 0).astype(np.int64)
    np.savez(path, x=x, y=y)


def child(path: str, epochs: int, out: str) -> None:
    """Run in a fresh interpreter: fit once, print one JSON line of measurements."""
    import resource

    import psutil

    from tunesmith.fitting import fit

    # Warm up in this process first: torch's first steps load kernels, thread pools and lazy modules
    # (about 130 MiB here) whatever the data. The baseline is taken after that, so the growth is the data's.
    make_npz(Path(out + "-warmup.npz"), 1_000)
    fit(data=out + "-warmup.npz", epochs=1, batch_size=256, out=out + "-warmup", progress=False)
    base = psutil.Process().memory_info().rss
    started = time.perf_counter()
    result = fit(
        data=path,
        epochs=epochs,
        batch_size=256,
        out=out,
        progress=False,
        overrides={"train.early_stopping.patience": None, "train.checkpoint": False},
    )
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    seconds = result.history["seconds"].tolist()
    print(
        json.dumps(
            {
                "rows": result.metrics["data"]["rows"],
                "epoch_seconds": min(seconds),  # the least disturbed epoch on a shared machine
                "epoch_seconds_all": seconds,
                "wall": wall,
                "base_rss": base,
                "peak_rss": peak,
                "test_accuracy": result.metrics["test"]["accuracy"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", nargs=3, metavar=("NPZ", "EPOCHS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    print(f"load average before: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            npz = Path(tmp) / f"table_{n}.npz"
            make_npz(npz, n)
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(npz), str(args.epochs), str(Path(tmp) / f"run_{n}")],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.exit(f"{n} rows failed:\n{done.stderr}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["data_bytes"] = n * FEATURES * 4
            rows.append(row)
            growth = row["peak_rss"] - row["base_rss"]
            print(
                f"{n:>9,} rows: {row['epoch_seconds']:7.2f} s/epoch (all: "
                f"{', '.join(f'{s:.2f}' for s in row['epoch_seconds_all'])}), fit {row['wall']:6.1f} s, "
                f"peak RSS {row['peak_rss'] / MiB:7.1f} MiB = baseline {row['base_rss'] / MiB:.1f} + "
                f"{growth / MiB:.1f} MiB ({growth / row['data_bytes']:.2f}x the {row['data_bytes'] / MiB:.1f} MiB "
                f"float32 data), test accuracy {row['test_accuracy']:.3f}",
                flush=True,
            )
    by_rows = {r["rows"]: r for r in rows}
    if 100_000 in by_rows and 1_000_000 in by_rows:
        ratio = by_rows[1_000_000]["epoch_seconds"] / by_rows[100_000]["epoch_seconds"]
        print(f"time ratio 1M/100k: {ratio:.2f}x (target <= 11x, linear would be 10x)")
    big = rows[-1]  # the target is judged where the data dominate; a small table shows the run's fixed costs
    growth = (big["peak_rss"] - big["base_rss"]) / big["data_bytes"]
    fixed = (rows[0]["peak_rss"] - rows[0]["base_rss"]) / MiB
    print(
        f"peak RSS growth / float32 data size at {big['rows']:,} rows: {growth:.2f}x (target < 3x; the "
        f"{rows[0]['rows']:,}-row run shows the fixed cost: {fixed:.1f} MiB)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
