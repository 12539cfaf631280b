"""matplotlib figures of a tuning study (catalog T52, T53): history, axes, curves, importances, parallel.

Drawn from trials.csv rows (number, state, value, stage, params_<name>) and `search.Param`
descriptions of the space, in the report's style (see plots.py); Optuna's own plotly figures
would need a JavaScript runtime in the page, which a self-contained report avoids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from tunesmith.report.plots import epoch_axis, log_axis, new_figure, styled

if TYPE_CHECKING:
    from tunesmith.report.search import Param

__all__ = ["axis", "history", "importance_bars", "parallel", "trial_curves"]


@styled
def history(trials: pd.DataFrame, *, maximize: bool, metric: str, best: int | None) -> Figure:
    """Every trial's score by trial number, coloured by stage; pruned/failed trials grey; best so far as a step line."""
    fig = new_figure(width=7.2, height=3.4)
    ax = fig.add_subplot()
    state = trials["state"].astype(str).str.upper()
    done = trials[(state == "COMPLETE") & trials["value"].notna()].sort_values("number")
    stages = done["stage"].fillna("") if "stage" in done else pd.Series("", index=done.index)
    for i, stage in enumerate(dict.fromkeys(stages)):
        part = done[stages == stage]
        ax.scatter(part["number"], part["value"], s=16, color=f"C{i}", label=stage or "complete", zorder=2)
    other = trials[(state != "COMPLETE") & trials["value"].notna()]
    if len(other):
        ax.scatter(other["number"], other["value"], s=14, marker="x", color="0.6", label="pruned / failed")
    running = done["value"].cummax() if maximize else done["value"].cummin()
    ax.step(done["number"], running, where="post", color="black", lw=1.2, label="best so far", zorder=3)
    if best is not None and (done["number"] == best).any():
        row = done[done["number"] == best].iloc[0]
        ax.scatter(
            [row["number"]],
            [row["value"]],
            marker="*",
            s=180,
            color="gold",
            edgecolor="black",
            zorder=4,
            label=f"best: trial {best}",
        )
    ax.set(xlabel="trial", ylabel=metric, title=f"{metric} of every trial")
    ax.legend(loc="best", ncols=2)
    return fig


@styled
def axis(param: Param, trials: pd.DataFrame, *, metric: str, maximize: bool) -> Figure:
    """Score against one hyperparameter; the space's bounds dashed, the best of these trials starred, later darker."""
    fig = new_figure(width=4.6, height=3.2)
    ax = fig.add_subplot()
    rows = trials[trials[f"params_{param.name}"].notna()]
    x = param.position(rows[f"params_{param.name}"])
    if param.kind == "categorical":  # spread the dots of one category a little
        x = x + np.random.default_rng(0).uniform(-0.12, 0.12, len(x))
    ax.scatter(
        x,
        rows["value"],
        c=rows["number"],
        cmap="Blues",
        vmin=-0.3 * rows["number"].max(),
        s=16,
        edgecolor="0.3",
        linewidth=0.3,
    )
    top = int(np.argmax(rows["value"].to_numpy()) if maximize else np.argmin(rows["value"].to_numpy()))
    ax.scatter(
        [x[top]],
        [rows["value"].iloc[top]],
        marker="*",
        s=200,
        color="gold",
        edgecolor="black",
        zorder=3,
    )
    if param.kind == "categorical":
        ax.set_xticks(range(len(param.choices)), [str(c) for c in param.choices])
        ax.set_xlim(-0.5, len(param.choices) - 0.5)
    else:
        for bound in (param.low, param.high):
            ax.axvline(bound, color="0.4", ls="--", lw=1)
        if param.log:
            log_axis(ax, "x")
        else:
            span = param.high - param.low
            ax.set_xlim(param.low - 0.04 * span, param.high + 0.04 * span)
    title = f"{param.name} (star: trial {int(rows['number'].iloc[top])})"
    ax.set(xlabel=param.name + (" (log)" if param.log else ""), ylabel=metric, title=title)
    return fig


@styled
def trial_curves(curves: dict[int, list[float]], *, metric: str, scores: dict[int, float]) -> Figure:
    fig = new_figure(width=6.4, height=3.4)
    ax = fig.add_subplot()
    for i, (number, values) in enumerate(curves.items()):
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            color=f"C{i}",
            lw=2.0 if i == 0 else 1.2,
            label=f"trial {number}: {scores[number]:.4g}",
        )
    epoch_axis(ax)
    ax.set(xlabel="epoch", ylabel=f"validation {metric}", title="best trials' learning curves")
    ax.legend()
    return fig


@styled
def importance_bars(found: dict[str, float], *, title: str) -> Figure:
    names = list(found)[::-1]  # largest on top
    fig = new_figure(width=4.6, height=1.0 + 0.35 * len(names), words=True)
    ax = fig.add_subplot()
    ax.barh(names, [found[n] for n in names], color="C0")
    for y, n in enumerate(names):
        ax.text(found[n], y, f" {found[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set(xlabel="importance (shares sum to 1)", title=title)
    ax.grid(axis="y", visible=False)
    return fig


@styled
def parallel(params: list[Param], trials: pd.DataFrame, *, maximize: bool, metric: str, title: str) -> Figure:
    """One line per complete trial across the hyperparameters' axes and the score (better: brighter, best: red)."""
    rows = trials.dropna(subset=[f"params_{p.name}" for p in params])
    values = rows["value"].to_numpy(float)
    span = np.ptp(values) or 1.0
    score = (values - values.min()) / span  # (N,) 1 = highest value
    columns = [p.scaled(rows[f"params_{p.name}"]) for p in params] + [score]
    ys = np.column_stack(columns)  # (N, P + 1) all in [0, 1]
    goodness = score if maximize else 1 - score
    fig = new_figure(width=max(6.0, 1.5 * (len(params) + 1)), height=3.8)
    ax = fig.add_subplot()
    xs = np.arange(ys.shape[1])
    order = np.argsort(goodness)  # best drawn last, on top
    cmap = matplotlib.colormaps["viridis"]
    lines = LineCollection([np.column_stack([xs, ys[i]]) for i in order], colors=cmap(goodness[order]), lw=1, alpha=0.8)
    ax.add_collection(lines)
    ax.plot(xs, ys[order[-1]], color="red", lw=2.5, label=f"best: trial {int(rows['number'].iloc[order[-1]])}")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0))
    for x, p in enumerate(params):
        ax.axvline(x, color="0.3", lw=0.8)
        low, high = (
            (str(p.choices[0]), str(p.choices[-1])) if p.kind == "categorical" else (f"{p.low:.3g}", f"{p.high:.3g}")
        )
        ax.text(x, -0.06, low, ha="center", va="top", fontsize=7)
        ax.text(x, 1.04, high, ha="center", va="bottom", fontsize=7)
    ax.axvline(len(params), color="0.3", lw=0.8)
    ax.text(len(params), -0.06, f"{values.min():.3g}", ha="center", va="top", fontsize=7)
    ax.text(len(params), 1.04, f"{values.max():.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [p.name for p in params] + [metric])
    ax.set_yticks([])
    ax.set_xlim(-0.3, len(params) + 0.3)
    ax.set_ylim(-0.15, 1.15)
    ax.grid(False)
    ax.spines[["left", "bottom"]].set_visible(False)
    ax.set_title(title, loc="left")
    return fig
