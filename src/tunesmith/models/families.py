"""The model families of T10, built from a resolved `ModelConfig` by one factory, `build_model`.

Each family registers a builder with `@register_family(name)`; `build_model` looks the family up (an
unknown name raises `BadInput` with the closest one), builds it from the recipe and the data's shape, and
initializes it (T13). mlp, cnn and rnn return logits (B, n_outputs): the trainer picks the loss (T12),
and binary classification uses n_outputs=1. The autoencoder returns a reconstruction of its input. Text
(token ids) is read by bag, cnn, rnn and transformer, built from models/text.py (docs/text.md), and by a
pretrained Hugging Face encoder (`model.backbone`, family "backbone": models/backbone.py, its own weights, no init).

The `aux_loss` convention: any model may expose an attribute `aux_loss`, a scalar tensor set by its
latest `forward`, which the trainer adds to the task loss; a model without one, or with `aux_loss` None,
adds nothing. The autoencoder sets it to its L1 code penalty when `sparsity` > 0 (T20). The tensor holds
the forward's graph until the next forward: read it right after the forward, and copy model weights with
`state_dict()` rather than `copy.deepcopy(model)` after a training forward.

`custom = "package.module:attr"` loads a user model instead (an nn.Module instance, or a class/factory
called with no arguments). Its dropout layers are set to `dropout` (T15): whether the recipe's dropout
was given explicitly cannot be told from a resolved config, so the recipe's value always wins. Custom
models keep their own (possibly pretrained) weights: no init.

Sources: catalog T10, T12-T22; seeds 002 and 003 (design rules per family).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from tunesmith.errors import BadInput, closest, must_be
from tunesmith.models.backbone import build_backbone_model
from tunesmith.models.blocks import (
    Bottleneck,
    ConvNormAct,
    DenseBlock,
    FlattenHead,
    GapHead,
    GaussianNoise,
    Head,
    HierarchicalNeck,
    MlpBlock,
    MultiKernelBlock,
    PlainBlock,
    ResidualBlock,
    Reverse,
    Transpose,
)
from tunesmith.models.init import init_weights, set_dropout
from tunesmith.models.layers import get_act_layer, get_norm_layer, lookup
from tunesmith.models.text import Bag, HashedBigrams, TextCNN, TextRNN, TextTransformer, TokenLayerNorm
from tunesmith.recipe import DataFacts, ModelConfig
from tunesmith.registry import registrar

__all__ = ["CNN", "MLP", "RNN", "AutoEncoder", "FamilyBuilder", "build_model", "register_family"]

_RANKS = {"tabular": 1, "sequence": 2, "image": 3, "text": 1}  # kind -> length of one sample's shape
_SHAPES = {"tabular": "(F,)", "sequence": "(T, C)", "image": "(C, H, W)", "text": "(max_length,) token ids"}
TEXT_FAMILIES = ("bag", "cnn", "rnn", "transformer")  # read token ids (models/text.py); bag, transformer only them
BIGRAM_BUCKETS = 4  # hashed word-pair ids per vocabulary word (bag.bigrams), at most MAX_BUCKETS: fewer collide
MAX_BUCKETS = 2**16  # more; each bucket is an embedding row (memory and optimizer state)
_HEADS: dict[str, type[Head]] = {"gap": GapHead, "flatten": FlattenHead}
_RESOLVE_HINT = "Resolve the recipe first: tunesmith.recipe.resolve(recipe, facts)."
# T44: depth 0 leaves a CNN without a stage and an RNN without a recurrent layer: what is left of either is
# the output Linear over the flattened input, the MLP's depth 0 (the linear model), so they build that. The
# tune's capacity stage can then offer the linear model whichever family a trial reads the data with. Over
# text, what is left of cnn, rnn or transformer is the linear head over the averaged word embeddings: the bag.
LINEAR_AT_DEPTH_0 = ("cnn", "rnn", "transformer")


class FamilyBuilder(Protocol):
    """What `@register_family` takes: a function from a resolved ModelConfig and the data's shape to a model."""

    def __call__(
        self, cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
    ) -> nn.Module: ...


_FAMILIES: dict[str, FamilyBuilder] = {}


