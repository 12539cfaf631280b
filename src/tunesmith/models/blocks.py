"""Building blocks of the model families: conv units, stage blocks, heads, the neck (T16-T18, T20, T21).

Blocks are assembled from factories handed in by the caller, as in timm: `conv_block(in, out, *,
kernel_size, act_layer=...)` builds one conv -> norm -> act unit (a `functools.partial` of `ConvNormAct`
with the conv, norm and activation classes bound), `norm_layer` and `act_layer` come from `layers.py`.
A disabled part is an `nn.Identity`, so `forward` reads like the maths, without `if`s.

Stage bodies (PlainBlock, Bottleneck, DenseBlock, MultiKernelBlock) take a second factory, `out_block`,
for the conv units that produce their output (it defaults to `conv_block`). `ResidualBlock` passes one
without activation, so the shortcut is added before the activation, as in ResNet.

Shapes: B batch, C channels, S spatial dims ((T,) for sequences, (H, W) for images), F features.

Sources: catalog T16-T18, T20, T21; Simonyan & Zisserman 2015 (stacked 3x3 convs), He et al. 2016
(ResNet, bottleneck), Huang et al. 2017 (DenseNet), Szegedy et al. 2015 (Inception, 1x1 reductions),
Lin et al. 2014 (global average pooling head), Vincent et al. 2008 (denoising autoencoders).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn

from tunesmith.errors import BadInput, must_be
from tunesmith.models.layers import NormLayer

__all__ = [
    "Bottleneck",
    "ConvBlock",
    "ConvNormAct",
    "DenseBlock",
    "FlattenHead",
    "GapHead",
    "GaussianNoise",
    "Head",
    "HierarchicalNeck",
    "MlpBlock",
    "MultiKernelBlock",
    "PlainBlock",
    "ResidualBlock",
    "Reverse",
    "Transpose",
]

ConvBlock = Callable[..., nn.Module]  # (in_channels, out_channels, *, kernel_size, act_layer=...) -> module


class ConvNormAct(nn.Module):
    """T16: conv -> norm -> act with zero "same" padding, so the spatial size is kept.

    The conv has no bias when a norm follows: the norm subtracts the mean, and its own shift replaces it.

    conv_layer: nn.Conv1d for sequences (B, C, T), nn.Conv2d for images (B, C, H, W).
    norm_layer: factory `channels -> norm` (an nn.Identity for no norm).
    act_layer: activation class (nn.Identity for none).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        conv_layer: Callable[..., nn.Module] = nn.Conv2d,
        norm_layer: NormLayer = nn.BatchNorm2d,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        norm = norm_layer(out_channels)
        bias = isinstance(norm, nn.Identity)
        self.conv = conv_layer(in_channels, out_channels, kernel_size, padding="same", bias=bias)
        self.norm = norm
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))  # (B, C_out, *S)


