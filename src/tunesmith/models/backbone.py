"""A pretrained Hugging Face encoder as a model: backbone -> neck -> pooling -> dropout -> Linear.

    ids (B, T) -> AutoModel(ids, mask) -> hidden states (L + 1) x (B, T, H)
               -> neck: the last layer, or a learned softmax mix of all of them (T21)
               -> pooling: the mean over the real tokens (default) or the first token (CLS)
               -> dropout -> Linear (B, n_outputs)

`transformers` is imported here, lazily (the optional `text` extra): `tunesmith --help`, tables and
from-scratch text never load it. The backbone's directory is found and checked by data/backbone.py.

T15 (`model.backbone_dropout`): "keep" leaves the pretrained rates; a number sets every dropout
probability of the config (hidden, attention, ...) before the model is built, so modules that read a
rate from the config (attention implementations often pass a float, not an nn.Dropout) get it too,
and then every nn.Dropout module of the built model.

T21 (`model.neck`): `ScalarMix` (Peters et al. 2018, ELMo; Tenney et al. 2019, "BERT Rediscovers the
Classical NLP Pipeline") weighs the embeddings' output and every layer's with softmax weights learned
with the head; `layer_weights` reads them (layer_weights.json in the run directory).

`layer_groups` lists the parameters bottom to top (embeddings, each layer, the head) for the
optimizer's layer-wise learning rates (train/optim.py). Sources: catalog T15, T21, T30-T34; Devlin et
al. 2019 (BERT fine-tuning); Howard & Ruder 2018 (ULMFiT: discriminative rates, gradual unfreezing);
Clark et al. 2020 (ELECTRA: layer-wise decay).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tunesmith.data.backbone import locate
from tunesmith.data.text import PAD_ID
from tunesmith.errors import BadInput
from tunesmith.models.init import set_dropout
from tunesmith.models.text import masked_mean
from tunesmith.recipe import ModelConfig

__all__ = ["BackboneModel", "ScalarMix", "build_backbone_model", "load_backbone", "neck_weights", "save_architecture"]


def load_backbone(name: str, *, dropout: float | str, architecture: Path | None = None) -> Any:
    """The pretrained encoder of `model.backbone` (its weights), with T15's dropout rates applied: a transformers
    PreTrainedModel (typed Any: transformers is an optional extra).

    architecture: a run's backbone/ folder (its config.json, written by fitting.py): the encoder is built from
    that config alone, without weights, for a state_dict that holds them all (model.pt): `predict` needs no
    copy of `model.backbone` then."""
    try:
        from transformers import AutoConfig, AutoModel
    except ImportError:
        raise BadInput(
            "model.backbone needs the optional package 'transformers': pip install 'tunesmith[text]'."
        ) from None
    path = architecture if architecture is not None else locate(name).path
    config = AutoConfig.from_pretrained(path)
    if dropout != "keep":
        for key, value in config.to_dict().items():
            if "dropout" in key and isinstance(value, float):  # hidden_dropout_prob, attention_probs_dropout_prob...
                setattr(config, key, float(dropout))
    if architecture is not None:  # a run's own config: the weights come from its model.pt
        model = AutoModel.from_config(config)
    else:
        model = AutoModel.from_pretrained(path, config=config)
    if dropout != "keep":
        set_dropout(model, p=float(dropout))
    if getattr(model, "pooler", None) is not None:  # BERT's pooler (tanh over CLS) is not what this model pools:
        model.pooler = None  # left in, its parameters would never get a gradient
    return model


class ScalarMix(nn.Module):
    """T21: a softmax-weighted sum of every hidden layer (L + 1) x (B, T, H) -> (B, T, H), scaled by a learned
    gamma (ELMo). The weights start equal; training moves them toward the layers that help the task."""

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, hidden: Sequence[Tensor]) -> Tensor:
        mix = torch.softmax(self.weights, dim=0)  # (L + 1,)
        return self.gamma * torch.einsum("l,lbth->bth", mix, torch.stack(tuple(hidden)))  # (B, T, H)

    def layer_weights(self) -> list[float]:
        return torch.softmax(self.weights.detach(), dim=0).tolist()


class LastLayer(nn.Module):
    """No neck: the last layer's hidden states (B, T, H)."""

    def forward(self, hidden: Sequence[Tensor]) -> Tensor:
        return hidden[-1]


