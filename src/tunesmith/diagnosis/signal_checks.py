"""Gradient and activation health during the short run (catalog T65, T66; T11, T13, T14, T18, T34).

- vanishing/exploding_gradients (T65): per weighted layer, the gradient norm relative to the
  layer's weight norm (scale-free, the update-to-weight idea of LARS and Karpathy), median over the
  recorded steps; the first layer against the last. AUTOTRAINER compares first and last layers the
  same way; three orders of magnitude apart means one end learns 1000x slower than the other.
  Non-finite gradients, a layer whose gradient is 10x its weights' norm (healthy layers stay well
  below 1: a step at lr 0.1 would replace the whole layer), or a total gradient norm growing 1000x
  during the run, explode too.
- dead_units (T66): input units of a weighted layer that are exactly zero on every sample of a
  256-row batch (a ReLU that never fires), at initialization and after the run (AUTOTRAINER flags
  70% zero gradients; here more than half of a layer's units).
- saturated_units: Tanh/Sigmoid values at the rails, where the derivative is below 0.02.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt, series
from tunesmith.diagnosis.probes import LayerStat, layer_stats, saturation

__all__ = ["DeadUnits", "ExplodingGradients", "SaturatedUnits", "VanishingGradients"]

DEPTH_RATIO = 1e3  # first vs last layer relative gradient: three orders of magnitude
GROWTH = 1e3  # total gradient norm grows 1000x during the run
RELATIVE_LIMIT = 10.0  # |grad| > 10 |weights|: one step at lr 0.1 would replace the layer
DEAD_SHARE = 0.5  # more than half of a layer's units never fire
MIN_UNITS = 8
SATURATED_SHARE = 0.5  # more than half of a layer's values sit at the rails


def _relative(ctx: Context) -> tuple[np.ndarray, list[str], list[str]]:
    """(median over recorded steps of |grad| / |weight| per trained weighted layer, those layers, frozen ones).

    A layer without trainable weights (requires_grad=False) gets no gradient by design: it is left
    out, not read as a gradient of 0/0.
    """
    run = ctx.run
    trained = (run.weight_norms > 0).any(axis=0) if len(run.weight_norms) else np.zeros(len(run.layers), bool)
    layers = [name for name, t in zip(run.layers, trained, strict=True) if t]
    frozen = [name for name, t in zip(run.layers, trained, strict=True) if not t]
    if len(layers) < 2 or not len(run.grad_norms):
        raise Skip(f"needs at least two trained weighted layers (Linear, Conv, RNN); frozen: {len(frozen)}")
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = run.grad_norms[:, trained] / run.weight_norms[:, trained]
    return np.median(np.where(np.isnan(rel), np.inf, rel), axis=0), layers, frozen


@register_check
class VanishingGradients(Check):
    """The first layer's relative gradient 1000x smaller than the last layer's."""

    id = "vanishing_gradients"
    group = "run"
    tricks = ("T65", "T11", "T14", "T18")

    def run(self, ctx: Context) -> Finding:
        rel, layers, frozen = _relative(ctx)
        first, last = float(rel[0]), float(rel[-1])
        if not (math.isfinite(last) and last > 0):
            raise Skip("the last layer receives no finite gradient")
        ratio = first / last if math.isfinite(first) else math.inf
        evidence: dict[str, Any] = {
            "value": ratio,
            "threshold": 1 / DEPTH_RATIO,
            "relative_gradients": series(rel),
            "layers": layers,
            "frozen_layers": frozen,
        }
        if ratio < 1 / DEPTH_RATIO:
            return self.found(
                "warn",
                f"Gradients vanish towards the input: {layers[0]} gets a relative gradient "
                f"{measured(ratio, 1 / DEPTH_RATIO, above=False)} times {layers[-1]}'s, so it barely learns.",
                advice="Use ReLU-family activations instead of sigmoid/tanh (T11), normalization layers (T14), "
                "residual connections (T18) and a matching init (T13) (T65).",
                **evidence,
            )
        return self.ok(f"Gradients reach the first layer (first/last relative gradient {fmt(ratio)}).", **evidence)


@register_check
class ExplodingGradients(Check):
    """Non-finite gradients, or gradients 1000x larger at the input end or later in the run."""

    id = "exploding_gradients"
    group = "run"
    tricks = ("T65", "T34", "T14")

    def run(self, ctx: Context) -> Finding:
        run = ctx.run
        rel, layers, frozen = _relative(ctx)
        total = np.sqrt((run.grad_norms.astype(np.float64) ** 2).sum(axis=1))
        finite = total[np.isfinite(total)]
        growth = float(finite.max() / finite[0]) if len(finite) and finite[0] > 0 else 1.0
        depth = float(rel[0] / rel[-1]) if rel[-1] > 0 else math.inf
        evidence: dict[str, Any] = {
            "value": depth,
            "threshold": DEPTH_RATIO,
            "growth": growth,
            "gradient_norm": series(total),
            "frozen_layers": frozen,
        }
        advice = (
            "Clip the gradient norm (T34: train.clip_norm=1.0), add normalization layers (T14), lower the "
            "init scale or the learning rate (T65)."
        )
        if not np.isfinite(total).all() or not np.isfinite(rel).all():
            step = run.grad_steps[int(np.argmin(np.isfinite(total)))] if not np.isfinite(total).all() else None
            evidence.update(value=math.inf)
            return self.found(
                "fail",
                f"Gradients became infinite or NaN{f' at step {step}' if step is not None else ''} "
                f"({measured(math.inf, DEPTH_RATIO)}).",
                advice=advice,
                **evidence,
            )
        largest = float(rel.max())
        evidence.update(largest_relative=largest, relative_threshold=RELATIVE_LIMIT)
        reasons = [
            (
                depth / DEPTH_RATIO,
                depth,
                DEPTH_RATIO,
                f"{layers[0]} gets a relative gradient {measured(depth, DEPTH_RATIO)} times {layers[-1]}'s",
            ),
            (
                largest / RELATIVE_LIMIT,
                largest,
                RELATIVE_LIMIT,
                f"a layer's gradient is {measured(largest, RELATIVE_LIMIT)} times its weights' norm",
            ),
            (growth / GROWTH, growth, GROWTH, f"the gradient norm grows {measured(growth, GROWTH)}x during the run"),
        ]
        excess, value, threshold, what = max(reasons, key=lambda r: r[0])
        if excess > 1:
            evidence.update(value=value, threshold=threshold)
            return self.found("warn", f"Gradients explode: {what}.", advice=advice, **evidence)
        return self.ok(f"Gradient norms stay bounded (first/last {fmt(depth)}, growth {fmt(growth)}x).", **evidence)


def _dead(stats: list[LayerStat]) -> list[tuple[str, float]]:
    """(layer, share of dead input units) for weighted layers after the first (whose inputs are the data)."""
    return [(s.name, s.dead_inputs / s.n_inputs) for s in stats[1:] if s.n_inputs >= MIN_UNITS]


@register_check
class DeadUnits(Check):
    """ReLU-family units that never fire on a 256-row batch, at init and after the short run (T66)."""

    id = "dead_units"
    group = "run"
    tricks = ("T66", "T11", "T13", "T31")

    def run(self, ctx: Context) -> Finding:
        x, _ = ctx.probe_batch()
        found = {"init": _dead(ctx.init.layers), "after": _dead(layer_stats(ctx.clone(ctx.run.model).train(), x))}
        shares = [(when, name, share) for when, layers in found.items() for name, share in layers]
        if not shares:
            raise Skip("no hidden weighted layer with 8 or more input units")
        when, name, worst = max(shares, key=lambda t: t[2])
        evidence: dict[str, Any] = {"value": worst, "threshold": DEAD_SHARE, "layer": name, "when": when}
        if worst > DEAD_SHARE:
            moment = "at initialization" if when == "init" else f"after {len(ctx.run.losses)} steps"
            return self.found(
                "warn",
                f"{worst:.0%} of the units feeding {name} never fire {moment} ({measured(worst, DEAD_SHARE)}): dead "
                "ReLUs pass no gradient and never recover.",
                advice="Use LeakyReLU/PReLU/ELU (T11), Kaiming init with zero biases (T13), and a lower learning "
                "rate if they die during training (T31) (T66).",
                **evidence,
            )
        return self.ok(f"At most {worst:.0%} of a layer's units are dead ({when}).", **evidence)


@register_check
class SaturatedUnits(Check):
    """Tanh/Sigmoid values stuck at the rails (derivative below 0.02), at init and after the short run."""

    id = "saturated_units"
    group = "run"
    tricks = ("T13", "T04", "T14", "T11")

    def run(self, ctx: Context) -> Finding:
        x, _ = ctx.probe_batch()
        found = {"init": ctx.init.saturated, "after": saturation(ctx.clone(ctx.run.model).train(), x)}
        shares = [(when, name, share) for when, layers in found.items() for name, share in layers.items()]
        if not shares:
            raise Skip(
                "no hidden nn.Tanh or nn.Sigmoid modules to observe (functional activations are invisible to hooks)"
            )
        when, name, worst = max(shares, key=lambda t: t[2])
        evidence: dict[str, Any] = {"value": worst, "threshold": SATURATED_SHARE, "layer": name, "when": when}
        if worst > SATURATED_SHARE:
            return self.found(
                "warn",
                f"{worst:.0%} of {name}'s values sit at the rails ({when}; {measured(worst, SATURATED_SHARE)}): "
                "saturated units pass almost no gradient.",
                advice="Scale the inputs (T04), use Xavier init for tanh/sigmoid (T13), add normalization before the "
                "activation (T14), or switch to ReLU-family activations (T11).",
                **evidence,
            )
        return self.ok(f"At most {worst:.0%} of a saturating layer's values are at the rails.", **evidence)
