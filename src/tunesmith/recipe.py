"""The recipe: every choice of a run in one validated pydantic model, with the catalog's defaults.

A recipe has three sections, `data`, `model` and `train`. Fields that depend on the data hold
"auto" (or None) until `resolve` replaces them with a concrete value from the data's facts
(task, input kind, size): those rules are the seeds' rules of thumb, each tagged with its
catalog id. The resolved recipe is saved as `recipe.yaml` in the run directory and contains no
"auto": running it again gives the same run.

Sources of a recipe, applied in order: a YAML file, Python keyword arguments, CLI flags and
`--set dotted.key=value` overrides. Unknown keys and bad values raise `BadInput` naming the field
path, what is allowed and the closest valid key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from tunesmith.errors import BadInput, closest
from tunesmith.tuneconfig import TuneConfig
from tunesmith.validate import Section, read_text

BACKBONE_LR = 1e-4  # T31: the top layer's; small encoders (MiniLM) fine-tune at up to 1e-4 (docs/text.md: measured)
BACKBONE_BATCH = 16  # T07: fine-tuning's usual 16-32; on small data more, smaller steps
FINETUNE_EPOCHS = 10  # train.epochs with a backbone (docs/text.md)
EPOCHS = 30  # train.epochs otherwise
HEAD_LR_MULT = 20.0  # the head at 1e-3: the from-scratch rate, for the only layer that starts from scratch
LAYER_DECAY = 0.9  # per layer from the top: a 6-layer encoder's embeddings train at 0.9^6 = 0.53 of lr
WARMUP_SHARE = 0.1  # of the epochs (T32): BERT's 10%

__all__ = ["SHORTCUTS", "DataFacts", "Recipe", "SeriesFacts", "load_recipe", "make_recipe", "resolve", "resolve_data"]

Task = Literal["auto", "classification", "regression", "reconstruction"]
Kind = Literal["auto", "tabular", "sequence", "image", "text"]
Activation = Literal["relu", "leaky_relu", "prelu", "rrelu", "elu", "gelu", "tanh", "sigmoid"]
AugmentOp = Literal[
    "flip",
    "rotate",
    "translate",
    "scale",
    "shear",
    "color",
    "noise",  # images
    "shift",
    "jitter",
    "scaling",
    "masking",  # sequences
    "mixup",  # tabular (noise works there too)
]


class AugmentConfig(Section):
    """T06: label-preserving transforms of training batches (never of val/test)."""

    ops: list[AugmentOp] | Literal["auto"] = "auto"  # auto: rotate+translate+scale for images, none otherwise
    strength: float = Field(0.5, ge=0.0, le=1.0)  # one knob scales every op (tunable); 0 turns them off


class DataConfig(Section):
    source: str | None = None  # a CSV/Parquet/.npz file, an image folder, or a built-in set name
    target: str | None = None  # target column of a table
    time: str | None = None  # time column: splits respect time order, test = most recent rows (T51)
    group: str | None = None  # group column: no group in two splits (T51)
    text: str | None = None  # free-text column (docs/text.md); None: found by columns.py when one column is text
    time_as_feature: bool = False  # time/group columns are identifiers, not features, unless asked
    group_as_feature: bool = False
    task: Task = "auto"  # auto: classification for integer/string targets with few values
    kind: Kind = "auto"  # auto: image for (N,C,H,W) arrays, sequence for (N,T,C), tabular for (N,F), text for text
    cv: int = Field(0, ge=0)  # 0: one train/val holdout; K>=2: K folds, every fold reported
    ensemble: bool = False  # with cv K: the final model averages K members (the fold models; K seeds on
    # all train+val rows for time splits); costs K models at predict time, usually buys a little accuracy
    split: Literal["auto", "random", "stratified", "group", "time"] = "auto"  # auto: from time/group/task
    val_size: float = Field(0.2, gt=0.0, lt=1.0)  # validation share of the non-test rows (holdout)
    test_size: float = Field(0.2, ge=0.0, lt=1.0)  # carved out only when no test split is given
    gap: int = Field(0, ge=0)  # time splits: rows dropped between train and the later split (T51)
    # with a time column, tables: sin and cos of each row's phase in the target's season join the features; auto:
    # a period (in the time column's steps) the training target repeats, if any (data/season.py); "none"; or P
    season: Literal["auto", "none"] | int = "auto"
    impute: Literal["median", "mean", "most_frequent", "interpolate", "none"] = "median"  # T01; none refuses NaN
    scale: Literal["standard", "minmax", "none"] = "standard"  # T04, fitted on the training split only
    scale_target: bool | Literal["auto"] = "auto"  # T05: auto scales regression targets
    outliers: Literal["keep", "clip"] = "keep"  # T03: clip to training quantiles (clip_quantile, 1-q)
    clip_quantile: float = Field(0.001, gt=0.0, lt=0.5)
    drop_duplicates: bool = True  # T03: exact duplicate rows dropped before splitting (no train/test copies)
    numbers: list[str] | Literal["auto"] = "auto"  # text columns read as numbers; auto: mostly numbers (columns.py)
    dates: list[str] | Literal["auto"] = "auto"  # columns expanded into date parts; auto: mostly dates (columns.py)
    max_categories: int = Field(20, ge=2)  # T02: one-hot up to this many levels, rarer ones pooled
    categorical: list[str] = Field(default_factory=list)  # T02: numeric columns of category codes (zip, maker): one-hot
    pad_pow2: bool | Literal["auto"] = "auto"  # T08: auto pads images to a power-of-two side (pools cleanly)
    vocab_size: int = Field(16000, ge=16)  # text: most frequent training words kept; more costs embedding rows
    # and memory, fewer turns rare words into [UNK] (small data rarely reach it: vocab is capped by the data)
    min_count: int = Field(2, ge=1)  # text: a word seen fewer times in training is [UNK] (one sighting teaches
    # its embedding nothing that generalizes; 1 keeps every word)
    max_length: int | None = Field(None, ge=1)  # text: tokens per row kept; None: the 95th percentile of the
    # training lengths, rounded up to a multiple of 8, at most 512 (longer rows truncated, their share recorded)
    augment: AugmentConfig = AugmentConfig()

    @field_validator("cv")
    @classmethod
    def _folds(cls, cv: int) -> int:
        if cv == 1:  # one "fold" is no cross-validation: refuse rather than record a CV that is not one
            raise ValueError("0 (one hold-out validation split) or a number of folds >= 2")
        return cv

    @field_validator("season")
    @classmethod
    def _period(cls, season: str | int) -> str | int:
        if isinstance(season, int) and season < 2:  # a period of one step repeats nothing
            raise ValueError("auto, none, or a period of at least 2 steps of the time column")
        return season

    @field_validator("ensemble")
    @classmethod
    def _members(cls, ensemble: bool, info: ValidationInfo) -> bool:
        if ensemble and info.data.get("cv", 0) < 2:  # the members come from the K folds
            raise ValueError("false unless data.cv >= 2 (its members: the K fold models, or K seeds for time splits)")
        return ensemble


class ModelConfig(Section):
    family: Literal["auto", "mlp", "cnn", "rnn", "autoencoder", "bag", "transformer", "backbone"] = "auto"  # T10: auto
    # from the input kind; bag (fastText: mean of word embeddings) and transformer read text only, cnn and rnn text
    # too; backbone: model.backbone's pretrained encoder (the family whenever model.backbone is set)
    width: int | None = Field(None, ge=1)  # None: 256 units (mlp), 32 base channels (cnn), 64 (rnn)
    embed_dim: int | None = Field(None, ge=1)  # text: embedding size (T13); None: 64 for bag, 128 otherwise
    bigrams: bool = True  # text, bag: hashed word-pair embeddings beside the words (fastText); word order a bit
    depth: int | None = Field(None, ge=0)  # None: 2 hidden layers (mlp), 3 stages (cnn), 1 layer (rnn); 0: linear (T44)
    activation: Activation = "relu"  # T11: ReLU trains fast and rarely saturates
    norm: Literal["auto", "batch", "layer", "none"] = "auto"  # T14: batch for images/tables, layer for sequences
    init: Literal["auto", "kaiming_uniform", "kaiming_normal", "xavier_uniform", "xavier_normal", "torch"] = "auto"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # T15: light by default; tuning raises it when val says so
    kernel_size: int = Field(3, ge=1)  # T16: small kernels stacked beat one big kernel
    residual: bool = False  # T18: ResNet shortcuts (helps deep nets train)
    dense: bool = False  # T18: DenseNet-style concatenation inside a stage
    bottleneck: bool = False  # T16: 1x1 convolution narrows channels before the 3x3
    multi_kernel: bool = False  # T16: inception-style parallel 1x1/3x3/5x5 branches
    head: Literal["gap", "flatten"] = "gap"  # T17: global average pooling instead of a large FC head
    neck: bool = False  # T21: fuse every stage's pooled features with learned attention weights; with a backbone,
    # every hidden layer's (a softmax-weighted scalar mix): lower layers hold more syntax, the top more task-shaped
    # meaning; the weights are learned, and written to layer_weights.json for the report
    cell: Literal["lstm", "gru"] = "lstm"  # T19: gated cells instead of a plain RNN
    bidirectional: bool = True  # T19: reads the sequence both ways (offline data only)
    # cnn, rnn: the order they read a table's columns (a sequence's steps) in; auto: reversed where the columns run
    # newest first (lag_1 .. lag_24, data/series.py), so a recurrent model reads oldest first and ends on the newest
    step_order: Literal["auto", "columns", "reversed"] = "auto"
    # cnn, rnn: how many of a table's columns are steps of the series; the others (a season's sin and cos,
    # data/season.py) join the summary the output layer reads. None: every column is a step
    step_columns: int | None = Field(None, ge=1)
    code_size: int | None = Field(None, ge=1)  # T20: autoencoder bottleneck; None: a quarter of the input
    sparsity: float = Field(0.0, ge=0.0)  # T20: L1 penalty on the autoencoder code
    denoise: float = Field(0.0, ge=0.0)  # T20: std of the noise added to autoencoder inputs while training
    custom: str | None = None  # "package.module:factory" of a user nn.Module (called with no arguments)
    pretrained: bool = False  # the custom model carries pretrained weights: fine-tuning defaults (T31)
    backbone: str | None = None  # a Hugging Face model directory (config, weights, tokenizer.json) or hub id: text
    # is encoded by its tokenizer and the model fine-tuned (models/backbone.py); fine-tuning defaults in train
    pooling: Literal["mean", "cls"] = "mean"  # backbone: the mean over the real tokens of the last layer (robust for
    # encoders not trained with a classification token, e.g. sentence embedders); cls: the first token's vector
    backbone_dropout: float | Literal["keep"] = "keep"  # T15: keep the pretrained rates (what the weights were
    # trained with); 0 turns every dropout off (attention and hidden: small data, few epochs often gain), a rate
    # sets them all

    @field_validator("backbone_dropout", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        if value == "keep" or (isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1):
            return value
        raise ValueError("'keep' or a dropout rate in [0.0, 1.0)")


class EarlyStopConfig(Section):
    """T43: stop when validation stops improving, but not prematurely."""

    patience: int | None = Field(10, ge=1)  # epochs without improvement; None disables early stopping
    min_delta: float = Field(0.0, ge=0.0)  # smaller improvements do not count
    min_epochs: int = Field(5, ge=0)  # never stop before this many epochs (late plateaus are respected)
    restore_best: bool = True  # retrospective checkpoint selection: keep the best epoch's weights


class TrainConfig(Section):
    # None: 30 from scratch (early stopping ends most runs sooner, T43); FINETUNE_EPOCHS with a backbone, whose
    # warmup and linear decay span the epochs asked for (BERT fine-tunes for 2-4, small data want a few more)
    epochs: int | None = Field(None, ge=1)
    # T44: "gradient" trains by the optimizer's mini-batch steps; "exact" solves a depth-0 network (the linear
    # model) with scikit-learn's RidgeCV / LogisticRegressionCV in one epoch, its penalty cross-validated; with a
    # backbone, that model on its frozen embeddings: the linear probe (T62, train/probe.py)
    solver: Literal["gradient", "exact"] = "gradient"
    batch_size: int | None = Field(None, ge=1)  # T07: None: 64 under 10k rows, 128 under 100k, else 256
    effective_batch_size: int | None = Field(None, ge=1)  # T33: gradient accumulation up to this size
    lr: float | None = Field(None, gt=0.0)  # T31: None: 1e-3 from scratch, 1e-5 fine-tuning, 1e-2 for sgd or bag,
    # 5e-5 for a backbone's top layer (docs/text.md: small encoders fine-tune at 2e-5..1e-4; the head gets more)
    head_lr_mult: float | None = Field(None, gt=0.0)  # backbone: the head (neck, pooling, Linear) trains at lr times
    # this; None: 20 (a fresh head needs a larger step than pretrained weights it must not wreck), 1 otherwise
    layer_decay: float | None = Field(None, gt=0.0, le=1.0)  # backbone: layer k from the top trains at lr x decay^k,
    # the embeddings deepest (ULMFiT, ELECTRA): general low layers move least; None: 0.9 (1 is one LR for all)
    # backbone: the head starts from the linear probe (T62, LP-FT: Kumar et al. 2022), solved on the frozen
    # embeddings before the first step, so fine-tuning starts where the probe ends instead of from a random head
    # that drags the pretrained features while it learns; auto: on with a backbone
    probe_init: bool | Literal["auto"] = "auto"
    freeze_epochs: int = Field(0, ge=0)  # backbone: train the head alone for this many epochs, then unfreeze (ULMFiT):
    # a random head's first large gradients never reach the pretrained weights; costs those epochs' backbone updates
    optimizer: Literal["auto", "sgd", "adam", "adamw", "rmsprop", "adagrad"] = "auto"  # T30: auto is adamw
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd/rmsprop
    nesterov: bool = True  # sgd
    weight_decay: float = Field(1e-4, ge=0.0)  # T41: decoupled in adamw, coupled (L2) in the others
    l1: float = Field(0.0, ge=0.0)  # T41: L1 penalty on weights, added to the loss
    l2: float = Field(0.0, ge=0.0)  # T41: coupled L2 penalty on weights, added to the loss
    max_norm: float | None = Field(None, gt=0.0)  # T42: cap each unit's incoming weight norm after a step
    clip_norm: float | None = Field(None, gt=0.0)  # T34: clip the global gradient norm; None: off, or 1.0 with a
    # backbone (BERT's recipe: a bad batch cannot throw the pretrained weights far); set a large value to disable it
    clip_value: float | None = Field(None, gt=0.0)  # T34: clip each gradient element
    schedule: Literal["auto", "constant", "step", "exponential", "cosine", "linear", "onecycle", "plateau"] = "auto"
    # T32: auto: onecycle from scratch, cosine for a pretrained custom model, linear decay to 0 for a backbone (BERT)
    warmup_epochs: float | None = Field(None, ge=0.0)  # T32: linear warmup before the schedule (not for onecycle);
    # None: 10% of the epochs with a backbone (Adam's early steps are noisy: small ones spare the weights), else 0
    step_every: int = Field(10, ge=1)  # step schedule: epochs between decays
    gamma: float = Field(0.1, gt=0.0, le=1.0)  # step/exponential/plateau decay factor
    early_stopping: EarlyStopConfig = EarlyStopConfig()
    seed: int = Field(0, ge=0, le=2**32 - 1)  # T50: seeds Python, NumPy and torch; recorded with the run
    deterministic: bool = False  # T50: deterministic algorithms (slower on GPU)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # T54: auto takes a GPU when one is present
    threads: int | None = Field(None, ge=1)  # torch intra-op threads; None keeps torch's default
    checkpoint: bool = True  # write checkpoint.pt after every epoch so --resume can continue
    monitor: bool = True  # T65, T66: layers.csv from hooks on one batch per epoch; off saves that batch's overhead
    dynamic_padding: bool | Literal["auto"] = "auto"  # text: each batch of token ids is cut to its longest row
    # (pad columns beyond it dropped), so short texts cost little; auto: on for text, off elsewhere
    group_by_length: bool = False  # with dynamic padding: each training batch drawn from rows of similar length
    # (pools of 50 batches sorted by length, batches in random order): far less padding, slightly less random batches

    @property
    def n_epochs(self) -> int:
        """train.epochs of a resolved recipe (resolve sets it)."""
        if self.epochs is None:
            raise BadInput("train.epochs is unset: pass the recipe through resolve() before training with it.")
        return self.epochs


class Recipe(Section):
    name: str = "run"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    tune: TuneConfig = TuneConfig()  # used by `tunesmith tune` only (T52, T53)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        """A copy with dotted-key overrides applied ({"train.lr": 3e-4}); validated as a whole."""
        tree = self.model_dump(mode="json")
        for key, value in overrides.items():
            _set_dotted(tree, key, value)
        return build_recipe(tree)


def build_recipe(tree: dict[str, Any], *, source: str = "recipe") -> Recipe:
    """Validate a nested dict into a Recipe, turning pydantic's errors into one BadInput."""
    try:
        return Recipe.model_validate(tree)
    except ValidationError as exc:
        raise BadInput(_explain(exc, source)) from None


