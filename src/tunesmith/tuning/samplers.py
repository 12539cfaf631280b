"""Samplers and pruners (T52): one registry each, wrapping Optuna's; nothing here re-implements a search.

Samplers: grid, random, tpe (multivariate TPE), gp (Gaussian process), qmc (scrambled Sobol).
Pruners: none, median, successive_halving (ASHA), hyperband; they read the per-epoch validation
metric each trial reports. `StagedSampler` is the playbook's composition (T53): explore with
quasi-random points first, exploit with TPE/GP after, and rebuild the inner sampler before every
trial with a seed derived from the trial number, so a resumed study draws the same suggestions
as one that never stopped (Optuna's samplers otherwise carry RNG state in the process).

Sources: Optuna's samplers/pruners; Bergstra et al. 2011 (TPE); Li et al. 2018 (Hyperband);
Li et al. 2020 (ASHA); Godbole et al. 2023, Deep Learning Tuning Playbook (quasi-random exploration).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import BadInput, closest
from tunesmith.registry import registrar
from tunesmith.tuneconfig import ParamSpec

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "AmongPeers",
    "StagedSampler",
    "create_pruner",
    "create_sampler",
    "reading",
    "register_pruner",
    "register_sampler",
    "rungs",
    "without_experimental_warnings",
]


class SamplerFactory(Protocol):
    def __call__(self, *, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler: ...


class PrunerFactory(Protocol):
    def __call__(self, *, epochs: int) -> optuna.pruners.BasePruner: ...


SAMPLERS: dict[str, SamplerFactory] = {}
PRUNERS: dict[str, PrunerFactory] = {}


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    return registrar(SAMPLERS, "sampler", name)


def register_pruner(name: str) -> Callable[[PrunerFactory], PrunerFactory]:
    return registrar(PRUNERS, "pruner", name)


def _lookup(table: dict[str, Any], name: str, param: str) -> Any:
    if name not in table:
        guess = closest(name, table)
        hint = f" Did you mean {guess!r}?" if guess else ""
        raise BadInput(f"The {param!r} parameter of tune must be one of {', '.join(table)}. Got {name!r}.{hint}")
    return table[name]


def create_sampler(
    name: str, *, seed: int, space: dict[str, ParamSpec], grid_points: int = 3, startup: int = 10
) -> BaseSampler:
    """An Optuna sampler by name; `startup`: random trials TPE/GP take before modelling."""
    factory = _lookup(SAMPLERS, name, "sampler")
    return factory(seed=seed, space=space, grid_points=grid_points, startup=startup)


def create_pruner(name: str, *, epochs: int) -> optuna.pruners.BasePruner:
    return _lookup(PRUNERS, name, "pruner")(epochs=epochs)


@register_sampler("grid")
def _grid(*, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler:
    grid = {key: spec.grid(grid_points) for key, spec in space.items()}
    return optuna.samplers.GridSampler(grid, seed=seed)


@register_sampler("random")
def _random(*, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("tpe")
def _tpe(*, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler:
    # multivariate: learning rate and batch size interact; TPE's independent default misses that
    # diverged trials carry the constraint "diverged" > 0 (objective.py): TPE and GP rank them as infeasible
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


@register_sampler("gp")
def _gp(*, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)


@register_sampler("qmc")
def _qmc(*, seed: int, space: dict[str, ParamSpec], grid_points: int, startup: int) -> BaseSampler:
    return _sobol(seed, draw_seed=seed + 1)


@contextmanager
def without_experimental_warnings() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for features marked so since v2.8-3.0 (QMCSampler, heartbeat
    retries, fail_stale_trials): tunesmith pins optuna < 6 and tests them, so users would only get noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _sobol(seed: int, *, draw_seed: int) -> BaseSampler:
    """Scrambled Sobol points for the numeric ranges; categorical keys get seeded random draws."""
    with without_experimental_warnings():
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,  # fixed for the whole study: the sequence's position is kept in the study itself
            independent_sampler=optuna.samplers.RandomSampler(seed=draw_seed),
            warn_independent_sampling=False,
        )


class StagedSampler(BaseSampler):
    """Explore with QMC for the first `explore` trials, then exploit with `exploit`; reseeded per trial.

    The Sobol sequence keeps one seed (its position lives in the study), every other draw is seeded by
    (seed, trial number): the suggestions depend only on the study's history, never on the process.
    """

    def __init__(
        self,
        *,
        exploit: str,
        seed: int,
        space: dict[str, ParamSpec],
        explore: int,
        grid_points: int = 3,
    ) -> None:
        self._exploit, self._seed, self._space, self._explore = exploit, seed, space, explore
        self._grid_points = grid_points
        self._inner = self._pick(0)

    def _pick(self, number: int) -> BaseSampler:
        seed = (self._seed * 1_000_003 + number) % 2**31
        if self._exploit == "qmc" or (number < self._explore and self._exploit != "grid"):
            return _sobol(self._seed, draw_seed=seed)
        startup = 0 if self._explore else 10  # explored points replace TPE/GP's own random start
        return create_sampler(
            self._exploit, seed=seed, space=self._space, grid_points=self._grid_points, startup=startup
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._inner = self._pick(trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)


def _warmup(epochs: int) -> int:
    return max(1, epochs // 4)  # the first quarter of the epochs is too noisy to judge a trial by


@register_pruner("none")
def _none(*, epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


@register_pruner("median")
def _median(*, epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=_warmup(epochs))


@register_pruner("successive_halving")
def _asha(*, epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=_warmup(epochs), reduction_factor=3)


@register_pruner("hyperband")
def _hyperband(*, epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=_warmup(epochs), max_resource=epochs, reduction_factor=3)


def reading(params: dict[str, Any]) -> str:
    """How a trial's model reads the data: its family, or "linear" at depth 0 (the same model in every family)."""
    return "linear" if params.get("model.depth") == 0 else str(params.get("model.family", ""))


class AmongPeers(optuna.pruners.BasePruner):
    """Judges a trial against its peers only: the trials whose model reads the data as it does (`reading`).

    Where the family is a choice (T10), learning curves differ in shape by family: the linear model converges
    within a few epochs, a recurrent network is still warming up at the first rung, and a median over both
    cuts every recurrent trial there, before it could show what it fits. Within one family the inner pruner
    (median, ASHA, Hyperband) judges as it always does; its startup trials count per family.
    """

    def __init__(self, inner: optuna.pruners.BasePruner) -> None:
        self.inner = inner

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_Peers(study, reading(trial.params)), trial)  # type: ignore[arg-type]


class _Peers:
    """A view of a study whose get_trials holds only the trials of one `reading`; the rest is the study's."""

    def __init__(self, study: Study, peer: str) -> None:
        self._study, self._peer = study, peer

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(*args, **kwargs) if reading(t.params) == self._peer]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def rungs(name: str, *, epochs: int) -> str:
    """The plan's line on pruning: when a trial can be cut and after how many epochs."""
    _lookup(PRUNERS, name, "pruner")
    if name == "none":
        return "no pruning: every trial runs all its epochs"
    first = _warmup(epochs)
    if name == "median":
        return f"after epoch {first}, every epoch: cut when below the median of earlier trials at that epoch"
    marks = [first * 3**k for k in range(int(math.log(epochs / first, 3)) + 1)] if epochs > first else [first]
    return f"rungs at epochs {', '.join(map(str, marks))} (keep the best third at each), then {epochs}"