class MeanPool(nn.Module):
    """The mean over the real tokens (B, T, H) -> (B, H): special tokens included, padding never."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return masked_mean(x, mask)


class ClsPool(nn.Module):
    """The first token's vector (B, T, H) -> (B, H): BERT's [CLS]."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return x[:, 0]


class BackboneModel(nn.Module):
    """A pretrained encoder with a neck, a pooling and a dropout + Linear head on token ids (B, T), padded with 0."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        source: Path,
        hidden: int,
        neck: nn.Module,
        pool: nn.Module,
        dropout: float,
        n_outputs: int,
    ) -> None:
        super().__init__()
        self.backbone, self.neck, self.pool = backbone, neck, pool
        self.source = source  # the directory its weights came from (the probe's cache is keyed by them)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_outputs))

    def forward(self, ids: Tensor) -> Tensor:
        return self.classifier(self.embed(ids))  # (B, n_outputs)

    def embed(self, ids: Tensor) -> Tensor:
        """The pooled representation (B, H) the head reads: what the linear probe is solved on (train/probe.py)."""
        mask = ids != PAD_ID  # (B, T)
        out = self.backbone(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
        return self.pool(self.neck(out.hidden_states), mask)  # neck: (B, T, H); pooled: (B, H)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters bottom to top: the embeddings (every backbone parameter outside the layer stack), each
        layer of the stack, then the head (neck and classifier). Layer-wise LR decay reads them (train/optim.py)."""
        stack = _layer_stack(self.backbone)
        in_stack = {id(p) for p in stack.parameters()}
        bottom = [p for p in self.backbone.parameters() if id(p) not in in_stack]
        head = [p for name, p in self.named_parameters() if not name.startswith("backbone.")]
        return [bottom, *(list(layer.parameters()) for layer in stack), head]

    def layer_weights(self) -> list[float] | None:
        """T21: the neck's learned weight of each hidden layer (the embeddings' output first); None without a neck."""
        return self.neck.layer_weights() if isinstance(self.neck, ScalarMix) else None


def _layer_stack(backbone: nn.Module) -> nn.ModuleList:
    """The encoder's layers: its longest nn.ModuleList (BERT's encoder.layer, DistilBERT's transformer.layer)."""
    stacks = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise BadInput(f"The backbone {type(backbone).__name__} has no stack of layers (nn.ModuleList) to decay over.")
    return max(stacks, key=len)


def build_backbone_model(cfg: ModelConfig, *, n_outputs: int, architecture: Path | None = None) -> BackboneModel:
    """The model of a resolved `cfg` with `cfg.backbone` set (from a run's saved `architecture`: load_backbone)."""
    assert cfg.backbone is not None  # build_model calls it only then
    backbone = load_backbone(cfg.backbone, dropout=cfg.backbone_dropout, architecture=architecture)
    source = architecture or Path(backbone.name_or_path)  # the run's config, or the directory locate() found
    n_hidden = int(backbone.config.num_hidden_layers) + 1  # the embeddings' output and each layer's
    neck: nn.Module = ScalarMix(n_hidden) if cfg.neck else LastLayer()
    pool: nn.Module = MeanPool() if cfg.pooling == "mean" else ClsPool()
    hidden = int(backbone.config.hidden_size)
    return BackboneModel(
        backbone, source=source, hidden=hidden, neck=neck, pool=pool, dropout=cfg.dropout, n_outputs=n_outputs
    )


def neck_weights(model: nn.Module) -> dict[str, Any] | None:
    """layer_weights.json of a run (T21): each hidden layer's learned weight in the neck; None without a neck."""
    weights = model.layer_weights() if isinstance(model, BackboneModel) else None
    if weights is None:
        return None
    return {"layers": ["embeddings", *(f"layer {i}" for i in range(1, len(weights)))], "weights": weights}


def save_architecture(model: nn.Module, folder: Path) -> None:
    """A backbone model's encoder config (dropout rates as trained) to folder/config.json: with model.pt, all a
    run needs to rebuild its model (`load_backbone(architecture=folder)`). Other models: nothing."""
    if isinstance(model, BackboneModel):
        encoder: Any = model.backbone  # a transformers PreTrainedModel
        encoder.config.save_pretrained(folder)