def register_family(name: str) -> Callable[[FamilyBuilder], FamilyBuilder]:
    """Register a builder `(cfg, *, kind, input_shape, n_outputs, vocab_size) -> nn.Module` under `name` (unique)."""
    return registrar(_FAMILIES, "model family", name)


def fresh_model(cfg: ModelConfig, facts: DataFacts, user: nn.Module | None = None) -> nn.Module:
    """A new model to train on data with these `facts`: a copy of the user's module (never trained in
    place), or `cfg`'s family built for the data."""
    if user is not None:
        return copy.deepcopy(user)
    return build_model(
        cfg, kind=facts.kind, input_shape=facts.input_shape, n_outputs=facts.n_outputs, vocab_size=facts.vocab_size
    )


def build_model(
    cfg: ModelConfig,
    *,
    kind: str,
    input_shape: tuple[int, ...],
    n_outputs: int,
    vocab_size: int = 0,
    architecture: Path | None = None,
) -> nn.Module:
    """Build and initialize the model of a resolved `cfg` for samples of `input_shape`.

    kind: tabular (F,), sequence (T, C), image (C, H, W) or text (max_length,) token ids; the shape of one
        sample, without the batch.
    n_outputs: logits per sample (classes, 1 for binary, target columns); ignored by the autoencoder.
    vocab_size: text only: the tokenizer's vocabulary, the embedding's rows (ids 0 .. vocab_size - 1).
    architecture: a backbone only: a run's backbone/ folder, the encoder built from its config without weights
        (models/backbone.py `load_backbone`), for the caller to load a run's model.pt into.
    """
    lookup(_RANKS, kind, param="kind", owner="data")
    if len(input_shape) != _RANKS[kind] or min(input_shape, default=0) < 1:
        raise BadInput(must_be("input_shape", "build_model", f"{_SHAPES[kind]} for {kind} data", input_shape))
    if n_outputs < 1:
        raise BadInput(must_be("n_outputs", "build_model", "an int >= 1", n_outputs))
    if cfg.custom is not None:
        return _load_custom(cfg.custom, dropout=cfg.dropout)
    if cfg.backbone is not None:  # pretrained weights: no init (models/backbone.py)
        return build_backbone_model(cfg, n_outputs=n_outputs, architecture=architecture)
    for field in ("family", "norm", "init"):
        if getattr(cfg, field) == "auto":
            raise BadInput(must_be(field, "model", "resolved (not 'auto')", "auto", hint=_RESOLVE_HINT))
    family = lookup(_FAMILIES, cfg.family, param="family")
    _check_text(cfg.family, kind, vocab_size)
    if cfg.depth == 0 and cfg.family in LINEAR_AT_DEPTH_0:  # no stage or recurrent layer: only the output Linear
        family = _FAMILIES["bag" if kind == "text" else "mlp"]
    model = family(cfg, kind=kind, input_shape=tuple(input_shape), n_outputs=n_outputs, vocab_size=vocab_size)
    init_weights(model, scheme=cfg.init, activation=cfg.activation)
    if isinstance(model, MLP) and cfg.depth == 0:  # T13: without hidden units there is no symmetry to break:
        nn.init.zeros_(model.fc.weight)  # start from the constant predictor, the convex optimum's nearest guess
    return model


def _check_text(family: str, kind: str, vocab_size: int) -> None:
    """Text is read by TEXT_FAMILIES only, and those families' embeddings need the vocabulary."""
    if kind == "text" and family not in TEXT_FAMILIES:
        hint = f"{family} reads numbers, not token ids; bag is the default for text (docs/text.md)."
        raise BadInput(must_be("family", "model", f"one of {', '.join(TEXT_FAMILIES)} for text", family, hint=hint))
    if kind != "text" and family in ("bag", "transformer"):
        hint = "They read token ids: pass text (data.text), or choose mlp, cnn or rnn."
        raise BadInput(must_be("family", "model", f"mlp, cnn or rnn for {kind} data", family, hint=hint))
    if kind == "text" and vocab_size < 3:  # [PAD], [UNK] and at least one word
        raise BadInput(must_be("vocab_size", "build_model", "an int >= 3 for text", vocab_size))


def _need(cfg: ModelConfig, field: str) -> int:
    value = getattr(cfg, field)
    if value is None:
        raise BadInput(must_be(field, "model", "resolved (an int, not None)", None, hint=_RESOLVE_HINT))
    return int(value)


