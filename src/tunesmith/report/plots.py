"""matplotlib figures of a training run, embedded in the report as SVG `<img>` data URIs.

Figures are built with `matplotlib.figure.Figure` directly, never through pyplot: no global
backend switch (a notebook's inline plots keep working after `fit()`), no figure manager to leak;
rasters (the confusion matrix) go through Agg inside the SVG. Text stays text in the SVG
(`svg.fonttype: none`), which keeps files small and sharp when printed; the hash salt and empty date
make the same run give the same bytes.

Plots: curves train vs val (T61), the learning-rate schedule (T32), the LR range test with every
rule's suggestion (T31), the confusion matrix (T63), residuals (regression), per-layer gradient
norms and activation statistics (T65, T66).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator
from numpy.typing import ArrayLike

__all__ = [
    "STYLE",
    "confusion",
    "curves",
    "epoch_axis",
    "layer_lines",
    "log_axis",
    "lr_range",
    "lr_schedule",
    "new_figure",
    "residuals",
    "styled",
    "to_img",
]

STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titley": 1.0,  # fixed: the automatic title position measures every tick label (a third of a figure's time)
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "svg.fonttype": "none",
    "svg.hashsalt": "tunesmith",
}
P = ParamSpec("P")
R = TypeVar("R")


def styled(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a plotting function under the report's style (rcParams are read when artists are made)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


MARGINS = {"left": 0.8, "right": 0.2, "bottom": 0.55, "top": 0.35}  # inches around numeric-labelled axes


def new_figure(*, width: float = 5.6, height: float = 3.2, words: bool = False) -> Figure:
    """A figure of `width` x `height` inches.

    words: tick labels or legends are words of unknown length (class names, check ids): matplotlib's
    constrained layout sizes the margins to fit them. Otherwise the margins are fixed (MARGINS): numbers
    need no more, and constrained layout doubles the drawing time of a small figure.
    """
    if words:
        return Figure(figsize=(width, height), layout="constrained")
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=MARGINS["left"] / width,
        right=1 - MARGINS["right"] / width,
        bottom=MARGINS["bottom"] / height,
        top=1 - MARGINS["top"] / height,
        wspace=0.45,
    )
    return fig


def epoch_axis(ax: Any) -> None:
    """Whole epochs only on the x axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


@styled
def to_img(fig: Figure, *, alt: str) -> Markup:
    """The figure as an `<img>` holding a base64 SVG data URI (decoded by the browser, printable)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return Markup(
        f'<figure><img alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>{escape(alt)}</figcaption></figure>"
    )


def log_axis(ax: Any, axis: str = "y") -> None:
    """A log scale with plain labels on the decades only: mathtext labels (10^-3) and the minor ticks' objects
    more than double the drawing time of a small figure."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    target.set_minor_locator(NullLocator())


def _log_if_wide(ax: Any, values: ArrayLike) -> None:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if len(finite) and finite.max() / finite.min() > 20:
        log_axis(ax, "y")


@styled
def curves(histories: Sequence[tuple[str, pd.DataFrame]], *, column: str, best_epoch: int | None = None) -> Figure:
    """T61: `column` (loss, accuracy, ...) per epoch, train solid and val dashed, one colour per fold."""
    fig = new_figure()
    ax = fig.add_subplot()
    for i, (label, frame) in enumerate(histories):
        colour = f"C{i}"
        prefix = f"{label} " if label else ""
        for split, style in (("train", "-"), ("val", "--")):
            if f"{split}_{column}" in frame:
                ax.plot(frame["epoch"], frame[f"{split}_{column}"], style, color=colour, label=f"{prefix}{split}")
    if best_epoch is not None and len(histories) == 1:
        ax.axvline(best_epoch, color="0.5", lw=0.8, ls=":", label=f"best epoch {best_epoch}")
    if column == "loss":
        _log_if_wide(ax, np.concatenate([f.filter(like="_loss").to_numpy().ravel() for _, f in histories]))
    epoch_axis(ax)
    ax.set(xlabel="epoch", ylabel=column, title=column.replace("_", " "))
    ax.legend(ncols=2 if len(histories) > 2 else 1)
    return fig


@styled
def lr_schedule(histories: Sequence[tuple[str, pd.DataFrame]]) -> Figure:
    """T32: the learning rate each epoch started with."""
    fig = new_figure(height=2.6)
    ax = fig.add_subplot()
    frame = histories[0][1]  # every fold runs the same schedule
    ax.plot(frame["epoch"], frame["lr"], marker=".", color="C2")
    _log_if_wide(ax, frame["lr"])
    epoch_axis(ax)
    ax.set(xlabel="epoch", ylabel="learning rate", title="learning-rate schedule")
    return fig


