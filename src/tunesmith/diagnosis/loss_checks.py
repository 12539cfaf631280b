"""Loss checks before any training (catalog T12, T13, T60).

Each check works on a fresh copy of the model through forward hooks and autograd only, so any
nn.Module qualifies. Methods and sources:

- loss_output_mismatch (T12): what the loss expects (logits, log-probabilities, real values)
  against what the outputs are: the module that produced them (a Softmax, Sigmoid or ReLU at the
  end), rows that already sum to 1, their width against the class count, shapes that broadcast.
- init_loss (T13): Karpathy 2019 "verify loss @ init": ln C for C classes under cross-entropy,
  the target's mean square under MSE (an untrained network predicts about 0).
- gradient_check (T60): central differences in float64 against autograd on a tiny batch and a
  seeded subset of parameter entries (CS231n's gradient check; one-sided differences accept the
  kinks of ReLU and max-pooling).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt
from tunesmith.diagnosis.probes import output_activation
from tunesmith.train.losses import ClassificationLoss, ShapedMSE

__all__ = ["LOGIT_LOSSES", "GradientCheck", "InitLoss", "LossOutputMismatch"]

LOGIT_LOSSES = (nn.CrossEntropyLoss, nn.BCEWithLogitsLoss, nn.MultiLabelSoftMarginLoss, ClassificationLoss)
REGRESSION_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, ShapedMSE)
BROADCASTING_LOSSES = (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)  # (B, 1) vs (B,) broadcasts to (B, B)
CE_FACTOR, MSE_FACTOR = 3.0, 10.0  # initial loss this many times the uninformed loss (see _expected_loss)
OUTSIDE_SHARE = 0.05  # regression targets outside the range the output activation allows
BOUNDED_OUTPUTS: list[
    tuple[type | tuple[type, ...], tuple[float, float]]
] = [  # output activations and the range of values they can produce
    (nn.Sigmoid, (0.0, 1.0)),
    (nn.Tanh, (-1.0, 1.0)),
    ((nn.ReLU, nn.ReLU6, nn.Softplus), (0.0, math.inf)),
    ((nn.ELU, nn.CELU), (-1.0, math.inf)),  # with the default alpha of 1
]
GRAD_TOLERANCE = 1e-4  # relative error; float64 central differences are good to about 1e-8
GRAD_EPS = 1e-6
GRAD_ROWS, GRAD_TENSORS, GRAD_ENTRIES = 4, 6, 3


def _expected_loss(ctx: Context) -> tuple[float, float]:
    """(loss of an uninformed prediction at init, the factor above it that is "far").

    Cross-entropy: ln C, and 3x: logits spread enough that softmax gives ~20:1 odds at random.
    MSE: the mean square of the targets (an untrained net predicts about 0), and 10x: outputs
    spread 3x wider than the targets.
    """
    loss = ctx.loss_fn
    if ctx.task == "classification" and isinstance(loss, (*LOGIT_LOSSES, nn.NLLLoss)) and ctx.n_classes:
        return math.log(ctx.n_classes), CE_FACTOR
    if ctx.task != "classification" and isinstance(loss, nn.MSELoss | ShapedMSE):
        return float(ctx.y_train.double().pow(2).mean()), MSE_FACTOR
    raise Skip(f"no expected initial value for {type(loss).__name__} on {ctx.task}")


@register_check
class LossOutputMismatch(Check):
    """Outputs the loss does not expect: squashed logits, MSE on class labels, a wrong output width."""

    id = "loss_output_mismatch"
    group = "model"
    tricks = ("T12",)

    def run(self, ctx: Context) -> Finding:
        x, y = ctx.probe_batch(64)
        model = ctx.fresh_model().eval()
        with torch.no_grad():
            out = model(x)
        last = output_activation(model, x)
        width = out.shape[-1] if out.ndim > 1 else 1
        if ctx.task == "classification":
            problem = self._classification(ctx, out, width, last)
        else:
            problem = self._regression(ctx, out, y, last)
        evidence: dict[str, Any] = {
            "outputs": list(out.shape[1:]),
            "loss": type(ctx.loss_fn).__name__,
            "output_layer": type(last).__name__,
        }
        if problem is not None:
            summary, advice, value, threshold = problem
            return self.found("fail", summary, advice=advice, value=value, threshold=threshold, **evidence)
        return self.ok(f"{type(ctx.loss_fn).__name__} fits the model's outputs {tuple(out.shape[1:])}.", **evidence)

    def _classification(
        self, ctx: Context, out: torch.Tensor, width: int, last: nn.Module | None
    ) -> tuple[str, str, float, float] | None:
        c = ctx.n_classes or 0
        fix = "Return raw logits from the model and use CrossEntropyLoss (BCEWithLogitsLoss for one logit) (T12)."
        if ctx.loss_error is not None or width not in (c, 1 if c == 2 else c):
            return (
                f"The model has {width} outputs for {c} classes ({measured(width, c, above=width > c)})"
                + (f"; the loss fails: {ctx.loss_error}" if ctx.loss_error else "")
                + ".",
                f"Give the last layer {c} outputs ({'or 1 for binary, ' if c == 2 else ''}T12).",
                float(width),
                float(c),
            )
        loss = ctx.loss_fn
        if isinstance(loss, REGRESSION_LOSSES):
            return (f"{type(loss).__name__} on class labels: it treats classes as numbers.", fix, 1.0, 0.0)
        rows_sum = bool(
            width > 1
            and ((out >= 0) & (out <= 1)).all()
            and torch.allclose(out.sum(-1), torch.ones(len(out), device=out.device), atol=1e-3)
        )
        squash = (
            "softmax"
            if rows_sum or isinstance(last, nn.Softmax)
            else "sigmoid"
            if isinstance(last, nn.Sigmoid)
            else None
        )
        if isinstance(loss, LOGIT_LOSSES) and squash is not None:
            return (
                f"The outputs already went through a {squash} but {type(loss).__name__} applies its own: "
                "gradients shrink and the loss cannot reach 0.",
                fix,
                1.0,
                0.0,
            )
        if isinstance(loss, nn.NLLLoss):
            logsumexp = float(out.logsumexp(-1).abs().max())
            if logsumexp > 1e-3:
                return (
                    "NLLLoss expects log-probabilities but the outputs' logsumexp is "
                    f"{measured(logsumexp, 1e-3)} away from 0.",
                    "Add log_softmax at the end of the model, or return logits and use CrossEntropyLoss (T12).",
                    logsumexp,
                    1e-3,
                )
        return None

    @staticmethod
    def _regression(
        ctx: Context, out: torch.Tensor, y: torch.Tensor, last: nn.Module | None
    ) -> tuple[str, str, float, float] | None:
        if isinstance(ctx.loss_fn, BROADCASTING_LOSSES) and out.shape != y.shape:
            return (
                f"{type(ctx.loss_fn).__name__} gets outputs {tuple(out.shape)} and targets {tuple(y.shape)}: they "
                f"broadcast to {tuple(torch.broadcast_shapes(out.shape, y.shape))} and every output is compared "
                "with every target.",
                "Reshape the targets to the outputs' shape (or use tunesmith's default loss, which does it) (T12).",
                float(out.numel()),
                float(y.numel()),
            )
        if ctx.loss_error is not None:
            return (
                f"The loss cannot take the outputs {tuple(out.shape)}: {ctx.loss_error}.",
                "Match the output width to the targets (T12).",
                1.0,
                0.0,
            )
        bounds = next((b for kind, b in BOUNDED_OUTPUTS if isinstance(last, kind)), None)
        if ctx.task == "regression" and bounds is not None:
            outside = float(((y < bounds[0]) | (y > bounds[1])).float().mean())
            if outside > OUTSIDE_SHARE:
                return (
                    f"The model ends in {type(last).__name__}, so every output lies in [{bounds[0]:g}, "
                    f"{bounds[1]:g}], but {outside:.0%} of the targets lie outside "
                    f"({measured(outside, OUTSIDE_SHARE)}): it can never predict them.",
                    "End a regression model with a plain Linear layer: identity output + MSE (T12).",
                    outside,
                    OUTSIDE_SHARE,
                )
        return None


@register_check
class InitLoss(Check):
    """The loss at step 0 against the loss of an uninformed prediction (ln C for cross-entropy)."""

    id = "init_loss"
    group = "model"
    tricks = ("T13",)

    def run(self, ctx: Context) -> Finding:
        if ctx.loss_error is not None:
            raise Skip("the loss cannot be computed on the model's outputs (see loss_output_mismatch)")
        expected, factor = _expected_loss(ctx)
        loss = ctx.init.loss
        ratio = loss / expected if expected > 0 else math.inf
        evidence: dict[str, Any] = {"value": ratio, "threshold": factor, "loss": loss, "expected": expected}
        if not math.isfinite(loss) or ratio > factor:
            return self.found(
                "warn",
                f"The loss at initialization is {fmt(loss)}, {measured(ratio, factor)} times the "
                f"{fmt(expected)} of an uninformed prediction: the untrained model is confidently wrong.",
                advice="Initialize so the outputs start near zero: Kaiming/Xavier weights, zero biases, a small last "
                "layer (T13); the first steps are then not spent undoing the initialization.",
                **evidence,
            )
        return self.ok(f"The loss at initialization ({fmt(loss)}) is near the expected {fmt(expected)}.", **evidence)


@register_check
class GradientCheck(Check):
    """Autograd against float64 finite differences on a tiny batch and a subset of parameter entries."""

    id = "gradient_check"
    group = "model"
    tricks = ("T60",)

    def run(self, ctx: Context) -> Finding:
        if ctx.loss_error is not None:
            raise Skip("the loss cannot be computed on the model's outputs (see loss_output_mismatch)")
        model = ctx.fresh_model().double().eval()  # eval: no dropout draws between the evaluations
        x, y = ctx.probe_batch(GRAD_ROWS)
        x, y = x.double(), (y.double() if y.is_floating_point() else y)

        def loss() -> torch.Tensor:
            return ctx.loss_fn(model(x), y)

        try:
            model.zero_grad(set_to_none=True)
            loss().backward()
        except RuntimeError as exc:
            raise Skip(f"the model or loss does not run in float64 ({exc})") from None
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.numel()]
        rng = np.random.default_rng(ctx.cfg.seed)
        chosen = (
            [params[i] for i in sorted({round(i) for i in np.linspace(0, len(params) - 1, GRAD_TENSORS)})]
            if params
            else []
        )
        errors = []
        with torch.no_grad():
            for name, p in chosen:
                flat = p.view(-1)
                analytic = torch.zeros_like(flat) if p.grad is None else p.grad.view(-1)
                for k in rng.choice(flat.numel(), min(GRAD_ENTRIES, flat.numel()), replace=False):
                    errors.append((self._error(flat, int(k), float(analytic[k]), loss), name))
        if not errors:
            raise Skip("the model has no trainable parameters")
        worst, where = max(errors)
        bad = sum(e > GRAD_TOLERANCE for e, _ in errors)
        evidence: dict[str, Any] = {
            "value": worst,
            "threshold": GRAD_TOLERANCE,
            "entries": len(errors),
            "mismatched": bad,
            "parameter": where,
        }
        if worst > GRAD_TOLERANCE:
            return self.found(
                "fail",
                f"Autograd disagrees with finite differences on {bad} of {len(errors)} entries; worst {where}: "
                "relative "
                f"error {measured(worst, GRAD_TOLERANCE)}.",
                advice="A custom autograd Function has a wrong backward, or the forward cuts the graph (.detach(), "
                ".data, numpy round trips): fix it until the gradient check passes (T60).",
                **evidence,
            )
        return self.ok(
            f"Autograd matches finite differences on {len(errors)} entries (worst relative error {fmt(worst)}).",
            **evidence,
        )

    @staticmethod
    def _error(flat: torch.Tensor, k: int, analytic: float, loss: Callable[[], torch.Tensor]) -> float:
        """The smallest relative error of the analytic gradient against central and one-sided differences."""
        original = float(flat[k])
        eps = GRAD_EPS * max(1.0, abs(original))
        values = []
        for shift in (eps, -eps, 0.0):
            flat[k] = original + shift
            values.append(float(loss()))
        flat[k] = original
        up, down, base = values
        numeric = [(up - down) / (2 * eps), (up - base) / eps, (base - down) / eps]  # one-sided: kinks (ReLU at 0)
        scale = max(abs(analytic), *map(abs, numeric), 1e-8)
        return min(abs(analytic - n) for n in numeric) / scale
