"""The learning-rate range test (T31): sweep the LR exponentially, read a suggestion off the loss curve.

The sweep trains a deep copy of the model (and of the optimizer, whose state it keeps, so a
finder run after training probes the trained model) for `steps` mini-batches while the LR grows
from `start_lr` to `end_lr`, records a debiased exponential moving average of the loss (beta
0.98) and stops once that average exceeds `diverge` times its best value. The caller's model,
optimizer and global RNG states are left bit-identical.

Four suggestion rules read the smoothed curve, as fastai computes them (the first tenth and the
last 5 points are skipped): `valley` (the default; fastai found it the most reliable) sits
two-thirds into the longest descending stretch, `minimum` is a tenth of the LR of the lowest
loss, `steepest` is where the loss falls fastest per decade, `slide` slides a window in from the
right until the slope stops changing. When they disagree by more than 10x the curve has no clear
valley: the result falls back to the task default LR with a warning. Suggestions also swing with
the seed (a complaint about both fastai's and Lightning's finders), so `seeds=(0, 1, 2)` runs
the sweep once per seed, reports the spread and takes the median.

Sources: Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (the range test);
fastai `callback/schedule.py` (`LRFinder`, `valley`, `slide`, `minimum`, `steep`); Lightning
`tuner/lr_finder.py` (`_LRCallback`: smoothing and the 4x divergence stop).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.errors import BadInput, must_be
from tunesmith.recipe import TrainConfig
from tunesmith.repro import torch_threads
from tunesmith.run import write_json
from tunesmith.train.losses import LossFn
from tunesmith.train.trainer import DataArg, forever, probe_trainer, resolve_device

__all__ = [
    "RULES",
    "LRFindResult",
    "decide",
    "lr_find",
    "suggest",
]

RULES = ("valley", "minimum", "steepest", "slide")  # valley first: the default rule
AGREE_WITHIN = 10.0  # rules within this factor of each other agree
MIN_POINTS = 10  # usable (trimmed) points the rules need
# The resolved defaults for a model trained from scratch (T07 batch, T30 optimizer, T31 lr).
PROBE_DEFAULTS = TrainConfig.model_validate({"batch_size": 64, "lr": 1e-3, "optimizer": "adamw"})


@dataclass
class LRFindResult:
    """The curve (of the first seed), each rule's suggestion and the verdict; `to_json` writes lr_find.json."""

    lrs: list[float]
    losses: list[float]  # raw per-step training loss
    smoothed: list[float]  # debiased exponential moving average of `losses`
    suggestions: dict[str, float]  # rule -> lr (median over seeds)
    suggestion: float  # valley when the rules agree, else the recipe's lr (the task default unless set)
    agree: bool  # all rules within AGREE_WITHIN of each other
    warning: str | None
    spread: dict[str, Any] = field(default_factory=dict)  # {"seeds", "suggestions": rule -> per seed, "ratio"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path) -> Path:
        """Write the result as JSON to `path`, or to `path/lr_find.json` when `path` is a directory."""
        path = Path(path)
        target = path / "lr_find.json" if path.is_dir() else path
        write_json(target, self.to_dict())
        return target

    def describe(self) -> list[str]:
        """The suggestion and its evidence, one line each (for a terminal or a report)."""
        lines = [f"suggested lr {self.suggestion:.2e}" + ("" if self.agree else " (the recipe's lr)")]
        rules = ", ".join(f"{rule} {lr:.2e}" for rule, lr in self.suggestions.items())
        verdict = "within" if self.agree else "more than"
        lines.append(f"rules: {rules} ({verdict} {AGREE_WITHIN:.0f}x of each other)")
        if len(self.spread.get("seeds", [])) > 1:
            swing = ", ".join(f"{rule} {ratio:.1f}x" for rule, ratio in self.spread["ratio"].items())
            lines.append(f"swing over seeds {self.spread['seeds']} (max/min): {swing}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        return lines

    def plot(self, path: str | Path) -> Path:
        """Save the curve with every rule marked (matplotlib, no global backend change)."""
        from matplotlib.figure import Figure

        path = Path(path)
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        ax = fig.subplots()
        ax.plot(self.lrs, self.losses, color="0.8", lw=0.8, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=1.8, label="smoothed")
        log_lrs = np.log10(self.lrs)
        for i, (rule, lr) in enumerate(self.suggestions.items()):
            at = float(np.interp(np.log10(lr), log_lrs, self.smoothed))
            ax.axvline(lr, color=f"C{i + 1}", ls="--", lw=0.9)
            ax.plot([lr], [at], "o", color=f"C{i + 1}", label=f"{rule} {lr:.1e}")
        ax.axvline(self.suggestion, color="k", lw=1.5, label=f"suggestion {self.suggestion:.1e}")
        ax.set_xscale("log")
        ax.set_ylim(min(self.smoothed) * 0.95 - 1e-12, max(self.smoothed[0], min(self.smoothed)) * 1.3 + 1e-12)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("LR range test: " + ("rules agree" if self.agree else "rules disagree, the recipe's lr used"))
        ax.legend(fontsize=8)
        fig.savefig(path, dpi=110)
        return path


def lr_find(
    model: nn.Module,
    train: DataArg,
    *,
    task: str,
    cfg: TrainConfig | None = None,
    loss_fn: nn.Module | LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    smooth: float = 0.98,
    diverge: float = 4.0,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
) -> LRFindResult:
    """Run the LR range test on copies of `model` and `optimizer`; the originals are not touched.

    train: what `Trainer.batches` accepts ((x, y), a Dataset or a DataLoader).
    cfg: a resolved TrainConfig (batch size, optimizer, clipping, penalties); None: AdamW, batch 64.
    optimizer: the caller's optimizer (its state is kept in the copy); None: built from `cfg`.
    seeds: one sweep per seed (shuffling and dropout), reported in `spread`; None: `(seed,)`.
    """
    if not 0 < start_lr < end_lr:
        raise BadInput(must_be("start_lr", "lr_find", f"a float in (0, end_lr={end_lr})", start_lr))
    if steps < MIN_POINTS * 2:
        raise BadInput(must_be("steps", "lr_find", f"an int >= {MIN_POINTS * 2}", steps))
    if not 0 <= smooth < 1:
        raise BadInput(must_be("smooth", "lr_find", "a float in [0, 1)", smooth))
    if diverge <= 1:
        raise BadInput(must_be("diverge", "lr_find", "a float > 1", diverge))
    default_lr = _default_lr(cfg, optimizer)
    cfg = cfg if cfg is not None else PROBE_DEFAULTS
    seeds = tuple(seeds) if seeds else (seed,)
    curves = [
        _sweep(
            model,
            train,
            task=task,
            cfg=cfg.model_copy(update={"seed": s}),
            loss_fn=loss_fn,
            optimizer=optimizer,
            lrs=np.geomspace(start_lr, end_lr, steps),
            smooth=smooth,
            diverge=diverge,
        )
        for s in seeds
    ]
    per_seed = [suggest(lrs, smoothed) for lrs, _, smoothed in curves]
    suggestions = {rule: _geo_median([p[rule] for p in per_seed]) for rule in RULES}
    suggestion, agree, warning = decide(suggestions, default_lr)
    spread = {
        "seeds": list(seeds),
        "suggestions": {rule: [p[rule] for p in per_seed] for rule in RULES},
        "ratio": {rule: max(p[rule] for p in per_seed) / min(p[rule] for p in per_seed) for rule in RULES},
    }
    lrs, losses, smoothed = curves[0]
    return LRFindResult(lrs, losses, smoothed, suggestions, suggestion, agree, warning, spread)


# ---- the sweep --------------------------------------------------------------------------------


def _sweep(
    model: nn.Module,
    train: DataArg,
    *,
    task: str,
    cfg: TrainConfig,
    loss_fn: nn.Module | LossFn | None,
    optimizer: torch.optim.Optimizer | None,
    lrs: np.ndarray,
    smooth: float,
    diverge: float,
) -> tuple[list[float], list[float], list[float]]:
    """(lrs, losses, smoothed) of one sweep, up to the divergence stop."""
    device = resolve_device(cfg.device)
    # One deepcopy call shares its memo: the copied optimizer holds the copied model's parameters.
    net, opt = copy.deepcopy((model, optimizer))
    # The caller's RNG (dropout, shuffling) and thread count are restored afterwards.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        trainer = probe_trainer(net, cfg, task=task, loss_fn=loss_fn, optimizer=opt)
        groups = trainer.optimizer.param_groups
        base = groups[0]["lr"] or 1.0
        ratios = [g["lr"] / base for g in groups]  # discriminative LRs keep their proportions
        batches = forever(trainer.batches(train, train=True))
        seen, raw, smoothed = [], [], []
        avg, best = 0.0, math.inf
        for step, lr in enumerate(lrs):
            for group, ratio in zip(groups, ratios, strict=True):
                group["lr"] = float(lr) * ratio
            loss = float(trainer.train_step(*next(batches)))  # host sync per step: the stop rule reads it
            if not math.isfinite(loss):
                break
            avg = smooth * avg + (1 - smooth) * loss
            value = avg / (1 - smooth ** (step + 1))  # debiased: early steps are not pulled towards 0
            seen.append(float(lr))
            raw.append(loss)
            smoothed.append(value)
            best = min(best, value)
            if value > diverge * best:
                break
    return seen, raw, smoothed


# ---- the rules --------------------------------------------------------------------------------


def suggest(lrs: Sequence[float], smoothed: Sequence[float]) -> dict[str, float]:
    """Every rule's LR on a smoothed curve, skipping its first tenth and last 5 points (fastai)."""
    skip = max(1, len(lrs) // 10)
    lr, loss = np.asarray(lrs[skip:-5], float), np.asarray(smoothed[skip:-5], float)
    if len(lr) < MIN_POINTS:
        where = f" at lr {lrs[-1]:.1e}" if lrs else ""
        raise BadInput(
            f"The LR range test diverged after {len(lrs)} steps{where}: too few points to read a "
            "suggestion. Lower start_lr, or check the data for huge or non-finite values (T31)."
        )
    return {
        "valley": _valley(lr, loss),
        "minimum": _minimum(lr, loss),
        "steepest": _steepest(lr, loss),
        "slide": _slide(lr, loss),
    }


def decide(suggestions: dict[str, float], default_lr: float) -> tuple[float, bool, str | None]:
    """(suggestion, agree, warning): valley when the rules agree within 10x, else `default_lr`."""
    ratio = max(suggestions.values()) / min(suggestions.values())
    if ratio <= AGREE_WITHIN:
        return suggestions["valley"], True, None
    listed = ", ".join(f"{rule} {lr:.1e}" for rule, lr in suggestions.items())
    return (
        default_lr,
        False,
        f"The suggestion rules disagree by {ratio:.0f}x ({listed}): the curve has no clear valley. "
        f"Falling back to the recipe's lr {default_lr:.1e}; look at the plot, or sweep a narrower range.",
    )


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """Two-thirds into the longest decreasing subsequence of the curve (fastai's `valley`)."""
    n = len(losses)
    run = np.ones(n, dtype=int)  # run[i]: longest decreasing subsequence ending at i
    end = 0
    for i in range(1, n):
        higher = losses[:i] > losses[i]
        if higher.any():
            run[i] = run[:i][higher].max() + 1
        if run[i] > run[end]:
            end = i
    start = end - run[end]
    sections = (end - start) / 3
    return float(lrs[min(n - 1, max(0, start + int(sections) + int(sections / 2)))])


def _minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """A tenth of the LR at the lowest loss (fastai's `minimum`)."""
    return float(lrs[int(np.argmin(losses))]) / 10


def _steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """Where the loss falls fastest per unit of log LR (fastai's `steep`)."""
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def _slide(lrs: np.ndarray, losses: np.ndarray, *, lr_diff: int = 15, thresh: float = 0.005) -> float:
    """Slide a window of `lr_diff` points in from the right until its slopes agree (fastai's `slide`)."""
    grads = np.gradient(losses)
    lr_diff = min(lr_diff, len(losses) - 1)
    right, left = -1, -1 - lr_diff
    found = lrs[left]
    while left >= -len(losses) and abs(grads[right] - grads[left]) > thresh:
        found = lrs[left]
        right, left = right - 1, left - 1
    return float(found)


def _geo_median(values: list[float]) -> float:
    """The median on a log scale (an even count takes the geometric mean of the middle two)."""
    return float(np.exp(np.median(np.log(values))))


def _default_lr(cfg: TrainConfig | None, optimizer: torch.optim.Optimizer | None) -> float:
    """The LR the caller would train with anyway: the recipe's (resolved to the T31 default), else the optimizer's."""
    if cfg is not None and cfg.lr is not None:
        return cfg.lr
    if optimizer is not None:
        return float(optimizer.param_groups[0]["lr"])
    return PROBE_DEFAULTS.lr  # type: ignore[return-value]
