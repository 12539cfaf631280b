"""`tunesmith compare`: is a change a real improvement, or seed noise? (catalog T50)

Variants (recipes, overrides, `--vary` values or existing run directories) run on the same seeds
and splits; the paired differences of the validation metric give a t-based 95% interval, a
verdict ("better", "worse" or "no detectable difference") and the smallest effect detectable at
this many seeds. The same seed is run twice to check that the setup is deterministic.

    variants.py  what a variant is; same-data check (pairing)
    execute.py   one `fit` run directory per variant x seed, in spawned worker processes
    stats.py     paired t interval, verdict, smallest detectable effect (SciPy)
    result.py    CompareResult: table, verdict(a, b), determinism, compare.json, rich table
    runner.py    compare(): plan, run, judge, write

The package is `comparison`, not `compare`: importing a submodule `tunesmith.compare` would set it
as the package attribute and shadow the function `ts.compare`.
"""

from tunesmith.comparison.result import CompareResult, Determinism, SeedRun
from tunesmith.comparison.runner import compare
from tunesmith.comparison.stats import Verdict
from tunesmith.comparison.variants import parse_vary

__all__ = ["CompareResult", "Determinism", "SeedRun", "Verdict", "compare", "parse_vary"]
