"""One trial (T52): the recipe with the trial's overrides, trained by the Trainer on the train split.

The score is the trial's best validation epoch (retrospective checkpoint selection), never its
last. Every epoch's validation metric is reported to Optuna, and the `ReportEpochs` callback
raises `optuna.TrialPruned` when the study's pruner says the trial cannot catch up.

A trial that diverges (TrainingDiverged) or whose overrides make an invalid recipe (BadInput) is
infeasible: it is finished with its evidence in the `diverged` user attribute and an Optuna
constraint violation, so TPE/GP learn to avoid that region, and it is never retried (retrying a
diverging learning rate only diverges again).

Trials never see the test split: they train on `x_train` and are scored on `x_val` only. The test
rows wait for the one final evaluation of the winner (tunesmith.tuning.outputs).
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from tunesmith.data import Prepared
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.recipe import Recipe
from tunesmith.runsetup import RunSetup, SetupCache
from tunesmith.train.callbacks import Callback
from tunesmith.train.trainer import Trainer
from tunesmith.tuneconfig import ParamSpec

__all__ = [
    "Objective",
    "ReportEpochs",
    "Surplus",
    "TrialRun",
    "budget_used",
    "chance_loss",
    "score_recipe",
    "train_trial",
]

REPEATED = (
    "overrides",
    "epochs",
    "train_loss",
    "best_epoch",
    "n_params",
    "val_loss",
    "truncated",
    "diverged",
    "folds",
    "fold_values",
    "se",
)


def chance_loss(prep: Prepared) -> float:
    """The training loss of a model that learned nothing: the class prior's entropy, or the target variance."""
    y = np.asarray(prep.y_train)
    if prep.facts.task == "classification":
        _, counts = np.unique(y.reshape(len(y), -1).argmax(1) if y.ndim > 1 else y, return_counts=True)
        p = counts / counts.sum()
        return float(-(p * np.log(p)).sum())
    return float(np.var(y.reshape(len(y), -1), axis=0).mean())


class ReportEpochs(Callback):
    """Reports the validation metric of every epoch to Optuna; raises TrialPruned when the pruner says so.

    deadline: past it (--timeout), the trial ends after its current epoch once it has run `min_epochs`
    (the pruner's warm-up): its best epoch so far is its score, and `truncated` records the epoch.
    trial None: the deadline only (a trial's later cross-validation folds report nothing to the pruner).
    """

    def __init__(
        self, trial: optuna.Trial | None, key: str, *, deadline: float | None = None, min_epochs: int = 1
    ) -> None:
        self.trial, self.key, self.deadline, self.min_epochs = trial, key, deadline, min_epochs
        self.rows: list[dict[str, float]] = []
        self.truncated: int | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        self.rows.append(row)
        epoch, value = int(row["epoch"]), float(row[self.key])
        if self.trial is not None:
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.key} {value:.4g})")
        if self.deadline is not None and time.time() > self.deadline and epoch >= self.min_epochs:
            trainer.should_stop = True  # the Trainer's own stop flag: ends the fit before the next epoch
            self.truncated = epoch


@dataclass
class TrialRun:
    history: list[dict[str, float]]
    value: float  # the best epoch's validation metric
    best_epoch: int  # 1-based
    n_params: int  # the model's size: the capacity stage prefers the smaller of two equals (T22, T44)
    curve: list[float] = field(default_factory=list)
    fold_values: list[float] = field(default_factory=list)  # noise-aware scoring: each fold's best-epoch score


def train_trial(setup: RunSetup, *, metric: str, maximize: bool, callbacks: list[Callback] | None = None) -> TrialRun:
    """Train one setup's recipe on its train split, validate each epoch, return the best epoch's score."""
    net = setup.new_model()
    n_params = sum(p.numel() for p in net.parameters())
    trainer = setup.trainer(net, callbacks=callbacks or [])
    trainer.fit(setup.train, setup.val)
    curve = [row[f"val_{metric}"] for row in trainer.history]
    best = int(np.argmax(curve) if maximize else np.argmin(curve))
    return TrialRun(trainer.history, curve[best], best + 1, n_params, curve)


