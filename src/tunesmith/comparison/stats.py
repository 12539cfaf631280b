"""Paired statistics of a comparison (T50): per-seed differences, a t-based 95% interval, a verdict.

Every variant runs on the same seeds (and, with --cv, the same folds), so the question "is A
better than B?" is answered from the paired differences d_s = metric(A, s) - metric(B, s). With
K folds the K differences of one seed are averaged first: folds of one seed share most of their
training rows, so they are not independent samples, while seeds are (Nadeau & Bengio 2003 show
how treating folds as independent makes intervals too narrow). n is therefore the number of
seeds, and the interval is Student's t on n - 1 degrees of freedom (SciPy `ttest_1samp`), which
at 5-10 seeds is better calibrated than a bootstrap (a bootstrap of 5 values is too narrow).

The verdict is "no detectable difference" unless the interval excludes zero. Alongside it, the
smallest detectable effect: the true difference a two-sided paired t-test at alpha = 0.05 would
detect with 80% power at this n and the observed spread of the differences, i.e. the delta that
solves P(T' > t_{0.975, n-1}) = 0.8 with T' noncentral t (n - 1 df, noncentrality
delta * sqrt(n) / sd_diff); it is close to (t_{0.975, n-1} + t_{0.8, n-1}) * sd_diff / sqrt(n).
A change smaller than that is invisible at this many seeds: add seeds to see it. When the
difference is the same at every seed (often exactly 0 on a small validation set), there is no
spread to estimate it from, and it is reported as unknown rather than as 0.
Source: Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

__all__ = ["ALPHA", "POWER", "Verdict", "mean_interval", "paired_verdict", "per_seed", "smallest_detectable_effect"]

TINY = 1e-12  # a spread below this is float round-off of equal values (1.0 - 0.9583 vs 0.9583 - 0.9167)
ALPHA = 0.05  # two-sided: the 95% interval; an A/A comparison is called "different" 5% of the time
POWER = 0.8  # the usual design power for the smallest detectable effect

VerdictName = Literal["better", "worse", "no detectable difference"]


@dataclass(frozen=True)
class Verdict:
    """Variant `a` against variant `b`: `diff` is a minus b in the metric's own units and direction."""

    a: str
    b: str
    metric: str
    diff: float
    ci95: tuple[float, float]
    verdict: VerdictName
    n: int  # seeds (independent paired units)
    p_value: float
    smallest_effect: float | None  # smallest |diff| detectable with 80% power; None: the diffs did not vary

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95"] = list(self.ci95)
        return out

    def __str__(self) -> str:
        lo, hi = self.ci95
        return f"{self.a} vs {self.b}: {self.metric} {self.diff:+.4f} [{lo:+.4f}, {hi:+.4f}] -> {self.verdict}" + (
            f" (smallest detectable at {self.n} seeds: {self.smallest_effect:.4f})" if self.smallest_effect else ""
        )


def per_seed(values: np.ndarray) -> np.ndarray:
    """(seeds,) or (seeds, folds) values -> one value per seed (the mean over its folds)."""
    values = np.asarray(values, dtype=float)
    return values.mean(axis=1) if values.ndim == 2 else values


def mean_interval(values: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    """Mean, seed-to-seed std and the t-based 95% interval of the mean, from per-seed values."""
    x = per_seed(values)
    mean, sd = float(x.mean()), _spread(x)
    if sd == 0.0:  # every seed agrees exactly (a deterministic, saturated setup): no spread to widen by
        return mean, sd, (mean, mean)
    lo, hi = stats.t.interval(1 - ALPHA, len(x) - 1, loc=mean, scale=sd / np.sqrt(len(x)))
    return mean, sd, (float(lo), float(hi))


def paired_verdict(
    a: np.ndarray, b: np.ndarray, *, higher_is_better: bool, names: tuple[str, str] = ("a", "b"), metric: str = ""
) -> Verdict:
    """Compare paired results ((seeds,) or (seeds, folds), row s of `a` pairs with row s of `b`)."""
    diffs = per_seed(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))  # (seeds,)
    n, mean, sd = len(diffs), float(diffs.mean()), _spread(diffs)
    if sd == 0.0:  # identical differences at every seed: the interval collapses onto the mean
        ci, p_value = (mean, mean), 1.0 if mean == 0.0 else 0.0
    else:
        test = stats.ttest_1samp(diffs, 0.0)
        low, high = test.confidence_interval(1 - ALPHA)
        ci, p_value = (float(low), float(high)), float(test.pvalue)
    verdict: VerdictName = "no detectable difference"
    if ci[0] > 0 or ci[1] < 0:  # the interval excludes zero
        verdict = "better" if (mean > 0) == higher_is_better else "worse"
    return Verdict(names[0], names[1], metric, mean, ci, verdict, n, p_value, smallest_detectable_effect(sd, n))


def _spread(x: np.ndarray) -> float:
    sd = float(x.std(ddof=1))
    return 0.0 if sd < TINY else sd


def smallest_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """The true mean difference a two-sided paired t-test detects with `power` (noncentral t, SciPy).

    None when sd is 0: the difference was the same at every seed, so there is no spread to scale by.
    """
    if sd == 0.0:
        return None
    df, se = n - 1, sd / np.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        # the wrong-sign tail P(T' < -critical) is < 1e-4 near 80% power (and NaN in SciPy for large
        # noncentralities), so power is the upper tail alone
        return float(stats.nct.sf(critical, df, effect / se)) - power

    # power grows with the effect; at (critical + 10) standard errors it is ~1 for any df >= 1
    return float(optimize.brentq(shortfall, 0.0, (critical + 10.0) * se))
