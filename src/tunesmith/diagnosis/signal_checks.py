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

On a pretrained backbone (pretrained.py) the depth comparison reads the blocks of its encoder stack
(first block against last), not the pretrained body against the fresh head; units dead or
saturated in the pretrained weights are the model's own, so there only those the short run kills count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt, series
from tunesmith.diagnosis.pretrained import Pretrained
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
    return _median_ratio(run.grad_norms[:, trained], run.weight_norms[:, trained]), layers, frozen


def _median_ratio(grads: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median over the recorded steps of grads / weights per column (0/0 and x/0 read as inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = grads / weights
    return np.median(np.where(np.isnan(rel), np.inf, rel), axis=0)


def _depth(ctx: Context, rel: np.ndarray, layers: list[str]) -> tuple[np.ndarray, list[str], str]:
    """(relative gradient per unit of depth, the units, what they are), input end first (Skip: no depth), from the
    trained layers' relative gradients `rel` (`_relative`).

    Without a pretrained part, the units are the trained weighted layers. On a pretrained backbone
    they are the trained blocks of its encoder stack (each block's weighted layers pooled into one
    norm): a fresh head's gradients are large by design and it trains at a higher LR, so comparing
    it with the pretrained body would call every healthy fine-tuning vanishing. With fewer than two
    trained blocks (a frozen body), the layers trained from scratch are compared among themselves.
    """
    pretrained = ctx.pretrained
    if not pretrained:
        return rel, layers, "weighted layers"
    run = ctx.run
    member = [pretrained.block_of(name) for name in run.layers]
    grads, weights, names = [], [], []
    for block in pretrained.blocks:
        cols = [i for i, b in enumerate(member) if b == block]
        weight = np.sqrt((run.weight_norms[:, cols].astype(np.float64) ** 2).sum(axis=1))
        if cols and (weight > 0).any():  # a frozen block gets no gradient by design
            grads.append(np.sqrt((run.grad_norms[:, cols].astype(np.float64) ** 2).sum(axis=1)))
            weights.append(weight)
            names.append(block)
    if len(names) >= 2:
        return _median_ratio(np.stack(grads, axis=1), np.stack(weights, axis=1)), names, "encoder blocks"
    scratch = [i for i, name in enumerate(layers) if not pretrained.holds(name)]
    if len(scratch) < 2:
        raise Skip(
            f"the pretrained backbone has {len(names)} trained block(s) in its encoder stack and the head "
            f"{len(scratch)} weighted layer(s): no depth to compare (the head is not compared with the pretrained body)"
        )
    return rel[scratch], [layers[i] for i in scratch], "weighted layers trained from scratch"


@register_check
class VanishingGradients(Check):
    """The first layer's relative gradient 1000x smaller than the last layer's."""

    id = "vanishing_gradients"
    group = "run"
    tricks = ("T65", "T11", "T14", "T18")

    def run(self, ctx: Context) -> Finding:
        trained, names, frozen = _relative(ctx)
        rel, layers, compared = _depth(ctx, trained, names)
        first, last = float(rel[0]), float(rel[-1])
        evidence: dict[str, Any] = {
            "value": first / last if math.isfinite(first) and last > 0 else math.inf,
            "threshold": 1 / DEPTH_RATIO,
            "relative_gradients": series(rel),
            "layers": layers,
            "compared": compared,
            "frozen_layers": frozen,
        }
        if compared == "encoder blocks" and not rel.any():  # trainable, yet no gradient arrives
            evidence.update(value=0.0)
            return self.found(
                "warn",
                f"No gradient reaches the backbone's trainable blocks ({layers[0]} ... {layers[-1]}): their relative "
                f"gradient is 0 (< threshold {fmt(1 / DEPTH_RATIO)} of the top block's), so only the head learns.",
                advice="Look for a detach(), torch.no_grad() or a non-differentiable step between the backbone and the "
                "head; to train the head alone on purpose, freeze the backbone (requires_grad=False) instead.",
                **evidence,
            )
        if not (math.isfinite(last) and last > 0):
            raise Skip(f"the last of the {compared} receives no finite gradient")
        ratio = evidence["value"]
        if ratio < 1 / DEPTH_RATIO:
            return self.found(
                "warn",
                f"Gradients vanish towards the input: {layers[0]} gets a relative gradient "
                f"{measured(ratio, 1 / DEPTH_RATIO, above=False)} times {layers[-1]}'s, so it barely learns.",
                advice="Use ReLU-family activations instead of sigmoid/tanh (T11), normalization layers (T14), "
                "residual connections (T18) and a matching init (T13) (T65).",
                **evidence,
            )
        return self.ok(
            f"Gradients reach the first of the {compared} (first/last relative gradient {fmt(ratio)}).", **evidence
        )


@register_check
class ExplodingGradients(Check):
    """Non-finite gradients, or gradients 1000x larger at the input end or later in the run."""

    id = "exploding_gradients"
    group = "run"
    tricks = ("T65", "T34", "T14")

    def run(self, ctx: Context) -> Finding:
        run = ctx.run
        rel, names, frozen = _relative(ctx)
        try:
            by_depth, layers, compared = _depth(ctx, rel, names)
        except Skip:  # a frozen pretrained body: no depth to compare, the other measures still apply
            by_depth, layers, compared = rel[:1], names[:1], "no depth"
        total = np.sqrt((run.grad_norms.astype(np.float64) ** 2).sum(axis=1))
        finite = total[np.isfinite(total)]
        growth = float(finite.max() / finite[0]) if len(finite) and finite[0] > 0 else 1.0
        depth = float(by_depth[0] / by_depth[-1]) if by_depth[-1] > 0 else math.inf
        if compared == "encoder blocks" and not by_depth.any():
            depth = 1.0  # no gradient reaches the blocks at all (vanishing_gradients says so): nothing explodes
        evidence: dict[str, Any] = {
            "value": depth,
            "threshold": DEPTH_RATIO,
            "growth": growth,
            "gradient_norm": series(total),
            "compared": compared,
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


def _dead(
    stats: list[LayerStat], pretrained: Pretrained, init: list[LayerStat] | None = None
) -> list[tuple[str, float]]:
    """(layer, share of dead input units) for weighted layers after the first (whose inputs are the data).

    A pretrained layer's units that are dead before training are the pretrained model's, not the setup's: at
    init (`init` None) such layers are left out, after the run (`init` given) only the units that died count.
    """
    before = {s.name: s.dead_inputs for s in init or []}
    shares = []
    for s in stats[1:]:
        if s.n_inputs < MIN_UNITS or (init is None and pretrained.holds(s.name)):
            continue
        dead = s.dead_inputs - before.get(s.name, 0) if pretrained.holds(s.name) else s.dead_inputs
        shares.append((s.name, max(0, dead) / s.n_inputs))
    return shares


@register_check
class DeadUnits(Check):
    """ReLU-family units that never fire on a 256-row batch, at init and after the short run (T66)."""

    id = "dead_units"
    group = "run"
    tricks = ("T66", "T11", "T13", "T31")

    def run(self, ctx: Context) -> Finding:
        x, _ = ctx.probe_batch()
        after = layer_stats(ctx.clone(ctx.run.model).train(), x)
        found = {"init": _dead(ctx.init.layers, ctx.pretrained), "after": _dead(after, ctx.pretrained, ctx.init.layers)}
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
        init, after, pretrained = ctx.init.saturated, saturation(ctx.clone(ctx.run.model).train(), x), ctx.pretrained
        found = {  # a pretrained module's saturation is the pretrained model's: only what the run adds counts
            "init": {name: share for name, share in init.items() if not pretrained.holds(name)},
            "after": {
                name: max(0.0, share - init.get(name, 0.0)) if pretrained.holds(name) else share
                for name, share in after.items()
            },
        }
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