@styled
def lr_range(found: dict[str, Any]) -> Figure:
    """T31: loss against learning rate, the smoothed curve, and every rule's suggestion marked."""
    fig = new_figure(width=6.4, height=3.6)
    ax = fig.add_subplot()
    ax.plot(found["lrs"], found["losses"], color="0.7", lw=0.8, label="loss")
    if found.get("smoothed"):
        ax.plot(found["lrs"], found["smoothed"], color="C0", label="smoothed")
    for i, (rule, lr) in enumerate(found.get("suggestions", {}).items()):
        if lr is not None:
            ax.axvline(lr, color=f"C{i + 1}", ls="--", lw=1, label=f"{rule}: {lr:.2g}")
    if found.get("suggestion") is not None:
        ax.axvline(found["suggestion"], color="black", lw=2, label=f"suggestion: {found['suggestion']:.2g}")
    log_axis(ax, "x")
    low, high = np.nanpercentile(np.asarray(found.get("smoothed") or found["losses"], dtype=float), [0, 90])
    ax.set_ylim(low - 0.05 * (high - low), high + 0.3 * (high - low))  # the divergence tail would hide the valley
    ax.set(xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
    ax.legend(loc="upper left")
    return fig


@styled
def confusion(report: dict[str, Any]) -> Figure:
    """T63: counts, coloured by the share of each true class (row)."""
    counts = np.asarray(report["confusion"], dtype=float)
    classes = report["classes"]
    n = len(classes)
    side = min(9.0, 2.2 + 0.42 * n)
    fig = new_figure(width=side + 0.8, height=side, words=True)
    ax = fig.add_subplot()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if n <= 20:
        for (i, j), c in np.ndenumerate(counts):
            if c:
                ax.text(j, i, f"{int(c)}", ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ticks = np.arange(n) if n <= 40 else np.arange(0, n, max(1, n // 20))
    ax.set_xticks(ticks, [classes[t] for t in ticks], rotation=90 if n > 10 else 0)
    ax.set_yticks(ticks, [classes[t] for t in ticks])
    ax.grid(False)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return fig


@styled
def token_lengths(lengths: dict[str, Any], *, max_length: int) -> Figure:
    """Text: the training rows' token counts (a histogram stored by the tokenizer) and the max length cut."""
    fig = new_figure()
    ax = fig.add_subplot()
    edges = np.asarray(lengths["edges"], dtype=float)
    ax.stairs(lengths["counts"], edges, fill=True, alpha=0.7)
    ax.axvline(max_length, color="C3", lw=1.5, ls="--", label=f"max_length {max_length}")
    ax.set(xlabel="tokens per training text", ylabel="rows", title="token lengths (training rows)")
    ax.legend()
    return fig


@styled
def residuals(true: np.ndarray, pred: np.ndarray, *, target: str) -> Figure:
    """Regression: predicted vs true, residuals vs predicted, and the residuals' histogram."""
    fig = new_figure(width=9.6, height=3.0)
    a, b, c = fig.subplots(1, 3)
    res = pred - true
    low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    a.scatter(true, pred, s=8, alpha=0.6)
    a.plot([low, high], [low, high], color="0.4", lw=1, ls="--")
    a.set(xlabel=f"true {target}", ylabel="predicted", title="predicted vs true")
    b.scatter(pred, res, s=8, alpha=0.6)
    b.axhline(0, color="0.4", lw=1, ls="--")
    b.set(xlabel="predicted", ylabel="residual (pred − true)", title="residuals")
    c.hist(res, bins=min(40, max(5, len(res) // 5)), color="C1")
    c.set(xlabel="residual", ylabel="rows", title="residual distribution")
    return fig


@styled
def layer_lines(layers: pd.DataFrame, *, column: str, title: str, log: bool = False) -> Figure:
    """T65/T66: one line per layer over epochs, coloured from the input (dark) to the output (light)."""
    rows = layers.dropna(subset=[column])
    names = list(dict.fromkeys(rows["layer"]))  # first-seen order = forward order
    fig = new_figure(width=6.4, height=3.6, words=True)  # the legend holds layer names
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"]
    for i, name in enumerate(names):
        part = rows[rows["layer"] == name]
        ax.plot(part["epoch"], part[column], color=cmap(i / max(1, len(names) - 1)), marker=".", label=name)
    if log:
        log_axis(ax, "y")
    epoch_axis(ax)
    ax.set(xlabel="epoch", ylabel=column, title=title)
    if len(names) <= 12:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        mappable = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, len(names) - 1))
        fig.colorbar(mappable, ax=ax, label="layer (input → output)")
    return fig
