"""Layer factories resolved from recipe strings once: activations (T11) and normalization (T14).

Models take these factories as arguments (timm's `act_layer` / `norm_layer` idiom), so a block never
branches on a string, and "no norm" is an `nn.Identity`. An unknown name raises `BadInput` listing the
valid names and the closest one (pip's did-you-mean), never a bare `KeyError`.

Norm layers come in three shapes, picked by `dims`: 0 for feature vectors `(B, F)`, 1 for sequences
`(B, C, T)` and 2 for image maps `(B, C, H, W)`. Layer norm on conv maps is `GroupNorm(1, C)`, which
normalizes each sample over all of `(C, *S)` (Wu & He 2018, "Group Normalization", section 3.1).

Sources: catalog T11, T14; timm `layers/create_act.py`; Ioffe & Szegedy 2015 (batch norm), Ba et al.
2016 (layer norm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

from torch import nn

from tunesmith.errors import BadInput, closest, must_be

__all__ = ["NormLayer", "get_act_layer", "get_norm_layer", "lookup"]

T = TypeVar("T")
NormLayer = Callable[[int], nn.Module]  # number of features/channels -> norm module

_ACT_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,  # the default: fast, does not saturate for positive inputs
    "leaky_relu": nn.LeakyReLU,  # slope 0.01 below zero keeps dead units trainable (T66)
    "prelu": nn.PReLU,  # learned negative slope
    "rrelu": nn.RReLU,  # random negative slope while training, its mean at eval
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,  # saturating: pair with Xavier init (T13)
    "sigmoid": nn.Sigmoid,
}


def _no_norm(num_features: int) -> nn.Module:
    return nn.Identity()


# by dims: features (B, F), sequences (B, C, T), maps (B, C, H, W)
_NORM_LAYERS: dict[str, tuple[NormLayer, NormLayer, NormLayer]] = {
    "batch": (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d),
    "layer": (nn.LayerNorm, partial(nn.GroupNorm, 1), partial(nn.GroupNorm, 1)),
    "none": (_no_norm, _no_norm, _no_norm),
}


def lookup(table: Mapping[str, T], name: str, *, param: str, owner: str = "model") -> T:
    """`table[name]`, or a `BadInput` naming the parameter, the valid names and the closest one."""
    if name not in table:
        guess = closest(name, table)
        hint = f"Did you mean {guess!r}?" if guess else ""
        raise BadInput(must_be(param, owner, f"one of {', '.join(table)}", name, hint=hint))
    return table[name]


def get_act_layer(name: str) -> type[nn.Module]:
    """T11: the activation class for `name` (relu, leaky_relu, prelu, rrelu, elu, gelu, tanh, sigmoid)."""
    return lookup(_ACT_LAYERS, name, param="activation")


def get_norm_layer(name: str, *, dims: int) -> NormLayer:
    """T14: a factory `num_features -> module` for norm `name` (batch, layer, none) on `dims`-d inputs.

    dims: 0 for feature vectors (B, F), 1 for sequences (B, C, T), 2 for image maps (B, C, H, W).
    """
    if dims not in (0, 1, 2):
        raise ValueError(f"dims must be 0, 1 or 2, got {dims!r}")
    return lookup(_NORM_LAYERS, name, param="norm")[dims]
