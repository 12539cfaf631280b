"""The search space of `tunesmith tune` (T52) and the recipe's `tune` section (T53).

A space maps dotted recipe keys to ranges (`{"train.lr": {"type": "float", "low": 1e-4, "high":
3e-2, "log": true}}`); every key is checked against the Recipe itself, so a typo gets the
recipe's did-you-mean message. Without a declared space, `default_space` gives the catalog's
space for the model family: learning rate (T31), batch size (T07, T33), width and depth (T22),
dropout (T15), weight decay (T41), activation (T11), normalization (T14), schedule (T32) and
augmentation strength (T06, images only).

This module only needs pydantic: `tunesmith.recipe` imports `TuneConfig` from here, and the
recipe must stay importable without torch or optuna.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunesmith.errors import BadInput, closest

if TYPE_CHECKING:
    import optuna

    from tunesmith.recipe import DataFacts, Recipe

__all__ = ["ParamSpec", "TuneConfig", "ambiguous_kind", "check_space", "default_space", "space_to_json"]

Metric = Literal["auto", "loss", "accuracy", "f1_macro", "rmse", "mae", "r2"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ParamSpec(_Section):
    """One searched key: a float/int range (optionally log-scaled) or a list of choices."""

    type: Literal["float", "int", "categorical"]
    low: int | float | None = None  # int first: an int range stays int in recipes and tuning.json
    high: int | float | None = None
    log: bool = False  # sample uniformly in log space (learning rates, weight decay)
    choices: list[Any] | None = None  # categorical: the values tried, in order (numeric choices are ordered)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # extra="forbid" would report the typo through the recipe's section walk, which stops at this dict
        unknown = [k for k in data if k not in cls.model_fields] if isinstance(data, dict) else []
        if unknown:
            guess = closest(str(unknown[0]), cls.model_fields)
            hint = f", did you mean {guess!r}" if guess else ""
            raise ValueError(f"a range with keys {', '.join(cls.model_fields)} (unknown key {unknown[0]!r}{hint})")
        return data

    @model_validator(mode="after")
    def _complete(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range with a non-empty 'choices' list")
        elif self.low is None or self.high is None or not self.low <= self.high:
            raise ValueError(f"a {self.type} range with low <= high (low={self.low}, high={self.high})")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range with low > 0 (low={self.low})")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """The trial's value for this key (Optuna's suggest API)."""
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)  # type: ignore[arg-type]
        assert self.low is not None and self.high is not None  # checked by _complete
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def grid(self, points: int) -> list[Any]:
        """Values a grid search tries: the choices, or `points` evenly spaced (log-spaced) values."""
        if self.type == "categorical":
            return list(self.choices or [])
        assert self.low is not None and self.high is not None
        lo, hi = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        values = [lo + (hi - lo) * i / max(points - 1, 1) for i in range(points)]
        values = [math.exp(v) for v in values] if self.log else values
        return sorted({round(v) for v in values}) if self.type == "int" else values

    def admits(self, value: Any) -> bool:
        """Whether `value` is a point of this range (a choice, or inside [low, high])."""
        if self.type == "categorical":
            return value in (self.choices or [])
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return numeric and self.low is not None and self.high is not None and self.low <= value <= self.high

    def position(self, value: Any) -> float | None:
        """Where `value` sits in the range, 0 (low) to 1 (high), in the sampling scale; None if unordered."""
        if self.type == "categorical":
            numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in self.choices or [])
            if not numeric or len(self.choices or []) < 2:
                return None
            ordered = sorted(self.choices or [])
            return ordered.index(value) / (len(ordered) - 1)
        assert self.low is not None and self.high is not None
        if self.high == self.low:
            return None
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)


class TuneConfig(_Section):
    """How `tunesmith tune` searches (T52, T53). The storage URL is a CLI flag, never saved: it may hold a password."""

    space: dict[str, ParamSpec] | None = None  # None: the catalog's default space for the model family
    strategy: Literal["staged", "flat"] = "staged"  # staged: capacity -> lr/batch -> regularization (T53)
    sampler: str = "tpe"  # exploit sampler (tpe, gp, random, grid, qmc); staged explores with qmc first
    pruner: str = "median"  # median is robust with few trials; hyperband/successive_halving cut harder
    trials: int = Field(30, ge=1)  # the study's budget, shared by all workers (not per worker)
    timeout: float | None = Field(None, gt=0)  # seconds for the whole tune; stages get shares of it
    epochs: int = Field(20, ge=1)  # epochs per trial (and of the final refit): longer is surer but slower
    metric: Metric = "auto"  # auto: accuracy (classification), rmse (regression), loss (reconstruction)
    explore: float = Field(0.4, ge=0.0, le=1.0)  # share of a stage's trials sampled quasi-randomly before TPE/GP
    shares: tuple[float, float, float] = (0.3, 0.3, 0.4)  # trials/time of capacity, lr+batch, regularization
    fit_loss: float = Field(0.1, gt=0.0, lt=1.0)  # capacity (T40): "fits" = train loss below this x chance loss
    # final refit: k-fold on train+val for mean +/- std; 5 folds train each model on 4/5 of it, as many rows as a
    # trial had with the default val_size 0.2 (3 folds would refit on fewer rows than the search used)
    refit_folds: int = Field(5, ge=2)
    grid_points: int = Field(3, ge=2)  # grid sampler: values per float/int range
    heartbeat_interval: int = Field(5, ge=1)  # seconds between a running trial's heartbeats
    grace_period: int = Field(20, ge=2)  # a trial silent this long is stale: failed and requeued
    max_retry: int = Field(2, ge=0)  # requeues of a trial lost to a crash (divergence is never retried)

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"a section whose grace_period ({self.grace_period}) exceeds heartbeat_interval "
                f"({self.heartbeat_interval})"
            )
        if min(self.shares) <= 0:
            raise ValueError(f"a section whose stage shares are all > 0 (shares={self.shares})")
        return self


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


def ambiguous_kind(recipe: Recipe, facts: DataFacts) -> bool:
    """T10: is the input kind a guess? A wide unnamed numeric array (.npz, (N, F) with F >= 16) may be a
    table of features or a batch of 1-D signals; unless the recipe says which, the capacity stage decides."""
    d, m = recipe.data, recipe.model
    unsaid = d.kind == "auto" and m.family == "auto" and m.custom is None
    return unsaid and facts.kind == "tabular" and str(d.source).endswith(".npz") and facts.input_shape[0] >= 16


def default_space(
    recipe: Recipe, facts: DataFacts, *, ambiguous: bool = False, user_model: bool = False
) -> dict[str, ParamSpec]:
    """The catalog's space for a resolved recipe: what a practitioner would try first, family by family.

    ambiguous: the input kind is a guess (ambiguous_kind): the family (mlp or a 1-D cnn) is searched too.
    user_model: a live nn.Module is tuned: its architecture, dropout layers included, is its own.
    """
    m, t = recipe.model, recipe.train
    family = m.family
    widths = {"mlp": [64, 128, 256, 512], "cnn": [16, 32, 64], "rnn": [32, 64, 128], "autoencoder": [64, 128, 256]}
    depths = {"mlp": (1, 4), "cnn": (1, _pooling_stages(facts)), "rnn": (1, 3), "autoencoder": (1, 3)}
    lr = (1e-3, 3e-1) if t.optimizer == "sgd" else (1e-4, 3e-2)  # T31: sgd wants ~10x the adaptive optimizers' LR
    batches = [b for b in (16, 32, 64, 128, 256) if b * 4 <= facts.n_train][-4:]  # T07: >= 4 steps an epoch
    space: dict[str, ParamSpec] = {}
    if ambiguous:  # T10 on evidence: the capacity stage tries both readings of the columns
        space["model.family"] = ParamSpec(type="categorical", choices=["mlp", "cnn"])
        widths[family] = [32, 64, 128]  # sizes that suit both families
    if m.custom is None and not user_model:  # a user model's architecture is its own
        space["model.width"] = ParamSpec(type="categorical", choices=widths.get(family, [64, 128, 256]))
        low, high = depths.get(family, (1, 3))
        space["model.depth"] = ParamSpec(type="int", low=low, high=high)
        space["model.activation"] = ParamSpec(type="categorical", choices=["relu", "gelu", "leaky_relu"])
        norms = ["layer", "none"] if facts.kind == "sequence" else ["batch", "none"]
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


def _pooling_stages(facts: DataFacts) -> int:
    """T16: each CNN stage halves the maps, so a stage beyond log2(side) convolves 1x1 maps for nothing."""
    sides = facts.input_shape[1:] if facts.kind == "image" else facts.input_shape[:1]
    return max(1, min(4, int(math.log2(max(2, min(sides))))))


def space_to_json(space: dict[str, ParamSpec]) -> dict[str, dict[str, Any]]:
    """tuning.json's form: every key with type, low, high, log and choices."""
    return {key: spec.model_dump(mode="json") for key, spec in space.items()}