class MLP(nn.Module):
    """T10: `depth` hidden blocks of `width` units, then a Linear to the outputs; inputs are flattened.

    depth 0 has no hidden block: the linear model, one Linear from the inputs to the outputs (linear or
    logistic regression trained by the same Trainer), the capacity stage's smallest candidate (T22, T44).
    block: `(in_features, out_features) -> module`, a partial of MlpBlock (Linear -> norm -> act -> dropout).
    """

    def __init__(
        self, in_features: int, n_outputs: int, *, width: int, depth: int, block: Callable[[int, int], nn.Module]
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.body, features = _stack(block, in_features, width, depth)
        self.fc = nn.Linear(features, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(self.flatten(x)))  # (B, *shape) -> (B, n_outputs)


class CNN(nn.Module):
    """T16-T18, T21: stages of `widths` channels with 2x2 max-pooling between them, a head, dropout, a Linear.

    adapter: turns one batch into (B, C, *S) maps. size: the spatial size S of those maps. stage_block:
    `(in_channels, out_channels) -> module`. head_layer: a Head class (GapHead, FlattenHead, HierarchicalNeck).
    Pooling halves each spatial dim that is still >= 2 (a dim of size 1 is left alone, none reaches zero).
    side: a table's last `side` columns are no step of the series (a season's phase, model.step_columns): the
    adapter never sees them, and the output layer reads them beside the head's features.
    """

    def __init__(
        self,
        *,
        adapter: nn.Module,
        in_channels: int,
        size: tuple[int, ...],
        n_outputs: int,
        widths: list[int],
        stage_block: Callable[[int, int], nn.Module],
        head_layer: Callable[[list[int], tuple[int, ...]], Head],  # see blocks.Head
        dropout: float,
        side: int = 0,
    ) -> None:
        super().__init__()
        self.adapter, self.side = adapter, side
        pool_layer = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[len(size)]
        self.stages = nn.ModuleList()
        self.pools = nn.ModuleList()  # after each stage; the last one is an Identity
        for i, (c_in, c_out) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)):
            self.stages.append(stage_block(c_in, c_out))
            kernel = tuple(2 if s >= 2 and i < len(widths) - 1 else 1 for s in size)
            self.pools.append(pool_layer(kernel) if max(kernel) > 1 else nn.Identity())
            size = tuple(s // k for s, k in zip(size, kernel, strict=True))
        self.head = head_layer(widths, size)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.head.out_features + side, n_outputs))

    def forward(self, x: Tensor) -> Tensor:
        x, side = _split_side(x, self.side)
        x = self.adapter(x)  # (B, C, *S)
        features = []
        for stage, pool in zip(self.stages, self.pools, strict=True):
            x = stage(x)  # (B, C_i, *S_i)
            features.append(x)
            x = pool(x)  # (B, C_i, *S_i // 2)
        return self.classifier(_join(self.head(features), side))  # (B, n_outputs)


class RNN(nn.Module):
    """T19: an LSTM/GRU stack; the head reads the last step's output and the mean over time, concatenated.

    The last step summarizes the sequence for the forward direction; the mean gives every step, and the
    backward direction, a direct path to the loss. side: as CNN's.
    """

    def __init__(
        self,
        *,
        adapter: nn.Module,
        in_features: int,
        n_outputs: int,
        cell: str,
        width: int,
        depth: int,
        bidirectional: bool,
        dropout: float,
        norm_layer: Callable[[int], nn.Module],
        side: int = 0,
    ) -> None:
        super().__init__()
        self.adapter, self.side = adapter, side
        rnn_layer = lookup({"lstm": nn.LSTM, "gru": nn.GRU}, cell, param="cell")
        between = dropout if depth > 1 else 0.0  # torch applies it between stacked layers only
        self.rnn = rnn_layer(in_features, width, depth, batch_first=True, bidirectional=bidirectional, dropout=between)
        features = 2 * width * (2 if bidirectional else 1)
        self.norm = norm_layer(features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features + side, n_outputs))

    def forward(self, x: Tensor) -> Tensor:
        x, side = _split_side(x, self.side)
        seq, _ = self.rnn(self.adapter(x))  # (B, T, D * H)
        pooled = torch.cat([seq[:, -1], seq.mean(dim=1)], dim=-1)  # (B, 2 * D * H)
        return self.classifier(_join(self.norm(pooled), side))  # (B, n_outputs)


