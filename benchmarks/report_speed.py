"""Report speed and size for a tuned run (issue 4: written in < 5 s after training ends, file < 5 MB).

A real fit (digits, 3 epochs) leaves its run directory; beside it go a tuning study of 100 trials
in three stages, an LR range test, doctor findings and a comparison (tests/report_fixtures.py, the
documented formats). The report is then timed in a fresh process in the state training leaves it
(torch, pandas, scikit-learn loaded; matplotlib, jinja2, SciPy and Optuna not yet): the first
report pays for those imports, a second one shows the steady cost. Prints the seconds, the size
and their ratios to the budgets.

    python benchmarks/report_speed.py [--trials 100] [--out /tmp/report-speed]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S, BUDGET_MB = 5.0, 5.0


def prepare(out: Path, trials: int) -> Path:
    sys.path.insert(0, str(ROOT))  # the repository root, for tests.report_fixtures
    from tests.report_fixtures import write_all

    from tunesmith.fitting import fit

    shutil.rmtree(out, ignore_errors=True)
    run = fit(data="digits", epochs=3, out=out, progress=False).run_dir
    write_all(run, n_trials=trials)
    return run


def time_report(run: Path) -> None:
    """Runs in a fresh process: load what training loads, then time the first and a second report."""
    import tunesmith.fitting  # noqa: F401  (torch, pandas, scikit-learn: what a finished training has loaded)

    started, cpu = time.perf_counter(), time.process_time()
    from tunesmith.report import write_report

    path = write_report(run)
    first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    write_report(run)
    warm, warm_cpu = time.perf_counter() - started, time.process_time() - cpu
    mb = path.stat().st_size / 1e6
    load = os.getloadavg()[0]
    print(f"report: {path} ({os.cpu_count()} CPUs, load average {load:.1f}: wall time grows with the load)")
    print(
        f"first report after training (imports included): {first:.2f} s = {first / BUDGET_S:.2f} x the 5 s budget "
        f"(CPU {first_cpu:.2f} s)"
    )
    print(f"second report (warm): {warm:.2f} s = {warm / BUDGET_S:.2f} x the budget (CPU {warm_cpu:.2f} s)")
    print(f"size: {mb:.2f} MB = {mb / BUDGET_MB:.2f} x the 5 MB budget")


def main() -> None:
    parser = argparse.ArgumentParser(description="Report speed and size for a tuned run.")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("/tmp/report-speed"))
    parser.add_argument("--time-only", action="store_true", help="time the report of an existing --out")
    args = parser.parse_args()
    if args.time_only:
        time_report(args.out)
        return
    run = prepare(args.out, args.trials)
    print(f"run directory: {run} (digits, 3 epochs) + {args.trials} tuning trials, lr_find, findings, compare")
    subprocess.run([sys.executable, __file__, "--time-only", "--out", str(run)], check=True)


if __name__ == "__main__":
    main()
