"""The search space of `tunesmith tune` (T52, T53).

A space maps dotted recipe keys to ranges (`{"train.lr": {"type": "float", "low": 1e-4, "high":
3e-2, "log": true}}`); every key is checked against the Recipe itself, so a typo gets the
recipe's did-you-mean message. Without a declared space, `default_space` gives the catalog's
space for the model family: learning rate (T31), batch size (T07, T33), width and depth (T22),
dropout (T15), weight decay (T41), activation (T11), normalization (T14), schedule (T32) and
augmentation strength (T06, images only).

A range is a `ParamSpec` and the recipe's `tune` section a `TuneConfig`: both are recipe fields
and live in the recipe layer (`tunesmith.tuneconfig`), which imports nothing from tuning.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tunesmith.data.series import MAX_MEAN_SPREAD, MAX_STD_RATIO
from tunesmith.errors import BadInput
from tunesmith.models.families import TEXT_FAMILIES
from tunesmith.tuneconfig import ParamSpec

if TYPE_CHECKING:
    from tunesmith.recipe import DataFacts, Recipe

__all__ = [
    "EMBED_DIMS",
    "SEQUENCE_FAMILIES",
    "ambiguous_kind",
    "check_space",
    "default_space",
    "finetune_space",
    "space_to_json",
]

# T10: a series read as a table (mlp), or as a sequence: local patterns (1-D cnn), order and memory (rnn)
SEQUENCE_FAMILIES = ("mlp", "cnn", "rnn")
EMBED_DIMS = [64, 128, 256]  # text: the embedding sizes the capacity stage tries (T13)


def check_space(space: dict[str, ParamSpec]) -> None:
    """BadInput unless every key is a recipe value field that accepts every value of its range."""
    from tunesmith.recipe import load_recipe

    if not space:
        raise BadInput(
            "The search space (tune.space) is empty: there is nothing to tune. Declare at least one key, e.g. "
            "tune.space: {train.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}}, or remove tune.space "
            "to use the catalog's default space for the model family."
        )
    for key, spec in space.items():
        if key.split(".")[0] in ("tune", "name") or key == "data.source":
            raise BadInput(
                f"tune.space key {key!r} cannot be searched: only data/model/train settings (not the data "
                "source, the name or the tuner itself) are tunable. Remove it from tune.space."
            )
        probes: list[Any] = list(spec.choices or []) if spec.type == "categorical" else [spec.low, spec.high]
        for value in probes:
            value = int(value) if spec.type == "int" else value
            try:
                load_recipe(None, {key: value})  # the key exists (closest-key message) and takes the value
            except BadInput as exc:
                raise BadInput(f"tune.space[{key!r}] (value {value!r}): {exc}") from None


def ambiguous_kind(recipe: Recipe, facts: DataFacts) -> dict[str, Any] | None:
    """T10: the evidence that makes the model family a choice (the input kind is a guess, or text), or None.

    Text (data.kind text, model.family not given): bag, cnn, rnn and transformer all read token ids; the
    capacity stage tries TEXT_FAMILIES and the embedding size.

    A table whose feature columns form one ordered series on a common scale (data/series.py: `lag_1 ..
    lag_24`, `x0 .. x63`, an unnamed (N, F >= 16) array) may be a table of features or a batch of 1-D
    signals; unless the recipe says which (data.kind, model.family, model.custom), the capacity stage tries
    SEQUENCE_FAMILIES and the validation score decides. The evidence is recorded with the plan and the
    capacity stage's decision (tuning.json)."""
    d, m, s = recipe.data, recipe.model, facts.series
    if facts.kind == "text" and m.family == "auto" and m.custom is None:  # T10 has no rule for text: try them
        return {
            "kind": "text",
            "families": list(TEXT_FAMILIES),
            "why": "text is read as a bag of words (the default, T22: start simple), by 1-D convolutions over words, "
            "a recurrent network or a transformer encoder; which suits these data is for validation to say",
        }
    unsaid = d.kind == "auto" and m.family == "auto" and m.custom is None
    if not unsaid or facts.kind != "tabular" or s is None:
        return None
    order = f"a running index in their names, step {s.step}" if s.named else "an unnamed array's columns, in order"
    why = (
        f"the {s.count} feature columns {s.first}..{s.last} form one ordered series ({order}) on a common scale "
        f"(column stds within {s.std_ratio:.3g}x of each other, means within {s.mean_spread:.3g} median stds): "
        f"a table (mlp) or a sequence of {s.count} steps (cnn, rnn read (F,) as (F, 1))"
    )
    return {
        "columns": {"first": s.first, "last": s.last, "count": s.count, "step": s.step, "named": s.named},
        "std_ratio": s.std_ratio,
        "mean_spread": s.mean_spread,
        "limits": {"std_ratio": MAX_STD_RATIO, "mean_spread": MAX_MEAN_SPREAD},
        "families": list(SEQUENCE_FAMILIES),
        "why": why,
    }


