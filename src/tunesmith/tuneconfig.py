"""The recipe's `tune` section (T52, T53): how `tunesmith tune` searches, and the range of one searched key.

These are recipe fields, so they live in the recipe layer: `tunesmith.recipe` builds its `tune`
section from `TuneConfig`, and this module needs only pydantic (the recipe stays importable
without torch or optuna, and imports nothing from tuning). The functions over a whole search
space (the catalog's default space, checking a space against the recipe) are in
`tunesmith.tuning.space`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from tunesmith.errors import closest
from tunesmith.validate import Section

if TYPE_CHECKING:
    import optuna

__all__ = ["PLANNED_TRIALS", "ParamSpec", "TuneConfig"]

# "auto" and the names of train/metrics.METRICS, spelled out for mypy; tests/test_metrics.py checks they agree
Metric = Literal["auto", "loss", "accuracy", "f1_macro", "rmse", "mae", "r2"]


class ParamSpec(Section):
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


PLANNED_TRIALS = 30  # trials a tune is planned for when tune.trials is not set


class TuneConfig(Section):
    """How `tunesmith tune` searches (T52, T53). The storage URL is a CLI flag, never saved: it may hold a password."""

    space: dict[str, ParamSpec] | None = None  # None: the catalog's default space for the model family
    strategy: Literal["staged", "flat"] = "staged"  # staged: capacity -> lr/batch -> regularization (T53)
    sampler: str = "tpe"  # exploit sampler (tpe, gp, random, grid, qmc); staged explores with qmc first
    pruner: str = "median"  # median is robust with few trials; hyperband/successive_halving cut harder
    # the study's budget in trials, shared by all workers (not per worker), an exact count when given; None: the
    # plan's PLANNED_TRIALS, and under a timeout each stage runs trials until its share of the time is spent
    trials: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)  # seconds for the whole tune; stages get shares of it
    epochs: int = Field(20, ge=1)  # epochs per trial (and of the final refit): longer is surer but slower
    metric: Metric = "auto"  # auto: accuracy (classification), rmse (regression), loss (reconstruction)
    explore: float = Field(0.4, ge=0.0, le=1.0)  # share of a stage's trials sampled quasi-randomly before TPE/GP
    shares: tuple[float, float, float] = (0.3, 0.3, 0.4)  # trials/time of capacity, lr+batch, regularization
    # folds each trial is scored on: auto measures the noise of one split first (prechecks.measure_noise); 1: one split
    folds: int | Literal["auto"] = "auto"
    fit_loss: float = Field(0.1, gt=0.0, lt=1.0)  # capacity (T40): "fits" = train loss below this x chance loss
    # final refit: k-fold on train+val for mean +/- std; 5 folds train each model on 4/5 of it, as many rows as a
    # trial had with the default val_size 0.2 (3 folds would refit on fewer rows than the search used)
    refit_folds: int = Field(5, ge=2)
    # what the refit delivers: "best" the better on validation of the best network and the linear model solved
    # exactly (T44; a tie goes to the linear model); "network" the best network always (e.g. to fine-tune it later)
    final: Literal["best", "network"] = "best"
    grid_points: int = Field(3, ge=2)  # grid sampler: values per float/int range
    heartbeat_interval: int = Field(5, ge=1)  # seconds between a running trial's heartbeats
    grace_period: int = Field(20, ge=2)  # a trial silent this long is stale: failed and requeued
    max_retry: int = Field(2, ge=0)  # requeues of a trial lost to a crash (divergence is never retried)

    @property
    def planned_trials(self) -> int:
        """The trials the stages are planned for: the exact budget, or PLANNED_TRIALS when none is set."""
        return self.trials if self.trials is not None else PLANNED_TRIALS

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"a section whose grace_period ({self.grace_period}) exceeds heartbeat_interval "
                f"({self.heartbeat_interval})"
            )
        if self.folds != "auto" and self.folds < 1:
            raise ValueError(f"a section whose folds is 'auto' or a count >= 1 (folds={self.folds})")
        if min(self.shares) <= 0:
            raise ValueError(f"a section whose stage shares are all > 0 (shares={self.shares})")
        return self
