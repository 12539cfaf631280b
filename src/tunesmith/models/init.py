"""Weight initialization (T13) and dropout reset on any model (T15).

`init_weights` scales each layer's weights to the activation that follows it, so that activations keep
their variance through depth: Kaiming for the ReLU family (He et al. 2015), Xavier for saturating
tanh/sigmoid (Glorot & Bengio 2010). Biases start at zero, norm layers as the identity (weight 1, bias 0),
embeddings from a truncated normal with std 0.02 (BERT, GPT-2). Recurrent layers get Xavier input weights
(their gates are tanh/sigmoid whatever the scheme) and orthogonal recurrent weights (Saxe et al. 2014),
so repeated multiplication by the hidden-to-hidden matrix neither explodes nor vanishes at the start.

`set_dropout` finds the dropout layers of any `nn.Module`, a user's or a pretrained one, and sets their
rate (0 switches them off), so dropout is tunable on models tunesmith did not build.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from tunesmith.errors import BadInput, must_be
from tunesmith.models.layers import lookup

__all__ = ["init_weights", "set_dropout"]

_Nonlinearity = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
_NONLINEARITY: dict[str, _Nonlinearity] = {  # activation -> the gain rule of torch.nn.init.calculate_gain
    "relu": "relu",
    "prelu": "relu",
    "rrelu": "relu",
    "elu": "relu",
    "gelu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
}
_LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default negative slope; calculate_gain ignores it for the others
_EMBEDDING_STD = 0.02  # BERT / GPT-2; truncated at two standard deviations

_WEIGHTED = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _weight_inits(nonlinearity: _Nonlinearity) -> dict[str, Callable[[Tensor], object] | None]:
    gain = nn.init.calculate_gain(nonlinearity, _LEAKY_SLOPE)
    return {
        "kaiming_uniform": partial(nn.init.kaiming_uniform_, a=_LEAKY_SLOPE, nonlinearity=nonlinearity),
        "kaiming_normal": partial(nn.init.kaiming_normal_, a=_LEAKY_SLOPE, nonlinearity=nonlinearity),
        "xavier_uniform": partial(nn.init.xavier_uniform_, gain=gain),
        "xavier_normal": partial(nn.init.xavier_normal_, gain=gain),
        "torch": None,  # keep PyTorch's per-layer defaults
    }


def init_weights(model: nn.Module, *, scheme: str, activation: str) -> None:
    """T13: initialize every Linear/Conv, norm, embedding and recurrent layer of `model` in place.

    scheme: kaiming_uniform, kaiming_normal, xavier_uniform, xavier_normal, or torch (leave as built).
    activation: the model's activation (see layers.get_act_layer); it sets the Kaiming nonlinearity
        (relu for relu/prelu/rrelu/elu/gelu, leaky_relu for leaky_relu) and the Xavier gain.
    """
    nonlinearity = lookup(_NONLINEARITY, activation, param="activation")
    weight_init = lookup(_weight_inits(nonlinearity), scheme, param="init")
    if weight_init is None:
        return
    for module in model.modules():
        if isinstance(module, _WEIGHTED):
            weight_init(module.weight)
            _zero(module.bias)
        elif isinstance(module, _NORMS):
            if module.weight is not None:  # affine=False norms have no parameters
                nn.init.ones_(module.weight)
                _zero(module.bias)
        elif isinstance(module, nn.Embedding):
            _init_embedding(module)
        elif isinstance(module, nn.RNNBase):
            _init_recurrent(module)


def _zero(bias: Tensor | None) -> None:
    if bias is not None:
        nn.init.zeros_(bias)


def _init_embedding(embedding: nn.Embedding) -> None:
    nn.init.trunc_normal_(embedding.weight, std=_EMBEDDING_STD, a=-2 * _EMBEDDING_STD, b=2 * _EMBEDDING_STD)
    if embedding.padding_idx is not None:  # the padding row stays zero, as nn.Embedding builds it
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()


def _init_recurrent(rnn: nn.RNNBase) -> None:
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):  # (gates * H, C_in)
            nn.init.xavier_uniform_(param)
        elif name.startswith("weight_hh"):  # (gates * H, H)
            nn.init.orthogonal_(param)
        elif name.startswith("bias"):
            nn.init.zeros_(param)


def set_dropout(model: nn.Module, *, p: float) -> int:
    """T15: set the rate of every Dropout/Dropout1d/2d/3d/AlphaDropout layer in `model`; returns how many.

    p: the new rate in [0, 1); 0 switches the layers off (they stay in place, so a later call can raise it).
    The `dropout` float of nn.LSTM/nn.GRU (between stacked layers) and of nn.MultiheadAttention are
    arguments of those layers, not Dropout modules, and are left as they are.
    """
    if not 0.0 <= p < 1.0:
        raise BadInput(must_be("dropout", "model", "a float in the range [0.0, 1.0)", p))
    layers = [module for module in model.modules() if isinstance(module, _DROPOUTS)]
    for layer in layers:
        layer.p = p
    return len(layers)
