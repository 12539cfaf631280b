"""The result of a comparison: per-variant table, paired verdicts, determinism, compare.json, a rich table.

Built from seed runs (one per variant x seed, each a run directory's metrics.json), whether
the runs were just trained or read from existing run directories. A second run of the same
variant and seed is a repeat: it must match the first exactly, or the setup is nondeterministic
(T50) and the result says by how much. compare.json follows shared/design.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunesmith.comparison.stats import Verdict, mean_interval, paired_verdict, per_seed
from tunesmith.errors import BadInput, closest
from tunesmith.run import write_json
from tunesmith.train.metrics import DEFAULT_FOR_TASK, get_metric

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["CompareResult", "Determinism", "SeedRun"]


@dataclass(frozen=True)
class SeedRun:
    """One finished run of one variant at one seed."""

    variant: str
    seed: int
    path: Path
    metrics: dict[str, Any]  # the run's metrics.json

    def values(self, metric: str) -> list[float]:
        """Validation values of `metric`: one per fold under --cv, else one."""
        folds = self.metrics.get("folds") or [self.metrics]
        return [float(f["val"][metric]) for f in folds]


@dataclass(frozen=True)
class Determinism:
    """The same variant and seed run twice: the largest difference of any validation metric."""

    variant: str
    seed: int
    diffs: dict[str, float]  # validation metric -> max |difference| over repeats and folds

    @property
    def deterministic(self) -> bool:
        return all(d == 0.0 for d in self.diffs.values())

    def describe(self, metric: str, seed_std: float) -> str:
        if self.deterministic:
            return f"deterministic: {self.variant} at seed {self.seed} run twice gave identical validation metrics."
        share = f", {self.diffs[metric] / seed_std:.0%} of the seed-to-seed std" if seed_std > 0 else ""
        return (
            f"NONDETERMINISTIC: {self.variant} at seed {self.seed} run twice differs by {self.diffs[metric]:.4g} "
            f"{metric}{share} (val loss by {self.diffs['loss']:.3g}). The intervals include this noise; for "
            "exact repeats set train.deterministic=true and a fixed train.threads (T50)."
        )


class CompareResult:
    """Variants x shared seeds. `table`, `verdict(a, b)`, `verdicts` (each variant vs the first), `to_json()`.

    metric: the validation metric of the verdicts (None: the task's default, train/metrics.DEFAULT_FOR_TASK).
    out: the comparison's folder (compare.json, report.html, one folder per variant).
    """

    def __init__(self, records: list[SeedRun], *, metric: str | None = None, out: Path | None = None) -> None:
        self.records, self.out = records, out
        self.variants = list(dict.fromkeys(r.variant for r in self.records))
        self._runs: dict[str, dict[int, SeedRun]] = {v: {} for v in self.variants}
        self._repeats: list[SeedRun] = []
        for r in self.records:
            runs = self._runs[r.variant]
            if r.seed in runs:  # a second run of the same variant and seed: a determinism check
                self._repeats.append(r)
            else:
                runs[r.seed] = r
        owned = [set(runs) for runs in self._runs.values()]
        self.seeds = [s for s in self._runs[self.variants[0]] if all(s in o for o in owned)]
        if len(self.seeds) < 2:
            have = "; ".join(f"{v}: {sorted(runs)}" for v, runs in self._runs.items())
            raise BadInput(
                f"A comparison needs at least 2 seeds shared by every variant, to tell a change from seed "
                f"noise. The variants have seeds {have}. Run more seeds (tunesmith compare --seeds 5)."
            )
        task = self.records[0].metrics["task"]
        self.metric: str = metric or DEFAULT_FOR_TASK[task]
        available = self.records[0].metrics["val"]
        if self.metric not in available:
            guess = closest(self.metric, available)
            raise BadInput(
                f"The metric {self.metric!r} is not reported for this {task} task."
                + (f" Did you mean {guess!r}?" if guess else "")
                + f" Available: {', '.join(available)}."
            )
        self.higher_is_better = get_metric(self.metric, owner="compare").higher_is_better

    @property
    def reference(self) -> str:
        """The variant every other one is judged against (the first: the base, or the first value of --vary)."""
        return self.variants[0]

    def values(self, variant: str) -> np.ndarray:
        """(seeds, folds) validation values of `variant`, rows in the order of `seeds`."""
        runs = self._runs[self._known(variant)]
        return np.array([runs[s].values(self.metric) for s in self.seeds])

    def _known(self, variant: str) -> str:
        if variant not in self._runs:
            guess = closest(variant, self.variants)
            raise BadInput(
                f"No variant named {variant!r} in this comparison."
                + (f" Did you mean {guess!r}?" if guess else "")
                + f" Variants: {', '.join(self.variants)}."
            )
        return variant

    def verdict(self, a: str, b: str) -> Verdict:
        """Is `a` better than `b`? Paired over the shared seeds (and folds), on validation data."""
        return paired_verdict(
            self.values(a), self.values(b), higher_is_better=self.higher_is_better, names=(a, b), metric=self.metric
        )

    @property
    def verdicts(self) -> list[Verdict]:
        return [self.verdict(v, self.reference) for v in self.variants[1:]]

    @property
    def table(self) -> pd.DataFrame:
        """Per variant: validation mean, seed-to-seed std, 95% interval of the mean, test mean, seconds per run."""
        rows = {}
        for v in self.variants:
            mean, std, (low, high) = mean_interval(self.values(v))
            runs = [self._runs[v][s] for s in self.seeds]
            rows[v] = {
                "mean": mean,
                "std": std,
                "ci95_low": low,
                "ci95_high": high,
                "test": float(np.mean([r.metrics.get("test", {}).get(self.metric, math.nan) for r in runs])),
                "seconds": float(np.mean([r.metrics["seconds"] for r in runs])),
                "seeds": len(runs),
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    @property
    def determinism(self) -> Determinism | None:
        """The repeat runs against their originals; None when nothing was run twice."""
        if not self._repeats:
            return None
        diffs: dict[str, float] = {}
        for rep in self._repeats:
            first = self._runs[rep.variant][rep.seed]
            for name in first.metrics["val"]:
                gap = np.abs(np.subtract(rep.values(name), first.values(name))).max()
                diffs[name] = max(diffs.get(name, 0.0), float(gap))
        return Determinism(self._repeats[0].variant, self._repeats[0].seed, diffs)

    def to_dict(self) -> dict[str, Any]:
        """The compare.json document (shared/design.md), plus intervals, test means, run paths."""
        table = self.table
        folds = self.values(self.reference).shape[1]
        check = self.determinism
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "seeds": self.seeds,
            "folds": folds,
            "units": [[s, k + 1] for s in self.seeds for k in range(folds)],  # the order of every "values"
            "variants": {
                v: {
                    "values": self.values(v).ravel().tolist(),
                    "mean": table.at[v, "mean"],
                    "std": table.at[v, "std"],
                    "ci95": [table.at[v, "ci95_low"], table.at[v, "ci95_high"]],
                    "test_mean": _finite(table.at[v, "test"]),  # null without a test split
                    "seconds": table.at[v, "seconds"],
                    "runs": [str(self._runs[v][s].path) for s in self.seeds],
                }
                for v in self.variants
            },
            "verdicts": [v.to_dict() for v in self.verdicts],
            "determinism": None if check is None else {**vars(check), "deterministic": check.deterministic},
        }

    def to_json(self, path: str | Path | None = None) -> Path:
        """Write compare.json (default: in the comparison's output directory) and return its path."""
        if path is None and self.out is None:
            raise BadInput("This comparison has no output directory: pass a path, e.g. res.to_json('compare.json').")
        target = Path(path) if path is not None else Path(str(self.out)) / "compare.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_json(target, self.to_dict())
        return target

    def render(self, console: Console | None = None) -> None:
        """The terminal view: one row per variant, then each verdict against the reference, then the notes."""
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        console = console or Console()
        arrow = "higher" if self.higher_is_better else "lower"
        out = Table(
            title=f"val {self.metric} ({arrow} is better), {len(self.seeds)} paired seeds", title_justify="left"
        )
        out.add_column("variant", no_wrap=True)
        for column in ("mean", "std", "95% interval", f"test {self.metric}", "s/run"):
            out.add_column(column, justify="right", no_wrap=True)
        for v, row in self.table.iterrows():
            out.add_row(
                escape(str(v)),
                f"{row['mean']:.4f}",
                f"{row['std']:.4f}",
                f"[{row['ci95_low']:.4f}, {row['ci95_high']:.4f}]",
                f"{row['test']:.4f}",
                f"{row['seconds']:.1f}",
            )
        console.print(out)
        for v in self.verdicts:
            style = {"better": "green", "worse": "red"}.get(v.verdict, "yellow")
            console.print(
                f"{escape(v.a)} vs {escape(v.b)}: {v.diff:+.4f} {self.metric}, 95% interval "
                f"[{v.ci95[0]:+.4f}, {v.ci95[1]:+.4f}] -> [bold {style}]{v.verdict}[/]"
                + ("; the same difference at every seed" if v.smallest_effect is None else ""),
                highlight=False,
            )
        effects = [v.smallest_effect for v in self.verdicts if v.smallest_effect is not None]
        if effects:
            console.print(
                f"Smallest detectable difference at {len(self.seeds)} seeds: {max(effects):.4f} {self.metric} "
                "(80% power); smaller real effects need more seeds.",
                highlight=False,
            )
        if self.verdicts:
            console.print("Verdicts use validation data; test metrics are for information only.", highlight=False)
        check = self.determinism
        if check is not None:
            seed_std = float(per_seed(self.values(check.variant)).std(ddof=1))
            console.print(escape(check.describe(self.metric, seed_std)), highlight=False)


def _finite(value: Any) -> float | None:
    """JSON has no NaN: a missing number is null."""
    number = float(value)
    return number if math.isfinite(number) else None