def _split_side(x: Tensor, side: int) -> tuple[Tensor, Tensor | None]:
    """(B, F) -> the series' (B, F - side) and the side columns (B, side); any other batch as it is, and None."""
    return (x, None) if side == 0 else (x[:, :-side], x[:, -side:])


def _join(features: Tensor, side: Tensor | None) -> Tensor:
    """(B, D) features with the side columns after them: what the output layer reads."""
    return features if side is None else torch.cat([features, side], dim=-1)


class AutoEncoder(nn.Module):
    """T20: flatten -> encoder MLP -> linear code -> mirrored decoder MLP -> reshape to the input's shape.

    denoise: std of the Gaussian noise added to the encoder input in training mode (the target stays clean).
    sparsity: weight of the L1 penalty on the code, exposed as `aux_loss` after each forward (None when 0).
    """

    aux_loss: Tensor | None

    def __init__(
        self,
        input_shape: tuple[int, ...],
        *,
        width: int,
        depth: int,
        code_size: int,
        denoise: float,
        sparsity: float,
        block: Callable[[int, int], nn.Module],
    ) -> None:
        super().__init__()
        n_inputs = math.prod(input_shape)
        self.noise = GaussianNoise(denoise) if denoise > 0 else nn.Identity()
        encoder, features = _stack(block, n_inputs, width, depth)  # depth 0: a linear autoencoder (PCA's subspace)
        self.encoder = nn.Sequential(nn.Flatten(), encoder, nn.Linear(features, code_size))
        decoder, features = _stack(block, code_size, width, depth)
        self.decoder = nn.Sequential(decoder, nn.Linear(features, n_inputs), nn.Unflatten(1, input_shape))
        self.sparsity = sparsity
        self.aux_loss = None

    def encode(self, x: Tensor) -> Tensor:
        """The code of clean inputs (B, *shape) -> (B, code_size): the reduced representation (T10)."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        code = self.encoder(self.noise(x))  # (B, code_size)
        self.aux_loss = self.sparsity * code.abs().mean() if self.sparsity > 0 else None
        return self.decoder(code)  # (B, *shape)


def _stack(
    block: Callable[[int, int], nn.Module], in_features: int, width: int, depth: int
) -> tuple[nn.Sequential, int]:
    """`depth` blocks of `width` units, (B, in_features) -> (B, width), and the features they output
    (depth 0: an empty stack that passes its in_features through)."""
    blocks = nn.Sequential(*(block(in_features if i == 0 else width, width) for i in range(depth)))
    return blocks, width if depth > 0 else in_features


def _mlp_block(cfg: ModelConfig) -> Callable[[int, int], nn.Module]:
    norm_layer = get_norm_layer(cfg.norm, dims=0)
    return partial(MlpBlock, norm_layer=norm_layer, act_layer=get_act_layer(cfg.activation), dropout=cfg.dropout)


@register_family("mlp")
def _build_mlp(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    in_features = math.prod(input_shape)  # images and sequences are flattened
    return MLP(in_features, n_outputs, width=_need(cfg, "width"), depth=_need(cfg, "depth"), block=_mlp_block(cfg))


@register_family("cnn")
def _build_cnn(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    if kind == "text":
        return TextCNN(
            vocab_size=vocab_size,
            embed_dim=_need(cfg, "embed_dim"),
            width=_need(cfg, "width"),
            depth=_need(cfg, "depth"),
            conv_block=partial(
                ConvNormAct,
                kernel_size=cfg.kernel_size,
                conv_layer=nn.Conv1d,
                norm_layer=TokenLayerNorm if cfg.norm == "layer" else get_norm_layer(cfg.norm, dims=1),
                act_layer=get_act_layer(cfg.activation),
            ),
            n_outputs=n_outputs,
            dropout=cfg.dropout,
        )
    adapter: nn.Module
    side = 0  # a table's columns that are no step of its series (model.step_columns)
    if kind == "image":  # (C, H, W): 2-d convs
        adapter, channels, size = nn.Identity(), input_shape[0], input_shape[1:]
    elif kind == "sequence":  # (T, C): 1-d convs over time on (B, C, T)
        adapter, channels, size = nn.Sequential(_steps(cfg), Transpose(1, 2)), input_shape[1], input_shape[:1]
    else:  # tabular (F,) is read as a sequence (F, 1), its season's columns aside (model.step_columns)
        steps = _step_columns(cfg, input_shape)
        adapter, channels, size = nn.Sequential(_steps(cfg), nn.Unflatten(1, (1, steps))), 1, (steps,)
        side = input_shape[0] - steps
    dims = len(size)
    act_layer = get_act_layer(cfg.activation)
    conv_block = partial(
        ConvNormAct,
        conv_layer={1: nn.Conv1d, 2: nn.Conv2d}[dims],
        norm_layer=get_norm_layer(cfg.norm, dims=dims),
        act_layer=act_layer,
    )
    width = _need(cfg, "width")
    head_layer = HierarchicalNeck if cfg.neck else lookup(_HEADS, cfg.head, param="head")  # T21 over T17
    return CNN(
        adapter=adapter,
        in_channels=channels,
        size=size,
        n_outputs=n_outputs,
        widths=[width * 2**i for i in range(_need(cfg, "depth"))],  # T16: powers of two, doubling per stage
        stage_block=_stage_block(cfg, conv_block=conv_block, act_layer=act_layer),
        head_layer=head_layer,
        dropout=cfg.dropout,
        side=side,
    )


def _steps(cfg: ModelConfig) -> nn.Module:
    """T19: the steps in time's order: reversed when the columns run newest first (model.step_order)."""
    return Reverse() if cfg.step_order == "reversed" else nn.Identity()


