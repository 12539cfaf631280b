"""Augmentation of training batches (T06; the noise ops also give T20's denoising autoencoder).

`make_augment(cfg, kind=..., task=..., n_classes=...)` turns `data.augment` into an `Augment` that the
trainer calls on each training batch (never on validation or test batches), or into None when there is
nothing to do, so the hot loop pays nothing. Every op is vectorised over the batch, runs on the batch's
device and draws all its randomness from the trainer's `torch.Generator`, whose state the checkpoint
keeps: a resumed run replays the same augmentations. Inputs are never modified in place.

Each op's magnitude grows linearly with `strength` in [0, 1]; the values below are at strength 1
(the default 0.5 halves them). Inputs are assumed standardized (T04), so absolute noise levels are in
units of one feature's standard deviation.

- images (B, C, H, W): flip (horizontal, p = 0.5 at any strength > 0), rotate (+/-20 deg),
  translate (+/-20 % of each side), scale (x 1 +/- 0.2), shear (+/-20 deg, horizontal). These five
  compose into one affine matrix per sample, applied by one affine_grid + grid_sample (bilinear, zero
  padding; Jaderberg et al. 2015) before any other op. color: brightness offset +/-0.4 of the sample's
  std and contrast x 1 +/- 0.4 around the sample's mean (torchvision ColorJitter's 0.4). noise: N(0, 0.2).
- sequences (B, T, C): shift (circular roll by up to +/-20 % of T; a roll keeps every value), jitter
  (N(0, 0.2)), scaling (x 1 +/- 0.4 per sample and channel), masking (zero one contiguous span of 1 to
  20 % of T steps per sample). Um et al. 2017, "Data augmentation of wearable sensor data".
- tabular (B, F): noise (N(0, 0.2)), mixup (Zhang et al. 2018): each row is mixed with a random partner
  of the batch, lam ~ Beta(a, a) per row with a = 0.4 * strength, folded to max(lam, 1 - lam) so that
  the row keeps the larger share (fastai's MixUp; the mixed points have the same distribution);
  classification labels become soft targets, (B, n_classes) probabilities, or (B,) for binary
  (single-logit BCE); other targets are mixed alike.

Labels pass through unchanged except for mixup; for reconstruction the target stays the clean input.
Sources: catalog T06 and T20 (seeds 000, 001, 003).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import Tensor

from tunesmith.errors import BadInput, closest, must_be
from tunesmith.recipe import AugmentConfig

__all__ = ["Augment", "make_augment"]

TASKS = ("classification", "regression", "reconstruction")


@dataclass(frozen=True)
class _Ctx:
    """What an op may read: the strength, the label layout and the run's generator."""

    strength: float
    task: str
    n_classes: int
    generator: torch.Generator
    device: torch.device  # the batch's; draws happen on the generator's device and move here

    def rand(self, *shape: int) -> Tensor:
        """Uniform [0, 1) float32 numbers on the batch's device."""
        return torch.rand(shape, generator=self.generator, device=self.generator.device).to(self.device)

    def sym(self, *shape: int, bound: float) -> Tensor:
        """Uniform [-bound, bound) float32 numbers on the batch's device."""
        return (2 * self.rand(*shape) - 1) * bound

    def randn(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.generator, device=self.generator.device).to(self.device)


Op = Callable[[Tensor, Tensor, _Ctx], tuple[Tensor, Tensor]]  # (x, y, ctx) -> (x, y)
Matrix = Callable[[int, int, int, _Ctx], Tensor]  # (B, H, W, ctx) -> (B, 3, 3) affine in pixels from the centre

_REGISTRY: dict[str, dict[str, Op]] = {"image": {}, "sequence": {}, "tabular": {}, "text": {}}  # text: no op yet


def _register(name: str, *kinds: str) -> Callable[[Op], Op]:
    def add(op: Op) -> Op:
        for kind in kinds:
            if name in _REGISTRY[kind]:
                raise RuntimeError(f"Augment op {name!r} is registered twice for {kind} data.")
            _REGISTRY[kind][name] = op
        return op

    return add


