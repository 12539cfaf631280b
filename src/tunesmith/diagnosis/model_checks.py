"""Model checks before any training (catalog T13-T15, T33).

Each check works on a fresh copy of the model through forward hooks and autograd only, so any
nn.Module qualifies. Methods and sources:

- bad_init (T13): output scale across the hidden layers (He 2015 keeps it constant) and identical
  units (a symmetric init never breaks symmetry). A pretrained backbone's layers are loaded, not
  initialized (pretrained.py): only the layers trained from scratch (the head) are judged.
- batchnorm_small_batch (T14, T33): Wu & He 2018 (Group Normalization): BatchNorm degrades below
  16 samples per batch.
- batch_independence: Karpathy 2019: the gradient of one sample's output must not reach other
  samples' inputs (for integer token ids: the outputs of the embeddings that read them, so a
  transformer's attention across the batch is caught as well).
- train_eval_mode (T14, T15): in eval mode the same input gives the same output, whatever the batch.
- frozen_layers: layers with requires_grad=False. Frozen trained weights (a pretrained backbone)
  are a choice (info); frozen weights whose values are indistinguishable from the layer's own
  `reset_parameters()` draw (two-sample Kolmogorov-Smirnov, p >= 0.01 on >= 100 weights) were
  never trained or loaded, and the model can only learn in what is left (warn).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from scipy import stats
from torch import nn

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt
from tunesmith.diagnosis.probes import WEIGHTED
from tunesmith.train.trainer import TensorBatches

__all__ = ["BadInit", "BatchIndependence", "BatchNormSmallBatch", "FrozenLayers", "TrainEvalMode"]

SCALE_LIMIT = 10.0  # hidden-layer output scale shrinks or grows 10x across depth
SYMMETRY = 1e-3  # units differ by less than this share of the layer's spread: copies of each other
BN_MIN_BATCH = 16
EVAL_TOLERANCE = 1e-3  # relative output difference between eval passes
FRESH_P = 0.01  # frozen weights whose KS p-value against a fresh init is at least this look untrained ...
FRESH_MIN_WEIGHTS = 100  # ... judged only with enough weights for the test to see a trained distribution


@register_check
class BadInit(Check):
    """Hidden-layer output scale shrinking or growing across depth, or units that are copies of each other."""

    id = "bad_init"
    group = "model"
    tricks = ("T13",)

    def run(self, ctx: Context) -> Finding:
        pretrained = ctx.pretrained
        # pretrained weights are loaded, not initialized: judge the layers trained from scratch (the head) only
        scratch = [s for s in ctx.init.layers if not pretrained.holds(s.name)]
        hidden = scratch[:-1]  # the last weighted layer is the output head
        if pretrained and len(hidden) < 2:
            raise Skip(
                f"the pretrained {', '.join(p or 'model' for p in pretrained.parts)} is loaded, not initialized, and "
                f"the {len(scratch)} weighted layer(s) trained from scratch have no hidden depth to compare"
            )
        copies = [s.name for s in hidden if s.out_std > 0 and s.unit_spread < SYMMETRY]
        advice = "Use Kaiming init for ReLU-family layers and Xavier for tanh/sigmoid, with zero biases (T13)."
        if copies:
            return self.found(
                "warn",
                f"Every unit of {', '.join(copies)} computes the same value (unit spread < {SYMMETRY}): a constant or "
                "symmetric initialization, which gradient descent never breaks.",
                advice=advice,
                value=min(s.unit_spread for s in hidden if s.name in copies),
                threshold=SYMMETRY,
                layers=copies,
            )
        if len(hidden) < 2:
            raise Skip("fewer than two hidden weighted layers: no depth to compare across")
        first, last = hidden[0].out_std, hidden[-1].out_std
        ratio = last / first if first > 0 else math.inf
        evidence: dict[str, Any] = {
            "value": ratio,
            "threshold": SCALE_LIMIT if ratio >= 1 else 1 / SCALE_LIMIT,
            "stds": [s.out_std for s in hidden],
        }
        if not 1 / SCALE_LIMIT <= ratio <= SCALE_LIMIT:
            way = "grows" if ratio > 1 else "shrinks"
            return self.found(
                "warn",
                f"The hidden outputs' scale {way} across depth: {hidden[-1].name} / {hidden[0].name} = "
                f"{measured(ratio, evidence['threshold'], above=ratio > 1)} at initialization.",
                advice=advice,
                **evidence,
            )
        return self.ok(f"Hidden output scales stay within 10x across depth (last/first {fmt(ratio)}).", **evidence)


@register_check
class BatchNormSmallBatch(Check):
    """BatchNorm layers trained on small batches (noisy batch statistics)."""

    id = "batchnorm_small_batch"
    group = "model"
    tricks = ("T14", "T33")

    def run(self, ctx: Context) -> Finding:
        norms = [m for m in ctx.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return self.ok("The model has no BatchNorm layers.")
        sizes = [len(b) for b in ctx.batch_targets] or self._sizes(len(ctx.x_train), ctx.batch_size)  # as served
        smallest, batch = min(sizes), max(sizes)
        evidence: dict[str, Any] = {
            "value": batch,
            "threshold": BN_MIN_BATCH,
            "smallest_batch": smallest,
            "layers": len(norms),
        }
        advice = (
            "Train with batches of 32 or more, or replace BatchNorm by GroupNorm/LayerNorm, which do not depend "
            "on the batch (T14; T33 for the batch size)."
        )
        if batch < BN_MIN_BATCH:
            return self.found(
                "warn",
                f"{len(norms)} BatchNorm layers see batches of {batch} samples (< threshold {BN_MIN_BATCH}): their "
                f"statistics are noisy (a variance estimate from {batch} values is off by "
                f"~{math.sqrt(2 / max(1, batch - 1)):.0%}).",
                advice=advice,
                **evidence,
            )
        if smallest == 1 and any(isinstance(m, nn.BatchNorm1d) for m in norms):
            return self.found(
                "warn",
                "A batch of 1 sample comes up every epoch: BatchNorm1d cannot normalize it (training raises).",
                advice="Drop the last incomplete batch (drop_last=True) or change the batch size (T33), or use a "
                "norm that does not depend on the batch (LayerNorm/GroupNorm, T14).",
                **evidence,
            )
        return self.ok(f"BatchNorm sees batches of {batch} samples.", **evidence)

    @staticmethod
    def _sizes(n: int, batch: int) -> list[int]:
        """Batch sizes of one epoch as the Trainer serves in-memory rows (it holds back a lone last row)."""
        rows = torch.arange(n)
        return [len(b) for b, _ in TensorBatches(rows, rows, batch, shuffle=True)]


@register_check
class BatchIndependence(Check):
    """Gradient of one sample's output with respect to the other samples' inputs (eval mode): must be zero."""

    id = "batch_independence"
    group = "model"
    tricks = ()  # the fix is in the model's code (a reshape), not a catalog trick

    def run(self, ctx: Context) -> Finding:
        x, _ = ctx.probe_batch(8)
        if len(x) < 2:
            raise Skip("needs at least two rows")
        model = ctx.fresh_model().eval()
        worst = 0.0
        for i in (0, len(x) - 1):
            with _differentiable_inputs(model, x) as leaves:
                out = model(x)
            if not leaves:
                raise Skip("integer inputs that no nn.Embedding reads: no floating-point input to differentiate")
            grads = torch.autograd.grad(out[i].sum(), leaves, allow_unused=True)
            parts = [g.reshape(len(x), -1) for g in grads if g is not None]  # None: an input the output never read
            if not parts:
                continue
            grad = torch.cat(parts, dim=1)  # (B, values): each sample's share of every differentiated input
            own = float(grad[i].norm())
            others = float(torch.cat([grad[:i], grad[i + 1 :]]).norm())
            worst = max(worst, others / own if own > 0 else (math.inf if others > 0 else 0.0))
        evidence: dict[str, Any] = {"value": worst, "threshold": 1e-6}
        if worst > 1e-6:
            return self.found(
                "fail",
                f"Sample outputs depend on other samples' inputs: gradient ratio {measured(worst, 1e-6)} (0 for "
                "independent samples).",
                advice="A reshape mixes the batch axis: use permute/transpose rather than view to move axes, pass "
                "batch_first=True to recurrent layers fed (batch, time, features), and never normalize over the "
                "batch axis at inference.",
                **evidence,
            )
        return self.ok("Each sample's output depends only on its own input.", **evidence)


@contextmanager
def _differentiable_inputs(model: nn.Module, x: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """The tensors to differentiate a forward pass by, filled during the pass: `x` itself when it is floating,
    else the output of every nn.Embedding that reads the (B, ...) token ids (words, token types; position
    embeddings read (T,) or (1, T) and are shared by the batch), detached into leaves so frozen embeddings count."""
    if x.is_floating_point():
        yield [x.requires_grad_(True)]
        return
    leaves: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor | None:
        ids = args[0] if args else None
        if not isinstance(ids, torch.Tensor) or ids.ndim < 2 or ids.shape[0] != len(x) or out.shape[0] != len(x):
            return None
        leaf = out.detach().requires_grad_(True)
        leaves.append(leaf)
        return leaf

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Embedding)]
    try:
        yield leaves
    finally:
        for handle in handles:
            handle.remove()


@register_check
class TrainEvalMode(Check):
    """Eval-mode outputs that change between passes (dropout still on) or with the batch (batch statistics)."""

    id = "train_eval_mode"
    group = "model"
    tricks = ("T15", "T14")

    def run(self, ctx: Context) -> Finding:
        x, _ = ctx.probe_batch(64)
        if len(x) < 2:
            raise Skip("needs at least two rows")
        model = ctx.fresh_model().eval()
        half = len(x) // 2
        with torch.no_grad():
            first, second, alone = model(x), model(x), model(x[:half])
        scale = float(first.abs().max()) + 1e-8
        random = float((first - second).abs().max()) / scale
        batch = float((first[:half] - alone).abs().max()) / scale
        evidence: dict[str, Any] = {
            "value": max(random, batch),
            "threshold": EVAL_TOLERANCE,
            "repeat_difference": random,
            "batch_difference": batch,
        }
        if random > EVAL_TOLERANCE:
            return self.found(
                "fail",
                f"In eval mode two passes over the same batch differ by {measured(random, EVAL_TOLERANCE)} (relative): "
                "dropout or another random layer is still active.",
                advice="Use nn.Dropout modules (or F.dropout(x, p, training=self.training)) so model.eval() switches "
                "them off (T15).",
                tricks=("T15",),
                **evidence,
            )
        if batch > EVAL_TOLERANCE:
            return self.found(
                "fail",
                f"In eval mode a sample's output changes with the other samples in its batch by "
                f"{measured(batch, EVAL_TOLERANCE)} (relative): the model uses batch statistics at inference.",
                advice="Keep BatchNorm's running statistics (track_running_stats=True) or use a per-sample norm such "
                "as LayerNorm/GroupNorm (T14).",
                tricks=("T14",),
                **evidence,
            )
        return self.ok("Eval-mode outputs are deterministic and independent of the batch.", **evidence)


@register_check
class FrozenLayers(Check):
    """Layers excluded from training: trained weights frozen on purpose (info), or frozen at random init (warn)."""

    id = "frozen_layers"
    group = "model"
    tricks = ()  # the fix (load the pretrained weights, or unfreeze) is not a catalog trick

    def run(self, ctx: Context) -> Finding:
        frozen = [
            (name, module)
            for name, module in ctx.model.named_modules()
            if isinstance(module, (*WEIGHTED, nn.Embedding))
            and list(module.parameters(recurse=False))
            and not any(p.requires_grad for p in module.parameters(recurse=False))
        ]
        if not frozen:
            return self.ok("Every weighted layer trains (none has requires_grad=False).", frozen_layers=[])
        judged = {name: self._fresh_p(module, ctx.cfg.seed) for name, module in frozen}
        scored = {name: p for name, p in judged.items() if p is not None}
        untrained = [name for name, p in scored.items() if p >= FRESH_P]
        evidence: dict[str, Any] = {"frozen_layers": [name for name, _ in frozen], "p_values": judged}
        if scored:  # the most init-like frozen layer against the threshold
            evidence.update(value=max(scored.values()), threshold=FRESH_P)
        if untrained:
            return self.found(
                "warn",
                f"{', '.join(untrained)} {'is' if len(untrained) == 1 else 'are'} frozen at random initialization: the "
                f"weights are indistinguishable from a fresh reset_parameters() draw (KS p = "
                f"{fmt(evidence['value'])} >= {FRESH_P}), so the model learns only in its other layers.",
                advice="Load the pretrained weights before freezing (model.load_state_dict(...)), or leave these "
                "layers trainable (requires_grad=True).",
                **evidence,
            )
        return self.found(
            "info",
            f"{len(frozen)} frozen layers hold trained weights ({', '.join(n for n, _ in frozen[:5])}): they "
            "are not updated, by choice.",
            advice="Unfreeze them with a lower learning rate once the new layers have settled, if the data differ "
            "from what they were trained on.",
            **evidence,
        )

    @staticmethod
    def _fresh_p(module: nn.Module, seed: int) -> float | None:
        """KS p-value of the module's weights against its own fresh init (None: no reset_parameters, or too few)."""
        weights = [p.detach().flatten().double() for p in module.parameters(recurse=False) if p.ndim >= 2]
        if not hasattr(module, "reset_parameters") or not weights or sum(len(w) for w in weights) < FRESH_MIN_WEIGHTS:
            return None
        fresh = copy.deepcopy(module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh.reset_parameters()  # type: ignore[operator]
        drawn = [p.detach().flatten().double() for p in fresh.parameters(recurse=False) if p.ndim >= 2]
        return float(stats.ks_2samp(torch.cat(weights).cpu().numpy(), torch.cat(drawn).cpu().numpy()).pvalue)
