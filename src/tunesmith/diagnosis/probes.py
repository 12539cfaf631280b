"""Forward hooks that read a model's layers on one batch: works on any nn.Module, changes nothing.

`layer_stats` watches the weighted layers (Linear, convolutions, recurrent layers) in the order the
forward pass calls them: the standard deviation of each output (T13: shrinking or growing across
depth), how different its units are (identical units never become different: a symmetric init),
and which of its input units are exactly zero on every sample (T66: dead ReLU-family units, seen
at the next layer's input, so functional activations such as `F.relu` are covered too).
`saturation` watches Tanh and Sigmoid modules: the share of values at the rails, where the local
derivative is below 0.02 (Glorot & Bengio 2010). `measure_init` bundles them with the loss at
initialization (Karpathy 2019: "verify loss @ init").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tunesmith.train.monitor import SATURATION

if TYPE_CHECKING:
    from tunesmith.diagnosis.context import Context

__all__ = ["WEIGHTED", "InitStats", "LayerStat", "layer_stats", "measure_init", "output_activation", "saturation"]

WEIGHTED = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.RNNBase)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
INIT_BATCHES = 4  # batches the initial loss is averaged over


@dataclass
class LayerStat:
    name: str
    type: str
    out_std: float  # standard deviation of the layer's output on the batch
    unit_spread: float  # mean std across units / overall std: 0 when every unit computes the same thing
    dead_inputs: int  # input units that are exactly 0 on every sample and position
    n_inputs: int


@dataclass
class InitStats:
    loss: float  # mean training loss of the untrained model (train mode, no update)
    losses: list[float]  # per batch
    layers: list[LayerStat] = field(default_factory=list)
    saturated: dict[str, float] = field(default_factory=dict)  # Tanh/Sigmoid module -> share at the rails


def _unit_axis(module: nn.Module) -> int:
    return 1 if isinstance(module, _CONV) else -1


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, tuple | list) and value and isinstance(value[0], torch.Tensor):
        return value[0]  # recurrent layers return (output, state)
    return None


@torch.no_grad()
def layer_stats(model: nn.Module, x: torch.Tensor) -> list[LayerStat]:
    """One LayerStat per weighted layer, in the order the forward pass first calls them."""
    stats: list[LayerStat] = []
    seen: set[str] = set()

    def hook(name: str, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        out, inp = _first_tensor(output), _first_tensor(args)
        if name in seen or out is None or inp is None or not inp.is_floating_point():
            return
        seen.add(name)
        axis = _unit_axis(module)
        o = out.detach().float()
        overall = float(o.std()) if o.numel() > 1 else 0.0
        spread = float(o.std(dim=axis).mean()) / overall if overall > 0 and o.shape[axis] > 1 else 1.0
        units = inp.detach().movedim(axis, -1).reshape(-1, inp.shape[axis])  # (values, units)
        dead = int((units == 0).all(dim=0).sum())
        stats.append(LayerStat(name, type(module).__name__, overall, spread, dead, units.shape[1]))

    handles = [
        module.register_forward_hook(lambda m, a, o, n=name: hook(n, m, a, o))
        for name, module in model.named_modules()
        if isinstance(module, WEIGHTED)
    ]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return stats


@torch.no_grad()
def saturation(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Share of values at the rails (|tanh| or |2 sigmoid - 1| > 0.99) per Tanh/Sigmoid module.

    A module whose output is the model's output (a sigmoid feeding BCELoss) is left out: confident
    predictions are not saturated hidden units.
    """
    shares: dict[str, tuple[float, torch.Tensor]] = {}

    def hook(name: str, module: nn.Module, args: Any, output: Any) -> None:
        if name in shares or not isinstance(output, torch.Tensor):
            return
        z = output if isinstance(module, nn.Tanh) else 2 * output - 1
        shares[name] = (float((z.abs() > SATURATION).float().mean()), output)

    handles = [
        module.register_forward_hook(lambda m, a, o, n=name: hook(n, m, a, o))
        for name, module in model.named_modules()
        if isinstance(module, nn.Tanh | nn.Sigmoid)
    ]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: share for name, (share, tensor) in shares.items() if tensor is not out}


_SHAPE_ONLY = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@torch.no_grad()
def output_activation(model: nn.Module, x: torch.Tensor) -> nn.Module | None:
    """The module that produced the model's output, looking through reshapes and dropout (None if none).

    A Softmax, Sigmoid or ReLU here tells what range the outputs live in, whatever values the
    untrained model happens to produce.
    """
    calls: list[tuple[nn.Module, Any]] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda mod, args, out: calls.append((mod, out))) for m in leaves]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    position = next((i for i in range(len(calls) - 1, -1, -1) if calls[i][1] is out), None)
    while position is not None and position > 0 and isinstance(calls[position][0], _SHAPE_ONLY):
        position -= 1  # a reshape or dropout passes on what the module before it produced
    return None if position is None else calls[position][0]


def measure_init(ctx: Context) -> InitStats:
    """Loss, layer statistics and saturation of a fresh copy of the model, before any update."""
    model = ctx.fresh_model().train()  # batch statistics, as in the first training step
    x, y = ctx.probe_batch()
    losses: list[float] = []
    with torch.no_grad():
        for start in range(0, len(x), ctx.batch_size):
            xb, yb = x[start : start + ctx.batch_size], y[start : start + ctx.batch_size]
            if len(xb) < 2 or len(losses) == INIT_BATCHES or ctx.loss_error is not None:
                break
            losses.append(float(ctx.loss_fn(model(xb), yb)))
    # a copy again: the passes above updated BatchNorm running statistics
    layers = layer_stats(ctx.fresh_model().train(), x)
    return InitStats(
        float(np.mean(losses)) if losses else float("nan"), losses, layers, saturation(ctx.fresh_model().train(), x)
    )
