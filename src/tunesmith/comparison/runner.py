"""`compare()`: plan variants x shared seeds, run them (or read existing runs), judge, write compare.json."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunesmith.comparison.execute import Job, available_cores, run_jobs
from tunesmith.comparison.result import CompareResult
from tunesmith.comparison.variants import Variant, VariantSpec, check_pairable, load_runs, make_variants, run_data
from tunesmith.errors import BadInput, must_be
from tunesmith.recipe import Recipe
from tunesmith.run import default_run_dir
from tunesmith.train.metrics import get_metric

__all__ = ["compare"]

DEFAULT_SEEDS = 5  # enough to see a few-point change on small data; the result says when more are needed


def compare(
    variants: Mapping[str, VariantSpec] | Sequence[str | Path] | None = None,
    *,
    vary: Mapping[str, Sequence[Any]] | None = None,
    base: Recipe | str | Path | None = None,
    seeds: int | Sequence[int] | None = None,
    metric: str | None = None,
    out: str | Path | None = None,
    workers: int | None = None,
    resume: bool = False,
    check_determinism: bool = True,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
    **shortcuts: Any,
) -> CompareResult:
    """Run every variant on the same seeds (and folds) and judge each against the first (T50).

    variants: {name: overrides dict | Recipe | recipe file | run directory}, or a list of recipe
        files / run directories (named after them). vary: {"model.dropout": [0, 0.2, 0.5]} makes one
        variant per value (every combination for several keys) on `base`.
    seeds: how many (0..n-1) or which seeds; default 5. Existing run directories bring their own.
    metric: the validation metric of the verdict (default: the task's, accuracy, rmse or loss; train/metrics.py).
    workers: parallel worker processes (default: one per available core, at most one per run).
    check_determinism: run the first variant's first seed twice and report any difference.
    overrides / shortcuts (data="digits", epochs=20, cv=5, ...): recipe settings shared by all variants.
    """
    if metric is not None:
        get_metric(metric, owner="compare")  # an unknown name fails before any training
    if workers is not None and workers < 1:
        raise BadInput(must_be("workers", "compare", "an integer >= 1", workers))
    planned = make_variants(variants, vary=vary, base=base, overrides=overrides, shortcuts=shortcuts)
    out_dir = Path(out) if out is not None else default_run_dir("compare")
    if out_dir.exists() and any(out_dir.iterdir()) and not resume:
        raise BadInput(
            f"The output directory {out_dir} is not empty. Pass --resume to continue the comparison started "
            "there, or choose another --out."
        )
    if planned[0].recipe is None:
        if seeds is not None:
            raise BadInput("seeds= applies to new runs; run directories are compared on the seeds they were run with.")
        records = [record for v in planned if v.path is not None for record in load_runs(v.name, v.path)]
        check_pairable({f"{r.variant} ({r.path})": run_data(r) for r in records})
    else:
        jobs = _jobs(planned, _seeds(seeds), out_dir, resume=resume, repeat=check_determinism)
        records = run_jobs(jobs, workers=workers or min(available_cores(), len(jobs)), progress=progress)
    result = CompareResult(records, metric=metric, out=out_dir)
    result.to_json()
    from tunesmith.report import write_report  # lazy: matplotlib loads only here

    write_report(out_dir)  # report.html: per-seed dots, intervals and verdicts of every variant
    return result


def _seeds(seeds: int | Sequence[int] | None) -> list[int]:
    if seeds is None or isinstance(seeds, int):
        chosen = list(range(DEFAULT_SEEDS if seeds is None else seeds))
    else:
        chosen = [int(s) for s in seeds]
    if len(chosen) < 2 or len(set(chosen)) < len(chosen):
        raise BadInput(
            must_be(
                "seeds",
                "compare",
                "at least 2 distinct seeds (a count >= 2 or a list)",
                seeds,
                hint="One seed cannot tell a change from seed noise; 5 is a reasonable start.",
            )
        )
    return chosen


def _jobs(variants: list[Variant], seeds: list[int], out: Path, *, resume: bool, repeat: bool) -> list[Job]:
    """Seed-major order (every variant advances together); the determinism repeat right after its original."""
    folders = {v.name: out / _slug(v.name) for v in variants}
    if len(set(folders.values())) < len(folders):
        raise BadInput(f"Variant names {', '.join(folders)} would share a folder in {out}. Rename one of them.")
    jobs = []
    for seed in seeds:
        for v in variants:
            recipe = v.recipe.with_overrides({"train.seed": seed})  # type: ignore[union-attr]
            jobs.append(Job(v.name, seed, recipe, folders[v.name] / f"seed-{seed}", resume, out / "embeddings"))
            if repeat and len(jobs) == 1:
                repeat_out = folders[v.name] / f"seed-{seed}-repeat"
                jobs.append(Job(v.name, seed, recipe, repeat_out, resume, out / "embeddings"))
    return jobs


def _slug(name: str) -> str:
    """A folder name for a variant: its name with path separators and odd characters replaced."""
    return re.sub(r"[^\w.=,+-]", "_", name)