def load_recipe(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe (or start from the defaults) and apply dotted overrides."""
    tree: dict[str, Any] = {}
    source = "recipe"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise BadInput(f"Recipe file {path} does not exist. Pass the path of a YAML recipe.")
        try:
            loaded = yaml.safe_load(read_text(path, "recipe file"))
        except yaml.YAMLError as exc:
            raise BadInput(f"Recipe file {path} is not valid YAML: {exc}. Fix the file and retry.") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise BadInput(f"Recipe file {path} must hold a mapping with sections data/model/train.")
        tree = loaded or {}
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    return build_recipe(tree, source=source)


# Python keyword arguments (and the CLI's common flags) that stand for a dotted recipe key.
SHORTCUTS = {
    "data": "data.source",
    "target": "data.target",
    "time": "data.time",
    "group": "data.group",
    "text": "data.text",
    "cv": "data.cv",
    "ensemble": "data.ensemble",
    "task": "data.task",
    "family": "model.family",
    "epochs": "train.epochs",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "device": "train.device",
    "deterministic": "train.deterministic",
    "name": "name",
}


def make_recipe(
    recipe: Recipe | str | Path | None = None, *, overrides: dict[str, Any] | None = None, **shortcuts: Any
) -> Recipe:
    """A Recipe from a file/Recipe, shortcut keywords (epochs=30) and dotted overrides, in that order."""
    unknown = [k for k in shortcuts if k not in SHORTCUTS]
    if unknown:
        guess = closest(unknown[0], SHORTCUTS)
        raise BadInput(
            f"Unknown argument {unknown[0]!r}."
            + (f" Did you mean {guess!r}?" if guess else "")
            + f" Valid: {', '.join(SHORTCUTS)}; any recipe field goes in overrides={{'train.lr': 3e-4}}."
        )
    dotted = {SHORTCUTS[k]: v for k, v in shortcuts.items() if v is not None}
    dotted.update(overrides or {})
    if isinstance(recipe, Recipe):
        return recipe.with_overrides(dotted)
    return load_recipe(recipe, dotted)


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse CLI `--set dotted.key=value` items; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set expects dotted.key=value (e.g. train.lr=3e-4). Got {item!r} instead.")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}: the dotted keys that `--set` and overrides use."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    model: type[BaseModel] | None = Recipe
    for depth, part in enumerate(parts):
        fields = model.model_fields if model is not None else {}
        if part not in fields:
            path = ".".join(parts[: depth + 1])
            prefix = ".".join(parts[:depth])
            raise BadInput(_unknown_key(path, part, prefix, list(fields)))
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if depth == len(parts) - 1:
            node[part] = value
        else:
            if model is None:
                raise BadInput(f"Recipe key {key!r}: {'.'.join(parts[: depth + 1])!r} is a value, not a section.")
            child = node.get(part)
            node = node.setdefault(part, {}) if not isinstance(child, dict) else child


def _unknown_key(path: str, name: str, prefix: str, valid: list[str]) -> str:
    owner = f"section {prefix!r}" if prefix else "the recipe"
    guess = closest(name, valid)
    hint = f" Did you mean {((prefix + '.') if prefix else '') + guess!r}?" if guess else ""
    return f"Unknown recipe key {path!r}.{hint} Valid keys of {owner}: {', '.join(valid)}."


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc)
        if err["type"] == "extra_forbidden":
            section = _section_fields(loc[:-1])
            lines.append(_unknown_key(path, loc[-1], ".".join(loc[:-1]), section))
            continue
        owner = ".".join(loc[:-1]) or "recipe"
        allowed = err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
        lines.append(f"The {loc[-1]!r} parameter of {owner} must be {allowed}. Got {err.get('input')!r} instead.")
    return f"Invalid recipe ({source}): " + " ".join(lines)


def _section_fields(loc: list[str]) -> list[str]:
    model: Any = Recipe
    for part in loc:
        model = model.model_fields[part].annotation
    return list(model.model_fields)


@dataclass(frozen=True)
class SeriesFacts:
    """T10 evidence (data/series.py): a table's feature columns, in their order, form one series: one name
    with a running index, on a common scale measured on the training rows."""

    first: str  # the first and last column, in the table's order (the order a sequence reading keeps)
    last: str
    count: int  # columns in the series: all the table's features
    step: int  # the index step from one column to the next (negative: the index runs down, lag_24..lag_1)
    std_ratio: float  # the largest column standard deviation over the smallest
    mean_spread: float  # the range of the column means, in median column standard deviations
    named: bool  # the index is in names the user wrote; False: an unnamed array's columns (x0, x1, ...)
    newest_first: bool = False  # the columns run back in time (lag_1 .. lag_24): sequence models read them reversed


@dataclass(frozen=True)
class DataFacts:
    """What the data says about itself; `resolve` turns "auto" fields into values from it."""

    task: Literal["classification", "regression", "reconstruction"]
    kind: Literal["tabular", "sequence", "image", "text"]
    n_train: int  # rows the model trains on (drives batch size, T07)
    input_shape: tuple[int, ...]  # one sample's shape after preprocessing ((max_length,) token ids for text)
    n_outputs: int  # classes (classification), target columns (regression), features (reconstruction)
    split: str = "random"  # the split strategy chosen for these data (T51)
    numbers: tuple[str, ...] = ()  # text columns read as numbers (data/columns.py)
    dates: tuple[str, ...] = ()  # date columns expanded into numbers (data/columns.py)
    series: SeriesFacts | None = None  # the columns form an ordered series: table or 1-D signal? (T10)
    season: int | None = None  # the period (time steps) whose phase a table's last two columns hold (data/season.py)
    text: str | None = None  # the free-text column (data/text.py)
    vocab_size: int = 0  # text: the fitted tokenizer's vocabulary, [PAD] and [UNK] included (embedding rows)


def resolve(recipe: Recipe, facts: DataFacts) -> Recipe:
    """Replace every "auto"/None default with the catalog's rule for these data (idempotent)."""
    d, m, t = recipe.data, recipe.model, recipe.train
    backbone = m.backbone is not None
    if (m.family == "backbone") != backbone and m.family != "auto":
        raise BadInput(
            f"model.family={m.family!r} with model.backbone={m.backbone!r}: the backbone family is the pretrained "
            "encoder model.backbone names. Set model.backbone to a model directory, or leave model.family at auto."
        )
    family = "backbone" if backbone else (m.family if m.family != "auto" else _family_for(facts))  # T10
    if t.probe_init is True and not backbone:
        raise BadInput(
            "train.probe_init=true starts a pretrained backbone's head from its linear probe, and model.backbone is "
            "not set. Name one (model.backbone=DIR), or set train.probe_init=auto."
        )
    if t.freeze_epochs and not backbone:
        raise BadInput(
            f"train.freeze_epochs={t.freeze_epochs} freezes a pretrained backbone, and model.backbone is not set. "
            "Name one (model.backbone=DIR), or set train.freeze_epochs=0."
        )
    pretrained = m.custom is not None and m.pretrained
    optimizer = t.optimizer if t.optimizer != "auto" else ("adam" if pretrained else "adamw")  # T30
    # T31; the bag's embeddings learn from averaged, sparse gradients: at 1e-3 they need dozens of epochs to
    # reach what 1e-2 reaches in a few (fastText itself trains at 0.1 and more, with SGD)
    default_lr = 1e-5 if pretrained else (1e-2 if optimizer == "sgd" or family == "bag" else 1e-3)
    default_lr = BACKBONE_LR if backbone else default_lr
    schedule = "linear" if backbone else ("cosine" if pretrained else "onecycle")
    norm = m.norm if m.norm != "auto" else ("layer" if facts.kind in ("sequence", "text") else "batch")  # T14
    batch_size = t.batch_size or (BACKBONE_BATCH if backbone else _batch_size_for(facts.n_train))
    epochs = t.epochs or (FINETUNE_EPOCHS if backbone else EPOCHS)
    if norm == "batch" and batch_size < 2 and m.custom is None:
        raise BadInput(
            "train.batch_size=1 cannot train with batch norm (model.norm=batch, the default for tables and "
            "images, T14): it normalises over the rows of a batch. Use train.batch_size >= 2, or model.norm=layer."
        )
    depth = None if backbone else _depth_for(family, facts.kind) if m.depth is None else m.depth
    if t.solver == "exact":
        _check_exact(family, depth, facts, custom=m.custom)
    return recipe.model_copy(
        update={
            "data": resolve_data(
                d,
                task=facts.task,
                kind=facts.kind,
                split=facts.split,
                numbers=facts.numbers,
                dates=facts.dates,
                text=facts.text,
                max_length=facts.input_shape[0] if facts.kind == "text" else None,
                season=facts.season,
            ),
            "model": m.model_copy(
                update={
                    "family": family,
                    # a backbone's width and depth are its config's: None here says they are not the recipe's
                    "width": None if backbone else m.width or _width_for(family, facts.kind),
                    "depth": depth,
                    "embed_dim": m.embed_dim or (64 if family == "bag" else 128),  # T13: fastText's 64 suffices
                    # for a mean of words; sequence models read order from their embeddings: more room
                    "norm": norm,
                    "init": m.init if m.init != "auto" else _init_for(m.activation),
                    "code_size": m.code_size or max(2, math.prod(facts.input_shape) // 4),
                    "step_order": m.step_order if m.step_order != "auto" else _step_order_for(facts),
                    "step_columns": m.step_columns or _step_columns_for(facts),
                }
            ),
            "train": t.model_copy(
                update={
                    "epochs": 1 if t.solver == "exact" else epochs,  # solved in one step: no second epoch
                    "optimizer": optimizer,
                    "lr": t.lr or default_lr,
                    "batch_size": batch_size,
                    "schedule": t.schedule if t.schedule != "auto" else schedule,
                    "warmup_epochs": (WARMUP_SHARE * epochs if backbone else 0.0)
                    if t.warmup_epochs is None
                    else t.warmup_epochs,
                    "clip_norm": t.clip_norm or (1.0 if backbone else None),  # T34
                    "head_lr_mult": t.head_lr_mult or (HEAD_LR_MULT if backbone else 1.0),
                    "layer_decay": t.layer_decay or (LAYER_DECAY if backbone else 1.0),
                    "dynamic_padding": facts.kind == "text" if t.dynamic_padding == "auto" else t.dynamic_padding,
                    "probe_init": (backbone and t.solver == "gradient") if t.probe_init == "auto" else t.probe_init,
                }
            ),
        }
    )


def _check_exact(family: str, depth: int | None, facts: DataFacts, *, custom: str | None) -> None:
    """train.solver=exact solves the linear model: a built-in family at depth 0, on classes or numbers, not text
    (a linear model over token ids in their positions means nothing; text's linear baseline reads TF-IDF); or a
    backbone's head on its frozen embeddings (the linear probe, T62)."""
    linear = (family in ("mlp", "cnn", "rnn") and depth == 0 and facts.kind != "text") or family == "backbone"
    if custom is None and linear and facts.task in ("classification", "regression"):
        return
    what = (
        f"a custom model ({custom})"
        if custom is not None
        else f"{facts.kind} {facts.task} with model.family={family}, model.depth={depth}"
    )
    raise BadInput(
        f"train.solver=exact solves the linear model (T44): model.depth=0 with family mlp, cnn or rnn, for "
        f"classification or regression on tables, images or sequences, or a backbone's linear probe (T62); this "
        f"recipe has {what}. Set "
        "model.depth=0, or train.solver=gradient."
    )


def resolve_data(
    cfg: DataConfig,
    *,
    task: str,
    kind: str,
    split: str,
    numbers: tuple[str, ...] | list[str] = (),
    dates: tuple[str, ...] | list[str] = (),
    text: str | None = None,
    max_length: int | None = None,
    season: int | Literal["unknown"] | None = "unknown",
) -> DataConfig:
    """The data section's rules; they need only what loading the data tells (task, kind, split, column reading).
    season: the period fold 0's training rows gave (None: no season), "unknown" before any fold is prepared."""
    ops = cfg.augment.ops
    if ops == "auto":  # T06: geometric jitter is label-preserving for images; elsewhere it must be asked for
        ops = ["rotate", "translate", "scale"] if kind == "image" else []
    return cfg.model_copy(
        update={
            "task": task,
            "kind": kind,
            "split": split,
            "scale_target": task == "regression" if cfg.scale_target == "auto" else cfg.scale_target,  # T05
            "pad_pow2": kind == "image" if cfg.pad_pow2 == "auto" else cfg.pad_pow2,  # T08
            "augment": cfg.augment.model_copy(update={"ops": ops}),
            "numbers": list(numbers) if cfg.numbers == "auto" else cfg.numbers,
            "dates": list(dates) if cfg.dates == "auto" else cfg.dates,
            "text": cfg.text or text,
            "max_length": cfg.max_length or max_length,
            "season": season or "none" if cfg.season == "auto" and season != "unknown" else cfg.season,
        }
    )


def _family_for(facts: DataFacts) -> Literal["mlp", "cnn", "rnn", "autoencoder", "bag"]:
    """T10 by input kind. Text starts with the bag of words (T22, start simple): fastText's mean of word and
    word-pair embeddings matches CNNs and RNNs on topic classification at a fraction of their cost (Joulin et
    al. 2017, "Bag of Tricks for Efficient Text Classification"); tune's capacity stage tries the others."""
    if facts.task == "reconstruction":
        return "autoencoder"
    return {"tabular": "mlp", "image": "cnn", "sequence": "rnn", "text": "bag"}[facts.kind]  # type: ignore[return-value]


def _width_for(family: str, kind: str) -> int:
    """Units (mlp, bag's hidden layers), base channels (cnn; per layer over text), hidden size (rnn), the
    feed-forward size (transformer)."""
    if kind == "text" and family == "cnn":  # one layer of filters over word windows (Kim 2014): wide, not deep
        return 128
    return {"mlp": 256, "cnn": 32, "rnn": 64, "autoencoder": 128, "bag": 128, "transformer": 256}[family]


def _step_order_for(facts: DataFacts) -> str:
    """T19: time as it ran. A recurrent state remembers its last steps best, and the last step should be the
    newest value, the one that predicts the next: columns that run newest first are read reversed."""
    return "reversed" if facts.series is not None and facts.series.newest_first else "columns"


def _step_columns_for(facts: DataFacts) -> int | None:
    """A table read as a series: its columns but the season's two (data/season.py), which are no step of it."""
    return facts.input_shape[0] - 2 if facts.kind == "tabular" and facts.season is not None else None


def _depth_for(family: str, kind: str) -> int:
    """Hidden layers (mlp; bag: 0 is fastText's linear head), stages (cnn; conv layers over text), layers."""
    if kind == "text" and family == "cnn":
        return 1
    return {"mlp": 2, "cnn": 3, "rnn": 1, "autoencoder": 2, "bag": 0, "transformer": 2}[family]


def _init_for(activation: str) -> str:
    """T13: Kaiming for the ReLU family, Xavier for saturating activations."""
    return "xavier_uniform" if activation in ("tanh", "sigmoid") else "kaiming_uniform"


def _batch_size_for(n_train: int) -> int:
    """T07: a power of two, 64 first, larger for large data (and at most a quarter of the rows)."""
    size = 64 if n_train < 10_000 else 128 if n_train < 100_000 else 256
    while size > 16 and size * 4 > n_train:
        size //= 2
    return size
