"""Models: the families of T10 built from a resolved recipe, their blocks (T16-T21), init (T13), dropout (T15).

`build_model(cfg, kind=..., input_shape=..., n_outputs=...)` is the one factory; families register with
`@register_family(name)`. Blocks live in `tunesmith.models.blocks`, layer factories in
`tunesmith.models.layers`.

Convention: any model may expose `aux_loss`, a scalar tensor set by its latest forward that the trainer adds
to the task loss (None or absent: nothing to add); the autoencoder's L1 code penalty (T20) uses it.
"""

from tunesmith.models.families import build_model, fresh_model, register_family
from tunesmith.models.init import init_weights, set_dropout
from tunesmith.models.layers import get_act_layer, get_norm_layer

__all__ = [
    "build_model",
    "fresh_model",
    "get_act_layer",
    "get_norm_layer",
    "init_weights",
    "register_family",
    "set_dropout",
]