def _step_columns(cfg: ModelConfig, input_shape: tuple[int, ...]) -> int:
    """The table's columns a sequence reading takes as steps: model.step_columns, or all of them."""
    steps = cfg.step_columns or input_shape[0]
    if steps > input_shape[0]:
        raise BadInput(must_be("step_columns", "model", f"at most the table's {input_shape[0]} columns", steps))
    return steps


def _stage_block(
    cfg: ModelConfig, *, conv_block: Callable[..., nn.Module], act_layer: Callable[[], nn.Module]
) -> Callable[[int, int], nn.Module]:
    """The stage body chosen by the dense/bottleneck/multi_kernel flags (at most one), wrapped if residual."""
    chosen = [flag for flag in ("dense", "bottleneck", "multi_kernel") if getattr(cfg, flag)]
    if len(chosen) > 1:
        hint = "Set at most one of them to true (residual combines with any)."
        raise BadInput(must_be("dense/bottleneck/multi_kernel", "model", "exclusive", chosen, hint=hint))
    k = cfg.kernel_size
    bodies: dict[str, Callable[..., nn.Module]] = {
        "plain": partial(PlainBlock, conv_block=conv_block, kernel_size=k),
        "dense": partial(DenseBlock, conv_block=conv_block, kernel_size=k),
        "bottleneck": partial(Bottleneck, conv_block=conv_block, kernel_size=k),
        "multi_kernel": partial(MultiKernelBlock, conv_block=conv_block),  # fixed 1x1, 3x3, 5x5 branches
    }
    body = bodies[chosen[0] if chosen else "plain"]
    if cfg.residual:
        return partial(ResidualBlock, body_layer=body, conv_block=conv_block, act_layer=act_layer)
    return body