def score_recipe(
    setups: SetupCache,
    recipe: Recipe,
    *,
    metric: str,
    maximize: bool,
    repeats: int,
    reporter: ReportEpochs,
    seed: int | None = None,
) -> TrialRun:
    """A recipe's score as every trial is scored: on the validation split, or (noise-aware) on `repeats`
    cross-validation folds over train+val, the first fold reporting its epochs to `reporter` (the pruner); the
    score is then the folds' mean, their scores in `fold_values`. Past the reporter's deadline the folds still to
    come are skipped (at least two are scored: one gives no standard error). `seed`: train with this seed on the
    same rows (train.seed also seeds the split: the recipe's split is kept)."""

    def setup(recipe: Recipe, fold: int = 0) -> RunSetup:
        found = setups.get(recipe, fold=fold)  # each fold prepared once per study, not once per trial
        return found if seed is None else found.with_overrides({"train.seed": seed})

    if repeats == 1:
        return train_trial(setup(recipe), metric=metric, maximize=maximize, callbacks=[reporter])
    recipe = recipe.with_overrides({"data.cv": repeats})
    runs = [train_trial(setup(recipe), metric=metric, maximize=maximize, callbacks=[reporter])]
    for k in range(1, repeats):
        if k >= 2 and reporter.deadline is not None and time.time() > reporter.deadline:
            break
        timer = ReportEpochs(None, reporter.key, deadline=reporter.deadline, min_epochs=reporter.min_epochs)
        runs.append(train_trial(setup(recipe, k), metric=metric, maximize=maximize, callbacks=[timer]))
    values = [r.value for r in runs]
    first = runs[0]
    return TrialRun(first.history, float(np.mean(values)), first.best_epoch, first.n_params, first.curve, values)


class Surplus(Exception):
    """A trial asked for after the stage's budget was used up by other workers (a race): dropped, not run."""