@dataclass(frozen=True)
class _Warp:
    """Image ops that are affine maps; several fuse into one grid_sample (one interpolation, one pass)."""

    parts: tuple[Matrix, ...]

    def __call__(self, x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        m = reduce(torch.matmul, (part(b, h, w, ctx) for part in self.parts))  # (B, 3, 3) in pixels
        half = torch.tensor([w / 2, h / 2, 1.0], device=x.device)  # pixels -> affine_grid's [-1, 1] coordinates
        theta = m * half[None, None, :] / half[None, :, None]  # D^-1 M D keeps angles right on non-square images
        grid = F.affine_grid(theta[:, :2].to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), y


def _warp(name: str) -> Callable[[Matrix], Matrix]:
    def add(matrix: Matrix) -> Matrix:
        _register(name, "image")(_Warp((matrix,)))
        return matrix

    return add


def _affine(a: Tensor, b: Tensor, tx: Tensor, c: Tensor, d: Tensor, ty: Tensor) -> Tensor:
    """(B, 3, 3) matrices [[a, b, tx], [c, d, ty], [0, 0, 1]] from (B,) entries."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=1).view(-1, 3, 3)


def _linear(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    return _affine(a, b, torch.zeros_like(a), c, d, torch.zeros_like(a))


@_warp("flip")
def _flip(n: int, h: int, w: int, ctx: _Ctx) -> Tensor:
    sign = torch.where(ctx.rand(n) < 0.5, -1.0, 1.0)  # (B,)
    return _linear(sign, torch.zeros_like(sign), torch.zeros_like(sign), torch.ones_like(sign))


@_warp("rotate")
def _rotate(n: int, h: int, w: int, ctx: _Ctx) -> Tensor:
    angle = ctx.sym(n, bound=math.radians(20) * ctx.strength)  # (B,)
    cos, sin = angle.cos(), angle.sin()
    return _linear(cos, -sin, sin, cos)


@_warp("translate")
def _translate(n: int, h: int, w: int, ctx: _Ctx) -> Tensor:
    shift = ctx.sym(2, n, bound=0.2 * ctx.strength)  # (2, B) fractions of the width and the height
    one, zero = torch.ones(n, device=ctx.device), torch.zeros(n, device=ctx.device)
    return _affine(one, zero, shift[0] * w, zero, one, shift[1] * h)


@_warp("scale")
def _scale(n: int, h: int, w: int, ctx: _Ctx) -> Tensor:
    factor = 1 + ctx.sym(n, bound=0.2 * ctx.strength)  # (B,)
    zero = torch.zeros_like(factor)
    return _linear(factor, zero, zero, factor)


@_warp("shear")
def _shear(n: int, h: int, w: int, ctx: _Ctx) -> Tensor:
    slope = ctx.sym(n, bound=math.radians(20) * ctx.strength).tan()  # (B,)
    one, zero = torch.ones_like(slope), torch.zeros_like(slope)
    return _linear(one, slope, zero, one)


@_register("color", "image")
def _color(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    std, mean = torch.std_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)  # (B, 1, 1, 1) each
    contrast = 1 + ctx.sym(x.shape[0], 1, 1, 1, bound=0.4 * ctx.strength)
    brightness = ctx.sym(x.shape[0], 1, 1, 1, bound=0.4 * ctx.strength) * std
    return (x - mean) * contrast + mean + brightness, y


@_register("jitter", "sequence")
@_register("noise", "image", "tabular")
def _gaussian(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    return x + ctx.randn(*x.shape) * (0.2 * ctx.strength), y


@_register("shift", "sequence")
def _shift(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    n, t = x.shape[:2]
    steps = ctx.sym(n, bound=0.2 * ctx.strength * t).round().long()  # (B,)
    index = (torch.arange(t, device=x.device) - steps[:, None]) % t  # (B, T): out[t] = x[t - steps]
    return x.gather(1, index[:, :, None].expand_as(x)), y


@_register("scaling", "sequence")
def _scaling(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    return x * (1 + ctx.sym(x.shape[0], 1, x.shape[2], bound=0.4 * ctx.strength)), y  # (B, 1, C) factors


@_register("masking", "sequence")
def _masking(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    n, t = x.shape[:2]
    longest = min(t, max(1, round(0.2 * ctx.strength * t)))
    length = 1 + (ctx.rand(n) * longest).long()  # (B,) in 1..longest
    start = (ctx.rand(n) * (t - length + 1)).long()  # (B,) in 0..T-length
    steps = torch.arange(t, device=x.device)
    span = (steps >= start[:, None]) & (steps < (start + length)[:, None])  # (B, T)
    return x.masked_fill(span[:, :, None], 0.0), y


@_register("mixup", "tabular")
def _mixup(x: Tensor, y: Tensor, ctx: _Ctx) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    lam = _beta(0.4 * ctx.strength, n, ctx)  # (B,)
    lam = torch.maximum(lam, 1 - lam)  # each row stays the major part (fastai): the change now grows with a
    partner = torch.randperm(n, generator=ctx.generator, device=ctx.generator.device).to(x.device)
    if ctx.task == "classification":  # soft targets: cross-entropy and BCE both take probabilities
        y = F.one_hot(y.long(), ctx.n_classes).to(lam.dtype) if ctx.n_classes > 2 else y.to(lam.dtype)
    return _mix(x, lam, partner), _mix(y, lam, partner)


def _mix(t: Tensor, lam: Tensor, partner: Tensor) -> Tensor:
    lam = lam.view(-1, *[1] * (t.ndim - 1))  # (B, 1, ...)
    return lam * t + (1 - lam) * t[partner]


def _beta(a: float, n: int, ctx: _Ctx) -> Tensor:
    """(n,) draws of Beta(a, a) for a <= 1 by Joehnk's rejection method (torch's Beta takes no generator).

    Work in log space so that u ** (1 / a) cannot underflow for small a. Of 16 candidates per draw the
    first accepted one is kept; each is accepted with probability >= 0.84 for a <= 0.4, so all 16 fail
    with probability < 1e-12, and the first candidate is then kept (no data-dependent loop, no sync).
    """
    logs = ctx.rand(2, 16, n).clamp_min(1e-12).log() / a  # (2, K, n): log X, log Y
    accepted = torch.logsumexp(logs, dim=0) <= 0  # (K, n): X + Y <= 1
    first = accepted.to(torch.uint8).argmax(dim=0)  # (n,)
    chosen = logs.gather(1, first.view(1, 1, n).expand(2, 1, n))[:, 0]  # (2, n)
    return torch.sigmoid(chosen[0] - chosen[1])  # X / (X + Y)


class Augment:
    """Transforms one training batch on its device; built by `make_augment`."""

    def __init__(self, *, names: tuple[str, ...], ops: tuple[Op, ...], strength: float, task: str, n_classes: int):
        self.names, self.ops = names, ops
        self.strength, self.task, self.n_classes = strength, task, n_classes

    def __call__(self, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Augmented copies of (x, y); all randomness comes from `generator`, so a resume replays it."""
        ctx = _Ctx(self.strength, self.task, self.n_classes, generator, x.device)
        out = x
        for op in self.ops:
            out, y = op(out, y, ctx)
        return out.to(x.dtype), y  # draws are float32: keep the batch's dtype

    def __repr__(self) -> str:
        return f"Augment(ops={list(self.names)}, strength={self.strength})"