def default_space(
    recipe: Recipe, facts: DataFacts, *, ambiguous: bool = False, user_model: bool = False
) -> dict[str, ParamSpec]:
    """The catalog's space for a resolved recipe: what a practitioner would try first, family by family.

    ambiguous: the input kind is a guess (ambiguous_kind): the family (SEQUENCE_FAMILIES) is searched too.
    user_model: a live nn.Module is tuned: its architecture, dropout layers included, is its own.
    The MLP's depths start at 0, the linear model (T44): the capacity stage's smallest candidate, which
    its one-standard-error rule picks when the data look linear.
    """
    m, t = recipe.model, recipe.train
    family = m.family
    widths = {
        "mlp": [64, 128, 256, 512],
        "cnn": [64, 128, 256] if facts.kind == "text" else [16, 32, 64],  # text: filters per layer (Kim 2014)
        "rnn": [32, 64, 128],
        "autoencoder": [64, 128, 256],
        "bag": [64, 128, 256],  # hidden units over the averaged embeddings (depth > 0)
        "transformer": [128, 256, 512],  # feed-forward units
    }
    depths = {
        "mlp": (0, 4),
        "cnn": (1, _pooling_stages(facts)),
        "rnn": (1, 3),
        "autoencoder": (1, 3),
        "bag": (0, 2),  # 0: fastText's linear head
        "transformer": (1, 4),
    }
    lr = (1e-3, 3e-1) if t.optimizer == "sgd" else (1e-4, 3e-2)  # T31: sgd wants ~10x the adaptive optimizers' LR
    batches = [b for b in (16, 32, 64, 128, 256) if b * 4 <= facts.n_train][-4:]  # T07: >= 4 steps an epoch
    space: dict[str, ParamSpec] = {}
    text = facts.kind == "text"
    if ambiguous:  # T10 on evidence: the capacity stage tries both readings of the columns (or every text family)
        families = TEXT_FAMILIES if text else SEQUENCE_FAMILIES
        space["model.family"] = ParamSpec(type="categorical", choices=list(families))
        widths[family] = [32, 64, 128]  # sizes that suit every family
        depths[family] = (0, min(3, _pooling_stages(facts)))  # depth 0 is the linear model in each (models.families)
    if text and m.custom is None and not user_model:
        space["model.embed_dim"] = ParamSpec(type="categorical", choices=EMBED_DIMS)
    if m.custom is None and not user_model:  # a user model's architecture is its own
        space["model.width"] = ParamSpec(type="categorical", choices=widths.get(family, [64, 128, 256]))
        low, high = depths.get(family, (1, 3))
        space["model.depth"] = ParamSpec(type="int", low=low, high=high)
        space["model.activation"] = ParamSpec(type="categorical", choices=["relu", "gelu", "leaky_relu"])
        norms = ["layer", "none"] if facts.kind in ("sequence", "text") else ["batch", "none"]
        space["model.norm"] = ParamSpec(type="categorical", choices=norms)
    space["train.lr"] = ParamSpec(type="float", low=lr[0], high=lr[1], log=True)
    space["train.batch_size"] = ParamSpec(type="categorical", choices=batches or [16])
    space["train.schedule"] = ParamSpec(type="categorical", choices=["onecycle", "cosine", "constant"])
    if not user_model:  # model.custom gets the recipe's dropout (set_dropout); a live module keeps its own
        space["model.dropout"] = ParamSpec(type="float", low=0.0, high=0.5)
    space["train.weight_decay"] = ParamSpec(type="float", low=1e-6, high=1e-2, log=True)
    if recipe.data.augment.ops:  # T06: strength only matters when some augmentation is on
        space["data.augment.strength"] = ParamSpec(type="float", low=0.0, high=1.0)
    return space


def finetune_space(facts: DataFacts) -> dict[str, ParamSpec]:
    """A pretrained backbone's space (docs/text.md, "Tuning a backbone"): what the fine-tuning references search.

    Capacity: the neck (T21) and the pooling. LR stage: the top layer's LR around the references' 2e-5..1e-4
    (T31; the LR range test narrows it on the capacity winner), the head's multiplier, the layer-wise decay, the
    warmup (0 to 1 epoch, T32), the epochs (2-10: the linear decay spans them) and the batch size (T33, the
    finder's cap). Regularization: the backbone's own dropout (T15: kept, or off), the head's, weight decay.
    """
    batches = [b for b in (8, 16, 32) if b * 4 <= facts.n_train] or [8]  # T07: >= 4 steps an epoch
    return {
        "model.neck": ParamSpec(type="categorical", choices=[False, True]),
        "model.pooling": ParamSpec(type="categorical", choices=["mean", "cls"]),
        "train.lr": ParamSpec(type="float", low=1e-5, high=3e-4, log=True),
        "train.head_lr_mult": ParamSpec(type="float", low=3.0, high=100.0, log=True),
        "train.layer_decay": ParamSpec(type="float", low=0.6, high=1.0),
        "train.warmup_epochs": ParamSpec(type="float", low=0.0, high=1.0),
        "train.epochs": ParamSpec(type="int", low=2, high=10),
        "train.batch_size": ParamSpec(type="categorical", choices=batches),
        "model.backbone_dropout": ParamSpec(type="categorical", choices=["keep", 0.0]),
        "model.dropout": ParamSpec(type="float", low=0.0, high=0.5),
        "train.weight_decay": ParamSpec(type="float", low=1e-4, high=1e-1, log=True),
    }


def _pooling_stages(facts: DataFacts) -> int:
    """T16: each CNN stage halves the maps, so a stage beyond log2(side) convolves 1x1 maps for nothing."""
    sides = facts.input_shape[1:] if facts.kind == "image" else facts.input_shape[:1]
    return max(1, min(4, int(math.log2(max(2, min(sides))))))


def space_to_json(space: dict[str, ParamSpec]) -> dict[str, dict[str, Any]]:
    """tuning.json's form: every key with type, low, high, log and choices."""
    return {key: spec.model_dump(mode="json") for key, spec in space.items()}
