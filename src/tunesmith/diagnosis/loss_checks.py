"""Loss checks before any training (catalog T12, T13, T60).

Each check works on a fresh copy of the model through forward hooks and autograd only, so any
nn.Module qualifies. Methods and sources:

- loss_output_mismatch (T12): what the loss expects (its target convention, targets.py: indices,
  probabilities, float 0/1, real values; logits, log-probabilities) against the task, the targets
  and the outputs: a loss that raises on them (with the fix its convention asks for), the module
  that produced the outputs (a Softmax, Sigmoid or ReLU at the end), rows that already sum to 1,
  their width against the class count, shapes that broadcast.
- init_loss (T13): Karpathy 2019 "verify loss @ init": ln C for C classes under cross-entropy,
  the target's mean square under MSE (an untrained network predicts about 0).
- gradient_check (T60): central differences in float64 against autograd on a tiny batch and a
  seeded subset of parameter entries (CS231n's gradient check; one-sided differences accept the
  kinks of ReLU and max-pooling, a Richardson step the fast curvature of large logits), judged
  relative to at least what float64 round-off lets a difference quotient resolve.
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
from tunesmith.diagnosis.probes import WEIGHTED, output_activation
from tunesmith.train.losses import ClassificationLoss, ShapedMSE

__all__ = ["LOGIT_LOSSES", "GradientCheck", "InitLoss", "LossOutputMismatch"]

LOGIT_LOSSES = (nn.CrossEntropyLoss, nn.BCEWithLogitsLoss, nn.MultiLabelSoftMarginLoss, ClassificationLoss)
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
UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)
GRAD_ROWS, GRAD_TENSORS, GRAD_ENTRIES = 4, 6, 3


def _expected_loss(ctx: Context) -> tuple[float, float]:
    """(loss of an uninformed prediction at init, the factor above it that is "far").

    Cross-entropy: ln K for K outputs (logits near 0 are uniform over them; ln C when K = C), ln 2
    per binary label, and 3x: logits spread enough that softmax gives ~20:1 odds at random.
    MSE: the mean square of the targets (an untrained net predicts about 0), and 10x: outputs
    spread 3x wider than the targets.
    """
    loss = ctx.loss_fn
    if ctx.task == "classification" and isinstance(loss, (*LOGIT_LOSSES, nn.NLLLoss, nn.BCELoss)):
        width = ctx.output_shape[-1] if ctx.output_shape else 1
        return math.log(2 if ctx.family == "binary" or width == 1 else width), CE_FACTOR
    if ctx.task != "classification" and isinstance(loss, nn.MSELoss | ShapedMSE):
        return float(ctx.y_train.double().pow(2).mean()), MSE_FACTOR
    raise Skip(f"no expected initial value for {type(loss).__name__} on {ctx.task}")


Problem = tuple[str, str, float, float]  # summary, advice, value, threshold
_FIX = "Return raw logits from the model and use CrossEntropyLoss (BCEWithLogitsLoss for one logit) (T12)."


@register_check
class LossOutputMismatch(Check):
    """Targets, outputs and loss that disagree: class labels into MSE, squashed logits, a wrong output width."""

    id = "loss_output_mismatch"
    group = "model"
    tricks = ("T12",)

    def run(self, ctx: Context) -> Finding:
        x, y = ctx.probe_batch(64)
        model = ctx.fresh_model().eval()
        with torch.no_grad():
            out = model(x)
        last = output_activation(model, x)
        evidence: dict[str, Any] = {
            "outputs": list(out.shape[1:]),
            "targets": list(y.shape[1:]),
            "target_dtype": str(y.dtype).replace("torch.", ""),
            "loss": type(ctx.loss_fn).__name__,
            "output_layer": type(last).__name__,
            "task": ctx.task if ctx.task_given else f"{ctx.task} (inferred from the loss and the targets)",
        }
        problem = self._disagreement(ctx, y) or self._loss_error(ctx, out, y)
        if problem is None:
            check = self._classification if ctx.task == "classification" else self._regression
            problem = check(ctx, out, y, last)
        if problem is not None:
            summary, advice, value, threshold = problem
            return self.found("fail", summary, advice=advice, value=value, threshold=threshold, **evidence)
        return self.ok(
            f"{type(ctx.loss_fn).__name__} fits the model's outputs {tuple(out.shape)} and the targets "
            f"{tuple(y.shape)} ({evidence['target_dtype']}) of a batch.",
            **evidence,
        )

    @staticmethod
    def _disagreement(ctx: Context, y: torch.Tensor) -> Problem | None:
        """The task (the user's, or what integer targets say) against the task the loss trains for."""
        name = type(ctx.loss_fn).__name__
        labels = (ctx.task == "classification" and ctx.task_given) or not y.is_floating_point()
        if ctx.family == "regression" and labels:
            why = "the task is classification" if ctx.task_given else f"the targets are {y.dtype} class labels"
            return (
                f"{name} on class labels ({why}): it treats the classes as numbers, so predictions between "
                "classes are rewarded and the class order is invented.",
                "For classes: C logits with CrossEntropyLoss (one logit with BCEWithLogitsLoss for two) (T12). "
                "For a real numeric target, pass float targets.",
                1.0,
                0.0,
            )
        if ctx.family in ("indices", "binary") and ctx.task == "regression" and ctx.task_given:
            return (
                f"{name} is a classification loss but the task is regression.",
                "Regression: an identity output with MSELoss (or L1/Huber) on float targets (T12).",
                1.0,
                0.0,
            )
        return None

    @staticmethod
    def _loss_error(ctx: Context, out: torch.Tensor, y: torch.Tensor) -> Problem | None:
        """Why the loss cannot take these outputs and targets, with the fix its convention asks for."""
        if ctx.loss_error is None:
            return None
        name, width = type(ctx.loss_fn).__name__, out.shape[-1] if out.ndim > 1 else 1
        hint = "Give the loss the targets its documentation describes, shaped and typed as it expects (T12)."
        value, threshold = 1.0, 0.0
        if ctx.family == "indices" and not y.is_floating_point() and y.ndim == 1:
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= width:
                hint = (
                    f"The labels run {low}..{high} but the model has {width} outputs: {name} wants indices "
                    f"0..{width - 1}. "
                    + ("Subtract 1 from labels that start at 1, or " if low == 1 or high == width else "")
                    + f"give the last layer {high + 1} outputs (T12)."
                )
                value, threshold = float(high + 1), float(width)
        elif ctx.family == "indices" and y.is_floating_point() and y.ndim == 1:
            hint = (
                f"{name} takes class indices (int64, y.long()) or class probabilities shaped (N, C); these "
                "targets are floats shaped (N,). For probabilities of the positive class use one logit with "
                "BCEWithLogitsLoss (T12)."
            )
        elif ctx.family == "indices" and not y.is_floating_point() and y.ndim == 2:
            hint = (
                f"{name} takes class indices shaped (N,) or float class probabilities (N, C); these targets are "
                f"{y.dtype} rows (one-hot?): pass y.argmax(1), or y.float() for probabilities (T12)."
            )
        elif ctx.family == "binary" and not y.is_floating_point():
            hint = f"{name} takes float targets in [0, 1]: pass y.float(), shaped like the outputs (T12)."
        elif ctx.family == "binary" and tuple(out.shape) != tuple(y.shape):
            hint = f"Shape the targets like the outputs {tuple(out.shape)}: y.view_as(output) (T12)."
        elif isinstance(ctx.loss_fn, nn.BCELoss):
            hint = "BCELoss takes probabilities; the model returns logits. Use BCEWithLogitsLoss on the logits (T12)."
        return f"The loss cannot take what it is given: {ctx.loss_error}.", hint, value, threshold

    def _classification(
        self, ctx: Context, out: torch.Tensor, y: torch.Tensor, last: nn.Module | None
    ) -> Problem | None:
        c = ctx.n_classes or 0
        width = out.shape[-1] if out.ndim > 1 else 1
        if ctx.family in ("indices", None) and y.ndim == 1 and width not in (c, 1 if c == 2 else c):
            return (
                f"The model has {width} outputs for {c} classes ({measured(width, c, above=width > c)}).",
                f"Give the last layer {c} outputs ({'or 1 for binary, ' if c == 2 else ''}T12).",
                float(width),
                float(c),
            )
        loss = ctx.loss_fn
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
                _FIX,
                1.0,
                0.0,
            )
        if isinstance(loss, nn.BCELoss) and isinstance(last, WEIGHTED):
            return (
                f"BCELoss takes probabilities but the model ends in an unbounded {type(last).__name__}: the first "
                "output outside [0, 1] stops training.",
                "Use BCEWithLogitsLoss on the logits (numerically stable), or end the model in a Sigmoid (T12).",
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
    def _regression(ctx: Context, out: torch.Tensor, y: torch.Tensor, last: nn.Module | None) -> Problem | None:
        if isinstance(ctx.loss_fn, BROADCASTING_LOSSES) and out.shape != y.shape:
            return (
                f"{type(ctx.loss_fn).__name__} gets outputs {tuple(out.shape)} and targets {tuple(y.shape)}: they "
                f"broadcast to {tuple(torch.broadcast_shapes(out.shape, y.shape))} and every output is compared "
                "with every target.",
                "Reshape the targets to the outputs' shape (or use tunesmith's default loss, which does it) (T12).",
                float(out.numel()),
                float(y.numel()),
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
        ctx.require_loss()
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
        ctx.require_loss()
        model = ctx.fresh_model().double().eval()  # eval: no dropout draws between the evaluations
        x, y = ctx.probe_batch(GRAD_ROWS)
        x, y = (x.double() if x.is_floating_point() else x), (y.double() if y.is_floating_point() else y)

        def loss() -> torch.Tensor:
            return ctx.loss_fn(model(x), y)

        try:
            model.zero_grad(set_to_none=True)
            loss().backward()
            noise = _loss_roundoff(model, loss)
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
                    errors.append((self._error(flat, int(k), float(analytic[k]), loss, noise), name))
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
            "loss_roundoff": noise,
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
    def _error(flat: torch.Tensor, k: int, analytic: float, loss: Callable[[], torch.Tensor], noise: float) -> float:
        """The smallest relative error of the analytic gradient against central and one-sided differences.

        A difference quotient cannot resolve a gradient below noise / eps (the loss's round-off over
        the step): the error is taken relative to at least that, divided by the tolerance, so a
        gradient at the round-off level passes on an absolute error within float64's reach.
        """
        original = float(flat[k])
        eps = GRAD_EPS * max(1.0, abs(original))
        values = []
        for shift in (eps, -eps, eps / 2, -eps / 2, 0.0):
            flat[k] = original + shift
            values.append(float(loss()))
        flat[k] = original
        up, down, half_up, half_down, base = values
        central, half = (up - down) / (2 * eps), (half_up - half_down) / eps
        numeric = [
            central,
            (4 * half - central) / 3,  # Richardson: cancels the eps^2 term where the loss curves fast
            (up - base) / eps,  # one-sided: kinks (ReLU at 0, max-pool ties)
            (base - down) / eps,
        ]
        # round-off: noise / eps in a difference quotient, 3x that after the Richardson combination
        scale = max(abs(analytic), *map(abs, numeric), 3 * noise / eps / GRAD_TOLERANCE, 1e-300)
        return min(abs(analytic - n) for n in numeric) / scale


def _loss_roundoff(model: nn.Module, loss: Callable[[], torch.Tensor]) -> float:
    """Round-off of one float64 loss evaluation: unit round-off x the largest value the forward pass holds,
    per operation (leaf-module call) it passes through (the standard forward error bound of a sum)."""
    largest, calls = [0.0], [1]

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        calls[0] += 1
        for t in (output, *args):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                largest[0] = max(largest[0], float(t.detach().abs().max()))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            value = abs(float(loss()))  # the hooks record the forward pass's values first
        largest[0] = max(largest[0], value)
    finally:
        for handle in handles:
            handle.remove()
    return UNIT_ROUNDOFF * largest[0] * calls[0]
