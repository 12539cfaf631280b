"""`tunesmith compare` results in the report (compare.json, catalog T50): seeds, intervals, verdicts.

compare.json (shared/design.md, docs/compare.md): `{"metric", "higher_is_better", "seeds", "variants":
{NAME: {"values", "mean", "std", "ci95"}}, "verdicts": [{"a", "b", "diff", "ci95", "verdict"}]}`. The
report draws every seed's value per variant (the same seed joined across variants: the runs are
paired), each variant's mean with the 95% interval compare wrote (comparison/stats.py), and each
verdict's paired difference with its interval. It recomputes none of them; a file without a
variant's `ci95` shows no interval for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup
from matplotlib.figure import Figure

from tunesmith.errors import BadInput
from tunesmith.report.files import RunFiles
from tunesmith.report.html import badge, grid, note, table
from tunesmith.report.plots import new_figure, styled, to_img

__all__ = ["Comparison"]


class Comparison:
    name = "compare"
    title = "Compare: variants on shared seeds (T50)"

    def applies(self, run: RunFiles) -> bool:
        return run.compare is not None

    def render(self, run: RunFiles) -> Markup:
        cmp = run.compare
        if not isinstance(cmp, dict) or not isinstance(cmp.get("variants"), dict) or not cmp["variants"]:
            raise BadInput(f"{run.path / 'compare.json'} must hold a 'variants' mapping (see docs/report.md).")
        metric = cmp.get("metric", "metric")
        better = "higher" if cmp.get("higher_is_better", True) else "lower"
        rows = [
            [name, len(v["values"]), v.get("mean"), v.get("std"), *_interval(v)] for name, v in cmp["variants"].items()
        ]
        verdicts = [
            [f"{d['a']} vs {d['b']}", d["diff"], d["ci95"][0], d["ci95"][1], badge(d["verdict"])]
            for d in cmp.get("verdicts", [])
        ]
        figures = [to_img(seed_strip(cmp), alt=f"{metric} per seed and variant, mean with 95% interval")]
        if cmp.get("verdicts"):
            figures.append(to_img(differences(cmp), alt="paired differences with 95% intervals"))
        seeds = ", ".join(str(s) for s in cmp.get("seeds", []))
        return (
            note(f"metric: {metric} ({better} is better); seeds: {seeds or 'not recorded'}.")
            + grid(*figures)
            + table(["variant", "runs", "mean", "std", "95% low", "95% high"], rows, css="variants")
            + (
                table(["comparison (a − b)", "difference", "95% low", "95% high", "verdict"], verdicts)
                if verdicts
                else Markup("")
            )
        )


@styled
def seed_strip(cmp: dict[str, Any]) -> Figure:
    """Per-seed dots per variant, joined by seed, and each variant's mean with its 95% interval."""
    names = list(cmp["variants"])
    fig = new_figure(width=max(4.0, 1.3 * len(names) + 2.0), height=3.4, words=True)
    ax = fig.add_subplot()
    values = [np.asarray(cmp["variants"][n]["values"], dtype=float) for n in names]
    if len({len(v) for v in values}) == 1:  # paired by seed: join each seed across variants
        ax.plot(np.arange(len(names)), np.column_stack(values).T, color="0.8", lw=0.8, zorder=1)
    for i, (v, variant) in enumerate(zip(values, cmp["variants"].values(), strict=True)):
        ax.scatter(np.full(len(v), i), v, s=18, color=f"C{i}", zorder=2, label=None)
        mean, (low, high) = variant.get("mean"), _interval(variant)
        if mean is not None:
            yerr = None if low is None or high is None else [[mean - low], [high - mean]]
            ax.errorbar(i + 0.18, mean, yerr=yerr, fmt="D", color="black", capsize=4, zorder=3)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set(ylabel=cmp.get("metric", "metric"), title="per seed (dots), mean and 95% interval (black)")
    ax.set_xlim(-0.5, len(names) - 0.3)
    return fig


@styled
def differences(cmp: dict[str, Any]) -> Figure:
    """Each verdict's difference a − b (in the metric's own direction) with its 95% interval; 0 = no change."""
    verdicts = cmp["verdicts"]
    fig = new_figure(width=5.6, height=1.0 + 0.45 * len(verdicts), words=True)
    ax = fig.add_subplot()
    y = np.arange(len(verdicts))[::-1]
    colours = {"better": "#1a7f37", "worse": "#cf222e"}
    for yi, d in zip(y, verdicts, strict=True):
        low, high = d["ci95"]
        ax.plot([low, high], [yi, yi], color=colours.get(d["verdict"], "0.4"), lw=2)
        ax.plot(d["diff"], yi, "o", color=colours.get(d["verdict"], "0.4"))
    ax.axvline(0, color="black", lw=1, ls="--")
    ax.set_yticks(y, [f"{d['a']} − {d['b']}" for d in verdicts])
    ax.set(xlabel=f"difference in {cmp.get('metric', 'metric')}", title="paired differences, 95% intervals")
    return fig


def _interval(variant: dict[str, Any]) -> tuple[float | None, float | None]:
    """The variant's 95% interval of the mean as compare wrote it; (None, None) when the file has none."""
    low, high = variant.get("ci95") or (None, None)
    return low, high
