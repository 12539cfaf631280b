"""Fit checks on the seeded short training run: over- and underfitting, ignored inputs (T62, T64).

- overfitting (T64): the validation loss at the end of the run against its best checkpoint, on
  the same rows (a paired t-test over per-row losses): significantly (t > 3) and materially (more
  than a tenth) higher, while the training loss keeps falling.
- underfitting (T64): the training loss at the end against the loss of the best constant
  prediction (the class-share entropy, the target variance): still above 80% of it.
- input_independent (T62): Karpathy 2019's input-independent baseline: half the short run again on
  zeroed inputs, against the real run over the same steps; the real inputs must remove at least
  5% of the loss the zeroed ones leave.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt, series
from tunesmith.diagnosis.loss_checks import LOGIT_LOSSES
from tunesmith.diagnosis.targets import uninformed_loss
from tunesmith.train.losses import ShapedMSE

__all__ = ["InputIndependent", "Overfitting", "Underfitting"]

OVERFIT_RISE = 0.1  # validation loss a tenth above its best checkpoint ...
T_CRITICAL = 3.0  # ... and significantly so: paired t over the same validation rows
PAIRED_ROWS = 512
UNDERFIT = 0.8  # the training loss still holds 80% of the uninformed loss
INPUT_GAIN = 0.05  # real inputs must remove at least 5% of the loss left without them


def _uninformed(ctx: Context) -> float:
    """Training loss of the best constant prediction: the class-share entropy, or the target variance."""
    y = ctx.y_train
    if ctx.task == "classification" and isinstance(ctx.loss_fn, (*LOGIT_LOSSES, nn.NLLLoss, nn.BCELoss)):
        return uninformed_loss(y, ctx.family)
    if ctx.task != "classification" and isinstance(ctx.loss_fn, nn.MSELoss | ShapedMSE):
        return float(y.double().reshape(len(y), -1).var(dim=0, unbiased=False).mean())
    raise Skip(f"no uninformed baseline for {type(ctx.loss_fn).__name__}")


@register_check
class Overfitting(Check):
    """Validation loss significantly above its best checkpoint while the training loss keeps falling (T64)."""

    id = "overfitting"
    group = "run"
    tricks = ("T64", "T41", "T15", "T43")

    def run(self, ctx: Context) -> Finding:
        run = ctx.run
        val, train = np.asarray(run.curve("val")), np.asarray(run.curve("train"))
        data = ctx.eval_split("val")
        if data is None or run.best_state is None or not np.isfinite(val).all():
            raise Skip("needs validation data and a run that did not diverge")
        best = run.checkpoints.index(run.best_step)
        x, y = data[0][:PAIRED_ROWS].to(ctx.device), data[1][:PAIRED_ROWS].to(ctx.device)
        at_best, at_end = _per_row_losses(ctx, ctx.clone(run.best_state), x, y), _per_row_losses(ctx, run.model, x, y)
        diff = at_end - at_best  # paired: the same rows under both weights
        rise = float(diff.mean() / at_best.mean()) if at_best.mean() > 0 else 0.0
        t = float(diff.mean() / (diff.std(ddof=1) / math.sqrt(len(diff)))) if diff.std(ddof=1) > 0 else 0.0
        evidence: dict[str, Any] = {
            "value": rise,
            "threshold": OVERFIT_RISE,
            "t_statistic": t,
            "t_threshold": T_CRITICAL,
            "best_step": run.best_step,
            "val_loss": series(val),
            "train_loss": series(train),
        }
        advice = (
            "Overfitting (T64): regularize with weight decay or L2 (T41) and dropout (T15), stop at the best "
            "epoch (T43: early stopping), or get more data."
        )
        rising = t > T_CRITICAL and train[-1] < train[best]
        if rising and rise > OVERFIT_RISE:
            return self.found(
                "warn",
                f"Validation loss rises from step {run.best_step} ({fmt(float(at_best.mean()))} -> "
                f"{fmt(float(at_end.mean()))}, +{measured(rise, OVERFIT_RISE)}, paired t = {t:.1f}) while the "
                "training loss keeps falling: the model overfits.",
                advice=advice,
                **evidence,
            )
        if rising:
            return self.found(
                "info",
                f"Validation loss turns up slightly after step {run.best_step} (+{rise:.0%}).",
                advice=advice,
                **evidence,
            )
        return self.ok(
            f"Validation loss has not risen significantly (+{max(rise, 0):.0%}, paired t = {t:.1f}).", **evidence
        )


@torch.no_grad()
def _per_row_losses(ctx: Context, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The loss of every row on its own (eval mode): mean-reduced losses average these."""
    out = model.eval()(x)
    return np.array([float(ctx.loss_fn(out[i : i + 1], y[i : i + 1])) for i in range(len(x))])


@register_check
class Underfitting(Check):
    """The training loss stays close to the loss of an uninformed prediction (T64)."""

    id = "underfitting"
    group = "run"
    tricks = ("T64", "T22")

    def run(self, ctx: Context) -> Finding:
        run = ctx.run
        train = run.curve("train")
        if run.diverged_at is not None or not train or not math.isfinite(train[-1]):
            raise Skip("the run diverged (see lr_too_high)")
        baseline = _uninformed(ctx)
        ratio = train[-1] / baseline if baseline > 0 else 0.0
        evidence: dict[str, Any] = {
            "value": ratio,
            "threshold": UNDERFIT,
            "train_loss": series(train),
            "uninformed_loss": baseline,
        }
        if ratio > UNDERFIT:
            return self.found(
                "warn",
                f"After {len(run.losses)} steps the training loss is {fmt(train[-1])}, {measured(ratio, UNDERFIT)} of "
                f"the {fmt(baseline)} of predicting the class shares/mean: the model does not fit its training data.",
                advice="Give the model more capacity (width/depth, T22), less regularization (dropout, weight decay), "
                "better features, or more steps (T64).",
                **evidence,
            )
        return self.ok(f"The training loss fell to {ratio:.0%} of the uninformed loss.", **evidence)


@register_check
class InputIndependent(Check):
    """The same budget on zeroed inputs does as well: the model ignores its input (Karpathy 2019)."""

    id = "input_independent"
    group = "run"
    tricks = ("T62",)

    def run(self, ctx: Context) -> Finding:
        run, zero = ctx.run, ctx.zero_run
        if run.diverged_at is not None or zero.diverged_at is not None:
            raise Skip("a run diverged (see lr_too_high)")
        split = "val" if run.val_curve else "train"
        budget = len(zero.losses)  # compare over the same number of steps
        real = float(np.nanmin([v for s, v in zip(run.checkpoints, run.curve(split), strict=True) if s <= budget]))
        blind = float(np.nanmin(zero.curve(split)))
        gain = 1 - real / blind if blind > 0 else 0.0
        evidence: dict[str, Any] = {
            "value": gain,
            "threshold": INPUT_GAIN,
            "loss": real,
            "zero_input_loss": blind,
            "split": split,
        }
        if gain < INPUT_GAIN:
            return self.found(
                "warn",
                f"Trained on zeroed inputs the model reaches {fmt(blind)} {split} loss, and {fmt(real)} on the real "
                f"ones: the inputs remove {gain:.1%} of the loss ({measured(gain, INPUT_GAIN, above=False)}).",
                advice="The model ignores its input, or the targets do not match the inputs: check that x and y are "
                "aligned row by row and that forward() uses x; then start simple (T62).",
                **evidence,
            )
        return self.ok(f"Real inputs remove {gain:.0%} of the loss left by zeroed inputs.", **evidence)