class Objective:
    """The Optuna objective of one stage: base recipe + earlier winners (carried) + stage overrides + the trial's."""

    def __init__(
        self,
        *,
        base: Recipe,
        carried: dict[str, Any],
        space: dict[str, ParamSpec],
        fixed: dict[str, Any],
        stage: str,
        budget: int | None,
        setups: SetupCache,
        metric: str,
        maximize: bool,
        deadline: float | None = None,
        repeats: int = 1,
    ) -> None:
        self.base, self.carried, self.space, self.fixed = base, carried, space, fixed
        self.stage, self.deadline = stage, deadline  # deadline: past it, a trial ends after its epoch (--timeout)
        self.budget = budget  # trials of the stage; None: as many as its time allows
        self.setups, self.metric, self.maximize = setups, metric, maximize
        self.repeats = repeats  # folds each trial is scored on (1: the one validation split)
        self.taken_away: int | None = None  # a trial of ours that another worker failed as stale (heartbeats)

    def __call__(self, trial: optuna.Trial) -> float:
        self.taken_away = None
        try:
            return self._run(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.taken_away = trial.number  # reporting failed: the trial is finished already, by someone else
            raise

    def _run(self, trial: optuna.Trial) -> float:
        if self._over_budget(trial):
            trial.set_user_attr("surplus", True)
            raise Surplus(f"trial {trial.number} of stage {self.stage} is over the budget of {self.budget}")
        params = {key: spec.suggest(trial, key) for key, spec in self.space.items()}
        trial.set_user_attr("stage", self.stage)
        twin = _twin(trial, params)
        if twin is not None:
            return self._repeat(trial, twin)
        overrides = {**self.carried, **self.fixed, **params}  # the whole trial recipe = base + these
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it (logs, fault tests)
        trial.set_user_attr("overrides", overrides)
        epochs = int(overrides["train.epochs"])  # every stage holds, searches or carries it (plan_stages)
        reporter = ReportEpochs(trial, f"val_{self.metric}", deadline=self.deadline, min_epochs=max(1, epochs // 4))
        started = time.perf_counter()
        try:
            run = self._train(overrides, reporter)
        except optuna.TrialPruned:
            self._record(trial, reporter.rows, started)
            raise
        except (TrainingDiverged, BadInput) as exc:
            self._record(trial, reporter.rows, started)
            return self._infeasible(trial, exc, reporter.rows)
        self._record(trial, run.history, started)
        trial.set_constraint("diverged", 0.0)  # every finished trial needs the same constraints (GP)
        trial.set_user_attr("best_epoch", run.best_epoch)
        trial.set_user_attr("n_params", run.n_params)
        trial.set_user_attr("val_loss", run.history[run.best_epoch - 1]["val_loss"])  # breaks ties of coarse metrics
        if reporter.truncated is not None:
            trial.set_user_attr("truncated", reporter.truncated)  # stopped by --timeout after this epoch
        if run.fold_values:
            trial.set_user_attr("folds", len(run.fold_values))  # its seconds paid every fold's epochs
            trial.set_user_attr("fold_values", run.fold_values)
            trial.set_user_attr("se", float(np.std(run.fold_values, ddof=1) / np.sqrt(len(run.fold_values))))
        return run.value

    def _train(self, overrides: dict[str, Any], reporter: ReportEpochs) -> TrialRun:
        recipe = self.base.with_overrides(overrides)
        return score_recipe(
            self.setups, recipe, metric=self.metric, maximize=self.maximize, repeats=self.repeats, reporter=reporter
        )

    def _repeat(self, trial: optuna.Trial, twin: FrozenTrial) -> float:
        """The sampler drew a point this stage has trained already (small discrete spaces do): every trial of a
        stage trains with the same seed, so the result would be the twin's again. Reuse it, train nothing."""
        trial.set_user_attr("repeat_of", twin.number)
        for key, value in twin.user_attrs.items():
            if key in REPEATED:
                trial.set_user_attr(key, value)
        trial.set_user_attr("seconds", 0.0)
        for epoch, value in sorted(twin.intermediate_values.items()):
            trial.report(value, epoch)
        if twin.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"repeats trial {twin.number}, pruned")
        trial.set_constraint("diverged", 1.0 if "diverged" in twin.user_attrs else 0.0)
        assert twin.value is not None  # a COMPLETE trial
        return twin.value

    def _over_budget(self, trial: optuna.Trial) -> bool:
        if self.budget is None:  # a time-bound stage: its deadline closes it
            return False
        trials = trial.study.get_trials(deepcopy=False)
        mine = next(t for t in trials if t.number == trial.number)
        if "failed_trial" in mine.system_attrs:  # a requeued copy replaces its original in the budget
            return False
        return budget_used([t for t in trials if t.number < trial.number]) >= self.budget

    def _record(self, trial: optuna.Trial, rows: list[dict[str, float]], started: float) -> None:
        trial.set_user_attr("epochs", len(rows))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        losses = [r["train_loss"] for r in rows if math.isfinite(r["train_loss"])]
        if losses:
            trial.set_user_attr("train_loss", min(losses))  # capacity stage: did the model fit? (T40)

    def _infeasible(self, trial: optuna.Trial, exc: Exception, rows: list[dict[str, float]]) -> float:
        """Finish a diverged/invalid trial as infeasible, valued at the worst feasible score seen (never best)."""
        trial.set_user_attr("diverged", {"error": type(exc).__name__, "reason": str(exc)[:500], "epoch": len(rows) + 1})
        trial.set_constraint("diverged", 1.0)  # > 0: infeasible, so TPE/GP rank it below every feasible trial
        feasible = [
            t.value
            for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if "diverged" not in t.user_attrs and t.value is not None
        ]
        own = [r[f"val_{self.metric}"] for r in rows if math.isfinite(r[f"val_{self.metric}"])]
        candidates = feasible or own
        if not candidates:  # nothing to compare with: a pruned trial with no epochs ranks last for TPE
            raise optuna.TrialPruned(f"infeasible before its first epoch: {type(exc).__name__}")
        return min(candidates) if self.maximize else max(candidates)


def _twin(trial: optuna.Trial, params: dict[str, Any]) -> FrozenTrial | None:
    """An earlier trial of this stage that finished (complete or pruned) with exactly these parameters."""
    finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return next((t for t in finished if t.number < trial.number and t.params == params), None)


def budget_used(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that count against a stage's budget: the originals (a requeued copy stands in for its original)."""
    return sum(1 for t in trials if "failed_trial" not in t.system_attrs and not t.user_attrs.get("surplus"))