def make_augment(cfg: AugmentConfig, *, kind: str, task: str, n_classes: int) -> Augment | None:
    """The augmentation of `cfg` for training batches of this kind, or None when it would do nothing."""
    if cfg.strength == 0:
        return None
    if cfg.ops == "auto":
        raise BadInput(must_be("ops", "data.augment", "a list of ops once the recipe is resolved", cfg.ops))
    if not cfg.ops:
        return None
    if kind not in _REGISTRY:
        raise BadInput(must_be("kind", "make_augment", f"one of {', '.join(_REGISTRY)}", kind))
    if task not in TASKS:
        raise BadInput(must_be("task", "make_augment", f"one of {', '.join(TASKS)}", task))
    valid = _REGISTRY[kind]
    for name in cfg.ops:
        if name not in valid:
            raise BadInput(_not_for(name, kind))
    if "mixup" in cfg.ops and task == "classification" and n_classes < 2:
        raise BadInput(must_be("n_classes", "make_augment", "an int >= 2 for mixup on classification", n_classes))
    ops = [valid[name] for name in cfg.ops]
    warps = tuple(part for op in ops if isinstance(op, _Warp) for part in op.parts)
    fused: list[Op] = [_Warp(warps)] if warps else []  # one resampling for every geometric op, first
    rest = [op for op in ops if not isinstance(op, _Warp)]
    return Augment(names=tuple(cfg.ops), ops=(*fused, *rest), strength=cfg.strength, task=task, n_classes=n_classes)


def _not_for(name: str, kind: str) -> str:
    valid = list(_REGISTRY[kind])
    elsewhere = [k for k, ops in _REGISTRY.items() if name in ops]
    guess = None if elsewhere else closest(name, valid)
    hint = f"{name!r} applies to {' and '.join(elsewhere)} data." if elsewhere else ""
    hint = f"Did you mean {guess!r}?" if guess else hint
    return must_be("ops", "data.augment", f"ops valid for {kind} data ({', '.join(valid)})", name, hint=hint)