class PlainBlock(nn.Sequential):
    """T16: two stacked kxk conv units: two 3x3 see as far as one 5x5, with fewer weights and one more nonlinearity."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        conv_block: ConvBlock,
        out_block: ConvBlock | None = None,
        kernel_size: int = 3,
    ) -> None:
        out_block = out_block or conv_block
        super().__init__(
            conv_block(in_channels, out_channels, kernel_size=kernel_size),
            out_block(out_channels, out_channels, kernel_size=kernel_size),
        )


class Bottleneck(nn.Sequential):
    """T16: a 1x1 conv narrows the channels by `reduction`, the kxk conv works on few channels, a 1x1 widens back."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        conv_block: ConvBlock,
        out_block: ConvBlock | None = None,
        kernel_size: int = 3,
        reduction: int = 4,  # ResNet-50's expansion factor
    ) -> None:
        out_block = out_block or conv_block
        mid = max(1, out_channels // reduction)
        super().__init__(
            conv_block(in_channels, mid, kernel_size=1),
            conv_block(mid, mid, kernel_size=kernel_size),
            out_block(mid, out_channels, kernel_size=1),
        )


class DenseBlock(nn.Module):
    """T18 (DenseNet): each conv unit sees the concatenation of the block input and all earlier units' outputs.

    Each of `n_layers` units adds `out_channels // 2` channels (the growth rate); a 1x1 transition conv maps
    the concatenation to `out_channels`, so stage widths stay powers of two.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        conv_block: ConvBlock,
        out_block: ConvBlock | None = None,
        kernel_size: int = 3,
        n_layers: int = 2,
    ) -> None:
        super().__init__()
        out_block = out_block or conv_block
        growth = max(1, out_channels // 2)
        self.units = nn.ModuleList(
            conv_block(in_channels + i * growth, growth, kernel_size=kernel_size) for i in range(n_layers)
        )
        self.transition = out_block(in_channels + n_layers * growth, out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for unit in self.units:
            features.append(unit(torch.cat(features, dim=1)))  # + (B, growth, *S)
        return self.transition(torch.cat(features, dim=1))  # (B, C_out, *S)


class MultiKernelBlock(nn.Module):
    """T16 (Inception): parallel 1x1, 3x3 and 5x5 branches, concatenated along channels.

    The branches get a quarter, a half and a quarter of `out_channels` (the 3x3 does most of the work);
    the 3x3 and 5x5 branches start with a 1x1 reduction, as in GoogLeNet.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        conv_block: ConvBlock,
        out_block: ConvBlock | None = None,
    ) -> None:
        super().__init__()
        if out_channels < 4:
            allowed = "an int >= 4 (three branches share the channels)"
            hint = "Raise model.width to 4 or more, or turn multi_kernel off."
            raise BadInput(must_be("out_channels", "MultiKernelBlock", allowed, out_channels, hint=hint))
        out_block = out_block or conv_block
        quarter, half = out_channels // 4, out_channels // 2
        rest = out_channels - quarter - half
        self.branches = nn.ModuleList(
            [
                out_block(in_channels, quarter, kernel_size=1),
                nn.Sequential(conv_block(in_channels, half, kernel_size=1), out_block(half, half, kernel_size=3)),
                nn.Sequential(conv_block(in_channels, rest, kernel_size=1), out_block(rest, rest, kernel_size=5)),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)  # (B, C_out, *S)


class ResidualBlock(nn.Module):
    """T18 (ResNet): out = act(body(x) + shortcut(x)); gradients reach early layers through the shortcut.

    body_layer: a stage body factory `(in, out, *, out_block) -> module` (a partial of PlainBlock,
        Bottleneck, DenseBlock or MultiKernelBlock); its output units get no activation, the sum does.
    The shortcut is the identity, or a 1x1 conv + norm projection when the channel count changes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        body_layer: Callable[..., nn.Module],
        conv_block: ConvBlock,
        act_layer: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        linear_block = partial(conv_block, act_layer=nn.Identity)
        self.body = body_layer(in_channels, out_channels, out_block=linear_block)
        self.shortcut = (
            linear_block(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))  # (B, C_out, *S)


class Head(nn.Module):
    """Reduces the stage outputs [(B, C_i, *S_i), ...] of a CNN to one feature vector (B, out_features).

    Every head is built as `head(channels, size)` from the channel counts of all stages and the spatial
    size of the last one, so the CNN can take any of them as its `head_layer`.
    """

    out_features: int


class GapHead(Head):
    """T17: global average pooling of the last stage: one number per channel, no large FC layer to overfit."""

    def __init__(self, channels: Sequence[int], size: Sequence[int] = ()) -> None:
        super().__init__()
        self.out_features = channels[-1]

    def forward(self, features: list[Tensor]) -> Tensor:
        return features[-1].flatten(2).mean(dim=-1)  # (B, C)


class FlattenHead(Head):
    """T17's alternative: flatten the last stage's maps (keeps position, costs C * prod(S) weights per output)."""

    def __init__(self, channels: Sequence[int], size: Sequence[int]) -> None:
        super().__init__()
        self.out_features = channels[-1] * math.prod(size)

    def forward(self, features: list[Tensor]) -> Tensor:
        return features[-1].flatten(1)  # (B, C * prod(S))


class HierarchicalNeck(Head):
    """T21: fuse every stage's features with learned attention weights instead of using the last stage only.

    Each stage output is globally average-pooled and projected to `width` (default: the last stage's
    channels) by a Linear; a Linear scores each projected vector, a softmax over stages turns the scores
    into weights (per sample), and the neck returns the weighted sum. Early stages carry fine, local
    patterns; the weights say how much each one counts.
    """

    def __init__(self, channels: Sequence[int], size: Sequence[int] = (), *, width: int | None = None) -> None:
        super().__init__()
        width = width or channels[-1]
        self.out_features = width
        self.project = nn.ModuleList(nn.Linear(c, width) for c in channels)
        self.score = nn.Linear(width, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        pooled = [proj(f.flatten(2).mean(dim=-1)) for proj, f in zip(self.project, features, strict=True)]
        stacked = torch.stack(pooled, dim=1)  # (B, n_stages, width)
        weights = self.score(stacked).softmax(dim=1)  # (B, n_stages, 1)
        return (weights * stacked).sum(dim=1)  # (B, width)


class MlpBlock(nn.Sequential):
    """T10/T14/T15: Linear -> norm -> act -> dropout; the Linear has no bias when a norm follows.

    The Dropout stays in place even at rate 0, so `set_dropout` can raise it later (T15).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        norm_layer: NormLayer,
        act_layer: Callable[[], nn.Module],
        dropout: float,
    ) -> None:
        norm = norm_layer(out_features)
        linear = nn.Linear(in_features, out_features, bias=isinstance(norm, nn.Identity))
        super().__init__(linear, norm, act_layer(), nn.Dropout(dropout))


class GaussianNoise(nn.Module):
    """T20 (denoising autoencoder): adds N(0, std^2) noise to the input in training mode only, like Dropout."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        return x + self.std * torch.randn_like(x)


class Reverse(nn.Module):
    """Reverses the steps, (B, T, ...) -> (B, T, ...) read from the last step: columns that run newest first
    (lag_1 .. lag_24) become time as it ran, oldest first (model.step_order)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flip(1)


class Transpose(nn.Module):
    """Swaps two dims: (B, T, C) sequences to the (B, C, T) layout of Conv1d, or image rows for an RNN."""

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dims = (dim0, dim1)

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(*self.dims)
