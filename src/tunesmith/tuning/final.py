"""The last decision before the refit (T44 taken to its end): ship the best network, or the linear model?

    recipe, record = choose_final(best_recipe, best_trial, meta, setups)   # record -> tuning.json "final"

A careful practitioner compares the tuned network with the linear model on the same validation rows
and ships the better one. Here the linear model is the depth-0 network solved exactly
(`train.solver: exact`: scikit-learn's RidgeCV / LogisticRegressionCV, train/exact.py), scored as every
trial is scored (`objective.score_recipe`: the validation split, or the noise-aware folds). The best
network's search score is the best of many trials, biased upward by that selection (on diabetes, the best
of 1,318 trials scored rmse 51.9 on 5 folds, and its test r2 fell 0.02 below RidgeCV's), so the network
is scored afresh: retrained with FRESH_SEEDS new seeds on the same rows (the same folds, which the linear
model shares). The linear model is chosen when its score is better than that or within one standard
error of it (the simpler of two models that validation cannot tell apart, as the capacity stage chooses).
Its trainings are priced into --timeout (worker.TimeBudget `check_runs`).

With a pretrained backbone the linear model is its linear probe (T62, train/probe.py: the same recipe at
`train.solver: exact`, the head solved on the frozen embeddings): fine-tuning is delivered only when it
beats the probe by more than a standard error, and tuning.json records by how much.

Skipped, with the reason recorded, under `tune.final: network`, and where there is no linear model to
solve: reconstruction, text trained from scratch, a user's own model, or a training matrix beyond the
baselines' size budget (baselines.MAX_CELLS).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from tunesmith.baselines import MAX_CELLS, linear_name
from tunesmith.errors import TrainingDiverged
from tunesmith.recipe import Recipe
from tunesmith.runsetup import SetupCache
from tunesmith.tuning.objective import ReportEpochs, score_recipe
from tunesmith.tuning.playbook import Criteria
from tunesmith.tuning.worker import Meta

__all__ = ["FRESH_SEEDS", "LINEAR", "choose_final"]

log = logging.getLogger("tunesmith.tuning")

LINEAR = {"model.depth": 0, "train.solver": "exact", "train.epochs": 1}  # the linear model, solved exactly
FRESH_SEEDS = 2  # the best network retrained with this many new seeds: its search score is the best of many draws


def choose_final(best: Recipe, trial: FrozenTrial, meta: Meta, setups: SetupCache) -> tuple[Recipe, dict[str, Any]]:
    """The recipe the refit trains (the best network's, or the linear model's) and the record of the choice."""
    skipped = _why_not(best, setups)
    if skipped:
        log.info("  final model: the best network (%s)", skipped)
        return best, {"chosen": "network", "skipped": skipped}
    linear = best.with_overrides(LINEAR)
    judge = meta.judge

    def scores(recipe: Recipe, seed: int | None = None) -> list[float]:
        key = f"val_{meta.metric}"
        run = score_recipe(
            setups,
            recipe,
            metric=meta.metric,
            maximize=meta.maximize,
            repeats=judge.repeats,
            reporter=ReportEpochs(None, key),
            seed=seed,
        )
        return run.fold_values or [run.value]

    lin = scores(linear)
    seeds = [best.train.seed + 1 + i for i in range(FRESH_SEEDS)]
    facts = setups.get(best).facts
    model = linear_name(facts.task, facts.kind)
    if best.model.backbone is not None:
        model = f"the linear probe, {linear_name(facts.task, 'tabular')} on the frozen backbone's embeddings"
    try:
        fresh = np.mean([scores(best, seed) for seed in seeds], axis=0)  # per fold, averaged over the fresh seeds
    except TrainingDiverged as exc:  # a winner that diverges on another seed is no model to ship
        reason = (
            f"the best network diverged when retrained with seeds {seeds} ({exc}); the refit delivers the linear "
            f"model ({model}, solved exactly)"
        )
        log.info("  final model: %s", reason)
        return linear, {"chosen": "linear", "reason": reason, "linear": {"model": model, "fold_values": lin}}
    lin_value, lin_se = _mean_se(lin, judge)
    net_value, net_se = _mean_se(list(fresh), judge)
    better = lin_value >= net_value if meta.maximize else lin_value <= net_value
    chosen = "linear" if better or abs(lin_value - net_value) <= net_se else "network"
    scored = f"{judge.repeats}-fold cross-validation" if judge.repeats > 1 else "the validation split"
    versus = (
        f"the linear model ({model}, solved exactly) {meta.metric} {lin_value:.4g} ± {lin_se:.2g} against the best "
        f"network's {net_value:.4g} ± {net_se:.2g} retrained with seeds {seeds} (its search score "
        f"{trial.value:.4g} is the best of many) on {scored}"
    )
    if chosen == "linear":
        why = "better" if better else "within one standard error: the simpler model wins (T44)"
        reason = f"{versus}: {why}; the refit delivers the linear model"
    else:
        reason = f"{versus}: the network is better by more than one standard error"
    log.info("  final model: %s", reason)
    record = {
        "chosen": chosen,
        "reason": reason,
        "network": {"value": net_value, "se": net_se, "seeds": seeds, "search_value": trial.value},
        "linear": {"model": model, "value": lin_value, "se": lin_se, "fold_values": lin},
    }
    return (linear if chosen == "linear" else best), record


def _mean_se(values: list[float], judge: Criteria) -> tuple[float, float]:
    """A score and its standard error: over the folds' scores, or (one split) that of its metric on val_rows."""
    mean = float(np.mean(values))
    if len(values) > 1:
        return mean, float(np.std(values, ddof=1) / np.sqrt(len(values)))
    return mean, judge.standard_error(mean)


def _why_not(best: Recipe, setups: SetupCache) -> str:
    """Why no linear model can stand against the network here ("" when one can)."""
    if best.tune.final == "network":
        return "tune.final=network: the network is delivered whatever the linear model scores"
    if setups.user_model is not None or best.model.custom is not None:
        return "a user's own model is tuned: no linear model of tunesmith's stands in for it"
    prep = setups.get(best).prep
    if prep.facts.task not in ("classification", "regression"):
        return f"{prep.facts.task}: no linear model is solved for it"
    if prep.facts.kind == "text" and best.model.backbone is None:  # the bag at depth 0 is searched already
        return "text: a linear model of token ids in their positions means nothing (the baseline reads TF-IDF)"
    rows, cells = len(prep.x_train), int(np.prod(prep.x_train.shape))
    if cells > MAX_CELLS and best.model.backbone is None:  # a probe's cost is one pass of embeddings, not cells
        return f"{rows:,} training rows x {cells // max(rows, 1):,} features exceed the linear model's budget"
    return ""