@register_family("rnn")
def _build_rnn(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    if kind == "text":
        return TextRNN(
            vocab_size=vocab_size,
            embed_dim=_need(cfg, "embed_dim"),
            cell=lookup({"lstm": nn.LSTM, "gru": nn.GRU}, cfg.cell, param="cell"),
            width=_need(cfg, "width"),
            depth=_need(cfg, "depth"),
            bidirectional=cfg.bidirectional,
            norm_layer=get_norm_layer(cfg.norm, dims=0),
            n_outputs=n_outputs,
            dropout=cfg.dropout,
        )
    side = 0  # a table's columns that are no step of its series (model.step_columns)
    if kind == "image":  # (C, H, W) read row by row: (H, C * W)
        adapter: nn.Module = nn.Sequential(Transpose(1, 2), nn.Flatten(2))
        in_features = input_shape[0] * input_shape[2]
    elif kind == "sequence":
        adapter, in_features = _steps(cfg), input_shape[1]
    else:  # tabular (F,) is read as a sequence (F, 1), its season's columns aside (model.step_columns)
        steps = _step_columns(cfg, input_shape)
        adapter, in_features, side = nn.Sequential(_steps(cfg), nn.Unflatten(1, (steps, 1))), 1, input_shape[0] - steps
    return RNN(
        adapter=adapter,
        in_features=in_features,
        n_outputs=n_outputs,
        cell=cfg.cell,
        width=_need(cfg, "width"),
        depth=_need(cfg, "depth"),
        bidirectional=cfg.bidirectional,
        dropout=cfg.dropout,
        norm_layer=get_norm_layer(cfg.norm, dims=0),
        side=side,
    )


@register_family("autoencoder")
def _build_autoencoder(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    return AutoEncoder(
        input_shape,
        width=_need(cfg, "width"),
        depth=_need(cfg, "depth"),
        code_size=_need(cfg, "code_size"),
        denoise=cfg.denoise,
        sparsity=cfg.sparsity,
        block=_mlp_block(cfg),
    )


@register_family("bag")
def _build_bag(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    buckets = min(MAX_BUCKETS, BIGRAM_BUCKETS * vocab_size) if cfg.bigrams else 0
    embed_dim = _need(cfg, "embed_dim")
    body, features = _stack(_mlp_block(cfg), 2 * embed_dim, _need(cfg, "width"), _need(cfg, "depth"))  # mean, max
    return Bag(
        ngrams=HashedBigrams(vocab_size, buckets) if buckets else nn.Identity(),
        n_ids=vocab_size + buckets,
        embed_dim=embed_dim,
        body=body,
        features=features,
        n_outputs=n_outputs,
        dropout=cfg.dropout,
    )


@register_family("transformer")
def _build_transformer(
    cfg: ModelConfig, *, kind: str, input_shape: tuple[int, ...], n_outputs: int, vocab_size: int
) -> nn.Module:
    embed_dim = _need(cfg, "embed_dim")
    act = "gelu" if cfg.activation == "gelu" else "relu"  # what nn.TransformerEncoderLayer offers
    return TextTransformer(
        vocab_size=vocab_size,
        max_length=input_shape[0],
        embed_dim=embed_dim,
        heads=next(h for h in (4, 2, 1) if embed_dim % h == 0),  # 4 heads of 32 at the default 128
        width=_need(cfg, "width"),
        depth=_need(cfg, "depth"),
        act=act,
        n_outputs=n_outputs,
        dropout=cfg.dropout,
    )


def _load_custom(path: str, *, dropout: float) -> nn.Module:
    """Import `package.module:attr`: a class/factory is called with no args; an nn.Module instance is copied
    (every build starts from its weights: tune trials and CV folds must not train one shared object)."""
    module_name, _, attr = path.partition(":")
    allowed = "'package.module:attr' naming an nn.Module, or a class/factory returning one"
    if not module_name or not attr:
        raise BadInput(must_be("custom", "model", allowed, path, hint="Write the module path, a colon, the name."))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"Importing {module_name!r} failed ({exc}). Put it on PYTHONPATH or install its package."
        raise BadInput(must_be("custom", "model", allowed, path, hint=hint)) from None
    if not hasattr(module, attr):
        guess = closest(attr, [name for name in dir(module) if not name.startswith("_")])
        hint = f"{module_name} has no {attr!r}." + (f" Did you mean {module_name}:{guess}?" if guess else "")
        raise BadInput(must_be("custom", "model", allowed, path, hint=hint))
    found = getattr(module, attr)
    if isinstance(found, nn.Module):
        found = copy.deepcopy(found)
    elif callable(found):
        try:
            inspect.signature(found).bind()
        except TypeError:
            hint = f"{path} needs arguments; wrap it in a function that takes none."
            raise BadInput(must_be("custom", "model", allowed, path, hint=hint)) from None
        found = found()
    if not isinstance(found, nn.Module):
        hint = f"{path} gave a {type(found).__name__}, not a torch.nn.Module."
        raise BadInput(must_be("custom", "model", allowed, path, hint=hint))
    set_dropout(found, p=dropout)
    return found
