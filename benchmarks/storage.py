"""Per-trial bookkeeping of the study storages (issue 6): ask + report + tell, no training.

For each storage, one study runs `--trials` trials of a random sampler over two parameters, each
reporting `--reports` intermediate values (the per-epoch validation metric a pruner reads) before
its tell; the time of every trial's bookkeeping is recorded and the median (and p90) printed.

The journal and SQLite files go to `--dir`. Optuna's journal backend fsyncs every append, so on a
disk its time is the disk's fsync latency (a busy shared disk: tens of ms); on tmpfs (/dev/shm)
it is the bookkeeping itself. The filesystem is printed with the numbers.
Storages are opened as `tunesmith tune` opens them (tunesmith.tuning.storage.open_storage):

- journal: the default, an Optuna journal file (target: median <= 5 ms at 1,000 trials)
- sqlite: Optuna's RDBStorage on a SQLite file
- postgresql: RDBStorage on a throwaway local cluster (tests/pg.py) when Debian's server binaries
  are installed, or on `--postgres URL`

    python benchmarks/storage.py                      # 1,000 trials, 1 report each, files in /tmp
    python benchmarks/storage.py --dir /dev/shm --reports 5
    python benchmarks/storage.py --trials 300 --postgres postgresql://u:p@host/db
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg: the throwaway cluster

from tests.pg import server_binaries, throwaway_postgres

from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.storage import open_storage


def bookkeeping(url: str, *, trials: int, reports: int) -> list[float]:
    """Seconds of ask + suggest + report x `reports` + tell, trial by trial."""
    storage = open_storage(url, run_dir=None, workers=1, cfg=TuneConfig.model_validate({}))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = study.ask()
        x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("width", 16, 256)
        for step in range(1, reports + 1):
            trial.report(x * step, step)
        study.tell(trial, x)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=1, help="intermediate values per trial (epochs)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the journal and SQLite files go")
    parser.add_argument("--postgres", help="an existing postgresql:// URL instead of a throwaway cluster")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {args.trials} trials, files in {args.dir}")
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # ask/tell here, not optimize: no heartbeat
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp, ExitStack() as stack:
        urls = {"journal (default)": str(Path(tmp) / "study.journal"), "sqlite": f"sqlite:///{tmp}/study.db"}
        bindir = server_binaries()
        if args.postgres:
            urls["postgresql"] = args.postgres
        elif bindir is not None:
            urls["postgresql"] = stack.enter_context(throwaway_postgres(bindir))
        medians = {}
        for name, url in urls.items():
            times = sorted(bookkeeping(url, trials=args.trials, reports=args.reports))
            medians[name] = statistics.median(times) * 1000
            p90 = times[int(0.9 * len(times))] * 1000
            print(f"{name:18s} median {medians[name]:6.2f} ms   p90 {p90:6.2f} ms   per trial")
        if "postgresql" not in urls:
            print("postgresql         skipped: no server binaries (apt-get install postgresql) and no --postgres")
    verdict = "meets" if medians["journal (default)"] <= 5 else "misses"
    print(f"journal median {medians['journal (default)']:.2f} ms {verdict} the <= 5 ms target")


if __name__ == "__main__":
    main()
